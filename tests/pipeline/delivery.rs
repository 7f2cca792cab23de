//! At-least-once delivery: duplicates, redeliveries and crashes leave one effect.

use e2e::*;
use lapin::BasicProperties;
use lapin::options::BasicGetOptions;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(20);

#[tokio::test]
async fn the_same_webhook_five_times_gives_one_reservation() {
    let p = start_pipeline(PipelineOptions::default()).await;
    p.db.stock(SKU_BALL, 10).await;
    p.db.stock(SKU_GLOVES, 10).await;
    let body = order_webhook("ecomm_new_order", "dup-1", "unfulfilled");
    for _ in 0..5 {
        assert_eq!(p.post_webhook(&body).await, 200);
    }
    assert_eq!(
        p.wait_for_state("dup-1", "reserved", WAIT).await.as_deref(),
        Some("reserved")
    );
    p.wait_until_idle(consumer::ENRICH, WAIT).await;
    p.wait_until_idle(consumer::RESERVE, WAIT).await;
    assert_eq!(p.inventory(SKU_BALL).await.reserved, 1);
    assert_eq!(p.scalar("SELECT count(*) FROM reservations", &[]).await, 2);
    assert_eq!(p.scalar("SELECT count(*) FROM pick_tasks", &[]).await, 1);
    assert_eq!(
        p.scalar("SELECT count(*) FROM outbox", &[]).await,
        2,
        "one order.ready and one order.reserved"
    );
    p.teardown().await;
}

#[tokio::test]
async fn the_same_event_delivered_five_times_reserves_once() {
    let p = start_pipeline(PipelineOptions::default()).await;
    p.db.stock(SKU_BALL, 10).await;
    p.db.stock(SKU_GLOVES, 10).await;
    // Create the order but hold `reserve` back by publishing the ready event ourselves, 5 times.
    let body = order_webhook("ecomm_new_order", "dup-2", "unfulfilled");
    assert_eq!(p.post_webhook(&body).await, 200);
    assert_eq!(
        p.wait_for_state("dup-2", "reserved", WAIT).await.as_deref(),
        Some("reserved")
    );
    let ready: serde_json::Value = p
        .client()
        .await
        .query_one("SELECT payload FROM outbox WHERE routing_key = 'order.ready'", &[])
        .await
        .unwrap()
        .get(0);
    let message_id = ready["message_id"].as_str().unwrap().to_owned();
    p.wait_until_idle(consumer::RESERVE, WAIT).await;
    let handled = p.handled(consumer::RESERVE).await;
    for _ in 0..5 {
        p.observer
            .publish(
                &p.topology.events_exchange(),
                "order.ready",
                &serde_json::to_vec(&ready).unwrap(),
                BasicProperties::default().with_message_id(message_id.as_str().into()),
            )
            .await;
    }
    // All five are handled (as duplicates) before the counts are read.
    p.wait_until_handled(consumer::RESERVE, handled + 5, WAIT).await;
    assert_eq!(p.inventory(SKU_BALL).await.reserved, 1);
    assert_eq!(p.scalar("SELECT count(*) FROM pick_tasks", &[]).await, 1);
    p.teardown().await;
}

#[tokio::test]
async fn a_worker_that_dies_after_commit_and_before_ack_causes_no_duplicate() {
    // Only enrich runs at first; we play a reserve replica that crashes.
    let p = start_pipeline(PipelineOptions {
        start_reserve: false,
        ..PipelineOptions::default()
    })
    .await;
    p.db.stock(SKU_BALL, 10).await;
    p.db.stock(SKU_GLOVES, 10).await;
    assert_eq!(
        p.post_webhook(&order_webhook("ecomm_new_order", "crash-1", "unfulfilled"))
            .await,
        200
    );
    let queue = p.topology.work_queue(consumer::RESERVE);
    assert_eq!(p.observer.wait_for_count(&queue, 1, WAIT).await, 1);

    // The doomed replica: takes the delivery, commits its work, and dies before acking.
    {
        let connection = lapin::Connection::connect(&test_support::amqp_url(), Default::default())
            .await
            .unwrap();
        let channel = connection.create_channel().await.unwrap();
        let got = channel
            .basic_get(queue.as_str().into(), BasicGetOptions { no_ack: false })
            .await
            .unwrap()
            .unwrap();
        let message = worker::IncomingMessage::from_delivery(&got.delivery);
        let doomed = doomed_reserve_runtime(&p).await;
        assert_eq!(doomed.process(message).await, worker::Disposition::Processed);
        assert_eq!(p.order_state("crash-1").await.as_deref(), Some("reserved"));
        // Crash: the connection goes away with the delivery unacknowledged.
        drop(channel);
        let _ = tokio::time::timeout(Duration::from_secs(5), connection.close(320, "crash".into())).await;
    }
    assert_eq!(
        p.observer.wait_for_count(&queue, 1, WAIT).await,
        1,
        "the broker redelivers it"
    );

    // A healthy replica starts and gets the redelivery.
    let service = reserve::build(p.base.clone(), p.shutdown.clone()).await.unwrap();
    p.track_replica(consumer::RESERVE, service.health_port());
    tokio::spawn(service.run_until_stopped(p.shutdown.clone()));
    // The redelivery handled (as a duplicate of the committed work), not merely taken.
    p.wait_until_handled(consumer::RESERVE, 1, WAIT).await;
    assert_eq!(p.inventory(SKU_BALL).await.reserved, 1, "no second reservation");
    assert_eq!(p.scalar("SELECT count(*) FROM pick_tasks", &[]).await, 1);
    let reserved_events = p
        .scalar("SELECT count(*) FROM outbox WHERE routing_key = 'order.reserved'", &[])
        .await;
    assert_eq!(reserved_events, 1);
    p.teardown().await;
}

