//! Layered settings: built-in defaults (every binary runs with no file), then the file named
//! by `WMS_CONFIG` (TOML or YAML, by extension), then environment variables
//! `WMS__SECTION__KEY`. One shared file serves every binary; each binary deserialises only
//! the sections it needs.
//!
//! Invalid or missing required settings stop the process at start with an error naming the key.
//! So does a key that no service knows (a misspelling would otherwise fall back to the default
//! silently), and, under `profile = "production"` (the default), a setting only local runs
//! may use ([`Profile`]).
//!
//! How unknown keys are found, with no list to keep in step with the settings types: a binary
//! knows the top-level sections of every service ([`KNOWN_TOP_LEVEL_KEYS`]) and the exact keys
//! of the sections it reads itself. For the latter, each key of the merged configuration is
//! probed against the binary's settings type: the type is deserialised from a tree holding only
//! that key, with a value of a type no setting accepts. A key the type reads fails to
//! deserialise; a key it does not know is ignored by serde and deserialises. (This works
//! through `#[serde(flatten)]`, where `serde_ignored` sees nothing.) A key in another service's
//! section is checked by that service, which refuses to start.

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
    #[error(
        "unknown setting{}: {}: no service reads {}; check the spelling against docs/configuration.md",
        if keys.len() > 1 { "s" } else { "" },
        keys.join(", "),
        if keys.len() > 1 { "them" } else { "it" }
    )]
    UnknownKeys { keys: Vec<String> },
    #[error(
        "`{key}` is refused under profile = \"production\" ({why}); it is for local runs only: set \
         `profile = \"local\"` (or WMS__PROFILE=local) on a developer machine"
    )]
    LocalOnly { key: String, why: String },
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

    /// Refuses settings that only a local profile may use (the sandbox carrier…). Called after
    /// [`Validate::validate`] with the configuration's `profile`.
    fn check_profile(&self, _profile: Profile) -> Result<(), SettingsError> {
        Ok(())
    }
}

/// What a configuration is for: the top-level key `profile`. Production is the default, so a
/// deployment that forgets the key fails closed: simulators, the sandbox carrier and plain-http
/// Webflow are refused at start-up.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    /// A developer machine, `make run`, docker-compose and the tests.
    Local,
    #[default]
    Production,
}

/// Every top-level key some binary of the workspace reads: `profile` and one per section.
/// A top-level key outside this list is refused by every binary. When a service adds a section,
/// add it here (the e2e test `every_section_is_known` fails otherwise).
pub const KNOWN_TOP_LEVEL_KEYS: &[&str] = &[
    "profile",
    "amqp",
    "database",
    "health",
    "telemetry",
    "worker",
    "webflow",
    "ingress",
    "enrich",
    "warehouse",
    "carrier",
    "reconcile",
    "inventory_sync",
];

/// The profile the configuration layers select (for binaries with no settings of their own,
/// such as the simulator).
pub fn load_profile() -> Result<Profile, SettingsError> {
    let file = std::env::var_os(CONFIG_FILE_ENV).map(PathBuf::from);
    let (config, _) = build(file, std::env::vars())?;
    profile_of(&tree_of(&config)?)
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
    let (config, env_keys) = build(file, env)?;
    let tree = tree_of(&config)?;
    check_known_keys::<T>(&tree, &env_keys)?;
    let profile = profile_of(&tree)?;
    if profile == Profile::Production && is_true(tree.pointer("/webflow/allow_insecure_http")) {
        return Err(SettingsError::LocalOnly {
            key: "webflow.allow_insecure_http".into(),
            why: "Webflow is only reached over https; plain http is for the simulator".into(),
        });
    }
    let mut settings: T = serde_path_to_error::deserialize(config)
        .map_err(|error| SettingsError::invalid(error.path().to_string(), error.inner().to_string()))?;
    settings.validate()?;
    settings.check_profile(profile)?;
    Ok(settings)
}

