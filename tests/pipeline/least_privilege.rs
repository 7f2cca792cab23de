//! Least-privilege RabbitMQ users (issue 25): every service under a user of its own with
//! exactly the permissions of `platform::amqp::permissions` (what `wmsctl amqp permissions`
//! prints and deploy/rabbitmq/users.sh applies), on a vhost of the test's own, the topology
//! declared once by the `topology` user. The pipeline still runs end to end (webhook, re-injected
//! webhook, retries, dead letters, replay), and every user is refused what it does not need.

use e2e::*;
use lapin::options::{
    BasicConsumeOptions, BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions,
    QueueBindOptions, QueueDeclareOptions, QueueDeleteOptions, QueuePurgeOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use platform::amqp::topology::{TopologyError, is_access_refused};
use platform::amqp::{Role, Topology};
use std::process::Command;
use std::time::Duration;
use test_support::vhost::TestVhost;
use wmsctl::dlq::Dlq;

const WAIT: Duration = Duration::from_secs(30);

/// A user per role on `vhost`, with the permissions the code's table gives it for `namespace`.
fn users(vhost: &TestVhost, namespace: &str) -> AmqpUsers {
    let topology = Topology::new(namespace, vec![1_000], 10);
    AmqpUsers {
        namespace: namespace.to_owned(),
        observer: vhost.guest_url(),
        urls: Role::ALL
            .iter()
            .map(|role| {
                let p = topology.permissions(*role);
                (*role, vhost.add_user(role.as_str(), &p.configure, &p.write, &p.read))
            })
            .collect(),
    }
}

async fn connect(url: &str) -> Connection {
    Connection::connect(url, ConnectionProperties::default()).await.unwrap()
}

/// A fresh channel with publisher confirms: a refused operation closes its channel.
async fn channel(connection: &Connection) -> Channel {
    let channel = connection.create_channel().await.unwrap();
    channel.confirm_select(ConfirmSelectOptions::default()).await.unwrap();
    channel
}

/// Publishes with confirms: `Ok` only when the broker acked.
async fn publish(connection: &Connection, exchange: &str, routing_key: &str) -> Result<(), lapin::Error> {
    let channel = channel(connection).await;
    let confirm = channel
        .basic_publish(
            exchange.into(),
            routing_key.into(),
            BasicPublishOptions::default(),
            b"{}",
            BasicProperties::default().with_message_id("least-privilege-probe".into()),
        )
        .await?
        .await?;
    assert!(confirm.is_ack(), "{exchange}: not acked");
    // A refusal may reach the channel after the publish returned: a round trip settles it.
    channel.basic_qos(1, lapin::options::BasicQosOptions::default()).await?;
    Ok(())
}

#[track_caller]
fn assert_refused<T: std::fmt::Debug>(what: &str, result: Result<T, lapin::Error>) {
    match result {
        Err(error) => assert!(is_access_refused(&error), "{what}: not ACCESS_REFUSED but {error}"),
        Ok(value) => panic!("{what}: allowed ({value:?})"),
    }
}

async fn get(connection: &Connection, queue: &str) -> Result<bool, lapin::Error> {
    let channel = channel(connection).await;
    Ok(channel
        .basic_get(queue.into(), BasicGetOptions { no_ack: false })
        .await?
        .is_some())
}

async fn declare_queue(connection: &Connection, queue: &str, passive: bool) -> Result<u32, lapin::Error> {
    let channel = channel(connection).await;
    let options = QueueDeclareOptions {
        durable: true,
        passive,
        ..QueueDeclareOptions::default()
    };
    Ok(channel
        .queue_declare(queue.into(), options, FieldTable::default())
        .await?
        .message_count())
}

fn wmsctl(url: &str, namespace: &str, args: &[&str]) -> std::process::Output {
    let binary = e2e::stack::bin_dir().join("wmsctl");
    Command::new(&binary)
        .args(args)
        .env_remove("WMS_CONFIG")
        // Plain amqp:// with per-test users: a local broker.
        .env("WMS__PROFILE", "local")
        .env("WMS__AMQP__URL", url)
        .env("WMS__AMQP__NAMESPACE", namespace)
        .output()
        .unwrap_or_else(|e| panic!("{} ({e}): run `cargo build --workspace --bins` first", binary.display()))
}

#[tokio::test]
async fn the_pipeline_runs_end_to_end_with_each_service_under_its_own_least_privilege_user() {
    let vhost = TestVhost::create();
    let namespace = test_support::random_namespace();
    let users = users(&vhost, &namespace);
    let p = start_pipeline(PipelineOptions {
        start_ship: true,
        start_notify: true,
        start_warehouse: true,
        auto_pack: false,
        max_attempts: 2,
        simulator: Some(simulator_config()),
        stock: vec![("sim-sku-1", 10), (SKU_BALL, 10), (SKU_GLOVES, 10)],
        amqp_users: Some(users.clone()),
        ..PipelineOptions::default()
    })
    .await;
    assert!(!p.base.amqp.declare_topology, "the services only verify");
    let sim = p.sim.as_ref().unwrap();

    // An order whose webhook was lost: the reconciler (its own user) re-injects it.
    let order_id = sim.state.new_order(&["sim-sku-1"], false)["orderId"]
        .as_str()
        .unwrap()
        .to_owned();
    p.reconciler().await.run_once().await.unwrap();
    assert_eq!(
        p.wait_for_state(&order_id, "reserved", WAIT).await.as_deref(),
        Some("reserved")
    );
    // Webflow fails while it is picked and packed (the warehouse publishes order.packed), so
    // notify-webflow retries (retry exchange), then dead-letters it (dead exchange).
    sim.state.faults.lock().unwrap().error_rate = 1.0;
    p.pick_and_pack(&order_id).await;
    assert_eq!(
        p.wait_for_state(&order_id, "shipped", WAIT).await.as_deref(),
        Some("shipped")
    );
    let dead_queue = p.topology.dead_queue(consumer::NOTIFY_WEBFLOW);
    let dead = p.observer.wait_for_count(&dead_queue, 1, WAIT).await;
    assert_eq!(dead, 1, "dead-lettered by notify-webflow after its retries");

    // The operator's user lists, shows and replays it; Webflow has recovered.
    let dlq = Dlq::connect(&users.url(Role::Operator), p.topology.clone())
        .await
        .unwrap();
    let listed = dlq.list().await.unwrap();
    assert_eq!(listed.iter().find(|q| q.queue == dead_queue).unwrap().messages, 1);
    let shown = dlq.show(&dead_queue, 10).await.unwrap();
    assert_eq!(shown[0].reason.as_deref(), Some("retries_exhausted"));
    sim.state.faults.lock().unwrap().error_rate = 0.0;
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

    // A signed webhook through the ingress (its user: write on the events exchange only).
    assert_eq!(
        p.post_webhook(&order_webhook("ecomm_new_order", "lp-2", "unfulfilled"))
            .await,
        200
    );
    assert_eq!(
        p.wait_for_state("lp-2", "reserved", WAIT).await.as_deref(),
        Some("reserved")
    );
    // The warehouse's user purges a dead queue (read on the dead queues).
    let warehouse_dlq = Dlq::connect(&users.url(Role::Warehouse), p.topology.clone())
        .await
        .unwrap();
    assert_eq!(warehouse_dlq.purge(&dead_queue).await.unwrap(), 0);
    p.teardown().await;
    drop(vhost);
}

#[tokio::test]
async fn each_user_is_refused_what_it_does_not_need() {
    let vhost = TestVhost::create();
    let namespace = test_support::random_namespace();
    let users = users(&vhost, &namespace);
    let topology = Topology::new(namespace.as_str(), vec![1_000], 10);

    // The declare step as deployments run it: `wmsctl amqp declare` as the topology user.
    let declared = wmsctl(&users.url(Role::Topology), &namespace, &["amqp", "declare"]);
    assert!(
        declared.status.success(),
        "{}",
        String::from_utf8_lossy(&declared.stderr)
    );
    // Any user may verify it (passive declares need no permission), the ingress's too.
    let verified = wmsctl(&users.url(Role::Ingress), &namespace, &["amqp", "verify"]);
    assert!(
        verified.status.success(),
        "{}",
        String::from_utf8_lossy(&verified.stderr)
    );
    // What users.sh applies is the table these users were made from.
    let printed = wmsctl(&users.url(Role::Ingress), &namespace, &["amqp", "permissions"]);
    let expected: Vec<String> = topology
        .all_permissions()
        .iter()
        .map(|p| format!("{}\t{}\t{}\t{}", p.role, p.configure, p.write, p.read))
        .collect();
    assert_eq!(String::from_utf8_lossy(&printed.stdout).trim_end(), expected.join("\n"));

    let events = topology.events_exchange();
    let work = topology.work_queue(consumer::ENRICH);
    let ingress = connect(&users.url(Role::Ingress)).await;
    topology.verify(&ingress).await.unwrap();
    publish(&ingress, &events, "webhook.ecomm_new_order")
        .await
        .expect("the ingress publishes to its exchange");
    for other in [
        topology.retry_exchange(),
        topology.requeue_exchange(),
        topology.dead_exchange(),
        String::new(),
    ] {
        assert_refused(
            &format!("ingress publishing to '{other}'"),
            publish(&ingress, &other, &work).await,
        );
    }
    assert_refused(
        "ingress declaring a queue",
        declare_queue(&ingress, &format!("{namespace}.sneaky"), false).await,
    );
    assert_refused(
        "ingress declaring an exchange",
        async {
            channel(&ingress)
                .await
                .exchange_declare(
                    format!("{namespace}.sneaky").as_str().into(),
                    ExchangeKind::Fanout,
                    ExchangeDeclareOptions::default(),
                    FieldTable::default(),
                )
                .await
        }
        .await,
    );
    for queue in topology.queue_names() {
        assert_refused(&format!("ingress reading {queue}"), get(&ingress, &queue).await);
    }
    assert_refused(
        "ingress consuming",
        async {
            channel(&ingress)
                .await
                .basic_consume(
                    work.as_str().into(),
                    "sneaky".into(),
                    BasicConsumeOptions::default(),
                    FieldTable::default(),
                )
                .await
                .map(|_| ())
        }
        .await,
    );
    assert_refused(
        "ingress purging",
        async {
            channel(&ingress)
                .await
                .queue_purge(work.as_str().into(), QueuePurgeOptions::default())
                .await
        }
        .await,
    );
    assert_refused(
        "ingress binding",
        async {
            channel(&ingress)
                .await
                .queue_bind(
                    work.as_str().into(),
                    events.as_str().into(),
                    "#".into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await
        }
        .await,
    );
    // Declaring, as a service with amqp.declare_topology = true would, fails with the way out.
    let error = topology.clone().with_declare(true).ensure(&ingress).await.unwrap_err();
    assert!(matches!(error, TopologyError::DeclareRefused(_)), "{error}");
    assert!(error.to_string().contains("amqp.declare_topology = false"), "{error}");

    // A worker reads its own queue, not another's; writes no other exchange.
    let enrich = connect(&users.url(Role::Enrich)).await;
    // The probe the ingress published is in enrich's queue: enrich may take it.
    assert!(get(&enrich, &work).await.unwrap(), "enrich reads its queue");
    assert_refused(
        "enrich reading reserve's queue",
        get(&enrich, &topology.work_queue(consumer::RESERVE)).await,
    );
    assert_refused(
        "enrich reading its dead queue",
        get(&enrich, &topology.dead_queue(consumer::ENRICH)).await,
    );
    assert_refused(
        "enrich publishing to the requeue exchange",
        publish(&enrich, &topology.requeue_exchange(), consumer::ENRICH).await,
    );
    for exchange in [topology.retry_exchange(), topology.dead_exchange()] {
        publish(&enrich, &exchange, "nowhere")
            .await
            .unwrap_or_else(|e| panic!("enrich publishes to {exchange}: {e}"));
    }

    // The warehouse (and the operator) read dead letters, not work queues.
    for role in [Role::Warehouse, Role::Operator] {
        let connection = connect(&users.url(role)).await;
        assert!(!get(&connection, &topology.dead_queue(consumer::SHIP)).await.unwrap());
        assert_refused(&format!("{role} reading a work queue"), get(&connection, &work).await);
        assert_refused(
            &format!("{role} publishing to the retry exchange"),
            publish(&connection, &topology.retry_exchange(), consumer::SHIP).await,
        );
    }
    // The reconciler publishes events only.
    let reconcile = connect(&users.url(Role::Reconcile)).await;
    assert_refused(
        "reconcile publishing to the requeue exchange",
        publish(&reconcile, &topology.requeue_exchange(), consumer::ENRICH).await,
    );
    assert_refused("reconcile reading", get(&reconcile, &work).await);
    // KEDA counts messages (passive declare) and can do nothing else.
    let keda = connect(&users.url(Role::Keda)).await;
    declare_queue(&keda, &work, true)
        .await
        .expect("keda counts messages by a passive declare");
    assert_refused("keda reading", get(&keda, &work).await);
    assert_refused("keda publishing", publish(&keda, &events, "order.ready").await);
    // The topology user stays inside its namespace.
    let admin = connect(&users.url(Role::Topology)).await;
    assert_refused(
        "topology user declaring outside its namespace",
        declare_queue(&admin, "elsewhere.queue", false).await,
    );

    // A missing queue stops a verifying service with the way out.
    channel(&admin)
        .await
        .queue_delete(work.as_str().into(), QueueDeleteOptions::default())
        .await
        .unwrap();
    let error = topology.verify(&ingress).await.unwrap_err();
    assert_eq!(
        error.to_string(),
        format!("queue {work} does not exist: run `wmsctl amqp declare`")
    );
    let verified = wmsctl(&users.url(Role::Ingress), &namespace, &["amqp", "verify"]);
    assert!(!verified.status.success());
    assert!(
        String::from_utf8_lossy(&verified.stderr).contains("run `wmsctl amqp declare`"),
        "{}",
        String::from_utf8_lossy(&verified.stderr)
    );
    drop(vhost);
}

/// A service started before the declare step (the migrate Job runs beside the Deployments)
/// is not ready while the topology is missing, and connects once it has been declared.
#[tokio::test]
async fn a_service_started_before_the_declare_step_connects_once_it_ran() {
    platform::telemetry::init_for_tests();
    let db = test_support::db::TestDatabase::create().await;
    let mut settings = ingress::Settings::default();
    settings.database.url = secrecy::SecretString::from(db.url.clone());
    settings.amqp.url = secrecy::SecretString::from(test_support::amqp_url());
    settings.amqp.namespace = test_support::random_namespace();
    settings.amqp.declare_topology = false;
    settings.amqp.reconnect.initial_ms = 50;
    settings.amqp.reconnect.max_ms = 500;
    settings.ingress.bind = "127.0.0.1:0".into();
    settings.health.bind = "127.0.0.1:0".into();
    settings.webflow = webflow_settings_for("https://unused.example", &[site()]);
    let topology = Topology::from_settings(&settings.amqp);
    let _leak_guard = test_support::LeakGuard {
        topology: topology.clone(),
    };
    let shutdown = tokio_util::sync::CancellationToken::new();
    let app = ingress::build(settings, shutdown.clone()).await.unwrap();

    let admin = connect(&test_support::amqp_url()).await;
    let missing = topology.verify(&admin).await.unwrap_err();
    assert!(matches!(missing, TopologyError::Missing { .. }), "{missing}");
    assert!(!app.amqp().is_ready(), "ready without a topology");
    topology.declare(&admin).await.unwrap();
    app.amqp().wait_ready(Duration::from_secs(20)).await.unwrap();
    shutdown.cancel();
}
