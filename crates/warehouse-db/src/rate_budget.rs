//! The shared rate-limit budget: one row per Webflow token, read and written by every
//! process and replica, so the sum of their calls stays within the token's limit.
//!
//! Calls are handed evenly spaced slots (a GCRA schedule: each call takes `next_slot` and
//! pushes it by `60 s / limit`), so the budget is used fully during a backlog and no 60-second
//! window holds more than `limit` calls. A 429 pauses the key until `Retry-After`.

use crate::db::Db;
use crate::error::Result;
use chrono::{DateTime, Utc};
use std::time::Duration;

/// A granted slot, or how long until one could be granted within the caller's patience.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Slot {
    /// Call at (or after) this instant.
    At(DateTime<Utc>),
    /// The queue is longer than `max_wait`: come back later.
    Busy { wait: Duration },
}

/// Makes sure the key exists with the configured limit (the configured limit wins at start).
pub async fn ensure<C: Db>(client: &C, key: &str, limit_per_minute: f64) -> Result<()> {
    client
        .execute(
            "INSERT INTO rate_budgets (key, limit_per_minute) VALUES ($1, $2)
             ON CONFLICT (key) DO UPDATE SET limit_per_minute = EXCLUDED.limit_per_minute",
            &[&key, &limit_per_minute],
        )
        .await?;
    Ok(())
}

/// Takes the next slot if it is no further than `max_wait` from now.
pub async fn take_slot<C: Db>(client: &C, key: &str, max_wait: Duration) -> Result<Slot> {
    let max_wait_s = max_wait.as_secs_f64();
    let row = client
        .query_one(
            "WITH current AS (
                 SELECT key, GREATEST(next_slot, clock_timestamp(), COALESCE(paused_until, '-infinity')) AS slot,
                        60.0 / limit_per_minute AS spacing
                 FROM rate_budgets WHERE key = $1 FOR UPDATE
             ), taken AS (
                 UPDATE rate_budgets b SET next_slot = c.slot + make_interval(secs => c.spacing),
                        calls = calls + 1, updated_at = now()
                 FROM current c
                 WHERE b.key = c.key AND c.slot <= clock_timestamp() + make_interval(secs => $2)
                 RETURNING c.slot
             )
             SELECT (SELECT slot FROM taken), (SELECT slot FROM current), clock_timestamp()",
            &[&key, &max_wait_s],
        )
        .await?;
    let taken: Option<DateTime<Utc>> = row.get(0);
    let earliest: Option<DateTime<Utc>> = row.get(1);
    let now: DateTime<Utc> = row.get(2);
    match (taken, earliest) {
        (Some(slot), _) => Ok(Slot::At(slot)),
        (None, Some(earliest)) => Ok(Slot::Busy {
            wait: (earliest - now).to_std().unwrap_or_default(),
        }),
        (None, None) => Err(crate::DbError::MissingRateBudget(key.to_owned())),
    }
}

/// A 429 was answered: nobody calls with this key before `until`.
pub async fn pause<C: Db>(client: &C, key: &str, until: DateTime<Utc>) -> Result<()> {
    client
        .execute(
            "UPDATE rate_budgets SET paused_until = GREATEST(COALESCE(paused_until, '-infinity'), $2),
                    throttled = throttled + 1, updated_at = now() WHERE key = $1",
            &[&key, &until],
        )
        .await?;
    Ok(())
}

/// Webflow said what the limit really is (`X-RateLimit-Limit`): adopt it.
pub async fn adopt_limit<C: Db>(client: &C, key: &str, limit_per_minute: f64) -> Result<()> {
    client
        .execute(
            "UPDATE rate_budgets SET limit_per_minute = $2, updated_at = now()
             WHERE key = $1 AND limit_per_minute <> $2 AND $2 > 0",
            &[&key, &limit_per_minute],
        )
        .await?;
    Ok(())
}

/// (calls, throttled) so far.
pub async fn counters<C: Db>(client: &C, key: &str) -> Result<(i64, i64)> {
    let row = client
        .query_one("SELECT calls, throttled FROM rate_budgets WHERE key = $1", &[&key])
        .await?;
    Ok((row.get(0), row.get(1)))
}
