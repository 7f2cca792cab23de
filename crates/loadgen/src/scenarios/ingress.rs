//! `wms-loadgen ingress`: the ingress's throughput against a direct-publish baseline measured in
//! the same run (alternating rounds), then its latency at a steady offered rate.

use super::print_json;
use crate::baseline::Publisher;
use crate::raw_http;
use crate::stats::{Report, median, memory_kib};
use crate::workload::{WebhookEndpoint, WebhookTarget, closed_loop, open_loop, webhook_body};
use anyhow::{Context, bail};
use futures_util::future::BoxFuture;
use std::sync::Arc;
use std::time::Duration;

/// SKUs the webhook bodies cycle through (the ingress does not look at them).
const SKUS: usize = 50;

#[derive(clap::Args, Debug)]
pub struct IngressOptions {
    #[command(flatten)]
    pub webhooks: WebhookEndpoint,
    #[arg(long, default_value = "amqp://guest:guest@127.0.0.1:5672/%2f")]
    pub amqp_url: String,
    /// The AMQP namespace the ingress under test publishes to.
    #[arg(long, default_value = "bench")]
    pub namespace: String,
    #[arg(long, default_value_t = 20_000)]
    pub requests: usize,
    #[arg(long, default_value_t = 64)]
    pub concurrency: usize,
    /// Rounds; each runs the baseline, a bare-message reference and the ingress, `requests / rounds` each.
    #[arg(long, default_value_t = 5)]
    pub rounds: usize,
    /// Offered rate for the open-loop latency run (webhooks/s).
    #[arg(long, default_value_t = 1_000)]
    pub rate: u32,
    #[arg(long, default_value_t = 10)]
    pub rate_secs: u64,
    /// PID of the ingress, to report its resident memory.
    #[arg(long)]
    pub ingress_pid: Option<u32>,
}

/// One side of the comparison: `send(worker, index)` sends body `index` from worker `worker`.
type Sender = Arc<dyn Fn(usize, usize) -> BoxFuture<'static, Result<(), String>> + Send + Sync>;

/// The ingress under test: where to connect, what to post to, and the site in its path.
struct Endpoint {
    addr: String,
    path: String,
    site_id: Arc<str>,
}

impl Endpoint {
    fn parse(url: &str) -> anyhow::Result<Self> {
        let (addr, path) = raw_http::split_http_url(url).map_err(anyhow::Error::msg)?;
        let site_id = path.rsplit('/').next().unwrap_or_default().into();
        Ok(Self { addr, path, site_id })
    }
}

pub async fn run(options: IngressOptions) -> anyhow::Result<()> {
    let run = format!("b{}", std::process::id());
    let bodies: Arc<Vec<Vec<u8>>> = Arc::new(
        (0..options.requests)
            .map(|i| webhook_body(&run, i, true, SKUS))
            .collect(),
    );
    println!(
        "payload size: {} bytes; {} requests at concurrency {}",
        bodies.first().map_or(0, Vec::len),
        options.requests,
        options.concurrency
    );
    let endpoint = Endpoint::parse(&options.webhooks.url)?;
    let publisher = Publisher::connect(&options.amqp_url, &options.namespace).await?;
    let target = Arc::new(
        options.webhooks.target(
            reqwest::Client::builder()
                .pool_max_idle_per_host(options.concurrency)
                .build()?,
        ),
    );
    let sides: [(&str, Sender); 3] = [
        ("baseline", baseline_side(&publisher, &bodies, &endpoint.site_id)),
        ("bare", bare_side(&publisher, &bodies)),
        (
            "ingress",
            ingress_side(&endpoint, &target, &bodies, options.concurrency).await?,
        ),
    ];
    let [baseline, bare, ingress] = run_rounds(&sides, &publisher, &options).await?;
    let combined = compare(&baseline, &bare, &ingress)?;

    let open = open_loop_latency(target, &run, &options).await;
    println!("{}", open.line());
    if let Some(pid) = options.ingress_pid {
        print_memory(pid);
    }
    let [baseline, bare, ingress] = combined;
    print_json(&[baseline, ingress, bare, open]);
    Ok(())
}

/// The very message the ingress publishes for each webhook: same body, properties and headers.
fn baseline_side(publisher: &Publisher, bodies: &Arc<Vec<Vec<u8>>>, site_id: &Arc<str>) -> Sender {
    let (publisher, bodies, site_id) = (publisher.clone(), bodies.clone(), site_id.clone());
    boxed(move |_, i| {
        let (publisher, bodies, site_id) = (publisher.clone(), bodies.clone(), site_id.clone());
        async move { publisher.publish_as_ingress(&site_id, &bodies[i]).await }
    })
}

/// The same bodies with no properties or headers: what a bare publish costs the broker.
fn bare_side(publisher: &Publisher, bodies: &Arc<Vec<Vec<u8>>>) -> Sender {
    let (publisher, bodies) = (publisher.clone(), bodies.clone());
    boxed(move |_, i| {
        let (publisher, bodies) = (publisher.clone(), bodies.clone());
        async move { publisher.publish_bare(&bodies[i]).await }
    })
}

