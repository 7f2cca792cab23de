//! The settings sections of the shared plumbing (`[amqp]`, `[database]`, `[health]`), over the
//! layered loader of the `wms-settings` crate (defaults, then `WMS_CONFIG`, then `WMS__*`
//! variables; unknown keys and local-only settings refused). The loader is re-exported here so
//! that `platform::settings::load`, `SettingsError`, `Validate`… have one path in every process;
//! crates that need only the loader (`webflow`, `carrier`) use `wms-settings` directly.

pub use wms_settings::*;

use crate::retry::RetryPolicy;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer};
use std::net::SocketAddr;
use std::path::PathBuf;

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
    /// Whether this process declares the topology (exchanges, queues, bindings) when it
    /// connects. `false`: it only checks, by passive declares that need no permission, that the
    /// topology exists (declared by `wmsctl amqp declare` as a privileged user), so its own
    /// RabbitMQ user can do without configure permission (deploy/rabbitmq/users.sh).
    pub declare_topology: bool,
    /// Production opt-out: accept plain `amqp://` (no TLS). Only for a broker reached over a
    /// network that is protected otherwise (an in-cluster broker behind NetworkPolicies, a
    /// service mesh or sidecar that encrypts); logged as a warning at start.
    pub allow_plaintext: bool,
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
            declare_topology: true,
            allow_plaintext: false,
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

/// The user an AMQP URL logs in as, as the client parses it (`guest` when it names none).
fn amqp_username(url: &str) -> Option<String> {
    use std::str::FromStr;
    lapin::uri::AMQPUri::from_str(url)
        .ok()
        .map(|uri| uri.authority.userinfo.username)
}

impl AmqpSettings {
    /// Production rules: no `guest` user (RabbitMQ's well-known default, also what a URL
    /// without credentials logs in as; no opt-out), and `amqps://` only unless
    /// `amqp.allow_plaintext`.
    pub fn check_profile(&self, profile: Profile) -> Result<(), SettingsError> {
        if profile != Profile::Production {
            return Ok(());
        }
        let addresses = self.addresses();
        for (index, url) in addresses.iter().enumerate() {
            let url = url.expose_secret();
            let which = if addresses.len() > 1 {
                format!(" (address {})", index + 1)
            } else {
                String::new()
            };
            if amqp_username(url).as_deref() == Some("guest") {
                return Err(SettingsError::insecure(
                    "amqp.url",
                    format!(
                        "it logs in as RabbitMQ's default user `guest`{which} (also what a URL \
                         without credentials uses)"
                    ),
                    "give each service its own user and password in the URL \
                     (amqps://<user>:<password>@<host>:5671/<vhost>; docs/runbook.md, \"Kubernetes\")",
                ));
            }
            if url.starts_with("amqp://") && !self.allow_plaintext {
                return Err(SettingsError::insecure(
                    "amqp.url",
                    format!("plain amqp:// sends messages and the password unencrypted{which}"),
                    "use amqps:// (TLS, port 5671); if the network to the broker is protected \
                     otherwise (an in-cluster broker behind NetworkPolicies, a mesh that \
                     encrypts), set amqp.allow_plaintext = true",
                ));
            }
        }
        Ok(())
    }

