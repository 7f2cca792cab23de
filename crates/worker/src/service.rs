//! Wiring shared by every worker binary: pool and migrations, RabbitMQ, the runtime and its
//! health listener. A worker's `main.rs` builds its handler and calls [`WorkerService::build`].

use crate::runtime::{Handler, WorkerRuntime};
use crate::settings::WorkerSettings;
use platform::amqp::{AmqpClient, Topology};
use platform::health::{self, HealthServer, HealthState, ReadinessCheck};
use platform::settings::{AmqpSettings, DatabaseSettings, HealthSettings, SettingsError, Validate};
use platform::telemetry::TelemetrySettings;
use serde::Deserialize;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

impl Validate for BaseSettings {
    fn validate(&mut self) -> Result<(), SettingsError> {
        BaseSettings::validate(self)
    }
}

/// The sections every worker reads.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct BaseSettings {
    pub amqp: AmqpSettings,
    pub database: DatabaseSettings,
    pub health: HealthSettings,
    pub telemetry: TelemetrySettings,
    pub worker: WorkerSettings,
}

impl BaseSettings {
    pub fn validate(&self) -> Result<(), SettingsError> {
        self.amqp.validate()?;
        self.health.socket_addr()?;
        self.worker.validate()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Database(#[from] warehouse_db::DbError),
    #[error("cannot register metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    #[error("cannot serve health on `{addr}`: {source}")]
    Health { addr: String, source: std::io::Error },
    #[error(transparent)]
    Settings(#[from] SettingsError),
}

pub struct WorkerService<H: Handler> {
    runtime: WorkerRuntime<H>,
    health: HealthServer,
    pool: warehouse_db::Pool,
    amqp: AmqpClient,
}

impl<H: Handler> WorkerService<H> {
    /// Connects to the database (applying migrations unless disabled), starts the RabbitMQ
    /// supervisor and the health listener. `registry` may already hold the handler's metrics.
    pub async fn build(
        handler: H,
        settings: &BaseSettings,
        registry: prometheus::Registry,
        shutdown: CancellationToken,
    ) -> Result<Self, StartupError> {
        let pool = warehouse_db::connect(&settings.database.url, settings.database.pool_size).await?;
        if settings.database.migrate_on_start {
            warehouse_db::migrate::run(&pool).await?;
        }
        let amqp = AmqpClient::start(
            settings.amqp.url.clone(),
            format!("wms-{}", H::NAME),
            Topology::from_settings(&settings.amqp),
            settings.amqp.reconnect.clone(),
            shutdown,
        );
        let runtime = WorkerRuntime::new(handler, pool.clone(), amqp.clone(), settings.worker.clone(), &registry)?;
        let ready_runtime = runtime.clone();
        let checks: Vec<(&'static str, ReadinessCheck)> =
            vec![("consumer", Arc::new(move || ready_runtime.is_ready()))];
        let addr = settings.health.socket_addr()?;
        let health =
            health::serve(addr, HealthState::new(registry, checks)).map_err(|source| StartupError::Health {
                addr: settings.health.bind.clone(),
                source,
            })?;
        Ok(Self {
            runtime,
            health,
            pool,
            amqp,
        })
    }

    pub fn runtime(&self) -> &WorkerRuntime<H> {
        &self.runtime
    }

    pub fn pool(&self) -> &warehouse_db::Pool {
        &self.pool
    }

    pub fn amqp(&self) -> &AmqpClient {
        &self.amqp
    }

    pub fn health_port(&self) -> u16 {
        self.health.addr.port()
    }

    pub async fn run_until_stopped(self, shutdown: CancellationToken) {
        self.runtime.run_until_stopped(shutdown).await;
        self.health.handle.stop(true).await;
        let _ = self.health.task.await;
    }
}
