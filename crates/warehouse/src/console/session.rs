//! Console sessions: a signed cookie (HMAC-SHA-256) naming the operator's token, bound to the
//! token's fingerprint (rotating the token ends the session) and expiring after
//! `warehouse.console.session_hours`. Nothing is stored server-side, so every replica that
//! shares `warehouse.console.session_key` accepts it.
//!
//! Each session has a random id; its CSRF token is an HMAC of that id, checked on every form
//! that changes state (with `SameSite=Strict` as a second line).

use crate::auth::{Operator, TokenStore};
use ring::hmac;
use subtle::ConstantTimeEq;

pub const COOKIE: &str = "wms_console";

#[derive(Clone)]
pub struct SessionKeys {
    key: hmac::Key,
    pub secure: bool,
    pub hours: u64,
}

/// A verified session.
#[derive(Clone, Debug)]
pub struct Session {
    pub operator: Operator,
    /// The token a form must carry.
    pub csrf: String,
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

impl SessionKeys {
    /// From `warehouse.console.session_key`, or a random key for this process.
    pub fn new(secret: Option<&str>, secure: bool, hours: u64) -> Self {
        let key = match secret {
            Some(secret) => hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes()),
            None => {
                let rng = ring::rand::SystemRandom::new();
                hmac::Key::generate(hmac::HMAC_SHA256, &rng)
                    .unwrap_or_else(|_| hmac::Key::new(hmac::HMAC_SHA256, uuid::Uuid::new_v4().as_bytes()))
            }
        };
        Self { key, secure, hours }
    }

    fn mac(&self, message: &str) -> String {
        hex::encode(hmac::sign(&self.key, message.as_bytes()).as_ref())
    }

    fn csrf_for(&self, session_id: &str) -> String {
        self.mac(&format!("csrf.{session_id}"))[..40].to_owned()
    }

    /// The cookie value of a new session for `operator`.
    pub fn issue(&self, operator: &Operator) -> String {
        let expires = now() + self.hours * 3600;
        let session_id = uuid::Uuid::new_v4().simple().to_string();
        let body = format!(
            "{}.{}.{expires}.{session_id}",
            hex::encode(operator.name.as_bytes()),
            hex::encode(operator.fingerprint)
        );
        format!("{body}.{}", self.mac(&body))
    }

    /// The session a cookie value stands for, if it is signed by us, unexpired, and its token
    /// is still configured.
    pub fn verify(&self, value: &str, tokens: &TokenStore) -> Option<Session> {
        let (body, mac) = value.rsplit_once('.')?;
        let expected = self.mac(body);
        if !bool::from(expected.as_bytes().ct_eq(mac.as_bytes())) {
            return None;
        }
        let mut parts = body.split('.');
        let name = String::from_utf8(hex::decode(parts.next()?).ok()?).ok()?;
        let fingerprint: [u8; 8] = hex::decode(parts.next()?).ok()?.try_into().ok()?;
        let expires: u64 = parts.next()?.parse().ok()?;
        let session_id = parts.next()?;
        if expires <= now() {
            return None;
        }
        let operator = tokens.by_name(&name, &fingerprint)?;
        Some(Session {
            operator,
            csrf: self.csrf_for(session_id),
        })
    }

    /// `Set-Cookie` for a new session.
    pub fn set_cookie(&self, value: &str) -> String {
        format!(
            "{COOKIE}={value}; Path=/console; Max-Age={}; HttpOnly; SameSite=Strict{}",
            self.hours * 3600,
            if self.secure { "; Secure" } else { "" }
        )
    }

    /// `Set-Cookie` that ends the session in the browser.
    pub fn clear_cookie(&self) -> String {
        format!(
            "{COOKIE}=; Path=/console; Max-Age=0; HttpOnly; SameSite=Strict{}",
            if self.secure { "; Secure" } else { "" }
        )
    }
}

/// The session cookie's value in a `Cookie` header.
pub fn cookie_value(request: &actix_web::HttpRequest) -> Option<String> {
    request
        .headers()
        .get_all(actix_web::http::header::COOKIE)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.to_owned())
}

/// Compares a submitted CSRF token in constant time.
pub fn csrf_matches(session: &Session, submitted: Option<&str>) -> bool {
    submitted.is_some_and(|s| bool::from(s.as_bytes().ct_eq(session.csrf.as_bytes())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::sha256_hex;
    use crate::settings::{TokenSettings, WarehouseSettings};

    fn store(token: &str) -> TokenStore {
        TokenStore::from_settings(&WarehouseSettings {
            tokens: vec![TokenSettings {
                name: "ana".into(),
                token_sha256: Some(sha256_hex(token)),
                token_file: None,
                sites: vec!["*".into()],
                role: crate::auth::Role::Floor,
            }],
            ..WarehouseSettings::default()
        })
        .unwrap()
    }

    #[test]
    fn a_session_verifies_until_tampered_or_rotated() {
        let keys = SessionKeys::new(None, true, 1);
        let tokens = store("one");
        let operator = tokens.authenticate("one").unwrap();
        let cookie = keys.issue(&operator);
        let session = keys.verify(&cookie, &tokens).unwrap();
        assert_eq!(session.operator.name, "ana");
        assert!(csrf_matches(&session, Some(&session.csrf)));
        assert!(!csrf_matches(&session, Some("nope")));
        assert!(!csrf_matches(&session, None));
        // Another session of the same operator has another CSRF token.
        let other = keys.verify(&keys.issue(&operator), &tokens).unwrap();
        assert_ne!(other.csrf, session.csrf);
        // A changed byte, another key, or a rotated token: no session.
        let mut tampered = cookie.clone();
        tampered.replace_range(0..2, "41");
        assert!(keys.verify(&tampered, &tokens).is_none());
        assert!(SessionKeys::new(None, true, 1).verify(&cookie, &tokens).is_none());
        assert!(keys.verify(&cookie, &store("two")).is_none());
        assert!(keys.set_cookie(&cookie).contains("HttpOnly; SameSite=Strict; Secure"));
        assert!(!SessionKeys::new(None, false, 1).set_cookie(&cookie).contains("Secure"));
    }
}