    /// The production opt-outs in use, as warnings for the start-up log.
    pub fn opt_outs(&self, profile: Profile) -> Vec<String> {
        let plain = self
            .addresses()
            .iter()
            .any(|u| u.expose_secret().starts_with("amqp://"));
        if profile == Profile::Production && self.allow_plaintext && plain {
            vec![
                "amqp.allow_plaintext = true: the broker is reached over plain amqp://; only a \
                 network protected otherwise may carry it"
                    .into(),
            ]
        } else {
            Vec::new()
        }
    }

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
    /// PostgreSQL URL; may hold a password, so it is a secret. libpq's `sslmode` and
    /// `sslrootcert` parameters in it work as `ssl_mode` and `ssl_root_cert` (managed
    /// PostgreSQL hands out such URLs); [`Self::validate`] moves them there.
    pub url: SecretString,
    /// A file holding the URL (a Kubernetes Secret mount); read at start, wins over `url`.
    pub url_file: Option<PathBuf>,
    pub pool_size: usize,
    /// Apply pending migrations at start (under an advisory lock).
    pub migrate_on_start: bool,
    /// With `migrate_on_start = false`: how long start-up waits for the migrations (run by a
    /// Job) to reach the version this build needs, before giving up.
    pub schema_wait_secs: u64,
    /// `disable` (the default when neither this key nor the URL says), `require` (TLS,
    /// certificate not checked) or `verify-full` (TLS, certificate chained to `ssl_root_cert`
    /// and naming the URL's host). Read it through [`Self::ssl_mode`].
    pub ssl_mode: Option<DatabaseSslMode>,
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
    /// Production opt-out: accept `ssl_mode = "disable"`. Only when something else encrypts
    /// the connection (a sidecar proxy such as the Cloud SQL Auth Proxy on 127.0.0.1, a
    /// service mesh with mutual TLS); logged as a warning at start.
    pub allow_plaintext: bool,
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

impl DatabaseSslMode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Disable => "disable",
            Self::Require => "require",
            Self::VerifyFull => "verify-full",
        }
    }

    /// libpq's `sslmode` value. `prefer` and `allow` fall back to clear text and
    /// `verify-ca` checks no host name: refused, naming what to use instead.
    fn from_libpq(value: &str) -> Result<Self, String> {
        match value {
            "disable" => Ok(Self::Disable),
            "require" => Ok(Self::Require),
            "verify-full" => Ok(Self::VerifyFull),
            "allow" | "prefer" => Err(format!(
                "sslmode={value} may fall back to clear text; use sslmode=require or verify-full (or disable)"
            )),
            "verify-ca" => Err("sslmode=verify-ca does not check the host name; use sslmode=verify-full".into()),
            other => Err(format!("sslmode={other} is not one of disable, require, verify-full")),
        }
    }
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        Self {
            url: SecretString::from("postgres://postgres@127.0.0.1:5432/wms"),
            url_file: None,
            pool_size: 16,
            migrate_on_start: true,
            schema_wait_secs: 300,
            ssl_mode: None,
            ssl_root_cert: None,
            connect_timeout_ms: 5_000,
            statement_timeout_ms: 30_000,
            keepalives_idle_secs: 30,
            keepalives_interval_secs: 10,
            keepalives_retries: 3,
            tcp_user_timeout_ms: 30_000,
            allow_plaintext: false,
        }
    }
}

/// libpq's TLS parameters found in a connection string, and the string without them.
#[derive(Debug, Default, PartialEq)]
struct UrlTls {
    sslmode: Option<String>,
    sslrootcert: Option<String>,
    rest: String,
}

/// Takes `sslmode` and `sslrootcert` out of a PostgreSQL URL (`postgres://…?sslmode=…`) or a
/// libpq key/value string (`host=… sslmode=…`). Other parameters are left as they were.
fn take_url_tls(url: &str) -> UrlTls {
    let mut found = UrlTls::default();
    let mut take = |key: &str, value: String| match key {
        "sslmode" => {
            found.sslmode = Some(value);
            true
        }
        "sslrootcert" => {
            found.sslrootcert = Some(value);
            true
        }
        _ => false,
    };
    let rest = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        match url.split_once('?') {
            None => url.to_owned(),
            Some((base, query)) => {
                let kept: Vec<&str> = query
                    .split('&')
                    .filter(|pair| {
                        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                        !take(key, percent_decode(value))
                    })
                    .collect();
                if kept.is_empty() {
                    base.to_owned()
                } else {
                    format!("{base}?{}", kept.join("&"))
                }
            }
        }
    } else {
        let kept: Vec<&str> = url
            .split_whitespace()
            .filter(|pair| {
                let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                !take(key.trim(), value.trim_matches('\'').to_owned())
            })
            .collect();
        kept.join(" ")
    };
    found.rest = rest;
    found
}

