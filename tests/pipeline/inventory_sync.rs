//! Stock levels back to the storefront (issue 17): every syncing store's Webflow stock follows
//! the warehouse's available count, coalesced (at most one push per SKU per interval, with two
//! replicas of the loop), a SKU sold by two stores is pushed to both, a dashboard edit is
//! corrected and recorded, a store with sync off gets no inventory call, and a push never
//! delays a write-back by more than one slot of the shared budget. Against the rows: a lapsed
//! claim taken by another loop never marks a row clean, the level is re-read right before a
//! push, and a late webhook echo neither cancels a push nor counts as drift. One SKU sold by two
//! stores under their own Webflow ids is learned, and its webhooks judged, per store.

use e2e::*;
use std::collections::BTreeMap;
use std::time::Duration;
use webflow::TriggerType;
use webflow_sim::state::variant_id;

const WAIT: Duration = Duration::from_secs(180);
const SKUS: usize = 10;
const ORDERS: usize = 200;
const INTERVAL_SECS: u64 = 2;
/// A second store selling the first five SKUs, also syncing.
const SECOND: &str = "65f0c0ffee0000000000c001";
/// A store with sync off.
const UNSYNCED: &str = "65f0c0ffee0000000000c002";

fn sku(i: usize) -> String {
    format!("inv-sku-{i}")
}

fn sync_options() -> PipelineOptions {
    let mut sim = simulator_config();
    sim.extra_sites = [SECOND, UNSYNCED]
        .iter()
        .map(|site_id| webflow_sim::state::SimSite {
            site_id: (*site_id).into(),
            token: format!("token-{site_id}"),
            webhook_secret: SECRET.into(),
            webhook_url: None,
            rate_limit_per_minute: None,
        })
        .collect();
    PipelineOptions {
        start_notify: true,
        start_warehouse: true,
        simulator: Some(sim),
        extra_sites: [SECOND, UNSYNCED]
            .iter()
            .map(|site_id| other_site(site_id, &format!("token-{site_id}"), 6_000))
            .collect(),
        inventory_sync_sites: vec![SITE_ID.into(), SECOND.into()],
        inventory_sync: inventory_sync::InventorySyncSettings {
            min_interval_secs: INTERVAL_SECS,
            poll_interval_ms: 100,
        },
        ..PipelineOptions::default()
    }
}

/// Places a paid order of one SKU in `site_id`'s simulated store and delivers its webhook.
fn place(p: &Pipeline, site_id: &str, sku: &str) -> String {
    let state = p.sim.as_ref().unwrap().state.clone();
    let order = state.new_order_for(site_id, &[sku], false);
    let id = order["orderId"].as_str().unwrap().to_owned();
    tokio::spawn(async move { webflow_sim::store::deliver(&state, TriggerType::EcommNewOrder, &order).await });
    id
}

/// For each SKU a store sells: (the simulator's level, the warehouse's available count).
async fn levels(p: &Pipeline, site_id: &str, skus: &[String]) -> BTreeMap<String, (Option<i64>, i64)> {
    let state = &p.sim.as_ref().unwrap().state;
    let mut out = BTreeMap::new();
    for sku in skus {
        let webflow = state
            .stock(site_id, sku)
            .filter(|s| s.inventory_type == "finite")
            .map(|s| s.quantity);
        out.insert(sku.clone(), (webflow, p.inventory(sku).await.available));
    }
    out
}

