//! The warehouse floor: pick tasks, packing, shipments.

use crate::db::Db;
use crate::error::{DbError, Result, UnknownValue};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Defines a status enum stored as text, with its one mapping to and from the column's values
/// (the migration's CHECK constraint lists the same values; this module's statements use them).
macro_rules! db_status {
    ($(#[$doc:meta])* $name:ident, $what:literal { $($(#[$vdoc:meta])* $variant:ident => $db:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $($(#[$vdoc])* $variant,)+
        }

        impl $name {
            pub const ALL: &'static [Self] = &[$(Self::$variant),+];

            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $db,)+
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        /// Read straight from a text column; the CHECK constraint keeps unknown values out.
        impl<'a> tokio_postgres::types::FromSql<'a> for $name {
            fn from_sql(
                ty: &tokio_postgres::types::Type,
                raw: &'a [u8],
            ) -> std::result::Result<Self, Box<dyn std::error::Error + Sync + Send>> {
                let text = <&str as tokio_postgres::types::FromSql>::from_sql(ty, raw)?;
                Ok(text.parse()?)
            }

            fn accepts(ty: &tokio_postgres::types::Type) -> bool {
                <&str as tokio_postgres::types::FromSql>::accepts(ty)
            }
        }

        impl std::str::FromStr for $name {
            type Err = UnknownValue;

            fn from_str(value: &str) -> std::result::Result<Self, Self::Err> {
                match value {
                    $($db => Ok(Self::$variant),)+
                    other => Err(UnknownValue::new($what, other)),
                }
            }
        }
    };
}

db_status!(
    /// `reservations.status`: stock held for an order, given back, or gone with the parcel.
    ReservationStatus, "reservation status" {
        Active => "active",
        Released => "released",
        Consumed => "consumed",
    }
);

db_status!(
    /// `pick_tasks.status`.
    PickTaskStatus, "pick task status" {
        /// Created with the reservation, waiting for a picker.
        Open => "open",
        Picked => "picked",
        Packed => "packed",
        /// The order was cancelled before packing.
        Cancelled => "cancelled",
    }
);

db_status!(
    /// `shipments.status`.
    ShipmentStatus, "shipment status" {
        /// A label is being bought (or the outcome of buying one is unknown).
        Booking => "booking",
        Booked => "booked",
        Failed => "failed",
        /// The order was cancelled while its label was being bought; the label was voided.
        Voided => "voided",
    }
);

/// A pick task with what to take from the shelves.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct PickTask {
    pub id: i64,
    #[schema(value_type = String)]
    pub site_id: domain::SiteId,
    #[schema(value_type = String)]
    pub order_id: domain::OrderId,
    /// `open`, `picked`, `packed` or `cancelled`.
    pub status: PickTaskStatus,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub lines: Vec<PickLine>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct PickLine {
    #[schema(value_type = String)]
    pub sku: domain::Sku,
    pub quantity: i64,
}

/// One parcel: every measure is above 0.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct ParcelRow {
    #[schema(exclusive_minimum = 0.0)]
    pub weight_grams: f64,
    #[schema(exclusive_minimum = 0.0)]
    pub length_cm: f64,
    #[schema(exclusive_minimum = 0.0)]
    pub width_cm: f64,
    #[schema(exclusive_minimum = 0.0)]
    pub height_cm: f64,
}

/// An order's shipment: booking attempts, then the carrier's label and tracking.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, ToSchema)]
pub struct ShipmentRow {
    pub reference: String,
    pub carrier_kind: String,
    /// `booking`, `booked`, `failed` or `voided`.
    pub status: ShipmentStatus,
    pub attempts: i32,
    pub carrier: Option<String>,
    pub service_level: Option<String>,
    pub tracking_number: Option<String>,
    pub tracking_url: Option<String>,
    pub label_url: Option<String>,
    pub cost_minor: Option<i64>,
    pub currency: Option<String>,
    pub external_id: Option<String>,
    pub shipped_at: Option<chrono::DateTime<chrono::Utc>>,
    pub last_error: Option<String>,
}

