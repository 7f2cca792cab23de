//! Stock levels back to the storefront (issue 17): for every live store with `inventory_sync`
//! on (config stores: `webflow.sites.<name>.inventory_sync`; stores added at runtime are
//! picked up from the store registry on the next pass), each SKU's Webflow inventory is kept equal to the
//! warehouse's available count less the site's safety buffer (never below 0), set as an
//! absolute finite `quantity`.
//!
//! - **Nothing lost**: a trigger marks a SKU's rows dirty in the transaction that changes its
//!   available count (`warehouse_db::inventory_sync`); the loop works from those rows.
//! - **Coalesced**: only the newest level is pushed, at most once per SKU and store per
//!   `inventory_sync.min_interval_secs`. A level our own last PATCH left in Webflow costs no
//!   call (a webhook's level never cancels a push: it may be a late echo).
//! - **Lowest priority**: a push takes a budget slot only when one is free at that moment
//!   ([`Priority::InventorySync`]): it never reserves ahead of write-backs and delays a
//!   write-back that comes next by at most one slot.
//! - **Several replicas**: due rows are claimed with `FOR UPDATE SKIP LOCKED`, a lease and a
//!   claim token. The claim is renewed, and the row's level re-read, right before each PATCH;
//!   a result is recorded only under the loop's own token. A loop whose claim lapsed and was
//!   taken marks the row dirty instead of clean, so the newest level is pushed again.

pub mod metrics;

use domain::SiteId;
use serde::Deserialize;
use std::time::Duration;
use stores::StoreRegistry;
use tokio_util::sync::CancellationToken;
use warehouse_db::audit::{self, AuditEntry, AuditKind};
use warehouse_db::inventory_sync::{self as rows, Claimed, Pushed, Recorded, SyncSite};
use webflow::{InventoryType, UpdateInventoryRequest, WebflowSettings};
use webflow_gateway::{GatewayError, Priority, WebflowGateway};

pub use metrics::SyncMetrics;

pub const ACTOR: &str = "inventory-sync";

/// `[inventory_sync]`: how often a SKU's level may be pushed.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default)]
pub struct InventorySyncSettings {
    /// At most one push per SKU and store within this many seconds (always the newest level).
    pub min_interval_secs: u64,
    /// How often the loop looks for due SKUs when it has nothing to do.
    pub poll_interval_ms: u64,
}

impl Default for InventorySyncSettings {
    fn default() -> Self {
        Self {
            min_interval_secs: 30,
            poll_interval_ms: 500,
        }
    }
}

