//! Many webhooks at once: every one confirmed and published exactly once.

use crate::helpers::*;
use std::time::Duration;

#[tokio::test]
async fn five_hundred_concurrent_webhooks_give_five_hundred_messages() {
    let app = spawn_app().await;
    let base: serde_json::Value = serde_json::from_slice(&new_order_body()).unwrap();
    let mut tasks = Vec::new();
    for i in 0..500 {
        let mut body = base.clone();
        body["payload"]["orderId"] = format!("c-{i:04}").into();
        let body = serde_json::to_vec(&body).unwrap();
        let client = app.client.clone();
        let url = app.webhook_url(SITE_ID);
        tasks.push(tokio::spawn(async move {
            let ts = now_ms().to_string();
            let sig = webflow::sign(SECRET, &ts, &body);
            client
                .post(url)
                .header("x-webflow-timestamp", ts)
                .header("x-webflow-signature", sig)
                .body(body)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }));
    }
    let mut ok = 0;
    for task in tasks {
        if task.await.unwrap() == 200 {
            ok += 1;
        }
    }
    assert_eq!(ok, 500, "every webhook acknowledged");
    let queue = app.enrich_queue();
    assert_eq!(
        app.observer.wait_for_count(&queue, 500, Duration::from_secs(20)).await,
        500
    );
    let messages = app.observer.drain(&queue).await;
    let mut ids: Vec<String> = messages.iter().filter_map(|m| m.message_id()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 500, "none lost, none duplicated");
    app.teardown().await;
}
