use super::AppState;
use crate::error::{ApiError, parse_json};
use actix_web::{HttpResponse, web};
use domain::{Envelope, Event, MessageId, SiteId, Sku};
use serde::Deserialize;
use warehouse_db::inventory;

pub const ACTOR: &str = "warehouse-api";

fn valid_sku(sku: &str) -> Result<(), ApiError> {
    if sku.is_empty() || sku.len() > 200 || sku.chars().any(char::is_control) {
        return Err(ApiError::invalid("sku", "a SKU is 1-200 printable characters"));
    }
    Ok(())
}

pub async fn get_inventory(state: web::Data<AppState>, sku: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let client = state.pool.get().await?;
    let level = inventory::get(&*client, &sku.as_str().into())
        .await?
        .ok_or_else(|| ApiError::not_found(format!("unknown SKU `{sku}`")))?;
    Ok(HttpResponse::Ok().json(level))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SetOnHand {
    on_hand: i64,
}

pub async fn set_inventory(
    state: web::Data<AppState>,
    sku: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    valid_sku(&sku)?;
    let request: SetOnHand = parse_json(&body)?;
    if request.on_hand < 0 {
        return Err(ApiError::invalid("on_hand", "on_hand cannot be negative"));
    }
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    let current = tx
        .query_opt(
            "SELECT on_hand, reserved FROM inventory WHERE sku = $1 FOR UPDATE",
            &[&*sku],
        )
        .await?;
    let (before, reserved) = current
        .map(|r| (r.get::<_, i64>(0), r.get::<_, i64>(1)))
        .unwrap_or((0, 0));
    if request.on_hand < reserved {
        return Err(ApiError::conflict(
            "below_reserved",
            format!("{reserved} units of `{sku}` are reserved; on_hand cannot go below that"),
        ));
    }
    let level = inventory::set_on_hand(&tx, &sku.as_str().into(), request.on_hand).await?;
    warehouse_db::audit::record(
        &*tx,
        warehouse_db::audit::AuditEntry {
            site_id: None,
            order_id: None,
            kind: warehouse_db::audit::AuditKind::StockCounted,
            actor: ACTOR,
            detail: serde_json::json!({"sku": &*sku, "before": before, "after": request.on_hand}),
        },
    )
    .await?;
    // More available stock may serve backorders.
    let event = (request.on_hand > before).then(|| stock_received(&sku, request.on_hand - before));
    if let Some(event) = &event {
        warehouse_db::outbox::enqueue(&tx, event, Some((ACTOR, event.message_id.as_str()))).await?;
    }
    tx.commit().await?;
    if let Some(event) = event {
        state.publish(ACTOR, event.message_id.as_str()).await;
    }
    Ok(HttpResponse::Ok().json(level))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Receive {
    quantity: i64,
}

pub async fn receive(
    state: web::Data<AppState>,
    sku: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let request: Receive = parse_json(&body)?;
    if request.quantity <= 0 {
        return Err(ApiError::invalid("quantity", "quantity must be at least 1"));
    }
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    if inventory::get(&tx, &sku.as_str().into()).await?.is_none() {
        return Err(ApiError::not_found(format!(
            "unknown SKU `{sku}`; create it with PUT first"
        )));
    }
    let level = inventory::receive(&tx, &sku.as_str().into(), request.quantity).await?;
    warehouse_db::audit::record(
        &*tx,
        warehouse_db::audit::AuditEntry {
            site_id: None,
            order_id: None,
            kind: warehouse_db::audit::AuditKind::StockReceived,
            actor: ACTOR,
            detail: serde_json::json!({"sku": &*sku, "quantity": request.quantity}),
        },
    )
    .await?;
    let event = stock_received(&sku, request.quantity);
    warehouse_db::outbox::enqueue(&tx, &event, Some((ACTOR, event.message_id.as_str()))).await?;
    tx.commit().await?;
    state.publish(ACTOR, event.message_id.as_str()).await;
    Ok(HttpResponse::Ok().json(level))
}

fn stock_received(sku: &str, quantity: i64) -> Envelope {
    let id = format!("stock-{}", uuid::Uuid::new_v4().simple());
    Envelope::new(
        MessageId::new(id.clone()),
        id,
        SiteId::new(""),
        Event::StockReceivedV1 {
            sku: Sku::new(sku),
            quantity,
        },
    )
}
