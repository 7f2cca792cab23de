//! Stores as data through the API, against a real PostgreSQL and the Webflow simulator: an
//! admin onboards a store (its token checked with Webflow, webhooks registered and their
//! secrets sealed), lists, changes and removes it (its webhooks deleted at Webflow); bad input
//! answers 404/409/422 with nothing half-created.

use crate::helpers::*;
use reqwest::{Method, StatusCode};
use secrecy::ExposeSecret;
use serde_json::{Value, json};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use webflow_sim::state::SimSite;
use webflow_sim::{SimConfig, SimState, Simulator};

pub const NEW_SITE: &str = "site-new";
pub const NEW_TOKEN: &str = "token-new";
pub const OTHER_SITE: &str = "site-other";
pub const OTHER_TOKEN: &str = "token-other";
pub const INGRESS: &str = "https://bridge.example.com";

/// The simulator serving two sites the tests onboard; stops with the returned token.
pub fn simulator() -> (Simulator, CancellationToken) {
    let shutdown = CancellationToken::new();
    let site = |site_id: &str, token: &str| SimSite {
        site_id: site_id.into(),
        token: token.into(),
        webhook_secret: "unused".into(),
        webhook_url: None,
        rate_limit_per_minute: None,
    };
    let config = SimConfig {
        bind: "127.0.0.1:0".into(),
        extra_sites: vec![site(NEW_SITE, NEW_TOKEN), site(OTHER_SITE, OTHER_TOKEN)],
        ..SimConfig::default()
    };
    (Simulator::start(config, shutdown.clone()).unwrap(), shutdown)
}

/// The warehouse talking to `sim`, with `warehouse.public_ingress_url` set.
pub async fn spawn_with_sim(sim: &Simulator, ingress: Option<&str>) -> TestApp {
    let base = sim.base_url.clone();
    let ingress = ingress.map(str::to_owned);
    spawn_app_with(move |settings| {
        settings.webflow.api_base_url = format!("{base}/v2");
        settings.webflow.allow_insecure_http = true;
        settings.warehouse.public_ingress_url = ingress;
    })
    .await
}

pub async fn send(app: &TestApp, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
    let mut request = app.request(method, path, Some("admin-all"));
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or_default())
}

fn new_store(name: &str, site: &str, token: &str, register: bool) -> Value {
    json!({
        "name": name,
        "merchant": "default",
        "site_id": site,
        "api_token": token,
        "rate_limit_per_minute": 120,
        "send_fulfillment_email": false,
        "register_webhooks": register,
    })
}

fn keyring() -> Arc<secrets_at_rest::Keyring> {
    secrets_at_rest::keyring_or_dev(&secrets_at_rest::SecretsSettings::default()).unwrap()
}

async fn count(app: &TestApp, sql: &str) -> i64 {
    app.db.client().await.query_one(sql, &[]).await.unwrap().get(0)
}

fn sim_webhooks(sim: &SimState, site: &str) -> Vec<webflow_sim::state::SimWebhook> {
    sim.webhooks_of(site)
}

