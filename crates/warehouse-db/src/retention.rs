//! Pruning (the `prune` job, crates/retention): one bounded batch per call, each its own short
//! statement. Rows another pruner holds are skipped (`FOR UPDATE SKIP LOCKED`), so two runs at
//! once share the work instead of waiting; no statement locks a table, and every batch reads
//! the oldest rows through the index migration V13 added.

use crate::db::Db;
use crate::error::Result;
use chrono::{DateTime, Utc};

/// What a batch prunes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PrunedTable {
    /// The consumers' dedupe records.
    ProcessedMessages,
    /// Outbox rows already published (unpublished rows are never deleted, whatever their age).
    PublishedOutbox,
    /// Audit entries, through `prune_audit_log` (the only way to delete one).
    AuditLog,
}

impl PrunedTable {
    pub const ALL: [Self; 3] = [Self::ProcessedMessages, Self::PublishedOutbox, Self::AuditLog];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::ProcessedMessages => "processed_messages",
            Self::PublishedOutbox => "outbox",
            Self::AuditLog => "audit_log",
        }
    }
}

/// Deletes at most `max_rows` rows of `table` older than `before`; returns how many it deleted.
pub async fn prune_batch<C: Db>(client: &C, table: PrunedTable, before: DateTime<Utc>, max_rows: i32) -> Result<u64> {
    match table {
        PrunedTable::ProcessedMessages => Ok(client
            .execute(
                "WITH doomed AS (
                     SELECT consumer, message_id FROM processed_messages
                      WHERE processed_at < $1
                      ORDER BY processed_at
                      LIMIT $2
                      FOR UPDATE SKIP LOCKED
                 )
                 DELETE FROM processed_messages p USING doomed
                  WHERE p.consumer = doomed.consumer AND p.message_id = doomed.message_id",
                &[&before, &i64::from(max_rows)],
            )
            .await?),
        PrunedTable::PublishedOutbox => Ok(client
            .execute(
                "WITH doomed AS (
                     SELECT id FROM outbox
                      WHERE published_at IS NOT NULL AND published_at < $1
                      ORDER BY published_at
                      LIMIT $2
                      FOR UPDATE SKIP LOCKED
                 )
                 DELETE FROM outbox o USING doomed
                  WHERE o.id = doomed.id AND o.published_at IS NOT NULL",
                &[&before, &i64::from(max_rows)],
            )
            .await?),
        PrunedTable::AuditLog => {
            let row = client
                .query_one("SELECT prune_audit_log($1, $2)", &[&before, &max_rows])
                .await?;
            Ok(u64::try_from(row.get::<_, i64>(0)).unwrap_or_default())
        }
    }
}

/// Rows, and the size on disk (table, indexes and TOAST) in bytes, of a table pruning bounds:
/// for the prune job's summary and the soak benchmark.
pub async fn table_size<C: Db>(client: &C, table: PrunedTable) -> Result<(i64, i64)> {
    let row = client
        .query_one(
            "SELECT c.reltuples::bigint, pg_total_relation_size(c.oid)
               FROM pg_class c WHERE c.oid = to_regclass($1)",
            &[&table.as_str()],
        )
        .await?;
    Ok((row.get::<_, i64>(0).max(0), row.get(1)))
}

/// `VACUUM (SKIP_LOCKED, ANALYZE)` of `table` after a prune, so the space of the deleted rows is
/// reused at once instead of after autovacuum's thresholds (or never, where autovacuum is off).
/// It takes no lock that blocks reads or writes, and skips the table if another vacuum holds it.
/// Only the table's owner (or, from PostgreSQL 17, a role with MAINTAIN) may: for another role,
/// PostgreSQL skips it with a warning and autovacuum does it later. Simple query protocol:
/// VACUUM cannot run in the implicit transaction of a prepared statement.
pub async fn vacuum(client: &tokio_postgres::Client, table: PrunedTable) -> Result<()> {
    client
        .batch_execute(&format!("VACUUM (SKIP_LOCKED, ANALYZE) {}", table.as_str()))
        .await?;
    Ok(())
}
