//! `[webflow]`: the API base URL and every site the bridge serves (token, webhook secrets,
//! rate limit). Token and secret files are read while validating, so a process that starts
//! holds every secret it needs.

use crate::client::{WebflowClient, WebflowError};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;
use wms_settings::{SettingsError, read_secret_file, string_or_list};

/// One Webflow site.
#[derive(Clone, Debug, Deserialize)]
#[serde(default)]
pub struct SiteSettings {
    /// Webflow's 24-hex site id; also the last path segment of the webhook URL.
    pub site_id: String,
    pub api_token: Option<SecretString>,
    /// A file holding the token (a Kubernetes Secret mount); read at start.
    pub api_token_file: Option<PathBuf>,
    /// Every secret currently accepted for webhook signatures (several during a rotation).
    #[serde(deserialize_with = "string_or_list")]
    pub webhook_secrets: Vec<SecretString>,
    /// A file holding more secrets, one per line.
    pub webhook_secrets_file: Option<PathBuf>,
    pub rate_limit_per_minute: u32,
    pub send_fulfillment_email: bool,
    /// Keep this store's Webflow stock equal to the warehouse's available count (issue 17).
    pub inventory_sync: bool,
    /// The site's SKU collection (the inventory endpoints' `sku_collection_id`; `wmsctl sites
    /// check` lists the collections). Required when `inventory_sync` is on.
    pub sku_collection_id: Option<String>,
    /// Units held back from the storefront: Webflow shows `available - buffer`, never below 0.
    pub inventory_safety_buffer: i64,
    /// The merchant that owns this store's stock (issue 24); created at start if missing.
    pub merchant: String,
    /// Why a `*_file` could not be read. Each pod mounts only the secrets its service needs (the
    /// ingress has no API token, the workers no webhook secrets), so a missing file is only an
    /// error for the service that needs it: `require_api_tokens`/`require_webhook_secrets`.
    #[serde(skip)]
    pub unreadable: BTreeMap<&'static str, String>,
}

impl Default for SiteSettings {
    fn default() -> Self {
        Self {
            site_id: String::new(),
            api_token: None,
            api_token_file: None,
            webhook_secrets: Vec::new(),
            webhook_secrets_file: None,
            rate_limit_per_minute: 60,
            send_fulfillment_email: true,
            inventory_sync: false,
            sku_collection_id: None,
            inventory_safety_buffer: 0,
            merchant: DEFAULT_MERCHANT.to_owned(),
            unreadable: BTreeMap::new(),
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(default)]
pub struct WebflowSettings {
    pub api_base_url: String,
    /// Allows a plain-http base URL: only for the local simulator.
    pub allow_insecure_http: bool,
    pub timeout_ms: u64,
    /// Sites by a name of your choice (`[webflow.sites.shop]`).
    pub sites: BTreeMap<String, SiteSettings>,
    /// How calls share each token's budget (`[webflow.budget]`).
    pub budget: BudgetSettings,
    /// How often every service re-reads the stores table (stores added, changed or removed
    /// at runtime are picked up within this).
    pub store_refresh_ms: u64,
    /// "Connect with Webflow" (`[webflow.oauth]`): the console's button shows only when set.
    pub oauth: Option<OAuthSettings>,
}

/// The merchant of a config store that names none (every install before issue 24 served one).
pub const DEFAULT_MERCHANT: &str = "default";

/// `[webflow.oauth]`: the Webflow (Data Client) app the console's "Connect with Webflow" runs
/// the authorization-code flow with. Webhooks created with its access tokens are signed with
/// the app's client secret.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OAuthSettings {
    pub client_id: String,
    #[serde(default)]
    pub client_secret: Option<SecretString>,
    /// Or a file holding the client secret (a Kubernetes Secret mount); read while validating.
    #[serde(default)]
    pub client_secret_file: Option<PathBuf>,
    /// Where Webflow sends the browser back: the console's `/console/stores/oauth/callback`
    /// as the browser reaches it; registered with the app.
    pub redirect_url: String,
    #[serde(default = "OAuthSettings::default_authorize_url")]
    pub authorize_url: String,
    #[serde(default = "OAuthSettings::default_token_url")]
    pub token_url: String,
}

impl std::fmt::Debug for OAuthSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the client secret.
        f.debug_struct("OAuthSettings")
            .field("client_id", &self.client_id)
            .field("client_secret_file", &self.client_secret_file)
            .field("redirect_url", &self.redirect_url)
            .field("authorize_url", &self.authorize_url)
            .field("token_url", &self.token_url)
            .finish_non_exhaustive()
    }
}

