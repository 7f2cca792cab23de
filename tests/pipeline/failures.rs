//! Poison messages, Webflow failures, retries and the dead-letter queue.

use e2e::*;
use lapin::BasicProperties;
use lapin::types::FieldTable;
use std::time::Duration;
use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

const WAIT: Duration = Duration::from_secs(20);

/// An order webhook Webflow sent without the shipping address: enrich must GET the order.
fn partial_webhook(order_id: &str) -> serde_json::Value {
    let mut body = order_webhook("ecomm_new_order", order_id, "unfulfilled");
    body["payload"].as_object_mut().unwrap().remove("shippingAddress");
    body
}

fn full_order(order_id: &str) -> serde_json::Value {
    order_webhook("ecomm_new_order", order_id, "unfulfilled")["payload"].clone()
}

/// A pipeline with stock for the test order, whose Webflow answers exactly one GET of `order_id`.
async fn pipeline_expecting_one_fetch(order_id: &str) -> Pipeline {
    let p = start_pipeline(PipelineOptions::default()).await;
    p.db.stock(SKU_BALL, 5).await;
    p.db.stock(SKU_GLOVES, 5).await;
    Mock::given(method("GET"))
        .and(path(format!("/sites/{SITE_ID}/orders/{order_id}")))
        .respond_with(ResponseTemplate::new(200).set_body_json(full_order(order_id)))
        .expect(1)
        .mount(&p.webflow)
        .await;
    p
}

fn webhook_headers() -> FieldTable {
    let mut table = FieldTable::default();
    platform::amqp::headers::insert_str(&mut table, "x-site-id", SITE_ID);
    platform::amqp::headers::insert_str(&mut table, "x-trigger-type", "ecomm_new_order");
    table
}

#[tokio::test]
async fn a_partial_payload_makes_exactly_one_get() {
    let p = pipeline_expecting_one_fetch("part-1").await;
    assert_eq!(p.post_webhook(&partial_webhook("part-1")).await, 200);
    assert_eq!(
        p.wait_for_state("part-1", "reserved", WAIT).await.as_deref(),
        Some("reserved")
    );
    let calls = p
        .scalar(
            "SELECT count(*) FROM audit_log WHERE kind = 'api_call' AND detail->>'status' = '200'",
            &[],
        )
        .await;
    assert_eq!(calls, 1, "the API call is audited");
    p.webflow.verify().await;
    p.teardown().await;
}

#[tokio::test]
async fn a_partial_payload_delivered_again_after_it_was_handled_is_not_fetched_again() {
    let p = pipeline_expecting_one_fetch("part-2").await;
    let body = partial_webhook("part-2");
    assert_eq!(p.post_webhook(&body).await, 200);
    assert_eq!(
        p.wait_for_state("part-2", "reserved", WAIT).await.as_deref(),
        Some("reserved")
    );
    p.wait_until_idle(consumer::ENRICH, WAIT).await;
    let handled = p.handled(consumer::ENRICH).await;
    // Webflow's retry of the same webhook: the same message id, settled before any call.
    assert_eq!(p.post_webhook(&body).await, 200);
    p.wait_until_handled(consumer::ENRICH, handled + 1, WAIT).await;
    p.webflow.verify().await;
    assert_eq!(
        p.scalar("SELECT count(*) FROM audit_log WHERE kind = 'webhook_received'", &[])
            .await,
        1,
        "the repeat left no trace but its idempotency hit"
    );
    p.teardown().await;
}

#[tokio::test]
async fn webflow_500s_are_retried_with_backoff_then_succeed() {
    let p = start_pipeline(PipelineOptions::default()).await;
    p.db.stock(SKU_BALL, 5).await;
    p.db.stock(SKU_GLOVES, 5).await;
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(500)
                .set_body_json(serde_json::json!({"code":"internal_error","message":"An Internal Error occurred"})),
        )
        .up_to_n_times(2)
        .with_priority(1)
        .expect(2)
        .mount(&p.webflow)
        .await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_json(full_order("retry-1")))
        .with_priority(2)
        .expect(1)
        .mount(&p.webflow)
        .await;
    assert_eq!(p.post_webhook(&partial_webhook("retry-1")).await, 200);
    assert_eq!(
        p.wait_for_state("retry-1", "reserved", WAIT).await.as_deref(),
        Some("reserved")
    );
    p.webflow.verify().await;
    let dead = p.observer.message_count(&p.topology.dead_queue(consumer::ENRICH)).await;
    assert_eq!(dead, 0);
    p.teardown().await;
}

