//! Reservations: all lines or none, backorders, stock received, cancellations releasing stock.

use e2e::*;
use std::time::Duration;
use wiremock::matchers::method;
use wiremock::{Mock, ResponseTemplate};

const WAIT: Duration = Duration::from_secs(20);

#[tokio::test]
async fn a_paid_order_webhook_ends_reserved_with_a_pick_task_and_no_api_call() {
    let p = start_pipeline(PipelineOptions::default()).await;
    // A complete webhook needs no GET.
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(500))
        .expect(0)
        .mount(&p.webflow)
        .await;
    p.db.stock(SKU_BALL, 5).await;
    p.db.stock(SKU_GLOVES, 5).await;

    let body = order_webhook("ecomm_new_order", "fc7-128", "unfulfilled");
    assert_eq!(p.post_webhook(&body).await, 200);
    assert_eq!(
        p.wait_for_state("fc7-128", "reserved", WAIT).await.as_deref(),
        Some("reserved")
    );

    assert_eq!(p.inventory(SKU_BALL).await.reserved, 1);
    assert_eq!(p.inventory(SKU_GLOVES).await.reserved, 1);
    let tasks = p
        .scalar("SELECT count(*) FROM pick_tasks WHERE status = 'open'", &[])
        .await;
    assert_eq!(tasks, 1);
    let task_lines = p.scalar("SELECT count(*) FROM pick_task_lines", &[]).await;
    assert_eq!(task_lines, 2);
    let changes = p
        .scalar(
            "SELECT count(*) FROM audit_log WHERE kind = 'state_change' AND webflow_order_id = 'fc7-128'",
            &[],
        )
        .await;
    assert_eq!(changes, 3, "received, ready, reserved");
    let customer_in_audit = p
        .scalar("SELECT count(*) FROM audit_log WHERE detail::text LIKE '%arthur%'", &[])
        .await;
    assert_eq!(customer_in_audit, 0, "no customer data in the audit log");
    p.webflow.verify().await;
    p.teardown().await;
}

#[tokio::test]
async fn fifty_concurrent_orders_for_the_last_ten_units() {
    let p = start_pipeline(PipelineOptions::default()).await;
    p.db.stock("last-ten", 10).await;
    let mut posts = Vec::new();
    for i in 0..50 {
        let body = single_sku_order(&format!("race-{i:02}"), "last-ten", 1);
        let url = format!("{}/webhooks/webflow/{SITE_ID}", p.ingress_url);
        let http = p.http.clone();
        posts.push(tokio::spawn(async move {
            let body = serde_json::to_vec(&body).unwrap();
            let ts = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_millis()
                .to_string();
            let sig = webflow::sign(SECRET, &ts, &body);
            http.post(url)
                .header("x-webflow-timestamp", ts)
                .header("x-webflow-signature", sig)
                .body(body)
                .send()
                .await
                .unwrap()
                .status()
        }));
    }
    for post in posts {
        assert_eq!(post.await.unwrap(), 200);
    }
    assert_eq!(p.wait_for_count_in_state("backordered", 40, WAIT).await, 40);
    assert_eq!(p.wait_for_count_in_state("reserved", 10, WAIT).await, 10);
    let level = p.inventory("last-ten").await;
    assert_eq!(
        (level.on_hand, level.reserved, level.available),
        (10, 10, 0),
        "never over-reserved"
    );
    let reasons = p
        .scalar(
            "SELECT count(*) FROM orders WHERE state = 'backordered' AND state_reason LIKE '%last-ten%available%'",
            &[],
        )
        .await;
    assert_eq!(reasons, 40, "the backorder says why");
    p.teardown().await;
}

