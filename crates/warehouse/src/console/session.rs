//! Console sessions, stored in PostgreSQL (`warehouse_db::console_sessions`): valid on every
//! replica, ended server-side by sign-out, and only while the operator's token is configured.
//!
//! The cookie holds a random 32-byte secret (hex); the database holds only its SHA-256, the
//! operator's name, the SHA-256 of the token they signed in with, and the expiry
//! (`warehouse.console.session_hours`). A cookie whose row is gone (signed out, expired, token
//! revoked) is refused wherever it is replayed.
//!
//! Each session's CSRF token is an HMAC of a fixed label keyed with the cookie's secret: any
//! replica can derive it, a cross-site page cannot (the cookie is `HttpOnly`), and it is
//! checked on every form that changes state (with `SameSite=Strict` as a second line).
//!
//! Sign-in is throttled per client address and per attempted token
//! ([`SignInThrottle`]); the client address is the TCP peer unless the peer is one of
//! `warehouse.console.trusted_proxies`.

use crate::auth::{Operator, TokenDigest, TokenStore};
use crate::settings::{ConsoleSettings, IpRange};
use actix_web::HttpRequest;
use ring::hmac;
use std::net::IpAddr;
use std::time::Duration;
use subtle::ConstantTimeEq;
use warehouse_db::console_sessions::{self, Throttle, ThrottleKey};

pub const COOKIE: &str = "wms_console";

/// How sessions are issued and sign-ins throttled, from `[warehouse.console]`.
#[derive(Clone, Debug)]
pub struct SessionPolicy {
    pub secure: bool,
    pub lifetime: Duration,
    pub throttle: Throttle,
    trusted_proxies: Vec<IpRange>,
}

/// A verified session.
#[derive(Clone, Debug)]
pub struct Session {
    pub operator: Operator,
    /// The token a form must carry.
    pub csrf: String,
    /// The SHA-256 of the cookie's secret: the session's row.
    id_sha256: [u8; 32],
}

/// A new session's cookie secret, before it is stored.
pub struct NewSession {
    secret: [u8; 32],
}

impl NewSession {
    /// The cookie's value.
    pub fn cookie_value(&self) -> String {
        hex::encode(self.secret)
    }
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(ring::digest::digest(&ring::digest::SHA256, bytes).as_ref());
    out
}

fn csrf_for(secret: &[u8; 32]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    hex::encode(hmac::sign(&key, b"wms-console-csrf").as_ref())[..40].to_owned()
}

/// The secret in a cookie value: exactly 64 hex characters.
fn parse_secret(value: &str) -> Option<[u8; 32]> {
    if value.len() != 64 {
        return None;
    }
    hex::decode(value).ok()?.try_into().ok()
}

/// Why a session could not be issued or read.
pub type SessionError = warehouse_db::DbError;

impl SessionPolicy {
    pub fn from_settings(console: &ConsoleSettings) -> Self {
        Self {
            secure: console.secure_cookies,
            lifetime: Duration::from_secs(console.session_hours * 3600),
            throttle: Throttle {
                max_failures: console.sign_in_max_failures,
                window: Duration::from_secs(console.sign_in_window_secs),
            },
            trusted_proxies: console.trusted_proxy_ranges(),
        }
    }

