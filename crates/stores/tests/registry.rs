//! The registry against a real PostgreSQL: config import, runtime changes, sealed secrets.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

use secrecy::{ExposeSecret, SecretString};
use secrets_at_rest::Keyring;
use std::sync::Arc;
use stores::{RegistryError, StoreRegistry, StoreSource};
use test_support::db::TestDatabase;
use test_support::stores::{insert_api_store, remove_store};
use tokio_util::sync::CancellationToken;
use warehouse_db::stores::ImportError;
use webflow::{SiteSettings, WebflowSettings};

fn settings(sites: &[(&str, &str, &str)]) -> WebflowSettings {
    let mut webflow = WebflowSettings::default();
    for (name, site_id, merchant) in sites {
        webflow.sites.insert(
            (*name).to_owned(),
            SiteSettings {
                site_id: (*site_id).to_owned(),
                merchant: (*merchant).to_owned(),
                api_token: Some(SecretString::from(format!("token-{name}"))),
                webhook_secrets: vec![SecretString::from(format!("secret-{name}"))],
                ..SiteSettings::default()
            },
        );
    }
    webflow
}

fn keyring() -> Arc<Keyring> {
    Arc::new(Keyring::dev().unwrap())
}

async fn start(
    db: &TestDatabase,
    webflow: &WebflowSettings,
    shutdown: &CancellationToken,
) -> Result<StoreRegistry, RegistryError> {
    StoreRegistry::start(
        db.pool.clone(),
        webflow,
        keyring(),
        Some(SecretString::from("oauth-app-secret".to_owned())),
        shutdown.clone(),
    )
    .await
}

