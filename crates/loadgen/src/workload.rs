//! What the scenarios send and how: order and webhook payloads, signed webhooks, and the
//! closed- and open-loop request drivers.

use crate::stats::Report;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

pub const BENCH_SKU: &str = "bench-sku";

/// SKU of the `index`-th order when the catalog has `skus` products (`bench-sku-<n>`).
pub fn sku_for(index: usize, skus: usize) -> String {
    format!("{BENCH_SKU}-{}", index % skus.max(1))
}

/// A realistic order (the size of Webflow's example), complete or without its address.
pub fn order_payload(order_id: &str, sku: &str, complete: bool) -> serde_json::Value {
    let mut order = serde_json::json!({
        "orderId": order_id,
        "status": "unfulfilled",
        "acceptedOn": "2024-03-29T21:29:21.555Z",
        "customerPaid": {"unit": "USD", "value": "5561", "string": "$ 55.61 USD"},
        "shippingAddress": {"type": "shipping", "addressee": "Bench Customer", "line1": "20 W 34th St",
                            "city": "New York", "state": "New York", "country": "US", "postalCode": "10118"},
        "customerInfo": {"fullName": "Bench Customer", "email": "bench@example.com"},
        "purchasedItems": [{
            "count": 1, "productId": "66072fb61b89448912e26791", "productName": "Luxurious Fresh Ball",
            "variantId": "66072fb71b89448912e2683f", "variantSKU": sku,
            "variantPrice": {"unit": "USD", "value": "5561", "string": "$ 55.61 USD"},
            "weight": 11, "height": 70, "width": 82, "length": 9
        }],
        "purchasedItemsCount": 1,
        "isShippingRequired": true,
        "totals": {"subtotal": {"unit": "USD", "value": "5561", "string": "$ 55.61 USD"}, "extras": [],
                   "total": {"unit": "USD", "value": "5561", "string": "$ 55.61 USD"}}
    });
    if !complete && let Some(map) = order.as_object_mut() {
        map.remove("shippingAddress");
    }
    order
}

/// Id of the `index`-th order of run `run`.
pub fn order_id(run: &str, index: usize) -> String {
    format!("{run}-{index:06}")
}

/// The `index`-th order of run `run`, as Webflow's API returns it (complete).
pub fn order(run: &str, index: usize, skus: usize) -> serde_json::Value {
    order_payload(&order_id(run, index), &sku_for(index, skus), true)
}

/// The `ecomm_new_order` webhook of the `index`-th order of run `run`.
pub fn webhook_body(run: &str, index: usize, complete: bool, skus: usize) -> Vec<u8> {
    let payload = order_payload(&order_id(run, index), &sku_for(index, skus), complete);
    let body = serde_json::json!({"triggerType": "ecomm_new_order", "payload": payload});
    serde_json::to_vec(&body).unwrap_or_default()
}

pub struct WebhookTarget {
    pub url: String,
    pub secret: String,
    pub client: reqwest::Client,
}

/// Where the `ingress` and `pipeline` scenarios send webhooks, and their signing secret.
#[derive(clap::Args, Debug)]
pub struct WebhookEndpoint {
    #[arg(
        long,
        default_value = "http://127.0.0.1:8080/webhooks/webflow/65f0c0ffee0000000000beef"
    )]
    pub url: String,
    #[arg(long, default_value = "bench-secret")]
    pub secret: String,
}

impl WebhookEndpoint {
    pub fn target(&self, client: reqwest::Client) -> WebhookTarget {
        WebhookTarget {
            url: self.url.clone(),
            secret: self.secret.clone(),
            client,
        }
    }
}

/// A webhook signed ahead of time, so signing cost stays out of the measured window.
#[derive(Clone)]
pub struct Signed {
    pub body: bytes::Bytes,
    pub timestamp: String,
    pub signature: String,
}

impl WebhookTarget {
    pub fn sign(&self, body: Vec<u8>) -> Signed {
        let timestamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis().to_string())
            .unwrap_or_default();
        let signature = webflow::sign(&self.secret, &timestamp, &body);
        Signed {
            body: body.into(),
            timestamp,
            signature,
        }
    }

    pub async fn send(&self, body: Vec<u8>) -> Result<(), String> {
        let signed = self.sign(body);
        self.send_signed(&signed).await
    }

    pub async fn send_signed(&self, signed: &Signed) -> Result<(), String> {
        let (ts, signature, body) = (signed.timestamp.clone(), signed.signature.clone(), signed.body.clone());
        let response = self
            .client
            .post(&self.url)
            .header("content-type", "application/json")
            .header("x-webflow-timestamp", ts)
            .header("x-webflow-signature", signature)
            .body(body)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if response.status().as_u16() == 200 {
            Ok(())
        } else {
            Err(response.status().to_string())
        }
    }
}

/// Closed loop: `concurrency` workers send `total` requests as fast as they are answered.
/// `send(worker, index)` sends request `index` from worker `worker` (`0..concurrency`), so a
/// worker can keep a connection of its own.
pub async fn closed_loop<F, Fut>(label: &str, total: usize, concurrency: usize, send: F) -> Report
where
    F: Fn(usize, usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<(), String>> + Send,
{
    let send = Arc::new(send);
    let next = Arc::new(AtomicUsize::new(0));
    let failed = Arc::new(AtomicUsize::new(0));
    let latencies = Arc::new(Mutex::new(Vec::with_capacity(total)));
    let started = Instant::now();
    let mut workers = Vec::new();
    for worker in 0..concurrency.max(1) {
        let (send, next, failed, latencies) = (send.clone(), next.clone(), failed.clone(), latencies.clone());
        workers.push(tokio::spawn(async move {
            let mut local = Vec::new();
            loop {
                let index = next.fetch_add(1, Ordering::Relaxed);
                if index >= total {
                    break;
                }
                let t = Instant::now();
                match send(worker, index).await {
                    Ok(()) => local.push(t.elapsed()),
                    Err(_) => {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            latencies.lock().await.extend(local);
        }));
    }
    for worker in workers {
        let _ = worker.await;
    }
    let elapsed = started.elapsed();
    let latencies = std::mem::take(&mut *latencies.lock().await);
    Report::new(label, latencies, failed.load(Ordering::Relaxed), elapsed)
}

/// Open loop: starts one request every `1/rate` seconds for `duration`, whatever the answers.
pub async fn open_loop<F, Fut>(label: &str, rate_per_s: u32, duration: Duration, send: F) -> Report
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = Result<(), String>> + Send + 'static,
{
    let send = Arc::new(send);
    let interval = Duration::from_secs_f64(1.0 / f64::from(rate_per_s.max(1)));
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let total = (duration.as_secs_f64() * f64::from(rate_per_s)) as usize;
    let mut tasks = Vec::with_capacity(total);
    let started = Instant::now();
    for index in 0..total {
        ticker.tick().await;
        let send = send.clone();
        tasks.push(tokio::spawn(async move {
            let t = Instant::now();
            send(index).await.map(|()| t.elapsed())
        }));
    }
    let mut latencies = Vec::with_capacity(total);
    let mut failed = 0;
    for task in tasks {
        match task.await {
            Ok(Ok(latency)) => latencies.push(latency),
            _ => failed += 1,
        }
    }
    Report::new(label, latencies, failed, started.elapsed())
}
