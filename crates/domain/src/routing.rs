//! Routing keys on the topic exchange, and the webhook triggers that map onto them. Producers
//! and consumers import these constants and the [`WebhookTrigger`] enum, never string literals,
//! so a rename is a compile error rather than a silent drop.

use std::fmt;
use std::str::FromStr;

/// Prefix of every raw Webflow webhook routing key: `webhook.<triggerType>`.
pub const WEBHOOK_PREFIX: &str = "webhook.";
pub const WEBHOOK_NEW_ORDER: &str = "webhook.ecomm_new_order";
pub const WEBHOOK_ORDER_CHANGED: &str = "webhook.ecomm_order_changed";
pub const WEBHOOK_INVENTORY_CHANGED: &str = "webhook.ecomm_inventory_changed";

pub const ORDER_READY: &str = "order.ready";
pub const ORDER_CANCELLED: &str = "order.cancelled";
pub const ORDER_RESERVED: &str = "order.reserved";
pub const ORDER_BACKORDERED: &str = "order.backordered";
pub const ORDER_PACKED: &str = "order.packed";
pub const ORDER_SHIPPED: &str = "order.shipped";
pub const ORDER_FULFILLED: &str = "order.fulfilled";
pub const STOCK_RECEIVED: &str = "stock.received";
pub const ORDER_REFUND_REQUESTED: &str = "order.refund_requested";
pub const ORDER_ADDRESS_CORRECTED: &str = "order.address_corrected";

/// A Webflow webhook trigger type the system acts on. Webflow's full list of trigger types is
/// `webflow::TriggerType`, whose wire strings for these three come from here; the domain only
/// names the ones that carry orders or stock.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WebhookTrigger {
    /// `ecomm_new_order`
    NewOrder,
    /// `ecomm_order_changed`
    OrderChanged,
    /// `ecomm_inventory_changed`
    InventoryChanged,
}

impl WebhookTrigger {
    pub const ALL: [Self; 3] = [Self::NewOrder, Self::OrderChanged, Self::InventoryChanged];

    /// Webflow's `triggerType` (also the `x-trigger-type` header).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::NewOrder => "ecomm_new_order",
            Self::OrderChanged => "ecomm_order_changed",
            Self::InventoryChanged => "ecomm_inventory_changed",
        }
    }

    /// The routing key a webhook of this trigger is published with: `webhook.<triggerType>`.
    pub const fn routing_key(self) -> &'static str {
        match self {
            Self::NewOrder => WEBHOOK_NEW_ORDER,
            Self::OrderChanged => WEBHOOK_ORDER_CHANGED,
            Self::InventoryChanged => WEBHOOK_INVENTORY_CHANGED,
        }
    }

    /// The trigger a webhook routing key carries, if it is a handled one.
    pub fn from_routing_key(key: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.routing_key() == key)
    }

    /// Whether the webhook carries an order (rather than a stock level).
    pub const fn is_order(self) -> bool {
        matches!(self, Self::NewOrder | Self::OrderChanged)
    }
}

impl fmt::Display for WebhookTrigger {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A trigger type the system does not act on.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("trigger type `{0}` is not handled")]
pub struct UnhandledTrigger(pub String);

impl FromStr for WebhookTrigger {
    type Err = UnhandledTrigger;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|t| t.as_str() == value)
            .ok_or_else(|| UnhandledTrigger(value.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhook_keys_match_constants() {
        for trigger in WebhookTrigger::ALL {
            assert_eq!(trigger.routing_key(), format!("{WEBHOOK_PREFIX}{trigger}"));
            assert_eq!(trigger.as_str().parse(), Ok(trigger));
            assert_eq!(WebhookTrigger::from_routing_key(trigger.routing_key()), Some(trigger));
        }
        assert_eq!(
            "form_submission".parse::<WebhookTrigger>(),
            Err(UnhandledTrigger("form_submission".into()))
        );
        assert_eq!(WebhookTrigger::from_routing_key("webhook.form_submission"), None);
    }
}
