//! Dead-letter queues over AMQP: list, show, replay, purge. `wmsctl dlq` and the warehouse
//! console's Stuck messages page both use this one implementation.
//!
//! `show` reads messages and returns them to the queue (the channel closes without acking).
//! `replay` sends a message back to the consumer whose dead queue held it (through the requeue
//! exchange, so no other consumer sees it again), with its original routing key and message id
//! (so the consumer still deduplicates), and acks it from the dead queue only after the broker
//! confirmed the replay. It works whoever dead-lettered the message: the consumer runtime (which
//! records `x-original-routing-key`) or the broker itself (a quorum queue's delivery limit, which
//! records the original key in `x-death`).
//!
//! A replay refuses a dead letter older than [`MAX_REPLAY_AGE`] (counted from when the message
//! was first made: the event's `occurred_at`, the webhook's `x-received-at`): the consumers'
//! dedupe records are pruned after `retention.processed_messages_days`, which the `prune` job
//! requires to be longer than this age plus every redelivery delay, so a message replayed
//! within it can never be processed twice (docs/runbook.md, Retention).

use futures_util::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions, ConfirmSelectOptions,
    QueueDeclareOptions, QueuePurgeOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use platform::amqp::{Topology, headers};
use serde::Serialize;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum DlqError {
    #[error("RabbitMQ: {0}")]
    Amqp(#[from] lapin::Error),
    #[error("`{0}` is not a dead-letter queue of this namespace (see `wmsctl dlq list`)")]
    UnknownQueue(String),
    #[error("the broker did not confirm the replay of {0}")]
    NotConfirmed(String),
    /// Replayed now, the message could find its dedupe record pruned and be processed twice.
    #[error(
        "dead letter {message_id} was first made {made}, more than {max_days} days ago: the consumers' \
         dedupe records may have been pruned (retention.processed_messages_days), so a replay could \
         process it twice; nothing was replayed. Look at the order instead (repair it with `wmsctl \
         reconcile` or the console), then purge the dead letter"
    )]
    TooOldToReplay {
        message_id: String,
        made: String,
        max_days: u64,
    },
}

/// The oldest dead letter a replay accepts. `retention.processed_messages_days` must exceed it
/// (plus the redelivery delays): the `prune` job refuses to start otherwise.
pub const MAX_REPLAY_AGE: Duration = Duration::from_secs(7 * 86_400);

/// When the message was first made: the earliest of the event's `occurred_at`, the webhook's
/// `x-received-at` and the AMQP timestamp; else when it was dead-lettered (`x-dead-at`). Every
/// copy of a message id, and so every dedupe record of it, is at least this recent.
pub fn made_at(delivery: &lapin::message::Delivery) -> Option<chrono::DateTime<chrono::Utc>> {
    let table = delivery.properties.headers().as_ref();
    let parse = |s: &str| {
        chrono::DateTime::parse_from_rfc3339(s)
            .ok()
            .map(|t| t.with_timezone(&chrono::Utc))
    };
    let occurred = serde_json::from_slice::<serde_json::Value>(&delivery.data)
        .ok()
        .and_then(|v| v["occurred_at"].as_str().and_then(parse));
    let received = headers::get_str(table, headers::RECEIVED_AT).and_then(|s| parse(&s));
    let stamped = delivery
        .properties
        .timestamp()
        .and_then(|t| chrono::DateTime::from_timestamp(i64::try_from(t).ok()?, 0));
    [occurred, received, stamped]
        .into_iter()
        .flatten()
        .min()
        .or_else(|| headers::get_str(table, headers::DEAD_AT).and_then(|s| parse(&s)))
}

#[derive(Debug, Clone, Serialize)]
pub struct DeadQueue {
    pub queue: String,
    pub consumer: String,
    pub messages: u32,
}

#[derive(Debug, Clone, Serialize)]
pub struct DeadMessage {
    pub message_id: Option<String>,
    pub order_id: Option<String>,
    pub site_id: Option<String>,
    pub routing_key: Option<String>,
    pub service: Option<String>,
    pub reason: Option<String>,
    pub error: Option<String>,
    pub attempts: Option<i64>,
    pub dead_at: Option<String>,
}

pub struct Dlq {
    _connection: Connection,
    channel: Channel,
    topology: Topology,
}

/// The order a message is about: `payload.orderId` of a webhook, `event.order_id` of an event.
pub fn order_id_of(body: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    value["payload"]["orderId"]
        .as_str()
        .or_else(|| value["event"]["order_id"].as_str())
        .map(str::to_owned)
}

