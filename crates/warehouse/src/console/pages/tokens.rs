//! Operator tokens (admins only): every token, config file and database, marked; creating a
//! database token (shown once, on the answer page, never in a URL); revoking one (its console
//! sessions end at once).

use super::{Form, Query, field};
use crate::auth::Role;
use crate::commands::tokens::{self, CreatedToken, NewToken, TokenSource};
use crate::console::render::{Nav, csrf_field, flash, layout, redirect_with, time};
use crate::console::session::Session;
use crate::console::{ConsoleState, Page, form_session, session};
use crate::error::ApiError;
use crate::state::AppState;
use actix_web::{HttpRequest, web};
use maud::html;

pub async fn tokens_page(
    state: web::Data<AppState>,
    console: web::Data<ConsoleState>,
    request: HttpRequest,
    query: Query,
) -> Page {
    let session = session(&state, &console, &request).await?;
    render(&state, &session, flash(&query), None).await
}

async fn render(
    state: &AppState,
    session: &Session,
    flash: Option<(bool, String)>,
    created: Option<&CreatedToken>,
) -> Page {
    let list = tokens::list(state, &session.operator).await?;
    let body = html! {
        h1 { "Tokens" }
        p.help { "Operator tokens: a name (the actor of everything done with it), a role (read < floor < admin), its stores (* for every store) and the merchants whose stock it may read or change (* for every merchant; a token limited to stores sees their merchants' stock only). Tokens from the config file (warehouse.tokens, warehouse.api_tokens) are changed there. Tokens created here are stored as their SHA-256 only, shown once, and revoking one refuses it at once on every replica and ends its console sessions." }
        @if let Some(created) = created {
            div.flash.ok #new-token {
                p { "Token " strong { (created.name) } " created. Copy it now: it is not shown again." }
                p { code #new-token-value { (created.token) } }
            }
        }
        table #tokens {
            tr { th { "name" } th { "role" } th { "stores" } th { "merchants" } th { "source" } th { "created" } th { "last used" } th { "state" } th {} }
            @for t in &list {
                tr data-token=(t.name) {
                    td { (t.name) }
                    td { (t.role) }
                    td { (t.sites.join(", ")) }
                    td.merchants { (t.merchants.join(", ")) }
                    td { @match t.source { TokenSource::Config => "config file", TokenSource::Database => "database" } }
                    td { @if let Some(at) = &t.created_at { (time(at)) } @if let Some(by) = &t.created_by { " by " (by) } }
                    td { @if let Some(at) = &t.last_used_at { (time(at)) } }
                    td { @if let Some(at) = &t.revoked_at { "revoked " (time(at)) } @else { "active" } }
                    td {
                        @if t.source == TokenSource::Database && t.revoked_at.is_none() {
                            form.inline method="post" action="/console/tokens/revoke" data-confirm={"Revoke " (t.name) "? It is refused at once."} {
                                (csrf_field(session))
                                input type="hidden" name="name" value=(t.name);
                                button type="submit" { "Revoke" }
                            }
                        }
                    }
                }
            }
        }
        h2 { "New token" }
        form #create-token method="post" action="/console/tokens" {
            (csrf_field(session))
            label { "Name " input type="text" name="name" required maxlength="100"; }
            label { "Role "
                select name="role" {
                    option value="read" { "read" }
                    option value="floor" { "floor" }
                    option value="admin" { "admin" }
                }
            }
            label { "Stores " input type="text" name="sites" required placeholder="* or site ids, comma-separated"; }
            label { "Merchants " input type="text" name="merchants" value="*" placeholder="* or merchant names, comma-separated"; }
            button type="submit" { "Create" }
        }
    };
    Ok(layout(session, Nav::Tokens, "Tokens", flash, body))
}

pub async fn create(
    state: web::Data<AppState>,
    console: web::Data<ConsoleState>,
    request: HttpRequest,
    form: Form,
) -> Page {
    let session = form_session(&state, &console, &request, &form).await?;
    session.operator.require(Role::Admin)?;
    let role = Role::parse(field(&form, "role")).ok_or_else(|| ApiError::invalid("role", "read, floor or admin"))?;
    let list = |name: &str| -> Vec<String> {
        field(&form, name)
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    };
    let sites = list("sites");
    // Left empty (or absent, from an older page): every merchant, as the API's default.
    let merchants = Some(list("merchants"))
        .filter(|m| !m.is_empty())
        .unwrap_or_else(|| vec!["*".to_owned()]);
    let created = tokens::create(
        &state,
        &session.operator,
        NewToken {
            name: field(&form, "name").to_owned(),
            role,
            sites,
            merchants,
        },
    )
    .await?;
    // The token is shown on this answer (not through a redirect, so it is in no URL or log).
    render(&state, &session, None, Some(&created)).await
}

pub async fn revoke(
    state: web::Data<AppState>,
    console: web::Data<ConsoleState>,
    request: HttpRequest,
    form: Form,
) -> Page {
    let session = form_session(&state, &console, &request, &form).await?;
    let name = field(&form, "name").to_owned();
    tokens::revoke(&state, &session.operator, &name).await?;
    Ok(redirect_with("/console/tokens", true, &format!("Revoked {name}.")))
}
