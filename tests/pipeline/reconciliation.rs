//! The reconciliation job against the simulator: each case repaired, and a second run
//! repairs nothing.

use e2e::*;
use std::time::Duration;

const WAIT: Duration = Duration::from_secs(25);

fn sim_options() -> PipelineOptions {
    PipelineOptions {
        start_ship: true,
        start_notify: true,
        start_warehouse: true,
        auto_pack: true,
        simulator: Some(simulator_config()),
        ..PipelineOptions::default()
    }
}

async fn stock(p: &Pipeline) {
    for sku in ["sim-sku-1", "sim-sku-2"] {
        p.db.stock(sku, 100).await;
    }
}

#[tokio::test]
async fn a_paid_order_whose_webhook_was_lost_is_injected_and_fulfilled() {
    let p = start_pipeline(sim_options()).await;
    stock(&p).await;
    let sim = p.sim.as_ref().unwrap();
    // Paid in Webflow, webhook never delivered.
    let order = sim.state.new_order(&["sim-sku-1"], false);
    let order_id = order["orderId"].as_str().unwrap().to_owned();

    let summary = p.reconciler().await.run_once().await.unwrap();
    assert_eq!(summary.repaired.get("lost_webhook"), Some(&1), "{summary:?}");
    assert_eq!(summary.checked, 1);
    assert!(summary.api_calls >= 1);
    assert_eq!(
        p.wait_for_state(&order_id, "fulfilled", WAIT).await.as_deref(),
        Some("fulfilled")
    );
    let source: String = p
        .client()
        .await
        .query_one(
            "SELECT detail->>'source' FROM audit_log WHERE kind = 'webhook_received' AND webflow_order_id = $1",
            &[&order_id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(source, "reconcile", "marked as coming from reconciliation");

    let again = p.reconciler().await.run_once().await.unwrap();
    assert_eq!(again.total_repaired(), 0, "{again:?}");
    let writes = sim.state.writes_for(&order_id);
    assert_eq!(writes.len(), 2, "one PATCH and one fulfil: {writes:?}");
    p.teardown().await;
}

#[tokio::test]
async fn a_pass_started_while_another_runs_does_nothing_and_the_next_one_repairs() {
    use warehouse_db::job_lock::{Job, JobLock};
    let p = start_pipeline(sim_options()).await;
    stock(&p).await;
    let sim = p.sim.as_ref().unwrap();
    let order = sim.state.new_order(&["sim-sku-1"], false);
    let order_id = order["orderId"].as_str().unwrap().to_owned();

    // Another pass (a second replica, an operator's `--once`) holds the lock.
    let other = JobLock::try_acquire(&p.db.pool, Job::Reconcile)
        .await
        .unwrap()
        .expect("the lock is free");
    assert!(
        JobLock::try_acquire(&p.db.pool, Job::Reconcile)
            .await
            .unwrap()
            .is_none(),
        "held by one connection, refused to another"
    );
    let skipped = p.reconciler().await.run_once().await.unwrap();
    assert!(skipped.already_running, "{skipped:?}");
    assert_eq!(
        (skipped.checked, skipped.api_calls, skipped.total_repaired()),
        (0, 0, 0)
    );
    assert!(sim.state.writes_for(&order_id).is_empty());

    other.release().await;
    let summary = p.reconciler().await.run_once().await.unwrap();
    assert!(!summary.already_running);
    assert_eq!(summary.repaired.get("lost_webhook"), Some(&1), "{summary:?}");
    assert_eq!(
        p.wait_for_state(&order_id, "fulfilled", WAIT).await.as_deref(),
        Some("fulfilled")
    );
    p.teardown().await;
}

#[tokio::test]
async fn a_lock_dropped_without_release_ends_with_its_connection() {
    use warehouse_db::job_lock::{Job, JobLock};
    let db = test_support::db::TestDatabase::create().await;
    let lock = JobLock::try_acquire(&db.pool, Job::Reconcile).await.unwrap().unwrap();
    // A panicking or cancelled pass drops its lock: the connection leaves the pool and closes.
    drop(lock);
    let again = wait_for(
        "the lock to end with the dropped connection",
        Duration::from_secs(10),
        || async { JobLock::try_acquire(&db.pool, Job::Reconcile).await.unwrap() },
    )
    .await;
    again.release().await;
}

#[tokio::test]
async fn a_shipped_order_not_fulfilled_in_webflow_gets_its_write_back_again() {
    let p = start_pipeline(PipelineOptions {
        start_notify: false,
        ..sim_options()
    })
    .await;
    stock(&p).await;
    let sim = p.sim.as_ref().unwrap();
    let order = sim.state.new_order(&["sim-sku-2"], false);
    let order_id = order["orderId"].as_str().unwrap().to_owned();
    p.reconciler().await.run_once().await.unwrap();
    assert_eq!(
        p.wait_for_state(&order_id, "shipped", WAIT).await.as_deref(),
        Some("shipped")
    );
    // The write-back message is gone (say it was purged from a dead-letter queue).
    p.observer.drain(&p.topology.work_queue(consumer::NOTIFY_WEBFLOW)).await;

    let summary = p.reconciler().await.run_once().await.unwrap();
    assert_eq!(summary.repaired.get("writeback"), Some(&1), "{summary:?}");
    p.start_notify().await;
    assert_eq!(
        p.wait_for_state(&order_id, "fulfilled", WAIT).await.as_deref(),
        Some("fulfilled")
    );
    assert_eq!(sim.state.order(&order_id).unwrap()["status"], "fulfilled");
    let again = p.reconciler().await.run_once().await.unwrap();
    assert_eq!(again.total_repaired(), 0, "{again:?}");
    p.teardown().await;
}

#[tokio::test]
async fn refunds_and_manual_fulfilments_webhooks_missed_are_repaired() {
    let p = start_pipeline(PipelineOptions {
        auto_pack: false,
        ..sim_options()
    })
    .await;
    stock(&p).await;
    let sim = p.sim.as_ref().unwrap();
    let refunded = sim.state.new_order(&["sim-sku-1"], false)["orderId"]
        .as_str()
        .unwrap()
        .to_owned();
    let by_hand = sim.state.new_order(&["sim-sku-2"], false)["orderId"]
        .as_str()
        .unwrap()
        .to_owned();
    p.reconciler().await.run_once().await.unwrap();
    for id in [&refunded, &by_hand] {
        assert_eq!(
            p.wait_for_state(id, "reserved", WAIT).await.as_deref(),
            Some("reserved")
        );
    }
    // Changed in Webflow; the order_changed webhooks are lost.
    {
        let mut orders = sim.state.orders.lock().unwrap();
        orders.get_mut(&refunded).unwrap()["status"] = "refunded".into();
        orders.get_mut(&by_hand).unwrap()["status"] = "fulfilled".into();
    }
    let summary = p.reconciler().await.run_once().await.unwrap();
    assert_eq!(summary.repaired.get("cancelled"), Some(&1), "{summary:?}");
    assert_eq!(summary.repaired.get("needs_review"), Some(&1), "{summary:?}");
    assert_eq!(
        p.wait_for_state(&refunded, "cancelled", WAIT).await.as_deref(),
        Some("cancelled")
    );
    assert_eq!(p.order_state(&by_hand).await.as_deref(), Some("needs_review"));
    assert_eq!(
        p.inventory("sim-sku-1").await.reserved,
        0,
        "the refunded order's stock is released"
    );
    let again = p.reconciler().await.run_once().await.unwrap();
    assert_eq!(again.total_repaired(), 0, "{again:?}");
    assert_eq!(again.checked, 2);
    p.teardown().await;
}

#[tokio::test]
async fn reconciliation_pages_through_every_order() {
    let p = start_pipeline(PipelineOptions {
        start_enrich: false,
        start_reserve: false,
        ..sim_options()
    })
    .await;
    let sim = p.sim.as_ref().unwrap();
    for _ in 0..250 {
        sim.state.insert_order(serde_json::json!({"orderId": format!("x-{}", sim.state.orders.lock().unwrap().len()), "status": "fulfilled"}));
    }
    let summary = p.reconciler().await.run_once().await.unwrap();
    assert_eq!(summary.checked, 250);
    assert_eq!(summary.api_calls, 3, "pages of 100");
    assert_eq!(summary.total_repaired(), 0);
    p.teardown().await;
}
