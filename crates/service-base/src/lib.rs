//! What every service process is built on, written once: the settings sections they share,
//! the database pool (with migrations), the RabbitMQ client and its topology, the outbox
//! publisher and relay, and the health listener. Workers add the consumer runtime (`worker`
//! crate) on top; HTTP services and jobs use this alone.

pub mod outbox;
pub mod settings;

pub use outbox::{OutboxError, OutboxPublisher, run_relay};
pub use settings::{BaseSettings, WorkerSettings, connect_options};

/// What `service_settings!` expands to refers to, so that a service needs no extra imports.
#[doc(hidden)]
pub mod reexports {
    pub use platform;
    pub use serde;
}

use platform::amqp::{AmqpClient, Publisher, Topology};
use platform::health::{self, HealthServer, HealthState, ReadinessCheck};
use platform::settings::SettingsError;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How long a publish waits for the broker's confirm.
const CONFIRM_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Database(#[from] warehouse_db::DbError),
    #[error("cannot register metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    #[error("cannot listen on `{addr}`: {source}")]
    Bind { addr: String, source: std::io::Error },
    #[error(transparent)]
    Settings(#[from] SettingsError),
    #[error("{0}")]
    Dependency(String),
}

impl StartupError {
    /// A dependency the service sets up at start (the Webflow budget, a carrier…) failed.
    pub fn dependency(error: impl std::fmt::Display) -> Self {
        Self::Dependency(error.to_string())
    }
}

/// The connections and shared parts of one service process.
#[derive(Clone)]
pub struct ServiceBase {
    /// The service's name (`enrich`, `warehouse`…): the AMQP connection name is `wms-<name>`.
    pub name: &'static str,
    /// The process's one database pool.
    pub pool: warehouse_db::Pool,
    pub amqp: AmqpClient,
    pub topology: Topology,
    pub publisher: Publisher,
    pub outbox: OutboxPublisher,
    /// Every metric the process exports on `/metrics` (with `wms_build_info` and the process
    /// metrics from the start).
    pub registry: prometheus::Registry,
    pub settings: BaseSettings,
    /// False while the relay cannot reach the database (part of readiness).
    pub db_healthy: Arc<AtomicBool>,
}

impl ServiceBase {
    /// Opens the pool (`database.pool_size` plus `extra_connections` for what the service
    /// holds across calls), applies migrations unless `database.migrate_on_start = false`, and
    /// starts the RabbitMQ supervisor (it connects and reconnects in the background).
    pub async fn start(
        name: &'static str,
        settings: &BaseSettings,
        extra_connections: usize,
        shutdown: CancellationToken,
    ) -> Result<Self, StartupError> {
        let pool = warehouse_db::connect(&connect_options(
            &settings.database,
            settings.database.pool_size + extra_connections,
        ))
        .await?;
        if settings.database.migrate_on_start {
            warehouse_db::migrate::run(&pool).await?;
        } else {
            // A migration Job owns the schema: wait for it rather than race it.
            warehouse_db::migrate::wait_for_schema(&pool, Duration::from_secs(settings.database.schema_wait_secs))
                .await?;
        }
        let topology = Topology::from_settings(&settings.amqp);
        let amqp = AmqpClient::start(
            settings.amqp.url.clone(),
            format!("wms-{name}"),
            topology.clone(),
            settings.amqp.reconnect.clone(),
            shutdown,
        );
        let publisher = Publisher::new(amqp.clone(), CONFIRM_TIMEOUT);
        let outbox = OutboxPublisher::new(pool.clone(), publisher.clone(), topology.clone(), format!("wms-{name}"));
        let registry = platform::metrics::registry(name)?;
        Ok(Self {
            name,
            pool,
            amqp,
            topology,
            publisher,
            outbox,
            registry,
            settings: settings.clone(),
            db_healthy: Arc::new(AtomicBool::new(true)),
        })
    }

    /// Serves `/healthz`, `/readyz` (all `checks` must pass) and `/metrics` on `health.bind`.
    pub fn serve_health(&self, checks: Vec<(&'static str, ReadinessCheck)>) -> Result<HealthServer, StartupError> {
        let addr = self.settings.health.socket_addr()?;
        health::serve(addr, HealthState::new(self.registry.clone(), checks)).map_err(|source| StartupError::Bind {
            addr: self.settings.health.bind.clone(),
            source,
        })
    }

    /// A readiness check that passes while the broker connection is up.
    pub fn broker_check(&self) -> (&'static str, ReadinessCheck) {
        let amqp = self.amqp.clone();
        ("rabbitmq", Arc::new(move || amqp.is_ready()))
    }

    /// A readiness check that passes while the outbox relay reaches the database (it queries
    /// it every `worker.relay_interval_ms`).
    pub fn database_check(&self) -> (&'static str, ReadinessCheck) {
        let healthy = self.db_healthy.clone();
        (
            "database",
            Arc::new(move || healthy.load(std::sync::atomic::Ordering::Relaxed)),
        )
    }

    /// Publishes what a crash left in the outbox, every `worker.relay_interval_ms`, until
    /// `shutdown`.
    pub fn spawn_relay(&self, shutdown: CancellationToken) -> JoinHandle<()> {
        tokio::spawn(run_relay(
            self.outbox.clone(),
            Duration::from_millis(self.settings.worker.relay_interval_ms),
            self.settings.worker.relay_min_age_ms,
            self.db_healthy.clone(),
            shutdown,
        ))
    }
}

/// Stops a health listener and waits for it.
pub async fn stop_health(health: HealthServer) {
    health.handle.stop(true).await;
    let _ = health.task.await;
}
