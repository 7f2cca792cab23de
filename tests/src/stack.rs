//! Every service as its own OS process (the binaries `make test` builds into `target/debug`),
//! configured only through the environment, with the Webflow simulator's store as the source
//! of orders. The chaos tests kill, cut and restart parts of it and then check the outcome
//! with [`Stack::assert_every_order_fulfilled_once`].

use crate::{Pipeline, PipelineOptions, SECRET, SITE_ID, TOKEN, consumer, start_pipeline};
use launcher::{ProcessSpec, Processes};
use std::collections::BTreeMap;
use std::path::PathBuf;
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

/// The directory `make test` builds the binaries into.
pub fn bin_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/debug")
}

/// A port for a process the stack starts (see [`launcher::free_port`]).
pub fn free_port() -> u16 {
    launcher::free_port().unwrap()
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
    /// More sites the simulator serves (`site_id:token:webhook_secret[:limit]`), which no
    /// configuration names: stores a test onboards at runtime.
    pub sim_extra_sites: Vec<String>,
}

impl Default for StackOptions {
    fn default() -> Self {
        Self {
            orders: 60,
            orders_per_minute: 600,
            webhook_retry_interval_ms: 500,
            amqp_url: test_support::amqp_url(),
            env: Vec::new(),
            sim_extra_sites: Vec::new(),
        }
    }
}

/// How long a process may take to become ready, and to exit after SIGTERM.
const READY_WITHIN: Duration = Duration::from_secs(60);
const STOP_WITHIN: Duration = Duration::from_secs(30);

pub struct Stack {
    /// The processes (the launcher's); each one's output goes to `<log_dir>/<name>.log`
    /// (appended across restarts).
    processes: Processes,
    pub log_dir: PathBuf,
    sim_args: Vec<String>,
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
        .chain(
            (!options.sim_extra_sites.is_empty())
                .then(|| ["--extra-sites".to_owned(), options.sim_extra_sites.join(",")])
                .into_iter()
                .flatten(),
        )
        .collect();
        let log_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../target/e2e-logs")
            .join(p.topology.namespace());
        let processes = Processes::new(&bin_dir(), &log_dir, env)
            .unwrap()
            .without_env("WMS_CONFIG");
        let mut stack = Self {
            processes,
            log_dir,
            sim_args,
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
        let spec = if name == "webflow-sim" {
            ProcessSpec::simulator(self.sim_port, &self.sim_args)
        } else {
            ProcessSpec::service(name)
        };
        self.processes.spawn(spec).unwrap();
    }

    /// Waits until `name` answers ready on its health endpoint (the simulator: on an endpoint
    /// only a simulator has); fails with its log if it exits first.
    pub async fn wait_ready(&mut self, name: &str) {
        if let Err(error) = self.processes.wait_ready(name, READY_WITHIN).await {
            panic!("{error}");
        }
    }

    /// The `/metrics` URL of `name`'s health listener.
    pub fn metrics_url(&self, name: &str) -> String {
        self.processes.metrics_url(name).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Everything `name` logged so far.
    pub fn log(&self, name: &str) -> String {
        self.processes.log(name)
    }

    /// The last lines `name` logged, for failure messages.
    pub fn log_tail(&self, name: &str) -> String {
        self.processes.log_tail(name)
    }

    /// SIGKILL: no chance to finish, ack or clean up.
    pub fn kill_9(&mut self, name: &str) {
        self.processes.kill_9(name).unwrap();
    }

    /// `kill -9` then start again, waiting until it is ready.
    pub async fn crash_and_restart(&mut self, name: &str) {
        self.kill_9(name);
        self.spawn(name);
        self.wait_ready(name).await;
    }

    /// Runs `reconcile --once` as its own process; it must succeed.
    pub async fn reconcile_once(&self) {
        if let Err(error) = self
            .processes
            .run_once("reconcile", &["--once"], Duration::from_secs(60))
            .await
        {
            panic!("reconcile --once: {error}");
        }
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
        // A connection of its own: the pipeline's observer may have been opened before a
        // broker restart (tests/broker_restart), which closed it.
        let observer = test_support::amqp::QueueObserver::connect().await;
        let quiet = std::sync::atomic::AtomicU32::new(0);
        crate::wait_for("the stack idle", timeout, || async {
            let mut idle = p
                .scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL", &[])
                .await
                == 0;
            for queue in platform::amqp::CONSUMERS {
                idle &= observer.message_count(&p.topology.work_queue(queue.name)).await == 0;
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
        if let Err(error) = self.processes.stop_all(STOP_WITHIN) {
            panic!("{error}");
        }
        // Passed: the logs are only kept for failures.
        let _ = std::fs::remove_dir_all(&self.log_dir);
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
        // The simulator runs only under a local profile.
        let env = vec![("WMS__PROFILE".into(), "local".into())];
        Stack {
            processes: Processes::new(&bin_dir(), &log_dir, env)
                .unwrap()
                .without_env("WMS_CONFIG"),
            log_dir,
            sim_args: Vec::new(),
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
