//! The simulated store: places orders at a steady rate and delivers their webhooks.

use crate::state::SimState;
use rand::Rng;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use webflow::TriggerType;

/// Delivers a webhook signed exactly as Webflow signs; 1 attempt + 3 retries.
pub async fn deliver(state: &SimState, trigger: TriggerType, order: &serde_json::Value) -> bool {
    let Some(target) = state.webhook_target(order["orderId"].as_str().unwrap_or_default()) else {
        return false;
    };
    deliver_to(state, target, trigger, order).await
}

/// Delivers `ecomm_inventory_changed` for an item of `site_id`'s store.
pub async fn deliver_inventory(state: &SimState, site_id: &str, item: &serde_json::Value) -> bool {
    let Some(target) = state.webhook_target_of_site(site_id) else {
        return false;
    };
    deliver_to(state, target, TriggerType::EcommInventoryChanged, item).await
}

async fn deliver_to(
    state: &SimState,
    (url, secret): (String, String),
    trigger: TriggerType,
    payload: &serde_json::Value,
) -> bool {
    let body = serde_json::to_vec(&serde_json::json!({"triggerType": trigger, "payload": payload})).unwrap_or_default();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap_or_default();
    for attempt in 0..4 {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(state.config.retry_interval_ms)).await;
        }
        let timestamp = chrono::Utc::now().timestamp_millis().to_string();
        let signature = webflow::sign(&secret, &timestamp, &body);
        let result = client
            .post(&url)
            .header("content-type", "application/json")
            .header("x-webflow-timestamp", &timestamp)
            .header("x-webflow-signature", signature)
            .body(body.clone())
            .send()
            .await;
        // Webflow counts only a 200 as delivered.
        if result.as_ref().is_ok_and(|r| r.status().as_u16() == 200) {
            if let Ok(mut stats) = state.stats.lock() {
                stats.webhooks_delivered += 1;
            }
            return true;
        }
        if let Ok(mut stats) = state.stats.lock() {
            stats.webhook_failures += 1;
        }
        tracing::warn!(%trigger, attempt, "webhook delivery failed");
    }
    if let Ok(mut stats) = state.stats.lock() {
        stats.webhooks_given_up += 1;
    }
    false
}

/// Creates orders at `orders_per_minute` until shutdown (or `max_orders`).
pub async fn run(state: Arc<SimState>, shutdown: CancellationToken) {
    let rate = state.config.orders_per_minute;
    if rate <= 0.0 || state.config.webhook_url.is_none() || state.config.catalog.is_empty() {
        return;
    }
    let interval = Duration::from_secs_f64(60.0 / rate);
    let mut created = 0u64;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(interval) => {}
        }
        if state.config.max_orders > 0 && created >= state.config.max_orders {
            return;
        }
        created += 1;
        let (skus, digital, refund) = {
            let mut rng = rand::rng();
            let lines = rng.random_range(1..=2);
            let skus: Vec<String> = (0..lines)
                .map(|_| state.config.catalog[rng.random_range(0..state.config.catalog.len())].clone())
                .collect();
            (
                skus,
                rng.random::<f64>() < state.config.digital_share,
                rng.random::<f64>() < state.config.refund_share,
            )
        };
        let sku_refs: Vec<&str> = skus.iter().map(String::as_str).collect();
        let order = state.new_order(&sku_refs, digital);
        let state = state.clone();
        tokio::spawn(async move {
            deliver(&state, TriggerType::EcommNewOrder, &order).await;
            if refund {
                tokio::time::sleep(Duration::from_millis(state.config.refund_after_ms)).await;
                let order_id = order["orderId"].as_str().unwrap_or_default().to_owned();
                let refunded = {
                    let Ok(mut orders) = state.orders.lock() else { return };
                    let Some(current) = orders.get_mut(&order_id) else {
                        return;
                    };
                    if current["status"] != "unfulfilled" {
                        return;
                    }
                    current["status"] = "refunded".into();
                    current["refundedOn"] = chrono::Utc::now().to_rfc3339().into();
                    current.clone()
                };
                deliver(&state, TriggerType::EcommOrderChanged, &refunded).await;
            }
        });
    }
}
