//! A worker process: the service base, the consumer runtime over it, and the health listener.
//! A worker crate's `build` makes its handler from the base's pool and calls
//! [`WorkerService::start`].

use crate::runtime::{Handler, WorkerRuntime};
use platform::health::{HealthServer, ReadinessCheck};
use platform::service::RunUntilStopped;
use service_base::{ServiceBase, StartupError};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

pub struct WorkerService<H: Handler> {
    runtime: WorkerRuntime<H>,
    health: HealthServer,
}

impl<H: Handler> WorkerService<H> {
    /// Puts the runtime over `base` and serves health (ready while consuming).
    pub fn start(handler: H, base: &ServiceBase) -> Result<Self, StartupError> {
        let runtime = WorkerRuntime::with_outbox(
            handler,
            base.pool.clone(),
            base.amqp.clone(),
            base.publisher.clone(),
            base.outbox.clone(),
            base.settings.worker.clone(),
            &base.registry,
        )?;
        let ready_runtime = runtime.clone();
        let checks: Vec<(&'static str, ReadinessCheck)> =
            vec![("consumer", Arc::new(move || ready_runtime.is_ready()))];
        let health = base.serve_health(checks)?;
        Ok(Self { runtime, health })
    }

    pub fn runtime(&self) -> &WorkerRuntime<H> {
        &self.runtime
    }

    pub fn health_port(&self) -> u16 {
        self.health.addr.port()
    }

    /// Consumes until `shutdown`, drains what is in flight, then stops the health listener.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) {
        tracing::info!(worker = H::NAME, health_port = self.health_port(), "consuming");
        self.runtime.run_until_stopped(shutdown).await;
        service_base::stop_health(self.health).await;
    }
}

impl<H: Handler> RunUntilStopped for WorkerService<H> {
    async fn run_until_stopped(self, shutdown: CancellationToken) -> std::io::Result<()> {
        WorkerService::run_until_stopped(self, shutdown).await;
        Ok(())
    }
}
