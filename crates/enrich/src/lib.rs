//! The `enrich` worker: turns Webflow order webhooks into warehouse orders.
//!
//! Webflow's order webhooks carry the full order; the worker uses it when it is complete and
//! calls `GET /sites/{site_id}/orders/{order_id}` only when it is not (or when
//! `enrich.always_fetch` is set). Out-of-order and duplicate events never move an order
//! backwards.

pub mod handler;
pub mod settings;

pub use handler::EnrichHandler;
pub use settings::Settings;

use handler::EnrichMetrics;
use service_base::{ServiceBase, StartupError};
use tokio_util::sync::CancellationToken;
use webflow_gateway::WebflowGateway;
use worker::{Handler, WorkerService};

/// Builds the worker: the service base, the stores (config stores imported, refreshed from the
/// database), the Webflow gateway over its pool (budgets set up after the migrations, and for
/// every store added later), and the handler.
pub async fn build(
    settings: Settings,
    shutdown: CancellationToken,
) -> Result<WorkerService<EnrichHandler>, StartupError> {
    let base = ServiceBase::start(EnrichHandler::NAME, &settings.base, 0, shutdown.clone()).await?;
    let (stores, gateway) = WebflowGateway::start_with_stores(
        &settings.webflow,
        &settings.base.secrets,
        base.pool.clone(),
        None,
        shutdown.clone(),
    )
    .await
    .map_err(StartupError::dependency)?;
    gateway.export_metrics(&base.registry, shutdown)?;
    let handler = EnrichHandler::new(
        gateway,
        base.pool.clone(),
        stores,
        settings.enrich.always_fetch,
        EnrichMetrics::register(&base.registry)?,
    );
    WorkerService::start(handler, &base)
}
