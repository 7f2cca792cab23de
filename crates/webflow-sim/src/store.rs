//! The simulated store: places orders at a steady rate and delivers their webhooks.

use crate::state::SimState;
use rand::Rng;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use webflow::TriggerType;

/// Delivers a webhook signed exactly as Webflow signs to every target of the order's site;
/// 1 attempt + 3 retries each.
pub async fn deliver(state: &SimState, trigger: TriggerType, order: &serde_json::Value) -> bool {
    let site = state.site_of(order["orderId"].as_str().unwrap_or_default());
    deliver_all(state, &site, trigger, order).await
}

/// Delivers `ecomm_inventory_changed` for an item of `site_id`'s store.
pub async fn deliver_inventory(state: &SimState, site_id: &str, item: &serde_json::Value) -> bool {
    deliver_all(state, site_id, TriggerType::EcommInventoryChanged, item).await
}

/// The registered webhooks of `site_id` for `trigger` (or else the configured target): true
/// when there was one and every one was delivered.
async fn deliver_all(state: &SimState, site_id: &str, trigger: TriggerType, payload: &serde_json::Value) -> bool {
    let targets = state.webhook_targets(site_id, trigger.as_str());
    if targets.is_empty() {
        return false;
    }
    let mut all = true;
    for target in targets {
        all &= deliver_to(state, target, trigger.clone(), payload).await;
    }
    all
}

async fn deliver_to(
    state: &SimState,
    (url, secret): (String, String),
    trigger: TriggerType,
    payload: &serde_json::Value,
) -> bool {
    let body = serde_json::to_vec(&serde_json::json!({"triggerType": trigger, "payload": payload})).unwrap_or_default();
    let client = state.webhook_client();
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::SimConfig;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// A webhook receiver answering 200 to every request; counts the connections it accepts.
    /// With `close_after`, it closes each connection after answering one request (as a
    /// receiver does when its keep-alive ends or it restarts).
    async fn receiver(close_after: bool) -> (String, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/webhooks/webflow/site", listener.local_addr().unwrap());
        let accepted = Arc::new(AtomicUsize::new(0));
        let counter = accepted.clone();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut buffer = Vec::new();
                    let mut chunk = [0u8; 4096];
                    loop {
                        let Ok(read) = socket.read(&mut chunk).await else {
                            return;
                        };
                        if read == 0 {
                            return;
                        }
                        buffer.extend_from_slice(&chunk[..read]);
                        // One whole request: headers, then `content-length` bytes of body.
                        let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") else {
                            continue;
                        };
                        let headers = String::from_utf8_lossy(&buffer[..end]).to_lowercase();
                        let length: usize = headers
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse().ok())
                            .unwrap_or(0);
                        if buffer.len() < end + 4 + length {
                            continue;
                        }
                        buffer.drain(..end + 4 + length);
                        let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
                        if socket.write_all(answer).await.is_err() || close_after {
                            return;
                        }
                    }
                });
            }
        });
        (url, accepted)
    }

    fn simulator(url: &str) -> SimState {
        platform::install_crypto_provider();
        SimState::new(SimConfig {
            webhook_url: Some(url.to_owned()),
            retry_interval_ms: 10,
            ..SimConfig::default()
        })
    }

    #[tokio::test]
    async fn webhooks_are_delivered_over_one_kept_connection() {
        let (url, accepted) = receiver(false).await;
        let state = simulator(&url);
        for _ in 0..3 {
            let order = state.new_order(&["sim-sku-1"], false);
            assert!(deliver(&state, TriggerType::EcommNewOrder, &order).await);
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1, "one connection for every webhook");
        let stats = state.stats.lock().unwrap().clone();
        assert_eq!((stats.webhooks_delivered, stats.webhook_failures), (3, 0));
    }

    #[tokio::test]
    async fn a_connection_the_receiver_closed_is_not_reused() {
        let (url, accepted) = receiver(true).await;
        let state = simulator(&url);
        for _ in 0..3 {
            let order = state.new_order(&["sim-sku-1"], false);
            assert!(deliver(&state, TriggerType::EcommNewOrder, &order).await);
            // The receiver's close reaches the client before the next webhook.
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 3);
        let stats = state.stats.lock().unwrap().clone();
        assert_eq!(
            (stats.webhooks_delivered, stats.webhook_failures),
            (3, 0),
            "no delivery was sent on a closed connection"
        );
    }
}
