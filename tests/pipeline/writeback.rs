//! Write-back to Webflow: exactly once toward the customer, within the rate budget.

use e2e::*;
use reqwest::Method;
use serde_json::json;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use wiremock::matchers::{body_partial_json, method, path};
use wiremock::{Mock, Request, Respond, ResponseTemplate};

const WAIT: Duration = Duration::from_secs(25);

fn options() -> PipelineOptions {
    PipelineOptions {
        start_ship: true,
        start_notify: true,
        start_warehouse: true,
        auto_pack: true,
        ..PipelineOptions::default()
    }
}

fn order_path(order_id: &str) -> String {
    format!("/sites/{SITE_ID}/orders/{order_id}")
}

/// The Webflow order as our write-back leaves it.
fn webflow_order(order_id: &str, status: &str, with_tracking: bool) -> serde_json::Value {
    let mut order = order_webhook("ecomm_new_order", order_id, status)["payload"].clone();
    if with_tracking {
        let tracking = carrier::sandbox::SandboxCarrier::tracking_number_for(&ship::reference_for(SITE_ID, order_id));
        order["shippingProvider"] = "Sandbox Express".into();
        order["shippingTrackingURL"] = format!("https://track.sandbox-carrier.example/{tracking}").into();
        order["shippingTracking"] = tracking.into();
    } else {
        for key in ["shippingProvider", "shippingTracking", "shippingTrackingURL"] {
            order[key] = serde_json::Value::Null;
        }
    }
    order
}

/// Webflow expects one fulfilment of `order_id`, with the customer's email, and no read at all.
async fn expect_one_fulfil_and_no_read(p: &Pipeline, order_id: &str) {
    Mock::given(method("POST"))
        .and(path(format!("{}/fulfill", order_path(order_id))))
        .and(body_partial_json(json!({"sendOrderFulfilledEmail": true})))
        .respond_with(ResponseTemplate::new(200).set_body_json(webflow_order(order_id, "fulfilled", true)))
        .expect(1)
        .mount(&p.webflow)
        .await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(500))
        .expect(0)
        .mount(&p.webflow)
        .await;
}

async fn stock(p: &Pipeline) {
    p.db.stock(SKU_BALL, 50).await;
    p.db.stock(SKU_GLOVES, 50).await;
}

