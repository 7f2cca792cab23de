//! The operator console: server-rendered pages under `/console` for the people on the floor and
//! on call. Sign-in takes a warehouse token; its role and stores apply to every page and action,
//! exactly as in the API, and every action calls the same [`crate::commands`] as the API.
//!
//! Rules: no page or action without a session (signed-out requests are sent to the sign-in
//! page); sessions live in PostgreSQL ([`session`]), so every replica accepts them and
//! sign-out ends them for good; the session cookie is `HttpOnly`, `SameSite=Strict` and
//! `Secure` unless `warehouse.console.secure_cookies = false` (local runs only); every form
//! that changes state carries a CSRF token checked here, and a cross-site `Origin` is refused
//! as well; failed sign-ins are throttled per client address and per token.

mod assets;
mod pages;
mod pdfs;
mod render;
pub mod session;

use crate::auth::AccessError;
use crate::commands::CommandError;
use crate::error::ApiError;
use crate::state::AppState;
use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use dead_letters::{Dlq, DlqError};
use maud::{DOCTYPE, html};
use platform::amqp::Topology;
use render::percent;
use secrecy::{ExposeSecret, SecretString};
use session::{Session, SessionPolicy};
use std::collections::HashMap;

/// What the console needs besides the shared [`AppState`], registered as its own app data by
/// `startup` (so the shared state knows nothing of the console).
pub struct ConsoleState {
    pub sessions: SessionPolicy,
    amqp_url: SecretString,
    pub topology: Topology,
    /// One broker connection for queue depths and dead letters, opened on first use and
    /// reopened after an error.
    dlq: tokio::sync::Mutex<Option<Dlq>>,
}

impl ConsoleState {
    pub fn new(sessions: SessionPolicy, amqp_url: SecretString, topology: Topology) -> Self {
        Self {
            sessions,
            amqp_url,
            topology,
            dlq: tokio::sync::Mutex::new(None),
        }
    }

    /// The broker connection, connected if needed. On an error from it, the caller sets the
    /// guard to `None` so the next use reconnects.
    pub async fn dead_letters(&self) -> Result<tokio::sync::MutexGuard<'_, Option<Dlq>>, DlqError> {
        let mut guard = self.dlq.lock().await;
        if guard.is_none() {
            *guard = Some(Dlq::connect(self.amqp_url.expose_secret(), self.topology.clone()).await?);
        }
        Ok(guard)
    }
}

/// The console's routes.
pub fn configure(config: &mut web::ServiceConfig) {
    config.service(
        web::scope("/console")
            .route("", web::get().to(pages::sign_in::home))
            .route("/", web::get().to(pages::sign_in::home))
            .route("/assets/console.css", web::get().to(css))
            .route("/assets/console.js", web::get().to(js))
            .route("/sign-in", web::get().to(pages::sign_in::sign_in_page))
            .route("/sign-in", web::post().to(pages::sign_in::sign_in))
            .route("/sign-out", web::post().to(pages::sign_in::sign_out))
            .route("/overview", web::get().to(pages::overview::overview))
            .route("/orders", web::get().to(pages::orders::orders))
            .route(
                "/orders/{site_id}/{order_id}",
                web::get().to(pages::order_detail::order),
            )
            .route("/orders/{site_id}/{order_id}/label.pdf", web::get().to(pdfs::label))
            .route(
                "/orders/{site_id}/{order_id}/packing-slip.pdf",
                web::get().to(pdfs::packing_slip),
            )
            .route(
                "/orders/{site_id}/{order_id}/refund",
                web::post().to(pages::order_detail::refund),
            )
            .route(
                "/orders/{site_id}/{order_id}/address",
                web::post().to(pages::order_detail::correct_address),
            )
            .route(
                "/orders/{site_id}/{order_id}/retry-writeback",
                web::post().to(pages::order_detail::retry_writeback),
            )
            .route(
                "/orders/{site_id}/{order_id}/resolve",
                web::post().to(pages::order_detail::resolve),
            )
            .route("/review", web::get().to(pages::review::review))
            .route("/floor", web::get().to(pages::floor::floor))
            .route("/floor/{task_id}", web::get().to(pages::floor::station))
            .route("/floor/{task_id}/picked", web::post().to(pages::floor::picked))
            .route("/floor/{task_id}/scan", web::post().to(pages::floor::scan))
            .route("/floor/{task_id}/pack", web::post().to(pages::floor::pack))
            .route("/stuck", web::get().to(pages::dead_letters::stuck))
            .route("/stuck/replay", web::post().to(pages::dead_letters::replay))
            .route("/stuck/purge", web::post().to(pages::dead_letters::purge))
            .route("/inventory", web::get().to(pages::inventory::inventory))
            .route("/inventory/receive", web::post().to(pages::inventory::receive))
            .route("/tokens", web::get().to(pages::tokens::tokens_page))
            .route("/tokens", web::post().to(pages::tokens::create))
            .route("/tokens/revoke", web::post().to(pages::tokens::revoke))
            .route("/stores", web::get().to(pages::stores::stores_page))
            .route("/stores", web::post().to(pages::stores::create))
            // Two segments: no store name (one segment) can shadow these.
            .route("/stores/oauth/connect", web::post().to(pages::stores::connect))
            .route("/stores/oauth/callback", web::get().to(pages::stores::callback))
            .route("/stores/oauth/finish", web::get().to(pages::stores::finish))
            .route("/stores/{name}", web::get().to(pages::stores::edit_page))
            .route("/stores/{name}", web::post().to(pages::stores::update))
            .route("/stores/{name}/remove", web::post().to(pages::stores::remove)),
    );
}

