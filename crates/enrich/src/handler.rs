//! What a Webflow webhook means for the warehouse.

use domain::{Event, OrderId, OrderState, SiteId, UnhandledTrigger, WebhookTrigger};
use platform::amqp::headers;
use platform::amqp::topology::consumer;
use prometheus::{IntCounter, IntGauge, Registry};
use std::collections::HashMap;
use warehouse_db::Transaction;
use warehouse_db::audit::{self, AuditEntry, AuditKind};
use warehouse_db::orders::{self, NewLine, NewOrder, OrderRecord};
use webflow::{CallRecord, InventoryItem, Order, OrderStatus, SiteSettings, WebhookEnvelope};
use webflow_gateway::{Priority, WebflowGateway};
use worker::{Effects, Handler, HandlerError, IncomingMessage, Preparation, SeenCheck};

pub const ACTOR: &str = consumer::ENRICH;

#[derive(Clone)]
pub struct EnrichMetrics {
    pub api_fetches: IntCounter,
    pub inventory_drift_detected: IntCounter,
    pub last_inventory_drift: IntGauge,
}

impl EnrichMetrics {
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let api_fetches = IntCounter::new(
            "wms_enrich_order_fetches_total",
            "Orders fetched because the webhook was incomplete",
        )?;
        let inventory_drift_detected = IntCounter::new(
            "wms_enrich_inventory_drift_total",
            "Inventory webhooks whose quantity differs from the warehouse's available count",
        )?;
        let last_inventory_drift = IntGauge::new(
            "wms_enrich_inventory_last_drift",
            "Webflow quantity minus warehouse available, last seen",
        )?;
        registry.register(Box::new(api_fetches.clone()))?;
        registry.register(Box::new(inventory_drift_detected.clone()))?;
        registry.register(Box::new(last_inventory_drift.clone()))?;
        Ok(Self {
            api_fetches,
            inventory_drift_detected,
            last_inventory_drift,
        })
    }
}

pub struct EnrichHandler {
    gateway: WebflowGateway,
    /// Sites by Webflow site id.
    sites: HashMap<String, SiteSettings>,
    always_fetch: bool,
    metrics: EnrichMetrics,
}

impl EnrichHandler {
    pub fn new(
        gateway: WebflowGateway,
        sites: impl IntoIterator<Item = SiteSettings>,
        always_fetch: bool,
        metrics: EnrichMetrics,
    ) -> Self {
        let sites = sites.into_iter().map(|s| (s.site_id.clone(), s)).collect();
        Self {
            gateway,
            sites,
            always_fetch,
            metrics,
        }
    }

    fn require_site(&self, site_id: &SiteId) -> Result<(), HandlerError> {
        match self.sites.get(site_id.as_str()) {
            Some(site) if site.api_token.is_some() => Ok(()),
            _ => Err(HandlerError::permanent(format!(
                "Webflow site `{site_id}` is not configured with an API token"
            ))),
        }
    }
}

pub enum Prepared {
    Order(PreparedOrder),
    Inventory { site_id: SiteId, item: InventoryItem },
}

/// An order webhook, with the order read from Webflow when the webhook lacked part of it.
pub struct PreparedOrder {
    pub site_id: SiteId,
    pub order_id: OrderId,
    pub trigger: WebhookTrigger,
    pub order: Box<Order>,
    /// The `GET order` call, if one was made.
    pub fetch: Option<CallRecord>,
}

/// Why a webhook's order cannot be used as is (None: it is complete).
pub fn incompleteness(order: &Order) -> Option<&'static str> {
    if order.status.is_none() {
        return Some("no status");
    }
    let items = order.items();
    if items.is_empty() {
        return Some("no purchased items");
    }
    if items
        .iter()
        .any(|i| i.variant_sku.as_deref().is_none_or(str::is_empty) || i.count.is_none())
    {
        return Some("a line lacks variantSKU or count");
    }
    match order.is_shipping_required {
        None => Some("isShippingRequired missing"),
        Some(true) if !order.shipping_address.as_ref().is_some_and(|a| a.is_complete()) => {
            Some("incomplete shipping address")
        }
        _ => None,
    }
}

/// Order of Webflow statuses along an order's life; a lower rank never overwrites a higher one.
/// A status the database holds is read back with the wire mapping of `OrderStatus`.
fn status_rank(status: Option<&OrderStatus>) -> u8 {
    status.map_or(0, OrderStatus::progress)
}