#[tokio::test]
async fn a_shipped_order_gets_one_patch_then_one_fulfill() {
    let p = start_pipeline(options()).await;
    stock(&p).await;
    let tracking = carrier::sandbox::SandboxCarrier::tracking_number_for(&ship::reference_for(SITE_ID, "wb-1"));
    Mock::given(method("PATCH"))
        .and(path(order_path("wb-1")))
        .and(body_partial_json(json!({
            "shippingProvider": "Sandbox Express",
            "shippingTracking": tracking,
            "shippingTrackingURL": format!("https://track.sandbox-carrier.example/{tracking}"),
        })))
        .respond_with(ResponseTemplate::new(200).set_body_json(webflow_order("wb-1", "unfulfilled", true)))
        .expect(1)
        .mount(&p.webflow)
        .await;
    expect_one_fulfil_and_no_read(&p, "wb-1").await;

    assert_eq!(
        p.post_webhook(&order_webhook("ecomm_new_order", "wb-1", "unfulfilled"))
            .await,
        200
    );
    assert_eq!(
        p.wait_for_state("wb-1", "fulfilled", WAIT).await.as_deref(),
        Some("fulfilled")
    );
    let requests = p.webflow.received_requests().await.unwrap();
    let methods: Vec<String> = requests.iter().map(|r| r.method.to_string()).collect();
    assert_eq!(methods, ["PATCH", "POST"], "tracking first, then fulfil");

    // The same order.shipped again: nothing more is written.
    let shipped: serde_json::Value = p
        .client()
        .await
        .query_one("SELECT payload FROM outbox WHERE routing_key = 'order.shipped'", &[])
        .await
        .unwrap()
        .get(0);
    p.wait_until_idle(consumer::NOTIFY_WEBFLOW, WAIT).await;
    let handled = p.handled(consumer::NOTIFY_WEBFLOW).await;
    p.observer
        .publish(
            &p.topology.events_exchange(),
            "order.shipped",
            &serde_json::to_vec(&shipped).unwrap(),
            lapin::BasicProperties::default().with_message_id("replayed-shipped".into()),
        )
        .await;
    // The replay is handled, so any call it would make has been made.
    p.wait_until_handled(consumer::NOTIFY_WEBFLOW, handled + 1, WAIT).await;
    p.webflow.verify().await;
    let (_, order) = {
        let r = p
            .warehouse(Method::GET, &format!("/api/v1/orders/{SITE_ID}/wb-1"))
            .send()
            .await
            .unwrap();
        (r.status(), r.json::<serde_json::Value>().await.unwrap())
    };
    let calls = order["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "api_call" && e["actor"] == "notify-webflow")
        .count();
    assert_eq!(calls, 2, "both calls audited");
    p.teardown().await;
}

/// ship and notify-webflow do not look a message up before handling it: a redelivery of the
/// very message they handled (same message id, as after a crash between commit and ack) finds
/// the order past their stage, calls neither the carrier nor Webflow, and emits nothing.
#[tokio::test]
async fn the_same_packed_and_shipped_events_redelivered_buy_nothing_and_write_nothing() {
    let p = start_pipeline(options()).await;
    stock(&p).await;
    Mock::given(method("PATCH"))
        .and(path(order_path("wb-redelivered")))
        .respond_with(ResponseTemplate::new(200).set_body_json(webflow_order("wb-redelivered", "unfulfilled", true)))
        .expect(1)
        .mount(&p.webflow)
        .await;
    expect_one_fulfil_and_no_read(&p, "wb-redelivered").await;
    assert_eq!(
        p.post_webhook(&order_webhook("ecomm_new_order", "wb-redelivered", "unfulfilled"))
            .await,
        200
    );
    assert_eq!(
        p.wait_for_state("wb-redelivered", "fulfilled", WAIT).await.as_deref(),
        Some("fulfilled")
    );

    p.wait_until_idle(consumer::SHIP, WAIT).await;
    p.wait_until_idle(consumer::NOTIFY_WEBFLOW, WAIT).await;
    let ship_handled = p.handled(consumer::SHIP).await;
    let notify_handled = p.handled(consumer::NOTIFY_WEBFLOW).await;
    for routing_key in ["order.packed", "order.shipped"] {
        let row = p
            .client()
            .await
            .query_one(
                "SELECT message_id, payload FROM outbox WHERE routing_key = $1",
                &[&routing_key],
            )
            .await
            .unwrap();
        let (message_id, payload): (String, serde_json::Value) = (row.get(0), row.get(1));
        p.observer
            .publish(
                &p.topology.events_exchange(),
                routing_key,
                &serde_json::to_vec(&payload).unwrap(),
                lapin::BasicProperties::default().with_message_id(message_id.as_str().into()),
            )
            .await;
    }
    // Each redelivery is handled: ship and notify-webflow each finished with one more message.
    p.wait_until_handled(consumer::SHIP, ship_handled + 1, WAIT).await;
    p.wait_until_handled(consumer::NOTIFY_WEBFLOW, notify_handled + 1, WAIT)
        .await;
    p.webflow.verify().await;
    assert_eq!(p.scalar("SELECT count(*) FROM shipments", &[]).await, 1, "one label");
    assert_eq!(
        p.scalar(
            "SELECT count(*) FROM shipments WHERE status = 'booked' AND attempts = 1",
            &[]
        )
        .await,
        1,
        "the carrier was not asked again"
    );
    for routing_key in ["order.shipped", "order.fulfilled"] {
        assert_eq!(
            p.scalar("SELECT count(*) FROM outbox WHERE routing_key = $1", &[&routing_key])
                .await,
            1,
            "one {routing_key}"
        );
    }
    assert_eq!(p.order_state("wb-redelivered").await.as_deref(), Some("fulfilled"));
    p.teardown().await;
}

#[tokio::test]
async fn after_a_timeout_with_unknown_outcome_it_reads_then_writes_only_what_is_missing() {
    let p = start_pipeline(options()).await;
    stock(&p).await;
    // The PATCH is applied at Webflow but its answer never arrives in time.
    Mock::given(method("PATCH"))
        .and(path(order_path("wb-2")))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(webflow_order("wb-2", "unfulfilled", true))
                .set_delay(Duration::from_secs(3)),
        )
        .expect(1)
        .mount(&p.webflow)
        .await;
    Mock::given(method("GET"))
        .and(path(order_path("wb-2")))
        .respond_with(ResponseTemplate::new(200).set_body_json(webflow_order("wb-2", "unfulfilled", true)))
        .expect(1)
        .mount(&p.webflow)
        .await;
    Mock::given(method("POST"))
        .and(path(format!("{}/fulfill", order_path("wb-2"))))
        .respond_with(ResponseTemplate::new(200).set_body_json(webflow_order("wb-2", "fulfilled", true)))
        .expect(1)
        .mount(&p.webflow)
        .await;
    assert_eq!(
        p.post_webhook(&order_webhook("ecomm_new_order", "wb-2", "unfulfilled"))
            .await,
        200
    );
    assert_eq!(
        p.wait_for_state("wb-2", "fulfilled", WAIT).await.as_deref(),
        Some("fulfilled")
    );
    p.webflow.verify().await;
    p.teardown().await;
}

