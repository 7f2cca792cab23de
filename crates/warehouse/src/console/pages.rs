//! The console's pages and actions. Every action calls the code path the API uses, so roles,
//! scopes, validation and audit entries are the same.

use super::{
    ConsoleError, Nav, Page, age, csrf_field, describe, explain_state, flash, form_session, html_response, layout,
    layout_with, redirect_with, seg, session, state_badge, time,
};
use crate::auth::{Role, order_not_found};
use crate::packing::parcel_for;
use crate::routes::orders::{CorrectedAddress, apply_address_correction, request_refund};
use crate::routes::picking::{mark_task_picked, pack_parcels};
use crate::routes::{AppState, inventory::receive_stock};
use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, HttpResponse, web};
use domain::{OrderState, SiteId, Sku};
use maud::{DOCTYPE, Markup, html};
use std::collections::HashMap;
use warehouse_db::console as db;
use warehouse_db::floor::{self, PickTaskStatus};

type Query = web::Query<HashMap<String, String>>;
type Form = web::Form<HashMap<String, String>>;

fn field<'a>(form: &'a HashMap<String, String>, name: &str) -> &'a str {
    form.get(name).map(|v| v.trim()).unwrap_or_default()
}

fn order_path(site_id: &str, order_id: &str) -> String {
    format!("/console/orders/{}/{}", seg(site_id), seg(order_id))
}

pub async fn home() -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, "/console/overview"))
        .finish()
}

// ----- sign-in -----

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

