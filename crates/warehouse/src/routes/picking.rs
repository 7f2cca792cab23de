//! The floor: pick tasks and packing.

use super::{OrderPath, authorized_order};
use crate::auth::{Operator, Role};
pub use crate::commands::packing::{Packed, PickedTask};
use crate::error::{ApiError, ErrorBody, parse_json};
use crate::state::AppState;
use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use warehouse_db::floor::{self, ParcelRow, PickTask};

/// A pick task's status.
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code, reason = "describes `PickTaskQuery::status` for the OpenAPI document")]
pub enum PickTaskStatus {
    Open,
    Picked,
    Packed,
    Cancelled,
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PickTaskQuery {
    /// Only tasks in this status.
    #[param(value_type = Option<PickTaskStatus>)]
    status: Option<String>,
    /// At most this many tasks, oldest first (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<i64>,
}

/// Pick tasks, oldest first.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct PickTaskList {
    pub pick_tasks: Vec<PickTask>,
}

#[utoipa::path(
    get,
    path = "/api/v1/pick-tasks",
    tag = "floor",
    summary = "Pick tasks, oldest first",
    params(PickTaskQuery),
    responses(
        (status = 200, description = "The pick tasks", body = PickTaskList),
        (status = 400, description = "The query string does not parse (`limit` not a number)", body = ErrorBody),
        (status = 422, description = "`status` or `limit` out of range; `field` names it", body = ErrorBody),
    ),
)]
pub async fn list_pick_tasks(
    state: web::Data<AppState>,
    operator: Operator,
    query: web::Query<PickTaskQuery>,
) -> Result<HttpResponse, ApiError> {
    operator.require(Role::Read)?;
    let status = query
        .status
        .as_deref()
        .map(str::parse::<floor::PickTaskStatus>)
        .transpose()
        .map_err(|_| ApiError::invalid("status", "status is one of open, picked, packed, cancelled"))?;
    let limit = query.limit.unwrap_or(100);
    if !(1..=1_000).contains(&limit) {
        return Err(ApiError::invalid("limit", "limit is between 1 and 1000"));
    }
    let client = state.pool.get().await?;
    let pick_tasks = floor::pick_tasks(&*client, status, operator.site_filter(), limit).await?;
    Ok(HttpResponse::Ok().json(PickTaskList { pick_tasks }))
}

#[utoipa::path(
    post,
    path = "/api/v1/pick-tasks/{id}/picked",
    tag = "floor",
    summary = "Mark a pick task picked (idempotent)",
    params(("id" = i64, Path, description = "The pick task's id")),
    responses(
        (status = 200, description = "The task is picked", body = PickedTask),
        (status = 400, description = "The id is not a 64-bit integer", body = ErrorBody),
        (status = 404, description = "No such pick task, or one of a store outside the token's scope", body = ErrorBody),
        (status = 409, description = "`wrong_state`: the task is packed or cancelled", body = ErrorBody),
    ),
)]
pub async fn mark_picked(
    state: web::Data<AppState>,
    operator: Operator,
    id: web::Path<i64>,
) -> Result<HttpResponse, ApiError> {
    operator.require(Role::Floor)?;
    let picked = crate::commands::packing::mark_picked(&state, &operator, *id).await?;
    Ok(HttpResponse::Ok().json(picked))
}

/// The parcels an order was packed into.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PackRequest {
    #[schema(min_items = 1)]
    parcels: Vec<ParcelRow>,
}

#[utoipa::path(
    post,
    path = "/api/v1/orders/{site_id}/{order_id}/pack",
    tag = "floor",
    summary = "Pack a reserved order whose pick task is picked",
    description = "Stores the parcels, moves the order to `packed` and emits `order.packed` (the carrier books the shipment).",
    params(OrderPath),
    request_body = PackRequest,
    responses(
        (status = 200, description = "The order is packed", body = Packed),
        (status = 400, description = "Malformed JSON, or a path that is not valid UTF-8", body = ErrorBody),
        (status = 404, description = "No such order, or a store outside the token's scope", body = ErrorBody),
        (status = 409, description = "`wrong_state` or `pick_task_not_picked`", body = ErrorBody),
        (status = 422, description = "A field or an id breaks a rule; `field` names it", body = ErrorBody),
    ),
)]
pub async fn pack(
    state: web::Data<AppState>,
    operator: Operator,
    path: web::Path<(String, String)>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let (site_id, order_id) = authorized_order(&operator, Role::Floor, path)?;
    let request: PackRequest = parse_json(&body)?;
    if request.parcels.is_empty() {
        return Err(ApiError::invalid("parcels", "at least one parcel is required"));
    }
    for (index, parcel) in request.parcels.iter().enumerate() {
        for (name, value) in [
            ("weight_grams", parcel.weight_grams),
            ("length_cm", parcel.length_cm),
            ("width_cm", parcel.width_cm),
            ("height_cm", parcel.height_cm),
        ] {
            if !(value.is_finite() && value > 0.0) {
                return Err(ApiError::invalid(
                    &format!("parcels[{index}].{name}"),
                    format!("{name} must be above 0"),
                ));
            }
        }
    }
    let packed = crate::commands::packing::pack(&state, &operator, &site_id, &order_id, &request.parcels).await?;
    Ok(HttpResponse::Ok().json(packed))
}
