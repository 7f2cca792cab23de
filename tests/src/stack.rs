//! Every service as its own OS process (the binaries `make test` builds into `target/debug`),
//! configured only through the environment, with the Webflow simulator's store as the source
//! of orders. The chaos tests kill, cut and restart parts of it and then check the outcome
//! with [`Stack::assert_every_order_fulfilled_once`].

use crate::{Pipeline, PipelineOptions, SECRET, SITE_ID, TOKEN, start_pipeline};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The workers and the warehouse (auto-pack), in pipeline order.
pub const WORKERS: [&str; 5] = ["enrich", "reserve", "ship", "notify-webflow", "warehouse"];
/// SKUs the simulated store sells in these tests, and how many of each are in stock.
pub const STACK_SKUS: [&str; 2] = ["sim-sku-1", "sim-sku-2"];
pub const STACK_STOCK: i64 = 500;

pub fn binary(name: &str) -> PathBuf {
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

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A pipeline whose database, namespace and stock the harness provides, with nothing running
/// in-process: the [`Stack`] runs the services.
async fn processes_only() -> Pipeline {
    start_pipeline(PipelineOptions {
        start_enrich: false,
        start_reserve: false,
        stock: STACK_SKUS.iter().map(|sku| (*sku, STACK_STOCK)).collect(),
        ..PipelineOptions::default()
    })
    .await
}

pub struct StackOptions {
    /// Orders the simulated store creates (then it stops).
    pub orders: u32,
    pub orders_per_minute: u32,
    /// The store's webhook retry interval (Webflow retries 3 more times).
    pub webhook_retry_interval_ms: u64,
    /// The AMQP URL the services use (e.g. through a [`test_support::proxy::TcpProxy`]).
    pub amqp_url: String,
}

impl Default for StackOptions {
    fn default() -> Self {
        Self {
            orders: 60,
            orders_per_minute: 600,
            webhook_retry_interval_ms: 500,
            amqp_url: test_support::amqp_url(),
        }
    }
}

pub struct Stack {
    env: Vec<(String, String)>,
    /// Each process's output goes to `<log_dir>/<name>.log` (appended across restarts).
    pub log_dir: PathBuf,
    sim_args: Vec<String>,
    children: Vec<(String, Child, u16)>,
    pub ingress_port: u16,
    pub warehouse_port: u16,
    pub sim_port: u16,
    pub orders: u32,
    http: reqwest::Client,
}

impl Stack {
    /// A fresh database, namespace and stock, with the whole stack started on them.
    pub async fn launch(options: StackOptions) -> (Pipeline, Self) {
        let p = processes_only().await;
        let stack = Self::start(&p, options).await;
        (p, stack)
    }

    /// SIGTERM every process (each must exit cleanly), then drop the namespace and database.
    pub async fn finish(mut self, p: Pipeline) {
        self.stop();
        p.teardown().await;
    }
    /// Starts the ingress, every worker and the warehouse, waits until each is ready, then
    /// starts the simulator, whose store begins delivering webhooks.
    pub async fn start(p: &Pipeline, options: StackOptions) -> Self {
        let (ingress_port, warehouse_port, sim_port) = (free_port(), free_port(), free_port());
        let env: Vec<(String, String)> = [
            // The simulator, the sandbox carrier and plain-http Webflow: a local profile.
            ("WMS__PROFILE", "local".into()),
            ("WMS__AMQP__URL", options.amqp_url.clone()),
            ("WMS__AMQP__NAMESPACE", p.topology.namespace().to_owned()),
            // The harness's tiers, so its teardown deletes every queue the services declare.
            (
                "WMS__AMQP__RETRY_DELAYS_MS",
                p.base
                    .amqp
                    .retry_delays_ms
                    .iter()
                    .map(u64::to_string)
                    .collect::<Vec<_>>()
                    .join(","),
            ),
            ("WMS__AMQP__RECONNECT__INITIAL_MS", "100".into()),
            ("WMS__AMQP__RECONNECT__MAX_MS", "1000".into()),
            ("WMS__DATABASE__URL", p.db.url.clone()),
            ("WMS__DATABASE__POOL_SIZE", "4".into()),
            ("WMS__WEBFLOW__API_BASE_URL", format!("http://127.0.0.1:{sim_port}/v2")),
            ("WMS__WEBFLOW__ALLOW_INSECURE_HTTP", "true".into()),
            ("WMS__WEBFLOW__TIMEOUT_MS", "2000".into()),
            ("WMS__WEBFLOW__SITES__SHOP__SITE_ID", SITE_ID.into()),
            ("WMS__WEBFLOW__SITES__SHOP__API_TOKEN", TOKEN.into()),
            ("WMS__WEBFLOW__SITES__SHOP__WEBHOOK_SECRETS", SECRET.into()),
            ("WMS__WEBFLOW__SITES__SHOP__RATE_LIMIT_PER_MINUTE", "6000".into()),
            ("WMS__INGRESS__BIND", format!("127.0.0.1:{ingress_port}")),
            ("WMS__WAREHOUSE__BIND", format!("127.0.0.1:{warehouse_port}")),
            ("WMS__WAREHOUSE__API_TOKENS", "t1".into()),
            ("WMS__WAREHOUSE__AUTO_PACK", "true".into()),
            // Chaos needs more than the default number of tries to outlast an outage.
            ("WMS__WORKER__MAX_ATTEMPTS", "10".into()),
            ("WMS__WORKER__RETRY__INITIAL_MS", "100".into()),
            ("WMS__TELEMETRY__LOG_LEVEL", "info".into()),
            ("RUST_BACKTRACE", "0".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        let sim_args = [
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
            &options.orders_per_minute.to_string(),
            "--max-orders",
            &options.orders.to_string(),
            "--catalog",
            &STACK_SKUS.join(","),
            "--digital-share",
            "0",
            "--refund-share",
            "0",
            "--retry-interval-ms",
            &options.webhook_retry_interval_ms.to_string(),
            "--rate-limit-per-minute",
            "0",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let log_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../target/e2e-logs")
            .join(p.topology.namespace());
        std::fs::create_dir_all(&log_dir).unwrap();
        let mut stack = Self {
            env,
            log_dir,
            sim_args,
            children: Vec::new(),
            ingress_port,
            warehouse_port,
            sim_port,
            orders: options.orders,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap(),
        };
        for name in std::iter::once("ingress").chain(WORKERS) {
            stack.spawn(name);
        }
        for name in std::iter::once("ingress").chain(WORKERS) {
            stack.wait_ready(name).await;
        }
        stack.spawn("webflow-sim");
        stack.wait_ready("webflow-sim").await;
        stack
    }

    /// Starts `name` (again) with the stack's environment and a fresh health port.
    pub fn spawn(&mut self, name: &str) {
        let health_port = free_port();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_dir.join(format!("{name}.log")))
            .unwrap();
        let mut command = Command::new(binary(name));
        command
            .env_remove("WMS_CONFIG")
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        if name == "webflow-sim" {
            command.args(&self.sim_args);
        }
        for (k, v) in &self.env {
            command.env(k, v);
        }
        command.env("WMS__HEALTH__BIND", format!("127.0.0.1:{health_port}"));
        let child = command.spawn().unwrap();
        self.children.push((name.to_owned(), child, health_port));
    }

    /// Waits until `name` answers ready on its health endpoint.
    pub async fn wait_ready(&self, name: &str) {
        let url = if name == "webflow-sim" {
            format!("http://127.0.0.1:{}/healthz", self.sim_port)
        } else {
            let (_, _, port) = self.children.iter().find(|(n, _, _)| n == name).unwrap();
            format!("http://127.0.0.1:{port}/readyz")
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while !self.http.get(&url).send().await.is_ok_and(|r| r.status() == 200) {
            assert!(tokio::time::Instant::now() < deadline, "{name} never became ready");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// SIGKILL: no chance to finish, ack or clean up.
    pub fn kill_9(&mut self, name: &str) {
        let (_, child, _) = self.children.iter_mut().find(|(n, _, _)| n == name).unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
        self.children.retain(|(n, _, _)| n != name);
    }

    /// `kill -9` then start again, waiting until it is ready.
    pub async fn crash_and_restart(&mut self, name: &str) {
        self.kill_9(name);
        self.spawn(name);
        self.wait_ready(name).await;
    }

    /// Runs `reconcile --once` as its own process; it must succeed.
    pub async fn reconcile_once(&self) {
        let mut command = tokio::process::Command::new(binary("reconcile"));
        command
            .arg("--once")
            .env_remove("WMS_CONFIG")
            .env("WMS__HEALTH__BIND", "127.0.0.1:0")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in &self.env {
            command.env(k, v);
        }
        let output = tokio::time::timeout(Duration::from_secs(60), command.output())
            .await
            .expect("reconcile --once took over a minute")
            .unwrap();
        assert!(
            output.status.success(),
            "reconcile --once failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    pub async fn sim(&self, path: &str) -> serde_json::Value {
        self.http
            .get(format!("http://127.0.0.1:{}{path}", self.sim_port))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// Sets the simulator's injected faults (`/_sim/faults`); unnamed ones are cleared.
    pub async fn set_faults(&self, faults: serde_json::Value) {
        let response = self
            .http
            .post(format!("http://127.0.0.1:{}/_sim/faults", self.sim_port))
            .json(&faults)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }

    /// Orders the simulated store has created so far.
    pub async fn created(&self) -> usize {
        self.sim("/_sim/orders").await["orders"].as_array().map_or(0, Vec::len)
    }

    /// Waits until the store has created at least `n` orders.
    pub async fn wait_created(&self, n: usize) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        while self.created().await < n {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the store never created {n} orders"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits until `n` orders are fulfilled in the warehouse database (or fails naming where
    /// the others are).
    pub async fn wait_fulfilled(&self, p: &Pipeline, n: i64, timeout: Duration) {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let fulfilled = p
                .scalar("SELECT count(*) FROM orders WHERE state = 'fulfilled'", &[])
                .await;
            if fulfilled >= n {
                return;
            }
            if tokio::time::Instant::now() >= deadline {
                let rows = p
                    .client()
                    .await
                    .query("SELECT state, count(*) FROM orders GROUP BY state", &[])
                    .await
                    .unwrap();
                let states: Vec<String> = rows
                    .iter()
                    .map(|r| format!("{}={}", r.get::<_, String>(0), r.get::<_, i64>(1)))
                    .collect();
                panic!("{fulfilled} of {n} fulfilled; orders by state: {states:?}");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// The outcome every chaos test must end with: every order the store created is fulfilled
    /// in Webflow exactly once (one PATCH with tracking, then one fulfil with one email), one
    /// label per order, and the inventory adds up (on hand + shipped = received, nothing left
    /// reserved).
    pub async fn assert_every_order_fulfilled_once(&self, p: &Pipeline, timeout: Duration) {
        let n = i64::from(self.orders);
        self.wait_fulfilled(p, n, timeout).await;
        let orders = self.sim("/_sim/orders").await;
        let orders = orders["orders"].as_array().unwrap();
        assert_eq!(orders.len(), self.orders as usize, "the store created every order");
        let writes = self.sim("/_sim/writes").await;
        let mut by_order: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for write in writes["writes"].as_array().unwrap() {
            let path = write["path"].as_str().unwrap();
            let kind = if path.ends_with("/fulfill") {
                assert_eq!(write["body"]["sendOrderFulfilledEmail"], true);
                "fulfill".to_owned()
            } else if write["method"] == "PATCH" {
                assert!(write["body"]["shippingTracking"].as_str().is_some(), "{write}");
                "patch".to_owned()
            } else {
                format!("{} {path}", write["method"])
            };
            by_order
                .entry(write["order_id"].as_str().unwrap().to_owned())
                .or_default()
                .push(kind);
        }
        for order in orders {
            let id = order["orderId"].as_str().unwrap();
            assert_eq!(order["status"], "fulfilled", "{id} is fulfilled in Webflow");
            assert_eq!(
                by_order.get(id).map(Vec::as_slice),
                Some(["patch".to_owned(), "fulfill".to_owned()].as_slice()),
                "{id}: one PATCH then one fulfil, nothing twice"
            );
            assert_eq!(p.order_state(id).await.as_deref(), Some("fulfilled"), "{id}");
        }
        assert_eq!(by_order.len(), orders.len(), "no write for an unknown order");
        assert_eq!(
            p.scalar("SELECT count(*) FROM orders", &[]).await,
            n,
            "one order row per Webflow order"
        );
        assert_eq!(
            p.scalar("SELECT count(*) FROM shipments WHERE status = 'booked'", &[])
                .await,
            n,
            "one label per order"
        );
        let inconsistent = p
            .scalar(
                "SELECT count(*) FROM inventory WHERE reserved <> 0 OR on_hand + shipped <> $1",
                &[&STACK_STOCK],
            )
            .await;
        assert_eq!(inconsistent, 0, "on hand + shipped = received, nothing left reserved");
    }

    /// SIGTERM everything; each must exit 0 within the grace period. Removes the logs.
    pub fn stop(&mut self) {
        for (name, child, _) in &mut self.children {
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
        // Passed: the logs are only kept for failures.
        let _ = std::fs::remove_dir_all(&self.log_dir);
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        for (_, child, _) in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
