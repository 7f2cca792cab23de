//! Starts the stack as processes from built binaries: the simulator, the ingress, the workers,
//! the warehouse and the reconcile loop, each with its settings, its own health listener and
//! log file, waited for until ready, and stopped cleanly.
//!
//! One launcher for the three ways the stack runs: `make run` ([`local`], the `wms-stack run`
//! binary), the benchmark scripts (`wms-stack start` / `wms-stack stop`, [`detached`]) and the
//! end-to-end tests (`e2e::stack`, over [`Processes`]). It launches binaries by path and
//! depends on no service crate.

pub mod cli;
pub mod detached;
pub mod local;
pub mod ports;
pub mod processes;

pub use ports::free_port;
pub use processes::{ProcessSpec, Processes, Readiness};

use std::path::PathBuf;
use std::process::ExitStatus;
use std::time::Duration;

/// The services of the pipeline, in pipeline order: the ingress, the workers and the warehouse.
pub const SERVICES: [&str; 6] = ["ingress", "enrich", "reserve", "ship", "notify-webflow", "warehouse"];

#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error("{0} is missing: build the binaries first (`cargo build --workspace --bins`)")]
    MissingBinary(PathBuf),
    #[error("{0} is not running")]
    NotRunning(String),
    #[error("{name} exited ({status}) instead of becoming ready; {log}")]
    Exited {
        name: String,
        status: ExitStatus,
        log: String,
    },
    #[error("{name} never became ready ({url}: {answer}); {log}")]
    NotReady {
        name: String,
        url: String,
        answer: String,
        log: String,
    },
    #[error("{name} exited with {status}")]
    UncleanExit { name: String, status: ExitStatus },
    #[error("{name} did not stop within {grace:?} of SIGTERM (killed)")]
    DidNotStop { name: String, grace: Duration },
    #[error("{name} took over {timeout:?}")]
    TookTooLong { name: String, timeout: Duration },
    #[error("{name} failed ({status}): {stderr}")]
    Failed {
        name: String,
        status: ExitStatus,
        stderr: String,
    },
    #[error("no free port in {low}..{high}")]
    NoFreePort { low: u32, high: u32 },
    #[error("cannot {what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("HTTP client: {0}")]
    Http(#[source] reqwest::Error),
    #[error("{what}: {source}")]
    Database {
        what: String,
        #[source]
        source: tokio_postgres::Error,
    },
    #[error("{0}")]
    Seed(String),
}

/// reqwest is built without a TLS crypto provider of its own; its client needs one installed.
pub(crate) fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

#[cfg(test)]
mod tests {
    /// Polls `read` until it gives something non-empty (at most 10 s).
    pub(crate) async fn eventually(mut read: impl FnMut() -> String) -> String {
        for _ in 0..200 {
            let value = read();
            if !value.is_empty() {
                return value;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        read()
    }
}
