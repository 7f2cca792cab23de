//! The Webflow client against wiremock with Webflow's documented shapes.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

use secrecy::SecretString;
use std::path::PathBuf;
use std::time::Duration;
use webflow::{FulfillOrderRequest, OrderStatus, UpdateOrderRequest, WebflowClient, WebflowError};
use wiremock::matchers::{body_json, header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

const SITE: &str = "65f0c0ffee0000000000beef";

fn fixture(name: &str) -> serde_json::Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/webflow")
        .join(name);
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn client(server: &MockServer) -> WebflowClient {
    WebflowClient::new(&server.uri(), Duration::from_millis(500), true).unwrap()
}

fn token() -> SecretString {
    SecretString::from("site-token")
}

#[tokio::test]
async fn get_order_sends_the_bearer_token_and_decodes_the_order() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(format!("/sites/{SITE}/orders/fc7-128")))
        .and(header("authorization", "Bearer site-token"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(fixture("order.get.response.json"))
                .insert_header("x-ratelimit-remaining", "59")
                .insert_header("x-ratelimit-limit", "60"),
        )
        .expect(1)
        .mount(&server)
        .await;
    let response = client(&server)
        .get_order(&token(), &SITE.into(), &"fc7-128".into())
        .await
        .unwrap();
    assert!(response.value.order_id.is_some());
    assert_eq!(response.call.status, Some(200));
    assert_eq!(response.call.rate_limit_remaining, Some(59));
    assert_eq!(response.call.rate_limit_limit, Some(60));
    assert_eq!(response.call.path, format!("/sites/{SITE}/orders/fc7-128"));
}

#[tokio::test]
async fn write_calls_use_webflow_wire_names() {
    let server = MockServer::start().await;
    Mock::given(method("PATCH"))
        .and(path(format!("/sites/{SITE}/orders/fc7-128")))
        .and(body_json(
            serde_json::json!({"shippingProvider":"UPS","shippingTracking":"1Z","shippingTrackingURL":"https://t/1Z"}),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(fixture("order.update.response.json")))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path(format!("/sites/{SITE}/orders/fc7-128/fulfill")))
        .and(body_json(serde_json::json!({"sendOrderFulfilledEmail": true})))
        .respond_with(ResponseTemplate::new(200).set_body_json(fixture("order.fulfill.response.json")))
        .expect(1)
        .mount(&server)
        .await;
    let client = client(&server);
    let update = UpdateOrderRequest {
        shipping_provider: Some("UPS".into()),
        shipping_tracking: Some("1Z".into()),
        shipping_tracking_url: Some("https://t/1Z".into()),
        comment: None,
    };
    client
        .update_order(&token(), &SITE.into(), &"fc7-128".into(), &update)
        .await
        .unwrap();
    client
        .fulfill_order(
            &token(),
            &SITE.into(),
            &"fc7-128".into(),
            &FulfillOrderRequest {
                send_order_fulfilled_email: true,
            },
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn list_orders_pages_with_status_offset_and_limit() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path(format!("/sites/{SITE}/orders")))
        .and(query_param("status", "unfulfilled"))
        .and(query_param("offset", "100"))
        .and(query_param("limit", "100"))
        .respond_with(ResponseTemplate::new(200).set_body_json(fixture("orders.list.response.json")))
        .expect(1)
        .mount(&server)
        .await;
    let page = client(&server)
        .list_orders(&token(), &SITE.into(), Some(&OrderStatus::Unfulfilled), 100, 500)
        .await
        .unwrap();
    assert_eq!(page.value.orders.len(), 2);
}

