//! Layered settings: built-in defaults (every binary runs with no file), then the file named
//! by `WMS_CONFIG` (TOML or YAML, by extension), then environment variables
//! `WMS__SECTION__KEY`. One shared file serves every binary; each binary deserialises only
//! the sections it needs (serde ignores the rest).
//!
//! Invalid or missing required settings stop the process at start with an error naming the key.

use crate::retry::RetryPolicy;
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

pub const CONFIG_FILE_ENV: &str = "WMS_CONFIG";

#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    #[error("cannot read configuration: {0}")]
    Source(#[from] config::ConfigError),
    #[error("invalid setting `{key}`: {message}")]
    Invalid { key: String, message: String },
}

impl SettingsError {
    pub fn invalid(key: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Invalid {
            key: key.into(),
            message: message.into(),
        }
    }
}

/// A settings type that can check itself after loading.
pub trait Validate {
    fn validate(&mut self) -> Result<(), SettingsError>;
}

/// Loads `T` from the layers described in the module docs, then validates it.
pub fn load<T: DeserializeOwned + Validate>() -> Result<T, SettingsError> {
    let file = std::env::var_os(CONFIG_FILE_ENV).map(PathBuf::from);
    load_from(file, std::env::vars())
}

/// Like [`load`], with the file and environment given explicitly (tests).
pub fn load_from<T, I>(file: Option<PathBuf>, env: I) -> Result<T, SettingsError>
where
    T: DeserializeOwned + Validate,
    I: IntoIterator<Item = (String, String)>,
{
    let mut builder = config::Config::builder();
    if let Some(path) = file {
        let format = match path.extension().and_then(|e| e.to_str()) {
            Some("yaml" | "yml") => config::FileFormat::Yaml,
            Some("toml") => config::FileFormat::Toml,
            _ => {
                return Err(SettingsError::invalid(
                    CONFIG_FILE_ENV,
                    format!("`{}` must end in .toml, .yaml or .yml", path.display()),
                ));
            }
        };
        if !path.is_file() {
            return Err(SettingsError::invalid(
                CONFIG_FILE_ENV,
                format!("`{}` does not exist or is not a file", path.display()),
            ));
        }
        builder = builder.add_source(config::File::from(path).format(format).required(true));
    }
    let env: config::Map<String, String> = env.into_iter().filter(|(key, _)| key.starts_with("WMS__")).collect();
    builder = builder.add_source(
        config::Environment::with_prefix("WMS")
            .prefix_separator("__")
            .separator("__")
            .try_parsing(true)
            .source(Some(env)),
    );
    let config = builder.build()?;
    let mut settings: T = serde_path_to_error::deserialize(config)
        .map_err(|error| SettingsError::invalid(error.path().to_string(), error.inner().to_string()))?;
    settings.validate()?;
    Ok(settings)
}

/// Accepts a list, or a comma-separated string (the only form an environment variable has).
pub fn string_or_list<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<SecretString>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    let values = match Option::<OneOrMany>::deserialize(deserializer)? {
        None => Vec::new(),
        Some(OneOrMany::One(joined)) => joined.split(',').map(str::to_owned).collect(),
        Some(OneOrMany::Many(values)) => values,
    };
    Ok(values
        .into_iter()
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
        .map(SecretString::from)
        .collect())
}

/// Accepts a list of numbers, one number, or a comma-separated string (environment variables).
fn number_list<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u64>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Form {
        One(u64),
        Text(String),
        Many(Vec<u64>),
    }
    match Form::deserialize(deserializer)? {
        Form::One(n) => Ok(vec![n]),
        Form::Many(values) => Ok(values),
        Form::Text(text) => text
            .split(',')
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(|v| {
                v.parse()
                    .map_err(|_| serde::de::Error::custom(format!("`{v}` is not a whole number")))
            })
            .collect(),
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(default)]
pub struct AmqpSettings {
    /// Broker URL; may hold a password, so it is a secret.
    pub url: SecretString,
    /// Prefixes every exchange and queue, so several installs (and tests) share one broker.
    pub namespace: String,
    /// Deliveries a worker holds unacknowledged at once.
    pub prefetch: u16,
    /// Deliveries after which a quorum queue dead-letters a message that keeps crashing its consumer.
    pub delivery_limit: u32,
    /// Delay tiers of the retry queues, in milliseconds.
    #[serde(deserialize_with = "number_list")]
    pub retry_delays_ms: Vec<u64>,
    /// How reconnection attempts are spaced.
    #[serde(deserialize_with = "reconnect_policy")]
    pub reconnect: RetryPolicy,
}

