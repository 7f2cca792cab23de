//! The whole pipeline in one process for tests: the ingress and every worker, each built from
//! its library exactly as its binary builds it, against a fresh database and AMQP namespace,
//! with Webflow faked by wiremock.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test harness fails loudly")]

pub use platform::amqp::topology::consumer;
use platform::amqp::{Role, Topology};
use reserve::ReserveHandler;
use secrecy::SecretString;
use service_base::BaseSettings;
use std::time::Duration;
use test_support::amqp::QueueObserver;
use test_support::db::TestDatabase;
use tokio_util::sync::CancellationToken;
use webflow::{SiteSettings, WebflowClient, WebflowSettings};
use webflow_gateway::WebflowGateway;
use wiremock::MockServer;

pub mod stack;
pub mod wait;

pub use wait::wait_for;

pub const SITE_ID: &str = "65f0c0ffee0000000000beef";
pub const SECRET: &str = "whsec-e2e";
pub const TOKEN: &str = "site-token-e2e";
/// The two SKUs of the Webflow fixture order.
pub const SKU_BALL: &str = "luxurious-fresh-ball-generic-bronze-practical-plastic";
pub const SKU_GLOVES: &str = "recycled-steel-gloves-electronic-granite-handcrafted-grey";

pub struct Pipeline {
    pub db: TestDatabase,
    pub webflow: MockServer,
    pub topology: Topology,
    pub observer: QueueObserver,
    pub ingress_url: String,
    pub http: reqwest::Client,
    pub base: BaseSettings,
    pub shutdown: CancellationToken,
    pub enrich: Option<worker::WorkerRuntime<enrich::EnrichHandler>>,
    pub reserve: Option<worker::WorkerRuntime<ReserveHandler>>,
    pub warehouse_url: Option<String>,
    pub sim: Option<webflow_sim::Simulator>,
    /// The Webflow base URL the workers use (wiremock or the simulator).
    pub webflow_base: String,
    /// Every site the services know: the test site first.
    pub sites: Vec<SiteSettings>,
    /// `[inventory_sync]` of the notify-webflow workers.
    pub inventory_sync: inventory_sync::InventorySyncSettings,
    /// The health listener (`/metrics`) of each consumer started in-process, by consumer name:
    /// what [`Pipeline::wait_until_idle`] and [`Pipeline::wait_until_handled`] read.
    /// Each in-process consumer replica's health port (its `/metrics`), extra replicas too.
    consumer_health_ports: std::sync::Mutex<Vec<(&'static str, u16)>>,
    /// Per-service RabbitMQ users, when the test gave them.
    amqp_users: Option<AmqpUsers>,
    /// Deletes the namespace when the pipeline is dropped (the database drops itself): at
    /// teardown, or when the test panics before it.
    _leak_guard: test_support::LeakGuard,
}

/// Which carrier the `ship` worker books with.
#[derive(Clone)]
pub enum CarrierChoice {
    Sandbox,
    /// ShipEngine at this base URL (a wiremock server).
    ShipEngine(String),
}

#[derive(Clone)]
pub struct PipelineOptions {
    pub start_enrich: bool,
    pub start_reserve: bool,
    pub start_ship: bool,
    pub start_notify: bool,
    pub start_warehouse: bool,
    pub auto_pack: bool,
    pub carrier: CarrierChoice,
    pub always_fetch: bool,
    pub max_attempts: u32,
    /// Use the Webflow simulator (delivering its webhooks to the ingress) instead of wiremock.
    pub simulator: Option<webflow_sim::SimConfig>,
    /// Stock set before anything starts (SKU, on hand).
    pub stock: Vec<(&'static str, i64)>,
    /// More Webflow sites every service knows (the simulator's `extra_sites`, say).
    pub extra_sites: Vec<SiteSettings>,
    /// The test site's `rate_limit_per_minute` (default: generous, 6,000).
    pub site_limit: Option<u32>,
    /// `worker.max_deferral_secs`.
    pub max_deferral_secs: Option<u64>,
    /// `worker.concurrency` of every worker (default 16).
    pub worker_concurrency: Option<u16>,
    /// Sites (by id) whose stock is synced to the simulator's SKU collection (issue 17).
    pub inventory_sync_sites: Vec<String>,
    /// `[inventory_sync]` of the notify-webflow workers.
    pub inventory_sync: inventory_sync::InventorySyncSettings,
    /// Each service under a RabbitMQ user of its own, the topology declared first by the
    /// `topology` user (`wmsctl amqp declare`'s step) and only verified by the services
    /// (`amqp.declare_topology = false`). `None`: everything as guest, each service declaring.
    pub amqp_users: Option<AmqpUsers>,
}

/// The AMQP URL of each [`Role`] (a user with that role's permissions), on one vhost.
#[derive(Clone, Debug)]
pub struct AmqpUsers {
    /// `amqp.namespace`: the one the users' permissions were made for.
    pub namespace: String,
    /// What the test observes through (the queue observer): guest on the same vhost.
    pub observer: String,
    pub urls: Vec<(Role, String)>,
}

impl AmqpUsers {
    pub fn url(&self, role: Role) -> String {
        self.urls
            .iter()
            .find(|(r, _)| *r == role)
            .map(|(_, url)| url.clone())
            .unwrap_or_else(|| panic!("no AMQP user for {role}"))
    }
}

/// `base` with `role`'s AMQP URL, when the pipeline runs under per-service users.
fn base_for(base: &BaseSettings, users: Option<&AmqpUsers>, role: Role) -> BaseSettings {
    let mut base = base.clone();
    if let Some(users) = users {
        base.amqp.url = SecretString::from(users.url(role));
    }
    base
}

impl Default for PipelineOptions {
    fn default() -> Self {
        Self {
            start_enrich: true,
            start_reserve: true,
            start_ship: false,
            start_notify: false,
            start_warehouse: false,
            auto_pack: false,
            carrier: CarrierChoice::Sandbox,
            always_fetch: false,
            max_attempts: 4,
            simulator: None,
            stock: Vec::new(),
            extra_sites: Vec::new(),
            site_limit: None,
            max_deferral_secs: None,
            worker_concurrency: None,
            inventory_sync_sites: Vec::new(),
            inventory_sync: inventory_sync::InventorySyncSettings::default(),
            amqp_users: None,
        }
    }
}

/// The warehouse API token tests use.
pub const WAREHOUSE_TOKEN: &str = "warehouse-test-token";
/// A named admin token on every store (`warehouse.tokens`): the console tests sign in with it.
pub const CONSOLE_TOKEN: &str = "console-test-token";
/// Its name: the actor recorded for what the console tests do.
pub const CONSOLE_OPERATOR: &str = "e2e-admin";

pub fn site() -> SiteSettings {
    SiteSettings {
        site_id: SITE_ID.into(),
        api_token: Some(SecretString::from(TOKEN)),
        webhook_secrets: vec![SecretString::from(SECRET)],
        // Generous, so tests are not paced by the budget (the budget has its own tests).
        rate_limit_per_minute: 6_000,
        ..SiteSettings::default()
    }
}

/// A simulator configured for the test site, delivering webhooks once the pipeline runs.
pub fn simulator_config() -> webflow_sim::SimConfig {
    webflow_sim::SimConfig {
        bind: "127.0.0.1:0".into(),
        site_id: SITE_ID.into(),
        token: TOKEN.into(),
        webhook_secret: SECRET.into(),
        retry_interval_ms: 200,
        ..webflow_sim::SimConfig::default()
    }
}

/// The `[webflow]` section the services get: the test site, served at `base_url`.
pub fn webflow_settings(base_url: &str) -> WebflowSettings {
    let mut settings = WebflowSettings {
        api_base_url: base_url.into(),
        allow_insecure_http: true,
        timeout_ms: 1_000,
        budget: test_budget(),
        // Stores onboarded or removed by a test are picked up quickly.
        store_refresh_ms: 100,
        ..WebflowSettings::default()
    };
    settings.sites.insert("shop".into(), site());
    settings
}

/// The simulator's window in tests that check "never over the limit" (its limit scales to it).
pub const TEST_WINDOW_MS: u64 = 10_000;

/// How gateways share budgets in tests: the margin against jitter scaled to the simulator's
/// 10-second window (1 s per 60 s in production, so 6 s per 60 s here gives the same slack).
pub fn test_budget() -> webflow::BudgetSettings {
    webflow::BudgetSettings {
        window_margin_ms: 6_000,
        ..webflow::BudgetSettings::default()
    }
}

/// The budget key of the test site's token.
pub fn budget_key() -> String {
    webflow_gateway::token_key(&SecretString::from(TOKEN))
}

/// A site of `site_id` with its own token (`token`) and limit.
pub fn other_site(site_id: &str, token: &str, limit: u32) -> SiteSettings {
    SiteSettings {
        site_id: site_id.into(),
        api_token: Some(SecretString::from(token)),
        webhook_secrets: vec![SecretString::from(SECRET)],
        rate_limit_per_minute: limit,
        ..SiteSettings::default()
    }
}

/// The `[webflow]` section for `sites`, served at `base_url`.
pub fn webflow_settings_for(base_url: &str, sites: &[SiteSettings]) -> WebflowSettings {
    let mut settings = webflow_settings(base_url);
    settings.sites.clear();
    for (i, site) in sites.iter().enumerate() {
        let name = if i == 0 { "shop".to_owned() } else { format!("site{i}") };
        settings.sites.insert(name, site.clone());
    }
    settings
}

/// A Webflow gateway to `base_url`, with the site's budget and a reconciliation share.
pub fn gateway(base_url: &str, db: &TestDatabase) -> WebflowGateway {
    let client = WebflowClient::new(base_url, Duration::from_secs(1), true).unwrap();
    WebflowGateway::new(client, db.pool.clone(), [site()])
        .with_budget_settings(test_budget())
        .with_reconcile_share(0.2)
}

pub async fn start_pipeline(options: PipelineOptions) -> Pipeline {
    platform::telemetry::init_for_tests();
    platform::install_crypto_provider();
    let db = TestDatabase::create().await;
    let webflow = MockServer::start().await;
    let mut webflow_base = webflow.uri();
    for (sku, on_hand) in &options.stock {
        db.stock(sku, *on_hand).await;
    }
    let shutdown = CancellationToken::new();

    let mut base = BaseSettings::default();
    base.amqp.url = SecretString::from(test_support::amqp_url());
    base.amqp.namespace = test_support::random_namespace();
    // Short delay tiers so retries happen within a test.
    base.amqp.retry_delays_ms = vec![100, 300, 1_000];
    base.amqp.reconnect.initial_ms = 50;
    base.database.url = SecretString::from(db.url.clone());
    base.database.pool_size = 8;
    base.health.bind = "127.0.0.1:0".into();
    base.worker.max_attempts = options.max_attempts;
    base.worker.retry.initial_ms = 100;
    base.worker.retry.multiplier = 2.0;
    base.worker.retry.randomization = 0.0;
    base.worker.relay_interval_ms = 200;
    base.worker.relay_min_age_ms = 1_000;
    if let Some(secs) = options.max_deferral_secs {
        base.worker.max_deferral_secs = secs;
    }
    if let Some(concurrency) = options.worker_concurrency {
        base.worker.concurrency = concurrency;
    }
    let mut sites = vec![site()];
    if let Some(limit) = options.site_limit {
        sites[0].rate_limit_per_minute = limit;
    }
    sites.extend(options.extra_sites.iter().cloned());
    for site in &mut sites {
        if options.inventory_sync_sites.contains(&site.site_id) {
            site.inventory_sync = true;
            site.sku_collection_id = Some(webflow_sim::state::sku_collection_id(&site.site_id));
        }
    }
    let users = options.amqp_users.clone();
    if let Some(users) = &users {
        base.amqp.namespace = users.namespace.clone();
        // The privileged step, as `wmsctl amqp declare` runs it; the services only verify.
        let connection = lapin::Connection::connect(&users.url(Role::Topology), lapin::ConnectionProperties::default())
            .await
            .unwrap();
        Topology::from_settings(&base.amqp).declare(&connection).await.unwrap();
        let _ = connection.close(200, "declared".into()).await;
        base.amqp.declare_topology = false;
    }
    let topology = Topology::from_settings(&base.amqp);
    let leak_guard = test_support::LeakGuard {
        topology: topology.clone(),
    };

    let mut ingress_settings = ingress::Settings {
        amqp: base_for(&base, users.as_ref(), Role::Ingress).amqp,
        database: base.database.clone(),
        ..Default::default()
    };
    ingress_settings.ingress.bind = "127.0.0.1:0".into();
    ingress_settings.ingress.workers = 2;
    ingress_settings.health.bind = "127.0.0.1:0".into();
    ingress_settings.webflow = webflow_settings_for("https://unused.example", &sites);
    let app = ingress::build(ingress_settings, shutdown.clone()).await.unwrap();
    app.amqp().wait_ready(Duration::from_secs(20)).await.unwrap();
    let ingress_url = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped(shutdown.clone()));

