//! The whole RabbitMQ topology: declared idempotently by one privileged step (`wmsctl amqp
//! declare`) or, with `amqp.declare_topology` (the default, for local runs and tests), by every
//! process when it connects; otherwise a process only checks that it exists ([`Topology::verify`],
//! passive declares, which RabbitMQ allows without any permission), so its user needs no
//! configure permission ([`super::permissions`]).
//!
//! ```text
//!  ingress / workers ──► <ns>.events (topic) ──► <ns>.<consumer>       (quorum work queue)
//!                                                   │ delivery limit / poison
//!                                                   ▼
//!  runtime: permanent / exhausted ──► <ns>.dead (direct) ──► <ns>.<consumer>.dead
//!  runtime: transient ──► <ns>.retry (direct) ──► <ns>.<consumer>.retry.<delay>
//!                                                   │ queue TTL expires
//!                                                   ▼
//!                          <ns>.requeue (direct) ──► <ns>.<consumer>
//! ```
//!
//! Why these choices (RabbitMQ 3.10 through 4.x):
//! - Quorum queues: replicated and durable; they count deliveries so a message that crashes its
//!   consumer over and over is dead-lettered instead of looping (`x-delivery-limit`).
//! - `x-dead-letter-strategy = at-least-once` with `x-overflow = reject-publish`: without both,
//!   a quorum queue's dead-lettering is at-most-once and a dead letter can be lost.
//! - One retry queue per delay tier with a queue-wide TTL: every message in a tier expires in
//!   arrival order, whereas per-message TTLs in one shared queue wait behind the head.
//! - `x-quorum-initial-group-size` (`amqp.quorum_initial_group_size`, default 3): three replicas
//!   on a cluster of three or more; RabbitMQ caps it to the cluster size, so one node works too.
//!   It only shapes a queue when it is created; an existing queue keeps its replicas (see
//!   [`CREATION_ONLY`]).
//! - Dead-letter queues carry an explicit, unreachable `x-delivery-limit`
//!   ([`DEAD_DELIVERY_LIMIT`]): RabbitMQ 4.x gives every quorum queue a delivery limit of 20 by
//!   default, and a dead queue has nowhere to dead-letter to, so a message shown (read and
//!   returned) 20 times would be dropped. `-1` means "unlimited" on 4.x, but 3.x reads it as
//!   "drop on the first return" (checked on 3.10), so the limit is the largest 32-bit value on
//!   every version.

use domain::routing;
use lapin::options::{
    ExchangeDeclareOptions, ExchangeDeleteOptions, QueueBindOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{Channel, Connection, ExchangeKind};

/// `x-delivery-limit` of the dead-letter queues: never reached, on 3.x and 4.x alike.
pub const DEAD_DELIVERY_LIMIT: i64 = i32::MAX as i64;

/// Queue arguments that only matter when a queue is created. Redeclaring an existing queue
/// with a different value (or where it had none, as queues declared before the setting
/// existed) fails with PRECONDITION_FAILED; the declaration then accepts the queue as it is.
pub const CREATION_ONLY: &[&str] = &["x-quorum-initial-group-size"];

/// The name of every consumer, defined once: its work queue is `<ns>.<name>`, its handler's
/// `NAME` and the actor of its audit entries.
pub mod consumer {
    pub const ENRICH: &str = "enrich";
    pub const RESERVE: &str = "reserve";
    pub const SHIP: &str = "ship";
    pub const NOTIFY_WEBFLOW: &str = "notify-webflow";
}

/// A consumer and the routing keys its work queue receives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConsumerQueue {
    pub name: &'static str,
    pub bindings: &'static [&'static str],
}

