//! Random bodies and headers: the handler never panics, answers a sensible status, and never
//! publishes a body whose signature it did not verify.

use crate::helpers::*;
use proptest::prelude::*;
use proptest::strategy::ValueTree;

#[derive(Debug, Clone)]
struct Attempt {
    body: Vec<u8>,
    timestamp: Option<String>,
    signature: Option<String>,
    signed_correctly: bool,
}

fn attempts() -> impl Strategy<Value = Attempt> {
    let body = prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..300),
        "[ -~]{0,200}".prop_map(String::into_bytes),
        any::<u32>()
            .prop_map(|n| format!(r#"{{"triggerType":"ecomm_new_order","payload":{{"orderId":"{n}"}}}}"#).into_bytes()),
    ];
    let timestamp = prop_oneof![Just(None), "[0-9]{0,15}".prop_map(Some), "[ -~]{0,20}".prop_map(Some)];
    let signature = prop_oneof![Just(None), "[0-9a-f]{64}".prop_map(Some), "[ -~]{0,70}".prop_map(Some)];
    (body, timestamp, signature, any::<bool>()).prop_map(|(body, timestamp, signature, sign)| {
        if sign {
            let ts = now_ms().to_string();
            let signature = webflow::sign(SECRET, &ts, &body);
            Attempt {
                body,
                timestamp: Some(ts),
                signature: Some(signature),
                signed_correctly: true,
            }
        } else {
            Attempt {
                body,
                timestamp,
                signature,
                signed_correctly: false,
            }
        }
    })
}

#[tokio::test]
async fn random_requests_never_panic_and_never_publish_unverified_bodies() {
    let app = spawn_app().await;
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 150,
        ..ProptestConfig::default()
    });
    let mut accepted_bodies = Vec::new();
    for _ in 0..150 {
        let attempt = attempts().new_tree(&mut runner).unwrap().current();
        let response = app
            .post_raw(
                SITE_ID,
                &attempt.body,
                attempt.timestamp.as_deref(),
                attempt.signature.as_deref(),
            )
            .await;
        let status = response.status().as_u16();
        assert!(matches!(status, 200 | 400 | 401), "status {status} for {attempt:?}");
        if status == 200 {
            assert!(attempt.signed_correctly, "accepted an unverified body: {attempt:?}");
            accepted_bodies.push(attempt.body.clone());
        } else if !attempt.signed_correctly {
            assert_eq!(status, 401, "{attempt:?}");
        }
    }
    // Health still fine after the storm.
    assert_eq!(
        app.client
            .get(format!("{}/healthz", app.health_address))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let queue = app.enrich_queue();
    // The ingress answers 200 only once the broker confirmed the publish (and a confirmed
    // message is in its queue), so the queue already holds everything that was published.
    for message in app.observer.drain(&queue).await {
        assert!(
            accepted_bodies.contains(&message.body),
            "published a body that was not accepted"
        );
    }
    app.teardown().await;
}
