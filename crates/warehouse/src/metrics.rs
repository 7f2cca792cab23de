//! The pipeline's state as metrics, computed by the warehouse (one process owns them, so
//! replicas of the workers do not repeat the queries): orders by store and state with the
//! oldest, the outbox backlog, and every stage's queues. Refreshed every 15 s, never per
//! scrape.

use platform::amqp::AmqpClient;
use prometheus::{GaugeVec, IntGauge, IntGaugeVec, Opts, Registry};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

pub struct PipelineMetrics {
    orders: IntGaugeVec,
    oldest: GaugeVec,
    outbox_pending: IntGauge,
    outbox_oldest: prometheus::Gauge,
    queue_messages: IntGaugeVec,
}

impl PipelineMetrics {
    /// One aggregate over `orders` and one index scan of the outbox per refresh, next to a
    /// scrape interval of 15-60 s.
    const REFRESH: Duration = Duration::from_secs(15);

    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let metrics = Self {
            orders: IntGaugeVec::new(
                Opts::new("wms_orders", "Orders in the warehouse database, by store and state"),
                &["site_id", "state"],
            )?,
            oldest: GaugeVec::new(
                Opts::new(
                    "wms_orders_oldest_seconds",
                    "Seconds since the least recently changed order of the store in this state last changed",
                ),
                &["site_id", "state"],
            )?,
            outbox_pending: IntGauge::new("wms_outbox_pending", "Outbox events committed but not published yet")?,
            outbox_oldest: prometheus::Gauge::new(
                "wms_outbox_oldest_pending_seconds",
                "Age of the oldest unpublished outbox event (0: none)",
            )?,
            queue_messages: IntGaugeVec::new(
                Opts::new(
                    "wms_queue_messages",
                    "Messages ready in a stage's queues: work (backlog), retry (waiting to retry), dead (dead letters)",
                ),
                &["stage", "kind"],
            )?,
        };
        registry.register(Box::new(metrics.orders.clone()))?;
        registry.register(Box::new(metrics.oldest.clone()))?;
        registry.register(Box::new(metrics.outbox_pending.clone()))?;
        registry.register(Box::new(metrics.outbox_oldest.clone()))?;
        registry.register(Box::new(metrics.queue_messages.clone()))?;
        Ok(metrics)
    }

    pub async fn run(self, pool: warehouse_db::Pool, amqp: AmqpClient, shutdown: CancellationToken) {
        let mut ticker = tokio::time::interval(Self::REFRESH);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = ticker.tick() => {}
            }
            if let Err(error) = self.refresh_database(&pool).await {
                tracing::warn!(%error, "cannot read the orders and outbox for the metrics");
            }
            if let Err(error) = self.refresh_queues(&amqp).await {
                tracing::warn!(%error, "cannot read the queue depths for the metrics");
            }
        }
    }

    async fn refresh_database(&self, pool: &warehouse_db::Pool) -> Result<(), warehouse_db::DbError> {
        let client = pool.get().await?;
        let summary = warehouse_db::orders::summary_by_site_and_state(&*client).await?;
        let (pending, oldest_pending) = warehouse_db::outbox::backlog(&*client).await?;
        // States that emptied out read 0 rather than their last value.
        self.orders.reset();
        self.oldest.reset();
        for row in summary {
            let labels = [row.site_id.as_str(), row.state.as_str()];
            self.orders.with_label_values(&labels).set(row.count);
            self.oldest.with_label_values(&labels).set(row.oldest_secs);
        }
        self.outbox_pending.set(pending);
        self.outbox_oldest.set(oldest_pending);
        Ok(())
    }

    async fn refresh_queues(&self, amqp: &AmqpClient) -> Result<(), platform::amqp::AmqpError> {
        let topology = amqp.topology();
        // Per stage: `work` (waiting for the stage), `retry` (every retry tier), `dead`.
        let mut queues = Vec::new();
        for consumer in topology.consumers() {
            queues.push((consumer.name, "work", topology.work_queue(consumer.name)));
            for delay in topology.retry_delays_ms() {
                queues.push((consumer.name, "retry", topology.retry_queue(consumer.name, *delay)));
            }
            queues.push((consumer.name, "dead", topology.dead_queue(consumer.name)));
        }
        let names: Vec<String> = queues.iter().map(|(_, _, name)| name.clone()).collect();
        let depths = amqp.queue_depths(&names).await?;
        let mut totals = std::collections::BTreeMap::new();
        for ((stage, kind, _), depth) in queues.iter().zip(depths) {
            *totals.entry((*stage, *kind)).or_insert(0_i64) += i64::from(depth);
        }
        for ((stage, kind), total) in totals {
            self.queue_messages.with_label_values(&[stage, kind]).set(total);
        }
        Ok(())
    }
}
