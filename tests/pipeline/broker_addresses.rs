//! Several broker addresses, and redeclaring the topology over queues declared before: on the
//! local broker (the 3-node cluster is `tests/rabbitmq_cluster`).

use lapin::options::{BasicGetOptions, BasicNackOptions, BasicPublishOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Connection, ConnectionProperties};
use platform::amqp::{AmqpClient, Topology};
use secrecy::SecretString;
use std::time::Duration;

fn closed_port() -> u16 {
    // Bound and released: nothing listens there.
    e2e::stack::free_port()
}

async fn connection() -> Connection {
    Connection::connect(&test_support::amqp_url(), ConnectionProperties::default())
        .await
        .unwrap()
}

fn quorum(extra: &[(&str, AMQPValue)]) -> FieldTable {
    let mut args = FieldTable::default();
    args.insert(
        ShortString::from("x-queue-type"),
        AMQPValue::LongString(LongString::from("quorum")),
    );
    for (key, value) in extra {
        args.insert(ShortString::from(*key), value.clone());
    }
    args
}

#[tokio::test]
async fn a_dead_first_address_fails_over_to_the_next_and_existing_queues_are_kept() {
    platform::install_crypto_provider();
    let topology = Topology::new(test_support::random_namespace(), vec![100], 10).with_initial_group_size(3);
    // As an install from before these settings left it: the dead queue without a delivery
    // limit, a work queue without an initial group size.
    let setup = connection().await;
    let channel = setup.create_channel().await.unwrap();
    let durable = QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    };
    let mut old_work = quorum(&[]);
    for (key, value) in [
        ("x-overflow", "reject-publish"),
        ("x-dead-letter-strategy", "at-least-once"),
        ("x-dead-letter-exchange", &topology.dead_exchange()),
        ("x-dead-letter-routing-key", "enrich"),
    ] {
        old_work.insert(ShortString::from(key), AMQPValue::LongString(LongString::from(value)));
    }
    old_work.insert(ShortString::from("x-delivery-limit"), AMQPValue::LongLongInt(10));
    channel
        .queue_declare(topology.work_queue("enrich").as_str().into(), durable, old_work)
        .await
        .unwrap();
    let mut old_dead = quorum(&[]);
    for (key, value) in [
        ("x-overflow", "reject-publish"),
        ("x-dead-letter-strategy", "at-least-once"),
    ] {
        old_dead.insert(ShortString::from(key), AMQPValue::LongString(LongString::from(value)));
    }
    channel
        .queue_declare(topology.dead_queue("enrich").as_str().into(), durable, old_dead)
        .await
        .unwrap();

    let url = format!(
        "amqp://guest:guest@127.0.0.1:{}/%2f,{}",
        closed_port(),
        test_support::amqp_url()
    );
    let shutdown = tokio_util::sync::CancellationToken::new();
    let amqp = AmqpClient::start(
        SecretString::from(url),
        "failover-test",
        topology.clone(),
        platform::retry::RetryPolicy {
            initial_ms: 5_000,
            multiplier: 2.0,
            max_ms: 5_000,
            randomization: 0.0,
        },
        shutdown.clone(),
    );
    // Well within the 5 s backoff: the second address is tried at once, not after a wait.
    amqp.wait_ready(Duration::from_secs(4)).await.unwrap();
    assert!(amqp.publish_channel().await.is_ok());

    // A fresh dead queue (declared by the topology) keeps a message however often it is
    // shown, i.e. read and returned (RabbitMQ 4.x would drop it at its default limit of 20).
    let probe = channel.clone();
    probe
        .basic_publish(
            "".into(),
            topology.dead_queue("reserve").as_str().into(),
            BasicPublishOptions::default(),
            b"dead letter",
            BasicProperties::default(),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    for shown in 0..25 {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        let message = loop {
            let got = probe
                .basic_get(
                    topology.dead_queue("reserve").as_str().into(),
                    BasicGetOptions::default(),
                )
                .await
                .unwrap();
            if let Some(message) = got {
                break message;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the dead letter is gone after being shown {shown} times"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        message
            .delivery
            .acker
            .nack(BasicNackOptions {
                requeue: true,
                ..BasicNackOptions::default()
            })
            .await
            .unwrap();
    }

    shutdown.cancel();
    let cleanup = connection().await;
    topology.delete(&cleanup.create_channel().await.unwrap()).await.unwrap();
}