#[tokio::test]
async fn errors_are_typed_and_classified() {
    let cases = [
        (400, "error.400.bad_request.json", false),
        (401, "error.401.not_authorized.json", false),
        (403, "error.403.missing_scopes.json", false),
        (404, "error.404.resource_not_found.json", false),
        (409, "error.409.ecommerce_not_enabled.json", false),
        (429, "error.429.too_many_requests.json", true),
        (500, "error.500.internal_error.json", true),
    ];
    for (status, name, transient) in cases {
        let server = MockServer::start().await;
        let body = fixture(name);
        Mock::given(method("GET"))
            .respond_with(
                ResponseTemplate::new(status)
                    .set_body_json(body.clone())
                    .insert_header("retry-after", "7"),
            )
            .mount(&server)
            .await;
        let error = client(&server)
            .get_order(&token(), &SITE.into(), &"x".into())
            .await
            .unwrap_err();
        assert_eq!(error.status(), Some(status), "{name}");
        assert_eq!(error.is_transient(), transient, "{name}");
        assert_eq!(error.retry_after(), Some(Duration::from_secs(7)));
        let WebflowError::Api { body: parsed, .. } = &error else {
            panic!("{error:?}")
        };
        assert_eq!(parsed.code.as_deref(), body["code"].as_str(), "{name}");
        assert!(!error.to_string().contains("site-token"), "token leaked: {error}");
    }
}

#[tokio::test]
async fn a_slow_answer_is_a_transient_timeout_with_unknown_outcome() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(2)))
        .mount(&server)
        .await;
    let error = client(&server)
        .fulfill_order(
            &token(),
            &SITE.into(),
            &"x".into(),
            &FulfillOrderRequest {
                send_order_fulfilled_email: false,
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(error, WebflowError::Timeout { .. }), "{error:?}");
    assert!(error.is_transient() && error.outcome_unknown());
}

#[tokio::test]
async fn a_non_json_error_body_is_kept_as_the_message() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(502).set_body_string("Bad gateway"))
        .mount(&server)
        .await;
    let error = client(&server)
        .get_order(&token(), &SITE.into(), &"x".into())
        .await
        .unwrap_err();
    let WebflowError::Api { body, .. } = &error else {
        panic!()
    };
    assert_eq!(body.message.as_deref(), Some("Bad gateway"));
    assert!(error.is_transient());
}

#[tokio::test]
async fn the_oauth_code_is_exchanged_with_a_form_and_the_token_is_not_in_debug_output() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/oauth/token"))
        .and(header("content-type", "application/x-www-form-urlencoded"))
        .and(wiremock::matchers::body_string(
            "client_id=app&client_secret=s%26cret&code=c1&grant_type=authorization_code&redirect_uri=https%3A%2F%2Fwms.example%2Fcb",
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "access_token": "oauth-access-token", "token_type": "bearer", "scope": "sites:read"
        })))
        .expect(1)
        .mount(&server)
        .await;
    let token = client(&server)
        .exchange_oauth_code(
            &format!("{}/oauth/token", server.uri()),
            "app",
            &SecretString::from("s&cret"),
            "c1",
            "https://wms.example/cb",
        )
        .await
        .unwrap()
        .value;
    assert_eq!(
        secrecy::ExposeSecret::expose_secret(&token.access_token),
        "oauth-access-token"
    );
    assert!(!format!("{token:?}").contains("oauth-access-token"));
}

#[tokio::test]
async fn introspection_site_and_webhook_deletion_use_webflow_paths() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/token/introspect"))
        .respond_with(ResponseTemplate::new(200).set_body_json(serde_json::json!({
            "authorization": {"rateLimit": 60, "authorizedTo": {"siteIds": [SITE], "workspaceIds": [], "userIds": []}}
        })))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path(format!("/sites/{SITE}")))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(serde_json::json!({"id": SITE, "shortName": "shop", "displayName": "Shop"})),
        )
        .mount(&server)
        .await;
    Mock::given(method("DELETE"))
        .and(path("/webhooks/wh-1"))
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("DELETE"))
        .and(path("/webhooks/wh-gone"))
        .respond_with(ResponseTemplate::new(404).set_body_json(serde_json::json!({
            "code": "resource_not_found", "message": "Requested resource not found"
        })))
        .mount(&server)
        .await;
    let client = client(&server);
    let introspection = client.introspect_token(&token()).await.unwrap().value;
    assert_eq!(
        introspection.authorization.authorized_to.site_ids,
        vec![SITE.to_owned()]
    );
    assert_eq!(introspection.authorization.rate_limit, Some(60));
    let site = client.get_site(&token(), &SITE.into()).await.unwrap().value;
    assert_eq!(site.short_name.as_deref(), Some("shop"));
    client.delete_webhook(&token(), "wh-1").await.unwrap();
    let gone = client.delete_webhook(&token(), "wh-gone").await.unwrap_err();
    assert_eq!(gone.status(), Some(404));
}