pub async fn sign_in(state: web::Data<AppState>, request: HttpRequest, form: Form) -> HttpResponse {
    let next = safe_next(field(&form, "next")).to_owned();
    if !super::same_origin(&request) {
        return HttpResponse::Forbidden().body("cross-site sign-in refused");
    }
    match state.tokens.authenticate(field(&form, "token")) {
        Some(operator) => {
            tracing::info!(operator = %operator.name, "console sign-in");
            let cookie = state.console.keys.issue(&operator);
            HttpResponse::SeeOther()
                .insert_header((header::SET_COOKIE, state.console.keys.set_cookie(&cookie)))
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

pub async fn sign_out(state: web::Data<AppState>, request: HttpRequest, form: Form) -> Page {
    form_session(&state, &request, &form)?;
    Ok(HttpResponse::SeeOther()
        .insert_header((header::SET_COOKIE, state.console.keys.clear_cookie()))
        .insert_header((header::LOCATION, "/console/sign-in"))
        .finish())
}

// ----- overview -----

pub async fn overview(state: web::Data<AppState>, request: HttpRequest) -> Page {
    let session = session(&state, &request)?;
    let sites = session.operator.site_filter();
    let client = state.pool.get().await?;
    let counts = db::counts_by_state(&*client, sites).await?;
    let oldest = db::oldest_unshipped(&*client, sites).await?;
    let budgets: Vec<db::BudgetRow> = db::rate_budgets(&*client)
        .await?
        .into_iter()
        .filter(|b| sites.is_none_or(|sites| sites.iter().any(|s| b.key.starts_with(&format!("webflow:{s}")))))
        .collect();
    let outbox = db::outbox_backlog(&*client).await?;
    drop(client);
    let queues = queue_depths(&state).await;

    let mut stores: Vec<String> = counts.iter().map(|(s, _, _)| s.to_string()).collect();
    stores.dedup();
    let body = html! {
        h1 { "Overview" }
        p.help { "Refreshes every 10 seconds. Times are in your time zone." }
        @if stores.is_empty() { p { "No orders yet." } }
        div.cards {
            @for store in &stores {
                @let of_store: Vec<&(SiteId, OrderState, i64)> = counts.iter().filter(|(s, _, _)| s.as_str() == store).collect();
                @let review = of_store.iter().find(|(_, st, _)| *st == OrderState::NeedsReview).map_or(0, |(_, _, n)| *n);
                div.card.store {
                    h3 { "Store " code { (store) } }
                    table {
                        @for (_, st, n) in &of_store {
                            tr { td { a href={"/console/orders?site=" (seg(store)) "&state=" (st)} { (state_badge(st.as_str())) } } td.num { (n) } }
                        }
                    }
                    p { "Needs review: " a href="/console/review" { strong.needs-review { (review) } } }
                    @if let Some((_, order_id, st, at)) = oldest.iter().find(|(s, _, _, _)| s.as_str() == store) {
                        p { "Oldest not shipped: " a href=(super::order_path_pub(store, order_id.as_str())) { code { (order_id) } } " (" (st.as_str().replace('_', " ")) "), waiting " strong { (age(at)) } " since " (time(at)) }
                    } @else {
                        p.muted { "Nothing waiting to ship." }
                    }
                }
            }
        }
        h2 { "Backlog per stage" }
        p.help { "Messages waiting in each worker's queue (from the broker), and in its dead-letter queue (stuck: see Stuck messages). Events the warehouse wrote but has not published yet: " strong { (outbox) } "." }
        @match &queues {
            Ok(rows) => {
                table #backlog {
                    tr { th { "stage" } th.num { "waiting" } th.num { "dead letters" } }
                    @for (consumer, waiting, dead) in rows {
                        tr { td { (consumer) } td.num { (waiting) } td.num { @if *dead > 0 { a href="/console/stuck" { strong { (dead) } } } @else { "0" } } }
                    }
                }
            }
            Err(error) => { div.flash.bad { "RabbitMQ cannot be reached: " (error) } }
        }
        h2 { "Webflow budget" }
        p.help { "Each store's Webflow token has a per-minute budget shared by every replica. \"Queued\" is how far ahead calls are already booked: work waiting for the budget." }
        table #budgets {
            tr { th { "budget" } th.num { "limit / min" } th.num { "queued" } th.num { "calls" } th.num { "throttled (429)" } th { "paused until" } }
            @for b in &budgets {
                tr {
                    td { code { (b.key) } }
                    td.num { (format!("{:.0}", b.limit_per_minute)) }
                    td.num { (format!("{:.0} s (~{:.0} calls)", b.queued_seconds, b.queued_seconds * b.limit_per_minute / 60.0)) }
                    td.num { (b.calls) }
                    td.num { (b.throttled) }
                    td { @if let Some(until) = &b.paused_until { (time(until)) } @else { "—" } }
                }
            }
        }
    };
    Ok(layout_with(&session, Nav::Overview, "Overview", None, Some(10), body))
}

/// (consumer, waiting in its work queue, in its dead-letter queue), by passive declares.
async fn queue_depths(state: &AppState) -> Result<Vec<(String, u32, u32)>, String> {
    let mut guard = state.console.dead_letters().await.map_err(|e| e.to_string())?;
    let Some(dlq) = guard.as_ref() else {
        return Err("not connected".into());
    };
    let mut rows = Vec::new();
    let mut failed = None;
    for consumer in state.console.topology.consumers() {
        let work = dlq.count(&state.console.topology.work_queue(consumer.name)).await;
        let dead = dlq.count(&state.console.topology.dead_queue(consumer.name)).await;
        match (work, dead) {
            (Ok(work), Ok(dead)) => rows.push((consumer.name.to_owned(), work, dead)),
            (Err(e), _) | (_, Err(e)) => {
                failed = Some(e.to_string());
                break;
            }
        }
    }
    if let Some(error) = failed {
        *guard = None;
        return Err(error);
    }
    Ok(rows)
}

// ----- orders -----

fn orders_table(orders: &[db::OrderSummary]) -> Markup {
    html! {
        table.orders {
            tr { th { "order" } th { "store" } th { "state" } th { "customer" } th { "placed" } th { "last change" } }
            @for o in orders {
                tr {
                    td { a.order-link href=(order_path(o.site_id.as_str(), o.order_id.as_str())) { code { (o.order_id) } } }
                    td { code { (o.site_id) } }
                    td { (state_badge(o.state.as_str())) @if let Some(reason) = &o.state_reason { div.muted { (reason) } } }
                    td { (o.customer_name.as_deref().unwrap_or("")) br; span.muted { (o.customer_email.as_deref().unwrap_or("")) } }
                    td { (time(&o.created_at)) }
                    td { (time(&o.updated_at)) }
                }
            }
        }
    }
}

pub async fn orders(state: web::Data<AppState>, request: HttpRequest, query: Query) -> Page {
    let session = session(&state, &request)?;
    let sites = session.operator.site_filter();
    let site = query.get("site").map(|s| s.trim()).filter(|s| !s.is_empty());
    let text = query.get("q").map(|s| s.trim()).filter(|s| !s.is_empty());
    let state_filter = query.get("state").map(|s| s.trim()).filter(|s| !s.is_empty());
    let site_id_filter = site.map(SiteId::from);
    let client = state.pool.get().await?;
    let stores: Vec<String> = {
        let mut stores: Vec<String> = db::counts_by_state(&*client, sites)
            .await?
            .into_iter()
            .map(|(s, _, _)| s.to_string())
            .collect();
        stores.dedup();
        stores
    };
    let found = match state_filter.map(str::parse::<OrderState>).transpose() {
        // A state no order can be in matches no order.
        Err(_) => Vec::new(),
        Ok(state) => {
            let search = db::OrderSearch {
                sites,
                site_id: site_id_filter.as_ref(),
                text,
                state,
                limit: 200,
            };
            db::search_orders(&*client, &search).await?
        }
    };
    let body = html! {
        h1 { "Orders" }
        p.help { "Search by order id (or its beginning), customer email (or part of it), store and state. Newest first, 200 at most." }
        form.inline #search method="get" action="/console/orders" {
            input #q type="search" name="q" placeholder="order id or email" value=[text];
            select name="site" {
                option value="" { "every store" }
                @for s in &stores { option value=(s) selected[site == Some(s.as_str())] { (s) } }
            }
            select name="state" {
                option value="" { "any state" }
                @for st in domain::lifecycle::ALL_STATES {
                    option value=(st.as_str()) selected[state_filter == Some(st.as_str())] { (st.as_str().replace('_', " ")) }
                }
            }
            button type="submit" { "Search" }
        }
        p.muted { (found.len()) " order(s)" }
        (orders_table(&found))
        h2 { "What the states mean" }
        dl.kv {
            @for st in domain::lifecycle::ALL_STATES { dt { (state_badge(st.as_str())) } dd { (explain_state(st.as_str())) } }
        }
    };
    Ok(layout(&session, Nav::Orders, "Orders", flash(&query), body))
}

