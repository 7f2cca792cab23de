//! The consume loop and the per-message state machine.

use crate::error::HandlerError;
use crate::message::{DEFERRED_SINCE, Effects, IncomingMessage, ORIGINAL_ROUTING_KEY, RESUME_TOKEN};
use crate::metrics::WorkerMetrics;
use futures_util::StreamExt;
use lapin::BasicProperties;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions};
use lapin::types::FieldTable;
use platform::amqp::{AmqpClient, Publisher, headers};
use platform::worker_slot::WorkerSlots;
use service_base::{OutboxPublisher, WorkerSettings, run_relay};
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;
use warehouse_db::{Pool, idempotency};

/// What a message means to one consumer.
///
/// `prepare` runs outside any transaction (external reads such as a Webflow GET) and must not
/// write anywhere; `apply` runs inside the runtime's transaction and records every state change
/// and event there.
pub trait Handler: Send + Sync + 'static {
    /// The consumer's name: its queue is `<namespace>.<NAME>`.
    const NAME: &'static str;
    /// Whether to look the message id up in `processed_messages` before `prepare`, to spare a
    /// redelivered message its external calls. Handlers whose `prepare` only parses turn it off:
    /// the transaction catches a duplicate either way, and the lookup is a round trip per message.
    /// Handlers that call out only sometimes turn it off too and ask `seen` just before the call.
    const CHECK_BEFORE_PREPARE: bool = true;
    /// Whether the handler may wait for a timed slot (a Webflow rate budget's) through
    /// [`platform::worker_slot::wait_outside_slot`]: the runtime then prefetches
    /// `worker.max_waiting` more deliveries than it handles at once, for those waits.
    const WAITS_FOR_RATE_BUDGET: bool = false;
    type Prepared: Send + 'static;

    fn prepare(
        &self,
        message: &IncomingMessage,
        seen: &SeenCheck<'_>,
    ) -> impl Future<Output = Result<Preparation<Self::Prepared>, HandlerError>> + Send;

    fn apply(
        &self,
        tx: &warehouse_db::Transaction<'_>,
        message: &IncomingMessage,
        prepared: Self::Prepared,
        effects: &mut Effects,
    ) -> impl Future<Output = Result<(), HandlerError>> + Send;
}

/// What `prepare` found: the message is ready to apply, or it was handled before.
pub enum Preparation<P> {
    Ready(P),
    /// `prepare` learned (through [`SeenCheck`]) that this message was handled already: the
    /// runtime settles it as a duplicate.
    AlreadyHandled,
}

/// Lets `prepare` ask whether this message was handled already, right before an external call
/// that a duplicate should not repeat (a redelivery after the commit but before the ack).
pub struct SeenCheck<'a> {
    pool: &'a Pool,
    consumer: &'static str,
    message_id: &'a str,
}

impl SeenCheck<'_> {
    /// One lookup in `processed_messages`. When it says yes, `prepare` returns
    /// [`Preparation::AlreadyHandled`] and the runtime settles the message as a duplicate.
    pub async fn already_handled(&self) -> Result<bool, HandlerError> {
        let client = self.pool.get().await?;
        Ok(idempotency::was_processed(&*client, self.consumer, self.message_id).await?)
    }
}

/// What the runtime did with a message.
#[derive(Clone, Debug, PartialEq)]
pub enum Disposition {
    /// Handled; events published. Ack.
    Processed,
    /// Handled before; any leftover events published. Ack.
    Duplicate,
    /// Sent to a delay queue for another attempt. Ack.
    Retried {
        attempt: u32,
        delay_ms: u64,
        /// Deferred (waiting for the rate budget), not failed: no attempt used up.
        deferred: bool,
        error: String,
    },
    /// Sent to the `.dead` queue. Ack.
    DeadLettered { reason: String },
    /// Could not be settled (broker trouble): nack with requeue; the quorum queue's delivery
    /// limit keeps this from looping forever.
    Requeue,
}

impl Disposition {
    fn label(&self) -> &'static str {
        match self {
            Self::Processed => "processed",
            Self::Duplicate => "duplicate",
            Self::Retried { .. } => "retried",
            Self::DeadLettered { .. } => "dead_lettered",
            Self::Requeue => "requeued",
        }
    }
}

