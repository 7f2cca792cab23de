//! Stores (admins only): every store with its merchant, onboarding one with a site token,
//! changing and removing one (with a confirmation), and, when `webflow.oauth` is set,
//! "Connect with Webflow": the OAuth authorization-code flow that creates a store per site the
//! operator authorizes, with webhooks signed by the app's client secret.
//!
//! The OAuth `state` is bound to the console session without storing anything: it carries when
//! it was issued, a nonce and the merchant chosen before the redirect, with an HMAC-SHA256
//! keyed by the session's CSRF token. Only the same session, within ten minutes, can complete
//! the flow, so a callback link planted by someone else is refused.
//!
//! The session cookie is `SameSite=Strict`, so the browser does not send it on the redirect
//! back from webflow.com (a cross-site navigation). The callback therefore answers a small
//! page, with no side effect, that continues on this site to `/oauth/finish`, where the cookie
//! is sent and the session and state are checked.

use super::{Form, Query, field};
use crate::auth::Role;
use crate::commands::stores::{self, DEFAULT_RATE_LIMIT_PER_MINUTE, StoreInput, encode_component, name_from_site};
use crate::console::render::{Nav, csrf_field, flash, html_response, layout, redirect_with, time};
use crate::console::session::Session;
use crate::console::{ConsoleError, ConsoleState, Page, form_session, session};
use crate::error::ApiError;
use crate::state::AppState;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use maud::{DOCTYPE, html};
use secrecy::{ExposeSecret, SecretString};
use warehouse_db::merchants::DEFAULT_MERCHANT;
use warehouse_db::store_admin::{self, StorePatch, StoreSource};

/// How long an OAuth `state` is accepted.
const STATE_TTL_SECS: i64 = 600;
/// What the bridge asks a Webflow app for: orders and inventory, and its webhooks.
const OAUTH_SCOPES: &str = "ecommerce:read ecommerce:write sites:read sites:write";

pub async fn stores_page(
    state: web::Data<AppState>,
    console: web::Data<ConsoleState>,
    request: HttpRequest,
    query: Query,
) -> Page {
    let session = session(&state, &console, &request).await?;
    session.operator.require(Role::Admin)?;
    let list = stores::list(&state, &session.operator, false).await?;
    let merchants = {
        let client = state.pool.get().await?;
        merchant_names(&*client).await?
    };
    let body = html! {
        h1 { "Stores" }
        p.help { "Each store is a Webflow site and belongs to a merchant, whose stock it sells. Stores from the config file (webflow.sites) are changed there. Stores added here are served by every service within seconds; their tokens and webhook secrets are stored encrypted and never shown again." }
        table #stores {
            tr { th { "name" } th { "merchant" } th { "site" } th { "source" } th { "rate/min" } th { "fulfillment e-mail" } th { "webhooks" } th { "changed" } th {} }
            @for s in &list {
                tr data-store=(s.name) {
                    td { (s.name) }
                    td { (s.merchant) }
                    td { code { (s.site_id) } }
                    td { (s.source.as_str()) }
                    td { (s.rate_limit_per_minute) }
                    td { @if s.send_fulfillment_email { "yes" } @else { "no" } }
                    td { (s.webhooks.len()) }
                    td { (time(&s.updated_at)) }
                    td {
                        @if s.source != StoreSource::Config {
                            a.button.quiet href={"/console/stores/" (encode_component(&s.name))} { "Edit" }
                            " "
                            form.inline method="post" action={"/console/stores/" (encode_component(&s.name)) "/remove"}
                                data-confirm={"Remove " (s.name) "? Its webhooks are deleted at Webflow and its orders are no longer received."} {
                                (csrf_field(&session))
                                button type="submit" { "Remove" }
                            }
                        }
                    }
                }
            }
        }
        @if state.oauth.is_some() {
            h2 { "Connect with Webflow" }
            p.help { "Sign in at Webflow and choose the sites to connect: a store is created for each, with its webhooks." }
            form #connect method="post" action="/console/stores/oauth/connect" {
                (csrf_field(&session))
                label { "Merchant " (merchant_select(&merchants, DEFAULT_MERCHANT)) }
                button type="submit" { "Connect with Webflow" }
            }
        }
        h2 { "Add a store" }
        form #add-store method="post" action="/console/stores" {
            (csrf_field(&session))
            label { "Name " input type="text" name="name" required maxlength="63" pattern="[A-Za-z0-9][A-Za-z0-9._-]*"; }
            label { "Merchant " (merchant_select(&merchants, DEFAULT_MERCHANT)) }
            label { "Webflow site id " input type="text" name="site_id" required; }
            label { "Site API token " input type="password" name="api_token" required autocomplete="off"; }
            label { "Rate limit per minute " input type="number" name="rate_limit_per_minute" min="1" value=(DEFAULT_RATE_LIMIT_PER_MINUTE); }
            label { input type="checkbox" name="send_fulfillment_email" checked; " Webflow e-mails the customer on fulfillment" }
            label { input type="checkbox" name="register_webhooks" checked; " Register the webhooks at Webflow" }
            button type="submit" { "Add" }
        }
    };
    Ok(layout(&session, Nav::Stores, "Stores", flash(&query), body))
}

