//! An operator token created through the API is never written to the logs: not when it is
//! created, used, signed in with, refused, or revoked. Its own test binary, so its log
//! subscriber (debug level, every target, into memory) is the process's.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

#[path = "api/helpers.rs"]
#[allow(dead_code, reason = "this binary uses part of the API tests' harness")]
mod helpers;

use helpers::{ORDER_A, SITE_A, spawn_app};
use platform::telemetry::{LogFormat, TelemetrySettings};
use reqwest::{Method, StatusCode};
use std::io::Write;
use std::sync::{Arc, Mutex};

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn a_created_token_never_reaches_the_logs() {
    let logs = Captured::default();
    let sink = logs.clone();
    platform::telemetry::init(platform::telemetry::subscriber(
        &TelemetrySettings {
            log_format: LogFormat::Json,
            log_level: "debug".into(),
            otlp_endpoint: None,
        },
        move || sink.clone(),
    ));
    let app = spawn_app().await;
    let created: serde_json::Value = app
        .request(Method::POST, "/api/v1/tokens", Some("admin-all"))
        .json(&serde_json::json!({"name": "logged", "role": "read", "sites": [SITE_A]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = created["token"].as_str().unwrap().to_owned();
    let order = format!("/api/v1/orders/{SITE_A}/{ORDER_A}");
    let used = app.request(Method::GET, &order, Some(&token)).send().await.unwrap();
    assert_eq!(used.status(), StatusCode::OK);
    let signed_in = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .post(format!("{}/console/sign-in", app.url))
        .header(reqwest::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(format!("token={token}&next=%2Fconsole%2Foverview"))
        .send()
        .await
        .unwrap();
    assert_eq!(signed_in.status(), StatusCode::SEE_OTHER);
    let revoked = app
        .request(Method::DELETE, "/api/v1/tokens/logged", Some("admin-all"))
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), StatusCode::NO_CONTENT);
    let refused = app.request(Method::GET, &order, Some(&token)).send().await.unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);

    let text = String::from_utf8_lossy(&logs.0.lock().unwrap()).into_owned();
    assert!(text.contains("operator token created"), "the logs were captured");
    assert!(text.contains("operator token revoked"), "the logs were captured");
    assert!(text.contains("console sign-in"), "the logs were captured");
    assert!(!text.contains(&token), "the token is in the logs");
}
