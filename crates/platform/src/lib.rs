//! Shared plumbing for every WMS bridge process: the shared settings sections over the layered
//! loader (the `wms-settings` leaf crate, re-exported as [`settings`]), telemetry (JSON logs and
//! OpenTelemetry export), shutdown, the AMQP connection with its topology and confirmed
//! publisher, the health and metrics endpoints with the metrics every process exports, the one
//! retry policy, and the one way a service process starts.
//!
//! Business rules do not live here; this crate may depend on `domain` for routing keys but
//! never on a service crate.

pub mod amqp;
pub mod health;
pub mod http_error;
pub mod metrics;
pub mod otlp;
pub mod retry;
pub mod service;
pub mod settings;
pub mod shutdown;
pub mod telemetry;
pub mod worker_slot;

/// Installs ring as rustls's process-wide crypto provider (idempotent). HTTP clients built
/// with rustls need one; we use ring everywhere so no C toolchain beyond `cc` is needed.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}