#[tokio::test]
async fn a_fulfil_whose_answer_was_lost_is_not_sent_again() {
    let p = start_pipeline(options()).await;
    stock(&p).await;
    Mock::given(method("PATCH"))
        .and(path(order_path("wb-3")))
        .respond_with(ResponseTemplate::new(200).set_body_json(webflow_order("wb-3", "unfulfilled", true)))
        .expect(1)
        .mount(&p.webflow)
        .await;
    // Fulfilled at Webflow (the email went out), but the answer is lost.
    Mock::given(method("POST"))
        .and(path(format!("{}/fulfill", order_path("wb-3"))))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(webflow_order("wb-3", "fulfilled", true))
                .set_delay(Duration::from_secs(3)),
        )
        .expect(1)
        .mount(&p.webflow)
        .await;
    Mock::given(method("GET"))
        .and(path(order_path("wb-3")))
        .respond_with(ResponseTemplate::new(200).set_body_json(webflow_order("wb-3", "fulfilled", true)))
        .expect(1)
        .mount(&p.webflow)
        .await;
    assert_eq!(
        p.post_webhook(&order_webhook("ecomm_new_order", "wb-3", "unfulfilled"))
            .await,
        200
    );
    assert_eq!(
        p.wait_for_state("wb-3", "fulfilled", WAIT).await.as_deref(),
        Some("fulfilled")
    );
    p.webflow.verify().await;
    p.teardown().await;
}

/// Answers 429 with `Retry-After: 1` the first time, then 200; records when each call came.
struct ThrottleOnce {
    calls: Arc<Mutex<Vec<Instant>>>,
    body: serde_json::Value,
}

impl Respond for ThrottleOnce {
    fn respond(&self, _: &Request) -> ResponseTemplate {
        let mut calls = self.calls.lock().unwrap();
        calls.push(Instant::now());
        if calls.len() == 1 {
            ResponseTemplate::new(429)
                .insert_header("Retry-After", "1")
                .set_body_json(json!({"message": "Too Many Requests", "code": "too_many_requests", "externalReference": null, "details": []}))
        } else {
            ResponseTemplate::new(200).set_body_json(self.body.clone())
        }
    }
}

#[tokio::test]
async fn a_429_pauses_the_budget_for_retry_after_then_succeeds() {
    let p = start_pipeline(options()).await;
    stock(&p).await;
    let calls = Arc::new(Mutex::new(Vec::new()));
    Mock::given(method("PATCH"))
        .and(path(order_path("wb-4")))
        .respond_with(ThrottleOnce {
            calls: calls.clone(),
            body: webflow_order("wb-4", "unfulfilled", true),
        })
        .expect(2)
        .mount(&p.webflow)
        .await;
    Mock::given(method("GET"))
        .and(path(order_path("wb-4")))
        .respond_with(ResponseTemplate::new(200).set_body_json(webflow_order("wb-4", "unfulfilled", false)))
        .mount(&p.webflow)
        .await;
    Mock::given(method("POST"))
        .and(path(format!("{}/fulfill", order_path("wb-4"))))
        .respond_with(ResponseTemplate::new(200).set_body_json(webflow_order("wb-4", "fulfilled", true)))
        .expect(1)
        .mount(&p.webflow)
        .await;
    assert_eq!(
        p.post_webhook(&order_webhook("ecomm_new_order", "wb-4", "unfulfilled"))
            .await,
        200
    );
    assert_eq!(
        p.wait_for_state("wb-4", "fulfilled", WAIT).await.as_deref(),
        Some("fulfilled")
    );
    let calls = calls.lock().unwrap().clone();
    assert!(
        calls[1].duration_since(calls[0]) >= Duration::from_secs(1),
        "Retry-After honoured"
    );
    let throttled = p
        .scalar("SELECT throttled FROM rate_budgets WHERE key = $1", &[&budget_key()])
        .await;
    assert_eq!(throttled, 1);
    p.webflow.verify().await;
    p.teardown().await;
}

