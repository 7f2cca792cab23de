//! Merchants (migration V16): who owns stock. Each store belongs to one merchant, several
//! stores of a merchant share its stock, and the same SKU string under two merchants is two
//! products (migration V17). Every install has the `default` merchant (id 1), which owns what
//! existed before merchants did and the orders of sites no store row names.

use crate::db::Db;
use crate::error::{DbError, Result};
use tokio_postgres::error::SqlState;

/// The merchant every install has: id 1, named `default`.
pub const DEFAULT_MERCHANT_ID: i64 = 1;
pub const DEFAULT_MERCHANT: &str = "default";

/// A merchant as stored.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Merchant {
    pub id: i64,
    /// Unique; appears in URLs (`/api/v1/merchants/{merchant}/…`).
    pub name: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

/// Why a merchant could not be read or created.
#[derive(Debug, thiserror::Error)]
pub enum MerchantError {
    #[error(
        "invalid merchant name `{0}`: 1-63 characters, lower-case letters, digits, `.`, `_` or `-`, starting with a letter or digit"
    )]
    InvalidName(String),
    #[error("a merchant named `{0}` exists already")]
    Conflict(String),
    #[error("no merchant named `{0}`")]
    NotFound(String),
    #[error(transparent)]
    Database(#[from] DbError),
}

impl From<tokio_postgres::Error> for MerchantError {
    fn from(error: tokio_postgres::Error) -> Self {
        Self::Database(error.into())
    }
}

/// The rule of the `merchants.name` CHECK (V16), checked before the database sees the name so
/// a bad name is a 4xx with a reason, not a constraint violation: `^[a-z0-9][a-z0-9._-]{0,62}$`.
pub fn valid_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && (bytes[0].is_ascii_lowercase() || bytes[0].is_ascii_digit())
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_' | b'-'))
}

fn merchant(row: &tokio_postgres::Row) -> Merchant {
    Merchant {
        id: row.get(0),
        name: row.get(1),
        created_at: row.get(2),
    }
}

/// Every merchant, by name.
pub async fn list<C: Db>(client: &C) -> Result<Vec<Merchant>> {
    let rows = client
        .query("SELECT id, name, created_at FROM merchants ORDER BY name", &[])
        .await?;
    Ok(rows.iter().map(merchant).collect())
}

/// The merchant named `name`; [`MerchantError::NotFound`] when none is (an invalid name
/// names none).
pub async fn get_by_name<C: Db>(client: &C, name: &str) -> Result<Merchant, MerchantError> {
    if !valid_name(name) {
        return Err(MerchantError::NotFound(name.to_owned()));
    }
    client
        .query_opt("SELECT id, name, created_at FROM merchants WHERE name = $1", &[&name])
        .await?
        .as_ref()
        .map(merchant)
        .ok_or_else(|| MerchantError::NotFound(name.to_owned()))
}

/// The merchants with these names that exist, by name (unknown names are left out).
pub async fn by_names<C: Db>(client: &C, names: &[String]) -> Result<Vec<Merchant>> {
    let rows = client
        .query(
            "SELECT id, name, created_at FROM merchants WHERE name = ANY($1) ORDER BY name",
            &[&names],
        )
        .await?;
    Ok(rows.iter().map(merchant).collect())
}

/// The merchants whose stock the stores of these sites sell: each live store's merchant, and
/// `default` for a site no live store row names (its orders are `default`'s, see
/// `orders::insert`).
pub async fn of_sites<C: Db>(client: &C, sites: &[String]) -> Result<Vec<Merchant>> {
    let rows = client
        .query(
            "SELECT m.id, m.name, m.created_at FROM merchants m
             WHERE m.id IN (
                 SELECT COALESCE((SELECT st.merchant_id FROM stores st
                                  WHERE st.site_id = s.site_id AND st.removed_at IS NULL), $2)
                 FROM unnest($1::text[]) AS s(site_id))
             ORDER BY m.name",
            &[&sites, &DEFAULT_MERCHANT_ID],
        )
        .await?;
    Ok(rows.iter().map(merchant).collect())
}

/// Creates a merchant; [`MerchantError::Conflict`] when the name is taken.
pub async fn create<C: Db>(client: &C, name: &str) -> Result<Merchant, MerchantError> {
    if !valid_name(name) {
        return Err(MerchantError::InvalidName(name.to_owned()));
    }
    let row = client
        .query_opt(
            "INSERT INTO merchants (name) VALUES ($1) ON CONFLICT (name) DO NOTHING
             RETURNING id, name, created_at",
            &[&name],
        )
        .await
        .map_err(|error| {
            // A CHECK the Rust rule missed is still the caller's bad name, not a fault.
            if error.code() == Some(&SqlState::CHECK_VIOLATION) {
                MerchantError::InvalidName(name.to_owned())
            } else {
                error.into()
            }
        })?;
    row.as_ref()
        .map(merchant)
        .ok_or_else(|| MerchantError::Conflict(name.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::valid_name;

    #[test]
    fn names_follow_the_schema_check() {
        for good in ["default", "acme", "a", "0shop", "acme-eu.2_b", &"a".repeat(63)] {
            assert!(valid_name(good), "{good}");
        }
        for bad in ["", "Acme", "-acme", ".acme", "ac me", "acme/x", "äcme", &"a".repeat(64)] {
            assert!(!valid_name(bad), "{bad}");
        }
    }
}