    let sim = match options.simulator.clone() {
        Some(mut config) => {
            config.webhook_url = Some(format!("{ingress_url}/webhooks/webflow/{SITE_ID}"));
            let sim = webflow_sim::Simulator::start(config, shutdown.clone()).unwrap();
            webflow_base = format!("{}/v2", sim.base_url);
            Some(sim)
        }
        None => None,
    };
    WebflowGateway::new(
        WebflowClient::new(&webflow_base, Duration::from_secs(1), true).unwrap(),
        db.pool.clone(),
        sites.clone(),
    )
    .with_reconcile_share(0.2)
    .ensure_budgets()
    .await
    .unwrap();

    let mut consumer_health_ports = Vec::new();
    let enrich = if options.start_enrich {
        let settings = enrich::Settings {
            base: base_for(&base, users.as_ref(), Role::Enrich),
            webflow: webflow_settings_for(&webflow_base, &sites),
            enrich: enrich::settings::EnrichSettings {
                always_fetch: options.always_fetch,
            },
        };
        let service = enrich::build(settings, shutdown.clone()).await.unwrap();
        consumer_health_ports.push((consumer::ENRICH, service.health_port()));
        let runtime = service.runtime().clone();
        tokio::spawn(service.run_until_stopped(shutdown.clone()));
        Some(runtime)
    } else {
        None
    };
    let reserve = if options.start_reserve {
        let service = reserve::build(base_for(&base, users.as_ref(), Role::Reserve), shutdown.clone())
            .await
            .unwrap();
        consumer_health_ports.push((consumer::RESERVE, service.health_port()));
        let runtime = service.runtime().clone();
        tokio::spawn(service.run_until_stopped(shutdown.clone()));
        Some(runtime)
    } else {
        None
    };

