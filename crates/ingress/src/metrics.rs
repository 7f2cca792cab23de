//! The ingress's Prometheus metrics.

use prometheus::{Histogram, HistogramOpts, IntCounterVec, Opts, Registry};

#[derive(Clone)]
pub struct IngressMetrics {
    /// `outcome` = accepted | ignored | rejected; `reason` says why.
    pub webhooks: IntCounterVec,
    /// Time from publish to the broker's confirm.
    pub publish_seconds: Histogram,
}

impl IngressMetrics {
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let webhooks = IntCounterVec::new(
            Opts::new("wms_ingress_webhooks_total", "Webhooks received, by outcome and reason"),
            &["outcome", "reason"],
        )?;
        let publish_seconds = Histogram::with_opts(
            HistogramOpts::new("wms_ingress_publish_seconds", "Publish-to-confirm latency").buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
            ]),
        )?;
        registry.register(Box::new(webhooks.clone()))?;
        registry.register(Box::new(publish_seconds.clone()))?;
        Ok(Self {
            webhooks,
            publish_seconds,
        })
    }
}
