//! The append-only audit log: every webhook, every external call, every state change.

use crate::db::Db;
use crate::error::Result;

/// What an audit entry records; `audit_log.kind` holds [`AuditKind::as_str`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AuditKind {
    WebhookReceived,
    ApiCall,
    StateChange,
    AddressCorrected,
    InventoryChanged,
    StockReceived,
    StockCounted,
    IgnoredEvent,
    Picked,
    RefundRequested,
    ReservationReleased,
    /// An operator marked a `needs_review` order resolved, with a note (the console).
    ReviewResolved,
    /// An operator asked for the Webflow write-back again (the console).
    WritebackRetried,
    /// A SKU's stock level was pushed to a Webflow store (issue 17).
    InventoryPushed,
}

impl AuditKind {
    pub const ALL: [Self; 14] = [
        Self::WebhookReceived,
        Self::ApiCall,
        Self::StateChange,
        Self::AddressCorrected,
        Self::InventoryChanged,
        Self::StockReceived,
        Self::StockCounted,
        Self::IgnoredEvent,
        Self::Picked,
        Self::RefundRequested,
        Self::ReservationReleased,
        Self::ReviewResolved,
        Self::WritebackRetried,
        Self::InventoryPushed,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Self::WebhookReceived => "webhook_received",
            Self::ApiCall => "api_call",
            Self::StateChange => "state_change",
            Self::AddressCorrected => "address_corrected",
            Self::InventoryChanged => "inventory_changed",
            Self::StockReceived => "stock_received",
            Self::StockCounted => "stock_counted",
            Self::IgnoredEvent => "ignored_event",
            Self::Picked => "picked",
            Self::RefundRequested => "refund_requested",
            Self::ReservationReleased => "reservation_released",
            Self::ReviewResolved => "review_resolved",
            Self::WritebackRetried => "writeback_retried",
            Self::InventoryPushed => "inventory_pushed",
        }
    }
}

impl std::fmt::Display for AuditKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for AuditKind {
    type Err = crate::error::UnknownValue;

    fn from_str(value: &str) -> std::result::Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|k| k.as_str() == value)
            .ok_or_else(|| crate::error::UnknownValue::new("audit kind", value))
    }
}

/// One audit entry about an order (or about stock when the order is `None`).
pub struct AuditEntry<'a> {
    pub site_id: Option<&'a str>,
    pub order_id: Option<&'a str>,
    pub kind: AuditKind,
    pub actor: &'a str,
    pub detail: serde_json::Value,
}

impl<'a> AuditEntry<'a> {
    /// An entry about the order `order_id` of `site_id`.
    pub fn about(
        site_id: &'a str,
        order_id: &'a str,
        kind: AuditKind,
        actor: &'a str,
        detail: serde_json::Value,
    ) -> Self {
        Self {
            site_id: Some(site_id),
            order_id: Some(order_id),
            kind,
            actor,
            detail,
        }
    }

    /// An entry about a stored order.
    pub fn for_order(
        order: &'a crate::orders::OrderRecord,
        kind: AuditKind,
        actor: &'a str,
        detail: serde_json::Value,
    ) -> Self {
        Self::about(
            order.site_id.as_str(),
            order.webflow_order_id.as_str(),
            kind,
            actor,
            detail,
        )
    }

    /// An entry about stock in `site_id`, not about one order.
    pub fn for_site(site_id: &'a str, kind: AuditKind, actor: &'a str, detail: serde_json::Value) -> Self {
        Self {
            site_id: Some(site_id),
            order_id: None,
            kind,
            actor,
            detail,
        }
    }
}

pub async fn record<C: Db>(client: &C, entry: AuditEntry<'_>) -> Result<()> {
    client
        .execute(
            "INSERT INTO audit_log (site_id, webflow_order_id, kind, actor, detail) VALUES ($1, $2, $3, $4, $5)",
            &[
                &entry.site_id,
                &entry.order_id,
                &entry.kind.as_str(),
                &entry.actor,
                &entry.detail,
            ],
        )
        .await?;
    Ok(())
}

/// Several entries in one statement, in the given order (a timeline shows them so).
pub async fn record_many<C: Db>(client: &C, entries: &[AuditEntry<'_>]) -> Result<()> {
    if entries.is_empty() {
        return Ok(());
    }
    let site_ids: Vec<Option<&str>> = entries.iter().map(|e| e.site_id).collect();
    let order_ids: Vec<Option<&str>> = entries.iter().map(|e| e.order_id).collect();
    let kinds: Vec<&str> = entries.iter().map(|e| e.kind.as_str()).collect();
    let actors: Vec<&str> = entries.iter().map(|e| e.actor).collect();
    let details: Vec<&serde_json::Value> = entries.iter().map(|e| &e.detail).collect();
    client
        .execute(
            "INSERT INTO audit_log (site_id, webflow_order_id, kind, actor, detail)
             SELECT site_id, order_id, kind, actor, detail
             FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::jsonb[]) WITH ORDINALITY
                 AS e(site_id, order_id, kind, actor, detail, n)
             ORDER BY n",
            &[&site_ids, &order_ids, &kinds, &actors, &details],
        )
        .await?;
    Ok(())
}

/// One entry of an order's timeline.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct TimelineEntry {
    pub at: chrono::DateTime<chrono::Utc>,
    /// What happened (a state change, an API call, a pick...).
    pub kind: AuditKind,
    /// Who did it: a worker, `warehouse-api`, `auto-pack`...
    pub actor: String,
    /// Details, shaped by `kind`.
    #[schema(value_type = Object)]
    pub detail: serde_json::Value,
}

pub async fn timeline<C: Db>(
    client: &C,
    site_id: &domain::SiteId,
    order_id: &domain::OrderId,
) -> Result<Vec<TimelineEntry>> {
    let rows = client
        .query(
            "SELECT occurred_at, kind, actor, detail FROM audit_log
             WHERE site_id = $1 AND webflow_order_id = $2 ORDER BY id",
            &[&site_id.as_str(), &order_id.as_str()],
        )
        .await?;
    rows.iter()
        .map(|r| {
            Ok(TimelineEntry {
                at: r.get(0),
                kind: r.get::<_, &str>(1).parse()?,
                actor: r.get(2),
                detail: r.get(3),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_and_unknown_ones_are_refused() {
        for kind in AuditKind::ALL {
            assert_eq!(kind.as_str().parse(), Ok(kind));
            assert_eq!(serde_json::to_value(kind).unwrap(), kind.as_str());
        }
        assert!("order_exploded".parse::<AuditKind>().is_err());
    }
}