/// Every merchant's name, sorted (the forms' choices).
async fn merchant_names(client: &impl warehouse_db::Db) -> Result<Vec<String>, crate::commands::CommandError> {
    Ok(warehouse_db::merchants::list(client)
        .await
        .map_err(crate::commands::CommandError::from)?
        .into_iter()
        .map(|m| m.name)
        .collect())
}

fn merchant_select(merchants: &[String], selected: &str) -> maud::Markup {
    html! {
        select name="merchant" {
            @for m in merchants {
                option value=(m) selected[m == selected] { (m) }
            }
        }
    }
}

fn checkbox(form: &std::collections::HashMap<String, String>, name: &str) -> bool {
    matches!(field(form, name), "on" | "true" | "yes")
}

fn number<T: std::str::FromStr>(
    form: &std::collections::HashMap<String, String>,
    name: &str,
) -> Result<Option<T>, ApiError> {
    match field(form, name) {
        "" => Ok(None),
        text => text
            .parse()
            .map(Some)
            .map_err(|_| ApiError::invalid(name, format!("{name} must be a whole number"))),
    }
}

pub async fn create(
    state: web::Data<AppState>,
    console: web::Data<ConsoleState>,
    request: HttpRequest,
    form: Form,
) -> Page {
    let session = form_session(&state, &console, &request, &form).await?;
    session.operator.require(Role::Admin)?;
    let name = field(&form, "name").to_owned();
    let store = stores::create(
        &state,
        &session.operator,
        StoreInput {
            name: name.clone(),
            merchant: field(&form, "merchant").to_owned(),
            site_id: field(&form, "site_id").to_owned(),
            api_token: SecretString::from(field(&form, "api_token").to_owned()),
            rate_limit_per_minute: number(&form, "rate_limit_per_minute")?.unwrap_or(DEFAULT_RATE_LIMIT_PER_MINUTE),
            send_fulfillment_email: checkbox(&form, "send_fulfillment_email"),
            inventory_sync: false,
            sku_collection_id: None,
            inventory_safety_buffer: 0,
            register_webhooks: checkbox(&form, "register_webhooks"),
            source: StoreSource::Api,
        },
    )
    .await?;
    Ok(redirect_with(
        "/console/stores",
        true,
        &format!(
            "Store {} added ({} webhooks registered).",
            store.name,
            store.webhooks.len()
        ),
    ))
}