async fn wait_in_step(p: &Pipeline, site_id: &str, skus: &[String]) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let now = levels(p, site_id, skus).await;
        if now.values().all(|(webflow, available)| *webflow == Some(*available)) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{site_id}: Webflow's stock never caught up with the warehouse: {now:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn wait_until(p: &Pipeline, what: &str, sql: &str, expected: i64) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let now = p.scalar(sql, &[]).await;
        if now == expected {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: {now} (wanted {expected})"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn webflow_stock_follows_the_warehouse_coalesced_for_every_syncing_store() {
    let p = start_pipeline(sync_options()).await;
    // Two notify-webflow replicas: both run the sync loop over the same rows.
    p.start_notify().await;
    let skus: Vec<String> = (0..SKUS).map(sku).collect();
    let shared: Vec<String> = skus[..5].to_vec();
    for sku in &skus {
        p.db.stock(sku, 100).await;
    }
    let started = tokio::time::Instant::now();
    let mut main_orders = Vec::new();
    for i in 0..ORDERS {
        main_orders.push(place(&p, SITE_ID, &skus[i % SKUS]));
    }
    for i in 0..20 {
        place(&p, SECOND, &shared[i % shared.len()]);
        place(&p, UNSYNCED, &skus[i % SKUS]);
    }
    wait_until(
        &p,
        "orders reserved",
        "SELECT count(*) FROM orders WHERE state = 'reserved'",
        (ORDERS + 40) as i64,
    )
    .await;

    // A receipt and a refund (the refund releases the order's reservation).
    let received = p
        .warehouse(reqwest::Method::POST, &format!("/api/v1/inventory/{}/receive", skus[0]))
        .json(&serde_json::json!({"quantity": 25}))
        .send()
        .await
        .unwrap();
    assert_eq!(received.status(), 200);
    let refunded = p
        .warehouse(
            reqwest::Method::POST,
            &format!("/api/v1/orders/{SITE_ID}/{}/refund", main_orders[1]),
        )
        .json(&serde_json::json!({"reason": "requested"}))
        .send()
        .await
        .unwrap();
    assert_eq!(refunded.status(), 202);
    assert_eq!(
        p.wait_for_state(&main_orders[1], "cancelled", WAIT).await.as_deref(),
        Some("cancelled")
    );
    // 100 + 25 received - 20 sold by the main store - 4 by the second - 2 by the unsynced one.
    assert_eq!(p.inventory(&skus[0]).await.available, 99);
    // 100 - 20 - 4 - 2 + 1 released by the refund.
    assert_eq!(p.inventory(&skus[1]).await.available, 75);

    wait_in_step(&p, SITE_ID, &skus).await;
    wait_in_step(&p, SECOND, &shared).await;
    let elapsed = started.elapsed();

    // Coalesced: at most one push per SKU per interval (the simulator's own record).
    let sim = &p.sim.as_ref().unwrap().state;
    let intervals = elapsed.as_secs() / INTERVAL_SECS + 1;
    let main_writes = sim.inventory_writes_for(SITE_ID);
    let second_writes = sim.inventory_writes_for(SECOND);
    assert!(
        main_writes.len() as u64 <= SKUS as u64 * intervals,
        "{} pushes for {SKUS} SKUs over {intervals} intervals",
        main_writes.len()
    );
    assert!(second_writes.len() as u64 <= shared.len() as u64 * intervals);
    for write in main_writes.iter().chain(&second_writes) {
        assert_eq!(write.body["inventoryType"], "finite", "{write:?}");
        assert!(write.body["quantity"].as_i64().is_some(), "absolute: {write:?}");
        assert!(write.body.get("updateQuantity").is_none());
    }
    // Pushes of one SKU to one store are at least an interval apart.
    for writes in [&main_writes, &second_writes] {
        let mut by_sku: BTreeMap<&str, Vec<chrono::DateTime<chrono::Utc>>> = BTreeMap::new();
        for write in writes.iter() {
            by_sku.entry(write.sku_id.as_str()).or_default().push(write.at);
        }
        for (sku_id, times) in by_sku {
            for pair in times.windows(2) {
                assert!(
                    pair[1] - pair[0] >= chrono::Duration::milliseconds((INTERVAL_SECS * 1_000) as i64 - 50),
                    "{sku_id} pushed twice within the interval: {times:?}"
                );
            }
        }
    }
    // The store with sync off got no inventory call.
    assert!(sim.inventory_writes_for(UNSYNCED).is_empty());
    assert_eq!(sim.stats.lock().unwrap().inventory_reads, 0);
    for sku in &skus {
        assert!(sim.stock(UNSYNCED, sku).is_none(), "{sku} pushed to the unsynced store");
    }

    // Visible in the inventory API: last pushed level, when, and whether Webflow agrees.
    let body: serde_json::Value = p
        .warehouse(reqwest::Method::GET, &format!("/api/v1/inventory/{}", skus[0]))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let webflow = body["webflow"].as_array().expect("sync status per store");
    assert_eq!(webflow.len(), 3, "every store that sold it: {body}");
    let main = webflow.iter().find(|s| s["site_id"] == SITE_ID).unwrap();
    assert_eq!(main["last_pushed_level"], 99);
    assert_eq!(main["agrees"], true);
    assert!(main["last_pushed_at"].is_string());
    assert_eq!(main["webflow_sku_id"], variant_id(&skus[0]));

    // And on the console's Inventory page.
    let console = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let base = p.warehouse_url.clone().unwrap();
    let signed_in = console
        .post(format!("{base}/console/sign-in"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={CONSOLE_TOKEN}&next=%2Fconsole%2Finventory"))
        .send()
        .await
        .unwrap();
    assert_eq!(signed_in.status(), 303);
    let cookie = signed_in.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let page = console
        .get(format!("{base}/console/inventory"))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains("pushed <strong>99</strong>") && page.contains("Webflow 99 ✓"),
        "the Inventory page shows the pushed level: {page}"
    );

    // Someone edits the stock in the Webflow dashboard: corrected, and recorded on the SKU.
    let edited = p
        .http
        .post(format!("{}/_sim/inventory", p.sim.as_ref().unwrap().base_url))
        .json(&serde_json::json!({"sku": skus[3], "quantity": 999}))
        .send()
        .await
        .unwrap();
    assert_eq!(edited.status(), 200);
    wait_until(
        &p,
        "the dashboard edit recorded",
        &format!(
            "SELECT count(*) FROM audit_log WHERE kind = 'inventory_changed' AND detail->>'sku' = '{}'
               AND (detail->>'webflow_quantity')::float8 = 999 AND (detail->>'push_again')::bool",
            skus[3]
        ),
        1,
    )
    .await;
    wait_in_step(&p, SITE_ID, &skus).await;
    assert_eq!(
        sim.stock(SITE_ID, &skus[3]).unwrap().quantity,
        p.inventory(&skus[3]).await.available
    );
    let drift_events = p
        .scalar(
            &format!(
                "SELECT drift_events FROM inventory_sync WHERE site_id = '{SITE_ID}' AND sku = '{}'",
                skus[3]
            ),
            &[],
        )
        .await;
    assert!(drift_events >= 1);
    p.teardown().await;
}

#[tokio::test]
async fn a_push_takes_only_a_free_slot_and_delays_a_write_back_by_at_most_one() {
    let p = start_pipeline(PipelineOptions {
        start_enrich: false,
        start_reserve: false,
        ..PipelineOptions::default()
    })
    .await;
    let gateway = gateway(&p.webflow_base, &p.db);
    let key = budget_key();
    let pretend = |client: webflow::WebflowClient, _token: secrecy::SecretString| async move {
        let _ = client;
        Ok::<_, webflow::WebflowError>(webflow::ApiResponse {
            value: (),
            call: webflow::CallRecord {
                method: "PATCH".into(),
                path: "/inventory".into(),
                status: Some(200),
                latency_ms: 0,
                rate_limit_remaining: None,
                rate_limit_limit: None,
            },
        })
    };
    // Idle budget: the push takes the free slot.
    gateway
        .call(&SITE_ID.into(), webflow_gateway::Priority::InventorySync, pretend)
        .await
        .expect("a free slot");
    // A write-back that comes next gets the slot after it: within one slot's spacing.
    let client = p.client().await;
    let limit: f64 = client
        .query_one(
            "SELECT COALESCE(learned_limit, configured_limit) FROM rate_budgets WHERE key = $1",
            &[&key],
        )
        .await
        .unwrap()
        .get(0);
    let spacing = (60.0 + test_budget().window_margin_ms as f64 / 1_000.0) / limit;
    let grant = warehouse_db::rate_budget::take(
        &**client,
        &warehouse_db::rate_budget::Take {
            key: &key,
            site_id: SITE_ID,
            priority: "write_back",
            ticket: None,
            horizon: Duration::from_secs(1),
            reserve_within: None,
            margin: Duration::from_millis(test_budget().window_margin_ms),
            grace: Duration::from_millis(100),
            track: true,
        },
    )
    .await
    .unwrap();
    match grant {
        warehouse_db::rate_budget::Grant::Slot { wait } => assert!(
            wait.as_secs_f64() <= spacing + 1e-3,
            "the write-back waits {wait:?}, more than one slot ({spacing} s)"
        ),
        other => panic!("the write-back got no slot: {other:?}"),
    }
    // A booked schedule (write-backs reserved ahead): the push neither waits nor reserves.
    client
        .execute(
            "UPDATE rate_budgets SET next_slot = now() + interval '1 hour' WHERE key = $1",
            &[&key],
        )
        .await
        .unwrap();
    let before: chrono::DateTime<chrono::Utc> = client
        .query_one("SELECT next_slot FROM rate_budgets WHERE key = $1", &[&key])
        .await
        .unwrap()
        .get(0);
    let busy = gateway
        .call(&SITE_ID.into(), webflow_gateway::Priority::InventorySync, pretend)
        .await
        .expect_err("no free slot");
    assert!(
        matches!(busy, webflow_gateway::GatewayError::Busy { ticket: None, .. }),
        "{busy:?}"
    );
    let after: chrono::DateTime<chrono::Utc> = client
        .query_one("SELECT next_slot FROM rate_budgets WHERE key = $1", &[&key])
        .await
        .unwrap()
        .get(0);
    assert_eq!(before, after, "the schedule is untouched");
    assert_eq!(
        p.scalar(
            "SELECT count(*) FROM budget_waits WHERE priority = 'inventory_sync'",
            &[]
        )
        .await,
        0
    );
    p.teardown().await;
}

// ----- the sync rows against the database (claims, stale webhooks) -----

use test_support::db::TestDatabase;
use warehouse_db::inventory_sync::{self as rows, Claimed, Pushed, Recorded, SyncSite};

const ROW_SITE: &str = "65f0c0ffee0000000000d001";

async fn sync_row(db: &TestDatabase, sku: &str, on_hand: i64) {
    db.stock(sku, on_hand).await;
    db.client()
        .await
        .execute(
            "INSERT INTO inventory_sync (site_id, sku, webflow_sku_id) VALUES ($1, $2, $3)",
            &[&ROW_SITE, &sku, &format!("wf-{sku}")],
        )
        .await
        .unwrap();
}

fn row_site() -> SyncSite {
    SyncSite {
        site_id: ROW_SITE.into(),
        safety_buffer: 0,
    }
}

async fn claim_one(db: &TestDatabase, claim_for: Duration) -> Claimed {
    let client = db.client().await;
    let mut claimed = rows::claim(&*client, &row_site(), Duration::ZERO, 8, claim_for)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1, "{claimed:?}");
    claimed.remove(0)
}

