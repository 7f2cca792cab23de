use super::AppState;
use crate::error::{ApiError, parse_json};
use crate::packing::pack_order;
use actix_web::{HttpResponse, web};
use serde::Deserialize;
use warehouse_db::floor::{self, ParcelRow};
use warehouse_db::orders;

const ACTOR: &str = "warehouse-api";

#[derive(Deserialize)]
pub struct PickTaskQuery {
    status: Option<String>,
    limit: Option<i64>,
}

pub async fn list_pick_tasks(
    state: web::Data<AppState>,
    query: web::Query<PickTaskQuery>,
) -> Result<HttpResponse, ApiError> {
    let status = query.status.as_deref();
    if let Some(status) = status
        && !["open", "picked", "packed", "cancelled"].contains(&status)
    {
        return Err(ApiError::invalid(
            "status",
            "status is one of open, picked, packed, cancelled",
        ));
    }
    let limit = query.limit.unwrap_or(100);
    if !(1..=1_000).contains(&limit) {
        return Err(ApiError::invalid("limit", "limit is between 1 and 1000"));
    }
    let client = state.pool.get().await?;
    let tasks = floor::pick_tasks(
        &*client,
        status
            .map(str::parse)
            .transpose()
            .map_err(warehouse_db::DbError::from)?,
        limit,
    )
    .await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({"pick_tasks": tasks})))
}

pub async fn mark_picked(state: web::Data<AppState>, id: web::Path<i64>) -> Result<HttpResponse, ApiError> {
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    let (order_pk, status) = floor::lock_pick_task(&tx, *id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no pick task {id}")))?;
    match status.as_str() {
        "open" => floor::set_pick_task_status(&tx, *id, floor::PickTaskStatus::Picked).await?,
        "picked" => {}
        other => {
            return Err(ApiError::conflict(
                "wrong_state",
                format!("pick task {id} is `{other}`"),
            ));
        }
    }
    if let Some(order) = orders::lock_by_id(&tx, order_pk).await? {
        warehouse_db::audit::record(
            &*tx,
            warehouse_db::audit::AuditEntry {
                site_id: Some(&order.site_id),
                order_id: Some(&order.webflow_order_id),
                kind: warehouse_db::audit::AuditKind::Picked,
                actor: ACTOR,
                detail: serde_json::json!({"pick_task_id": *id}),
            },
        )
        .await?;
    }
    tx.commit().await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({"id": *id, "status": "picked"})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PackRequest {
    parcels: Vec<ParcelRow>,
}

pub async fn pack(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let (site_id, order_id) = path.into_inner();
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
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    let order = orders::lock(&tx, &site_id.as_str().into(), &order_id.as_str().into())
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no order {order_id} for site {site_id}")))?;
    let event = pack_order(&tx, &order, &request.parcels, ACTOR, true).await?;
    tx.commit().await?;
    state.publish(ACTOR, event.message_id.as_str()).await;
    Ok(HttpResponse::Ok().json(serde_json::json!({"site_id": site_id, "order_id": order_id, "state": "packed"})))
}
