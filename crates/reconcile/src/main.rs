//! `reconcile`: one pass (`--once`, for a Kubernetes CronJob) or a loop.

#![allow(clippy::print_stdout, reason = "the summary is the output of --once")]

use anyhow::Context;
use clap::Parser;
use platform::amqp::{AmqpClient, Publisher, Topology};
use reconcile::{ReconcileMetrics, Reconciler, Settings};
use std::sync::Arc;
use std::time::Duration;
use worker::webflow_gateway::WebflowGateway;

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
    let settings: Settings = platform::settings::load().context("invalid configuration")?;
    platform::telemetry::init(platform::telemetry::subscriber(
        &settings.base.telemetry,
        std::io::stdout,
    ));
    let shutdown = platform::shutdown::on_signal();
    let base = &settings.base;
    let pool = warehouse_db::connect(&base.database.url, 4).await?;
    if base.database.migrate_on_start {
        warehouse_db::migrate::run(&pool).await?;
    }
    let client = worker::webflow_gateway::client_from_settings(&settings.webflow)?;
    let sites: Vec<_> = settings.webflow.sites.values().cloned().collect();
    let gateway = WebflowGateway::new(client, pool.clone(), sites.clone(), settings.reconcile.budget_share);
    gateway.ensure_budgets().await?;
    let topology = Topology::from_settings(&base.amqp);
    let amqp = AmqpClient::start(
        base.amqp.url.clone(),
        "wms-reconcile",
        topology.clone(),
        base.amqp.reconnect.clone(),
        shutdown.clone(),
    );
    amqp.wait_ready(Duration::from_secs(30))
        .await
        .context("RabbitMQ is not reachable")?;
    let publisher = Publisher::new(amqp.clone(), Duration::from_secs(10));
    let reconciler = Reconciler::new(
        gateway,
        pool,
        publisher,
        topology,
        sites.into_iter().map(|s| s.site_id).collect(),
    );

    if cli.once {
        let summary = reconciler.run_once().await.context("reconciliation failed")?;
        println!("{}", serde_json::to_string_pretty(&summary)?);
        return Ok(());
    }
    let registry = prometheus::Registry::new();
    let metrics = ReconcileMetrics::register(&registry)?;
    let ready = amqp.clone();
    let health = platform::health::serve(
        base.health.socket_addr()?,
        platform::health::HealthState::new(registry, vec![("rabbitmq", Arc::new(move || ready.is_ready()))]),
    )?;
    let interval = Duration::from_secs(settings.reconcile.interval_secs);
    loop {
        match reconciler.run_once().await {
            Ok(summary) => metrics.record(&summary),
            Err(error) => {
                metrics.failures.inc();
                tracing::error!(error.message = %error, "reconciliation failed; will try again next interval");
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(interval) => {}
        }
    }
    health.handle.stop(true).await;
    Ok(())
}
