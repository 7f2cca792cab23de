//! The `reserve` worker: stock reservations, all lines or none.
//!
//! - `order.ready`: reserve every line (locking inventory in SKU order so concurrent orders
//!   cannot deadlock), create the pick task, move the order to `reserved`; or to `backordered`
//!   with the reason when stock is short or a SKU is unknown.
//! - `stock.received` (a receipt, or stock released by a cancellation): offer the merchant's
//!   SKU to the merchant's backordered orders, oldest first; a younger order never takes what
//!   an older one waits for. Every order reserves its own merchant's stock only.
//! - `order.cancelled`: release the reservation and cancel the pick task, and offer what was
//!   released to the backorders at once; an order already shipped goes to `needs_review`.

use domain::{Envelope, Event, OrderState};
use platform::amqp::topology::consumer;
use warehouse_db::Transaction;
use warehouse_db::audit::{self, AuditEntry, AuditKind};
use warehouse_db::inventory::{self, ReserveOutcome};
use warehouse_db::orders::{self, OrderRecord};
use worker::{Effects, Handler, HandlerError, IncomingMessage, Preparation, SeenCheck};

pub const ACTOR: &str = consumer::RESERVE;

/// Backordered orders retried per `stock.received` (a bounded batch: its orders and their
/// inventory rows are locked together).
const BACKORDER_BATCH: i64 = 50;

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
                try_reserve(tx, message, &order, effects).await.map(|_| ())
            }
            Event::OrderCancelledV1 { order_id, reason } => {
                let Some(order) = orders::lock(tx, &envelope.site_id, order_id).await? else {
                    return Err(HandlerError::permanent(format!(
                        "order {order_id} is not in the warehouse database"
                    )));
                };
                cancel(tx, message, &order, reason, effects).await
            }
            Event::StockReceivedV1 { sku, merchant_id, .. } => {
                serve_backorders(tx, message, &envelope.site_id, *merchant_id, sku, effects).await
            }
            other => Err(HandlerError::permanent(format!(
                "reserve does not handle `{}`",
                other.routing_key()
            ))),
        }
    }
}

/// Offers a merchant's SKU's available stock to the merchant's backorders, oldest first: the batch's orders are
/// locked (by primary key), then every inventory row they need (in the database's SKU order),
/// and only then is each tried. A younger order gets only the surplus beyond what older
/// backorders still need (`inventory::reserve_order`), so an older order that cannot be
/// fully served is never overtaken. When the whole batch was served, the next batch is
/// offered by a follow-up `stock.received`.
async fn serve_backorders(
    tx: &Transaction<'_>,
    message: &IncomingMessage,
    site_id: &domain::SiteId,
    merchant_id: i64,
    sku: &domain::Sku,
    effects: &mut Effects,
) -> Result<(), HandlerError> {
    let batch = orders::lock_backordered_needing(tx, merchant_id, sku, BACKORDER_BATCH).await?;
    let pks: Vec<i64> = batch.iter().map(|o| o.id).collect();
    inventory::lock_skus_of_orders(tx, &pks).await?;
    let mut served = 0;
    for order in &batch {
        if try_reserve(tx, message, order, effects).await? {
            served += 1;
        }
    }
    if served == BACKORDER_BATCH {
        effects.emit(
            ReserveHandler::NAME,
            message,
            site_id,
            Event::StockReceivedV1 {
                sku: sku.clone(),
                quantity: 0,
                merchant_id,
            },
        );
    }
    Ok(())
}

/// Tries to reserve the order's stock; returns whether it is now reserved.
async fn try_reserve(
    tx: &Transaction<'_>,
    message: &IncomingMessage,
    order: &OrderRecord,
    effects: &mut Effects,
) -> Result<bool, HandlerError> {
    if !matches!(order.state, OrderState::Ready | OrderState::Backordered) {
        // Already reserved (a redelivered or replayed event), or cancelled meanwhile.
        audit::record(
            tx,
            AuditEntry::for_order(
                order,
                AuditKind::IgnoredEvent,
                ACTOR,
                serde_json::json!({"event": message.routing_key, "state": order.state.as_str()}),
            ),
        )
        .await?;
        return Ok(false);
    }
    let site_id = order.site_id.clone();
    let order_id = order.webflow_order_id.clone();
    match inventory::reserve_order(tx, order.id).await? {
        ReserveOutcome::Reserved { pick_task_id } => {
            orders::transition(tx, order, OrderState::Reserved, None, ACTOR).await?;
            effects.emit(
                ReserveHandler::NAME,
                message,
                &site_id,
                Event::OrderReservedV1 { order_id, pick_task_id },
            );
            Ok(true)
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
            Ok(false)
        }
    }
}

/// Cancels the order and releases its stock; the released stock is offered to backorders at
/// once (a `stock.received` per SKU, handled in its own transaction so this one never locks
/// other orders while it holds inventory rows).
async fn cancel(
    tx: &Transaction<'_>,
    message: &IncomingMessage,
    order: &OrderRecord,
    reason: &str,
    effects: &mut Effects,
) -> Result<(), HandlerError> {
    if order.state.has_shipped() {
        orders::transition(
            tx,
            order,
            OrderState::NeedsReview,
            Some(&format!(
                "cancelled after shipping ({reason}): a return or an interception may be needed"
            )),
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
        AuditEntry::for_order(
            order,
            AuditKind::ReservationReleased,
            ACTOR,
            serde_json::json!({"released": released}),
        ),
    )
    .await?;
    let site_id = order.site_id.clone();
    for (sku, quantity) in released {
        effects.emit(
            ReserveHandler::NAME,
            message,
            &site_id,
            Event::StockReceivedV1 {
                sku,
                quantity,
                merchant_id: order.merchant_id,
            },
        );
    }
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