pub async fn edit_page(
    state: web::Data<AppState>,
    console: web::Data<ConsoleState>,
    request: HttpRequest,
    path: web::Path<String>,
    query: Query,
) -> Page {
    let session = session(&state, &console, &request).await?;
    let store = stores::get(&state, &session.operator, &path.into_inner()).await?;
    let merchants = {
        let client = state.pool.get().await?;
        merchant_names(&*client).await?
    };
    let action = format!("/console/stores/{}", encode_component(&store.name));
    let yes_no = |name: &str, on: bool| {
        html! {
            select name=(name) {
                option value="true" selected[on] { "yes" }
                option value="false" selected[!on] { "no" }
            }
        }
    };
    let body = html! {
        h1 { "Store " (store.name) }
        p { "Webflow site " code { (store.site_id) } " · " (store.source.as_str()) " · " (store.webhooks.len()) " webhooks" }
        @if store.source == StoreSource::Config {
            p.help { "This store is in the config file (webflow.sites): change it there." }
        } @else {
            form #edit-store method="post" action=(action) {
                (csrf_field(&session))
                label { "Merchant " (merchant_select(&merchants, &store.merchant)) }
                label { "Rate limit per minute " input type="number" name="rate_limit_per_minute" min="1" value=(store.rate_limit_per_minute); }
                label { "Webflow e-mails the customer on fulfillment " (yes_no("send_fulfillment_email", store.send_fulfillment_email)) }
                label { "Inventory sync " (yes_no("inventory_sync", store.inventory_sync)) }
                label { "SKU collection id " input type="text" name="sku_collection_id" value=[store.sku_collection_id.as_deref()]; }
                label { "Safety buffer " input type="number" name="inventory_safety_buffer" min="0" value=(store.inventory_safety_buffer); }
                label { "New site API token " input type="password" name="api_token" autocomplete="off" placeholder="unchanged"; }
                button type="submit" { "Save" }
            }
        }
    };
    Ok(layout(
        &session,
        Nav::Stores,
        &format!("Store {}", store.name),
        flash(&query),
        body,
    ))
}

fn parse_bool(form: &std::collections::HashMap<String, String>, name: &str) -> Result<Option<bool>, ApiError> {
    match field(form, name) {
        "" => Ok(None),
        "true" => Ok(Some(true)),
        "false" => Ok(Some(false)),
        _ => Err(ApiError::invalid(name, format!("{name} is yes or no"))),
    }
}

pub async fn update(
    state: web::Data<AppState>,
    console: web::Data<ConsoleState>,
    request: HttpRequest,
    path: web::Path<String>,
    form: Form,
) -> Page {
    let session = form_session(&state, &console, &request, &form).await?;
    let name = path.into_inner();
    let token = field(&form, "api_token");
    let collection = field(&form, "sku_collection_id");
    let patch = StorePatch {
        merchant: Some(field(&form, "merchant"))
            .filter(|m| !m.is_empty())
            .map(str::to_owned),
        api_token: (!token.is_empty()).then(|| SecretString::from(token.to_owned())),
        rate_limit_per_minute: number(&form, "rate_limit_per_minute")?,
        send_fulfillment_email: parse_bool(&form, "send_fulfillment_email")?,
        inventory_sync: parse_bool(&form, "inventory_sync")?,
        sku_collection_id: Some((!collection.is_empty()).then(|| collection.to_owned())),
        inventory_safety_buffer: number(&form, "inventory_safety_buffer")?,
    };
    stores::patch(&state, &session.operator, &name, patch).await?;
    Ok(redirect_with("/console/stores", true, &format!("Store {name} saved.")))
}

pub async fn remove(
    state: web::Data<AppState>,
    console: web::Data<ConsoleState>,
    request: HttpRequest,
    path: web::Path<String>,
    form: Form,
) -> Page {
    let session = form_session(&state, &console, &request, &form).await?;
    let name = path.into_inner();
    stores::remove(&state, &session.operator, &name).await?;
    Ok(redirect_with(
        "/console/stores",
        true,
        &format!("Store {name} removed."),
    ))
}

/// The `state` of an OAuth flow for the session whose CSRF token is `csrf`, choosing
/// `merchant`, issued at `issued`.
fn oauth_state(csrf: &str, merchant: &str, issued: i64, nonce: &str) -> String {
    let tag = ring::hmac::sign(
        &oauth_state_key(csrf),
        oauth_state_message(issued, nonce, merchant).as_bytes(),
    );
    format!("{issued}:{nonce}:{}:{merchant}", hex::encode(tag.as_ref()))
}

/// The merchant a `state` chose, if this session issued it less than [`STATE_TTL_SECS`] ago.
fn check_oauth_state(csrf: &str, state: &str, now: i64) -> Option<String> {
    let mut parts = state.splitn(4, ':');
    let (issued, nonce, tag, merchant) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    let issued: i64 = issued.parse().ok()?;
    if !(0..=STATE_TTL_SECS).contains(&(now - issued)) {
        return None;
    }
    let tag = hex::decode(tag).ok()?;
    ring::hmac::verify(
        &oauth_state_key(csrf),
        oauth_state_message(issued, nonce, merchant).as_bytes(),
        &tag,
    )
    .ok()?;
    Some(merchant.to_owned())
}

