//! The simulator's state: orders, writes, faults and the rate limiter.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SimConfig {
    pub bind: String,
    pub site_id: String,
    pub token: String,
    pub webhook_secret: String,
    /// Where the store delivers webhooks (`None`: no store).
    pub webhook_url: Option<String>,
    /// New orders per minute (0: none).
    pub orders_per_minute: f64,
    pub catalog: Vec<String>,
    /// Share of orders with nothing to ship.
    pub digital_share: f64,
    /// Share of orders refunded a little after they are placed.
    pub refund_share: f64,
    pub refund_after_ms: u64,
    /// Delay between webhook delivery attempts (Webflow: 10 minutes).
    pub retry_interval_ms: u64,
    /// Stop creating orders after this many (0: no limit).
    pub max_orders: u64,
    pub faults: Faults,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            bind: "127.0.0.1:8090".into(),
            site_id: "65f0c0ffee0000000000beef".into(),
            token: "sim-token".into(),
            webhook_secret: "sim-webhook-secret".into(),
            webhook_url: None,
            orders_per_minute: 0.0,
            catalog: (1..=5).map(|i| format!("sim-sku-{i}")).collect(),
            digital_share: 0.1,
            refund_share: 0.05,
            refund_after_ms: 500,
            retry_interval_ms: 600_000,
            max_orders: 0,
            faults: Faults::default(),
        }
    }
}

/// Faults, settable at run time through `POST /_sim/faults`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct Faults {
    pub latency_ms: u64,
    /// Share of API calls answered 500.
    pub error_rate: f64,
    /// Share of API calls that hang for 30 s (a timeout for the caller), after applying writes.
    pub timeout_rate: f64,
    /// Per-token limit (0: unlimited).
    pub rate_limit_per_minute: u32,
    /// Share of API calls answered 429 with `Retry-After: 1` whatever the limit (a 429 storm).
    pub throttle_rate: f64,
}

/// A write the API received.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct WriteRecord {
    pub method: String,
    pub path: String,
    pub order_id: String,
    pub body: serde_json::Value,
    pub at: chrono::DateTime<chrono::Utc>,
}

#[derive(Default)]
struct Limiter {
    calls: VecDeque<Instant>,
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Stats {
    pub api_calls: u64,
    pub throttled: u64,
    pub errors_injected: u64,
    pub webhooks_delivered: u64,
    pub webhook_failures: u64,
    /// Webhooks not delivered after every retry (only reconciliation can recover those orders).
    pub webhooks_given_up: u64,
}

pub struct SimState {
    pub config: SimConfig,
    pub orders: Mutex<BTreeMap<String, serde_json::Value>>,
    pub writes: Mutex<Vec<WriteRecord>>,
    pub faults: Mutex<Faults>,
    pub stats: Mutex<Stats>,
    limiter: Mutex<Limiter>,
    pub next_order: Mutex<u64>,
}

/// Why `POST /_sim/orders/import` refused a batch (nothing of it is stored).
#[derive(Debug, PartialEq, Eq)]
pub enum ImportError {
    MissingOrderId { index: usize },
}

impl std::fmt::Display for ImportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::MissingOrderId { index } => write!(f, "order {index} has no orderId"),
        }
    }
}

pub enum Admission {
    Allowed { remaining: u32, limit: u32 },
    Throttled { retry_after: Duration, limit: u32 },
}

impl SimState {
    pub fn new(config: SimConfig) -> Self {
        let faults = config.faults.clone();
        Self {
            config,
            orders: Mutex::new(BTreeMap::new()),
            writes: Mutex::new(Vec::new()),
            faults: Mutex::new(faults),
            stats: Mutex::new(Stats::default()),
            limiter: Mutex::new(Limiter::default()),
            // Order ids continue from a random point, so a restarted simulator (or a second
            // one) against the same warehouse database does not reuse the ids of earlier orders.
            next_order: Mutex::new(rand::random::<u64>() & 0xff_f000),
        }
    }

