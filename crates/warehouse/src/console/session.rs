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
//! Sign-in is throttled per client and per attempted token ([`SignInThrottle`]); the client is
//! the TCP peer unless the peer is one of `warehouse.console.trusted_proxies`, then the
//! nearest untrusted `X-Forwarded-For` hop ([`forwarded_client`]). IPv6 clients are counted by
//! their /64.

use crate::auth::{Operator, TokenDigest, TokenStore};
use crate::settings::{ConsoleSettings, IpRange};
use actix_web::HttpRequest;
use ring::hmac;
use std::net::IpAddr;
use std::time::Duration;
use subtle::ConstantTimeEq;
use warehouse_db::console_sessions::{self, Attempt, Throttle, ThrottleKey};

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
        let digest = TokenDigest(stored.token_sha256);
        let operator = match tokens.by_digest(&stored.operator, &digest) {
            Some(operator) => Some(operator),
            // A database token: found only while it is unrevoked (revoking also deletes the
            // session rows, in the same transaction).
            None => crate::auth::database_operator(client, &digest)
                .await?
                .filter(|operator| operator.name == stored.operator),
        };
        Ok(operator.map(|operator| Session {
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

    /// The client an attempt comes from: the TCP peer, or, when the peer is a trusted proxy,
    /// the hop of `X-Forwarded-For` that the nearest trusted proxy saw (see [`forwarded_client`]).
    pub fn client(&self, request: &HttpRequest) -> Option<Client> {
        let peer = request.peer_addr()?.ip();
        let hops = request
            .headers()
            .get_all("x-forwarded-for")
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','));
        Some(forwarded_client(peer, hops, |ip| {
            self.trusted_proxies.iter().any(|range| range.contains(ip))
        }))
    }

    /// The throttle of one sign-in attempt: its client and attempted token.
    pub fn throttle_for(&self, request: &HttpRequest, presented: &str) -> SignInThrottle {
        SignInThrottle {
            ip: self
                .client(request)
                .map_or_else(|| "unknown".to_owned(), |client| client.throttle_key()),
            token: TokenDigest::of(presented).fingerprint(),
            throttle: self.throttle,
        }
    }
}

/// Who a sign-in attempt comes from, for throttling and the logs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Client {
    /// An address (the TCP peer, or a forwarded hop).
    Address(IpAddr),
    /// A forwarded hop that is not an address (`unknown`, an obfuscated RFC 7239 name…), as
    /// written by the trusted proxy. It gets a throttle of its own, named by its text: not the
    /// proxy's, which would put everybody behind the proxy in one bucket.
    Unparsed(String),
}

impl Client {
    /// The key failed sign-ins are counted by: an IPv4 address; an IPv6 client's /64 (one
    /// host usually has a whole /64 to pick addresses from); `hop:` and the text of an
    /// unparsable hop (at most 100 characters).
    pub fn throttle_key(&self) -> String {
        match self {
            Self::Address(ip) => match ip.to_canonical() {
                IpAddr::V4(v4) => v4.to_string(),
                IpAddr::V6(v6) => {
                    let network = std::net::Ipv6Addr::from(u128::from(v6) & !((1u128 << 64) - 1));
                    format!("{network}/64")
                }
            },
            Self::Unparsed(text) => format!("hop:{}", text.chars().take(100).collect::<String>()),
        }
    }
}

/// One `X-Forwarded-For` hop as an address: `ip`, `ip:port`, `[v6]` or `[v6]:port`.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    if let Ok(ip) = hop.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Some(rest) = hop.strip_prefix('[') {
        let (inside, after) = rest.split_once(']')?;
        if !(after.is_empty() || after.strip_prefix(':').is_some_and(is_port)) {
            return None;
        }
        return inside.parse::<std::net::Ipv6Addr>().ok().map(IpAddr::V6);
    }
    let (address, port) = hop.rsplit_once(':')?;
    if !is_port(port) {
        return None;
    }
    address.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4)
}

fn is_port(text: &str) -> bool {
    !text.is_empty() && text.parse::<u16>().is_ok()
}

