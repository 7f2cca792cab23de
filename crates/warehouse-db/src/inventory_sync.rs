//! Stock levels pushed back to the Webflow stores (issue 17): per (site, SKU) the SKU's Webflow
//! id, whether its count changed since Webflow last matched it, what was pushed and when, and
//! what Webflow last said.
//!
//! A store syncs its merchant's stock: each row carries the merchant of its store (migration
//! V17) and is joined to that merchant's inventory row only.
//!
//! Rows are marked dirty by a trigger on `inventory` in the transaction that changes a SKU's
//! available count (migrations V8, V17: the rows of that merchant's stores), so no change is lost across crashes. The sync loop claims
//! due rows (dirty, not pushed within the interval) with `FOR UPDATE SKIP LOCKED` in one
//! committed statement (a claim keeps other replicas off the row for a while), pushes, and
//! records the result; a row whose count changed meanwhile (`change_seq`) stays dirty. A claim
//! carries a token (migration V9): results are recorded only under it, and a loop whose claim
//! lapsed and was taken marks the row dirty instead of clean.

use crate::db::Db;
use crate::error::Result;
use chrono::{DateTime, Utc};
use domain::{SiteId, Sku};
use serde::Serialize;
use std::time::Duration;
use uuid::Uuid;

/// What Webflow should show for a SKU: the available count less the buffer, never below 0.
const DESIRED: &str = "GREATEST(COALESCE(i.on_hand - i.reserved, 0) - s.safety_buffer, 0)";

/// A site whose rows a sync loop may claim, with its buffer.
#[derive(Debug, Clone)]
pub struct SyncSite {
    pub site_id: SiteId,
    pub safety_buffer: i64,
}

/// A row claimed for a push.
#[derive(Debug, Clone, PartialEq)]
pub struct Claimed {
    pub site_id: SiteId,
    pub sku: Sku,
    pub webflow_sku_id: String,
    /// The count this claim saw; the row stays dirty if it changed by the time the push is
    /// recorded.
    pub change_seq: i64,
    /// What Webflow should show now (available less the buffer, never below 0).
    pub desired: i64,
    /// What Webflow last said (finite level), if anything.
    pub webflow_level: Option<i64>,
    pub webflow_type: Option<String>,
    /// `webflow_level` is the answer to our own last PATCH (not a webhook's word).
    pub webflow_from_push: bool,
    /// This claim: results are recorded only while the row still carries it.
    pub token: Uuid,
}

impl Claimed {
    /// Webflow already shows the level: our own last PATCH set it, and nothing newer said
    /// otherwise. A webhook's level never counts here: it may be a late echo of an older push.
    pub fn in_step(&self) -> bool {
        self.webflow_from_push
            && self.webflow_type.as_deref() == Some("finite")
            && self.webflow_level == Some(self.desired)
    }
}

const CLAIMED_COLUMNS: &str = "s.site_id, s.sku, s.webflow_sku_id, s.change_seq, {DESIRED}, s.webflow_level, s.webflow_type, s.webflow_from_push, s.claim_token";

fn claimed_row(row: &tokio_postgres::Row) -> Claimed {
    Claimed {
        site_id: row.get(0),
        sku: row.get(1),
        webflow_sku_id: row.get(2),
        change_seq: row.get(3),
        desired: row.get(4),
        webflow_level: row.get(5),
        webflow_type: row.get(6),
        webflow_from_push: row.get(7),
        token: row.get(8),
    }
}

fn claimed_columns() -> String {
    CLAIMED_COLUMNS.replace("{DESIRED}", DESIRED)
}

