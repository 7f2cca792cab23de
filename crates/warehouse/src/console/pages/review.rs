//! The orders that need a person.

use super::Query;
use crate::console::render::{Nav, age, flash, layout, order_path, store, time};
use crate::console::{ConsoleState, Page, session};
use crate::state::AppState;
use actix_web::{HttpRequest, web};
use maud::html;
use warehouse_db::console as db;

pub async fn review(
    state: web::Data<AppState>,
    console: web::Data<ConsoleState>,
    request: HttpRequest,
    query: Query,
) -> Page {
    let session = session(&state, &console, &request).await?;
    let client = state.pool.get().await?;
    let orders = db::needs_review(&*client, session.operator.site_filter()).await?;
    let names = warehouse_db::store_names::load(&*client).await?;
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
                        td { (store(&names, o.site_id.as_str())) }
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
