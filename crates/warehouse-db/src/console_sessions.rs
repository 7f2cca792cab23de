//! Operator console sessions and sign-in throttling (migration V12), shared by every warehouse
//! replica through the database.
//!
//! A session is found by the SHA-256 of the secret its cookie holds (the secret itself is never
//! stored) and records the SHA-256 of the operator token that signed it in: ending a session
//! (sign-out) or every session of a token (revocation) is one statement, and a cookie whose
//! row is gone is refused wherever it is replayed.
//!
//! Failed sign-ins are counted per key (the client's address, the attempted token) in fixed
//! windows; a key at the limit is refused until its window ends. An attempt is counted before
//! the token is looked at, atomically ([`begin_attempt`]), so parallel attempts cannot slip
//! past the limit; one that did not fail is given back ([`give_back`]).

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

/// One sign-in attempt, counted before the token is looked at (see [`begin_attempt`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Attempt {
    /// How long until the first key over the limit may try again (`None`: the attempt may go on).
    pub refused_for: Option<Duration>,
    /// What was counted: each key's kind, value, and the window it was counted in.
    counted: Vec<(String, String, chrono::DateTime<chrono::Utc>)>,
}

/// Counts one attempt against each of `keys`, atomically, before the token is looked at, and
/// says whether the attempt may go on.
///
/// Why count first: checking the count and counting a failure in two steps lets a burst of
/// parallel attempts all pass the check before any failure is counted. Here one
/// `INSERT … ON CONFLICT DO UPDATE … RETURNING` per attempt takes the key's row lock, so
/// concurrent attempts on one key get distinct counts (1, 2, 3, …); an attempt whose count on
/// any key is above `max_failures` is refused. The counter is "failures plus attempts under
/// way", so at any moment at most `max_failures` attempts of a window are failed or running.
///
/// A failed sign-in keeps its count; a successful sign-in, or an attempt refused here, gives it
/// back with [`give_back`] (so neither counts against
/// the address or the token: an operator whose address is locked out does not lock out their
/// own token by retrying). Giving back only touches the window the attempt was counted in.
///
/// A window that ended starts a new one on the next attempt; rows of ended windows are
/// dropped on the way (skipping rows another attempt holds).
pub async fn begin_attempt<C: Db>(client: &C, keys: &[ThrottleKey<'_>], throttle: Throttle) -> Result<Attempt> {
    let (kinds, values) = split(keys);
    let window = throttle.window.as_secs_f64();
    client
        .execute(
            "DELETE FROM console_sign_in_failures WHERE ctid IN (
                 SELECT ctid FROM console_sign_in_failures
                 WHERE window_started_at <= now() - make_interval(secs => $1)
                 FOR UPDATE SKIP LOCKED)",
            &[&window],
        )
        .await?;
    // Rows are locked in (kind, key) order, the same for every attempt: no deadlock.
    let rows = client
        .query(
            "INSERT INTO console_sign_in_failures AS f (key_kind, key, window_started_at, failures)
             SELECT kind, key, now(), 1 FROM unnest($1::text[], $2::text[]) AS k(kind, key)
             ORDER BY kind, key
             ON CONFLICT (key_kind, key) DO UPDATE SET
                 failures = CASE WHEN f.window_started_at + make_interval(secs => $3) <= now()
                                 THEN 1 ELSE f.failures + 1 END,
                 window_started_at = CASE WHEN f.window_started_at + make_interval(secs => $3) <= now()
                                          THEN now() ELSE f.window_started_at END
             RETURNING key_kind, key, window_started_at, failures,
                 EXTRACT(EPOCH FROM window_started_at + make_interval(secs => $3) - now())::float8",
            &[&kinds, &values, &window],
        )
        .await?;
    let max = i64::from(throttle.max_failures);
    let mut refused_for: Option<Duration> = None;
    let mut counted = Vec::with_capacity(rows.len());
    for row in rows {
        let failures: i32 = row.get(3);
        if i64::from(failures) > max {
            let left: f64 = row.get(4);
            let left = Duration::from_secs_f64(left.max(0.0));
            refused_for = Some(refused_for.map_or(left, |other| other.max(left)));
        }
        counted.push((row.get(0), row.get(1), row.get(2)));
    }
    Ok(Attempt { refused_for, counted })
}

/// Gives back the count of an attempt [`begin_attempt`] counted that did not fail: a
/// successful sign-in, or an attempt that was refused. (A failed sign-in keeps its count.)
pub async fn give_back<C: Db>(client: &C, attempt: &Attempt) -> Result<()> {
    // One statement per key, each locking one row: no lock-order question with other attempts.
    for (kind, key, window_started_at) in &attempt.counted {
        client
            .execute(
                "UPDATE console_sign_in_failures SET failures = GREATEST(failures - 1, 0)
                 WHERE key_kind = $1 AND key = $2 AND window_started_at = $3",
                &[kind, key, window_started_at],
            )
            .await?;
    }
    Ok(())
}
