//! Orders and their lines.

use crate::audit;
use crate::db::{Db, column};
use crate::error::{DbError, Result};
use domain::{Address, OrderId, OrderState, SiteId, Sku, WebflowOrderStatus};
use tokio_postgres::Row;

/// An order as stored.
#[derive(Debug, Clone)]
pub struct OrderRecord {
    pub id: i64,
    pub site_id: SiteId,
    pub webflow_order_id: OrderId,
    pub state: OrderState,
    pub state_reason: Option<String>,
    pub webflow_status: Option<WebflowOrderStatus>,
    pub shipping_required: bool,
    pub shipping_address: Option<Address>,
    pub snapshot: serde_json::Value,
    pub correlation_id: Option<String>,
    pub version: i64,
    /// Webflow's shipping address when an operator overrode it (`None`: no override;
    /// `Some(None)`: Webflow had no address then). Later webhooks carrying this address do not
    /// replace the operator's.
    pub address_override_base: Option<Option<Address>>,
    /// The merchant whose stock the order takes (`merchants.id`): its store's merchant when it
    /// was inserted.
    pub merchant_id: i64,
}

/// A line to store.
#[derive(Debug, Clone, PartialEq)]
pub struct NewLine {
    pub sku: Sku,
    pub variant_id: Option<String>,
    pub product_name: Option<String>,
    pub quantity: i32,
    pub unit_weight: Option<f64>,
    pub unit_width: Option<f64>,
    pub unit_height: Option<f64>,
    pub unit_length: Option<f64>,
}

/// An order to insert.
#[derive(Debug, Clone)]
pub struct NewOrder<'a> {
    pub site_id: &'a SiteId,
    pub webflow_order_id: &'a OrderId,
    pub state: OrderState,
    pub state_reason: Option<&'a str>,
    pub webflow_status: Option<&'a WebflowOrderStatus>,
    pub shipping_required: bool,
    pub customer_name: Option<&'a str>,
    pub customer_email: Option<&'a str>,
    pub shipping_address: Option<&'a Address>,
    pub total_minor: Option<i64>,
    pub currency: Option<&'a str>,
    pub snapshot: serde_json::Value,
    pub correlation_id: Option<&'a str>,
}

/// The columns `from_row` reads, as a literal so statements are built at compile time
/// (`concat!`), not formatted on every call.
macro_rules! columns {
    () => {
        "id, site_id, webflow_order_id, state, state_reason, webflow_status, shipping_required, \
         shipping_address, snapshot, correlation_id, version, address_override_base, merchant_id"
    };
}
pub(crate) use columns;
/// How many columns [`columns!`] names: a statement's own columns follow from this index.
pub(crate) const COLUMN_COUNT: usize = 13;

pub(crate) fn from_row(row: &Row) -> Result<OrderRecord> {
    let override_base: Option<postgres_types::Json<Option<Address>>> = column(row, 11)?;
    Ok(OrderRecord {
        id: row.get(0),
        site_id: row.get(1),
        webflow_order_id: row.get(2),
        state: column(row, 3)?,
        state_reason: row.get(4),
        webflow_status: row.get(5),
        shipping_required: row.get(6),
        shipping_address: column(row, 7)?,
        snapshot: row.get(8),
        correlation_id: row.get(9),
        version: row.get(10),
        address_override_base: override_base.map(|base| base.0),
        merchant_id: row.get(12),
    })
}

/// Reads an order and locks it for the rest of the transaction.
pub async fn lock<C: Db>(client: &C, site_id: &SiteId, order_id: &OrderId) -> Result<Option<OrderRecord>> {
    const SQL: &str = concat!(
        "SELECT ",
        columns!(),
        " FROM orders WHERE site_id = $1 AND webflow_order_id = $2 FOR UPDATE"
    );
    by_webflow_id(client, SQL, site_id, order_id).await
}

pub async fn find<C: Db>(client: &C, site_id: &SiteId, order_id: &OrderId) -> Result<Option<OrderRecord>> {
    const SQL: &str = concat!(
        "SELECT ",
        columns!(),
        " FROM orders WHERE site_id = $1 AND webflow_order_id = $2"
    );
    by_webflow_id(client, SQL, site_id, order_id).await
}