impl OAuthSettings {
    fn default_authorize_url() -> String {
        "https://webflow.com/oauth/authorize".into()
    }

    fn default_token_url() -> String {
        "https://api.webflow.com/oauth/token".into()
    }

    fn validate(&mut self, allow_insecure_http: bool) -> Result<(), SettingsError> {
        if self.client_id.trim().is_empty() {
            return Err(SettingsError::invalid("webflow.oauth.client_id", "is required"));
        }
        match (&self.client_secret, &self.client_secret_file) {
            (Some(_), Some(_)) => {
                return Err(SettingsError::invalid(
                    "webflow.oauth.client_secret_file",
                    "give client_secret or client_secret_file, not both",
                ));
            }
            (None, Some(path)) => {
                let secret = read_secret_file(path)
                    .map_err(|message| SettingsError::invalid("webflow.oauth.client_secret_file", message))?;
                self.client_secret = Some(SecretString::from(secret));
            }
            (None, None) => {
                return Err(SettingsError::invalid(
                    "webflow.oauth.client_secret",
                    "client_secret or client_secret_file is required",
                ));
            }
            (Some(_), None) => {}
        }
        for (key, url) in [
            ("webflow.oauth.redirect_url", &self.redirect_url),
            ("webflow.oauth.authorize_url", &self.authorize_url),
            ("webflow.oauth.token_url", &self.token_url),
        ] {
            let plain = url.starts_with("http://");
            if !(url.starts_with("https://") || plain) {
                return Err(SettingsError::invalid(key, "must be an http(s) URL"));
            }
            // The redirect is the console's own address (plain http on a developer's machine);
            // the others carry the client secret and the code: https unless for a simulator.
            if plain && key != "webflow.oauth.redirect_url" && !allow_insecure_http {
                return Err(SettingsError::invalid(
                    key,
                    "plain http is refused; use https, or set webflow.allow_insecure_http = true for a local simulator",
                ));
            }
        }
        Ok(())
    }

    /// The app's client secret, when one is configured (after `validate`, a
    /// `client_secret_file` has been read into it): it exchanges authorization codes and
    /// verifies OAuth stores' webhooks.
    pub fn client_secret(&self) -> Option<SecretString> {
        self.client_secret
            .clone()
            .filter(|secret| !secret.expose_secret().trim().is_empty())
    }
}

/// How every Webflow call shares its token's budget (docs/architecture.md, "The Webflow rate
/// budget").
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default)]
pub struct BudgetSettings {
    /// A call sleeps for its slot only when the slot is at most this far away; a further slot
    /// is reserved and the message deferred through the broker (no worker slot held meanwhile).
    /// Keep it at least the smallest `amqp.retry_delays_ms` tier.
    pub horizon_ms: u64,
    /// Added to every 60-second window (slots are `(60 s + margin) / limit` apart), so network
    /// jitter between calls never puts `limit + 1` calls in one window of Webflow's.
    pub window_margin_ms: u64,
    /// Enrichment reads reserve a slot only while the token's queue is at most this long;
    /// behind a longer queue of write-backs they defer without reserving.
    pub enrichment_queue_secs: u64,
    /// How late a message may come back for its reserved slot and still use it (later, it
    /// queues afresh: a late call could otherwise crowd a window).
    pub reservation_grace_ms: u64,
    /// Reconciliation calls only when the token's next slot is at most this far away (idle
    /// capacity), else it skips the site for this run.
    pub reconcile_idle_ms: u64,
}

impl Default for BudgetSettings {
    fn default() -> Self {
        Self {
            horizon_ms: 1_000,
            window_margin_ms: 1_000,
            enrichment_queue_secs: 15,
            reservation_grace_ms: 100,
            reconcile_idle_ms: 2_000,
        }
    }
}

