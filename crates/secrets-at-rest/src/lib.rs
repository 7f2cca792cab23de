//! Secrets at rest: the values the bridge must keep in PostgreSQL to call out later (a store's
//! Webflow API token, the webhook signing secrets Webflow hands back) are stored sealed with
//! AES-256-GCM (ring), never in the clear.
//!
//! Keys come from the file named by `secrets.key_file` (a Kubernetes Secret), one per line:
//! `<key id>:<64 hex digits>`. The first line is the current key, which seals; the others only
//! open, so a rotation is: put a new key on the first line, restart, re-seal what
//! [`Keyring::needs_resealing`] names, then drop the old line.
//!
//! A sealed value is one text column, `v1:<key id>:<base64 of nonce ‖ ciphertext ‖ tag>`. The
//! caller binds each value to where it lives (associated data such as `"store:42:api_token"`):
//! a sealed value copied into another row or column does not open.

use base64::Engine;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use wms_settings::{SettingsError, read_secret_file};

const FORMAT: &str = "v1";

/// The `[secrets]` section.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SecretsSettings {
    /// The key file (`<key id>:<64 hex digits>` per line, the current key first).
    pub key_file: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum KeyringError {
    #[error("`secrets.key_file` is not set: generate a key with `wmsctl secrets new-key` and mount it")]
    NoKeyFile,
    #[error("`secrets.key_file`: {0}")]
    File(String),
    #[error("`secrets.key_file` line {line}: {message}")]
    Line { line: usize, message: String },
}

impl From<KeyringError> for SettingsError {
    fn from(error: KeyringError) -> Self {
        SettingsError::invalid("secrets.key_file", error.to_string())
    }
}

/// Why a sealed value did not open. Neither names nor echoes the value.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OpenError {
    #[error("not a sealed value (expected `v1:<key id>:<data>`)")]
    Malformed,
    #[error("sealed with key `{0}`, which the key file no longer holds")]
    UnknownKey(String),
    #[error("does not open: altered, or sealed for another place")]
    Tampered,
}

#[derive(Debug, thiserror::Error)]
#[error("the system's random number generator failed")]
pub struct SealError;

struct Key {
    id: String,
    key: LessSafeKey,
}

/// The keys, the current one first.
pub struct Keyring {
    keys: Vec<Key>,
    random: SystemRandom,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Key ids only: never the key material.
        f.debug_struct("Keyring")
            .field("key_ids", &self.keys.iter().map(|k| k.id.as_str()).collect::<Vec<_>>())
            .finish()
    }
}

impl Keyring {
    /// The keyring of `secrets.key_file`.
    pub fn load(settings: &SecretsSettings) -> Result<Self, KeyringError> {
        let path = settings.key_file.as_ref().ok_or(KeyringError::NoKeyFile)?;
        let text = read_secret_file(path).map_err(KeyringError::File)?;
        Self::parse(&SecretString::from(text))
    }

    /// Parses the key file's text.
    pub fn parse(text: &SecretString) -> Result<Self, KeyringError> {
        let mut keys: Vec<Key> = Vec::new();
        for (index, line) in text.expose_secret().lines().enumerate() {
            let line_no = index + 1;
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = |message: &str| KeyringError::Line {
                line: line_no,
                message: message.to_owned(),
            };
            let (id, material) = line
                .split_once(':')
                .ok_or_else(|| bad("expected `<key id>:<64 hex digits>`"))?;
            if !valid_key_id(id) {
                return Err(bad("a key id is letters, digits, `-` and `_`"));
            }
            if keys.iter().any(|k| k.id == id) {
                return Err(bad(&format!("key id `{id}` appears twice")));
            }
            let bytes = hex_decode(material).ok_or_else(|| bad("the key is not 64 hex digits (32 bytes)"))?;
            let key = UnboundKey::new(&AES_256_GCM, &bytes).map_err(|_| bad("not an AES-256 key"))?;
            keys.push(Key {
                id: id.to_owned(),
                key: LessSafeKey::new(key),
            });
        }
        if keys.is_empty() {
            return Err(KeyringError::File("holds no key".into()));
        }
        Ok(Self {
            keys,
            random: SystemRandom::new(),
        })
    }

    /// A new key line for the key file (`<id>:<64 hex digits>`), from the system's generator.
    pub fn new_key_line(id: &str) -> Result<SecretString, NewKeyError> {
        if !valid_key_id(id) {
            return Err(NewKeyError::BadId(id.to_owned()));
        }
        let mut bytes = [0u8; 32];
        SystemRandom::new().fill(&mut bytes).map_err(|_| SealError)?;
        Ok(SecretString::from(format!("{id}:{}", hex_encode(&bytes))))
    }

