//! Benchmarks as code: every number in docs/benchmarks.md comes from here.
//!
//! [`scenarios`] holds one module per `wms-loadgen` subcommand (its options and its run); the
//! other modules are what the scenarios share. The Webflow side of every scenario is
//! `webflow-sim`, driven through its inspection API ([`sim`]).

pub mod ab_summary;
pub mod baseline;
pub mod cost;
pub mod progress;
pub mod raw_http;
pub mod scenarios;
pub mod sim;
pub mod stats;
pub mod workload;

/// Logs to stderr (stdout is the report), warnings and worse; the TLS crypto provider.
pub fn init_process() {
    let telemetry = platform::telemetry::TelemetrySettings {
        log_format: platform::telemetry::LogFormat::Pretty,
        log_level: "warn".into(),
        otlp_endpoint: None,
    };
    platform::telemetry::init(platform::telemetry::subscriber(&telemetry, std::io::stderr));
    platform::install_crypto_provider();
}