/// The session's CSRF token keys the state: another session's state does not verify.
fn oauth_state_key(csrf: &str) -> ring::hmac::Key {
    ring::hmac::Key::new(ring::hmac::HMAC_SHA256, csrf.as_bytes())
}

fn oauth_state_message(issued: i64, nonce: &str, merchant: &str) -> String {
    format!("oauth-state:{issued}:{nonce}:{merchant}")
}

fn oauth_settings(state: &AppState) -> Result<&webflow::OAuthSettings, ConsoleError> {
    state.oauth.as_ref().ok_or_else(|| {
        ConsoleError::Api(ApiError::not_found(
            "Connect with Webflow is not configured (webflow.oauth)",
        ))
    })
}

/// "Connect with Webflow": to Webflow's consent page with a `state` bound to this session.
pub async fn connect(
    state: web::Data<AppState>,
    console: web::Data<ConsoleState>,
    request: HttpRequest,
    form: Form,
) -> Page {
    let session = form_session(&state, &console, &request, &form).await?;
    session.operator.require(Role::Admin)?;
    let oauth = oauth_settings(&state)?;
    let merchant = field(&form, "merchant");
    {
        let client = state.pool.get().await?;
        store_admin::merchant_id(&*client, merchant)
            .await
            .map_err(crate::commands::CommandError::from)?;
    }
    let mut nonce = [0u8; 16];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut nonce).map_err(|_| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "random_failed",
            "the system's random source failed",
        )
    })?;
    let oauth_state = oauth_state(
        &session.csrf,
        merchant,
        chrono::Utc::now().timestamp(),
        &hex::encode(nonce),
    );
    let separator = if oauth.authorize_url.contains('?') { '&' } else { '?' };
    let location = format!(
        "{}{separator}response_type=code&client_id={}&redirect_uri={}&scope={}&state={}",
        oauth.authorize_url,
        encode_component(&oauth.client_id),
        encode_component(&oauth.redirect_url),
        encode_component(OAUTH_SCOPES),
        encode_component(&oauth_state),
    );
    Ok(HttpResponse::SeeOther()
        .insert_header((actix_web::http::header::LOCATION, location))
        .finish())
}

/// Webflow's redirect back: continues on this site (see the module docs), changing nothing.
pub async fn callback(query: Query) -> HttpResponse {
    if let Some(error) = query.get("error") {
        let description = query.get("error_description").map_or("", String::as_str);
        return crate::console::render::redirect_with(
            "/console/stores",
            false,
            &format!("Webflow did not connect: {error} {description}"),
        );
    }
    let target = format!(
        "/console/stores/oauth/finish?code={}&state={}",
        encode_component(query.get("code").map_or("", String::as_str)),
        encode_component(query.get("state").map_or("", String::as_str)),
    );
    let page = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta http-equiv="refresh" content={"0;url=" (target)};
                title { "Connecting… · WMS console" }
                link rel="stylesheet" href="/console/assets/console.css";
            }
            body { main { p { "Connecting your Webflow sites… " a #continue href=(target) { "Continue" } } } }
        }
    };
    let mut response = html_response(page);
    // The code must not leak to another site through a Referer.
    response.headers_mut().insert(
        actix_web::http::header::REFERRER_POLICY,
        actix_web::http::header::HeaderValue::from_static("no-referrer"),
    );
    response
}