struct Shared<H: Handler> {
    handler: H,
    pool: Pool,
    amqp: AmqpClient,
    publisher: Publisher,
    outbox: OutboxPublisher,
    settings: WorkerSettings,
    metrics: WorkerMetrics,
    /// `worker.concurrency` slots; a handler waiting for a rate-budget slot gives its own back.
    slots: WorkerSlots,
    db_healthy: Arc<AtomicBool>,
    consuming: AtomicBool,
}

pub struct WorkerRuntime<H: Handler> {
    shared: Arc<Shared<H>>,
}

impl<H: Handler> Clone for WorkerRuntime<H> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
        }
    }
}

impl<H: Handler> WorkerRuntime<H> {
    /// A runtime over a service's connections and outbox publisher.
    pub fn with_outbox(
        handler: H,
        pool: Pool,
        amqp: AmqpClient,
        publisher: Publisher,
        outbox: OutboxPublisher,
        settings: WorkerSettings,
        registry: &prometheus::Registry,
    ) -> Result<Self, prometheus::Error> {
        let metrics = match WorkerMetrics::register(registry) {
            Ok(metrics) => metrics,
            Err(prometheus::Error::AlreadyReg) => WorkerMetrics::register(&prometheus::Registry::new())?,
            Err(error) => return Err(error),
        };
        // Every outcome from 0, so `increase()` sees the first dead letter and alerts can refer
        // to series that exist.
        for outcome in ["processed", "duplicate", "retried", "dead_lettered", "requeued"] {
            metrics.messages.with_label_values(&[H::NAME, outcome]);
        }
        let slots = WorkerSlots::new(usize::from(settings.concurrency))
            .with_waiting_gauge(metrics.waiting.with_label_values(&[H::NAME]));
        Ok(Self {
            shared: Arc::new(Shared {
                handler,
                pool,
                amqp,
                publisher,
                outbox,
                settings,
                metrics,
                slots,
                db_healthy: Arc::new(AtomicBool::new(true)),
                consuming: AtomicBool::new(false),
            }),
        })
    }

    pub fn handler(&self) -> &H {
        &self.shared.handler
    }

    pub fn outbox(&self) -> &OutboxPublisher {
        &self.shared.outbox
    }

    /// Ready: consuming, with the broker and the database usable.
    pub fn is_ready(&self) -> bool {
        self.shared.consuming.load(Ordering::Relaxed)
            && self.shared.amqp.is_ready()
            && self.shared.db_healthy.load(Ordering::Relaxed)
    }

    /// Handles one message completely except for the ack: the step function tests drive.
    pub async fn process(&self, message: IncomingMessage) -> Disposition {
        let started = Instant::now();
        let disposition = match self.handle(&message).await {
            Ok(disposition) => disposition,
            Err(error) => self.settle_failure(&message, error).await,
        };
        let consumer = H::NAME;
        self.shared
            .metrics
            .messages
            .with_label_values(&[consumer, disposition.label()])
            .inc();
        self.shared
            .metrics
            .handler_seconds
            .with_label_values(&[consumer])
            .observe(started.elapsed().as_secs_f64());
        match &disposition {
            Disposition::DeadLettered { reason } => {
                tracing::error!(consumer, message_id = %message.message_id, routing_key = %message.routing_key, attempt = message.attempt, reason = %reason, "message dead-lettered")
            }
            Disposition::Retried {
                attempt,
                delay_ms,
                deferred: true,
                error,
            } => {
                tracing::info!(consumer, message_id = %message.message_id, attempt, delay_ms, reason = %error, "message deferred")
            }
            Disposition::Retried {
                attempt,
                delay_ms,
                error,
                ..
            } => {
                tracing::warn!(consumer, message_id = %message.message_id, attempt, delay_ms, error = %error, "message scheduled for retry")
            }
            Disposition::Requeue => {
                tracing::warn!(consumer, message_id = %message.message_id, "message requeued")
            }
            _ => {
                let elapsed_ms = started.elapsed().as_secs_f64() * 1_000.0;
                tracing::info!(consumer, message_id = %message.message_id, routing_key = %message.routing_key, outcome = disposition.label(), elapsed_ms, "message handled")
            }
        }
        disposition
    }

