//! `notify-webflow`: wires settings, telemetry and shutdown; the logic is in the library.

use anyhow::Context;
use notify_webflow::{NotifyHandler, Settings};
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
    let pool = warehouse_db::connect(&settings.base.database.url, settings.base.database.pool_size).await?;
    let sites: Vec<_> = settings.webflow.sites.values().cloned().collect();
    let gateway = WebflowGateway::new(client, pool.clone(), sites.clone(), 0.2);
    // Lock holders get their own connections, one per delivery in flight.
    let locks = warehouse_db::connect(
        &settings.base.database.url,
        usize::from(settings.base.worker.concurrency) + 1,
    )
    .await?;
    let handler = NotifyHandler::new(gateway.clone(), pool, locks, sites);
    let service = WorkerService::build(handler, &settings.base, prometheus::Registry::new(), shutdown.clone())
        .await
        .context("cannot start notify-webflow")?;
    // After the service is built: its start-up has applied the migrations.
    gateway
        .ensure_budgets()
        .await
        .context("cannot set up the Webflow rate budget")?;
    tracing::info!(health_port = service.health_port(), "notify-webflow started");
    service.run_until_stopped(shutdown).await;
    Ok(())
}