pub async fn order(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<(String, String)>,
    query: Query,
) -> Page {
    let session = session(&state, &request)?;
    let (site_id, order_id) = path.into_inner();
    session.operator.require(Role::Read)?;
    session.operator.check_site(&site_id, &order_id)?;
    let client = state.pool.get().await?;
    let view = warehouse_db::order_view::load(&*client, &site_id.as_str().into(), &order_id.as_str().into())
        .await?
        .ok_or_else(|| order_not_found(&site_id, &order_id))?;
    let summary = db::order_summary(&*client, &view.site_id, &view.order_id).await?;
    let writes = db::webflow_writes(&*client, &view.site_id, &view.order_id).await?;
    drop(client);
    let here = order_path(&site_id, &order_id);
    let admin = session.operator.role >= Role::Admin;
    let address = serde_json::to_value(view.shipping_address.clone().unwrap_or_default()).unwrap_or_default();
    let a = |k: &str| address[k].as_str().unwrap_or_default().to_owned();
    let api_calls: Vec<_> = view
        .timeline
        .iter()
        .filter(|e| e.kind == warehouse_db::audit::AuditKind::ApiCall)
        .collect();
    let body = html! {
        h1 { "Order " code { (order_id) } }
        div.grid2 {
            div.card {
                dl.kv {
                    dt { "store" } dd { code { (site_id) } }
                    dt { "state" } dd #order-state { (state_badge(view.state.as_str())) }
                    dt { "meaning" } dd { (explain_state(view.state.as_str())) }
                    @if let Some(reason) = &view.state_reason { dt { "why" } dd #state-reason { (reason) } }
                    dt { "Webflow status" } dd { (view.webflow_status.as_ref().map_or("unknown", |s| s.as_str())) }
                    @if let Some(s) = &summary {
                        dt { "customer" } dd { (s.customer_name.as_deref().unwrap_or("")) " " span.muted { (s.customer_email.as_deref().unwrap_or("")) } }
                        dt { "placed" } dd { (time(&s.created_at)) }
                    }
                    dt { "ship to" } dd { (a("addressee")) br; (a("line1")) " " (a("line2")) br; (a("postalCode")) " " (a("city")) " " (a("state")) " " (a("country")) }
                }
            }
            div.card {
                h3 { "Shipment" }
                @if let Some(s) = &view.shipment {
                    dl.kv {
                        dt { "carrier" } dd { (s.carrier.as_deref().unwrap_or(&s.carrier_kind)) " " (s.service_level.as_deref().unwrap_or("")) }
                        dt { "booking" } dd { (s.status) " (" (s.attempts) " attempt(s))" }
                        @if let Some(t) = &s.tracking_number {
                            dt { "tracking" } dd { @if let Some(url) = &s.tracking_url { a #tracking href=(url) rel="noreferrer" target="_blank" { (t) } } @else { (t) } }
                        }
                        @if s.status == warehouse_db::floor::ShipmentStatus::Booked { dt { "label" } dd { a #label href={(here) "/label.pdf"} { "Label (PDF, 4×6)" } } }
                        @if let Some(e) = &s.last_error { dt { "last error" } dd { (e) } }
                    }
                } @else { p.muted { "No shipment yet: it is booked after packing." } }
                p { a href={(here) "/packing-slip.pdf"} { "Packing slip (PDF)" } }
            }
        }
        h2 { "Lines" }
        table #lines {
            tr { th { "SKU" } th { "product" } th.num { "quantity" } th { "reservation" } }
            @for l in &view.lines {
                tr {
                    td { code { (l.sku) } }
                    td { (l.product_name.as_deref().unwrap_or("")) }
                    td.num { (l.quantity) }
                    td { @for r in view.reservation.iter().filter(|r| r.sku == l.sku) { (r.quantity) " " (r.status) } }
                }
            }
        }
        p { "Pick task: "
            @if let Some(t) = &view.pick_task { a href={"/console/floor/" (t.id)} { "#" (t.id) } " (" (t.status) ")" } @else { span.muted { "none" } }
            @if !view.parcels.is_empty() { " · " (view.parcels.len()) " parcel(s), " (format!("{:.0}", view.parcels.iter().map(|p| p.weight_grams).sum::<f64>())) " g" }
        }
        h2 { "Webflow calls" }
        p.help { "Each write to Webflow is recorded before it is made and marked done after, so it happens once. Every call made (reads too) is also in the timeline." }
        table #webflow-writes {
            tr { th { "write" } th { "status" } th.num { "attempts" } th.num { "HTTP" } th { "updated" } }
            @for w in &writes { tr { td { (w.step) } td { (w.status) } td.num { (w.attempts) } td.num { (w.response_status.map(|s| s.to_string()).unwrap_or_default()) } td { (time(&w.updated_at)) } } }
            @for c in &api_calls { tr { td { (describe(&c.detail)) } td { "call" } td.num {} td.num {} td { (time(&c.at)) } } }
        }
        h2 { "Timeline" }
        p.help { "Everything that happened to this order, oldest first: who did it and what." }
        table #timeline {
            tr { th { "when" } th { "who" } th { "what" } th { "details" } }
            @for e in &view.timeline {
                tr { td { (time(&e.at)) } td { (e.actor) } td { (e.kind.as_str().replace('_', " ")) } td { (timeline_text(e.kind.as_str(), &e.detail)) } }
            }
        }
        @if admin {
            h2 { "Actions" }
            (actions(&session, &here, view.state.as_str(), &a))
        }
    };
    Ok(layout(
        &session,
        Nav::Orders,
        &format!("Order {order_id}"),
        flash(&query),
        body,
    ))
}

fn timeline_text(kind: &str, detail: &serde_json::Value) -> String {
    if kind == "state_change" {
        let from = detail["from"].as_str().unwrap_or("(new)");
        let to = detail["to"].as_str().unwrap_or("?");
        match detail["reason"].as_str() {
            Some(reason) => format!("{from} → {to}: {reason}"),
            None => format!("{from} → {to}"),
        }
    } else {
        describe(detail)
    }
}

/// The admin's actions on an order (the API's refund and address correction, retrying the
/// Webflow write-back, and resolving a review).
fn actions(session: &super::Session, here: &str, state: &str, a: &dyn Fn(&str) -> String) -> Markup {
    html! {
        div.grid2 {
            form.stack #refund method="post" action={(here) "/refund"} data-confirm="Refund this order in Webflow? The customer gets their money back." {
                (csrf_field(session))
                strong { "Refund in Webflow" }
                span.help { "Refunds once in Webflow and cancels the order here (stock released)." }
                label { "Reason" select name="reason" { option value="requested" { "the customer asked" } option value="duplicate" { "duplicate order" } option value="fraudulent" { "fraud" } } }
                button.danger type="submit" { "Refund" }
            }
            form.stack #address method="post" action={(here) "/address"} {
                (csrf_field(session))
                strong { "Correct the shipping address" }
                span.help { "Only before packing. Webflow's order comment notes the change." }
                label { "Name" input name="addressee" value=(a("addressee")) required; }
                label { "Street" input name="line1" value=(a("line1")) required; }
                label { "Line 2" input name="line2" value=(a("line2")); }
                label { "City" input name="city" value=(a("city")) required; }
                label { "State / region" input name="state" value=(a("state")); }
                label { "Postal code" input name="postal_code" value=(a("postalCode")) required; }
                label { "Country (2 letters)" input name="country" value=(a("country")) required maxlength="2"; }
                button type="submit" { "Save address" }
            }
            form.stack #retry method="post" action={(here) "/retry-writeback"} {
                (csrf_field(session))
                strong { "Retry the Webflow write-back" }
                span.help { "Replays this order's stuck messages; if none are stuck and the order is shipped, writes the tracking to Webflow again (each write still happens once)." }
                button type="submit" { "Retry write-back" }
            }
            @if state == "needs_review" {
                form.stack #resolve method="post" action={(here) "/resolve"} {
                    (csrf_field(session))
                    strong { "Mark resolved" }
                    span.help { "Takes the order off the Needs review list. Say what you did." }
                    label { "Note" textarea name="note" required rows="3" {} }
                    button type="submit" { "Mark resolved" }
                }
            }
        }
    }
}

