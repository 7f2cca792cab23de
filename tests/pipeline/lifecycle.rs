//! Cancellation, out-of-order events, address corrections, inventory webhooks.

use e2e::*;
use std::time::Duration;
use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

const WAIT: Duration = Duration::from_secs(20);

async fn reserved_order(p: &Pipeline, order_id: &str) {
    p.db.stock(SKU_BALL, 5).await;
    p.db.stock(SKU_GLOVES, 5).await;
    assert_eq!(
        p.post_webhook(&order_webhook("ecomm_new_order", order_id, "unfulfilled"))
            .await,
        200
    );
    assert_eq!(
        p.wait_for_state(order_id, "reserved", WAIT).await.as_deref(),
        Some("reserved")
    );
}

#[tokio::test]
async fn a_refund_releases_the_reservation_and_cancels_the_pick_task() {
    let p = start_pipeline(PipelineOptions::default()).await;
    reserved_order(&p, "cancel-1").await;
    assert_eq!(p.inventory(SKU_BALL).await.reserved, 1);
    assert_eq!(
        p.post_webhook(&order_webhook("ecomm_order_changed", "cancel-1", "refunded"))
            .await,
        200
    );
    assert_eq!(
        p.wait_for_state("cancel-1", "cancelled", WAIT).await.as_deref(),
        Some("cancelled")
    );
    assert_eq!(p.inventory(SKU_BALL).await.reserved, 0);
    assert_eq!(p.inventory(SKU_GLOVES).await.reserved, 0);
    assert_eq!(
        p.scalar("SELECT count(*) FROM pick_tasks WHERE status = 'cancelled'", &[])
            .await,
        1
    );
    assert_eq!(
        p.scalar("SELECT count(*) FROM reservations WHERE status = 'released'", &[])
            .await,
        2
    );
    p.teardown().await;
}

#[tokio::test]
async fn an_order_refunded_after_shipping_goes_to_needs_review() {
    let p = start_pipeline(PipelineOptions::default()).await;
    reserved_order(&p, "late-refund").await;
    p.client()
        .await
        .execute(
            "UPDATE orders SET state = 'shipped', version = version + 1 WHERE webflow_order_id = 'late-refund'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        p.post_webhook(&order_webhook("ecomm_order_changed", "late-refund", "dispute-lost"))
            .await,
        200
    );
    assert_eq!(
        p.wait_for_state("late-refund", "needs_review", WAIT).await.as_deref(),
        Some("needs_review")
    );
    assert_eq!(
        p.inventory(SKU_BALL).await.reserved,
        1,
        "shipped goods are not released automatically"
    );
    p.teardown().await;
}

#[tokio::test]
async fn out_of_order_events_never_move_an_order_backwards() {
    let p = start_pipeline(PipelineOptions::default()).await;
    p.db.stock(SKU_BALL, 5).await;
    p.db.stock(SKU_GLOVES, 5).await;
    // The refund arrives before the (delayed) new-order webhook.
    assert_eq!(
        p.post_webhook(&order_webhook("ecomm_order_changed", "ooo-1", "refunded"))
            .await,
        200
    );
    assert_eq!(
        p.wait_for_state("ooo-1", "cancelled", WAIT).await.as_deref(),
        Some("cancelled")
    );
    assert_eq!(
        p.post_webhook(&order_webhook("ecomm_new_order", "ooo-1", "unfulfilled"))
            .await,
        200
    );
    p.wait_until_idle(consumer::ENRICH, WAIT).await;
    p.wait_until_idle(consumer::RESERVE, WAIT).await;
    assert_eq!(p.order_state("ooo-1").await.as_deref(), Some("cancelled"));
    assert_eq!(
        p.inventory(SKU_BALL).await.reserved,
        0,
        "nothing reserved for a refunded order"
    );
    let ignored = p
        .scalar(
            "SELECT count(*) FROM audit_log WHERE kind = 'ignored_event' AND webflow_order_id = 'ooo-1'",
            &[],
        )
        .await;
    assert!(ignored >= 1, "the stale event is audited");

    // A pending order that then gets paid moves forward.
    assert_eq!(
        p.post_webhook(&order_webhook("ecomm_new_order", "pay-later", "pending"))
            .await,
        200
    );
    assert_eq!(
        p.wait_for_state("pay-later", "received", WAIT).await.as_deref(),
        Some("received")
    );
    assert_eq!(
        p.post_webhook(&order_webhook("ecomm_order_changed", "pay-later", "unfulfilled"))
            .await,
        200
    );
    assert_eq!(
        p.wait_for_state("pay-later", "reserved", WAIT).await.as_deref(),
        Some("reserved")
    );
    p.teardown().await;
}

