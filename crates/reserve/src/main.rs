//! `reserve`: wires settings, telemetry and shutdown; the logic is in the library.

use anyhow::Context;
use reserve::ReserveHandler;
use worker::service::{BaseSettings, WorkerService};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings: BaseSettings = platform::settings::load().context("invalid configuration")?;
    platform::telemetry::init(platform::telemetry::subscriber(&settings.telemetry, std::io::stdout));
    let shutdown = platform::shutdown::on_signal();
    let service = WorkerService::build(ReserveHandler, &settings, prometheus::Registry::new(), shutdown.clone())
        .await
        .context("cannot start reserve")?;
    tracing::info!(health_port = service.health_port(), "reserve started");
    service.run_until_stopped(shutdown).await;
    Ok(())
}
