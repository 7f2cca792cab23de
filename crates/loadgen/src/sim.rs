//! A client for `webflow-sim`'s inspection and control API (`/_sim/...`), typed with the
//! simulator's own records.

use anyhow::Context;
use std::collections::BTreeMap;
use webflow_sim::state::{Stats, TokenCalls, WriteRecord};

/// Orders per `POST /_sim/orders/import` (about 1 KiB each, well under actix's JSON limit).
const IMPORT_BATCH: usize = 500;

#[derive(Clone)]
pub struct SimClient {
    http: reqwest::Client,
    base_url: String,
}

#[derive(serde::Deserialize)]
struct Orders {
    orders: Vec<serde_json::Value>,
}

#[derive(serde::Deserialize)]
struct Writes {
    writes: Vec<WriteRecord>,
}

impl SimClient {
    /// `base_url` is the simulator's root, e.g. `http://127.0.0.1:18090`.
    pub fn new(base_url: &str) -> Self {
        Self {
            http: reqwest::Client::new(),
            base_url: base_url.trim_end_matches('/').to_owned(),
        }
    }

    /// Places a paid, physical order in the store, which delivers its webhook.
    pub async fn place_order(&self, skus: &[&str]) -> Result<(), reqwest::Error> {
        self.http
            .post(self.url("/_sim/orders"))
            .json(&serde_json::json!({"skus": skus, "digital": false}))
            .send()
            .await?
            .error_for_status()?;
        Ok(())
    }

    /// Places a paid, physical order in the store of `site_id` (one of the simulator's sites),
    /// which delivers its webhook; returns the order's id.
    pub async fn place_order_for(&self, site_id: &str, skus: &[&str]) -> anyhow::Result<String> {
        let order: serde_json::Value = self
            .http
            .post(self.url("/_sim/orders"))
            .json(&serde_json::json!({"skus": skus, "digital": false, "site_id": site_id}))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        order["orderId"]
            .as_str()
            .map(str::to_owned)
            .context("the simulator's new order has no orderId")
    }

    /// Stores `orders` as given, without webhooks, so the API serves them.
    pub async fn import_orders(&self, orders: &[serde_json::Value]) -> anyhow::Result<()> {
        for batch in orders.chunks(IMPORT_BATCH) {
            self.http
                .post(self.url("/_sim/orders/import"))
                .json(&serde_json::json!({"orders": batch}))
                .send()
                .await?
                .error_for_status()
                .context("the simulator refused the orders")?;
        }
        Ok(())
    }

    pub async fn stats(&self) -> anyhow::Result<Stats> {
        self.get("/_sim/stats").await
    }

    /// Per token: calls admitted, 429s answered, the most calls in any one window.
    pub async fn calls(&self) -> anyhow::Result<BTreeMap<String, TokenCalls>> {
        self.get("/_sim/calls").await
    }

    /// Every write (PATCH, fulfil, unfulfil, refund) the API received.
    pub async fn writes(&self) -> anyhow::Result<Vec<WriteRecord>> {
        Ok(self.get::<Writes>("/_sim/writes").await?.writes)
    }

    /// Every order in the store, as Webflow would return it.
    pub async fn orders(&self) -> anyhow::Result<Vec<serde_json::Value>> {
        Ok(self.get::<Orders>("/_sim/orders").await?.orders)
    }

    async fn get<T: serde::de::DeserializeOwned>(&self, path: &str) -> anyhow::Result<T> {
        let url = self.url(path);
        let response = self.http.get(&url).send().await.with_context(|| format!("GET {url}"))?;
        Ok(response.error_for_status()?.json().await?)
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }
}