/// Claims up to `limit` due rows of `site`: dirty, of a SKU the warehouse holds, not pushed
/// within `min_interval`, not claimed by another loop. The claim (a fresh token) lasts
/// `claim_for`; [`renew`] it before each push.
pub async fn claim<C: Db>(
    client: &C,
    site: &SyncSite,
    min_interval: Duration,
    limit: i64,
    claim_for: Duration,
) -> Result<Vec<Claimed>> {
    let sql = format!(
        "WITH due AS (
             SELECT s.site_id, s.sku FROM inventory_sync s JOIN inventory i ON i.merchant_id = s.merchant_id AND i.sku = s.sku
             WHERE s.site_id = $1 AND s.dirty_since IS NOT NULL
               AND (s.claimed_until IS NULL OR s.claimed_until < clock_timestamp())
               AND (s.last_pushed_at IS NULL
                    OR s.last_pushed_at <= clock_timestamp() - make_interval(secs => $2))
             ORDER BY s.dirty_since, s.sku
             LIMIT $3
             FOR UPDATE OF s SKIP LOCKED)
         UPDATE inventory_sync s
             SET claimed_until = clock_timestamp() + make_interval(secs => $4), safety_buffer = $5,
                 claim_token = $6
         FROM due, inventory i
         WHERE s.site_id = due.site_id AND s.sku = due.sku AND i.merchant_id = s.merchant_id AND i.sku = s.sku
         RETURNING {}",
        claimed_columns()
    );
    let rows = client
        .query(
            &sql,
            &[
                &site.site_id,
                &min_interval.as_secs_f64(),
                &limit,
                &claim_for.as_secs_f64(),
                &site.safety_buffer,
                &Uuid::new_v4(),
            ],
        )
        .await?;
    Ok(rows.iter().map(claimed_row).collect())
}

/// Right before a push: extends `claimed`'s claim by `hold_for` and re-reads the row (the
/// level to push now, what Webflow last said). `None` when the claim was lost (it lapsed and
/// another loop took the row): then do not push.
pub async fn renew<C: Db>(client: &C, claimed: &Claimed, hold_for: Duration) -> Result<Option<Claimed>> {
    let sql = format!(
        "UPDATE inventory_sync s SET claimed_until = clock_timestamp() + make_interval(secs => $4)
         FROM inventory i
         WHERE s.site_id = $1 AND s.sku = $2 AND s.claim_token = $3 AND i.merchant_id = s.merchant_id AND i.sku = s.sku
         RETURNING {}",
        claimed_columns()
    );
    let row = client
        .query_opt(
            &sql,
            &[&claimed.site_id, &claimed.sku, &claimed.token, &hold_for.as_secs_f64()],
        )
        .await?;
    Ok(row.as_ref().map(claimed_row))
}

/// Gives a claimed row back untouched (no budget slot now): still dirty, due at once. Nothing
/// when the claim was lost (the row is another loop's now).
pub async fn release<C: Db>(client: &C, claimed: &Claimed) -> Result<()> {
    client
        .execute(
            "UPDATE inventory_sync SET claimed_until = NULL, claim_token = NULL
             WHERE site_id = $1 AND sku = $2 AND claim_token = $3",
            &[&claimed.site_id, &claimed.sku, &claimed.token],
        )
        .await?;
    Ok(())
}

/// What Webflow answered to a push.
#[derive(Debug, Clone, PartialEq)]
pub struct Pushed {
    pub level: i64,
    pub webflow_level: Option<i64>,
    pub webflow_type: Option<String>,
    /// When the PATCH was sent: webhooks received before it are older news.
    pub sent_at: DateTime<Utc>,
}

/// How a result was recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// Under this loop's claim.
    Claimed,
    /// The claim had lapsed and another loop took the row: the row was marked dirty (and its
    /// Webflow level unknown), so the newest level is pushed again; nothing marked clean.
    ClaimLost,
}

/// A push landed, or may have, outside a claim still held: whatever Webflow shows now is
/// unknown, so the row is dirty (a new `change_seq`, so a concurrent recorder does not mark it
/// clean either) and no level of ours counts as in step.
async fn mark_unsure<C: Db>(client: &C, site_id: &SiteId, sku: &Sku) -> Result<()> {
    client
        .execute(
            "UPDATE inventory_sync SET dirty_since = COALESCE(dirty_since, clock_timestamp()),
                 change_seq = change_seq + 1, webflow_from_push = false
             WHERE site_id = $1 AND sku = $2",
            &[site_id, sku],
        )
        .await?;
    Ok(())
}