/// A signed-in form about one order (its CSRF token checked), extracted before the handler
/// runs: the console's order actions, which all answer by going back to the order's page.
pub struct OrderAction {
    session: super::Session,
    site_id: String,
    order_id: String,
    form: HashMap<String, String>,
}

impl FromRequest for OrderAction {
    type Error = actix_web::Error;
    type Future = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Self, Self::Error>>>>;

    fn from_request(request: &HttpRequest, payload: &mut actix_web::dev::Payload) -> Self::Future {
        let path = web::Path::<(String, String)>::extract(request);
        let form = Form::from_request(request, payload);
        let request = request.clone();
        Box::pin(async move {
            let (site_id, order_id) = path.await?.into_inner();
            let form = form.await?.into_inner();
            let state = request
                .app_data::<web::Data<AppState>>()
                .ok_or_else(|| actix_web::error::ErrorInternalServerError("no application state"))?;
            let session = form_session(state, &request, &form)?;
            Ok(Self {
                session,
                site_id,
                order_id,
                form,
            })
        })
    }
}

impl OrderAction {
    fn operator(&self) -> &crate::auth::Operator {
        &self.session.operator
    }

    fn field(&self, name: &str) -> &str {
        field(&self.form, name)
    }

    /// Only an admin of the order's store acts here (refund and address correction check
    /// this in the API's code paths they call).
    fn require_admin(&self) -> Result<(), ConsoleError> {
        self.operator().require(Role::Admin)?;
        self.operator().check_site(&self.site_id, &self.order_id)?;
        Ok(())
    }

    async fn order<C: warehouse_db::Db>(&self, client: &C) -> Result<warehouse_db::orders::OrderRecord, ConsoleError> {
        let order = warehouse_db::orders::find(client, &self.site_id.as_str().into(), &self.order_id.as_str().into())
            .await?
            .ok_or_else(|| order_not_found(&self.site_id, &self.order_id))?;
        Ok(order)
    }

    /// An audit entry about the order, by the signed-in operator.
    async fn record<C: warehouse_db::Db>(
        &self,
        client: &C,
        kind: warehouse_db::audit::AuditKind,
        detail: serde_json::Value,
    ) -> Result<(), ConsoleError> {
        warehouse_db::audit::record(
            client,
            warehouse_db::audit::AuditEntry::about(&self.site_id, &self.order_id, kind, &self.operator().name, detail),
        )
        .await?;
        Ok(())
    }

    /// Back to the order's page, with `message`.
    fn back(&self, ok: bool, message: &str) -> HttpResponse {
        redirect_with(&order_path(&self.site_id, &self.order_id), ok, message)
    }
}

pub async fn refund(state: web::Data<AppState>, action: OrderAction) -> Page {
    request_refund(
        &state,
        action.operator(),
        &action.site_id,
        &action.order_id,
        action.field("reason"),
    )
    .await?;
    Ok(action.back(true, "Refund requested: Webflow is refunding the order."))
}

pub async fn correct_address(state: web::Data<AppState>, action: OrderAction) -> Page {
    let optional = |name: &str| Some(action.field(name).to_owned()).filter(|v| !v.is_empty());
    let address = CorrectedAddress {
        addressee: action.field("addressee").to_owned(),
        line1: action.field("line1").to_owned(),
        line2: optional("line2"),
        city: action.field("city").to_owned(),
        state: optional("state"),
        postal_code: action.field("postal_code").to_owned(),
        country: action.field("country").to_uppercase(),
    };
    apply_address_correction(&state, action.operator(), &action.site_id, &action.order_id, &address).await?;
    Ok(action.back(true, "Address corrected."))
}

