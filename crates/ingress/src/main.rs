//! `ingress`: loads settings, starts telemetry and serves what the library builds; also a
//! `healthcheck` subcommand for distroless container health checks.

use anyhow::Context;
use clap::{Parser, Subcommand};

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
    Ok(platform::service::launch("ingress", ingress::build).await?)
}
