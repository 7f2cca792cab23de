//! Every service as its own OS process (the binaries `make test` builds into `target/debug`),
//! configured only through the environment, with the Webflow simulator's store as the source
//! of orders. The chaos tests kill, cut and restart parts of it and then check the outcome
//! with [`Stack::assert_every_order_fulfilled_once`].

use crate::{Pipeline, PipelineOptions, SECRET, SITE_ID, TOKEN, consumer, start_pipeline};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The workers and the warehouse (auto-pack), in pipeline order.
pub const WORKERS: [&str; 5] = [
    consumer::ENRICH,
    consumer::RESERVE,
    consumer::SHIP,
    consumer::NOTIFY_WEBFLOW,
    "warehouse",
];
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

/// A port for a process the stack starts, handed out once per test process and from a range no
/// other socket is given by the kernel.
///
/// The process binds it only later (the simulator several seconds later, once every service is
/// ready), and the port must still be free then. A port picked with `bind(127.0.0.1:0)` and
/// released is not: the kernel gives every listener that binds port 0 (each in-process test's
/// ingress, health listeners, warehouse, wiremock, proxy, all in parallel) one of the same
/// ~7,000 ports of the ephemeral range, so one of them could take it. The process then exited
/// with "Address already in use" while the harness, polling the port, was answered by that
/// stranger: a health listener's `/healthz` said ready, and its empty 404 to `/_sim/orders`
/// failed as "EOF while parsing a value" (issue 11). So the ports come from outside
/// `ip_local_port_range`, where neither port-0 binds nor outgoing connections land, each one
/// once, from a random starting point (other test processes on the machine start elsewhere),
/// skipping any port something listens on.
pub fn free_port() -> u16 {
    static NEXT: std::sync::Mutex<Option<u32>> = std::sync::Mutex::new(None);
    let (low, high) = port_range();
    let size = high - low;
    assert!(
        size > 0,
        "no port outside ip_local_port_range to give the stack's processes"
    );
    let mut next = NEXT.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let start = *next.get_or_insert_with(|| {
        use std::hash::BuildHasher;
        let random = std::collections::hash_map::RandomState::new().hash_one(std::process::id());
        (random % u64::from(size)) as u32
    });
    for i in 0..size {
        let port = (low + (start + i) % size) as u16;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            *next = Some((start + i + 1) % size);
            return port;
        }
    }
    panic!("no free port in {low}..{high}");
}

/// The larger span of unprivileged ports outside the kernel's ephemeral range (10000..32768
/// with Linux's default 32768-60999).
fn port_range() -> (u32, u32) {
    let ephemeral = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|text| {
            let mut bounds = text.split_whitespace().map(str::parse::<u32>);
            Some((bounds.next()?.ok()?, bounds.next()?.ok()?))
        })
        .unwrap_or((32_768, 60_999));
    let below = (10_000, ephemeral.0.max(10_000));
    let above = ((ephemeral.1 + 1).max(10_000), 65_536);
    if below.1 - below.0 >= above.1 - above.0 {
        below
    } else {
        above
    }
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
    /// More settings for every process (`WMS__…` variables).
    pub env: Vec<(String, String)>,
}