    /// The key that seals.
    pub fn current_key_id(&self) -> &str {
        &self.keys[0].id
    }

    /// Seals `secret` for the place `context` names (the same context opens it).
    pub fn seal(&self, secret: &SecretString, context: &str) -> Result<String, SealError> {
        let current = &self.keys[0];
        let mut nonce = [0u8; NONCE_LEN];
        self.random.fill(&mut nonce).map_err(|_| SealError)?;
        let mut data = secret.expose_secret().as_bytes().to_vec();
        current
            .key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(context.as_bytes()),
                &mut data,
            )
            .map_err(|_| SealError)?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&data);
        Ok(format!("{FORMAT}:{}:{}", current.id, STANDARD_NO_PAD.encode(out)))
    }

    /// Opens a value [`Keyring::seal`] made for `context`.
    pub fn open(&self, sealed: &str, context: &str) -> Result<SecretString, OpenError> {
        let (key_id, data) = parse_sealed(sealed)?;
        let key = self
            .keys
            .iter()
            .find(|k| k.id == key_id)
            .ok_or_else(|| OpenError::UnknownKey(key_id.to_owned()))?;
        let mut data = STANDARD_NO_PAD.decode(data).map_err(|_| OpenError::Malformed)?;
        if data.len() < NONCE_LEN + AES_256_GCM.tag_len() {
            return Err(OpenError::Malformed);
        }
        let mut ciphertext = data.split_off(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(&data).map_err(|_| OpenError::Malformed)?;
        let plain = key
            .key
            .open_in_place(nonce, Aad::from(context.as_bytes()), &mut ciphertext)
            .map_err(|_| OpenError::Tampered)?;
        String::from_utf8(plain.to_vec())
            .map(SecretString::from)
            .map_err(|_| OpenError::Tampered)
    }

    /// Whether `sealed` was made with an older key (a rotation re-seals it with the current).
    pub fn needs_resealing(&self, sealed: &str) -> bool {
        parse_sealed(sealed).is_ok_and(|(key_id, _)| key_id != self.current_key_id())
    }

    /// Opens with whichever key sealed it and seals again with the current key.
    pub fn reseal(&self, sealed: &str, context: &str) -> Result<String, ResealError> {
        let secret = self.open(sealed, context)?;
        Ok(self.seal(&secret, context)?)
    }
}

/// The key of local runs and tests when `secrets.key_file` is unset: public, so it protects
/// nothing; production refuses to start without a key file (`check_profile`).
const DEVELOPMENT_KEY: &str = "development:6465762d6f6e6c792d6b65792d6e6f742d666f722d70726f64756374696f6e21";

/// The keyring of `secrets.key_file`, or, when it is unset, the built-in development key
/// (a warning, once per process).
pub fn keyring_or_dev(settings: &SecretsSettings) -> Result<Arc<Keyring>, KeyringError> {
    if settings.key_file.is_some() {
        return Keyring::load(settings).map(Arc::new);
    }
    static WARNED: std::sync::Once = std::sync::Once::new();
    WARNED.call_once(|| {
        tracing::warn!(
            "secrets.key_file is not set: secrets in the database are sealed with the public development key"
        );
    });
    Keyring::parse(&SecretString::from(DEVELOPMENT_KEY)).map(Arc::new)
}

