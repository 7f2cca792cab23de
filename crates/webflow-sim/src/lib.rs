//! `webflow-sim`: a stand-in Webflow for local runs, demos, tests and benchmarks.
//!
//! - The Orders API subset the bridge uses, under `/v2`, with Webflow's wire names, status codes
//!   and error bodies; bearer-token auth; a per-token rate limit answering 429 with
//!   `Retry-After` and `X-RateLimit-*`; injectable latency, 500s and timeouts.
//! - A store that creates orders from a SKU catalog at a given rate (some digital, some
//!   refunded later) and delivers their webhooks signed exactly as Webflow signs, retrying a
//!   failed delivery 3 more times.
//! - `/_sim/...`: every order and every write received, and the faults, readable and settable.

pub mod api;
pub mod cli;
pub mod state;
pub mod store;

pub use state::{Faults, SimConfig, SimState};

use actix_web::{App, HttpServer, web};
use std::net::TcpListener;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

/// A running simulator.
pub struct Simulator {
    pub base_url: String,
    pub state: Arc<SimState>,
    pub server: actix_web::dev::ServerHandle,
}

impl Simulator {
    /// Serves the API on `config.bind` and, if a webhook URL is set, runs the store.
    pub fn start(config: SimConfig, shutdown: CancellationToken) -> std::io::Result<Self> {
        let listener = TcpListener::bind(&config.bind)?;
        let base_url = format!("http://{}", listener.local_addr()?);
        let state = Arc::new(SimState::new(config));
        let data = web::Data::from(state.clone());
        let server = HttpServer::new(move || App::new().app_data(data.clone()).configure(api::routes))
            .workers(2)
            .disable_signals()
            .listen(listener)?
            .run();
        let handle = server.handle();
        tokio::spawn(server);
        tokio::spawn(store::run(state.clone(), shutdown));
        Ok(Self {
            base_url,
            state,
            server: handle,
        })
    }
}

/// Starts the simulator (for a binary's `main`): see [`Simulator::start`].
pub async fn build(config: SimConfig, shutdown: CancellationToken) -> std::io::Result<Simulator> {
    Simulator::start(config, shutdown)
}

impl platform::service::RunUntilStopped for Simulator {
    /// Serves until `shutdown`, then stops the API server.
    async fn run_until_stopped(self, shutdown: CancellationToken) -> std::io::Result<()> {
        tracing::info!(url = %self.base_url, "Webflow simulator listening (API under /v2, inspection under /_sim)");
        shutdown.cancelled().await;
        self.server.stop(true).await;
        Ok(())
    }
}
