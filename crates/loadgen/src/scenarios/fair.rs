//! `wms-loadgen fair` and `wms-loadgen fair-sites`: per-store fair scheduling of Webflow calls
//! (issue #12). One big store's backlog of shipped orders drains against its own rate limit
//! while many small stores keep placing orders; the small stores must not wait behind it.
//!
//! `fair-sites` writes the small stores' configuration (a file for `WMS_CONFIG`) and prints the
//! simulator's `--extra-sites` for them, so both come from [`small_store`]. `fair` starts its
//! clock when it starts (the bench script starts the `notify-webflow` replicas just before), places
//! one order every `small_interval_secs` in each small store (staggered) until the big store's
//! backlog is fulfilled, then waits for the small stores' orders and reports: the drain time
//! against the theoretical minimum, the small stores' latency, 429s, and the peak worker slots and
//! PostgreSQL connections in use, sampled throughout.

use crate::progress::{Connections, Wait, Warehouse};
use crate::sim::SimClient;
use crate::stats::Report;
use anyhow::{Context, bail};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tokio::sync::watch;

/// What every store sells here (the bench script stocks it).
const SKU: &str = "bench-sku-1";
const WAIT: Wait = Wait {
    poll: Duration::from_millis(100),
    stall_after: Duration::from_secs(90),
};
/// How often the worker slots and connections are sampled.
const SAMPLE_EVERY: Duration = Duration::from_millis(250);
/// The worker gauge of the consumer this benchmark is about.
const IN_FLIGHT: &str = "wms_worker_in_flight";
/// Of the deliveries in flight, those waiting for a budget slot without holding a worker slot.
const WAITING: &str = "wms_worker_waiting_for_budget";
const CONSUMER_LABEL: &str = "consumer=\"notify-webflow\"";
const RESERVED: &str = "wms_webflow_budget_reserved";

/// One small store: its configuration name, Webflow site id, token and webhook secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SmallStore {
    pub name: String,
    pub site_id: String,
    pub token: String,
    pub secret: String,
}

/// The `index`-th small store (0-based). Site ids are 24 hex digits, as Webflow's are.
pub fn small_store(index: usize) -> SmallStore {
    let number = index + 1;
    SmallStore {
        name: format!("small{number:03}"),
        site_id: format!("5a11c0ffee00000000{number:06x}"),
        token: format!("small-token-{number:03}"),
        secret: format!("small-secret-{number:03}"),
    }
}

#[derive(clap::Args, Debug)]
pub struct SitesOptions {
    #[arg(long, default_value_t = 50)]
    pub small_stores: usize,
    /// Each small store's limit (requests per minute), in the simulator and the configuration.
    #[arg(long, default_value_t = 60)]
    pub small_limit: u32,
    /// Where to write the configuration file (TOML) naming the small stores.
    #[arg(long)]
    pub config: PathBuf,
}

/// Writes the small stores' `webflow.sites` to `--config` and prints the simulator's
/// `--extra-sites` value for them.
pub fn write_sites(options: &SitesOptions) -> anyhow::Result<()> {
    let stores: Vec<SmallStore> = (0..options.small_stores).map(small_store).collect();
    std::fs::write(&options.config, sites_config(&stores, options.small_limit)?)
        .with_context(|| format!("cannot write {}", options.config.display()))?;
    println!("{}", sim_sites(&stores, options.small_limit));
    Ok(())
}

#[derive(Serialize)]
struct ConfigFile {
    webflow: WebflowSection,
}

#[derive(Serialize)]
struct WebflowSection {
    sites: BTreeMap<String, SiteSection>,
}

#[derive(Serialize)]
struct SiteSection {
    site_id: String,
    api_token: String,
    webhook_secrets: Vec<String>,
    rate_limit_per_minute: u32,
}

/// The `[webflow.sites.<name>]` tables of `stores`, as TOML.
fn sites_config(stores: &[SmallStore], limit: u32) -> anyhow::Result<String> {
    let sites = stores
        .iter()
        .map(|store| {
            let site = SiteSection {
                site_id: store.site_id.clone(),
                api_token: store.token.clone(),
                webhook_secrets: vec![store.secret.clone()],
                rate_limit_per_minute: limit,
            };
            (store.name.clone(), site)
        })
        .collect();
    let file = ConfigFile {
        webflow: WebflowSection { sites },
    };
    Ok(toml::to_string(&file)?)
}