#[tokio::test]
async fn server_errors_back_off_then_succeed_and_exhaustion_dead_letters() {
    let p = start_pipeline(PipelineOptions {
        max_attempts: 3,
        ..options()
    })
    .await;
    stock(&p).await;
    // wb-5: two 500s, then fine.
    Mock::given(method("PATCH"))
        .and(path(order_path("wb-5")))
        .respond_with(
            ResponseTemplate::new(500)
                .set_body_json(json!({"code": "internal_error", "message": "An Internal Error occurred"})),
        )
        .up_to_n_times(2)
        .with_priority(1)
        .mount(&p.webflow)
        .await;
    Mock::given(method("PATCH"))
        .and(path(order_path("wb-5")))
        .respond_with(ResponseTemplate::new(200).set_body_json(webflow_order("wb-5", "unfulfilled", true)))
        .with_priority(2)
        .mount(&p.webflow)
        .await;
    Mock::given(method("GET"))
        .and(path(order_path("wb-5")))
        .respond_with(ResponseTemplate::new(200).set_body_json(webflow_order("wb-5", "unfulfilled", false)))
        .mount(&p.webflow)
        .await;
    Mock::given(method("POST"))
        .and(path(format!("{}/fulfill", order_path("wb-5"))))
        .respond_with(ResponseTemplate::new(200).set_body_json(webflow_order("wb-5", "fulfilled", true)))
        .expect(1)
        .mount(&p.webflow)
        .await;
    // wb-6: Webflow keeps failing.
    Mock::given(method("PATCH"))
        .and(path(order_path("wb-6")))
        .respond_with(ResponseTemplate::new(503).set_body_string("unavailable"))
        .expect(3)
        .mount(&p.webflow)
        .await;
    Mock::given(method("GET"))
        .and(path(order_path("wb-6")))
        .respond_with(ResponseTemplate::new(200).set_body_json(webflow_order("wb-6", "unfulfilled", false)))
        .mount(&p.webflow)
        .await;
    assert_eq!(
        p.post_webhook(&order_webhook("ecomm_new_order", "wb-5", "unfulfilled"))
            .await,
        200
    );
    assert_eq!(
        p.post_webhook(&order_webhook("ecomm_new_order", "wb-6", "unfulfilled"))
            .await,
        200
    );
    assert_eq!(
        p.wait_for_state("wb-5", "fulfilled", WAIT).await.as_deref(),
        Some("fulfilled")
    );
    let dead = p
        .observer
        .next_message(&p.topology.dead_queue(consumer::NOTIFY_WEBFLOW), WAIT)
        .await
        .expect("dead-lettered");
    assert_eq!(dead.header("x-dead-service").as_deref(), Some("notify-webflow"));
    assert_eq!(dead.header("x-dead-reason").as_deref(), Some("retries_exhausted"));
    assert!(dead.header("x-dead-error").unwrap().contains("503"));
    assert_eq!(
        p.order_state("wb-6").await.as_deref(),
        Some("shipped"),
        "still shipped, waiting for an operator"
    );
    p.webflow.verify().await;
    p.teardown().await;
}

#[tokio::test]
async fn an_order_refunded_in_webflow_meanwhile_is_not_fulfilled() {
    let p = start_pipeline(options()).await;
    stock(&p).await;
    Mock::given(method("PATCH"))
        .and(path(order_path("wb-7")))
        .respond_with(ResponseTemplate::new(200).set_body_json(webflow_order("wb-7", "refunded", true)))
        .expect(1)
        .mount(&p.webflow)
        .await;
    Mock::given(method("POST"))
        .and(path(format!("{}/fulfill", order_path("wb-7"))))
        .respond_with(ResponseTemplate::new(200))
        .expect(0)
        .mount(&p.webflow)
        .await;
    assert_eq!(
        p.post_webhook(&order_webhook("ecomm_new_order", "wb-7", "unfulfilled"))
            .await,
        200
    );
    assert_eq!(
        p.wait_for_state("wb-7", "needs_review", WAIT).await.as_deref(),
        Some("needs_review")
    );
    p.webflow.verify().await;
    p.teardown().await;
}