/// The columns `pick_task_from_row` reads: a task, its order's ids and its lines as JSON.
const PICK_TASK_COLUMNS: &str = "SELECT t.id, o.site_id, o.webflow_order_id, t.status, t.created_at,
        COALESCE(json_agg(json_build_object('sku', l.sku, 'quantity', l.quantity) ORDER BY l.sku)
                 FILTER (WHERE l.sku IS NOT NULL), '[]')
 FROM pick_tasks t JOIN orders o ON o.id = t.order_id
 LEFT JOIN pick_task_lines l ON l.pick_task_id = t.id";

fn pick_task_from_row(row: &tokio_postgres::Row) -> PickTask {
    let lines: serde_json::Value = row.get(5);
    PickTask {
        id: row.get(0),
        site_id: row.get(1),
        order_id: row.get(2),
        status: row.get(3),
        created_at: row.get(4),
        lines: lines
            .as_array()
            .into_iter()
            .flatten()
            .map(|line| PickLine {
                sku: domain::Sku::from(line["sku"].as_str().unwrap_or_default()),
                quantity: line["quantity"].as_i64().unwrap_or_default(),
            })
            .collect(),
    }
}

/// Pick tasks, oldest first, optionally of one status and of some stores only (`sites =
/// None`: every store, for a token that sees them all).
pub async fn pick_tasks<C: Db>(
    client: &C,
    status: Option<PickTaskStatus>,
    sites: Option<&[String]>,
    limit: i64,
) -> Result<Vec<PickTask>> {
    let rows = client
        .query(
            &format!(
                "{PICK_TASK_COLUMNS}
                 WHERE ($1::text IS NULL OR t.status = $1) AND ($2::text[] IS NULL OR o.site_id = ANY($2))
                 GROUP BY t.id, o.site_id, o.webflow_order_id ORDER BY t.created_at, t.id LIMIT $3"
            ),
            &[&status.map(PickTaskStatus::as_str), &sites, &limit],
        )
        .await?;
    Ok(rows.iter().map(pick_task_from_row).collect())
}

/// A pick task by id with its order's site and id.
pub async fn pick_task<C: Db>(client: &C, id: i64) -> Result<Option<PickTask>> {
    let rows = client
        .query(
            &format!("{PICK_TASK_COLUMNS} WHERE t.id = $1 GROUP BY t.id, o.site_id, o.webflow_order_id"),
            &[&id],
        )
        .await?;
    Ok(rows.first().map(pick_task_from_row))
}

/// One order of an auto-pack batch: the order (locked, `reserved`), its one parcel and its
/// `order.packed` event.
pub struct Pack<'a> {
    pub order: &'a crate::orders::OrderRecord,
    pub parcel: ParcelRow,
    pub event: &'a domain::Envelope,
}