async fn store_rows(db: &TestDatabase) -> Vec<(String, String, String, chrono::DateTime<chrono::Utc>)> {
    db.client()
        .await
        .query(
            "SELECT s.name, m.name, s.source, s.updated_at FROM stores s JOIN merchants m ON m.id = s.merchant_id ORDER BY s.id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect()
}

#[tokio::test]
async fn config_stores_are_imported_once_with_their_merchant_and_config_secrets() {
    let db = TestDatabase::create().await;
    let shutdown = CancellationToken::new();
    let webflow = settings(&[("shop", "site-a", "default"), ("outlet", "site-b", "acme")]);
    let registry = start(&db, &webflow, &shutdown).await.unwrap();
    let first = store_rows(&db).await;
    assert_eq!(first.len(), 2);
    assert!(
        first
            .iter()
            .any(|(name, merchant, source, _)| name == "outlet" && merchant == "acme" && source == "config")
    );

    // Every service imports at start: the second import writes nothing.
    let again = start(&db, &webflow, &shutdown).await.unwrap();
    assert_eq!(store_rows(&db).await, first);

    let outlet = registry.by_site("site-b").unwrap();
    assert_eq!(
        (outlet.name.as_str(), outlet.merchant.as_str(), outlet.source),
        ("outlet", "acme", StoreSource::Config)
    );
    assert!(outlet.id > 0 && outlet.merchant_id > 1);
    assert_eq!(outlet.api_token.as_ref().unwrap().expose_secret(), "token-outlet");
    assert_eq!(outlet.webhook_secrets[0].expose_secret(), "secret-outlet");
    assert_eq!(again.by_name("shop").unwrap().site_id.as_str(), "site-a");
    assert_eq!(registry.all().len(), 2);
    shutdown.cancel();
}

#[tokio::test]
async fn a_config_store_clashing_with_an_api_store_is_a_start_up_error_naming_both() {
    let db = TestDatabase::create().await;
    let shutdown = CancellationToken::new();
    insert_api_store(&db.pool, &keyring(), "onboarded", "site-a", "t", "s").await;

    let by_site = start(&db, &settings(&[("shop", "site-a", "default")]), &shutdown)
        .await
        .unwrap_err();
    assert!(
        matches!(&by_site, RegistryError::Import(ImportError::Clash { config_store, store, field, .. })
            if config_store == "shop" && store == "onboarded" && *field == "site_id"),
        "{by_site}"
    );
    assert!(by_site.to_string().contains("`shop`") && by_site.to_string().contains("`onboarded`"));

    let by_name = start(&db, &settings(&[("onboarded", "site-z", "default")]), &shutdown)
        .await
        .unwrap_err();
    assert!(
        matches!(by_name, RegistryError::Import(ImportError::Clash { field: "name", .. })),
        "{by_name}"
    );
    // Nothing half-imported.
    assert_eq!(store_rows(&db).await.len(), 1);
    shutdown.cancel();
}

#[tokio::test]
async fn stores_added_and_removed_at_runtime_are_picked_up_with_their_sealed_secrets_opened() {
    let db = TestDatabase::create().await;
    let shutdown = CancellationToken::new();
    let registry = start(&db, &settings(&[("shop", "site-a", "default")]), &shutdown)
        .await
        .unwrap();
    let mut changes = registry.changes();
    let before = *changes.borrow_and_update();

    insert_api_store(&db.pool, &keyring(), "onboarded", "site-n", "wf-token", "whsec-1").await;
    registry.refresh_now().await.unwrap();
    assert!(changes.has_changed().unwrap());
    assert!(*changes.borrow_and_update() > before);
    let store = registry.by_site("site-n").unwrap();
    assert_eq!(store.source, StoreSource::Api);
    assert_eq!(store.api_token.as_ref().unwrap().expose_secret(), "wf-token");
    let secrets: Vec<&str> = store.webhook_secrets.iter().map(|s| s.expose_secret()).collect();
    assert_eq!(secrets, ["whsec-1"]);
    assert!(!format!("{store:?}").contains("wf-token"), "secrets leak in Debug");

    // Nothing changed: no new generation.
    registry.refresh_now().await.unwrap();
    assert!(!changes.has_changed().unwrap());

    // OAuth stores also accept the app's client secret.
    db.client()
        .await
        .execute(
            "UPDATE stores SET source = 'oauth', updated_at = now() WHERE name = 'onboarded'",
            &[],
        )
        .await
        .unwrap();
    registry.refresh_now().await.unwrap();
    let secrets: Vec<String> = registry
        .by_name("onboarded")
        .unwrap()
        .webhook_secrets
        .iter()
        .map(|s| s.expose_secret().to_owned())
        .collect();
    assert_eq!(secrets, ["whsec-1", "oauth-app-secret"]);

    remove_store(&db.pool, "onboarded").await;
    registry.refresh_now().await.unwrap();
    assert!(registry.by_site("site-n").is_none() && registry.by_name("onboarded").is_none());
    assert!(registry.by_site("site-a").is_some());
    shutdown.cancel();
}

#[tokio::test]
async fn the_background_refresh_picks_a_new_store_up_without_a_call() {
    let db = TestDatabase::create().await;
    let shutdown = CancellationToken::new();
    let mut webflow = settings(&[]);
    webflow.store_refresh_ms = 50;
    let registry = start(&db, &webflow, &shutdown).await.unwrap();
    let mut changes = registry.changes();
    insert_api_store(&db.pool, &keyring(), "later", "site-l", "t", "s").await;
    tokio::time::timeout(std::time::Duration::from_secs(10), changes.changed())
        .await
        .expect("the refresher saw the new store")
        .unwrap();
    assert!(registry.by_site("site-l").is_some());
    shutdown.cancel();
}

#[tokio::test]
async fn a_store_whose_secret_does_not_open_is_skipped_and_the_others_served() {
    let db = TestDatabase::create().await;
    let shutdown = CancellationToken::new();
    let other_key = Keyring::parse(&Keyring::new_key_line("other").unwrap()).unwrap();
    insert_api_store(&db.pool, &other_key, "foreign", "site-f", "t", "s").await;
    insert_api_store(&db.pool, &keyring(), "good", "site-g", "t", "s").await;
    // A token copied from another row does not open in this one.
    db.client()
        .await
        .execute(
            "UPDATE stores SET api_token_sealed = (SELECT api_token_sealed FROM stores WHERE name = 'good')
             WHERE name = 'foreign'",
            &[],
        )
        .await
        .unwrap();
    insert_api_store(&db.pool, &other_key, "wrong-key", "site-w", "t", "s").await;

    let registry = start(&db, &settings(&[]), &shutdown).await.unwrap();
    let names: Vec<String> = registry.all().iter().map(|s| s.name.clone()).collect();
    assert_eq!(names, ["good"]);
    shutdown.cancel();
}

#[tokio::test]
async fn a_site_unknown_here_is_looked_up_again_before_it_is_called_unknown() {
    let db = TestDatabase::create().await;
    let shutdown = CancellationToken::new();
    let mut webflow = settings(&[]);
    // No background refresh within the test: only the lookup re-reads.
    webflow.store_refresh_ms = 3_600_000;
    let registry = start(&db, &webflow, &shutdown).await.unwrap();
    insert_api_store(&db.pool, &keyring(), "just-added", "site-j", "t", "s").await;
    assert!(registry.by_site("site-j").is_none(), "not refreshed yet");
    let store = registry.by_site_or_refresh("site-j").await.unwrap().unwrap();
    assert_eq!(store.name, "just-added");
    assert!(registry.by_site_or_refresh("site-never").await.unwrap().is_none());
    shutdown.cancel();
}

/// The ingress's registry reads no sealed token (its role may not), yet serves API and OAuth
/// stores: their webhook secrets opened (and the app's client secret), no token held.
#[tokio::test]
async fn a_read_only_registry_serves_api_and_oauth_stores_with_their_secrets_and_no_token() {
    let db = TestDatabase::create().await;
    let shutdown = CancellationToken::new();
    let webflow = settings(&[("shop", "site-s", "default")]);
    start(&db, &webflow, &shutdown).await.unwrap();
    insert_api_store(&db.pool, &keyring(), "onboarded", "site-o", "the-token", "the-secret").await;
    insert_api_store(
        &db.pool,
        &keyring(),
        "connected",
        "site-c",
        "oauth-token",
        "hook-secret",
    )
    .await;
    db.client()
        .await
        .execute("UPDATE stores SET source = 'oauth' WHERE name = 'connected'", &[])
        .await
        .unwrap();
    let registry = StoreRegistry::start_read_only(
        db.pool.clone(),
        &webflow,
        keyring(),
        Some(SecretString::from("oauth-app-secret".to_owned())),
        shutdown.clone(),
    )
    .await
    .unwrap();
    let onboarded = registry.by_site("site-o").expect("the API store is served");
    assert!(onboarded.api_token.is_none(), "no token is read");
    let secrets: Vec<&str> = onboarded.webhook_secrets.iter().map(|s| s.expose_secret()).collect();
    assert_eq!(secrets, ["the-secret"]);
    // A store connected with Webflow: its webhooks' secrets and the app's client secret.
    let connected = registry.by_site("site-c").expect("the OAuth store is served");
    assert!(connected.api_token.is_none(), "no token is read");
    let secrets: Vec<&str> = connected.webhook_secrets.iter().map(|s| s.expose_secret()).collect();
    assert_eq!(secrets, ["hook-secret", "oauth-app-secret"]);
    let shop = registry.by_site("site-s").expect("the config store is served");
    assert_eq!(shop.webhook_secrets[0].expose_secret(), "secret-shop");
    shutdown.cancel();
}
