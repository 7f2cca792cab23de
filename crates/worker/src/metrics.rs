//! The consumer runtime's metrics: messages by outcome, handler time and deliveries in flight,
//! per consumer.

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry};

#[derive(Clone)]
pub struct WorkerMetrics {
    /// `outcome` = processed | duplicate | retried | dead_lettered | requeued.
    pub messages: IntCounterVec,
    pub handler_seconds: HistogramVec,
    pub outbox_published: IntCounterVec,
    /// Deliveries taken and not yet settled (prefetch slots in use, of `worker.concurrency`,
    /// plus `worker.max_waiting` for consumers that call Webflow).
    pub in_flight: IntGaugeVec,
    /// Of those, the ones waiting for a rate-budget slot without holding a worker slot.
    pub waiting: IntGaugeVec,
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
        let in_flight = IntGaugeVec::new(
            Opts::new(
                "wms_worker_in_flight",
                "Deliveries taken and not yet settled (prefetch slots in use), by consumer",
            ),
            &["consumer"],
        )?;
        let waiting = IntGaugeVec::new(
            Opts::new(
                "wms_worker_waiting_for_budget",
                "Deliveries waiting for a Webflow rate-budget slot outside a worker slot, by consumer",
            ),
            &["consumer"],
        )?;
        registry.register(Box::new(messages.clone()))?;
        registry.register(Box::new(handler_seconds.clone()))?;
        registry.register(Box::new(outbox_published.clone()))?;
        registry.register(Box::new(in_flight.clone()))?;
        registry.register(Box::new(waiting.clone()))?;
        Ok(Self {
            messages,
            handler_seconds,
            outbox_published,
            in_flight,
            waiting,
        })
    }

    /// Counts one delivery in flight for `consumer` until the returned guard is dropped.
    pub fn slot(&self, consumer: &str) -> SlotInUse {
        let gauge = self.in_flight.with_label_values(&[consumer]);
        gauge.inc();
        SlotInUse(gauge)
    }
}

/// One worker slot in use; released (the gauge decremented) on drop, however the delivery ends.
pub struct SlotInUse(IntGauge);

impl Drop for SlotInUse {
    fn drop(&mut self) {
        self.0.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slot_counts_until_dropped() {
        let metrics = WorkerMetrics::register(&Registry::new()).expect("metrics register");
        let gauge = || metrics.in_flight.with_label_values(&["notify-webflow"]).get();
        let first = metrics.slot("notify-webflow");
        let second = metrics.slot("notify-webflow");
        assert_eq!(gauge(), 2);
        drop(first);
        assert_eq!(gauge(), 1);
        drop(second);
        assert_eq!(gauge(), 0);
    }
}