/// Packs a batch of locked reserved orders in one statement: each pick task `packed`, its one
/// parcel stored, the order `packed` with its audit entry, and its event in the outbox (with
/// `actor` as the source, keyed by the event's own id). Fails, changing nothing once the
/// caller rolls back, unless every order and pick task changed.
pub async fn pack_batch<C: Db>(client: &C, packs: &[Pack<'_>], actor: &str) -> Result<()> {
    if packs.is_empty() {
        return Ok(());
    }
    let mut payloads = Vec::with_capacity(packs.len());
    for pack in packs {
        payloads.push(serde_json::to_value(pack.event).map_err(|e| DbError::Serialize {
            what: "an event",
            message: e.to_string(),
        })?);
    }
    let ids: Vec<i64> = packs.iter().map(|p| p.order.id).collect();
    let versions: Vec<i64> = packs.iter().map(|p| p.order.version).collect();
    let measure = |f: fn(&ParcelRow) -> f64| packs.iter().map(|p| f(&p.parcel)).collect::<Vec<f64>>();
    let message_ids: Vec<&str> = packs.iter().map(|p| p.event.message_id.as_str()).collect();
    let routing_keys: Vec<&str> = packs.iter().map(|p| p.event.event.routing_key()).collect();
    let row = client
        .query_one(
            "WITH input AS (
                 SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::float8[], $4::float8[], $5::float8[],
                                      $6::float8[], $7::text[], $8::text[], $9::jsonb[])
                     AS i(order_id, version, weight_grams, length_cm, width_cm, height_cm, message_id,
                          routing_key, payload)),
             tasks AS (
                 UPDATE pick_tasks t SET status = 'packed', updated_at = now()
                 FROM input WHERE t.order_id = input.order_id AND t.status IN ('open', 'picked')
                 RETURNING t.order_id),
             extra_parcels AS (
                 DELETE FROM parcels p USING input WHERE p.order_id = input.order_id AND p.parcel_no > 1),
             parcel AS (
                 INSERT INTO parcels (order_id, parcel_no, weight_grams, length_cm, width_cm, height_cm)
                 SELECT order_id, 1, weight_grams, length_cm, width_cm, height_cm FROM input
                 ON CONFLICT (order_id, parcel_no) DO UPDATE SET weight_grams = EXCLUDED.weight_grams,
                     length_cm = EXCLUDED.length_cm, width_cm = EXCLUDED.width_cm, height_cm = EXCLUDED.height_cm),
             changed AS (
                 UPDATE orders o SET state = 'packed', state_reason = NULL, version = o.version + 1, updated_at = now()
                 FROM input WHERE o.id = input.order_id AND o.version = input.version AND o.state = 'reserved'
                 RETURNING o.id, o.site_id, o.webflow_order_id),
             audited AS (
                 INSERT INTO audit_log (site_id, webflow_order_id, kind, actor, detail)
                 SELECT site_id, webflow_order_id, $10::text, $11::text,
                        jsonb_build_object('from', 'reserved', 'to', 'packed', 'reason', NULL)
                 FROM changed),
             queued AS (
                 INSERT INTO outbox (message_id, routing_key, payload, source_consumer, source_message_id)
                 SELECT input.message_id, input.routing_key, input.payload, $11::text, input.message_id
                 FROM input JOIN changed ON changed.id = input.order_id
                 ON CONFLICT (message_id) DO NOTHING)
             SELECT (SELECT count(*) FROM changed), (SELECT count(*) FROM tasks)",
            &[
                &ids,
                &versions,
                &measure(|p| p.weight_grams),
                &measure(|p| p.length_cm),
                &measure(|p| p.width_cm),
                &measure(|p| p.height_cm),
                &message_ids,
                &routing_keys,
                &payloads,
                &crate::audit::AuditKind::StateChange.as_str(),
                &actor,
            ],
        )
        .await?;
    let (changed, tasks): (i64, i64) = (row.get(0), row.get(1));
    let expected = i64::try_from(packs.len()).unwrap_or(i64::MAX);
    if changed != expected || tasks != expected {
        return Err(DbError::ConcurrentChange(format!(
            "auto-pack: {changed} of {expected} orders and {tasks} pick tasks changed"
        )));
    }
    Ok(())
}

/// Locks the order a pick task belongs to (only the order row), before the task itself: the
/// one lock order of every path is the order first, then its pick task ([`lock_pick_task`]).
/// `None`: no such task.
pub async fn lock_order_of_pick_task<C: Db>(client: &C, id: i64) -> Result<Option<crate::orders::OrderRecord>> {
    const SQL: &str = concat!(
        "SELECT ",
        crate::orders::columns!(),
        " FROM orders WHERE id = (SELECT order_id FROM pick_tasks WHERE id = $1) FOR UPDATE"
    );
    client
        .query_opt(SQL, &[&id])
        .await?
        .as_ref()
        .map(crate::orders::from_row)
        .transpose()
}

