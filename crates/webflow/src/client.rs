//! The one Webflow API client every process uses.
//!
//! rustls with certificate validation always on, a timeout on every call, the bearer token
//! never logged, Webflow's error bodies typed, `Retry-After` and `X-RateLimit-*` read.
//! A plain-`http` base URL is refused unless explicitly allowed (the local simulator).

use crate::types::{
    CollectionList, CreateWebhookRequest, ErrorBody, FulfillOrderRequest, InventoryItem, OAuthToken, Order, OrderList,
    OrderStatus, RefundOrderRequest, Site, TokenIntrospection, UpdateInventoryRequest, UpdateOrderRequest, Webhook,
    WebhookList,
};
use domain::{OrderId, SiteId};
use reqwest::{Method, StatusCode, Url};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::time::{Duration, Instant};

/// What one API call did, for the audit log and the rate-limit budget.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CallRecord {
    pub method: String,
    pub path: String,
    pub status: Option<u16>,
    pub latency_ms: u64,
    pub rate_limit_remaining: Option<u32>,
    pub rate_limit_limit: Option<u32>,
}

#[derive(Debug, thiserror::Error)]
pub enum WebflowError {
    #[error("invalid Webflow client configuration: {0}")]
    Config(String),
    #[error("Webflow answered {status} to {} {}: {} ({})", call.method, call.path, body.code.as_deref().unwrap_or("no code"), body.message.as_deref().unwrap_or("no message"))]
    Api {
        status: u16,
        body: Box<ErrorBody>,
        retry_after: Option<Duration>,
        call: Box<CallRecord>,
    },
    #[error("Webflow did not answer {} {} in time", call.method, call.path)]
    Timeout { call: Box<CallRecord> },
    #[error("cannot reach Webflow for {} {}: {source}", call.method, call.path)]
    Network {
        call: Box<CallRecord>,
        source: reqwest::Error,
    },
    #[error("unexpected response body from {} {}: {message}", call.method, call.path)]
    Decode { call: Box<CallRecord>, message: String },
}

impl WebflowError {
    /// Worth retrying: timeouts, network failures, 408, 429 and 5xx.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Timeout { .. } | Self::Network { .. } => true,
            Self::Api { status, .. } => *status == 408 || *status == 429 || *status >= 500,
            Self::Config(_) | Self::Decode { .. } => false,
        }
    }

    /// The outcome of the call is unknown (the request may have been applied).
    pub fn outcome_unknown(&self) -> bool {
        matches!(self, Self::Timeout { .. } | Self::Network { .. }) || self.status().is_some_and(|s| s >= 500)
    }

    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Api { status, .. } => Some(*status),
            _ => None,
        }
    }

    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Api { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    pub fn call(&self) -> Option<&CallRecord> {
        match self {
            Self::Api { call, .. }
            | Self::Timeout { call }
            | Self::Network { call, .. }
            | Self::Decode { call, .. } => Some(call),
            Self::Config(_) => None,
        }
    }
}

impl domain::Classify for WebflowError {
    fn class(&self) -> domain::FailureClass {
        // A 429 is not the message's fault: wait as asked, without using up an attempt, so
        // sustained throttling never dead-letters a write-back.
        if self.status() == Some(429) {
            return domain::FailureClass::Deferred(self.retry_after().unwrap_or(Duration::from_secs(60)));
        }
        if self.is_transient() {
            domain::FailureClass::Transient
        } else {
            domain::FailureClass::Permanent
        }
    }

    fn retry_after(&self) -> Option<Duration> {
        WebflowError::retry_after(self)
    }

    fn source_name(&self) -> &'static str {
        "webflow"
    }
}

/// A successful call's value and its record.
#[derive(Debug)]
pub struct ApiResponse<T> {
    pub value: T,
    pub call: CallRecord,
}

#[derive(Clone)]
pub struct WebflowClient {
    http: reqwest::Client,
    base_url: Url,
}

