use super::AppState;
use crate::error::ApiError;
use actix_web::{HttpResponse, web};
use warehouse_db::{audit, floor, orders};

pub async fn get_order(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (site_id, order_id) = path.into_inner();
    let client = state.pool.get().await?;
    let view = order_view(&**client, &site_id, &order_id).await?;
    Ok(HttpResponse::Ok().json(view))
}

/// Everything an operator needs about one order, with its timeline.
pub async fn order_view<C: tokio_postgres::GenericClient + Sync>(
    client: &C,
    site_id: &str,
    order_id: &str,
) -> Result<serde_json::Value, ApiError> {
    let order = orders::find(client, site_id, order_id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no order {order_id} for site {site_id}")))?;
    let lines = orders::lines(client, order.id).await?;
    let reservations: Vec<serde_json::Value> = client
        .query("SELECT sku, quantity, status FROM reservations WHERE order_id = $1 ORDER BY sku", &[&order.id])
        .await?
        .iter()
        .map(|r| serde_json::json!({"sku": r.get::<_, String>(0), "quantity": r.get::<_, i64>(1), "status": r.get::<_, String>(2)}))
        .collect();
    let pick_task = floor::pick_task_of_order(client, order.id)
        .await?
        .map(|(id, status)| serde_json::json!({"id": id, "status": status}));
    let parcels = floor::parcels(client, order.id).await?;
    let shipment = floor::shipment(client, order.id).await?;
    let timeline = audit::timeline(client, site_id, order_id).await?;
    Ok(serde_json::json!({
        "site_id": order.site_id,
        "order_id": order.webflow_order_id,
        "state": order.state.as_str(),
        "state_reason": order.state_reason,
        "webflow_status": order.webflow_status,
        "shipping_required": order.shipping_required,
        "shipping_address": order.shipping_address,
        "lines": lines.iter().map(|l| serde_json::json!({"sku": l.sku, "quantity": l.quantity, "product_name": l.product_name})).collect::<Vec<_>>(),
        "reservation": reservations,
        "pick_task": pick_task,
        "parcels": parcels,
        "shipment": shipment,
        "timeline": timeline,
    }))
}
