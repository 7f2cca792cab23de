//! `wmsctl` against the real broker and database: a stuck job is found, understood and
//! replayed, and the order completes exactly once.

use e2e::*;
use std::time::Duration;
use wmsctl::dlq::Dlq;

const WAIT: Duration = Duration::from_secs(25);

#[tokio::test]
async fn a_dead_lettered_write_back_is_listed_shown_replayed_and_completes_once() {
    let p = start_pipeline(PipelineOptions {
        start_ship: true,
        start_notify: true,
        start_warehouse: true,
        auto_pack: false,
        max_attempts: 2,
        simulator: Some(simulator_config()),
        stock: vec![("sim-sku-1", 10)],
        ..PipelineOptions::default()
    })
    .await;
    let sim = p.sim.as_ref().unwrap();
    let order_id = sim.state.new_order(&["sim-sku-1"], false)["orderId"]
        .as_str()
        .unwrap()
        .to_owned();
    // Its webhook was lost; reconciliation injects it.
    p.reconciler().await.run_once().await.unwrap();
    assert_eq!(
        p.wait_for_state(&order_id, "reserved", WAIT).await.as_deref(),
        Some("reserved")
    );
    // Webflow fails every call while the order is packed and shipped.
    sim.state.faults.lock().unwrap().error_rate = 1.0;
    p.pick_and_pack(&order_id).await;
    assert_eq!(
        p.wait_for_state(&order_id, "shipped", WAIT).await.as_deref(),
        Some("shipped")
    );

    let dlq = Dlq::connect(&test_support::amqp_url(), p.topology.clone())
        .await
        .unwrap();
    let dead_queue = p.topology.dead_queue(consumer::NOTIFY_WEBFLOW);
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let listed = dlq.list().await.unwrap();
        let entry = listed.iter().find(|q| q.queue == dead_queue).unwrap();
        if entry.messages == 1 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "not dead-lettered: {listed:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let shown = dlq.show(&dead_queue, 10).await.unwrap();
    assert_eq!(shown.len(), 1);
    assert_eq!(shown[0].order_id.as_deref(), Some(order_id.as_str()));
    assert_eq!(shown[0].reason.as_deref(), Some("retries_exhausted"));
    assert_eq!(shown[0].service.as_deref(), Some("notify-webflow"));
    assert!(shown[0].error.as_deref().unwrap().contains("500"));
    let table = wmsctl::output::messages_table(&shown);
    assert!(
        table.contains(&order_id) && table.contains("retries_exhausted"),
        "{table}"
    );
    assert_eq!(
        dlq.list()
            .await
            .unwrap()
            .iter()
            .find(|q| q.queue == dead_queue)
            .unwrap()
            .messages,
        1,
        "show leaves it there"
    );

    // Webflow recovers; the operator replays just this order.
    sim.state.faults.lock().unwrap().error_rate = 0.0;
    assert!(
        dlq.replay(&dead_queue, Some("no-such-order"), 10)
            .await
            .unwrap()
            .is_empty()
    );
    let replayed = dlq.replay(&dead_queue, Some(&order_id), 10).await.unwrap();
    assert_eq!(replayed.len(), 1);
    assert_eq!(
        p.wait_for_state(&order_id, "fulfilled", WAIT).await.as_deref(),
        Some("fulfilled")
    );
    let fulfils = sim
        .state
        .writes_for(&order_id)
        .iter()
        .filter(|w| w.path.ends_with("/fulfill"))
        .count();
    assert_eq!(fulfils, 1, "fulfilled exactly once");
    assert_eq!(
        dlq.list()
            .await
            .unwrap()
            .iter()
            .find(|q| q.queue == dead_queue)
            .unwrap()
            .messages,
        0
    );

    // `wmsctl order show` for the fulfilled order.
    let client = p.client().await;
    let view = warehouse_db::order_view::load(&**client, &SITE_ID.into(), &order_id.as_str().into())
        .await
        .unwrap()
        .unwrap();
    let text = wmsctl::output::order_text(&view);
    assert!(text.contains("state: fulfilled"), "{text}");
    assert!(text.contains("shipment: booked Sandbox Express SBX"), "{text}");
    for kind in ["webhook_received", "state_change", "api_call"] {
        assert!(text.contains(kind), "{kind} missing in:\n{text}");
    }
    assert!(dlq.replay("wms.not-a-dead-queue", None, 1).await.is_err());
    p.teardown().await;
}

