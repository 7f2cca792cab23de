//! Stock: reservations all-or-nothing, releases, receipts.
//!
//! Stock belongs to a merchant (migration V17): a row is keyed by (merchant, SKU), and an
//! order reserves, releases and consumes its own merchant's stock only (`orders.merchant_id`),
//! so the same SKU string under two merchants is two products.
//!
//! Inventory rows are always locked in (merchant, SKU) order as the database sorts them (its
//! collation, never Rust's byte order), in every path, so concurrent transactions cannot
//! deadlock.

use crate::db::Db;
use crate::error::Result;
use domain::Sku;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReserveOutcome {
    Reserved {
        pick_task_id: i64,
    },
    /// Nothing was reserved; the reason names every short or unknown SKU.
    Short {
        reason: String,
    },
}

/// The stock of one SKU of one merchant; `available` is `on_hand - reserved`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct StockLevel {
    /// The merchant that owns the stock.
    pub merchant: String,
    #[schema(value_type = String)]
    pub sku: Sku,
    pub on_hand: i64,
    pub reserved: i64,
    pub available: i64,
}

/// Reserves every line of an order or none, from the order's merchant's stock, and creates
/// its pick task.
pub async fn reserve_order<C: Db>(client: &C, order_pk: i64) -> Result<ReserveOutcome> {
    let wanted = client
        .query(
            "SELECT sku, SUM(quantity)::bigint FROM order_lines WHERE order_id = $1 GROUP BY sku ORDER BY sku",
            &[&order_pk],
        )
        .await?;
    if wanted.is_empty() {
        return Ok(ReserveOutcome::Short {
            reason: "the order has no lines".into(),
        });
    }
    let skus: Vec<String> = wanted.iter().map(|r| r.get(0)).collect();
    let merchant_id: i64 = client
        .query_one("SELECT merchant_id FROM orders WHERE id = $1", &[&order_pk])
        .await?
        .get(0);
    let stock = client
        .query(
            "SELECT sku, on_hand, reserved FROM inventory WHERE merchant_id = $1 AND sku = ANY($2)
             ORDER BY merchant_id, sku FOR UPDATE",
            &[&merchant_id, &skus],
        )
        .await?;
    // Oldest first, no overtaking: what every older backorder of the same merchant still needs
    // of each SKU is held back for it (read under the inventory locks, which every reservation
    // takes). Another merchant's backorders wait for other stock.
    let held_back = client
        .query(
            "SELECT l.sku, SUM(l.quantity)::bigint
             FROM orders me, orders o JOIN order_lines l ON l.order_id = o.id
             WHERE me.id = $1 AND o.state = 'backordered' AND o.id <> me.id AND l.sku = ANY($2)
               AND o.merchant_id = me.merchant_id
               AND (me.state <> 'backordered' OR (o.backordered_at, o.id) < (me.backordered_at, me.id))
             GROUP BY l.sku",
            &[&order_pk, &skus],
        )
        .await?;

    let mut problems = Vec::new();
    for row in &wanted {
        let sku: String = row.get(0);
        let quantity: i64 = row.get(1);
        match stock.iter().find(|s| s.get::<_, String>(0) == sku) {
            None => problems.push(format!("unknown SKU `{sku}`")),
            Some(level) => {
                let available = level.get::<_, i64>(1) - level.get::<_, i64>(2);
                let older = held_back
                    .iter()
                    .find(|h| h.get::<_, String>(0) == sku)
                    .map_or(0, |h| h.get::<_, i64>(1));
                if available - older < quantity {
                    let problem = if older > 0 {
                        format!("`{sku}`: {quantity} wanted, {available} available, {older} held for older backorders")
                    } else {
                        format!("`{sku}`: {quantity} wanted, {available} available")
                    };
                    problems.push(problem);
                }
            }
        }
    }
    if !problems.is_empty() {
        return Ok(ReserveOutcome::Short {
            reason: problems.join("; "),
        });
    }

    // Every write of the reservation in one statement: the pick task and its lines, the
    // reservations, and the reserved counts (rows already locked above, in SKU order).
    let quantities: Vec<i64> = wanted.iter().map(|r| r.get(1)).collect();
    let row = client
        .query_one(
            "WITH wanted AS (SELECT * FROM unnest($2::text[], $3::bigint[]) AS w(sku, quantity)),
                  task AS (INSERT INTO pick_tasks (order_id, status) VALUES ($1, 'open') RETURNING id),
                  task_lines AS (
                      INSERT INTO pick_task_lines (pick_task_id, sku, quantity)
                      SELECT task.id, wanted.sku, wanted.quantity FROM task, wanted),
                  held AS (
                      INSERT INTO reservations (order_id, merchant_id, sku, quantity, status)
                      SELECT $1, $4, sku, quantity, 'active' FROM wanted
                      ON CONFLICT (order_id, sku) DO UPDATE
                          SET merchant_id = EXCLUDED.merchant_id, quantity = EXCLUDED.quantity,
                              status = 'active', closed_at = NULL),
                  stock AS (
                      UPDATE inventory SET reserved = inventory.reserved + wanted.quantity, updated_at = now()
                      FROM wanted WHERE inventory.merchant_id = $4 AND inventory.sku = wanted.sku
                      RETURNING inventory.sku)
             SELECT (SELECT id FROM task), (SELECT count(*) FROM stock)",
            &[&order_pk, &skus, &quantities, &merchant_id],
        )
        .await?;
    let (pick_task_id, updated): (i64, i64) = (row.get(0), row.get(1));
    if updated != i64::try_from(skus.len()).unwrap_or(i64::MAX) {
        // Cannot happen while the rows are locked; refuse rather than half-reserve.
        return Err(crate::DbError::Invariant(format!(
            "reserved {updated} of {} SKUs for order {order_pk}",
            skus.len()
        )));
    }
    Ok(ReserveOutcome::Reserved { pick_task_id })
}