    /// Counts a call against the token's limit (a sliding 60-second window).
    pub fn admit(&self) -> Admission {
        let limit = self.faults.lock().map(|f| f.rate_limit_per_minute).unwrap_or(0);
        let mut stats = self.stats.lock().unwrap_or_else(|e| e.into_inner());
        stats.api_calls += 1;
        if limit == 0 {
            return Admission::Allowed {
                remaining: u32::MAX,
                limit: 0,
            };
        }
        let mut limiter = self.limiter.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        while limiter
            .calls
            .front()
            .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(60))
        {
            limiter.calls.pop_front();
        }
        if limiter.calls.len() as u32 >= limit {
            stats.throttled += 1;
            let oldest = limiter.calls.front().copied().unwrap_or(now);
            let retry_after = Duration::from_secs(60).saturating_sub(now.duration_since(oldest));
            return Admission::Throttled { retry_after, limit };
        }
        limiter.calls.push_back(now);
        Admission::Allowed {
            remaining: limit - limiter.calls.len() as u32,
            limit,
        }
    }

    pub fn record_write(&self, method: &str, path: &str, order_id: &str, body: serde_json::Value) {
        if let Ok(mut writes) = self.writes.lock() {
            writes.push(WriteRecord {
                method: method.into(),
                path: path.into(),
                order_id: order_id.into(),
                body,
                at: chrono::Utc::now(),
            });
        }
    }

    pub fn order(&self, order_id: &str) -> Option<serde_json::Value> {
        self.orders.lock().ok()?.get(order_id).cloned()
    }

    pub fn writes_for(&self, order_id: &str) -> Vec<WriteRecord> {
        self.writes
            .lock()
            .map(|w| w.iter().filter(|r| r.order_id == order_id).cloned().collect())
            .unwrap_or_default()
    }

    /// Adds an order to the store (no webhook); returns it.
    pub fn insert_order(&self, order: serde_json::Value) -> serde_json::Value {
        let id = order["orderId"].as_str().unwrap_or_default().to_owned();
        if let Ok(mut orders) = self.orders.lock() {
            orders.insert(id, order.clone());
        }
        order
    }

    /// Adds orders as given (no webhook), e.g. the orders a load generator is about to announce
    /// with incomplete webhooks; returns how many. Every order needs a non-empty `orderId`.
    pub fn import_orders(&self, orders: Vec<serde_json::Value>) -> Result<usize, ImportError> {
        if let Some(index) = orders
            .iter()
            .position(|o| o["orderId"].as_str().is_none_or(str::is_empty))
        {
            return Err(ImportError::MissingOrderId { index });
        }
        let count = orders.len();
        let mut stored = self.orders.lock().unwrap_or_else(|e| e.into_inner());
        for order in orders {
            let id = order["orderId"].as_str().unwrap_or_default().to_owned();
            stored.insert(id, order);
        }
        Ok(count)
    }

    /// A new paid order for `skus` (one unit each); `digital` orders need no shipping.
    pub fn new_order(&self, skus: &[&str], digital: bool) -> serde_json::Value {
        let number = {
            let mut next = self.next_order.lock().unwrap_or_else(|e| e.into_inner());
            *next += 1;
            *next
        };
        let order_id = format!("{:03x}-{:03x}", (number >> 12) & 0xfff, number & 0xfff);
        let items: Vec<serde_json::Value> = skus
            .iter()
            .enumerate()
            .map(|(i, sku)| {
                serde_json::json!({
                    "count": 1,
                    "rowTotal": {"unit": "USD", "value": "2500", "string": "$ 25.00 USD"},
                    "productId": format!("66072fb61b89448912e2{:04x}", i),
                    "productName": format!("Product {sku}"),
                    "variantId": format!("66072fb71b89448912e2{:04x}", i),
                    "variantSKU": sku,
                    "variantPrice": {"unit": "USD", "value": "2500", "string": "$ 25.00 USD"},
                    "weight": 250, "width": 20, "height": 10, "length": 30
                })
            })
            .collect();
        let total = 2500 * skus.len();
        let order = serde_json::json!({
            "orderId": order_id,
            "status": "unfulfilled",
            "comment": null,
            "orderComment": null,
            "acceptedOn": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "fulfilledOn": null, "refundedOn": null, "disputedOn": null,
            "customerPaid": {"unit": "USD", "value": total.to_string(), "string": format!("$ {}.00 USD", total / 100)},
            "shippingAddress": if digital { serde_json::Value::Null } else { serde_json::json!({
                "type": "shipping", "addressee": "Sim Customer", "line1": "20 W 34th St", "line2": null,
                "city": "New York", "state": "NY", "country": "US", "postalCode": "10118"}) },
            "shippingProvider": null, "shippingTracking": null, "shippingTrackingURL": null,
            "customerInfo": {"fullName": "Sim Customer", "email": "customer@example.com"},
            "purchasedItems": items,
            "purchasedItemsCount": skus.len(),
            "isShippingRequired": !digital,
            "hasDownloads": digital,
            "paymentProcessor": "stripe",
            "totals": {"subtotal": {"unit": "USD", "value": total.to_string()}, "extras": [],
                       "total": {"unit": "USD", "value": total.to_string()}}
        });
        self.insert_order(order)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn imported_orders_are_served_as_given() {
        let state = SimState::new(SimConfig::default());
        let order = serde_json::json!({"orderId": "bench-1", "status": "unfulfilled"});
        assert_eq!(state.import_orders(vec![order.clone()]), Ok(1));
        assert_eq!(state.order("bench-1"), Some(order));
    }

    #[test]
    fn a_batch_with_an_order_without_id_is_refused_whole() {
        let state = SimState::new(SimConfig::default());
        let batch = vec![serde_json::json!({"orderId": "a"}), serde_json::json!({"status": "x"})];
        assert_eq!(
            state.import_orders(batch),
            Err(ImportError::MissingOrderId { index: 1 })
        );
        assert_eq!(state.order("a"), None);
    }
}
