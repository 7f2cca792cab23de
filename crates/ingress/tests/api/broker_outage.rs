//! The broker goes away (through a TCP proxy we cut): the ingress answers 503, never 200,
//! reports not ready, reconnects by itself and accepts again.

use crate::helpers::*;
use lapin::options::QueueDeleteOptions;
use std::time::Duration;
use test_support::proxy::TcpProxy;

#[tokio::test]
async fn broker_down_means_503_then_success_after_it_returns() {
    let proxy = TcpProxy::start("127.0.0.1:5672".parse().unwrap()).await;
    let app = spawn_app_with(Options {
        amqp_url: proxy.amqp_url(),
        ..Options::default()
    })
    .await;
    let body = new_order_body();
    assert_eq!(app.post_signed(&body, SECRET).await.status(), 200);

    proxy.cut();
    let mut readiness = app.app_amqp.readiness();
    tokio::time::timeout(Duration::from_secs(10), readiness.wait_for(|ready| !*ready))
        .await
        .expect("the ingress notices the lost connection")
        .unwrap();
    let response = app.post_signed(&body, SECRET).await;
    assert_eq!(response.status(), 503);
    assert!(response.headers().contains_key("retry-after"));
    let readyz = app
        .client
        .get(format!("{}/readyz", app.health_address))
        .send()
        .await
        .unwrap();
    assert_eq!(readyz.status(), 503);

    proxy.restore();
    app.app_amqp
        .wait_ready(Duration::from_secs(20))
        .await
        .expect("reconnects by itself");
    assert_eq!(app.post_signed(&body, SECRET).await.status(), 200);
    let readyz = app
        .client
        .get(format!("{}/readyz", app.health_address))
        .send()
        .await
        .unwrap();
    assert_eq!(readyz.status(), 200);

    // Exactly the two accepted webhooks are queued; the 503 one was not. Each 200 came after
    // the broker confirmed its publish, and the 503 one's publish failed before its answer, so
    // nothing more can arrive.
    let queue = app.enrich_queue();
    assert_eq!(app.observer.message_count(&queue).await, 2);
    let metrics = app.metrics().await;
    assert_eq!(
        counter(
            &metrics,
            "wms_ingress_webhooks_total",
            &[("reason", "broker_unavailable")]
        ),
        1,
        "{metrics}"
    );
    app.teardown().await;
}

#[tokio::test]
async fn an_unroutable_webhook_is_503_not_a_silent_drop() {
    let app = spawn_app().await;
    // Someone deleted the queue: the mandatory publish comes back unroutable.
    app.observer
        .channel()
        .queue_delete(app.enrich_queue().into(), QueueDeleteOptions::default())
        .await
        .unwrap();
    let response = app.post_signed(&new_order_body(), SECRET).await;
    assert_eq!(response.status(), 503);
    let metrics = app.metrics().await;
    assert_eq!(
        counter(&metrics, "wms_ingress_webhooks_total", &[("reason", "unroutable")]),
        1,
        "{metrics}"
    );
    app.teardown().await;
}

#[tokio::test]
async fn starting_while_the_broker_is_down_is_not_ready_then_recovers() {
    let proxy = TcpProxy::start("127.0.0.1:5672".parse().unwrap()).await;
    proxy.cut();
    let app = spawn_app_with(Options {
        amqp_url: proxy.amqp_url(),
        wait_ready: false,
        ..Options::default()
    })
    .await;
    let response = app.post_signed(&new_order_body(), SECRET).await;
    assert_eq!(response.status(), 503);
    proxy.restore();
    app.app_amqp
        .wait_ready(Duration::from_secs(20))
        .await
        .expect("connects once the broker is back");
    assert_eq!(app.post_signed(&new_order_body(), SECRET).await.status(), 200);
    app.teardown().await;
}