/// Every consumer of the system. `enrich` takes all webhooks from day one, so nothing the
/// ingress accepts is lost before later workers exist.
pub const CONSUMERS: &[ConsumerQueue] = &[
    ConsumerQueue {
        name: consumer::ENRICH,
        bindings: &[
            routing::WEBHOOK_NEW_ORDER,
            routing::WEBHOOK_ORDER_CHANGED,
            routing::WEBHOOK_INVENTORY_CHANGED,
        ],
    },
    ConsumerQueue {
        name: consumer::RESERVE,
        bindings: &[routing::ORDER_READY, routing::ORDER_CANCELLED, routing::STOCK_RECEIVED],
    },
    ConsumerQueue {
        name: consumer::SHIP,
        bindings: &[routing::ORDER_PACKED],
    },
    ConsumerQueue {
        name: consumer::NOTIFY_WEBFLOW,
        bindings: &[
            routing::ORDER_SHIPPED,
            routing::ORDER_REFUND_REQUESTED,
            routing::ORDER_ADDRESS_CORRECTED,
        ],
    },
];

#[derive(Clone, Debug)]
pub struct Topology {
    namespace: String,
    consumers: Vec<ConsumerQueue>,
    retry_delays_ms: Vec<u64>,
    delivery_limit: u32,
    /// `x-quorum-initial-group-size`; `None` leaves it to the broker.
    initial_group_size: Option<u32>,
    /// `amqp.declare_topology`: whether [`Topology::ensure`] declares or only verifies.
    declare: bool,
}

/// What [`Topology::verify`] looks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ObjectKind {
    Exchange,
    Queue,
}

impl std::fmt::Display for ObjectKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Exchange => "exchange",
            Self::Queue => "queue",
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TopologyError {
    /// Checked passively (`amqp.declare_topology = false`) and not there.
    #[error("{kind} {name} does not exist: run `wmsctl amqp declare`")]
    Missing { kind: ObjectKind, name: String },
    /// Declaring was refused (ACCESS_REFUSED): a least-privilege user with
    /// `amqp.declare_topology = true`.
    #[error(
        "declaring the topology was refused ({0}): this RabbitMQ user may not declare it; set \
         amqp.declare_topology = false and run `wmsctl amqp declare` as the topology user"
    )]
    DeclareRefused(lapin::Error),
    #[error(transparent)]
    Protocol(#[from] lapin::Error),
}

impl Topology {
    pub fn new(namespace: impl Into<String>, retry_delays_ms: Vec<u64>, delivery_limit: u32) -> Self {
        let mut retry_delays_ms = retry_delays_ms;
        retry_delays_ms.sort_unstable();
        retry_delays_ms.dedup();
        Self {
            namespace: namespace.into(),
            consumers: CONSUMERS.to_vec(),
            retry_delays_ms,
            delivery_limit,
            initial_group_size: None,
            declare: true,
        }
    }

    pub fn from_settings(settings: &crate::settings::AmqpSettings) -> Self {
        Self::new(
            settings.namespace.clone(),
            settings.retry_delays_ms.clone(),
            settings.delivery_limit,
        )
        .with_initial_group_size(settings.quorum_initial_group_size)
        .with_declare(settings.declare_topology)
    }

    /// `true`: [`Self::ensure`] declares the topology; `false`: it only verifies it.
    pub fn with_declare(mut self, declare: bool) -> Self {
        self.declare = declare;
        self
    }

    /// Whether [`Self::ensure`] declares (`amqp.declare_topology`).
    pub fn declares(&self) -> bool {
        self.declare
    }

    /// Replicas per quorum queue when it is created; 0 leaves it to the broker.
    pub fn with_initial_group_size(mut self, size: u32) -> Self {
        self.initial_group_size = (size > 0).then_some(size);
        self
    }

    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    pub fn consumers(&self) -> &[ConsumerQueue] {
        &self.consumers
    }

    pub fn consumer(&self, name: &str) -> Option<&ConsumerQueue> {
        self.consumers.iter().find(|c| c.name == name)
    }

    pub fn retry_delays_ms(&self) -> &[u64] {
        &self.retry_delays_ms
    }