async fn css() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/css; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "max-age=300"))
        .body(assets::CSS)
}

async fn js() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/javascript; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "max-age=300"))
        .body(assets::JS)
}

/// Why a console request did not get its page.
#[derive(Debug)]
pub enum ConsoleError {
    /// No valid session: go sign in (and come back to `next` for a GET).
    SignIn { next: Option<String> },
    /// A form without the session's CSRF token, or from another site.
    Csrf,
    /// What the API would have answered (403, 404, 409, 422...), shown as a page.
    Api(ApiError),
    /// The broker could not be reached or refused.
    Broker(String),
}

impl From<ApiError> for ConsoleError {
    fn from(error: ApiError) -> Self {
        Self::Api(error)
    }
}

impl From<AccessError> for ConsoleError {
    fn from(error: AccessError) -> Self {
        Self::Api(error.into())
    }
}

impl From<CommandError> for ConsoleError {
    fn from(error: CommandError) -> Self {
        Self::Api(error.into())
    }
}

impl From<warehouse_db::DbError> for ConsoleError {
    fn from(error: warehouse_db::DbError) -> Self {
        Self::Api(error.into())
    }
}

impl From<warehouse_db::pool::PoolError> for ConsoleError {
    fn from(error: warehouse_db::pool::PoolError) -> Self {
        Self::Api(error.into())
    }
}

impl From<tokio_postgres::Error> for ConsoleError {
    fn from(error: tokio_postgres::Error) -> Self {
        Self::Api(error.into())
    }
}

impl From<DlqError> for ConsoleError {
    fn from(error: DlqError) -> Self {
        Self::Broker(error.to_string())
    }
}

impl std::fmt::Display for ConsoleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::SignIn { .. } => write!(f, "sign in first"),
            Self::Csrf => write!(f, "this form expired or came from another site"),
            Self::Api(error) => write!(f, "{}", error.message),
            Self::Broker(message) => write!(f, "RabbitMQ: {message}"),
        }
    }
}

impl actix_web::ResponseError for ConsoleError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::SignIn { .. } => StatusCode::SEE_OTHER,
            Self::Csrf => StatusCode::FORBIDDEN,
            Self::Api(error) => error.status,
            Self::Broker(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let Self::SignIn { next } = self {
            let location = match next {
                Some(next) => format!("/console/sign-in?next={}", percent(next)),
                None => "/console/sign-in".to_owned(),
            };
            return HttpResponse::SeeOther()
                .insert_header((header::LOCATION, location))
                .finish();
        }
        let (title, advice) = match self {
            Self::Csrf => (
                "This form was refused",
                "It expired or was sent from another site. Go back, reload the page and try again.",
            ),
            Self::Api(error) if error.status == StatusCode::FORBIDDEN => (
                "Not allowed with your token",
                "Your token's role does not allow this. Ask an administrator.",
            ),
            Self::Api(error) if error.status == StatusCode::NOT_FOUND => (
                "Not found",
                "It does not exist, or it belongs to a store your token does not cover.",
            ),
            Self::Api(error) if error.status.is_client_error() => {
                ("That did not work", "Nothing was changed. Go back and correct it.")
            }
            _ => ("Something failed", "Nothing was changed. Try again in a moment."),
        };
        let body = html! {
            (DOCTYPE)
            html lang="en" {
                head { meta charset="utf-8"; meta name="viewport" content="width=device-width, initial-scale=1";
                       title { (title) " · WMS console" } link rel="stylesheet" href="/console/assets/console.css"; }
                body { main {
                    h1 { (title) }
                    div.flash.bad { (self.to_string()) }
                    p.help { (advice) }
                    p { a.button.quiet href="javascript:history.back()" { "Go back" } " " a.button href="/console/overview" { "Overview" } }
                } }
            }
        };
        HttpResponse::build(self.status_code())
            .content_type("text/html; charset=utf-8")
            .body(body.into_string())
    }
}

pub type Page = Result<HttpResponse, ConsoleError>;

/// The session of a request, or the sign-in redirect.
pub async fn session(state: &AppState, console: &ConsoleState, request: &HttpRequest) -> Result<Session, ConsoleError> {
    let next = (request.method() == actix_web::http::Method::GET).then(|| {
        let uri = request.uri();
        uri.path_and_query().map(|p| p.as_str().to_owned()).unwrap_or_default()
    });
    let Some(value) = session::cookie_value(request) else {
        return Err(ConsoleError::SignIn { next });
    };
    let client = state.pool.get().await?;
    console
        .sessions
        .verify(&*client, &value, &state.tokens)
        .await?
        .ok_or(ConsoleError::SignIn { next })
}

/// A state-changing form: a session, a matching CSRF token, and no cross-site `Origin`.
pub async fn form_session(
    state: &AppState,
    console: &ConsoleState,
    request: &HttpRequest,
    form: &HashMap<String, String>,
) -> Result<Session, ConsoleError> {
    let session = session(state, console, request).await?;
    if !same_origin(request) || !session::csrf_matches(&session, form.get("csrf").map(String::as_str)) {
        return Err(ConsoleError::Csrf);
    }
    Ok(session)
}

/// Browsers send `Origin` on POSTs: when present it must be this host.
fn same_origin(request: &HttpRequest) -> bool {
    let Some(origin) = request.headers().get(header::ORIGIN).and_then(|o| o.to_str().ok()) else {
        return true;
    };
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    origin
        .split_once("://")
        .is_some_and(|(_, rest)| !host.is_empty() && rest.trim_end_matches('/') == host)
}