#[tokio::test]
async fn an_operator_refund_is_sent_once_and_cancels_the_order() {
    let p = start_pipeline(PipelineOptions {
        auto_pack: false,
        ..options()
    })
    .await;
    stock(&p).await;
    Mock::given(method("POST"))
        .and(path(format!("{}/refund", order_path("wb-8"))))
        .and(body_partial_json(json!({"reason": "requested"})))
        .respond_with(ResponseTemplate::new(200).set_body_json(webflow_order("wb-8", "refunded", false)))
        .expect(1)
        .mount(&p.webflow)
        .await;
    assert_eq!(
        p.post_webhook(&order_webhook("ecomm_new_order", "wb-8", "unfulfilled"))
            .await,
        200
    );
    assert_eq!(
        p.wait_for_state("wb-8", "reserved", WAIT).await.as_deref(),
        Some("reserved")
    );
    for _ in 0..2 {
        let response = p
            .warehouse(Method::POST, &format!("/api/v1/orders/{SITE_ID}/wb-8/refund"))
            .json(&json!({"reason": "requested"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 202);
    }
    let bad = p
        .warehouse(Method::POST, &format!("/api/v1/orders/{SITE_ID}/wb-8/refund"))
        .json(&json!({"reason": "bored"}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 422);
    assert_eq!(
        p.wait_for_state("wb-8", "cancelled", WAIT).await.as_deref(),
        Some("cancelled")
    );
    assert_eq!(p.inventory(SKU_BALL).await.reserved, 0);
    p.wait_until_idle(consumer::NOTIFY_WEBFLOW, WAIT).await;
    p.webflow.verify().await;
    p.teardown().await;
}

#[tokio::test]
async fn a_warehouse_address_correction_is_noted_once_on_the_webflow_comment() {
    let p = start_pipeline(PipelineOptions {
        auto_pack: false,
        ..options()
    })
    .await;
    stock(&p).await;
    Mock::given(method("PATCH"))
        .and(path(order_path("wb-9")))
        .and(body_partial_json(json!({"comment": "Shipping address corrected by the warehouse: Arthur Dent, 1 New Street, New York, NY, 10001, US"})))
        .respond_with(ResponseTemplate::new(200).set_body_json(webflow_order("wb-9", "unfulfilled", false)))
        .expect(1)
        .mount(&p.webflow)
        .await;
    assert_eq!(
        p.post_webhook(&order_webhook("ecomm_new_order", "wb-9", "unfulfilled"))
            .await,
        200
    );
    assert_eq!(
        p.wait_for_state("wb-9", "reserved", WAIT).await.as_deref(),
        Some("reserved")
    );
    p.wait_until_idle(consumer::NOTIFY_WEBFLOW, WAIT).await;
    let handled = p.handled(consumer::NOTIFY_WEBFLOW).await;
    let address = json!({"addressee": "Arthur Dent", "line1": "1 New Street", "city": "New York", "state": "NY", "postal_code": "10001", "country": "US"});
    for _ in 0..2 {
        let response = p
            .warehouse(Method::PUT, &format!("/api/v1/orders/{SITE_ID}/wb-9/shipping-address"))
            .json(&address)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    // Every correction the two PUTs recorded is relayed and handled by notify-webflow.
    wait_for("the address corrections relayed", WAIT, || async {
        let unpublished = p
            .scalar(
                "SELECT count(*) FROM outbox WHERE routing_key = $1 AND published_at IS NULL",
                &[&domain::routing::ORDER_ADDRESS_CORRECTED],
            )
            .await;
        (unpublished == 0).then_some(())
    })
    .await;
    let corrected = p
        .scalar(
            "SELECT count(*) FROM outbox WHERE routing_key = $1",
            &[&domain::routing::ORDER_ADDRESS_CORRECTED],
        )
        .await;
    assert!(corrected >= 1, "the correction was recorded");
    p.wait_until_handled(consumer::NOTIFY_WEBFLOW, handled + corrected as u64, WAIT)
        .await;
    p.webflow.verify().await;
    p.teardown().await;
}
