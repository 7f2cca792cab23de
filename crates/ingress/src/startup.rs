//! Builds and runs the ingress: the webhook route on the public listener; health and metrics
//! on the health listener only.

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
use tokio_util::sync::CancellationToken;

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("cannot listen on `{addr}`: {source}")]
    Bind { addr: String, source: std::io::Error },
    #[error("cannot register metrics: {0}")]
    Metrics(#[from] prometheus::Error),
}

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
    /// Binds the listeners and starts the RabbitMQ supervisor. Does not wait for the broker:
    /// until it is reachable, webhooks get 503 and `/readyz` says not ready.
    pub fn build(settings: Settings, shutdown: CancellationToken) -> Result<Self, StartupError> {
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

        let secrets = settings
            .webflow
            .sites
            .values()
            .map(|site| (site.site_id.clone(), site.webhook_secrets.clone()))
            .collect();
        let state = web::Data::new(IngressState {
            secrets,
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
        let site_ids: Vec<String> = state.secrets.keys().cloned().collect();
        let mut server = HttpServer::new(move || {
            let mut app = App::new()
                .app_data(state.clone())
                .app_data(http_metrics.clone())
                .wrap(actix_web::middleware::from_fn(platform::metrics::measure));
            // One static route per configured site: matched by string comparison, where the
            // `{site_id}` pattern costs a regex match per request (measured: ~5 % of the
            // ingress's CPU). The pattern stays as the fallback that answers 404.
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
