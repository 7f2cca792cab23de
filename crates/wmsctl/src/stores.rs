//! `wmsctl stores add|list|set|remove`: stores as data, through the warehouse API
//! (`/api/v1/stores`, an `admin` token). The operator's token is read from a file
//! (`--token-file`, or `WMS_WAREHOUSE_TOKEN_FILE`) or the environment (`WMS_WAREHOUSE_TOKEN`),
//! and a store's Webflow token from a file (`--api-token-file`) or `WEBFLOW_API_TOKEN`: never
//! from a command-line value, which shell histories and process lists would show.

use anyhow::{Context, bail};
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;
use std::path::Path;

/// Where the warehouse API is and the operator's token.
pub struct Api {
    base: String,
    token: SecretString,
    http: reqwest::Client,
}

/// An error answer of the API, as one line: its message, code and status.
#[derive(Debug, thiserror::Error)]
#[error("{message} ({code}, HTTP {status})")]
pub struct ApiFailure {
    pub status: u16,
    pub code: String,
    pub message: String,
}

/// A secret from a file (trimmed), or else from the environment variable `env`.
pub fn secret_from(file: Option<&Path>, env: &str, what: &str) -> anyhow::Result<SecretString> {
    if let Some(path) = file {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("cannot read {what} from {}", path.display()))?;
        let text = text.trim();
        if text.is_empty() {
            bail!("{} holds no {what}", path.display());
        }
        return Ok(SecretString::from(text.to_owned()));
    }
    match std::env::var(env) {
        Ok(value) if !value.trim().is_empty() => Ok(SecretString::from(value.trim().to_owned())),
        _ => bail!("no {what}: give a file, or set {env}"),
    }
}

impl Api {
    pub fn new(base: &str, token: SecretString) -> anyhow::Result<Self> {
        let base = base.trim_end_matches('/').to_owned();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            bail!("--url `{base}` is not an http(s) URL");
        }
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(60))
            .build()
            .context("cannot build the HTTP client")?;
        Ok(Self { base, token, http })
    }

    /// Calls the API; the JSON answer (`Null` for 204), or the API's error.
    pub async fn call(&self, method: reqwest::Method, path: &str, body: Option<&Value>) -> anyhow::Result<Value> {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(self.token.expose_secret());
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("cannot reach the warehouse API at {}", self.base))?;
        let status = response.status();
        let bytes = response.bytes().await.context("reading the warehouse API's answer")?;
        let value: Value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or(Value::Null)
        };
        if !status.is_success() {
            return Err(ApiFailure {
                status: status.as_u16(),
                code: value["code"].as_str().unwrap_or("error").to_owned(),
                message: value["message"]
                    .as_str()
                    .map_or_else(|| format!("the warehouse answered {status}"), str::to_owned),
            }
            .into());
        }
        Ok(value)
    }
}

/// The path segment of a store name (names are letters, digits, `.`, `_`, `-`; anything
/// else is encoded so it reaches the API as given and answers 404 there).
pub fn store_path(name: &str) -> String {
    let encoded: String = name
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => char::from(b).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect();
    format!("/api/v1/stores/{encoded}")
}

/// The stores as a table.
pub fn stores_table(stores: &[Value]) -> String {
    crate::output::table(
        &[
            "name", "merchant", "site id", "source", "rate/min", "emails", "webhooks", "removed",
        ],
        &stores
            .iter()
            .map(|s| {
                vec![
                    s["name"].as_str().unwrap_or_default().to_owned(),
                    s["merchant"].as_str().unwrap_or_default().to_owned(),
                    s["site_id"].as_str().unwrap_or_default().to_owned(),
                    s["source"].as_str().unwrap_or_default().to_owned(),
                    s["rate_limit_per_minute"].to_string(),
                    s["send_fulfillment_email"].to_string(),
                    s["webhooks"].as_array().map_or(0, Vec::len).to_string(),
                    s["removed_at"].as_str().unwrap_or("").to_owned(),
                ]
            })
            .collect::<Vec<_>>(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_names_are_one_path_segment() {
        assert_eq!(store_path("shop-eu.1"), "/api/v1/stores/shop-eu.1");
        assert_eq!(store_path("a/b"), "/api/v1/stores/a%2Fb");
    }
}
