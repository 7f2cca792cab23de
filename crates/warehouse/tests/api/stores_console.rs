//! The console's Stores page and "Connect with Webflow", end to end against the simulator:
//! an admin adds, edits and removes a store through forms (CSRF-checked), and connects sites
//! through the OAuth authorization-code flow, whose `state` only the same session completes.

use crate::console_sessions::{FormBody, browser, csrf, page, session_cookie, sign_in};
use crate::helpers::*;
use crate::stores::{INGRESS, NEW_SITE, NEW_TOKEN, simulator};
use reqwest::StatusCode;
use reqwest::header::{COOKIE, LOCATION};
use secrecy::ExposeSecret;
use webflow_sim::Simulator;

/// Where Webflow sends the browser back; the test, as the browser, follows it to the app.
const REDIRECT_URL: &str = "http://console.example/console/stores/oauth/callback";

async fn spawn(sim: &Simulator) -> TestApp {
    let base = sim.base_url.clone();
    let app_config = sim.state.config.oauth.clone();
    spawn_app_with(move |settings| {
        settings.webflow.api_base_url = format!("{base}/v2");
        settings.webflow.allow_insecure_http = true;
        settings.warehouse.public_ingress_url = Some(INGRESS.into());
        settings.webflow.oauth = Some(
            serde_json::from_value(serde_json::json!({
                "client_id": app_config.client_id,
                "client_secret": app_config.client_secret,
                "redirect_url": REDIRECT_URL,
                "authorize_url": format!("{base}/oauth/authorize"),
                "token_url": format!("{base}/oauth/token"),
            }))
            .unwrap(),
        );
    })
    .await
}

async fn post_form(app: &TestApp, path: &str, cookie: &str, pairs: &[(&str, &str)]) -> reqwest::Response {
    browser()
        .post(format!("{}{path}", app.url))
        .header(COOKIE, cookie)
        .form_body(pairs)
        .send()
        .await
        .unwrap()
}

fn location(response: &reqwest::Response) -> String {
    response.headers().get(LOCATION).unwrap().to_str().unwrap().to_owned()
}