    /// The topic exchange every event is published to.
    pub fn events_exchange(&self) -> String {
        format!("{}.events", self.namespace)
    }

    pub fn retry_exchange(&self) -> String {
        format!("{}.retry", self.namespace)
    }

    pub fn requeue_exchange(&self) -> String {
        format!("{}.requeue", self.namespace)
    }

    pub fn dead_exchange(&self) -> String {
        format!("{}.dead", self.namespace)
    }

    pub fn work_queue(&self, consumer: &str) -> String {
        format!("{}.{consumer}", self.namespace)
    }

    pub fn dead_queue(&self, consumer: &str) -> String {
        format!("{}.{consumer}.dead", self.namespace)
    }

    pub fn retry_queue(&self, consumer: &str, delay_ms: u64) -> String {
        format!("{}.{consumer}.retry.{}", self.namespace, delay_label(delay_ms))
    }

    /// Routing key on the retry exchange for one consumer's tier.
    pub fn retry_routing_key(&self, consumer: &str, delay_ms: u64) -> String {
        format!("{consumer}.{delay_ms}")
    }

    /// The smallest tier that is at least `wanted_ms` (or the largest tier).
    pub fn retry_tier_for(&self, wanted_ms: u64) -> u64 {
        self.retry_delays_ms
            .iter()
            .copied()
            .find(|tier| *tier >= wanted_ms)
            .or_else(|| self.retry_delays_ms.last().copied())
            .unwrap_or(1_000)
    }

    /// The largest tier that is at most `wanted_ms` (or the smallest tier): for deferrals, where
    /// looking again early is cheap and looking again late leaves work idle.
    pub fn retry_tier_at_most(&self, wanted_ms: u64) -> u64 {
        self.retry_delays_ms
            .iter()
            .copied()
            .rev()
            .find(|tier| *tier <= wanted_ms)
            .or_else(|| self.retry_delays_ms.first().copied())
            .unwrap_or(1_000)
    }

    /// Whether any consumer's work queue is bound to `routing_key`.
    pub fn is_consumed(&self, routing_key: &str) -> bool {
        self.consumers.iter().any(|c| c.bindings.contains(&routing_key))
    }

    /// Every queue name this topology owns.
    pub fn queue_names(&self) -> Vec<String> {
        let mut names = Vec::new();
        for consumer in &self.consumers {
            names.push(self.work_queue(consumer.name));
            names.push(self.dead_queue(consumer.name));
            for delay in &self.retry_delays_ms {
                names.push(self.retry_queue(consumer.name, *delay));
            }
        }
        names
    }

    pub fn exchange_names(&self) -> Vec<String> {
        vec![
            self.events_exchange(),
            self.retry_exchange(),
            self.requeue_exchange(),
            self.dead_exchange(),
        ]
    }

    /// What a process does when it connects: declares the topology, or (with
    /// `amqp.declare_topology = false`) checks that it exists.
    pub async fn ensure(&self, connection: &Connection) -> Result<(), TopologyError> {
        if self.declare {
            self.declare(connection).await.map_err(|error| {
                if is_access_refused(&error) {
                    TopologyError::DeclareRefused(error)
                } else {
                    TopologyError::Protocol(error)
                }
            })
        } else {
            self.verify(connection).await
        }
    }

    /// Checks that every exchange and queue exists, by passive declares (RabbitMQ checks no
    /// permission for them: a user without configure, write or read may verify). Bindings and
    /// arguments are not checked: `wmsctl amqp declare` owns them.
    pub async fn verify(&self, connection: &Connection) -> Result<(), TopologyError> {
        let channel = connection.create_channel().await?;
        let result = self.verify_on(&channel).await;
        if result.is_ok() {
            super::close_channel(&channel, "topology verified").await;
        }
        result
    }

