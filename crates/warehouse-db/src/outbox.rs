//! The transactional outbox: events are inserted with the state change and published after
//! commit; anything left unpublished by a crash is published by the relay.

use crate::db::Db;
use crate::error::Result;
use domain::Envelope;

#[derive(Debug, Clone)]
pub struct OutboxMessage {
    pub id: i64,
    pub message_id: String,
    pub routing_key: String,
    pub payload: serde_json::Value,
}

/// Writes an event; a second write of the same message id is a no-op.
pub async fn enqueue<C: Db>(client: &C, envelope: &Envelope, source: Option<(&str, &str)>) -> Result<()> {
    let payload = serde_json::to_value(envelope).map_err(|e| crate::DbError::Serialize {
        what: "an event",
        message: e.to_string(),
    })?;
    let (source_consumer, source_message_id) = source.unzip();
    client
        .execute(
            "INSERT INTO outbox (message_id, routing_key, payload, source_consumer, source_message_id)
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (message_id) DO NOTHING",
            &[
                &envelope.message_id.as_str(),
                &envelope.event.routing_key(),
                &payload,
                &source_consumer,
                &source_message_id,
            ],
        )
        .await?;
    Ok(())
}

/// How long a claim keeps other relays off a row (a relay that dies mid-batch leaves its rows
/// to be published again after this).
pub const CLAIM_SECS: f64 = 30.0;

/// Claims up to `limit` unpublished messages that are due (skipping rows another relay is
/// claiming), optionally only those produced while handling one source message, and only
/// those older than `min_age_ms` (so the relay leaves fresh rows to the handler that wrote
/// them). One statement, committed on its own: no transaction stays open while the caller
/// publishes. A claimed row is not due again for [`CLAIM_SECS`].
pub async fn claim_unpublished<C: Db>(
    client: &C,
    source: Option<(&str, &str)>,
    min_age_ms: i64,
    limit: i64,
) -> Result<Vec<OutboxMessage>> {
    let (consumer, message_id) = source.unzip();
    let rows = client
        .query(
            "WITH due AS (
                 SELECT id FROM outbox
                 WHERE published_at IS NULL AND next_attempt_at <= now()
                   AND ($1::text IS NULL OR (source_consumer = $1 AND source_message_id = $2))
                   AND created_at <= now() - make_interval(secs => $3::double precision / 1000.0)
                 ORDER BY id LIMIT $4 FOR UPDATE SKIP LOCKED)
             UPDATE outbox SET next_attempt_at = now() + make_interval(secs => $5::double precision)
             FROM due WHERE outbox.id = due.id
             RETURNING outbox.id, outbox.message_id, outbox.routing_key, outbox.payload",
            &[&consumer, &message_id, &(min_age_ms as f64), &limit, &CLAIM_SECS],
        )
        .await?;
    let mut messages: Vec<OutboxMessage> = rows
        .iter()
        .map(|r| OutboxMessage {
            id: r.get(0),
            message_id: r.get(1),
            routing_key: r.get(2),
            payload: r.get(3),
        })
        .collect();
    messages.sort_by_key(|m| m.id);
    Ok(messages)
}

/// Gives claimed rows back at once (the broker was unreachable: no attempt is counted).
pub async fn unclaim<C: Db>(client: &C, ids: &[i64]) -> Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    client
        .execute(
            "UPDATE outbox SET next_attempt_at = now() WHERE id = ANY($1) AND published_at IS NULL",
            &[&ids],
        )
        .await?;
    Ok(())
}

/// Counts a failed publish of one row and puts it off (2^attempts s, at most 5 min), so it
/// is retried later without holding back the others.
pub async fn record_failure<C: Db>(client: &C, id: i64, error: &str) -> Result<()> {
    client
        .execute(
            "UPDATE outbox SET attempts = attempts + 1, last_error = $2,
                    next_attempt_at = now() + make_interval(secs => LEAST(power(2, attempts), 300))
             WHERE id = $1",
            &[&id, &error],
        )
        .await?;
    Ok(())
}

pub async fn mark_published<C: Db>(client: &C, ids: &[i64]) -> Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    client
        .execute("UPDATE outbox SET published_at = now() WHERE id = ANY($1)", &[&ids])
        .await?;
    Ok(())
}

/// Marks events published by message id (batched marks from the publisher; rows already
/// marked are left alone).
pub async fn mark_published_by_message_id<C: Db>(client: &C, message_ids: &[String]) -> Result<()> {
    client
        .execute(
            "UPDATE outbox SET published_at = now() WHERE message_id = ANY($1) AND published_at IS NULL",
            &[&message_ids],
        )
        .await?;
    Ok(())
}

/// Events not published yet and the age of the oldest (seconds; 0 when none): the outbox
/// backlog. Served by the partial index on unpublished rows.
pub async fn backlog<C: Db>(client: &C) -> Result<(i64, f64)> {
    let row = client
        .query_one(
            "SELECT count(*), COALESCE(EXTRACT(EPOCH FROM now() - min(created_at))::float8, 0)
             FROM outbox WHERE published_at IS NULL",
            &[],
        )
        .await?;
    Ok((row.get(0), row.get(1)))
}
