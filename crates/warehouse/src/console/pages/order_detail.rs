//! One order: its state, shipment, lines, Webflow calls and timeline, and the admin's
//! actions on it (refund, address correction, write-back retry, resolving a review).

use super::{Form, Query, field};
use crate::auth::{Role, order_not_found};
use crate::commands::orders::{self, CorrectedAddress, WritebackRetry};
use crate::console::render::{
    Nav, csrf_field, describe, explain_state, flash, layout, order_path, redirect_with, state_badge, store, time,
};
use crate::console::session::Session;
use crate::console::{ConsoleState, Page, form_session, session};
use crate::state::AppState;
use actix_web::{FromRequest, HttpRequest, HttpResponse, web};
use maud::{Markup, html};
use std::collections::HashMap;
use warehouse_db::console as db;

pub async fn order(
    state: web::Data<AppState>,
    console: web::Data<ConsoleState>,
    request: HttpRequest,
    path: web::Path<(String, String)>,
    query: Query,
) -> Page {
    let session = session(&state, &console, &request).await?;
    let (site_id, order_id) = path.into_inner();
    session.operator.require(Role::Read)?;
    session.operator.check_site(&site_id, &order_id)?;
    let client = state.pool.get().await?;
    let view = warehouse_db::order_view::load(&*client, &site_id.as_str().into(), &order_id.as_str().into())
        .await?
        .ok_or_else(|| order_not_found(&site_id, &order_id))?;
    let summary = db::order_summary(&*client, &view.site_id, &view.order_id).await?;
    let writes = db::webflow_writes(&*client, &view.site_id, &view.order_id).await?;
    let names = warehouse_db::store_names::load(&*client).await?;
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
                    dt { "store" } dd #order-store { (store(&names, &site_id)) }
                    @if let Some(name) = names.get(&site_id) { dt { "merchant" } dd #order-merchant { (name.merchant) } }
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
fn actions(session: &Session, here: &str, state: &str, a: &dyn Fn(&str) -> String) -> Markup {
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
    session: Session,
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
            let no_state = || actix_web::error::ErrorInternalServerError("no application state");
            let state = request.app_data::<web::Data<AppState>>().ok_or_else(no_state)?;
            let console = request.app_data::<web::Data<ConsoleState>>().ok_or_else(no_state)?;
            let session = form_session(state, console, &request, &form).await?;
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

    /// Back to the order's page, with `message`.
    fn back(&self, ok: bool, message: &str) -> HttpResponse {
        redirect_with(&order_path(&self.site_id, &self.order_id), ok, message)
    }
}

pub async fn refund(state: web::Data<AppState>, action: OrderAction) -> Page {
    orders::request_refund(
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
    orders::correct_address(&state, action.operator(), &action.site_id, &action.order_id, &address).await?;
    Ok(action.back(true, "Address corrected."))
}

/// Replays the order's stuck messages; with none, asks for the write-back of a shipped order
/// again.
pub async fn retry_writeback(
    state: web::Data<AppState>,
    console: web::Data<ConsoleState>,
    action: OrderAction,
) -> Page {
    let (site_id, order_id) = (&action.site_id, &action.order_id);
    let operator = action.operator();
    operator.require(Role::Admin)?;
    operator.check_site(site_id, order_id)?;
    // An unknown order answers 404 before anything is replayed.
    {
        let client = state.pool.get().await?;
        warehouse_db::orders::find(&*client, &site_id.as_str().into(), &order_id.as_str().into())
            .await?
            .ok_or_else(|| order_not_found(site_id, order_id))?;
    }
    // First the stuck messages about this order, from every dead-letter queue.
    let mut replayed = 0;
    {
        let mut guard = console.dead_letters().await?;
        if let Some(dlq) = guard.as_ref() {
            let mut failed = None;
            for consumer in console.topology.consumers() {
                let queue = console.topology.dead_queue(consumer.name);
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
    if replayed > 0 {
        orders::note_writeback_replayed(&state, operator, site_id, order_id, replayed).await?;
        return Ok(action.back(true, &format!("Replayed {replayed} stuck message(s) for this order.")));
    }
    // Nothing stuck: ask notify-webflow to write the shipment back again. Its ledger makes
    // each Webflow write happen once.
    match orders::retry_writeback(&state, operator, site_id, order_id).await? {
        WritebackRetry::Requested => Ok(action.back(true, "The write-back to Webflow was requested again.")),
        WritebackRetry::NotShipped(order_state) => Ok(action.back(
            false,
            &format!(
                "Nothing to retry: no stuck message about this order, and it is {order_state} (only a shipped order is written back)."
            ),
        )),
    }
}

pub async fn resolve(state: web::Data<AppState>, action: OrderAction) -> Page {
    orders::resolve_review(
        &state,
        action.operator(),
        &action.site_id,
        &action.order_id,
        action.field("note"),
    )
    .await?;
    Ok(redirect_with(
        "/console/review",
        true,
        &format!("Order {} marked resolved.", action.order_id),
    ))
}
