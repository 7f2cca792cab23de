//! Layered settings, the loader every binary shares: built-in defaults (every binary runs with no file), then the file named
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

use secrecy::SecretString;
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
    /// A setting production refuses for safety, whatever the machine: what is wrong and what
    /// to do instead (a documented opt-out, where a cluster may truly need one).
    #[error("`{key}` is refused under profile = \"production\": {why}; {fix}")]
    Insecure { key: String, why: String, fix: String },
}

impl SettingsError {
    pub fn insecure(key: impl Into<String>, why: impl Into<String>, fix: impl Into<String>) -> Self {
        Self::Insecure {
            key: key.into(),
            why: why.into(),
            fix: fix.into(),
        }
    }

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
    "secrets",
    "webflow",
    "ingress",
    "enrich",
    "warehouse",
    "carrier",
    "reconcile",
    "inventory_sync",
    "retention",
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
    load_with_profile(file, env).map(|(settings, _)| settings)
}

/// Like [`load_from`], also returning the profile (for checks made by the caller, such as the
/// shared sections' production rules that `platform::service` applies to every service).
pub fn load_with_profile<T, I>(file: Option<PathBuf>, env: I) -> Result<(T, Profile), SettingsError>
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
    Ok((settings, profile))
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
pub fn number_list<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u64>, D::Error> {
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

/// Reads a secret mounted as a file (a Kubernetes Secret), trimmed; the error names the file.
pub fn read_secret_file(path: &std::path::Path) -> Result<String, String> {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_owned())
        .map_err(|e| format!("cannot read `{}`: {e}", path.display()))
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
    use secrecy::ExposeSecret;
    use std::io::Write;

    /// A binary's settings: one section of its own (a name from [`KNOWN_TOP_LEVEL_KEYS`]), read
    /// through the helpers.
    #[derive(Debug, Default, Deserialize)]
    #[serde(default)]
    struct Sample {
        ingress: Section,
    }

    #[derive(Debug, Default, Deserialize)]
    #[serde(default)]
    struct Section {
        #[serde(deserialize_with = "string_or_list")]
        secrets: Vec<SecretString>,
        #[serde(deserialize_with = "number_list")]
        delays_ms: Vec<u64>,
        bind: String,
    }

    impl Validate for Sample {
        fn validate(&mut self) -> Result<(), SettingsError> {
            if !self.ingress.bind.is_empty() {
                parse_bind("ingress.bind", &self.ingress.bind)?;
            }
            Ok(())
        }
    }

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn lists_come_from_a_comma_separated_variable() {
        let settings: Sample = load_from(
            None,
            env(&[
                ("WMS__INGRESS__SECRETS", " a, ,b "),
                ("WMS__INGRESS__DELAYS_MS", "5, 10"),
            ]),
        )
        .unwrap();
        let secrets: Vec<&str> = settings
            .ingress
            .secrets
            .iter()
            .map(ExposeSecret::expose_secret)
            .collect();
        assert_eq!(secrets, ["a", "b"]);
        assert_eq!(settings.ingress.delays_ms, [5, 10]);
        let err = load_from::<Sample, _>(None, env(&[("WMS__INGRESS__DELAYS_MS", "5,x")])).unwrap_err();
        assert!(err.to_string().contains("ingress.delays_ms"), "{err}");
    }

    #[test]
    fn a_bad_listen_address_names_its_key() {
        let err = load_from::<Sample, _>(None, env(&[("WMS__INGRESS__BIND", "nowhere")])).unwrap_err();
        assert!(
            matches!(err, SettingsError::Invalid { ref key, .. } if key == "ingress.bind"),
            "{err}"
        );
    }

    #[test]
    fn unknown_keys_of_a_read_section_and_unknown_sections_are_refused() {
        let err =
            load_from::<Sample, _>(None, env(&[("WMS__INGRESS__BINDD", "x"), ("WMS__NOSUCH__KEY", "y")])).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("`ingress.bindd` (from WMS__INGRESS__BINDD)"), "{text}");
        assert!(text.contains("`nosuch.key`"), "{text}");
        assert!(reads_section::<Sample>("ingress"));
        assert!(!reads_section::<Sample>("amqp"));
    }

    #[test]
    fn a_secret_file_is_read_trimmed_and_a_missing_one_named() {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        writeln!(file, "  s3cret  ").unwrap();
        assert_eq!(read_secret_file(file.path()).unwrap(), "s3cret");
        let err = read_secret_file(std::path::Path::new("/nonexistent/secret")).unwrap_err();
        assert!(err.contains("/nonexistent/secret"), "{err}");
    }
}