impl std::fmt::Debug for WebflowClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebflowClient")
            .field("base_url", &self.base_url.as_str())
            .finish_non_exhaustive()
    }
}

impl WebflowClient {
    pub fn new(base_url: &str, timeout: Duration, allow_insecure_http: bool) -> Result<Self, WebflowError> {
        let base_url = Url::parse(base_url.trim_end_matches('/'))
            .map_err(|e| WebflowError::Config(format!("webflow.api_base_url `{base_url}`: {e}")))?;
        match base_url.scheme() {
            "https" => {}
            "http" if allow_insecure_http => {}
            "http" => {
                return Err(WebflowError::Config(
                    "plain-http base URL refused; set webflow.allow_insecure_http = true only for a local simulator"
                        .into(),
                ));
            }
            other => {
                return Err(WebflowError::Config(format!("unsupported scheme `{other}`")));
            }
        }
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .https_only(!allow_insecure_http)
            .user_agent(concat!("webflow-wms-bridge/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| WebflowError::Config(e.to_string()))?;
        Ok(Self { http, base_url })
    }

    pub fn base_url(&self) -> &str {
        self.base_url.as_str()
    }

    pub async fn get_order(
        &self,
        token: &SecretString,
        site_id: &SiteId,
        order_id: &OrderId,
    ) -> Result<ApiResponse<Order>, WebflowError> {
        self.get(token, &["sites", site_id.as_str(), "orders", order_id.as_str()], &[])
            .await
    }

    /// One page of orders; `limit` is at most 100.
    pub async fn list_orders(
        &self,
        token: &SecretString,
        site_id: &SiteId,
        status: Option<&OrderStatus>,
        offset: u32,
        limit: u32,
    ) -> Result<ApiResponse<OrderList>, WebflowError> {
        let mut query = vec![("offset", offset.to_string()), ("limit", limit.min(100).to_string())];
        if let Some(status) = status {
            query.push(("status", status.as_str().to_owned()));
        }
        self.get(token, &["sites", site_id.as_str(), "orders"], &query).await
    }

    pub async fn update_order(
        &self,
        token: &SecretString,
        site_id: &SiteId,
        order_id: &OrderId,
        body: &UpdateOrderRequest,
    ) -> Result<ApiResponse<Order>, WebflowError> {
        self.send(
            token,
            Method::PATCH,
            &["sites", site_id.as_str(), "orders", order_id.as_str()],
            body,
        )
        .await
    }

    pub async fn fulfill_order(
        &self,
        token: &SecretString,
        site_id: &SiteId,
        order_id: &OrderId,
        body: &FulfillOrderRequest,
    ) -> Result<ApiResponse<Order>, WebflowError> {
        self.send(
            token,
            Method::POST,
            &["sites", site_id.as_str(), "orders", order_id.as_str(), "fulfill"],
            body,
        )
        .await
    }

    pub async fn refund_order(
        &self,
        token: &SecretString,
        site_id: &SiteId,
        order_id: &OrderId,
        body: &RefundOrderRequest,
    ) -> Result<ApiResponse<Order>, WebflowError> {
        self.send(
            token,
            Method::POST,
            &["sites", site_id.as_str(), "orders", order_id.as_str(), "refund"],
            body,
        )
        .await
    }

    pub async fn list_webhooks(
        &self,
        token: &SecretString,
        site_id: &SiteId,
    ) -> Result<ApiResponse<WebhookList>, WebflowError> {
        self.get(token, &["sites", site_id.as_str(), "webhooks"], &[]).await
    }

    pub async fn create_webhook(
        &self,
        token: &SecretString,
        site_id: &SiteId,
        body: &CreateWebhookRequest,
    ) -> Result<ApiResponse<Webhook>, WebflowError> {
        self.send(token, Method::POST, &["sites", site_id.as_str(), "webhooks"], body)
            .await
    }

    /// Deletes a webhook; Webflow answers 204 (a 404 means it is gone already).
    pub async fn delete_webhook(
        &self,
        token: &SecretString,
        webhook_id: &str,
    ) -> Result<ApiResponse<()>, WebflowError> {
        self.call::<(), _>(token, Method::DELETE, &["webhooks", webhook_id], &[], None)
            .await
    }

    /// A site: its names, and a check that `token` may act on it.
    pub async fn get_site(&self, token: &SecretString, site_id: &SiteId) -> Result<ApiResponse<Site>, WebflowError> {
        self.get(token, &["sites", site_id.as_str()], &[]).await
    }

    /// What `token` is authorized for (the sites of an OAuth access token).
    pub async fn introspect_token(
        &self,
        token: &SecretString,
    ) -> Result<ApiResponse<TokenIntrospection>, WebflowError> {
        self.get(token, &["token", "introspect"], &[]).await
    }

    /// Exchanges an OAuth authorization code for an access token at `token_url` (a form POST
    /// with the app's credentials; not under the API base URL, so no bearer token).
    pub async fn exchange_oauth_code(
        &self,
        token_url: &str,
        client_id: &str,
        client_secret: &SecretString,
        code: &str,
        redirect_uri: &str,
    ) -> Result<ApiResponse<OAuthToken>, WebflowError> {
        let url = Url::parse(token_url).map_err(|e| WebflowError::Config(format!("webflow.oauth.token_url: {e}")))?;
        let form = [
            ("client_id", client_id),
            ("client_secret", client_secret.expose_secret()),
            ("code", code),
            ("grant_type", "authorization_code"),
            ("redirect_uri", redirect_uri),
        ];
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let request = self
            .http
            .post(url.clone())
            .header("accept", "application/json")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        self.execute(request, Method::POST, url.path().to_owned()).await
    }

    /// A SKU's stock (`sku_id` is the `variantId` of its order lines).
    pub async fn get_inventory(
        &self,
        token: &SecretString,
        sku_collection_id: &str,
        sku_id: &str,
    ) -> Result<ApiResponse<InventoryItem>, WebflowError> {
        self.get(
            token,
            &["collections", sku_collection_id, "items", sku_id, "inventory"],
            &[],
        )
        .await
    }

    /// Sets (or adds to) a SKU's stock.
    pub async fn update_inventory(
        &self,
        token: &SecretString,
        sku_collection_id: &str,
        sku_id: &str,
        body: &UpdateInventoryRequest,
    ) -> Result<ApiResponse<InventoryItem>, WebflowError> {
        self.send(
            token,
            Method::PATCH,
            &["collections", sku_collection_id, "items", sku_id, "inventory"],
            body,
        )
        .await
    }

    /// The site's CMS collections (one of them is the SKU collection).
    pub async fn list_collections(
        &self,
        token: &SecretString,
        site_id: &SiteId,
    ) -> Result<ApiResponse<CollectionList>, WebflowError> {
        self.get(token, &["sites", site_id.as_str(), "collections"], &[]).await
    }

    async fn get<T: DeserializeOwned>(
        &self,
        token: &SecretString,
        segments: &[&str],
        query: &[(&str, String)],
    ) -> Result<ApiResponse<T>, WebflowError> {
        self.call::<(), _>(token, Method::GET, segments, query, None).await
    }

    /// A call with a JSON body.
    async fn send<B: Serialize, T: DeserializeOwned>(
        &self,
        token: &SecretString,
        method: Method,
        segments: &[&str],
        body: &B,
    ) -> Result<ApiResponse<T>, WebflowError> {
        self.call(token, method, segments, &[], Some(body)).await
    }

    async fn call<B: Serialize, T: DeserializeOwned>(
        &self,
        token: &SecretString,
        method: Method,
        segments: &[&str],
        query: &[(&str, String)],
        body: Option<&B>,
    ) -> Result<ApiResponse<T>, WebflowError> {
        let mut url = self.base_url.clone();
        url.path_segments_mut()
            .map_err(|_| WebflowError::Config("the base URL cannot take a path".into()))?
            .extend(segments);
        let path = url.path().to_owned();
        if !query.is_empty() {
            url.query_pairs_mut()
                .extend_pairs(query.iter().map(|(k, v)| (*k, v.as_str())));
        }
        let mut request = self
            .http
            .request(method.clone(), url)
            .bearer_auth(token.expose_secret())
            .header("accept", "application/json");
        if let Some(body) = body {
            request = request.json(body);
        }
        self.execute(request, method, path).await
    }

    /// Sends a built request and reads its answer: Webflow's error body, rate-limit headers,
    /// the call record.
    async fn execute<T: DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
        method: Method,
        path: String,
    ) -> Result<ApiResponse<T>, WebflowError> {
        let started = Instant::now();
        let mut call = CallRecord {
            method: method.to_string(),
            path,
            status: None,
            latency_ms: 0,
            rate_limit_remaining: None,
            rate_limit_limit: None,
        };
        let response = request.send().await;
        call.latency_ms = started.elapsed().as_millis() as u64;
        let response = match response {
            Ok(response) => response,
            Err(source) if source.is_timeout() => {
                return Err(WebflowError::Timeout { call: Box::new(call) });
            }
            Err(source) => {
                return Err(WebflowError::Network {
                    call: Box::new(call),
                    source,
                });
            }
        };
        let status = response.status();
        call.status = Some(status.as_u16());
        let header_u32 = |name: &str| response.headers().get(name)?.to_str().ok()?.trim().parse::<u32>().ok();
        call.rate_limit_remaining = header_u32("x-ratelimit-remaining");
        call.rate_limit_limit = header_u32("x-ratelimit-limit");
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_retry_after);
        let bytes = match response.bytes().await {
            Ok(bytes) => bytes,
            Err(source) if source.is_timeout() => {
                return Err(WebflowError::Timeout { call: Box::new(call) });
            }
            Err(source) => {
                return Err(WebflowError::Network {
                    call: Box::new(call),
                    source,
                });
            }
        };
        call.latency_ms = started.elapsed().as_millis() as u64;
        tracing::debug!(method = %call.method, path = %call.path, status = status.as_u16(), latency_ms = call.latency_ms, "webflow call");
        if !status.is_success() {
            // 400/403/409 bodies are not always Webflow's error shape: keep what we can.
            let body: ErrorBody = serde_json::from_slice(&bytes).unwrap_or_else(|_| ErrorBody {
                message: Some(String::from_utf8_lossy(&bytes).chars().take(500).collect()),
                ..ErrorBody::default()
            });
            return Err(WebflowError::Api {
                status: status.as_u16(),
                body: Box::new(body),
                retry_after,
                call: Box::new(call),
            });
        }
        let value = if status == StatusCode::NO_CONTENT || bytes.is_empty() {
            serde_json::from_slice(b"null")
        } else {
            serde_json::from_slice(&bytes)
        }
        .map_err(|e| WebflowError::Decode {
            call: Box::new(call.clone()),
            message: e.to_string(),
        })?;
        Ok(ApiResponse { value, call })
    }
}

/// `Retry-After` in seconds (Webflow's form) or as an HTTP date.
fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<f64>() {
        return (seconds >= 0.0 && seconds.is_finite()).then(|| Duration::from_secs_f64(seconds.min(3_600.0)));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let wait = at
        .signed_duration_since(chrono::Utc::now())
        .to_std()
        .unwrap_or_default();
    Some(wait.min(Duration::from_secs(3_600)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_seconds_and_dates() {
        assert_eq!(parse_retry_after("60"), Some(Duration::from_secs(60)));
        assert_eq!(parse_retry_after("1.5"), Some(Duration::from_millis(1_500)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon"), None);
    }

    #[test]
    fn plain_http_is_refused_unless_allowed() {
        assert!(WebflowClient::new("http://localhost:1", Duration::from_secs(1), false).is_err());
        assert!(WebflowClient::new("http://localhost:1", Duration::from_secs(1), true).is_ok());
        assert!(WebflowClient::new("https://api.webflow.com/v2", Duration::from_secs(1), false).is_ok());
    }
}
