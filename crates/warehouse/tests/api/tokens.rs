//! Operator tokens as data: an admin creates a token (shown once, only its SHA-256 stored),
//! the token works within its role and stores, and revoking it refuses it at once on every
//! replica and ends its console sessions. Config-file tokens are listed but not revocable.

use crate::console_sessions::{FormBody, browser, csrf, page, session_cookie, sign_in};
use crate::helpers::*;
use reqwest::header::COOKIE;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

/// `POST /api/v1/tokens` as `admin`: the status and the body.
async fn create(app: &TestApp, admin: &str, body: Value) -> (StatusCode, Value) {
    let response = app
        .request(Method::POST, "/api/v1/tokens", Some(admin))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status();
    (status, response.json().await.unwrap_or_default())
}

async fn status_at(base: &str, method: Method, path: &str, token: &str) -> StatusCode {
    reqwest::Client::new()
        .request(method, format!("{base}{path}"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
}

#[tokio::test]
async fn a_created_token_works_in_its_scope_and_revoking_it_refuses_it_at_once_everywhere() {
    let app = spawn_app().await;
    let replica = app.spawn_replica(|_| {}).await;
    let (status, created) = create(
        &app,
        "admin-all",
        json!({"name": "packer-ana", "role": "floor", "sites": [SITE_A]}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let token = created["token"].as_str().unwrap().to_owned();
    assert_eq!(token.len(), 43, "32 random bytes, base64url: {token}");
    assert!(
        token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    );
    assert_eq!(created["role"], "floor");

    // Only the SHA-256 is stored.
    let client = app.db.client().await;
    let stored: Vec<u8> = client
        .query_one(
            "SELECT token_sha256 FROM operator_tokens WHERE name = 'packer-ana'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(hex::encode(&stored), warehouse::auth::sha256_hex(&token));
    let anywhere: i64 = client
        .query_one(
            "SELECT count(*) FROM operator_tokens t WHERE t::text LIKE '%' || $1 || '%'",
            &[&token],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(anywhere, 0, "the token itself is in no column");

    // Within its stores and role, on both replicas; another store's order reads as missing
    // (404, as for config tokens); a role too low is 403.
    let order_a = format!("/api/v1/orders/{SITE_A}/{ORDER_A}");
    let order_b = format!("/api/v1/orders/{SITE_B}/{ORDER_B}");
    for base in [app.url.as_str(), replica.as_str()] {
        assert_eq!(status_at(base, Method::GET, &order_a, &token).await, StatusCode::OK);
        assert_eq!(
            status_at(base, Method::GET, &order_b, &token).await,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            status_at(base, Method::GET, "/api/v1/pick-tasks", &token).await,
            StatusCode::OK
        );
        assert_eq!(
            status_at(base, Method::GET, "/api/v1/tokens", &token).await,
            StatusCode::FORBIDDEN
        );
    }
    // The actor of what it does is its name.
    let picked = app
        .request(
            Method::POST,
            &format!("/api/v1/pick-tasks/{}/picked", app.task_a),
            Some(&token),
        )
        .send()
        .await
        .unwrap();
    assert!(picked.status().is_success(), "{}", picked.status());
    assert!(app.actors(ORDER_A).await.contains(&"packer-ana".to_owned()));

    // Listed without the token or its digest.
    let list = app
        .request(Method::GET, "/api/v1/tokens", Some("admin-all"))
        .send()
        .await
        .unwrap();
    assert_eq!(list.status(), StatusCode::OK);
    let text = list.text().await.unwrap();
    assert!(!text.contains(&token), "the list shows no token");
    assert!(!text.contains(&hex::encode(&stored)), "nor its digest");
    let list: Vec<Value> = serde_json::from_str(&text).unwrap();
    let ana = list.iter().find(|t| t["name"] == "packer-ana").unwrap();
    assert_eq!(ana["source"], "database");
    assert_eq!(ana["sites"], json!([SITE_A]));
    assert_eq!(ana["created_by"], "admin-all");
    assert!(ana["revoked_at"].is_null());
    assert!(ana["last_used_at"].is_string(), "{ana}");
    let config = list.iter().find(|t| t["name"] == "floor-a").unwrap();
    assert_eq!(config["source"], "config");
    assert!(list.iter().any(|t| t["name"] == "token-1" && t["source"] == "config"));

    // Revoked on the replica: refused at once on both.
    let revoked = reqwest::Client::new()
        .delete(format!("{replica}/api/v1/tokens/packer-ana"))
        .bearer_auth("admin-all")
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), StatusCode::NO_CONTENT);
    for base in [app.url.as_str(), replica.as_str()] {
        assert_eq!(
            status_at(base, Method::GET, &order_a, &token).await,
            StatusCode::UNAUTHORIZED,
            "{base}"
        );
    }
    // Revoking again changes nothing; the name stays taken.
    assert_eq!(
        status_at(&app.url, Method::DELETE, "/api/v1/tokens/packer-ana", "admin-all").await,
        StatusCode::NO_CONTENT
    );
    let (status, body) = create(
        &app,
        "admin-all",
        json!({"name": "packer-ana", "role": "read", "sites": ["*"]}),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(body["code"], "duplicate_name");
    let list: Vec<Value> = app
        .request(Method::GET, "/api/v1/tokens", Some("admin-all"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ana = list.iter().find(|t| t["name"] == "packer-ana").unwrap();
    assert!(ana["revoked_at"].is_string(), "{ana}");
}

#[tokio::test]
async fn revoking_a_token_ends_its_console_sessions_at_once() {
    let app = spawn_app().await;
    let replica = app.spawn_replica(|_| {}).await;
    let (_, created) = create(
        &app,
        "admin-all",
        json!({"name": "night-shift", "role": "read", "sites": ["*"]}),
    )
    .await;
    let token = created["token"].as_str().unwrap().to_owned();
    let cookie = session_cookie(&sign_in(&app.url, &token, None).await);
    let (status, body) = page(&replica, "/console/overview", &cookie).await;
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains("night-shift"), "the session is the token's");

    assert_eq!(
        status_at(&app.url, Method::DELETE, "/api/v1/tokens/night-shift", "admin-all").await,
        StatusCode::NO_CONTENT
    );
    for base in [app.url.as_str(), replica.as_str()] {
        assert_eq!(
            page(base, "/console/overview", &cookie).await.0,
            StatusCode::SEE_OTHER,
            "the session ended on {base}"
        );
    }
    let sessions: i64 = app
        .db
        .client()
        .await
        .query_one(
            "SELECT count(*) FROM console_sessions WHERE operator = 'night-shift'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(sessions, 0);
    // And it signs nobody in any more.
    assert_eq!(sign_in(&app.url, &token, None).await.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn only_admins_manage_tokens_and_bad_input_is_refused() {
    let app = spawn_app().await;
    let good = json!({"name": "x", "role": "read", "sites": ["*"]});
    for token in ["read-all", "floor-all"] {
        let (status, body) = create(&app, token, good.clone()).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{token}: {body}");
        assert_eq!(
            status_at(&app.url, Method::GET, "/api/v1/tokens", token).await,
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            status_at(&app.url, Method::DELETE, "/api/v1/tokens/x", token).await,
            StatusCode::FORBIDDEN
        );
    }
    let (status, _) = create(&app, "not-a-token", good.clone()).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // A store-scoped admin may manage tokens too (admin is the role asked for).
    let (status, _) = create(&app, "admin-a", good.clone()).await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, body) = create(&app, "admin-all", good.clone()).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (StatusCode::CONFLICT, Some("duplicate_name"))
    );
    // A config-file token's name is taken too, and it cannot be revoked here.
    let (status, _) = create(
        &app,
        "admin-all",
        json!({"name": "floor-a", "role": "read", "sites": ["*"]}),
    )
    .await;
    assert_eq!(status, StatusCode::CONFLICT);
    for name in ["floor-a", "token-1"] {
        let response = app
            .request(Method::DELETE, &format!("/api/v1/tokens/{name}"), Some("admin-all"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::CONFLICT, "{name}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["code"], "config_token");
        assert!(body["message"].as_str().unwrap().contains("config file"), "{body}");
    }
    assert_eq!(
        status_at(&app.url, Method::DELETE, "/api/v1/tokens/nobody", "admin-all").await,
        StatusCode::NOT_FOUND
    );
    let (status, body) = create(&app, "admin-all", json!({"name": "y", "role": "boss", "sites": ["*"]})).await;
    assert_eq!(
        (status, body["field"].as_str()),
        (StatusCode::UNPROCESSABLE_ENTITY, Some("role")),
        "{body}"
    );
    let (status, body) = create(
        &app,
        "admin-all",
        json!({"name": "y", "role": "read", "sites": ["*"], "token": "mine"}),
    )
    .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    for (bad, field) in [
        (json!({"name": "", "role": "read", "sites": ["*"]}), "name"),
        (json!({"name": "a\u{7}b", "role": "read", "sites": ["*"]}), "name"),
        (json!({"name": "y", "role": "read", "sites": []}), "sites"),
        (json!({"name": "y", "role": "read", "sites": ["*", SITE_A]}), "sites"),
    ] {
        let (status, body) = create(&app, "admin-all", bad.clone()).await;
        assert_eq!(
            (status, body["field"].as_str()),
            (StatusCode::UNPROCESSABLE_ENTITY, Some(field)),
            "{bad}: {body}"
        );
    }
    let malformed = app
        .request(Method::POST, "/api/v1/tokens", Some("admin-all"))
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body("{")
        .send()
        .await
        .unwrap();
    assert_eq!(malformed.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn the_console_tokens_page_creates_shows_once_and_revokes() {
    let app = spawn_app().await;
    // Not for non-admins: no link, and the page refuses.
    let floor = session_cookie(&sign_in(&app.url, "floor-all", None).await);
    let (_, overview) = page(&app.url, "/console/overview", &floor).await;
    assert!(!overview.contains("/console/tokens"));
    assert_eq!(page(&app.url, "/console/tokens", &floor).await.0, StatusCode::FORBIDDEN);

    let admin = session_cookie(&sign_in(&app.url, "admin-all", None).await);
    let (status, html) = page(&app.url, "/console/tokens", &admin).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("data-token=\"floor-a\""), "config tokens are listed");
    assert!(html.contains("config file"));
    let csrf = csrf(&html);

    // Without the CSRF token: refused.
    let forged = browser()
        .post(format!("{}/console/tokens", app.url))
        .header(COOKIE, &admin)
        .form_body(&[("name", "kiosk"), ("role", "read"), ("sites", SITE_A)])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);

    let created = browser()
        .post(format!("{}/console/tokens", app.url))
        .header(COOKIE, &admin)
        .form_body(&[
            ("csrf", &csrf),
            ("name", "kiosk"),
            ("role", "read"),
            ("sites", &format!("{SITE_A}, {SITE_B}")),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::OK);
    let html = created.text().await.unwrap();
    let marker = "id=\"new-token-value\">";
    let start = html.find(marker).expect("the new token is shown") + marker.len();
    let token = html[start..start + html[start..].find('<').unwrap()].to_owned();
    assert_eq!(token.len(), 43);
    assert_eq!(
        status_at(
            &app.url,
            Method::GET,
            &format!("/api/v1/orders/{SITE_B}/{ORDER_B}"),
            &token
        )
        .await,
        StatusCode::OK,
        "both stores are in its scope"
    );
    // Shown once: the page again lists it, without the token.
    let (_, again) = page(&app.url, "/console/tokens", &admin).await;
    assert!(again.contains("data-token=\"kiosk\""));
    assert!(!again.contains(&token));

    let revoked = browser()
        .post(format!("{}/console/tokens/revoke", app.url))
        .header(COOKIE, &admin)
        .form_body(&[("csrf", &csrf), ("name", "kiosk")])
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), StatusCode::SEE_OTHER);
    assert_eq!(
        status_at(
            &app.url,
            Method::GET,
            &format!("/api/v1/orders/{SITE_A}/{ORDER_A}"),
            &token
        )
        .await,
        StatusCode::UNAUTHORIZED
    );
    let (_, after) = page(&app.url, "/console/tokens", &admin).await;
    assert!(after.contains("revoked "));
}
