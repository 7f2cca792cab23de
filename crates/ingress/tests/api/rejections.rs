//! Every bad input gets its status and publishes nothing.

use crate::helpers::*;

/// (case name, body, timestamp header, signature header)
type Case = (&'static str, Vec<u8>, Option<String>, Option<String>);

#[tokio::test]
async fn bad_signatures_and_timestamps_get_401_and_publish_nothing() {
    let app = spawn_app().await;
    let body = new_order_body();
    let ts = now_ms().to_string();
    let good = webflow::sign(SECRET, &ts, &body);
    let stale = (now_ms() - 301_000).to_string();
    let future = (now_ms() + 301_000).to_string();
    let mut flipped = good.clone().into_bytes();
    flipped[10] = if flipped[10] == b'a' { b'b' } else { b'a' };
    let flipped = String::from_utf8(flipped).unwrap();
    let mut altered_body = body.clone();
    altered_body.push(b' ');

    let cases: Vec<Case> = vec![
        ("no headers", body.clone(), None, None),
        ("no signature", body.clone(), Some(ts.clone()), None),
        ("no timestamp", body.clone(), None, Some(good.clone())),
        (
            "short signature",
            body.clone(),
            Some(ts.clone()),
            Some(good[..40].to_owned()),
        ),
        (
            "upper-case hex",
            body.clone(),
            Some(ts.clone()),
            Some(good.to_uppercase()),
        ),
        ("not hex", body.clone(), Some(ts.clone()), Some("z".repeat(64))),
        ("wrong by one byte", body.clone(), Some(ts.clone()), Some(flipped)),
        (
            "body altered after signing",
            altered_body,
            Some(ts.clone()),
            Some(good.clone()),
        ),
        (
            "stale",
            body.clone(),
            Some(stale.clone()),
            Some(webflow::sign(SECRET, &stale, &body)),
        ),
        (
            "future",
            body.clone(),
            Some(future.clone()),
            Some(webflow::sign(SECRET, &future, &body)),
        ),
        (
            "timestamp not a number",
            body.clone(),
            Some("soon".into()),
            Some(webflow::sign(SECRET, "soon", &body)),
        ),
        (
            "signed with another secret",
            body.clone(),
            Some(ts.clone()),
            Some(webflow::sign("nope", &ts, &body)),
        ),
    ];
    for (name, body, ts, sig) in cases {
        let response = app.post_raw(SITE_ID, &body, ts.as_deref(), sig.as_deref()).await;
        assert_eq!(response.status(), 401, "{name}");
        let error: serde_json::Value = response.json().await.unwrap();
        assert_eq!(error["code"], "invalid_signature", "{name}");
    }
    app.assert_nothing_published().await;
    let metrics = app.metrics().await;
    assert_eq!(
        counter(&metrics, "wms_ingress_webhooks_total", &[("outcome", "rejected")]),
        12,
        "{metrics}"
    );
    assert_eq!(
        counter(&metrics, "wms_ingress_webhooks_total", &[("reason", "replay_window")]),
        2
    );
    app.teardown().await;
}

#[tokio::test]
async fn an_unknown_site_gets_404() {
    let app = spawn_app().await;
    let body = new_order_body();
    let ts = now_ms().to_string();
    let sig = webflow::sign(SECRET, &ts, &body);
    let response = app
        .post_raw("000000000000000000000000", &body, Some(&ts), Some(&sig))
        .await;
    assert_eq!(response.status(), 404);
    app.assert_nothing_published().await;
    app.teardown().await;
}

#[tokio::test]
async fn a_body_over_the_limit_gets_413() {
    let app = spawn_app_with(Options {
        max_body_bytes: 1_024,
        ..Options::default()
    })
    .await;
    let body = format!(
        r#"{{"triggerType":"ecomm_new_order","payload":{{"comment":"{}"}}}}"#,
        "x".repeat(2_000)
    );
    let response = app.post_signed(body.as_bytes(), SECRET).await;
    assert_eq!(response.status(), 413);

    // Chunked (no Content-Length) is cut off while streaming.
    let ts = now_ms().to_string();
    let sig = webflow::sign(SECRET, &ts, body.as_bytes());
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = body.as_bytes().chunks(256).map(|c| Ok(c.to_vec())).collect();
    let response = app
        .client
        .post(app.webhook_url(SITE_ID))
        .header("x-webflow-timestamp", ts)
        .header("x-webflow-signature", sig)
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(chunks)))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    app.assert_nothing_published().await;
    app.teardown().await;
}

#[tokio::test]
async fn a_valid_signature_over_something_that_is_not_a_webhook_gets_400() {
    let app = spawn_app().await;
    for body in [
        &b"not json"[..],
        b"[1,2,3]",
        br#"{"payload":{}}"#,
        br#"{"triggerType":7}"#,
        b"",
    ] {
        let response = app.post_signed(body, SECRET).await;
        assert_eq!(response.status(), 400, "{}", String::from_utf8_lossy(body));
    }
    app.assert_nothing_published().await;
    app.teardown().await;
}
