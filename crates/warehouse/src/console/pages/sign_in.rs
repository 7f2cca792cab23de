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
) -> HttpResponse {
    let next = safe_next(field(&form, "next")).to_owned();
    if !crate::console::same_origin(&request) {
        return HttpResponse::Forbidden().body("cross-site sign-in refused");
    }
    match state.tokens.authenticate(field(&form, "token")) {
        Some(operator) => {
            tracing::info!(operator = %operator.name, "console sign-in");
            let cookie = console.keys.issue(&operator);
            HttpResponse::SeeOther()
                .insert_header((header::SET_COOKIE, console.keys.set_cookie(&cookie)))
                .insert_header((header::LOCATION, next))
                .finish()
        }
        None => {
            let mut response = html_response(sign_in_markup(&next, Some("That token is not valid.")));
            *response.status_mut() = actix_web::http::StatusCode::UNAUTHORIZED;
            response
        }
    }
}

pub async fn sign_out(
    state: web::Data<AppState>,
    console: web::Data<ConsoleState>,
    request: HttpRequest,
    form: Form,
) -> Page {
    form_session(&state, &console, &request, &form)?;
    Ok(HttpResponse::SeeOther()
        .insert_header((header::SET_COOKIE, console.keys.clear_cookie()))
        .insert_header((header::LOCATION, "/console/sign-in"))
        .finish())
}
