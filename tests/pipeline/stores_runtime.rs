//! Stores as data (issue 24): a store onboarded through `POST /api/v1/stores` while the whole
//! stack runs is served by every service without a restart (its webhooks registered at Webflow,
//! its signed order accepted with the sealed secret, enriched, reserved from its merchant's
//! stock, shipped and fulfilled in Webflow with its sealed token and a budget of its own), and
//! once removed its webhooks are gone and its ingress path answers 404.

use e2e::*;
use secrets_at_rest::Keyring;
use serde_json::json;
use std::time::Duration;
use test_support::stores::{insert_api_store, remove_store};
use warehouse_db::merchants::DEFAULT_MERCHANT_ID;
use webflow::TriggerType;

const NEW_SITE: &str = "65f0c0ffee00000000000a24";
const NEW_TOKEN: &str = "onboarded-token";
const NEW_SECRET: &str = "whsec-onboarded";
/// A SKU both the default merchant and the onboarded store's merchant hold.
const SKU: &str = "sim-sku-1";
const WAIT: Duration = Duration::from_secs(60);

#[tokio::test]
async fn a_store_onboarded_through_the_api_while_the_stack_runs_is_fulfilled_and_a_removed_one_answers_404() {
    let mut sim = simulator_config();
    // The simulator's store for the new site (Webflow's side of it): its token. The services
    // know nothing of it yet.
    sim.extra_sites = vec![webflow_sim::state::SimSite {
        site_id: NEW_SITE.into(),
        token: NEW_TOKEN.into(),
        webhook_secret: "never-used: the registered webhooks sign with their own".into(),
        webhook_url: None,
        rate_limit_per_minute: None,
    }];
    let p = start_pipeline(PipelineOptions {
        start_ship: true,
        start_notify: true,
        start_warehouse: true,
        auto_pack: true,
        simulator: Some(sim),
        stock: vec![(SKU, 100)],
        ..PipelineOptions::default()
    })
    .await;
    let state = p.sim.as_ref().unwrap().state.clone();

    // A new merchant with its own stock of a SKU the default merchant also holds.
    let created = p
        .warehouse(reqwest::Method::POST, "/api/v1/merchants")
        .json(&json!({"name": "northwind"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), 201, "{}", created.text().await.unwrap());
    let stocked = p
        .warehouse(
            reqwest::Method::PUT,
            &format!("/api/v1/merchants/northwind/inventory/{SKU}"),
        )
        .json(&json!({"on_hand": 5}))
        .send()
        .await
        .unwrap();
    assert_eq!(stocked.status(), 200, "{}", stocked.text().await.unwrap());

    // Onboarded through the API: the token checked at Webflow, the three webhooks registered
    // at this ingress, their secrets sealed.
    let onboarded = p
        .warehouse(reqwest::Method::POST, "/api/v1/stores")
        .json(&json!({
            "name": "onboarded",
            "merchant": "northwind",
            "site_id": NEW_SITE,
            "api_token": NEW_TOKEN,
            "rate_limit_per_minute": 600,
            "send_fulfillment_email": false,
            "register_webhooks": true,
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(onboarded.status(), 201, "{}", onboarded.text().await.unwrap());
    let hooks = state.webhooks_of(NEW_SITE);
    assert_eq!(hooks.len(), 3, "{hooks:?}");
    for hook in &hooks {
        assert_eq!(hook.url, format!("{}/webhooks/webflow/{NEW_SITE}", p.ingress_url));
    }

    // Webflow delivers the store's signed order to its registered webhook: the ingress takes it
    // within its refresh period (the simulator retries until it is accepted or gives up).
    let order = state.new_order_for(NEW_SITE, &[SKU], false);
    let order_id = order["orderId"].as_str().unwrap().to_owned();
    let deadline = tokio::time::Instant::now() + WAIT;
    while !webflow_sim::store::deliver(&state, TriggerType::EcommNewOrder, &order).await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the new store's webhook was never accepted"
        );
    }

    // Its order goes all the way: fulfilled in Webflow through the store's own token.
    let deadline = tokio::time::Instant::now() + WAIT;
    let fulfilled = loop {
        let state: Option<String> = p
            .client()
            .await
            .query_opt(
                "SELECT state FROM orders WHERE site_id = $1 AND webflow_order_id = $2",
                &[&NEW_SITE, &order_id],
            )
            .await
            .unwrap()
            .map(|row| row.get(0));
        if state.as_deref() == Some("fulfilled") || tokio::time::Instant::now() >= deadline {
            break state;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(fulfilled.as_deref(), Some("fulfilled"));
    let fulfils: Vec<String> = state
        .writes_for(&order_id)
        .into_iter()
        .filter(|w| w.path.ends_with("/fulfill"))
        .map(|w| w.path)
        .collect();
    assert_eq!(fulfils.len(), 1, "fulfilled in Webflow exactly once: {fulfils:?}");
    assert!(fulfils[0].contains(NEW_SITE), "{fulfils:?}");
    let budget = webflow_gateway::token_key(&secrecy::SecretString::from(NEW_TOKEN));
    let budgets: i64 = p
        .scalar("SELECT count(*) FROM rate_budgets WHERE key = $1", &[&budget])
        .await;
    assert_eq!(budgets, 1, "the new store's token got a budget of its own");
    assert_eq!(
        budget_sites(&p, &budget).await,
        [NEW_SITE],
        "the budget names the store it paces (the console shows it by name)"
    );
    // It shipped northwind's unit, not the default merchant's.
    let northwind = p.merchant_inventory(merchant_id(&p, "northwind").await, SKU).await;
    assert_eq!((northwind.on_hand, northwind.reserved), (4, 0));
    let default = p.merchant_inventory(DEFAULT_MERCHANT_ID, SKU).await;
    assert_eq!((default.on_hand, default.reserved), (100, 0));

    // Removed through the API: its webhooks are deleted at Webflow, its path answers 404
    // within the refresh period, its order stays.
    let secret = hooks[0]
        .secret_key
        .clone()
        .expect("registered with the site token: its own secret");
    let removed = p
        .warehouse(reqwest::Method::DELETE, "/api/v1/stores/onboarded")
        .send()
        .await
        .unwrap();
    assert!(removed.status().is_success(), "{}", removed.status());
    assert!(state.webhooks_of(NEW_SITE).is_empty(), "its webhooks are deleted");
    let url = format!("{}/webhooks/webflow/{NEW_SITE}", p.ingress_url);
    let body = serde_json::to_vec(&json!({"triggerType": "ecomm_new_order", "payload": order})).unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    let status = loop {
        let ts = chrono::Utc::now().timestamp_millis().to_string();
        let status = p
            .http
            .post(&url)
            .header("x-webflow-timestamp", &ts)
            .header("x-webflow-signature", webflow::sign(&secret, &ts, &body))
            .body(body.clone())
            .send()
            .await
            .unwrap()
            .status()
            .as_u16();
        if status == 404 || tokio::time::Instant::now() >= deadline {
            break status;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(status, 404);
    let kept = p
        .scalar(
            "SELECT count(*) FROM orders WHERE site_id = $1 AND webflow_order_id = $2",
            &[&NEW_SITE, &order_id],
        )
        .await;
    assert_eq!(kept, 1, "a removed store's history stays");
    // Its token paces no store any more: the budget row stays (its counters are history) with
    // no sites, so the console shows it to no store's operator.
    wait_for("the removed store's budget names no site", WAIT, || async {
        budget_sites(&p, &budget).await.is_empty().then_some(())
    })
    .await;
    p.teardown().await;
}

/// The sites the budget `key` paces (`rate_budgets.site_ids`).
async fn budget_sites(p: &Pipeline, key: &str) -> Vec<String> {
    p.client()
        .await
        .query_one("SELECT site_ids FROM rate_budgets WHERE key = $1", &[&key])
        .await
        .unwrap()
        .get(0)
}

async fn merchant_id(p: &Pipeline, name: &str) -> i64 {
    let client = p.client().await;
    warehouse_db::merchants::get_by_name(&**client, name).await.unwrap().id
}

/// A webhook that was queued for a store which is then removed (accepted a moment before the
/// removal) fails permanently in `enrich` with a reason naming it: dead-lettered, never retried.
#[tokio::test]
async fn a_message_of_a_removed_store_is_dead_lettered_with_the_reason() {
    let p = start_pipeline(PipelineOptions::default()).await;
    insert_api_store(
        &p.db.pool,
        &Keyring::dev().unwrap(),
        "gone",
        NEW_SITE,
        NEW_TOKEN,
        NEW_SECRET,
    )
    .await;
    remove_store(&p.db.pool, "gone").await;

    let body = serde_json::to_vec(&order_webhook("ecomm_new_order", "gone-1", "unfulfilled")).unwrap();
    let message_id = platform::amqp::contract::webhook_message_id(NEW_SITE, &body);
    let received_at = chrono::Utc::now();
    let properties = platform::amqp::contract::webhook_properties(&platform::amqp::contract::WebhookMessage {
        site_id: NEW_SITE,
        trigger_type: domain::WebhookTrigger::NewOrder,
        webflow_timestamp: Some(&received_at.timestamp_millis().to_string()),
        received_at,
        trace_id: "0af7651916cd43dd8448eb211c80319c",
        message_id: &message_id,
        source: platform::amqp::contract::MessageSource::Webhook,
        app_id: "wms-ingress",
    });
    p.observer
        .publish(
            &p.topology.events_exchange(),
            domain::WebhookTrigger::NewOrder.routing_key(),
            &body,
            properties,
        )
        .await;

    let dead = p
        .observer
        .next_message(&p.topology.dead_queue(platform::amqp::topology::consumer::ENRICH), WAIT)
        .await
        .expect("dead-lettered");
    assert_eq!(dead.header("x-dead-reason").as_deref(), Some("permanent_error"));
    let error = dead.header("x-dead-error").unwrap();
    assert!(error.contains(NEW_SITE) && error.contains("removed"), "{error}");
    assert_eq!(
        p.scalar("SELECT count(*) FROM orders WHERE site_id = $1", &[&NEW_SITE])
            .await,
        0
    );
    p.teardown().await;
}