    async fn handle(&self, message: &IncomingMessage) -> Result<Disposition, HandlerError> {
        let shared = &self.shared;
        if H::CHECK_BEFORE_PREPARE {
            let client = shared.pool.get().await?;
            if idempotency::was_processed(&*client, H::NAME, &message.message_id).await? {
                return Ok(self.finish_duplicate(message).await);
            }
        }
        let seen = SeenCheck {
            pool: &shared.pool,
            consumer: H::NAME,
            message_id: &message.message_id,
        };
        let prepared = match shared.handler.prepare(message, &seen).await? {
            Preparation::Ready(prepared) => prepared,
            Preparation::AlreadyHandled => return Ok(self.finish_duplicate(message).await),
        };

        let mut client = shared.pool.get().await?;
        let tx = client.transaction().await?;
        if !idempotency::mark_processed(&tx, H::NAME, &message.message_id).await? {
            drop(tx);
            return Ok(self.finish_duplicate(message).await);
        }
        let mut effects = Effects::default();
        shared.handler.apply(&tx, message, prepared, &mut effects).await?;
        for event in effects.events() {
            warehouse_db::outbox::enqueue(&tx, event, Some((H::NAME, &message.message_id))).await?;
        }
        tx.commit().await?;
        drop(client);
        for committed in std::mem::take(&mut effects.on_commit) {
            committed();
        }

        if effects.events().is_empty() {
            return Ok(Disposition::Processed);
        }
        match shared.outbox.publish_committed(effects.events()).await {
            Ok(count) => {
                shared
                    .metrics
                    .outbox_published
                    .with_label_values(&[H::NAME, "handler"])
                    .inc_by(count as u64);
                Ok(Disposition::Processed)
            }
            Err(error) => {
                // Committed but not yet published: redelivery (or the relay) publishes it.
                tracing::warn!(%error, message_id = %message.message_id, "events committed but not published yet");
                Ok(Disposition::Requeue)
            }
        }
    }

    async fn finish_duplicate(&self, message: &IncomingMessage) -> Disposition {
        match self.shared.outbox.publish_for(H::NAME, &message.message_id).await {
            Ok(count) => {
                if count > 0 {
                    self.shared
                        .metrics
                        .outbox_published
                        .with_label_values(&[H::NAME, "redelivery"])
                        .inc_by(count as u64);
                }
                Disposition::Duplicate
            }
            Err(error) => {
                tracing::warn!(%error, "cannot publish leftover events of a duplicate");
                Disposition::Requeue
            }
        }
    }

    async fn settle_failure(&self, message: &IncomingMessage, error: HandlerError) -> Disposition {
        let settings = &self.shared.settings;
        let deferred = error.kind == crate::error::ErrorKind::Deferred;
        let deferred_since = deferred.then(|| deferred_since(message));
        if let Some(since) = deferred_since
            && (chrono::Utc::now() - since).num_seconds()
                > i64::try_from(settings.max_deferral_secs).unwrap_or(i64::MAX)
        {
            // Nothing circles forever unseen: an operator looks at it in the `.dead` queue.
            return self.dead_letter(message, "deferred_too_long", &error.message).await;
        }
        if deferred || (error.is_transient() && message.attempt < settings.max_attempts) {
            let backoff = if deferred {
                Duration::ZERO
            } else {
                settings.retry.delay_for_attempt(message.attempt)
            };
            let wanted = backoff.max(error.retry_after.unwrap_or_default());
            let topology = self.shared.amqp.topology();
            let wanted_ms = u64::try_from(wanted.as_millis()).unwrap_or(u64::MAX);
            let tier = if deferred {
                topology.retry_tier_at_most(wanted_ms)
            } else {
                topology.retry_tier_for(wanted_ms)
            };
            let next_attempt = if deferred { message.attempt } else { message.attempt + 1 };
            let mut table = message.headers.clone();
            headers::insert_str(&mut table, ORIGINAL_ROUTING_KEY, message.routing_key.as_str());
            table.insert(
                headers::ATTEMPT.into(),
                lapin::types::AMQPValue::LongLongInt(i64::from(next_attempt)),
            );
            headers::insert_str(&mut table, "x-last-error", truncate(&error.message, 1_000));
            if let Some(since) = deferred_since {
                headers::insert_str(&mut table, DEFERRED_SINCE, since.to_rfc3339());
            }
            // A new token replaces the old one; a deferral without one (a busy order) keeps
            // what the message held, e.g. a reserved budget slot it has not used yet.
            if let Some(token) = &error.resume_token {
                headers::insert_str(&mut table, RESUME_TOKEN, token.as_str());
            }
            let published = self
                .shared
                .publisher
                .publish(
                    &topology.retry_exchange(),
                    &topology.retry_routing_key(H::NAME, tier),
                    &message.body,
                    self.properties(message, table),
                )
                .await;
            return match published {
                Ok(()) => Disposition::Retried {
                    attempt: next_attempt,
                    delay_ms: tier,
                    deferred,
                    error: error.message,
                },
                Err(publish_error) => {
                    tracing::warn!(%publish_error, "cannot schedule a retry");
                    Disposition::Requeue
                }
            };
        }
        let reason = if error.is_transient() {
            "retries_exhausted"
        } else {
            "permanent_error"
        };
        self.dead_letter(message, reason, &error.message).await
    }