fn describe(delivery: &lapin::message::Delivery) -> DeadMessage {
    let table = delivery.properties.headers().as_ref();
    DeadMessage {
        message_id: delivery.properties.message_id().as_ref().map(|m| m.to_string()),
        order_id: order_id_of(&delivery.data),
        site_id: headers::get_str(table, headers::SITE_ID).or_else(|| {
            serde_json::from_slice::<serde_json::Value>(&delivery.data).ok()?["site_id"]
                .as_str()
                .map(str::to_owned)
        }),
        routing_key: original_routing_key(table),
        service: headers::get_str(table, headers::DEAD_SERVICE),
        reason: headers::get_str(table, headers::DEAD_REASON).or_else(|| {
            // Dead-lettered by the broker itself (delivery limit): x-death says why.
            table
                .and_then(|t| t.inner().get("x-death"))
                .map(|_| "delivery_limit (x-death)".to_owned())
        }),
        error: headers::get_str(table, headers::DEAD_ERROR),
        attempts: headers::get_i64(table, headers::ATTEMPT),
        dead_at: headers::get_str(table, headers::DEAD_AT),
    }
}

/// The key the message was first published with: the runtime's `x-original-routing-key`, or
/// the first `routing-keys` entry of the broker's `x-death` record.
fn original_routing_key(table: Option<&FieldTable>) -> Option<String> {
    headers::get_str(table, "x-original-routing-key").or_else(|| {
        let AMQPValue::FieldArray(deaths) = table?.inner().get("x-death")? else {
            return None;
        };
        deaths.as_slice().iter().find_map(|death| {
            let AMQPValue::FieldTable(death) = death else {
                return None;
            };
            let AMQPValue::FieldArray(keys) = death.inner().get("routing-keys")? else {
                return None;
            };
            keys.as_slice().iter().find_map(|key| match key {
                AMQPValue::LongString(key) => Some(String::from_utf8_lossy(key.as_bytes()).into_owned()),
                AMQPValue::ShortString(key) => Some(key.to_string()),
                _ => None,
            })
        })
    })
}