    async fn verify_on(&self, channel: &Channel) -> Result<(), TopologyError> {
        let exchange = ExchangeDeclareOptions {
            passive: true,
            ..ExchangeDeclareOptions::default()
        };
        for name in self.exchange_names() {
            channel
                .exchange_declare(
                    name.as_str().into(),
                    ExchangeKind::Direct,
                    exchange,
                    FieldTable::default(),
                )
                .await
                .map_err(|error| missing_or(error, ObjectKind::Exchange, &name))?;
        }
        let queue = QueueDeclareOptions {
            passive: true,
            ..QueueDeclareOptions::default()
        };
        for name in self.queue_names() {
            channel
                .queue_declare(name.as_str().into(), queue, FieldTable::default())
                .await
                .map_err(|error| missing_or(error, ObjectKind::Queue, &name))?;
        }
        Ok(())
    }

    /// Declares everything, on channels of its own. Idempotent: redeclaring with the same
    /// arguments is a no-op, on whichever node of a cluster the connection is.
    pub async fn declare(&self, connection: &Connection) -> Result<(), lapin::Error> {
        let mut channel = connection.create_channel().await?;
        let result = self.declare_on(connection, &mut channel).await;
        super::close_channel(&channel, "topology declared").await;
        result
    }

    async fn declare_on(&self, connection: &Connection, channel: &mut Channel) -> Result<(), lapin::Error> {
        let durable = ExchangeDeclareOptions {
            durable: true,
            ..ExchangeDeclareOptions::default()
        };
        channel
            .exchange_declare(
                self.events_exchange().into(),
                ExchangeKind::Topic,
                durable,
                FieldTable::default(),
            )
            .await?;
        for exchange in [self.retry_exchange(), self.requeue_exchange(), self.dead_exchange()] {
            channel
                .exchange_declare(exchange.into(), ExchangeKind::Direct, durable, FieldTable::default())
                .await?;
        }

        for consumer in &self.consumers {
            let work = self.work_queue(consumer.name);
            let mut args = self.quorum_args();
            // A message redelivered this many times (its consumer keeps crashing) is dead-lettered.
            put_int(&mut args, "x-delivery-limit", i64::from(self.delivery_limit));
            put_str(&mut args, "x-dead-letter-exchange", &self.dead_exchange());
            put_str(&mut args, "x-dead-letter-routing-key", consumer.name);
            declare_queue(connection, channel, &work, args, CREATION_ONLY).await?;
            for key in consumer.bindings {
                bind(channel, &work, &self.events_exchange(), key).await?;
            }
            bind(channel, &work, &self.requeue_exchange(), consumer.name).await?;

            let dead = self.dead_queue(consumer.name);
            // Terminal: no dead-letter target and no TTL; operators inspect and replay. The explicit
            // limit keeps 4.x's default (20) from dropping a message shown 20 times. A dead queue
            // declared before had none: accepted as it is, with a warning (docs/runbook.md).
            let mut args = self.quorum_args();
            put_int(&mut args, "x-delivery-limit", DEAD_DELIVERY_LIMIT);
            declare_queue(
                connection,
                channel,
                &dead,
                args,
                &["x-quorum-initial-group-size", "x-delivery-limit"],
            )
            .await?;
            bind(channel, &dead, &self.dead_exchange(), consumer.name).await?;

            for delay in &self.retry_delays_ms {
                let queue = self.retry_queue(consumer.name, *delay);
                // Nothing consumes a retry queue (messages only expire), so 4.x's default delivery
                // limit never applies to it.
                let mut args = self.quorum_args();
                // Queue-wide TTL: all messages of a tier expire in arrival order.
                put_int(&mut args, "x-message-ttl", i64::try_from(*delay).unwrap_or(i64::MAX));
                put_str(&mut args, "x-dead-letter-exchange", &self.requeue_exchange());
                put_str(&mut args, "x-dead-letter-routing-key", consumer.name);
                declare_queue(connection, channel, &queue, args, CREATION_ONLY).await?;
                bind(
                    channel,
                    &queue,
                    &self.retry_exchange(),
                    &self.retry_routing_key(consumer.name, *delay),
                )
                .await?;
            }
        }
        Ok(())
    }

