//! Stock: read a merchant's SKU, set its counted stock, receive stock. Each route exists
//! twice: under `/api/v1/merchants/{merchant}/inventory/…`, naming the merchant, and under
//! `/api/v1/inventory/…` for a token that may see one merchant's stock.

use crate::auth::{Operator, Role};
use crate::commands::CommandError;
use crate::commands::inventory::{receive_stock, set_on_hand, valid_sku};
use crate::error::{ApiError, ErrorBody, parse_json};
use crate::state::AppState;
use actix_web::{HttpResponse, web};
use serde::Deserialize;
use utoipa::ToSchema;
use warehouse_db::inventory::{self, StockLevel};
use warehouse_db::inventory_sync::{self, SyncStatus};

#[utoipa::path(
    get,
    path = "/api/v1/inventory/{sku}",
    tag = "inventory",
    summary = "Stock of one SKU (of the token's one merchant)",
    description = "For a token that may see one merchant's stock (or when only the `default` merchant exists); otherwise name the merchant with `/api/v1/merchants/{merchant}/inventory/{sku}`.",
    params(super::SkuParam),
    responses(
        (status = 200, description = "The stock level, and its sync with each of the merchant's Webflow stores that sells it", body = InventoryView),
        (status = 400, description = "The path is not valid UTF-8 once decoded", body = ErrorBody),
        (status = 404, description = "Unknown SKU, or one no order of the token's stores uses", body = ErrorBody),
        (status = 409, description = "`merchant_required`: the token may see several merchants' stock; name the merchant", body = ErrorBody),
        (status = 422, description = "The SKU breaks the SKU rules", body = ErrorBody),
    ),
)]
pub async fn get_inventory(
    state: web::Data<AppState>,
    operator: Operator,
    sku: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    view(&state, &operator, None, &sku).await
}

#[utoipa::path(
    get,
    path = "/api/v1/merchants/{merchant}/inventory/{sku}",
    tag = "inventory",
    summary = "Stock of one SKU of a merchant",
    params(super::MerchantSkuPath),
    responses(
        (status = 200, description = "The stock level, and its sync with each of the merchant's Webflow stores that sells it", body = InventoryView),
        (status = 400, description = "The path is not valid UTF-8 once decoded", body = ErrorBody),
        (status = 404, description = "Unknown merchant (or one outside the token's scope), unknown SKU, or one no order of the token's stores uses", body = ErrorBody),
        (status = 422, description = "The SKU breaks the SKU rules", body = ErrorBody),
    ),
)]
pub async fn get_merchant_inventory(
    state: web::Data<AppState>,
    operator: Operator,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (merchant, sku) = path.into_inner();
    view(&state, &operator, Some(&merchant), &sku).await
}

/// A merchant's SKU's stock (the token's one merchant when `merchant` is `None`), with the
/// sync status of the merchant's stores in the token's scope.
async fn view(
    state: &AppState,
    operator: &Operator,
    merchant: Option<&str>,
    sku: &str,
) -> Result<HttpResponse, ApiError> {
    operator.require(Role::Read)?;
    valid_sku(sku)?;
    let client = state.pool.get().await?;
    let merchant = operator.stock_merchant(&*client, merchant).await?;
    operator.check_sku(&*client, merchant.id, sku).await?;
    let level = inventory::get(&*client, merchant.id, &sku.into())
        .await?
        .ok_or_else(|| ApiError::not_found(format!("unknown SKU `{sku}` of merchant `{}`", merchant.name)))?;
    let webflow = inventory_sync::status_of_sku(&*client, merchant.id, &level.sku)
        .await?
        .into_iter()
        .filter(|s| operator.sees_site(s.site_id.as_str()))
        .collect();
    Ok(HttpResponse::Ok().json(InventoryView {
        merchant: level.merchant,
        sku: level.sku.to_string(),
        on_hand: level.on_hand,
        reserved: level.reserved,
        available: level.available,
        webflow,
    }))
}

/// A SKU's stock, and what each Webflow store that sells it was last told (issue 17).
#[derive(serde::Serialize, serde::Deserialize, ToSchema)]
pub struct InventoryView {
    /// The merchant that owns the stock.
    pub merchant: String,
    pub sku: String,
    pub on_hand: i64,
    pub reserved: i64,
    /// `on_hand - reserved`: what the storefronts are kept at (less each store's buffer).
    pub available: i64,
    /// Per store (of the token's scope) that sold the SKU: the level Webflow should show, the
    /// last pushed level and when, what Webflow last said, and whether it agrees.
    pub webflow: Vec<SyncStatus>,
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
    summary = "Set the counted stock (creates the SKU) of the token's one merchant",
    description = "More stock than before may serve backordered orders (a `stock.received` event). For a token that may see one merchant's stock (or when only the `default` merchant exists); otherwise name the merchant with `/api/v1/merchants/{merchant}/inventory/{sku}`.",
    params(super::SkuParam),
    request_body = SetOnHand,
    responses(
        (status = 200, description = "The new stock level", body = StockLevel),
        (status = 400, description = "Malformed JSON, or a path that is not valid UTF-8", body = ErrorBody),
        (status = 404, description = "No route (an empty path segment), or a SKU no order of the token's stores uses", body = ErrorBody),
        (status = 409, description = "`below_reserved`: on_hand would go below what is reserved; `merchant_required`: the token may see several merchants' stock", body = ErrorBody),
        (status = 422, description = "A field or the SKU breaks a rule (`on_hand` beyond a 64-bit count: `stock_overflow`); `field` names it", body = ErrorBody),
    ),
)]
pub async fn set_inventory(
    state: web::Data<AppState>,
    operator: Operator,
    sku: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    set(&state, &operator, None, &sku, &body).await
}