impl Dlq {
    pub async fn connect(url: &str, topology: Topology) -> Result<Self, DlqError> {
        // Every address of a cluster URL list is tried in turn.
        let url = secrecy::SecretString::from(url.to_owned());
        let connection = platform::amqp::connection::connect_any(&url, ConnectionProperties::default()).await?;
        let channel = connection.create_channel().await?;
        channel.confirm_select(ConfirmSelectOptions::default()).await?;
        Ok(Self {
            _connection: connection,
            channel,
            topology,
        })
    }

    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    /// The consumer whose dead queue `queue` is.
    fn check(&self, queue: &str) -> Result<&'static str, DlqError> {
        self.topology
            .consumers()
            .iter()
            .find(|c| self.topology.dead_queue(c.name) == queue)
            .map(|c| c.name)
            .ok_or_else(|| DlqError::UnknownQueue(queue.to_owned()))
    }

    pub async fn list(&self) -> Result<Vec<DeadQueue>, DlqError> {
        let mut out = Vec::new();
        for consumer in self.topology.consumers() {
            let queue = self.topology.dead_queue(consumer.name);
            let messages = self.count(&queue).await?;
            out.push(DeadQueue {
                queue,
                consumer: consumer.name.to_owned(),
                messages,
            });
        }
        Ok(out)
    }

    /// Up to `limit` messages, left in the queue.
    pub async fn show(&self, queue: &str, limit: u16) -> Result<Vec<DeadMessage>, DlqError> {
        self.check(queue)?;
        let (channel, deliveries) = self.take(queue, limit).await?;
        let shown: Vec<DeadMessage> = deliveries.iter().map(describe).collect();
        let before = self.count(queue).await?;
        // Closing without acking returns every message to the queue.
        platform::amqp::close_channel(&channel, "shown").await;
        // A quorum queue takes the returns asynchronously: wait until they are counted again, so
        // a `dlq list` right after `show` sees what was there before.
        let expected = before + u32::try_from(shown.len()).unwrap_or(u32::MAX);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while self.count(queue).await? < expected && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(shown)
    }

    /// Replays the messages of `queue` about `order` (or all of them); returns their ids.
    pub async fn replay(&self, queue: &str, order: Option<&str>, limit: u16) -> Result<Vec<DeadMessage>, DlqError> {
        self.replay_where(queue, limit, "wmsctl", |m| {
            order.is_none_or(|o| m.order_id.as_deref() == Some(o))
        })
        .await
    }

    /// Replays the messages of `queue` that `select` picks (the others return to the queue);
    /// `replayed_by` goes in the `x-replayed-by` header.
    pub async fn replay_where(
        &self,
        queue: &str,
        limit: u16,
        replayed_by: &str,
        select: impl Fn(&DeadMessage) -> bool,
    ) -> Result<Vec<DeadMessage>, DlqError> {
        let consumer = self.check(queue)?;
        let (channel, deliveries) = self.take(queue, limit).await?;
        let selected: Vec<_> = deliveries
            .into_iter()
            .map(|d| (describe(&d), d))
            .filter(|(described, _)| select(described))
            .collect();
        // All or nothing: a selection holding a dead letter too old to replay replays none
        // (closing the channel returns every message to the queue).
        let oldest_allowed = chrono::Utc::now() - MAX_REPLAY_AGE;
        for (described, delivery) in &selected {
            let made = made_at(delivery);
            if made.is_none_or(|made| made < oldest_allowed) {
                platform::amqp::close_channel(&channel, "replay refused").await;
                return Err(DlqError::TooOldToReplay {
                    message_id: described.message_id.clone().unwrap_or_default(),
                    made: made.map_or_else(|| "at an unknown time".to_owned(), |m| format!("at {}", m.to_rfc3339())),
                    max_days: MAX_REPLAY_AGE.as_secs() / 86_400,
                });
            }
        }
        let mut replayed = Vec::new();
        for (described, delivery) in selected {
            let routing_key = described
                .routing_key
                .clone()
                .unwrap_or_else(|| delivery.routing_key.to_string());
            let mut table = delivery.properties.headers().clone().unwrap_or_default();
            let inner: std::collections::BTreeMap<_, _> = table
                .inner()
                .iter()
                .filter(|(k, _)| {
                    !k.as_str().starts_with("x-dead") && k.as_str() != "x-death" && k.as_str() != "x-last-error"
                })
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            table = FieldTable::from(inner);
            table.insert(headers::ATTEMPT.into(), AMQPValue::LongLongInt(1));
            // The consumer runtime reads the original key from this header (as after a retry).
            headers::insert_str(&mut table, "x-original-routing-key", routing_key.as_str());
            headers::insert_str(&mut table, "x-replayed-by", replayed_by);
            let properties = BasicProperties::default()
                .with_message_id(described.message_id.clone().unwrap_or_default().as_str().into())
                .with_correlation_id(delivery.properties.correlation_id().clone().unwrap_or_default())
                .with_content_type("application/json".into())
                .with_delivery_mode(2)
                .with_headers(table);
            let confirm = self
                .channel
                .basic_publish(
                    self.topology.requeue_exchange().into(),
                    consumer.into(),
                    BasicPublishOptions {
                        mandatory: true,
                        ..BasicPublishOptions::default()
                    },
                    &delivery.data,
                    properties,
                )
                .await?
                .await?;
            if !confirm.is_ack() || confirm.take_message().is_some() {
                return Err(DlqError::NotConfirmed(described.message_id.unwrap_or_default()));
            }
            delivery.acker.ack(BasicAckOptions::default()).await?;
            replayed.push(described);
        }
        platform::amqp::close_channel(&channel, "replayed").await;
        Ok(replayed)
    }

    pub async fn purge(&self, queue: &str) -> Result<u32, DlqError> {
        self.check(queue)?;
        Ok(self
            .channel
            .queue_purge(queue.into(), QueuePurgeOptions::default())
            .await?)
    }

    /// Messages ready in `queue` (not counting ones delivered and unacked): a passive declare,
    /// so no management plugin is needed. Also used for the work queues' backlog.
    pub async fn count(&self, queue: &str) -> Result<u32, DlqError> {
        let options = QueueDeclareOptions {
            passive: true,
            ..QueueDeclareOptions::default()
        };
        Ok(self
            .channel
            .queue_declare(queue.into(), options, FieldTable::default())
            .await?
            .message_count())
    }

    /// Takes up to `limit` deliveries on a fresh channel (unacked).
    async fn take(&self, queue: &str, limit: u16) -> Result<(Channel, Vec<lapin::message::Delivery>), DlqError> {
        let count = self.count(queue).await?;
        let channel = self._connection.create_channel().await?;
        channel.basic_qos(limit.max(1), BasicQosOptions::default()).await?;
        let mut consumer = channel
            .basic_consume(
                queue.into(),
                "wmsctl".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        let mut deliveries = Vec::new();
        // Messages another client just returned may not be counted yet: keep listening briefly
        // after the count is reached, and stop once the queue stays quiet.
        while deliveries.len() < usize::from(limit) {
            let patience = if deliveries.len() < count as usize {
                Duration::from_secs(2)
            } else {
                Duration::from_millis(300)
            };
            match tokio::time::timeout(patience, consumer.next()).await {
                Ok(Some(Ok(delivery))) => deliveries.push(delivery),
                _ => break,
            }
        }
        Ok((channel, deliveries))
    }
}
