//! `wms-loadgen`: benchmarks the ingress (against a direct-publish baseline measured in the
//! same run) and the order pipeline. See docs/benchmarks.md for the commands.

#![allow(clippy::print_stdout, reason = "a CLI that reports to stdout")]

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use futures_util::future::BoxFuture;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, QueuePurgeOptions};
use lapin::{Connection, ConnectionProperties};
use loadgen::raw_http;
use loadgen::stats::{Report, median, memory_kib};
use loadgen::workload::{WebhookTarget, closed_loop, open_loop, webhook_body};
use platform::amqp::contract::{self, MessageSource, WebhookMessage};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(about = "Load generator and benchmarks for the WMS bridge")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Ingress throughput and latency versus publishing straight to RabbitMQ.
    Ingress {
        #[arg(
            long,
            default_value = "http://127.0.0.1:8080/webhooks/webflow/65f0c0ffee0000000000beef"
        )]
        url: String,
        #[arg(long, default_value = "bench-secret")]
        secret: String,
        #[arg(long, default_value = "amqp://guest:guest@127.0.0.1:5672/%2f")]
        amqp_url: String,
        /// The AMQP namespace the ingress under test publishes to.
        #[arg(long, default_value = "bench")]
        namespace: String,
        #[arg(long, default_value_t = 20_000)]
        requests: usize,
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
        /// Rounds; each runs the baseline, a bare-message reference and the ingress, `requests / rounds` each.
        #[arg(long, default_value_t = 5)]
        rounds: usize,
        /// Offered rate for the open-loop latency run (webhooks/s).
        #[arg(long, default_value_t = 1_000)]
        rate: u32,
        #[arg(long, default_value_t = 10)]
        rate_secs: u64,
        /// PID of the ingress, to report its resident memory.
        #[arg(long)]
        ingress_pid: Option<u32>,
    },
    /// Orders per second from webhook to reserved, through ingress, enrich and reserve.
    Pipeline {
        #[arg(
            long,
            default_value = "http://127.0.0.1:8080/webhooks/webflow/65f0c0ffee0000000000beef"
        )]
        url: String,
        #[arg(long, default_value = "bench-secret")]
        secret: String,
        #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/wms_bench")]
        database_url: String,
        #[arg(long, default_value_t = 5_000)]
        orders: usize,
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
        /// Send webhooks without the shipping address, so enrich must GET each order.
        #[arg(long)]
        partial: bool,
        /// The fake Webflow's call counter (`fake-webflow` serves it at /_calls).
        #[arg(long)]
        calls_url: Option<String>,
        /// Products in the catalog; orders cycle through `bench-sku-0..N`.
        #[arg(long, default_value_t = 50)]
        skus: usize,
    },
    /// Creates `orders` paid orders in the simulator (their webhooks flow through the pipeline)
    /// and waits until all are `state` (e.g. shipped). Prints the time and latency percentiles.
    Flow {
        #[arg(long, default_value = "http://127.0.0.1:18090")]
        sim_url: String,
        #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/wms_bench")]
        database_url: String,
        #[arg(long, default_value_t = 1_000)]
        orders: usize,
        /// Create the orders (false: only wait, e.g. after starting notify-webflow).
        #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
        create: bool,
        #[arg(long, default_value = "fulfilled")]
        state: String,
        /// The Webflow limit the simulator enforces (for the theoretical minimum).
        #[arg(long, default_value_t = 0)]
        limit_per_minute: u32,
        /// Orders placed per second (0: as fast as 16 concurrent requests go, i.e. a backlog).
        #[arg(long, default_value_t = 0.0)]
        rate: f64,
    },
    /// A fake Webflow answering GET order, for the partial-payload run.
    FakeWebflow {
        #[arg(long, default_value_t = 18_080)]
        port: u16,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    platform::install_crypto_provider();
    match Cli::parse().command {
        Command::Ingress {
            url,
            secret,
            amqp_url,
            namespace,
            requests,
            concurrency,
            rounds,
            rate,
            rate_secs,
            ingress_pid,
        } => {
            bench_ingress(
                url,
                secret,
                amqp_url,
                namespace,
                requests,
                concurrency,
                rounds,
                rate,
                rate_secs,
                ingress_pid,
            )
            .await
        }
        Command::Pipeline {
            url,
            secret,
            database_url,
            orders,
            concurrency,
            partial,
            calls_url,
            skus,
        } => bench_pipeline(url, secret, database_url, orders, concurrency, partial, calls_url, skus).await,
        Command::FakeWebflow { port } => fake_webflow(port).await,
        Command::Flow {
            sim_url,
            database_url,
            orders,
            create,
            state,
            limit_per_minute,
            rate,
        } => flow(sim_url, database_url, orders, create, state, limit_per_minute, rate).await,
    }
}

