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
    let view = order_view(&*client, &site_id, &order_id).await?;
    Ok(HttpResponse::Ok().json(view))
}

/// Everything an operator needs about one order, with its timeline.
pub async fn order_view<C: warehouse_db::Db>(
    client: &C,
    site_id: &str,
    order_id: &str,
) -> Result<serde_json::Value, ApiError> {
    let order = orders::find(client, &site_id.into(), &order_id.into())
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
    let timeline = audit::timeline(client, &site_id.into(), &order_id.into()).await?;
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

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RefundRequest {
    reason: String,
}

/// Refunds the order in Webflow (once), then cancels it here (reservation released).
pub async fn refund(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let (site_id, order_id) = path.into_inner();
    let request: RefundRequest = crate::error::parse_json(&body)?;
    if !["duplicate", "fraudulent", "requested"].contains(&request.reason.as_str()) {
        return Err(ApiError::invalid(
            "reason",
            "reason is one of duplicate, fraudulent, requested",
        ));
    }
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    let order = orders::lock(&tx, &site_id.as_str().into(), &order_id.as_str().into())
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no order {order_id} for site {site_id}")))?;
    if matches!(order.state, domain::OrderState::Cancelled) {
        return Err(ApiError::conflict("wrong_state", "the order is already cancelled"));
    }
    let envelope = domain::Envelope::new(
        // One refund per order, however often the button is pressed.
        domain::MessageId::new(format!("refund-{site_id}-{order_id}")),
        order.correlation_id.clone().unwrap_or_else(|| order_id.clone()),
        domain::SiteId::new(site_id.clone()),
        domain::Event::OrderRefundRequestedV1 {
            order_id: domain::OrderId::new(order_id.clone()),
            reason: request.reason.clone(),
        },
    );
    audit::record(
        &*tx,
        audit::AuditEntry {
            site_id: Some(&site_id),
            order_id: Some(&order_id),
            kind: audit::AuditKind::RefundRequested,
            actor: "warehouse-api",
            detail: serde_json::json!({"reason": request.reason}),
        },
    )
    .await?;
    warehouse_db::outbox::enqueue(&tx, &envelope, Some(("warehouse-api", envelope.message_id.as_str()))).await?;
    tx.commit().await?;
    state.publish("warehouse-api", envelope.message_id.as_str()).await;
    Ok(HttpResponse::Accepted()
        .json(serde_json::json!({"site_id": site_id, "order_id": order_id, "refund": "requested"})))
}

#[derive(serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
struct CorrectedAddress {
    addressee: String,
    line1: String,
    #[serde(default)]
    line2: Option<String>,
    city: String,
    #[serde(default)]
    state: Option<String>,
    postal_code: String,
    country: String,
}

/// Corrects the shipping address before packing; Webflow's API cannot change an address, so
/// the correction is noted on the Webflow order's comment (once).
pub async fn correct_address(
    state: web::Data<AppState>,
    path: web::Path<(String, String)>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    let (site_id, order_id) = path.into_inner();
    let address: CorrectedAddress = crate::error::parse_json(&body)?;
    for (field, value) in [
        ("addressee", &address.addressee),
        ("line1", &address.line1),
        ("city", &address.city),
        ("postal_code", &address.postal_code),
    ] {
        if value.trim().is_empty() {
            return Err(ApiError::invalid(field, format!("{field} is required")));
        }
    }
    if address.country.len() != 2 || !address.country.chars().all(|c| c.is_ascii_uppercase()) {
        return Err(ApiError::invalid(
            "country",
            "country is a 2-letter ISO code such as US",
        ));
    }
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    let order = orders::lock(&tx, &site_id.as_str().into(), &order_id.as_str().into())
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no order {order_id} for site {site_id}")))?;
    if order.state.progress() >= domain::OrderState::Packed.progress() {
        return Err(ApiError::conflict(
            "wrong_state",
            format!("order is `{}`; the address can change only before packing", order.state),
        ));
    }
    let webflow_address = serde_json::json!({
        "type": "shipping", "addressee": address.addressee, "line1": address.line1, "line2": address.line2,
        "city": address.city, "state": address.state, "postalCode": address.postal_code, "country": address.country,
    });
    orders::update_shipping_address(&tx, order.id, &webflow_address).await?;
    let one_line = [
        Some(&address.line1),
        address.line2.as_ref(),
        Some(&address.city),
        address.state.as_ref(),
        Some(&address.postal_code),
        Some(&address.country),
    ]
    .into_iter()
    .flatten()
    .filter(|p| !p.is_empty())
    .cloned()
    .collect::<Vec<_>>()
    .join(", ");
    let comment = format!(
        "Shipping address corrected by the warehouse: {}, {one_line}",
        address.addressee
    );
    let digest = comment.bytes().fold(0u64, |h, b| {
        h.wrapping_mul(1_099_511_628_211).wrapping_add(u64::from(b))
    });
    let envelope = domain::Envelope::new(
        domain::MessageId::new(format!("address-{site_id}-{order_id}-{digest:016x}")),
        order.correlation_id.clone().unwrap_or_else(|| order_id.clone()),
        domain::SiteId::new(site_id.clone()),
        domain::Event::OrderAddressCorrectedV1 {
            order_id: domain::OrderId::new(order_id.clone()),
            comment,
        },
    );
    audit::record(
        &*tx,
        audit::AuditEntry {
            site_id: Some(&site_id),
            order_id: Some(&order_id),
            kind: audit::AuditKind::AddressCorrected,
            actor: "warehouse-api",
            detail: serde_json::json!({"applied": true, "by": "warehouse"}),
        },
    )
    .await?;
    warehouse_db::outbox::enqueue(&tx, &envelope, Some(("warehouse-api", envelope.message_id.as_str()))).await?;
    tx.commit().await?;
    state.publish("warehouse-api", envelope.message_id.as_str()).await;
    Ok(HttpResponse::Ok()
        .json(serde_json::json!({"site_id": site_id, "order_id": order_id, "shipping_address": webflow_address})))
}