/// `site_id:token:secret:limit`, comma-separated (`webflow-sim --extra-sites`).
fn sim_sites(stores: &[SmallStore], limit: u32) -> String {
    stores
        .iter()
        .map(|s| format!("{}:{}:{}:{limit}", s.site_id, s.token, s.secret))
        .collect::<Vec<_>>()
        .join(",")
}

#[derive(clap::Args, Debug)]
pub struct FairOptions {
    #[arg(long, default_value = "http://127.0.0.1:18092")]
    pub sim_url: String,
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/wms_bench")]
    pub database_url: String,
    /// The big store (the simulator's main site), whose `shipped` orders are the backlog.
    #[arg(long, default_value = "65f0c0ffee0000000000beef")]
    pub big_site_id: String,
    #[arg(long, default_value = "bench-token")]
    pub big_token: String,
    /// The big store's limit (requests per minute), for the theoretical minimum.
    #[arg(long, default_value_t = 600)]
    pub big_limit: u32,
    /// Webflow calls per order (PATCH and fulfil), for the theoretical minimum.
    #[arg(long, default_value_t = 2)]
    pub calls_per_order: u32,
    /// As many as `fair-sites` configured.
    #[arg(long, default_value_t = 50)]
    pub small_stores: usize,
    /// Each small store places one order this often while the backlog drains.
    #[arg(long, default_value_t = 10.0)]
    pub small_interval_secs: f64,
    /// A `notify-webflow` replica's `/metrics` (repeat for each replica): worker slots in use.
    #[arg(long = "metrics-url")]
    pub metrics_urls: Vec<String>,
    /// For the report: how many replicas run, and each one's `worker.concurrency`.
    #[arg(long, default_value_t = 1)]
    pub replicas: usize,
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
}

/// When the `k`-th placement happens, counted from the start, and in which small store: the
/// stores take turns, `interval / stores` apart, so each places one order every `interval`.
pub fn placement(k: usize, stores: usize, interval: Duration) -> (usize, Duration) {
    let stores = stores.max(1);
    let step = interval.as_secs_f64() / stores as f64;
    (k % stores, Duration::from_secs_f64(step * k as f64))
}

/// The drain's lower bound: every call of the backlog at the store's limit.
pub fn theoretical_minimum(orders: i64, calls_per_order: u32, limit_per_minute: u32) -> Duration {
    let calls = orders.max(0) as f64 * f64::from(calls_per_order);
    Duration::from_secs_f64(calls * 60.0 / f64::from(limit_per_minute.max(1)))
}

/// The sum, over the series of `metric` whose labels contain `label`, of their values in a
/// Prometheus text exposition (`None`: no such series).
pub fn metric_sum(exposition: &str, metric: &str, label: &str) -> Option<f64> {
    let values: Vec<f64> = exposition
        .lines()
        .filter_map(|line| {
            let rest = line.strip_prefix(metric)?;
            let (labels, value) = match rest.strip_prefix('{') {
                Some(rest) => rest.split_once('}')?,
                None if rest.starts_with(' ') => ("", rest),
                None => return None,
            };
            labels.contains(label).then(|| value.trim().parse::<f64>().ok())?
        })
        .collect();
    (!values.is_empty()).then(|| values.iter().sum())
}

/// A replica's worker slots in use: its deliveries in flight that are not waiting for a budget
/// slot, at most its concurrency (the others are prefetched, queued for a slot).
pub fn worker_slots_in_use(in_flight: f64, waiting: f64, concurrency: usize) -> f64 {
    (in_flight - waiting).clamp(0.0, concurrency as f64)
}

