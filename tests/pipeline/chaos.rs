//! Chaos, each a test, with every service its own process and the simulator's store placing
//! orders throughout: the broker connection cut mid-stream, PostgreSQL connections dropped,
//! a 429 storm and a burst of 500s, the ingress down for a while, spoofed and replayed
//! webhooks. After each: nothing lost, nothing written twice, inventory consistent.
//!
//! (`kill -9` of each worker in turn is in `processes`; a real `rabbitmqctl stop_app` is the
//! `broker_restart` test target, which runs alone.)

use e2e::stack::{Stack, StackOptions};
use e2e::*;
use std::time::Duration;
use test_support::proxy::TcpProxy;

const SETTLE: Duration = Duration::from_secs(120);
/// How long a fault may take to show.
const NOTICED: Duration = Duration::from_secs(60);
/// How long the broker connection stays cut: the fault's own duration, long enough for every
/// service to notice and start reconnecting.
const CUT_FOR: Duration = Duration::from_secs(3);

async fn sim_stat(stack: &Stack, name: &str) -> u64 {
    stack.sim_stat(name).await
}

#[tokio::test]
async fn the_broker_connection_cut_twice_mid_stream_loses_and_duplicates_nothing() {
    let broker: std::net::SocketAddr = "127.0.0.1:5672".parse().unwrap();
    let proxy = TcpProxy::start(broker).await;
    let (p, stack) = Stack::launch(StackOptions {
        // Webflow's retries (3 more) span the outage, so no webhook is given up.
        webhook_retry_interval_ms: 3_000,
        amqp_url: proxy.amqp_url(),
        ..StackOptions::default()
    })
    .await;
    for created in [10, 35] {
        stack.wait_created(created).await;
        let refused = sim_stat(&stack, "webhook_failures").await;
        // Every connection of every service drops at once, mid-publish and mid-handler.
        proxy.cut();
        tokio::time::sleep(CUT_FOR).await;
        // The cut is felt before it ends: the ingress refuses a webhook.
        stack.wait_sim_stat_above("webhook_failures", refused, NOTICED).await;
        proxy.restore();
    }
    stack.assert_every_order_fulfilled_once(&p, SETTLE).await;
    assert!(
        sim_stat(&stack, "webhook_failures").await > 0,
        "the ingress refused webhooks while the broker was away"
    );
    assert_eq!(sim_stat(&stack, "webhooks_given_up").await, 0);
    stack.finish(p).await;
}

#[tokio::test]
async fn postgres_connections_dropped_mid_stream_lose_and_duplicate_nothing() {
    let (p, stack) = Stack::launch(StackOptions::default()).await;
    let database = p.db.url.rsplit('/').next().unwrap().to_owned();
    let mut dropped = 0;
    for created in [10, 25, 40] {
        stack.wait_created(created).await;
        // Every session of every service on this test's database, mid-transaction included.
        dropped += p
            .scalar(
                "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                 WHERE datname = $1 AND pid <> pg_backend_pid()) AS killed",
                &[&database],
            )
            .await;
    }
    assert!(dropped > 0, "there were connections to drop");
    stack.assert_every_order_fulfilled_once(&p, SETTLE).await;
    stack.finish(p).await;
}

#[tokio::test]
async fn a_429_storm_then_a_burst_of_500s_from_webflow_lose_and_duplicate_nothing() {
    let (p, stack) = Stack::launch(StackOptions::default()).await;
    stack.wait_created(10).await;
    // Each fault lasts until it has hit ten calls.
    stack.set_faults(serde_json::json!({"throttle_rate": 1.0})).await;
    stack.wait_sim_stat_above("throttled", 9, NOTICED).await;
    stack.set_faults(serde_json::json!({"error_rate": 1.0})).await;
    stack.wait_sim_stat_above("errors_injected", 9, NOTICED).await;
    stack.set_faults(serde_json::json!({})).await;
    stack.assert_every_order_fulfilled_once(&p, SETTLE).await;
    assert!(sim_stat(&stack, "throttled").await > 0, "the storm hit some calls");
    assert!(
        sim_stat(&stack, "errors_injected").await > 0,
        "the burst hit some calls"
    );
    stack.finish(p).await;
}