/// Records a push of `claimed`'s level. The row stays dirty if its count changed meanwhile;
/// it is marked dirty when the claim was lost meanwhile.
pub async fn record_push<C: Db>(client: &C, claimed: &Claimed, pushed: &Pushed) -> Result<Recorded> {
    let updated = client
        .execute(
            "UPDATE inventory_sync SET
                 last_pushed_level = $3, last_pushed_at = clock_timestamp(), pushes = pushes + 1,
                 last_push_sent_at = $8,
                 webflow_level = $4, webflow_type = $5, webflow_seen_at = clock_timestamp(),
                 webflow_from_push = true,
                 dirty_since = CASE WHEN change_seq = $6 THEN NULL ELSE dirty_since END,
                 claimed_until = NULL, claim_token = NULL, last_error = NULL
             WHERE site_id = $1 AND sku = $2 AND claim_token = $7",
            &[
                &claimed.site_id,
                &claimed.sku,
                &pushed.level,
                &pushed.webflow_level,
                &pushed.webflow_type,
                &claimed.change_seq,
                &claimed.token,
                &pushed.sent_at,
            ],
        )
        .await?;
    if updated == 1 {
        return Ok(Recorded::Claimed);
    }
    mark_unsure(client, &claimed.site_id, &claimed.sku).await?;
    Ok(Recorded::ClaimLost)
}

/// Webflow already shows the level: clean, without a call (unless the count changed meanwhile).
/// Nothing when the claim was lost.
pub async fn record_in_step<C: Db>(client: &C, claimed: &Claimed) -> Result<Recorded> {
    let updated = client
        .execute(
            "UPDATE inventory_sync SET
                 dirty_since = CASE WHEN change_seq = $3 THEN NULL ELSE dirty_since END,
                 claimed_until = NULL, claim_token = NULL
             WHERE site_id = $1 AND sku = $2 AND claim_token = $4",
            &[&claimed.site_id, &claimed.sku, &claimed.change_seq, &claimed.token],
        )
        .await?;
    Ok(if updated == 1 {
        Recorded::Claimed
    } else {
        Recorded::ClaimLost
    })
}

/// A push failed: the row stays dirty and is left alone for `back_off`. The PATCH may have
/// landed, so Webflow's level is unknown. When the claim was lost, the row is marked dirty.
pub async fn record_failure<C: Db>(client: &C, claimed: &Claimed, error: &str, back_off: Duration) -> Result<Recorded> {
    let updated = client
        .execute(
            "UPDATE inventory_sync SET last_error = $3, webflow_from_push = false,
                 claimed_until = clock_timestamp() + make_interval(secs => $4), claim_token = NULL
             WHERE site_id = $1 AND sku = $2 AND claim_token = $5",
            &[
                &claimed.site_id,
                &claimed.sku,
                &error,
                &back_off.as_secs_f64(),
                &claimed.token,
            ],
        )
        .await?;
    if updated == 1 {
        return Ok(Recorded::Claimed);
    }
    mark_unsure(client, &claimed.site_id, &claimed.sku).await?;
    Ok(Recorded::ClaimLost)
}

/// What an `ecomm_inventory_changed` webhook told us, against the warehouse.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Observation {
    pub sku: Sku,
    pub available: i64,
    /// What Webflow should show.
    pub desired: i64,
    /// Webflow shows the warehouse's level.
    pub agrees: bool,
    /// The row was marked dirty (the warehouse's level is pushed again).
    pub push_again: bool,
    /// The webhook was received before our last push was sent: older news (a late echo of an
    /// earlier push, say). Not recorded, and no drift.
    pub stale: bool,
}

