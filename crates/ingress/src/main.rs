//! `ingress`: wires settings, telemetry and shutdown; the logic is in the library.

use anyhow::Context;
use clap::{Parser, Subcommand};
use ingress::{Application, Settings};

#[derive(Parser)]
#[command(version, about = "Receives Webflow webhooks and publishes them to RabbitMQ")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Exits 0 when `url` answers 2xx (container health checks without a shell).
    Healthcheck { url: String },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    if let Some(Command::Healthcheck { url }) = Cli::parse().command {
        return platform::health::probe(&url).await.context("health check failed");
    }
    let settings: Settings = platform::settings::load().context("invalid configuration")?;
    platform::telemetry::init(platform::telemetry::subscriber(&settings.telemetry, std::io::stdout));
    let shutdown = platform::shutdown::on_signal();
    let app = Application::build(settings, shutdown).context("cannot start the ingress")?;
    tracing::info!(port = app.port(), health_port = app.health_port(), "ingress listening");
    app.run_until_stopped().await.context("ingress stopped with an error")
}
