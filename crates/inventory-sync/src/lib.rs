//! Stock levels back to the storefront (issue 17): for every store with
//! `webflow.sites.<name>.inventory_sync` on, each SKU's Webflow inventory is kept equal to the
//! warehouse's available count less the site's safety buffer (never below 0), set as an
//! absolute finite `quantity`.
//!
//! - **Nothing lost**: a trigger marks a SKU's rows dirty in the transaction that changes its
//!   available count (`warehouse_db::inventory_sync`); the loop works from those rows.
//! - **Coalesced**: only the newest level is pushed, at most once per SKU and store per
//!   `inventory_sync.min_interval_secs`. A level Webflow already shows costs no call.
//! - **Lowest priority**: a push takes a budget slot only when one is free at that moment
//!   ([`Priority::InventorySync`]): it never reserves ahead of write-backs and delays a
//!   write-back that comes next by at most one slot.
//! - **Several replicas**: due rows are claimed with `FOR UPDATE SKIP LOCKED` and a lease.

pub mod metrics;

use serde::Deserialize;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use warehouse_db::audit::{self, AuditEntry, AuditKind};
use warehouse_db::inventory_sync::{self as rows, Claimed, Pushed, SyncSite};
use webflow::{UpdateInventoryRequest, WebflowSettings};
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

/// How long a claim keeps other replicas off a row (longer than a call's timeout).
const CLAIM_FOR: Duration = Duration::from_secs(30);
/// Rows claimed at once per store: about what one pass can push.
const BATCH: i64 = 8;

/// What one pass did.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Pass {
    pub pushed: u64,
    /// Dirty rows Webflow already matched (no call).
    pub in_step: u64,
    pub failed: u64,
    /// The soonest a store's budget has a free slot again, when one was busy.
    pub busy_for: Option<Duration>,
}

#[derive(Clone)]
pub struct InventorySync {
    gateway: WebflowGateway,
    pool: warehouse_db::Pool,
    targets: Vec<Target>,
    settings: InventorySyncSettings,
    metrics: Option<SyncMetrics>,
}

impl InventorySync {
    /// The loop for every site of `webflow` with `inventory_sync` on.
    pub fn new(
        gateway: WebflowGateway,
        pool: warehouse_db::Pool,
        webflow: &WebflowSettings,
        settings: InventorySyncSettings,
    ) -> Self {
        let targets = webflow
            .sites
            .values()
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
            .collect();
        Self {
            gateway,
            pool,
            targets,
            settings,
            metrics: None,
        }
    }

    pub fn with_metrics(mut self, metrics: SyncMetrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// Whether any store syncs.
    pub fn is_enabled(&self) -> bool {
        !self.targets.is_empty()
    }

    /// The syncing stores' ids.
    pub fn site_ids(&self) -> Vec<String> {
        self.targets.iter().map(|t| t.site.site_id.clone()).collect()
    }

    /// Pushes what is due now, store by store, as far as each budget has free slots.
    pub async fn run_once(&self) -> Result<Pass, SyncError> {
        let mut pass = Pass::default();
        let min_interval = Duration::from_secs(self.settings.min_interval_secs);
        for target in &self.targets {
            let claimed = {
                let client = self.pool.get().await?;
                rows::claim(&*client, &target.site, min_interval, BATCH, CLAIM_FOR).await?
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
                    Step::Busy(wait) => {
                        pass.busy_for = Some(pass.busy_for.map_or(wait, |w| w.min(wait)));
                        // Give this row and the rest back: due again at once, for whoever
                        // finds a free slot first.
                        let client = self.pool.get().await?;
                        rows::release(&*client, &row.site_id, &row.sku).await?;
                        for other in rest.by_ref() {
                            rows::release(&*client, &other.site_id, &other.sku).await?;
                        }
                    }
                }
            }
        }
        Ok(pass)
    }

    async fn push(&self, target: &Target, row: &Claimed) -> Result<Step, SyncError> {
        if row.in_step() {
            let client = self.pool.get().await?;
            rows::record_in_step(&*client, row).await?;
            return Ok(Step::Done(false));
        }
        let site_id = domain::SiteId::new(row.site_id.clone());
        let (collection, sku_id) = (target.sku_collection_id.clone(), row.webflow_sku_id.clone());
        let body = UpdateInventoryRequest::finite(row.desired);
        let request = body.clone();
        let result = self
            .gateway
            .call(&site_id, Priority::InventorySync, |client, token| async move {
                client.update_inventory(&token, &collection, &sku_id, &request).await
            })
            .await;
        match result {
            Ok(response) => {
                let item = response.value;
                let pushed = Pushed {
                    level: row.desired,
                    webflow_level: item
                        .quantity
                        .filter(|_| item.inventory_type.as_deref() != Some("infinite"))
                        .map(|q| q.round() as i64),
                    webflow_type: item.inventory_type.clone().or(Some("finite".into())),
                };
                let mut client = self.pool.get().await?;
                let tx = client.transaction().await.map_err(warehouse_db::DbError::from)?;
                rows::record_push(&tx, row, &pushed).await?;
                audit::record(
                    &tx,
                    AuditEntry {
                        site_id: Some(&row.site_id),
                        order_id: None,
                        kind: AuditKind::InventoryPushed,
                        actor: ACTOR,
                        detail: serde_json::json!({
                            "sku": row.sku,
                            "webflow_sku_id": row.webflow_sku_id,
                            "level": row.desired,
                            "webflow_level": pushed.webflow_level,
                            "call": response.call,
                        }),
                    },
                )
                .await?;
                tx.commit().await.map_err(warehouse_db::DbError::from)?;
                if let Some(metrics) = &self.metrics {
                    metrics.pushed(&row.site_id);
                }
                tracing::debug!(site_id = %row.site_id, sku = %row.sku, level = row.desired, "stock level pushed");
                Ok(Step::Done(true))
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
                rows::record_failure(&*client, &row.site_id, &row.sku, &error.to_string(), back_off).await?;
                Ok(Step::Failed)
            }
        }
    }

    /// Runs passes until `shutdown`: at once while there is work and budget, else after the
    /// poll interval (or when the busy budget frees a slot, if sooner).
    pub fn spawn(self, shutdown: CancellationToken) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            if !self.is_enabled() {
                return;
            }
            let poll = Duration::from_millis(self.settings.poll_interval_ms);
            let mut summary_due = tokio::time::Instant::now();
            loop {
                let wait = match self.run_once().await {
                    Ok(pass) if pass.pushed + pass.in_step > 0 && pass.busy_for.is_none() => Duration::ZERO,
                    Ok(pass) => pass.busy_for.map_or(poll, |busy| busy.min(poll)),
                    Err(error) => {
                        tracing::warn!(%error, "inventory sync pass failed");
                        poll
                    }
                };
                if let Some(metrics) = &self.metrics
                    && tokio::time::Instant::now() >= summary_due
                {
                    metrics.refresh(&self.pool, &self.site_ids()).await;
                    summary_due = tokio::time::Instant::now() + Duration::from_secs(5);
                }
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
}