async fn doomed_reserve_runtime(p: &Pipeline) -> worker::WorkerRuntime<reserve::ReserveHandler> {
    let amqp = platform::amqp::AmqpClient::start(
        p.base.amqp.url.clone(),
        "doomed",
        p.topology.clone(),
        p.base.amqp.reconnect.clone(),
        p.shutdown.child_token(),
    );
    amqp.wait_ready(WAIT).await.unwrap();
    let publisher = platform::amqp::Publisher::new(amqp.clone(), Duration::from_secs(10));
    let outbox = service_base::OutboxPublisher::new(
        p.db.pool.clone(),
        publisher.clone(),
        p.topology.clone(),
        "doomed".to_owned(),
    );
    worker::WorkerRuntime::with_outbox(
        reserve::ReserveHandler,
        p.db.pool.clone(),
        amqp,
        publisher,
        outbox,
        p.base.worker.clone(),
        &prometheus::Registry::new(),
    )
    .unwrap()
}

#[tokio::test]
async fn events_committed_but_never_published_are_published_by_the_relay() {
    let p = start_pipeline(PipelineOptions::default()).await;
    p.db.stock("relay-sku", 3).await;
    // Simulate a crash between commit and publish: the order and its order.ready event are in
    // the database, nothing was published.
    let body = single_sku_order("relay-1", "relay-sku", 1);
    {
        let mut client = p.client().await;
        let tx = client.transaction().await.unwrap();
        let order: webflow::Order = serde_json::from_value(body["payload"].clone()).unwrap();
        let new = warehouse_db::orders::NewOrder {
            site_id: &SITE_ID.into(),
            webflow_order_id: &"relay-1".into(),
            state: domain::OrderState::Ready,
            state_reason: None,
            webflow_status: Some(&domain::WebflowOrderStatus::Unfulfilled),
            shipping_required: true,
            customer_name: None,
            customer_email: None,
            shipping_address: None,
            total_minor: None,
            currency: None,
            snapshot: serde_json::to_value(&order).unwrap(),
            correlation_id: None,
        };
        let line = warehouse_db::orders::NewLine {
            sku: "relay-sku".into(),
            variant_id: None,
            product_name: None,
            quantity: 1,
            unit_weight: None,
            unit_width: None,
            unit_height: None,
            unit_length: None,
        };
        warehouse_db::orders::insert(&*tx, &new, &[line], "test").await.unwrap();
        let envelope = domain::Envelope::new(
            domain::MessageId::new("ev-relay-1"),
            "c",
            domain::SiteId::new(SITE_ID),
            domain::Event::OrderReadyV1 {
                order_id: domain::OrderId::new("relay-1"),
            },
        );
        warehouse_db::outbox::enqueue(&*tx, &envelope, Some(("enrich", "lost-message")))
            .await
            .unwrap();
        tx.commit().await.unwrap();
    }
    // The relay (every 200 ms here, for rows older than 1 s) picks it up.
    assert_eq!(
        p.wait_for_state("relay-1", "reserved", WAIT).await.as_deref(),
        Some("reserved")
    );
    // Marks are written in the background, right after the publishes.
    let deadline = tokio::time::Instant::now() + WAIT;
    while p
        .scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL", &[])
        .await
        > 0
    {
        assert!(tokio::time::Instant::now() < deadline, "events left unmarked");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    p.teardown().await;
}