/// The order `sql` selects by store and Webflow id (`$1`, `$2`).
async fn by_webflow_id<C: Db>(
    client: &C,
    sql: &str,
    site_id: &SiteId,
    order_id: &OrderId,
) -> Result<Option<OrderRecord>> {
    client
        .query_opt(sql, &[site_id, order_id])
        .await?
        .as_ref()
        .map(from_row)
        .transpose()
}

pub async fn lock_by_id<C: Db>(client: &C, id: i64) -> Result<Option<OrderRecord>> {
    const SQL: &str = concat!("SELECT ", columns!(), " FROM orders WHERE id = $1 FOR UPDATE");
    client.query_opt(SQL, &[&id]).await?.as_ref().map(from_row).transpose()
}

/// Locks up to `limit` reserved orders whose pick task is open or picked (oldest change first),
/// skipping orders another transaction holds: what one auto-pack batch packs.
pub async fn lock_packable<C: Db>(client: &C, limit: i64) -> Result<Vec<OrderRecord>> {
    const SQL: &str = concat!(
        "SELECT ",
        columns!(),
        " FROM orders WHERE state = 'reserved'
           AND EXISTS (SELECT 1 FROM pick_tasks t WHERE t.order_id = orders.id AND t.status IN ('open', 'picked'))
         ORDER BY updated_at LIMIT $1 FOR UPDATE SKIP LOCKED"
    );
    client.query(SQL, &[&limit]).await?.iter().map(from_row).collect()
}

/// Inserts an order with its lines, learns the lines' Webflow variant ids for its store,
/// and audits the creation (as `actor`), in one statement. The order belongs to the merchant
/// of the live store whose site it came from (the `default` merchant when no store row names
/// the site). Returns `None` if a concurrent
/// transaction inserted the order first (lock it then; the lock waits for that transaction).
pub async fn insert<C: Db>(
    client: &C,
    order: &NewOrder<'_>,
    lines: &[NewLine],
    actor: &str,
) -> Result<Option<OrderRecord>> {
    let line_numbers: Vec<i32> = (1..=lines.len())
        .map(|n| i32::try_from(n).unwrap_or(i32::MAX))
        .collect();
    let column = |f: fn(&NewLine) -> Option<f64>| lines.iter().map(f).collect::<Vec<_>>();
    let skus: Vec<&Sku> = lines.iter().map(|l| &l.sku).collect();
    let variants: Vec<Option<&str>> = lines.iter().map(|l| l.variant_id.as_deref()).collect();
    let names: Vec<Option<&str>> = lines.iter().map(|l| l.product_name.as_deref()).collect();
    let quantities: Vec<i32> = lines.iter().map(|l| l.quantity).collect();
    let (weights, widths, heights, lengths) = (
        column(|l| l.unit_weight),
        column(|l| l.unit_width),
        column(|l| l.unit_height),
        column(|l| l.unit_length),
    );
    const SQL: &str = concat!(
        "WITH created AS (
             INSERT INTO orders (site_id, webflow_order_id, state, state_reason, webflow_status, shipping_required,
                                 customer_name, customer_email, shipping_address, total_minor, currency, snapshot,
                                 correlation_id, backordered_at, merchant_id)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, NULL,
                     COALESCE((SELECT merchant_id FROM stores WHERE site_id = $1 AND removed_at IS NULL), 1))
             ON CONFLICT (site_id, webflow_order_id) DO NOTHING RETURNING ",
        columns!(),
        "),
         line AS (
             SELECT * FROM unnest($14::int[], $15::text[], $16::text[], $17::text[], $18::int[],
                                  $19::float8[], $20::float8[], $21::float8[], $22::float8[])
                 AS l(line_no, sku, variant_id, product_name, quantity, unit_weight, unit_width, unit_height, unit_length)),
         stored_lines AS (
             INSERT INTO order_lines (order_id, line_no, sku, variant_id, product_name, quantity,
                                      unit_weight, unit_width, unit_height, unit_length)
             SELECT created.id, line.* FROM created, line),
         audited AS (
             INSERT INTO audit_log (site_id, webflow_order_id, kind, actor, detail)
             SELECT created.site_id, created.webflow_order_id, $24::text, $23::text,
                    jsonb_build_object('from', NULL, 'to', created.state)
             FROM created)
         SELECT ",
        columns!(),
        " FROM created"
    );
    let row = client
        .query_opt(
            SQL,
            &[
                order.site_id,
                order.webflow_order_id,
                &order.state,
                &order.state_reason,
                &order.webflow_status,
                &order.shipping_required,
                &order.customer_name,
                &order.customer_email,
                &order.shipping_address,
                &order.total_minor,
                &order.currency,
                &order.snapshot,
                &order.correlation_id,
                &line_numbers,
                &skus,
                &variants,
                &names,
                &quantities,
                &weights,
                &widths,
                &heights,
                &lengths,
                &actor,
                &audit::AuditKind::StateChange.as_str(),
            ],
        )
        .await?;
    let Some(record) = row.as_ref().map(from_row).transpose()? else {
        return Ok(None);
    };
    learn_webflow_ids(client, record.id, &skus, &variants).await?;
    Ok(Some(record))
}