impl Default for AmqpSettings {
    fn default() -> Self {
        Self {
            url: SecretString::from("amqp://guest:guest@127.0.0.1:5672/%2f"),
            namespace: "wms".into(),
            prefetch: 32,
            delivery_limit: 10,
            retry_delays_ms: vec![1_000, 5_000, 30_000, 120_000, 600_000],
            reconnect: default_reconnect(),
        }
    }
}

/// Reconnect quickly and keep trying often: a broker restart should cost seconds, not minutes.
fn default_reconnect() -> RetryPolicy {
    RetryPolicy {
        initial_ms: 200,
        multiplier: 2.0,
        max_ms: 10_000,
        randomization: 0.2,
    }
}

fn reconnect_policy<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<RetryPolicy, D::Error> {
    RetryPolicy::deserialize_over(deserializer, default_reconnect())
}

impl AmqpSettings {
    pub fn validate(&self) -> Result<(), SettingsError> {
        let url = self.url.expose_secret();
        if !(url.starts_with("amqp://") || url.starts_with("amqps://")) {
            return Err(SettingsError::invalid(
                "amqp.url",
                "must start with amqp:// or amqps://",
            ));
        }
        let valid_namespace = !self.namespace.is_empty()
            && self.namespace.len() <= 64
            && self
                .namespace
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'_'));
        if !valid_namespace {
            return Err(SettingsError::invalid(
                "amqp.namespace",
                "must be 1-64 characters of a-z, 0-9, '-' or '_'",
            ));
        }
        if self.prefetch == 0 {
            return Err(SettingsError::invalid("amqp.prefetch", "must be at least 1"));
        }
        if self.retry_delays_ms.is_empty() || self.retry_delays_ms.contains(&0) {
            return Err(SettingsError::invalid(
                "amqp.retry_delays_ms",
                "needs at least one delay above 0",
            ));
        }
        Ok(())
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(default)]
pub struct DatabaseSettings {
    /// PostgreSQL URL; may hold a password, so it is a secret.
    pub url: SecretString,
    pub pool_size: usize,
    /// Apply pending migrations at start (under an advisory lock).
    pub migrate_on_start: bool,
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        Self {
            url: SecretString::from("postgres://postgres@127.0.0.1:5432/wms"),
            pool_size: 16,
            migrate_on_start: true,
        }
    }
}

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
}

impl Default for WebflowSettings {
    fn default() -> Self {
        Self {
            api_base_url: "https://api.webflow.com/v2".into(),
            allow_insecure_http: false,
            timeout_ms: 10_000,
            sites: BTreeMap::new(),
        }
    }
}

impl WebflowSettings {
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
            if let Some(path) = &site.api_token_file {
                if site.api_token.is_some() {
                    return Err(SettingsError::invalid(
                        key("api_token_file"),
                        "give api_token or api_token_file, not both",
                    ));
                }
                let token = read_secret_file(path).map_err(|m| SettingsError::invalid(key("api_token_file"), m))?;
                site.api_token = Some(SecretString::from(token));
            }
            if let Some(path) = &site.webhook_secrets_file {
                let content =
                    read_secret_file(path).map_err(|m| SettingsError::invalid(key("webhook_secrets_file"), m))?;
                site.webhook_secrets.extend(
                    content
                        .lines()
                        .map(str::trim)
                        .filter(|l| !l.is_empty())
                        .map(|l| SecretString::from(l.to_owned())),
                );
            }
        }
        Ok(())
    }

    /// The ingress cannot verify a site without at least one secret.
    pub fn require_webhook_secrets(&self) -> Result<(), SettingsError> {
        for (name, site) in &self.sites {
            if site.webhook_secrets.is_empty() {
                return Err(SettingsError::invalid(
                    format!("webflow.sites.{name}.webhook_secrets"),
                    "at least one webhook secret is required",
                ));
            }
        }
        Ok(())
    }

    /// Workers that call the API need a token per site.
    pub fn require_api_tokens(&self) -> Result<(), SettingsError> {
        for (name, site) in &self.sites {
            if site
                .api_token
                .as_ref()
                .is_none_or(|t| t.expose_secret().trim().is_empty())
            {
                return Err(SettingsError::invalid(
                    format!("webflow.sites.{name}.api_token"),
                    "an API token (or api_token_file) is required",
                ));
            }
        }
        Ok(())
    }

    pub fn site_by_id(&self, site_id: &str) -> Option<&SiteSettings> {
        self.sites.values().find(|site| site.site_id == site_id)
    }
}

fn read_secret_file(path: &PathBuf) -> Result<String, String> {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_owned())
        .map_err(|e| format!("cannot read `{}`: {e}", path.display()))
}