#[utoipa::path(
    put,
    path = "/api/v1/merchants/{merchant}/inventory/{sku}",
    tag = "inventory",
    summary = "Set the counted stock of a merchant's SKU (creates the SKU)",
    description = "More stock than before may serve the merchant's backordered orders (a `stock.received` event).",
    params(super::MerchantSkuPath),
    request_body = SetOnHand,
    responses(
        (status = 200, description = "The new stock level", body = StockLevel),
        (status = 400, description = "Malformed JSON, or a path that is not valid UTF-8", body = ErrorBody),
        (status = 404, description = "Unknown merchant (or one outside the token's scope), or a SKU no order of the token's stores uses", body = ErrorBody),
        (status = 409, description = "`below_reserved`: on_hand would go below what is reserved", body = ErrorBody),
        (status = 422, description = "A field or the SKU breaks a rule (`on_hand` beyond a 64-bit count: `stock_overflow`); `field` names it", body = ErrorBody),
    ),
)]
pub async fn set_merchant_inventory(
    state: web::Data<AppState>,
    operator: Operator,
    path: web::Path<(String, String)>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let (merchant, sku) = path.into_inner();
    set(&state, &operator, Some(&merchant), &sku, &body).await
}

async fn set(
    state: &AppState,
    operator: &Operator,
    merchant: Option<&str>,
    sku: &str,
    body: &[u8],
) -> Result<HttpResponse, ApiError> {
    operator.require(Role::Admin)?;
    valid_sku(sku)?;
    let request: SetOnHand = parse_on_hand(body)?;
    let level = set_on_hand(state, operator, merchant, sku, request.on_hand).await?;
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
    summary = "Receive stock of a known SKU of the token's one merchant",
    description = "Adds to on_hand and may serve backordered orders (a `stock.received` event). For a token that may see one merchant's stock (or when only the `default` merchant exists); otherwise name the merchant with `/api/v1/merchants/{merchant}/inventory/{sku}/receive`.",
    params(super::SkuParam),
    request_body = Receive,
    responses(
        (status = 200, description = "The new stock level", body = StockLevel),
        (status = 400, description = "Malformed JSON, or a path that is not valid UTF-8", body = ErrorBody),
        (status = 404, description = "Unknown SKU (create it with PUT first), or one no order of the token's stores uses", body = ErrorBody),
        (status = 409, description = "`merchant_required`: the token may see several merchants' stock; name the merchant", body = ErrorBody),
        (status = 422, description = "A field or the SKU breaks a rule (`stock_overflow`: on_hand would exceed the largest count); `field` names it", body = ErrorBody),
    ),
)]
pub async fn receive(
    state: web::Data<AppState>,
    operator: Operator,
    sku: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    receive_for(&state, &operator, None, &sku, &body).await
}

#[utoipa::path(
    post,
    path = "/api/v1/merchants/{merchant}/inventory/{sku}/receive",
    tag = "inventory",
    summary = "Receive stock of a merchant's known SKU",
    description = "Adds to on_hand and may serve the merchant's backordered orders (a `stock.received` event).",
    params(super::MerchantSkuPath),
    request_body = Receive,
    responses(
        (status = 200, description = "The new stock level", body = StockLevel),
        (status = 400, description = "Malformed JSON, or a path that is not valid UTF-8", body = ErrorBody),
        (status = 404, description = "Unknown merchant (or one outside the token's scope), unknown SKU (create it with PUT first), or one no order of the token's stores uses", body = ErrorBody),
        (status = 422, description = "A field or the SKU breaks a rule (`stock_overflow`: on_hand would exceed the largest count); `field` names it", body = ErrorBody),
    ),
)]
pub async fn receive_merchant(
    state: web::Data<AppState>,
    operator: Operator,
    path: web::Path<(String, String)>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let (merchant, sku) = path.into_inner();
    receive_for(&state, &operator, Some(&merchant), &sku, &body).await
}

async fn receive_for(
    state: &AppState,
    operator: &Operator,
    merchant: Option<&str>,
    sku: &str,
    body: &[u8],
) -> Result<HttpResponse, ApiError> {
    operator.require(Role::Floor)?;
    valid_sku(sku)?;
    let request: Receive = parse_quantity(body)?;
    let level = receive_stock(state, operator, merchant, sku, request.quantity).await?;
    Ok(HttpResponse::Ok().json(level))
}

/// 422 `stock_overflow`: a count beyond what a 64-bit integer holds is a bad input, not a
/// conflict with the stored state and not a server fault.
fn stock_overflow(field: &str, message: &str) -> ApiError {
    CommandError::StockOverflow {
        field: field.to_owned(),
        message: message.to_owned(),
    }
    .into()
}

/// Whether a JSON number at `field` is an integer too large for a 64-bit count.
fn number_too_large(body: &[u8], field: &str) -> bool {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get(field).cloned())
        .is_some_and(|v| match v {
            serde_json::Value::Number(n) => {
                n.as_i64().is_none()
                    && (n.as_u64().is_some() || n.as_f64().is_some_and(|f| f.fract() == 0.0 && f.abs() >= 9.2e18))
            }
            _ => false,
        })
}

fn parse_on_hand(body: &[u8]) -> Result<SetOnHand, ApiError> {
    if number_too_large(body, "on_hand") {
        return Err(stock_overflow(
            "on_hand",
            "on_hand is beyond the largest count (2^63 - 1)",
        ));
    }
    parse_json(body)
}

fn parse_quantity(body: &[u8]) -> Result<Receive, ApiError> {
    if number_too_large(body, "quantity") {
        return Err(stock_overflow(
            "quantity",
            "quantity is beyond the largest count (2^63 - 1)",
        ));
    }
    parse_json(body)
}
