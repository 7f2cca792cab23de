//! Versioned SQL migrations (refinery), applied under a PostgreSQL advisory lock so that
//! several replicas starting at once apply each migration exactly once.

use crate::error::{DbError, Result};
use crate::pool::Pool;

mod embedded {
    refinery::embed_migrations!("migrations");
}

/// An arbitrary constant: the advisory lock key for migrations.
const MIGRATION_LOCK_KEY: i64 = 0x574d_535f_4d49_4752; // "WMS_MIGR"

/// Applies pending migrations; returns how many were applied.
pub async fn run(pool: &Pool) -> Result<usize> {
    let mut client = pool.get().await?;
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK_KEY])
        .await?;
    let outcome = embedded::migrations::runner().run_async(&mut **client).await;
    // Unlock even when the migration failed; the session would release it on close anyway.
    let _ = client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK_KEY])
        .await;
    let report = outcome.map_err(|e| DbError::Migration(e.to_string()))?;
    let applied = report.applied_migrations().len();
    if applied > 0 {
        tracing::info!(applied, "database migrations applied");
    }
    Ok(applied)
}
