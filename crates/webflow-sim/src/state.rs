//! The simulator's state: orders, writes, faults and the rate limiter.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Mutex, OnceLock};
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
    /// More sites served by the same simulator, each with its own token (or one shared with
    /// another site) and rate limit. Orders created for them through `POST /_sim/orders` with
    /// `site_id`.
    #[serde(default)]
    pub extra_sites: Vec<SimSite>,
    /// The OAuth app "Connect with Webflow" runs against (`/oauth/authorize`, `/oauth/token`).
    #[serde(default)]
    pub oauth: SimOAuthApp,
}

/// The simulator's one OAuth (Data Client) app. An access token it issues is authorized for
/// every site the simulator serves; webhooks created with it are signed with the client secret.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct SimOAuthApp {
    pub client_id: String,
    pub client_secret: String,
}

impl Default for SimOAuthApp {
    fn default() -> Self {
        Self {
            client_id: "sim-oauth-client".into(),
            client_secret: "sim-oauth-client-secret".into(),
        }
    }
}

/// A webhook registered through `POST /v2/sites/{site_id}/webhooks`.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SimWebhook {
    pub id: String,
    pub site_id: String,
    pub trigger_type: String,
    pub url: String,
    /// Created with a site token: its own signing secret. Created with an OAuth access token:
    /// `None`, signed with the app's client secret.
    pub secret_key: Option<String>,
    pub created_on: chrono::DateTime<chrono::Utc>,
}

/// A further site of the simulator.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SimSite {
    pub site_id: String,
    pub token: String,
    pub webhook_secret: String,
    /// Default: the main webhook URL with its last segment replaced by this site's id.
    pub webhook_url: Option<String>,
    /// This token's limit (`None`: `faults.rate_limit_per_minute`).
    pub rate_limit_per_minute: Option<u32>,
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
            extra_sites: Vec::new(),
            oauth: SimOAuthApp::default(),
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
    /// The limiter's sliding window (0: Webflow's 60 s). A shorter window scales the limit
    /// (`rate_limit_per_minute * window / 60 s` calls per window), so tests see a full window
    /// in seconds.
    pub rate_window_ms: u64,
    /// Creating a webhook answers 400 once its site has this many (Webflow's limit is 75 per
    /// trigger type): a test makes registration fail part-way.
    pub webhook_limit_per_site: Option<usize>,
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

/// One SKU's stock in the simulated store.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct SimInventory {
    pub site_id: String,
    pub sku_collection_id: String,
    /// The SKU's Webflow id (`variantId` on order lines).
    pub sku_id: String,
    pub quantity: i64,
    /// `finite` or `infinite`.
    pub inventory_type: String,
    /// Inventory `PATCH`es received for it (absolute or incremental).
    pub patches: u64,
}

impl SimInventory {
    pub fn item(&self) -> serde_json::Value {
        serde_json::json!({"id": self.sku_id, "quantity": self.quantity, "inventoryType": self.inventory_type})
    }
}

/// An inventory `PATCH` the API received.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct InventoryWrite {
    pub site_id: String,
    pub sku_id: String,
    pub body: serde_json::Value,
    pub at: chrono::DateTime<chrono::Utc>,
}

/// How long one webhook delivery attempt may take.
const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(10);
/// How long an idle webhook connection is kept for the next delivery.
const WEBHOOK_IDLE: Duration = Duration::from_secs(2);

/// The Webflow id the simulator gives a SKU (its `variantId`): stable, 24 hex digits.
pub fn variant_id(sku: &str) -> String {
    // FNV-1a: stable across runs and processes, unlike the std hasher.
    let hash = sku.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("66072fb7{hash:016x}")
}

/// The simulated SKU collection of a site (what `webflow.sites.<name>.sku_collection_id` is
/// set to against the simulator); it is also listed by `GET /v2/sites/{site}/collections`.
pub fn sku_collection_id(site_id: &str) -> String {
    format!("5c{}", site_id.get(2..).unwrap_or(site_id))
}

