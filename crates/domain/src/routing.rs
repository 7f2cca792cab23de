//! Routing keys on the topic exchange. Producers and consumers import these constants,
//! never string literals, so a rename is a compile error rather than a silent drop.

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

/// The Webflow trigger types the system acts on.
pub const HANDLED_TRIGGER_TYPES: [&str; 3] = ["ecomm_new_order", "ecomm_order_changed", "ecomm_inventory_changed"];

/// Routing key for a webhook of the given trigger type.
pub fn webhook_routing_key(trigger_type: &str) -> String {
    format!("{WEBHOOK_PREFIX}{trigger_type}")
}

pub fn is_handled_trigger(trigger_type: &str) -> bool {
    HANDLED_TRIGGER_TYPES.contains(&trigger_type)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhook_keys_match_constants() {
        assert_eq!(webhook_routing_key("ecomm_new_order"), WEBHOOK_NEW_ORDER);
        assert_eq!(webhook_routing_key("ecomm_order_changed"), WEBHOOK_ORDER_CHANGED);
        assert_eq!(
            webhook_routing_key("ecomm_inventory_changed"),
            WEBHOOK_INVENTORY_CHANGED
        );
        assert!(is_handled_trigger("ecomm_new_order"));
        assert!(!is_handled_trigger("form_submission"));
    }
}
