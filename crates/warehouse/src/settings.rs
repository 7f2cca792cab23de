//! The warehouse service's settings: the shared sections, `[warehouse]` and `[webflow]`.

use platform::settings::{Profile, SettingsError, Validate, parse_bind, read_secret_file};
use secrecy::SecretString;
use serde::Deserialize;
use std::path::PathBuf;
use webflow::WebflowSettings;

service_base::service_settings! {
    pub struct Settings {
        pub warehouse: WarehouseSettings,
        pub webflow: WebflowSettings,
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(default)]
pub struct WarehouseSettings {
    pub bind: String,
    /// Bearer tokens accepted by the API (several, so one can be rotated); a list, or a
    /// comma-separated string in the environment. Each is an admin on every store, named
    /// `token-1`, `token-2`... in the audit trail. Prefer `tokens`.
    #[serde(deserialize_with = "platform::settings::string_or_list")]
    pub api_tokens: Vec<SecretString>,
    /// Named operator tokens with a role and the stores they may see.
    pub tokens: Vec<TokenSettings>,
    /// The operator console (`/console`).
    pub console: ConsoleSettings,
    /// Pick and pack reserved orders automatically (local runs and demos).
    pub auto_pack: bool,
    pub auto_pack_interval_ms: u64,
    /// The ingress's address as Webflow reaches it (`https://bridge.example.com`): a store
    /// created with `register_webhooks` gets webhooks at this + `/webhooks/webflow/<site_id>`.
    /// Unset: registering webhooks is refused (422).
    pub public_ingress_url: Option<String>,
}

/// One operator token (`[[warehouse.tokens]]`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenSettings {
    /// Who holds it: recorded as the actor of every action taken with it.
    pub name: String,
    /// Lowercase hex SHA-256 of the bearer token (`printf %s "$TOKEN" | sha256sum`).
    #[serde(default)]
    pub token_sha256: Option<String>,
    /// Or a file holding the token itself (a Kubernetes Secret mount); hashed at start.
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// `["*"]` for every store, or Webflow site ids.
    pub sites: Vec<String>,
    /// Merchants whose stock the token may read or change: `["*"]` (the default) for every
    /// merchant, or merchant names. A token limited to stores is also limited to their
    /// merchants; the two scopes intersect.
    #[serde(default = "every_merchant")]
    pub merchants: Vec<String>,
    /// `read`, `floor` or `admin`.
    pub role: Role,
}

fn every_merchant() -> Vec<String> {
    vec!["*".to_owned()]
}

/// What a token may do. Ordered: each role includes the ones before it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Every GET in scope.
    Read,
    /// Read, plus pick, pack and receive stock.
    Floor,
    /// Floor, plus refunds, address corrections, setting inventory and dead-letter actions.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Floor => "floor",
            Self::Admin => "admin",
        }
    }

    /// The role named `read`, `floor` or `admin`.
    pub fn parse(name: &str) -> Option<Self> {
        [Self::Read, Self::Floor, Self::Admin]
            .into_iter()
            .find(|role| role.as_str() == name)
    }
}

/// Lowercase hex SHA-256 of a token, as `warehouse.tokens[].token_sha256` holds it.
pub fn sha256_hex(token: &str) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, token.as_bytes()))
}

/// `[warehouse.console]`: the operator console served under `/console`.
#[derive(Clone, Debug, Deserialize)]
#[serde(default)]
pub struct ConsoleSettings {
    /// Mark the session cookie `Secure` (sent over HTTPS only). True unless the console is
    /// served over plain HTTP on this machine (`config/local.toml` sets false); refused under
    /// `profile = "production"`.
    pub secure_cookies: bool,
    /// No longer used: sessions are stored in PostgreSQL (valid on every replica, ended by
    /// sign-out). Accepted so that older configurations still start; a warning says so.
    pub session_key: Option<SecretString>,
    pub session_key_file: Option<PathBuf>,
    /// How long a sign-in lasts.
    pub session_hours: u64,
    /// Failed sign-ins from one client address, or with one token, after which sign-in from
    /// that address (or with that token) answers 429 until `sign_in_window_secs` have passed
    /// since the first failure of the window. Counted in PostgreSQL: every replica shares it.
    pub sign_in_max_failures: u32,
    pub sign_in_window_secs: u64,
    /// Addresses or CIDR ranges of the reverse proxies in front of the warehouse whose
    /// `X-Forwarded-For` is believed: the client is the last address in it that is not one
    /// of them. Empty (the default): the client is the TCP peer, the header is ignored.
    pub trusted_proxies: Vec<String>,
}

