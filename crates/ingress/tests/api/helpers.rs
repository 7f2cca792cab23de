//! Starting the ingress on a random port against the real broker, signing webhooks, reading what was published.

use ingress::{Application, Settings};
use platform::amqp::Topology;
use secrecy::SecretString;
use std::time::Duration;
use test_support::amqp::QueueObserver;
use test_support::db::TestDatabase;
use tokio_util::sync::CancellationToken;
use webflow::SiteSettings;

pub const SITE_ID: &str = "65f0c0ffee0000000000beef";
pub const SECRET: &str = "whsec-current";
pub const OLD_SECRET: &str = "whsec-previous";

pub struct TestApp {
    pub address: String,
    pub health_address: String,
    pub topology: Topology,
    pub observer: QueueObserver,
    pub client: reqwest::Client,
    pub app_amqp: platform::amqp::AmqpClient,
    /// The stores' database (the ingress reads it; tests onboard and remove stores in it).
    pub db: TestDatabase,
    shutdown: CancellationToken,
    /// Deletes the namespace when dropped, also when the test panics.
    _leak_guard: test_support::LeakGuard,
}

pub struct Options {
    pub amqp_url: String,
    pub replay_window_secs: u64,
    pub max_body_bytes: usize,
    pub body_timeout_ms: u64,
    pub wait_ready: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            amqp_url: test_support::amqp_url(),
            replay_window_secs: 300,
            max_body_bytes: 64 * 1024,
            body_timeout_ms: 10_000,
            wait_ready: true,
        }
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(Options::default()).await
}

pub async fn spawn_app_with(options: Options) -> TestApp {
    platform::telemetry::init_for_tests();
    platform::install_crypto_provider();
    let db = TestDatabase::create().await;
    let mut settings = Settings::default();
    settings.database.url = SecretString::from(db.url.clone());
    settings.webflow.store_refresh_ms = 50;
    settings.amqp.url = SecretString::from(options.amqp_url);
    settings.amqp.namespace = test_support::random_namespace();
    settings.amqp.retry_delays_ms = vec![1_000];
    settings.amqp.reconnect.initial_ms = 50;
    settings.amqp.reconnect.max_ms = 500;
    settings.ingress.bind = "127.0.0.1:0".into();
    settings.ingress.workers = 2;
    settings.ingress.max_body_bytes = options.max_body_bytes;
    settings.ingress.body_timeout_ms = options.body_timeout_ms;
    settings.ingress.replay_window_secs = options.replay_window_secs;
    settings.ingress.publish_timeout_ms = 2_000;
    settings.health.bind = "127.0.0.1:0".into();
    settings.webflow.sites.insert(
        "shop".into(),
        SiteSettings {
            site_id: SITE_ID.into(),
            webhook_secrets: vec![SecretString::from(OLD_SECRET), SecretString::from(SECRET)],
            ..SiteSettings::default()
        },
    );
    let topology = Topology::from_settings(&settings.amqp);
    let shutdown = CancellationToken::new();
    let app = Application::build(settings, shutdown.clone())
        .await
        .expect("ingress builds");
    let app_amqp = app.amqp().clone();
    if options.wait_ready {
        app_amqp
            .wait_ready(Duration::from_secs(20))
            .await
            .expect("ingress connects to RabbitMQ");
    }
    let address = format!("http://127.0.0.1:{}", app.port());
    let health_address = format!("http://127.0.0.1:{}", app.health_port());
    tokio::spawn(app.run_until_stopped(shutdown.clone()));
    TestApp {
        address,
        health_address,
        topology: topology.clone(),
        observer: QueueObserver::connect().await,
        client: reqwest::Client::new(),
        app_amqp,
        db,
        shutdown,
        _leak_guard: test_support::LeakGuard { topology },
    }
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

/// The fixture body, compacted as Webflow sends it.
pub fn new_order_body() -> Vec<u8> {
    test_support::compact_fixture("webflow/webhook.ecomm_new_order.body.json")
}

impl TestApp {
    pub fn enrich_queue(&self) -> String {
        self.topology.work_queue(platform::amqp::topology::consumer::ENRICH)
    }

    pub fn webhook_url(&self, site_id: &str) -> String {
        format!("{}/webhooks/webflow/{site_id}", self.address)
    }

    /// Posts `body` signed with `secret` at the current time.
    pub async fn post_signed(&self, body: &[u8], secret: &str) -> reqwest::Response {
        let ts = now_ms().to_string();
        let signature = webflow::sign(secret, &ts, body);
        self.post_raw(SITE_ID, body, Some(&ts), Some(&signature)).await
    }

    pub async fn post_raw(
        &self,
        site_id: &str,
        body: &[u8],
        timestamp: Option<&str>,
        signature: Option<&str>,
    ) -> reqwest::Response {
        let mut request = self
            .client
            .post(self.webhook_url(site_id))
            .header("content-type", "application/json")
            .body(body.to_vec());
        if let Some(ts) = timestamp {
            request = request.header("x-webflow-timestamp", ts);
        }
        if let Some(sig) = signature {
            request = request.header("x-webflow-signature", sig);
        }
        request.send().await.expect("request reaches the ingress")
    }

    pub async fn metrics(&self) -> String {
        self.client
            .get(format!("{}/metrics", self.health_address))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// Asserts that nothing is in the enrich queue, after the requests were answered: the
    /// ingress publishes only inside a request, and answers only once the broker confirmed the
    /// publish, so nothing can arrive after the answer.
    pub async fn assert_nothing_published(&self) {
        assert_eq!(
            self.observer.message_count(&self.enrich_queue()).await,
            0,
            "nothing may be published"
        );
    }

    /// Stops the app; dropping it deletes the namespace.
    pub async fn teardown(self) {
        self.shutdown.cancel();
    }
}

/// The value of a counter line in Prometheus text, 0 if absent.
pub fn counter(metrics: &str, name: &str, labels: &[(&str, &str)]) -> u64 {
    metrics
        .lines()
        .filter(|line| line.starts_with(name) && labels.iter().all(|(k, v)| line.contains(&format!("{k}=\"{v}\""))))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}