impl InventorySyncSettings {
    pub fn validate(&self) -> Result<(), platform::settings::SettingsError> {
        if self.min_interval_secs == 0 {
            return Err(platform::settings::SettingsError::invalid(
                "inventory_sync.min_interval_secs",
                "must be at least 1",
            ));
        }
        if self.poll_interval_ms == 0 {
            return Err(platform::settings::SettingsError::invalid(
                "inventory_sync.poll_interval_ms",
                "must be at least 1",
            ));
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("inventory sync: {0}")]
    Db(#[from] warehouse_db::DbError),
    #[error("inventory sync: {0}")]
    Pool(#[from] warehouse_db::pool::PoolError),
}

/// A store whose stock is synced.
#[derive(Debug, Clone)]
struct Target {
    site: SyncSite,
    sku_collection_id: String,
}

/// Rows claimed at once per store: about what one pass can push.
const BATCH: u32 = 8;
/// Slack on a claim beyond the calls it covers (database round trips, scheduling).
const CLAIM_MARGIN: Duration = Duration::from_secs(10);

/// What one pass did.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Pass {
    pub pushed: u64,
    /// Dirty rows Webflow already matched (no call).
    pub in_step: u64,
    pub failed: u64,
    /// Rows whose claim lapsed and was taken by another loop before their push was recorded.
    pub lost: u64,
    /// The soonest a store's budget has a free slot again, when one was busy.
    pub busy_for: Option<Duration>,
}

#[derive(Clone)]
pub struct InventorySync {
    gateway: WebflowGateway,
    pool: warehouse_db::Pool,
    /// The live stores: the syncing ones are the targets of each pass.
    stores: StoreRegistry,
    settings: InventorySyncSettings,
    /// One Webflow call's longest time (`webflow.timeout_ms`).
    call_timeout: Duration,
    metrics: Option<SyncMetrics>,
}

impl InventorySync {
    /// The loop for every live store of `stores` with `inventory_sync` on.
    pub fn new(
        gateway: WebflowGateway,
        pool: warehouse_db::Pool,
        stores: StoreRegistry,
        webflow: &WebflowSettings,
        settings: InventorySyncSettings,
    ) -> Self {
        Self {
            gateway,
            pool,
            stores,
            settings,
            call_timeout: Duration::from_millis(webflow.timeout_ms),
            metrics: None,
        }
    }

    pub fn with_metrics(mut self, metrics: SyncMetrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// The live stores that sync, now.
    fn targets(&self) -> Vec<Target> {
        self.stores
            .all()
            .iter()
            .filter(|s| s.inventory_sync)
            .filter_map(|s| {
                Some(Target {
                    site: SyncSite {
                        site_id: s.site_id.clone(),
                        safety_buffer: s.inventory_safety_buffer.max(0),
                    },
                    sku_collection_id: s.sku_collection_id.clone()?,
                })
            })
            .collect()
    }

    /// Whether any store syncs now.
    pub fn is_enabled(&self) -> bool {
        !self.targets().is_empty()
    }

    /// How long a batch's claim lasts: every call of the batch taking its whole timeout.
    fn claim_for(&self) -> Duration {
        self.call_timeout * BATCH + CLAIM_MARGIN
    }

    /// How long a claim is renewed for right before one push.
    fn hold_for(&self) -> Duration {
        self.call_timeout + CLAIM_MARGIN
    }

    /// The syncing stores' ids, now.
    pub fn site_ids(&self) -> Vec<SiteId> {
        self.targets().iter().map(|t| t.site.site_id.clone()).collect()
    }

    /// Pushes what is due now, store by store, as far as each budget has free slots.
    pub async fn run_once(&self) -> Result<Pass, SyncError> {
        let mut pass = Pass::default();
        let min_interval = Duration::from_secs(self.settings.min_interval_secs);
        for target in &self.targets() {
            let claimed = {
                let client = self.pool.get().await?;
                rows::claim(&*client, &target.site, min_interval, i64::from(BATCH), self.claim_for()).await?
            };
            let mut rest = claimed.into_iter();
            while let Some(row) = rest.next() {
                match self.push(target, &row).await? {
                    Step::Done(pushed) => {
                        if pushed {
                            pass.pushed += 1;
                        } else {
                            pass.in_step += 1;
                        }
                    }
                    Step::Failed => pass.failed += 1,
                    Step::Lost => pass.lost += 1,
                    Step::Busy(wait) => {
                        pass.busy_for = Some(pass.busy_for.map_or(wait, |w| w.min(wait)));
                        // Give this row and the rest back: due again at once, for whoever
                        // finds a free slot first.
                        let client = self.pool.get().await?;
                        rows::release(&*client, &row).await?;
                        for other in rest.by_ref() {
                            rows::release(&*client, &other).await?;
                        }
                    }
                }
            }
        }
        Ok(pass)
    }

    async fn push(&self, target: &Target, claimed: &Claimed) -> Result<Step, SyncError> {
        // Renew the claim for this one call and read the level to push now: the batch's other
        // calls may have taken a while, and the count may have moved since the claim.
        let row = {
            let client = self.pool.get().await?;
            match rows::renew(&*client, claimed, self.hold_for()).await? {
                Some(row) => row,
                None => return Ok(self.lost(claimed)),
            }
        };
        if row.in_step() {
            let client = self.pool.get().await?;
            return Ok(match rows::record_in_step(&*client, &row).await? {
                Recorded::Claimed => Step::Done(false),
                Recorded::ClaimLost => self.lost(&row),
            });
        }
        let site_id = row.site_id.clone();
        let (collection, sku_id) = (target.sku_collection_id.clone(), row.webflow_sku_id.clone());
        let request = UpdateInventoryRequest::finite(row.desired);
        let sent_at = chrono::Utc::now();
        let result = self
            .gateway
            .call(&site_id, Priority::InventorySync, |client, token| async move {
                client.update_inventory(&token, &collection, &sku_id, &request).await
            })
            .await;
        match result {
            Ok(response) => {
                let item = response.value;
                let kind = item.inventory_type.unwrap_or(InventoryType::Finite);
                let pushed = Pushed {
                    level: row.desired,
                    webflow_level: item
                        .quantity
                        .filter(|_| kind == InventoryType::Finite)
                        .map(|q| q.round() as i64),
                    webflow_type: Some(kind.as_str().to_owned()),
                    sent_at,
                };
                let mut client = self.pool.get().await?;
                let tx = client.transaction().await.map_err(warehouse_db::DbError::from)?;
                let recorded = rows::record_push(&tx, &row, &pushed).await?;
                audit::record(
                    &tx,
                    AuditEntry::for_site(
                        row.site_id.as_str(),
                        AuditKind::InventoryPushed,
                        ACTOR,
                        serde_json::json!({
                            "sku": row.sku,
                            "webflow_sku_id": row.webflow_sku_id,
                            "level": row.desired,
                            "webflow_level": pushed.webflow_level,
                            "claim_lost": recorded == Recorded::ClaimLost,
                            "call": response.call,
                        }),
                    ),
                )
                .await?;
                tx.commit().await.map_err(warehouse_db::DbError::from)?;
                if let Some(metrics) = &self.metrics {
                    metrics.pushed(&row.site_id);
                }
                tracing::debug!(site_id = %row.site_id, sku = %row.sku, stock_level = row.desired, "stock level pushed");
                Ok(match recorded {
                    Recorded::Claimed => Step::Done(true),
                    Recorded::ClaimLost => self.lost(&row),
                })
            }
            Err(GatewayError::Busy { wait, .. }) => Ok(Step::Busy(wait)),
            Err(error) if error.is_throttled() => Ok(Step::Busy(
                domain::Classify::retry_after(&error).unwrap_or(Duration::from_secs(1)),
            )),
            Err(error) => {
                // A SKU Webflow does not know (404) or refuses (400) is tried again much later;
                // a transient failure soon. Either way the row stays dirty.
                // Never sooner than the interval: a push whose answer was lost may have landed.
                let back_off = match &error {
                    GatewayError::Api(api) if !api.is_transient() => Duration::from_secs(300),
                    _ => Duration::from_secs(5),
                }
                .max(Duration::from_secs(self.settings.min_interval_secs));
                tracing::warn!(site_id = %row.site_id, sku = %row.sku, %error, "stock level push failed");
                let client = self.pool.get().await?;
                Ok(
                    match rows::record_failure(&*client, &row, &error.to_string(), back_off).await? {
                        Recorded::Claimed => Step::Failed,
                        Recorded::ClaimLost => self.lost(&row),
                    },
                )
            }
        }
    }

    fn lost(&self, row: &Claimed) -> Step {
        tracing::warn!(site_id = %row.site_id, sku = %row.sku, "inventory sync claim lapsed and was taken; the row is pushed again");
        Step::Lost
    }

    /// Runs passes until `shutdown`: at once while there is work and budget, else after the
    /// poll interval (or when the busy budget frees a slot, if sooner). A pass with no syncing
    /// store costs nothing (a store may start syncing at runtime, so the loop always runs).
    /// The task ends only on `shutdown`: its caller supervises it (notify-webflow exits
    /// with an error if it ends otherwise, or panics). The metrics are refreshed by a task of
    /// their own, so a stalled loop shows in `wms_inventory_sync_oldest_dirty_seconds`.
    pub fn spawn(self, shutdown: CancellationToken) -> tokio::task::JoinHandle<()> {
        if let Some(metrics) = self.metrics.clone() {
            let (pool, this, shutdown) = (self.pool.clone(), self.clone(), shutdown.clone());
            tokio::spawn(async move {
                loop {
                    metrics.refresh(&pool, &this.site_ids()).await;
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(Duration::from_secs(5)) => {}
                    }
                }
            });
        }
        tokio::spawn(async move {
            let poll = Duration::from_millis(self.settings.poll_interval_ms);
            loop {
                let wait = match self.run_once().await {
                    Ok(pass) if pass.pushed + pass.in_step > 0 && pass.busy_for.is_none() => Duration::ZERO,
                    Ok(pass) => pass.busy_for.map_or(poll, |busy| busy.min(poll)),
                    Err(error) => {
                        tracing::warn!(%error, "inventory sync pass failed");
                        poll
                    }
                };
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(wait.max(Duration::from_millis(5))) => {}
                }
            }
        })
    }
}

enum Step {
    /// Pushed (`true`) or already in step (`false`).
    Done(bool),
    Busy(Duration),
    Failed,
    /// The claim lapsed and another loop took the row (left, or marked, dirty).
    Lost,
}

#[cfg(test)]
mod tests {
    use super::InventorySyncSettings;

    #[test]
    fn intervals_must_be_at_least_one() {
        assert!(InventorySyncSettings::default().validate().is_ok());
        let zero_interval = InventorySyncSettings {
            min_interval_secs: 0,
            ..InventorySyncSettings::default()
        };
        let error = zero_interval.validate().expect_err("0 s would push every change");
        assert!(
            error.to_string().contains("inventory_sync.min_interval_secs"),
            "{error}"
        );
        let zero_poll = InventorySyncSettings {
            poll_interval_ms: 0,
            ..InventorySyncSettings::default()
        };
        assert!(zero_poll.validate().is_err());
    }
}