#[tokio::test]
async fn a_webflow_404_is_dead_lettered_with_the_reason() {
    let p = start_pipeline(PipelineOptions::default()).await;
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(404).set_body_json(
                serde_json::json!({"code":"resource_not_found","message":"Requested resource not found"}),
            ),
        )
        .expect(1)
        .mount(&p.webflow)
        .await;
    assert_eq!(p.post_webhook(&partial_webhook("gone-1")).await, 200);
    let dead = p
        .observer
        .next_message(&p.topology.dead_queue(consumer::ENRICH), WAIT)
        .await
        .expect("dead-lettered");
    assert_eq!(dead.header("x-dead-service").as_deref(), Some("enrich"));
    assert_eq!(dead.header("x-dead-reason").as_deref(), Some("permanent_error"));
    assert!(
        dead.header("x-dead-error").unwrap().contains("404"),
        "{:?}",
        dead.header("x-dead-error")
    );
    assert_eq!(dead.header("x-attempt").as_deref(), Some("1"));
    assert_eq!(
        dead.header("x-original-routing-key").as_deref(),
        Some("webhook.ecomm_new_order")
    );
    assert!(
        dead.message_id().unwrap().starts_with("wh-"),
        "the original id is kept for replay"
    );
    assert_eq!(p.order_state("gone-1").await, None);
    p.webflow.verify().await;
    p.teardown().await;
}

#[tokio::test]
async fn exhausted_retries_go_to_dead_with_the_last_error() {
    let p = start_pipeline(PipelineOptions {
        max_attempts: 3,
        ..PipelineOptions::default()
    })
    .await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(503).set_body_string("upstream down"))
        .expect(3)
        .mount(&p.webflow)
        .await;
    assert_eq!(p.post_webhook(&partial_webhook("flaky-1")).await, 200);
    let dead = p
        .observer
        .next_message(&p.topology.dead_queue(consumer::ENRICH), WAIT)
        .await
        .expect("dead-lettered");
    assert_eq!(dead.header("x-dead-reason").as_deref(), Some("retries_exhausted"));
    assert_eq!(dead.header("x-attempt").as_deref(), Some("3"));
    assert!(dead.header("x-dead-error").unwrap().contains("503"));
    p.webflow.verify().await;
    p.teardown().await;
}

#[tokio::test]
async fn a_poison_message_goes_to_dead_while_later_messages_flow() {
    let p = start_pipeline(PipelineOptions::default()).await;
    p.db.stock(SKU_BALL, 5).await;
    p.db.stock(SKU_GLOVES, 5).await;
    for poison in [
        &b"{not json"[..],
        br#"{"triggerType":"ecomm_new_order","payload":{"orderId":42}}"#,
    ] {
        p.observer
            .publish(
                &p.topology.events_exchange(),
                "webhook.ecomm_new_order",
                poison,
                BasicProperties::default()
                    .with_message_id("poison".into())
                    .with_headers(webhook_headers()),
            )
            .await;
    }
    assert_eq!(
        p.post_webhook(&order_webhook("ecomm_new_order", "after-poison", "unfulfilled"))
            .await,
        200
    );
    assert_eq!(
        p.wait_for_state("after-poison", "reserved", WAIT).await.as_deref(),
        Some("reserved")
    );
    let dead_queue = p.topology.dead_queue(consumer::ENRICH);
    assert!(p.observer.wait_for_count(&dead_queue, 1, WAIT).await >= 1);
    let dead = p.observer.next_message(&dead_queue, WAIT).await.unwrap();
    assert_eq!(dead.header("x-dead-reason").as_deref(), Some("permanent_error"));
    assert!(dead.header("x-dead-error").unwrap().contains("not a Webflow webhook"));
    p.teardown().await;
}
