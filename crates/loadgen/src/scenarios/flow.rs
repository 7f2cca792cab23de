//! `wms-loadgen flow`: orders placed in `webflow-sim` carried through the whole pipeline until
//! they reach a state (e.g. `fulfilled`), as a backlog, at a steady rate, or (with
//! `--create false`) the drain of a backlog already in the database against a rate limit.

use crate::cost::{CostOptions, CostProbe};
use crate::progress::{Wait, Warehouse};
use crate::sim::SimClient;
use crate::stats::Report;
use futures_util::StreamExt;
use std::collections::HashMap;
use std::time::{Duration, Instant};
use webflow_sim::state::WriteRecord;

/// What the simulator sells in this scenario (the bench script stocks it); with `--skus N`,
/// orders cycle through `bench-sku-0..N` instead.
const SKU: &str = "bench-sku-1";
/// Orders placed at once when no rate is given, so placing is not what limits the throughput.
const PLACING_CONCURRENCY: usize = 16;
const WAIT: Wait = Wait {
    poll: Duration::from_millis(100),
    stall_after: Duration::from_secs(90),
};

#[derive(clap::Args, Debug)]
pub struct FlowOptions {
    #[arg(long, default_value = "http://127.0.0.1:18090")]
    pub sim_url: String,
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/wms_bench")]
    pub database_url: String,
    #[arg(long, default_value_t = 1_000)]
    pub orders: usize,
    /// Create the orders (false: only wait, e.g. after starting notify-webflow).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub create: bool,
    #[arg(long, default_value = "fulfilled")]
    pub state: String,
    /// The Webflow limit the simulator enforces (for the theoretical minimum).
    #[arg(long, default_value_t = 0)]
    pub limit_per_minute: u32,
    /// Orders placed per second (0: as fast as 16 concurrent requests go, i.e. a backlog).
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
    /// Products the orders cycle through (`bench-sku-0..N`); 1: every order is `bench-sku-1`.
    #[arg(long, default_value_t = 1)]
    pub skus: usize,
    #[command(flatten)]
    pub cost: CostOptions,
}

/// The SKU of the `i`-th order.
fn sku_of(i: usize, skus: usize) -> String {
    if skus <= 1 {
        SKU.to_owned()
    } else {
        format!("bench-sku-{}", i % skus)
    }
}

pub async fn run(options: FlowOptions) -> anyhow::Result<()> {
    let warehouse = Warehouse::connect(&options.database_url).await?;
    let sim = SimClient::new(&options.sim_url);
    let states = [options.state.as_str()];
    let before = warehouse.orders_in(&states).await?;
    let probe = CostProbe::start(options.cost.clone(), &options.database_url).await?;
    let started = Instant::now();
    let placed_from = chrono::Utc::now().timestamp_millis();
    if options.create {
        place_orders(&sim, options.orders, options.rate, options.skus).await?;
    }
    warehouse
        .wait_for(&states, before, before + options.orders as i64, WAIT)
        .await?;
    let elapsed = started.elapsed();
    print_api_use(&sim, &options, elapsed).await?;
    if options.limit_per_minute > 0 {
        print_minimum(&options, elapsed);
    }
    print_latency(&sim, elapsed, placed_from).await?;
    probe.finish(options.orders).await
}

/// Places `orders` orders, at `rate` per second or (0) as a backlog.
async fn place_orders(sim: &SimClient, orders: usize, rate: f64, skus: usize) -> anyhow::Result<()> {
    let place = |i| {
        let sim = sim.clone();
        let sku = sku_of(i, skus);
        async move { sim.place_order(&[&sku]).await }
    };
    if rate > 0.0 {
        let mut ticks = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
        let mut placing = Vec::with_capacity(orders);
        for i in 0..orders {
            ticks.tick().await;
            placing.push(tokio::spawn(place(i)));
        }
        for task in placing {
            task.await??;
        }
    } else {
        let placed: Vec<Result<(), reqwest::Error>> = futures_util::stream::iter(0..orders)
            .map(place)
            .buffer_unordered(PLACING_CONCURRENCY)
            .collect()
            .await;
        placed.into_iter().collect::<Result<Vec<()>, _>>()?;
    }
    Ok(())
}

