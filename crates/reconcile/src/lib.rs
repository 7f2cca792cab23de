//! The reconciliation job: lists every Webflow order of every site, page by page, within its
//! share of the rate budget, and repairs what webhooks or failed writes left behind:
//!
//! | Webflow | warehouse | repair |
//! |---|---|---|
//! | paid (`unfulfilled`) | absent (lost webhook) | injected as an `ecomm_new_order` webhook, marked `x-source: reconcile` |
//! | not `fulfilled` | `shipped` | the write-back (`order.shipped`) is enqueued again |
//! | `refunded` / `dispute-lost` | still active | `order.cancelled` (released, or `needs_review` if shipped) |
//! | `refunded` / `dispute-lost` | `fulfilled` | `needs_review` (a return or an interception may be needed) |
//! | `fulfilled` by hand | not shipped | `needs_review` |
//!
//! The sites are the live stores of the registry at the start of each pass: a store onboarded
//! at runtime is reconciled from the next pass on, a removed one no longer.
//!
//! Every repair is idempotent: injected webhooks and events carry deterministic message ids,
//! and a second run over the same state finds nothing to repair.

use domain::{Envelope, Event, MessageId, OrderId, OrderState, SiteId, WebhookTrigger};
use platform::amqp::contract::{self, MessageSource, WebhookMessage};
use platform::amqp::{Publisher, Topology};
use platform::service::RunUntilStopped;
use platform::settings::{Profile, SettingsError, Validate};
use serde::{Deserialize, Serialize};
use service_base::{ServiceBase, StartupError};
use std::collections::BTreeMap;
use std::time::Duration;
use stores::StoreRegistry;
use tokio_util::sync::CancellationToken;
use warehouse_db::job_lock::{Job, JobLock};
use warehouse_db::orders;
use webflow::{Order, OrderStatus, WebflowSettings};
use webflow_gateway::{GatewayError, Priority, WebflowGateway};

pub const ACTOR: &str = "reconcile";
const APP_ID: &str = "wms-reconcile";
/// How long start-up waits for RabbitMQ before giving up.
const BROKER_WAIT: Duration = Duration::from_secs(30);

