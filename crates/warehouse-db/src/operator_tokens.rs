//! Operator tokens kept in the database (migration V15), next to the ones in the config file.
//!
//! Only a token's SHA-256 is stored. A token is looked up by its digest (an index lookup in
//! PostgreSQL, so no comparison of secrets happens in Rust); a revoked token is never found
//! again, and revoking ends the token's console sessions in the same transaction.

use crate::console_sessions::{self, Sha256};
use crate::db::Db;
use crate::error::Result;

/// A token as stored (never the token itself).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredToken {
    pub name: String,
    /// `read`, `floor` or `admin`.
    pub role: String,
    /// Webflow site ids, or `["*"]` for every store.
    pub sites: Vec<String>,
    /// Merchant names whose stock the token may read or change, or `["*"]` for every merchant
    /// (migration V17).
    pub merchants: Vec<String>,
    pub token_sha256: Sha256,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub created_by: String,
    pub revoked_at: Option<chrono::DateTime<chrono::Utc>>,
    pub last_used_at: Option<chrono::DateTime<chrono::Utc>>,
}

const COLUMNS: &str = "name, role, sites, token_sha256, created_at, created_by, revoked_at, last_used_at, merchants";

fn read(row: &tokio_postgres::Row) -> Option<StoredToken> {
    let digest: Vec<u8> = row.get(3);
    Some(StoredToken {
        name: row.get(0),
        role: row.get(1),
        sites: row.get(2),
        token_sha256: digest.try_into().ok()?,
        created_at: row.get(4),
        created_by: row.get(5),
        revoked_at: row.get(6),
        last_used_at: row.get(7),
        merchants: row.get(8),
    })
}

/// Stores a new token; `false` when the name (or, by astronomically bad luck, the digest) is
/// taken, revoked tokens included.
pub async fn create<C: Db>(
    client: &C,
    name: &str,
    role: &str,
    sites: &[String],
    merchants: &[String],
    token_sha256: &Sha256,
    created_by: &str,
) -> Result<bool> {
    Ok(client
        .execute(
            "INSERT INTO operator_tokens (name, role, sites, merchants, token_sha256, created_by)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT DO NOTHING",
            &[&name, &role, &sites, &merchants, &token_sha256.as_slice(), &created_by],
        )
        .await?
        == 1)
}

/// Every token, revoked ones included, by name.
pub async fn list<C: Db>(client: &C) -> Result<Vec<StoredToken>> {
    let rows = client
        .query(&format!("SELECT {COLUMNS} FROM operator_tokens ORDER BY name"), &[])
        .await?;
    Ok(rows.iter().filter_map(read).collect())
}

/// The unrevoked token with this digest, if any; notes when it was last used (at most once a
/// minute, so a busy token does not write on every request).
pub async fn find_active<C: Db>(client: &C, token_sha256: &Sha256) -> Result<Option<StoredToken>> {
    let row = client
        .query_opt(
            &format!(
                "SELECT {COLUMNS} FROM operator_tokens
                 WHERE token_sha256 = $1 AND revoked_at IS NULL"
            ),
            &[&token_sha256.as_slice()],
        )
        .await?;
    let Some(token) = row.as_ref().and_then(read) else {
        return Ok(None);
    };
    if token
        .last_used_at
        .is_none_or(|at| chrono::Utc::now() - at > chrono::TimeDelta::minutes(1))
    {
        client
            .execute(
                "UPDATE operator_tokens SET last_used_at = now() WHERE token_sha256 = $1",
                &[&token_sha256.as_slice()],
            )
            .await?;
    }
    Ok(Some(token))
}

/// What revoking a token did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revoked {
    /// Revoked now; this many console sessions ended with it.
    Now { sessions_ended: u64 },
    /// It was revoked before (nothing changed).
    Already,
    /// No token has this name.
    Unknown,
}

/// Revokes the token named `name` and ends its console sessions. Call it in a transaction, so
/// both happen or neither.
pub async fn revoke<C: Db>(client: &C, name: &str) -> Result<Revoked> {
    let row = client
        .query_opt(
            "UPDATE operator_tokens SET revoked_at = now()
             WHERE name = $1 AND revoked_at IS NULL
             RETURNING token_sha256",
            &[&name],
        )
        .await?;
    if let Some(row) = row {
        let digest: Vec<u8> = row.get(0);
        let digest: Sha256 = digest
            .try_into()
            .map_err(|_| crate::DbError::Decode("operator_tokens.token_sha256 is not 32 bytes".into()))?;
        let sessions_ended = console_sessions::end_for_token(client, &digest).await?;
        return Ok(Revoked::Now { sessions_ended });
    }
    let exists = client
        .query_opt("SELECT 1 FROM operator_tokens WHERE name = $1", &[&name])
        .await?
        .is_some();
    Ok(if exists { Revoked::Already } else { Revoked::Unknown })
}
