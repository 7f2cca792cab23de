//! Every binary as its own process, configured only through the environment, against a fresh
//! database and namespace: they start, carry simulated orders to `fulfilled`, survive a
//! `kill -9` of each worker in turn mid-stream, and stop cleanly on SIGTERM.

use e2e::stack::{Stack, StackOptions, WORKERS};
use std::time::Duration;

#[tokio::test]
async fn every_worker_survives_a_kill_9_in_turn_and_everything_stops_cleanly() {
    let (p, mut stack) = Stack::launch(StackOptions::default()).await;
    // One worker at a time, while orders keep arriving: killed with no chance to ack, started
    // again.
    for (i, worker) in WORKERS.iter().enumerate() {
        stack.wait_created(8 * (i + 1)).await;
        stack.crash_and_restart(worker).await;
    }
    stack
        .assert_every_order_fulfilled_once(&p, Duration::from_secs(120))
        .await;
    stack.finish(p).await;
}
