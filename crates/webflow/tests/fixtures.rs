//! Every example payload Webflow documents (copied into `fixtures/webflow/`) parses.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

use std::path::PathBuf;
use webflow::{
    ErrorBody, FulfillOrderRequest, InventoryItem, Order, OrderList, OrderStatus, RefundOrderRequest, RefundReason,
    TriggerType, UpdateOrderRequest, Webhook, WebhookEnvelope, WebhookList, WebhookSignature, verify_webhook,
};

fn fixture(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/webflow")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn parse<T: serde::de::DeserializeOwned>(name: &str) -> T {
    serde_json::from_str(&fixture(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn order_fixtures_parse_with_webflow_names() {
    let order: Order = parse("order.get.response.json");
    assert!(order.order_id.is_some());
    let item = &order.items()[0];
    assert!(item.variant_sku.is_some(), "variantSKU must map");
    assert!(item.count.is_some());
    assert!(order.customer_paid.as_ref().and_then(|p| p.minor_units()).is_some());

    for name in [
        "order.update.response.json",
        "order.fulfill.response.json",
        "order.unfulfill.response.json",
        "order.refund.response.json",
    ] {
        let order: Order = parse(name);
        assert!(order.status.is_some(), "{name}");
        assert!(!matches!(order.status, Some(OrderStatus::Other(_))), "{name}");
    }

    let list: OrderList = parse("orders.list.response.json");
    assert_eq!(list.orders.len(), 2);
    assert_eq!(list.pagination.and_then(|p| p.limit), Some(100));
}

#[test]
fn request_fixtures_round_trip() {
    let update: UpdateOrderRequest = parse("order.update.request.json");
    assert!(update.shipping_tracking_url.is_some(), "shippingTrackingURL must map");
    let again = serde_json::to_value(&update).unwrap();
    assert_eq!(
        again,
        serde_json::from_str::<serde_json::Value>(&fixture("order.update.request.json")).unwrap()
    );

    let fulfill: FulfillOrderRequest = parse("order.fulfill.request.json");
    assert!(fulfill.send_order_fulfilled_email);
    let refund: RefundOrderRequest = parse("order.refund.request.json");
    assert_eq!(refund.reason, Some(RefundReason::Requested));
}

#[test]
fn webhook_bodies_parse() {
    let new_order: WebhookEnvelope<Order> = parse("webhook.ecomm_new_order.body.json");
    assert_eq!(new_order.trigger_type, TriggerType::EcommNewOrder);
    let order = new_order.payload.unwrap();
    assert_eq!(order.status, Some(OrderStatus::Unfulfilled));
    assert!(order.shipping_address.unwrap().is_complete());

    let changed: WebhookEnvelope<Order> = parse("webhook.ecomm_order_changed.body.json");
    assert_eq!(changed.trigger_type, TriggerType::EcommOrderChanged);

    let inventory: WebhookEnvelope<InventoryItem> = parse("webhook.ecomm_inventory_changed.body.json");
    assert_eq!(inventory.trigger_type, TriggerType::EcommInventoryChanged);
    assert!(inventory.payload.unwrap().id.is_some());
}

#[test]
fn webhook_management_fixtures_parse() {
    let created: Webhook = parse("webhooks.create.response.json");
    assert!(created.id.is_some());
    let with_secret: Webhook = parse("webhooks.create.response.with-secretKey.docs.json");
    assert_eq!(with_secret.secret_key.as_deref().map(str::len), Some(64));
    assert!(!format!("{with_secret:?}").contains(with_secret.secret_key.as_deref().unwrap()));
    let list: WebhookList = parse("webhooks.list.response.json");
    assert!(!list.webhooks.is_empty());
    let _: Webhook = parse("webhooks.get.response.json");
    let _: serde_json::Value = parse("webhooks.create.request.docs.json");
    let _: serde_json::Value = parse("webhooks.create.request.ecomm_new_order.json");
}

#[test]
fn inventory_fixtures_parse() {
    for name in ["inventory.get.response.json", "inventory.update.response.json"] {
        let item: InventoryItem = parse(name);
        assert!(item.inventory_type.is_some(), "{name}");
    }
    let _: serde_json::Value = parse("inventory.update.request.absolute.json");
    let _: serde_json::Value = parse("inventory.update.request.incremental.json");
}

#[test]
fn every_error_body_parses() {
    let cases = [
        ("error.400.bad_request.json", "bad_request"),
        ("error.400.validation_error.json", "validation_error"),
        ("error.401.not_authorized.json", "not_authorized"),
        ("error.403.missing_scopes.json", "missing_scopes"),
        ("error.404.resource_not_found.json", "resource_not_found"),
        ("error.409.ecommerce_not_enabled.json", "ecommerce_not_enabled"),
        ("error.429.too_many_requests.json", "too_many_requests"),
        ("error.429.too_many_requests.docs-rate-limits.json", "too_many_requests"),
        ("error.500.internal_error.json", "internal_error"),
    ];
    for (name, code) in cases {
        let body: ErrorBody = parse(name);
        assert_eq!(body.code.as_deref(), Some(code), "{name}");
    }
}

#[test]
fn synthetic_signature_vector_verifies() {
    let vector: serde_json::Value = parse("webhook.signature.test-vector.synthetic.json");
    let secret = vector["secret"].as_str().unwrap();
    let timestamp = vector["headers"]["x-webflow-timestamp"].as_str().unwrap();
    let signature = vector["headers"]["x-webflow-signature"].as_str().unwrap();
    let body = vector["body"].as_str().unwrap();
    assert_eq!(
        webflow::sign(secret, timestamp, body.as_bytes()),
        vector["expected_signature_hex"]
    );

    let now: i64 = timestamp.parse().unwrap();
    let headers = WebhookSignature { timestamp, signature };
    assert_eq!(
        verify_webhook(&[secret], headers, body.as_bytes(), now, 300_000),
        Ok(())
    );

    // What the SDK refuses, we refuse too.
    let upper = signature.to_uppercase();
    let headers = WebhookSignature {
        timestamp,
        signature: &upper,
    };
    assert!(verify_webhook(&[secret], headers, body.as_bytes(), now, 300_000).is_err());
    let pretty = serde_json::to_string_pretty(&serde_json::from_str::<serde_json::Value>(body).unwrap()).unwrap();
    let headers = WebhookSignature { timestamp, signature };
    assert!(verify_webhook(&[secret], headers, pretty.as_bytes(), now, 300_000).is_err());
}