/// Locks a pick task; returns (order pk, status). Lock its order first
/// ([`lock_order_of_pick_task`]): an order-level command (pack, cancel) holding the order and
/// waiting for the task would otherwise deadlock with this one.
pub async fn lock_pick_task<C: Db>(client: &C, id: i64) -> Result<Option<(i64, PickTaskStatus)>> {
    let row = client
        .query_opt(
            "SELECT order_id, status FROM pick_tasks WHERE id = $1 FOR UPDATE",
            &[&id],
        )
        .await?;
    Ok(match row {
        Some(r) => Some((r.get(0), r.get::<_, &str>(1).parse()?)),
        None => None,
    })
}

pub async fn pick_task_of_order<C: Db>(client: &C, order_pk: i64) -> Result<Option<(i64, PickTaskStatus)>> {
    let row = client
        .query_opt(
            "SELECT id, status FROM pick_tasks WHERE order_id = $1 FOR UPDATE",
            &[&order_pk],
        )
        .await?;
    Ok(match row {
        Some(r) => Some((r.get(0), r.get::<_, &str>(1).parse()?)),
        None => None,
    })
}

pub async fn set_pick_task_status<C: Db>(client: &C, id: i64, status: PickTaskStatus) -> Result<()> {
    client
        .execute(
            "UPDATE pick_tasks SET status = $2, updated_at = now() WHERE id = $1",
            &[&id, &status.as_str()],
        )
        .await?;
    Ok(())
}

pub async fn replace_parcels<C: Db>(client: &C, order_pk: i64, parcels: &[ParcelRow]) -> Result<()> {
    client
        .execute("DELETE FROM parcels WHERE order_id = $1", &[&order_pk])
        .await?;
    for (index, p) in parcels.iter().enumerate() {
        let no = i32::try_from(index + 1).unwrap_or(i32::MAX);
        client
            .execute(
                "INSERT INTO parcels (order_id, parcel_no, weight_grams, length_cm, width_cm, height_cm) VALUES ($1, $2, $3, $4, $5, $6)",
                &[&order_pk, &no, &p.weight_grams, &p.length_cm, &p.width_cm, &p.height_cm],
            )
            .await?;
    }
    Ok(())
}

pub async fn parcels<C: Db>(client: &C, order_pk: i64) -> Result<Vec<ParcelRow>> {
    let rows = client
        .query(
            "SELECT weight_grams, length_cm, width_cm, height_cm FROM parcels WHERE order_id = $1 ORDER BY parcel_no",
            &[&order_pk],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| ParcelRow {
            weight_grams: r.get(0),
            length_cm: r.get(1),
            width_cm: r.get(2),
            height_cm: r.get(3),
        })
        .collect())
}

/// Records a booking attempt before calling the carrier. Returns the shipment as it now is.
pub async fn record_booking_attempt<C: Db>(
    client: &C,
    order_pk: i64,
    reference: &str,
    carrier_kind: &str,
) -> Result<ShipmentRow> {
    client
        .execute(
            "INSERT INTO shipments (order_id, reference, carrier_kind, status, attempts) VALUES ($1, $2, $3, 'booking', 1)
             ON CONFLICT (order_id) DO UPDATE SET attempts = shipments.attempts + 1, updated_at = now()
             WHERE shipments.status <> 'booked'",
            &[&order_pk, &reference, &carrier_kind],
        )
        .await?;
    shipment(client, order_pk)
        .await?
        .ok_or_else(|| DbError::Invariant("the shipment vanished while booked".into()))
}

/// What [`begin_booking`] found.
#[derive(Debug, Clone, PartialEq)]
pub enum BookingStart {
    /// The attempt is recorded (its number), with the parcels to book, and whether the order
    /// has orphaned labels to settle first ([`orphaned_labels`]).
    Recorded {
        attempts: i32,
        parcels: Vec<ParcelRow>,
        orphaned_labels: bool,
    },
    /// The shipment is booked already: nothing to do.
    AlreadyBooked,
    /// The order is no longer `packed` (a previous holder of the lease moved it on, or it was
    /// cancelled or sent to review meanwhile): nothing recorded.
    NotPacked { state: domain::OrderState },
    /// The lease is not ours any more: nothing recorded.
    LeaseLost,
}