/// The layers, merged; and the environment variables given, by the key each sets
/// (`webflow.sites.shop.api_token` → `WMS__WEBFLOW__SITES__SHOP__API_TOKEN`).
fn build<I>(file: Option<PathBuf>, env: I) -> Result<(config::Config, Vec<(String, String)>), SettingsError>
where
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
    let env_keys = env
        .keys()
        .map(|name| {
            let key = name["WMS__".len()..].split("__").collect::<Vec<_>>().join(".");
            (key.to_lowercase(), name.clone())
        })
        .collect();
    builder = builder.add_source(
        config::Environment::with_prefix("WMS")
            .prefix_separator("__")
            .separator("__")
            .try_parsing(true)
            .source(Some(env)),
    );
    Ok((builder.build()?, env_keys))
}

fn tree_of(config: &config::Config) -> Result<serde_json::Value, SettingsError> {
    Ok(config.clone().try_deserialize::<serde_json::Value>()?)
}

fn profile_of(tree: &serde_json::Value) -> Result<Profile, SettingsError> {
    match tree.get("profile") {
        None => Ok(Profile::default()),
        Some(value) => match value.as_str().map(str::to_ascii_lowercase).as_deref() {
            Some("local") => Ok(Profile::Local),
            Some("production") => Ok(Profile::Production),
            _ => Err(SettingsError::invalid(
                "profile",
                format!("{value} is not \"local\" or \"production\""),
            )),
        },
    }
}

fn is_true(value: Option<&serde_json::Value>) -> bool {
    match value {
        Some(serde_json::Value::Bool(b)) => *b,
        Some(serde_json::Value::String(s)) => s.trim().eq_ignore_ascii_case("true"),
        _ => false,
    }
}

/// Refuses every key of the merged layers that no service reads (see the module docs).
fn check_known_keys<T: DeserializeOwned>(
    tree: &serde_json::Value,
    env_keys: &[(String, String)],
) -> Result<(), SettingsError> {
    let mut leaves = Vec::new();
    collect_leaves(tree, &mut Vec::new(), &mut leaves);
    let mut unknown = Vec::new();
    for (path, value) in leaves {
        let Some(top) = path.first() else { continue };
        let known = if !KNOWN_TOP_LEVEL_KEYS.contains(&top.as_str()) {
            false
        } else if top == "profile" {
            // The loader itself reads it; a section named `profile` is not a profile.
            path.len() == 1
        } else if reads(std::slice::from_ref(top), serde_json::Value::Bool(true)).of::<T>() {
            // A section this binary reads: the key must be one of its type's.
            let probe = if value.is_object() {
                // An empty table: a section type fails on a boolean.
                serde_json::Value::Bool(true)
            } else {
                // A value: no scalar or list setting accepts a map.
                serde_json::json!({ "\u{1}probe": true })
            };
            reads(&path, probe).of::<T>()
        } else {
            // Another service's section: that service checks it.
            true
        };
        if !known {
            let key = path.join(".");
            let from = env_keys
                .iter()
                .find(|(env_key, _)| *env_key == key.to_lowercase())
                .map(|(_, name)| format!(" (from {name})"))
                .unwrap_or_default();
            unknown.push(format!("`{key}`{from}"));
        }
    }
    if unknown.is_empty() {
        Ok(())
    } else {
        Err(SettingsError::UnknownKeys { keys: unknown })
    }
}

/// Every key with a value that is not a table (or an empty table), with its path.
fn collect_leaves(value: &serde_json::Value, path: &mut Vec<String>, out: &mut Vec<(Vec<String>, serde_json::Value)>) {
    match value {
        serde_json::Value::Object(map) if !map.is_empty() => {
            for (key, child) in map {
                path.push(key.clone());
                collect_leaves(child, path, out);
                path.pop();
            }
        }
        _ if !path.is_empty() => out.push((path.clone(), value.clone())),
        _ => {}
    }
}

/// A probe: does a settings type read the key at `path`?
struct Probe {
    tree: serde_json::Value,
}

fn reads(path: &[String], value: serde_json::Value) -> Probe {
    let tree = path.iter().rev().fold(value, |inner, key| {
        serde_json::Value::Object([(key.clone(), inner)].into_iter().collect())
    });
    Probe { tree }
}