#[allow(clippy::too_many_arguments, reason = "CLI arguments passed through")]
async fn bench_ingress(
    url: String,
    secret: String,
    amqp_url: String,
    namespace: String,
    requests: usize,
    concurrency: usize,
    rounds: usize,
    rate: u32,
    rate_secs: u64,
    ingress_pid: Option<u32>,
) -> anyhow::Result<()> {
    let run = format!("b{}", std::process::id());
    let bodies: Arc<Vec<Vec<u8>>> = Arc::new((0..requests).map(|i| webhook_body(&run, i, true, 50)).collect());
    println!(
        "payload size: {} bytes; {requests} requests at concurrency {concurrency}",
        bodies[0].len()
    );

    // Baseline: the same payloads, published straight to the same exchange with confirms.
    let connection = Connection::connect(&amqp_url, ConnectionProperties::default())
        .await
        .context("RabbitMQ")?;
    let channel = connection.create_channel().await?;
    channel.confirm_select(ConfirmSelectOptions::default()).await?;
    let exchange = format!("{namespace}.events");
    let (addr, path) = split_http_url(&url)?;
    let site_id: Arc<str> = path.rsplit('/').next().unwrap_or_default().into();
    let baseline_send = {
        let (channel, bodies, exchange) = (channel.clone(), bodies.clone(), exchange.clone());
        move |_: usize, i: usize| {
            let (channel, bodies, exchange, site_id) =
                (channel.clone(), bodies.clone(), exchange.clone(), site_id.clone());
            async move {
                // The very message the ingress publishes for this webhook: same body, same
                // properties and headers, so the ratio isolates what the ingress adds.
                let received_at = chrono::Utc::now();
                let webflow_timestamp = received_at.timestamp_millis().to_string();
                let trace_id = uuid::Uuid::new_v4().simple().to_string();
                let message_id = contract::webhook_message_id(&site_id, &bodies[i]);
                let properties = contract::webhook_properties(&WebhookMessage {
                    site_id: &site_id,
                    trigger_type: contract::WebhookTrigger::NewOrder,
                    webflow_timestamp: Some(&webflow_timestamp),
                    received_at,
                    trace_id: &trace_id,
                    message_id: &message_id,
                    source: MessageSource::Webhook,
                    app_id: "wms-ingress",
                });
                publish_confirmed(&channel, &exchange, &bodies[i], properties).await
            }
        }
    };

    let target = Arc::new(WebhookTarget {
        url,
        secret,
        client: reqwest::Client::builder().pool_max_idle_per_host(concurrency).build()?,
    });
    // Signed and rendered up front, as the baseline's payloads are built up front: only the
    // server is timed. One keep-alive connection per worker, as reqwest's pool would keep.
    let rendered: Arc<Vec<Vec<u8>>> = Arc::new(
        bodies
            .iter()
            .map(|body| {
                let signed = target.sign(body.clone());
                raw_http::render_post(
                    &addr,
                    &path,
                    &[
                        ("content-type", "application/json"),
                        ("x-webflow-timestamp", &signed.timestamp),
                        ("x-webflow-signature", &signed.signature),
                    ],
                    &signed.body,
                )
            })
            .collect(),
    );
    let mut connections = Vec::with_capacity(concurrency);
    for _ in 0..concurrency.max(1) {
        let connection = raw_http::Connection::open(&addr)
            .await
            .with_context(|| format!("cannot connect to the ingress at {addr}"))?;
        connections.push(tokio::sync::Mutex::new(connection));
    }
    let connections = Arc::new(connections);
    let ingress_send = move |worker: usize, i: usize| {
        let (rendered, connections) = (rendered.clone(), connections.clone());
        async move {
            let mut connection = connections[worker].lock().await;
            match connection.round_trip(&rendered[i]).await {
                Ok(200) => Ok(()),
                Ok(status) => Err(format!("HTTP {status}")),
                Err(error) => Err(error.to_string()),
            }
        }
    };

    // For reference: the same bodies with no properties or headers at all, i.e. what a bare
    // publish costs the broker (the headline ratio compares like with like).
    let bare_send = {
        let (channel, bodies, exchange) = (channel.clone(), bodies.clone(), exchange.clone());
        move |_: usize, i: usize| {
            let (channel, bodies, exchange) = (channel.clone(), bodies.clone(), exchange.clone());
            async move { publish_confirmed(&channel, &exchange, &bodies[i], lapin::BasicProperties::default()).await }
        }
    };
    let sides: [(&str, Sender); 3] = [
        ("baseline", boxed(baseline_send)),
        ("bare", boxed(bare_send)),
        ("ingress", boxed(ingress_send)),
    ];

    // Rounds alternate the sides, so a burst of noise from anything else on the machine lands
    // on all of them; each starts from an empty queue (a quorum queue holding the previous
    // side's messages costs the broker more per publish).
    let queue = format!("{namespace}.enrich");
    let per_round = requests.div_ceil(rounds.max(1));
    let mut reports: [Vec<Report>; 3] = Default::default();
    for round in 0..rounds.max(1) {
        let offset = round * per_round;
        let count = per_round.min(requests.saturating_sub(offset));
        for ((side, send), runs) in sides.iter().zip(reports.iter_mut()) {
            channel
                .queue_purge(queue.as_str().into(), QueuePurgeOptions::default())
                .await?;
            tokio::time::sleep(Duration::from_secs(1)).await;
            let send = send.clone();
            let report = closed_loop(side, count, concurrency, move |worker, i| send(worker, offset + i)).await;
            println!("round {}: {}", round + 1, report.line());
            runs.push(report);
        }
    }
    channel
        .queue_purge(queue.as_str().into(), QueuePurgeOptions::default())
        .await?;
    let [baseline_rounds, bare_rounds, ingress_rounds] = reports;
    // The median of the rounds' ratios: a stall on either side in one round moves it little.
    let ratios = |against: &[Report]| -> (f64, String) {
        let per_round: Vec<f64> = against
            .iter()
            .zip(&ingress_rounds)
            .map(|(b, i)| i.throughput_per_s / b.throughput_per_s)
            .collect();
        let listed = per_round
            .iter()
            .map(|r| format!("{r:.2}"))
            .collect::<Vec<_>>()
            .join(", ");
        (median(&per_round), listed)
    };
    let (ratio, ratio_rounds) = ratios(&baseline_rounds);
    let (bare_ratio, bare_ratio_rounds) = ratios(&bare_rounds);
    let baseline = Report::combine("baseline (lapin + confirms)", &baseline_rounds);
    let bare = Report::combine("baseline, bare message", &bare_rounds);
    let ingress = Report::combine("ingress (signed webhooks)", &ingress_rounds);
    println!("{}", baseline.line());
    println!("{}", bare.line());
    println!("{}", ingress.line());
    if ingress.failed > 0 {
        bail!("{} webhooks were not acknowledged", ingress.failed);
    }
    println!("ratio ingress/baseline throughput: {ratio:.2} (median of rounds: {ratio_rounds})");
    println!("reference: ingress/bare-message throughput: {bare_ratio:.2} (median of rounds: {bare_ratio_rounds})");

    let open = {
        let target = target.clone();
        let run = format!("{run}-open");
        open_loop(
            &format!("ingress open loop {rate}/s"),
            rate,
            Duration::from_secs(rate_secs),
            move |i| {
                let (target, body) = (target.clone(), webhook_body(&run, i, true, 50));
                async move { target.send(body).await }
            },
        )
        .await
    };
    println!("{}", open.line());
    if let Some((rss, peak)) = ingress_pid.and_then(memory_kib) {
        println!(
            "ingress resident memory: {:.1} MiB now, {:.1} MiB peak",
            rss as f64 / 1024.0,
            peak as f64 / 1024.0
        );
    }
    print_json(&[baseline, ingress, bare, open]);
    Ok(())
}

