//! The floor: marking pick tasks picked and packing orders, by an operator (API and console)
//! or by the auto-packer (`warehouse.auto_pack`).

use super::{CommandError, enqueue, in_transaction, with_outbox};
use crate::auth::{Operator, Role, order_not_found};
use crate::state::AppState;
use domain::{Envelope, Event, MessageId, OrderState};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use warehouse_db::Transaction;
use warehouse_db::floor::{self, ParcelRow};
use warehouse_db::orders::{self, NewLine, OrderRecord};

/// A pick task marked picked.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct PickedTask {
    pub id: i64,
    /// Always `picked`.
    #[schema(example = "picked")]
    pub status: String,
}

/// Marks a pick task picked (idempotent), with an audit entry. Emits nothing.
pub async fn mark_picked(state: &AppState, operator: &Operator, id: i64) -> Result<PickedTask, CommandError> {
    operator.require(Role::Floor)?;
    in_transaction(&state.pool, async |tx| {
        let not_found = || CommandError::NotFound(format!("no pick task {id}"));
        // The order first, then its task: the lock order of every order-level command (pack,
        // cancel, review), which lock the order and then its pick task.
        let order = floor::lock_order_of_pick_task(tx, id).await?.ok_or_else(not_found)?;
        let (order_pk, status) = floor::lock_pick_task(tx, id).await?.ok_or_else(not_found)?;
        if order_pk != order.id {
            return Err(warehouse_db::DbError::Invariant(format!("pick task {id} moved to another order")).into());
        }
        if !operator.sees_site(order.site_id.as_str()) {
            return Err(not_found());
        }
        match status.as_str() {
            "open" => floor::set_pick_task_status(tx, id, floor::PickTaskStatus::Picked).await?,
            "picked" => {}
            other => {
                return Err(CommandError::conflict(
                    "wrong_state",
                    format!("pick task {id} is `{other}`"),
                ));
            }
        }
        warehouse_db::audit::record(
            &**tx,
            warehouse_db::audit::AuditEntry::for_order(
                &order,
                warehouse_db::audit::AuditKind::Picked,
                &operator.name,
                serde_json::json!({"pick_task_id": id}),
            ),
        )
        .await?;
        Ok(PickedTask {
            id,
            status: "picked".to_owned(),
        })
    })
    .await
}

/// A packed order.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct Packed {
    pub site_id: String,
    pub order_id: String,
    /// Always `packed`.
    #[schema(example = "packed")]
    pub state: String,
}

/// Packs a reserved order whose pick task is picked into `parcels`: the order moves to
/// `packed` and `order.packed` is emitted (the carrier books the shipment).
pub async fn pack(
    state: &AppState,
    operator: &Operator,
    site_id: &str,
    order_id: &str,
    parcels: &[ParcelRow],
) -> Result<Packed, CommandError> {
    pack_into(state, operator, site_id, order_id, Parcels::Given(parcels)).await
}

/// Packs a reserved order whose pick task is picked into one parcel holding every line (the
/// console's pack station, which has no scale): see [`parcel_for`].
pub async fn pack_in_one_parcel(
    state: &AppState,
    operator: &Operator,
    site_id: &str,
    order_id: &str,
) -> Result<Packed, CommandError> {
    pack_into(state, operator, site_id, order_id, Parcels::OneForEveryLine).await
}

/// What an order is packed into.
enum Parcels<'a> {
    /// Weighed and measured by the operator.
    Given(&'a [ParcelRow]),
    /// One parcel for every line, read with the order locked ([`parcel_for`]).
    OneForEveryLine,
}

async fn pack_into(
    state: &AppState,
    operator: &Operator,
    site_id: &str,
    order_id: &str,
    parcels: Parcels<'_>,
) -> Result<Packed, CommandError> {
    operator.require(Role::Floor)?;
    operator.check_site(site_id, order_id)?;
    with_outbox(state, &operator.name, async |tx| {
        let order = orders::lock(tx, &site_id.into(), &order_id.into())
            .await?
            .ok_or_else(|| order_not_found(site_id, order_id))?;
        let event = match parcels {
            Parcels::Given(parcels) => pack_order(tx, &order, parcels, &operator.name).await?,
            Parcels::OneForEveryLine => {
                let lines = orders::lines(tx, order.id).await?;
                pack_order(tx, &order, &[parcel_for(&lines)], &operator.name).await?
            }
        };
        let packed = Packed {
            site_id: site_id.to_owned(),
            order_id: order_id.to_owned(),
            state: "packed".to_owned(),
        };
        Ok((packed, vec![event]))
    })
    .await
}

/// Packs a reserved order whose pick task is picked: stores the parcels, moves the order to
/// `packed` and writes `order.packed` to the outbox. Returns the event.
async fn pack_order(
    tx: &Transaction<'_>,
    order: &OrderRecord,
    parcels: &[ParcelRow],
    actor: &str,
) -> Result<Envelope, CommandError> {
    if order.state != OrderState::Reserved {
        return Err(CommandError::conflict(
            "wrong_state",
            format!("order is `{}`; only a reserved order can be packed", order.state),
        ));
    }
    let (task_id, task_status) = floor::pick_task_of_order(tx, order.id)
        .await?
        .ok_or_else(|| CommandError::conflict("wrong_state", "the order has no pick task"))?;
    match task_status.as_str() {
        "picked" => {}
        other => {
            return Err(CommandError::conflict(
                "pick_task_not_picked",
                format!("the pick task is `{other}`; mark it picked first"),
            ));
        }
    }
    floor::set_pick_task_status(tx, task_id, floor::PickTaskStatus::Packed).await?;
    floor::replace_parcels(tx, order.id, parcels).await?;
    orders::transition(tx, order, OrderState::Packed, None, actor).await?;
    let envelope = packed_event(order);
    enqueue(tx, actor, &envelope).await?;
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

/// Picks and packs up to `limit` reserved orders, then publishes their `order.packed` events
/// at once (fresh rows, with their confirms in flight together, marked in the background; a
/// miss is the relay's). Returns the events.
pub async fn auto_pack(state: &AppState, limit: i64) -> Result<Vec<Envelope>, CommandError> {
    let events = auto_pack_batch(&state.pool, limit).await?;
    if !events.is_empty()
        && let Err(error) = state.outbox.publish_committed(&events).await
    {
        tracing::warn!(%error, "events committed; the outbox relay will publish them");
    }
    Ok(events)
}

/// Picks and packs up to `limit` reserved orders in one transaction of four statements
/// whatever their number (lock, read the lines, pack, commit); returns the committed events,
/// not published yet.
pub async fn auto_pack_batch(pool: &warehouse_db::Pool, limit: i64) -> Result<Vec<Envelope>, CommandError> {
    in_transaction(pool, async |tx| {
        let orders = orders::lock_packable(tx, limit).await?;
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
        let mut lines = orders::lines_of(tx, &ids).await?;
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
        floor::pack_batch(tx, &packs, AUTO_PACK_ACTOR).await?;
        Ok(events)
    })
    .await
}

/// The actor the auto-packer's changes are recorded under.
const AUTO_PACK_ACTOR: &str = "auto-pack";

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
