//! Per site and token, from the shared budget rows: what waits for budget, how much of it is
//! used, the oldest wait. Every process that calls Webflow exports them (they read the same
//! rows, so replicas agree; aggregate with `max`).

use crate::WebflowGateway;
use prometheus::{GaugeVec, IntGaugeVec, Opts, Registry};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

#[derive(Clone)]
pub struct BudgetMetrics {
    limit: GaugeVec,
    booked_ahead: GaugeVec,
    reserved: IntGaugeVec,
    deferred: IntGaugeVec,
    oldest_wait: GaugeVec,
    calls_last_minute: IntGaugeVec,
    throttled: IntGaugeVec,
}

const LABELS: [&str; 2] = ["site_id", "token"];

impl BudgetMetrics {
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let gauge = |name: &str, help: &str| GaugeVec::new(Opts::new(name, help), &LABELS);
        let int = |name: &str, help: &str| IntGaugeVec::new(Opts::new(name, help), &LABELS);
        let metrics = Self {
            limit: gauge("wms_webflow_budget_limit_per_minute", "The token's limit in force")?,
            booked_ahead: gauge(
                "wms_webflow_budget_booked_ahead_seconds",
                "How far ahead the token's schedule is booked (0: idle)",
            )?,
            reserved: int(
                "wms_webflow_budget_reserved",
                "Reserved slots not used yet (messages parked until their slot)",
            )?,
            deferred: int(
                "wms_webflow_budget_deferred",
                "Work deferred without a reservation (enrichment behind write-backs)",
            )?,
            oldest_wait: gauge(
                "wms_webflow_budget_oldest_wait_seconds",
                "Age of the oldest work waiting for budget",
            )?,
            calls_last_minute: int(
                "wms_webflow_budget_calls_last_minute",
                "Calls in the last full minute bucket",
            )?,
            throttled: int("wms_webflow_budget_throttled", "429s answered to the token so far")?,
        };
        registry.register(Box::new(metrics.limit.clone()))?;
        registry.register(Box::new(metrics.booked_ahead.clone()))?;
        registry.register(Box::new(metrics.reserved.clone()))?;
        registry.register(Box::new(metrics.deferred.clone()))?;
        registry.register(Box::new(metrics.oldest_wait.clone()))?;
        registry.register(Box::new(metrics.calls_last_minute.clone()))?;
        registry.register(Box::new(metrics.throttled.clone()))?;
        Ok(metrics)
    }

    /// Reads every site's budget once.
    pub async fn refresh(&self, gateway: &WebflowGateway) {
        let Ok(sites) = gateway.status().await else { return };
        for site in sites {
            let labels = [site.site_id.as_str(), site.budget.key.as_str()];
            self.limit.with_label_values(&labels).set(site.budget.limit);
            self.booked_ahead
                .with_label_values(&labels)
                .set(site.budget.booked_ahead_secs);
            self.reserved.with_label_values(&labels).set(site.reserved);
            self.deferred.with_label_values(&labels).set(site.deferred);
            self.oldest_wait
                .with_label_values(&labels)
                .set(site.oldest_wait_secs.unwrap_or(0.0));
            self.calls_last_minute
                .with_label_values(&labels)
                .set(i64::from(site.budget.calls_last_minute));
            self.throttled.with_label_values(&labels).set(site.budget.throttled);
        }
    }
}

impl WebflowGateway {
    /// Registers the budget metrics and refreshes them every 5 s until `shutdown`.
    pub fn export_metrics(&self, registry: &Registry, shutdown: CancellationToken) -> Result<(), prometheus::Error> {
        let metrics = match BudgetMetrics::register(registry) {
            Ok(metrics) => metrics,
            // Several gateways in one process (tests): the first one exports.
            Err(prometheus::Error::AlreadyReg) => return Ok(()),
            Err(error) => return Err(error),
        };
        let gateway = self.clone();
        tokio::spawn(async move {
            loop {
                metrics.refresh(&gateway).await;
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(Duration::from_secs(5)) => {}
                }
            }
        });
        Ok(())
    }
}
