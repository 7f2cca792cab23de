//! One Webflow budget per token shared by every replica: never over the limit (by the
//! simulator's own record of calls per window), fully used during a backlog through
//! reservations, a limit learned from Webflow kept across restarts, two sites sharing a token
//! sharing one budget, and a replica with a fast clock calling in turn.

use e2e::*;
use secrecy::SecretString;
use std::time::Duration;
use webflow_gateway::{GatewayError, Priority, WebflowGateway};

/// 120/min in a 10-second window of the simulator: 20 calls per window.
const LIMIT_PER_MINUTE: u32 = 120;
const WINDOW_MS: u64 = TEST_WINDOW_MS;
const OTHER_SITE: &str = "65f0c0ffee0000000000cafe";

fn replica(p: &Pipeline, sites: Vec<webflow::SiteSettings>) -> WebflowGateway {
    let client = webflow::WebflowClient::new(&p.webflow_base, Duration::from_secs(2), true).unwrap();
    WebflowGateway::new(client, p.db.pool.clone(), sites).with_budget_settings(test_budget())
}

fn limited_site() -> webflow::SiteSettings {
    let mut site = site();
    site.rate_limit_per_minute = LIMIT_PER_MINUTE;
    site
}

/// A pipeline (no workers) over a simulator enforcing `limit_per_minute` in a short window.
async fn simulator(limit_per_minute: u32, extra: Vec<webflow_sim::state::SimSite>) -> Pipeline {
    simulator_with_window(limit_per_minute, WINDOW_MS, extra).await
}

async fn simulator_with_window(
    limit_per_minute: u32,
    window_ms: u64,
    extra: Vec<webflow_sim::state::SimSite>,
) -> Pipeline {
    let mut sim = simulator_config();
    sim.faults.rate_limit_per_minute = limit_per_minute;
    sim.faults.rate_window_ms = window_ms;
    sim.extra_sites = extra;
    start_pipeline(PipelineOptions {
        start_enrich: false,
        start_reserve: false,
        simulator: Some(sim),
        ..PipelineOptions::default()
    })
    .await
}