/// Where a process serves `/healthz`, `/readyz` and `/metrics` (port 0 picks a free port).
#[derive(Clone, Debug, Deserialize)]
#[serde(default)]
pub struct HealthSettings {
    pub bind: String,
}

impl Default for HealthSettings {
    fn default() -> Self {
        Self {
            bind: "0.0.0.0:9000".into(),
        }
    }
}

impl HealthSettings {
    pub fn socket_addr(&self) -> Result<SocketAddr, SettingsError> {
        parse_bind("health.bind", &self.bind)
    }
}

/// Parses a `host:port` listen address, naming `key` on error.
pub fn parse_bind(key: &str, value: &str) -> Result<SocketAddr, SettingsError> {
    value
        .parse()
        .map_err(|e| SettingsError::invalid(key, format!("`{value}` is not an address like 0.0.0.0:8080 ({e})")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[derive(Debug, Deserialize, Default)]
    #[serde(default)]
    struct Sample {
        amqp: AmqpSettings,
        webflow: WebflowSettings,
        health: HealthSettings,
    }

    impl Validate for Sample {
        fn validate(&mut self) -> Result<(), SettingsError> {
            self.amqp.validate()?;
            self.webflow.validate()?;
            self.health.socket_addr()?;
            Ok(())
        }
    }

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn defaults_need_no_file() {
        let settings: Sample = load_from(None, env(&[])).unwrap();
        assert_eq!(settings.amqp.namespace, "wms");
        assert_eq!(settings.webflow.api_base_url, "https://api.webflow.com/v2");
    }

    #[test]
    fn file_then_env_override() {
        let mut file = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
        writeln!(
            file,
            "[amqp]\nnamespace = \"fromfile\"\n[webflow.sites.shop]\nsite_id = \"abc\"\nwebhook_secrets = [\"one\", \"two\"]\napi_token = \"tok\""
        )
        .unwrap();
        let settings: Sample = load_from(
            Some(file.path().to_path_buf()),
            env(&[
                ("WMS__AMQP__NAMESPACE", "fromenv"),
                ("WMS__WEBFLOW__SITES__SHOP__RATE_LIMIT_PER_MINUTE", "120"),
            ]),
        )
        .unwrap();
        assert_eq!(settings.amqp.namespace, "fromenv");
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
        let err = load_from::<Sample, _>(None, env(&[("WMS__AMQP__PREFETCH", "many")])).unwrap_err();
        assert!(err.to_string().contains("amqp.prefetch"), "{err}");
        let err = load_from::<Sample, _>(None, env(&[("WMS__AMQP__NAMESPACE", "Bad Name")])).unwrap_err();
        assert!(err.to_string().contains("amqp.namespace"), "{err}");
        let err = load_from::<Sample, _>(None, env(&[("WMS__WEBFLOW__API_BASE_URL", "http://localhost")])).unwrap_err();
        assert!(err.to_string().contains("webflow.api_base_url"), "{err}");
        let err = load_from::<Sample, _>(None, env(&[("WMS__WEBFLOW__SITES__SHOP__RATE_LIMIT_PER_MINUTE", "5")]))
            .unwrap_err();
        assert!(err.to_string().contains("webflow.sites.shop.site_id"), "{err}");
        let err = load_from::<Sample, _>(None, env(&[("WMS__HEALTH__BIND", "nope")])).unwrap_err();
        assert!(err.to_string().contains("health.bind"), "{err}");
        let err = load_from::<Sample, _>(Some("/nonexistent.toml".into()), env(&[])).unwrap_err();
        assert!(err.to_string().contains("WMS_CONFIG"), "{err}");
    }

    #[test]
    fn number_lists_come_from_the_environment_too() {
        let settings: Sample = load_from(None, env(&[("WMS__AMQP__RETRY_DELAYS_MS", "100, 2000")])).unwrap();
        assert_eq!(settings.amqp.retry_delays_ms, vec![100, 2_000]);
        let settings: Sample = load_from(None, env(&[("WMS__AMQP__RETRY_DELAYS_MS", "250")])).unwrap();
        assert_eq!(settings.amqp.retry_delays_ms, vec![250]);
    }

    #[test]
    fn one_reconnect_key_keeps_the_other_reconnect_defaults() {
        let settings: Sample = load_from(None, env(&[("WMS__AMQP__RECONNECT__INITIAL_MS", "100")])).unwrap();
        assert_eq!(
            settings.amqp.reconnect,
            RetryPolicy {
                initial_ms: 100,
                ..default_reconnect()
            }
        );
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
}