#[tokio::test]
async fn a_store_is_onboarded_with_sealed_secrets_changed_and_removed_with_its_webhooks() {
    let (sim, _stop) = simulator();
    let app = spawn_with_sim(&sim, Some(INGRESS)).await;

    let (status, store) = send(
        &app,
        Method::POST,
        "/api/v1/stores",
        Some(new_store("shop-new", NEW_SITE, NEW_TOKEN, true)),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{store}");
    assert_eq!(store["name"], "shop-new");
    assert_eq!(store["merchant"], "default");
    assert_eq!(store["source"], "api");
    assert_eq!(store["rate_limit_per_minute"], 120);
    assert_eq!(store["send_fulfillment_email"], false);
    let text = store.to_string();
    assert!(!text.contains(NEW_TOKEN), "the token is never shown: {text}");

    // Three webhooks at Webflow, at the ingress's path for the site.
    let registered = sim_webhooks(&sim.state, NEW_SITE);
    assert_eq!(registered.len(), 3);
    let mut triggers: Vec<&str> = registered.iter().map(|w| w.trigger_type.as_str()).collect();
    triggers.sort_unstable();
    assert_eq!(
        triggers,
        ["ecomm_inventory_changed", "ecomm_new_order", "ecomm_order_changed"]
    );
    for webhook in &registered {
        assert_eq!(webhook.url, format!("{INGRESS}/webhooks/webflow/{NEW_SITE}"));
        assert!(!text.contains(webhook.secret_key.as_deref().unwrap()));
    }
    assert_eq!(store["webhooks"].as_array().unwrap().len(), 3);

    // The token and every secret are sealed in the database, and open with the keyring.
    let keys = keyring();
    let client = app.db.client().await;
    let row = client
        .query_one("SELECT id, api_token_sealed FROM stores WHERE name = 'shop-new'", &[])
        .await
        .unwrap();
    let (id, sealed): (i64, String) = (row.get(0), row.get(1));
    assert!(!sealed.contains(NEW_TOKEN));
    assert_eq!(
        keys.open(&sealed, &format!("stores.api_token:{id}"))
            .unwrap()
            .expose_secret(),
        NEW_TOKEN
    );
    let hooks = client
        .query(
            "SELECT id, webflow_webhook_id, secret_sealed FROM store_webhooks WHERE store_id = $1",
            &[&id],
        )
        .await
        .unwrap();
    assert_eq!(hooks.len(), 3);
    for hook in &hooks {
        let (hook_id, webflow_id, sealed): (i64, String, String) = (hook.get(0), hook.get(1), hook.get(2));
        let secret = registered
            .iter()
            .find(|w| w.id == webflow_id)
            .unwrap()
            .secret_key
            .clone()
            .unwrap();
        assert!(!sealed.contains(&secret));
        assert_eq!(
            keys.open(&sealed, &format!("store_webhooks.secret:{hook_id}"))
                .unwrap()
                .expose_secret(),
            secret
        );
    }

    // Listed and shown.
    let (status, list) = send(&app, Method::GET, "/api/v1/stores", None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(list.as_array().unwrap().iter().any(|s| s["name"] == "shop-new"));
    let (status, shown) = send(&app, Method::GET, "/api/v1/stores/shop-new", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(shown["site_id"], NEW_SITE);

    // Changed: updated_at moves; a new token is checked with Webflow and sealed afresh.
    let (status, changed) = send(
        &app,
        Method::PATCH,
        "/api/v1/stores/shop-new",
        Some(json!({"rate_limit_per_minute": 30, "send_fulfillment_email": true})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{changed}");
    assert_eq!(changed["rate_limit_per_minute"], 30);
    assert_eq!(changed["send_fulfillment_email"], true);
    assert!(changed["updated_at"].as_str().unwrap() > store["updated_at"].as_str().unwrap());
    let (status, error) = send(
        &app,
        Method::PATCH,
        "/api/v1/stores/shop-new",
        Some(json!({"inventory_sync": true})),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{error}");
    assert_eq!(error["field"], "sku_collection_id");
    let (status, synced) = send(
        &app,
        Method::PATCH,
        "/api/v1/stores/shop-new",
        Some(json!({"inventory_sync": true, "sku_collection_id": "5cf0", "inventory_safety_buffer": 2})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{synced}");
    assert_eq!(
        (
            synced["inventory_sync"].as_bool(),
            synced["inventory_safety_buffer"].as_i64()
        ),
        (Some(true), Some(2))
    );
    let (status, unknown) = send(
        &app,
        Method::PATCH,
        "/api/v1/stores/shop-new",
        Some(json!({"merchant": "nobody"})),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{unknown}");
    // Moved to another merchant: the storefront's stock levels follow (its sync rows now count
    // the new merchant's stock and are pushed again).
    client
        .batch_execute(&format!(
            "INSERT INTO merchants (name) VALUES ('acme');
             INSERT INTO inventory_sync (site_id, sku, webflow_sku_id, dirty_since)
                  VALUES ('{NEW_SITE}', 'sku-moved', 'wf-sku-moved', NULL)"
        ))
        .await
        .unwrap();
    let (status, moved) = send(
        &app,
        Method::PATCH,
        "/api/v1/stores/shop-new",
        Some(json!({"merchant": "acme"})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{moved}");
    assert_eq!(moved["merchant"], "acme");
    let row = client
        .query_one(
            "SELECT m.name, s.dirty_since IS NOT NULL FROM inventory_sync s JOIN merchants m ON m.id = s.merchant_id
              WHERE s.site_id = $1 AND s.sku = 'sku-moved'",
            &[&NEW_SITE],
        )
        .await
        .unwrap();
    assert_eq!(
        (row.get::<_, String>(0), row.get::<_, bool>(1)),
        ("acme".to_owned(), true)
    );
    let (status, refused) = send(
        &app,
        Method::PATCH,
        "/api/v1/stores/shop-new",
        Some(json!({"api_token": "not-a-webflow-token"})),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{refused}");
    assert_eq!(refused["code"], "webflow_refused");
    let still: String = client
        .query_one("SELECT api_token_sealed FROM stores WHERE id = $1", &[&id])
        .await
        .unwrap()
        .get(0);
    assert_eq!(still, sealed, "a refused token changes nothing");

    // Removed: its webhooks are gone at Webflow (one deleted there already counts as deleted),
    // its row stays marked removed.
    let gone = registered[0].id.clone();
    sim.state.webhooks.lock().unwrap().remove(&gone);
    let (status, _) = send(&app, Method::DELETE, "/api/v1/stores/shop-new", None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(sim_webhooks(&sim.state, NEW_SITE).is_empty());
    let (status, _) = send(&app, Method::GET, "/api/v1/stores/shop-new", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        count(
            &app,
            "SELECT count(*) FROM stores WHERE name = 'shop-new' AND removed_at IS NOT NULL"
        )
        .await,
        1
    );
    assert_eq!(
        count(&app, "SELECT count(*) FROM store_webhooks WHERE removed_at IS NULL").await,
        0
    );
    let (_, with_removed) = send(&app, Method::GET, "/api/v1/stores?removed=true", None).await;
    assert!(
        with_removed
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["name"] == "shop-new" && !s["removed_at"].is_null())
    );

    // Its name and site may be onboarded again.
    let (status, again) = send(
        &app,
        Method::POST,
        "/api/v1/stores",
        Some(new_store("shop-new", NEW_SITE, NEW_TOKEN, false)),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{again}");
    assert!(again["webhooks"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn unknown_merchants_and_stores_are_404_and_duplicates_409_before_webflow_is_asked() {
    let (sim, _stop) = simulator();
    let app = spawn_with_sim(&sim, Some(INGRESS)).await;
    let mut body = new_store("shop-x", NEW_SITE, NEW_TOKEN, true);
    body["merchant"] = json!("nobody");
    let (status, error) = send(&app, Method::POST, "/api/v1/stores", Some(body)).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{error}");
    assert!(error["message"].as_str().unwrap().contains("nobody"));
    for method in [Method::GET, Method::DELETE] {
        let (status, _) = send(&app, method, "/api/v1/stores/ghost", None).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
    let (status, _) = send(
        &app,
        Method::PATCH,
        "/api/v1/stores/ghost",
        Some(json!({"rate_limit_per_minute": 5})),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let (status, _) = send(
        &app,
        Method::POST,
        "/api/v1/stores",
        Some(new_store("shop-x", NEW_SITE, NEW_TOKEN, true)),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, error) = send(
        &app,
        Method::POST,
        "/api/v1/stores",
        Some(new_store("shop-x", OTHER_SITE, OTHER_TOKEN, true)),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(error["code"], "duplicate_name");
    let (status, error) = send(
        &app,
        Method::POST,
        "/api/v1/stores",
        Some(new_store("shop-y", NEW_SITE, NEW_TOKEN, true)),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(error["code"], "duplicate_site");
    // Webflow was not asked: still the first store's three webhooks, none for the other site.
    assert_eq!(sim_webhooks(&sim.state, NEW_SITE).len(), 3);
    assert!(sim_webhooks(&sim.state, OTHER_SITE).is_empty());
}

#[tokio::test]
async fn webflow_refusing_the_token_or_a_webhook_is_422_with_nothing_half_created() {
    let (sim, _stop) = simulator();
    let app = spawn_with_sim(&sim, Some(INGRESS)).await;

    let (status, error) = send(
        &app,
        Method::POST,
        "/api/v1/stores",
        Some(new_store("shop-bad", NEW_SITE, "revoked-token", true)),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{error}");
    assert_eq!(error["code"], "webflow_refused");
    assert!(
        error["message"].as_str().unwrap().contains("Request not authorized"),
        "{error}"
    );

    // Webflow creates two webhooks, then refuses the third: both are deleted again.
    sim.state.faults.lock().unwrap().webhook_limit_per_site = Some(2);
    let (status, error) = send(
        &app,
        Method::POST,
        "/api/v1/stores",
        Some(new_store("shop-bad", NEW_SITE, NEW_TOKEN, true)),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{error}");
    assert_eq!(error["code"], "webflow_refused");
    assert!(
        error["message"].as_str().unwrap().contains("Webhook limit reached"),
        "{error}"
    );
    assert!(
        sim_webhooks(&sim.state, NEW_SITE).is_empty(),
        "the created webhooks were deleted"
    );
    assert_eq!(
        count(&app, "SELECT count(*) FROM stores WHERE source <> 'config'").await,
        0
    );
    assert_eq!(count(&app, "SELECT count(*) FROM store_webhooks").await, 0);
}

#[tokio::test]
async fn registering_webhooks_needs_the_public_ingress_url_and_only_admins_manage_stores() {
    let (sim, _stop) = simulator();
    let app = spawn_with_sim(&sim, None).await;
    let (status, error) = send(
        &app,
        Method::POST,
        "/api/v1/stores",
        Some(new_store("shop-a", NEW_SITE, NEW_TOKEN, true)),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("warehouse.public_ingress_url is not set")
    );
    assert_eq!(count(&app, "SELECT count(*) FROM stores").await, 0);

    for token in ["read-all", "floor-all"] {
        let status = app
            .request(Method::GET, "/api/v1/stores", Some(token))
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, StatusCode::FORBIDDEN);
    }

    // A config-file store is read-only here.
    app.db
        .client()
        .await
        .execute(
            "INSERT INTO stores (name, merchant_id, site_id, source, rate_limit_per_minute)
             VALUES ('from-config', 1, 'site-config', 'config', 60)",
            &[],
        )
        .await
        .unwrap();
    let (status, error) = send(
        &app,
        Method::PATCH,
        "/api/v1/stores/from-config",
        Some(json!({"rate_limit_per_minute": 5})),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(error["code"], "config_store");
    let (status, _) = send(&app, Method::DELETE, "/api/v1/stores/from-config", None).await;
    assert_eq!(status, StatusCode::CONFLICT);

    // A bad name is refused before anything else.
    let (status, error) = send(
        &app,
        Method::POST,
        "/api/v1/stores",
        Some(new_store("bad name", NEW_SITE, NEW_TOKEN, false)),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(error["field"], "name");
}
