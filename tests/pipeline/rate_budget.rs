//! One Webflow budget shared by several replicas: never over the limit, fully used during a
//! backlog, and 429s pause everyone.

use e2e::*;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use webflow_gateway::{GatewayError, Priority, WebflowGateway};

/// A limit scaled down so the test takes seconds: 120/min = one call every 0.5 s.
const LIMIT_PER_MINUTE: u32 = 120;

fn replica(p: &Pipeline) -> WebflowGateway {
    let mut site = site();
    site.rate_limit_per_minute = LIMIT_PER_MINUTE;
    let client = webflow::WebflowClient::new(&p.webflow_base, Duration::from_secs(2), true).unwrap();
    WebflowGateway::new(client, p.db.pool.clone(), [site])
}

/// A pipeline (no workers) over a simulator enforcing `limit_per_minute`, holding one order.
async fn simulator_with_one_order(limit_per_minute: u32) -> (Pipeline, String) {
    let mut sim = simulator_config();
    sim.faults.rate_limit_per_minute = limit_per_minute;
    let p = start_pipeline(PipelineOptions {
        start_enrich: false,
        start_reserve: false,
        simulator: Some(sim),
        ..PipelineOptions::default()
    })
    .await;
    let order_id = p.sim.as_ref().unwrap().state.new_order(&["sim-sku-1"], false)["orderId"]
        .as_str()
        .unwrap()
        .to_owned();
    (p, order_id)
}

#[tokio::test]
async fn three_replicas_share_one_budget_and_never_exceed_it() {
    let (p, order_id) = simulator_with_one_order(LIMIT_PER_MINUTE).await;
    let replicas: Vec<WebflowGateway> = (0..3).map(|_| replica(&p)).collect();
    replicas[0].ensure_budgets().await.unwrap();

    let calls = Arc::new(Mutex::new(Vec::new()));
    let throttled = Arc::new(Mutex::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for gateway in replicas {
        for _ in 0..6 {
            let (gateway, calls, throttled, order_id) =
                (gateway.clone(), calls.clone(), throttled.clone(), order_id.clone());
            tasks.push(tokio::spawn(async move {
                let result = gateway
                    .call(&SITE_ID.into(), Priority::WriteBack, |client, token| {
                        let (calls, order_id) = (calls.clone(), order_id.clone());
                        async move {
                            calls.lock().unwrap().push(Instant::now());
                            client.get_order(&token, SITE_ID, &order_id).await
                        }
                    })
                    .await;
                if let Err(GatewayError::Api(error)) = &result
                    && error.status() == Some(429)
                {
                    *throttled.lock().unwrap() += 1;
                }
                result.is_ok()
            }));
        }
    }
    let mut ok = 0;
    for task in tasks {
        ok += usize::from(task.await.unwrap());
    }
    let elapsed = started.elapsed();
    assert_eq!(ok, 18, "every call made it");
    assert_eq!(*throttled.lock().unwrap(), 0, "no 429 from the limit-enforcing fake");
    let mut times = calls.lock().unwrap().clone();
    times.sort();
    // Spacing: at most 2 calls (plus one at the window edge) in any 1-second window = 120/min.
    for (i, t) in times.iter().enumerate() {
        let in_window = times[i..]
            .iter()
            .take_while(|u| u.duration_since(*t) < Duration::from_secs(1))
            .count();
        assert!(in_window <= 3, "{in_window} calls within one second");
    }
    // Fully used: 18 calls at one per 0.5 s need 8.5 s; allow 15 % for scheduling.
    let minimum = Duration::from_millis(500 * 17);
    assert!(elapsed >= minimum, "faster than the limit allows: {elapsed:?}");
    assert!(
        elapsed.as_secs_f64() <= minimum.as_secs_f64() * 1.15 + 0.5,
        "budget under-used: {elapsed:?}"
    );
    let (counted, paused) = {
        let client = p.client().await;
        warehouse_db::rate_budget::counters(&**client, &format!("webflow:{SITE_ID}"))
            .await
            .unwrap()
    };
    assert_eq!((counted, paused), (18, 0));
    p.teardown().await;
}

#[tokio::test]
async fn webflows_own_limit_is_adopted_so_replicas_defer_instead_of_provoking_429s() {
    let (p, order_id) = simulator_with_one_order(2).await;
    // Our configuration believes in 6000/min; Webflow (the simulator) allows 2 and says so.
    let first_replica = gateway(&p.webflow_base, &p.db);
    let call = |g: WebflowGateway, id: String| async move {
        g.call(&SITE_ID.into(), Priority::Enrichment, |client, token| async move {
            client.get_order(&token, SITE_ID, &id).await
        })
        .await
    };
    assert!(call(first_replica.clone(), order_id.clone()).await.is_ok());
    assert!(call(first_replica.clone(), order_id.clone()).await.is_ok());
    // The next slot is 30 s away at 2/min: every replica defers instead of calling.
    for replica in [first_replica, gateway(&p.webflow_base, &p.db)] {
        let deferred = call(replica, order_id.clone()).await;
        assert!(matches!(deferred, Err(GatewayError::Busy { .. })), "{deferred:?}");
    }
    let stats = p.sim.as_ref().unwrap().state.stats.lock().unwrap().clone();
    assert_eq!(
        (stats.api_calls, stats.throttled),
        (2, 0),
        "no call sent past the limit"
    );
    let limit: f64 = p
        .client()
        .await
        .query_one(
            "SELECT limit_per_minute FROM rate_budgets WHERE key = $1",
            &[&format!("webflow:{SITE_ID}")],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(limit, 2.0, "adopted X-RateLimit-Limit from Webflow");
    p.teardown().await;
}