impl Default for ConsoleSettings {
    fn default() -> Self {
        Self {
            secure_cookies: true,
            session_key: None,
            session_key_file: None,
            session_hours: 12,
            sign_in_max_failures: 10,
            sign_in_window_secs: 900,
            trusted_proxies: Vec::new(),
        }
    }
}

/// An address or a CIDR range (`10.0.0.0/8`, `fd00::/8`, `192.0.2.7`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpRange {
    network: std::net::IpAddr,
    prefix: u8,
}

impl IpRange {
    pub fn parse(text: &str) -> Option<Self> {
        let (address, prefix) = match text.trim().split_once('/') {
            Some((address, prefix)) => (address, Some(prefix.parse::<u8>().ok()?)),
            None => (text.trim(), None),
        };
        let network: std::net::IpAddr = address.parse().ok()?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        (prefix <= max).then_some(Self { network, prefix })
    }

    pub fn contains(&self, address: std::net::IpAddr) -> bool {
        let bits = |ip: std::net::IpAddr| -> (u128, u32) {
            match ip {
                std::net::IpAddr::V4(v4) => (u128::from(u32::from(v4)), 32),
                std::net::IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                    Some(v4) => (u128::from(u32::from(v4)), 32),
                    None => (u128::from(v6), 128),
                },
            }
        };
        let (network, width) = bits(self.network);
        let (candidate, candidate_width) = bits(address);
        if width != candidate_width {
            return false;
        }
        let prefix = u32::from(self.prefix);
        if prefix == 0 {
            return true;
        }
        let shift = width - prefix;
        (network >> shift) == (candidate >> shift)
    }
}

impl ConsoleSettings {
    /// `trusted_proxies`, parsed (validated at start).
    pub fn trusted_proxy_ranges(&self) -> Vec<IpRange> {
        self.trusted_proxies.iter().filter_map(|t| IpRange::parse(t)).collect()
    }
}

impl Default for WarehouseSettings {
    fn default() -> Self {
        Self {
            bind: "0.0.0.0:8081".into(),
            api_tokens: Vec::new(),
            tokens: Vec::new(),
            console: ConsoleSettings::default(),
            auto_pack: false,
            auto_pack_interval_ms: 500,
            public_ingress_url: None,
        }
    }
}