/// Releases an order's active reservations and cancels its open pick task.
/// Returns the quantities released per SKU, in the database's SKU order.
///
/// The inventory rows are locked first, in (merchant, SKU) order by the database (the one
/// lock order of every path: reserve, release, consume, receipts), then updated in one
/// statement.
pub async fn release_order<C: Db>(client: &C, order_pk: i64) -> Result<Vec<(Sku, i64)>> {
    lock_skus_of_reservations(client, order_pk).await?;
    let released = client
        .query(
            "WITH released AS (
                 UPDATE reservations SET status = 'released', closed_at = now()
                 WHERE order_id = $1 AND status = 'active' RETURNING merchant_id, sku, quantity),
             stock AS (
                 UPDATE inventory SET reserved = inventory.reserved - released.quantity, updated_at = now()
                 FROM released
                 WHERE inventory.merchant_id = released.merchant_id AND inventory.sku = released.sku)
             SELECT sku, quantity FROM released ORDER BY sku",
            &[&order_pk],
        )
        .await?;
    let released: Vec<(Sku, i64)> = released.iter().map(|r| (r.get(0), r.get(1))).collect();
    client
        .execute(
            "UPDATE pick_tasks SET status = 'cancelled', updated_at = now() WHERE order_id = $1 AND status IN ('open', 'picked')",
            &[&order_pk],
        )
        .await?;
    Ok(released)
}

/// Locks the inventory rows of an order's active reservations, in (merchant, SKU) order by
/// the database.
pub async fn lock_skus_of_reservations<C: Db>(client: &C, order_pk: i64) -> Result<()> {
    client
        .query(
            "SELECT sku FROM inventory
             WHERE (merchant_id, sku) IN
                   (SELECT merchant_id, sku FROM reservations WHERE order_id = $1 AND status = 'active')
             ORDER BY merchant_id, sku FOR UPDATE",
            &[&order_pk],
        )
        .await?;
    Ok(())
}

/// Locks the inventory rows of every SKU the given orders need, of each order's merchant, in
/// (merchant, SKU) order by the database (so a batch of reservations takes its locks in the
/// one order every other path uses).
pub async fn lock_skus_of_orders<C: Db>(client: &C, order_pks: &[i64]) -> Result<()> {
    client
        .query(
            "SELECT sku FROM inventory
             WHERE (merchant_id, sku) IN
                   (SELECT o.merchant_id, l.sku FROM order_lines l JOIN orders o ON o.id = l.order_id
                    WHERE l.order_id = ANY($1))
             ORDER BY merchant_id, sku FOR UPDATE",
            &[&order_pks],
        )
        .await?;
    Ok(())
}

/// The columns [`level`] reads, for a statement over `inventory`.
const LEVEL_COLUMNS: &str = "inventory.sku, inventory.on_hand, inventory.reserved,
     (SELECT m.name FROM merchants m WHERE m.id = inventory.merchant_id)";

/// Adds received stock to a merchant's SKU (creating it if new).
pub async fn receive<C: Db>(client: &C, merchant_id: i64, sku: &Sku, quantity: i64) -> Result<StockLevel> {
    let sql = format!(
        "INSERT INTO inventory (merchant_id, sku, on_hand) VALUES ($1, $2, $3)
         ON CONFLICT (merchant_id, sku) DO UPDATE
             SET on_hand = inventory.on_hand + EXCLUDED.on_hand, updated_at = now()
         RETURNING {LEVEL_COLUMNS}"
    );
    let row = client
        .query_one(&sql, &[&merchant_id, &sku.as_str(), &quantity])
        .await?;
    Ok(level(&row))
}

/// Sets the counted stock of a merchant's SKU (refused by the CHECK if below what is reserved).
pub async fn set_on_hand<C: Db>(client: &C, merchant_id: i64, sku: &Sku, on_hand: i64) -> Result<StockLevel> {
    let sql = format!(
        "INSERT INTO inventory (merchant_id, sku, on_hand) VALUES ($1, $2, $3)
         ON CONFLICT (merchant_id, sku) DO UPDATE SET on_hand = EXCLUDED.on_hand, updated_at = now()
         RETURNING {LEVEL_COLUMNS}"
    );
    let row = client.query_one(&sql, &[&merchant_id, &sku.as_str(), &on_hand]).await?;
    Ok(level(&row))
}

/// Reads a merchant's SKU's stock and locks its row for the rest of the transaction.
pub async fn lock<C: Db>(client: &C, merchant_id: i64, sku: &Sku) -> Result<Option<StockLevel>> {
    let sql = format!("SELECT {LEVEL_COLUMNS} FROM inventory WHERE merchant_id = $1 AND sku = $2 FOR UPDATE");
    let row = client.query_opt(&sql, &[&merchant_id, &sku.as_str()]).await?;
    Ok(row.as_ref().map(level))
}

/// A merchant's SKU's stock.
pub async fn get<C: Db>(client: &C, merchant_id: i64, sku: &Sku) -> Result<Option<StockLevel>> {
    let sql = format!("SELECT {LEVEL_COLUMNS} FROM inventory WHERE merchant_id = $1 AND sku = $2");
    let row = client.query_opt(&sql, &[&merchant_id, &sku.as_str()]).await?;
    Ok(row.as_ref().map(level))
}

fn level(row: &tokio_postgres::Row) -> StockLevel {
    let on_hand: i64 = row.get(1);
    let reserved: i64 = row.get(2);
    StockLevel {
        merchant: row.get(3),
        sku: row.get(0),
        on_hand,
        reserved,
        available: on_hand - reserved,
    }
}
