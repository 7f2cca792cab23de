//! Many stores on one bridge (issue 12): a store with a backlog never holds up the others,
//! none goes over its limit in any window (the simulator's own record), a 429 storm uses up
//! no attempts, deferral has a ceiling, and reconciliation skips only the busy store.

use e2e::*;
use std::time::Duration;
use webflow::TriggerType;

const WAIT: Duration = Duration::from_secs(120);
const BIG_ORDERS: usize = 30;
const SMALL_SITES: [&str; 4] = [
    "65f0c0ffee0000000000a001",
    "65f0c0ffee0000000000a002",
    "65f0c0ffee0000000000a003",
    "65f0c0ffee0000000000a004",
];

fn small_token(i: usize) -> String {
    format!("small-token-{i}")
}

/// The big store (the test site) at 120/min and four small stores at 60/min each, every one
/// with its own token; the simulator enforces each limit in a strict 10-second window.
fn stores() -> PipelineOptions {
    let mut sim = simulator_config();
    sim.faults.rate_limit_per_minute = 120;
    sim.faults.rate_window_ms = TEST_WINDOW_MS;
    sim.extra_sites = SMALL_SITES
        .iter()
        .enumerate()
        .map(|(i, site_id)| webflow_sim::state::SimSite {
            site_id: (*site_id).into(),
            token: small_token(i),
            webhook_secret: SECRET.into(),
            webhook_url: None,
            rate_limit_per_minute: Some(60),
        })
        .collect();
    PipelineOptions {
        start_ship: true,
        start_notify: true,
        start_warehouse: true,
        auto_pack: true,
        simulator: Some(sim),
        stock: vec![("sim-sku-1", 10_000)],
        site_limit: Some(120),
        extra_sites: SMALL_SITES
            .iter()
            .enumerate()
            .map(|(i, site_id)| other_site(site_id, &small_token(i), 60))
            .collect(),
        ..PipelineOptions::default()
    }
}

/// Places a paid order in the simulated store of `site_id` and delivers its webhook.
fn place(p: &Pipeline, site_id: &str) {
    let state = p.sim.as_ref().unwrap().state.clone();
    let order = state.new_order_for(site_id, &["sim-sku-1"], false);
    tokio::spawn(async move { webflow_sim::store::deliver(&state, TriggerType::EcommNewOrder, &order).await });
}

async fn fulfilled(p: &Pipeline, sites: &[&str]) -> i64 {
    let sites: Vec<String> = sites.iter().map(|s| (*s).to_owned()).collect();
    p.scalar(
        "SELECT count(*) FROM orders WHERE site_id = ANY($1) AND state = 'fulfilled'",
        &[&sites],
    )
    .await
}

