//! The consumer runtime's metrics: messages by outcome and handler time, per consumer.

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry};

#[derive(Clone)]
pub struct WorkerMetrics {
    /// `outcome` = processed | duplicate | retried | dead_lettered | requeued.
    pub messages: IntCounterVec,
    pub handler_seconds: HistogramVec,
    pub outbox_published: IntCounterVec,
}

impl WorkerMetrics {
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let messages = IntCounterVec::new(
            Opts::new("wms_worker_messages_total", "Messages handled, by consumer and outcome"),
            &["consumer", "outcome"],
        )?;
        let handler_seconds = HistogramVec::new(
            HistogramOpts::new("wms_worker_handler_seconds", "Time to handle one message").buckets(vec![
                0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ]),
            &["consumer"],
        )?;
        let outbox_published = IntCounterVec::new(
            Opts::new(
                "wms_outbox_published_total",
                "Outbox events published, by consumer and path",
            ),
            &["consumer", "path"],
        )?;
        registry.register(Box::new(messages.clone()))?;
        registry.register(Box::new(handler_seconds.clone()))?;
        registry.register(Box::new(outbox_published.clone()))?;
        Ok(Self {
            messages,
            handler_seconds,
            outbox_published,
        })
    }
}