async fn print_api_use(sim: &SimClient, options: &FlowOptions, elapsed: Duration) -> anyhow::Result<()> {
    let stats = sim.stats().await?;
    let duplicates = duplicate_writes(&sim.writes().await?);
    let orders = options.orders as f64;
    println!(
        "{} orders reached `{}` in {:.1} s ({:.1} orders/s); Webflow API calls: {} ({:.2}/order), 429s: {}, duplicate writes: {duplicates}",
        options.orders,
        options.state,
        elapsed.as_secs_f64(),
        orders / elapsed.as_secs_f64(),
        stats.api_calls,
        stats.api_calls as f64 / orders,
        stats.throttled,
    );
    if stats.inventory_writes > 0 {
        println!(
            "of which stock-level pushes (inventory PATCH): {} ({:.3}/order); order calls: {:.2}/order",
            stats.inventory_writes,
            stats.inventory_writes as f64 / orders,
            (stats.api_calls - stats.inventory_writes - stats.inventory_reads) as f64 / orders,
        );
    }
    Ok(())
}

/// Two calls per order (PATCH and fulfil) at the simulator's limit.
fn print_minimum(options: &FlowOptions, elapsed: Duration) {
    let limit = options.limit_per_minute;
    let minimum = (2 * options.orders) as f64 / f64::from(limit) * 60.0;
    println!(
        "theoretical minimum at {limit}/min (2 calls per order): {minimum:.1} s; measured/minimum = {:.3}",
        elapsed.as_secs_f64() / minimum
    );
}

/// Webhook-to-fulfilled latency from the simulator's own clock, of the orders placed since
/// `placed_from` (epoch milliseconds; earlier runs against the same simulator are left out).
async fn print_latency(sim: &SimClient, elapsed: Duration, placed_from: i64) -> anyhow::Result<()> {
    let latencies = fulfil_latencies(&sim.orders().await?, placed_from);
    if !latencies.is_empty() {
        let report = Report::new("order placed -> fulfilled", latencies, 0, elapsed);
        println!(
            "latency placed -> fulfilled: p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
            report.p50_ms, report.p99_ms, report.max_ms
        );
    }
    Ok(())
}

/// Writes beyond the first of their kind (PATCH, fulfil, ...) for one order.
fn duplicate_writes(writes: &[WriteRecord]) -> u32 {
    let mut per_order: HashMap<(&str, &str), u32> = HashMap::new();
    for write in writes {
        let kind = if write.method == "PATCH" {
            "patch"
        } else {
            write.path.rsplit('/').next().unwrap_or_default()
        };
        *per_order.entry((write.order_id.as_str(), kind)).or_default() += 1;
    }
    per_order.values().map(|n| n.saturating_sub(1)).sum()
}

/// Accepted-to-fulfilled time of every fulfilled order accepted since `since` (epoch ms).
fn fulfil_latencies(orders: &[serde_json::Value], since: i64) -> Vec<Duration> {
    orders
        .iter()
        .filter(|order| {
            order["acceptedOn"]
                .as_str()
                .and_then(epoch_ms)
                .is_some_and(|accepted| accepted >= since)
        })
        .filter_map(fulfil_latency)
        .collect()
}

/// Accepted-to-fulfilled time of one order (`None`: not fulfilled).
pub(super) fn fulfil_latency(order: &serde_json::Value) -> Option<Duration> {
    let accepted = epoch_ms(order["acceptedOn"].as_str()?)?;
    let fulfilled = epoch_ms(order["fulfilledOn"].as_str()?)?;
    u64::try_from(fulfilled - accepted).ok().map(Duration::from_millis)
}

fn epoch_ms(rfc3339: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(rfc3339)
        .ok()
        .map(|d| d.timestamp_millis())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(method: &str, path: &str, order_id: &str) -> WriteRecord {
        WriteRecord {
            method: method.into(),
            path: path.into(),
            order_id: order_id.into(),
            body: serde_json::Value::Null,
            at: chrono::Utc::now(),
        }
    }

    #[test]
    fn a_second_write_of_a_kind_to_one_order_is_a_duplicate() {
        let writes = [
            write("PATCH", "/v2/sites/s/orders/a", "a"),
            write("POST", "/v2/sites/s/orders/a/fulfill", "a"),
            write("PATCH", "/v2/sites/s/orders/b", "b"),
            write("POST", "/v2/sites/s/orders/a/fulfill", "a"),
        ];
        assert_eq!(duplicate_writes(&writes), 1);
    }

    #[test]
    fn only_fulfilled_orders_have_a_latency() {
        let orders = [
            serde_json::json!({"acceptedOn": "2024-03-29T21:29:21.500Z", "fulfilledOn": "2024-03-29T21:29:21.580Z"}),
            serde_json::json!({"acceptedOn": "2024-03-29T21:29:21.500Z", "fulfilledOn": null}),
        ];
        assert_eq!(fulfil_latencies(&orders, 0), vec![Duration::from_millis(80)]);
        let later = epoch_ms("2024-03-29T21:29:22Z").unwrap();
        assert!(
            fulfil_latencies(&orders, later).is_empty(),
            "orders of an earlier run are left out"
        );
    }
}