impl Probe {
    /// True when `T` fails on the probe's value: it reads the key.
    fn of<T: DeserializeOwned>(self) -> bool {
        serde_json::from_value::<T>(self.tree).is_err()
    }
}

/// Whether the settings type `T` reads the top-level section `section` (tests use it to check
/// that [`KNOWN_TOP_LEVEL_KEYS`] lists every service's sections).
pub fn reads_section<T: DeserializeOwned>(section: &str) -> bool {
    reads(&[section.to_owned()], serde_json::Value::Bool(true)).of::<T>()
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
    /// Delay tiers of the retry queues, in milliseconds. The 500 ms tier lets a message parked
    /// for a Webflow budget slot come back at least half a horizon (`webflow.budget.horizon_ms`)
    /// before the slot it reserved, whatever its distance: with 1 s as the smallest tier, one a
    /// little over a second away came back just in time or late, and its slot was lost.
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
            retry_delays_ms: vec![500, 1_000, 5_000, 30_000, 120_000, 600_000],
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
    /// A file holding the URL (a Kubernetes Secret mount); read at start, wins over `url`.
    pub url_file: Option<PathBuf>,
    pub pool_size: usize,
    /// Apply pending migrations at start (under an advisory lock).
    pub migrate_on_start: bool,
    /// With `migrate_on_start = false`: how long start-up waits for the migrations (run by a
    /// Job) to reach the version this build needs, before giving up.
    pub schema_wait_secs: u64,
    /// `disable`, `require` (TLS, certificate not checked) or `verify-full` (TLS, certificate
    /// chained to `ssl_root_cert` and naming the URL's host).
    pub ssl_mode: DatabaseSslMode,
    /// PEM file of the CA that signed the server's certificate (`verify-full`); without it,
    /// the system's roots.
    pub ssl_root_cert: Option<PathBuf>,
    pub connect_timeout_ms: u64,
    /// Server-side limit of one statement; 0 = none.
    pub statement_timeout_ms: u64,
    pub keepalives_idle_secs: u64,
    pub keepalives_interval_secs: u64,
    pub keepalives_retries: u32,
    /// Unacknowledged data for this long closes the connection (Linux `TCP_USER_TIMEOUT`).
    pub tcp_user_timeout_ms: u64,
}

/// How the connection to PostgreSQL is protected (libpq's modes of the same names).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DatabaseSslMode {
    #[default]
    Disable,
    Require,
    VerifyFull,
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        Self {
            url: SecretString::from("postgres://postgres@127.0.0.1:5432/wms"),
            url_file: None,
            pool_size: 16,
            migrate_on_start: true,
            schema_wait_secs: 300,
            ssl_mode: DatabaseSslMode::Disable,
            ssl_root_cert: None,
            connect_timeout_ms: 5_000,
            statement_timeout_ms: 30_000,
            keepalives_idle_secs: 30,
            keepalives_interval_secs: 10,
            keepalives_retries: 3,
            tcp_user_timeout_ms: 30_000,
        }
    }
}

impl DatabaseSettings {
    /// Resolves `url_file` and checks the values.
    pub fn validate(&mut self) -> Result<(), SettingsError> {
        if let Some(path) = &self.url_file {
            let url = read_secret_file(path).map_err(|m| SettingsError::invalid("database.url_file", m))?;
            self.url = SecretString::from(url);
        }
        if self.pool_size == 0 {
            return Err(SettingsError::invalid("database.pool_size", "must be at least 1"));
        }
        if self.connect_timeout_ms == 0 {
            return Err(SettingsError::invalid("database.connect_timeout_ms", "must be above 0"));
        }
        if self.keepalives_idle_secs == 0 || self.keepalives_interval_secs == 0 {
            return Err(SettingsError::invalid(
                "database.keepalives_idle_secs",
                "keepalives_idle_secs and keepalives_interval_secs must be above 0",
            ));
        }
        if let Some(path) = &self.ssl_root_cert {
            if self.ssl_mode != DatabaseSslMode::VerifyFull {
                return Err(SettingsError::invalid(
                    "database.ssl_root_cert",
                    "is only used with ssl_mode = \"verify-full\"",
                ));
            }
            if !path.is_file() {
                return Err(SettingsError::invalid(
                    "database.ssl_root_cert",
                    format!("`{}` does not exist or is not a file", path.display()),
                ));
            }
        }
        Ok(())
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

    fn file_with(content: &str) -> tempfile::NamedTempFile {
        let mut file = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
        write!(file, "{content}").unwrap();
        file
    }

    #[test]
    fn a_misspelt_key_in_the_file_is_refused_by_name() {
        let file = file_with("profile = \"local\"\n[amqp]\nnamespac = \"x\"\n[amqp.reconnect]\ninital_ms = 5\n");
        let err = load_from::<Sample, _>(Some(file.path().to_path_buf()), env(&[])).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("`amqp.namespac`"), "{text}");
        assert!(text.contains("`amqp.reconnect.inital_ms`"), "{text}");
        assert!(
            matches!(err, SettingsError::UnknownKeys { ref keys } if keys.len() == 2),
            "{err:?}"
        );
    }

