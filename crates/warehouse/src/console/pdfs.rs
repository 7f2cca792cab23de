//! The label and the packing slip, as PDFs.

use super::{ConsoleState, Page, session};
use crate::auth::{Role, order_not_found};
use crate::state::AppState;
use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use carrier::pdf::{Item, document};
use warehouse_db::OrderView;

async fn load(
    state: &AppState,
    console: &ConsoleState,
    request: &HttpRequest,
    site_id: &str,
    order_id: &str,
) -> Result<OrderView, super::ConsoleError> {
    let session = session(state, console, request).await?;
    session.operator.require(Role::Read)?;
    session.operator.check_site(site_id, order_id)?;
    let client = state.pool.get().await?;
    Ok(
        warehouse_db::order_view::load(&*client, &site_id.into(), &order_id.into())
            .await?
            .ok_or_else(|| order_not_found(site_id, order_id))?,
    )
}

fn address_lines(view: &OrderView) -> Vec<String> {
    let a = view.shipping_address.clone().unwrap_or_default();
    let s = |field: &Option<String>| field.as_deref().unwrap_or_default().trim().to_owned();
    [
        s(&a.addressee),
        s(&a.line1),
        s(&a.line2),
        [s(&a.postal_code), s(&a.city), s(&a.state)]
            .into_iter()
            .filter(|p| !p.is_empty())
            .collect::<Vec<_>>()
            .join(" "),
        s(&a.country),
    ]
    .into_iter()
    .filter(|l| !l.is_empty())
    .collect()
}

fn pdf(name: &str, bytes: Vec<u8>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/pdf")
        .insert_header((header::CONTENT_DISPOSITION, format!("inline; filename=\"{name}\"")))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(bytes)
}

/// The shipping label: the sandbox carrier's label rendered here, or the carrier's own PDF.
pub async fn label(
    state: web::Data<AppState>,
    console: web::Data<ConsoleState>,
    request: HttpRequest,
    path: web::Path<(String, String)>,
) -> Page {
    let (site_id, order_id) = path.into_inner();
    let view = load(&state, &console, &request, &site_id, &order_id).await?;
    let shipment = view
        .shipment
        .as_ref()
        .filter(|s| s.status == warehouse_db::floor::ShipmentStatus::Booked)
        .ok_or_else(|| crate::error::ApiError::not_found("no label yet: the carrier has not booked this order"))?;
    if shipment.carrier_kind != "sandbox" {
        // A real carrier's label is its own document.
        let url = shipment
            .label_url
            .clone()
            .ok_or_else(|| crate::error::ApiError::not_found("the carrier gave no label"))?;
        return Ok(HttpResponse::SeeOther().insert_header((header::LOCATION, url)).finish());
    }
    let info = carrier::sandbox::LabelInfo {
        carrier: shipment.carrier.clone().unwrap_or_else(|| "Sandbox Express".into()),
        service: shipment.service_level.clone().unwrap_or_default(),
        tracking_number: shipment.tracking_number.clone().unwrap_or_default(),
        reference: shipment.reference.clone(),
        ship_from: vec!["Webflow WMS Bridge warehouse".into(), format!("Store {site_id}")],
        ship_to: address_lines(&view),
        weight_grams: view.parcels.iter().map(|p| p.weight_grams).sum(),
    };
    Ok(pdf(
        &format!("label-{order_id}.pdf"),
        carrier::sandbox::label_pdf(&info).map_err(pdf_failed)?,
    ))
}

/// The packing slip: what is in the box, for the customer (US Letter).
pub async fn packing_slip(
    state: web::Data<AppState>,
    console: web::Data<ConsoleState>,
    request: HttpRequest,
    path: web::Path<(String, String)>,
) -> Page {
    let (site_id, order_id) = path.into_inner();
    let view = load(&state, &console, &request, &site_id, &order_id).await?;
    let mut items = vec![
        Item::bold(54.0, 740.0, 20.0, "Packing slip"),
        Item::text(54.0, 716.0, 11.0, format!("Order {order_id}")),
        Item::text(54.0, 702.0, 9.0, format!("Store {site_id}")),
        Item::bold(340.0, 740.0, 9.0, "SHIP TO"),
    ];
    let mut y = 726.0;
    for line in address_lines(&view) {
        items.push(Item::text(340.0, y, 11.0, line));
        y -= 14.0;
    }
    y = 650.0;
    items.push(Item::bold(54.0, y, 10.0, "SKU"));
    items.push(Item::bold(250.0, y, 10.0, "Item"));
    items.push(Item::bold(500.0, y, 10.0, "Qty"));
    items.push(Item::Line {
        x1: 54.0,
        y1: y - 6.0,
        x2: 558.0,
        y2: y - 6.0,
        width: 0.75,
    });
    y -= 22.0;
    for line in &view.lines {
        let sku: String = line.sku.as_str().chars().take(34).collect();
        items.push(Item::text(54.0, y, 10.0, sku));
        items.push(Item::text(
            250.0,
            y,
            10.0,
            line.product_name
                .clone()
                .unwrap_or_default()
                .chars()
                .take(42)
                .collect::<String>(),
        ));
        items.push(Item::text(500.0, y, 10.0, line.quantity.to_string()));
        y -= 18.0;
        if y < 80.0 {
            break;
        }
    }
    let units: i64 = view.lines.iter().map(|l| i64::from(l.quantity)).sum();
    items.push(Item::bold(
        54.0,
        y - 10.0,
        10.0,
        format!("{units} item(s) in this parcel"),
    ));
    items.push(Item::text(54.0, 54.0, 8.0, "Thank you for your order."));
    Ok(pdf(
        &format!("packing-slip-{order_id}.pdf"),
        document(612.0, 792.0, &[items]).map_err(pdf_failed)?,
    ))
}

fn pdf_failed(error: carrier::pdf::PdfError) -> crate::error::ApiError {
    tracing::error!(%error, "a PDF could not be written");
    crate::error::ApiError::new(
        actix_web::http::StatusCode::INTERNAL_SERVER_ERROR,
        "pdf_failed",
        "the document could not be written",
    )
}