impl Default for StackOptions {
    fn default() -> Self {
        Self {
            orders: 60,
            orders_per_minute: 600,
            webhook_retry_interval_ms: 500,
            amqp_url: test_support::amqp_url(),
            env: Vec::new(),
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
        .chain(options.env.iter().cloned())
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
            // A start-up error prints as one line, not buried under a backtrace (panics keep theirs).
            .env("RUST_LIB_BACKTRACE", "0")
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

    /// Waits until `name` answers ready on its health endpoint (the simulator: on an endpoint
    /// only a simulator has); fails with its log if it exits first.
    pub async fn wait_ready(&mut self, name: &str) {
        let url = if name == "webflow-sim" {
            format!("http://127.0.0.1:{}/_sim/faults", self.sim_port)
        } else {
            let (_, _, port) = self.children.iter().find(|(n, _, _)| n == name).unwrap();
            format!("http://127.0.0.1:{port}/readyz")
        };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
        loop {
            let answer = self.http.get(&url).send().await;
            let ready = answer.as_ref().is_ok_and(|r| r.status() == 200);
            let (_, child, _) = self.children.iter_mut().find(|(n, _, _)| n == name).unwrap();
            if let Some(status) = child.try_wait().unwrap() {
                panic!(
                    "{name} exited ({status}) instead of becoming ready; {}",
                    self.log_tail(name)
                );
            }
            if ready {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{name} never became ready ({url}: {:?}); {}",
                answer.map(|r| r.status()),
                self.log_tail(name)
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The `/metrics` URL of `name`'s health listener.
    pub fn metrics_url(&self, name: &str) -> String {
        let (_, _, port) = self
            .children
            .iter()
            .find(|(n, _, _)| n == name)
            .unwrap_or_else(|| panic!("{name} is not running"));
        format!("http://127.0.0.1:{port}/metrics")
    }

    /// Everything `name` logged so far.
    pub fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.log_dir.join(format!("{name}.log"))).unwrap_or_default()
    }

    /// The last lines `name` logged, for failure messages.
    pub fn log_tail(&self, name: &str) -> String {
        let path = self.log_dir.join(format!("{name}.log"));
        let log = std::fs::read_to_string(&path).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        let tail = lines[lines.len().saturating_sub(20)..].join("\n");
        format!("{} ends:\n{tail}", path.display())
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

    /// GETs a `/_sim/...` inspection endpoint; it must answer 200 with JSON.
    pub async fn sim(&self, path: &str) -> serde_json::Value {
        let request = self.http.get(format!("http://127.0.0.1:{}{path}", self.sim_port));
        self.sim_answer(&format!("GET {path}"), request).await
    }

    /// Sets the simulator's injected faults (`/_sim/faults`); unnamed ones are cleared.
    pub async fn set_faults(&self, faults: serde_json::Value) {
        let url = format!("http://127.0.0.1:{}/_sim/faults", self.sim_port);
        self.sim_answer("POST /_sim/faults", self.http.post(url).json(&faults))
            .await;
    }

    /// Sends `request` to the simulator and parses its answer, failing with what was answered
    /// (status and body) and the simulator's log unless it is a 200 with JSON.
    async fn sim_answer(&self, what: &str, request: reqwest::RequestBuilder) -> serde_json::Value {
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("{what}: no answer ({e}); {}", self.log_tail("webflow-sim")));
        let status = response.status();
        let body = response.text().await.unwrap_or_else(|e| {
            panic!(
                "{what}: {status}, body unreadable ({e}); {}",
                self.log_tail("webflow-sim")
            )
        });
        match serde_json::from_str(&body) {
            Ok(json) if status == 200 => json,
            Ok(_) => panic!("{what} answered {status}: {body:?}; {}", self.log_tail("webflow-sim")),
            Err(e) => panic!(
                "{what} answered {status} with no JSON ({e}): {body:?}; {}",
                self.log_tail("webflow-sim")
            ),
        }
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

    /// A counter of the simulator's `/_sim/stats`.
    pub async fn sim_stat(&self, name: &str) -> u64 {
        self.sim("/_sim/stats").await[name]
            .as_u64()
            .unwrap_or_else(|| panic!("/_sim/stats has no counter {name}"))
    }

    /// Waits until the simulator's counter `name` exceeds `above`.
    pub async fn wait_sim_stat_above(&self, name: &str, above: u64, timeout: Duration) -> u64 {
        crate::wait_for(
            &format!("the simulator's {name} to exceed {above}"),
            timeout,
            || async {
                let value = self.sim_stat(name).await;
                (value > above).then_some(value)
            },
        )
        .await
    }

    /// Waits until every webhook the store sent has come to its end, delivered or given up
    /// after its retries: no retry is still to come. (Every webhook of these stacks is a new
    /// order's: no refunds, no inventory sync.)
    pub async fn wait_webhooks_settled(&self, timeout: Duration) {
        crate::wait_for("every webhook delivered or given up", timeout, || async {
            let stats = self.sim("/_sim/stats").await;
            let ended = stats["webhooks_delivered"].as_u64().unwrap() + stats["webhooks_given_up"].as_u64().unwrap();
            (ended >= self.created().await as u64).then_some(())
        })
        .await;
    }

    /// Waits until nothing is left to do: every work queue empty, no worker process with a
    /// delivery in flight, and no outbox event unpublished, five checks in a row.
    pub async fn wait_until_idle(&self, p: &Pipeline, timeout: Duration) {
        let quiet = std::sync::atomic::AtomicU32::new(0);
        crate::wait_for("the stack idle", timeout, || async {
            let mut idle = p
                .scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL", &[])
                .await
                == 0;
            for queue in platform::amqp::CONSUMERS {
                idle &= p.observer.message_count(&p.topology.work_queue(queue.name)).await == 0;
                let metrics = self
                    .http
                    .get(self.metrics_url(queue.name))
                    .send()
                    .await
                    .unwrap()
                    .text()
                    .await
                    .unwrap();
                idle &= crate::wait::sum_of_series(&metrics, "wms_worker_in_flight", queue.name, None) == 0;
            }
            let checks = if idle {
                quiet.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1
            } else {
                quiet.store(0, std::sync::atomic::Ordering::Relaxed);
                0
            };
            (checks >= 5).then_some(())
        })
        .await;
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A stack with no processes yet, whose simulator is to serve on `sim_port`.
    fn bare_stack(sim_port: u16) -> Stack {
        platform::install_crypto_provider();
        let log_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../target/e2e-logs")
            .join(format!("harness-{sim_port}"));
        std::fs::create_dir_all(&log_dir).unwrap();
        Stack {
            // The simulator runs only under a local profile.
            env: vec![("WMS__PROFILE".into(), "local".into())],
            log_dir,
            sim_args: vec!["--bind".into(), format!("127.0.0.1:{sim_port}")],
            children: Vec::new(),
            ingress_port: 0,
            warehouse_port: 0,
            sim_port,
            orders: 0,
            http: reqwest::Client::new(),
        }
    }

    /// What an in-process service of a parallel test binds: a health listener on port 0.
    fn foreign_listener(port: u16) -> platform::health::HealthServer {
        let state = platform::health::HealthState::new(prometheus::Registry::new(), Vec::new());
        platform::health::serve(([127, 0, 0, 1], port).into(), state).unwrap()
    }

    /// The message a future panicked with.
    async fn panic_of(future: impl Future<Output = ()> + Send + 'static) -> String {
        let error = tokio::spawn(future).await.expect_err("it should have failed");
        let payload = error.into_panic();
        payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_default()
    }

    #[test]
    fn ports_are_handed_out_once_and_never_where_port_0_binds_land() {
        let (low, high) = port_range();
        let ports: Vec<u16> = (0..200).map(|_| free_port()).collect();
        let distinct: std::collections::BTreeSet<_> = ports.iter().collect();
        assert_eq!(distinct.len(), ports.len(), "each port once");
        for port in ports {
            assert!((low..high).contains(&u32::from(port)), "{port} outside {low}..{high}");
        }
        for _ in 0..1_000 {
            let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let taken = u32::from(taken.local_addr().unwrap().port());
            assert!(!(low..high).contains(&taken), "a port-0 bind got {taken}");
        }
    }

    /// Issue 11: the simulator could not bind its port (another listener had it), and the
    /// harness took that listener's answers for the simulator's.
    #[tokio::test]
    async fn a_simulator_that_cannot_bind_its_port_is_reported_not_taken_for_whoever_has_it() {
        let port = free_port();
        let _foreign = foreign_listener(port);
        let mut stack = bare_stack(port);
        stack.spawn("webflow-sim");
        let log_dir = stack.log_dir.clone();
        let message = panic_of(async move { stack.wait_ready("webflow-sim").await }).await;
        assert!(message.contains("webflow-sim exited"), "{message}");
        assert!(message.contains("Address already in use"), "{message}");
        std::fs::remove_dir_all(log_dir).unwrap();
    }

    #[tokio::test]
    async fn simulator_calls_fail_saying_what_was_answered() {
        let port = free_port();
        let _foreign = foreign_listener(port);
        let stack = bare_stack(port);
        let log_dir = stack.log_dir.clone();
        let message = panic_of(async move {
            stack.sim("/_sim/orders").await;
        })
        .await;
        assert!(message.contains("GET /_sim/orders answered 404 Not Found"), "{message}");
        std::fs::remove_dir_all(log_dir).unwrap();
    }
}
