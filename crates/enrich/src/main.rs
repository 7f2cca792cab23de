//! `enrich`: wires settings, telemetry and shutdown; the logic is in the library.

use anyhow::Context;
use enrich::handler::EnrichMetrics;
use enrich::{EnrichHandler, Settings};
use worker::service::WorkerService;
use worker::webflow_gateway::WebflowGateway;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings: Settings = platform::settings::load().context("invalid configuration")?;
    platform::telemetry::init(platform::telemetry::subscriber(
        &settings.base.telemetry,
        std::io::stdout,
    ));
    let shutdown = platform::shutdown::on_signal();
    let client = worker::webflow_gateway::client_from_settings(&settings.webflow)?;
    let pool = warehouse_db::connect(&settings.base.database.url, 4).await?;
    let gateway = WebflowGateway::new(client, pool, settings.webflow.sites.values().cloned(), 0.2);
    let registry = prometheus::Registry::new();
    let handler = EnrichHandler::new(
        gateway.clone(),
        settings.webflow.sites.values().cloned(),
        settings.enrich.always_fetch,
        EnrichMetrics::register(&registry)?,
    );
    let service = WorkerService::build(handler, &settings.base, registry, shutdown.clone())
        .await
        .context("cannot start enrich")?;
    // After the service is built: its start-up has applied the migrations.
    gateway
        .ensure_budgets()
        .await
        .context("cannot set up the Webflow rate budget")?;
    tracing::info!(health_port = service.health_port(), "enrich started");
    service.run_until_stopped(shutdown).await;
    Ok(())
}