    /// Sends a message to `<ns>.<consumer>.dead` with headers an operator can read.
    pub async fn dead_letter(&self, message: &IncomingMessage, reason: &str, error: &str) -> Disposition {
        let topology = self.shared.amqp.topology();
        let mut table = message.headers.clone();
        headers::insert_str(&mut table, ORIGINAL_ROUTING_KEY, message.routing_key.as_str());
        table.insert(
            headers::ATTEMPT.into(),
            lapin::types::AMQPValue::LongLongInt(i64::from(message.attempt)),
        );
        headers::insert_str(&mut table, headers::DEAD_SERVICE, H::NAME);
        headers::insert_str(&mut table, headers::DEAD_REASON, reason);
        headers::insert_str(&mut table, headers::DEAD_ERROR, truncate(error, 2_000));
        headers::insert_str(&mut table, headers::DEAD_AT, chrono::Utc::now().to_rfc3339());
        let published = self
            .shared
            .publisher
            .publish(
                &topology.dead_exchange(),
                H::NAME,
                &message.body,
                self.properties(message, table),
            )
            .await;
        match published {
            Ok(()) => Disposition::DeadLettered {
                reason: format!("{reason}: {error}"),
            },
            Err(publish_error) => {
                tracing::warn!(%publish_error, "cannot dead-letter");
                Disposition::Requeue
            }
        }
    }

    fn properties(&self, message: &IncomingMessage, table: FieldTable) -> BasicProperties {
        BasicProperties::default()
            .with_message_id(message.message_id.as_str().into())
            .with_correlation_id(message.correlation().as_str().into())
            .with_content_type("application/json".into())
            .with_headers(table)
    }

