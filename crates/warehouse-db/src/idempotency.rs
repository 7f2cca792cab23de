//! Per-consumer record of handled messages, written in the handler's transaction.

use crate::db::Db;
use crate::error::Result;

/// Records that `consumer` handled `message_id`. Returns `false` when it already had: the
/// caller must then roll back and acknowledge without a second effect.
pub async fn mark_processed<C: Db>(client: &C, consumer: &str, message_id: &str) -> Result<bool> {
    let inserted = client
        .execute(
            "INSERT INTO processed_messages (consumer, message_id) VALUES ($1, $2) ON CONFLICT DO NOTHING",
            &[&consumer, &message_id],
        )
        .await?;
    Ok(inserted == 1)
}

pub async fn was_processed<C: Db>(client: &C, consumer: &str, message_id: &str) -> Result<bool> {
    let row = client
        .query_opt(
            "SELECT 1 FROM processed_messages WHERE consumer = $1 AND message_id = $2",
            &[&consumer, &message_id],
        )
        .await?;
    Ok(row.is_some())
}