    if options.start_ship {
        let mut carrier = carrier::CarrierSettings::default();
        if let CarrierChoice::ShipEngine(url) = &options.carrier {
            carrier.kind = carrier::CarrierKind::ShipEngine;
            carrier.shipengine.base_url = url.clone();
            carrier.shipengine.api_key = Some(SecretString::from("TEST_key"));
            carrier.shipengine.timeout_ms = 1_000;
        }
        let settings = ship::Settings {
            base: base_for(&base, users.as_ref(), Role::Ship),
            carrier,
        };
        let service = ship::build(settings, shutdown.clone()).await.unwrap();
        consumer_health_ports.push((consumer::SHIP, service.health_port()));
        tokio::spawn(service.run_until_stopped(shutdown.clone()));
    }
    if options.start_notify {
        let settings = notify_webflow::Settings {
            base: base_for(&base, users.as_ref(), Role::NotifyWebflow),
            webflow: webflow_settings_for(&webflow_base, &sites),
            inventory_sync: options.inventory_sync.clone(),
        };
        let service = notify_webflow::build(settings, shutdown.clone()).await.unwrap();
        consumer_health_ports.push((consumer::NOTIFY_WEBFLOW, service.health_port()));
        tokio::spawn(service.run_until_stopped(shutdown.clone()));
    }
    let warehouse_url = if options.start_warehouse {
        let mut settings = warehouse::Settings {
            base: base_for(&base, users.as_ref(), Role::Warehouse),
            ..Default::default()
        };
        settings.warehouse.bind = "127.0.0.1:0".into();
        // Stores onboarded through the API are checked at, and their webhooks registered with,
        // the test's Webflow, pointing at this ingress.
        settings.webflow = webflow_settings_for(&webflow_base, &sites);
        settings.warehouse.public_ingress_url = Some(ingress_url.clone());
        settings.warehouse.api_tokens = vec![SecretString::from(WAREHOUSE_TOKEN)];
        settings.warehouse.tokens = vec![warehouse::settings::TokenSettings {
            name: CONSOLE_OPERATOR.into(),
            token_sha256: Some(warehouse::auth::sha256_hex(CONSOLE_TOKEN)),
            token_file: None,
            sites: vec!["*".into()],
            merchants: vec!["*".into()],
            role: warehouse::auth::Role::Admin,
        }];
        // Plain HTTP on 127.0.0.1.
        settings.warehouse.console.secure_cookies = false;
        settings.warehouse.auto_pack = options.auto_pack;
        settings.warehouse.auto_pack_interval_ms = 100;
        let app = warehouse::build(settings, shutdown.clone()).await.unwrap();
        app.amqp().wait_ready(Duration::from_secs(20)).await.unwrap();
        let url = format!("http://127.0.0.1:{}", app.port());
        tokio::spawn(app.run_until_stopped(shutdown.clone()));
        Some(url)
    } else {
        None
    };