/// Peaks and means of what was sampled during the drain.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Samples {
    pub count: usize,
    /// Worker slots in use: deliveries in flight, less those waiting outside a slot.
    pub slots_peak: f64,
    slots_total: f64,
    /// Deliveries waiting for a budget slot outside a worker slot (prefetched).
    pub waiting_peak: f64,
    waiting_total: f64,
    pub open_connections_peak: i64,
    pub busy_connections_peak: i64,
    /// The big store's reserved slots (messages parked until their slot), as the replicas
    /// export them (refreshed every 5 s).
    pub big_reserved_peak: f64,
}

impl Samples {
    pub fn observe(&mut self, slots: f64, waiting: f64, connections: Connections, big_reserved: f64) {
        self.count += 1;
        self.slots_peak = self.slots_peak.max(slots);
        self.slots_total += slots;
        self.waiting_peak = self.waiting_peak.max(waiting);
        self.waiting_total += waiting;
        self.open_connections_peak = self.open_connections_peak.max(connections.open);
        self.busy_connections_peak = self.busy_connections_peak.max(connections.busy);
        self.big_reserved_peak = self.big_reserved_peak.max(big_reserved);
    }

    pub fn slots_mean(&self) -> f64 {
        self.mean(self.slots_total)
    }

    pub fn waiting_mean(&self) -> f64 {
        self.mean(self.waiting_total)
    }

    fn mean(&self, total: f64) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            total / self.count as f64
        }
    }
}

/// An order placed in a small store during the drain.
struct Placed {
    store: usize,
    order_id: String,
}

pub async fn run(options: FairOptions) -> anyhow::Result<()> {
    let warehouse = Warehouse::connect(&options.database_url).await?;
    let sim = SimClient::new(&options.sim_url);
    let big = options.big_site_id.as_str();
    let backlog = warehouse.site_orders_in(big, &["shipped"]).await?;
    if backlog == 0 {
        bail!("the big store {big} has no shipped orders: place the backlog first (wms-loadgen flow --state shipped)");
    }
    let fulfilled_before = warehouse.site_orders_in(big, &["fulfilled"]).await?;
    let idle_connections = warehouse.connections().await?;
    let started = Instant::now();
    let (stop_placing, placing_stopped) = watch::channel(false);
    let (stop_sampling, sampling_stopped) = watch::channel(false);
    let placer = tokio::spawn(place_small_orders(
        sim.clone(),
        options.small_stores,
        Duration::from_secs_f64(options.small_interval_secs),
        placing_stopped,
    ));
    let sampler = tokio::spawn(sample(
        Warehouse::connect(&options.database_url).await?,
        options.metrics_urls.clone(),
        options.concurrency,
        big.to_owned(),
        sampling_stopped,
    ));

    let goal = fulfilled_before + backlog;
    let drained = wait_for_site(&warehouse, big, fulfilled_before, goal).await;
    let drain = started.elapsed();
    let _ = stop_placing.send(true);
    let placed = placer.await??;
    drained?;
    let ids: Vec<String> = placed.iter().map(|p| p.order_id.clone()).collect();
    wait_for_ids(&warehouse, &ids).await?;
    let _ = stop_sampling.send(true);
    let samples = sampler.await??;

    let minimum = theoretical_minimum(backlog, options.calls_per_order, options.big_limit);
    println!(
        "== {} notify-webflow replica(s), worker.concurrency {} each",
        options.replicas, options.concurrency
    );
    println!(
        "big store: {backlog} shipped orders fulfilled in {:.1} s; theoretical minimum ({} calls per order at {}/min) {:.1} s; measured/minimum = {:.3}",
        drain.as_secs_f64(),
        options.calls_per_order,
        options.big_limit,
        minimum.as_secs_f64(),
        drain.as_secs_f64() / minimum.as_secs_f64()
    );
    let latency = small_latency(&sim, &placed, options.small_stores).await?;
    let calls = sim.calls().await?;
    let big_calls = calls.get(&options.big_token);
    let throttled_big = big_calls.map_or(0, |c| c.throttled);
    let throttled: u64 = calls.values().map(|c| c.throttled).sum();
    println!(
        "Webflow calls: big store {} ({:.2}/order), small stores {}; 429s: {throttled} (big store {throttled_big})",
        big_calls.map_or(0, |c| c.admitted),
        big_calls.map_or(0, |c| c.admitted) as f64 / backlog as f64,
        calls
            .iter()
            .filter(|(token, _)| **token != options.big_token)
            .map(|(_, c)| c.admitted)
            .sum::<u64>(),
    );
    println!(
        "worker slots in use (notify-webflow, all replicas, of {}): peak {:.0}, mean {:.1}; waiting for a budget slot outside a worker slot: peak {:.0}, mean {:.1}; big store's reserved slots: peak {:.0}",
        options.replicas * options.concurrency,
        samples.slots_peak,
        samples.slots_mean(),
        samples.waiting_peak,
        samples.waiting_mean(),
        samples.big_reserved_peak
    );
    println!(
        "PostgreSQL connections to the bench database: before the replicas {} open ({} busy); during the drain peak {} open, {} busy ({} samples)",
        idle_connections.open,
        idle_connections.busy,
        samples.open_connections_peak,
        samples.busy_connections_peak,
        samples.count
    );
    let summary = serde_json::json!({
        "replicas": options.replicas,
        "concurrency": options.concurrency,
        "backlog": backlog,
        "drain_s": drain.as_secs_f64(),
        "minimum_s": minimum.as_secs_f64(),
        "small_orders": placed.len(),
        "small_p50_ms": latency.p50_ms,
        "small_p99_ms": latency.p99_ms,
        "small_max_ms": latency.max_ms,
        "throttled": throttled,
        "samples": samples,
        "connections_before": idle_connections.open,
    });
    println!("json: {summary}");
    Ok(())
}

