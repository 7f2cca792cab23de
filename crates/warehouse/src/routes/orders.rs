//! Orders: the operator's view, refunds and address corrections.

use super::{OrderPath, authorized_order};
use crate::auth::{Operator, Role, order_not_found};
pub use crate::commands::orders::{AddressCorrected, CorrectedAddress, RefundAccepted};
use crate::commands::orders::{correct_address as apply_correction, request_refund};
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;
use actix_web::{HttpResponse, web};
use serde::Deserialize;
use utoipa::ToSchema;
use warehouse_db::OrderView;

#[utoipa::path(
    get,
    path = "/api/v1/orders/{site_id}/{order_id}",
    tag = "orders",
    summary = "Everything about one order, with its timeline",
    params(OrderPath),
    responses(
        (status = 200, description = "The order", body = OrderView),
        (status = 400, description = "The path is not valid UTF-8 once decoded", body = ErrorBody),
        (status = 404, description = "No such order, or a store outside the token's scope", body = ErrorBody),
        (status = 422, description = "An id contains control characters", body = ErrorBody),
    ),
)]
pub async fn get_order(
    state: web::Data<AppState>,
    operator: Operator,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (site_id, order_id) = authorized_order(&operator, Role::Read, path)?;
    let client = state.pool.get().await?;
    let view = warehouse_db::order_view::load(&*client, &site_id.as_str().into(), &order_id.as_str().into())
        .await?
        .ok_or_else(|| order_not_found(&site_id, &order_id))?;
    Ok(HttpResponse::Ok().json(view))
}

/// Why an order is refunded (Webflow's refund reasons).
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code, reason = "describes `RefundRequest::reason` for the OpenAPI document")]
pub enum RefundReason {
    Duplicate,
    Fraudulent,
    Requested,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefundRequest {
    #[schema(value_type = RefundReason)]
    pub reason: String,
}

/// Refunds the order in Webflow (once), then cancels it here (reservation released).
#[utoipa::path(
    post,
    path = "/api/v1/orders/{site_id}/{order_id}/refund",
    tag = "orders",
    summary = "Refund the order in Webflow (once) and cancel it here",
    params(OrderPath),
    request_body = RefundRequest,
    responses(
        (status = 202, description = "The refund is requested", body = RefundAccepted),
        (status = 400, description = "Malformed JSON, or a path that is not valid UTF-8", body = ErrorBody),
        (status = 404, description = "No such order, or a store outside the token's scope", body = ErrorBody),
        (status = 409, description = "`wrong_state`: the order is already cancelled", body = ErrorBody),
        (status = 422, description = "A field or an id breaks a rule; `field` names it", body = ErrorBody),
    ),
)]
pub async fn refund(
    state: web::Data<AppState>,
    operator: Operator,
    path: web::Path<(String, String)>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let (site_id, order_id) = authorized_order(&operator, Role::Admin, path)?;
    let request: RefundRequest = crate::error::parse_json(&body)?;
    let accepted = request_refund(&state, &operator, &site_id, &order_id, &request.reason).await?;
    Ok(HttpResponse::Accepted().json(accepted))
}

/// Corrects the shipping address before packing; Webflow's API cannot change an address, so
/// the correction is noted on the Webflow order's comment (once).
#[utoipa::path(
    put,
    path = "/api/v1/orders/{site_id}/{order_id}/shipping-address",
    tag = "orders",
    summary = "Correct the shipping address before packing",
    description = "Webflow's API cannot change an address, so the correction is noted once on the Webflow order's comment.",
    params(OrderPath),
    request_body = CorrectedAddress,
    responses(
        (status = 200, description = "The address is corrected", body = AddressCorrected),
        (status = 400, description = "Malformed JSON, or a path that is not valid UTF-8", body = ErrorBody),
        (status = 404, description = "No such order, or a store outside the token's scope", body = ErrorBody),
        (status = 409, description = "`wrong_state`: the order is already packed", body = ErrorBody),
        (status = 422, description = "A field or an id breaks a rule; `field` names it", body = ErrorBody),
    ),
)]
pub async fn correct_address(
    state: web::Data<AppState>,
    operator: Operator,
    path: web::Path<(String, String)>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let (site_id, order_id) = authorized_order(&operator, Role::Admin, path)?;
    let address: CorrectedAddress = crate::error::parse_json(&body)?;
    let corrected = apply_correction(&state, &operator, &site_id, &order_id, &address).await?;
    Ok(HttpResponse::Ok().json(corrected))
}
