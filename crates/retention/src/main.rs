//! `prune`: one pruning pass over the warehouse database (for a Kubernetes CronJob); prints
//! what it deleted as JSON and exits.

#![allow(clippy::print_stdout, reason = "the summary is the output")]

use anyhow::Context;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let (settings, shutdown) = platform::service::init::<retention::Settings>(retention::ACTOR)?;
    let pruner = retention::build(settings, shutdown)
        .await
        .context("cannot start prune")?;
    let summary = pruner.run_once().await.context("pruning failed");
    platform::service::finish().await;
    let summary = summary?;
    println!("{}", serde_json::to_string_pretty(&summary)?);
    Ok(())
}