fn pushed(claimed: &Claimed) -> Pushed {
    Pushed {
        level: claimed.desired,
        webflow_level: Some(claimed.desired),
        webflow_type: Some("finite".into()),
        sent_at: chrono::Utc::now(),
    }
}

/// (dirty, change_seq, webflow_from_push, claimed by someone)
async fn row_state(db: &TestDatabase, sku: &str) -> (bool, i64, bool, bool) {
    let row = db
        .client()
        .await
        .query_one(
            "SELECT dirty_since IS NOT NULL, change_seq, webflow_from_push, claim_token IS NOT NULL
             FROM inventory_sync WHERE site_id = $1 AND sku = $2",
            &[&ROW_SITE, &sku],
        )
        .await
        .unwrap();
    (row.get(0), row.get(1), row.get(2), row.get(3))
}

#[tokio::test]
async fn a_lapsed_claim_taken_by_another_loop_never_marks_the_row_clean() {
    let db = TestDatabase::create().await;
    let client = db.client().await;

    // Loop A claims; its claim lapses (mid-batch, say) and loop B claims the row.
    sync_row(&db, "lapse-1", 10).await;
    let a = claim_one(&db, Duration::ZERO).await;
    let b = claim_one(&db, Duration::from_secs(60)).await;
    assert_ne!(a.token, b.token);
    // A, about to push, learns it lost the row: no PATCH.
    assert!(
        rows::renew(&*client, &a, Duration::from_secs(60))
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        rows::renew(&*client, &b, Duration::from_secs(60))
            .await
            .unwrap()
            .map(|r| r.desired),
        Some(10)
    );
    // A gives the row back, or finds it in step: B's claim is untouched.
    rows::release(&*client, &a).await.unwrap();
    assert_eq!(rows::record_in_step(&*client, &a).await.unwrap(), Recorded::ClaimLost);
    assert_eq!(row_state(&db, "lapse-1").await, (true, 0, false, true));
    // B records its push: clean. A's late push (its PATCH was already under way) lands after
    // B's: Webflow may show A's older level, so the row is dirty again, not in step.
    assert_eq!(
        rows::record_push(&*client, &b, &pushed(&b)).await.unwrap(),
        Recorded::Claimed
    );
    assert!(!row_state(&db, "lapse-1").await.0);
    let mut late = pushed(&a);
    late.level = 3;
    late.webflow_level = Some(3);
    assert_eq!(
        rows::record_push(&*client, &a, &late).await.unwrap(),
        Recorded::ClaimLost
    );
    let (dirty, _, from_push, _) = row_state(&db, "lapse-1").await;
    assert!(dirty, "the late recorder must not leave the row clean");
    assert!(!from_push, "Webflow's level is unknown: no in-step shortcut");
    let again = claim_one(&db, Duration::from_secs(60)).await;
    assert!(!again.in_step(), "pushed again: {again:?}");

    // The other order: the late loop records first, then the loop holding the claim. The
    // row stays dirty (the late record is a change the holder did not see).
    sync_row(&db, "lapse-2", 10).await;
    rows::release(&*client, &again).await.unwrap();
    client
        .execute(
            "UPDATE inventory_sync SET dirty_since = NULL WHERE sku = 'lapse-1'",
            &[],
        )
        .await
        .unwrap();
    let a = claim_one(&db, Duration::ZERO).await;
    let b = claim_one(&db, Duration::from_secs(60)).await;
    assert_eq!(
        rows::record_push(&*client, &a, &pushed(&a)).await.unwrap(),
        Recorded::ClaimLost
    );
    assert_eq!(
        rows::record_push(&*client, &b, &pushed(&b)).await.unwrap(),
        Recorded::Claimed
    );
    assert!(row_state(&db, "lapse-2").await.0, "still dirty: pushed again");
    // A failure recorded after the claim was lost marks the row dirty too.
    let c = claim_one(&db, Duration::from_secs(60)).await;
    client
        .execute(
            "UPDATE inventory_sync SET claim_token = gen_random_uuid() WHERE sku = 'lapse-2'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!(
        rows::record_failure(&*client, &c, "timed out", Duration::from_secs(5))
            .await
            .unwrap(),
        Recorded::ClaimLost
    );
    assert!(row_state(&db, "lapse-2").await.0);
}