#[tokio::test]
async fn orders_whose_webhooks_hit_a_dead_ingress_are_recovered_by_retries_and_reconciliation() {
    let (p, mut stack) = Stack::launch(StackOptions {
        orders: 50,
        // Webflow gives up on a webhook ~1 s after the first failure.
        webhook_retry_interval_ms: 300,
        ..StackOptions::default()
    })
    .await;
    stack.wait_created(10).await;
    stack.kill_9("ingress");
    // Down until some webhooks are given up; those failing meanwhile are retried into the restart.
    stack.wait_sim_stat_above("webhooks_given_up", 0, NOTICED).await;
    stack.spawn("ingress");
    stack.wait_ready("ingress").await;
    stack.wait_created(50).await;
    assert!(
        sim_stat(&stack, "webhooks_given_up").await > 0,
        "some webhooks were lost for good"
    );
    // Let what did arrive settle (no webhook retry still to come, nothing left in flight), then
    // the CronJob's pass repairs the rest.
    stack.wait_fulfilled(&p, 1, SETTLE).await;
    stack.wait_webhooks_settled(SETTLE).await;
    stack.wait_until_idle(&p, SETTLE).await;
    stack.reconcile_once().await;
    stack.assert_every_order_fulfilled_once(&p, SETTLE).await;
    // A second pass finds nothing left to repair and writes nothing.
    let writes = stack.sim("/_sim/writes").await["writes"].as_array().unwrap().len();
    stack.reconcile_once().await;
    // Whatever the pass set going has run its course.
    stack.wait_until_idle(&p, SETTLE).await;
    assert_eq!(
        stack.sim("/_sim/writes").await["writes"].as_array().unwrap().len(),
        writes
    );
    stack.finish(p).await;
}

/// Posts `body` to the stack's ingress with the given timestamp and signature.
async fn post_signed(stack: &Stack, body: &[u8], timestamp: &str, signature: &str) -> u16 {
    reqwest::Client::new()
        .post(format!(
            "http://127.0.0.1:{}/webhooks/webflow/{SITE_ID}",
            stack.ingress_port
        ))
        .header("content-type", "application/json")
        .header("x-webflow-timestamp", timestamp)
        .header("x-webflow-signature", signature)
        .body(body.to_vec())
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn spoofed_and_replayed_webhooks_cause_no_writes() {
    let (p, stack) = Stack::launch(StackOptions {
        orders: 5,
        ..StackOptions::default()
    })
    .await;
    stack.assert_every_order_fulfilled_once(&p, SETTLE).await;
    let orders = stack.sim("/_sim/orders").await;
    let old = &orders["orders"][0];
    let now = || chrono::Utc::now().timestamp_millis().to_string();

    // A forged new order (right shape, wrong secret) and a fulfilled order "refunded" by a forger.
    let mut forged = old.clone();
    forged["orderId"] = "forged-order-1".into();
    let forged = serde_json::to_vec(&serde_json::json!({"triggerType": "ecomm_new_order", "payload": forged})).unwrap();
    let ts = now();
    assert_eq!(
        post_signed(&stack, &forged, &ts, &webflow::sign("not-the-secret", &ts, &forged)).await,
        401
    );
    let mut refunded = old.clone();
    refunded["status"] = "refunded".into();
    let refunded =
        serde_json::to_vec(&serde_json::json!({"triggerType": "ecomm_order_changed", "payload": refunded})).unwrap();
    assert_eq!(post_signed(&stack, &refunded, &ts, "00").await, 401);
    // A correctly signed body, but captured ten minutes ago.
    let stale = (chrono::Utc::now().timestamp_millis() - 600_000).to_string();
    assert_eq!(
        post_signed(&stack, &forged, &stale, &webflow::sign(SECRET, &stale, &forged)).await,
        401
    );
    // The old new-order body of a fulfilled order, replayed with a fresh valid signature:
    // accepted (Webflow retries look exactly like this) and absorbed with no second write.
    let replayed = serde_json::to_vec(&serde_json::json!({"triggerType": "ecomm_new_order", "payload": old})).unwrap();
    for _ in 0..3 {
        let ts = now();
        assert_eq!(
            post_signed(&stack, &replayed, &ts, &webflow::sign(SECRET, &ts, &replayed)).await,
            200
        );
    }
    // The consumers run as processes: the stack's idle check counts their in-flight deliveries.
    stack.wait_until_idle(&p, Duration::from_secs(20)).await;
    assert_eq!(
        p.scalar(
            "SELECT count(*) FROM orders WHERE webflow_order_id = 'forged-order-1'",
            &[]
        )
        .await,
        0
    );
    stack.assert_every_order_fulfilled_once(&p, SETTLE).await;
    stack.finish(p).await;
}
