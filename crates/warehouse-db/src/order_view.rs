//! The operator's view of one order (state, lines, stock, floor, shipment, timeline), read in
//! one place so the HTTP API (`GET /api/v1/orders/{site_id}/{order_id}`) and `wmsctl order show`
//! render the same typed value.

use crate::audit::{self, TimelineEntry};
use crate::db::{Db, column};
use crate::error::Result;
use crate::floor::{self, ParcelRow, PickTaskStatus, ReservationStatus, ShipmentRow};
use crate::orders;
use domain::{Address, OrderId, OrderState, SiteId, Sku, WebflowOrderStatus};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Everything an operator needs about one order, with its timeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct OrderView {
    #[schema(value_type = String)]
    pub site_id: SiteId,
    #[schema(value_type = String)]
    pub order_id: OrderId,
    /// The order's lifecycle state.
    #[schema(value_type = OrderStateSchema, example = "reserved")]
    pub state: OrderState,
    /// Why the order is in its state (backordered, needs review...), if known.
    pub state_reason: Option<String>,
    /// The order's status in Webflow (`pending`, `unfulfilled`, `fulfilled`, `disputed`,
    /// `dispute-lost`, `refunded`, or a status Webflow added since), if known.
    #[schema(value_type = Option<String>)]
    pub webflow_status: Option<WebflowOrderStatus>,
    pub shipping_required: bool,
    /// The shipping address in Webflow's shape (`addressee`, `line1`, `postalCode`...).
    #[schema(value_type = Option<Object>)]
    pub shipping_address: Option<Address>,
    pub lines: Vec<OrderLineView>,
    /// Stock held for the order, one entry per SKU.
    pub reservation: Vec<ReservationView>,
    pub pick_task: Option<PickTaskRef>,
    pub parcels: Vec<ParcelRow>,
    pub shipment: Option<ShipmentRow>,
    /// Every audit entry about the order, oldest first.
    pub timeline: Vec<TimelineEntry>,
}

/// One ordered line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct OrderLineView {
    #[schema(value_type = String)]
    pub sku: Sku,
    pub quantity: i32,
    pub product_name: Option<String>,
}

/// Stock held (or once held) for one SKU of the order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ReservationView {
    #[schema(value_type = String)]
    pub sku: Sku,
    pub quantity: i64,
    pub status: ReservationStatus,
}

// `domain::OrderState` in the API's schema (the domain crate knows nothing of OpenAPI); a
// test keeps the two lists equal.
/// An order's state in the warehouse's lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[schema(as = OrderState)]
#[serde(rename_all = "snake_case")]
pub enum OrderStateSchema {
    Received,
    Ready,
    Backordered,
    Reserved,
    Packed,
    Shipped,
    Fulfilled,
    Cancelled,
    NeedsReview,
}

/// The order's pick task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct PickTaskRef {
    pub id: i64,
    pub status: PickTaskStatus,
}

/// Reads the view of one order; `None` if the site has no such order.
pub async fn load<C: Db>(client: &C, site_id: &SiteId, order_id: &OrderId) -> Result<Option<OrderView>> {
    let Some(order) = orders::find(client, site_id, order_id).await? else {
        return Ok(None);
    };
    let lines = orders::lines(client, order.id).await?;
    let reservation = reservations(client, order.id).await?;
    let pick_task = floor::pick_task_of_order(client, order.id)
        .await?
        .map(|(id, status)| PickTaskRef { id, status });
    let parcels = floor::parcels(client, order.id).await?;
    let shipment = floor::shipment(client, order.id).await?;
    let timeline = audit::timeline(client, site_id, order_id).await?;
    Ok(Some(OrderView {
        site_id: order.site_id,
        order_id: order.webflow_order_id,
        state: order.state,
        state_reason: order.state_reason,
        webflow_status: order.webflow_status,
        shipping_required: order.shipping_required,
        shipping_address: order.shipping_address,
        lines: lines
            .into_iter()
            .map(|l| OrderLineView {
                sku: l.sku,
                quantity: l.quantity,
                product_name: l.product_name,
            })
            .collect(),
        reservation,
        pick_task,
        parcels,
        shipment,
        timeline,
    }))
}

