//! Publishing what the outbox holds: right after a handler commits, and from the relay for
//! anything a crash left behind.

use platform::amqp::contract;
use platform::amqp::{PublishError, Publisher, Topology};
use std::time::Duration;
use tokio::sync::mpsc;
use warehouse_db::Pool;
use warehouse_db::outbox::{self, OutboxMessage};

#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    #[error(transparent)]
    Db(#[from] warehouse_db::DbError),
    #[error(transparent)]
    Pool(#[from] warehouse_db::pool::PoolError),
    #[error(transparent)]
    Postgres(#[from] tokio_postgres::Error),
    #[error(transparent)]
    Publish(#[from] PublishError),
}

/// Publishes of one batch whose confirms are awaited together.
const CONFIRMS_IN_FLIGHT: usize = 64;

/// Marks published events in batches, off the message path: one UPDATE (and one commit) for
/// whatever was published in the last `MARK_LINGER`, instead of one per message. Delay is
/// harmless: the relay only takes events older than `relay_min_age_ms` (seconds), and an event
/// published twice is deduplicated by its consumers.
async fn record_published(pool: Pool, mut marks: mpsc::UnboundedReceiver<String>) {
    const MAX_BATCH: usize = 1_000;
    // Measured: without it, batches averaged ~2 events under load (a commit per two orders).
    const MARK_LINGER: Duration = Duration::from_millis(20);
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = marks.recv().await {
        batch.push(first);
        tokio::time::sleep(MARK_LINGER).await;
        while batch.len() < MAX_BATCH {
            match marks.try_recv() {
                Ok(id) => batch.push(id),
                Err(_) => break,
            }
        }
        let marked = async {
            let client = pool.get().await?;
            outbox::mark_published_by_message_id(&*client, &batch).await?;
            Ok::<_, OutboxError>(())
        };
        if let Err(error) = marked.await {
            tracing::warn!(%error, events = batch.len(), "cannot mark events published; the relay will publish them again");
        }
        batch.clear();
    }
}

/// Publishes outbox events (to the events exchange) with confirms.
#[derive(Clone)]
pub struct OutboxPublisher {
    pool: Pool,
    publisher: Publisher,
    topology: Topology,
    app_id: String,
    /// Message ids of events just published, for [`record_published`] to mark.
    published: mpsc::UnboundedSender<String>,
}

impl OutboxPublisher {
    /// Must be called inside a Tokio runtime: it starts the task that marks events published.
    pub fn new(pool: Pool, publisher: Publisher, topology: Topology, app_id: impl Into<String>) -> Self {
        let (published, marks) = mpsc::unbounded_channel();
        tokio::spawn(record_published(pool.clone(), marks));
        Self {
            pool,
            publisher,
            topology,
            app_id: app_id.into(),
            published,
        }
    }

    /// Publishes the unpublished events that handling `source` produced. Returns how many.
    pub async fn publish_for(&self, consumer: &str, source_message_id: &str) -> Result<usize, OutboxError> {
        self.publish_batch(Some((consumer, source_message_id)), 0, 1_000).await
    }

    /// Publishes events the caller has just committed to the outbox; they are marked published
    /// in the background. Skips the claim transaction of [`Self::publish_for`]: the rows are
    /// fresh, so the relay (which only takes rows older than `relay_min_age_ms`) leaves them
    /// alone. Up to [`CONFIRMS_IN_FLIGHT`] publishes wait for their confirms together (a batch
    /// costs about one broker round trip, not one per event); the first failure is returned,
    /// after the others were tried.
    pub async fn publish_committed(&self, events: &[domain::Envelope]) -> Result<usize, OutboxError> {
        let messages: Vec<OutboxMessage> = events
            .iter()
            .map(|event| OutboxMessage {
                id: 0,
                message_id: event.message_id.to_string(),
                routing_key: event.event.routing_key().to_owned(),
                payload: serde_json::to_value(event).unwrap_or_default(),
            })
            .collect();
        for chunk in messages.chunks(CONFIRMS_IN_FLIGHT) {
            let outcomes = futures_util::future::join_all(chunk.iter().map(|m| self.publish_and_mark(m))).await;
            outcomes.into_iter().collect::<Result<Vec<()>, _>>()?;
        }
        Ok(events.len())
    }

    /// Publishes a fresh event and hands it to [`record_published`].
    async fn publish_and_mark(&self, message: &OutboxMessage) -> Result<(), PublishError> {
        self.publish(message).await?;
        // A mark that never lands only means the relay publishes the event again, and
        // consumers dedupe it by message id.
        let _ = self.published.send(message.message_id.clone());
        Ok(())
    }

    /// Publishes up to `limit` events older than `min_age_ms` (the relay). Returns how many.
    pub async fn relay_once(&self, min_age_ms: i64, limit: i64) -> Result<usize, OutboxError> {
        self.publish_batch(None, min_age_ms, limit).await
    }

    /// Claims due rows (committed at once), publishes each with its own confirm, and marks
    /// the published ones. No transaction is open across the broker round trips, and a row
    /// the broker refuses is counted and put off (`outbox::record_failure`) while the others
    /// go on; only an unreachable broker stops the batch (its rows are given back).
    async fn publish_batch(
        &self,
        source: Option<(&str, &str)>,
        min_age_ms: i64,
        limit: i64,
    ) -> Result<usize, OutboxError> {
        let messages = {
            let client = self.pool.get().await?;
            outbox::claim_unpublished(&*client, source, min_age_ms, limit).await?
        };
        if messages.is_empty() {
            return Ok(0);
        }
        let mut published = Vec::with_capacity(messages.len());
        let mut failed = 0usize;
        let mut outcome = Ok(());
        for (index, message) in messages.iter().enumerate() {
            match self.publish(message).await {
                Ok(()) => published.push(message.id),
                Err(error @ (PublishError::Unavailable | PublishError::Timeout(_))) => {
                    let rest: Vec<i64> = messages[index..].iter().map(|m| m.id).collect();
                    let client = self.pool.get().await?;
                    outbox::unclaim(&*client, &rest).await?;
                    outcome = Err(error);
                    break;
                }
                Err(error) => {
                    failed += 1;
                    tracing::warn!(
                        message_id = %message.message_id,
                        routing_key = %message.routing_key,
                        %error,
                        "outbox event not published; retried later, the others go on"
                    );
                    let client = self.pool.get().await?;
                    outbox::record_failure(&*client, message.id, &error.to_string()).await?;
                }
            }
        }
        if !published.is_empty() {
            let client = self.pool.get().await?;
            outbox::mark_published(&*client, &published).await?;
        }
        if failed > 0 {
            tracing::warn!(
                failed,
                published = published.len(),
                "outbox batch had rows the broker refused"
            );
        }
        outcome?;
        Ok(published.len())
    }

    async fn publish(&self, message: &OutboxMessage) -> Result<(), PublishError> {
        let body = serde_json::to_vec(&message.payload).unwrap_or_default();
        let site_id = message.payload.get("site_id").and_then(|s| s.as_str());
        let correlation = message
            .payload
            .get("correlation_id")
            .and_then(|c| c.as_str())
            .unwrap_or_default();
        let properties = contract::event_properties(&message.message_id, correlation, site_id, &self.app_id, None);
        // An event nobody subscribes to (yet) is a fact with no audience, not a failure.
        let mandatory = self.topology.is_consumed(&message.routing_key);
        self.publisher
            .publish_with(
                &self.topology.events_exchange(),
                &message.routing_key,
                &body,
                properties,
                mandatory,
            )
            .await
    }
}

/// Runs the relay until `shutdown`.
pub async fn run_relay(
    outbox: OutboxPublisher,
    interval: Duration,
    min_age_ms: i64,
    db_healthy: std::sync::Arc<std::sync::atomic::AtomicBool>,
    shutdown: tokio_util::sync::CancellationToken,
) {
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = ticker.tick() => {}
        }
        match outbox.relay_once(min_age_ms, 200).await {
            Ok(count) => {
                db_healthy.store(true, std::sync::atomic::Ordering::Relaxed);
                if count > 0 {
                    tracing::info!(count, "outbox relay published events left behind");
                }
            }
            Err(error) => {
                if matches!(
                    error,
                    OutboxError::Pool(_) | OutboxError::Postgres(_) | OutboxError::Db(_)
                ) {
                    db_healthy.store(false, std::sync::atomic::Ordering::Relaxed);
                }
                tracing::warn!(%error, "outbox relay failed; will retry");
            }
        }
    }
}
