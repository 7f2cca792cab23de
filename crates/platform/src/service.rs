//! One way to start a service process: load and validate its settings, start telemetry,
//! install the shutdown signal, build it with the crate's `build(settings, shutdown)`, and run
//! it until stopped. Every binary's `main.rs` is a call to [`launch`] (or [`init`] when it has
//! a mode of its own, like `reconcile --once`).

use crate::settings::{self, SettingsError, Validate};
use crate::telemetry::{self, TelemetrySettings};
use serde::de::DeserializeOwned;
use std::future::Future;
use tokio_util::sync::CancellationToken;

/// A service's settings: loadable from the layers, self-validating, with a telemetry section.
pub trait ServiceSettings: DeserializeOwned + Validate {
    fn telemetry(&self) -> &TelemetrySettings;
}

/// A built service.
pub trait RunUntilStopped {
    /// Serves until `shutdown`, then finishes what is in flight and returns.
    fn run_until_stopped(self, shutdown: CancellationToken) -> impl Future<Output = std::io::Result<()>> + Send;
}

#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error("invalid configuration: {0}")]
    Settings(#[from] SettingsError),
    #[error(transparent)]
    Telemetry(#[from] crate::otlp::OtlpError),
    #[error("cannot start {service}: {source}")]
    Build {
        service: &'static str,
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error("{service} stopped with an error: {source}")]
    Run {
        service: &'static str,
        source: std::io::Error,
    },
}

/// Loads `S`, starts telemetry from it (logs, and spans to `telemetry.otlp_endpoint` when set)
/// and installs the SIGTERM/Ctrl-C handler. Call from within the Tokio runtime.
pub fn init<S: ServiceSettings>(service: &'static str) -> Result<(S, CancellationToken), LaunchError> {
    let settings: S = settings::load()?;
    settings.telemetry().validate()?;
    telemetry::init(telemetry::service_subscriber(
        settings.telemetry(),
        std::io::stdout,
        service,
    )?);
    Ok((settings, crate::shutdown::on_signal()))
}

/// Exports the spans still buffered (when export is on); call as the process ends.
pub async fn finish() {
    let _ = tokio::task::spawn_blocking(crate::otlp::shutdown).await;
}

/// [`init`], then `build`, then run until a signal stops the process.
pub async fn launch<S, B, Fut, R, E>(service: &'static str, build: B) -> Result<(), LaunchError>
where
    S: ServiceSettings,
    B: FnOnce(S, CancellationToken) -> Fut,
    Fut: Future<Output = Result<R, E>>,
    E: std::error::Error + Send + Sync + 'static,
    R: RunUntilStopped,
{
    let (settings, shutdown) = init::<S>(service)?;
    let built = build(settings, shutdown.clone())
        .await
        .map_err(|source| LaunchError::Build {
            service,
            source: Box::new(source),
        })?;
    tracing::info!(service, "started");
    let outcome = built.run_until_stopped(shutdown).await;
    if outcome.is_ok() {
        tracing::info!(service, "stopped");
    }
    finish().await;
    outcome.map_err(|source| LaunchError::Run { service, source })
}
