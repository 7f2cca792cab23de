//! Operator tokens as data: admins create, list and revoke the tokens kept in the database
//! (`warehouse_db::operator_tokens`), next to the config file's (`warehouse.tokens`,
//! `warehouse.api_tokens`), which stay read-only here.
//!
//! A new token is 32 random bytes, base64url without padding; it is returned once and only its
//! SHA-256 is stored. Nothing here logs a token.

use super::{CommandError, printable};
use crate::auth::{Operator, Role, TokenDigest};
use crate::state::AppState;
use serde::Serialize;
use utoipa::ToSchema;
use warehouse_db::operator_tokens::{self, Revoked};

/// What a token is for: a unique name, a role, and its stores.
pub struct NewToken {
    pub name: String,
    pub role: Role,
    /// `["*"]` for every store, or Webflow site ids.
    pub sites: Vec<String>,
    /// `["*"]` for every merchant, or merchant names (each must exist).
    pub merchants: Vec<String>,
}

/// A token just created: the only time the token itself is shown.
#[derive(Serialize, ToSchema)]
pub struct CreatedToken {
    pub name: String,
    #[schema(value_type = String, example = "read")]
    pub role: &'static str,
    pub sites: Vec<String>,
    pub merchants: Vec<String>,
    /// The bearer token. Shown this once; only its SHA-256 is stored.
    pub token: String,
}

/// Where a token is kept.
#[derive(Clone, Copy, Serialize, ToSchema, PartialEq, Eq, Debug)]
#[serde(rename_all = "lowercase")]
pub enum TokenSource {
    /// `warehouse.tokens` or `warehouse.api_tokens` in the config file: change it there.
    Config,
    /// Created through the API or the console: revocable there.
    Database,
}

/// A token as listed: never the token nor its digest.
#[derive(Serialize, ToSchema, Debug)]
pub struct TokenInfo {
    pub name: String,
    #[schema(value_type = String, example = "floor")]
    pub role: String,
    pub sites: Vec<String>,
    /// `["*"]` for every merchant, or merchant names.
    pub merchants: Vec<String>,
    pub source: TokenSource,
    /// Database tokens only.
    pub created_at: Option<chrono::DateTime<chrono::Utc>>,
    pub created_by: Option<String>,
    /// Set once revoked: the token is refused from then on.
    pub revoked_at: Option<chrono::DateTime<chrono::Utc>>,
    /// When it was last used (to the minute).
    pub last_used_at: Option<chrono::DateTime<chrono::Utc>>,
}

const MAX_NAME_BYTES: usize = 100;

fn check_input(token: &NewToken) -> Result<(), CommandError> {
    let name = token.name.trim();
    if name.is_empty() || name != token.name {
        return Err(CommandError::invalid(
            "name",
            "name must be non-empty, without leading or trailing spaces",
        ));
    }
    printable("name", &token.name, Some(MAX_NAME_BYTES))?;
    if token.name.contains('/') {
        return Err(CommandError::invalid("name", "name cannot contain `/`"));
    }
    if token.sites.is_empty() {
        return Err(CommandError::invalid(
            "sites",
            "sites needs `*` or at least one site id",
        ));
    }
    for site in &token.sites {
        if site.is_empty() {
            return Err(CommandError::invalid("sites", "a site id cannot be empty"));
        }
        printable("sites", site, Some(200))?;
    }
    if token.sites.len() > 1 && token.sites.iter().any(|s| s == "*") {
        return Err(CommandError::invalid("sites", "`*` stands alone"));
    }
    if token.merchants.is_empty() {
        return Err(CommandError::invalid(
            "merchants",
            "merchants needs `*` or at least one merchant name",
        ));
    }
    if token.merchants.len() > 1 && token.merchants.iter().any(|m| m == "*") {
        return Err(CommandError::invalid("merchants", "`*` stands alone"));
    }
    Ok(())
}

/// 32 random bytes, base64url without padding (43 characters).
fn generate() -> Result<String, CommandError> {
    let mut bytes = [0u8; 32];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
        .map_err(|_| warehouse_db::DbError::Invariant("the system's random source failed".into()))?;
    Ok(base64url(&bytes))
}

fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..=chunk.len() {
            out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
        }
    }
    out
}

