//! The shared rate-limit budget: one row per Webflow token, read and written by every
//! process and replica, so the sum of their calls stays within the token's limit.
//!
//! Calls are handed evenly spaced slots (a GCRA schedule: each call takes `next_slot` and
//! pushes it by `(60 s + margin) / limit`), so the budget is used fully during a backlog and no
//! 60-second window holds more than `limit` calls. A 429 pauses the key until `Retry-After`.
//!
//! Every decision is taken by one statement (`budget_take`, migration V5) on the database's
//! clock, and returned with that clock's `now`: callers sleep `slot - db_now` as a duration and
//! never compare a slot with their own clock.
//!
//! A slot further away than the caller's horizon is *reserved* (`budget_waits`): the caller
//! defers its message and comes back with the reservation's id (its ticket) to use that slot.

use crate::db::Db;
use crate::error::Result;
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::time::Duration;

/// What `budget_take` decided, with durations measured on the database's clock.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Grant {
    /// Call after `wait` (at most the horizon).
    Slot { wait: Duration },
    /// A slot is reserved `wait` from now; come back with `ticket` before then.
    Reserved { wait: Duration, ticket: i64 },
    /// Nothing within what the caller accepts; the earliest slot is `wait` away. `ticket`
    /// records the wait (for operators), when tracked.
    Busy { wait: Duration, ticket: Option<i64> },
}

/// One call's request for a slot.
#[derive(Debug, Clone)]
pub struct Take<'a> {
    pub key: &'a str,
    pub site_id: &'a str,
    pub priority: &'a str,
    /// A reservation or wait held from an earlier try.
    pub ticket: Option<i64>,
    /// Take (and sleep for) a slot at most this far ahead.
    pub horizon: Duration,
    /// Reserve a slot at most this far ahead (`None`: any distance; zero: never reserve).
    pub reserve_within: Option<Duration>,
    /// Added to every 60-second window, against network jitter between calls.
    pub margin: Duration,
    /// How late a reserved slot may still be used.
    pub grace: Duration,
    /// Record a wait row when busy.
    pub track: bool,
}

/// Makes sure the key exists with the configured limit and the sites it paces (`site_ids`,
/// sorted: the console shows an operator the budgets of their stores). The limit learned from
/// Webflow (`X-RateLimit-Limit`) is kept: a restart does not forget it.
pub async fn ensure<C: Db>(client: &C, key: &str, limit_per_minute: f64, site_ids: &[String]) -> Result<()> {
    let mut site_ids = site_ids.to_vec();
    site_ids.sort_unstable();
    site_ids.dedup();
    client
        .execute(
            "INSERT INTO rate_budgets (key, configured_limit, site_ids) VALUES ($1, $2, $3)
             ON CONFLICT (key) DO UPDATE SET configured_limit = EXCLUDED.configured_limit,
                                             site_ids = EXCLUDED.site_ids",
            &[&key, &limit_per_minute, &site_ids],
        )
        .await?;
    Ok(())
}

/// Clears the sites of every budget not in `keys`: a token no store uses any more (changed, or
/// its last store removed) paces nothing, so the console shows it to no scoped operator.
pub async fn forget_sites_except<C: Db>(client: &C, keys: &[String]) -> Result<()> {
    client
        .execute(
            "UPDATE rate_budgets SET site_ids = '{}' WHERE site_ids <> '{}' AND NOT (key = ANY($1))",
            &[&keys],
        )
        .await?;
    Ok(())
}

fn until(from: DateTime<Utc>, to: DateTime<Utc>) -> Duration {
    (to - from).to_std().unwrap_or_default()
}

/// Takes, reserves or declines a slot (see [`Grant`]).
pub async fn take<C: Db>(client: &C, take: &Take<'_>) -> Result<Grant> {
    let reserve_within = take.reserve_within.map(|d| d.as_secs_f64());
    let row = client
        .query_one(
            "SELECT outcome, slot, ticket, db_now FROM budget_take($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            &[
                &take.key,
                &take.site_id,
                &take.priority,
                &take.ticket,
                &take.horizon.as_secs_f64(),
                &reserve_within,
                &take.margin.as_secs_f64(),
                &take.grace.as_secs_f64(),
                &take.track,
            ],
        )
        .await?;
    let outcome: String = row.get(0);
    let slot: Option<DateTime<Utc>> = row.get(1);
    let ticket: Option<i64> = row.get(2);
    let now: DateTime<Utc> = row.get(3);
    let wait = slot.map(|s| until(now, s)).unwrap_or_default();
    match (outcome.as_str(), ticket) {
        ("slot", _) => Ok(Grant::Slot { wait }),
        ("reserved", Some(ticket)) => Ok(Grant::Reserved { wait, ticket }),
        ("busy", ticket) => Ok(Grant::Busy { wait, ticket }),
        _ => Err(crate::DbError::MissingRateBudget(take.key.to_owned())),
    }
}