impl Default for WebflowSettings {
    fn default() -> Self {
        Self {
            api_base_url: "https://api.webflow.com/v2".into(),
            allow_insecure_http: false,
            timeout_ms: 10_000,
            sites: BTreeMap::new(),
            budget: BudgetSettings::default(),
            store_refresh_ms: 1_000,
            oauth: None,
        }
    }
}

impl WebflowSettings {
    /// The OAuth app's client secret, when "Connect with Webflow" is configured: webhooks the
    /// app created are signed with it.
    pub fn oauth_client_secret(&self) -> Option<SecretString> {
        self.oauth.as_ref().and_then(OAuthSettings::client_secret)
    }

    /// Checks every site and resolves `*_file` secrets into memory.
    pub fn validate(&mut self) -> Result<(), SettingsError> {
        let base = self.api_base_url.as_str();
        if base.starts_with("http://") {
            if !self.allow_insecure_http {
                return Err(SettingsError::invalid(
                    "webflow.api_base_url",
                    "plain http is refused; use https, or set webflow.allow_insecure_http = true for a local simulator",
                ));
            }
        } else if !base.starts_with("https://") {
            return Err(SettingsError::invalid("webflow.api_base_url", "must be an http(s) URL"));
        }
        if self.store_refresh_ms == 0 {
            return Err(SettingsError::invalid("webflow.store_refresh_ms", "must be above 0"));
        }
        if let Some(oauth) = &mut self.oauth {
            oauth.validate(self.allow_insecure_http)?;
        }
        let mut seen = BTreeMap::new();
        for (name, site) in &mut self.sites {
            let key = |field: &str| format!("webflow.sites.{name}.{field}");
            if site.site_id.trim().is_empty() {
                return Err(SettingsError::invalid(key("site_id"), "is required"));
            }
            if let Some(other) = seen.insert(site.site_id.clone(), name.clone()) {
                return Err(SettingsError::invalid(
                    key("site_id"),
                    format!("is also used by webflow.sites.{other}"),
                ));
            }
            if site.rate_limit_per_minute == 0 {
                return Err(SettingsError::invalid(
                    key("rate_limit_per_minute"),
                    "must be at least 1",
                ));
            }
            if !valid_merchant_name(&site.merchant) {
                return Err(SettingsError::invalid(
                    key("merchant"),
                    "a merchant name is lower-case letters, digits, `.`, `_` and `-` (at most 63, starting with a letter or digit)",
                ));
            }
            if site.inventory_safety_buffer < 0 {
                return Err(SettingsError::invalid(
                    key("inventory_safety_buffer"),
                    "must be 0 or more units",
                ));
            }
            if site.inventory_sync && site.sku_collection_id.as_deref().is_none_or(|id| id.trim().is_empty()) {
                return Err(SettingsError::invalid(
                    key("sku_collection_id"),
                    "is required when inventory_sync is on (`wmsctl sites check` lists the site's collections)",
                ));
            }
            if let Some(path) = &site.api_token_file {
                if site.api_token.is_some() {
                    return Err(SettingsError::invalid(
                        key("api_token_file"),
                        "give api_token or api_token_file, not both",
                    ));
                }
                match read_secret_file(path) {
                    Ok(token) => site.api_token = Some(SecretString::from(token)),
                    Err(message) => {
                        site.unreadable.insert("api_token_file", message);
                    }
                }
            }
            if let Some(path) = &site.webhook_secrets_file {
                match read_secret_file(path) {
                    Ok(content) => site.webhook_secrets.extend(
                        content
                            .lines()
                            .map(str::trim)
                            .filter(|l| !l.is_empty())
                            .map(|l| SecretString::from(l.to_owned())),
                    ),
                    Err(message) => {
                        site.unreadable.insert("webhook_secrets_file", message);
                    }
                }
            }
        }
        Ok(())
    }

    /// The ingress cannot verify a site without at least one secret.
    pub fn require_webhook_secrets(&self) -> Result<(), SettingsError> {
        self.require_per_site(
            "webhook_secrets",
            "webhook_secrets_file",
            |site| !site.webhook_secrets.is_empty(),
            "at least one webhook secret is required",
        )
    }