fn new_order(p: &Pipeline, site_id: &str) -> String {
    p.sim
        .as_ref()
        .unwrap()
        .state
        .new_order_for(site_id, &["sim-sku-1"], false)["orderId"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// What the consumer runtime does with a deferral, in a loop: wait (at most a second, as the
/// broker's delay tiers round down) and try again with the resume token.
async fn get_order_like_the_runtime(
    gateway: &WebflowGateway,
    site_id: &str,
    order_id: &str,
    priority: Priority,
) -> Result<(), GatewayError> {
    let mut resume = None;
    loop {
        let (site, order) = (domain::SiteId::new(site_id), domain::OrderId::new(order_id));
        let result = gateway
            .call_resuming(&site_id.into(), priority, &mut resume, |client, token| async move {
                client.get_order(&token, &site, &order).await
            })
            .await;
        match result {
            Ok(_) => return Ok(()),
            Err(GatewayError::Busy { wait, ticket, .. }) => {
                if ticket.is_some() {
                    resume = ticket;
                }
                tokio::time::sleep(wait.clamp(Duration::from_millis(100), Duration::from_secs(1))).await;
            }
            Err(other) => return Err(other),
        }
    }
}

fn assert_within_limits(p: &Pipeline) {
    let calls = p.sim.as_ref().unwrap().state.calls_by_token();
    assert!(!calls.is_empty());
    for (token, record) in &calls {
        assert_eq!(record.throttled, 0, "{token} was answered 429: {record:?}");
        assert!(
            record.max_in_any_window <= u64::from(record.limit_per_window),
            "{token} over its limit in one window: {record:?}"
        );
    }
}

#[tokio::test]
async fn three_replicas_share_one_budget_and_never_exceed_it() {
    let p = simulator(LIMIT_PER_MINUTE, Vec::new()).await;
    let order_id = new_order(&p, SITE_ID);
    let replicas: Vec<WebflowGateway> = (0..3).map(|_| replica(&p, vec![limited_site()])).collect();
    replicas[0].ensure_budgets().await.unwrap();
    let mut tasks = Vec::new();
    for gateway in replicas {
        for _ in 0..8 {
            let (gateway, order_id) = (gateway.clone(), order_id.clone());
            tasks.push(tokio::spawn(async move {
                get_order_like_the_runtime(&gateway, SITE_ID, &order_id, Priority::WriteBack).await
            }));
        }
    }
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    // 24 calls at 20 per window: the limit binds.
    let record = p.sim.as_ref().unwrap().state.calls_by_token()[TOKEN].clone();
    assert_eq!(record.admitted, 24);
    assert!(
        record.max_in_any_window >= 16,
        "a backlog uses the budget (reservations keep it busy): {record:?}"
    );
    assert_within_limits(&p);
    let (counted, throttled) = {
        let client = p.client().await;
        warehouse_db::rate_budget::counters(&**client, &budget_key())
            .await
            .unwrap()
    };
    assert_eq!((counted, throttled), (24, 0));
    p.teardown().await;
}

#[tokio::test]
async fn webflows_own_limit_is_adopted_kept_across_restarts_and_replicas_defer_instead_of_provoking_429s() {
    // Webflow's own 60-second window: 2 calls per minute.
    let p = simulator_with_window(2, 60_000, Vec::new()).await;
    let order_id = new_order(&p, SITE_ID);
    // Our configuration believes in 6000/min; Webflow (the simulator) allows 2 and says so.
    let first_replica = gateway(&p.webflow_base, &p.db);
    let call = |g: WebflowGateway, id: String| async move {
        g.call(&SITE_ID.into(), Priority::Enrichment, |client, token| async move {
            client.get_order(&token, &SITE_ID.into(), &id.as_str().into()).await
        })
        .await
    };
    assert!(call(first_replica.clone(), order_id.clone()).await.is_ok());
    assert!(call(first_replica.clone(), order_id.clone()).await.is_ok());
    // A restart: every service ensures its budgets again with the configured 6000/min.
    let restarted = gateway(&p.webflow_base, &p.db);
    restarted.ensure_budgets().await.unwrap();
    // The next slot is 30 s away at 2/min: every replica defers instead of calling.
    for replica in [first_replica, restarted.clone()] {
        let deferred = call(replica, order_id.clone()).await;
        assert!(matches!(deferred, Err(GatewayError::Busy { .. })), "{deferred:?}");
    }
    let stats = p.sim.as_ref().unwrap().state.stats.lock().unwrap().clone();
    assert_eq!(
        (stats.api_calls, stats.throttled),
        (2, 0),
        "no call sent past the limit"
    );
    let status = restarted.status().await.unwrap();
    assert_eq!(status[0].budget.configured_limit, 6_000.0);
    assert_eq!(
        status[0].budget.learned_limit,
        Some(2.0),
        "X-RateLimit-Limit kept across the restart"
    );
    assert_eq!(status[0].budget.limit, 2.0);
    p.teardown().await;
}

/// Webflow states its limit (`X-RateLimit-Limit`) with every answer: a process stores a value
/// once, not with a statement per call, and a changed value at once.
#[tokio::test]
async fn the_limit_webflow_states_is_stored_once_and_a_changed_one_at_once() {
    let p = simulator_with_window(600, 60_000, Vec::new()).await;
    let order_id = new_order(&p, SITE_ID);
    let replica = gateway(&p.webflow_base, &p.db);
    replica.ensure_budgets().await.unwrap();
    let call = |g: WebflowGateway| {
        let id = order_id.clone();
        async move {
            g.call(&SITE_ID.into(), Priority::Enrichment, |client, token| async move {
                client.get_order(&token, &SITE_ID.into(), &id.as_str().into()).await
            })
            .await
            .map(|_| ())
        }
    };
    let learned = || async {
        p.client()
            .await
            .query_one(
                "SELECT learned_limit FROM rate_budgets WHERE key = $1",
                &[&budget_key()],
            )
            .await
            .unwrap()
            .get::<_, Option<f64>>(0)
    };
    let forget = || async {
        p.client()
            .await
            .execute(
                "UPDATE rate_budgets SET learned_limit = NULL WHERE key = $1",
                &[&budget_key()],
            )
            .await
            .unwrap();
    };
    call(replica.clone()).await.unwrap();
    assert_eq!(learned().await, Some(600.0));

    // Cleared behind the process's back: the same value heard again is not written again ...
    forget().await;
    call(replica.clone()).await.unwrap();
    assert_eq!(learned().await, None, "the same limit is not stored with every call");
    // ... a changed one is, at once ...
    p.sim
        .as_ref()
        .unwrap()
        .state
        .faults
        .lock()
        .unwrap()
        .rate_limit_per_minute = 1_200;
    call(replica.clone()).await.unwrap();
    assert_eq!(learned().await, Some(1_200.0));
    // ... and another process stores what it hears once too.
    forget().await;
    call(gateway(&p.webflow_base, &p.db)).await.unwrap();
    assert_eq!(learned().await, Some(1_200.0));
    p.teardown().await;
}

#[tokio::test]
async fn two_sites_sharing_a_token_share_one_budget() {
    let p = simulator(
        LIMIT_PER_MINUTE,
        vec![webflow_sim::state::SimSite {
            site_id: OTHER_SITE.into(),
            token: TOKEN.into(),
            webhook_secret: SECRET.into(),
            webhook_url: None,
            rate_limit_per_minute: None,
        }],
    )
    .await;
    let (first, second) = (new_order(&p, SITE_ID), new_order(&p, OTHER_SITE));
    let mut other = other_site(OTHER_SITE, TOKEN, LIMIT_PER_MINUTE);
    other.api_token = Some(SecretString::from(TOKEN));
    let gateway = replica(&p, vec![limited_site(), other]);
    gateway.ensure_budgets().await.unwrap();
    assert_eq!(gateway.budget_key(SITE_ID), gateway.budget_key(OTHER_SITE));
    let mut tasks = Vec::new();
    for i in 0..24 {
        let (site, order) = if i % 2 == 0 {
            (SITE_ID, first.clone())
        } else {
            (OTHER_SITE, second.clone())
        };
        let gateway = gateway.clone();
        tasks.push(tokio::spawn(async move {
            get_order_like_the_runtime(&gateway, site, &order, Priority::WriteBack).await
        }));
    }
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    assert_eq!(p.sim.as_ref().unwrap().state.calls_by_token()[TOKEN].admitted, 24);
    assert_within_limits(&p);
    let status = gateway.status().await.unwrap();
    assert_eq!(status.len(), 2);
    assert_eq!(status[0].budget.key, status[1].budget.key);
    assert_eq!(status[0].shared_with, vec![status[1].site_id.clone()]);
    let rows = p
        .scalar(
            "SELECT count(*) FROM rate_budgets WHERE key LIKE 'webflow-token:%' AND key NOT LIKE '%:reconcile'",
            &[],
        )
        .await;
    assert_eq!(rows, 1, "one budget row for the token");
    p.teardown().await;
}

#[tokio::test]
async fn a_replica_whose_clock_runs_fast_still_calls_in_turn() {
    let p = simulator(LIMIT_PER_MINUTE, Vec::new()).await;
    let order_id = new_order(&p, SITE_ID);
    let honest = replica(&p, vec![limited_site()]);
    let fast = replica(&p, vec![limited_site()]).with_local_clock_offset(chrono::Duration::seconds(30));
    honest.ensure_budgets().await.unwrap();
    let mut tasks = Vec::new();
    for i in 0..24 {
        let gateway = if i % 2 == 0 { fast.clone() } else { honest.clone() };
        let order_id = order_id.clone();
        tasks.push(tokio::spawn(async move {
            get_order_like_the_runtime(&gateway, SITE_ID, &order_id, Priority::WriteBack).await
        }));
    }
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    assert_eq!(p.sim.as_ref().unwrap().state.calls_by_token()[TOKEN].admitted, 24);
    assert_within_limits(&p);
    p.teardown().await;
}

/// One call of `budget_take` as the gateway makes it for a write-back.
fn take(key: &str, ticket: Option<i64>, horizon: Duration) -> warehouse_db::rate_budget::Take<'_> {
    warehouse_db::rate_budget::Take {
        key,
        site_id: SITE_ID,
        priority: "write_back",
        ticket,
        horizon,
        reserve_within: Some(Duration::ZERO),
        margin: Duration::ZERO,
        grace: Duration::from_secs(1),
        track: true,
    }
}

#[tokio::test]
async fn a_slot_within_the_horizon_moves_the_schedule_by_one_spacing_counts_the_call_and_leaves_abandoned_waits_to_the_slow_path()
 {
    use warehouse_db::rate_budget::{self, Grant};
    let db = test_support::db::TestDatabase::create().await;
    let client = db.client().await;
    let key = "webflow-token:fast-path";
    // 60 calls a minute: one slot a second.
    rate_budget::ensure(&*client, key, 60.0, &[]).await.unwrap();
    let abandoned: i64 = client
        .query_one(
            "INSERT INTO budget_waits (key, site_id, priority, slot, waiting_since)
             VALUES ($1, $2, 'write_back', now() - interval '11 minutes', now() - interval '12 minutes') RETURNING id",
            &[&key, &SITE_ID],
        )
        .await
        .unwrap()
        .get(0);
    // The first call: now; the schedule moves to one spacing after it.
    let first = rate_budget::take(&*client, &take(key, None, Duration::from_secs(5)))
        .await
        .unwrap();
    assert!(
        matches!(first, Grant::Slot { wait } if wait < Duration::from_millis(500)),
        "{first:?}"
    );
    let (after_first, db_now) = next_slot(&client, key).await;
    let ahead = (after_first - db_now).to_std().unwrap_or_default();
    assert!(
        ahead > Duration::from_millis(500) && ahead <= Duration::from_secs(1),
        "{ahead:?}"
    );

    // The second: exactly the slot the first left, and the schedule one more spacing on.
    let second = rate_budget::take(&*client, &take(key, None, Duration::from_secs(5)))
        .await
        .unwrap();
    let Grant::Slot { wait } = second else {
        panic!("{second:?}")
    };
    assert!(
        wait > Duration::from_millis(500) && wait <= Duration::from_secs(1),
        "{wait:?}"
    );
    let (after_second, _) = next_slot(&client, key).await;
    assert_eq!(after_second - after_first, chrono::Duration::seconds(1));
    assert_eq!(rate_budget::counters(&*client, key).await.unwrap(), (2, 0));
    let (budgets, waits) = rate_budget::status(&*client, &[key.to_owned()]).await.unwrap();
    assert_eq!(budgets[0].calls_this_minute, 2);
    assert!(waits.is_empty(), "an abandoned wait is not shown: {waits:?}");
    let still_there: i64 = client
        .query_one("SELECT count(*) FROM budget_waits WHERE id = $1", &[&abandoned])
        .await
        .unwrap()
        .get(0);
    assert_eq!(still_there, 1, "the fast path sweeps nothing");

    // A call that must wait (beyond a zero horizon, never reserved) takes the slow path: it
    // records its wait and sweeps the abandoned one; the schedule does not move.
    let busy = rate_budget::take(&*client, &take(key, None, Duration::ZERO))
        .await
        .unwrap();
    assert!(matches!(busy, Grant::Busy { ticket: Some(_), .. }), "{busy:?}");
    let (after_busy, _) = next_slot(&client, key).await;
    assert_eq!(after_busy, after_second);
    let ids: Vec<i64> = client
        .query("SELECT id FROM budget_waits WHERE key = $1", &[&key])
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert!(!ids.contains(&abandoned), "{ids:?}");
    assert_eq!(ids.len(), 1);
    assert_eq!(rate_budget::counters(&*client, key).await.unwrap(), (2, 0));

    // A held ticket is never the fast path: the wait recorded above is dropped and queued
    // afresh (a plain wait is not a reservation).
    let again = rate_budget::take(&*client, &take(key, Some(ids[0]), Duration::from_secs(5)))
        .await
        .unwrap();
    assert!(matches!(again, Grant::Slot { .. }), "{again:?}");
    assert_eq!(rate_budget::counters(&*client, key).await.unwrap(), (3, 0));
}

/// The budget's next free slot and the database's clock.
async fn next_slot(
    client: &tokio_postgres::Client,
    key: &str,
) -> (chrono::DateTime<chrono::Utc>, chrono::DateTime<chrono::Utc>) {
    let row = client
        .query_one(
            "SELECT next_slot, clock_timestamp() FROM rate_budgets WHERE key = $1",
            &[&key],
        )
        .await
        .unwrap();
    (row.get(0), row.get(1))
}
