//! `make run` (`wms-stack run`): the whole pipeline on this machine on built-in defaults
//! (`config/local.toml`): the Webflow simulator as the store, the sandbox carrier, auto-pack,
//! the reconcile loop, against the local PostgreSQL and RabbitMQ, with seeded stock and a
//! progress line every few seconds until Ctrl-C. As in production, the RabbitMQ topology is
//! declared once first (`wmsctl amqp declare`) and the services only check that it exists
//! (`amqp.declare_topology = false`).

#![allow(clippy::print_stdout, reason = "the run reports to its terminal")]

use crate::{LaunchError, ProcessSpec, Processes, SERVICES};
use std::path::PathBuf;
use std::time::Duration;

/// The store `config/local.toml` configures.
pub const SITE_ID: &str = "65f0c0ffee0000000000beef";
/// The console's admin token in `config/local.toml`.
pub const OPERATOR_TOKEN: &str = "local-operator-token";
const WAREHOUSE: &str = "http://127.0.0.1:8081";
const SIMULATOR_PORT: u16 = 8090;
const INGRESS: &str = "http://127.0.0.1:8080";
/// Health listeners: 9001.. in the order the processes start.
const FIRST_HEALTH_PORT: u16 = 9001;
const READY_WITHIN: Duration = Duration::from_secs(30);
const STOP_WITHIN: Duration = Duration::from_secs(30);
/// Stock for the simulator's catalog; sim-sku-5 starts empty, so its orders wait as backorders.
const STOCK: [(&str, i64); 5] = [
    ("sim-sku-1", 500),
    ("sim-sku-2", 500),
    ("sim-sku-3", 500),
    ("sim-sku-4", 500),
    ("sim-sku-5", 0),
];

#[derive(Clone, Debug, clap::Args)]
pub struct RunOptions {
    /// Where the binaries are.
    #[arg(long, env = "BIN", default_value = "target/release")]
    pub bin: PathBuf,
    /// The configuration file every process reads.
    #[arg(long, env = "WMS_CONFIG", default_value = "config/local.toml")]
    pub config: PathBuf,
    /// Each process's log: `<logs>/<name>.log`.
    #[arg(long, default_value = ".run")]
    pub logs: PathBuf,
    /// Orders the simulated store places a minute.
    #[arg(long, env = "ORDERS_PER_MINUTE", default_value_t = 30)]
    pub orders_per_minute: u32,
    /// Seconds between progress lines.
    #[arg(long, env = "PROGRESS_SECS", default_value_t = 5)]
    pub progress_secs: u64,
    /// The PostgreSQL server (its `wms` database is created if missing).
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432")]
    pub database_server: String,
}

/// Runs until Ctrl-C (or SIGTERM), then stops every process; each must exit cleanly.
pub async fn run(options: RunOptions) -> Result<(), LaunchError> {
    ensure_database(&options.database_server, "wms").await?;
    let env = vec![
        ("WMS_CONFIG".to_owned(), options.config.display().to_string()),
        ("WMS__AMQP__DECLARE_TOPOLOGY".to_owned(), "false".to_owned()),
    ];
    let mut processes = Processes::new(&options.bin, &options.logs, env)?.append_logs(false);
    let started = start(&mut processes, &options).await;
    if let Err(error) = started {
        let _ = processes.stop_all(STOP_WITHIN);
        return Err(error);
    }
    print_banner(&options);
    let database_url = format!("{}/wms", options.database_server);
    let mut ticks = tokio::time::interval(Duration::from_secs(options.progress_secs.max(1)));
    ticks.tick().await;
    let mut terminate =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).map_err(|source| {
            LaunchError::Io {
                what: "listen for SIGTERM".into(),
                source,
            }
        })?;
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = terminate.recv() => break,
            _ = ticks.tick() => println!("{}", progress_line(&processes, &database_url).await),
        }
    }
    println!("\nstopping…");
    processes.stop_all(STOP_WITHIN)
}

