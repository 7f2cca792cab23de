//! `reconcile`: one pass (`--once`, for a Kubernetes CronJob) or a loop.

#![allow(clippy::print_stdout, reason = "the summary is the output of --once")]

use anyhow::Context;
use clap::Parser;

#[derive(Parser)]
#[command(about = "Repairs what Webflow webhooks missed")]
struct Cli {
    /// Run one pass, print the summary and exit.
    #[arg(long)]
    once: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if !cli.once {
        return Ok(platform::service::launch("reconcile", reconcile::build).await?);
    }
    let (settings, shutdown) = platform::service::init::<reconcile::Settings>("reconcile")?;
    let service = reconcile::build(settings, shutdown)
        .await
        .context("cannot start reconcile")?;
    let summary = service.run_once().await.context("reconciliation failed");
    platform::service::finish().await;
    let summary = summary?;
    println!("{}", serde_json::to_string_pretty(&summary)?);
    Ok(())
}
