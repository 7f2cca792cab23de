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
    /// Broker URL, or several (a list, or comma-separated) of the nodes of one cluster: the
    /// connection fails over from one to the next. May hold a password, so it is a secret;
    /// [`Self::addresses`] splits it.
    #[serde(deserialize_with = "url_or_list")]
    pub url: SecretString,
    /// Prefixes every exchange and queue, so several installs (and tests) share one broker.
    pub namespace: String,
    /// Deliveries after which a quorum queue dead-letters a message that keeps crashing its consumer.
    pub delivery_limit: u32,
    /// Replicas of each quorum queue when it is created (`x-quorum-initial-group-size`);
    /// RabbitMQ caps it to the cluster size, so 3 suits one node and three alike. 0 leaves it
    /// to the broker (`quorum_cluster_size`). Only applies when a queue is created.
    pub quorum_initial_group_size: u32,
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
            delivery_limit: 10,
            quorum_initial_group_size: 3,
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

/// `amqp.url`: one URL, a comma-separated string of them (the form an environment variable
/// has), or a list; kept as one comma-separated secret.
fn url_or_list<'de, D: Deserializer<'de>>(deserializer: D) -> Result<SecretString, D::Error> {
    let urls = string_or_list(deserializer)?;
    let joined: Vec<&str> = urls.iter().map(ExposeSecret::expose_secret).collect();
    Ok(SecretString::from(joined.join(",")))
}

impl AmqpSettings {
    /// The broker addresses in `amqp.url`, in the order the connection tries them.
    pub fn addresses(&self) -> Vec<SecretString> {
        crate::amqp::addresses::split(&self.url)
    }

    pub fn validate(&self) -> Result<(), SettingsError> {
        let addresses = self.addresses();
        if addresses.is_empty() {
            return Err(SettingsError::invalid("amqp.url", "needs at least one amqp:// URL"));
        }
        for (index, url) in addresses.iter().enumerate() {
            let url = url.expose_secret();
            if !(url.starts_with("amqp://") || url.starts_with("amqps://")) {
                let which = if addresses.len() > 1 {
                    format!(" (address {})", index + 1)
                } else {
                    String::new()
                };
                return Err(SettingsError::invalid(
                    "amqp.url",
                    format!("must start with amqp:// or amqps://{which}"),
                ));
            }
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

/// Reads a secret mounted as a file (a Kubernetes Secret), trimmed; the error names the file.
pub fn read_secret_file(path: &std::path::Path) -> Result<String, String> {
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
        health: HealthSettings,
    }

    impl Validate for Sample {
        fn validate(&mut self) -> Result<(), SettingsError> {
            self.amqp.validate()?;
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
    }

    #[test]
    fn file_then_env_override() {
        let mut file = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
        writeln!(file, "[amqp]\nnamespace = \"fromfile\"\ndelivery_limit = 7").unwrap();
        let settings: Sample = load_from(
            Some(file.path().to_path_buf()),
            env(&[("WMS__AMQP__NAMESPACE", "fromenv")]),
        )
        .unwrap();
        assert_eq!(settings.amqp.namespace, "fromenv");
        assert_eq!(settings.amqp.delivery_limit, 7);
        let printed = format!("{settings:?}");
        assert!(!printed.contains("guest:guest"), "secrets leak in Debug: {printed}");
    }

    #[test]
    fn errors_name_the_key() {
        let err = load_from::<Sample, _>(None, env(&[("WMS__AMQP__DELIVERY_LIMIT", "many")])).unwrap_err();
        assert!(err.to_string().contains("amqp.delivery_limit"), "{err}");
        let err = load_from::<Sample, _>(None, env(&[("WMS__AMQP__NAMESPACE", "Bad Name")])).unwrap_err();
        assert!(err.to_string().contains("amqp.namespace"), "{err}");
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
    fn several_broker_addresses_from_a_list_or_a_comma_separated_string() {
        let settings: Sample = load_from(None, env(&[])).unwrap();
        assert_eq!(settings.amqp.addresses().len(), 1, "one address by default");
        assert_eq!(settings.amqp.quorum_initial_group_size, 3);

        let settings: Sample = load_from(
            None,
            env(&[(
                "WMS__AMQP__URL",
                "amqp://u:p@a:5672/%2f, amqp://u:p@b:5672/%2f,amqp://u:p@c:5672/%2f",
            )]),
        )
        .unwrap();
        let addresses: Vec<String> = settings
            .amqp
            .addresses()
            .iter()
            .map(|a| a.expose_secret().to_owned())
            .collect();
        assert_eq!(
            addresses,
            [
                "amqp://u:p@a:5672/%2f",
                "amqp://u:p@b:5672/%2f",
                "amqp://u:p@c:5672/%2f"
            ]
        );

        let mut file = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
        writeln!(
            file,
            "[amqp]\nurl = [\"amqp://a:5672/%2f\", \"amqp://b:5672/%2f\"]\nquorum_initial_group_size = 5"
        )
        .unwrap();
        let settings: Sample = load_from(Some(file.path().to_path_buf()), env(&[])).unwrap();
        assert_eq!(settings.amqp.addresses().len(), 2);
        assert_eq!(settings.amqp.quorum_initial_group_size, 5);

        let err = load_from::<Sample, _>(None, env(&[("WMS__AMQP__URL", "amqp://a:5672/%2f,http://b")])).unwrap_err();
        assert!(
            err.to_string().contains("amqp.url") && err.to_string().contains("address 2"),
            "{err}"
        );
        let err = load_from::<Sample, _>(None, env(&[("WMS__AMQP__URL", " , ")])).unwrap_err();
        assert!(err.to_string().contains("amqp.url"), "{err}");
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
}
