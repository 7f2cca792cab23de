//! The `reserve` worker: stock reservations, all lines or none.
//!
//! - `order.ready`: reserve every line (locking inventory in SKU order so concurrent orders
//!   cannot deadlock), create the pick task, move the order to `reserved`; or to `backordered`
//!   with the reason when stock is short or a SKU is unknown.
//! - `stock.received`: retry backordered orders needing that SKU, oldest first.
//! - `order.cancelled`: release the reservation and cancel the pick task; an order already
//!   shipped goes to `needs_review` instead.

use domain::{Envelope, Event, OrderState};
use platform::amqp::topology::consumer;
use warehouse_db::Transaction;
use warehouse_db::audit::{self, AuditEntry, AuditKind};
use warehouse_db::inventory::{self, ReserveOutcome};
use warehouse_db::orders::{self, OrderRecord};
use worker::{Effects, Handler, HandlerError, IncomingMessage, Preparation, SeenCheck};

pub const ACTOR: &str = consumer::RESERVE;

/// Backordered orders retried per `stock.received`.
const BACKORDER_BATCH: i64 = 200;

#[derive(Default)]
pub struct ReserveHandler;

impl Handler for ReserveHandler {
    const NAME: &'static str = consumer::RESERVE;
    const CHECK_BEFORE_PREPARE: bool = false;
    type Prepared = Envelope;

    async fn prepare(
        &self,
        message: &IncomingMessage,
        _seen: &SeenCheck<'_>,
    ) -> Result<Preparation<Envelope>, HandlerError> {
        message.envelope().map(Preparation::Ready)
    }

    async fn apply(
        &self,
        tx: &Transaction<'_>,
        message: &IncomingMessage,
        envelope: Envelope,
        effects: &mut Effects,
    ) -> Result<(), HandlerError> {
        match &envelope.event {
            Event::OrderReadyV1 { order_id } => {
                let Some(order) = orders::lock(tx, &envelope.site_id, order_id).await? else {
                    return Err(HandlerError::permanent(format!(
                        "order {order_id} is not in the warehouse database"
                    )));
                };
                try_reserve(tx, message, &order, effects).await
            }
            Event::OrderCancelledV1 { order_id, reason } => {
                let Some(order) = orders::lock(tx, &envelope.site_id, order_id).await? else {
                    return Err(HandlerError::permanent(format!(
                        "order {order_id} is not in the warehouse database"
                    )));
                };
                cancel(tx, &order, reason).await
            }
            Event::StockReceivedV1 { sku, .. } => {
                for order_pk in orders::backordered_needing(tx, Some(sku), BACKORDER_BATCH).await? {
                    if let Some(order) = orders::lock_by_id(tx, order_pk).await? {
                        try_reserve(tx, message, &order, effects).await?;
                    }
                }
                Ok(())
            }
            other => Err(HandlerError::permanent(format!(
                "reserve does not handle `{}`",
                other.routing_key()
            ))),
        }
    }
}

async fn try_reserve(
    tx: &Transaction<'_>,
    message: &IncomingMessage,
    order: &OrderRecord,
    effects: &mut Effects,
) -> Result<(), HandlerError> {
    if !matches!(order.state, OrderState::Ready | OrderState::Backordered) {
        // Already reserved (a redelivered or replayed event), or cancelled meanwhile.
        audit::record(
            tx,
            AuditEntry {
                site_id: Some(&order.site_id),
                order_id: Some(&order.webflow_order_id),
                kind: AuditKind::IgnoredEvent,
                actor: ACTOR,
                detail: serde_json::json!({"event": message.routing_key, "state": order.state.as_str()}),
            },
        )
        .await?;
        return Ok(());
    }
    let site_id = domain::SiteId::new(order.site_id.clone());
    let order_id = domain::OrderId::new(order.webflow_order_id.clone());
    match inventory::reserve_order(tx, order.id).await? {
        ReserveOutcome::Reserved { pick_task_id } => {
            orders::transition(tx, order, OrderState::Reserved, None, ACTOR).await?;
            effects.emit(
                ReserveHandler::NAME,
                message,
                &site_id,
                Event::OrderReservedV1 { order_id, pick_task_id },
            );
        }
        ReserveOutcome::Short { reason } => {
            if order.state == OrderState::Ready {
                orders::transition(tx, order, OrderState::Backordered, Some(&reason), ACTOR).await?;
                effects.emit(
                    ReserveHandler::NAME,
                    message,
                    &site_id,
                    Event::OrderBackorderedV1 { order_id, reason },
                );
            }
        }
    }
    Ok(())
}

async fn cancel(tx: &Transaction<'_>, order: &OrderRecord, reason: &str) -> Result<(), HandlerError> {
    if order.state.has_shipped() {
        orders::transition(
            tx,
            order,
            OrderState::NeedsReview,
            Some(&format!("cancelled in Webflow after shipping ({reason})")),
            ACTOR,
        )
        .await?;
        return Ok(());
    }
    if order.state.is_terminal() {
        return Ok(());
    }
    let released = inventory::release_order(tx, order.id).await?;
    orders::transition(tx, order, OrderState::Cancelled, Some(reason), ACTOR).await?;
    audit::record(
        tx,
        AuditEntry {
            site_id: Some(&order.site_id),
            order_id: Some(&order.webflow_order_id),
            kind: AuditKind::ReservationReleased,
            actor: ACTOR,
            detail: serde_json::json!({"released": released}),
        },
    )
    .await?;
    Ok(())
}

/// Builds the worker over the service base.
pub async fn build(
    settings: service_base::BaseSettings,
    shutdown: tokio_util::sync::CancellationToken,
) -> Result<worker::WorkerService<ReserveHandler>, service_base::StartupError> {
    let base = service_base::ServiceBase::start(ReserveHandler::NAME, &settings, 0, shutdown).await?;
    worker::WorkerService::start(ReserveHandler, &base)
}