/// How long the key is still paused (zero when it is not), on the database's clock: checked
/// right before a call by a caller that slept for its slot.
pub async fn paused_for<C: Db>(client: &C, key: &str) -> Result<Duration> {
    let row = client
        .query_one(
            "SELECT paused_until, clock_timestamp() FROM rate_budgets WHERE key = $1",
            &[&key],
        )
        .await?;
    let paused: Option<DateTime<Utc>> = row.get(0);
    let now: DateTime<Utc> = row.get(1);
    Ok(paused.map(|p| until(now, p)).unwrap_or_default())
}

/// A 429 was answered: nobody calls with this key for `retry_after` (from the database's now).
pub async fn pause<C: Db>(client: &C, key: &str, retry_after: Duration) -> Result<()> {
    client
        .execute(
            "UPDATE rate_budgets SET paused_until = GREATEST(COALESCE(paused_until, '-infinity'),
                        clock_timestamp() + make_interval(secs => $2)),
                    throttled = throttled + 1, updated_at = now() WHERE key = $1",
            &[&key, &retry_after.as_secs_f64()],
        )
        .await?;
    Ok(())
}

/// Webflow said what the limit really is (`X-RateLimit-Limit`): remember it, across restarts.
pub async fn adopt_limit<C: Db>(client: &C, key: &str, limit_per_minute: f64) -> Result<()> {
    client
        .execute(
            "UPDATE rate_budgets SET learned_limit = $2, updated_at = now()
             WHERE key = $1 AND learned_limit IS DISTINCT FROM $2 AND $2 > 0",
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

/// One budget as operators see it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct BudgetStatus {
    pub key: String,
    pub configured_limit: f64,
    pub learned_limit: Option<f64>,
    /// The limit in force: the learned one when Webflow has told us.
    pub limit: f64,
    /// How far ahead the schedule is booked (0: idle).
    pub booked_ahead_secs: f64,
    pub paused_for_secs: f64,
    pub calls: i64,
    pub throttled: i64,
    /// Calls in the current minute bucket and in the previous one.
    pub calls_this_minute: i32,
    pub calls_last_minute: i32,
}

/// Work waiting for one key's budget, for one site.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct WaitStatus {
    pub key: String,
    pub site_id: String,
    /// Reserved slots not used yet.
    pub reserved: i64,
    /// Deferred without a reservation.
    pub deferred: i64,
    /// Age of the oldest waiting item.
    pub oldest_wait_secs: Option<f64>,
}

pub async fn status<C: Db>(client: &C, keys: &[String]) -> Result<(Vec<BudgetStatus>, Vec<WaitStatus>)> {
    let budgets = client
        .query(
            "SELECT key, configured_limit, learned_limit, COALESCE(learned_limit, configured_limit),
                    GREATEST(0, EXTRACT(EPOCH FROM next_slot - clock_timestamp()))::float8,
                    GREATEST(0, COALESCE(EXTRACT(EPOCH FROM paused_until - clock_timestamp()), 0))::float8,
                    calls, throttled,
                    CASE WHEN clock_timestamp() - minute_started < interval '60 seconds' THEN minute_calls ELSE 0 END,
                    CASE WHEN clock_timestamp() - minute_started < interval '60 seconds' THEN last_minute_calls
                         WHEN clock_timestamp() - minute_started < interval '120 seconds' THEN minute_calls
                         ELSE 0 END
             FROM rate_budgets WHERE key = ANY($1) ORDER BY key",
            &[&keys],
        )
        .await?
        .into_iter()
        .map(|row| BudgetStatus {
            key: row.get(0),
            configured_limit: row.get(1),
            learned_limit: row.get(2),
            limit: row.get(3),
            booked_ahead_secs: row.get(4),
            paused_for_secs: row.get(5),
            calls: row.get(6),
            throttled: row.get(7),
            calls_this_minute: row.get(8),
            calls_last_minute: row.get(9),
        })
        .collect();
    let waits = client
        .query(
            "SELECT key, site_id, count(slot), count(*) - count(slot),
                    EXTRACT(EPOCH FROM clock_timestamp() - min(waiting_since))::float8
             FROM budget_waits WHERE key = ANY($1)
               -- Abandoned waits, which `budget_take` sweeps only when a call must wait (V11).
               AND NOT ((slot IS NOT NULL AND slot < clock_timestamp() - interval '10 minutes')
                        OR (slot IS NULL AND updated_at < clock_timestamp() - interval '30 minutes'))
             GROUP BY key, site_id ORDER BY key, site_id",
            &[&keys],
        )
        .await?
        .into_iter()
        .map(|row| WaitStatus {
            key: row.get(0),
            site_id: row.get(1),
            reserved: row.get(2),
            deferred: row.get(3),
            oldest_wait_secs: row.get(4),
        })
        .collect();
    Ok((budgets, waits))
}
