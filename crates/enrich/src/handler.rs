//! What a Webflow webhook means for the warehouse.

use domain::{Address, Event, OrderId, OrderState, SiteId, UnhandledTrigger, WebhookTrigger};
use platform::amqp::headers;
use platform::amqp::topology::consumer;
use prometheus::{IntCounter, IntGauge, Registry};
use stores::StoreRegistry;
use warehouse_db::Transaction;
use warehouse_db::audit::{self, AuditEntry, AuditKind};
use warehouse_db::orders::{self, NewLine, NewOrder, OrderRecord};
use webflow::{CallRecord, InventoryItem, InventoryType, Order, OrderStatus, WebhookEnvelope};
use webflow_gateway::{Priority, WebflowGateway};
use worker::{Effects, Handler, HandlerError, IncomingMessage, Preparation, SeenCheck};

pub const ACTOR: &str = consumer::ENRICH;

#[derive(Clone)]
pub struct EnrichMetrics {
    pub api_fetches: IntCounter,
    /// Reads made because a webhook would change what we ship on an order we hold.
    pub change_reads: IntCounter,
    pub inventory_drift_detected: IntCounter,
    pub last_inventory_drift: IntGauge,
}

impl EnrichMetrics {
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let api_fetches = IntCounter::new(
            "wms_enrich_order_fetches_total",
            "Orders fetched because the webhook was incomplete",
        )?;
        let change_reads = IntCounter::new(
            "wms_enrich_change_reads_total",
            "Orders read from Webflow because a webhook would change what is shipped (address, lines, shipping required) or resume a disputed order",
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
        registry.register(Box::new(change_reads.clone()))?;
        registry.register(Box::new(inventory_drift_detected.clone()))?;
        registry.register(Box::new(last_inventory_drift.clone()))?;
        Ok(Self {
            api_fetches,
            change_reads,
            inventory_drift_detected,
            last_inventory_drift,
        })
    }
}

pub struct EnrichHandler {
    gateway: WebflowGateway,
    /// Reads the order we hold when a webhook may change it (outside the transaction).
    pool: warehouse_db::Pool,
    /// The live stores (the registry refreshes them from the database).
    stores: StoreRegistry,
    always_fetch: bool,
    metrics: EnrichMetrics,
}

impl EnrichHandler {
    pub fn new(
        gateway: WebflowGateway,
        pool: warehouse_db::Pool,
        stores: StoreRegistry,
        always_fetch: bool,
        metrics: EnrichMetrics,
    ) -> Self {
        Self {
            gateway,
            pool,
            stores,
            always_fetch,
            metrics,
        }
    }

    pub fn metrics(&self) -> &EnrichMetrics {
        &self.metrics
    }