#[derive(Debug, thiserror::Error)]
pub enum NewKeyError {
    #[error("`{0}` is not a key id: letters, digits, `-` and `_` only")]
    BadId(String),
    #[error(transparent)]
    Random(#[from] SealError),
}

fn valid_key_id(id: &str) -> bool {
    !id.is_empty() && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

#[derive(Debug, thiserror::Error)]
pub enum ResealError {
    #[error(transparent)]
    Open(#[from] OpenError),
    #[error(transparent)]
    Seal(#[from] SealError),
}

fn parse_sealed(sealed: &str) -> Result<(&str, &str), OpenError> {
    let mut parts = sealed.splitn(3, ':');
    match (parts.next(), parts.next(), parts.next()) {
        (Some(FORMAT), Some(key_id), Some(data)) if !key_id.is_empty() => Ok((key_id, data)),
        _ => Err(OpenError::Malformed),
    }
}

fn hex_decode(text: &str) -> Option<[u8; 32]> {
    let text = text.trim();
    if text.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

fn hex_encode(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]
    use super::*;
    use std::io::Write;

    fn ring(lines: &[&str]) -> Keyring {
        Keyring::parse(&SecretString::from(lines.join("\n"))).unwrap()
    }

    fn key(id: &str) -> String {
        Keyring::new_key_line(id).unwrap().expose_secret().to_owned()
    }

    #[test]
    fn a_sealed_value_opens_in_its_own_place_only() {
        let keys = ring(&[&key("k1")]);
        let token = SecretString::from("wf-token-123".to_owned());
        let sealed = keys.seal(&token, "store:1:api_token").unwrap();
        assert!(sealed.starts_with("v1:k1:"));
        assert!(!sealed.contains("wf-token-123"));
        assert_eq!(
            keys.open(&sealed, "store:1:api_token").unwrap().expose_secret(),
            "wf-token-123"
        );
        // Copied into another row or column, it does not open.
        assert_eq!(
            keys.open(&sealed, "store:2:api_token").unwrap_err(),
            OpenError::Tampered
        );
        // Two seals of one value differ (a fresh nonce each time).
        assert_ne!(sealed, keys.seal(&token, "store:1:api_token").unwrap());
    }

    #[test]
    fn an_altered_value_does_not_open() {
        let keys = ring(&[&key("k1")]);
        let sealed = keys.seal(&SecretString::from("s".to_owned()), "c").unwrap();
        let (head, data) = sealed.rsplit_once(':').unwrap();
        let mut bytes = STANDARD_NO_PAD.decode(data).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        let altered = format!("{head}:{}", STANDARD_NO_PAD.encode(bytes));
        assert_eq!(keys.open(&altered, "c").unwrap_err(), OpenError::Tampered);
        assert_eq!(keys.open("v1:k1:AA", "c").unwrap_err(), OpenError::Malformed);
        assert_eq!(keys.open("plain-token", "c").unwrap_err(), OpenError::Malformed);
    }

    #[test]
    fn a_rotation_opens_old_values_and_reseals_them_with_the_new_key() {
        let old_line = key("2026-01");
        let old = ring(&[&old_line]);
        let secret = SecretString::from("whsec".to_owned());
        let sealed = old.seal(&secret, "hook:7").unwrap();

        let new_line = key("2026-12");
        let rotated = ring(&[&new_line, &old_line]);
        assert_eq!(rotated.current_key_id(), "2026-12");
        assert!(rotated.needs_resealing(&sealed));
        assert_eq!(rotated.open(&sealed, "hook:7").unwrap().expose_secret(), "whsec");
        let resealed = rotated.reseal(&sealed, "hook:7").unwrap();
        assert!(resealed.starts_with("v1:2026-12:"));
        assert!(!rotated.needs_resealing(&resealed));

        // Once the old line is dropped, what was not resealed names its key.
        let new_only = ring(&[&new_line]);
        assert_eq!(new_only.open(&resealed, "hook:7").unwrap().expose_secret(), "whsec");
        assert_eq!(
            new_only.open(&sealed, "hook:7").unwrap_err(),
            OpenError::UnknownKey("2026-01".into())
        );
    }

    #[test]
    fn bad_key_files_are_refused_by_line_without_echoing_keys() {
        let err = |text: &str| {
            Keyring::parse(&SecretString::from(text.to_owned()))
                .unwrap_err()
                .to_string()
        };
        assert!(err("").contains("holds no key"));
        assert!(err("# only a comment\n").contains("holds no key"));
        let short = err("k1:abcd");
        assert!(short.contains("line 1") && short.contains("64 hex digits") && !short.contains("abcd"));
        assert!(err(&format!("{}\n{}", key("k1"), key("k1"))).contains("appears twice"));
        assert!(err(&format!("bad id:{}", "0".repeat(64))).contains("key id"));
        assert!(err("no-colon").contains("expected"));
        assert!(matches!(Keyring::new_key_line("bad id"), Err(NewKeyError::BadId(_))));
    }

    #[test]
    fn without_a_key_file_the_development_key_seals_and_opens() {
        let keys = keyring_or_dev(&SecretsSettings::default()).unwrap();
        assert_eq!(keys.current_key_id(), "development");
        let sealed = keys.seal(&SecretString::from("t".to_owned()), "c").unwrap();
        assert_eq!(keys.open(&sealed, "c").unwrap().expose_secret(), "t");
    }

    #[test]
    fn the_key_file_is_read_from_its_setting_and_debug_shows_ids_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys");
        let line = key("k1");
        writeln!(std::fs::File::create(&path).unwrap(), "# rotated 2026-12\n{line}").unwrap();
        let keys = Keyring::load(&SecretsSettings { key_file: Some(path) }).unwrap();
        let debug = format!("{keys:?}");
        assert!(debug.contains("k1") && !debug.contains(line.split_once(':').unwrap().1));
        assert!(matches!(
            Keyring::load(&SecretsSettings::default()),
            Err(KeyringError::NoKeyFile)
        ));
        let missing = Keyring::load(&SecretsSettings {
            key_file: Some(dir.path().join("nope")),
        })
        .unwrap_err();
        assert!(missing.to_string().contains("nope"));
    }
}