impl Validate for Settings {
    fn validate(&mut self) -> Result<(), SettingsError> {
        self.base.validate()?;
        self.webflow.validate()?;
        parse_bind("warehouse.bind", &self.warehouse.bind)?;
        if let Some(url) = &mut self.warehouse.public_ingress_url {
            let trimmed = url.trim().trim_end_matches('/').to_owned();
            if !(trimmed.starts_with("https://") || trimmed.starts_with("http://")) {
                return Err(SettingsError::invalid(
                    "warehouse.public_ingress_url",
                    "must be an http(s) URL such as https://bridge.example.com",
                ));
            }
            *url = trimmed;
        }
        if self.warehouse.api_tokens.is_empty() && self.warehouse.tokens.is_empty() {
            return Err(SettingsError::invalid(
                "warehouse.tokens",
                "at least one token is required (warehouse.tokens or warehouse.api_tokens)",
            ));
        }
        let mut names = std::collections::HashSet::new();
        for index in 1..=self.warehouse.api_tokens.len() {
            names.insert(format!("token-{index}"));
        }
        for (index, token) in self.warehouse.tokens.iter_mut().enumerate() {
            let key = |field: &str| format!("warehouse.tokens[{index}].{field}");
            let name = token.name.trim();
            if name.is_empty() || name.len() > 100 || name.chars().any(char::is_control) {
                return Err(SettingsError::invalid(key("name"), "1-100 printable characters"));
            }
            if !names.insert(name.to_owned()) {
                return Err(SettingsError::invalid(
                    key("name"),
                    format!("`{name}` is used by another token (legacy api_tokens are token-1, token-2...)"),
                ));
            }
            match (&token.token_sha256, &token.token_file) {
                (Some(_), Some(_)) | (None, None) => {
                    return Err(SettingsError::invalid(
                        key("token_sha256"),
                        "set exactly one of token_sha256 and token_file",
                    ));
                }
                (Some(digest), None) => {
                    let valid =
                        digest.len() == 64 && digest.chars().all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c));
                    if !valid {
                        return Err(SettingsError::invalid(
                            key("token_sha256"),
                            "64 lowercase hex characters: the SHA-256 of the token",
                        ));
                    }
                }
                (None, Some(path)) => {
                    let token_text =
                        read_secret_file(path).map_err(|e| SettingsError::invalid(key("token_file"), e))?;
                    if token_text.is_empty() {
                        return Err(SettingsError::invalid(key("token_file"), "the file is empty"));
                    }
                    token.token_sha256 = Some(sha256_hex(&token_text));
                    token.token_file = None;
                }
            }
            if token.sites.is_empty() || token.sites.iter().any(|s| s.trim().is_empty()) {
                return Err(SettingsError::invalid(
                    key("sites"),
                    r#"["*"] for every store, or a list of Webflow site ids"#,
                ));
            }
            if token.merchants.is_empty()
                || token
                    .merchants
                    .iter()
                    .any(|m| m != "*" && !warehouse_db::merchants::valid_name(m))
            {
                return Err(SettingsError::invalid(
                    key("merchants"),
                    r#"["*"] for every merchant, or a list of merchant names"#,
                ));
            }
        }
        if let Some(path) = &self.warehouse.console.session_key_file {
            let key =
                read_secret_file(path).map_err(|e| SettingsError::invalid("warehouse.console.session_key_file", e))?;
            self.warehouse.console.session_key = Some(SecretString::from(key));
            self.warehouse.console.session_key_file = None;
        }
        if self
            .warehouse
            .console
            .session_key
            .as_ref()
            .is_some_and(|k| secrecy::ExposeSecret::expose_secret(k).len() < 32)
        {
            return Err(SettingsError::invalid(
                "warehouse.console.session_key",
                "at least 32 characters",
            ));
        }
        for (index, proxy) in self.warehouse.console.trusted_proxies.iter().enumerate() {
            if IpRange::parse(proxy).is_none() {
                return Err(SettingsError::invalid(
                    format!("warehouse.console.trusted_proxies[{index}]"),
                    format!("`{proxy}` is not an address or a CIDR range like 10.0.0.0/8"),
                ));
            }
        }
        if self.warehouse.console.sign_in_max_failures == 0 {
            return Err(SettingsError::invalid(
                "warehouse.console.sign_in_max_failures",
                "must be at least 1",
            ));
        }
        if !(1..=86_400).contains(&self.warehouse.console.sign_in_window_secs) {
            return Err(SettingsError::invalid(
                "warehouse.console.sign_in_window_secs",
                "between 1 and 86400",
            ));
        }
        if !(1..=24 * 30).contains(&self.warehouse.console.session_hours) {
            return Err(SettingsError::invalid(
                "warehouse.console.session_hours",
                "between 1 and 720",
            ));
        }
        if self.warehouse.auto_pack_interval_ms == 0 {
            return Err(SettingsError::invalid(
                "warehouse.auto_pack_interval_ms",
                "must be above 0",
            ));
        }
        Ok(())
    }

    /// Production: the session cookie must be `Secure`, and the stores' tokens and webhook
    /// secrets are sealed with `secrets.key_file`'s key (the base sections' rules are applied to
    /// every service by `platform::service`).
    fn check_profile(&self, profile: Profile) -> Result<(), SettingsError> {
        self.base.secrets.check_profile(profile)?;
        if profile == Profile::Production && !self.warehouse.console.secure_cookies {
            return Err(SettingsError::insecure(
                "warehouse.console.secure_cookies",
                "secure_cookies = false lets the console's session cookie travel over plain HTTP",
                "remove the key (it defaults to true) and serve the console over HTTPS; browsers \
                 accept Secure cookies from http://localhost, so a port-forward still works",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_token(token: TokenSettings) -> Settings {
        let mut settings = Settings::default();
        settings.warehouse.tokens = vec![token];
        settings
    }

    fn token() -> TokenSettings {
        TokenSettings {
            name: "ana".into(),
            token_sha256: Some(sha256_hex("secret")),
            token_file: None,
            sites: vec!["*".into()],
            merchants: vec!["*".into()],
            role: Role::Floor,
        }
    }

    fn error_key(mut settings: Settings) -> String {
        match settings.validate() {
            Err(SettingsError::Invalid { key, .. }) => key,
            other => panic!("expected an invalid key, got {other:?}"),
        }
    }

    #[test]
    fn production_refuses_to_start_without_the_secrets_key_file() {
        let mut settings = with_token(token());
        settings.validate().unwrap();
        settings.base.secrets.key_file = None;
        let error = settings.check_profile(Profile::Production).unwrap_err();
        assert!(
            matches!(error, SettingsError::Insecure { ref key, .. } if key == "secrets.key_file"),
            "{error}"
        );
        settings.check_profile(Profile::Local).unwrap();
    }

    #[test]
    fn production_refuses_insecure_cookies_and_local_accepts_them() {
        let mut settings = with_token(token());
        settings.base.secrets.key_file = Some("/run/secrets/wms-keys".into());
        settings.validate().unwrap();
        settings.check_profile(Profile::Production).unwrap();
        settings.warehouse.console.secure_cookies = false;
        let error = settings.check_profile(Profile::Production).unwrap_err();
        assert!(
            matches!(error, SettingsError::Insecure { ref key, .. } if key == "warehouse.console.secure_cookies"),
            "{error}"
        );
        assert!(error.to_string().contains("HTTPS"), "{error}");
        settings.check_profile(Profile::Local).unwrap();
    }

    #[test]
    fn trusted_proxies_are_addresses_or_ranges() {
        let mut settings = with_token(token());
        settings.warehouse.console.trusted_proxies = vec!["10.0.0.0/8".into(), "fd00::1".into()];
        settings.validate().unwrap();
        let ranges = settings.warehouse.console.trusted_proxy_ranges();
        assert!(ranges[0].contains("10.1.2.3".parse().unwrap()));
        assert!(ranges[0].contains("::ffff:10.1.2.3".parse().unwrap()));
        assert!(!ranges[0].contains("11.0.0.1".parse().unwrap()));
        assert!(ranges[1].contains("fd00::1".parse().unwrap()));
        assert!(!ranges[1].contains("fd00::2".parse().unwrap()));
        settings.warehouse.console.trusted_proxies = vec!["10.0.0.0/33".into()];
        assert_eq!(error_key(settings), "warehouse.console.trusted_proxies[0]");
        let mut zero = with_token(token());
        zero.warehouse.console.sign_in_max_failures = 0;
        assert_eq!(error_key(zero), "warehouse.console.sign_in_max_failures");
    }

    #[test]
    fn a_named_token_alone_is_enough() {
        assert!(with_token(token()).validate().is_ok());
    }

    #[test]
    fn a_token_file_is_hashed_at_start() {
        let path = std::env::temp_dir().join(format!("wms-token-{}", uuid::Uuid::new_v4()));
        std::fs::write(&path, "file-secret\n").unwrap();
        let mut settings = with_token(TokenSettings {
            token_sha256: None,
            token_file: Some(path.clone()),
            ..token()
        });
        settings.validate().unwrap();
        std::fs::remove_file(path).unwrap();
        assert_eq!(
            settings.warehouse.tokens[0].token_sha256.as_deref(),
            Some(sha256_hex("file-secret").as_str())
        );
    }

    #[test]
    fn bad_entries_are_refused_naming_the_key() {
        let upper = with_token(TokenSettings {
            token_sha256: Some(sha256_hex("x").to_uppercase()),
            ..token()
        });
        assert_eq!(error_key(upper), "warehouse.tokens[0].token_sha256");
        let both = with_token(TokenSettings {
            token_file: Some("/nowhere".into()),
            ..token()
        });
        assert_eq!(error_key(both), "warehouse.tokens[0].token_sha256");
        let no_sites = with_token(TokenSettings {
            sites: vec![],
            ..token()
        });
        assert_eq!(error_key(no_sites), "warehouse.tokens[0].sites");
        let bad_merchant = with_token(TokenSettings {
            merchants: vec!["Not A Name".into()],
            ..token()
        });
        assert_eq!(error_key(bad_merchant), "warehouse.tokens[0].merchants");
        let mut clash = with_token(TokenSettings {
            name: "token-1".into(),
            ..token()
        });
        clash.warehouse.api_tokens = vec![SecretString::from("legacy")];
        assert_eq!(error_key(clash), "warehouse.tokens[0].name");
        assert_eq!(error_key(Settings::default()), "warehouse.tokens");
    }
}
