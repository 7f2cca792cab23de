//! One way to start a service process: load and validate its settings, start telemetry,
//! install the shutdown signal, build it with the crate's `build(settings, shutdown)`, and run
//! it until stopped. Every binary's `main.rs` is a call to [`launch`] (or [`init`] when it has
//! a mode of its own, like `reconcile --once`).
//!
//! Under `profile = "production"` every service also passes the shared sections' rules
//! ([`ServiceSettings::check_shared_profile`]: database TLS, broker user and TLS), and the
//! opt-outs in use are logged as warnings once telemetry is up. With the environment variable
//! `WMS_CHECK_CONFIG=1` a binary only loads and checks its configuration, prints the outcome
//! and exits (0 when the configuration would start; `scripts/check-deploy.py` runs it on the
//! rendered Kubernetes configuration).

use crate::settings::{self, Profile, SettingsError, Validate};
use crate::telemetry::{self, TelemetrySettings};
use serde::de::DeserializeOwned;
use std::future::Future;
use tokio_util::sync::CancellationToken;

/// A service's settings: loadable from the layers, self-validating, with a telemetry section.
pub trait ServiceSettings: DeserializeOwned + Validate {
    fn telemetry(&self) -> &TelemetrySettings;

    /// The production rules of the shared sections this service reads (`[amqp]`,
    /// `[database]`), whatever its own [`Validate::check_profile`] does; on success, the
    /// opt-outs in use (logged as warnings at start).
    fn check_shared_profile(&self, profile: Profile) -> Result<Vec<String>, SettingsError>;
}

/// The environment variable that makes a binary check its configuration and exit.
pub const CHECK_CONFIG_ENV: &str = "WMS_CHECK_CONFIG";

/// Settings loaded and checked as a service starts, with the opt-outs to warn about.
#[derive(Debug)]
pub struct Checked<S> {
    pub settings: S,
    pub profile: Profile,
    pub opt_outs: Vec<String>,
}

/// Loads `S` from the given file and environment (see `wms_settings::load_from`) and applies
/// the production rules of the shared sections: what [`init`] does before it starts anything.
pub fn load_checked<S, I>(file: Option<std::path::PathBuf>, env: I) -> Result<Checked<S>, SettingsError>
where
    S: ServiceSettings,
    I: IntoIterator<Item = (String, String)>,
{
    let (settings, profile) = settings::load_with_profile::<S, _>(file, env)?;
    settings.telemetry().validate()?;
    let opt_outs = settings.check_shared_profile(profile)?;
    Ok(Checked {
        settings,
        profile,
        opt_outs,
    })
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
///
/// With `WMS_CHECK_CONFIG=1` in the environment it only checks the configuration: it prints
/// the outcome and ends the process (status 0 when the configuration would start, 1 if not).
pub fn init<S: ServiceSettings>(service: &'static str) -> Result<(S, CancellationToken), LaunchError> {
    let file = std::env::var_os(settings::CONFIG_FILE_ENV).map(std::path::PathBuf::from);
    let loaded = load_checked::<S, _>(file, std::env::vars());
    if std::env::var(CHECK_CONFIG_ENV).is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true")) {
        report_check(service, &loaded);
    }
    let Checked { settings, opt_outs, .. } = loaded?;
    telemetry::init(telemetry::service_subscriber(
        settings.telemetry(),
        std::io::stdout,
        service,
    )?);
    for opt_out in &opt_outs {
        tracing::warn!(service, "production opt-out in use: {opt_out}");
    }
    Ok((settings, crate::shutdown::on_signal()))
}

/// `WMS_CHECK_CONFIG=1`: the outcome of the configuration check, then the end of the process.
#[allow(
    clippy::print_stdout,
    reason = "the check's outcome is the output of WMS_CHECK_CONFIG=1, before any telemetry"
)]
fn report_check<S>(service: &str, loaded: &Result<Checked<S>, SettingsError>) -> ! {
    match loaded {
        Ok(checked) => {
            for opt_out in &checked.opt_outs {
                println!("{service}: warning: production opt-out in use: {opt_out}");
            }
            println!(
                "{service}: configuration ok (profile {})",
                match checked.profile {
                    Profile::Local => "local",
                    Profile::Production => "production",
                }
            );
            std::process::exit(0)
        }
        Err(error) => {
            eprintln!("{service}: invalid configuration: {error}");
            std::process::exit(1)
        }
    }
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
