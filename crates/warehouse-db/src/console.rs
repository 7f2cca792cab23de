//! Reads for the operator console and scoped tokens: lists and counts limited to the stores
//! a token may see (`sites = None`: every store).

use crate::db::{Db, column};
use crate::error::Result;
use domain::{OrderId, OrderState, SiteId, Sku};

/// Whether an order of one of `sites` has a line with the merchant's `sku` (a token limited to
/// some stores sees the SKUs its stores' orders use, of their merchants' stock).
pub async fn sku_used_by_sites<C: Db>(client: &C, merchant_id: i64, sku: &Sku, sites: &[String]) -> Result<bool> {
    let row = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM order_lines l JOIN orders o ON o.id = l.order_id
                            WHERE l.sku = $1 AND o.site_id = ANY($2) AND o.merchant_id = $3)",
            &[sku, &sites, &merchant_id],
        )
        .await?;
    Ok(row.get(0))
}

/// One order in a list.
#[derive(Debug, Clone, PartialEq)]
pub struct OrderSummary {
    pub site_id: SiteId,
    pub order_id: OrderId,
    pub state: OrderState,
    pub state_reason: Option<String>,
    pub customer_name: Option<String>,
    pub customer_email: Option<String>,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

const SUMMARY_COLUMNS: &str = "o.site_id, o.webflow_order_id, o.state, o.state_reason, o.customer_name, o.customer_email, o.created_at, o.updated_at";

fn summary(r: &tokio_postgres::Row) -> Result<OrderSummary> {
    Ok(OrderSummary {
        site_id: r.get(0),
        order_id: r.get(1),
        state: column(r, 2)?,
        state_reason: r.get(3),
        customer_name: r.get(4),
        customer_email: r.get(5),
        created_at: r.get(6),
        updated_at: r.get(7),
    })
}

/// What the orders search asks for; every part is optional.
#[derive(Debug, Clone, Default)]
pub struct OrderSearch<'a> {
    /// The token's stores (`None`: every store).
    pub sites: Option<&'a [String]>,
    pub site_id: Option<&'a SiteId>,
    /// Matches the order id (prefix) or the customer's email (case-insensitive, exact or part).
    pub text: Option<&'a str>,
    pub state: Option<OrderState>,
    pub limit: i64,
}

/// Orders, newest first.
pub async fn search_orders<C: Db>(client: &C, search: &OrderSearch<'_>) -> Result<Vec<OrderSummary>> {
    let pattern = search.text.map(|t| {
        let escaped = t.replace('\\', "\\\\").replace('%', "\\%").replace('_', "\\_");
        (format!("{escaped}%"), format!("%{escaped}%"))
    });
    let (prefix, contains) = match &pattern {
        Some((p, c)) => (Some(p.as_str()), Some(c.as_str())),
        None => (None, None),
    };
    let rows = client
        .query(
            &format!(
                "SELECT {SUMMARY_COLUMNS} FROM orders o
                 WHERE ($1::text[] IS NULL OR o.site_id = ANY($1))
                   AND ($2::text IS NULL OR o.site_id = $2)
                   AND ($3::text IS NULL OR o.webflow_order_id LIKE $3 OR o.customer_email ILIKE $4)
                   AND ($5::text IS NULL OR o.state = $5)
                 ORDER BY o.created_at DESC, o.id DESC LIMIT $6"
            ),
            &[
                &search.sites,
                &search.site_id,
                &prefix,
                &contains,
                &search.state,
                &search.limit,
            ],
        )
        .await?;
    rows.iter().map(summary).collect()
}

/// One order's list entry (customer, times), or `None`.
pub async fn order_summary<C: Db>(client: &C, site_id: &SiteId, order_id: &OrderId) -> Result<Option<OrderSummary>> {
    let row = client
        .query_opt(
            &format!("SELECT {SUMMARY_COLUMNS} FROM orders o WHERE o.site_id = $1 AND o.webflow_order_id = $2"),
            &[site_id, order_id],
        )
        .await?;
    row.as_ref().map(summary).transpose()
}