/// An order's reservations, by SKU.
pub async fn reservations<C: Db>(client: &C, order_pk: i64) -> Result<Vec<ReservationView>> {
    let rows = client
        .query(
            "SELECT sku, quantity, status FROM reservations WHERE order_id = $1 ORDER BY sku",
            &[&order_pk],
        )
        .await?;
    rows.iter()
        .map(|r| {
            Ok(ReservationView {
                sku: r.get(0),
                quantity: r.get(1),
                status: column(r, 2)?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The typed view serialises to the JSON the API answered when it was built by hand.
    #[test]
    fn serialises_to_the_documented_shape() {
        let at = chrono::DateTime::parse_from_rfc3339("2026-01-02T03:04:05Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        let view = OrderView {
            site_id: "site".into(),
            order_id: "o-1".into(),
            state: OrderState::Shipped,
            state_reason: None,
            webflow_status: Some(WebflowOrderStatus::Fulfilled),
            shipping_required: true,
            shipping_address: Some(Address {
                address_type: Some("shipping".into()),
                line1: Some("1 Main St".into()),
                ..Address::default()
            }),
            lines: vec![OrderLineView {
                sku: "ball".into(),
                quantity: 2,
                product_name: None,
            }],
            reservation: vec![ReservationView {
                sku: "ball".into(),
                quantity: 2,
                status: ReservationStatus::Consumed,
            }],
            pick_task: Some(PickTaskRef {
                id: 7,
                status: crate::floor::PickTaskStatus::Packed,
            }),
            parcels: vec![ParcelRow {
                weight_grams: 1.5,
                length_cm: 2.0,
                width_cm: 3.0,
                height_cm: 4.0,
            }],
            shipment: None,
            timeline: vec![TimelineEntry {
                at,
                kind: crate::audit::AuditKind::StateChange,
                actor: "reserve".into(),
                detail: serde_json::json!({"from": null, "to": "new"}),
            }],
        };
        let expected = serde_json::json!({
            "site_id": "site",
            "order_id": "o-1",
            "state": "shipped",
            "state_reason": null,
            "webflow_status": "fulfilled",
            "shipping_required": true,
            "shipping_address": {"addressee": null, "city": null, "country": null, "japanType": null,
                                 "line1": "1 Main St", "line2": null, "postalCode": null, "state": null,
                                 "type": "shipping"},
            "lines": [{"sku": "ball", "quantity": 2, "product_name": null}],
            "reservation": [{"sku": "ball", "quantity": 2, "status": "consumed"}],
            "pick_task": {"id": 7, "status": "packed"},
            "parcels": [{"weight_grams": 1.5, "length_cm": 2.0, "width_cm": 3.0, "height_cm": 4.0}],
            "shipment": null,
            "timeline": [{"at": "2026-01-02T03:04:05Z", "kind": "state_change", "actor": "reserve",
                          "detail": {"from": null, "to": "new"}}],
        });
        assert_eq!(serde_json::to_value(&view).unwrap(), expected);
        let back: OrderView = serde_json::from_value(expected).unwrap();
        assert_eq!(back, view);
    }

    /// The schema's states are the domain's, spelled the same.
    #[test]
    fn the_state_schema_lists_every_state() {
        use OrderStateSchema::*;
        let schema = [
            Received,
            Ready,
            Backordered,
            Reserved,
            Packed,
            Shipped,
            Fulfilled,
            Cancelled,
            NeedsReview,
        ];
        let names = |json: serde_json::Value| json.as_array().unwrap().clone();
        assert_eq!(
            names(serde_json::to_value(schema).unwrap()),
            names(serde_json::to_value(domain::lifecycle::ALL_STATES).unwrap())
        );
    }
}
