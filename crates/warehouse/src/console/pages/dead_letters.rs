//! Stuck messages: the dead-letter queues, replaying and purging them.

use super::{Form, Query, field};
use crate::auth::Role;
use crate::console::render::{Nav, csrf_field, flash, layout, order_path, redirect_with, store, time};
use crate::console::session::Session;
use crate::console::{ConsoleError, ConsoleState, Page, form_session, session};
use crate::state::AppState;
use actix_web::{HttpRequest, web};
use maud::html;

pub async fn stuck(
    state: web::Data<AppState>,
    console: web::Data<ConsoleState>,
    request: HttpRequest,
    query: Query,
) -> Page {
    let session = session(&state, &console, &request).await?;
    if session.operator.site_filter().is_some() {
        let body = html! {
            h1 { "Stuck messages" }
            p { "Stuck messages are not tied to one store, so only tokens for every store can see them. Ask an administrator." }
        };
        return Ok(layout(&session, Nav::Stuck, "Stuck messages", flash(&query), body));
    }
    let mut queues = Vec::new();
    {
        let mut guard = console.dead_letters().await?;
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
    let names = warehouse_db::store_names::load(&*state.pool.get().await?).await?;
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
                                td { @if let (Some(o), Some(s)) = (&m.order_id, &m.site_id) { a href=(order_path(s, o)) { code { (o) } } br; span.muted { (store(&names, s)) } } @else { (m.order_id.as_deref().unwrap_or("")) } }
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

fn dead_letter_admin(session: &Session) -> Result<(), ConsoleError> {
    session.operator.require(Role::Admin)?;
    if session.operator.site_filter().is_some() {
        return Err(crate::error::ApiError::forbidden("dead letters need a token on every store").into());
    }
    Ok(())
}

pub async fn replay(
    state: web::Data<AppState>,
    console: web::Data<ConsoleState>,
    request: HttpRequest,
    form: Form,
) -> Page {
    let session = form_session(&state, &console, &request, &form).await?;
    dead_letter_admin(&session)?;
    let queue = field(&form, "queue").to_owned();
    let message_id = field(&form, "message_id").to_owned();
    let all = field(&form, "all") == "1";
    if !all && message_id.is_empty() {
        return Err(crate::error::ApiError::invalid("message_id", "say which message to replay").into());
    }
    let mut guard = console.dead_letters().await?;
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

pub async fn purge(
    state: web::Data<AppState>,
    console: web::Data<ConsoleState>,
    request: HttpRequest,
    form: Form,
) -> Page {
    let session = form_session(&state, &console, &request, &form).await?;
    dead_letter_admin(&session)?;
    let queue = field(&form, "queue").to_owned();
    if field(&form, "confirm") != queue {
        return Ok(redirect_with(
            "/console/stuck",
            false,
            "Not purged: type the queue's name to confirm.",
        ));
    }
    let mut guard = console.dead_letters().await?;
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