impl Handler for EnrichHandler {
    const NAME: &'static str = consumer::ENRICH;
    // Most webhooks carry the whole order and need no call: look for a duplicate only before
    // a fetch (the transaction catches the others), not with a round trip per message.
    const CHECK_BEFORE_PREPARE: bool = false;
    type Prepared = Prepared;

    async fn prepare(
        &self,
        message: &IncomingMessage,
        seen: &SeenCheck<'_>,
    ) -> Result<Preparation<Prepared>, HandlerError> {
        let site_id = message
            .header(headers::SITE_ID)
            .map(SiteId::new)
            .ok_or_else(|| HandlerError::permanent("no x-site-id header"))?;
        let trigger = trigger_of(message);
        let envelope: WebhookEnvelope = serde_json::from_slice(&message.body)
            .map_err(|e| HandlerError::permanent(format!("not a Webflow webhook: {e}")))?;
        let payload = envelope
            .payload
            .ok_or_else(|| HandlerError::permanent("the webhook has no payload"))?;
        match trigger {
            Ok(trigger @ (WebhookTrigger::NewOrder | WebhookTrigger::OrderChanged)) => {
                self.prepare_order(site_id, trigger, payload, seen, message.resume_token())
                    .await
            }
            Ok(WebhookTrigger::InventoryChanged) => {
                let item: InventoryItem = serde_json::from_value(payload)
                    .map_err(|e| HandlerError::permanent(format!("the payload is not an inventory item: {e}")))?;
                Ok(Preparation::Ready(Prepared::Inventory { site_id, item }))
            }
            Err(UnhandledTrigger(other)) => Err(HandlerError::permanent(format!(
                "enrich does not handle trigger type `{other}`"
            ))),
        }
    }

    async fn apply(
        &self,
        tx: &Transaction<'_>,
        message: &IncomingMessage,
        prepared: Prepared,
        effects: &mut Effects,
    ) -> Result<(), HandlerError> {
        match prepared {
            Prepared::Order(prepared) => apply_order(tx, message, &prepared, effects).await,
            Prepared::Inventory { site_id, item } => self.apply_inventory(tx, &site_id, &item).await,
        }
    }
}

/// The trigger of a webhook message: its `x-trigger-type` header, else its routing key.
fn trigger_of(message: &IncomingMessage) -> Result<WebhookTrigger, UnhandledTrigger> {
    message
        .header(headers::TRIGGER_TYPE)
        .or_else(|| {
            message
                .routing_key
                .strip_prefix(domain::routing::WEBHOOK_PREFIX)
                .map(str::to_owned)
        })
        .unwrap_or_default()
        .parse()
}

impl EnrichHandler {
    /// Reads the order from the payload, and from Webflow when the payload is incomplete (or
    /// `always_fetch` is set), unless the message was handled before.
    async fn prepare_order(
        &self,
        site_id: SiteId,
        trigger: WebhookTrigger,
        payload: serde_json::Value,
        seen: &SeenCheck<'_>,
        mut resume: Option<String>,
    ) -> Result<Preparation<Prepared>, HandlerError> {
        let mut order: Order = serde_json::from_value(payload)
            .map_err(|e| HandlerError::permanent(format!("the payload is not a Webflow order: {e}")))?;
        let order_id = order
            .order_id
            .clone()
            .filter(|id| !id.is_empty())
            .map(OrderId::new)
            .ok_or_else(|| HandlerError::permanent("the order has no orderId"))?;
        self.require_site(&site_id)?;
        let mut fetch = None;
        if self.always_fetch || incompleteness(&order).is_some() {
            if seen.already_handled().await? {
                return Ok(Preparation::AlreadyHandled);
            }
            let (fetched, call) = self.fetch_order(&site_id, &order_id, &mut resume).await?;
            fetch = Some(call);
            order = fetched;
        }
        Ok(Preparation::Ready(Prepared::Order(PreparedOrder {
            site_id,
            order_id,
            trigger,
            order: Box::new(order),
            fetch,
        })))
    }

    /// `GET` the order from Webflow within the enrichment share of the rate budget (with the
    /// slot reserved on an earlier delivery, if any).
    async fn fetch_order(
        &self,
        site_id: &SiteId,
        order_id: &OrderId,
        resume: &mut Option<String>,
    ) -> Result<(Order, CallRecord), HandlerError> {
        self.metrics.api_fetches.inc();
        let (site, id) = (site_id.clone(), order_id.clone());
        let response = self
            .gateway
            .call_resuming(site_id, Priority::Enrichment, resume, |client, token| async move {
                client.get_order(&token, site.as_str(), id.as_str()).await
            })
            .await
            .map_err(HandlerError::classified)?;
        let mut order = response.value;
        if order.order_id.as_deref() != Some(order_id.as_str()) {
            order.order_id = Some(order_id.to_string());
        }
        Ok((order, response.call))
    }