#[tokio::test]
async fn the_level_is_read_again_right_before_the_push() {
    let db = TestDatabase::create().await;
    sync_row(&db, "reread", 10).await;
    let claimed = claim_one(&db, Duration::from_secs(60)).await;
    assert_eq!(claimed.desired, 10);
    // The count moves while the batch's earlier pushes are under way.
    db.stock("reread", 4).await;
    let client = db.client().await;
    let now = rows::renew(&*client, &claimed, Duration::from_secs(60))
        .await
        .unwrap()
        .expect("still ours");
    assert_eq!(now.desired, 4);
    assert_eq!(now.token, claimed.token);
    // Pushing the level read now leaves the row clean.
    assert_eq!(
        rows::record_push(&*client, &now, &pushed(&now)).await.unwrap(),
        Recorded::Claimed
    );
    assert!(!row_state(&db, "reread").await.0);
}

#[tokio::test]
async fn a_late_webhook_echo_neither_cancels_a_push_nor_counts_as_drift() {
    let db = TestDatabase::create().await;
    let client = db.client().await;
    sync_row(&db, "echo", 5).await;
    let observe = |level: i64, received_at: chrono::DateTime<chrono::Utc>| {
        let client = &client;
        async move {
            rows::observe(
                &**client,
                &ROW_SITE.into(),
                "wf-echo",
                Some(level),
                Some("finite"),
                true,
                Some(received_at),
            )
            .await
            .unwrap()
            .expect("a known SKU")
        }
    };
    let drift_events = || async {
        db.client()
            .await
            .query_one("SELECT drift_events FROM inventory_sync WHERE sku = 'echo'", &[])
            .await
            .unwrap()
            .get::<_, i64>(0)
    };
    // Push 5; Webflow echoes it with a webhook (received after the push was sent).
    let first = claim_one(&db, Duration::from_secs(60)).await;
    rows::record_push(&*client, &first, &pushed(&first)).await.unwrap();
    let echo_received = chrono::Utc::now();
    // The count drops to 3 and 3 is pushed; then it goes back up to 5.
    db.stock("echo", 3).await;
    let second = claim_one(&db, Duration::from_secs(60)).await;
    assert_eq!(second.desired, 3);
    let mut sent = pushed(&second);
    sent.sent_at = chrono::Utc::now();
    rows::record_push(&*client, &second, &sent).await.unwrap();
    db.stock("echo", 5).await;
    // The first push's echo is handled only now (a backlog): it says 5, which is what the
    // warehouse wants again, but Webflow shows 3. It is older than the last push: ignored.
    let seen = observe(5, echo_received).await;
    assert!(seen.stale, "{seen:?}");
    assert!(!seen.push_again);
    assert_eq!(drift_events().await, 0);
    let due = claim_one(&db, Duration::from_secs(60)).await;
    assert_eq!(due.desired, 5);
    assert_eq!(
        due.webflow_level,
        Some(3),
        "the echo did not overwrite our push's answer"
    );
    assert!(!due.in_step(), "the push of 5 is still made");
    rows::release(&*client, &due).await.unwrap();
    // A stale echo that disagrees is no drift either.
    let seen = observe(40, echo_received).await;
    assert!(seen.stale && !seen.push_again);
    assert_eq!(drift_events().await, 0);

    // A webhook received after the last push is news: one that disagrees (a dashboard edit)
    // is drift and marks the row dirty; one that agrees is recorded but, being a webhook's
    // word, never lets the loop skip a push.
    let edit = observe(99, chrono::Utc::now()).await;
    assert!(!edit.stale && edit.push_again, "{edit:?}");
    assert_eq!(drift_events().await, 1);
    let agreeing = observe(5, chrono::Utc::now()).await;
    assert!(!agreeing.stale && agreeing.agrees);
    let due = claim_one(&db, Duration::from_secs(60)).await;
    assert_eq!(due.webflow_level, Some(5));
    assert!(!due.in_step());
}

