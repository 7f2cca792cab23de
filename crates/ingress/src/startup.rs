//! Builds and runs the ingress: the webhook route on the public listener; health and metrics
//! on the health listener only. The stores (and their webhook secrets) come from PostgreSQL,
//! read only, and are refreshed in the background (`stores::StoreRegistry`).

use crate::metrics::IngressMetrics;
use crate::routes::{IngressState, receive_webflow_webhook};
use crate::settings::Settings;
use actix_web::{App, HttpServer, dev::Server, web};
use platform::amqp::{AmqpClient, Publisher, Topology};
use platform::health::{self, HealthServer, HealthState, ReadinessCheck};
use platform::metrics::HttpMetrics;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;
use stores::StoreRegistry;
use tokio_util::sync::CancellationToken;

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("cannot listen on `{addr}`: {source}")]
    Bind { addr: String, source: std::io::Error },
    #[error("cannot register metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    #[error(transparent)]
    Database(#[from] warehouse_db::DbError),
    #[error("cannot load the stores: {0}")]
    Stores(#[from] stores::RegistryError),
    #[error(transparent)]
    Keyring(#[from] secrets_at_rest::KeyringError),
}

/// The ingress's connections: the store refresher's only (one query per
/// `webflow.store_refresh_ms`), and one spare for a reload.
const POOL_SIZE: usize = 2;

/// Webflow webhooks are POSTed to `WEBHOOK_PATH/{site_id}`.
pub const WEBHOOK_PATH: &str = "/webhooks/webflow";

pub struct Application {
    port: u16,
    health_port: u16,
    server: Server,
    health: HealthServer,
    amqp: AmqpClient,
}

impl Application {
    /// Loads the stores, binds the listeners and starts the RabbitMQ supervisor. Does not wait
    /// for the broker: until it is reachable, webhooks get 503 and `/readyz` says not ready. The
    /// database must answer at start (the stores are loaded before the first webhook); later,
    /// while it does not, the stores loaded last are served.
    pub async fn build(settings: Settings, shutdown: CancellationToken) -> Result<Self, StartupError> {
        let pool = warehouse_db::connect(&service_base::connect_options(&settings.database, POOL_SIZE)).await?;
        // The schema is the migrate Job's (or a writing service's): wait for it, never run it.
        warehouse_db::migrate::wait_for_schema(&pool, Duration::from_secs(settings.database.schema_wait_secs)).await?;
        let keyring = secrets_at_rest::keyring_or_dev(&settings.secrets)?;
        let stores = StoreRegistry::start_read_only(
            pool,
            &settings.webflow,
            keyring,
            settings.webflow.oauth_client_secret(),
            shutdown.clone(),
        )
        .await?;

        let topology = Topology::from_settings(&settings.amqp);
        let exchange = topology.events_exchange();
        let amqp = AmqpClient::start(
            settings.amqp.url.clone(),
            "wms-ingress",
            topology,
            settings.amqp.reconnect.clone(),
            shutdown.clone(),
        );
        let publisher = Publisher::new(amqp.clone(), Duration::from_millis(settings.ingress.publish_timeout_ms));

        let registry = platform::metrics::registry("ingress")?;
        let metrics = IngressMetrics::register(&registry)?;
        let http_metrics = web::Data::new(HttpMetrics::register(&registry)?);
        let amqp_check = amqp.clone();
        let checks: Vec<(&'static str, ReadinessCheck)> = vec![("rabbitmq", Arc::new(move || amqp_check.is_ready()))];
        let health_state = HealthState::new(registry, checks);

        let state = web::Data::new(IngressState {
            stores,
            publisher,
            exchange,
            max_body_bytes: settings.ingress.max_body_bytes,
            body_timeout: Duration::from_millis(settings.ingress.body_timeout_ms),
            replay_window_ms: i64::try_from(settings.ingress.replay_window_secs.saturating_mul(1_000))
                .unwrap_or(i64::MAX),
            metrics,
        });

        let bind = |addr: &str| {
            TcpListener::bind(addr).map_err(|source| StartupError::Bind {
                addr: addr.to_owned(),
                source,
            })
        };
        let listener = bind(&settings.ingress.bind)?;
        let port = listener
            .local_addr()
            .map_err(|source| StartupError::Bind {
                addr: settings.ingress.bind.clone(),
                source,
            })?
            .port();
        let site_ids: Vec<String> = settings.webflow.sites.values().map(|s| s.site_id.clone()).collect();
        let mut server = HttpServer::new(move || {
            let mut app = App::new()
                .app_data(state.clone())
                .app_data(http_metrics.clone())
                .wrap(actix_web::middleware::from_fn(platform::metrics::measure));
            // One static route per config-file site: matched by string comparison, where the
            // `{site_id}` pattern costs a regex match per request (measured: ~5 % of the
            // ingress's CPU). The pattern serves the stores added at runtime, and answers 404
            // for a site no live store has.
            for site_id in &site_ids {
                let site_id = site_id.clone();
                app = app.route(
                    &format!("{WEBHOOK_PATH}/{site_id}"),
                    web::post().to(move |request, payload, state| {
                        receive_webflow_webhook(request, site_id.clone(), payload, state)
                    }),
                );
            }
            // Only the webhook route is public: `/healthz`, `/readyz` and `/metrics` are served
            // on `health.bind` alone, which the Service and the Ingress do not expose.
            app.route(
                &format!("{WEBHOOK_PATH}/{{site_id}}"),
                web::post().to(|request, site_id: web::Path<String>, payload, state| {
                    receive_webflow_webhook(request, site_id.into_inner(), payload, state)
                }),
            )
        })
        .disable_signals()
        // Slow clients must not hold workers or memory: the headers have this deadline, the
        // body `ingress.body_timeout_ms` (enforced by the handler).
        .client_request_timeout(Duration::from_millis(settings.ingress.header_timeout_ms))
        .shutdown_timeout(30);
        if settings.ingress.workers > 0 {
            server = server.workers(settings.ingress.workers);
        }
        let server = server
            .listen(listener)
            .map_err(|source| StartupError::Bind {
                addr: settings.ingress.bind.clone(),
                source,
            })?
            .run();

        let health_addr = settings.health.bind.clone();
        let health_listen = health_addr.parse().map_err(|e| StartupError::Bind {
            addr: health_addr.clone(),
            source: std::io::Error::other(e),
        })?;
        let health = health::serve(health_listen, health_state).map_err(|source| StartupError::Bind {
            addr: health_addr,
            source,
        })?;
        Ok(Self {
            port,
            health_port: health.addr.port(),
            server,
            health,
            amqp,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn health_port(&self) -> u16 {
        self.health_port
    }

    pub fn amqp(&self) -> &AmqpClient {
        &self.amqp
    }

    /// Serves until `shutdown` is cancelled, then drains in-flight requests.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> std::io::Result<()> {
        let handle = self.server.handle();
        let server = tokio::spawn(self.server);
        shutdown.cancelled().await;
        tracing::info!("stopping ingress: draining in-flight webhooks");
        handle.stop(true).await;
        self.health.handle.stop(true).await;
        let _ = self.health.task.await;
        server.await.map_err(std::io::Error::other)?
    }
}

impl platform::service::RunUntilStopped for Application {
    async fn run_until_stopped(self, shutdown: CancellationToken) -> std::io::Result<()> {
        Application::run_until_stopped(self, shutdown).await
    }
}
