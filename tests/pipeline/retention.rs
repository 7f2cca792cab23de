//! Bounded data (issue 25): orders run through, their rows are aged, the prune job runs, and
//! the old messages come back (a redelivered webhook, replayed dead letters). Within the dedupe
//! window the record survives the prune and the message changes nothing; past it, the replay is
//! refused, so a message is never processed twice because its record was pruned.

use e2e::*;
use lapin::BasicProperties;
use lapin::options::BasicPublishOptions;
use lapin::types::{AMQPValue, FieldTable};
use retention::{Pruner, RetentionSettings};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use wmsctl::dlq::{Dlq, DlqError};

const WAIT: Duration = Duration::from_secs(25);

/// Puts a copy of enrich's webhook `message_id` in enrich's dead queue, as the consumer
/// runtime would have after its retries, first received `made_days_ago`.
async fn dead_letter(p: &Pipeline, message_id: &str, body: &serde_json::Value, made_days_ago: i64) {
    let connection = lapin::Connection::connect(&test_support::amqp_url(), lapin::ConnectionProperties::default())
        .await
        .unwrap();
    let channel = connection.create_channel().await.unwrap();
    channel
        .confirm_select(lapin::options::ConfirmSelectOptions::default())
        .await
        .unwrap();
    let made = chrono::Utc::now() - chrono::Duration::days(made_days_ago);
    let mut headers = FieldTable::default();
    for (key, value) in [
        ("x-received-at", made.to_rfc3339()),
        ("x-site-id", SITE_ID.to_owned()),
        ("x-original-routing-key", "webhook.ecomm_new_order".to_owned()),
        ("x-dead-service", "enrich".to_owned()),
        ("x-dead-reason", "retries_exhausted".to_owned()),
        ("x-dead-at", made.to_rfc3339()),
    ] {
        headers.insert(key.into(), AMQPValue::LongString(value.into()));
    }
    let confirm = channel
        .basic_publish(
            "".into(),
            p.topology.dead_queue(consumer::ENRICH).as_str().into(),
            BasicPublishOptions::default(),
            &serde_json::to_vec(body).unwrap(),
            BasicProperties::default()
                .with_message_id(message_id.into())
                .with_delivery_mode(2)
                .with_headers(headers),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    assert!(confirm.is_ack());
    platform::amqp::close_channel(&channel, "done").await;
}

#[tokio::test]
async fn pruned_rows_never_let_an_old_message_be_processed_twice() {
    let p = start_pipeline(PipelineOptions {
        stock: vec![(SKU_BALL, 10)],
        ..PipelineOptions::default()
    })
    .await;
    let order_id = "retention-1";
    let webhook = single_sku_order(order_id, SKU_BALL, 2);
    assert_eq!(p.post_webhook(&webhook).await, 200);
    assert_eq!(
        p.wait_for_state(order_id, "reserved", WAIT).await.as_deref(),
        Some("reserved")
    );
    p.wait_until_idle(consumer::ENRICH, WAIT).await;
    p.wait_until_idle(consumer::RESERVE, WAIT).await;
    let client = p.client().await;
    let message_id: String = client
        .query_one(
            "SELECT message_id FROM processed_messages WHERE consumer = $1",
            &[&consumer::ENRICH],
        )
        .await
        .unwrap()
        .get(0);
    // Wait for the outbox marks (written in batches off the message path).
    wait_for("the outbox rows marked published", WAIT, || async {
        (p.scalar("SELECT count(*) FROM outbox WHERE published_at IS NULL", &[])
            .await
            == 0)
            .then_some(())
    })
    .await;

    // Twenty days later: inside the dedupe window (30 days), past the outbox's (7); the
    // audit entries 500 days old, past theirs (400).
    client
        .batch_execute(
            "UPDATE processed_messages SET processed_at = now() - interval '20 days';
             UPDATE outbox SET created_at = now() - interval '20 days', published_at = now() - interval '20 days';
             ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only;
             UPDATE audit_log SET occurred_at = now() - interval '500 days';
             ALTER TABLE audit_log ENABLE TRIGGER audit_log_append_only;",
        )
        .await
        .unwrap();
    let records = p.scalar("SELECT count(*) FROM processed_messages", &[]).await;
    assert!(records >= 2, "enrich's and reserve's records");
    assert!(p.scalar("SELECT count(*) FROM outbox", &[]).await >= 1);
    let summary = Pruner::new(
        p.db.pool.clone(),
        RetentionSettings::default(),
        CancellationToken::new(),
    )
    .run_once()
    .await
    .unwrap();
    assert_eq!(summary.tables["processed_messages"].deleted, 0);
    assert!(summary.tables["outbox"].deleted >= 1);
    assert!(summary.tables["audit_log"].deleted >= 1);
    assert_eq!(p.scalar("SELECT count(*) FROM outbox", &[]).await, 0);
    assert_eq!(p.scalar("SELECT count(*) FROM audit_log", &[]).await, 0);
    assert_eq!(p.scalar("SELECT count(*) FROM processed_messages", &[]).await, records);

    // Webflow sends the same webhook again, and an operator replays a dead copy of it made
    // today: both find enrich's record and change nothing (its event is gone from the outbox,
    // so only the record stops a second order.ready).
    let handled = p.handled(consumer::ENRICH).await;
    assert_eq!(p.post_webhook(&webhook).await, 200);
    p.wait_until_handled(consumer::ENRICH, handled + 1, WAIT).await;
    let dead_queue = p.topology.dead_queue(consumer::ENRICH);
    dead_letter(&p, &message_id, &webhook, 0).await;
    let dlq = Dlq::connect(&test_support::amqp_url(), p.topology.clone())
        .await
        .unwrap();
    assert_eq!(p.observer.wait_for_count(&dead_queue, 1, WAIT).await, 1);
    assert_eq!(dlq.replay(&dead_queue, None, 10).await.unwrap().len(), 1);
    p.wait_until_handled(consumer::ENRICH, handled + 2, WAIT).await;
    p.wait_until_idle(consumer::RESERVE, WAIT).await;
    assert_eq!(p.scalar("SELECT count(*) FROM outbox", &[]).await, 0, "no second event");
    assert_eq!(
        p.scalar("SELECT count(*) FROM audit_log", &[]).await,
        0,
        "no second effect"
    );
    assert_eq!(p.inventory(SKU_BALL).await.reserved, 2, "reserved once");
    assert_eq!(
        p.scalar(
            "SELECT count(*) FROM processed_messages WHERE processed_at > now() - interval '1 day'",
            &[]
        )
        .await,
        0,
        "no record written again"
    );

    // Forty-five days later the records are pruned; a dead letter that old is refused, and
    // stays in its queue for the operator to look into.
    client
        .execute(
            "UPDATE processed_messages SET processed_at = now() - interval '45 days'",
            &[],
        )
        .await
        .unwrap();
    let summary = Pruner::new(
        p.db.pool.clone(),
        RetentionSettings::default(),
        CancellationToken::new(),
    )
    .run_once()
    .await
    .unwrap();
    assert_eq!(summary.tables["processed_messages"].deleted as i64, records);
    dead_letter(&p, &message_id, &webhook, 45).await;
    assert_eq!(p.observer.wait_for_count(&dead_queue, 1, WAIT).await, 1);
    let error = dlq.replay(&dead_queue, None, 10).await.unwrap_err();
    assert!(matches!(error, DlqError::TooOldToReplay { .. }), "{error}");
    assert!(error.to_string().contains("more than 7 days ago"), "{error}");
    assert_eq!(p.observer.wait_for_count(&dead_queue, 1, WAIT).await, 1);
    assert_eq!(p.scalar("SELECT count(*) FROM processed_messages", &[]).await, 0);
    assert_eq!(p.inventory(SKU_BALL).await.reserved, 2);
    p.teardown().await;
}