/// Learns the Webflow ids of an order's SKUs in its store: the store's `inventory_sync` rows,
/// which inventory drift checks and stock pushes (issue 17) read. A Webflow id belongs to one
/// store (stores selling the same SKU have their own ids for it), so nothing store-wide is
/// learned: one store's orders never rewrite what another store's webhooks are judged by.
/// Only new or changed mappings are written, so in the steady state no row is locked. When
/// some are, only `inventory_sync` rows are, in SKU order, never an inventory row. The lock
/// order of every path is inventory rows, then `inventory_sync` rows, each in SKU order (a
/// reservation locks its inventory rows, and their trigger then marks the `inventory_sync`
/// rows); an enrich transaction takes no inventory row after this, so the two cannot deadlock.
async fn learn_webflow_ids<C: Db>(client: &C, order_pk: i64, skus: &[&Sku], variants: &[Option<&str>]) -> Result<()> {
    client
        .execute(
            "WITH wanted AS (
                 SELECT DISTINCT ON (sku) sku, variant_id
                 FROM unnest($2::text[], $3::text[]) AS l(sku, variant_id)
                 WHERE variant_id IS NOT NULL ORDER BY sku, variant_id)
             INSERT INTO inventory_sync (site_id, sku, webflow_sku_id, merchant_id)
             SELECT o.site_id, w.sku, w.variant_id, o.merchant_id
             FROM orders o, wanted w
             WHERE o.id = $1
               AND NOT EXISTS (SELECT 1 FROM inventory_sync s
                               WHERE s.site_id = o.site_id AND s.sku = w.sku AND s.webflow_sku_id = w.variant_id
                                 AND s.merchant_id = o.merchant_id)
             ORDER BY w.sku
             ON CONFLICT (site_id, sku) DO UPDATE
                 SET webflow_sku_id = EXCLUDED.webflow_sku_id,
                     -- A site re-added under another merchant syncs that merchant's stock.
                     merchant_id = EXCLUDED.merchant_id,
                     dirty_since = COALESCE(inventory_sync.dirty_since, clock_timestamp()),
                     change_seq = inventory_sync.change_seq + 1,
                     -- What Webflow said was of the SKU's former id.
                     webflow_from_push = false",
            &[&order_pk, &skus, &variants],
        )
        .await?;
    Ok(())
}

/// Replaces an order's lines (only before stock is reserved).
pub async fn replace_lines<C: Db>(client: &C, order_pk: i64, lines: &[NewLine]) -> Result<()> {
    client
        .execute("DELETE FROM order_lines WHERE order_id = $1", &[&order_pk])
        .await?;
    for (index, line) in lines.iter().enumerate() {
        let line_no = i32::try_from(index + 1).unwrap_or(i32::MAX);
        client
            .execute(
                "INSERT INTO order_lines (order_id, line_no, sku, variant_id, product_name, quantity,
                                          unit_weight, unit_width, unit_height, unit_length)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                &[
                    &order_pk,
                    &line_no,
                    &line.sku,
                    &line.variant_id,
                    &line.product_name,
                    &line.quantity,
                    &line.unit_weight,
                    &line.unit_width,
                    &line.unit_height,
                    &line.unit_length,
                ],
            )
            .await?;
    }
    let skus: Vec<&Sku> = lines.iter().map(|l| &l.sku).collect();
    let variants: Vec<Option<&str>> = lines.iter().map(|l| l.variant_id.as_deref()).collect();
    learn_webflow_ids(client, order_pk, &skus, &variants).await
}