/// Per token: the calls let through within the current window, and every one ever admitted
/// (the record tests check "never over the limit" against).
#[derive(Default)]
struct Limiter {
    window: HashMap<String, VecDeque<Instant>>,
    admitted: HashMap<String, Vec<Instant>>,
    throttled: HashMap<String, u64>,
}

/// One token's record, as `GET /_sim/calls` shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TokenCalls {
    pub limit_per_window: u32,
    pub window_ms: u64,
    pub admitted: u64,
    pub throttled: u64,
    /// The most calls admitted within any one window (never above `limit_per_window` when the
    /// bridge keeps to its budget).
    pub max_in_any_window: u64,
}

#[derive(Debug, Default, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct Stats {
    pub api_calls: u64,
    pub throttled: u64,
    pub errors_injected: u64,
    pub webhooks_delivered: u64,
    pub webhook_failures: u64,
    /// Webhooks not delivered after every retry (only reconciliation can recover those orders).
    pub webhooks_given_up: u64,
    /// Inventory `GET`s and `PATCH`es admitted.
    pub inventory_reads: u64,
    pub inventory_writes: u64,
}

pub struct SimState {
    pub config: SimConfig,
    pub orders: Mutex<BTreeMap<String, serde_json::Value>>,
    pub writes: Mutex<Vec<WriteRecord>>,
    pub faults: Mutex<Faults>,
    pub stats: Mutex<Stats>,
    limiter: Mutex<Limiter>,
    pub next_order: Mutex<u64>,
    /// Order id -> site id, for the orders of extra sites (the others are the main site's).
    order_sites: Mutex<HashMap<String, String>>,
    /// Stock by (SKU collection id, SKU id).
    pub inventory: Mutex<BTreeMap<(String, String), SimInventory>>,
    pub inventory_writes: Mutex<Vec<InventoryWrite>>,
    /// The client the store delivers webhooks with, built on first use and kept: a client per
    /// webhook (the TLS roots read and parsed each time, a new connection each time) cost
    /// 3.2 ms of CPU per order in the whole-pipeline benchmark, 0.4 ms with one client.
    webhook_client: OnceLock<reqwest::Client>,
    /// Registered webhooks by id.
    pub webhooks: Mutex<BTreeMap<String, SimWebhook>>,
    /// OAuth authorization codes not yet exchanged (each works once).
    oauth_codes: Mutex<HashMap<String, String>>,
    /// OAuth access tokens issued.
    oauth_tokens: Mutex<Vec<String>>,
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
            order_sites: Mutex::new(HashMap::new()),
            inventory: Mutex::new(BTreeMap::new()),
            inventory_writes: Mutex::new(Vec::new()),
            webhook_client: OnceLock::new(),
            webhooks: Mutex::new(BTreeMap::new()),
            oauth_codes: Mutex::new(HashMap::new()),
            oauth_tokens: Mutex::new(Vec::new()),
        }
    }

    /// Whether `token` is an OAuth access token this simulator issued.
    pub fn is_oauth_token(&self, token: &str) -> bool {
        self.oauth_tokens.lock().is_ok_and(|t| t.iter().any(|t| t == token))
    }

    /// A fresh authorization code for the app's `redirect_uri` (checked again at the exchange).
    pub fn issue_oauth_code(&self, redirect_uri: &str) -> String {
        let code = random_hex(16);
        if let Ok(mut codes) = self.oauth_codes.lock() {
            codes.insert(code.clone(), redirect_uri.to_owned());
        }
        code
    }

    /// Exchanges a code (once) for an access token; `None` if the code is unknown, used, or
    /// issued for another redirect URI.
    pub fn exchange_oauth_code(&self, code: &str, redirect_uri: &str) -> Option<String> {
        let issued_for = self.oauth_codes.lock().ok()?.remove(code)?;
        if issued_for != redirect_uri {
            return None;
        }
        let token = random_hex(32);
        self.oauth_tokens.lock().ok()?.push(token.clone());
        Some(token)
    }

    /// Registers a webhook for `site_id`; `Err` with Webflow's message when the site is full.
    pub fn create_webhook(
        &self,
        site_id: &str,
        trigger_type: &str,
        url: &str,
        with_secret: bool,
    ) -> Result<SimWebhook, String> {
        let limit = self.faults.lock().ok().and_then(|f| f.webhook_limit_per_site);
        let mut webhooks = self.webhooks.lock().map_err(|_| "state poisoned".to_owned())?;
        if let Some(limit) = limit
            && webhooks.values().filter(|w| w.site_id == site_id).count() >= limit
        {
            return Err(format!(
                "Webhook limit reached: a site can have at most {limit} webhooks"
            ));
        }
        let webhook = SimWebhook {
            id: random_hex(12),
            site_id: site_id.to_owned(),
            trigger_type: trigger_type.to_owned(),
            url: url.to_owned(),
            secret_key: with_secret.then(|| random_hex(32)),
            created_on: chrono::Utc::now(),
        };
        webhooks.insert(webhook.id.clone(), webhook.clone());
        Ok(webhook)
    }

    /// The webhooks registered for `site_id`.
    pub fn webhooks_of(&self, site_id: &str) -> Vec<SimWebhook> {
        self.webhooks
            .lock()
            .map(|w| w.values().filter(|w| w.site_id == site_id).cloned().collect())
            .unwrap_or_default()
    }

    /// Where and with which secret `site_id`'s `trigger` webhooks go: every registered one
    /// (signed with its own secret, or the OAuth app's client secret), or else the configured
    /// target.
    pub fn webhook_targets(&self, site_id: &str, trigger: &str) -> Vec<(String, String)> {
        let registered: Vec<(String, String)> = self
            .webhooks_of(site_id)
            .into_iter()
            .filter(|w| w.trigger_type == trigger)
            .map(|w| {
                let secret = w.secret_key.unwrap_or_else(|| self.config.oauth.client_secret.clone());
                (w.url, secret)
            })
            .collect();
        if registered.is_empty() {
            self.webhook_target_of_site(site_id).into_iter().collect()
        } else {
            registered
        }
    }

    /// The webhook client (one per simulator, like Webflow's delivery service: connections to
    /// the receiver are kept alive and reused).
    pub(crate) fn webhook_client(&self) -> &reqwest::Client {
        self.webhook_client.get_or_init(|| {
            reqwest::Client::builder()
                .timeout(WEBHOOK_TIMEOUT)
                // Idle connections are closed before a receiver's own keep-alive (actix: 5 s)
                // closes them, so a delivery is not sent on a connection being closed.
                .pool_idle_timeout(WEBHOOK_IDLE)
                .build()
                .unwrap_or_default()
        })
    }

    /// Every site the simulator serves: the main one first.
    pub fn site_ids(&self) -> Vec<String> {
        std::iter::once(self.config.site_id.clone())
            .chain(self.config.extra_sites.iter().map(|s| s.site_id.clone()))
            .collect()
    }

    /// The site whose SKU collection `collection_id` is.
    pub fn site_of_collection(&self, collection_id: &str) -> Option<String> {
        self.site_ids()
            .into_iter()
            .find(|site| sku_collection_id(site) == collection_id)
    }

    /// A SKU's stock in a site's store (`None`: never set; Webflow then reports infinite).
    pub fn stock(&self, site_id: &str, sku: &str) -> Option<SimInventory> {
        let key = (sku_collection_id(site_id), variant_id(sku));
        self.inventory.lock().ok()?.get(&key).cloned()
    }

    /// Applies an inventory change (an API `PATCH`, a dashboard edit); returns the new item.
    /// `quantity` sets the level, `update_quantity` adds to it (never below 0).
    pub fn change_stock(
        &self,
        collection_id: &str,
        sku_id: &str,
        inventory_type: &str,
        quantity: Option<i64>,
        update_quantity: Option<i64>,
        from_api: bool,
    ) -> Option<SimInventory> {
        let site_id = self.site_of_collection(collection_id)?;
        let mut inventory = self.inventory.lock().ok()?;
        let item = inventory
            .entry((collection_id.to_owned(), sku_id.to_owned()))
            .or_insert_with(|| SimInventory {
                site_id,
                sku_collection_id: collection_id.to_owned(),
                sku_id: sku_id.to_owned(),
                quantity: 0,
                inventory_type: "infinite".into(),
                patches: 0,
            });
        item.inventory_type = inventory_type.to_owned();
        if let Some(quantity) = quantity {
            item.quantity = quantity.max(0);
        }
        if let Some(delta) = update_quantity {
            item.quantity = (item.quantity + delta).max(0);
        }
        if from_api {
            item.patches += 1;
        }
        Some(item.clone())
    }

    pub fn record_inventory_write(&self, site_id: &str, sku_id: &str, body: serde_json::Value) {
        if let Ok(mut stats) = self.stats.lock() {
            stats.inventory_writes += 1;
        }
        if let Ok(mut writes) = self.inventory_writes.lock() {
            writes.push(InventoryWrite {
                site_id: site_id.into(),
                sku_id: sku_id.into(),
                body,
                at: chrono::Utc::now(),
            });
        }
    }

    /// Inventory `PATCH`es received for a site.
    pub fn inventory_writes_for(&self, site_id: &str) -> Vec<InventoryWrite> {
        self.inventory_writes
            .lock()
            .map(|w| w.iter().filter(|r| r.site_id == site_id).cloned().collect())
            .unwrap_or_default()
    }

    /// Whether `token` may act on `site_id` (an OAuth access token: every site served).
    pub fn token_serves(&self, token: &str, site_id: &str) -> bool {
        (self.is_oauth_token(token) && self.site_ids().iter().any(|s| s == site_id))
            || (self.config.token == token && self.config.site_id == site_id)
            || self
                .config
                .extra_sites
                .iter()
                .any(|s| s.token == token && s.site_id == site_id)
    }

    pub fn is_known_token(&self, token: &str) -> bool {
        self.is_oauth_token(token)
            || self.config.token == token
            || self.config.extra_sites.iter().any(|s| s.token == token)
    }

    /// The site an order belongs to.
    pub fn site_of(&self, order_id: &str) -> String {
        self.order_sites
            .lock()
            .ok()
            .and_then(|sites| sites.get(order_id).cloned())
            .unwrap_or_else(|| self.config.site_id.clone())
    }

    /// Where and with which secret the webhooks of `order_id`'s site go.
    pub fn webhook_target(&self, order_id: &str) -> Option<(String, String)> {
        self.webhook_target_of_site(&self.site_of(order_id))
    }

    /// Where and with which secret `site_id`'s webhooks go.
    pub fn webhook_target_of_site(&self, site_id: &str) -> Option<(String, String)> {
        let main = self.config.webhook_url.clone();
        match self.config.extra_sites.iter().find(|s| s.site_id == site_id) {
            None => main.map(|url| (url, self.config.webhook_secret.clone())),
            Some(site) => {
                let url = site.webhook_url.clone().or_else(|| {
                    main.map(|url| match url.rsplit_once('/') {
                        Some((base, _)) => format!("{base}/{}", site.site_id),
                        None => url,
                    })
                })?;
                Some((url, site.webhook_secret.clone()))
            }
        }
    }

    fn limit_of(&self, token: &str, faults: &Faults) -> u32 {
        self.config
            .extra_sites
            .iter()
            .find(|s| s.token == token)
            .and_then(|s| s.rate_limit_per_minute)
            .unwrap_or(faults.rate_limit_per_minute)
    }

    fn window(faults: &Faults) -> Duration {
        Duration::from_millis(if faults.rate_window_ms == 0 {
            60_000
        } else {
            faults.rate_window_ms
        })
    }

    fn per_window(limit_per_minute: u32, window: Duration) -> u32 {
        ((f64::from(limit_per_minute) * window.as_secs_f64() / 60.0).floor() as u32).max(1)
    }

    /// Every token's record of calls.
    pub fn calls_by_token(&self) -> BTreeMap<String, TokenCalls> {
        let faults = self.faults.lock().map(|f| f.clone()).unwrap_or_default();
        let window = Self::window(&faults);
        let limiter = self.limiter.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = BTreeMap::new();
        for (token, calls) in &limiter.admitted {
            let mut max = 0usize;
            let mut start = 0usize;
            for end in 0..calls.len() {
                while calls[end].duration_since(calls[start]) >= window {
                    start += 1;
                }
                max = max.max(end - start + 1);
            }
            let limit = self.limit_of(token, &faults);
            out.insert(
                token.clone(),
                TokenCalls {
                    limit_per_window: if limit == 0 { 0 } else { Self::per_window(limit, window) },
                    window_ms: window.as_millis() as u64,
                    admitted: calls.len() as u64,
                    throttled: limiter.throttled.get(token).copied().unwrap_or(0),
                    max_in_any_window: max as u64,
                },
            );
        }
        for (token, throttled) in &limiter.throttled {
            out.entry(token.clone()).or_insert_with(|| TokenCalls {
                limit_per_window: 0,
                window_ms: window.as_millis() as u64,
                admitted: 0,
                throttled: *throttled,
                max_in_any_window: 0,
            });
        }
        out
    }

    /// Counts a call against `token`'s limit: a strict sliding window (60 s, or
    /// `faults.rate_window_ms`) of admitted calls.
    pub fn admit(&self, token: &str) -> Admission {
        let faults = self.faults.lock().map(|f| f.clone()).unwrap_or_default();
        let limit = self.limit_of(token, &faults);
        let mut stats = self.stats.lock().unwrap_or_else(|e| e.into_inner());
        stats.api_calls += 1;
        let mut limiter = self.limiter.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if limit == 0 {
            limiter.admitted.entry(token.to_owned()).or_default().push(now);
            return Admission::Allowed {
                remaining: u32::MAX,
                limit: 0,
            };
        }
        let window = Self::window(&faults);
        let per_window = Self::per_window(limit, window);
        let calls = limiter.window.entry(token.to_owned()).or_default();
        while calls.front().is_some_and(|t| now.duration_since(*t) >= window) {
            calls.pop_front();
        }
        if calls.len() as u32 >= per_window {
            let oldest = calls.front().copied().unwrap_or(now);
            let retry_after = window.saturating_sub(now.duration_since(oldest));
            stats.throttled += 1;
            *limiter.throttled.entry(token.to_owned()).or_default() += 1;
            return Admission::Throttled { retry_after, limit };
        }
        calls.push_back(now);
        let remaining = per_window - calls.len() as u32;
        limiter.admitted.entry(token.to_owned()).or_default().push(now);
        Admission::Allowed { remaining, limit }
    }

    /// Counts a 429 the storm fault answered.
    pub fn count_throttled(&self, token: &str) {
        if let Ok(mut stats) = self.stats.lock() {
            stats.throttled += 1;
        }
        let mut limiter = self.limiter.lock().unwrap_or_else(|e| e.into_inner());
        *limiter.throttled.entry(token.to_owned()).or_default() += 1;
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

    /// A new paid order of an extra site (or the main one).
    pub fn new_order_for(&self, site_id: &str, skus: &[&str], digital: bool) -> serde_json::Value {
        let order = self.new_order(skus, digital);
        if site_id != self.config.site_id
            && let Ok(mut sites) = self.order_sites.lock()
        {
            sites.insert(
                order["orderId"].as_str().unwrap_or_default().to_owned(),
                site_id.to_owned(),
            );
        }
        order
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
                    "variantId": variant_id(sku),
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
    fn stock_is_set_absolutely_or_incrementally_never_below_zero() {
        let state = SimState::new(SimConfig::default());
        let collection = sku_collection_id(&state.config.site_id);
        let id = variant_id("sim-sku-1");
        assert_eq!(state.stock(&state.config.site_id, "sim-sku-1"), None);
        let set = state
            .change_stock(&collection, &id, "finite", Some(7), None, true)
            .unwrap();
        assert_eq!((set.quantity, set.patches), (7, 1));
        let added = state
            .change_stock(&collection, &id, "finite", None, Some(-3), true)
            .unwrap();
        assert_eq!(added.quantity, 4);
        let floor = state
            .change_stock(&collection, &id, "finite", None, Some(-10), false)
            .unwrap();
        assert_eq!((floor.quantity, floor.patches), (0, 2));
        assert_eq!(state.stock(&state.config.site_id, "sim-sku-1").unwrap().quantity, 0);
        assert!(
            state
                .change_stock("not-a-collection", &id, "finite", Some(1), None, true)
                .is_none()
        );
    }

    #[test]
    fn a_sku_keeps_its_webflow_id_and_orders_carry_it() {
        assert_eq!(variant_id("a"), variant_id("a"));
        assert_ne!(variant_id("a"), variant_id("b"));
        assert_eq!(variant_id("a").len(), 24);
        let state = SimState::new(SimConfig::default());
        let order = state.new_order(&["x", "y"], false);
        assert_eq!(order["purchasedItems"][0]["variantId"], variant_id("x"));
        assert_eq!(order["purchasedItems"][1]["variantId"], variant_id("y"));
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

/// `bytes` random bytes as lowercase hex (webhook ids and secrets, OAuth codes and tokens).
fn random_hex(bytes: usize) -> String {
    (0..bytes).map(|_| format!("{:02x}", rand::random::<u8>())).collect()
}

#[cfg(test)]
mod registration_tests {
    #![allow(clippy::unwrap_used, reason = "tests fail loudly")]
    use super::*;

    fn state() -> SimState {
        SimState::new(SimConfig {
            webhook_url: Some("http://configured/webhooks/webflow/site".into()),
            ..SimConfig::default()
        })
    }

    #[test]
    fn registered_webhooks_take_over_their_trigger_with_their_own_secret_or_the_apps() {
        let state = state();
        let site = state.config.site_id.clone();
        let own = state
            .create_webhook(&site, "ecomm_new_order", "http://a/hook", true)
            .unwrap();
        state
            .create_webhook(&site, "ecomm_new_order", "http://b/hook", false)
            .unwrap();
        let targets = state.webhook_targets(&site, "ecomm_new_order");
        assert_eq!(targets.len(), 2);
        assert!(targets.contains(&("http://a/hook".into(), own.secret_key.clone().unwrap())));
        assert!(targets.contains(&("http://b/hook".into(), state.config.oauth.client_secret.clone())));
        // A trigger nobody registered still goes to the configured target.
        assert_eq!(
            state.webhook_targets(&site, "ecomm_order_changed"),
            vec![(
                "http://configured/webhooks/webflow/site".to_owned(),
                state.config.webhook_secret.clone()
            )]
        );
    }

    #[test]
    fn the_webhook_limit_fault_refuses_creation_with_a_message() {
        let state = state();
        state.faults.lock().unwrap().webhook_limit_per_site = Some(1);
        assert!(state.create_webhook("s", "ecomm_new_order", "http://a", true).is_ok());
        let refused = state
            .create_webhook("s", "ecomm_order_changed", "http://a", true)
            .unwrap_err();
        assert!(refused.contains("Webhook limit reached"), "{refused}");
        assert!(
            state
                .create_webhook("other", "ecomm_new_order", "http://a", true)
                .is_ok()
        );
    }

    #[test]
    fn an_oauth_code_works_once_for_its_redirect_uri_and_its_token_serves_every_site() {
        let state = state();
        let code = state.issue_oauth_code("http://console/callback");
        assert_eq!(state.exchange_oauth_code(&code, "http://elsewhere"), None);
        let code = state.issue_oauth_code("http://console/callback");
        let token = state.exchange_oauth_code(&code, "http://console/callback").unwrap();
        assert_eq!(state.exchange_oauth_code(&code, "http://console/callback"), None);
        assert!(state.is_known_token(&token));
        assert!(state.token_serves(&token, &state.config.site_id));
        assert!(!state.token_serves(&token, "not-served"));
    }
}