    async fn apply_inventory(
        &self,
        tx: &Transaction<'_>,
        site_id: &SiteId,
        item: &InventoryItem,
    ) -> Result<(), HandlerError> {
        let variant = item.id.clone().unwrap_or_default();
        let level = warehouse_db::inventory::by_variant(tx, &variant).await?;
        let finite = item.inventory_type.as_deref() != Some("infinite");
        let drift = match (&level, item.quantity, finite) {
            (Some(level), Some(quantity), true) => Some(quantity.round() as i64 - level.available),
            _ => None,
        };
        if let Some(drift) = drift {
            self.metrics.last_inventory_drift.set(drift);
            if drift != 0 {
                self.metrics.inventory_drift_detected.inc();
                tracing::warn!(site_id = %site_id, variant_id = %variant, drift, "Webflow inventory differs from the warehouse");
            }
        }
        audit::record(
            tx,
            AuditEntry {
                site_id: Some(site_id.as_str()),
                order_id: None,
                kind: AuditKind::InventoryChanged,
                actor: ACTOR,
                detail: serde_json::json!({
                    "variant_id": variant,
                    "webflow_quantity": item.quantity,
                    "inventory_type": item.inventory_type,
                    "sku": level.as_ref().map(|l| l.sku.clone()),
                    "warehouse_available": level.as_ref().map(|l| l.available),
                    "drift": drift,
                }),
            },
        )
        .await?;
        Ok(())
    }
}

fn lines_of(order: &Order) -> Result<Vec<NewLine>, HandlerError> {
    order
        .items()
        .iter()
        .enumerate()
        .map(|(index, item)| {
            // SKU is Webflow's variantSKU; a variant without a custom SKU falls back to its id,
            // which then shows as an unknown SKU (backorder) rather than vanishing.
            let sku = item
                .variant_sku
                .clone()
                .filter(|s| !s.is_empty())
                .or_else(|| item.variant_id.clone())
                .ok_or_else(|| {
                    HandlerError::permanent(format!("line {} has neither variantSKU nor variantId", index + 1))
                })?;
            let quantity = item.count.unwrap_or(0);
            let quantity = i32::try_from(quantity)
                .ok()
                .filter(|q| *q > 0)
                .ok_or_else(|| HandlerError::permanent(format!("line {} has count {quantity}", index + 1)))?;
            Ok(NewLine {
                sku,
                variant_id: item.variant_id.clone(),
                product_name: item.product_name.clone(),
                quantity,
                unit_weight: item.weight,
                unit_width: item.width,
                unit_height: item.height,
                unit_length: item.length,
            })
        })
        .collect()
}

/// An order webhook's order, with what the warehouse stores of it derived once.
struct IncomingOrder<'a> {
    prepared: &'a PreparedOrder,
    status: Option<&'a str>,
    shipping_required: bool,
    snapshot: serde_json::Value,
    address: Option<serde_json::Value>,
}

impl<'a> IncomingOrder<'a> {
    fn new(prepared: &'a PreparedOrder) -> Result<Self, HandlerError> {
        let order = &*prepared.order;
        Ok(Self {
            prepared,
            status: order.status.as_ref().map(OrderStatus::as_str),
            shipping_required: order.is_shipping_required.unwrap_or(true),
            snapshot: serde_json::to_value(order).map_err(|e| HandlerError::permanent(e.to_string()))?,
            address: order
                .shipping_address
                .as_ref()
                .and_then(|a| serde_json::to_value(a).ok()),
        })
    }

    fn site_id(&self) -> &'a SiteId {
        &self.prepared.site_id
    }

    fn order_id(&self) -> &'a OrderId {
        &self.prepared.order_id
    }

    fn order(&self) -> &'a Order {
        &self.prepared.order
    }

    /// An audit entry about this order.
    fn audit(&self, kind: AuditKind, detail: serde_json::Value) -> AuditEntry<'a> {
        AuditEntry {
            site_id: Some(self.site_id().as_str()),
            order_id: Some(self.order_id().as_str()),
            kind,
            actor: ACTOR,
            detail,
        }
    }
}