    /// Deletes every queue and exchange of this namespace (tests and uninstall).
    pub async fn delete(&self, channel: &Channel) -> Result<(), lapin::Error> {
        for queue in self.queue_names() {
            channel
                .queue_delete(queue.into(), QueueDeleteOptions::default())
                .await?;
        }
        for exchange in self.exchange_names() {
            channel
                .exchange_delete(exchange.into(), ExchangeDeleteOptions::default())
                .await?;
        }
        Ok(())
    }
}

fn delay_label(delay_ms: u64) -> String {
    if delay_ms.is_multiple_of(60_000) {
        format!("{}m", delay_ms / 60_000)
    } else if delay_ms.is_multiple_of(1_000) {
        format!("{}s", delay_ms / 1_000)
    } else {
        format!("{delay_ms}ms")
    }
}

impl Topology {
    fn quorum_args(&self) -> FieldTable {
        let mut args = FieldTable::default();
        // Replicated, durable, and counts deliveries (needed for the delivery limit).
        put_str(&mut args, "x-queue-type", "quorum");
        // At-least-once dead-lettering needs reject-publish: a full target refuses rather than drops.
        put_str(&mut args, "x-overflow", "reject-publish");
        put_str(&mut args, "x-dead-letter-strategy", "at-least-once");
        if let Some(size) = self.initial_group_size {
            put_int(&mut args, "x-quorum-initial-group-size", i64::from(size));
        }
        args
    }
}

fn put_str(args: &mut FieldTable, key: &str, value: &str) {
    args.insert(ShortString::from(key), AMQPValue::LongString(LongString::from(value)));
}

fn put_int(args: &mut FieldTable, key: &str, value: i64) {
    args.insert(ShortString::from(key), AMQPValue::LongLongInt(value));
}

/// Declares a durable quorum queue. If it exists with a different value of one of `tolerated`
/// (PRECONDITION_FAILED naming it; the broker then closes the channel), `channel` is replaced
/// by a new one and the queue is accepted as it is after a passive declaration.
async fn declare_queue(
    connection: &Connection,
    channel: &mut Channel,
    name: &str,
    args: FieldTable,
    tolerated: &[&str],
) -> Result<(), lapin::Error> {
    // Durable, shared, never auto-deleted: messages must survive consumers and broker restarts.
    let options = QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    };
    let error = match channel.queue_declare(name.into(), options, args).await {
        Ok(_) => return Ok(()),
        Err(error) => error,
    };
    let Some(argument) = inequivalent_argument(&error).filter(|a| tolerated.contains(&a.as_str())) else {
        return Err(error);
    };
    tracing::warn!(
        queue = name,
        argument,
        %error,
        "queue exists with another value of a setting that cannot change; keeping it as it is (docs/runbook.md)"
    );
    *channel = connection.create_channel().await?;
    let passive = QueueDeclareOptions {
        passive: true,
        ..QueueDeclareOptions::default()
    };
    channel
        .queue_declare(name.into(), passive, FieldTable::default())
        .await
        .map(|_| ())
}

/// The AMQP reply code of a channel or connection error, if the broker sent one.
fn reply_code(error: &lapin::Error) -> Option<u16> {
    match error.kind() {
        lapin::ErrorKind::ProtocolError(amqp) => Some(amqp.get_id()),
        _ => None,
    }
}

/// ACCESS_REFUSED (403): the user lacks a permission.
pub fn is_access_refused(error: &lapin::Error) -> bool {
    reply_code(error) == Some(403)
}

fn missing_or(error: lapin::Error, kind: ObjectKind, name: &str) -> TopologyError {
    if reply_code(&error) == Some(404) {
        TopologyError::Missing {
            kind,
            name: name.to_owned(),
        }
    } else {
        TopologyError::Protocol(error)
    }
}