/// Right before the carrier is called, in one statement under `lease` (confirmed and extended
/// by the same statement): records the booking attempt unless the shipment is booked or the
/// order no longer `packed` (its state is read by the same statement), and reads the parcels
/// and whether orphaned labels wait to be settled.
/// See [`record_booking_attempt`].
pub async fn begin_booking<C: Db>(
    client: &C,
    lease: &crate::locks::OrderLock,
    reference: &str,
    carrier_kind: &str,
) -> Result<BookingStart> {
    if lease.is_lost() {
        return Ok(BookingStart::LeaseLost);
    }
    let fence = lease.fence();
    const SQL: &str = concat!(
        "WITH ",
        crate::locks::held_lease_cte!(),
        ",
         attempt AS (
             INSERT INTO shipments (order_id, reference, carrier_kind, status, attempts)
             SELECT $1, $5, $6, 'booking', 1 FROM held
             -- Read after the lease was taken: a previous holder may have moved the order on
             -- (booked it, or sent it to review) after this delivery found it packed.
             WHERE EXISTS (SELECT 1 FROM orders WHERE id = $1 AND state = 'packed')
             ON CONFLICT (order_id) DO UPDATE SET attempts = shipments.attempts + 1, updated_at = now()
             WHERE shipments.status <> 'booked'
             RETURNING attempts)
         SELECT (SELECT count(*) FROM held), (SELECT attempts FROM attempt),
                (SELECT COALESCE(json_agg(json_build_array(weight_grams, length_cm, width_cm, height_cm)
                                          ORDER BY parcel_no), '[]')
                 FROM parcels WHERE order_id = $1),
                (SELECT state FROM orders WHERE id = $1),
                EXISTS (SELECT 1 FROM orphaned_labels WHERE order_id = $1 AND outcome IS NULL)"
    );
    let row = client
        .query_one(SQL, &fence.params(&[&reference, &carrier_kind]))
        .await?;
    let held = row.get::<_, i64>(0) == 1;
    lease.observe(held);
    if !held {
        return Ok(BookingStart::LeaseLost);
    }
    let Some(attempts) = row.get::<_, Option<i32>>(1) else {
        let state: domain::OrderState = crate::db::column(&row, 3)?;
        return Ok(if state == domain::OrderState::Packed {
            BookingStart::AlreadyBooked
        } else {
            BookingStart::NotPacked { state }
        });
    };
    let parcels: Vec<[f64; 4]> = serde_json::from_value(row.get(2)).map_err(|e| DbError::Serialize {
        what: "parcels",
        message: e.to_string(),
    })?;
    Ok(BookingStart::Recorded {
        attempts,
        orphaned_labels: row.get(4),
        parcels: parcels
            .into_iter()
            .map(|[weight_grams, length_cm, width_cm, height_cm]| ParcelRow {
                weight_grams,
                length_cm,
                width_cm,
                height_cm,
            })
            .collect(),
    })
}

/// A label the carrier sold, as [`record_shipped`] stores it.
pub struct BookedShipment<'a> {
    pub carrier: &'a str,
    pub service_level: &'a str,
    pub tracking_number: &'a str,
    pub tracking_url: &'a str,
    pub label_url: Option<&'a str>,
    pub cost_minor: Option<i64>,
    pub currency: Option<&'a str>,
    pub external_id: &'a str,
    pub shipped_at: chrono::DateTime<chrono::Utc>,
}

