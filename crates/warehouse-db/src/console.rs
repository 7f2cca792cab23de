//! Reads for the operator console and scoped tokens: lists and counts limited to the stores
//! a token may see (`sites = None`: every store).

use crate::db::Db;
use crate::error::Result;
use crate::floor::{PickLine, PickTask};

/// Whether an order of one of `sites` has a line with `sku` (SKUs are shared by every store;
/// a token limited to some stores sees the SKUs its stores' orders use).
pub async fn sku_used_by_sites<C: Db>(client: &C, sku: &str, sites: &[String]) -> Result<bool> {
    let row = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM order_lines l JOIN orders o ON o.id = l.order_id
                            WHERE l.sku = $1 AND o.site_id = ANY($2))",
            &[&sku, &sites],
        )
        .await?;
    Ok(row.get(0))
}

/// Pick tasks of the given stores, oldest first.
pub async fn pick_tasks_in<C: Db>(
    client: &C,
    status: Option<&str>,
    sites: Option<&[String]>,
    limit: i64,
) -> Result<Vec<PickTask>> {
    let rows = client
        .query(
            "SELECT t.id, o.site_id, o.webflow_order_id, t.status, t.created_at,
                    COALESCE(json_agg(json_build_object('sku', l.sku, 'quantity', l.quantity) ORDER BY l.sku)
                             FILTER (WHERE l.sku IS NOT NULL), '[]')
             FROM pick_tasks t JOIN orders o ON o.id = t.order_id
             LEFT JOIN pick_task_lines l ON l.pick_task_id = t.id
             WHERE ($1::text IS NULL OR t.status = $1) AND ($2::text[] IS NULL OR o.site_id = ANY($2))
             GROUP BY t.id, o.site_id, o.webflow_order_id ORDER BY t.created_at, t.id LIMIT $3",
            &[&status, &sites, &limit],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| {
            let lines: serde_json::Value = r.get(5);
            let lines = lines
                .as_array()
                .map(|items| {
                    items
                        .iter()
                        .map(|l| PickLine {
                            sku: l["sku"].as_str().unwrap_or_default().to_owned(),
                            quantity: l["quantity"].as_i64().unwrap_or_default(),
                        })
                        .collect()
                })
                .unwrap_or_default();
            PickTask {
                id: r.get(0),
                site_id: r.get(1),
                order_id: r.get(2),
                status: r.get(3),
                created_at: r.get(4),
                lines,
            }
        })
        .collect())
}
