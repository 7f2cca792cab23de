//! Signing in with a warehouse token, and out.

use super::{Form, Query, field};
use crate::console::render::html_response;
use crate::console::{ConsoleState, Page, form_session};
use crate::state::AppState;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use maud::{DOCTYPE, Markup, html};

pub async fn home() -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, "/console/overview"))
        .finish()
}

fn sign_in_markup(next: &str, error: Option<&str>) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { "Sign in · WMS console" }
                link rel="stylesheet" href="/console/assets/console.css";
            }
            body { main {
                h1 { "Sign in to the warehouse console" }
                p.help { "Use your warehouse token (the one your administrator gave you for the API). What you can see and do depends on the token's role and stores." }
                @if let Some(error) = error { div.flash.bad #flash { (error) } }
                form.stack method="post" action="/console/sign-in" {
                    input type="hidden" name="next" value=(next);
                    label { "Token" input #token type="password" name="token" autocomplete="current-password" required autofocus; }
                    button #sign-in type="submit" { "Sign in" }
                }
            } }
        }
    }
}

pub async fn sign_in_page(query: Query) -> HttpResponse {
    let next = query.get("next").cloned().unwrap_or_default();
    html_response(sign_in_markup(&next, None))
}

/// Only a console path may be the target after sign-in (no open redirect).
fn safe_next(next: &str) -> &str {
    if next.starts_with("/console/") && !next.starts_with("//") && !next.contains('\\') {
        next
    } else {
        "/console/overview"
    }
}

pub async fn sign_in(
    state: web::Data<AppState>,
    console: web::Data<ConsoleState>,
    request: HttpRequest,
    form: Form,
) -> Page {
    let next = safe_next(field(&form, "next")).to_owned();
    if !crate::console::same_origin(&request) {
        return Ok(HttpResponse::Forbidden().body("cross-site sign-in refused"));
    }
    let presented = field(&form, "token");
    let throttle = console.sessions.throttle_for(&request, presented);
    let client = state.pool.get().await?;
    // The attempt is counted before the token is looked at, in one atomic statement, so a burst
    // of parallel attempts cannot all pass a check before any failure is counted; a throttled
    // address or token is refused before the token is looked at, so the answer tells nothing
    // about it. Only a failure stays counted: a refused or successful attempt is given back.
    let attempt = throttle.begin(&*client).await?;
    if let Some(wait) = attempt.refused_for {
        throttle.give_back(&*client, &attempt).await?;
        let seconds = wait.as_secs().max(1);
        tracing::warn!(
            client_ip = throttle.ip(),
            retry_after_secs = seconds,
            "console sign-in throttled"
        );
        let message = format!(
            "Too many failed sign-ins. Try again in {} minute(s).",
            seconds.div_ceil(60)
        );
        let mut response = html_response(sign_in_markup(&next, Some(&message)));
        *response.status_mut() = actix_web::http::StatusCode::TOO_MANY_REQUESTS;
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, header::HeaderValue::from(seconds));
        return Ok(response);
    }
    match crate::auth::authenticate(&state.tokens, &state.pool, presented).await? {
        Some(operator) => {
            throttle.give_back(&*client, &attempt).await?;
            let session = console.sessions.issue(&*client, &operator).await?;
            tracing::info!(operator = %operator.name, client_ip = throttle.ip(), "console sign-in");
            Ok(HttpResponse::SeeOther()
                .insert_header((header::SET_COOKIE, console.sessions.set_cookie(&session)))
                .insert_header((header::LOCATION, next))
                .finish())
        }
        None => {
            tracing::warn!(client_ip = throttle.ip(), "console sign-in with an unknown token");
            let mut response = html_response(sign_in_markup(&next, Some("That token is not valid.")));
            *response.status_mut() = actix_web::http::StatusCode::UNAUTHORIZED;
            Ok(response)
        }
    }
}

/// Ends the session in the database (its cookie is refused from now on, on every replica,
/// even if replayed) and in the browser.
pub async fn sign_out(
    state: web::Data<AppState>,
    console: web::Data<ConsoleState>,
    request: HttpRequest,
    form: Form,
) -> Page {
    let session = form_session(&state, &console, &request, &form).await?;
    let client = state.pool.get().await?;
    console.sessions.end(&*client, &session).await?;
    tracing::info!(operator = %session.operator.name, "console sign-out");
    Ok(HttpResponse::SeeOther()
        .insert_header((header::SET_COOKIE, console.sessions.clear_cookie()))
        .insert_header((header::LOCATION, "/console/sign-in"))
        .finish())
}