/// Creates a token (admin only); 409 `duplicate_name` if a config or database token (revoked
/// ones included) has the name.
pub async fn create(state: &AppState, operator: &Operator, token: NewToken) -> Result<CreatedToken, CommandError> {
    operator.require(Role::Admin)?;
    check_input(&token)?;
    let duplicate = || CommandError::conflict("duplicate_name", format!("a token named `{}` exists", token.name));
    if state.tokens.has_name(&token.name) {
        return Err(duplicate());
    }
    let secret = generate()?;
    let digest = TokenDigest::of(&secret);
    let client = state.pool.get().await.map_err(warehouse_db::DbError::from)?;
    if token.merchants.iter().all(|m| m != "*") {
        // Every named merchant must exist: a typo would make a token that sees no stock.
        let known = warehouse_db::merchants::by_names(&*client, &token.merchants).await?;
        if let Some(unknown) = token.merchants.iter().find(|m| !known.iter().any(|k| &k.name == *m)) {
            return Err(CommandError::invalid(
                "merchants",
                format!("no merchant named `{unknown}`"),
            ));
        }
    }
    let created = operator_tokens::create(
        &*client,
        &token.name,
        token.role.as_str(),
        &token.sites,
        &token.merchants,
        &digest.0,
        &operator.name,
    )
    .await?;
    if !created {
        return Err(duplicate());
    }
    tracing::info!(token = %token.name, role = token.role.as_str(), by = %operator.name, "operator token created");
    Ok(CreatedToken {
        name: token.name,
        role: token.role.as_str(),
        sites: token.sites,
        merchants: token.merchants,
        token: secret,
    })
}

/// Every token (admin only): the config file's, then the database's by name.
pub async fn list(state: &AppState, operator: &Operator) -> Result<Vec<TokenInfo>, CommandError> {
    operator.require(Role::Admin)?;
    let mut tokens: Vec<TokenInfo> = state
        .tokens
        .operators()
        .map(|o| TokenInfo {
            name: o.name.clone(),
            role: o.role.as_str().to_owned(),
            sites: o.site_filter().map_or_else(|| vec!["*".to_owned()], <[String]>::to_vec),
            merchants: o.merchants.to_names(),
            source: TokenSource::Config,
            created_at: None,
            created_by: None,
            revoked_at: None,
            last_used_at: None,
        })
        .collect();
    let client = state.pool.get().await.map_err(warehouse_db::DbError::from)?;
    tokens.extend(operator_tokens::list(&*client).await?.into_iter().map(|t| TokenInfo {
        name: t.name,
        role: t.role,
        sites: t.sites,
        merchants: t.merchants,
        source: TokenSource::Database,
        created_at: Some(t.created_at),
        created_by: Some(t.created_by),
        revoked_at: t.revoked_at,
        last_used_at: t.last_used_at,
    }));
    Ok(tokens)
}

/// Revokes a database token (admin only) and ends its console sessions, in one transaction:
/// refused from now on, on every replica. A config-file token answers 409 `config_token`;
/// an unknown name 404. Revoking a revoked token changes nothing.
pub async fn revoke(state: &AppState, operator: &Operator, name: &str) -> Result<(), CommandError> {
    operator.require(Role::Admin)?;
    printable("name", name, None)?;
    if state.tokens.has_name(name) {
        return Err(CommandError::conflict(
            "config_token",
            format!(
                "the token `{name}` is in the config file (warehouse.tokens or warehouse.api_tokens); remove it there and restart"
            ),
        ));
    }
    let mut client = state.pool.get().await.map_err(warehouse_db::DbError::from)?;
    let transaction = client.transaction().await.map_err(warehouse_db::DbError::from)?;
    let revoked = operator_tokens::revoke(&transaction, name).await?;
    transaction.commit().await.map_err(warehouse_db::DbError::from)?;
    match revoked {
        Revoked::Now { sessions_ended } => {
            tracing::info!(token = %name, by = %operator.name, sessions_ended, "operator token revoked");
            Ok(())
        }
        Revoked::Already => Ok(()),
        Revoked::Unknown => Err(CommandError::NotFound(format!("no token named `{name}`"))),
    }
}

#[cfg(test)]
mod tests {
    use super::base64url;

    #[test]
    fn base64url_matches_rfc_4648_vectors() {
        assert_eq!(base64url(b"f"), "Zg");
        assert_eq!(base64url(b"fo"), "Zm8");
        assert_eq!(base64url(b"foo"), "Zm9v");
        assert_eq!(base64url(b"foobar"), "Zm9vYmFy");
        assert_eq!(base64url(&[0xfb, 0xff]), "-_8");
        assert_eq!(base64url(&[0u8; 32]).len(), 43);
    }
}