/// The audit kind that marks a `needs_review` order as dealt with (the order keeps its state:
/// `needs_review` is terminal; the note says what the operator did).
pub const REVIEW_RESOLVED: &str = crate::audit::AuditKind::ReviewResolved.as_str();

/// Orders in `needs_review` that no operator marked resolved since they got there, oldest first.
pub async fn needs_review<C: Db>(client: &C, sites: Option<&[String]>) -> Result<Vec<OrderSummary>> {
    let rows = client
        .query(
            &format!(
                "SELECT {SUMMARY_COLUMNS} FROM orders o
                 WHERE o.state = 'needs_review' AND ($1::text[] IS NULL OR o.site_id = ANY($1))
                   AND NOT EXISTS (
                       SELECT 1 FROM audit_log a
                       WHERE a.site_id = o.site_id AND a.webflow_order_id = o.webflow_order_id
                         AND a.kind = '{REVIEW_RESOLVED}'
                         AND a.id > COALESCE((SELECT max(s.id) FROM audit_log s
                                              WHERE s.site_id = o.site_id AND s.webflow_order_id = o.webflow_order_id
                                                AND s.kind = 'state_change' AND s.detail->>'to' = 'needs_review'), 0))
                 ORDER BY o.updated_at, o.id"
            ),
            &[&sites],
        )
        .await?;
    rows.iter().map(summary).collect()
}

/// Per store: orders per state.
pub async fn counts_by_state<C: Db>(client: &C, sites: Option<&[String]>) -> Result<Vec<(SiteId, OrderState, i64)>> {
    let rows = client
        .query(
            "SELECT site_id, state, count(*) FROM orders WHERE ($1::text[] IS NULL OR site_id = ANY($1))
             GROUP BY site_id, state ORDER BY site_id, state",
            &[&sites],
        )
        .await?;
    rows.iter().map(|r| Ok((r.get(0), column(r, 1)?, r.get(2)))).collect()
}

/// Per store: the oldest order not yet shipped (and not finished otherwise).
pub async fn oldest_unshipped<C: Db>(
    client: &C,
    sites: Option<&[String]>,
) -> Result<Vec<(SiteId, OrderId, OrderState, chrono::DateTime<chrono::Utc>)>> {
    let rows = client
        .query(
            "SELECT DISTINCT ON (site_id) site_id, webflow_order_id, state, created_at FROM orders
             WHERE state IN ('received', 'ready', 'backordered', 'reserved', 'packed')
               AND ($1::text[] IS NULL OR site_id = ANY($1))
             ORDER BY site_id, created_at, id",
            &[&sites],
        )
        .await?;
    rows.iter()
        .map(|r| Ok((r.get(0), r.get(1), column(r, 2)?, r.get(3))))
        .collect()
}

/// A Webflow rate budget (one per token: see `rate_budget`).
#[derive(Debug, Clone, PartialEq)]
pub struct BudgetRow {
    pub key: String,
    pub limit_per_minute: f64,
    /// Seconds of already-granted calls ahead of a new one (0: a call may go now).
    pub queued_seconds: f64,
    pub paused_until: Option<chrono::DateTime<chrono::Utc>>,
    pub calls: i64,
    pub throttled: i64,
    /// The sites the budget paces (several when they share a token).
    pub site_ids: Vec<String>,
}

pub async fn rate_budgets<C: Db>(client: &C) -> Result<Vec<BudgetRow>> {
    let rows = client
        .query(
            "SELECT key, COALESCE(learned_limit, configured_limit),
                    GREATEST(EXTRACT(EPOCH FROM (next_slot - clock_timestamp())), 0)::float8,
                    CASE WHEN paused_until > clock_timestamp() THEN paused_until END, calls, throttled,
                    site_ids
             FROM rate_budgets ORDER BY key",
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| BudgetRow {
            key: r.get(0),
            limit_per_minute: r.get(1),
            queued_seconds: r.get(2),
            paused_until: r.get(3),
            calls: r.get(4),
            throttled: r.get(5),
            site_ids: r.get(6),
        })
        .collect())
}

