//! `wms-loadgen pipeline`: orders per second from signed webhook to `reserved` (or
//! `backordered`) through ingress, enrich and reserve, with database transactions and Webflow
//! API calls per order. Partial payloads make enrich GET each order from `webflow-sim`.

use crate::cost::{CostOptions, CostProbe};
use crate::progress::{Wait, Warehouse};
use crate::sim::SimClient;
use crate::workload::{WebhookEndpoint, closed_loop, order, webhook_body};
use anyhow::Context;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// An order has gone through the pipeline when reserve has decided on it.
const SETTLED: &[&str] = &["reserved", "backordered"];
const WAIT: Wait = Wait {
    poll: Duration::from_millis(50),
    stall_after: Duration::from_secs(30),
};

#[derive(clap::Args, Debug)]
pub struct PipelineOptions {
    #[command(flatten)]
    pub webhooks: WebhookEndpoint,
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/wms_bench")]
    pub database_url: String,
    #[arg(long, default_value_t = 5_000)]
    pub orders: usize,
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Send webhooks without the shipping address, so enrich must GET each order (from the
    /// simulator at `--sim-url`, which is given the complete orders first).
    #[arg(long)]
    pub partial: bool,
    /// The `webflow-sim` that enrich calls (its root, e.g. http://127.0.0.1:18081): counts the
    /// API calls; required with `--partial`.
    #[arg(long)]
    pub sim_url: Option<String>,
    /// Products in the catalog; orders cycle through `bench-sku-0..N`.
    #[arg(long, default_value_t = 50)]
    pub skus: usize,
    #[command(flatten)]
    pub cost: CostOptions,
}

/// The counters a run is measured by, read before and after it.
#[derive(Clone, Copy, Debug)]
struct Counters {
    settled: i64,
    transactions: i64,
    api_calls: u64,
}

impl Counters {
    async fn read(warehouse: &Warehouse, sim: Option<&SimClient>) -> anyhow::Result<Self> {
        let api_calls = match sim {
            Some(sim) => sim.stats().await?.api_calls,
            None => 0,
        };
        Ok(Self {
            settled: warehouse.orders_in(SETTLED).await?,
            transactions: warehouse.transactions().await?,
            api_calls,
        })
    }
}

pub async fn run(options: PipelineOptions) -> anyhow::Result<()> {
    let warehouse = Warehouse::connect(&options.database_url).await?;
    let sim = options.sim_url.as_deref().map(SimClient::new);
    let run = format!("p{}{}", std::process::id(), if options.partial { "p" } else { "c" });
    if options.partial {
        let sim = sim
            .as_ref()
            .context("--partial needs --sim-url: enrich fetches each order from the simulator")?;
        give_orders_to(sim, &run, &options).await?;
    }
    let before = Counters::read(&warehouse, sim.as_ref()).await?;
    let probe = CostProbe::start(options.cost.clone(), &options.database_url).await?;
    let started = Instant::now();
    let failed = send_webhooks(&run, &options).await?;
    let goal = before.settled + options.orders as i64 - failed as i64;
    warehouse.wait_for(SETTLED, before.settled, goal, WAIT).await?;
    let elapsed = started.elapsed();
    // pg_stat counters are updated when a backend reports; give them a moment.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let after = Counters::read(&warehouse, sim.as_ref()).await?;
    print_summary(&options, elapsed, before, after);
    probe.finish(options.orders).await
}

/// Stores the run's complete orders in the simulator (before timing), so enrich's GET finds
/// each one exactly as the webhook would have carried it.
async fn give_orders_to(sim: &SimClient, run: &str, options: &PipelineOptions) -> anyhow::Result<()> {
    let orders: Vec<_> = (0..options.orders).map(|i| order(run, i, options.skus)).collect();
    sim.import_orders(&orders).await
}

/// Sends the run's webhooks at `concurrency`; returns how many were not accepted.
async fn send_webhooks(run: &str, options: &PipelineOptions) -> anyhow::Result<usize> {
    let target = Arc::new(options.webhooks.target(reqwest::Client::new()));
    let (run, complete, skus) = (run.to_owned(), !options.partial, options.skus);
    let sent = closed_loop("webhooks sent", options.orders, options.concurrency, move |_, i| {
        let (target, body) = (target.clone(), webhook_body(&run, i, complete, skus));
        async move { target.send(body).await }
    })
    .await;
    println!("{}", sent.line());
    Ok(sent.failed)
}

fn print_summary(options: &PipelineOptions, elapsed: Duration, before: Counters, after: Counters) {
    let orders = options.orders as f64;
    println!(
        "pipeline ({} payloads, {} SKUs): {} orders settled in {:.2} s = {:.0} orders/s; {:.1} database transactions/order; {:.2} Webflow API calls/order",
        if options.partial { "partial" } else { "complete" },
        options.skus,
        options.orders,
        elapsed.as_secs_f64(),
        orders / elapsed.as_secs_f64(),
        (after.transactions - before.transactions) as f64 / orders,
        after.api_calls.saturating_sub(before.api_calls) as f64 / orders,
    );
}
