//! The order list and search.

use super::Query;
use crate::console::render::{Nav, explain_state, flash, layout, order_path, state_badge, store, time};
use crate::console::{ConsoleState, Page, session};
use crate::state::AppState;
use actix_web::{HttpRequest, web};
use domain::{OrderState, SiteId};
use maud::{Markup, html};
use warehouse_db::console as db;
use warehouse_db::store_names::StoreNames;

fn orders_table(orders: &[db::OrderSummary], names: &StoreNames) -> Markup {
    html! {
        table.orders {
            tr { th { "order" } th { "store" } th { "state" } th { "customer" } th { "placed" } th { "last change" } }
            @for o in orders {
                tr {
                    td { a.order-link href=(order_path(o.site_id.as_str(), o.order_id.as_str())) { code { (o.order_id) } } }
                    td { (store(names, o.site_id.as_str())) }
                    td { (state_badge(o.state.as_str())) @if let Some(reason) = &o.state_reason { div.muted { (reason) } } }
                    td { (o.customer_name.as_deref().unwrap_or("")) br; span.muted { (o.customer_email.as_deref().unwrap_or("")) } }
                    td { (time(&o.created_at)) }
                    td { (time(&o.updated_at)) }
                }
            }
        }
    }
}

pub async fn orders(
    state: web::Data<AppState>,
    console: web::Data<ConsoleState>,
    request: HttpRequest,
    query: Query,
) -> Page {
    let session = session(&state, &console, &request).await?;
    let sites = session.operator.site_filter();
    let site = query.get("site").map(|s| s.trim()).filter(|s| !s.is_empty());
    let text = query.get("q").map(|s| s.trim()).filter(|s| !s.is_empty());
    let state_filter = query.get("state").map(|s| s.trim()).filter(|s| !s.is_empty());
    let site_id_filter = site.map(SiteId::from);
    let client = state.pool.get().await?;
    let names = warehouse_db::store_names::load(&*client).await?;
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
                @for s in &stores { option value=(s) selected[site == Some(s.as_str())] { (names.store_or_site(s)) } }
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
        (orders_table(&found, &names))
        h2 { "What the states mean" }
        dl.kv {
            @for st in domain::lifecycle::ALL_STATES { dt { (state_badge(st.as_str())) } dd { (explain_state(st.as_str())) } }
        }
    };
    Ok(layout(&session, Nav::Orders, "Orders", flash(&query), body))
}