/// Places one order per tick, the stores taking turns (see [`placement`]), until told to stop.
async fn place_small_orders(
    sim: SimClient,
    stores: usize,
    interval: Duration,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<Vec<Placed>> {
    let site_ids: Vec<String> = (0..stores).map(|i| small_store(i).site_id).collect();
    let start = tokio::time::Instant::now();
    let mut placing = Vec::new();
    for k in 0.. {
        let (store, at) = placement(k, stores, interval);
        tokio::select! {
            _ = stop.wait_for(|stop| *stop) => break,
            _ = tokio::time::sleep_until(start + at) => {}
        }
        let sim = sim.clone();
        let site_id = site_ids[store].clone();
        placing.push(tokio::spawn(async move {
            let order_id = sim.place_order_for(&site_id, &[SKU]).await?;
            anyhow::Ok(Placed { store, order_id })
        }));
    }
    let mut placed = Vec::with_capacity(placing.len());
    for task in placing {
        placed.push(task.await??);
    }
    Ok(placed)
}

/// Samples the replicas' worker slots in use, the big store's reservations and the database's
/// connections until told to stop.
async fn sample(
    warehouse: Warehouse,
    metrics_urls: Vec<String>,
    concurrency: usize,
    big_site_id: String,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<Samples> {
    let http = reqwest::Client::builder().timeout(Duration::from_secs(2)).build()?;
    let big_label = format!("site_id=\"{big_site_id}\"");
    let mut samples = Samples::default();
    let mut ticks = tokio::time::interval(SAMPLE_EVERY);
    loop {
        tokio::select! {
            _ = stop.wait_for(|stop| *stop) => return Ok(samples),
            _ = ticks.tick() => {}
        }
        let (mut slots, mut waiting, mut reserved) = (0.0, 0.0, 0.0_f64);
        for url in &metrics_urls {
            // A replica still starting (or restarting) has nothing to say yet.
            let Ok(response) = http.get(url).send().await else {
                continue;
            };
            let Ok(text) = response.text().await else { continue };
            let replica_waiting = metric_sum(&text, WAITING, CONSUMER_LABEL).unwrap_or(0.0);
            let in_flight = metric_sum(&text, IN_FLIGHT, CONSUMER_LABEL).unwrap_or(0.0);
            slots += worker_slots_in_use(in_flight, replica_waiting, concurrency);
            waiting += replica_waiting;
            // Every replica reads the same budget rows: the largest is the freshest view.
            reserved = reserved.max(metric_sum(&text, RESERVED, &big_label).unwrap_or(0.0));
        }
        samples.observe(slots, waiting, warehouse.connections().await?, reserved);
    }
}

/// Waits until `goal` orders of `site_id` are fulfilled.
async fn wait_for_site(warehouse: &Warehouse, site_id: &str, from: i64, goal: i64) -> anyhow::Result<()> {
    let (mut last, mut last_progress) = (from, Instant::now());
    loop {
        let now = warehouse.site_orders_in(site_id, &["fulfilled"]).await?;
        if now >= goal {
            return Ok(());
        }
        if now != last {
            (last, last_progress) = (now, Instant::now());
        } else if last_progress.elapsed() > WAIT.stall_after {
            bail!(
                "stalled: {} of {} of the big store's orders fulfilled, none in the last {} s (see the service logs)",
                now - from,
                goal - from,
                WAIT.stall_after.as_secs()
            );
        }
        tokio::time::sleep(WAIT.poll).await;
    }
}

/// Waits until every order with these ids is fulfilled.
async fn wait_for_ids(warehouse: &Warehouse, ids: &[String]) -> anyhow::Result<()> {
    let goal = ids.len() as i64;
    let (mut last, mut last_progress) = (0, Instant::now());
    loop {
        let now = warehouse.orders_with_ids_in(ids, "fulfilled").await?;
        if now >= goal {
            return Ok(());
        }
        if now != last {
            (last, last_progress) = (now, Instant::now());
        } else if last_progress.elapsed() > WAIT.stall_after {
            bail!("stalled: {now} of the small stores' {goal} orders fulfilled (see the service logs)");
        }
        tokio::time::sleep(WAIT.poll).await;
    }
}

/// The small stores' placed -> fulfilled latency, from the simulator's own clock.
async fn small_latency(sim: &SimClient, placed: &[Placed], stores: usize) -> anyhow::Result<Report> {
    let orders = sim.orders().await?;
    let by_id: HashMap<&str, &serde_json::Value> = orders
        .iter()
        .filter_map(|o| Some((o["orderId"].as_str()?, o)))
        .collect();
    let mut latencies = Vec::with_capacity(placed.len());
    let mut worst = vec![Duration::ZERO; stores];
    for order in placed {
        let latency = by_id
            .get(order.order_id.as_str())
            .and_then(|o| super::flow::fulfil_latency(o))
            .with_context(|| format!("order {} is not fulfilled in the simulator", order.order_id))?;
        latencies.push(latency);
        worst[order.store] = worst[order.store].max(latency);
    }
    let report = Report::new("small stores: placed -> fulfilled", latencies, 0, Duration::ZERO);
    let mut worst = worst.into_iter().enumerate().collect::<Vec<_>>();
    worst.sort_by_key(|(_, latency)| std::cmp::Reverse(*latency));
    println!(
        "small stores ({stores}, one order every interval each): {} orders placed during the drain; placed -> fulfilled p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms (slowest store: {} at {:.0} ms)",
        report.ok,
        report.p50_ms,
        report.p99_ms,
        report.max_ms,
        worst.first().map_or_else(String::new, |(i, _)| small_store(*i).name),
        worst.first().map_or(0.0, |(_, l)| l.as_secs_f64() * 1_000.0),
    );
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_stores_have_distinct_webflow_shaped_ids() {
        let stores: Vec<SmallStore> = (0..50).map(small_store).collect();
        for store in &stores {
            assert_eq!(store.site_id.len(), 24, "{}", store.site_id);
            assert!(
                store.site_id.chars().all(|c| c.is_ascii_hexdigit()),
                "{}",
                store.site_id
            );
        }
        let mut ids: Vec<&str> = stores.iter().map(|s| s.site_id.as_str()).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), 50);
        assert_eq!(stores[0].name, "small001");
        assert_eq!(stores[49].token, "small-token-050");
    }

    #[test]
    fn the_config_is_what_the_services_read() {
        #[derive(serde::Deserialize)]
        struct File {
            webflow: webflow::WebflowSettings,
        }
        let stores: Vec<SmallStore> = (0..3).map(small_store).collect();
        let mut file: File = toml::from_str(&sites_config(&stores, 60).unwrap()).unwrap();
        file.webflow.validate().unwrap();
        file.webflow.require_api_tokens().unwrap();
        file.webflow.require_webhook_secrets().unwrap();
        let sites = &file.webflow.sites;
        assert_eq!(sites.len(), 3);
        let first = &sites["small001"];
        assert_eq!(first.site_id, stores[0].site_id);
        assert_eq!(first.rate_limit_per_minute, 60);
        assert_eq!(first.webhook_secrets.len(), 1);
        assert!(first.api_token.is_some());
    }

    #[test]
    fn the_simulator_gets_the_same_sites_with_their_limit() {
        let stores: Vec<SmallStore> = (0..2).map(small_store).collect();
        let spec = sim_sites(&stores, 60);
        let entries: Vec<&str> = spec.split(',').collect();
        assert_eq!(entries.len(), 2);
        assert_eq!(
            entries[1],
            format!("{}:small-token-002:small-secret-002:60", stores[1].site_id)
        );
    }

    #[test]
    fn each_store_places_once_per_interval_staggered() {
        let interval = Duration::from_secs(10);
        assert_eq!(placement(0, 50, interval), (0, Duration::ZERO));
        assert_eq!(placement(1, 50, interval), (1, Duration::from_millis(200)));
        assert_eq!(placement(49, 50, interval).0, 49);
        let (store, at) = placement(50, 50, interval);
        assert_eq!(store, 0);
        assert!((at.as_secs_f64() - 10.0).abs() < 1e-9);
        let (store, at) = placement(57, 50, interval);
        let (_, before) = placement(7, 50, interval);
        assert_eq!(store, 7);
        assert!(((at - before).as_secs_f64() - 10.0).abs() < 1e-9);
    }

    #[test]
    fn the_minimum_is_every_call_at_the_limit() {
        assert_eq!(theoretical_minimum(1_000, 2, 600), Duration::from_secs(200));
        assert_eq!(theoretical_minimum(30, 2, 60), Duration::from_secs(60));
    }

    #[test]
    fn metric_sums_add_the_matching_series_only() {
        let text = "# HELP wms_worker_in_flight Deliveries\n\
                    # TYPE wms_worker_in_flight gauge\n\
                    wms_worker_in_flight{consumer=\"notify-webflow\"} 3\n\
                    wms_worker_in_flight{consumer=\"ship\"} 5\n\
                    wms_worker_in_flight_other{consumer=\"notify-webflow\"} 7\n\
                    wms_webflow_budget_reserved{site_id=\"a\",token=\"t1\"} 120\n\
                    wms_webflow_budget_reserved{site_id=\"b\",token=\"t2\"} 0\n";
        assert_eq!(metric_sum(text, IN_FLIGHT, CONSUMER_LABEL), Some(3.0));
        assert_eq!(metric_sum(text, RESERVED, "site_id=\"a\""), Some(120.0));
        assert_eq!(metric_sum(text, RESERVED, "site_id=\"c\""), None);
        assert_eq!(metric_sum("plain 4\n", "plain", ""), Some(4.0));
    }

    #[test]
    fn samples_keep_peaks_and_the_mean_of_slots() {
        let mut samples = Samples::default();
        samples.observe(2.0, 10.0, Connections { open: 30, busy: 4 }, 500.0);
        samples.observe(6.0, 0.0, Connections { open: 28, busy: 9 }, 0.0);
        assert_eq!(samples.count, 2);
        assert_eq!(samples.slots_peak, 6.0);
        assert_eq!(samples.slots_mean(), 4.0);
        assert_eq!((samples.waiting_peak, samples.waiting_mean()), (10.0, 5.0));
        // Prefetched deliveries queued for a slot are not in one.
        assert_eq!(worker_slots_in_use(40.0, 5.0, 8), 8.0);
        assert_eq!(worker_slots_in_use(7.0, 5.0, 8), 2.0);
        assert_eq!((samples.open_connections_peak, samples.busy_connections_peak), (30, 9));
        assert_eq!(samples.big_reserved_peak, 500.0);
        assert_eq!(Samples::default().slots_mean(), 0.0);
    }
}