/// Records the level Webflow reported for `webflow_sku_id` of `site_id` (`None`: infinite or
/// not given) in a webhook received at `received_at`. When it disagrees with the warehouse and
/// the site syncs, the row is marked dirty, so the warehouse's level is pushed again. A webhook
/// received before our last push was sent is stale: nothing is recorded. `None` when the SKU
/// is not known here.
pub async fn observe<C: Db>(
    client: &C,
    site_id: &SiteId,
    webflow_sku_id: &str,
    level: Option<i64>,
    inventory_type: Option<&str>,
    syncing: bool,
    received_at: Option<DateTime<Utc>>,
) -> Result<Option<Observation>> {
    let sql = format!(
        "WITH target AS (
             SELECT s.site_id, s.sku, COALESCE(i.on_hand - i.reserved, 0) AS available, {DESIRED} AS desired,
                    COALESCE($6::timestamptz < s.last_push_sent_at, false) AS stale
             FROM inventory_sync s JOIN inventory i ON i.merchant_id = s.merchant_id AND i.sku = s.sku
             WHERE s.site_id = $1 AND s.webflow_sku_id = $2
             LIMIT 1),
         judged AS (
             SELECT t.*, NOT t.stale AND ($3::bigint IS DISTINCT FROM t.desired OR $4 IS DISTINCT FROM 'finite') AS drift
             FROM target t)
         UPDATE inventory_sync s SET
             webflow_level = CASE WHEN t.stale THEN s.webflow_level ELSE $3 END,
             webflow_type = CASE WHEN t.stale THEN s.webflow_type ELSE $4 END,
             webflow_seen_at = CASE WHEN t.stale THEN s.webflow_seen_at ELSE clock_timestamp() END,
             webflow_from_push = s.webflow_from_push AND t.stale,
             drift_events = drift_events + CASE WHEN t.drift THEN 1 ELSE 0 END,
             dirty_since = CASE WHEN $5 AND t.drift THEN COALESCE(s.dirty_since, clock_timestamp()) ELSE s.dirty_since END,
             change_seq = CASE WHEN $5 AND t.drift THEN s.change_seq + 1 ELSE s.change_seq END
         FROM judged t
         WHERE s.site_id = t.site_id AND s.sku = t.sku
         RETURNING s.sku, t.available, t.desired, t.stale"
    );
    let row = client
        .query_opt(
            &sql,
            &[
                site_id,
                &webflow_sku_id,
                &level,
                &inventory_type,
                &syncing,
                &received_at,
            ],
        )
        .await?;
    Ok(row.map(|row| {
        let desired: i64 = row.get(2);
        let stale: bool = row.get(3);
        let agrees = inventory_type == Some("finite") && level == Some(desired);
        Observation {
            sku: row.get(0),
            available: row.get(1),
            desired,
            agrees,
            push_again: syncing && !agrees && !stale,
            stale,
        }
    }))
}

/// One SKU's sync with one store, as the inventory API and the console show it.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct SyncStatus {
    #[schema(value_type = String)]
    pub site_id: SiteId,
    #[schema(value_type = String)]
    pub sku: Sku,
    pub webflow_sku_id: String,
    /// The merchant whose stock the store syncs (`merchants.id`).
    pub merchant_id: i64,
    /// What Webflow should show: available less the site's buffer, never below 0.
    pub desired_level: i64,
    pub last_pushed_level: Option<i64>,
    pub last_pushed_at: Option<DateTime<Utc>>,
    pub pushes: i64,
    /// What Webflow last said (the answer to a push, or a webhook), and when.
    pub webflow_level: Option<i64>,
    pub webflow_seen_at: Option<DateTime<Utc>>,
    /// Webflow's last word matches `desired_level`.
    pub agrees: bool,
    /// The level changed since Webflow last matched it (a push is due).
    pub pending: bool,
    /// Webhooks on which Webflow disagreed with the warehouse (dashboard edits, say).
    pub drift_events: i64,
    pub last_error: Option<String>,
}

const STATUS_COLUMNS: &str = "s.site_id, s.sku, s.webflow_sku_id,
    GREATEST(COALESCE(i.on_hand - i.reserved, 0) - s.safety_buffer, 0),
    s.last_pushed_level, s.last_pushed_at, s.pushes, s.webflow_level, s.webflow_seen_at,
    COALESCE(s.webflow_type = 'finite'
             AND s.webflow_level = GREATEST(COALESCE(i.on_hand - i.reserved, 0) - s.safety_buffer, 0), false),
    s.dirty_since IS NOT NULL, s.drift_events, s.last_error, s.merchant_id";

