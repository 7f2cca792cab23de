//! The append-only audit log: every webhook, every external call, every state change.

use crate::db::Db;
use crate::error::Result;

pub mod kind {
    pub const WEBHOOK_RECEIVED: &str = "webhook_received";
    pub const API_CALL: &str = "api_call";
    pub const STATE_CHANGE: &str = "state_change";
    pub const ORDER_UPDATED: &str = "order_updated";
    pub const ADDRESS_CORRECTED: &str = "address_corrected";
    pub const INVENTORY_CHANGED: &str = "inventory_changed";
    pub const STOCK_RECEIVED: &str = "stock_received";
    pub const IGNORED_EVENT: &str = "ignored_event";
}

/// One audit entry about an order (or about stock when the order is `None`).
pub struct AuditEntry<'a> {
    pub site_id: Option<&'a str>,
    pub order_id: Option<&'a str>,
    pub kind: &'a str,
    pub actor: &'a str,
    pub detail: serde_json::Value,
}

pub async fn record<C: Db>(client: &C, entry: AuditEntry<'_>) -> Result<()> {
    client
        .execute(
            "INSERT INTO audit_log (site_id, webflow_order_id, kind, actor, detail) VALUES ($1, $2, $3, $4, $5)",
            &[
                &entry.site_id,
                &entry.order_id,
                &entry.kind,
                &entry.actor,
                &entry.detail,
            ],
        )
        .await?;
    Ok(())
}

/// One entry of an order's timeline.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct TimelineEntry {
    pub at: chrono::DateTime<chrono::Utc>,
    /// What happened (`state_change`, `api_call`, `picked`...).
    pub kind: String,
    /// Who did it: a worker, `warehouse-api`, `auto-pack`...
    pub actor: String,
    /// Details, shaped by `kind`.
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
}

pub async fn timeline<C: Db>(client: &C, site_id: &str, order_id: &str) -> Result<Vec<TimelineEntry>> {
    let rows = client
        .query(
            "SELECT occurred_at, kind, actor, detail FROM audit_log
             WHERE site_id = $1 AND webflow_order_id = $2 ORDER BY id",
            &[&site_id, &order_id],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|r| TimelineEntry {
            at: r.get(0),
            kind: r.get(1),
            actor: r.get(2),
            detail: r.get(3),
        })
        .collect())
}