/// An order leaves with its label, in the recording transaction (`order` locked there): the
/// shipment is `booked`, its active reservations consumed (stock leaves the building: on hand
/// and reserved go down, shipped up), the carrier call audited (`call_detail`, with what was
/// consumed added) and the order `shipped` with its state-change entry. Two statements where
/// there were six: the SKUs' locks first, in the database's order (the one lock order of every
/// path), then everything else in one.
pub async fn record_shipped<C: Db>(
    client: &C,
    order: &crate::orders::OrderRecord,
    booking: &BookedShipment<'_>,
    call_detail: &serde_json::Value,
    actor: &str,
) -> Result<()> {
    use crate::audit::AuditKind;
    use domain::OrderState;
    order.state.transition(OrderState::Shipped)?;
    crate::inventory::lock_skus_of_reservations(client, order.id).await?;
    const SQL: &str = "WITH booked AS (
             UPDATE shipments SET status = 'booked', carrier = $2, service_level = $3, tracking_number = $4,
                    tracking_url = $5, label_url = $6, cost_minor = $7, currency = $8, external_id = $9,
                    shipped_at = $10, last_error = NULL, updated_at = now()
             WHERE order_id = $1 RETURNING 1),
         consumed AS (
             UPDATE reservations SET status = 'consumed', closed_at = now()
             WHERE order_id = $1 AND status = 'active' RETURNING merchant_id, sku, quantity),
         stock AS (
             UPDATE inventory SET on_hand = inventory.on_hand - consumed.quantity,
                    reserved = inventory.reserved - consumed.quantity,
                    shipped = inventory.shipped + consumed.quantity, updated_at = now()
             FROM consumed WHERE inventory.merchant_id = consumed.merchant_id AND inventory.sku = consumed.sku),
         changed AS (
             UPDATE orders SET state = $12, state_reason = NULL, version = version + 1, updated_at = now()
             WHERE id = $1 AND version = $11 RETURNING site_id, webflow_order_id),
         audited AS (
             INSERT INTO audit_log (site_id, webflow_order_id, kind, actor, detail)
             SELECT changed.site_id, changed.webflow_order_id, entry.kind, $13, entry.detail
             FROM changed, (VALUES
                 (1, $14::text, $15::jsonb || jsonb_build_object('consumed', COALESCE(
                     (SELECT jsonb_agg(jsonb_build_array(sku, quantity) ORDER BY sku) FROM consumed), '[]'::jsonb))),
                 (2, $16::text, $17::jsonb)) AS entry(n, kind, detail)
             ORDER BY entry.n
             RETURNING 1)
         SELECT count(*) FROM changed";
    let to = OrderState::Shipped;
    let state_change = serde_json::json!({"from": order.state.as_str(), "to": to.as_str(), "reason": null});
    let row = client
        .query_one(
            SQL,
            &[
                &order.id,
                &booking.carrier,
                &booking.service_level,
                &booking.tracking_number,
                &booking.tracking_url,
                &booking.label_url,
                &booking.cost_minor,
                &booking.currency,
                &booking.external_id,
                &booking.shipped_at,
                &order.version,
                &to.as_str(),
                &actor,
                &AuditKind::ApiCall.as_str(),
                call_detail,
                &AuditKind::StateChange.as_str(),
                &state_change,
            ],
        )
        .await?;
    if row.get::<_, i64>(0) != 1 {
        return Err(DbError::ConcurrentChange(format!(
            "order {} changed concurrently",
            order.webflow_order_id
        )));
    }
    Ok(())
}

/// Ends a shipment `voided`: its order was cancelled while the label (`label`, if one was
/// bought) was being bought, and the carrier voided it.
pub async fn mark_voided<C: Db>(client: &C, order_pk: i64, label: Option<&str>) -> Result<()> {
    client
        .execute(
            "UPDATE shipments SET status = 'voided', external_id = COALESCE($2, external_id), voided_at = now(),
                    updated_at = now()
             WHERE order_id = $1",
            &[&order_pk, &label],
        )
        .await?;
    Ok(())
}

pub async fn mark_failed<C: Db>(client: &C, order_pk: i64, error: &str) -> Result<()> {
    client
        .execute(
            "UPDATE shipments SET status = 'failed', last_error = $2, updated_at = now() WHERE order_id = $1",
            &[&order_pk, &error],
        )
        .await?;
    Ok(())
}