/// Audits the webhook, stores the order (new, or a newer status of a known one) and decides
/// what it means for the warehouse.
async fn apply_order(
    tx: &Transaction<'_>,
    message: &IncomingMessage,
    prepared: &PreparedOrder,
    effects: &mut Effects,
) -> Result<(), HandlerError> {
    let incoming = IncomingOrder::new(prepared)?;
    audit_arrival(tx, message, &incoming).await?;
    let record = lock_or_insert(tx, message, &incoming).await?;
    let fresh = record.version == 1 && record.webflow_status.as_deref() == incoming.status;
    let record = if fresh {
        record
    } else {
        match update_known(tx, &incoming, record).await? {
            Some(record) => record,
            None => return Ok(()),
        }
    };
    decide(tx, message, &incoming, &record, effects).await
}

/// Audits the fetch (if the order was read from Webflow) and the webhook itself.
async fn audit_arrival(
    tx: &Transaction<'_>,
    message: &IncomingMessage,
    incoming: &IncomingOrder<'_>,
) -> Result<(), HandlerError> {
    let fetch = incoming.prepared.fetch.as_ref();
    if let Some(call) = fetch {
        let detail = serde_json::to_value(call).unwrap_or_default();
        audit::record(tx, incoming.audit(AuditKind::ApiCall, detail)).await?;
    }
    let source = message.header(headers::SOURCE).unwrap_or_else(|| "webhook".into());
    let detail = serde_json::json!({
        "trigger_type": incoming.prepared.trigger.as_str(),
        "message_id": message.message_id,
        "webflow_status": incoming.status,
        "source": source,
        "fetched": fetch.is_some(),
    });
    audit::record(tx, incoming.audit(AuditKind::WebhookReceived, detail)).await?;
    Ok(())
}

/// The order's row, locked: the known one, or a new one in state `received`.
async fn lock_or_insert(
    tx: &Transaction<'_>,
    message: &IncomingMessage,
    incoming: &IncomingOrder<'_>,
) -> Result<OrderRecord, HandlerError> {
    let (site_id, order_id) = (incoming.site_id(), incoming.order_id());
    if let Some(record) = orders::lock(tx, site_id, order_id).await? {
        return Ok(record);
    }
    let lines = lines_of(incoming.order())?;
    let customer = incoming.order().customer_info.clone().unwrap_or_default();
    let total = incoming.order().customer_paid.as_ref();
    let correlation_id = message.correlation();
    let new = NewOrder {
        site_id,
        webflow_order_id: order_id,
        state: OrderState::Received,
        state_reason: None,
        webflow_status: incoming.status,
        shipping_required: incoming.shipping_required,
        customer_name: customer.full_name.as_deref(),
        customer_email: customer.email.as_deref(),
        shipping_address: incoming.address.clone(),
        total_minor: total.and_then(|p| p.minor_units()),
        currency: total.and_then(|p| p.unit.as_deref()),
        snapshot: incoming.snapshot.clone(),
        correlation_id: Some(&correlation_id),
    };
    if let Some(record) = orders::insert(tx, &new, &lines, ACTOR).await? {
        return Ok(record);
    }
    // Inserted concurrently: the lock waits for that transaction, then we go on as an update.
    tracing::debug!(order_id = %order_id, "order inserted concurrently");
    orders::lock(tx, site_id, order_id)
        .await?
        .ok_or_else(|| HandlerError::transient("the order vanished after insert"))
}

/// Applies a newer Webflow snapshot to a known order; `None` when the event is stale (it
/// would move the order backwards) and was only audited.
async fn update_known(
    tx: &Transaction<'_>,
    incoming: &IncomingOrder<'_>,
    record: OrderRecord,
) -> Result<Option<OrderRecord>, HandlerError> {
    let known = record.webflow_status.as_deref().map(OrderStatus::from_wire);
    if status_rank(incoming.order().status.as_ref()) < status_rank(known.as_ref()) {
        let detail = serde_json::json!({
            "reason": "stale event: it would move the order backwards",
            "event_status": incoming.status,
            "known_status": record.webflow_status,
        });
        audit::record(tx, incoming.audit(AuditKind::IgnoredEvent, detail)).await?;
        return Ok(None);
    }
    orders::update_snapshot(tx, record.id, incoming.status, &incoming.snapshot).await?;
    if matches!(
        record.state,
        OrderState::Received | OrderState::Ready | OrderState::Backordered
    ) {
        orders::replace_lines(tx, record.id, &lines_of(incoming.order())?).await?;
    }
    correct_address(tx, &record, incoming.address.as_ref()).await?;
    // Re-read: the snapshot update bumped the version.
    let record = orders::lock_by_id(tx, record.id)
        .await?
        .ok_or_else(|| HandlerError::transient("order vanished"))?;
    Ok(Some(record))
}