/// The argument a PRECONDITION_FAILED names, as in RabbitMQ's
/// `inequivalent arg 'x-delivery-limit' for queue ...`.
fn inequivalent_argument(error: &lapin::Error) -> Option<String> {
    let lapin::ErrorKind::ProtocolError(amqp) = error.kind() else {
        return None;
    };
    if amqp.get_id() != 406 {
        return None;
    }
    parse_inequivalent_argument(amqp.get_message().as_str())
}

fn parse_inequivalent_argument(message: &str) -> Option<String> {
    let rest = message.split_once("inequivalent arg '")?.1;
    Some(rest.split_once('\'')?.0.to_owned())
}

async fn bind(channel: &Channel, queue: &str, exchange: &str, key: &str) -> Result<(), lapin::Error> {
    channel
        .queue_bind(
            queue.into(),
            exchange.into(),
            key.into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_readable_and_prefixed() {
        let topology = Topology::new("wms", vec![30_000, 1_000, 120_000, 1_500], 10);
        assert_eq!(topology.work_queue("enrich"), "wms.enrich");
        assert_eq!(topology.dead_queue("enrich"), "wms.enrich.dead");
        assert_eq!(topology.retry_queue("enrich", 1_000), "wms.enrich.retry.1s");
        assert_eq!(topology.retry_queue("enrich", 120_000), "wms.enrich.retry.2m");
        assert_eq!(topology.retry_queue("enrich", 1_500), "wms.enrich.retry.1500ms");
        assert_eq!(topology.events_exchange(), "wms.events");
        assert!(topology.queue_names().iter().all(|q| q.starts_with("wms.")));
    }

    #[test]
    fn retry_tier_rounds_up_and_caps() {
        let topology = Topology::new("t", vec![1_000, 5_000, 30_000], 10);
        assert_eq!(topology.retry_tier_for(10), 1_000);
        assert_eq!(topology.retry_tier_for(1_000), 1_000);
        assert_eq!(topology.retry_tier_for(4_000), 5_000);
        assert_eq!(topology.retry_tier_for(999_999), 30_000);
        assert_eq!(topology.retry_tier_at_most(10), 1_000);
        assert_eq!(topology.retry_tier_at_most(29_999), 5_000);
        assert_eq!(topology.retry_tier_at_most(999_999), 30_000);
    }

    #[test]
    fn names_the_inequivalent_argument() {
        let message = "PRECONDITION_FAILED - inequivalent arg 'x-quorum-initial-group-size' for queue 'wms.enrich' \
                       in vhost '/': received the value '3' of type 'signedint' but current is none";
        assert_eq!(
            parse_inequivalent_argument(message).as_deref(),
            Some("x-quorum-initial-group-size")
        );
        assert_eq!(
            parse_inequivalent_argument("PRECONDITION_FAILED - invalid property 'auto-delete'"),
            None
        );
    }

    #[test]
    fn quorum_queues_get_the_initial_group_size_unless_zero() {
        let key = ShortString::from("x-quorum-initial-group-size");
        let topology = Topology::new("t", vec![1_000], 10).with_initial_group_size(3);
        assert_eq!(
            topology.quorum_args().inner().get(&key),
            Some(&AMQPValue::LongLongInt(3))
        );
        let topology = Topology::new("t", vec![1_000], 10).with_initial_group_size(0);
        assert_eq!(topology.quorum_args().inner().get(&key), None);
    }

    #[test]
    fn enrich_receives_every_handled_webhook() {
        let topology = Topology::new("t", vec![1_000], 10);
        let enrich = topology.consumer("enrich").unwrap();
        for trigger in domain::WebhookTrigger::ALL {
            assert!(enrich.bindings.contains(&trigger.routing_key()));
        }
    }
}