/// The RabbitMQ topology declared; every service, ready; the stock seeded; then the simulator and the reconcile loop.
async fn start(processes: &mut Processes, options: &RunOptions) -> Result<(), LaunchError> {
    processes.run_once("wmsctl", &["amqp", "declare"], READY_WITHIN).await?;
    println!("declared the RabbitMQ topology (wmsctl amqp declare)");
    let mut health_ports = FIRST_HEALTH_PORT..;
    let mut next_port = || health_ports.next().unwrap_or(FIRST_HEALTH_PORT);
    for name in SERVICES {
        let port = next_port();
        processes.spawn(ProcessSpec::service(name).with_health_port(port))?;
        announce(processes, name, port);
    }
    for name in SERVICES {
        processes.wait_ready(name, READY_WITHIN).await?;
    }
    seed_stock().await;
    let simulator = ProcessSpec::simulator(
        SIMULATOR_PORT,
        &[
            "--webhook-url".into(),
            format!("{INGRESS}/webhooks/webflow/{SITE_ID}"),
            "--orders-per-minute".into(),
            options.orders_per_minute.to_string(),
        ],
    );
    let port = next_port();
    processes.spawn(simulator.with_health_port(port))?;
    announce(processes, "webflow-sim", port);
    let port = next_port();
    processes.spawn(ProcessSpec::service("reconcile").with_health_port(port))?;
    announce(processes, "reconcile", port);
    processes.wait_ready("webflow-sim", READY_WITHIN).await?;
    processes.wait_ready("reconcile", READY_WITHIN).await
}

fn announce(processes: &Processes, name: &str, health_port: u16) {
    println!(
        "started {name} (health http://127.0.0.1:{health_port}/readyz, log {})",
        processes.log_path(name).display()
    );
}

