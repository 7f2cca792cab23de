//! Orders: the operator's view, refunds and address corrections.

use super::{AppState, OrderPath, authorized_order};
use crate::auth::{Operator, Role, order_not_found};
use crate::error::{ApiError, ErrorBody, printable};
use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use warehouse_db::{OrderView, audit, orders};

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

/// What a refund request answers.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct RefundAccepted {
    pub site_id: String,
    pub order_id: String,
    /// Always `requested`: the refund is sent to Webflow once, asynchronously.
    #[schema(example = "requested")]
    pub refund: String,
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

/// Requests the refund (the API's and the console's one code path).
pub async fn request_refund(
    state: &AppState,
    operator: &Operator,
    site_id: &str,
    order_id: &str,
    reason: &str,
) -> Result<RefundAccepted, ApiError> {
    operator.require(Role::Admin)?;
    operator.check_site(site_id, order_id)?;
    let (site_id, order_id) = (site_id.to_owned(), order_id.to_owned());
    if !["duplicate", "fraudulent", "requested"].contains(&reason) {
        return Err(ApiError::invalid(
            "reason",
            "reason is one of duplicate, fraudulent, requested",
        ));
    }
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    let order = orders::lock(&tx, &site_id.as_str().into(), &order_id.as_str().into())
        .await?
        .ok_or_else(|| order_not_found(&site_id, &order_id))?;
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
            reason: reason.to_owned(),
        },
    );
    audit::record(
        &*tx,
        audit::AuditEntry::about(
            &site_id,
            &order_id,
            audit::AuditKind::RefundRequested,
            &operator.name,
            serde_json::json!({"reason": reason}),
        ),
    )
    .await?;
    warehouse_db::outbox::enqueue(&tx, &envelope, Some((&operator.name, envelope.message_id.as_str()))).await?;
    tx.commit().await?;
    state.publish(&operator.name, envelope.message_id.as_str()).await;
    Ok(RefundAccepted {
        site_id,
        order_id,
        refund: "requested".to_owned(),
    })
}

/// A corrected shipping address. Text fields contain no control characters; the required ones
/// are not blank either.
#[derive(Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CorrectedAddress {
    #[schema(
        min_length = 1,
        pattern = r"^[^\x00-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F][^\x00-\x1F\x7F-\x9F]*$"
    )]
    pub addressee: String,
    #[schema(
        min_length = 1,
        pattern = r"^[^\x00-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F][^\x00-\x1F\x7F-\x9F]*$"
    )]
    pub line1: String,
    #[serde(default)]
    #[schema(pattern = r"^[^\x00-\x1F\x7F-\x9F]*$")]
    pub line2: Option<String>,
    #[schema(
        min_length = 1,
        pattern = r"^[^\x00-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F][^\x00-\x1F\x7F-\x9F]*$"
    )]
    pub city: String,
    #[serde(default)]
    #[schema(pattern = r"^[^\x00-\x1F\x7F-\x9F]*$")]
    pub state: Option<String>,
    #[schema(
        min_length = 1,
        pattern = r"^[^\x00-\x1F\x7F-\x9F]*[^\s\x00-\x1F\x7F-\x9F][^\x00-\x1F\x7F-\x9F]*$"
    )]
    pub postal_code: String,
    /// A 2-letter ISO 3166 code such as `US`.
    #[schema(min_length = 2, max_length = 2, pattern = "^[A-Z]{2}$", example = "US")]
    pub country: String,
}

/// What an address correction answers.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct AddressCorrected {
    pub site_id: String,
    pub order_id: String,
    /// The stored address, in Webflow's shape (`addressee`, `line1`, `postalCode`...).
    #[schema(value_type = Object)]
    pub shipping_address: domain::Address,
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
    let corrected = apply_address_correction(&state, &operator, &site_id, &order_id, &address).await?;
    Ok(HttpResponse::Ok().json(corrected))
}

/// Checks and stores a corrected address (the API's and the console's one code path).
pub async fn apply_address_correction(
    state: &AppState,
    operator: &Operator,
    site_id: &str,
    order_id: &str,
    address: &CorrectedAddress,
) -> Result<AddressCorrected, ApiError> {
    operator.require(Role::Admin)?;
    operator.check_site(site_id, order_id)?;
    let (site_id, order_id) = (site_id.to_owned(), order_id.to_owned());
    for (field, value) in [
        ("addressee", Some(&address.addressee)),
        ("line1", Some(&address.line1)),
        ("line2", address.line2.as_ref()),
        ("city", Some(&address.city)),
        ("state", address.state.as_ref()),
        ("postal_code", Some(&address.postal_code)),
        ("country", Some(&address.country)),
    ] {
        if let Some(value) = value {
            printable(field, value, None)?;
        }
    }
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
        .ok_or_else(|| order_not_found(&site_id, &order_id))?;
    if order.state.progress() >= domain::OrderState::Packed.progress() {
        return Err(ApiError::conflict(
            "wrong_state",
            format!("order is `{}`; the address can change only before packing", order.state),
        ));
    }
    let webflow_address = domain::Address {
        address_type: Some("shipping".into()),
        addressee: Some(address.addressee.clone()),
        line1: Some(address.line1.clone()),
        line2: address.line2.clone(),
        city: Some(address.city.clone()),
        state: address.state.clone(),
        postal_code: Some(address.postal_code.clone()),
        country: Some(address.country.clone()),
        japan_type: None,
    };
    orders::override_shipping_address(&tx, order.id, &webflow_address).await?;
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
        audit::AuditEntry::about(
            &site_id,
            &order_id,
            audit::AuditKind::AddressCorrected,
            &operator.name,
            serde_json::json!({"applied": true, "by": "warehouse"}),
        ),
    )
    .await?;
    warehouse_db::outbox::enqueue(&tx, &envelope, Some((&operator.name, envelope.message_id.as_str()))).await?;
    tx.commit().await?;
    state.publish(&operator.name, envelope.message_id.as_str()).await;
    Ok(AddressCorrected {
        site_id,
        order_id,
        shipping_address: webflow_address,
    })
}
