//! Picking and packing, shared by the API and the auto-packer.

use crate::error::ApiError;
use domain::{Envelope, Event, MessageId, OrderState};
use warehouse_db::Db;
use warehouse_db::floor::{self, ParcelRow};
use warehouse_db::orders::{self, NewLine, OrderRecord};

/// Packs a reserved order whose pick task is picked: stores the parcels, moves the order to
/// `packed` and writes `order.packed` to the outbox. Returns the event.
pub async fn pack_order<C: Db>(
    tx: &C,
    order: &OrderRecord,
    parcels: &[ParcelRow],
    actor: &str,
    require_picked: bool,
) -> Result<Envelope, ApiError> {
    if order.state != OrderState::Reserved {
        return Err(ApiError::conflict(
            "wrong_state",
            format!("order is `{}`; only a reserved order can be packed", order.state),
        ));
    }
    let (task_id, task_status) = floor::pick_task_of_order(tx, order.id)
        .await?
        .ok_or_else(|| ApiError::conflict("wrong_state", "the order has no pick task"))?;
    match task_status.as_str() {
        "picked" => {}
        "open" if !require_picked => {}
        other => {
            return Err(ApiError::conflict(
                "pick_task_not_picked",
                format!("the pick task is `{other}`; mark it picked first"),
            ));
        }
    }
    floor::set_pick_task_status(tx, task_id, floor::PickTaskStatus::Packed).await?;
    floor::replace_parcels(tx, order.id, parcels).await?;
    orders::transition(tx, order, OrderState::Packed, None, actor).await?;
    let envelope = packed_event(order);
    warehouse_db::outbox::enqueue(tx, &envelope, Some((actor, envelope.message_id.as_str()))).await?;
    Ok(envelope)
}

/// The `order.packed` event of `order`.
fn packed_event(order: &OrderRecord) -> Envelope {
    Envelope::new(
        // One pack per order: a repeated pack event is deduplicated downstream.
        MessageId::new(format!("packed-{}-{}", order.site_id, order.webflow_order_id)),
        order
            .correlation_id
            .clone()
            .unwrap_or_else(|| order.webflow_order_id.to_string()),
        order.site_id.clone(),
        Event::OrderPackedV1 {
            order_id: order.webflow_order_id.clone(),
        },
    )
}

/// One parcel holding every line: total weight, the largest footprint, stacked heights.
/// Missing weights or dimensions fall back to 100 g and 10 cm.
pub fn parcel_for(lines: &[NewLine]) -> ParcelRow {
    let mut parcel = ParcelRow {
        weight_grams: 0.0,
        length_cm: 0.0,
        width_cm: 0.0,
        height_cm: 0.0,
    };
    for line in lines {
        let quantity = f64::from(line.quantity.max(1));
        let positive = |v: Option<f64>, default: f64| v.filter(|v| *v > 0.0).unwrap_or(default);
        parcel.weight_grams += positive(line.unit_weight, 100.0) * quantity;
        parcel.length_cm = parcel.length_cm.max(positive(line.unit_length, 10.0));
        parcel.width_cm = parcel.width_cm.max(positive(line.unit_width, 10.0));
        parcel.height_cm += positive(line.unit_height, 10.0) * quantity;
    }
    if lines.is_empty() {
        parcel = ParcelRow {
            weight_grams: 100.0,
            length_cm: 10.0,
            width_cm: 10.0,
            height_cm: 10.0,
        };
    }
    parcel
}

/// Picks and packs up to `limit` reserved orders in one transaction of four statements
/// whatever their number (lock, read the lines, pack, commit); returns the events to publish.
pub async fn auto_pack_batch(pool: &warehouse_db::Pool, limit: i64) -> Result<Vec<Envelope>, ApiError> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let orders = orders::lock_packable(&tx, limit).await?;
    if orders.is_empty() {
        return Ok(Vec::new());
    }
    for order in &orders {
        order
            .state
            .transition(OrderState::Packed)
            .map_err(warehouse_db::DbError::from)?;
    }
    let ids: Vec<i64> = orders.iter().map(|o| o.id).collect();
    let mut lines = orders::lines_of(&tx, &ids).await?;
    let events: Vec<Envelope> = orders.iter().map(packed_event).collect();
    let packs: Vec<floor::Pack<'_>> = orders
        .iter()
        .zip(&events)
        .map(|(order, event)| floor::Pack {
            order,
            parcel: parcel_for(&lines.remove(&order.id).unwrap_or_default()),
            event,
        })
        .collect();
    floor::pack_batch(&tx, &packs, "auto-pack").await?;
    tx.commit().await?;
    Ok(events)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(quantity: i32, weight: Option<f64>, l: f64, w: f64, h: f64) -> NewLine {
        NewLine {
            sku: "s".into(),
            variant_id: None,
            product_name: None,
            quantity,
            unit_weight: weight,
            unit_width: Some(w),
            unit_height: Some(h),
            unit_length: Some(l),
        }
    }

    #[test]
    fn one_parcel_holds_every_line() {
        let parcel = parcel_for(&[line(2, Some(11.0), 9.0, 82.0, 70.0), line(1, None, 40.0, 76.0, 85.0)]);
        assert_eq!(
            parcel,
            ParcelRow {
                weight_grams: 122.0,
                length_cm: 40.0,
                width_cm: 82.0,
                height_cm: 225.0
            }
        );
    }
}
