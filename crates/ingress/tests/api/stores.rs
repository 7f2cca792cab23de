//! Stores onboarded and removed at runtime (issue 24): the ingress serves a store from the
//! database without a restart, verifies its webhooks with its sealed secret, and answers 404
//! once it is removed.

use crate::helpers::*;
use secrets_at_rest::Keyring;
use std::time::Duration;
use test_support::stores::{insert_api_store, remove_store};

const NEW_SITE: &str = "65f0c0ffee00000000000new";
const NEW_SECRET: &str = "whsec-onboarded";

/// Posts `body` for `site_id` signed with `secret` until the answer is not `waiting_for`, within
/// a deadline (the ingress picks changes up every `webflow.store_refresh_ms`).
async fn post_until_not(app: &TestApp, site_id: &str, secret: &str, body: &[u8], waiting_for: u16) -> u16 {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let ts = now_ms().to_string();
        let signature = webflow::sign(secret, &ts, body);
        let status = app
            .post_raw(site_id, body, Some(&ts), Some(&signature))
            .await
            .status()
            .as_u16();
        if status != waiting_for || tokio::time::Instant::now() >= deadline {
            return status;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_store_added_at_runtime_is_served_and_a_removed_one_answers_404() {
    let app = spawn_app().await;
    let body = new_order_body();
    assert_eq!(post_until_not(&app, NEW_SITE, NEW_SECRET, &body, 0).await, 404);

    insert_api_store(
        &app.db.pool,
        &Keyring::dev().unwrap(),
        "onboarded",
        NEW_SITE,
        "tok",
        NEW_SECRET,
    )
    .await;
    assert_eq!(post_until_not(&app, NEW_SITE, NEW_SECRET, &body, 404).await, 200);
    let message = app
        .observer
        .next_message(&app.enrich_queue(), Duration::from_secs(5))
        .await
        .expect("published");
    assert_eq!(message.header("x-site-id").as_deref(), Some(NEW_SITE));
    // Its sealed secret verifies; another store's does not.
    let ts = now_ms().to_string();
    let wrong = webflow::sign(SECRET, &ts, &body);
    assert_eq!(
        app.post_raw(NEW_SITE, &body, Some(&ts), Some(&wrong)).await.status(),
        401
    );

    remove_store(&app.db.pool, "onboarded").await;
    assert_eq!(post_until_not(&app, NEW_SITE, NEW_SECRET, &body, 200).await, 404);
    // The config store is untouched.
    assert_eq!(app.post_signed(&body, SECRET).await.status(), 200);
    app.teardown().await;
}