async fn wait_fulfilled(p: &Pipeline, sites: &[&str], count: i64) -> i64 {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let now = fulfilled(p, sites).await;
        if now >= count || tokio::time::Instant::now() >= deadline {
            return now;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn assert_no_token_over_its_limit(p: &Pipeline) {
    let calls = p.sim.as_ref().unwrap().state.calls_by_token();
    assert_eq!(calls.len(), 1 + SMALL_SITES.len(), "{calls:?}");
    for (token, record) in &calls {
        assert_eq!(record.throttled, 0, "{token} was answered 429: {record:?}");
        assert!(
            record.max_in_any_window <= u64::from(record.limit_per_window),
            "{token} over its limit in one window: {record:?}"
        );
    }
}

async fn small_stores_are_served_while_the_big_one_drains(replicas: usize) {
    let p = start_pipeline(stores()).await;
    for _ in 1..replicas {
        p.start_notify().await;
    }
    for _ in 0..BIG_ORDERS {
        place(&p, SITE_ID);
    }
    assert_eq!(
        wait_fulfilled(&p, &[SITE_ID], 3).await,
        3.max(fulfilled(&p, &[SITE_ID]).await)
    );
    for site_id in SMALL_SITES {
        for _ in 0..3 {
            place(&p, site_id);
        }
    }
    let small = wait_fulfilled(&p, &SMALL_SITES, 12).await;
    let big_then = fulfilled(&p, &[SITE_ID]).await;
    assert_eq!(small, 12, "every small store's order fulfilled");
    assert!(
        big_then < BIG_ORDERS as i64,
        "the small stores did not wait for the big store's backlog ({big_then} of {BIG_ORDERS} already drained)"
    );
    assert_eq!(
        wait_fulfilled(&p, &[SITE_ID], BIG_ORDERS as i64).await,
        BIG_ORDERS as i64
    );
    assert_no_token_over_its_limit(&p);
    assert_eq!(
        p.observer
            .message_count(&p.topology.dead_queue(consumer::NOTIFY_WEBFLOW))
            .await,
        0
    );
    p.teardown().await;
}

#[tokio::test]
async fn small_stores_are_served_while_a_big_backlog_drains_with_one_replica() {
    small_stores_are_served_while_the_big_one_drains(1).await;
}

#[tokio::test]
async fn small_stores_are_served_while_a_big_backlog_drains_with_three_replicas() {
    small_stores_are_served_while_the_big_one_drains(3).await;
}

/// A token fast enough that many of its slots fall inside the sleep horizon (600/min: one every
/// 0.11 s) must not put every worker slot of a replica to sleep on its schedule. With waits held
/// inside worker slots, four slots all slept on the big store's next calls, nothing was ever
/// reserved, and the small stores waited behind its whole backlog. Now a handler waiting for its
/// slot gives its worker slot back (`worker.max_waiting` more deliveries are prefetched for such
/// waits), so the replica goes on reading and serving the other stores.
#[tokio::test]
async fn a_fast_token_never_puts_every_worker_slot_of_a_replica_to_sleep() {
    const BIG: usize = 120;
    let mut options = stores();
    let sim = options.simulator.as_mut().unwrap();
    sim.faults.rate_limit_per_minute = 600;
    options.site_limit = Some(600);
    options.worker_concurrency = Some(4);
    let p = start_pipeline(options).await;
    for _ in 0..BIG {
        place(&p, SITE_ID);
    }
    assert_eq!(
        wait_fulfilled(&p, &[SITE_ID], 3).await,
        3.max(fulfilled(&p, &[SITE_ID]).await)
    );
    for site_id in SMALL_SITES {
        for _ in 0..2 {
            place(&p, site_id);
        }
    }
    let small = wait_fulfilled(&p, &SMALL_SITES, 8).await;
    let big_then = fulfilled(&p, &[SITE_ID]).await;
    assert_eq!(small, 8, "every small store's order fulfilled");
    assert!(
        big_then < BIG as i64,
        "the small stores did not wait for the big store's backlog ({big_then} of {BIG} already drained)"
    );
    assert_eq!(wait_fulfilled(&p, &[SITE_ID], BIG as i64).await, BIG as i64);
    assert_no_token_over_its_limit(&p);
    p.teardown().await;
}

#[tokio::test]
async fn a_429_storm_uses_up_no_attempts_and_leaves_nothing_dead() {
    let mut sim = simulator_config();
    sim.faults.throttle_rate = 0.5;
    let p = start_pipeline(PipelineOptions {
        start_ship: true,
        start_notify: true,
        start_warehouse: true,
        auto_pack: true,
        simulator: Some(sim),
        stock: vec![("sim-sku-1", 100)],
        // One attempt: any 429 counted as a failure would dead-letter at once.
        max_attempts: 1,
        ..PipelineOptions::default()
    })
    .await;
    for _ in 0..4 {
        place(&p, SITE_ID);
    }
    assert_eq!(wait_fulfilled(&p, &[SITE_ID], 4).await, 4);
    let stats = p.sim.as_ref().unwrap().state.stats.lock().unwrap().clone();
    assert!(stats.throttled > 0, "the storm happened: {stats:?}");
    for queue in [consumer::NOTIFY_WEBFLOW, consumer::ENRICH] {
        assert_eq!(p.observer.message_count(&p.topology.dead_queue(queue)).await, 0);
    }
    p.teardown().await;
}

#[tokio::test]
async fn a_message_deferred_longer_than_the_ceiling_is_dead_lettered_with_its_reason() {
    let p = start_pipeline(PipelineOptions {
        start_ship: true,
        start_notify: true,
        start_warehouse: true,
        auto_pack: true,
        max_deferral_secs: Some(1),
        ..PipelineOptions::default()
    })
    .await;
    p.db.stock(SKU_BALL, 10).await;
    p.db.stock(SKU_GLOVES, 10).await;
    // The token's schedule is booked for the next hour.
    p.client()
        .await
        .execute(
            "UPDATE rate_budgets SET next_slot = now() + interval '1 hour' WHERE key = $1",
            &[&budget_key()],
        )
        .await
        .unwrap();
    assert_eq!(
        p.post_webhook(&order_webhook("ecomm_new_order", "ceil-1", "unfulfilled"))
            .await,
        200
    );
    let dead = p
        .observer
        .next_message(&p.topology.dead_queue(consumer::NOTIFY_WEBFLOW), WAIT)
        .await
        .expect("dead-lettered");
    assert_eq!(dead.header("x-dead-reason").as_deref(), Some("deferred_too_long"));
    assert_eq!(dead.header("x-dead-service").as_deref(), Some("notify-webflow"));
    assert!(dead.header("x-deferred-since").is_some());
    assert!(dead.header("x-dead-error").unwrap().contains("busy"));
    assert_eq!(p.order_state("ceil-1").await.as_deref(), Some("shipped"));
    assert!(p.webflow.received_requests().await.unwrap().is_empty(), "no call made");
    p.teardown().await;
}

#[tokio::test]
async fn reconciliation_skips_only_the_store_whose_budget_is_busy() {
    const OTHER: &str = "65f0c0ffee0000000000b001";
    let mut sim = simulator_config();
    sim.extra_sites = vec![webflow_sim::state::SimSite {
        site_id: OTHER.into(),
        token: "other-token".into(),
        webhook_secret: SECRET.into(),
        webhook_url: None,
        rate_limit_per_minute: None,
    }];
    let p = start_pipeline(PipelineOptions {
        start_enrich: false,
        start_reserve: false,
        simulator: Some(sim),
        extra_sites: vec![other_site(OTHER, "other-token", 600)],
        ..PipelineOptions::default()
    })
    .await;
    // A paid order of the other store whose webhook was lost.
    p.sim
        .as_ref()
        .unwrap()
        .state
        .new_order_for(OTHER, &["sim-sku-1"], false);
    // The test site's budget is busy with write-backs for the next hour.
    p.client()
        .await
        .execute(
            "UPDATE rate_budgets SET next_slot = now() + interval '1 hour' WHERE key = $1",
            &[&budget_key()],
        )
        .await
        .unwrap();
    let summary = p.reconciler().await.run_once().await.unwrap();
    assert_eq!(summary.skipped_busy, 1);
    assert_eq!(summary.skipped_sites, vec![SITE_ID.to_owned()]);
    assert_eq!(summary.repaired.get("lost_webhook"), Some(&1), "{summary:?}");
    p.teardown().await;
}