service_base::service_settings! {
    pub struct Settings {
        pub webflow: WebflowSettings,
        pub reconcile: ReconcileSettings,
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(default)]
pub struct ReconcileSettings {
    /// Seconds between runs in loop mode.
    pub interval_secs: u64,
    /// Largest share of a site's rate budget reconciliation may use.
    pub budget_share: f64,
}

impl Default for ReconcileSettings {
    fn default() -> Self {
        Self {
            interval_secs: 300,
            budget_share: 0.2,
        }
    }
}

impl Validate for Settings {
    fn validate(&mut self) -> Result<(), SettingsError> {
        self.base.validate()?;
        self.webflow.validate()?;
        self.webflow.require_api_tokens()?;
        if self.reconcile.interval_secs == 0 {
            return Err(SettingsError::invalid("reconcile.interval_secs", "must be above 0"));
        }
        if !(0.01..=1.0).contains(&self.reconcile.budget_share) {
            return Err(SettingsError::invalid(
                "reconcile.budget_share",
                "must be between 0.01 and 1",
            ));
        }
        Ok(())
    }

    /// Production: the stores' sealed tokens need `secrets.key_file`.
    fn check_profile(&self, profile: Profile) -> Result<(), SettingsError> {
        self.base.secrets.check_profile(profile)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error(transparent)]
    Webflow(#[from] GatewayError),
    #[error(transparent)]
    Db(#[from] warehouse_db::DbError),
    #[error(transparent)]
    Pool(#[from] warehouse_db::pool::PoolError),
    #[error(transparent)]
    Publish(#[from] platform::amqp::PublishError),
}

/// What one run found and did.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Summary {
    pub checked: u64,
    pub api_calls: u64,
    /// Repairs by kind: `lost_webhook`, `writeback`, `cancelled`, `needs_review`.
    pub repaired: BTreeMap<String, u64>,
    /// Sites skipped for this run because their Webflow budget had no idle capacity (or was
    /// paused by a 429): the others are still reconciled.
    pub skipped_busy: u64,
    pub skipped_sites: Vec<String>,
    /// Another pass held the reconciliation lock (a second replica, or an operator's
    /// `reconcile --once` beside the loop): this run did nothing.
    pub already_running: bool,
}

impl Summary {
    fn repaired(&mut self, kind: &str) {
        *self.repaired.entry(kind.to_owned()).or_default() += 1;
    }

    pub fn total_repaired(&self) -> u64 {
        self.repaired.values().sum()
    }
}

pub struct Reconciler {
    gateway: WebflowGateway,
    pool: warehouse_db::Pool,
    publisher: Publisher,
    topology: Topology,
    /// The live stores: each pass reconciles those with an API token.
    stores: StoreRegistry,
}

fn content_id(prefix: &str, parts: &[&[u8]]) -> String {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    for part in parts {
        ctx.update(part);
        ctx.update(&[0]);
    }
    format!("{prefix}-{}", &hex::encode(ctx.finish().as_ref())[..40])
}

impl Reconciler {
    pub fn new(
        gateway: WebflowGateway,
        pool: warehouse_db::Pool,
        publisher: Publisher,
        topology: Topology,
        stores: StoreRegistry,
    ) -> Self {
        Self {
            gateway,
            pool,
            publisher,
            topology,
            stores,
        }
    }

    /// One pass over every site, unless another pass is running anywhere (then nothing is done
    /// and the summary says `already_running`).
    pub async fn run_once(&self) -> Result<Summary, ReconcileError> {
        let Some(lock) = JobLock::try_acquire(&self.pool, Job::Reconcile).await? else {
            tracing::info!("another reconciliation pass is running; this one is skipped");
            return Ok(Summary {
                already_running: true,
                ..Summary::default()
            });
        };
        let summary = self.pass().await;
        lock.release().await;
        summary
    }

    async fn pass(&self) -> Result<Summary, ReconcileError> {
        let mut summary = Summary::default();
        let site_ids: Vec<SiteId> = self
            .stores
            .all()
            .iter()
            .filter(|store| store.has_api_token())
            .map(|store| store.site_id.clone())
            .collect();
        for site_id in &site_ids {
            match self.reconcile_site(site_id, &mut summary).await {
                Ok(()) => {}
                Err(ReconcileError::Webflow(error @ GatewayError::Busy { .. })) => {
                    tracing::info!(%site_id, %error, "the site's Webflow budget is busy; skipped for this run");
                    summary.skipped_busy += 1;
                    summary.skipped_sites.push(site_id.to_string());
                }
                Err(ReconcileError::Webflow(error)) if error.is_throttled() => {
                    tracing::warn!(%site_id, %error, "Webflow throttled the site; skipped for this run");
                    summary.skipped_busy += 1;
                    summary.skipped_sites.push(site_id.to_string());
                }
                Err(error) => return Err(error),
            }
        }
        tracing::info!(
            skipped_busy = summary.skipped_busy,
            checked = summary.checked,
            api_calls = summary.api_calls,
            repaired = summary.total_repaired(),
            by_kind = ?summary.repaired,
            "reconciliation finished"
        );
        Ok(summary)
    }

    async fn reconcile_site(&self, site_id: &SiteId, summary: &mut Summary) -> Result<(), ReconcileError> {
        let mut offset = 0u32;
        loop {
            let site = site_id.clone();
            let page = self
                .gateway
                .call(site_id, Priority::Reconciliation, |client, token| async move {
                    client.list_orders(&token, &site, None, offset, 100).await
                })
                .await?;
            summary.api_calls += 1;
            let count = page.value.orders.len() as u32;
            for order in &page.value.orders {
                summary.checked += 1;
                self.reconcile_order(site_id, order, summary).await?;
            }
            let total = page.value.pagination.as_ref().and_then(|p| p.total).unwrap_or(0);
            offset += count;
            if count == 0 || i64::from(offset) >= total {
                return Ok(());
            }
        }
    }

    async fn reconcile_order(
        &self,
        site_id: &SiteId,
        order: &Order,
        summary: &mut Summary,
    ) -> Result<(), ReconcileError> {
        let Some(order_id) = order.order_id.as_deref() else {
            return Ok(());
        };
        let local = {
            let client = self.pool.get().await?;
            orders::find(&*client, site_id, &order_id.into()).await?
        };
        let status = order.status.as_ref();
        match (status, local) {
            (Some(OrderStatus::Unfulfilled), None) => {
                self.inject_webhook(site_id, order).await?;
                summary.repaired("lost_webhook");
            }
            (Some(s), Some(local))
                if local.state == OrderState::Shipped && *s != OrderStatus::Fulfilled && !is_refunded(s) =>
            {
                let event = Event::OrderShippedV1 {
                    order_id: OrderId::new(order_id),
                };
                self.publish_event(site_id, &format!("reconcile-writeback-{site_id}-{order_id}"), event)
                    .await?;
                summary.repaired("writeback");
            }
            (Some(s), Some(local)) if is_refunded(s) && local.state == OrderState::Fulfilled => {
                // Gone to the customer, then refunded or lost in a dispute: a return or an
                // interception may be needed, never a silent `fulfilled`.
                let reason = format!(
                    "webflow status {} after shipping (found by reconciliation): a return or an interception may be needed",
                    s.as_str()
                );
                if self.to_review(local.id, &reason).await? {
                    summary.repaired("needs_review");
                }
            }
            (Some(s), Some(local)) if is_refunded(s) && !local.state.is_terminal() => {
                let reason = format!("webflow status {} (found by reconciliation)", s.as_str());
                let event = Event::OrderCancelledV1 {
                    order_id: OrderId::new(order_id),
                    reason,
                };
                self.publish_event(site_id, &format!("reconcile-cancel-{site_id}-{order_id}"), event)
                    .await?;
                summary.repaired("cancelled");
            }
            (Some(OrderStatus::Fulfilled), Some(local))
                if local.state.progress() < OrderState::Shipped.progress() && !local.state.is_terminal() =>
            {
                let mut client = self.pool.get().await?;
                let tx = client.transaction().await.map_err(warehouse_db::DbError::from)?;
                if let Some(current) = orders::lock_by_id(&tx, local.id).await?
                    && current.state.can_transition_to(OrderState::NeedsReview)
                    && current.state.progress() < OrderState::Shipped.progress()
                {
                    orders::transition(
                        &*tx,
                        &current,
                        OrderState::NeedsReview,
                        Some("fulfilled in Webflow by hand, not shipped by the warehouse (reconciliation)"),
                        ACTOR,
                    )
                    .await?;
                    tx.commit().await.map_err(warehouse_db::DbError::from)?;
                    summary.repaired("needs_review");
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Moves a fulfilled order to `needs_review` (if it still is fulfilled); returns whether it
    /// did.
    async fn to_review(&self, order_pk: i64, reason: &str) -> Result<bool, ReconcileError> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await.map_err(warehouse_db::DbError::from)?;
        let Some(current) = orders::lock_by_id(&tx, order_pk).await? else {
            return Ok(false);
        };
        if current.state != OrderState::Fulfilled {
            return Ok(false);
        }
        orders::transition(&*tx, &current, OrderState::NeedsReview, Some(reason), ACTOR).await?;
        tx.commit().await.map_err(warehouse_db::DbError::from)?;
        Ok(true)
    }

    /// Publishes the order as if its webhook had arrived (same routing, deterministic id).
    async fn inject_webhook(&self, site_id: &SiteId, order: &Order) -> Result<(), ReconcileError> {
        let trigger = WebhookTrigger::NewOrder;
        let body = serde_json::to_vec(&serde_json::json!({"triggerType": trigger.as_str(), "payload": order}))
            .unwrap_or_default();
        let order_id = order.order_id.as_deref().unwrap_or_default();
        let message_id = content_id(
            "reconcile",
            &[
                site_id.as_str().as_bytes(),
                order_id.as_bytes(),
                trigger.as_str().as_bytes(),
            ],
        );
        let properties = contract::webhook_properties(&WebhookMessage {
            site_id: site_id.as_str(),
            trigger_type: trigger,
            webflow_timestamp: None,
            received_at: chrono::Utc::now(),
            trace_id: &message_id,
            message_id: &message_id,
            source: MessageSource::Reconcile,
            app_id: APP_ID,
        });
        self.publisher
            .publish(
                &self.topology.events_exchange(),
                trigger.routing_key(),
                &body,
                properties,
            )
            .await?;
        // The repair's id is the trace id of what follows from it.
        tracing::info!(%site_id, order_id, trace_id = %message_id, "re-injected a paid order whose webhook was lost");
        Ok(())
    }

    async fn publish_event(&self, site_id: &SiteId, message_id: &str, event: Event) -> Result<(), ReconcileError> {
        let envelope = Envelope::new(MessageId::new(message_id), message_id, site_id.clone(), event);
        let body = serde_json::to_vec(&envelope).unwrap_or_default();
        let properties = contract::event_properties(
            message_id,
            message_id,
            Some(site_id.as_str()),
            APP_ID,
            Some(MessageSource::Reconcile),
        );
        self.publisher
            .publish(
                &self.topology.events_exchange(),
                envelope.event.routing_key(),
                &body,
                properties,
            )
            .await?;
        tracing::info!(
            %site_id,
            message_id,
            trace_id = message_id,
            routing_key = envelope.event.routing_key(),
            "repair enqueued"
        );
        Ok(())
    }
}

fn is_refunded(status: &OrderStatus) -> bool {
    matches!(status, OrderStatus::Refunded | OrderStatus::DisputeLost)
}

/// Prometheus metrics of the loop mode.
#[derive(Clone)]
pub struct ReconcileMetrics {
    pub checked: prometheus::IntCounter,
    pub repaired: prometheus::IntCounterVec,
    pub api_calls: prometheus::IntCounter,
    pub failures: prometheus::IntCounter,
}

impl ReconcileMetrics {
    pub fn register(registry: &prometheus::Registry) -> Result<Self, prometheus::Error> {
        let checked = prometheus::IntCounter::new("wms_reconcile_orders_checked_total", "Webflow orders compared")?;
        let repaired = prometheus::IntCounterVec::new(
            prometheus::Opts::new("wms_reconcile_repaired_total", "Repairs, by kind"),
            &["kind"],
        )?;
        let api_calls =
            prometheus::IntCounter::new("wms_reconcile_api_calls_total", "Webflow calls made by reconciliation")?;
        let failures = prometheus::IntCounter::new("wms_reconcile_failures_total", "Runs that failed")?;
        registry.register(Box::new(checked.clone()))?;
        // Every kind from 0, so `increase()` sees the first repair and the series exist.
        for kind in ["lost_webhook", "writeback", "needs_review", "cancelled"] {
            repaired.with_label_values(&[kind]);
        }
        registry.register(Box::new(repaired.clone()))?;
        registry.register(Box::new(api_calls.clone()))?;
        registry.register(Box::new(failures.clone()))?;
        Ok(Self {
            checked,
            repaired,
            api_calls,
            failures,
        })
    }

    pub fn record(&self, summary: &Summary) {
        self.checked.inc_by(summary.checked);
        self.api_calls.inc_by(summary.api_calls);
        for (kind, count) in &summary.repaired {
            self.repaired.with_label_values(&[kind]).inc_by(*count);
        }
    }
}

/// The reconciliation job over its service base: one pass ([`ReconcileService::run_once`],
/// `reconcile --once` for a CronJob) or a loop every `reconcile.interval_secs`.
pub struct ReconcileService {
    reconciler: Reconciler,
    base: ServiceBase,
    interval: Duration,
}

/// Builds the job: the service base, the Webflow gateway with the reconciliation sub-budget
/// (`reconcile.budget_share`), and waits for RabbitMQ (every repair is a publish).
pub async fn build(settings: Settings, shutdown: CancellationToken) -> Result<ReconcileService, StartupError> {
    // One connection more than `database.pool_size`: a pass holds the reconciliation lock on
    // its own connection for as long as it runs (warehouse_db::job_lock).
    let base = ServiceBase::start(ACTOR, &settings.base, 1, shutdown.clone()).await?;
    let (stores, gateway) = WebflowGateway::start_with_stores(
        &settings.webflow,
        &settings.base.secrets,
        base.pool.clone(),
        Some(settings.reconcile.budget_share),
        shutdown.clone(),
    )
    .await
    .map_err(StartupError::dependency)?;
    gateway.export_metrics(&base.registry, shutdown.clone())?;
    base.amqp
        .wait_ready(BROKER_WAIT)
        .await
        .map_err(|e| StartupError::dependency(format!("RabbitMQ is not reachable: {e}")))?;
    let reconciler = Reconciler::new(
        gateway,
        base.pool.clone(),
        base.publisher.clone(),
        base.topology.clone(),
        stores,
    );
    Ok(ReconcileService {
        reconciler,
        base,
        interval: Duration::from_secs(settings.reconcile.interval_secs),
    })
}

impl ReconcileService {
    pub fn reconciler(&self) -> &Reconciler {
        &self.reconciler
    }

    pub async fn run_once(&self) -> Result<Summary, ReconcileError> {
        self.reconciler.run_once().await
    }

    /// Runs a pass every interval until `shutdown`, serving health and metrics meanwhile.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> std::io::Result<()> {
        let metrics = ReconcileMetrics::register(&self.base.registry).map_err(std::io::Error::other)?;
        let health = self
            .base
            .serve_health(vec![self.base.broker_check()])
            .map_err(std::io::Error::other)?;
        loop {
            match self.reconciler.run_once().await {
                Ok(summary) => metrics.record(&summary),
                Err(error) => {
                    metrics.failures.inc();
                    tracing::error!(error.message = %error, "reconciliation failed; will try again next interval");
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tokio::time::sleep(self.interval) => {}
            }
        }
        service_base::stop_health(health).await;
        Ok(())
    }
}

impl RunUntilStopped for ReconcileService {
    async fn run_until_stopped(self, shutdown: CancellationToken) -> std::io::Result<()> {
        ReconcileService::run_until_stopped(self, shutdown).await
    }
}