/// The end of the flow: the state checked against this session, the code exchanged, and a
/// store created (with webhooks) for each authorized site that no live store serves yet.
pub async fn finish(
    state: web::Data<AppState>,
    console: web::Data<ConsoleState>,
    request: HttpRequest,
    query: Query,
) -> Page {
    let session = session(&state, &console, &request).await?;
    session.operator.require(Role::Admin)?;
    let oauth = oauth_settings(&state)?;
    let merchant = check_oauth_state(
        &session.csrf,
        query.get("state").map_or("", String::as_str),
        chrono::Utc::now().timestamp(),
    )
    .ok_or(ConsoleError::Csrf)?;
    let code = query.get("code").map_or("", String::as_str);
    let secret = oauth
        .client_secret()
        .ok_or_else(|| ApiError::not_found("webflow.oauth.client_secret is not set"))?;
    let token = state
        .webflow
        .exchange_oauth_code(&oauth.token_url, &oauth.client_id, &secret, code, &oauth.redirect_url)
        .await
        .map_err(|e| refused("exchanging the authorization code", &e))?
        .value
        .access_token;
    let sites = state
        .webflow
        .introspect_token(&token)
        .await
        .map_err(|e| refused("reading the authorized sites", &e))?
        .value
        .authorization
        .authorized_to
        .site_ids;
    let mut created = Vec::new();
    let mut skipped = Vec::new();
    let mut failed = Vec::new();
    for site_id in sites {
        let live = {
            let client = state.pool.get().await?;
            store_admin::list(&*client, false)
                .await
                .map_err(crate::commands::CommandError::from)?
                .into_iter()
                .find(|s| s.site_id == site_id)
        };
        if let Some(store) = live {
            skipped.push(format!("{site_id} (already store {})", store.name));
            continue;
        }
        match connect_site(&state, &session, &token, &merchant, &site_id).await {
            Ok(name) => created.push(name),
            Err(error) => failed.push(format!("{site_id}: {error}")),
        }
    }
    let mut message = if created.is_empty() {
        "No store was created.".to_owned()
    } else {
        format!("Connected: {}.", created.join(", "))
    };
    if !skipped.is_empty() {
        message.push_str(&format!(" Already connected: {}.", skipped.join(", ")));
    }
    if !failed.is_empty() {
        message.push_str(&format!(" Failed: {}.", failed.join("; ")));
    }
    Ok(redirect_with(
        "/console/stores",
        failed.is_empty() && !created.is_empty(),
        &message,
    ))
}

/// One authorized site as a store named after the site (made unique), with webhooks.
async fn connect_site(
    state: &AppState,
    session: &Session,
    token: &SecretString,
    merchant: &str,
    site_id: &str,
) -> Result<String, crate::commands::CommandError> {
    let site = state
        .webflow
        .get_site(token, &webflow::SiteId::from(site_id.to_owned()))
        .await
        .map_err(|e| crate::commands::CommandError::WebflowRefused(e.to_string()))?
        .value;
    let wanted = name_from_site(site.short_name.as_deref(), site.display_name.as_deref(), site_id);
    let name = {
        let client = state.pool.get().await?;
        store_admin::unique_name(&*client, &wanted).await?
    };
    let store = stores::create(
        state,
        &session.operator,
        StoreInput {
            name,
            merchant: merchant.to_owned(),
            site_id: site_id.to_owned(),
            api_token: SecretString::from(token.expose_secret().to_owned()),
            rate_limit_per_minute: DEFAULT_RATE_LIMIT_PER_MINUTE,
            send_fulfillment_email: true,
            inventory_sync: false,
            sku_collection_id: None,
            inventory_safety_buffer: 0,
            register_webhooks: true,
            source: StoreSource::Oauth,
        },
    )
    .await?;
    Ok(store.name)
}

fn refused(what: &str, error: &webflow::WebflowError) -> ConsoleError {
    let message = match error {
        webflow::WebflowError::Api { body, status, .. } => format!(
            "{what}: Webflow answered {status}: {}",
            body.message.as_deref().unwrap_or("no message")
        ),
        other => format!("{what}: {other}"),
    };
    ConsoleError::Api(ApiError::new(
        StatusCode::UNPROCESSABLE_ENTITY,
        "webflow_refused",
        message,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_oauth_state_completes_only_in_its_own_session_and_in_time() {
        let mine = "csrf-one";
        let state = oauth_state(mine, "acme", 1_000, "n1");
        assert_eq!(check_oauth_state(mine, &state, 1_100).as_deref(), Some("acme"));
        assert_eq!(check_oauth_state("csrf-two", &state, 1_100), None);
        assert_eq!(check_oauth_state(mine, &state, 1_000 + STATE_TTL_SECS + 1), None);
        let forged = state.replace(":acme", ":other");
        assert_eq!(check_oauth_state(mine, &forged, 1_100), None);
        assert_eq!(check_oauth_state(mine, "garbage", 1_100), None);
    }
}
