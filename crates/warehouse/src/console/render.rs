//! What every console page shares: the page frame and navigation, flash messages and
//! redirects, links, times and the plain-words state badges.

use super::session::Session;
use crate::auth::Operator;
use actix_web::HttpResponse;
use actix_web::http::header;
use maud::{DOCTYPE, Markup, html};
use std::collections::HashMap;
use warehouse_db::store_names::StoreNames;

pub fn percent(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~/".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The console page of an order.
pub fn order_path(site_id: &str, order_id: &str) -> String {
    format!("/console/orders/{}/{}", seg(site_id), seg(order_id))
}

/// A path segment, percent-encoded.
pub fn seg(text: &str) -> String {
    percent(text).replace('/', "%2F")
}

/// A store as operators know it: its name (the site id on hover), marked when removed, with
/// its merchant when the warehouse serves several; the site id when no store names it.
pub fn store(names: &StoreNames, site_id: &str) -> Markup {
    html! {
        @match names.get(site_id) {
            Some(name) => span.store-name title={"site " (site_id)} {
                (name.store)
                @if name.removed { " " span.muted { "(removed)" } }
                @if names.several_merchants() { " " span.muted.merchant { "· " (name.merchant) } }
            },
            None => code.store-name { (site_id) },
        }
    }
}

/// The hidden CSRF field of a form.
pub fn csrf_field(session: &Session) -> Markup {
    html! { input type="hidden" name="csrf" value=(session.csrf); }
}

/// A UTC time, shown in the viewer's zone by the script (ISO in the markup).
pub fn time(at: &chrono::DateTime<chrono::Utc>) -> Markup {
    let iso = at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    html! { time datetime=(iso) { (at.format("%Y-%m-%d %H:%M UTC")) } }
}

/// "3 h 12 min" since `at`.
pub fn age(at: &chrono::DateTime<chrono::Utc>) -> String {
    let minutes = (chrono::Utc::now() - *at).num_minutes().max(0);
    match minutes {
        0 => "under a minute".to_owned(),
        m if m < 60 => format!("{m} min"),
        m if m < 48 * 60 => format!("{} h {} min", m / 60, m % 60),
        m => format!("{} days", m / (24 * 60)),
    }
}

/// What each state means, in plain words.
pub fn explain_state(state: &str) -> &'static str {
    match state {
        "received" => "Seen from Webflow; not ready for the floor yet (payment pending, or nothing to ship).",
        "ready" => "Paid and shippable; waiting for stock to be reserved.",
        "backordered" => "Not enough stock (or an unknown SKU). It is reserved automatically when stock arrives.",
        "reserved" => "Stock is set aside and a pick task is open: pick and pack it.",
        "packed" => "Packed; the carrier is booking the label.",
        "shipped" => "The label is bought; tracking is being written to Webflow.",
        "fulfilled" => "Done: tracking is in Webflow and the order is fulfilled there.",
        "cancelled" => "Refunded or cancelled; any stock held was released.",
        "needs_review" => "Something a person must decide (see why). Nothing moves it on by itself.",
        _ => "",
    }
}

pub fn state_badge(state: &str) -> Markup {
    html! { span class={"state " (state)} title=(explain_state(state)) { (state.replace('_', " ")) } }
}

/// Which page of the navigation is on.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    Overview,
    Orders,
    Review,
    Floor,
    Stuck,
    Inventory,
    Tokens,
    Stores,
}

/// The page frame: navigation, who is signed in, an optional flash message.
pub fn layout(session: &Session, nav: Nav, title: &str, flash: Option<(bool, String)>, body: Markup) -> HttpResponse {
    layout_with(session, nav, title, flash, None, body)
}

pub fn layout_with(
    session: &Session,
    nav: Nav,
    title: &str,
    flash: Option<(bool, String)>,
    refresh_secs: Option<u32>,
    body: Markup,
) -> HttpResponse {
    let operator: &Operator = &session.operator;
    let stores = match operator.site_filter() {
        None => "every store".to_owned(),
        Some(sites) => sites.join(", "),
    };
    let link = |target: Nav, href: &str, label: &str| {
        html! { a href=(href) class=[(target == nav).then_some("on")] { (label) } }
    };
    let page = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · WMS console" }
                link rel="stylesheet" href="/console/assets/console.css";
                script src="/console/assets/console.js" defer {}
            }
            body {
                header {
                    span.brand { "WMS console" }
                    nav {
                        (link(Nav::Overview, "/console/overview", "Overview"))
                        (link(Nav::Orders, "/console/orders", "Orders"))
                        (link(Nav::Review, "/console/review", "Needs review"))
                        (link(Nav::Floor, "/console/floor", "Floor"))
                        (link(Nav::Stuck, "/console/stuck", "Stuck messages"))
                        (link(Nav::Inventory, "/console/inventory", "Inventory"))
                        @if operator.role >= crate::auth::Role::Admin {
                            (link(Nav::Tokens, "/console/tokens", "Tokens"))
                            (link(Nav::Stores, "/console/stores", "Stores"))
                        }
                    }
                    span.who {
                        span #signed-in { (operator.name) " · " (operator.role.as_str()) " · " (stores) }
                        form.inline method="post" action="/console/sign-out" {
                            (csrf_field(session))
                            button type="submit" { "Sign out" }
                        }
                    }
                }
                main data-refresh=[refresh_secs] {
                    @if let Some((ok, message)) = &flash {
                        div class={"flash " (if *ok { "ok" } else { "bad" })} #flash { (message) }
                    }
                    (body)
                }
            }
        }
    };
    html_response(page)
}

pub fn html_response(page: Markup) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header(("X-Frame-Options", "DENY"))
        .body(page.into_string())
}

/// 303 to `location` with a message for the next page.
pub fn redirect_with(location: &str, ok: bool, message: &str) -> HttpResponse {
    let separator = if location.contains('?') { '&' } else { '?' };
    HttpResponse::SeeOther()
        .insert_header((
            header::LOCATION,
            format!(
                "{location}{separator}{}={}",
                if ok { "done" } else { "failed" },
                percent(message)
            ),
        ))
        .finish()
}

/// The flash message a redirect carried.
pub fn flash(query: &HashMap<String, String>) -> Option<(bool, String)> {
    query
        .get("done")
        .map(|m| (true, m.clone()))
        .or_else(|| query.get("failed").map(|m| (false, m.clone())))
}

/// JSON for people: compact, no quotes around plain strings.
pub fn describe(detail: &serde_json::Value) -> String {
    match detail {
        serde_json::Value::Object(map) => map
            .iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, v)| match v {
                serde_json::Value::String(s) => format!("{k}: {s}"),
                other => format!("{k}: {other}"),
            })
            .collect::<Vec<_>>()
            .join(" · "),
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    }
}