#[tokio::test]
async fn an_admin_adds_edits_and_removes_a_store_in_the_console() {
    let (sim, _stop) = simulator();
    let app = spawn(&sim).await;
    let cookie = session_cookie(&sign_in(&app.url, "admin-all", None).await);
    let (status, html) = page(&app.url, "/console/stores", &cookie).await;
    assert_eq!(status, StatusCode::OK);
    let token = csrf(&html);

    // Without the CSRF token, nothing is created.
    let refused = post_form(
        &app,
        "/console/stores",
        &cookie,
        &[
            ("name", "shop-c"),
            ("merchant", "default"),
            ("site_id", NEW_SITE),
            ("api_token", NEW_TOKEN),
        ],
    )
    .await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);

    let added = post_form(
        &app,
        "/console/stores",
        &cookie,
        &[
            ("csrf", &token),
            ("name", "shop-c"),
            ("merchant", "default"),
            ("site_id", NEW_SITE),
            ("api_token", NEW_TOKEN),
            ("rate_limit_per_minute", "90"),
            ("register_webhooks", "on"),
        ],
    )
    .await;
    assert_eq!(added.status(), StatusCode::SEE_OTHER);
    assert!(location(&added).contains("done="), "{}", location(&added));
    assert_eq!(sim.state.webhooks_of(NEW_SITE).len(), 3);
    let (_, html) = page(&app.url, "/console/stores", &cookie).await;
    assert!(
        html.contains("data-store=\"shop-c\"") && html.contains("default"),
        "{html}"
    );
    assert!(!html.contains(NEW_TOKEN));

    let (status, edit) = page(&app.url, "/console/stores/shop-c", &cookie).await;
    assert_eq!(status, StatusCode::OK);
    assert!(edit.contains("value=\"90\""));
    let saved = post_form(
        &app,
        "/console/stores/shop-c",
        &cookie,
        &[
            ("csrf", &token),
            ("merchant", "default"),
            ("rate_limit_per_minute", "45"),
            ("send_fulfillment_email", "false"),
            ("inventory_sync", "false"),
            ("sku_collection_id", ""),
            ("inventory_safety_buffer", "0"),
            ("api_token", ""),
        ],
    )
    .await;
    assert_eq!(saved.status(), StatusCode::SEE_OTHER, "{}", saved.text().await.unwrap());
    let row = app
        .db
        .client()
        .await
        .query_one(
            "SELECT rate_limit_per_minute, send_fulfillment_email FROM stores WHERE name = 'shop-c'",
            &[],
        )
        .await
        .unwrap();
    assert_eq!((row.get::<_, i32>(0), row.get::<_, bool>(1)), (45, false));

    let removed = post_form(&app, "/console/stores/shop-c/remove", &cookie, &[("csrf", &token)]).await;
    assert_eq!(removed.status(), StatusCode::SEE_OTHER);
    assert!(sim.state.webhooks_of(NEW_SITE).is_empty());
    let (status, _) = page(&app.url, "/console/stores/shop-c", &cookie).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Only admins see the page.
    let reader = session_cookie(&sign_in(&app.url, "read-all", None).await);
    let (status, _) = page(&app.url, "/console/stores", &reader).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn connect_with_webflow_creates_a_store_per_authorized_site_with_oauth_webhooks() {
    let (sim, _stop) = simulator();
    let app = spawn(&sim).await;
    let cookie = session_cookie(&sign_in(&app.url, "admin-all", None).await);
    let (_, html) = page(&app.url, "/console/stores", &cookie).await;
    assert!(html.contains("Connect with Webflow"));
    let token = csrf(&html);

    // To Webflow's consent page, with a state bound to this session.
    let connect = post_form(
        &app,
        "/console/stores/oauth/connect",
        &cookie,
        &[("csrf", &token), ("merchant", "default")],
    )
    .await;
    assert_eq!(connect.status(), StatusCode::SEE_OTHER);
    let authorize = location(&connect);
    assert!(
        authorize.starts_with(&format!("{}/oauth/authorize?", sim.base_url)),
        "{authorize}"
    );

    // Webflow approves and sends the browser back with a code and the state.
    let approved = browser().get(&authorize).send().await.unwrap();
    assert_eq!(approved.status(), StatusCode::FOUND);
    let back = location(&approved);
    let path_and_query = back.strip_prefix("http://console.example").unwrap().to_owned();

    // The callback arrives without the (SameSite=Strict) cookie and continues on this site.
    let landing = browser()
        .get(format!("{}{path_and_query}", app.url))
        .send()
        .await
        .unwrap();
    assert_eq!(landing.status(), StatusCode::OK);
    let landing = landing.text().await.unwrap();
    let start = landing.find("id=\"continue\" href=\"").unwrap() + 20;
    let finish = landing[start..start + landing[start..].find('"').unwrap()].replace("&amp;", "&");
    assert!(finish.starts_with("/console/stores/oauth/finish?"), "{finish}");

    // Another session cannot complete this flow.
    let other = session_cookie(&sign_in(&app.url, "admin-all", None).await);
    let (status, _) = page(&app.url, &finish, &other).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let count = |sql: &'static str| {
        let app = &app;
        async move {
            app.db
                .client()
                .await
                .query_one(sql, &[])
                .await
                .unwrap()
                .get::<_, i64>(0)
        }
    };
    assert_eq!(count("SELECT count(*) FROM stores").await, 0);

    // This session completes it: a store per authorized site, source oauth.
    let done = browser()
        .get(format!("{}{finish}", app.url))
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(done.status(), StatusCode::SEE_OTHER);
    assert!(location(&done).contains("done=Connected"), "{}", location(&done));
    let sites = sim.state.site_ids();
    assert_eq!(
        count("SELECT count(*) FROM stores WHERE source = 'oauth'").await,
        sites.len() as i64
    );
    let client = app.db.client().await;
    let rows = client
        .query(
            "SELECT id, name, site_id, api_token_sealed FROM stores ORDER BY id",
            &[],
        )
        .await
        .unwrap();
    let keys = secrets_at_rest::keyring_or_dev(&secrets_at_rest::SecretsSettings::default()).unwrap();
    for row in &rows {
        let (id, name, site, sealed): (i64, String, String, String) = (row.get(0), row.get(1), row.get(2), row.get(3));
        let suffix: String = site.chars().rev().take(6).collect::<String>().chars().rev().collect();
        // Named after the site's shortName (`shop-<last 6 of the id>` in the simulator), in
        // the name rule's characters (runs of others as one `-`).
        assert_eq!(name, format!("shop-{suffix}").replace("--", "-"));
        let access_token = keys.open(&sealed, &format!("stores.api_token:{id}")).unwrap();
        assert!(sim.state.is_oauth_token(access_token.expose_secret()));
        // Webhooks registered with the app's token: signed with its client secret.
        let hooks = sim.state.webhooks_of(&site);
        assert_eq!(hooks.len(), 3);
        assert!(hooks.iter().all(|h| h.secret_key.is_none()));
    }
    assert_eq!(
        count("SELECT count(*) FROM store_webhooks WHERE secret_sealed IS NULL").await,
        3 * sites.len() as i64
    );

    // The code works once: replaying the finish changes nothing.
    let replay = browser()
        .get(format!("{}{finish}", app.url))
        .header(COOKIE, &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(replay.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(count("SELECT count(*) FROM stores").await, sites.len() as i64);
}
