//! Issue 13: when the order of our messages disagrees with the real world, or an operator and
//! Webflow both touch an order. Webhooks are triggers; the Orders API is the truth.

use e2e::*;
use reqwest::Method;
use serde_json::json;
use std::time::Duration;
use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

const WAIT: Duration = Duration::from_secs(20);

fn order_path(order_id: &str) -> String {
    format!("/sites/{SITE_ID}/orders/{order_id}")
}

async fn stock(p: &Pipeline) {
    p.db.stock(SKU_BALL, 5).await;
    p.db.stock(SKU_GLOVES, 5).await;
}

fn with_line1(mut body: serde_json::Value, line1: &str) -> serde_json::Value {
    body["payload"]["shippingAddress"]["line1"] = line1.into();
    body
}

async fn line1(p: &Pipeline, order_id: &str) -> Option<String> {
    p.client()
        .await
        .query_one(
            "SELECT shipping_address->>'line1' FROM orders WHERE webflow_order_id = $1",
            &[&order_id],
        )
        .await
        .unwrap()
        .get(0)
}

async fn reserved(p: &Pipeline, order_id: &str) {
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

/// Serves `order` (a webhook body's payload) as Webflow's `GET order`, `times` times.
async fn webflow_serves(p: &Pipeline, order_id: &str, order: &serde_json::Value, times: u64) {
    Mock::given(method("GET"))
        .and(path(order_path(order_id)))
        .respond_with(ResponseTemplate::new(200).set_body_json(order["payload"].clone()))
        .expect(times)
        .mount(&p.webflow)
        .await;
}

async fn enrich_reads(p: &Pipeline) -> i64 {
    p.scalar(
        "SELECT count(*) FROM audit_log WHERE kind = 'api_call' AND actor = 'enrich'",
        &[],
    )
    .await
}

/// An older `ecomm_order_changed` (a Webflow retry) arrives after a newer one with the same
/// status: the label must not go to the old address.
#[tokio::test]
async fn a_late_older_change_webhook_does_not_revert_the_address() {
    let p = start_pipeline(PipelineOptions::default()).await;
    stock(&p).await;
    reserved(&p, "stale-1").await;
    let original = order_webhook("ecomm_order_changed", "stale-1", "unfulfilled");
    let newer = with_line1(original.clone(), "2 Newer Street");
    // Webflow says the newer address, whenever it is asked.
    webflow_serves(&p, "stale-1", &newer, 2).await;

    assert_eq!(p.post_webhook(&newer).await, 200);
    p.wait_until_idle(consumer::ENRICH, WAIT).await;
    assert_eq!(line1(&p, "stale-1").await.as_deref(), Some("2 Newer Street"));

    // The retry of the older change arrives late.
    let mut older = original.clone();
    older["payload"]["comment"] = "a retry".into();
    assert_eq!(p.post_webhook(&older).await, 200);
    p.wait_until_idle(consumer::ENRICH, WAIT).await;
    assert_eq!(
        line1(&p, "stale-1").await.as_deref(),
        Some("2 Newer Street"),
        "the stale webhook changes nothing"
    );

    // A webhook that changes nothing we ship makes no call.
    assert_eq!(p.post_webhook(&newer).await, 200);
    p.wait_until_idle(consumer::ENRICH, WAIT).await;
    assert_eq!(
        enrich_reads(&p).await,
        2,
        "one read per webhook that would change the order"
    );
    assert_eq!(p.order_state("stale-1").await.as_deref(), Some("reserved"));
    p.webflow.verify().await;
    p.teardown().await;
}

/// A won dispute: `disputed`, then back to `unfulfilled`; the order goes on.
#[tokio::test]
async fn an_order_whose_dispute_is_won_continues() {
    let p = start_pipeline(PipelineOptions::default()).await;
    stock(&p).await;
    assert_eq!(
        p.post_webhook(&order_webhook("ecomm_new_order", "dispute-won", "disputed"))
            .await,
        200
    );
    assert_eq!(
        p.wait_for_state("dispute-won", "received", WAIT).await.as_deref(),
        Some("received")
    );
    p.wait_until_idle(consumer::ENRICH, WAIT).await;
    let won = order_webhook("ecomm_order_changed", "dispute-won", "unfulfilled");
    webflow_serves(&p, "dispute-won", &won, 1).await;
    assert_eq!(p.post_webhook(&won).await, 200);
    assert_eq!(
        p.wait_for_state("dispute-won", "reserved", WAIT).await.as_deref(),
        Some("reserved")
    );
    p.webflow.verify().await;
    p.teardown().await;
}

fn operator_address() -> serde_json::Value {
    json!({"addressee": "Arthur Dent", "line1": "1 Corrected Street", "city": "New York", "state": "NY",
           "postal_code": "10001", "country": "US"})
}

/// An operator's correction is an override: a later webhook with Webflow's (unchanged)
/// address does not replace it; a change of Webflow's own address after it needs a person.
#[tokio::test]
async fn an_operator_address_correction_survives_later_webhooks() {
    let p = start_pipeline(PipelineOptions {
        start_warehouse: true,
        ..PipelineOptions::default()
    })
    .await;
    stock(&p).await;
    reserved(&p, "override-1").await;
    let response = p
        .warehouse(
            Method::PUT,
            &format!("/api/v1/orders/{SITE_ID}/override-1/shipping-address"),
        )
        .json(&operator_address())
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    // The webhook our own comment PATCH triggers: Webflow's address, unchanged.
    let mut echo = order_webhook("ecomm_order_changed", "override-1", "unfulfilled");
    echo["payload"]["comment"] = "Shipping address corrected by the warehouse".into();
    assert_eq!(p.post_webhook(&echo).await, 200);
    p.wait_until_idle(consumer::ENRICH, WAIT).await;
    assert_eq!(line1(&p, "override-1").await.as_deref(), Some("1 Corrected Street"));
    assert_eq!(p.order_state("override-1").await.as_deref(), Some("reserved"));

    // Webflow's own address changes after the override: someone must choose.
    let changed = with_line1(
        order_webhook("ecomm_order_changed", "override-1", "unfulfilled"),
        "9 Other Road",
    );
    webflow_serves(&p, "override-1", &changed, 1).await;
    assert_eq!(p.post_webhook(&changed).await, 200);
    assert_eq!(
        p.wait_for_state("override-1", "needs_review", WAIT).await.as_deref(),
        Some("needs_review")
    );
    assert_eq!(
        line1(&p, "override-1").await.as_deref(),
        Some("1 Corrected Street"),
        "nothing is shipped to either address until someone decides"
    );
    let view: serde_json::Value = p
        .warehouse(Method::GET, &format!("/api/v1/orders/{SITE_ID}/override-1"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let timeline = view["timeline"].to_string();
    assert!(
        timeline.contains("1 Corrected Street") && timeline.contains("9 Other Road"),
        "both addresses on the timeline: {timeline}"
    );
    p.teardown().await;
}

async fn mark_fulfilled(p: &Pipeline, order_id: &str) {
    p.client()
        .await
        .execute(
            "UPDATE orders SET state = 'fulfilled', webflow_status = 'fulfilled', version = version + 1
             WHERE webflow_order_id = $1",
            &[&order_id],
        )
        .await
        .unwrap();
}

async fn reason(p: &Pipeline, order_id: &str) -> String {
    p.client()
        .await
        .query_one(
            "SELECT state_reason FROM orders WHERE webflow_order_id = $1",
            &[&order_id],
        )
        .await
        .unwrap()
        .get::<_, Option<String>>(0)
        .unwrap_or_default()
}

/// A refund of an order that has already been fulfilled, seen by a webhook.
#[tokio::test]
async fn a_fulfilled_order_refunded_by_webhook_needs_review() {
    let p = start_pipeline(PipelineOptions::default()).await;
    stock(&p).await;
    reserved(&p, "shipped-refund").await;
    mark_fulfilled(&p, "shipped-refund").await;
    assert_eq!(
        p.post_webhook(&order_webhook("ecomm_order_changed", "shipped-refund", "refunded"))
            .await,
        200
    );
    assert_eq!(
        p.wait_for_state("shipped-refund", "needs_review", WAIT)
            .await
            .as_deref(),
        Some("needs_review")
    );
    let why = reason(&p, "shipped-refund").await;
    assert!(why.contains("refunded") && why.contains("return"), "{why}");
    p.teardown().await;
}

/// The same, seen by reconciliation (a lost dispute whose webhook never came).
#[tokio::test]
async fn a_fulfilled_order_whose_dispute_is_lost_needs_review_after_reconciliation() {
    let p = start_pipeline(PipelineOptions::default()).await;
    stock(&p).await;
    reserved(&p, "lost-dispute").await;
    mark_fulfilled(&p, "lost-dispute").await;
    let order = order_webhook("ecomm_order_changed", "lost-dispute", "dispute-lost")["payload"].clone();
    Mock::given(method("GET"))
        .and(path(format!("/sites/{SITE_ID}/orders")))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"orders": [order], "pagination": {"limit": 100, "offset": 0, "total": 1}})),
        )
        .mount(&p.webflow)
        .await;
    p.reconciler().await.run_once().await.unwrap();
    assert_eq!(
        p.wait_for_state("lost-dispute", "needs_review", WAIT).await.as_deref(),
        Some("needs_review")
    );
    let why = reason(&p, "lost-dispute").await;
    assert!(why.contains("dispute-lost") && why.contains("return"), "{why}");
    p.teardown().await;
}
