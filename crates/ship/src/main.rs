//! `ship`: wires settings, telemetry and shutdown; the logic is in the library.

use anyhow::Context;
use carrier::AnyCarrier;
use ship::{Settings, ShipHandler};
use std::sync::Arc;
use worker::service::WorkerService;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings: Settings = platform::settings::load().context("invalid configuration")?;
    platform::telemetry::init(platform::telemetry::subscriber(
        &settings.base.telemetry,
        std::io::stdout,
    ));
    let shutdown = platform::shutdown::on_signal();
    let carrier = Arc::new(AnyCarrier::from_settings(&settings.carrier)?);
    let pool = warehouse_db::connect(&settings.base.database.url, settings.base.database.pool_size).await?;
    // Lock holders get their own connections, one per delivery in flight.
    let locks = warehouse_db::connect(
        &settings.base.database.url,
        usize::from(settings.base.worker.concurrency) + 1,
    )
    .await?;
    let handler = ShipHandler::new(carrier, settings.carrier.ship_from.clone(), pool, locks);
    let service = WorkerService::build(handler, &settings.base, prometheus::Registry::new(), shutdown.clone())
        .await
        .context("cannot start ship")?;
    tracing::info!(health_port = service.health_port(), "ship started");
    service.run_until_stopped(shutdown).await;
    Ok(())
}