    /// A message of a site no live store serves (never onboarded, or removed since) fails
    /// permanently: it is dead-lettered with the reason, never retried.
    async fn require_site(&self, site_id: &SiteId) -> Result<(), HandlerError> {
        let store = self
            .stores
            .by_site_or_refresh(site_id.as_str())
            .await
            .map_err(|e| HandlerError::transient(e.to_string()))?;
        match store {
            Some(store) if store.has_api_token() => Ok(()),
            Some(store) => Err(HandlerError::permanent(format!(
                "store `{}` (Webflow site `{site_id}`) has no API token",
                store.name
            ))),
            None => Err(HandlerError::permanent(format!(
                "no live store serves Webflow site `{site_id}` (unknown, or the store was removed)"
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
    /// Why the order was read although the webhook was complete: the webhook would have
    /// changed what we ship (or resumed a disputed order). The API's answer is then applied
    /// as the truth, whatever the webhook's status said.
    pub verified: Option<&'static str>,
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
    // An order fetch waits for its store's budget slot outside a worker slot.
    const WAITS_FOR_RATE_BUDGET: bool = true;
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
            Prepared::Inventory { site_id, item } => {
                let received_at = message
                    .header(headers::RECEIVED_AT)
                    .and_then(|at| chrono::DateTime::parse_from_rfc3339(&at).ok())
                    .map(|at| at.with_timezone(&chrono::Utc));
                self.apply_inventory(tx, &site_id, &item, received_at).await
            }
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
        self.require_site(&site_id).await?;
        let mut fetch = None;
        let mut verified = None;
        if self.always_fetch || incompleteness(&order).is_some() {
            if seen.already_handled().await? {
                return Ok(Preparation::AlreadyHandled);
            }
            let (fetched, call) = self.fetch_order(&site_id, &order_id, &mut resume).await?;
            fetch = Some(call);
            order = fetched;
        } else if trigger == WebhookTrigger::OrderChanged
            && let Some(why) = self.would_change(&site_id, &order_id, &order).await?
        {
            // Webflow payloads carry no version: the webhook is a trigger, the Orders API is
            // the truth for what we ship. A stale webhook then changes nothing.
            if seen.already_handled().await? {
                return Ok(Preparation::AlreadyHandled);
            }
            self.metrics.change_reads.inc();
            let (fetched, call) = self.fetch_order(&site_id, &order_id, &mut resume).await?;
            fetch = Some(call);
            verified = Some(why);
            order = fetched;
        }
        Ok(Preparation::Ready(Prepared::Order(PreparedOrder {
            site_id,
            order_id,
            trigger,
            order: Box::new(order),
            fetch,
            verified,
        })))
    }

    /// Why a complete change webhook must be checked against the API before it is applied:
    /// it would change the address, the lines or whether shipping is required of an order we
    /// hold (compared with the last Webflow snapshot, not with an operator's correction), or
    /// it would move a disputed order back to `unfulfilled` (a won dispute). `None`: apply it.
    async fn would_change(
        &self,
        site_id: &SiteId,
        order_id: &OrderId,
        order: &Order,
    ) -> Result<Option<&'static str>, HandlerError> {
        let known = {
            let client = self.pool.get().await?;
            orders::find(&*client, site_id, order_id).await?
        };
        let Some(known) = known else {
            return Ok(None);
        };
        let known_status = known.webflow_status;
        if known_status == Some(OrderStatus::Disputed) && order.status == Some(OrderStatus::Unfulfilled) {
            return Ok(Some("a disputed order is unfulfilled again"));
        }
        if status_rank(order.status.as_ref()) < status_rank(known_status.as_ref()) {
            // Stale by status: ignored when applied, no read needed.
            return Ok(None);
        }
        let Ok(snapshot) = serde_json::from_value::<Order>(known.snapshot.clone()) else {
            return Ok(Some("the stored snapshot is unreadable"));
        };
        if order.shipping_address != snapshot.shipping_address {
            return Ok(Some("the shipping address would change"));
        }
        if order.is_shipping_required.unwrap_or(true) != snapshot.is_shipping_required.unwrap_or(true) {
            return Ok(Some("shipping required would change"));
        }
        if lines_of(order).ok() != lines_of(&snapshot).ok() {
            return Ok(Some("the lines would change"));
        }
        Ok(None)
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
                client.get_order(&token, &site, &id).await
            })
            .await
            .map_err(HandlerError::classified)?;
        let mut order = response.value;
        if order.order_id.as_deref() != Some(order_id.as_str()) {
            order.order_id = Some(order_id.to_string());
        }
        Ok((order, response.call))
    }

    /// An `ecomm_inventory_changed` webhook: what Webflow now shows for one SKU. Recorded on
    /// the SKU's sync row and audited with the drift. For a store that syncs stock (issue 17), a
    /// level that disagrees with the warehouse (a dashboard edit, say) marks the SKU dirty,
    /// so the warehouse's level is pushed again: the warehouse is the truth for its SKUs.
    /// A webhook received (`x-received-at`) before our last push of the SKU was sent is older
    /// news (a late echo of an earlier push, say): not recorded, and no drift.
    async fn apply_inventory(
        &self,
        tx: &Transaction<'_>,
        site_id: &SiteId,
        item: &InventoryItem,
        received_at: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Result<(), HandlerError> {
        let variant = item.id.clone().unwrap_or_default();
        let kind = item.inventory_type.unwrap_or(InventoryType::Finite);
        let quantity = item
            .quantity
            .filter(|_| kind == InventoryType::Finite)
            .map(|q| q.round() as i64);
        let syncing = self
            .stores
            .by_site(site_id.as_str())
            .is_some_and(|s| s.inventory_sync && s.sku_collection_id.is_some());
        let observed = warehouse_db::inventory_sync::observe(
            tx,
            site_id,
            &variant,
            quantity,
            Some(kind.as_str()),
            syncing,
            received_at,
        )
        .await?;
        let stale = observed.as_ref().is_some_and(|o| o.stale);
        // Judged by this store's own id of the SKU only (another store's id for it is not
        // this store's): an id this store has not sold under is audited, not compared.
        let sku = observed.as_ref().map(|o| o.sku.as_str());
        let available = observed.as_ref().map(|o| o.available);
        let expected = observed.as_ref().map(|o| o.desired);
        let drift = match (expected, quantity) {
            (Some(expected), Some(quantity)) => Some(quantity - expected),
            _ => None,
        };
        if let Some(drift) = drift.filter(|_| !stale) {
            self.metrics.last_inventory_drift.set(drift);
        }
        let disagrees = expected.is_some() && drift != Some(0);
        if disagrees && !stale {
            self.metrics.inventory_drift_detected.inc();
            tracing::warn!(site_id = %site_id, variant_id = %variant, ?drift, "Webflow inventory differs from the warehouse");
        }
        audit::record(
            tx,
            AuditEntry::for_site(
                site_id.as_str(),
                AuditKind::InventoryChanged,
                ACTOR,
                serde_json::json!({
                    "variant_id": variant,
                    "webflow_quantity": item.quantity,
                    "inventory_type": item.inventory_type,
                    "sku": sku,
                    "warehouse_available": available,
                    "expected": expected,
                    "drift": drift,
                    "agrees": !disagrees,
                    "push_again": observed.as_ref().is_some_and(|o| o.push_again),
                    "stale": stale,
                }),
            ),
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
                sku: sku.into(),
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
    status: Option<&'a OrderStatus>,
    shipping_required: bool,
    snapshot: serde_json::Value,
    address: Option<&'a Address>,
}

impl<'a> IncomingOrder<'a> {
    fn new(prepared: &'a PreparedOrder) -> Result<Self, HandlerError> {
        let order = &*prepared.order;
        Ok(Self {
            prepared,
            status: order.status.as_ref(),
            shipping_required: order.is_shipping_required.unwrap_or(true),
            snapshot: serde_json::to_value(order).map_err(|e| HandlerError::permanent(e.to_string()))?,
            address: order.shipping_address.as_ref(),
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
        AuditEntry::about(self.site_id().as_str(), self.order_id().as_str(), kind, ACTOR, detail)
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
    let fresh = record.version == 1 && record.webflow_status.as_ref() == incoming.status;
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
        shipping_address: incoming.address,
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
    let known = record.webflow_status.as_ref();
    let verified = incoming.prepared.verified.is_some();
    let stale = if verified {
        // Read from the API just now: the truth, even when its status ranks lower (a won
        // dispute takes a disputed order back to `unfulfilled`).
        false
    } else if incoming.prepared.trigger == WebhookTrigger::NewOrder && incoming.prepared.fetch.is_none() {
        // A new-order webhook carries the order as created: for an order we already hold it
        // is never newer than what we have (only a higher status is news).
        status_rank(incoming.order().status.as_ref()) <= status_rank(known)
    } else {
        status_rank(incoming.order().status.as_ref()) < status_rank(known)
    };
    if stale {
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
    correct_address(tx, &record, incoming.address).await?;
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
    address: Option<&Address>,
) -> Result<(), HandlerError> {
    let Some(address) = address else {
        return Ok(());
    };
    if let Some(webflow_before) = record.address_override_base.as_ref() {
        return address_after_override(tx, record, webflow_before.as_ref(), address).await;
    }
    if record.shipping_address.as_ref() == Some(address) {
        return Ok(());
    }
    let before_packing = record.state.progress() < OrderState::Packed.progress();
    if before_packing {
        orders::update_shipping_address(tx, record.id, address).await?;
    }
    // Which fields changed, never their values (customer data stays out of the log).
    let detail = serde_json::json!({
        "applied": before_packing,
        "state": record.state.as_str(),
        "changed_fields": changed_fields(record.shipping_address.as_ref(), address),
    });
    audit::record(
        tx,
        AuditEntry::for_order(record, AuditKind::AddressCorrected, ACTOR, detail),
    )
    .await?;
    Ok(())
}

/// An operator corrected the address: that correction is an override. Webflow's address as
/// it was then (`webflow_before`) changes nothing; if Webflow's own address changed since, an
/// operator must choose: the order goes to `needs_review` with both addresses on its timeline.
async fn address_after_override(
    tx: &Transaction<'_>,
    record: &OrderRecord,
    webflow_before: Option<&Address>,
    webflow_now: &Address,
) -> Result<(), HandlerError> {
    if webflow_before == Some(webflow_now) {
        return Ok(());
    }
    orders::set_address_override_base(tx, record.id, webflow_now).await?;
    // Both addresses: the operator needs them to decide (the stored one is kept).
    let detail = serde_json::json!({
        "applied": false,
        "conflict": "Webflow's address changed after the warehouse corrected it",
        "warehouse_address": record.shipping_address,
        "webflow_address": webflow_now,
        "changed_fields": changed_fields(webflow_before, webflow_now),
    });
    audit::record(
        tx,
        AuditEntry::for_order(record, AuditKind::AddressCorrected, ACTOR, detail),
    )
    .await?;
    if !record.state.is_terminal() {
        // Re-read: the override base update bumped the version.
        let current = orders::lock_by_id(tx, record.id)
            .await?
            .ok_or_else(|| HandlerError::transient("order vanished"))?;
        orders::transition(
            tx,
            &current,
            OrderState::NeedsReview,
            Some("Webflow's shipping address changed after the warehouse corrected it; choose one"),
            ACTOR,
        )
        .await?;
    }
    Ok(())
}

/// The JSON names of the address fields that changed (every field when there was none).
fn changed_fields(before: Option<&Address>, after: &Address) -> Vec<&'static str> {
    match before {
        Some(before) => before.changed_fields(after),
        None => Address::FIELD_NAMES.to_vec(),
    }
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
    let order_id = record.webflow_order_id.clone();
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
        Some(OrderStatus::Refunded | OrderStatus::DisputeLost) if record.state.has_shipped() => {
            let reason = refunded_after_shipping(status.map(OrderStatus::as_str).unwrap_or_default());
            orders::transition(tx, record, OrderState::NeedsReview, Some(&reason), ACTOR).await?;
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

/// Why an order that has left the building (shipped or fulfilled) needs a person after a
/// refund or a lost dispute.
pub fn refunded_after_shipping(webflow_status: &str) -> String {
    format!("webflow status {webflow_status} after shipping: a return or an interception may be needed")
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