#[tokio::test]
async fn digital_orders_are_recorded_not_reserved() {
    let p = start_pipeline(PipelineOptions::default()).await;
    let mut body = order_webhook("ecomm_new_order", "digital-1", "unfulfilled");
    body["payload"]["isShippingRequired"] = false.into();
    body["payload"].as_object_mut().unwrap().remove("shippingAddress");
    assert_eq!(p.post_webhook(&body).await, 200);
    assert_eq!(
        p.wait_for_state("digital-1", "received", WAIT).await.as_deref(),
        Some("received")
    );
    p.wait_until_idle(consumer::ENRICH, WAIT).await;
    let reason: Option<String> = p
        .client()
        .await
        .query_one(
            "SELECT state_reason FROM orders WHERE webflow_order_id = 'digital-1'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(reason.as_deref(), Some("no_shipping_required"));
    assert_eq!(p.scalar("SELECT count(*) FROM reservations", &[]).await, 0);
    p.teardown().await;
}

#[tokio::test]
async fn a_shipping_address_correction_before_packing_is_applied_and_audited() {
    let p = start_pipeline(PipelineOptions::default()).await;
    reserved_order(&p, "addr-1").await;
    let mut body = order_webhook("ecomm_order_changed", "addr-1", "unfulfilled");
    body["payload"]["shippingAddress"]["line1"] = "1 New Street".into();
    // A webhook that would change what we ship is checked against the Orders API (issue 13).
    Mock::given(method("GET"))
        .and(path(format!("/sites/{SITE_ID}/orders/addr-1")))
        .respond_with(ResponseTemplate::new(200).set_body_json(body["payload"].clone()))
        .expect(1)
        .mount(&p.webflow)
        .await;
    assert_eq!(p.post_webhook(&body).await, 200);
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let line1: Option<String> = p
            .client()
            .await
            .query_one(
                "SELECT shipping_address->>'line1' FROM orders WHERE webflow_order_id = 'addr-1'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if line1.as_deref() == Some("1 New Street") {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "address not corrected");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let audited: String = p
        .client()
        .await
        .query_one(
            "SELECT detail::text FROM audit_log WHERE kind = 'address_corrected' AND webflow_order_id = 'addr-1'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(
        audited.contains("line1") && !audited.contains("New Street"),
        "fields named, values kept out: {audited}"
    );
    assert_eq!(p.order_state("addr-1").await.as_deref(), Some("reserved"));
    p.webflow.verify().await;
    p.teardown().await;
}

#[tokio::test]
async fn inventory_webhooks_are_audited_with_drift() {
    let p = start_pipeline(PipelineOptions::default()).await;
    p.db.stock("drift-sku", 7).await;
    // The store sells the SKU under this Webflow id (as its orders would have taught).
    p.client()
        .await
        .execute(
            "INSERT INTO inventory_sync (site_id, sku, webflow_sku_id) VALUES ($1, 'drift-sku', '5e8518516e147040726cc415')",
            &[&SITE_ID],
        )
        .await
        .unwrap();
    let mut body: serde_json::Value = serde_json::from_slice(&test_support::fixture(
        "webflow/webhook.ecomm_inventory_changed.body.json",
    ))
    .unwrap();
    body["payload"]["id"] = "5e8518516e147040726cc415".into();
    body["payload"]["quantity"] = 4.into();
    body["payload"]["inventoryType"] = "finite".into();
    assert_eq!(p.post_webhook(&body).await, 200);
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let rows = p
            .client()
            .await
            .query(
                "SELECT (detail->>'drift')::bigint FROM audit_log WHERE kind = 'inventory_changed'",
                &[],
            )
            .await
            .unwrap();
        if let Some(row) = rows.first() {
            assert_eq!(row.get::<_, Option<i64>>(0), Some(-3), "4 in Webflow, 7 available here");
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "inventory webhook not audited");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    p.teardown().await;
}