pub async fn shipment<C: Db>(client: &C, order_pk: i64) -> Result<Option<ShipmentRow>> {
    let row = client
        .query_opt(
            "SELECT reference, carrier_kind, status, attempts, carrier, service_level, tracking_number, tracking_url, label_url,
                    cost_minor, currency, external_id, shipped_at, last_error
             FROM shipments WHERE order_id = $1",
            &[&order_pk],
        )
        .await?;
    row.map(|r| {
        Ok(ShipmentRow {
            reference: r.get(0),
            carrier_kind: r.get(1),
            status: r.get::<_, &str>(2).parse()?,
            attempts: r.get(3),
            carrier: r.get(4),
            service_level: r.get(5),
            tracking_number: r.get(6),
            tracking_url: r.get(7),
            label_url: r.get(8),
            cost_minor: r.get(9),
            currency: r.get(10),
            external_id: r.get(11),
            shipped_at: r.get(12),
            last_error: r.get(13),
        })
    })
    .transpose()
}

db_status!(
    /// `orphaned_labels.outcome`: how a label bought by a delivery that had lost its order's
    /// lease was settled.
    OrphanOutcome, "orphaned label outcome" {
        /// The order shipped with it (or adopted it): kept.
        InUse => "in_use",
        /// Voided at the carrier.
        Voided => "voided",
        /// The carrier refused to void it for good (already used, say): an operator voids it
        /// by hand; the carrier's message is in `detail`.
        VoidFailed => "void_failed",
        /// Bought from another carrier than the one configured now: an operator voids it there.
        OtherCarrier => "other_carrier",
    }
);

/// A label bought by a delivery that lost its order's lease before it could record it
/// (migration V14), not settled yet.
#[derive(Debug, Clone, PartialEq)]
pub struct OrphanedLabel {
    /// The carrier's id of the label.
    pub external_id: String,
    pub carrier_kind: String,
    /// The carrier's booking, as the ship worker serialised it.
    pub booking: serde_json::Value,
}

/// Records a label bought for order `order_pk` by a delivery that found its lease lost when
/// it came to record it: whoever next holds the lease settles it ([`orphaned_labels`]).
/// Written outside the (rolled back) recording transaction, on its own.
pub async fn record_orphaned_label<C: Db>(
    client: &C,
    order_pk: i64,
    external_id: &str,
    carrier_kind: &str,
    booking: &serde_json::Value,
) -> Result<()> {
    client
        .execute(
            "INSERT INTO orphaned_labels (order_id, external_id, carrier_kind, booking) VALUES ($1, $2, $3, $4)
             ON CONFLICT (order_id, external_id) DO NOTHING",
            &[&order_pk, &external_id, &carrier_kind, booking],
        )
        .await?;
    Ok(())
}

/// Whether order `order_pk` has labels waiting to be settled.
pub async fn has_orphaned_labels<C: Db>(client: &C, order_pk: i64) -> Result<bool> {
    let row = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM orphaned_labels WHERE order_id = $1 AND outcome IS NULL)",
            &[&order_pk],
        )
        .await?;
    Ok(row.get(0))
}

/// The labels of order `order_pk` waiting to be settled, oldest first (read under its lease).
pub async fn orphaned_labels<C: Db>(client: &C, order_pk: i64) -> Result<Vec<OrphanedLabel>> {
    let rows = client
        .query(
            "SELECT external_id, carrier_kind, booking FROM orphaned_labels
             WHERE order_id = $1 AND outcome IS NULL ORDER BY created_at, external_id",
            &[&order_pk],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| OrphanedLabel {
            external_id: r.get(0),
            carrier_kind: r.get(1),
            booking: r.get(2),
        })
        .collect())
}

/// Settles an orphaned label of order `order_pk` (a no-op for a label that is not one), with
/// `detail` saying why when it needs an operator.
pub async fn settle_orphaned_label<C: Db>(
    client: &C,
    order_pk: i64,
    external_id: &str,
    outcome: OrphanOutcome,
    detail: Option<&str>,
) -> Result<()> {
    client
        .execute(
            "UPDATE orphaned_labels SET outcome = $3, detail = $4, settled_at = now()
             WHERE order_id = $1 AND external_id = $2 AND outcome IS NULL",
            &[&order_pk, &external_id, &outcome.as_str(), &detail],
        )
        .await?;
    Ok(())
}
