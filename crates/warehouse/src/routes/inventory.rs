//! Stock: read a SKU, set its counted stock, receive stock.

use super::AppState;
use crate::error::{ApiError, ErrorBody, parse_json, printable};
use actix_web::{HttpResponse, web};
use domain::{Envelope, Event, MessageId, SiteId, Sku};
use serde::Deserialize;
use utoipa::ToSchema;
use warehouse_db::inventory::{self, StockLevel};

pub const ACTOR: &str = "warehouse-api";

/// A SKU is 1-200 bytes of UTF-8 with no control characters (the spec says so too).
fn valid_sku(sku: &str) -> Result<(), ApiError> {
    if sku.is_empty() || printable("sku", sku, Some(200)).is_err() {
        return Err(ApiError::invalid("sku", "a SKU is 1-200 printable characters"));
    }
    Ok(())
}

#[utoipa::path(
    get,
    path = "/api/v1/inventory/{sku}",
    tag = "inventory",
    summary = "Stock of one SKU",
    params(super::SkuParam),
    responses(
        (status = 200, description = "The stock level", body = StockLevel),
        (status = 400, description = "The path is not valid UTF-8 once decoded", body = ErrorBody),
        (status = 404, description = "Unknown SKU", body = ErrorBody),
        (status = 422, description = "The SKU breaks the SKU rules", body = ErrorBody),
    ),
)]
pub async fn get_inventory(state: web::Data<AppState>, sku: web::Path<String>) -> Result<HttpResponse, ApiError> {
    valid_sku(&sku)?;
    let client = state.pool.get().await?;
    let level = inventory::get(&*client, &sku.as_str().into())
        .await?
        .ok_or_else(|| ApiError::not_found(format!("unknown SKU `{sku}`")))?;
    Ok(HttpResponse::Ok().json(level))
}

/// The counted stock of a SKU.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetOnHand {
    /// Units on the shelves; at least what is reserved.
    #[schema(minimum = 0)]
    on_hand: i64,
}

#[utoipa::path(
    put,
    path = "/api/v1/inventory/{sku}",
    tag = "inventory",
    summary = "Set the counted stock (creates the SKU)",
    description = "More stock than before may serve backordered orders (a `stock.received` event).",
    params(super::SkuParam),
    request_body = SetOnHand,
    responses(
        (status = 200, description = "The new stock level", body = StockLevel),
        (status = 400, description = "Malformed JSON, or a path that is not valid UTF-8", body = ErrorBody),
        (status = 404, description = "No route: an empty path segment", body = ErrorBody),
        (status = 409, description = "`below_reserved`: on_hand would go below what is reserved", body = ErrorBody),
        (status = 422, description = "A field or the SKU breaks a rule; `field` names it", body = ErrorBody),
    ),
)]
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
    let (before, reserved) = inventory::lock(&tx, &sku.as_str().into())
        .await?
        .map(|level| (level.on_hand, level.reserved))
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

/// Stock received at the dock.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Receive {
    /// Units received.
    #[schema(minimum = 1)]
    quantity: i64,
}

#[utoipa::path(
    post,
    path = "/api/v1/inventory/{sku}/receive",
    tag = "inventory",
    summary = "Receive stock of a known SKU",
    description = "Adds to on_hand and may serve backordered orders (a `stock.received` event).",
    params(super::SkuParam),
    request_body = Receive,
    responses(
        (status = 200, description = "The new stock level", body = StockLevel),
        (status = 400, description = "Malformed JSON, or a path that is not valid UTF-8", body = ErrorBody),
        (status = 404, description = "Unknown SKU (create it with PUT first)", body = ErrorBody),
        (status = 409, description = "`stock_overflow`: on_hand would exceed the largest count", body = ErrorBody),
        (status = 422, description = "A field or the SKU breaks a rule; `field` names it", body = ErrorBody),
    ),
)]
pub async fn receive(
    state: web::Data<AppState>,
    sku: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    valid_sku(&sku)?;
    let request: Receive = parse_json(&body)?;
    if request.quantity <= 0 {
        return Err(ApiError::invalid("quantity", "quantity must be at least 1"));
    }
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    let Some(current) = inventory::lock(&tx, &sku.as_str().into()).await? else {
        return Err(ApiError::not_found(format!(
            "unknown SKU `{sku}`; create it with PUT first"
        )));
    };
    if current.on_hand.checked_add(request.quantity).is_none() {
        return Err(ApiError::conflict(
            "stock_overflow",
            format!("`{sku}` cannot hold {} more units", request.quantity),
        ));
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