/// Enrich handles an `ecomm_inventory_changed` received before our last push of the SKU as
/// stale: no drift counted (`wms_enrich_inventory_drift_total`, `drift_events`), nothing
/// marked dirty; one received after it that disagrees is drift.
#[tokio::test]
async fn enrich_counts_no_drift_for_a_webhook_older_than_our_last_push() {
    let p = start_pipeline(PipelineOptions {
        start_reserve: false,
        inventory_sync_sites: vec![SITE_ID.into()],
        ..PipelineOptions::default()
    })
    .await;
    let enrich = p.enrich.as_ref().unwrap();
    p.db.stock("late-echo", 5).await;
    let client = p.client().await;
    client
        .execute(
            "INSERT INTO inventory_sync (site_id, sku, webflow_sku_id, dirty_since, last_pushed_level,
                 last_pushed_at, last_push_sent_at, webflow_level, webflow_type, webflow_from_push)
             VALUES ($1, 'late-echo', 'wf-late-echo', NULL, 5, now(), now(), 5, 'finite', true)",
            &[&SITE_ID],
        )
        .await
        .unwrap();
    let drift_total = || enrich.handler().metrics().inventory_drift_detected.get();
    let before = drift_total();
    let webhook = |id: &str, quantity: i64, received_at: chrono::DateTime<chrono::Utc>| {
        inventory_webhook(id, SITE_ID, "wf-late-echo", quantity, received_at)
    };
    let row = || async {
        let row = client
            .query_one(
                "SELECT drift_events, dirty_since IS NOT NULL, webflow_level FROM inventory_sync
                 WHERE sku = 'late-echo'",
                &[],
            )
            .await
            .unwrap();
        (
            row.get::<_, i64>(0),
            row.get::<_, bool>(1),
            row.get::<_, Option<i64>>(2),
        )
    };

    // An echo of an earlier push (level 9), received an hour before our last push.
    let old = chrono::Utc::now() - chrono::Duration::hours(1);
    let disposition = enrich.process(webhook("stale-echo", 9, old)).await;
    assert!(matches!(disposition, worker::Disposition::Processed), "{disposition:?}");
    assert_eq!(drift_total(), before, "a stale echo is no drift");
    assert_eq!(row().await, (0, false, Some(5)), "nothing recorded, nothing dirty");
    assert_eq!(
        p.scalar(
            "SELECT count(*) FROM audit_log WHERE kind = 'inventory_changed' AND (detail->>'stale')::bool",
            &[]
        )
        .await,
        1
    );

    // A dashboard edit after our push: drift, pushed again.
    let disposition = enrich
        .process(webhook(
            "dashboard-edit",
            9,
            chrono::Utc::now() + chrono::Duration::seconds(1),
        ))
        .await;
    assert!(matches!(disposition, worker::Disposition::Processed), "{disposition:?}");
    assert_eq!(drift_total(), before + 1);
    assert_eq!(row().await, (1, true, Some(9)));
    p.teardown().await;
}