pub async fn retry_writeback(state: web::Data<AppState>, action: OrderAction) -> Page {
    action.require_admin()?;
    let (site_id, order_id) = (&action.site_id, &action.order_id);
    let operator = action.operator();
    let mut client = state.pool.get().await?;
    let order = action.order(&*client).await?;
    // First the stuck messages about this order, from every dead-letter queue.
    let mut replayed = 0;
    {
        let mut guard = state.console.dead_letters().await?;
        if let Some(dlq) = guard.as_ref() {
            let mut failed = None;
            for consumer in state.console.topology.consumers() {
                let queue = state.console.topology.dead_queue(consumer.name);
                match dlq
                    .replay_where(&queue, 1_000, &operator.name, |m| {
                        m.order_id.as_deref() == Some(order_id.as_str())
                            && m.site_id.as_deref().is_none_or(|s| s == site_id.as_str())
                    })
                    .await
                {
                    Ok(done) => replayed += done.len(),
                    Err(error) => {
                        failed = Some(error);
                        break;
                    }
                }
            }
            if let Some(error) = failed {
                *guard = None;
                return Err(error.into());
            }
        }
    }
    let message = if replayed > 0 {
        action
            .record(
                &*client,
                warehouse_db::audit::AuditKind::WritebackRetried,
                serde_json::json!({"replayed": replayed}),
            )
            .await?;
        format!("Replayed {replayed} stuck message(s) for this order.")
    } else if order.state == domain::OrderState::Shipped {
        // Nothing stuck: ask notify-webflow to write the shipment back again. Its ledger makes
        // each Webflow write happen once.
        let tx = client.transaction().await?;
        let envelope = domain::Envelope::new(
            domain::MessageId::new(format!("writeback-retry-{}", uuid::Uuid::new_v4().simple())),
            order.correlation_id.clone().unwrap_or_else(|| order_id.clone()),
            domain::SiteId::new(site_id.clone()),
            domain::Event::OrderShippedV1 {
                order_id: domain::OrderId::new(order_id.clone()),
            },
        );
        action
            .record(
                &*tx,
                warehouse_db::audit::AuditKind::WritebackRetried,
                serde_json::json!({"message_id": envelope.message_id.as_str()}),
            )
            .await?;
        warehouse_db::outbox::enqueue(&tx, &envelope, Some((&operator.name, envelope.message_id.as_str()))).await?;
        tx.commit().await?;
        state.publish(&operator.name, envelope.message_id.as_str()).await;
        "The write-back to Webflow was requested again.".to_owned()
    } else {
        return Ok(action.back(
            false,
            &format!(
                "Nothing to retry: no stuck message about this order, and it is {} (only a shipped order is written back).",
                order.state
            ),
        ));
    };
    Ok(action.back(true, &message))
}

pub async fn resolve(state: web::Data<AppState>, action: OrderAction) -> Page {
    action.require_admin()?;
    let note = action.field("note");
    if note.is_empty() {
        return Err(crate::error::ApiError::invalid("note", "say what was done (a note is required)").into());
    }
    crate::error::printable("note", &note.replace(['\n', '\r'], " "), Some(2_000))?;
    let client = state.pool.get().await?;
    let order = action.order(&*client).await?;
    if order.state != domain::OrderState::NeedsReview {
        return Err(crate::error::ApiError::conflict(
            "wrong_state",
            format!("order is `{}`, not in review", order.state),
        )
        .into());
    }
    action
        .record(
            &*client,
            warehouse_db::audit::AuditKind::ReviewResolved,
            serde_json::json!({"note": note}),
        )
        .await?;
    Ok(redirect_with(
        "/console/review",
        true,
        &format!("Order {} marked resolved.", action.order_id),
    ))
}

// ----- needs review -----

pub async fn review(state: web::Data<AppState>, request: HttpRequest, query: Query) -> Page {
    let session = session(&state, &request)?;
    let client = state.pool.get().await?;
    let orders = db::needs_review(&*client, session.operator.site_filter()).await?;
    let body = html! {
        h1 { "Needs review" }
        p.help { "Orders the pipeline cannot finish by itself: refunded after shipping, an address or service the carrier refused, fulfilled by hand in Webflow… Open one to see why and act (refund, correct the address, retry the write-back), then mark it resolved with a note. Oldest first." }
        @if orders.is_empty() { p #review-empty { "Nothing needs a person right now." } }
        @else {
            table #review {
                tr { th { "order" } th { "store" } th { "why" } th { "waiting" } th { "customer" } }
                @for o in &orders {
                    tr {
                        td { a.order-link href=(order_path(o.site_id.as_str(), o.order_id.as_str())) { code { (o.order_id) } } }
                        td { code { (o.site_id) } }
                        td { (o.state_reason.as_deref().unwrap_or("(no reason recorded)")) }
                        td { (age(&o.updated_at)) br; (time(&o.updated_at)) }
                        td { (o.customer_email.as_deref().unwrap_or("")) }
                    }
                }
            }
        }
    };
    Ok(layout(&session, Nav::Review, "Needs review", flash(&query), body))
}

// ----- floor -----

pub async fn floor(state: web::Data<AppState>, request: HttpRequest, query: Query) -> Page {
    let session = session(&state, &request)?;
    let client = state.pool.get().await?;
    let sites = session.operator.site_filter();
    let mut tasks = floor::pick_tasks(&*client, Some(PickTaskStatus::Open), sites, 200).await?;
    tasks.extend(floor::pick_tasks(&*client, Some(PickTaskStatus::Picked), sites, 200).await?);
    tasks.sort_by_key(|t| (t.created_at, t.id));
    let body = html! {
        h1 { "Floor" }
        p.help { "Open pick tasks, oldest first. Open one to see its pick list, then confirm each item at the pack station by scanning or typing its SKU." }
        @if tasks.is_empty() { p #floor-empty { "No open pick tasks." } }
        @else {
            table #pick-tasks {
                tr { th { "task" } th { "order" } th { "status" } th { "items" } th { "waiting" } }
                @for t in &tasks {
                    tr {
                        td { a.button.quiet.task-link href={"/console/floor/" (t.id)} { "#" (t.id) } }
                        td { code { (t.order_id) } br; span.muted { (t.site_id) } }
                        td { (t.status) }
                        td { @for l in &t.lines { (l.quantity) " × " code { (l.sku) } br; } }
                        td { (age(&t.created_at)) }
                    }
                }
            }
        }
    };
    Ok(layout(&session, Nav::Floor, "Floor", flash(&query), body))
}

