//! The overview: orders per store and state, the oldest unshipped, queue depths, Webflow
//! rate budgets, the outbox backlog.

use crate::console::render::{Nav, age, layout_with, order_path, seg, state_badge, store, time};
use crate::console::{ConsoleState, Page, session};
use crate::state::AppState;
use actix_web::{HttpRequest, web};
use domain::{OrderState, SiteId};
use maud::html;
use warehouse_db::console as db;

pub async fn overview(state: web::Data<AppState>, console: web::Data<ConsoleState>, request: HttpRequest) -> Page {
    let session = session(&state, &console, &request).await?;
    let sites = session.operator.site_filter();
    let client = state.pool.get().await?;
    let counts = db::counts_by_state(&*client, sites).await?;
    let oldest = db::oldest_unshipped(&*client, sites).await?;
    let budgets: Vec<db::BudgetRow> = db::rate_budgets(&*client)
        .await?
        .into_iter()
        // A token shared by a store in scope and one outside it is still shown: its queue holds
        // the operator's store's calls too.
        .filter(|b| sites.is_none_or(|sites| b.site_ids.iter().any(|s| sites.contains(s))))
        .collect();
    let outbox = db::outbox_backlog(&*client).await?;
    let names = warehouse_db::store_names::load(&*client).await?;
    drop(client);
    let queues = queue_depths(&console).await;

    let mut stores: Vec<String> = counts.iter().map(|(s, _, _)| s.to_string()).collect();
    stores.dedup();
    let body = html! {
        h1 { "Overview" }
        p.help { "Refreshes every 10 seconds. Times are in your time zone." }
        @if stores.is_empty() { p { "No orders yet." } }
        div.cards {
            @for store_id in &stores {
                @let of_store: Vec<&(SiteId, OrderState, i64)> = counts.iter().filter(|(s, _, _)| s.as_str() == store_id).collect();
                @let review = of_store.iter().find(|(_, st, _)| *st == OrderState::NeedsReview).map_or(0, |(_, _, n)| *n);
                div.card.store {
                    h3 { "Store " (store(&names, store_id)) }
                    table {
                        @for (_, st, n) in &of_store {
                            tr { td { a href={"/console/orders?site=" (seg(store_id)) "&state=" (st)} { (state_badge(st.as_str())) } } td.num { (n) } }
                        }
                    }
                    p { "Needs review: " a href="/console/review" { strong.needs-review { (review) } } }
                    @if let Some((_, order_id, st, at)) = oldest.iter().find(|(s, _, _, _)| s.as_str() == store_id) {
                        p { "Oldest not shipped: " a href=(order_path(store_id, order_id.as_str())) { code { (order_id) } } " (" (st.as_str().replace('_', " ")) "), waiting " strong { (age(at)) } " since " (time(at)) }
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
            tr { th { "stores" } th { "budget" } th.num { "limit / min" } th.num { "queued" } th.num { "calls" } th.num { "throttled (429)" } th { "paused until" } }
            @for b in &budgets {
                tr {
                    @let (seen, others): (Vec<&String>, Vec<&String>) = b.site_ids.iter().partition(|s| session.operator.sees_site(s));
                    td {
                        @for (i, site_id) in seen.iter().enumerate() {
                            @if i > 0 { ", " }
                            (store(&names, site_id))
                        }
                        // A store outside the operator's scope sharing the token: counted, not named.
                        @if !others.is_empty() { span.muted { " + " (others.len()) " other store(s)" } }
                    }
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
async fn queue_depths(console: &ConsoleState) -> Result<Vec<(String, u32, u32)>, String> {
    let mut guard = console.dead_letters().await.map_err(|e| e.to_string())?;
    let Some(dlq) = guard.as_ref() else {
        return Err("not connected".into());
    };
    let mut rows = Vec::new();
    let mut failed = None;
    for consumer in console.topology.consumers() {
        let work = dlq.count(&console.topology.work_queue(consumer.name)).await;
        let dead = dlq.count(&console.topology.dead_queue(consumer.name)).await;
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