/// An `ecomm_inventory_changed` webhook of `site_id` as the ingress publishes it: Webflow shows
/// `quantity` of the SKU whose Webflow id is `sku_id`.
fn inventory_webhook(
    message_id: &str,
    site_id: &str,
    sku_id: &str,
    quantity: i64,
    received_at: chrono::DateTime<chrono::Utc>,
) -> worker::IncomingMessage {
    let mut headers = lapin::types::FieldTable::default();
    platform::amqp::headers::insert_str(&mut headers, platform::amqp::headers::SITE_ID, site_id);
    platform::amqp::headers::insert_str(
        &mut headers,
        platform::amqp::headers::TRIGGER_TYPE,
        "ecomm_inventory_changed",
    );
    platform::amqp::headers::insert_str(
        &mut headers,
        platform::amqp::headers::RECEIVED_AT,
        platform::amqp::contract::received_at(received_at),
    );
    worker::IncomingMessage {
        message_id: message_id.into(),
        routing_key: "webflow.ecomm_inventory_changed".into(),
        body: serde_json::to_vec(&serde_json::json!({
            "triggerType": "ecomm_inventory_changed",
            "payload": {"id": sku_id, "quantity": quantity, "inventoryType": "finite"}
        }))
        .unwrap(),
        headers,
        correlation_id: None,
        attempt: 1,
    }
}

