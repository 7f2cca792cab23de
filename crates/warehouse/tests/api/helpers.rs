//! `spawn_app()`: the warehouse built as its binary builds it, on a fresh database and AMQP
//! namespace, with one token per role and scope.

use secrecy::SecretString;
use service_base::BaseSettings;
use std::time::Duration;
use test_support::db::TestDatabase;
use tokio_util::sync::CancellationToken;
use warehouse::auth::{Role, sha256_hex};
use warehouse::settings::TokenSettings;

pub const SITE_A: &str = "site-a";
pub const SITE_B: &str = "site-b";
pub const ORDER_A: &str = "order-a";
pub const ORDER_B: &str = "order-b";
pub const SKU_A: &str = "sku-a";
pub const SKU_B: &str = "sku-b";
/// The legacy `warehouse.api_tokens` entry (admin on every store, named `token-1`).
pub const LEGACY_TOKEN: &str = "legacy-token";

/// (name = token, role, sites) of every token the app accepts besides the legacy one.
pub const TOKENS: [(&str, Role, &[&str]); 7] = [
    ("read-all", Role::Read, &["*"]),
    ("floor-all", Role::Floor, &["*"]),
    ("admin-all", Role::Admin, &["*"]),
    ("read-a", Role::Read, &[SITE_A]),
    ("floor-a", Role::Floor, &[SITE_A]),
    ("admin-a", Role::Admin, &[SITE_A]),
    ("admin-b", Role::Admin, &[SITE_B]),
];

/// Tokens limited to merchants (issue 24): name (also the token), role, stores, merchants.
pub const MERCHANT_TOKENS: [(&str, Role, &[&str], &[&str]); 2] = [
    ("admin-acme", Role::Admin, &["*"], &["acme"]),
    ("read-default", Role::Read, &["*"], &["default"]),
];

pub struct TestApp {
    pub url: String,
    pub db: TestDatabase,
    pub http: reqwest::Client,
    /// Pick task of ORDER_A.
    pub task_a: i64,
    /// What it was built with (a replica is built with the same).
    settings: warehouse::Settings,
    shutdown: CancellationToken,
    _leak_guard: test_support::LeakGuard,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// The warehouse's settings on `db_url` and `namespace`, with every test token.
fn settings_for(db_url: &str, namespace: &str) -> warehouse::Settings {
    let mut base = BaseSettings::default();
    base.amqp.url = SecretString::from(test_support::amqp_url());
    base.amqp.namespace = namespace.to_owned();
    base.database.url = SecretString::from(db_url.to_owned());
    base.database.pool_size = 4;
    base.health.bind = "127.0.0.1:0".into();
    let mut settings = warehouse::Settings {
        base,
        ..Default::default()
    };
    settings.warehouse.bind = "127.0.0.1:0".into();
    settings.warehouse.api_tokens = vec![SecretString::from(LEGACY_TOKEN)];
    settings.warehouse.tokens = TOKENS
        .iter()
        .map(|(name, role, sites)| TokenSettings {
            name: (*name).to_owned(),
            token_sha256: Some(sha256_hex(name)),
            token_file: None,
            sites: sites.iter().map(|s| (*s).to_owned()).collect(),
            merchants: vec!["*".to_owned()],
            role: *role,
        })
        .chain(
            MERCHANT_TOKENS
                .iter()
                .map(|(name, role, sites, merchants)| TokenSettings {
                    name: (*name).to_owned(),
                    token_sha256: Some(sha256_hex(name)),
                    token_file: None,
                    sites: sites.iter().map(|s| (*s).to_owned()).collect(),
                    merchants: merchants.iter().map(|m| (*m).to_owned()).collect(),
                    role: *role,
                }),
        )
        .collect();
    settings
}

/// Builds and starts a warehouse; its base URL.
async fn start(settings: warehouse::Settings, shutdown: &CancellationToken) -> String {
    let app = warehouse::build(settings, shutdown.clone()).await.unwrap();
    app.amqp().wait_ready(Duration::from_secs(20)).await.unwrap();
    let url = format!("http://127.0.0.1:{}", app.port());
    tokio::spawn(app.run_until_stopped(shutdown.clone()));
    url
}

/// [`spawn_app`], with the settings changed by `configure` (`[warehouse.console]`...).
pub async fn spawn_app_with(configure: impl FnOnce(&mut warehouse::Settings)) -> TestApp {
    platform::telemetry::init_for_tests();
    platform::install_crypto_provider();
    let db = TestDatabase::create().await;
    let namespace = test_support::random_namespace();
    let mut settings = settings_for(&db.url, &namespace);
    configure(&mut settings);
    let leak_guard = test_support::LeakGuard {
        topology: platform::amqp::Topology::from_settings(&settings.base.amqp),
    };
    let shutdown = CancellationToken::new();
    let url = start(settings.clone(), &shutdown).await;

    let client = db.client().await;
    let mut task_a = 0;
    for (site, order, sku) in [(SITE_A, ORDER_A, SKU_A), (SITE_B, ORDER_B, SKU_B)] {
        let row = client
            .query_one(
                "INSERT INTO orders (site_id, webflow_order_id, state, snapshot, customer_email)
                 VALUES ($1, $2, 'reserved', '{}'::jsonb, 'someone@example.com') RETURNING id",
                &[&site, &order],
            )
            .await
            .unwrap();
        let order_pk: i64 = row.get(0);
        client
            .execute(
                "INSERT INTO order_lines (order_id, line_no, sku, quantity) VALUES ($1, 1, $2, 1)",
                &[&order_pk, &sku],
            )
            .await
            .unwrap();
        client
            .execute(
                "INSERT INTO inventory (sku, on_hand, reserved) VALUES ($1, 10, 1)",
                &[&sku],
            )
            .await
            .unwrap();
        client
            .execute(
                "INSERT INTO reservations (order_id, sku, quantity, status) VALUES ($1, $2, 1, 'active')",
                &[&order_pk, &sku],
            )
            .await
            .unwrap();
        let task: i64 = client
            .query_one(
                "INSERT INTO pick_tasks (order_id, status) VALUES ($1, 'open') RETURNING id",
                &[&order_pk],
            )
            .await
            .unwrap()
            .get(0);
        client
            .execute(
                "INSERT INTO pick_task_lines (pick_task_id, sku, quantity) VALUES ($1, $2, 1)",
                &[&task, &sku],
            )
            .await
            .unwrap();
        if site == SITE_A {
            task_a = task;
        }
    }
    drop(client);
    TestApp {
        url,
        db,
        http: reqwest::Client::new(),
        task_a,
        settings,
        shutdown,
        _leak_guard: leak_guard,
    }
}

impl TestApp {
    /// A second warehouse process on the same database and namespace (another replica),
    /// with the settings changed by `configure`; its base URL. Stops with this app.
    pub async fn spawn_replica(&self, configure: impl FnOnce(&mut warehouse::Settings)) -> String {
        let mut settings = self.settings.clone();
        configure(&mut settings);
        start(settings, &self.shutdown).await
    }

    pub fn request(&self, method: reqwest::Method, path: &str, token: Option<&str>) -> reqwest::RequestBuilder {
        let request = self.http.request(method, format!("{}{path}", self.url));
        match token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    pub async fn actors(&self, order_id: &str) -> Vec<String> {
        let client = self.db.client().await;
        client
            .query(
                "SELECT actor FROM audit_log WHERE webflow_order_id = $1 ORDER BY id",
                &[&order_id],
            )
            .await
            .unwrap()
            .iter()
            .map(|r| r.get(0))
            .collect()
    }
}
