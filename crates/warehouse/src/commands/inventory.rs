//! Stock: set the counted stock of a merchant's SKU, receive stock at the dock.
//!
//! Every command names the merchant whose stock it changes (`merchant`), or leaves it to the
//! token when it may see one merchant only (`/api/v1/inventory/{sku}`); see
//! [`Operator::stock_merchant`].

use super::{CommandError, enqueue, printable, with_outbox};
use crate::auth::{Operator, Role};
use crate::state::AppState;
use domain::{Envelope, Event, MessageId, SiteId, Sku};
use warehouse_db::audit::{self, AuditEntry, AuditKind};
use warehouse_db::inventory::{self, StockLevel};

/// A SKU is 1-200 bytes of UTF-8 with no control characters (the spec says so too). Every
/// route with a SKU in its path checks it first.
pub fn valid_sku(sku: &str) -> Result<(), CommandError> {
    if sku.is_empty() || printable("sku", sku, Some(200)).is_err() {
        return Err(CommandError::invalid("sku", "a SKU is 1-200 printable characters"));
    }
    Ok(())
}

/// Sets the counted stock of a merchant's SKU (creating it). More stock than before may serve
/// the merchant's backordered orders, so the increase is announced (`stock.received`).
pub async fn set_on_hand(
    state: &AppState,
    operator: &Operator,
    merchant: Option<&str>,
    sku: &str,
    on_hand: i64,
) -> Result<StockLevel, CommandError> {
    operator.require(Role::Admin)?;
    valid_sku(sku)?;
    if on_hand < 0 {
        return Err(CommandError::invalid("on_hand", "on_hand cannot be negative"));
    }
    with_outbox(state, &operator.name, async |tx| {
        let merchant = operator.stock_merchant(&**tx, merchant).await?;
        operator.check_sku(&**tx, merchant.id, sku).await?;
        let (before, reserved) = inventory::lock(tx, merchant.id, &sku.into())
            .await?
            .map(|level| (level.on_hand, level.reserved))
            .unwrap_or((0, 0));
        if on_hand < reserved {
            return Err(CommandError::conflict(
                "below_reserved",
                format!("{reserved} units of `{sku}` are reserved; on_hand cannot go below that"),
            ));
        }
        let level = inventory::set_on_hand(tx, merchant.id, &sku.into(), on_hand).await?;
        audit::record(
            &**tx,
            AuditEntry {
                site_id: None,
                order_id: None,
                kind: AuditKind::StockCounted,
                actor: &operator.name,
                detail: serde_json::json!({"merchant": merchant.name, "sku": sku, "before": before, "after": on_hand}),
            },
        )
        .await?;
        // More available stock may serve backorders.
        let mut events = Vec::new();
        if on_hand > before {
            let event = stock_received(merchant.id, sku, on_hand - before);
            enqueue(tx, &operator.name, &event).await?;
            events.push(event);
        }
        Ok((level, events))
    })
    .await
}

/// Receives stock of a merchant's known SKU in scope; the new stock may serve the merchant's
/// backordered orders.
pub async fn receive_stock(
    state: &AppState,
    operator: &Operator,
    merchant: Option<&str>,
    sku: &str,
    quantity: i64,
) -> Result<StockLevel, CommandError> {
    operator.require(Role::Floor)?;
    valid_sku(sku)?;
    if quantity <= 0 {
        return Err(CommandError::invalid("quantity", "quantity must be at least 1"));
    }
    with_outbox(state, &operator.name, async |tx| {
        let merchant = operator.stock_merchant(&**tx, merchant).await?;
        operator.check_sku(&**tx, merchant.id, sku).await?;
        let Some(current) = inventory::lock(tx, merchant.id, &sku.into()).await? else {
            return Err(CommandError::NotFound(format!(
                "unknown SKU `{sku}`; create it with PUT first"
            )));
        };
        if current.on_hand.checked_add(quantity).is_none() {
            return Err(CommandError::StockOverflow {
                field: "quantity".to_owned(),
                message: format!("`{sku}` cannot hold {quantity} more units"),
            });
        }
        let level = inventory::receive(tx, merchant.id, &sku.into(), quantity).await?;
        audit::record(
            &**tx,
            AuditEntry {
                site_id: None,
                order_id: None,
                kind: AuditKind::StockReceived,
                actor: &operator.name,
                detail: serde_json::json!({"merchant": merchant.name, "sku": sku, "quantity": quantity}),
            },
        )
        .await?;
        let event = stock_received(merchant.id, sku, quantity);
        enqueue(tx, &operator.name, &event).await?;
        Ok((level, vec![event]))
    })
    .await
}

fn stock_received(merchant_id: i64, sku: &str, quantity: i64) -> Envelope {
    let id = format!("stock-{}", uuid::Uuid::new_v4().simple());
    Envelope::new(
        MessageId::new(id.clone()),
        id,
        SiteId::new(""),
        Event::StockReceivedV1 {
            sku: Sku::new(sku),
            quantity,
            merchant_id,
        },
    )
}