fn percent_decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let decoded = (bytes[i] == b'%')
            .then(|| value.get(i + 1..i + 3))
            .flatten()
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match decoded {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl DatabaseSettings {
    /// How the connection is protected: `ssl_mode`, or the URL's `sslmode` (after
    /// [`Self::validate`]), else `disable`.
    pub fn ssl_mode(&self) -> DatabaseSslMode {
        self.ssl_mode.unwrap_or_default()
    }

    /// Resolves `url_file`, moves libpq's `sslmode`/`sslrootcert` from the URL to `ssl_mode`
    /// and `ssl_root_cert` (a URL and a key that disagree are refused), and checks the values.
    pub fn validate(&mut self) -> Result<(), SettingsError> {
        if let Some(path) = &self.url_file {
            let url = read_secret_file(path).map_err(|m| SettingsError::invalid("database.url_file", m))?;
            self.url = SecretString::from(url);
        }
        self.take_tls_from_url()?;
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
            if self.ssl_mode() != DatabaseSslMode::VerifyFull {
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

    fn take_tls_from_url(&mut self) -> Result<(), SettingsError> {
        let found = take_url_tls(self.url.expose_secret());
        if found.sslmode.is_none() && found.sslrootcert.is_none() {
            return Ok(());
        }
        if let Some(value) = &found.sslmode {
            let from_url = DatabaseSslMode::from_libpq(value).map_err(|m| SettingsError::invalid("database.url", m))?;
            match self.ssl_mode {
                Some(key) if key != from_url => {
                    return Err(SettingsError::invalid(
                        "database.url",
                        format!(
                            "sslmode={} in the URL contradicts database.ssl_mode = \"{}\"; keep one of them",
                            from_url.as_str(),
                            key.as_str()
                        ),
                    ));
                }
                _ => self.ssl_mode = Some(from_url),
            }
        }
        if let Some(value) = &found.sslrootcert {
            // libpq 16: `sslrootcert=system` is the system's roots, as no file here.
            let from_url = (value != "system").then(|| PathBuf::from(value));
            match (&self.ssl_root_cert, &from_url) {
                (Some(key), Some(url)) if key != url => {
                    return Err(SettingsError::invalid(
                        "database.url",
                        format!(
                            "sslrootcert={} in the URL contradicts database.ssl_root_cert = \"{}\"; keep one of them",
                            url.display(),
                            key.display()
                        ),
                    ));
                }
                (Some(key), None) => {
                    return Err(SettingsError::invalid(
                        "database.url",
                        format!(
                            "sslrootcert=system in the URL contradicts database.ssl_root_cert = \"{}\"; keep one of them",
                            key.display()
                        ),
                    ));
                }
                _ => {}
            }
            if from_url.is_some() {
                self.ssl_root_cert = from_url;
            }
        }
        self.url = SecretString::from(found.rest);
        Ok(())
    }

    /// Production rule: no clear text to PostgreSQL unless `database.allow_plaintext`.
    pub fn check_profile(&self, profile: Profile) -> Result<(), SettingsError> {
        if profile == Profile::Production && self.ssl_mode() == DatabaseSslMode::Disable && !self.allow_plaintext {
            let source = if self.ssl_mode.is_none() { " (the default)" } else { "" };
            return Err(SettingsError::insecure(
                "database.ssl_mode",
                format!(
                    "ssl_mode = \"disable\"{source} sends customer data and the password to PostgreSQL \
                     unencrypted"
                ),
                "set database.ssl_mode = \"verify-full\" with database.ssl_root_cert (or \
                 ?sslmode=verify-full&sslrootcert=<file> in database.url); if a sidecar proxy or a \
                 service mesh encrypts the connection, set database.allow_plaintext = true",
            ));
        }
        Ok(())
    }

    /// The production opt-outs and weak choices in use, as warnings for the start-up log.
    pub fn opt_outs(&self, profile: Profile) -> Vec<String> {
        if profile != Profile::Production {
            return Vec::new();
        }
        match self.ssl_mode() {
            DatabaseSslMode::Disable => vec![
                "database.allow_plaintext = true: PostgreSQL is reached without TLS; only a sidecar \
                 or mesh that encrypts may carry it"
                    .into(),
            ],
            DatabaseSslMode::Require => vec![
                "database.ssl_mode = \"require\": the server's certificate is not checked; prefer \
                 verify-full with database.ssl_root_cert"
                    .into(),
            ],
            DatabaseSslMode::VerifyFull => Vec::new(),
        }
    }
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

    #[derive(Debug, Deserialize, Default)]
    #[serde(default)]
    struct Shared {
        amqp: AmqpSettings,
        database: DatabaseSettings,
    }

    impl Validate for Shared {
        fn validate(&mut self) -> Result<(), SettingsError> {
            self.amqp.validate()?;
            self.database.validate()
        }

        fn check_profile(&self, profile: Profile) -> Result<(), SettingsError> {
            self.amqp.check_profile(profile)?;
            self.database.check_profile(profile)
        }
    }

    const GOOD_AMQP: &str = "amqps://enrich:pw@rabbitmq.wms.svc:5671/%2f";
    const GOOD_DB: &str = "postgres://enrich:pw@db.example.com/wms?sslmode=require";

    /// A production configuration that passes, with `changes` applied.
    fn production(changes: &[(&str, &str)]) -> Result<Shared, SettingsError> {
        let mut vars = vec![
            ("WMS__AMQP__URL".to_owned(), GOOD_AMQP.to_owned()),
            ("WMS__DATABASE__URL".to_owned(), GOOD_DB.to_owned()),
        ];
        for (key, value) in changes {
            vars.retain(|(k, _)| k != key);
            vars.push((key.to_string(), value.to_string()));
        }
        load_from(None, vars)
    }

    fn refused_key(result: Result<Shared, SettingsError>) -> (String, String) {
        match result {
            Err(error @ SettingsError::Insecure { .. }) => {
                let text = error.to_string();
                let SettingsError::Insecure { key, .. } = error else {
                    unreachable!()
                };
                (key, text)
            }
            other => panic!("expected a production refusal, got {other:?}"),
        }
    }

    #[test]
    fn production_passes_with_tls_and_own_users() {
        let settings = production(&[]).unwrap();
        assert_eq!(settings.amqp.opt_outs(Profile::Production), Vec::<String>::new());
        // `require` is accepted, with a warning that the certificate is not checked.
        assert!(settings.database.opt_outs(Profile::Production)[0].contains("require"));
        let verify = production(&[("WMS__DATABASE__URL", "postgres://u:p@db/wms?sslmode=verify-full")]).unwrap();
        assert!(verify.database.opt_outs(Profile::Production).is_empty());
    }

    #[test]
    fn production_refuses_database_tls_off_by_default_by_key_and_by_url() {
        for changes in [
            vec![("WMS__DATABASE__URL", "postgres://u:p@db/wms")],
            vec![
                ("WMS__DATABASE__SSL_MODE", "disable"),
                ("WMS__DATABASE__URL", "postgres://u:p@db/wms"),
            ],
            vec![("WMS__DATABASE__URL", "postgres://u:p@db/wms?sslmode=disable")],
        ] {
            let (key, text) = refused_key(production(&changes));
            assert_eq!(key, "database.ssl_mode");
            assert!(
                text.contains("verify-full") && text.contains("database.allow_plaintext"),
                "{text}"
            );
        }
        // The same under a local profile is fine.
        let mut local = vec![
            ("WMS__PROFILE", "local"),
            ("WMS__DATABASE__URL", "postgres://u:p@db/wms"),
        ];
        production(&local).unwrap();
        // The documented opt-out, with its warning.
        local[0] = ("WMS__DATABASE__ALLOW_PLAINTEXT", "true");
        let opted = production(&local).unwrap();
        assert!(opted.database.opt_outs(Profile::Production)[0].contains("database.allow_plaintext"));
    }

    #[test]
    fn production_refuses_the_guest_user_with_no_opt_out() {
        for url in [
            "amqps://guest:guest@rabbitmq:5671/%2f",
            // No credentials: the client logs in as guest.
            "amqps://rabbitmq:5671/%2f",
            "amqps://u:p@a:5671/%2f,amqps://guest:x@b:5671/%2f",
        ] {
            for allow in ["false", "true"] {
                let (key, text) = refused_key(production(&[
                    ("WMS__AMQP__URL", url),
                    ("WMS__AMQP__ALLOW_PLAINTEXT", allow),
                ]));
                assert_eq!(key, "amqp.url");
                assert!(text.contains("guest") && text.contains("own user"), "{text}");
            }
        }
        // The default URL (guest, plain) is refused in production, accepted locally.
        let (key, _) = refused_key(production(&[(
            "WMS__AMQP__URL",
            "amqp://guest:guest@127.0.0.1:5672/%2f",
        )]));
        assert_eq!(key, "amqp.url");
        production(&[
            ("WMS__PROFILE", "local"),
            ("WMS__AMQP__URL", "amqp://guest:guest@127.0.0.1:5672/%2f"),
        ])
        .unwrap();
    }

    #[test]
    fn production_refuses_plain_amqp_unless_allowed() {
        let (key, text) = refused_key(production(&[("WMS__AMQP__URL", "amqp://enrich:pw@rabbitmq:5672/%2f")]));
        assert_eq!(key, "amqp.url");
        assert!(
            text.contains("amqps://") && text.contains("amqp.allow_plaintext = true"),
            "{text}"
        );
        // One plain node among TLS ones is refused too, and named.
        let (_, text) = refused_key(production(&[(
            "WMS__AMQP__URL",
            "amqps://u:p@a:5671/%2f,amqp://u:p@b:5672/%2f",
        )]));
        assert!(text.contains("address 2"), "{text}");
        let allowed = production(&[
            ("WMS__AMQP__URL", "amqp://enrich:pw@rabbitmq:5672/%2f"),
            ("WMS__AMQP__ALLOW_PLAINTEXT", "true"),
        ])
        .unwrap();
        assert!(allowed.amqp.opt_outs(Profile::Production)[0].contains("amqp.allow_plaintext"));
        assert!(allowed.amqp.opt_outs(Profile::Local).is_empty());
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
