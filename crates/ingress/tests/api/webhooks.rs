//! Accepted webhooks: what is published, with which id and headers, and what is answered.

use crate::helpers::*;
use std::time::Duration;

#[tokio::test]
async fn a_signed_webhook_lands_in_enrich_exactly_once_with_raw_body_and_headers() {
    let app = spawn_app().await;
    let body = new_order_body();
    let ts = now_ms().to_string();
    let signature = webflow::sign(SECRET, &ts, &body);

    let response = app.post_raw(SITE_ID, &body, Some(&ts), Some(&signature)).await;
    assert_eq!(response.status(), 200);

    let queue = app.enrich_queue();
    let message = app
        .observer
        .next_message(&queue, Duration::from_secs(5))
        .await
        .expect("message published");
    assert_eq!(message.body, body, "the raw signed bytes, not a re-serialisation");
    assert_eq!(message.routing_key, "webhook.ecomm_new_order");
    assert_eq!(message.header("x-site-id").as_deref(), Some(SITE_ID));
    assert_eq!(message.header("x-trigger-type").as_deref(), Some("ecomm_new_order"));
    assert_eq!(message.header("x-webflow-timestamp").as_deref(), Some(ts.as_str()));
    assert!(message.header("x-received-at").is_some());
    assert_eq!(message.header("x-trace-id").map(|t| t.len()), Some(32));
    assert_eq!(
        message.message_id(),
        Some(platform::amqp::contract::webhook_message_id(SITE_ID, &body))
    );
    assert_eq!(message.properties.delivery_mode(), &Some(2), "persistent");
    assert!(
        app.observer
            .next_message(&queue, Duration::from_millis(300))
            .await
            .is_none(),
        "exactly once"
    );
    app.teardown().await;
}

#[tokio::test]
async fn the_synthetic_signature_vector_is_accepted_end_to_end() {
    // The vector's timestamp is from 2024, so widen the replay window for this test only.
    let app = spawn_app_with(Options {
        replay_window_secs: 100 * 365 * 24 * 3600,
        ..Options::default()
    })
    .await;
    let vector: serde_json::Value = serde_json::from_slice(&test_support::fixture(
        "webflow/webhook.signature.test-vector.synthetic.json",
    ))
    .unwrap();
    assert_eq!(vector["secret"], "test_webhook_secret_0123456789abcdef");
    // Re-sign nothing: post the vector's own headers with a site configured for its secret.
    let body = vector["body"].as_str().unwrap().as_bytes();
    let ts = vector["headers"]["x-webflow-timestamp"].as_str().unwrap();
    let signature = vector["headers"]["x-webflow-signature"].as_str().unwrap();
    // The vector's secret is not ours, so the ingress must refuse it...
    assert_eq!(
        app.post_raw(SITE_ID, body, Some(ts), Some(signature)).await.status(),
        401
    );
    // ...and our signature over the same bytes and timestamp is accepted.
    let ours = webflow::sign(SECRET, ts, body);
    assert_eq!(app.post_raw(SITE_ID, body, Some(ts), Some(&ours)).await.status(), 200);
    let message = app
        .observer
        .next_message(&app.enrich_queue(), Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(message.body, body);
    app.teardown().await;
}

#[tokio::test]
async fn every_handled_trigger_type_is_routed_by_its_type() {
    let app = spawn_app().await;
    for (fixture, key) in [
        ("webflow/webhook.ecomm_new_order.body.json", "webhook.ecomm_new_order"),
        (
            "webflow/webhook.ecomm_order_changed.body.json",
            "webhook.ecomm_order_changed",
        ),
        (
            "webflow/webhook.ecomm_inventory_changed.body.json",
            "webhook.ecomm_inventory_changed",
        ),
    ] {
        let body = test_support::compact_fixture(fixture);
        assert_eq!(app.post_signed(&body, SECRET).await.status(), 200, "{fixture}");
        let message = app
            .observer
            .next_message(&app.enrich_queue(), Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(message.routing_key, key);
        assert_eq!(message.body, body);
    }
    app.teardown().await;
}

#[tokio::test]
async fn secrets_rotate_without_downtime() {
    let app = spawn_app().await;
    let body = new_order_body();
    assert_eq!(
        app.post_signed(&body, OLD_SECRET).await.status(),
        200,
        "previous secret still accepted"
    );
    assert_eq!(
        app.post_signed(&body, SECRET).await.status(),
        200,
        "new secret accepted"
    );
    assert_eq!(
        app.post_signed(&body, "retired-secret").await.status(),
        401,
        "unknown secret refused"
    );
    let queue = app.enrich_queue();
    assert_eq!(app.observer.wait_for_count(&queue, 2, Duration::from_secs(5)).await, 2);
    app.teardown().await;
}

#[tokio::test]
async fn a_webflow_retry_keeps_the_message_id() {
    let app = spawn_app().await;
    let body = new_order_body();
    assert_eq!(app.post_signed(&body, SECRET).await.status(), 200);
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert_eq!(app.post_signed(&body, SECRET).await.status(), 200);
    let queue = app.enrich_queue();
    let first = app.observer.next_message(&queue, Duration::from_secs(5)).await.unwrap();
    let second = app.observer.next_message(&queue, Duration::from_secs(5)).await.unwrap();
    assert_ne!(
        first.header("x-webflow-timestamp"),
        second.header("x-webflow-timestamp")
    );
    assert_eq!(first.message_id(), second.message_id(), "consumers dedupe on this id");
    app.teardown().await;
}

#[tokio::test]
async fn an_unhandled_trigger_type_is_acknowledged_counted_and_not_published() {
    let app = spawn_app().await;
    let body = br#"{"triggerType":"form_submission","payload":{"name":"Contact"}}"#;
    assert_eq!(app.post_signed(body, SECRET).await.status(), 200);
    app.assert_nothing_published().await;
    let metrics = app.metrics().await;
    assert_eq!(
        counter(
            &metrics,
            "wms_ingress_webhooks_total",
            &[("outcome", "ignored"), ("reason", "unhandled_trigger")]
        ),
        1,
        "{metrics}"
    );
    app.teardown().await;
}

#[tokio::test]
async fn health_readiness_and_metrics_are_served() {
    let app = spawn_app().await;
    // On the health port only (edge.rs: not on the public one).
    for base in [&app.health_address] {
        let healthz = app.client.get(format!("{base}/healthz")).send().await.unwrap();
        assert_eq!(healthz.status(), 200);
        let readyz = app.client.get(format!("{base}/readyz")).send().await.unwrap();
        assert_eq!(readyz.status(), 200);
        let body: serde_json::Value = readyz.json().await.unwrap();
        assert_eq!(body["checks"]["rabbitmq"], true);
    }
    assert_eq!(app.post_signed(&new_order_body(), SECRET).await.status(), 200);
    let metrics = app.metrics().await;
    assert_eq!(
        counter(&metrics, "wms_ingress_webhooks_total", &[("outcome", "accepted")]),
        1
    );
    assert!(metrics.contains("wms_ingress_publish_seconds_bucket"), "{metrics}");
    app.teardown().await;
}
