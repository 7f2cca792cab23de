//! `/healthz` (the process is alive), `/readyz` (its dependencies answer) and `/metrics`
//! (Prometheus text). The same routes serve on the ingress's own port and on the small
//! `health.bind` listener every process has.

use actix_web::{App, HttpResponse, HttpServer, dev::ServerHandle, web};
use prometheus::{Encoder, IntGauge, Registry, TextEncoder};
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;

/// A named check that says whether a dependency is usable right now.
pub type ReadinessCheck = Arc<dyn Fn() -> bool + Send + Sync>;

#[derive(Clone)]
pub struct HealthState {
    registry: Registry,
    checks: Arc<Vec<(&'static str, ReadinessCheck)>>,
    /// `wms_ready`: what `/readyz` would answer (1 ready, 0 not), set at each scrape.
    ready: Option<IntGauge>,
}

impl HealthState {
    pub fn new(registry: Registry, checks: Vec<(&'static str, ReadinessCheck)>) -> Self {
        let ready = IntGauge::new("wms_ready", "1 while every readiness check passes (as /readyz), else 0")
            .ok()
            // A registry shared by two listeners (tests) keeps the first one's gauge.
            .filter(|gauge| registry.register(Box::new(gauge.clone())).is_ok());
        Self {
            registry,
            checks: Arc::new(checks),
            ready,
        }
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    pub fn is_ready(&self) -> bool {
        self.checks.iter().all(|(_, check)| check())
    }
}

/// Registers the three routes on an actix app.
pub fn configure(state: HealthState) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg| {
        cfg.app_data(web::Data::new(state))
            .route("/healthz", web::get().to(healthz))
            .route("/readyz", web::get().to(readyz))
            .route("/metrics", web::get().to(metrics));
    }
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({"status": "ok"}))
}

async fn readyz(state: web::Data<HealthState>) -> HttpResponse {
    let checks: serde_json::Map<String, serde_json::Value> = state
        .checks
        .iter()
        .map(|(name, check)| ((*name).to_owned(), check().into()))
        .collect();
    let ready = checks.values().all(|v| v.as_bool() == Some(true));
    let body = serde_json::json!({"ready": ready, "checks": checks});
    if ready {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

async fn metrics(state: web::Data<HealthState>) -> HttpResponse {
    if let Some(ready) = &state.ready {
        ready.set(i64::from(state.is_ready()));
    }
    let mut buffer = Vec::new();
    let encoder = TextEncoder::new();
    match encoder.encode(&state.registry.gather(), &mut buffer) {
        Ok(()) => HttpResponse::Ok().content_type(encoder.format_type()).body(buffer),
        Err(error) => HttpResponse::InternalServerError().body(error.to_string()),
    }
}

/// A running health listener.
pub struct HealthServer {
    pub addr: SocketAddr,
    pub handle: ServerHandle,
    pub task: tokio::task::JoinHandle<std::io::Result<()>>,
}

/// Serves the health routes on `addr` (port 0 picks one) with a single worker thread.
pub fn serve(addr: SocketAddr, state: HealthState) -> std::io::Result<HealthServer> {
    let listener = TcpListener::bind(addr)?;
    let addr = listener.local_addr()?;
    let server = HttpServer::new(move || App::new().configure(configure(state.clone())))
        .workers(1)
        .disable_signals()
        .listen(listener)?
        .run();
    let handle = server.handle();
    let task = tokio::spawn(server);
    Ok(HealthServer { addr, handle, task })
}

#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("`{0}` is not an http://host:port/path URL")]
    BadUrl(String),
    #[error("cannot reach {0}: {1}")]
    Io(String, std::io::Error),
    #[error("{url} answered `{status_line}`")]
    NotHealthy { url: String, status_line: String },
}

/// GETs a plain-http `url` and succeeds on a 2xx: a health check that needs no shell or curl
/// in the container image.
pub async fn probe(url: &str) -> Result<(), ProbeError> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| ProbeError::BadUrl(url.to_owned()))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let io = |e| ProbeError::Io(url.to_owned(), e);
    let connect = tokio::net::TcpStream::connect(authority);
    let mut stream = tokio::time::timeout(std::time::Duration::from_secs(5), connect)
        .await
        .map_err(|_| io(std::io::ErrorKind::TimedOut.into()))?
        .map_err(io)?;
    let request = format!("GET {path} HTTP/1.0\r\nHost: {authority}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.map_err(io)?;
    let mut response = Vec::new();
    stream.take(4096).read_to_end(&mut response).await.map_err(io)?;
    let text = String::from_utf8_lossy(&response);
    let status_line = text.lines().next().unwrap_or_default().to_owned();
    let healthy = status_line
        .split_whitespace()
        .nth(1)
        .is_some_and(|code| code.starts_with('2'));
    if healthy {
        Ok(())
    } else {
        Err(ProbeError::NotHealthy {
            url: url.to_owned(),
            status_line,
        })
    }
}