    Pipeline {
        inventory_sync: options.inventory_sync.clone(),
        warehouse_url,
        sim,
        webflow_base,
        sites,
        db,
        webflow,
        topology,
        observer: match &users {
            Some(users) => QueueObserver::connect_to(&users.observer).await,
            None => QueueObserver::connect().await,
        },
        ingress_url,
        http: reqwest::Client::new(),
        base,
        shutdown,
        enrich,
        reserve,
        consumer_health_ports: std::sync::Mutex::new(consumer_health_ports),
        amqp_users: users,
        _leak_guard: leak_guard,
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

/// The fixture `ecomm_new_order` body with its order id and status replaced.
pub fn order_webhook(trigger: &str, order_id: &str, status: &str) -> serde_json::Value {
    let mut body: serde_json::Value =
        serde_json::from_slice(&test_support::fixture("webflow/webhook.ecomm_new_order.body.json")).unwrap();
    body["triggerType"] = trigger.into();
    body["payload"]["orderId"] = order_id.into();
    body["payload"]["status"] = status.into();
    body
}

/// An order of `count` units of one SKU.
pub fn single_sku_order(order_id: &str, sku: &str, count: i64) -> serde_json::Value {
    let mut body = order_webhook("ecomm_new_order", order_id, "unfulfilled");
    let items = body["payload"]["purchasedItems"].as_array_mut().unwrap();
    items.truncate(1);
    items[0]["variantSKU"] = sku.into();
    items[0]["count"] = count.into();
    body
}

impl Pipeline {
    /// Posts a webhook body for the test site, signed now; returns the status.
    pub async fn post_webhook(&self, body: &serde_json::Value) -> u16 {
        self.post_webhook_to(SITE_ID, body).await
    }

    /// Posts a webhook body to `site_id`'s ingress path, signed now with the test secret;
    /// returns the status.
    pub async fn post_webhook_to(&self, site_id: &str, body: &serde_json::Value) -> u16 {
        let body = serde_json::to_vec(body).unwrap();
        let ts = now_ms().to_string();
        let signature = webflow::sign(SECRET, &ts, &body);
        self.http
            .post(format!("{}/webhooks/webflow/{site_id}", self.ingress_url))
            .header("x-webflow-timestamp", ts)
            .header("x-webflow-signature", signature)
            .body(body)
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    }

    /// The `[webflow]` section of this pipeline's services.
    pub fn webflow_settings(&self) -> WebflowSettings {
        webflow_settings_for(&self.webflow_base, &self.sites)
    }

    pub async fn client(&self) -> warehouse_db::pool::Object {
        self.db.pool.get().await.unwrap()
    }

    pub async fn order_state(&self, order_id: &str) -> Option<String> {
        let client = self.client().await;
        warehouse_db::orders::find(&**client, &SITE_ID.into(), &order_id.into())
            .await
            .unwrap()
            .map(|o| o.state.as_str().to_owned())
    }

    /// The order's audit trail, one line per entry (for failure messages).
    pub async fn order_history(&self, order_id: &str) -> String {
        let client = self.client().await;
        client
            .query(
                "SELECT to_char(occurred_at, 'HH24:MI:SS.MS'), kind, actor, detail::text FROM audit_log
                 WHERE site_id = $1 AND webflow_order_id = $2 ORDER BY id",
                &[&SITE_ID, &order_id],
            )
            .await
            .unwrap()
            .iter()
            .map(|row| {
                let (at, kind, actor, detail): (String, String, String, String) =
                    (row.get(0), row.get(1), row.get(2), row.get(3));
                format!("{at} {kind} by {actor}: {detail}\n")
            })
            .collect()
    }

    /// Waits until the order reaches `state` (or the timeout passes); returns the last state.
    pub async fn wait_for_state(&self, order_id: &str, state: &str, timeout: Duration) -> Option<String> {
        self.wait_for_any_state(order_id, &[state], timeout).await
    }

    /// Waits until the order is in one of `states`; returns the last state.
    pub async fn wait_for_any_state(&self, order_id: &str, states: &[&str], timeout: Duration) -> Option<String> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let current = self.order_state(order_id).await;
            if current.as_deref().is_some_and(|c| states.contains(&c)) || tokio::time::Instant::now() >= deadline {
                return current;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until `count` orders are in `state`; returns the last count.
    pub async fn wait_for_count_in_state(&self, state: &str, count: i64, timeout: Duration) -> i64 {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let current: i64 = self
                .client()
                .await
                .query_one("SELECT count(*) FROM orders WHERE state = $1", &[&state])
                .await
                .unwrap()
                .get(0);
            if current >= count || tokio::time::Instant::now() >= deadline {
                return current;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub async fn scalar(&self, sql: &str, params: &[&(dyn tokio_postgres::types::ToSql + Sync)]) -> i64 {
        self.client().await.query_one(sql, params).await.unwrap().get(0)
    }

    /// A SKU's stock (the `default` merchant's).
    pub async fn inventory(&self, sku: &str) -> warehouse_db::inventory::StockLevel {
        self.merchant_inventory(warehouse_db::merchants::DEFAULT_MERCHANT_ID, sku)
            .await
    }

    /// A merchant's SKU's stock.
    pub async fn merchant_inventory(&self, merchant_id: i64, sku: &str) -> warehouse_db::inventory::StockLevel {
        let client = self.client().await;
        warehouse_db::inventory::get(&**client, merchant_id, &sku.into())
            .await
            .unwrap()
            .unwrap()
    }

    /// Waits until the queue has no ready messages and, where the consumer runs in-process
    /// (started with the pipeline), none taken and unsettled (its `wms_worker_in_flight`), five
    /// checks in a row; fails the test if that does not happen within `timeout`.
    pub async fn wait_until_idle(&self, consumer: &str, timeout: Duration) {
        let queue = self.topology.work_queue(consumer);
        let quiet = std::sync::atomic::AtomicU32::new(0);
        wait_for(&format!("{consumer} idle"), timeout, || async {
            let idle = self.observer.message_count(&queue).await == 0
                && self
                    .worker_metric(consumer, "wms_worker_in_flight", None)
                    .await
                    .unwrap_or(0)
                    == 0;
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

    /// Messages the in-process `consumer` has finished with for good (processed, duplicate or
    /// dead-lettered; a retried or requeued one comes back and is counted when it ends).
    pub async fn handled(&self, consumer: &str) -> u64 {
        let mut total = 0;
        for outcome in ["processed", "duplicate", "dead_lettered"] {
            total += self
                .worker_metric(consumer, "wms_worker_messages_total", Some(outcome))
                .await
                .unwrap_or_else(|| panic!("{consumer} does not run in this pipeline"));
        }
        total
    }

    /// Waits until the in-process `consumer` has finished with `count` messages in all and
    /// nothing is left in its queue or in flight: the positive marker that a message sent to
    /// it (a duplicate, a replay) was handled, where handling it leaves no trace.
    pub async fn wait_until_handled(&self, consumer: &str, count: u64, timeout: Duration) {
        wait_for(
            &format!("{consumer} to have handled {count} messages"),
            timeout,
            || async { (self.handled(consumer).await >= count).then_some(()) },
        )
        .await;
        self.wait_until_idle(consumer, timeout).await;
    }

    /// A worker metric of the in-process `consumer` from its `/metrics` (summed over the
    /// series with that consumer and, if given, that outcome); `None` when it does not run here.
    async fn worker_metric(&self, consumer: &str, name: &str, outcome: Option<&str>) -> Option<u64> {
        let ports: Vec<u16> = self
            .consumer_health_ports
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
            .filter(|(c, _)| *c == consumer)
            .map(|(_, port)| *port)
            .collect();
        if ports.is_empty() {
            return None;
        }
        let mut total = 0;
        for port in ports {
            total += self.replica_metric(port, consumer, name, outcome).await;
        }
        Some(total)
    }

    /// Tracks one more in-process replica of `consumer` (its health port) in `handled` and the
    /// idle checks.
    pub fn track_replica(&self, consumer: &'static str, health_port: u16) {
        self.consumer_health_ports
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push((consumer, health_port));
    }

    async fn replica_metric(&self, port: u16, consumer: &str, name: &str, outcome: Option<&str>) -> u64 {
        let text = self
            .http
            .get(format!("http://127.0.0.1:{port}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        wait::sum_of_series(&text, name, consumer, outcome)
    }

    /// Starts one more `notify-webflow` replica.
    pub async fn start_notify(&self) {
        let settings = notify_webflow::Settings {
            base: base_for(&self.base, self.amqp_users.as_ref(), Role::NotifyWebflow),
            webflow: self.webflow_settings(),
            inventory_sync: self.inventory_sync.clone(),
        };
        let service = notify_webflow::build(settings, self.shutdown.clone()).await.unwrap();
        self.track_replica(consumer::NOTIFY_WEBFLOW, service.health_port());
        tokio::spawn(service.run_until_stopped(self.shutdown.clone()));
    }

    /// The reconciliation job over this pipeline's Webflow, database and broker, built as its
    /// binary builds it.
    pub async fn reconciler(&self) -> reconcile::ReconcileService {
        let settings = reconcile::Settings {
            base: base_for(&self.base, self.amqp_users.as_ref(), Role::Reconcile),
            webflow: self.webflow_settings(),
            reconcile: reconcile::ReconcileSettings::default(),
        };
        reconcile::build(settings, self.shutdown.child_token()).await.unwrap()
    }

    /// What the floor does for `order_id` through the warehouse API: marks its open pick task
    /// picked and packs it in one 250 g parcel (the warehouse then publishes `order.packed`).
    pub async fn pick_and_pack(&self, order_id: &str) {
        let tasks: serde_json::Value = self
            .warehouse(reqwest::Method::GET, "/api/v1/pick-tasks?status=open")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let task_id = tasks["pick_tasks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|task| task["order_id"].as_str() == Some(order_id))
            .and_then(|task| task["id"].as_i64())
            .expect("an open pick task for the order");
        let picked = self
            .warehouse(reqwest::Method::POST, &format!("/api/v1/pick-tasks/{task_id}/picked"))
            .send()
            .await
            .unwrap();
        assert_eq!(picked.status(), 200);
        let parcels = serde_json::json!({"parcels": [{"weight_grams": 250.0, "length_cm": 30.0, "width_cm": 20.0, "height_cm": 10.0}]});
        let packed = self
            .warehouse(
                reqwest::Method::POST,
                &format!("/api/v1/orders/{SITE_ID}/{order_id}/pack"),
            )
            .json(&parcels)
            .send()
            .await
            .unwrap();
        assert_eq!(packed.status(), 200);
    }

    /// A request to the warehouse API with the test token.
    pub fn warehouse(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let base = self
            .warehouse_url
            .as_deref()
            .expect("the warehouse API runs in this test");
        self.http
            .request(method, format!("{base}{path}"))
            .bearer_auth(WAREHOUSE_TOKEN)
    }

    /// Stops everything, then drops the test's namespace and database (bounded: never hangs),
    /// on fresh connections, since the test may have cut or restarted the ones it had.
    pub async fn teardown(self) {
        self.shutdown.cancel();
        tokio::time::sleep(Duration::from_millis(100)).await;
        drop(self);
    }
}