/// The client behind `peer`, given the `X-Forwarded-For` hops (in header order) and which
/// addresses are trusted proxies.
///
/// An untrusted peer is the client (the header is ignored: the client could write it). When
/// the peer is trusted, the hops are walked right to left, skipping trusted proxies; the first
/// hop that is not one is the client — it was written by a trusted proxy, while hops left of
/// it could have been written by the client and do not matter. A hop is `ip`, `ip:port`,
/// `[v6]` or `[v6]:port`; empty hops are skipped. If that first untrusted hop is not an
/// address, the client is its text ([`Client::Unparsed`]). If every hop is a trusted proxy,
/// the client is the leftmost one (the request started there).
pub fn forwarded_client<'h>(
    peer: IpAddr,
    hops: impl Iterator<Item = &'h str>,
    trusted: impl Fn(IpAddr) -> bool,
) -> Client {
    if !trusted(peer) {
        return Client::Address(peer);
    }
    let hops: Vec<&str> = hops.map(str::trim).filter(|hop| !hop.is_empty()).collect();
    let mut client = peer;
    for hop in hops.into_iter().rev() {
        match parse_hop(hop) {
            Some(ip) if trusted(ip) => client = ip,
            Some(ip) => return Client::Address(ip),
            None => return Client::Unparsed(hop.to_owned()),
        }
    }
    Client::Address(client)
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

    /// Counts the attempt against its client and token, atomically, before the token is
    /// looked at; the answer says whether it is refused (and for how long).
    /// `console_sessions::begin_attempt` explains the design.
    pub async fn begin<C: warehouse_db::Db>(&self, client: &C) -> Result<Attempt, SessionError> {
        console_sessions::begin_attempt(client, &self.keys(), self.throttle).await
    }

    /// Gives back the count of an attempt that did not fail (signed in, or refused).
    pub async fn give_back<C: warehouse_db::Db>(&self, client: &C, attempt: &Attempt) -> Result<(), SessionError> {
        console_sessions::give_back(client, attempt).await
    }

    /// The client's throttle key (its address, its IPv6 /64, or its unparsable hop).
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
                merchants: crate::auth::MerchantScope::All,
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

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    /// The proxies of these tests: 10.0.0.0/8 and fd00::/8.
    fn behind_proxies(peer: &str, header: &str) -> Client {
        let ranges = [
            IpRange::parse("10.0.0.0/8").unwrap(),
            IpRange::parse("fd00::/8").unwrap(),
        ];
        forwarded_client(ip(peer), header.split(','), |address| {
            ranges.iter().any(|range| range.contains(address))
        })
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_forwards() {
        assert_eq!(
            behind_proxies("203.0.113.9", "198.51.100.1"),
            Client::Address(ip("203.0.113.9"))
        );
        assert_eq!(
            behind_proxies("203.0.113.9", "unknown"),
            Client::Address(ip("203.0.113.9"))
        );
    }

    #[test]
    fn the_client_is_the_first_untrusted_hop_from_the_right_through_a_chain_of_proxies() {
        // Client, then two proxies of ours: the hops left of the client do not matter (the
        // client could have written them, junk included).
        let chain = "junk, 192.0.2.66, 198.51.100.7, 10.1.1.1, 10.2.2.2";
        assert_eq!(behind_proxies("10.3.3.3", chain), Client::Address(ip("198.51.100.7")));
        // IPv6 proxies and client.
        assert_eq!(
            behind_proxies("fd00::1", "2001:db8:1::5, fd00::2"),
            Client::Address(ip("2001:db8:1::5"))
        );
        // Several X-Forwarded-For headers read as one list (joined here), empty hops skipped.
        assert_eq!(
            behind_proxies("10.3.3.3", "198.51.100.7,,10.1.1.1, "),
            Client::Address(ip("198.51.100.7"))
        );
        // Every hop a proxy of ours (or no header): the leftmost trusted address.
        assert_eq!(
            behind_proxies("10.3.3.3", "10.9.9.9, 10.1.1.1"),
            Client::Address(ip("10.9.9.9"))
        );
        assert_eq!(behind_proxies("10.3.3.3", ""), Client::Address(ip("10.3.3.3")));
    }

    #[test]
    fn hops_with_ports_and_brackets_are_addresses() {
        for (hop, client) in [
            ("198.51.100.7:4711", "198.51.100.7"),
            ("[2001:db8::5]", "2001:db8::5"),
            ("[2001:db8::5]:443", "2001:db8::5"),
            ("2001:db8::5", "2001:db8::5"),
            ("::ffff:198.51.100.7", "::ffff:198.51.100.7"),
        ] {
            assert_eq!(
                behind_proxies("10.3.3.3", &format!("{hop}, 10.1.1.1:8080")),
                Client::Address(ip(client)),
                "{hop}"
            );
        }
        // A trusted proxy written with a port is still skipped.
        assert_eq!(
            behind_proxies("10.3.3.3", "198.51.100.7, [fd00::9]:80, 10.1.1.1:8080"),
            Client::Address(ip("198.51.100.7"))
        );
    }

    #[test]
    fn an_unparsable_client_hop_gets_a_bucket_of_its_own_not_the_proxys() {
        for hop in [
            "unknown",
            "_hidden",
            "198.51.100.7:http",
            "[2001:db8::5",
            "[2001:db8::5]:99999",
            "1.2.3.4:",
        ] {
            let client = behind_proxies("10.3.3.3", &format!("198.51.100.1, {hop}, 10.1.1.1"));
            assert_eq!(client, Client::Unparsed(hop.to_owned()), "{hop}");
            assert_eq!(client.throttle_key(), format!("hop:{hop}"));
        }
        let long = "x".repeat(500);
        assert_eq!(Client::Unparsed(long).throttle_key().len(), 4 + 100);
    }

    #[test]
    fn ipv6_clients_are_counted_by_their_64_and_mapped_ipv4_as_ipv4() {
        let key = |text: &str| Client::Address(ip(text)).throttle_key();
        assert_eq!(key("2001:db8:1:2:aaaa::1"), "2001:db8:1:2::/64");
        assert_eq!(key("2001:db8:1:2:ffff:ffff:ffff:ffff"), "2001:db8:1:2::/64");
        assert_ne!(key("2001:db8:1:3::1"), key("2001:db8:1:2::1"));
        assert_eq!(key("::ffff:198.51.100.7"), "198.51.100.7");
        assert_eq!(key("198.51.100.7"), "198.51.100.7");
    }
}