/// A shipping address corrected in Webflow before packing updates the order; after packing
/// it is only noted (the parcel may already be labelled).
async fn correct_address(
    tx: &Transaction<'_>,
    record: &OrderRecord,
    address: Option<&serde_json::Value>,
) -> Result<(), HandlerError> {
    let Some(address) = address else {
        return Ok(());
    };
    if record.shipping_address.as_ref() == Some(address) {
        return Ok(());
    }
    let before_packing = record.state.progress() < OrderState::Packed.progress();
    if before_packing {
        orders::update_shipping_address(tx, record.id, address).await?;
    }
    audit::record(
        tx,
        AuditEntry {
            site_id: Some(&record.site_id),
            order_id: Some(&record.webflow_order_id),
            kind: AuditKind::AddressCorrected,
            actor: ACTOR,
            // Which fields changed, never their values (customer data stays out of the log).
            detail: serde_json::json!({
                "applied": before_packing,
                "state": record.state.as_str(),
                "changed_fields": changed_fields(record.shipping_address.as_ref(), address),
            }),
        },
    )
    .await?;
    Ok(())
}

fn changed_fields(before: Option<&serde_json::Value>, after: &serde_json::Value) -> Vec<String> {
    let Some(after) = after.as_object() else {
        return Vec::new();
    };
    after
        .iter()
        .filter(|(key, value)| before.and_then(|b| b.get(key.as_str())) != Some(*value))
        .map(|(key, _)| key.clone())
        .collect()
}

/// What the order's Webflow status means for the warehouse: ready to reserve, waiting for
/// payment or shipping, cancelled, or fulfilled by hand (to review).
async fn decide(
    tx: &Transaction<'_>,
    message: &IncomingMessage,
    incoming: &IncomingOrder<'_>,
    record: &OrderRecord,
    effects: &mut Effects,
) -> Result<(), HandlerError> {
    let site_id = incoming.site_id();
    let order_id = OrderId::new(record.webflow_order_id.clone());
    let status = incoming.order().status.as_ref();
    match status {
        Some(OrderStatus::Unfulfilled) if record.state == OrderState::Received => {
            if incoming.shipping_required {
                orders::transition(tx, record, OrderState::Ready, Some("paid"), ACTOR).await?;
                effects.emit(EnrichHandler::NAME, message, site_id, Event::OrderReadyV1 { order_id });
            } else if record.state_reason.as_deref() != Some("no_shipping_required") {
                orders::set_state_reason(tx, record.id, "no_shipping_required").await?;
            }
        }
        Some(OrderStatus::Pending) if record.state == OrderState::Received => {
            orders::set_state_reason(tx, record.id, "payment_pending").await?;
        }
        Some(OrderStatus::Refunded | OrderStatus::DisputeLost) if !record.state.is_terminal() => {
            let reason = format!("webflow status {}", status.map(OrderStatus::as_str).unwrap_or_default());
            effects.emit(
                EnrichHandler::NAME,
                message,
                site_id,
                Event::OrderCancelledV1 { order_id, reason },
            );
        }
        Some(OrderStatus::Fulfilled)
            if record.state.progress() < OrderState::Shipped.progress() && !record.state.is_terminal() =>
        {
            orders::transition(
                tx,
                record,
                OrderState::NeedsReview,
                Some("fulfilled in Webflow but not shipped by the warehouse"),
                ACTOR,
            )
            .await?;
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fixture_order_is_complete_and_a_bare_one_is_not() {
        let raw = include_str!("../../../fixtures/webflow/webhook.ecomm_new_order.body.json");
        let envelope: WebhookEnvelope<Order> = serde_json::from_str(raw).unwrap();
        let mut order = envelope.payload.unwrap();
        assert_eq!(incompleteness(&order), None);
        order.shipping_address = None;
        assert_eq!(incompleteness(&order), Some("incomplete shipping address"));
        order.is_shipping_required = Some(false);
        assert_eq!(incompleteness(&order), None, "digital goods need no address");
        order.purchased_items.as_mut().unwrap()[0].variant_sku = None;
        assert!(incompleteness(&order).is_some());
    }

    #[test]
    fn status_ranks_only_move_forward() {
        let rank = |s: &str| status_rank(Some(&OrderStatus::from_wire(s)));
        assert!(rank("unfulfilled") < rank("fulfilled"));
        assert!(rank("fulfilled") < rank("refunded"));
        assert!(rank("pending") < rank("unfulfilled"));
        assert_eq!(rank("dispute-lost"), rank("refunded"));
        assert_eq!(rank("on-hold"), status_rank(None));
    }
}
