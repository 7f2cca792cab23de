//! The envelope every internal event travels in, and the versioned event enum.
//!
//! Raw Webflow webhooks travel as their exact signed bytes (see the ingress); everything a
//! worker produces is an [`Envelope`] serialised as JSON.

use crate::ids::{MessageId, OrderId, SiteId, Sku};
use crate::routing;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Metadata shared by every event on the bus.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// Unique and stable: derived from what caused the event, so a retried producer
    /// emits the same id and consumers can deduplicate.
    pub message_id: MessageId,
    /// Ties every event of one order's journey to the webhook that started it.
    pub correlation_id: String,
    pub site_id: SiteId,
    pub occurred_at: DateTime<Utc>,
    pub event: Event,
}

/// Internal events. Variants carry a version suffix; a breaking change adds a new variant
/// and consumers handle both until the old one drains.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum Event {
    #[serde(rename = "order.ready.v1")]
    OrderReadyV1 { order_id: OrderId },
    #[serde(rename = "order.cancelled.v1")]
    OrderCancelledV1 { order_id: OrderId, reason: String },
    #[serde(rename = "order.reserved.v1")]
    OrderReservedV1 { order_id: OrderId, pick_task_id: i64 },
    #[serde(rename = "order.backordered.v1")]
    OrderBackorderedV1 { order_id: OrderId, reason: String },
    #[serde(rename = "order.packed.v1")]
    OrderPackedV1 { order_id: OrderId },
    #[serde(rename = "order.shipped.v1")]
    OrderShippedV1 { order_id: OrderId },
    #[serde(rename = "order.fulfilled.v1")]
    OrderFulfilledV1 { order_id: OrderId },
    /// Stock of a merchant's SKU came in (or was released): its backorders are offered it.
    /// `merchant_id` is absent in events from before merchants owned stock, which were all
    /// the `default` merchant's (id 1): an additive, backwards-compatible field.
    #[serde(rename = "stock.received.v1")]
    StockReceivedV1 {
        sku: Sku,
        quantity: i64,
        #[serde(default = "default_merchant_id")]
        merchant_id: i64,
    },
    /// An operator refunds the order in Webflow (e.g. stock will never arrive).
    #[serde(rename = "order.refund_requested.v1")]
    OrderRefundRequestedV1 { order_id: OrderId, reason: String },
    /// The warehouse corrected the shipping address; Webflow's order comment must say so.
    #[serde(rename = "order.address_corrected.v1")]
    OrderAddressCorrectedV1 { order_id: OrderId, comment: String },
}

/// The `default` merchant (id 1): what events from before merchants owned stock are about.
fn default_merchant_id() -> i64 {
    1
}

impl Event {
    /// The routing key this event is published with.
    pub fn routing_key(&self) -> &'static str {
        match self {
            Self::OrderReadyV1 { .. } => routing::ORDER_READY,
            Self::OrderCancelledV1 { .. } => routing::ORDER_CANCELLED,
            Self::OrderReservedV1 { .. } => routing::ORDER_RESERVED,
            Self::OrderBackorderedV1 { .. } => routing::ORDER_BACKORDERED,
            Self::OrderPackedV1 { .. } => routing::ORDER_PACKED,
            Self::OrderShippedV1 { .. } => routing::ORDER_SHIPPED,
            Self::OrderFulfilledV1 { .. } => routing::ORDER_FULFILLED,
            Self::StockReceivedV1 { .. } => routing::STOCK_RECEIVED,
            Self::OrderRefundRequestedV1 { .. } => routing::ORDER_REFUND_REQUESTED,
            Self::OrderAddressCorrectedV1 { .. } => routing::ORDER_ADDRESS_CORRECTED,
        }
    }

    /// The order this event is about, if any.
    pub fn order_id(&self) -> Option<&OrderId> {
        match self {
            Self::OrderReadyV1 { order_id }
            | Self::OrderCancelledV1 { order_id, .. }
            | Self::OrderReservedV1 { order_id, .. }
            | Self::OrderBackorderedV1 { order_id, .. }
            | Self::OrderPackedV1 { order_id }
            | Self::OrderShippedV1 { order_id }
            | Self::OrderFulfilledV1 { order_id }
            | Self::OrderRefundRequestedV1 { order_id, .. }
            | Self::OrderAddressCorrectedV1 { order_id, .. } => Some(order_id),
            Self::StockReceivedV1 { .. } => None,
        }
    }
}

impl Envelope {
    pub fn new(message_id: MessageId, correlation_id: impl Into<String>, site_id: SiteId, event: Event) -> Self {
        Self {
            message_id,
            correlation_id: correlation_id.into(),
            site_id,
            occurred_at: Utc::now(),
            event,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_round_trips_with_a_type_tag() {
        let envelope = Envelope::new(
            MessageId::new("m-1"),
            "corr-1",
            SiteId::new("site"),
            Event::OrderReadyV1 {
                order_id: OrderId::new("fc7-128"),
            },
        );
        let json = serde_json::to_value(&envelope).unwrap();
        assert_eq!(json["event"]["type"], "order.ready.v1");
        assert_eq!(json["event"]["order_id"], "fc7-128");
        let back: Envelope = serde_json::from_value(json).unwrap();
        assert_eq!(back, envelope);
        assert_eq!(back.event.routing_key(), routing::ORDER_READY);
    }

    #[test]
    fn unknown_event_type_is_an_error_not_a_panic() {
        let json = serde_json::json!({"type": "order.teleported.v9", "order_id": "x"});
        assert!(serde_json::from_value::<Event>(json).is_err());
    }
}