    /// Workers that call the API need a token per site.
    pub fn require_api_tokens(&self) -> Result<(), SettingsError> {
        self.require_per_site(
            "api_token",
            "api_token_file",
            |site| {
                site.api_token
                    .as_ref()
                    .is_some_and(|t| !t.expose_secret().trim().is_empty())
            },
            "an API token (or api_token_file) is required",
        )
    }

    /// Every site has `field` (`has`), and its `file` (the same, from a file) was readable.
    fn require_per_site(
        &self,
        field: &str,
        file: &'static str,
        has: fn(&SiteSettings) -> bool,
        missing: &str,
    ) -> Result<(), SettingsError> {
        for (name, site) in &self.sites {
            if let Some(message) = site.unreadable.get(file) {
                return Err(SettingsError::invalid(
                    format!("webflow.sites.{name}.{file}"),
                    message.clone(),
                ));
            }
            if !has(site) {
                return Err(SettingsError::invalid(format!("webflow.sites.{name}.{field}"), missing));
            }
        }
        Ok(())
    }
}

/// The merchants table's rule for names (they appear in URLs): `^[a-z0-9][a-z0-9._-]{0,62}$`.
fn valid_merchant_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name.len() <= 63
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'))
}

impl WebflowClient {
    /// The Webflow client every process builds from `[webflow]`.
    pub fn from_settings(settings: &WebflowSettings) -> Result<Self, WebflowError> {
        Self::new(
            &settings.api_base_url,
            Duration::from_millis(settings.timeout_ms),
            settings.allow_insecure_http,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use wms_settings::{Validate, load_from};

    #[derive(Debug, Deserialize, Default)]
    #[serde(default)]
    struct Sample {
        webflow: WebflowSettings,
    }

    impl Validate for Sample {
        fn validate(&mut self) -> Result<(), SettingsError> {
            self.webflow.validate()
        }
    }

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn oauth_reads_its_secret_file_defaults_webflows_urls_and_hides_the_secret() {
        let mut secret = tempfile::NamedTempFile::new().unwrap();
        writeln!(secret, "app-secret").unwrap();
        let path = secret.path().display().to_string();
        let settings: Sample = load_from(
            None,
            env(&[
                ("WMS__WEBFLOW__OAUTH__CLIENT_ID", "app"),
                ("WMS__WEBFLOW__OAUTH__CLIENT_SECRET_FILE", &path),
                (
                    "WMS__WEBFLOW__OAUTH__REDIRECT_URL",
                    "http://127.0.0.1:8081/console/stores/oauth/callback",
                ),
            ]),
        )
        .unwrap();
        let oauth = settings.webflow.oauth.unwrap();
        assert_eq!(oauth.client_secret().unwrap().expose_secret(), "app-secret");
        assert_eq!(oauth.authorize_url, "https://webflow.com/oauth/authorize");
        assert_eq!(oauth.token_url, "https://api.webflow.com/oauth/token");
        assert!(!format!("{oauth:?}").contains("app-secret"));
    }

    #[test]
    fn oauth_needs_one_secret_and_https_for_webflows_urls() {
        let base = [
            ("WMS__WEBFLOW__OAUTH__CLIENT_ID", "app"),
            ("WMS__WEBFLOW__OAUTH__REDIRECT_URL", "https://wms.example/cb"),
        ];
        let error = |extra: &[(&str, &str)]| {
            let mut pairs = base.to_vec();
            pairs.extend_from_slice(extra);
            load_from::<Sample, _>(None, env(&pairs)).unwrap_err().to_string()
        };
        assert!(error(&[]).contains("webflow.oauth.client_secret"));
        assert!(
            error(&[
                ("WMS__WEBFLOW__OAUTH__CLIENT_SECRET", "s"),
                ("WMS__WEBFLOW__OAUTH__CLIENT_SECRET_FILE", "/nope")
            ])
            .contains("not both")
        );
        assert!(
            error(&[
                ("WMS__WEBFLOW__OAUTH__CLIENT_SECRET", "s"),
                ("WMS__WEBFLOW__OAUTH__TOKEN_URL", "http://sim/oauth/token")
            ])
            .contains("webflow.oauth.token_url")
        );
    }

    #[test]
    fn defaults_point_at_webflow() {
        let settings: Sample = load_from(None, env(&[])).unwrap();
        assert_eq!(settings.webflow.api_base_url, "https://api.webflow.com/v2");
        assert!(settings.webflow.sites.is_empty());
    }

    #[test]
    fn sites_from_file_then_env() {
        let mut file = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
        writeln!(
            file,
            "[webflow.sites.shop]\nsite_id = \"abc\"\nwebhook_secrets = [\"one\", \"two\"]\napi_token = \"tok\""
        )
        .unwrap();
        let settings: Sample = load_from(
            Some(file.path().to_path_buf()),
            env(&[("WMS__WEBFLOW__SITES__SHOP__RATE_LIMIT_PER_MINUTE", "120")]),
        )
        .unwrap();
        let shop = &settings.webflow.sites["shop"];
        assert_eq!(shop.webhook_secrets.len(), 2);
        assert_eq!(shop.rate_limit_per_minute, 120);
        assert!(shop.send_fulfillment_email);
        let printed = format!("{settings:?}");
        assert!(
            !printed.contains("tok\"") && !printed.contains("\"one\""),
            "secrets leak in Debug: {printed}"
        );
    }

    #[test]
    fn env_can_give_secrets_as_a_comma_list() {
        let settings: Sample = load_from(
            None,
            env(&[
                ("WMS__WEBFLOW__SITES__SHOP__SITE_ID", "abc"),
                ("WMS__WEBFLOW__SITES__SHOP__WEBHOOK_SECRETS", "old, new"),
            ]),
        )
        .unwrap();
        let secrets: Vec<&str> = settings.webflow.sites["shop"]
            .webhook_secrets
            .iter()
            .map(|s| s.expose_secret())
            .collect();
        assert_eq!(secrets, ["old", "new"]);
    }

    #[test]
    fn errors_name_the_key() {
        let err = load_from::<Sample, _>(None, env(&[("WMS__WEBFLOW__API_BASE_URL", "http://localhost")])).unwrap_err();
        assert!(err.to_string().contains("webflow.api_base_url"), "{err}");
        let err = load_from::<Sample, _>(None, env(&[("WMS__WEBFLOW__SITES__SHOP__RATE_LIMIT_PER_MINUTE", "5")]))
            .unwrap_err();
        assert!(err.to_string().contains("webflow.sites.shop.site_id"), "{err}");
    }

    #[test]
    fn inventory_sync_needs_the_sku_collection() {
        let err = load_from::<Sample, _>(
            None,
            env(&[
                ("WMS__WEBFLOW__SITES__SHOP__SITE_ID", "abc"),
                ("WMS__WEBFLOW__SITES__SHOP__INVENTORY_SYNC", "true"),
            ]),
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("webflow.sites.shop.sku_collection_id"),
            "{err}"
        );
        let settings: Sample = load_from(
            None,
            env(&[
                ("WMS__WEBFLOW__SITES__SHOP__SITE_ID", "abc"),
                ("WMS__WEBFLOW__SITES__SHOP__INVENTORY_SYNC", "true"),
                (
                    "WMS__WEBFLOW__SITES__SHOP__SKU_COLLECTION_ID",
                    "5c0000000000000000000001",
                ),
                ("WMS__WEBFLOW__SITES__SHOP__INVENTORY_SAFETY_BUFFER", "2"),
            ]),
        )
        .unwrap();
        let shop = &settings.webflow.sites["shop"];
        assert!(shop.inventory_sync);
        assert_eq!(shop.inventory_safety_buffer, 2);
        let err = load_from::<Sample, _>(
            None,
            env(&[
                ("WMS__WEBFLOW__SITES__SHOP__SITE_ID", "abc"),
                ("WMS__WEBFLOW__SITES__SHOP__INVENTORY_SAFETY_BUFFER", "-1"),
            ]),
        )
        .unwrap_err();
        assert!(err.to_string().contains("inventory_safety_buffer"), "{err}");
    }

    #[test]
    fn a_site_belongs_to_the_default_merchant_unless_it_names_one() {
        let settings: Sample = load_from(None, env(&[("WMS__WEBFLOW__SITES__SHOP__SITE_ID", "abc")])).unwrap();
        assert_eq!(settings.webflow.sites["shop"].merchant, "default");
        assert_eq!(settings.webflow.store_refresh_ms, 1_000);
        let settings: Sample = load_from(
            None,
            env(&[
                ("WMS__WEBFLOW__SITES__SHOP__SITE_ID", "abc"),
                ("WMS__WEBFLOW__SITES__SHOP__MERCHANT", "acme"),
            ]),
        )
        .unwrap();
        assert_eq!(settings.webflow.sites["shop"].merchant, "acme");
        let err = load_from::<Sample, _>(
            None,
            env(&[
                ("WMS__WEBFLOW__SITES__SHOP__SITE_ID", "abc"),
                ("WMS__WEBFLOW__SITES__SHOP__MERCHANT", "Not A Name"),
            ]),
        )
        .unwrap_err();
        assert!(err.to_string().contains("webflow.sites.shop.merchant"), "{err}");
        let err = load_from::<Sample, _>(None, env(&[("WMS__WEBFLOW__STORE_REFRESH_MS", "0")])).unwrap_err();
        assert!(err.to_string().contains("webflow.store_refresh_ms"), "{err}");
    }

    #[test]
    fn the_oauth_client_secret_comes_from_its_file_and_stays_out_of_debug() {
        let settings: Sample = load_from(None, env(&[])).unwrap();
        assert!(settings.webflow.oauth.is_none() && settings.webflow.oauth_client_secret().is_none());
        let mut file = tempfile::NamedTempFile::new().unwrap();
        writeln!(file, "app-client-secret").unwrap();
        let settings: Sample = load_from(
            None,
            env(&[
                ("WMS__WEBFLOW__OAUTH__CLIENT_ID", "app"),
                ("WMS__WEBFLOW__OAUTH__CLIENT_SECRET_FILE", file.path().to_str().unwrap()),
                (
                    "WMS__WEBFLOW__OAUTH__REDIRECT_URL",
                    "https://console.example.com/console/stores/oauth/callback",
                ),
            ]),
        )
        .unwrap();
        let oauth = settings.webflow.oauth.as_ref().unwrap();
        assert_eq!(oauth.authorize_url, "https://webflow.com/oauth/authorize");
        assert_eq!(oauth.token_url, "https://api.webflow.com/oauth/token");
        assert_eq!(
            settings.webflow.oauth_client_secret().unwrap().expose_secret(),
            "app-client-secret"
        );
        assert!(!format!("{settings:?}").contains("app-client-secret"));
    }

    #[test]
    fn token_file_is_read() {
        let mut token = tempfile::NamedTempFile::new().unwrap();
        writeln!(token, "secret-token").unwrap();
        let settings: Sample = load_from(
            None,
            env(&[
                ("WMS__WEBFLOW__SITES__SHOP__SITE_ID", "abc"),
                (
                    "WMS__WEBFLOW__SITES__SHOP__API_TOKEN_FILE",
                    token.path().to_str().unwrap(),
                ),
            ]),
        )
        .unwrap();
        settings.webflow.require_api_tokens().unwrap();
        assert_eq!(
            settings.webflow.sites["shop"]
                .api_token
                .as_ref()
                .unwrap()
                .expose_secret(),
            "secret-token"
        );
    }

    #[test]
    fn a_secret_file_that_is_not_mounted_only_fails_the_service_that_needs_it() {
        let settings: Sample = load_from(
            None,
            env(&[
                ("WMS__WEBFLOW__SITES__SHOP__SITE_ID", "abc"),
                ("WMS__WEBFLOW__SITES__SHOP__API_TOKEN_FILE", "/nonexistent/token"),
                (
                    "WMS__WEBFLOW__SITES__SHOP__WEBHOOK_SECRETS_FILE",
                    "/nonexistent/secrets",
                ),
            ]),
        )
        .unwrap();
        let err = settings.webflow.require_api_tokens().unwrap_err();
        assert!(err.to_string().contains("webflow.sites.shop.api_token_file"), "{err}");
        let err = settings.webflow.require_webhook_secrets().unwrap_err();
        assert!(
            err.to_string().contains("webflow.sites.shop.webhook_secrets_file"),
            "{err}"
        );
    }
}
