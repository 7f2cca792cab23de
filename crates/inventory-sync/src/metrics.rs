//! Per store: pushes made, SKUs whose Webflow level disagrees with the warehouse (the drift
//! gauge), SKUs with a push pending. Read from the shared rows, so replicas agree (aggregate
//! with `max`); the push counter is per process (aggregate with `sum`). And the age of the
//! oldest pending SKU of any syncing store: the alert that the sync has stalled.

use domain::SiteId;
use prometheus::{Gauge, IntCounterVec, IntGaugeVec, Opts, Registry};

#[derive(Clone)]
pub struct SyncMetrics {
    pushes: IntCounterVec,
    drifting: IntGaugeVec,
    pending: IntGaugeVec,
    skus: IntGaugeVec,
    oldest_dirty: Gauge,
}

impl SyncMetrics {
    /// Registers the metrics; `None` when another sync in this process registered them first
    /// (tests run several).
    pub fn register(registry: &Registry) -> Result<Option<Self>, prometheus::Error> {
        let metrics = Self {
            pushes: IntCounterVec::new(
                Opts::new("wms_inventory_sync_pushes_total", "Stock levels pushed to Webflow"),
                &["site_id"],
            )?,
            drifting: IntGaugeVec::new(
                Opts::new(
                    "wms_inventory_sync_drifting_skus",
                    "SKUs whose last Webflow level differs from the warehouse's available count",
                ),
                &["site_id"],
            )?,
            pending: IntGaugeVec::new(
                Opts::new(
                    "wms_inventory_sync_pending_skus",
                    "SKUs whose level is due to be pushed",
                ),
                &["site_id"],
            )?,
            skus: IntGaugeVec::new(
                Opts::new("wms_inventory_sync_skus", "SKUs synced with the store"),
                &["site_id"],
            )?,
            // Unlabelled, so it is exported (0) by every notify-webflow, syncing or not.
            oldest_dirty: Gauge::new(
                "wms_inventory_sync_oldest_dirty_seconds",
                "Seconds since the oldest SKU whose level is due to be pushed (any syncing store) became due",
            )?,
        };
        match registry.register(Box::new(metrics.pushes.clone())) {
            Err(prometheus::Error::AlreadyReg) => return Ok(None),
            other => other?,
        }
        registry.register(Box::new(metrics.drifting.clone()))?;
        registry.register(Box::new(metrics.pending.clone()))?;
        registry.register(Box::new(metrics.skus.clone()))?;
        registry.register(Box::new(metrics.oldest_dirty.clone()))?;
        Ok(Some(metrics))
    }

    pub fn pushed(&self, site_id: &SiteId) {
        self.pushes.with_label_values(&[site_id]).inc();
    }

    pub async fn refresh(&self, pool: &warehouse_db::Pool, sites: &[SiteId]) {
        let Ok(client) = pool.get().await else { return };
        let Ok(summary) = warehouse_db::inventory_sync::summary(&*client, sites).await else {
            return;
        };
        let oldest = summary.iter().map(|s| s.oldest_dirty_secs).fold(0.0, f64::max);
        self.oldest_dirty.set(oldest);
        for site in summary {
            self.drifting.with_label_values(&[&site.site_id]).set(site.drifting);
            self.pending.with_label_values(&[&site.site_id]).set(site.pending);
            self.skus.with_label_values(&[&site.site_id]).set(site.skus);
        }
    }
}
