//! Inputs: counts that would overflow answer 422, and every SKU path is checked the same way.

use crate::helpers::*;
use reqwest::Method;

#[tokio::test]
async fn a_count_that_would_overflow_answers_422() {
    let app = spawn_app().await;
    let receive = |quantity: serde_json::Value| {
        app.request(
            Method::POST,
            &format!("/api/v1/inventory/{SKU_A}/receive"),
            Some("admin-all"),
        )
        .json(&serde_json::json!({"quantity": quantity}))
        .send()
    };
    // on_hand is 10: adding i64::MAX overflows.
    let response = receive(serde_json::json!(i64::MAX)).await.unwrap();
    assert_eq!(response.status(), 422);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["code"], "stock_overflow");
    // Beyond what a 64-bit count holds at all.
    for quantity in [serde_json::json!(u64::MAX), serde_json::json!(1e30)] {
        let response = receive(quantity.clone()).await.unwrap();
        assert_eq!(response.status(), 422, "{quantity}");
    }
    for on_hand in [
        serde_json::json!(u64::MAX),
        serde_json::json!(1e30),
        serde_json::json!(-1),
    ] {
        let response = app
            .request(Method::PUT, &format!("/api/v1/inventory/{SKU_A}"), Some("admin-all"))
            .json(&serde_json::json!({"on_hand": on_hand}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 422, "{on_hand}");
    }
    let level: serde_json::Value = app
        .request(Method::GET, &format!("/api/v1/inventory/{SKU_A}"), Some("admin-all"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(level["on_hand"], 10);
}

#[tokio::test]
async fn every_sku_path_is_validated_the_same_way() {
    let app = spawn_app().await;
    let long = "x".repeat(201);
    for sku in ["bad%07sku", long.as_str()] {
        for (method, suffix, body) in [
            (Method::GET, "", None),
            (Method::PUT, "", Some(serde_json::json!({"on_hand": 1}))),
            (Method::POST, "/receive", Some(serde_json::json!({"quantity": 1}))),
        ] {
            let mut request = app.request(
                method.clone(),
                &format!("/api/v1/inventory/{sku}{suffix}"),
                Some("admin-all"),
            );
            if let Some(body) = body {
                request = request.json(&body);
            }
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), 422, "{method} {suffix} {sku}");
            let body: serde_json::Value = response.json().await.unwrap();
            assert_eq!(body["field"], "sku");
        }
    }
}
