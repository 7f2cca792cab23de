//! The real broker restarted mid-stream (`rabbitmqctl stop_app` / `start_app`), with every
//! service its own process: nothing lost, nothing written twice, inventory consistent.
//!
//! This stops the shared RabbitMQ, so it is its own test target with this one test: cargo runs
//! test targets one after another, so nothing else runs meanwhile. The broker is started again
//! even when the test fails. `WMS_TEST_RABBITMQCTL` names the command (default `rabbitmqctl`;
//! e.g. `docker compose exec -T rabbitmq rabbitmqctl` when the broker runs in Docker).

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

use e2e::stack::{Stack, StackOptions};
use std::process::Command;
use std::time::Duration;

fn rabbitmqctl(args: &[&str]) -> bool {
    let configured = std::env::var("WMS_TEST_RABBITMQCTL").unwrap_or_else(|_| "rabbitmqctl".into());
    let mut words = configured.split_whitespace();
    let program = words.next().expect("WMS_TEST_RABBITMQCTL is empty");
    let status = Command::new(program)
        .args(words)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap_or_else(|error| panic!("cannot run `{configured}` ({error}): set WMS_TEST_RABBITMQCTL"));
    status.success()
}

/// Starts the broker's app again when dropped, so a failing test never leaves it stopped.
struct BrokerStopped;

impl BrokerStopped {
    fn stop() -> Self {
        assert!(rabbitmqctl(&["stop_app"]), "rabbitmqctl stop_app failed");
        Self
    }
}

impl Drop for BrokerStopped {
    fn drop(&mut self) {
        let started = rabbitmqctl(&["start_app"]) && rabbitmqctl(&["await_startup", "--timeout", "120"]);
        if !started && !std::thread::panicking() {
            panic!("RabbitMQ did not start again: run `rabbitmqctl start_app`");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_restart_mid_stream_loses_and_duplicates_nothing() {
    let (p, stack) = Stack::launch(StackOptions {
        // Webflow's three retries span the restart for most webhooks; reconciliation
        // repairs any it gave up on, as the CronJob does in production.
        webhook_retry_interval_ms: 5_000,
        ..StackOptions::default()
    })
    .await;
    stack.wait_created(15).await;
    let refused = stack.sim_stat("webhook_failures").await;
    let stopped = tokio::task::spawn_blocking(BrokerStopped::stop).await.unwrap();
    // The broker stays down for this long (the fault's own duration), and at least until the
    // ingress has refused a webhook for it.
    tokio::time::sleep(Duration::from_secs(3)).await;
    stack
        .wait_sim_stat_above("webhook_failures", refused, Duration::from_secs(60))
        .await;
    tokio::task::spawn_blocking(move || drop(stopped)).await.unwrap();

    stack.wait_created(60).await;
    // Let every retry play out (each webhook delivered or given up, nothing left in flight),
    // then one reconciliation pass.
    stack.wait_webhooks_settled(Duration::from_secs(120)).await;
    stack.wait_until_idle(&p, Duration::from_secs(120)).await;
    stack.reconcile_once().await;
    stack
        .assert_every_order_fulfilled_once(&p, Duration::from_secs(120))
        .await;
    let failures = stack.sim("/_sim/stats").await["webhook_failures"].as_u64().unwrap();
    assert!(failures > 0, "the ingress refused webhooks while the broker was down");
    stack.finish(p).await;
}
