//! Stock per merchant and SKU, its Webflow sync, and receiving stock. The page shows the
//! merchants the operator's token may see (a filter narrows it to one).

use super::{Form, Query, field};
use crate::auth::Role;
use crate::console::render::{Nav, csrf_field, flash, layout, redirect_with, time};
use crate::console::{ConsoleState, Page, form_session, session};
use crate::state::AppState;
use actix_web::{HttpRequest, web};
use maud::html;
use warehouse_db::console as db;

pub async fn inventory(
    state: web::Data<AppState>,
    console: web::Data<ConsoleState>,
    request: HttpRequest,
    query: Query,
) -> Page {
    let session = session(&state, &console, &request).await?;
    let client = state.pool.get().await?;
    let merchants = session.operator.stock_merchants(&*client).await?;
    let chosen = query.get("merchant").filter(|m| !m.is_empty());
    let ids: Vec<i64> = merchants
        .iter()
        .filter(|m| chosen.is_none_or(|name| &m.name == name))
        .map(|m| m.id)
        .collect();
    let rows = db::inventory(&*client, Some(&ids), session.operator.site_filter()).await?;
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
        @if merchants.len() > 1 {
            form.inline #merchant-filter method="get" action="/console/inventory" {
                label { "Merchant " select name="merchant" {
                    option value="" selected[chosen.is_none()] { "every merchant" }
                    @for m in &merchants {
                        option value=(m.name) selected[chosen == Some(&m.name)] { (m.name) }
                    }
                } }
                " " button type="submit" { "Show" }
            }
        }
        table #inventory {
            tr { th { "merchant" } th { "SKU" } th.num { "on hand" } th.num { "reserved" } th.num { "available" } th.num { "waiting orders (units)" } th { "Webflow" } @if floor { th { "receive stock" } } }
            @for r in &rows {
                tr data-sku=(r.sku) data-merchant=(r.merchant) {
                    td.merchant { (r.merchant) }
                    td { code { (r.sku) } }
                    td.num { (r.on_hand) }
                    td.num { (r.reserved) }
                    td.num { strong { (r.available) } }
                    td.num { @if r.backordered_orders > 0 { (r.backordered_orders) " (" (r.backordered_units) ")" } @else { "0" } }
                    td.webflow-stock {
                        @for s in synced.iter().filter(|s| s.sku == r.sku && s.merchant_id == r.merchant_id) {
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
                            input type="hidden" name="merchant" value=(r.merchant);
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

pub async fn receive(
    state: web::Data<AppState>,
    console: web::Data<ConsoleState>,
    request: HttpRequest,
    form: Form,
) -> Page {
    let session = form_session(&state, &console, &request, &form).await?;
    let sku = field(&form, "sku").to_owned();
    let merchant = field(&form, "merchant").to_owned();
    let quantity: i64 = field(&form, "quantity")
        .parse()
        .map_err(|_| crate::error::ApiError::invalid("quantity", "a whole number of units, at least 1"))?;
    // A form without the field (an older page) leaves the merchant to the token's scope.
    let named = (!merchant.is_empty()).then_some(merchant.as_str());
    let level = crate::commands::inventory::receive_stock(&state, &session.operator, named, &sku, quantity).await?;
    Ok(redirect_with(
        "/console/inventory",
        true,
        &format!(
            "Received {quantity} of {sku} ({}): {} on hand, {} available.",
            level.merchant, level.on_hand, level.available
        ),
    ))
}
