//! Structured logging. JSON lines in production, human-readable locally.
//!
//! Split into [`subscriber`] and [`init`] so tests can build a subscriber with a sink of their
//! choice (silent unless `TEST_LOG` is set).

use serde::Deserialize;
use tracing::Subscriber;
use tracing_subscriber::{EnvFilter, fmt::MakeWriter, layer::SubscriberExt};

#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Json,
    Pretty,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(default)]
pub struct TelemetrySettings {
    /// `json` (one object per line) or `pretty`.
    pub log_format: LogFormat,
    /// A `tracing` filter such as `info` or `info,lapin=warn`; `RUST_LOG` overrides it.
    pub log_level: String,
}

impl Default for TelemetrySettings {
    fn default() -> Self {
        Self {
            log_format: LogFormat::Json,
            log_level: "info,lapin=error,actix_server=warn".into(),
        }
    }
}

/// Builds a subscriber that writes to `sink`.
pub fn subscriber<W>(settings: &TelemetrySettings, sink: W) -> Box<dyn Subscriber + Send + Sync>
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&settings.log_level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let registry = tracing_subscriber::registry().with(filter);
    match settings.log_format {
        LogFormat::Json => Box::new(
            registry.with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(false)
                    .with_writer(sink),
            ),
        ),
        LogFormat::Pretty => Box::new(registry.with(tracing_subscriber::fmt::layer().with_writer(sink))),
    }
}

/// Installs `subscriber` as the global default. Call once, from `main`.
pub fn init(subscriber: Box<dyn Subscriber + Send + Sync>) {
    // A second call (tests) keeps the first subscriber.
    let _ = tracing::subscriber::set_global_default(subscriber);
}

/// Sets up logging for tests: silent unless `TEST_LOG` is set.
pub fn init_for_tests() {
    let settings = TelemetrySettings {
        log_format: LogFormat::Pretty,
        log_level: "info,lapin=warn".into(),
    };
    if std::env::var_os("TEST_LOG").is_some() {
        init(subscriber(&settings, std::io::stdout));
    } else {
        init(subscriber(&settings, std::io::sink));
    }
}