    /// Consumes until `shutdown`, then stops taking deliveries, finishes those in flight and
    /// returns. Reconnects by itself after broker loss.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) {
        let shared = &self.shared;
        let relay = tokio::spawn(run_relay(
            shared.outbox.clone(),
            Duration::from_millis(shared.settings.relay_interval_ms),
            shared.settings.relay_min_age_ms,
            shared.db_healthy.clone(),
            shutdown.clone(),
        ));
        let tracker = TaskTracker::new();
        let queue = shared.amqp.topology().work_queue(H::NAME);
        'connection: while !shutdown.is_cancelled() {
            let mut ready = shared.amqp.readiness();
            tokio::select! {
                _ = shutdown.cancelled() => break,
                result = ready.wait_for(|r| *r) => if result.is_err() { break },
            }
            let consumer = match self.start_consumer(&queue).await {
                Ok(consumer) => consumer,
                Err(error) => {
                    tracing::warn!(%error, queue, "cannot start consuming; retrying");
                    shared.amqp.report_failure();
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = tokio::time::sleep(Duration::from_millis(500)) => continue,
                    }
                }
            };
            let (channel, mut deliveries) = consumer;
            shared.consuming.store(true, Ordering::Relaxed);
            tracing::info!(queue, "consuming");
            loop {
                tokio::select! {
                    _ = shutdown.cancelled() => {
                        shared.consuming.store(false, Ordering::Relaxed);
                        // Stop new deliveries; unacked prefetched ones return to the queue on close.
                        tracing::info!(in_flight = tracker.len(), "draining");
                        tracker.close();
                        tracker.wait().await;
                        tracing::info!("drained");
                        platform::amqp::close_channel(&channel, "shutting down").await;
                        break 'connection;
                    }
                    delivery = deliveries.next() => match delivery {
                        Some(Ok(delivery)) => {
                            let runtime = self.clone();
                            tracker.spawn(async move { runtime.handle_delivery(delivery).await });
                        }
                        Some(Err(error)) => {
                            tracing::warn!(%error, queue, "consumer failed; reconnecting");
                            break;
                        }
                        None => {
                            tracing::warn!(queue, "consumer cancelled; reconnecting");
                            break;
                        }
                    }
                }
            }
            shared.consuming.store(false, Ordering::Relaxed);
            shared.amqp.report_failure();
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        tracker.close();
        tracker.wait().await;
        relay.abort();
        tracing::info!(consumer = H::NAME, "worker stopped");
    }

    async fn start_consumer(
        &self,
        queue: &str,
    ) -> Result<(lapin::Channel, lapin::Consumer), platform::amqp::AmqpError> {
        let channel = self.shared.amqp.create_channel().await?;
        channel.basic_qos(self.prefetch(), BasicQosOptions::default()).await?;
        let tag = format!("{}-{}", H::NAME, uuid::Uuid::new_v4().simple());
        let consumer = channel
            .basic_consume(
                queue.into(),
                tag.into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        Ok((channel, consumer))
    }

    /// Deliveries taken from the broker before any is settled: the worker slots, plus room for
    /// handlers waiting outside a slot for their rate budget.
    fn prefetch(&self) -> u16 {
        let settings = &self.shared.settings;
        let waiting = if H::WAITS_FOR_RATE_BUDGET {
            settings.max_waiting
        } else {
            0
        };
        settings.concurrency.saturating_add(waiting)
    }

    async fn handle_delivery(&self, delivery: lapin::message::Delivery) {
        let _slot = self.shared.metrics.slot(H::NAME);
        let message = IncomingMessage::from_delivery(&delivery);
        // Every line written while handling the message carries the order's trace id (the
        // correlation id the ingress, reconcile or the warehouse gave it).
        let span = tracing::info_span!(
            "message",
            consumer = H::NAME,
            message_id = %message.message_id,
            trace_id = %message.correlation(),
        );
        platform::otlp::join_trace(&span, &message.correlation());
        self.settle_delivery(delivery, message).instrument(span).await;
    }

    async fn settle_delivery(&self, delivery: lapin::message::Delivery, message: IncomingMessage) {
        let runtime = self.clone();
        let slots = self.shared.slots.clone();
        // A panicking handler is a bug: dead-letter the message instead of crashing the worker.
        let outcome = tokio::spawn(async move { slots.run(runtime.process(message)).await }.in_current_span()).await;
        let disposition = match outcome {
            Ok(disposition) => disposition,
            Err(join_error) => {
                let message = IncomingMessage::from_delivery(&delivery);
                self.dead_letter(&message, "handler_panicked", &join_error.to_string())
                    .await
            }
        };
        let settle = async {
            match disposition {
                Disposition::Requeue => {
                    delivery
                        .acker
                        .nack(BasicNackOptions {
                            requeue: true,
                            ..BasicNackOptions::default()
                        })
                        .await
                }
                _ => delivery.acker.ack(BasicAckOptions::default()).await,
            }
        };
        // Bounded: on a connection that died under it an ack may never complete (as a channel
        // close may not), and a drain at shutdown must not wait for it. Either way the broker
        // redelivers what was not settled, and idempotency absorbs the repeat.
        match tokio::time::timeout(SETTLE_TIMEOUT, settle).await {
            Ok(Ok(_)) => {}
            Ok(Err(error)) => tracing::warn!(%error, "cannot settle a delivery"),
            Err(_) => tracing::warn!(
                timeout_s = SETTLE_TIMEOUT.as_secs(),
                "settling a delivery timed out; the broker will redeliver it"
            ),
        }
    }
}

/// How long acking or nacking a delivery may take before the worker gives up on it.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(5);

/// When the message was first deferred (now, for its first deferral).
fn deferred_since(message: &IncomingMessage) -> chrono::DateTime<chrono::Utc> {
    message
        .header(DEFERRED_SINCE)
        .and_then(|text| chrono::DateTime::parse_from_rfc3339(&text).ok())
        .map_or_else(chrono::Utc::now, |since| since.with_timezone(&chrono::Utc))
}

fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &text[..end])
}
