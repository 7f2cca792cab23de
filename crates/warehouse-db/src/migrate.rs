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

/// Runs a deployment's SQL script (the services' grants on what the migrations created) in one
/// transaction, as the schema owner: all of it or none.
pub async fn run_script(pool: &Pool, sql: &str) -> Result<()> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    tx.batch_execute(sql).await?;
    tx.commit().await?;
    Ok(())
}

/// The newest migration this build embeds.
pub fn expected_version() -> i32 {
    embedded::migrations::runner()
        .get_migrations()
        .iter()
        .map(|m| m.version())
        .max()
        .unwrap_or(0)
}

/// The newest migration applied to the database (0 before the first).
pub async fn applied_version(pool: &Pool) -> Result<i32> {
    let client = pool.get().await?;
    let history = client
        .query_one("SELECT to_regclass('refinery_schema_history') IS NOT NULL", &[])
        .await?;
    if !history.get::<_, bool>(0) {
        return Ok(0);
    }
    let row = client
        .query_one("SELECT COALESCE(MAX(version), 0) FROM refinery_schema_history", &[])
        .await?;
    Ok(row.get(0))
}

/// Waits until the migrations (applied by someone else: the migration Job) reach the version
/// this build needs, checking every second; an error after `timeout`. A newer schema is fine:
/// migrations only add.
pub async fn wait_for_schema(pool: &Pool, timeout: std::time::Duration) -> Result<i32> {
    let expected = expected_version();
    let deadline = tokio::time::Instant::now() + timeout;
    let mut logged = false;
    loop {
        let applied = applied_version(pool).await?;
        if applied >= expected {
            return Ok(applied);
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(DbError::Migration(format!(
                "the schema is at version {applied}, this build needs {expected}; run the migrations \
                 (`wmsctl migrate`, the migrate Job) or set database.migrate_on_start = true"
            )));
        }
        if !logged {
            tracing::info!(applied, expected, "waiting for the database migrations");
            logged = true;
        }
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
}

#[cfg(test)]
mod tests {
    /// Versions run 1, 2, … with no gap and no repeat: refinery refuses to start on a database
    /// that has a newer migration than one it has not applied (`abort_missing`), so two branches
    /// that each took a number must be renumbered into one sequence before they ship.
    #[test]
    fn migrations_are_numbered_without_gaps() {
        let mut versions: Vec<i32> = super::embedded::migrations::runner()
            .get_migrations()
            .iter()
            .map(|m| m.version())
            .collect();
        versions.sort_unstable();
        let expected: Vec<i32> = (1..=i32::try_from(versions.len()).unwrap_or(i32::MAX)).collect();
        assert_eq!(versions, expected, "renumber the newest migrations into one sequence");
    }
}