    /// Stores a new session for `operator`; the caller sets its cookie.
    pub async fn issue<C: warehouse_db::Db>(
        &self,
        client: &C,
        operator: &Operator,
    ) -> Result<NewSession, SessionError> {
        let mut secret = [0u8; 32];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut secret)
            .map_err(|_| warehouse_db::DbError::Invariant("the system's random source failed".into()))?;
        console_sessions::create(
            client,
            &sha256(&secret),
            &operator.name,
            &operator.token_sha256.0,
            self.lifetime,
        )
        .await?;
        Ok(NewSession { secret })
    }

    /// The session a cookie value stands for, if its row exists, is unexpired, and its token is
    /// still configured under the same name.
    pub async fn verify<C: warehouse_db::Db>(
        &self,
        client: &C,
        value: &str,
        tokens: &TokenStore,
    ) -> Result<Option<Session>, SessionError> {
        let Some(secret) = parse_secret(value) else {
            return Ok(None);
        };
        let id_sha256 = sha256(&secret);
        let Some(stored) = console_sessions::find(client, &id_sha256).await? else {
            return Ok(None);
        };
        Ok(tokens
            .by_digest(&stored.operator, &TokenDigest(stored.token_sha256))
            .map(|operator| Session {
                operator,
                csrf: csrf_for(&secret),
                id_sha256,
            }))
    }

    /// Ends a session (sign-out): its cookie is refused from now on, on every replica.
    pub async fn end<C: warehouse_db::Db>(&self, client: &C, session: &Session) -> Result<(), SessionError> {
        console_sessions::end(client, &session.id_sha256).await?;
        Ok(())
    }

    /// `Set-Cookie` for a new session.
    pub fn set_cookie(&self, session: &NewSession) -> String {
        format!(
            "{COOKIE}={}; Path=/console; Max-Age={}; HttpOnly; SameSite=Strict{}",
            session.cookie_value(),
            self.lifetime.as_secs(),
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

    /// The client's address: the TCP peer, or, when the peer is a trusted proxy, the last
    /// address in `X-Forwarded-For` that is not a trusted proxy (the ones before it could have
    /// been written by the client itself).
    pub fn client_ip(&self, request: &HttpRequest) -> Option<IpAddr> {
        let peer = request.peer_addr()?.ip();
        let trusted = |ip: IpAddr| self.trusted_proxies.iter().any(|range| range.contains(ip));
        if !trusted(peer) {
            return Some(peer);
        }
        let forwarded: Vec<IpAddr> = request
            .headers()
            .get_all("x-forwarded-for")
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .map(|hop| hop.parse::<IpAddr>().ok())
            .collect::<Option<Vec<_>>>()
            // A hop that is not an address: the header is not to be believed.
            .unwrap_or_default();
        Some(forwarded.into_iter().rev().find(|ip| !trusted(*ip)).unwrap_or(peer))
    }

    /// The throttle of one sign-in attempt: its client address and attempted token.
    pub fn throttle_for(&self, request: &HttpRequest, presented: &str) -> SignInThrottle {
        SignInThrottle {
            ip: self
                .client_ip(request)
                .map_or_else(|| "unknown".to_owned(), |ip| ip.to_canonical().to_string()),
            token: TokenDigest::of(presented).fingerprint(),
            throttle: self.throttle,
        }
    }
}

/// The keys one sign-in attempt is counted by.
pub struct SignInThrottle {
    ip: String,
    token: String,
    throttle: Throttle,
}

impl SignInThrottle {
    fn keys(&self) -> [ThrottleKey<'_>; 2] {
        [ThrottleKey::Ip(&self.ip), ThrottleKey::Token(&self.token)]
    }

    /// How long until this address (or this token) may try again, when it is at the limit.
    pub async fn blocked_for<C: warehouse_db::Db>(&self, client: &C) -> Result<Option<Duration>, SessionError> {
        console_sessions::blocked_for(client, &self.keys(), self.throttle).await
    }

    /// Counts a failed attempt.
    pub async fn failed<C: warehouse_db::Db>(&self, client: &C) -> Result<(), SessionError> {
        console_sessions::record_failure(client, &self.keys(), self.throttle).await
    }

    pub fn ip(&self) -> &str {
        &self.ip
    }
}

/// The session cookie's value in a `Cookie` header.
pub fn cookie_value(request: &HttpRequest) -> Option<String> {
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

    #[test]
    fn a_cookie_secret_is_64_hex_characters_and_its_csrf_is_its_own() {
        let secret = [7u8; 32];
        assert_eq!(parse_secret(&hex::encode(secret)), Some(secret));
        assert_eq!(parse_secret("41"), None);
        assert_eq!(parse_secret(&"z".repeat(64)), None);
        assert_ne!(csrf_for(&secret), csrf_for(&[8u8; 32]));
        assert_eq!(csrf_for(&secret).len(), 40);
        let session = Session {
            operator: Operator {
                name: "ana".into(),
                role: crate::auth::Role::Read,
                scope: crate::auth::Scope::All,
                token_sha256: TokenDigest::of("t"),
            },
            csrf: csrf_for(&secret),
            id_sha256: sha256(&secret),
        };
        assert!(csrf_matches(&session, Some(&csrf_for(&secret))));
        assert!(!csrf_matches(&session, Some("nope")));
        assert!(!csrf_matches(&session, None));
    }

    #[test]
    fn cookies_are_http_only_strict_and_secure_unless_local() {
        let secure = SessionPolicy::from_settings(&ConsoleSettings::default());
        let new = NewSession { secret: [1u8; 32] };
        assert!(secure.set_cookie(&new).contains("HttpOnly; SameSite=Strict; Secure"));
        assert!(secure.clear_cookie().contains("Max-Age=0"));
        let local = SessionPolicy::from_settings(&ConsoleSettings {
            secure_cookies: false,
            ..ConsoleSettings::default()
        });
        assert!(!local.set_cookie(&new).contains("Secure"));
    }
}
