//! Merchants own stock (issue 24): the merchant routes, `/api/v1/inventory/{sku}` for a token
//! that may see one merchant, and tokens that never reach another merchant's stock.

use crate::helpers::*;
use reqwest::Method;
use serde_json::{Value, json};

/// Sends and returns the status and JSON body.
async fn call(app: &TestApp, method: Method, path: &str, token: &str, body: Option<Value>) -> (u16, Value) {
    let mut request = app.request(method, path, Some(token));
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Creates the merchant `acme` (as an admin on everything); its stock of `SKU_A` is 3.
async fn acme(app: &TestApp) {
    let (status, body) = call(
        app,
        Method::POST,
        "/api/v1/merchants",
        "admin-all",
        Some(json!({"name": "acme"})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["name"], "acme");
    let path = format!("/api/v1/merchants/acme/inventory/{SKU_A}");
    let (status, body) = call(app, Method::PUT, &path, "admin-all", Some(json!({"on_hand": 3}))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (body["merchant"].as_str(), body["on_hand"].as_i64()),
        (Some("acme"), Some(3))
    );
}

#[tokio::test]
async fn merchants_are_listed_created_and_read_with_404_and_409() {
    let app = spawn_app().await;
    let (status, body) = call(&app, Method::GET, "/api/v1/merchants", "read-all", None).await;
    assert_eq!(status, 200);
    assert_eq!(body["merchants"].as_array().unwrap().len(), 1);
    assert_eq!(body["merchants"][0]["name"], "default");

    acme(&app).await;
    let (status, body) = call(
        &app,
        Method::POST,
        "/api/v1/merchants",
        "admin-all",
        Some(json!({"name": "acme"})),
    )
    .await;
    assert_eq!((status, body["code"].as_str()), (409, Some("duplicate_name")));
    let (status, body) = call(
        &app,
        Method::POST,
        "/api/v1/merchants",
        "admin-all",
        Some(json!({"name": "Not OK"})),
    )
    .await;
    assert_eq!((status, body["field"].as_str()), (422, Some("name")));
    let (status, _) = call(
        &app,
        Method::POST,
        "/api/v1/merchants",
        "admin-all",
        Some(json!({"nom": "x"})),
    )
    .await;
    assert_eq!(status, 422, "unknown field");
    // Creating needs an admin on every store and merchant.
    let (status, _) = call(
        &app,
        Method::POST,
        "/api/v1/merchants",
        "floor-all",
        Some(json!({"name": "b"})),
    )
    .await;
    assert_eq!(status, 403);
    let (status, _) = call(
        &app,
        Method::POST,
        "/api/v1/merchants",
        "admin-a",
        Some(json!({"name": "b"})),
    )
    .await;
    assert_eq!(status, 403);

    let (status, body) = call(&app, Method::GET, "/api/v1/merchants/acme", "read-all", None).await;
    assert_eq!((status, body["name"].as_str()), (200, Some("acme")));
    for unknown in ["nobody", "NOT-A-NAME"] {
        let (status, body) = call(
            &app,
            Method::GET,
            &format!("/api/v1/merchants/{unknown}"),
            "read-all",
            None,
        )
        .await;
        assert_eq!((status, body["code"].as_str()), (404, Some("not_found")), "{unknown}");
        let path = format!("/api/v1/merchants/{unknown}/inventory/{SKU_A}");
        let (status, _) = call(&app, Method::GET, &path, "read-all", None).await;
        assert_eq!(status, 404, "{unknown}'s stock");
    }
}

#[tokio::test]
async fn inventory_without_a_merchant_serves_a_one_merchant_token_and_asks_the_others_to_name_it() {
    let app = spawn_app().await;
    let plain = format!("/api/v1/inventory/{SKU_A}");
    // Only `default` exists: as before merchants.
    let (status, body) = call(&app, Method::GET, &plain, "admin-all", None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (body["merchant"].as_str(), body["on_hand"].as_i64()),
        (Some("default"), Some(10))
    );

    acme(&app).await;
    // The same SKU under acme is another product: default's stock is untouched.
    let (status, body) = call(
        &app,
        Method::GET,
        &format!("/api/v1/merchants/default/inventory/{SKU_A}"),
        "read-all",
        None,
    )
    .await;
    assert_eq!(
        (status, body["on_hand"].as_i64(), body["reserved"].as_i64()),
        (200, Some(10), Some(1))
    );
    // A token on every merchant must name one now.
    let (status, body) = call(&app, Method::GET, &plain, "admin-all", None).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (409, Some("merchant_required")),
        "{body}"
    );
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("/api/v1/merchants/{merchant}/inventory/{sku}")
    );
    let (status, _) = call(&app, Method::PUT, &plain, "admin-all", Some(json!({"on_hand": 1}))).await;
    assert_eq!(status, 409);

    // A token limited to one merchant keeps using the short path, on its merchant's stock.
    let (status, body) = call(&app, Method::GET, &plain, "read-default", None).await;
    assert_eq!(
        (status, body["merchant"].as_str(), body["on_hand"].as_i64()),
        (200, Some("default"), Some(10))
    );
    let (status, body) = call(&app, Method::GET, &plain, "admin-acme", None).await;
    assert_eq!(
        (status, body["merchant"].as_str(), body["on_hand"].as_i64()),
        (200, Some("acme"), Some(3))
    );
    let (status, body) = call(
        &app,
        Method::POST,
        &format!("{plain}/receive"),
        "admin-acme",
        Some(json!({"quantity": 2})),
    )
    .await;
    assert_eq!(
        (status, body["merchant"].as_str(), body["on_hand"].as_i64()),
        (200, Some("acme"), Some(5))
    );
    let default_on_hand: i64 = app
        .db
        .client()
        .await
        .query_one(
            "SELECT on_hand FROM inventory WHERE merchant_id = 1 AND sku = $1",
            &[&SKU_A],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(default_on_hand, 10, "acme's receipt never touches default's stock");
    // A token limited to stores whose sites no store row names sees `default` only.
    let (status, body) = call(&app, Method::GET, &plain, "read-a", None).await;
    assert_eq!((status, body["merchant"].as_str()), (200, Some("default")));
}

#[tokio::test]
async fn a_scoped_token_never_reads_or_changes_another_merchants_stock() {
    let app = spawn_app().await;
    acme(&app).await;
    let default_stock = format!("/api/v1/merchants/default/inventory/{SKU_A}");
    // Limited to acme: default's stock reads as unknown, for every verb.
    let (status, _) = call(&app, Method::GET, &default_stock, "admin-acme", None).await;
    assert_eq!(status, 404);
    let (status, _) = call(
        &app,
        Method::PUT,
        &default_stock,
        "admin-acme",
        Some(json!({"on_hand": 0})),
    )
    .await;
    assert_eq!(status, 404);
    let (status, _) = call(
        &app,
        Method::POST,
        &format!("{default_stock}/receive"),
        "admin-acme",
        Some(json!({"quantity": 1})),
    )
    .await;
    assert_eq!(status, 404);
    let (status, _) = call(&app, Method::GET, "/api/v1/merchants/default", "admin-acme", None).await;
    assert_eq!(status, 404);
    let (status, body) = call(&app, Method::GET, "/api/v1/merchants", "admin-acme", None).await;
    assert_eq!(status, 200);
    let names: Vec<&str> = body["merchants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["acme"]);
    // Limited to default: acme's stock reads as unknown.
    let (status, _) = call(
        &app,
        Method::GET,
        &format!("/api/v1/merchants/acme/inventory/{SKU_A}"),
        "read-default",
        None,
    )
    .await;
    assert_eq!(status, 404);

    // A token limited to a store sees that store's merchant's stock only: site-b is acme's.
    app.db
        .client()
        .await
        .execute(
            "INSERT INTO stores (name, merchant_id, site_id, source, rate_limit_per_minute)
             SELECT 'b', id, $1, 'config', 60 FROM merchants WHERE name = 'acme'",
            &[&SITE_B],
        )
        .await
        .unwrap();
    let (status, body) = call(&app, Method::GET, "/api/v1/merchants", "admin-b", None).await;
    assert_eq!(status, 200);
    assert_eq!(body["merchants"].as_array().unwrap().len(), 1);
    assert_eq!(body["merchants"][0]["name"], "acme");
    let (status, _) = call(
        &app,
        Method::PUT,
        &default_stock,
        "admin-b",
        Some(json!({"on_hand": 0})),
    )
    .await;
    assert_eq!(status, 404, "another merchant's stock, through its name");
    let on_hand: i64 = app
        .db
        .client()
        .await
        .query_one(
            "SELECT on_hand FROM inventory WHERE merchant_id = 1 AND sku = $1",
            &[&SKU_A],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(on_hand, 10, "unchanged");
}

#[tokio::test]
async fn a_token_created_for_a_merchant_is_limited_to_it() {
    let app = spawn_app().await;
    acme(&app).await;
    let (status, body) = call(
        &app,
        Method::POST,
        "/api/v1/tokens",
        "admin-all",
        Some(json!({"name": "acme-clerk", "role": "floor", "sites": ["*"], "merchants": ["acme"]})),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["merchants"], json!(["acme"]));
    let token = body["token"].as_str().unwrap().to_owned();
    let (status, body) = call(&app, Method::GET, &format!("/api/v1/inventory/{SKU_A}"), &token, None).await;
    assert_eq!((status, body["merchant"].as_str()), (200, Some("acme")));
    let (status, _) = call(
        &app,
        Method::GET,
        &format!("/api/v1/merchants/default/inventory/{SKU_A}"),
        &token,
        None,
    )
    .await;
    assert_eq!(status, 404);
    let (_, listed) = call(&app, Method::GET, "/api/v1/tokens", "admin-all", None).await;
    let clerk = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "acme-clerk")
        .unwrap();
    assert_eq!(clerk["merchants"], json!(["acme"]));
    // Without `merchants`: every merchant, as before. An unknown merchant is refused.
    let (status, body) = call(
        &app,
        Method::POST,
        "/api/v1/tokens",
        "admin-all",
        Some(json!({"name": "everyone", "role": "read", "sites": ["*"]})),
    )
    .await;
    assert_eq!((status, body["merchants"].clone()), (201, json!(["*"])));
    let (status, body) = call(
        &app,
        Method::POST,
        "/api/v1/tokens",
        "admin-all",
        Some(json!({"name": "typo", "role": "read", "sites": ["*"], "merchants": ["acmee"]})),
    )
    .await;
    assert_eq!((status, body["field"].as_str()), (422, Some("merchants")));
}

/// The console's Inventory page shows each row's merchant, filters by merchant, and its receive
/// form changes the row's own merchant's stock.
#[tokio::test]
async fn the_console_inventory_shows_and_filters_by_merchant() {
    use crate::console_sessions::{FormBody, browser, csrf, page, session_cookie, sign_in};
    let app = spawn_app().await;
    acme(&app).await;
    let cookie = session_cookie(&sign_in(&app.url, "admin-all", None).await);
    let (status, html) = page(&app.url, "/console/inventory", &cookie).await;
    assert_eq!(status, 200);
    assert!(
        html.contains("id=\"merchant-filter\""),
        "a filter once two merchants exist"
    );
    assert!(html.contains(&format!("data-sku=\"{SKU_A}\" data-merchant=\"default\"")));
    assert!(html.contains(&format!("data-sku=\"{SKU_A}\" data-merchant=\"acme\"")));
    let (_, filtered) = page(&app.url, "/console/inventory?merchant=acme", &cookie).await;
    assert!(filtered.contains("data-merchant=\"acme\""));
    assert!(!filtered.contains("data-merchant=\"default\""), "only acme's rows");

    let received = browser()
        .post(format!("{}/console/inventory/receive", app.url))
        .header(reqwest::header::COOKIE, &cookie)
        .form_body(&[
            ("csrf", csrf(&html).as_str()),
            ("merchant", "acme"),
            ("sku", SKU_A),
            ("quantity", "4"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(received.status(), 303);
    let levels: Vec<(String, i64)> = app
        .db
        .client()
        .await
        .query(
            "SELECT m.name, i.on_hand FROM inventory i JOIN merchants m ON m.id = i.merchant_id
             WHERE i.sku = $1 ORDER BY m.name",
            &[&SKU_A],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(levels, [("acme".to_owned(), 7), ("default".to_owned(), 10)]);
    // A token limited to acme sees acme's rows only, and no filter.
    let acme_cookie = session_cookie(&sign_in(&app.url, "admin-acme", None).await);
    let (_, html) = page(&app.url, "/console/inventory", &acme_cookie).await;
    assert!(html.contains("data-merchant=\"acme\""));
    assert!(!html.contains("data-merchant=\"default\""));
    assert!(!html.contains("id=\"merchant-filter\""));
}