pub async fn lines<C: Db>(client: &C, order_pk: i64) -> Result<Vec<NewLine>> {
    let rows = client
        .query(
            "SELECT sku, variant_id, product_name, quantity, unit_weight, unit_width, unit_height, unit_length
             FROM order_lines WHERE order_id = $1 ORDER BY line_no",
            &[&order_pk],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| NewLine {
            sku: r.get(0),
            variant_id: r.get(1),
            product_name: r.get(2),
            quantity: r.get(3),
            unit_weight: r.get(4),
            unit_width: r.get(5),
            unit_height: r.get(6),
            unit_length: r.get(7),
        })
        .collect())
}

/// The lines of several orders (one statement for a batch), by order primary key.
pub async fn lines_of<C: Db>(client: &C, order_pks: &[i64]) -> Result<std::collections::HashMap<i64, Vec<NewLine>>> {
    let rows = client
        .query(
            "SELECT order_id, sku, variant_id, product_name, quantity, unit_weight, unit_width, unit_height, unit_length
             FROM order_lines WHERE order_id = ANY($1) ORDER BY order_id, line_no",
            &[&order_pks],
        )
        .await?;
    let mut lines: std::collections::HashMap<i64, Vec<NewLine>> = std::collections::HashMap::new();
    for r in &rows {
        lines.entry(r.get(0)).or_default().push(NewLine {
            sku: r.get(1),
            variant_id: r.get(2),
            product_name: r.get(3),
            quantity: r.get(4),
            unit_weight: r.get(5),
            unit_width: r.get(6),
            unit_height: r.get(7),
            unit_length: r.get(8),
        });
    }
    Ok(lines)
}

/// Stores the latest Webflow snapshot and status.
pub async fn update_snapshot<C: Db>(
    client: &C,
    order_pk: i64,
    webflow_status: Option<&WebflowOrderStatus>,
    snapshot: &serde_json::Value,
) -> Result<()> {
    client
        .execute(
            "UPDATE orders SET webflow_status = $2, snapshot = $3, version = version + 1, updated_at = now() WHERE id = $1",
            &[&order_pk, &webflow_status, snapshot],
        )
        .await?;
    Ok(())
}

pub async fn update_shipping_address<C: Db>(client: &C, order_pk: i64, address: &Address) -> Result<()> {
    client
        .execute(
            "UPDATE orders SET shipping_address = $2, version = version + 1, updated_at = now() WHERE id = $1",
            &[&order_pk, address],
        )
        .await?;
    Ok(())
}

/// An operator's address correction: it overrides Webflow's address, which is kept (as it was
/// at the first override) so later webhooks can tell Webflow's own changes from echoes.
pub async fn override_shipping_address<C: Db>(client: &C, order_pk: i64, address: &Address) -> Result<()> {
    client
        .execute(
            "UPDATE orders SET shipping_address = $2,
                    address_override_base = COALESCE(address_override_base, snapshot->'shippingAddress', 'null'::jsonb),
                    version = version + 1, updated_at = now()
             WHERE id = $1",
            &[&order_pk, address],
        )
        .await?;
    Ok(())
}

/// Records Webflow's address seen after an override (the conflict is then reported once).
pub async fn set_address_override_base<C: Db>(client: &C, order_pk: i64, address: &Address) -> Result<()> {
    client
        .execute(
            "UPDATE orders SET address_override_base = $2, version = version + 1, updated_at = now() WHERE id = $1",
            &[&order_pk, address],
        )
        .await?;
    Ok(())
}