/// `url` with any password replaced, for messages.
fn without_password(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            match credentials.find(':') {
                Some(colon) => format!("{}{}:***{}", &url[..scheme + 3], &credentials[..colon], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// Creates `database` on the server unless it exists.
async fn ensure_database(server: &str, database: &str) -> Result<(), LaunchError> {
    let (client, connection) = tokio_postgres::connect(&format!("{server}/postgres"), tokio_postgres::NoTls)
        .await
        .map_err(|source| LaunchError::Database {
            what: format!("connect to {}", without_password(server)),
            source,
        })?;
    tokio::spawn(connection);
    let exists = client
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&database])
        .await
        .map_err(|source| LaunchError::Database {
            what: "look for the database".into(),
            source,
        })?
        .is_some();
    if !exists {
        println!("creating database {database}");
        client
            .batch_execute(&format!("CREATE DATABASE \"{database}\""))
            .await
            .map_err(|source| LaunchError::Database {
                what: format!("create database {database}"),
                source,
            })?;
    }
    Ok(())
}

/// Sets the catalog's stock through the warehouse API, as an operator would.
async fn seed_stock() {
    let http = reqwest::Client::new();
    for (sku, on_hand) in STOCK {
        let seeded = http
            .put(format!("{WAREHOUSE}/api/v1/inventory/{sku}"))
            .bearer_auth(OPERATOR_TOKEN)
            .json(&serde_json::json!({ "on_hand": on_hand }))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        if !seeded {
            println!("could not seed {sku}");
        }
    }
}

fn print_banner(options: &RunOptions) {
    let logs = options.logs.display();
    println!(
        "
The pipeline runs.

  Operator console:   {WAREHOUSE}/console
  Sign-in token:      {OPERATOR_TOKEN}   (admin on every store, from config/local.toml)

Also:
  orders in the simulated store:  curl -s http://127.0.0.1:{SIMULATOR_PORT}/_sim/orders | head -c 2000
  writes Webflow received:        curl -s http://127.0.0.1:{SIMULATOR_PORT}/_sim/writes
  one order's timeline (API):     curl -s -H 'Authorization: Bearer {OPERATOR_TOKEN}' {WAREHOUSE}/api/v1/orders/{SITE_ID}/<order_id>
  logs:                           tail -f {logs}/*.log
  RabbitMQ management UI:         http://localhost:15672 (guest/guest), queues wms.*
Ctrl-C stops everything. Progress every {} s:",
        options.progress_secs
    );
}

/// Orders by outcome from the database, dead letters from the broker (`wmsctl dlq list`);
/// `?` for what could not be read.
async fn progress_line(processes: &Processes, database_url: &str) -> String {
    let counts = order_counts(database_url)
        .await
        .map(|c| c.map(|n| n.to_string()))
        .unwrap_or_else(|| std::array::from_fn(|_| "?".to_owned()));
    let dead = dead_letters(processes).map_or_else(|| "?".to_owned(), |n| n.to_string());
    let [placed, fulfilled, backordered, review] = counts;
    format!(
        "{}  orders placed {placed} · fulfilled {fulfilled} · backordered {backordered} · needs_review {review} · dead letters {dead}",
        time_of_day()
    )
}

async fn order_counts(database_url: &str) -> Option<[i64; 4]> {
    let (client, connection) = tokio_postgres::connect(database_url, tokio_postgres::NoTls)
        .await
        .ok()?;
    tokio::spawn(connection);
    let row = client
        .query_one(
            "SELECT count(*), count(*) FILTER (WHERE state = 'fulfilled'), count(*) FILTER (WHERE state = 'backordered'),
                    count(*) FILTER (WHERE state = 'needs_review') FROM orders",
            &[],
        )
        .await
        .ok()?;
    Some([row.get(0), row.get(1), row.get(2), row.get(3)])
}

/// The dead letters of every queue, as `wmsctl --json dlq list` counts them.
fn dead_letters(processes: &Processes) -> Option<u64> {
    let output = processes
        .command("wmsctl")
        .ok()?
        .args(["--json", "dlq", "list"])
        .output()
        .ok()?;
    if !output.status.success() {
        return None;
    }
    let listed: serde_json::Value = serde_json::from_slice(&output.stdout).ok()?;
    Some(sum_of_messages(&listed))
}

/// The sum of every `messages` count in `value`, however nested.
fn sum_of_messages(value: &serde_json::Value) -> u64 {
    match value {
        serde_json::Value::Array(items) => items.iter().map(sum_of_messages).sum(),
        serde_json::Value::Object(fields) => fields
            .iter()
            .map(|(key, field)| match field.as_u64() {
                Some(n) if key == "messages" => n,
                _ => sum_of_messages(field),
            })
            .sum(),
        _ => 0,
    }
}

/// The local time of day, `HH:MM:SS`, as `date +%H:%M:%S` prints it.
fn time_of_day() -> String {
    std::process::Command::new("date")
        .arg("+%H:%M:%S")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dead_letters_are_summed_over_every_queue() {
        let listed = serde_json::json!([
            {"queue": "wms.enrich.dead", "messages": 2},
            {"queue": "wms.ship.dead", "messages": 0, "consumers": 1},
            {"queue": "wms.reserve.dead", "messages": 3},
        ]);
        assert_eq!(sum_of_messages(&listed), 5);
        assert_eq!(sum_of_messages(&serde_json::json!([])), 0);
    }

    #[test]
    fn a_password_never_reaches_a_message() {
        assert_eq!(
            without_password("postgres://wms:s3cret@db:5432"),
            "postgres://wms:***@db:5432"
        );
        assert_eq!(
            without_password("postgres://postgres@127.0.0.1:5432"),
            "postgres://postgres@127.0.0.1:5432"
        );
        assert_eq!(
            without_password("postgres://127.0.0.1:5432"),
            "postgres://127.0.0.1:5432"
        );
    }
}