#[tokio::test]
async fn backordered_orders_are_served_oldest_first_when_stock_arrives() {
    let p = start_pipeline(PipelineOptions::default()).await;
    p.db.stock("scarce", 0).await;
    for id in ["old-1", "new-2"] {
        assert_eq!(p.post_webhook(&single_sku_order(id, "scarce", 1)).await, 200);
        assert_eq!(
            p.wait_for_state(id, "backordered", WAIT).await.as_deref(),
            Some("backordered")
        );
    }
    let unknown = single_sku_order("unknown-sku", "no-such-sku", 1);
    assert_eq!(p.post_webhook(&unknown).await, 200);
    assert_eq!(
        p.wait_for_state("unknown-sku", "backordered", WAIT).await.as_deref(),
        Some("backordered")
    );
    let reason: String = p
        .client()
        .await
        .query_one(
            "SELECT state_reason FROM orders WHERE webflow_order_id = 'unknown-sku'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(reason.contains("unknown SKU"), "{reason}");

    // One unit arrives: the older order gets it.
    p.wait_until_idle(consumer::RESERVE, WAIT).await;
    let handled = p.handled(consumer::RESERVE).await;
    receive_stock(&p, "scarce", 1).await;
    assert_eq!(
        p.wait_for_state("old-1", "reserved", WAIT).await.as_deref(),
        Some("reserved")
    );
    // The one `stock.received` is handled: whatever it gave the younger order, it has given.
    p.wait_until_handled(consumer::RESERVE, handled + 1, WAIT).await;
    assert_eq!(p.order_state("new-2").await.as_deref(), Some("backordered"));
    receive_stock(&p, "scarce", 1).await;
    assert_eq!(
        p.wait_for_state("new-2", "reserved", WAIT).await.as_deref(),
        Some("reserved")
    );
    p.teardown().await;
}

/// What the warehouse API does on receipt: add stock and emit `stock.received` via the outbox.
pub async fn receive_stock(p: &Pipeline, sku: &str, quantity: i64) {
    let mut client = p.client().await;
    let tx = client.transaction().await.unwrap();
    warehouse_db::inventory::receive(
        &*tx,
        warehouse_db::merchants::DEFAULT_MERCHANT_ID,
        &sku.into(),
        quantity,
    )
    .await
    .unwrap();
    let envelope = domain::Envelope::new(
        domain::MessageId::new(format!("recv-{}", uuid_like())),
        "test",
        domain::SiteId::new(SITE_ID),
        domain::Event::StockReceivedV1 {
            sku: domain::Sku::new(sku),
            quantity,
            merchant_id: warehouse_db::merchants::DEFAULT_MERCHANT_ID,
        },
    );
    warehouse_db::outbox::enqueue(&*tx, &envelope, None).await.unwrap();
    tx.commit().await.unwrap();
    drop(client);
    // The relay publishes it (in production the API publishes right after commit).
    p.enrich.as_ref().unwrap().outbox().relay_once(0, 100).await.unwrap();
}

fn uuid_like() -> String {
    format!(
        "{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    )
}

async fn backordered(p: &Pipeline, order_id: &str, sku: &str, count: i64) {
    assert_eq!(p.post_webhook(&single_sku_order(order_id, sku, count)).await, 200);
    assert_eq!(
        p.wait_for_any_state(order_id, &["backordered", "reserved"], WAIT)
            .await
            .as_deref(),
        Some("backordered"),
        "{order_id} waits"
    );
}

/// Issue 13: a new order took the unit an older backorder was waiting for.
#[tokio::test]
async fn a_younger_order_takes_only_the_surplus_beyond_older_backorders() {
    let p = start_pipeline(PipelineOptions::default()).await;
    p.db.stock("fair", 1).await;
    // The older order needs 2; 1 is on the shelf, held for it.
    backordered(&p, "big-old", "fair", 2).await;
    backordered(&p, "small-young", "fair", 1).await;
    let reason: String = p
        .client()
        .await
        .query_one(
            "SELECT state_reason FROM orders WHERE webflow_order_id = 'small-young'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(reason.contains("held for older backorders"), "{reason}");
    // One more unit: the older order is served first, the younger still waits.
    receive_stock(&p, "fair", 1).await;
    assert_eq!(
        p.wait_for_state("big-old", "reserved", WAIT).await.as_deref(),
        Some("reserved")
    );
    p.wait_until_idle(consumer::RESERVE, WAIT).await;
    assert_eq!(p.order_state("small-young").await.as_deref(), Some("backordered"));
    // Surplus beyond every older backorder may go to a younger order.
    receive_stock(&p, "fair", 1).await;
    assert_eq!(
        p.wait_for_state("small-young", "reserved", WAIT).await.as_deref(),
        Some("reserved")
    );
    let level = p.inventory("fair").await;
    assert_eq!((level.on_hand, level.reserved), (3, 3));
    p.teardown().await;
}

/// Issue 13: `stock.received` skipped an older order it could not fully serve and served a
/// younger one, so a large order could wait forever.
#[tokio::test]
async fn a_receipt_does_not_skip_an_older_order_it_cannot_fully_serve() {
    let p = start_pipeline(PipelineOptions::default()).await;
    p.db.stock("large", 0).await;
    backordered(&p, "large-old", "large", 3).await;
    backordered(&p, "one-young", "large", 1).await;
    receive_stock(&p, "large", 2).await;
    p.wait_until_idle(consumer::RESERVE, WAIT).await;
    assert_eq!(p.order_state("one-young").await.as_deref(), Some("backordered"));
    assert_eq!(p.order_state("large-old").await.as_deref(), Some("backordered"));
    receive_stock(&p, "large", 2).await;
    assert_eq!(
        p.wait_for_state("large-old", "reserved", WAIT).await.as_deref(),
        Some("reserved")
    );
    assert_eq!(
        p.wait_for_state("one-young", "reserved", WAIT).await.as_deref(),
        Some("reserved")
    );
    p.teardown().await;
}

/// Issue 13: a refund released a unit that never reached the waiting backorder (only a
/// receipt woke backorders).
#[tokio::test]
async fn stock_released_by_a_refund_is_offered_to_backorders_at_once() {
    let p = start_pipeline(PipelineOptions::default()).await;
    p.db.stock("returned", 1).await;
    assert_eq!(p.post_webhook(&single_sku_order("first", "returned", 1)).await, 200);
    assert_eq!(
        p.wait_for_state("first", "reserved", WAIT).await.as_deref(),
        Some("reserved")
    );
    backordered(&p, "waiting", "returned", 1).await;
    let mut refund = single_sku_order("first", "returned", 1);
    refund["triggerType"] = "ecomm_order_changed".into();
    refund["payload"]["status"] = "refunded".into();
    assert_eq!(p.post_webhook(&refund).await, 200);
    assert_eq!(
        p.wait_for_state("first", "cancelled", WAIT).await.as_deref(),
        Some("cancelled")
    );
    assert_eq!(
        p.wait_for_state("waiting", "reserved", WAIT).await.as_deref(),
        Some("reserved")
    );
    let level = p.inventory("returned").await;
    assert_eq!((level.on_hand, level.reserved), (1, 1));
    p.teardown().await;
}