/// Moves an order to `to` if the lifecycle allows it, and audits the change.
/// Returns the error unchanged when the transition is not allowed.
pub async fn transition<C: Db>(
    client: &C,
    order: &OrderRecord,
    to: OrderState,
    reason: Option<&str>,
    actor: &str,
) -> Result<()> {
    order.state.transition(to)?;
    // The change and its audit entry in one statement (one round trip per transition).
    let audited: i64 = client
        .query_one(
            "WITH changed AS (
                     UPDATE orders SET state = $3, state_reason = $4, version = version + 1, updated_at = now(),
                            backordered_at = CASE WHEN $3 = 'backordered' THEN COALESCE(backordered_at, now())
                                                  WHEN $3 = 'reserved' THEN NULL ELSE backordered_at END
                     WHERE id = $1 AND version = $2 RETURNING site_id, webflow_order_id),
                 audited AS (
                     INSERT INTO audit_log (site_id, webflow_order_id, kind, actor, detail)
                     SELECT site_id, webflow_order_id, $7::text, $5::text, $6::jsonb FROM changed RETURNING 1)
                 SELECT count(*) FROM audited",
            &[
                &order.id,
                &order.version,
                &to,
                &reason,
                &actor,
                &serde_json::json!({"from": order.state.as_str(), "to": to.as_str(), "reason": reason}),
                &audit::AuditKind::StateChange.as_str(),
            ],
        )
        .await?
        .get(0);
    if audited != 1 {
        return Err(DbError::ConcurrentChange(format!(
            "order {} changed concurrently",
            order.webflow_order_id
        )));
    }
    Ok(())
}

/// Sets why an order waits in its state (`payment_pending`, `no_shipping_required`…).
pub async fn set_state_reason<C: Db>(client: &C, order_pk: i64, reason: &str) -> Result<()> {
    client
        .execute(
            "UPDATE orders SET state_reason = $2, version = version + 1, updated_at = now() WHERE id = $1",
            &[&order_pk, &reason],
        )
        .await?;
    Ok(())
}

/// Backordered orders (of the merchant, when given) that need `sku`, oldest first.
pub async fn backordered_needing<C: Db>(
    client: &C,
    merchant_id: Option<i64>,
    sku: Option<&Sku>,
    limit: i64,
) -> Result<Vec<i64>> {
    let rows = client
        .query(
            "SELECT o.id FROM orders o
             WHERE o.state = 'backordered' AND ($3::bigint IS NULL OR o.merchant_id = $3)
               AND ($1::text IS NULL OR EXISTS (SELECT 1 FROM order_lines l WHERE l.order_id = o.id AND l.sku = $1))
             ORDER BY o.backordered_at, o.id LIMIT $2",
            &[&sku, &limit, &merchant_id],
        )
        .await?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// Locks the `limit` oldest backordered orders of a merchant that need its `sku` (in
/// primary-key order, the one order in which several orders are ever locked together);
/// returns them oldest first.
pub async fn lock_backordered_needing<C: Db>(
    client: &C,
    merchant_id: i64,
    sku: &Sku,
    limit: i64,
) -> Result<Vec<OrderRecord>> {
    const SQL: &str = concat!(
        "WITH oldest AS (
             SELECT o.id FROM orders o
             WHERE o.state = 'backordered' AND o.merchant_id = $3
               AND EXISTS (SELECT 1 FROM order_lines l WHERE l.order_id = o.id AND l.sku = $1)
             ORDER BY o.backordered_at, o.id LIMIT $2),
         locked AS (
             SELECT ",
        columns!(),
        ", backordered_at FROM orders WHERE id IN (SELECT id FROM oldest) ORDER BY id FOR UPDATE)
         SELECT ",
        columns!(),
        " FROM locked WHERE state = 'backordered' ORDER BY backordered_at, id"
    );
    let rows = client.query(SQL, &[sku, &limit, &merchant_id]).await?;
    rows.iter().map(from_row).collect()
}

/// Counts orders per state (tests, dashboards).
/// How many orders each site has in each state (the `wms_orders` metric).
/// One row per store and state: how many orders, and how long the least recently changed one
/// has not changed (`now() - min(updated_at)`, seconds; the database's clock).
#[derive(Clone, Debug, PartialEq)]
pub struct StateSummary {
    pub site_id: SiteId,
    pub state: OrderState,
    pub count: i64,
    pub oldest_secs: f64,
}

/// Orders by store and state for the metrics: one aggregate over the table, run by one
/// process on an interval (never per scrape).
pub async fn summary_by_site_and_state<C: Db>(client: &C) -> Result<Vec<StateSummary>> {
    let rows = client
        .query(
            "SELECT site_id, state, count(*),
                    COALESCE(EXTRACT(EPOCH FROM now() - min(updated_at))::float8, 0)
             FROM orders GROUP BY site_id, state ORDER BY site_id, state",
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| StateSummary {
            site_id: r.get(0),
            state: r.get(1),
            count: r.get(2),
            oldest_secs: r.get(3),
        })
        .collect())
}
