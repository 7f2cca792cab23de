//! `warehouse`: wires settings, telemetry and shutdown; the logic is in the library.

use anyhow::Context;
use warehouse::{Application, Settings};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings: Settings = platform::settings::load().context("invalid configuration")?;
    platform::telemetry::init(platform::telemetry::subscriber(
        &settings.base.telemetry,
        std::io::stdout,
    ));
    let shutdown = platform::shutdown::on_signal();
    let app = Application::build(settings, shutdown)
        .await
        .context("cannot start the warehouse API")?;
    tracing::info!(port = app.port(), "warehouse API listening");
    app.run_until_stopped().await.context("warehouse stopped with an error")
}
