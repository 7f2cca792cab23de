//! The warehouse API serves every operation its OpenAPI document describes: the document is
//! generated from the handlers' annotations, the routes are registered by hand, and this test
//! keeps the two from drifting apart.

use e2e::*;
use reqwest::Method;

#[tokio::test]
async fn every_documented_operation_is_routed() {
    let p = start_pipeline(PipelineOptions {
        start_enrich: false,
        start_reserve: false,
        start_warehouse: true,
        ..PipelineOptions::default()
    })
    .await;
    let spec: serde_json::Value = p
        .warehouse(Method::GET, "/api/v1/openapi.json")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let paths = spec["paths"].as_object().expect("the document lists paths");
    let mut checked = 0;
    for (template, operations) in paths {
        // Path parameters get a value of the right shape; the handler may then answer 404
        // (no such order) or 422, but never "no route" or 405.
        let path = template
            .replace("{site_id}", SITE_ID)
            .replace("{order_id}", "route-check")
            .replace("{sku}", SKU_BALL)
            .replace("{id}", "1");
        for method in operations.as_object().expect("operations by method").keys() {
            let method: Method = method.to_uppercase().parse().expect("an HTTP method");
            let response = p
                .warehouse(method.clone(), &path)
                .header("content-type", "application/json")
                .body("{}")
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            let body: serde_json::Value = response.json().await.unwrap_or_default();
            let message = body["message"].as_str().unwrap_or_default();
            assert_ne!(status, 405, "{method} {template} is documented but not routed: {body}");
            assert!(
                !(status == 404 && message.starts_with("no route")),
                "{method} {template} is documented but not routed: {body}"
            );
            checked += 1;
        }
    }
    assert!(
        checked >= 10,
        "the document describes every operation (found {checked})"
    );
    p.teardown().await;
}