/// Events written but not yet published (the outbox relay's backlog).
pub async fn outbox_backlog<C: Db>(client: &C) -> Result<i64> {
    Ok(client
        .query_one("SELECT count(*) FROM outbox WHERE published_at IS NULL", &[])
        .await?
        .get(0))
}

/// Stock of a merchant's SKU with the backorders waiting for it.
#[derive(Debug, Clone, PartialEq)]
pub struct InventoryRow {
    /// The merchant that owns the stock.
    pub merchant_id: i64,
    pub merchant: String,
    pub sku: Sku,
    pub on_hand: i64,
    pub reserved: i64,
    pub available: i64,
    /// Backordered orders (of the merchant) with a line of this SKU, and the units they want.
    pub backordered_orders: i64,
    pub backordered_units: i64,
}

/// Every SKU in scope, by merchant and SKU: of the merchants `merchants` names (`None`: every
/// merchant), and for a store-scoped token (`sites`) the SKUs its stores' orders use.
pub async fn inventory<C: Db>(
    client: &C,
    merchants: Option<&[i64]>,
    sites: Option<&[String]>,
) -> Result<Vec<InventoryRow>> {
    let rows = client
        .query(
            "SELECT m.name, i.sku, i.merchant_id, i.on_hand, i.reserved,
                    (SELECT count(DISTINCT o.id) FROM order_lines l JOIN orders o ON o.id = l.order_id
                     WHERE l.sku = i.sku AND o.merchant_id = i.merchant_id AND o.state = 'backordered'
                       AND ($1::text[] IS NULL OR o.site_id = ANY($1))),
                    (SELECT COALESCE(sum(l.quantity), 0)::bigint FROM order_lines l JOIN orders o ON o.id = l.order_id
                     WHERE l.sku = i.sku AND o.merchant_id = i.merchant_id AND o.state = 'backordered'
                       AND ($1::text[] IS NULL OR o.site_id = ANY($1)))
             FROM inventory i JOIN merchants m ON m.id = i.merchant_id
             WHERE ($2::bigint[] IS NULL OR i.merchant_id = ANY($2))
               AND ($1::text[] IS NULL OR EXISTS (
                   SELECT 1 FROM order_lines l JOIN orders o ON o.id = l.order_id
                   WHERE l.sku = i.sku AND o.merchant_id = i.merchant_id AND o.site_id = ANY($1)))
             ORDER BY m.name, i.sku",
            &[&sites, &merchants],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| {
            let (on_hand, reserved): (i64, i64) = (r.get(3), r.get(4));
            InventoryRow {
                merchant_id: r.get(2),
                merchant: r.get(0),
                sku: r.get(1),
                on_hand,
                reserved,
                available: on_hand - reserved,
                backordered_orders: r.get(5),
                backordered_units: r.get(6),
            }
        })
        .collect())
}

/// One Webflow write step of an order (the write ledger).
#[derive(Debug, Clone, PartialEq)]
pub struct WriteRow {
    pub step: String,
    pub status: String,
    pub attempts: i32,
    pub response_status: Option<i32>,
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

pub async fn webflow_writes<C: Db>(client: &C, site_id: &SiteId, order_id: &OrderId) -> Result<Vec<WriteRow>> {
    let rows = client
        .query(
            "SELECT w.step, w.status, w.attempts, w.response_status, w.updated_at
             FROM webflow_writes w JOIN orders o ON o.id = w.order_id
             WHERE o.site_id = $1 AND o.webflow_order_id = $2 ORDER BY w.updated_at, w.step",
            &[site_id, order_id],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| WriteRow {
            step: r.get(0),
            status: r.get(1),
            attempts: r.get(2),
            response_status: r.get(3),
            updated_at: r.get(4),
        })
        .collect())
}
