//! The console names stores and merchants, not Webflow site ids: operators of a 3PL know "the
//! north shop of acme", not `65f0c0…`.

use crate::console_sessions::{page, session_cookie, sign_in};
use crate::helpers::{ORDER_A, ORDER_B, SITE_A, SITE_B, spawn_app};
use reqwest::StatusCode;

#[tokio::test]
async fn pages_show_store_and_merchant_names_and_the_site_id_only_on_hover() {
    let app = spawn_app().await;
    let client = app.db.client().await;
    client
        .batch_execute(&format!(
            "INSERT INTO merchants (name) VALUES ('acme');
             INSERT INTO stores (name, merchant_id, site_id, source, rate_limit_per_minute)
                  SELECT 'north-shop', id, '{SITE_A}', 'config', 60 FROM merchants WHERE name = 'acme';
             -- site-b's first store was removed, and the site onboarded again as another store:
             -- the live one names it.
             INSERT INTO stores (name, merchant_id, site_id, source, rate_limit_per_minute, removed_at)
                  VALUES ('old-b', 1, '{SITE_B}', 'config', 60, now());
             INSERT INTO stores (name, merchant_id, site_id, source, rate_limit_per_minute)
                  VALUES ('south-shop', 1, '{SITE_B}', 'config', 60);"
        ))
        .await
        .unwrap();
    let cookie = session_cookie(&sign_in(&app.url, "read-all", None).await);

    let (status, orders) = page(&app.url, "/console/orders", &cookie).await;
    assert_eq!(status, StatusCode::OK);
    assert!(orders.contains(ORDER_A) && orders.contains(ORDER_B), "{orders}");
    for name in ["north-shop", "south-shop", "acme"] {
        assert!(orders.contains(name), "{name} missing from the order list: {orders}");
    }
    assert!(
        !orders.contains("old-b"),
        "a removed store's name for a reused site: {orders}"
    );
    // The site id stays at hand (the tooltip), not as the cell's text.
    assert!(orders.contains(&format!("title=\"site {SITE_A}\"")), "{orders}");
    assert!(!orders.contains(&format!("<code>{SITE_A}</code>")), "{orders}");

    let (_, detail) = page(&app.url, &format!("/console/orders/{SITE_A}/{ORDER_A}"), &cookie).await;
    assert!(detail.contains("north-shop"), "{detail}");
    assert!(detail.contains("id=\"order-merchant\">acme<"), "{detail}");

    let (_, overview) = page(&app.url, "/console/overview", &cookie).await;
    assert!(
        overview.contains("north-shop") && overview.contains("south-shop"),
        "{overview}"
    );

    let (_, floor) = page(&app.url, "/console/floor", &cookie).await;
    assert!(floor.contains("north-shop"), "{floor}");
    let (_, station) = page(&app.url, &format!("/console/floor/{}", app.task_a), &cookie).await;
    assert!(station.contains("north-shop"), "{station}");

    // Once the store is removed, its history still shows its name, marked.
    client
        .execute("UPDATE stores SET removed_at = now() WHERE name = 'north-shop'", &[])
        .await
        .unwrap();
    let (_, orders) = page(&app.url, "/console/orders", &cookie).await;
    assert!(
        orders.contains("north-shop") && orders.contains("(removed)"),
        "{orders}"
    );
}

#[tokio::test]
async fn a_site_no_store_names_shows_its_id() {
    let app = spawn_app().await;
    let cookie = session_cookie(&sign_in(&app.url, "read-all", None).await);
    let (status, orders) = page(&app.url, "/console/orders", &cookie).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        orders.contains(&format!("<code class=\"store-name\">{SITE_A}</code>")),
        "{orders}"
    );
    // One merchant: its name is not repeated on every line.
    assert!(!orders.contains("class=\"muted merchant\""), "{orders}");
}

/// The Webflow budgets are named by their stores, and an operator limited to some stores sees
/// the budgets pacing them (a token shared with another store included) and no other.
#[tokio::test]
async fn budgets_are_named_by_their_stores_and_shown_to_the_operators_of_those_stores() {
    let app = spawn_app().await;
    let client = app.db.client().await;
    client
        .batch_execute(&format!(
            "INSERT INTO stores (name, merchant_id, site_id, source, rate_limit_per_minute)
                  VALUES ('north-shop', 1, '{SITE_A}', 'config', 60), ('south-shop', 1, '{SITE_B}', 'config', 60);"
        ))
        .await
        .unwrap();
    warehouse_db::rate_budget::ensure(&*client, "webflow-token:aaaa", 60.0, &[SITE_A.to_owned()])
        .await
        .unwrap();
    warehouse_db::rate_budget::ensure(&*client, "webflow-token:bbbb", 120.0, &[SITE_B.to_owned()])
        .await
        .unwrap();

    let every = session_cookie(&sign_in(&app.url, "read-all", None).await);
    let (status, overview) = page(&app.url, "/console/overview", &every).await;
    assert_eq!(status, StatusCode::OK);
    let budgets = &overview[overview.find("id=\"budgets\"").expect("the budget table")..];
    assert!(budgets.contains("webflow-token:aaaa") && budgets.contains("webflow-token:bbbb"));
    assert!(
        budgets.contains("north-shop") && budgets.contains("south-shop"),
        "{budgets}"
    );

    let scoped = session_cookie(&sign_in(&app.url, "read-a", None).await);
    let (_, overview) = page(&app.url, "/console/overview", &scoped).await;
    let budgets = &overview[overview.find("id=\"budgets\"").expect("the budget table")..];
    assert!(budgets.contains("webflow-token:aaaa"), "its store's budget: {budgets}");
    assert!(
        !budgets.contains("webflow-token:bbbb"),
        "another store's budget: {budgets}"
    );

    // Site B's store now shares site A's token: the shared budget is site A's operator's too,
    // and the other store is counted, not named.
    warehouse_db::rate_budget::ensure(
        &*client,
        "webflow-token:aaaa",
        60.0,
        &[SITE_B.to_owned(), SITE_A.to_owned()],
    )
    .await
    .unwrap();
    let (_, overview) = page(&app.url, "/console/overview", &scoped).await;
    let budgets = &overview[overview.find("id=\"budgets\"").expect("the budget table")..];
    assert!(
        budgets.contains("webflow-token:aaaa") && budgets.contains("north-shop"),
        "{budgets}"
    );
    assert!(budgets.contains("+ 1 other store(s)"), "{budgets}");
    assert!(
        !budgets.contains("south-shop") && !budgets.contains(SITE_B),
        "a store outside the scope is not named: {budgets}"
    );
}
