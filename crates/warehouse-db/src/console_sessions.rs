//! Operator console sessions and sign-in throttling (migration V12), shared by every warehouse
//! replica through the database.
//!
//! A session is found by the SHA-256 of the secret its cookie holds (the secret itself is never
//! stored) and records the SHA-256 of the operator token that signed it in: ending a session
//! (sign-out) or every session of a token (revocation) is one statement, and a cookie whose
//! row is gone is refused wherever it is replayed.
//!
//! Failed sign-ins are counted per key (the client's address, the attempted token) in fixed
//! windows; a key at the limit is refused until its window ends.

use crate::db::Db;
use crate::error::Result;
use std::time::Duration;

/// A SHA-256 digest: a session id's or an operator token's.
pub type Sha256 = [u8; 32];

/// A session as stored: who signed in, with which token, until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSession {
    pub operator: String,
    pub token_sha256: Sha256,
    pub expires_at: chrono::DateTime<chrono::Utc>,
}

/// Stores a new session valid for `lifetime`, and drops the expired ones (so the table holds
/// only live sessions).
pub async fn create<C: Db>(
    client: &C,
    id_sha256: &Sha256,
    operator: &str,
    token_sha256: &Sha256,
    lifetime: Duration,
) -> Result<()> {
    client
        .execute("DELETE FROM console_sessions WHERE expires_at <= now()", &[])
        .await?;
    client
        .execute(
            "INSERT INTO console_sessions (id_sha256, operator, token_sha256, expires_at)
             VALUES ($1, $2, $3, now() + make_interval(secs => $4))",
            &[
                &id_sha256.as_slice(),
                &operator,
                &token_sha256.as_slice(),
                &lifetime.as_secs_f64(),
            ],
        )
        .await?;
    Ok(())
}

/// The unexpired session with this id, if any.
pub async fn find<C: Db>(client: &C, id_sha256: &Sha256) -> Result<Option<StoredSession>> {
    let row = client
        .query_opt(
            "SELECT operator, token_sha256, expires_at FROM console_sessions
             WHERE id_sha256 = $1 AND expires_at > now()",
            &[&id_sha256.as_slice()],
        )
        .await?;
    Ok(row.and_then(|row| {
        let token: Vec<u8> = row.get(1);
        Some(StoredSession {
            operator: row.get(0),
            token_sha256: token.try_into().ok()?,
            expires_at: row.get(2),
        })
    }))
}

/// Ends one session (sign-out); whether it existed.
pub async fn end<C: Db>(client: &C, id_sha256: &Sha256) -> Result<bool> {
    Ok(client
        .execute(
            "DELETE FROM console_sessions WHERE id_sha256 = $1",
            &[&id_sha256.as_slice()],
        )
        .await?
        > 0)
}

/// Ends every session signed in with this token (a revoked or rotated token); how many.
pub async fn end_for_token<C: Db>(client: &C, token_sha256: &Sha256) -> Result<u64> {
    Ok(client
        .execute(
            "DELETE FROM console_sessions WHERE token_sha256 = $1",
            &[&token_sha256.as_slice()],
        )
        .await?)
}

/// What failed sign-ins are counted by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ThrottleKey<'a> {
    /// The client's address, as the warehouse determined it.
    Ip(&'a str),
    /// The attempted token: a fingerprint of its SHA-256, never the token.
    Token(&'a str),
}

impl ThrottleKey<'_> {
    fn parts(&self) -> (&'static str, &str) {
        match self {
            Self::Ip(ip) => ("ip", ip),
            Self::Token(fingerprint) => ("token", fingerprint),
        }
    }
}

/// The limit: at most `max_failures` failed sign-ins per key in a `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Throttle {
    pub max_failures: u32,
    pub window: Duration,
}

fn split<'a>(keys: &'a [ThrottleKey<'a>]) -> (Vec<&'static str>, Vec<&'a str>) {
    keys.iter().map(ThrottleKey::parts).unzip()
}

/// How long until the first of `keys` that reached the limit may try again (`None`: none did).
pub async fn blocked_for<C: Db>(client: &C, keys: &[ThrottleKey<'_>], throttle: Throttle) -> Result<Option<Duration>> {
    let (kinds, values) = split(keys);
    let row = client
        .query_one(
            "SELECT MAX(EXTRACT(EPOCH FROM window_started_at + make_interval(secs => $3) - now()))::float8
             FROM console_sign_in_failures
             WHERE (key_kind, key) IN (SELECT * FROM unnest($1::text[], $2::text[]))
               AND failures >= $4
               AND window_started_at + make_interval(secs => $3) > now()",
            &[
                &kinds,
                &values,
                &throttle.window.as_secs_f64(),
                &i32::try_from(throttle.max_failures).unwrap_or(i32::MAX),
            ],
        )
        .await?;
    let seconds: Option<f64> = row.get(0);
    Ok(seconds.filter(|s| *s > 0.0).map(Duration::from_secs_f64))
}

/// Counts one failed sign-in against each of `keys` (a key whose window ended starts a new
/// one), and drops the rows of windows that ended.
pub async fn record_failure<C: Db>(client: &C, keys: &[ThrottleKey<'_>], throttle: Throttle) -> Result<()> {
    let (kinds, values) = split(keys);
    let window = throttle.window.as_secs_f64();
    client
        .execute(
            "DELETE FROM console_sign_in_failures WHERE window_started_at <= now() - make_interval(secs => $1)",
            &[&window],
        )
        .await?;
    client
        .execute(
            "INSERT INTO console_sign_in_failures AS f (key_kind, key, window_started_at, failures)
             SELECT kind, key, now(), 1 FROM unnest($1::text[], $2::text[]) AS k(kind, key)
             ON CONFLICT (key_kind, key) DO UPDATE SET
                 failures = CASE WHEN f.window_started_at + make_interval(secs => $3) <= now()
                                 THEN 1 ELSE f.failures + 1 END,
                 window_started_at = CASE WHEN f.window_started_at + make_interval(secs => $3) <= now()
                                          THEN now() ELSE f.window_started_at END",
            &[&kinds, &values, &window],
        )
        .await?;
    Ok(())
}
