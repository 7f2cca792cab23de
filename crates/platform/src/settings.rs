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