#[allow(clippy::too_many_arguments, reason = "CLI arguments passed through")]
async fn bench_pipeline(
    url: String,
    secret: String,
    database_url: String,
    orders: usize,
    concurrency: usize,
    partial: bool,
    calls_url: Option<String>,
    skus: usize,
) -> anyhow::Result<()> {
    let (db, connection) = tokio_postgres::connect(&database_url, tokio_postgres::NoTls)
        .await
        .context("PostgreSQL")?;
    tokio::spawn(connection);
    let xacts = || async {
        db.query_one(
            "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()",
            &[],
        )
        .await
        .map(|r| r.get::<_, i64>(0))
    };
    let settled = || async {
        db.query_one(
            "SELECT count(*) FROM orders WHERE state IN ('reserved', 'backordered')",
            &[],
        )
        .await
        .map(|r| r.get::<_, i64>(0))
    };
    let http = reqwest::Client::new();
    let calls = |http: reqwest::Client, url: Option<String>| async move {
        match url {
            Some(url) => http
                .get(url)
                .send()
                .await
                .ok()?
                .text()
                .await
                .ok()?
                .trim()
                .parse::<u64>()
                .ok(),
            None => Some(0),
        }
    };
    let before_settled = settled().await?;
    let before_xacts = xacts().await?;
    let before_calls = calls(http.clone(), calls_url.clone()).await.unwrap_or(0);
    let run = format!("p{}{}", std::process::id(), if partial { "p" } else { "c" });
    let target = Arc::new(WebhookTarget {
        url,
        secret,
        client: http.clone(),
    });
    let started = Instant::now();
    let sent = {
        let (target, run) = (target.clone(), run.clone());
        closed_loop("webhooks sent", orders, concurrency, move |_, i| {
            let (target, body) = (target.clone(), webhook_body(&run, i, !partial, skus));
            async move { target.send(body).await }
        })
        .await
    };
    println!("{}", sent.line());
    let goal = before_settled + orders as i64 - sent.failed as i64;
    // Give up when nothing settles for 30 s (a service is down), not after a fixed time.
    let (mut last, mut last_progress) = (before_settled, Instant::now());
    loop {
        let now = settled().await?;
        if now >= goal {
            break;
        }
        if now != last {
            (last, last_progress) = (now, Instant::now());
        } else if last_progress.elapsed() > Duration::from_secs(30) {
            bail!(
                "stalled: {} of {} orders settled, none in the last 30 s (see the service logs)",
                now - before_settled,
                orders
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let elapsed = started.elapsed();
    // pg_stat counters are updated when a backend reports; give them a moment.
    tokio::time::sleep(Duration::from_millis(700)).await;
    let transactions = xacts().await? - before_xacts;
    let api_calls = calls(http, calls_url).await.unwrap_or(0) - before_calls;
    let per_s = orders as f64 / elapsed.as_secs_f64();
    println!(
        "pipeline ({} payloads, {skus} SKUs): {orders} orders settled in {:.2} s = {per_s:.0} orders/s; {:.1} database transactions/order; {:.2} Webflow API calls/order",
        if partial { "partial" } else { "complete" },
        elapsed.as_secs_f64(),
        transactions as f64 / orders as f64,
        api_calls as f64 / orders as f64,
    );
    Ok(())
}

async fn fake_webflow(port: u16) -> anyhow::Result<()> {
    use actix_web::{App, HttpResponse, HttpServer, web};
    use std::sync::atomic::{AtomicU64, Ordering};
    let calls = web::Data::new(AtomicU64::new(0));
    println!("fake Webflow on 127.0.0.1:{port}");
    HttpServer::new(move || {
        App::new()
            .app_data(calls.clone())
            .route(
                "/sites/{site}/orders/{order}",
                web::get().to(
                    |path: web::Path<(String, String)>, calls: web::Data<AtomicU64>| async move {
                        calls.fetch_add(1, Ordering::Relaxed);
                        HttpResponse::Ok().json(loadgen::workload::order_payload(
                            &path.1,
                            loadgen::workload::BENCH_SKU,
                            true,
                        ))
                    },
                ),
            )
            .route(
                "/_calls",
                web::get().to(|calls: web::Data<AtomicU64>| async move {
                    HttpResponse::Ok().body(calls.load(Ordering::Relaxed).to_string())
                }),
            )
    })
    .bind(("127.0.0.1", port))?
    .run()
    .await?;
    Ok(())
}

#[allow(clippy::too_many_arguments, reason = "CLI arguments passed through")]
async fn flow(
    sim_url: String,
    database_url: String,
    orders: usize,
    create: bool,
    state: String,
    limit_per_minute: u32,
    rate: f64,
) -> anyhow::Result<()> {
    let (db, connection) = tokio_postgres::connect(&database_url, tokio_postgres::NoTls)
        .await
        .context("PostgreSQL")?;
    tokio::spawn(connection);
    let http = reqwest::Client::new();
    let in_state = || async {
        db.query_one("SELECT count(*) FROM orders WHERE state = $1", &[&state])
            .await
            .map(|r| r.get::<_, i64>(0))
    };
    let before = in_state().await?;
    let started = Instant::now();
    if create {
        use futures_util::StreamExt;
        let place = |_| {
            let (http, sim_url) = (http.clone(), sim_url.clone());
            async move {
                http.post(format!("{sim_url}/_sim/orders"))
                    .json(&serde_json::json!({"skus": ["bench-sku-1"], "digital": false}))
                    .send()
                    .await?
                    .error_for_status()?;
                Ok::<_, reqwest::Error>(())
            }
        };
        let placed: Vec<Result<(), reqwest::Error>> = if rate > 0.0 {
            // A steady offered rate: latency without a backlog.
            let mut ticks = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
            let mut placing = Vec::with_capacity(orders);
            for i in 0..orders {
                ticks.tick().await;
                placing.push(tokio::spawn(place(i)));
            }
            let mut placed = Vec::with_capacity(orders);
            for task in placing {
                placed.push(task.await?);
            }
            placed
        } else {
            // Placed 16 at a time, so placing orders is not what limits the measured throughput.
            futures_util::stream::iter(0..orders)
                .map(place)
                .buffer_unordered(16)
                .collect()
                .await
        };
        placed.into_iter().collect::<Result<Vec<()>, _>>()?;
    }
    let goal = before + orders as i64;
    let (mut last, mut last_progress) = (before, Instant::now());
    loop {
        let now = in_state().await?;
        if now >= goal {
            break;
        }
        if now != last {
            (last, last_progress) = (now, Instant::now());
        } else if last_progress.elapsed() > Duration::from_secs(90) {
            bail!("stalled: {} of {orders} orders {state}", now - before);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let elapsed = started.elapsed();
    let stats: serde_json::Value = http.get(format!("{sim_url}/_sim/stats")).send().await?.json().await?;
    let writes: serde_json::Value = http.get(format!("{sim_url}/_sim/writes")).send().await?.json().await?;
    let writes = writes["writes"].as_array().cloned().unwrap_or_default();
    let mut per_order: std::collections::HashMap<(String, String), u32> = std::collections::HashMap::new();
    for w in &writes {
        let kind = w["path"]
            .as_str()
            .unwrap_or_default()
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .to_owned();
        let kind = if w["method"] == "PATCH" {
            "patch".to_owned()
        } else {
            kind
        };
        *per_order
            .entry((w["order_id"].as_str().unwrap_or_default().to_owned(), kind))
            .or_default() += 1;
    }
    let duplicates: u32 = per_order.values().map(|n| n.saturating_sub(1)).sum();
    println!(
        "{orders} orders reached `{state}` in {:.1} s ({:.1} orders/s); Webflow API calls: {} ({:.2}/order), 429s: {}, duplicate writes: {duplicates}",
        elapsed.as_secs_f64(),
        orders as f64 / elapsed.as_secs_f64(),
        stats["api_calls"],
        stats["api_calls"].as_f64().unwrap_or(0.0) / orders as f64,
        stats["throttled"],
    );
    if limit_per_minute > 0 {
        let minimum = (2 * orders) as f64 / f64::from(limit_per_minute) * 60.0;
        println!(
            "theoretical minimum at {limit_per_minute}/min (2 calls per order): {minimum:.1} s; measured/minimum = {:.3}",
            elapsed.as_secs_f64() / minimum
        );
    }
    // Webhook-to-fulfilled latency from the simulator's own clock.
    let orders_json: serde_json::Value = http.get(format!("{sim_url}/_sim/orders")).send().await?.json().await?;
    let mut latencies: Vec<Duration> = orders_json["orders"]
        .as_array()
        .map(|list| {
            list.iter()
                .filter_map(|o| {
                    let accepted = chrono_ms(o["acceptedOn"].as_str()?)?;
                    let fulfilled = chrono_ms(o["fulfilledOn"].as_str()?)?;
                    u64::try_from(fulfilled - accepted).ok().map(Duration::from_millis)
                })
                .collect()
        })
        .unwrap_or_default();
    if !latencies.is_empty() {
        latencies.sort();
        let report = Report::new("order placed -> fulfilled", latencies, 0, elapsed);
        println!(
            "latency placed -> fulfilled: p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
            report.p50_ms, report.p99_ms, report.max_ms
        );
    }
    Ok(())
}

fn chrono_ms(text: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|d| d.timestamp_millis())
}

fn print_json(reports: &[Report]) {
    if let Ok(json) = serde_json::to_string(reports) {
        println!("json: {json}");
    }
}

/// One side of the ingress benchmark: `send(worker, index)`.
type Sender = Arc<dyn Fn(usize, usize) -> BoxFuture<'static, Result<(), String>> + Send + Sync>;

fn boxed<F, Fut>(send: F) -> Sender
where
    F: Fn(usize, usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<(), String>> + Send + 'static,
{
    Arc::new(move |worker, index| Box::pin(send(worker, index)))
}

/// Publishes one persistent, mandatory webhook message and waits for the broker's confirm.
async fn publish_confirmed(
    channel: &lapin::Channel,
    exchange: &str,
    body: &[u8],
    properties: lapin::BasicProperties,
) -> Result<(), String> {
    let confirm = channel
        .basic_publish(
            exchange.into(),
            "webhook.ecomm_new_order".into(),
            BasicPublishOptions {
                mandatory: true,
                ..Default::default()
            },
            body,
            properties.with_delivery_mode(2),
        )
        .await
        .map_err(|e| e.to_string())?
        .await
        .map_err(|e| e.to_string())?;
    if confirm.is_ack() && confirm.take_message().is_none() {
        Ok(())
    } else {
        Err("not confirmed".into())
    }
}

/// `("host:port", "/path")` of a plain-`http` URL (the benchmark client speaks no TLS).
fn split_http_url(url: &str) -> anyhow::Result<(String, String)> {
    let rest = url
        .strip_prefix("http://")
        .with_context(|| format!("`{url}`: the ingress benchmark needs an http:// URL"))?;
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let path = if path.is_empty() { "/" } else { path };
    let authority = if authority.contains(':') {
        authority.to_owned()
    } else {
        format!("{authority}:80")
    };
    Ok((authority, path.to_owned()))
}