// ----- one SKU sold by two stores, each under its own Webflow id -----

const SHARED: &str = "shared-sku";
/// The second store selling `SHARED` in the row tests (the first is `ROW_SITE`).
const OTHER_ROW_SITE: &str = "65f0c0ffee0000000000d002";

/// Stores a paid order of one unit of `sku`, which `site_id` sells under the Webflow id
/// `webflow_id` (enrich's path: the order's lines teach the store's ids).
async fn store_order<C: warehouse_db::Db>(
    client: &C,
    site_id: &str,
    order_id: &str,
    sku: &str,
    webflow_id: &str,
) -> Result<(), warehouse_db::DbError> {
    let (site_id, order_id) = (domain::SiteId::new(site_id), domain::OrderId::new(order_id));
    let order = warehouse_db::orders::NewOrder {
        site_id: &site_id,
        webflow_order_id: &order_id,
        state: domain::OrderState::Ready,
        state_reason: None,
        webflow_status: Some(&domain::WebflowOrderStatus::Unfulfilled),
        shipping_required: true,
        customer_name: None,
        customer_email: None,
        shipping_address: None,
        total_minor: None,
        currency: None,
        snapshot: serde_json::json!({}),
        correlation_id: None,
    };
    let line = warehouse_db::orders::NewLine {
        sku: sku.into(),
        variant_id: Some(webflow_id.into()),
        product_name: None,
        quantity: 1,
        unit_weight: None,
        unit_width: None,
        unit_height: None,
        unit_length: None,
    };
    warehouse_db::orders::insert(client, &order, &[line], "test").await?;
    Ok(())
}

