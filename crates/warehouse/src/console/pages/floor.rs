//! The floor: open pick tasks and the pack station.

use super::{Form, Query, field};
use crate::auth::Role;
use crate::commands::packing;
use crate::console::render::{Nav, age, csrf_field, flash, layout, order_path, redirect_with, store};
use crate::console::session::Session;
use crate::console::{ConsoleError, ConsoleState, Page, form_session, session};
use crate::state::AppState;
use actix_web::{HttpRequest, web};
use domain::Sku;
use maud::{Markup, html};
use std::collections::HashMap;
use warehouse_db::floor::{self, PickTaskStatus};
use warehouse_db::store_names::StoreNames;

pub async fn floor(
    state: web::Data<AppState>,
    console: web::Data<ConsoleState>,
    request: HttpRequest,
    query: Query,
) -> Page {
    let session = session(&state, &console, &request).await?;
    let client = state.pool.get().await?;
    let sites = session.operator.site_filter();
    let mut tasks = floor::pick_tasks(&*client, Some(PickTaskStatus::Open), sites, 200).await?;
    tasks.extend(floor::pick_tasks(&*client, Some(PickTaskStatus::Picked), sites, 200).await?);
    tasks.sort_by_key(|t| (t.created_at, t.id));
    let stores = warehouse_db::store_names::load(&*client).await?;
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
                        td { code { (t.order_id) } br; span.muted { (store(&stores, t.site_id.as_str())) } }
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

async fn load_task(state: &AppState, session: &Session, task_id: i64) -> Result<floor::PickTask, ConsoleError> {
    let client = state.pool.get().await?;
    let task = floor::pick_task(&*client, task_id)
        .await?
        .filter(|t| session.operator.sees_site(t.site_id.as_str()))
        .ok_or_else(|| crate::error::ApiError::not_found(format!("no pick task {task_id}")))?;
    Ok(task)
}

fn station_markup(
    session: &Session,
    task: &floor::PickTask,
    confirmed: &[String],
    names: &HashMap<Sku, String>,
    stores: &StoreNames,
) -> Markup {
    let done = |sku: &Sku| confirmed.iter().filter(|s| s.as_str() == sku.as_str()).count() as i64;
    let complete = task.lines.iter().all(|l| done(&l.sku) >= l.quantity);
    let can_act = session.operator.role >= Role::Floor;
    let base = format!("/console/floor/{}", task.id);
    html! {
        h1 { "Pick task #" (task.id) }
        p { "Order " a href=(order_path(task.site_id.as_str(), task.order_id.as_str())) { code { (task.order_id) } }  " · store " (store(stores, task.site_id.as_str())) " · status " strong #task-status { (task.status) } }
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

pub async fn station(
    state: web::Data<AppState>,
    console: web::Data<ConsoleState>,
    request: HttpRequest,
    path: web::Path<i64>,
    query: Query,
) -> Page {
    let session = session(&state, &console, &request).await?;
    let task = load_task(&state, &session, *path).await?;
    let names = line_names(&state, &task).await?;
    let stores = warehouse_db::store_names::load(&*state.pool.get().await?).await?;
    let body = station_markup(&session, &task, &[], &names, &stores);
    Ok(layout(
        &session,
        Nav::Floor,
        &format!("Pick task {}", task.id),
        flash(&query),
        body,
    ))
}

pub async fn picked(
    state: web::Data<AppState>,
    console: web::Data<ConsoleState>,
    request: HttpRequest,
    path: web::Path<i64>,
    form: Form,
) -> Page {
    let session = form_session(&state, &console, &request, &form).await?;
    let task = load_task(&state, &session, *path).await?;
    packing::mark_picked(&state, &session.operator, task.id).await?;
    Ok(redirect_with(
        &format!("/console/floor/{}", task.id),
        true,
        "Marked picked.",
    ))
}

pub async fn scan(
    state: web::Data<AppState>,
    console: web::Data<ConsoleState>,
    request: HttpRequest,
    path: web::Path<i64>,
    form: Form,
) -> Page {
    let session = form_session(&state, &console, &request, &form).await?;
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
    let stores = warehouse_db::store_names::load(&*state.pool.get().await?).await?;
    let mut response = layout(
        &session,
        Nav::Floor,
        &format!("Pick task {}", task.id),
        Some(flash.clone()),
        station_markup(&session, &task, &confirmed, &names, &stores),
    );
    if !flash.0 {
        *response.status_mut() = actix_web::http::StatusCode::UNPROCESSABLE_ENTITY;
    }
    Ok(response)
}

pub async fn pack(
    state: web::Data<AppState>,
    console: web::Data<ConsoleState>,
    request: HttpRequest,
    path: web::Path<i64>,
    form: Form,
) -> Page {
    let session = form_session(&state, &console, &request, &form).await?;
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
        packing::mark_picked(&state, &session.operator, task.id).await?;
    }
    packing::pack_in_one_parcel(&state, &session.operator, task.site_id.as_str(), task.order_id.as_str()).await?;
    Ok(redirect_with(
        &format!("/console/floor/{}", task.id),
        true,
        "Packed. Print the label and the packing slip.",
    ))
}
