//! Builds and runs the warehouse service.

use crate::auth::TokenStore;
use crate::commands::packing::auto_pack;
use crate::console::ConsoleState;
use crate::console::session::SessionPolicy;
use crate::metrics::PipelineMetrics;
use crate::openapi;
use crate::routes::{inventory, merchants, orders, picking, stores, tokens};
use crate::settings::Settings;
use crate::state::AppState;
use actix_web::body::MessageBody;
use actix_web::dev::{Server, ServiceRequest, ServiceResponse};
use actix_web::middleware::{ErrorHandlers, Next};
use actix_web::{App, HttpServer, web};
use platform::amqp::AmqpClient;
use platform::health::HealthServer;
use service_base::ServiceBase;
pub use service_base::StartupError;
use std::net::TcpListener;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

pub struct Application {
    port: u16,
    server: Server,
    health: HealthServer,
    state: web::Data<AppState>,
    base: ServiceBase,
    settings: Settings,
}

impl Application {
    pub async fn build(settings: Settings, shutdown: CancellationToken) -> Result<Self, StartupError> {
        let base = ServiceBase::start("warehouse", &settings.base, 0, shutdown).await?;
        let state = web::Data::new(AppState {
            pool: base.pool.clone(),
            tokens: TokenStore::from_settings(&settings.warehouse)
                .map_err(|e| StartupError::Dependency(e.to_string()))?,
            outbox: base.outbox.clone(),
            keyring: secrets_at_rest::keyring_or_dev(&settings.base.secrets)
                .map_err(|e| StartupError::Dependency(e.to_string()))?,
            webflow: webflow::WebflowClient::from_settings(&settings.webflow)
                .map_err(|e| StartupError::Dependency(e.to_string()))?,
            public_ingress_url: settings.warehouse.public_ingress_url.clone(),
            oauth: settings.webflow.oauth.clone(),
        });
        if settings.warehouse.console.session_key.is_some() {
            tracing::warn!(
                "warehouse.console.session_key is no longer used: console sessions are stored in \
                 PostgreSQL; remove the key"
            );
        }
        let console = web::Data::new(ConsoleState::new(
            SessionPolicy::from_settings(&settings.warehouse.console),
            settings.base.amqp.url.clone(),
            base.topology.clone(),
        ));

        let bind = settings.warehouse.bind.clone();
        let listener = TcpListener::bind(&bind).map_err(|source| StartupError::Bind {
            addr: bind.clone(),
            source,
        })?;
        let port = listener
            .local_addr()
            .map_err(|source| StartupError::Bind {
                addr: bind.clone(),
                source,
            })?
            .port();
        let app_state = state.clone();
        let http_metrics = web::Data::new(platform::metrics::HttpMetrics::register(&base.registry)?);
        let server = HttpServer::new(move || {
            App::new()
                .app_data(app_state.clone())
                .app_data(console.clone())
                .app_data(http_metrics.clone())
                .app_data(crate::error::path_config())
                .app_data(crate::error::query_config())
                .app_data(crate::error::json_config())
                // Errors actix answers by itself (405 with `Allow`, 413...) get the JSON shape.
                .wrap(ErrorHandlers::new().default_handler(crate::error::json_error_body))
                .service(api_v1())
                .configure(crate::console::configure)
                .default_service(web::to(crate::error::unknown_route))
                .wrap(actix_web::middleware::from_fn(trace_request))
                .wrap(actix_web::middleware::from_fn(platform::metrics::measure))
        })
        .workers(2)
        .disable_signals()
        .listen(listener)
        .map_err(|source| StartupError::Bind {
            addr: bind.clone(),
            source,
        })?
        .run();

        let health = base.serve_health(vec![base.broker_check(), base.database_check()])?;
        Ok(Self {
            port,
            server,
            health,
            state,
            base,
            settings,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn amqp(&self) -> &AmqpClient {
        &self.base.amqp
    }

    /// Serves, relays the outbox and (with `warehouse.auto_pack`) packs until `shutdown`.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> std::io::Result<()> {
        let handle = self.server.handle();
        let server = tokio::spawn(self.server);
        let relay = self.base.spawn_relay(shutdown.clone());
        let metrics = match PipelineMetrics::register(&self.base.registry) {
            Ok(metrics) => Some(tokio::spawn(metrics.run(
                self.base.pool.clone(),
                self.base.amqp.clone(),
                shutdown.clone(),
            ))),
            Err(error) => {
                tracing::warn!(%error, "cannot register the pipeline metrics");
                None
            }
        };
        let packer = self.settings.warehouse.auto_pack.then(|| {
            tokio::spawn(auto_pack_loop(
                self.state.clone(),
                Duration::from_millis(self.settings.warehouse.auto_pack_interval_ms),
                shutdown.clone(),
            ))
        });
        shutdown.cancelled().await;
        handle.stop(true).await;
        service_base::stop_health(self.health).await;
        relay.abort();
        if let Some(metrics) = metrics {
            metrics.abort();
        }
        if let Some(packer) = packer {
            let _ = packer.await;
        }
        server.await.map_err(std::io::Error::other)?
    }
}

/// The routes, one resource per path: a method a path does not declare answers 405 with
/// `Allow` (actix's resource default, given the JSON shape by `json_error_body`). Each
/// handler's `#[utoipa::path]` describes it in the OpenAPI document.
fn api_v1() -> actix_web::Scope<
    impl actix_web::dev::ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    web::scope("/api/v1")
        .wrap(actix_web::middleware::from_fn(require_token))
        .service(web::resource("/openapi.json").get(openapi::openapi_json))
        .service(
            web::resource("/inventory/{sku}")
                .get(inventory::get_inventory)
                .put(inventory::set_inventory),
        )
        .service(web::resource("/inventory/{sku}/receive").post(inventory::receive))
        .service(
            web::resource("/merchants")
                .get(merchants::list_merchants)
                .post(merchants::create_merchant),
        )
        .service(web::resource("/merchants/{merchant}").get(merchants::get_merchant))
        .service(
            web::resource("/merchants/{merchant}/inventory/{sku}")
                .get(inventory::get_merchant_inventory)
                .put(inventory::set_merchant_inventory),
        )
        .service(web::resource("/merchants/{merchant}/inventory/{sku}/receive").post(inventory::receive_merchant))
        .service(web::resource("/pick-tasks").get(picking::list_pick_tasks))
        .service(web::resource("/pick-tasks/{id}/picked").post(picking::mark_picked))
        .service(web::resource("/orders/{site_id}/{order_id}/pack").post(picking::pack))
        .service(web::resource("/orders/{site_id}/{order_id}/refund").post(orders::refund))
        .service(web::resource("/orders/{site_id}/{order_id}/shipping-address").put(orders::correct_address))
        .service(web::resource("/orders/{site_id}/{order_id}").get(orders::get_order))
        .service(
            web::resource("/tokens")
                .get(tokens::list_tokens)
                .post(tokens::create_token),
        )
        .service(web::resource("/tokens/{name}").delete(tokens::revoke_token))
        .service(
            web::resource("/stores")
                .get(stores::list_stores)
                .post(stores::create_store),
        )
        .service(
            web::resource("/stores/{name}")
                .get(stores::get_store)
                .patch(stores::patch_store)
                .delete(stores::remove_store),
        )
}

/// Every `/api/v1` route needs a valid bearer token; the handler gets its [`Operator`]
/// (name, role, stores) and checks the role and scope it needs.
///
/// [`Operator`]: crate::auth::Operator
async fn require_token(
    request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let state = request
        .app_data::<web::Data<AppState>>()
        .ok_or_else(crate::error::ApiError::unauthorized)?;
    let operator = state.tokens.check(&state.pool, request.request()).await?;
    actix_web::HttpMessage::extensions_mut(&request).insert(operator);
    next.call(request).await
}

/// Every line written while answering a request carries its `trace_id` (from `traceparent`,
/// or a fresh one). Events about an order keep the order's own trace id (its correlation id).
async fn trace_request(
    request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let traceparent = request.headers().get("traceparent").and_then(|v| v.to_str().ok());
    let trace_id = platform::telemetry::trace_id(traceparent);
    let span = tracing::info_span!(
        "request",
        method = %request.method(),
        path = %request.path(),
        trace_id = %trace_id,
    );
    platform::otlp::join_trace(&span, &trace_id);
    next.call(request).instrument(span).await
}

/// Picks and packs reserved orders until shutdown (`warehouse.auto_pack`).
async fn auto_pack_loop(state: web::Data<AppState>, interval: Duration, shutdown: CancellationToken) {
    tracing::info!("auto-pack is on: reserved orders are picked and packed automatically");
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tokio::time::sleep(interval) => {}
        }
        loop {
            match auto_pack(&state, 100).await {
                Ok(events) if events.is_empty() => break,
                Ok(events) => {
                    for event in &events {
                        // The order's trace id, so its pack shows in its journey.
                        let span = tracing::info_span!(
                            "auto_pack",
                            site_id = %event.site_id,
                            trace_id = %event.correlation_id,
                        );
                        platform::otlp::join_trace(&span, &event.correlation_id);
                        span.in_scope(|| {
                            tracing::info!(
                                order_id = event.event.order_id().map(|id| id.as_str()).unwrap_or_default(),
                                "order packed"
                            );
                        });
                    }
                    tracing::info!(count = events.len(), "auto-packed orders");
                }
                Err(error) => {
                    tracing::warn!(%error, "auto-pack failed; will retry");
                    break;
                }
            }
        }
    }
}

impl platform::service::RunUntilStopped for Application {
    async fn run_until_stopped(self, shutdown: CancellationToken) -> std::io::Result<()> {
        Application::run_until_stopped(self, shutdown).await
    }
}

/// Builds the warehouse service (for `platform::service::launch`): see [`Application::build`].
pub async fn build(settings: Settings, shutdown: CancellationToken) -> Result<Application, StartupError> {
    Application::build(settings, shutdown).await
}