    #[test]
    fn a_misspelt_key_in_the_environment_is_refused_with_the_variable() {
        let err = load_from::<Sample, _>(None, env(&[("WMS__AMQP__DELIVERY_LIMT", "3")])).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("`amqp.delivery_limt` (from WMS__AMQP__DELIVERY_LIMT)"),
            "{text}"
        );
        let err = load_from::<Sample, _>(None, env(&[("WMS__AMQPP__URL", "amqp://x")])).unwrap_err();
        assert!(err.to_string().contains("`amqpp.url`"), "{err}");
    }

    #[test]
    fn sections_of_other_services_are_left_to_them() {
        // `Sample` reads neither `[carrier]` nor `[webflow]`: the service that does checks them.
        let file = file_with("[carrier]\nkind = \"shipengine\"\n[webflow.sites.shop]\nwebhook_secret = \"x\"\n");
        let _: Sample = load_from(Some(file.path().to_path_buf()), env(&[])).unwrap();
        // A section no service has is refused, and so is a table where a value belongs.
        let file = file_with("[amqp]\nnamespace = \"a\"\n[amqp.url]\n[carier]\nkind = \"x\"\n");
        let text = load_from::<Sample, _>(Some(file.path().to_path_buf()), env(&[]))
            .unwrap_err()
            .to_string();
        assert!(text.contains("`carier.kind`") && !text.contains("namespace"), "{text}");
    }

    #[test]
    fn every_shared_key_is_known() {
        let file = file_with(
            "[amqp]\nurl = \"amqp://h\"\nnamespace = \"n\"\ndelivery_limit = 3\nretry_delays_ms = [1]\n\
             [amqp.reconnect]\ninitial_ms = 1\nmultiplier = 2.0\nmax_ms = 9\nrandomization = 0.1\n\
             [health]\nbind = \"127.0.0.1:0\"\n",
        );
        let _: Sample = load_from(
            Some(file.path().to_path_buf()),
            env(&[("WMS__AMQP__RETRY_DELAYS_MS", "1,2")]),
        )
        .unwrap();
    }

    #[test]
    fn production_is_the_default_and_refuses_local_only_settings() {
        let err = load_from::<Sample, _>(None, env(&[("WMS__WEBFLOW__ALLOW_INSECURE_HTTP", "true")])).unwrap_err();
        assert!(
            matches!(err, SettingsError::LocalOnly { ref key, .. } if key == "webflow.allow_insecure_http"),
            "{err}"
        );
        assert!(err.to_string().contains("profile = \"local\""), "{err}");
        let _: Sample = load_from(
            None,
            env(&[("WMS__WEBFLOW__ALLOW_INSECURE_HTTP", "true"), ("WMS__PROFILE", "local")]),
        )
        .unwrap();
        let err = load_from::<Sample, _>(None, env(&[("WMS__PROFILE", "staging")])).unwrap_err();
        assert!(err.to_string().contains("`profile`"), "{err}");
    }

    #[test]
    fn types_report_the_sections_they_read() {
        assert!(reads_section::<Sample>("amqp"));
        assert!(reads_section::<Sample>("health"));
        assert!(!reads_section::<Sample>("carrier"));
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