/// A message the broker itself dead-lettered (a quorum queue's delivery limit, after its
/// consumer kept crashing before the ack) carries no `x-original-routing-key`, only `x-death`.
/// Replaying it reaches its consumer, and only that one, with its original routing key.
#[tokio::test]
async fn a_message_the_broker_dead_lettered_is_replayed_to_its_consumer() {
    use futures_util::StreamExt;
    use lapin::options::{BasicConsumeOptions, BasicNackOptions, BasicQosOptions};

    let p = start_pipeline(PipelineOptions {
        start_enrich: false,
        stock: vec![(SKU_BALL, 5), (SKU_GLOVES, 5)],
        ..PipelineOptions::default()
    })
    .await;
    let order_id = "broker-dead-1";
    assert_eq!(
        p.post_webhook(&order_webhook("ecomm_new_order", order_id, "unfulfilled"))
            .await,
        200
    );
    // A consumer that crashes before acking, again and again: the broker dead-letters the
    // message once its delivery limit is reached.
    let work_queue = p.topology.work_queue(consumer::ENRICH);
    let dead_queue = p.topology.dead_queue(consumer::ENRICH);
    let connection = lapin::Connection::connect(&test_support::amqp_url(), lapin::ConnectionProperties::default())
        .await
        .unwrap();
    let channel = connection.create_channel().await.unwrap();
    channel.basic_qos(1, BasicQosOptions::default()).await.unwrap();
    let mut deliveries = channel
        .basic_consume(
            work_queue.as_str().into(),
            "crashing-consumer".into(),
            BasicConsumeOptions::default(),
            lapin::types::FieldTable::default(),
        )
        .await
        .unwrap();
    let observed = tokio::time::timeout(WAIT, async {
        loop {
            tokio::select! {
                Some(Ok(delivery)) = deliveries.next() => {
                    delivery.acker.nack(BasicNackOptions { requeue: true, ..Default::default() }).await.unwrap();
                }
                count = p.observer.wait_for_count(&dead_queue, 1, Duration::from_millis(200)) => {
                    if count >= 1 { break count; }
                }
            }
        }
    })
    .await
    .expect("the broker dead-letters the message at its delivery limit");
    assert_eq!(observed, 1);
    platform::amqp::close_channel(&channel, "done").await;

    let dlq = Dlq::connect(&test_support::amqp_url(), p.topology.clone())
        .await
        .unwrap();
    let shown = dlq.show(&dead_queue, 10).await.unwrap();
    assert_eq!(shown.len(), 1);
    assert_eq!(shown[0].routing_key.as_deref(), Some("webhook.ecomm_new_order"));
    // Looking never loses it: each look is a delivery and a return, and RabbitMQ 4.x drops a
    // message from a quorum queue with no limit of its own after 20 of them (its default
    // delivery limit, with nowhere to dead-letter to). The dead queue carries its own limit,
    // which the broker reports, and survives more looks than 4.x's default allows.
    let dead_queue_info: serde_json::Value = reqwest::Client::new()
        .get(format!("http://127.0.0.1:15672/api/queues/%2F/{dead_queue}"))
        .basic_auth("guest", Some("guest"))
        .send()
        .await
        .expect("the RabbitMQ management API answers (rabbitmq_management, enabled by .ci/run)")
        .json()
        .await
        .unwrap();
    assert_eq!(
        dead_queue_info["arguments"]["x-delivery-limit"].as_i64(),
        Some(platform::amqp::topology::DEAD_DELIVERY_LIMIT),
        "{dead_queue_info}"
    );
    for look in 1..=25 {
        assert_eq!(dlq.show(&dead_queue, 10).await.unwrap().len(), 1, "look {look}");
    }
    let replayed = dlq.replay(&dead_queue, Some(order_id), 10).await.unwrap();
    assert_eq!(replayed.len(), 1, "replayed although the broker put it there");

    // The replay waits in enrich's queue alone (reserve's queue got nothing), then enrich
    // handles it as the webhook it was.
    assert_eq!(p.observer.wait_for_count(&work_queue, 1, WAIT).await, 1);
    assert_eq!(
        p.observer
            .message_count(&p.topology.work_queue(consumer::RESERVE))
            .await,
        0
    );
    let settings = enrich::Settings {
        base: p.base.clone(),
        webflow: webflow_settings(&p.webflow_base),
        enrich: enrich::settings::EnrichSettings::default(),
    };
    let service = enrich::build(settings, p.shutdown.clone()).await.unwrap();
    tokio::spawn(service.run_until_stopped(p.shutdown.clone()));
    assert_eq!(
        p.wait_for_state(order_id, "reserved", WAIT).await.as_deref(),
        Some("reserved")
    );
    p.teardown().await;
}