/// Signed webhooks over one keep-alive connection per worker. Signed and rendered up front, as
/// the baseline's payloads are built up front: only the server is timed.
async fn ingress_side(
    endpoint: &Endpoint,
    target: &WebhookTarget,
    bodies: &[Vec<u8>],
    concurrency: usize,
) -> anyhow::Result<Sender> {
    let rendered: Arc<Vec<Vec<u8>>> = Arc::new(bodies.iter().map(|body| render(endpoint, target, body)).collect());
    let mut connections = Vec::with_capacity(concurrency.max(1));
    for _ in 0..concurrency.max(1) {
        let connection = raw_http::Connection::open(&endpoint.addr)
            .await
            .with_context(|| format!("cannot connect to the ingress at {}", endpoint.addr))?;
        connections.push(tokio::sync::Mutex::new(connection));
    }
    let connections = Arc::new(connections);
    Ok(boxed(move |worker, i| {
        let (rendered, connections) = (rendered.clone(), connections.clone());
        async move {
            let mut connection = connections[worker].lock().await;
            match connection.round_trip(&rendered[i]).await {
                Ok(200) => Ok(()),
                Ok(status) => Err(format!("HTTP {status}")),
                Err(error) => Err(error.to_string()),
            }
        }
    }))
}

/// The exact bytes of the signed POST of `body`.
fn render(endpoint: &Endpoint, target: &WebhookTarget, body: &[u8]) -> Vec<u8> {
    let signed = target.sign(body.to_vec());
    raw_http::render_post(
        &endpoint.addr,
        &endpoint.path,
        &[
            ("content-type", "application/json"),
            ("x-webflow-timestamp", &signed.timestamp),
            ("x-webflow-signature", &signed.signature),
        ],
        &signed.body,
    )
}

/// Rounds alternate the sides, so a burst of noise from anything else on the machine lands on
/// all of them; each starts from an empty queue (a quorum queue holding the previous side's
/// messages costs the broker more per publish). Returns each side's reports, one per round.
async fn run_rounds(
    sides: &[(&str, Sender); 3],
    publisher: &Publisher,
    options: &IngressOptions,
) -> anyhow::Result<[Vec<Report>; 3]> {
    let rounds = options.rounds.max(1);
    let per_round = options.requests.div_ceil(rounds);
    let mut reports: [Vec<Report>; 3] = Default::default();
    for round in 0..rounds {
        let offset = round * per_round;
        let count = per_round.min(options.requests.saturating_sub(offset));
        for ((side, send), runs) in sides.iter().zip(reports.iter_mut()) {
            publisher.purge().await?;
            tokio::time::sleep(Duration::from_secs(1)).await;
            let send = send.clone();
            let report = closed_loop(side, count, options.concurrency, move |worker, i| {
                send(worker, offset + i)
            })
            .await;
            println!("round {}: {}", round + 1, report.line());
            runs.push(report);
        }
    }
    publisher.purge().await?;
    Ok(reports)
}

/// Prints each side over all rounds and the ratios; fails if the ingress refused webhooks.
/// Returns the combined reports of the baseline, the bare message and the ingress.
fn compare(baseline: &[Report], bare: &[Report], ingress: &[Report]) -> anyhow::Result<[Report; 3]> {
    let combined = [
        Report::combine("baseline (lapin + confirms)", baseline),
        Report::combine("baseline, bare message", bare),
        Report::combine("ingress (signed webhooks)", ingress),
    ];
    for report in &combined {
        println!("{}", report.line());
    }
    if combined[2].failed > 0 {
        bail!("{} webhooks were not acknowledged", combined[2].failed);
    }
    let (ratio, rounds) = ratio_of_rounds(ingress, baseline);
    println!("ratio ingress/baseline throughput: {ratio:.2} (median of rounds: {rounds})");
    let (ratio, rounds) = ratio_of_rounds(ingress, bare);
    println!("reference: ingress/bare-message throughput: {ratio:.2} (median of rounds: {rounds})");
    Ok(combined)
}

/// The median of the rounds' throughput ratios (a stall on either side in one round moves it
/// little), and the ratios listed.
fn ratio_of_rounds(side: &[Report], against: &[Report]) -> (f64, String) {
    let ratios: Vec<f64> = side
        .iter()
        .zip(against)
        .map(|(s, a)| s.throughput_per_s / a.throughput_per_s)
        .collect();
    let listed = ratios.iter().map(|r| format!("{r:.2}")).collect::<Vec<_>>().join(", ");
    (median(&ratios), listed)
}

/// Webhooks started at a steady rate whatever the answers: latency without a backlog.
async fn open_loop_latency(target: Arc<WebhookTarget>, run: &str, options: &IngressOptions) -> Report {
    let run = format!("{run}-open");
    open_loop(
        &format!("ingress open loop {}/s", options.rate),
        options.rate,
        Duration::from_secs(options.rate_secs),
        move |i| {
            let (target, body) = (target.clone(), webhook_body(&run, i, true, SKUS));
            async move { target.send(body).await }
        },
    )
    .await
}

fn print_memory(pid: u32) {
    if let Some((rss, peak)) = memory_kib(pid) {
        println!(
            "ingress resident memory: {:.1} MiB now, {:.1} MiB peak",
            rss as f64 / 1024.0,
            peak as f64 / 1024.0
        );
    }
}

fn boxed<F, Fut>(send: F) -> Sender
where
    F: Fn(usize, usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<(), String>> + Send + 'static,
{
    Arc::new(move |worker, index| Box::pin(send(worker, index)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_site_is_the_last_path_segment() {
        let endpoint = Endpoint::parse("http://127.0.0.1:18080/webhooks/webflow/65f0").unwrap();
        assert_eq!(
            (endpoint.addr.as_str(), endpoint.path.as_str(), &*endpoint.site_id),
            ("127.0.0.1:18080", "/webhooks/webflow/65f0", "65f0")
        );
    }
}
