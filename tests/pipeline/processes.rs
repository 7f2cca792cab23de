//! Every binary as its own process, configured only through the environment, against a fresh
//! database and namespace: they start, carry simulated orders to `fulfilled`, survive a
//! `kill -9` of a worker mid-stream, and stop cleanly on SIGTERM.
//!
//! The binaries come from `target/debug` (`make test` builds them first).

use e2e::*;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

fn binary(name: &str) -> PathBuf {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../target/debug")
        .join(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --workspace --bins` (make test does)",
        path.display()
    );
    path
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Processes {
    env: Vec<(String, String)>,
    children: Vec<(String, Child)>,
}

impl Processes {
    fn spawn(&mut self, name: &str, args: &[String], extra: &[(&str, String)]) {
        let mut command = Command::new(binary(name));
        command
            .args(args)
            .env_remove("WMS_CONFIG")
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        for (k, v) in &self.env {
            command.env(k, v);
        }
        command.env("WMS__HEALTH__BIND", format!("127.0.0.1:{}", free_port()));
        for (k, v) in extra {
            command.env(k, v);
        }
        let child = command.spawn().unwrap();
        self.children.push((name.to_owned(), child));
    }

    fn kill_9(&mut self, name: &str) {
        let (_, child) = self.children.iter_mut().find(|(n, _)| n == name).unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
        self.children.retain(|(n, _)| n != name);
    }

    /// SIGTERM everything; each must exit 0 within the grace period.
    fn stop(&mut self) {
        for (name, child) in &mut self.children {
            let pid = child.id().to_string();
            Command::new("kill").args(["-TERM", &pid]).status().unwrap();
            let deadline = std::time::Instant::now() + Duration::from_secs(30);
            loop {
                if let Some(status) = child.try_wait().unwrap() {
                    assert!(status.success(), "{name} exited with {status}");
                    break;
                }
                assert!(std::time::Instant::now() < deadline, "{name} did not stop on SIGTERM");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        self.children.clear();
    }
}

impl Drop for Processes {
    fn drop(&mut self) {
        for (_, child) in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

#[tokio::test]
async fn every_binary_runs_as_a_process_survives_a_kill_9_and_stops_cleanly() {
    // The harness only provides the database, namespace and stock here; nothing runs in-process.
    let pipeline = start_pipeline(PipelineOptions {
        start_enrich: false,
        start_reserve: false,
        stock: vec![("sim-sku-1", 500), ("sim-sku-2", 500)],
        ..PipelineOptions::default()
    })
    .await;
    let p = &pipeline;
    let (ingress_port, warehouse_port, sim_port) = (free_port(), free_port(), free_port());
    let env = vec![
        ("WMS__AMQP__NAMESPACE".to_owned(), p.topology.namespace().to_owned()),
        ("WMS__DATABASE__URL".into(), p.db.url.clone()),
        (
            "WMS__WEBFLOW__API_BASE_URL".into(),
            format!("http://127.0.0.1:{sim_port}/v2"),
        ),
        ("WMS__WEBFLOW__ALLOW_INSECURE_HTTP".into(), "true".into()),
        ("WMS__WEBFLOW__SITES__SHOP__SITE_ID".into(), SITE_ID.into()),
        ("WMS__WEBFLOW__SITES__SHOP__API_TOKEN".into(), TOKEN.into()),
        ("WMS__WEBFLOW__SITES__SHOP__WEBHOOK_SECRETS".into(), SECRET.into()),
        ("WMS__WEBFLOW__SITES__SHOP__RATE_LIMIT_PER_MINUTE".into(), "6000".into()),
        ("WMS__INGRESS__BIND".into(), format!("127.0.0.1:{ingress_port}")),
        ("WMS__WAREHOUSE__BIND".into(), format!("127.0.0.1:{warehouse_port}")),
        ("WMS__WAREHOUSE__API_TOKENS".into(), "t1".into()),
        ("WMS__WAREHOUSE__AUTO_PACK".into(), "true".into()),
        ("WMS__AMQP__RETRY_DELAYS_MS".into(), "200".into()),
        ("WMS__WORKER__RETRY__INITIAL_MS".into(), "100".into()),
        ("WMS__TELEMETRY__LOG_LEVEL".into(), "warn".into()),
        ("RUST_BACKTRACE".into(), "0".into()),
    ];
    let mut processes = Processes {
        env,
        children: Vec::new(),
    };
    for name in ["ingress", "enrich", "reserve", "ship", "notify-webflow", "warehouse"] {
        processes.spawn(name, &[], &[]);
    }
    // Give the ingress a moment to connect before the store starts delivering.
    let http = reqwest::Client::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while http
        .get(format!("http://127.0.0.1:{ingress_port}/readyz"))
        .send()
        .await
        .map(|r| r.status() != 200)
        .unwrap_or(true)
    {
        assert!(tokio::time::Instant::now() < deadline, "the ingress never became ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let sim_args: Vec<String> = [
        "--bind",
        &format!("127.0.0.1:{sim_port}"),
        "--site-id",
        SITE_ID,
        "--token",
        TOKEN,
        "--webhook-secret",
        SECRET,
        "--webhook-url",
        &format!("http://127.0.0.1:{ingress_port}/webhooks/webflow/{SITE_ID}"),
        "--orders-per-minute",
        "1200",
        "--max-orders",
        "40",
        "--catalog",
        "sim-sku-1,sim-sku-2",
        "--digital-share",
        "0",
        "--refund-share",
        "0",
        "--retry-interval-ms",
        "500",
        "--rate-limit-per-minute",
        "0",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    processes.spawn("webflow-sim", &sim_args, &[]);

    // Mid-stream, kill -9 the enrich and notify workers and start them again.
    let wait_known = |n: i64| async move {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let known = p.scalar("SELECT count(*) FROM orders", &[]).await;
            if known >= n || tokio::time::Instant::now() >= deadline {
                return known;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    assert!(wait_known(10).await >= 10);
    processes.kill_9("enrich");
    processes.kill_9("notify-webflow");
    processes.spawn("enrich", &[], &[]);
    processes.spawn("notify-webflow", &[], &[]);

    assert_eq!(
        p.wait_for_count_in_state("fulfilled", 40, Duration::from_secs(90))
            .await,
        40
    );
    let orders: serde_json::Value = http
        .get(format!("http://127.0.0.1:{sim_port}/_sim/writes"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let writes = orders["writes"].as_array().unwrap();
    let fulfils = writes
        .iter()
        .filter(|w| w["path"].as_str().unwrap().ends_with("/fulfill"))
        .count();
    let patches = writes.iter().filter(|w| w["method"] == "PATCH").count();
    assert_eq!(
        (patches, fulfils),
        (40, 40),
        "one PATCH and one fulfil per order, nothing twice"
    );
    assert_eq!(
        p.scalar("SELECT count(*) FROM shipments WHERE status = 'booked'", &[])
            .await,
        40
    );
    let inconsistent = p
        .scalar(
            "SELECT count(*) FROM inventory WHERE reserved <> 0 OR on_hand + shipped <> 500",
            &[],
        )
        .await;
    assert_eq!(inconsistent, 0, "on hand + shipped = received, nothing left reserved");

    processes.stop();
    pipeline.teardown().await;
}