/// Two stores sell one SKU, each under its own Webflow id (Webflow's ids are per store), and
/// their orders come in turn. Each id is learned for its store alone: nothing store-wide flips
/// from one to the other, so storing an order locks no inventory row (it does not wait behind
/// a reservation of the SKU in flight), and a store's webhook is judged by its own id only.
#[tokio::test]
async fn two_stores_selling_one_sku_under_their_own_ids_are_learned_per_store() {
    let db = TestDatabase::create().await;
    db.stock(SHARED, 7).await;
    // A reservation of the SKU, in flight: it holds the SKU's inventory row throughout.
    let mut reserving = db.client().await;
    let reservation = reserving.transaction().await.unwrap();
    reservation
        .execute("SELECT 1 FROM inventory WHERE sku = $1 FOR UPDATE", &[&SHARED])
        .await
        .unwrap();
    let client = db.client().await;
    // Storing an order must not wait for that row: fail instead of hanging if it does.
    client.execute("SET lock_timeout = '5s'", &[]).await.unwrap();
    for (order_id, site_id, webflow_id) in [
        ("first-1", ROW_SITE, "wf-first"),
        ("second-1", OTHER_ROW_SITE, "wf-second"),
        ("first-2", ROW_SITE, "wf-first"),
    ] {
        store_order(&*client, site_id, order_id, SHARED, webflow_id)
            .await
            .unwrap_or_else(|e| panic!("storing {order_id} of {site_id}: {e}"));
    }
    reservation.commit().await.unwrap();
    let learned: Vec<(String, String)> = client
        .query(
            "SELECT site_id, webflow_sku_id FROM inventory_sync WHERE sku = $1 ORDER BY site_id",
            &[&SHARED],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        learned,
        [
            (ROW_SITE.to_owned(), "wf-first".to_owned()),
            (OTHER_ROW_SITE.to_owned(), "wf-second".to_owned())
        ]
    );
    let observe = |site_id: &'static str, sku_id: &'static str, level: i64| {
        let client = &client;
        async move {
            rows::observe(
                &**client,
                &site_id.into(),
                sku_id,
                Some(level),
                Some("finite"),
                false,
                None,
            )
            .await
            .unwrap()
        }
    };
    // Each store's webhook is judged by that store's id of the SKU...
    let first = observe(ROW_SITE, "wf-first", 4).await.expect("the first store's SKU");
    assert_eq!((first.sku.as_str(), first.desired, first.agrees), (SHARED, 7, false));
    let second = observe(OTHER_ROW_SITE, "wf-second", 7)
        .await
        .expect("the second store's SKU");
    assert!(second.agrees, "{second:?}");
    // ...and never by the other store's.
    assert_eq!(observe(ROW_SITE, "wf-second", 4).await, None);
}

/// Enrich judges an `ecomm_inventory_changed` webhook by the sending store's own id of the SKU:
/// an id the store does not sell the SKU under (here the other store's, learned last) is
/// audited without a SKU and is no drift; the store's own id is compared with the warehouse.
#[tokio::test]
async fn enrich_judges_an_inventory_webhook_by_its_own_stores_id() {
    let p = start_pipeline(PipelineOptions {
        start_reserve: false,
        extra_sites: vec![other_site(SECOND, &format!("token-{SECOND}"), 6_000)],
        ..PipelineOptions::default()
    })
    .await;
    let enrich = p.enrich.as_ref().unwrap();
    p.db.stock(SHARED, 7).await;
    let client = p.client().await;
    store_order(&*client, SITE_ID, "shared-1", SHARED, "wf-main")
        .await
        .unwrap();
    store_order(&*client, SECOND, "shared-2", SHARED, "wf-second")
        .await
        .unwrap();
    let drift_total = || enrich.handler().metrics().inventory_drift_detected.get();
    let before = drift_total();

    // The main store reports 4 units of the second store's id: not a SKU of the main store.
    let disposition = enrich
        .process(inventory_webhook(
            "foreign-id",
            SITE_ID,
            "wf-second",
            4,
            chrono::Utc::now(),
        ))
        .await;
    assert!(matches!(disposition, worker::Disposition::Processed), "{disposition:?}");
    assert_eq!(drift_total(), before, "another store's id is no drift here");
    // The main store reports 4 units of its own id: 3 fewer than the warehouse's 7.
    let disposition = enrich
        .process(inventory_webhook("own-id", SITE_ID, "wf-main", 4, chrono::Utc::now()))
        .await;
    assert!(matches!(disposition, worker::Disposition::Processed), "{disposition:?}");
    assert_eq!(drift_total(), before + 1);
    let audited: Vec<(Option<String>, Option<i64>)> = client
        .query(
            "SELECT detail->>'sku', (detail->>'drift')::bigint FROM audit_log
             WHERE kind = 'inventory_changed' ORDER BY id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(audited, [(None, None), (Some(SHARED.to_owned()), Some(-3))]);
    p.teardown().await;
}