/// Scans so far: SKUs separated by newlines (one per unit).
fn scans(form: &HashMap<String, String>) -> Vec<String> {
    form.get("confirmed")
        .map(|c| {
            c.lines()
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

async fn load_task(state: &AppState, session: &super::Session, task_id: i64) -> Result<floor::PickTask, ConsoleError> {
    let client = state.pool.get().await?;
    let task = floor::pick_task(&*client, task_id)
        .await?
        .filter(|t| session.operator.sees_site(t.site_id.as_str()))
        .ok_or_else(|| crate::error::ApiError::not_found(format!("no pick task {task_id}")))?;
    Ok(task)
}

fn station_markup(
    session: &super::Session,
    task: &floor::PickTask,
    confirmed: &[String],
    names: &HashMap<Sku, String>,
) -> Markup {
    let done = |sku: &Sku| confirmed.iter().filter(|s| s.as_str() == sku.as_str()).count() as i64;
    let complete = task.lines.iter().all(|l| done(&l.sku) >= l.quantity);
    let can_act = session.operator.role >= Role::Floor;
    let base = format!("/console/floor/{}", task.id);
    html! {
        h1 { "Pick task #" (task.id) }
        p { "Order " a href=(order_path(task.site_id.as_str(), task.order_id.as_str())) { code { (task.order_id) } } " · store " code { (task.site_id) } " · status " strong #task-status { (task.status) } }
        h2 { "Pick list" }
        table #pick-list {
            tr { th { "SKU" } th { "product" } th.num { "quantity" } th.num { "confirmed" } }
            @for l in &task.lines {
                tr class=[(done(&l.sku) >= l.quantity).then_some("line-done")] {
                    td { code { (l.sku) } }
                    td { (names.get(&l.sku).map(String::as_str).unwrap_or("")) }
                    td.num { (l.quantity) }
                    td.num { (done(&l.sku)) " / " (l.quantity) }
                }
            }
        }
        @if can_act && task.status == PickTaskStatus::Open {
            form.inline method="post" action={(base) "/picked"} { (csrf_field(session)) button.quiet #mark-picked type="submit" { "Everything picked" } }
        }
        @if can_act && matches!(task.status.as_str(), "open" | "picked") {
            h2 { "Pack station" }
            p.help { "Scan or type each item's SKU, one unit at a time. A SKU that is not on this order is refused." }
            form.inline.scan #scan method="post" action={(base) "/scan"} {
                (csrf_field(session))
                input type="hidden" name="confirmed" value=(confirmed.join("\n"));
                input #sku name="sku" placeholder="scan or type a SKU" autocomplete="off" required;
                button #confirm type="submit" { "Confirm" }
            }
            form.inline #pack method="post" action={(base) "/pack"} {
                (csrf_field(session))
                input type="hidden" name="confirmed" value=(confirmed.join("\n"));
                button #pack-button type="submit" disabled[!complete] { "Pack and print" }
                @if !complete { span.muted { "Confirm every item first." } }
            }
        }
        @if task.status == PickTaskStatus::Packed {
            h2 { "Packed" }
            p { a.button #label-link href={(order_path(task.site_id.as_str(), task.order_id.as_str())) "/label.pdf"} { "Label (PDF)" } " "
                a.button.quiet #slip-link href={(order_path(task.site_id.as_str(), task.order_id.as_str())) "/packing-slip.pdf"} { "Packing slip (PDF)" } }
            p.help { "The label is ready once the carrier booked it (usually a second or two); the packing slip is ready now." }
        }
    }
}

async fn line_names(state: &AppState, task: &floor::PickTask) -> Result<HashMap<Sku, String>, ConsoleError> {
    let client = state.pool.get().await?;
    let view = warehouse_db::order_view::load(&*client, &task.site_id, &task.order_id).await?;
    Ok(view
        .map(|v| {
            v.lines
                .into_iter()
                .filter_map(|l| Some((l.sku, l.product_name?)))
                .collect()
        })
        .unwrap_or_default())
}

pub async fn station(state: web::Data<AppState>, request: HttpRequest, path: web::Path<i64>, query: Query) -> Page {
    let session = session(&state, &request)?;
    let task = load_task(&state, &session, *path).await?;
    let names = line_names(&state, &task).await?;
    let body = station_markup(&session, &task, &[], &names);
    Ok(layout(
        &session,
        Nav::Floor,
        &format!("Pick task {}", task.id),
        flash(&query),
        body,
    ))
}

pub async fn picked(state: web::Data<AppState>, request: HttpRequest, path: web::Path<i64>, form: Form) -> Page {
    let session = form_session(&state, &request, &form)?;
    let task = load_task(&state, &session, *path).await?;
    mark_task_picked(&state, &session.operator, task.id).await?;
    Ok(redirect_with(
        &format!("/console/floor/{}", task.id),
        true,
        "Marked picked.",
    ))
}

pub async fn scan(state: web::Data<AppState>, request: HttpRequest, path: web::Path<i64>, form: Form) -> Page {
    let session = form_session(&state, &request, &form)?;
    session.operator.require(Role::Floor)?;
    let task = load_task(&state, &session, *path).await?;
    let mut confirmed = scans(&form);
    let sku = field(&form, "sku");
    let flash = match task.lines.iter().find(|l| l.sku.as_str() == sku) {
        None => (false, format!("Wrong item: {sku} is not on this order. Put it back.")),
        Some(line) if confirmed.iter().filter(|s| *s == sku).count() as i64 >= line.quantity => {
            (false, format!("Already confirmed all {} of {sku}.", line.quantity))
        }
        Some(_) => {
            confirmed.push(sku.to_owned());
            (true, format!("Confirmed {sku}."))
        }
    };
    let names = line_names(&state, &task).await?;
    let mut response = layout(
        &session,
        Nav::Floor,
        &format!("Pick task {}", task.id),
        Some(flash.clone()),
        station_markup(&session, &task, &confirmed, &names),
    );
    if !flash.0 {
        *response.status_mut() = actix_web::http::StatusCode::UNPROCESSABLE_ENTITY;
    }
    Ok(response)
}

pub async fn pack(state: web::Data<AppState>, request: HttpRequest, path: web::Path<i64>, form: Form) -> Page {
    let session = form_session(&state, &request, &form)?;
    session.operator.require(Role::Floor)?;
    let task = load_task(&state, &session, *path).await?;
    let confirmed = scans(&form);
    let complete = task
        .lines
        .iter()
        .all(|l| confirmed.iter().filter(|s| s.as_str() == l.sku.as_str()).count() as i64 == l.quantity)
        && confirmed.iter().all(|s| task.lines.iter().any(|l| l.sku.as_str() == s));
    if !complete {
        return Err(crate::error::ApiError::invalid(
            "confirmed",
            "confirm every item of the pick list (and nothing else) before packing",
        )
        .into());
    }
    if task.status == PickTaskStatus::Open {
        mark_task_picked(&state, &session.operator, task.id).await?;
    }
    let lines = {
        let client = state.pool.get().await?;
        let order = warehouse_db::orders::find(&*client, &task.site_id, &task.order_id)
            .await?
            .ok_or_else(|| order_not_found(task.site_id.as_str(), task.order_id.as_str()))?;
        warehouse_db::orders::lines(&*client, order.id).await?
    };
    pack_parcels(
        &state,
        &session.operator,
        task.site_id.as_str(),
        task.order_id.as_str(),
        &[parcel_for(&lines)],
    )
    .await?;
    Ok(redirect_with(
        &format!("/console/floor/{}", task.id),
        true,
        "Packed. Print the label and the packing slip.",
    ))
}

// ----- stuck messages -----

pub async fn stuck(state: web::Data<AppState>, request: HttpRequest, query: Query) -> Page {
    let session = session(&state, &request)?;
    if session.operator.site_filter().is_some() {
        let body = html! {
            h1 { "Stuck messages" }
            p { "Stuck messages are not tied to one store, so only tokens for every store can see them. Ask an administrator." }
        };
        return Ok(layout(&session, Nav::Stuck, "Stuck messages", flash(&query), body));
    }
    let mut queues = Vec::new();
    {
        let mut guard = state.console.dead_letters().await?;
        if let Some(dlq) = guard.as_ref() {
            let listed = dlq.list().await;
            match listed {
                Ok(listed) => {
                    for queue in listed {
                        let messages = if queue.messages > 0 {
                            dlq.show(&queue.queue, 50).await
                        } else {
                            Ok(Vec::new())
                        };
                        match messages {
                            Ok(messages) => queues.push((queue, messages)),
                            Err(error) => {
                                *guard = None;
                                return Err(error.into());
                            }
                        }
                    }
                }
                Err(error) => {
                    *guard = None;
                    return Err(error.into());
                }
            }
        }
    }
    let admin = session.operator.role >= Role::Admin;
    let body = html! {
        h1 { "Stuck messages" }
        p.help { "A message lands in a dead-letter queue when its worker failed for good or ran out of retries. Fix the cause (see the error), then replay it: it goes back to its worker with its original id, so nothing happens twice. Purging deletes messages for good." }
        @for (queue, messages) in &queues {
            div.card.dead-queue data-queue=(queue.queue) {
                h3 { code { (queue.queue) } " · " (queue.consumer) " · " strong { (queue.messages) } " message(s)" }
                @if !messages.is_empty() {
                    table {
                        tr { th { "order" } th { "event" } th { "why" } th { "error" } th.num { "attempts" } th { "when" } @if admin { th {} } }
                        @for m in messages {
                            tr {
                                td { @if let (Some(o), Some(s)) = (&m.order_id, &m.site_id) { a href=(order_path(s, o)) { code { (o) } } } @else { (m.order_id.as_deref().unwrap_or("")) } }
                                td { code { (m.routing_key.as_deref().unwrap_or("")) } }
                                td { (m.reason.as_deref().unwrap_or("")) }
                                td { (m.error.as_deref().unwrap_or("")) }
                                td.num { (m.attempts.map(|a| a.to_string()).unwrap_or_default()) }
                                td { @if let Some(at) = m.dead_at.as_deref().and_then(|d| chrono::DateTime::parse_from_rfc3339(d).ok()) { (time(&at.with_timezone(&chrono::Utc))) } }
                                @if admin {
                                    td { form.inline method="post" action="/console/stuck/replay" {
                                        (csrf_field(&session))
                                        input type="hidden" name="queue" value=(queue.queue);
                                        input type="hidden" name="message_id" value=(m.message_id.as_deref().unwrap_or(""));
                                        button.replay-one type="submit" { "Replay" }
                                    } }
                                }
                            }
                        }
                    }
                    @if admin {
                        p {
                            form.inline method="post" action="/console/stuck/replay" {
                                (csrf_field(&session))
                                input type="hidden" name="queue" value=(queue.queue);
                                input type="hidden" name="all" value="1";
                                button.replay-all type="submit" { "Replay all" }
                            }
                            " "
                            form.inline method="post" action="/console/stuck/purge" data-confirm={"Delete every message of " (queue.queue) " for good?"} {
                                (csrf_field(&session))
                                input type="hidden" name="queue" value=(queue.queue);
                                label { "Type the queue name to purge" input name="confirm" placeholder=(queue.queue) required; }
                                button.danger type="submit" { "Purge" }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(layout(&session, Nav::Stuck, "Stuck messages", flash(&query), body))
}

fn dead_letter_admin(session: &super::Session) -> Result<(), ConsoleError> {
    session.operator.require(Role::Admin)?;
    if session.operator.site_filter().is_some() {
        return Err(crate::error::ApiError::forbidden("dead letters need a token on every store").into());
    }
    Ok(())
}

pub async fn replay(state: web::Data<AppState>, request: HttpRequest, form: Form) -> Page {
    let session = form_session(&state, &request, &form)?;
    dead_letter_admin(&session)?;
    let queue = field(&form, "queue").to_owned();
    let message_id = field(&form, "message_id").to_owned();
    let all = field(&form, "all") == "1";
    if !all && message_id.is_empty() {
        return Err(crate::error::ApiError::invalid("message_id", "say which message to replay").into());
    }
    let mut guard = state.console.dead_letters().await?;
    let Some(dlq) = guard.as_ref() else {
        return Err(ConsoleError::Broker("not connected".into()));
    };
    let result = dlq
        .replay_where(&queue, 1_000, &session.operator.name, |m| {
            all || m.message_id.as_deref() == Some(message_id.as_str())
        })
        .await;
    match result {
        Ok(replayed) => {
            tracing::info!(operator = %session.operator.name, queue, count = replayed.len(), "dead letters replayed from the console");
            Ok(redirect_with(
                "/console/stuck",
                true,
                &format!("Replayed {} message(s) from {queue}.", replayed.len()),
            ))
        }
        Err(dead_letters::DlqError::UnknownQueue(q)) => {
            Err(crate::error::ApiError::not_found(format!("no dead-letter queue {q}")).into())
        }
        Err(error) => {
            *guard = None;
            Err(error.into())
        }
    }
}

pub async fn purge(state: web::Data<AppState>, request: HttpRequest, form: Form) -> Page {
    let session = form_session(&state, &request, &form)?;
    dead_letter_admin(&session)?;
    let queue = field(&form, "queue").to_owned();
    if field(&form, "confirm") != queue {
        return Ok(redirect_with(
            "/console/stuck",
            false,
            "Not purged: type the queue's name to confirm.",
        ));
    }
    let mut guard = state.console.dead_letters().await?;
    let Some(dlq) = guard.as_ref() else {
        return Err(ConsoleError::Broker("not connected".into()));
    };
    match dlq.purge(&queue).await {
        Ok(purged) => {
            tracing::warn!(operator = %session.operator.name, queue, purged, "dead letters purged from the console");
            Ok(redirect_with(
                "/console/stuck",
                true,
                &format!("Purged {purged} message(s) from {queue}."),
            ))
        }
        Err(dead_letters::DlqError::UnknownQueue(q)) => {
            Err(crate::error::ApiError::not_found(format!("no dead-letter queue {q}")).into())
        }
        Err(error) => {
            *guard = None;
            Err(error.into())
        }
    }
}

// ----- inventory -----

pub async fn inventory(state: web::Data<AppState>, request: HttpRequest, query: Query) -> Page {
    let session = session(&state, &request)?;
    let client = state.pool.get().await?;
    let rows = db::inventory(&*client, session.operator.site_filter()).await?;
    let synced = warehouse_db::inventory_sync::status(
        &*client,
        session.operator.site_filter(),
        warehouse_db::inventory_sync::STATUS_LIMIT,
    )
    .await?;
    let floor = session.operator.role >= Role::Floor;
    let body = html! {
        h1 { "Inventory" }
        p.help { "On hand: units on the shelves. Reserved: set aside for orders not shipped yet. Available: on hand minus reserved. Waiting: backordered orders that want this SKU; receiving stock serves them oldest first. Webflow: per store that sold the SKU, the level last pushed to its storefront and when, and whether Webflow's last word agrees with the warehouse (stores with inventory_sync on are kept at available less their safety buffer)." }
        table #inventory {
            tr { th { "SKU" } th.num { "on hand" } th.num { "reserved" } th.num { "available" } th.num { "waiting orders (units)" } th { "Webflow" } @if floor { th { "receive stock" } } }
            @for r in &rows {
                tr data-sku=(r.sku) {
                    td { code { (r.sku) } }
                    td.num { (r.on_hand) }
                    td.num { (r.reserved) }
                    td.num { strong { (r.available) } }
                    td.num { @if r.backordered_orders > 0 { (r.backordered_orders) " (" (r.backordered_units) ")" } @else { "0" } }
                    td.webflow-stock {
                        @for s in synced.iter().filter(|s| s.sku == r.sku) {
                            div data-site=(s.site_id) {
                                code { (s.site_id) } ": "
                                @if let (Some(level), Some(at)) = (s.last_pushed_level, s.last_pushed_at) {
                                    "pushed " strong { (level) } " " (time(&at))
                                } @else {
                                    "never pushed"
                                }
                                @if let Some(level) = s.webflow_level {
                                    @if s.agrees {
                                        " · Webflow " (level) " ✓"
                                    } @else {
                                        " · Webflow " (level) " ✗ (should be " (s.desired_level) ")"
                                    }
                                }
                                @if s.pending { " · push due" }
                                @if let Some(error) = &s.last_error { " · " span.error { (error) } }
                            }
                        }
                    }
                    @if floor {
                        td { form.inline method="post" action="/console/inventory/receive" {
                            (csrf_field(&session))
                            input type="hidden" name="sku" value=(r.sku);
                            input type="number" name="quantity" min="1" step="1" placeholder="units" required style="width:7rem";
                            button type="submit" { "Receive" }
                        } }
                    }
                }
            }
        }
    };
    Ok(layout(&session, Nav::Inventory, "Inventory", flash(&query), body))
}

pub async fn receive(state: web::Data<AppState>, request: HttpRequest, form: Form) -> Page {
    let session = form_session(&state, &request, &form)?;
    let sku = field(&form, "sku").to_owned();
    let quantity: i64 = field(&form, "quantity")
        .parse()
        .map_err(|_| crate::error::ApiError::invalid("quantity", "a whole number of units, at least 1"))?;
    let level = receive_stock(&state, &session.operator, &sku, quantity).await?;
    Ok(redirect_with(
        "/console/inventory",
        true,
        &format!(
            "Received {quantity} of {sku}: {} on hand, {} available.",
            level.on_hand, level.available
        ),
    ))
}