fn status_row(row: &tokio_postgres::Row) -> SyncStatus {
    SyncStatus {
        site_id: row.get(0),
        sku: row.get(1),
        webflow_sku_id: row.get(2),
        desired_level: row.get(3),
        last_pushed_level: row.get(4),
        last_pushed_at: row.get(5),
        pushes: row.get(6),
        webflow_level: row.get(7),
        webflow_seen_at: row.get(8),
        agrees: row.get(9),
        pending: row.get(10),
        drift_events: row.get(11),
        last_error: row.get(12),
        merchant_id: row.get(13),
    }
}

/// The sync of one merchant's SKU with each of the merchant's stores that sold it.
pub async fn status_of_sku<C: Db>(client: &C, merchant_id: i64, sku: &Sku) -> Result<Vec<SyncStatus>> {
    let sql = format!(
        "SELECT {STATUS_COLUMNS} FROM inventory_sync s LEFT JOIN inventory i ON i.merchant_id = s.merchant_id AND i.sku = s.sku
         WHERE s.merchant_id = $1 AND s.sku = $2 ORDER BY s.site_id"
    );
    Ok(client
        .query(&sql, &[&merchant_id, sku])
        .await?
        .iter()
        .map(status_row)
        .collect())
}

/// The most rows [`status`] returns.
pub const STATUS_LIMIT: i64 = 1_000;

/// Every SKU's sync with the given stores (`None`: every store), at most `limit` rows
/// (capped at [`STATUS_LIMIT`]).
pub async fn status<C: Db>(client: &C, sites: Option<&[String]>, limit: i64) -> Result<Vec<SyncStatus>> {
    let sql = format!(
        "SELECT {STATUS_COLUMNS} FROM inventory_sync s LEFT JOIN inventory i ON i.merchant_id = s.merchant_id AND i.sku = s.sku
         WHERE $1::text[] IS NULL OR s.site_id = ANY($1) ORDER BY s.site_id, s.sku LIMIT $2"
    );
    let limit = limit.clamp(0, STATUS_LIMIT);
    Ok(client
        .query(&sql, &[&sites, &limit])
        .await?
        .iter()
        .map(status_row)
        .collect())
}

/// Per site: SKUs whose Webflow level disagrees with the warehouse (Webflow has spoken, and
/// not what we would show), and SKUs with a push pending.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SiteSummary {
    pub site_id: SiteId,
    pub skus: i64,
    pub drifting: i64,
    pub pending: i64,
    /// Seconds since the oldest pending SKU became dirty (0 when none is).
    pub oldest_dirty_secs: f64,
}

pub async fn summary<C: Db>(client: &C, sites: &[SiteId]) -> Result<Vec<SiteSummary>> {
    let rows = client
        .query(
            "SELECT s.site_id, count(*),
                    count(*) FILTER (WHERE s.webflow_seen_at IS NOT NULL AND NOT COALESCE(
                        s.webflow_type = 'finite' AND s.webflow_level =
                            GREATEST(COALESCE(i.on_hand - i.reserved, 0) - s.safety_buffer, 0), false)),
                    count(*) FILTER (WHERE s.dirty_since IS NOT NULL),
                    COALESCE(EXTRACT(EPOCH FROM clock_timestamp() - min(s.dirty_since))::float8, 0)
             FROM inventory_sync s JOIN inventory i ON i.merchant_id = s.merchant_id AND i.sku = s.sku
             WHERE s.site_id = ANY($1) GROUP BY s.site_id ORDER BY s.site_id",
            &[&sites],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|row| SiteSummary {
            site_id: row.get(0),
            skus: row.get(1),
            drifting: row.get(2),
            pending: row.get(3),
            oldest_dirty_secs: row.get(4),
        })
        .collect())
}
