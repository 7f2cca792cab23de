//! Operator tokens: who is calling (a name recorded as the actor of every action), which
//! stores they may see, and what they may do.
//!
//! Tokens are kept as SHA-256 digests. A presented token is hashed and its digest compared with
//! every configured digest in constant time, so neither the comparison nor the position of the
//! match leaks through timing. A token no configured digest matches is then looked up by its
//! digest among the unrevoked tokens an admin created (`warehouse_db::operator_tokens`), in
//! PostgreSQL on every request (no cache), so a revocation holds at once on every replica.
//!
//! Roles are ordered: `read` (every GET in scope) < `floor` (read plus pick, pack, receive) <
//! `admin` (floor plus refunds, address corrections, setting inventory, dead-letter actions).
//! A role too low answers 403, decided from the route alone (before any lookup, so it tells
//! nothing about ids). Something outside the token's stores answers 404, exactly as an id
//! that does not exist, so ids of other stores do not leak.
//!
//! Stock belongs to merchants (issue 24). A token may be limited to merchants
//! (`merchants`, default every merchant); a token limited to stores is limited to those
//! stores' merchants too (the scopes intersect). Another merchant's stock reads as unknown
//! (404), as out-of-scope orders do.

// `Role` and `sha256_hex` are part of the token settings' vocabulary, so they live there (and
// `settings` needs nothing from this module).
pub use crate::settings::{Role, sha256_hex};
use crate::settings::{TokenSettings, WarehouseSettings};
use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpMessage, HttpRequest};
use platform::settings::SettingsError;
use secrecy::ExposeSecret;
use std::future::{Ready, ready};
use subtle::ConstantTimeEq;
use warehouse_db::merchants::{self, Merchant};

/// The stores a token may see.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    /// `sites = ["*"]`: every store, and every SKU.
    All,
    /// These site ids only.
    Sites(Vec<String>),
}

impl Scope {
    pub fn from_sites(sites: &[String]) -> Self {
        if sites.iter().any(|s| s == "*") {
            Self::All
        } else {
            Self::Sites(sites.to_vec())
        }
    }
}

/// The merchants whose stock a token may read or change.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MerchantScope {
    /// `merchants = ["*"]` (the default): every merchant.
    All,
    /// These merchant names only.
    Names(Vec<String>),
}

impl MerchantScope {
    pub fn from_names(names: &[String]) -> Self {
        if names.iter().any(|n| n == "*") {
            Self::All
        } else {
            Self::Names(names.to_vec())
        }
    }

    /// As stored and listed: `["*"]`, or the names.
    pub fn to_names(&self) -> Vec<String> {
        match self {
            Self::All => vec!["*".to_owned()],
            Self::Names(names) => names.clone(),
        }
    }
}

/// Why a caller may not do what it asked. Free of HTTP types so commands can return it; the
/// HTTP layer maps it to 401, 403 and 404 (`crate::error`).
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    /// No valid bearer token.
    #[error("a valid `Authorization: Bearer <token>` header is required")]
    Unauthorized,
    /// The token's role is too low for the action.
    #[error("{0}")]
    Forbidden(String),
    /// Outside the token's stores, which reads exactly as something that does not exist.
    #[error("{0}")]
    NotFound(String),
    /// `/api/v1/inventory/{sku}` with a token that may see several merchants' stock: the
    /// merchant must be named.
    #[error(
        "the token may see several merchants' stock: name the merchant (/api/v1/merchants/{{merchant}}/inventory/{{sku}})"
    )]
    MerchantRequired,
    /// Deciding needed the database, and it failed.
    #[error(transparent)]
    Database(#[from] warehouse_db::DbError),
}

/// The authenticated caller, put in the request's extensions by the auth middleware.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Operator {
    /// Recorded as the actor of every action and timeline entry.
    pub name: String,
    pub role: Role,
    pub scope: Scope,
    /// The merchants whose stock it may read or change (intersected with its stores').
    pub merchants: MerchantScope,
    /// The SHA-256 of the token: a console session records it, so a session lasts only while
    /// its token is configured, and revoking a token can end its sessions
    /// (`warehouse_db::console_sessions::end_for_token`).
    pub token_sha256: TokenDigest,
}

/// The SHA-256 of an operator token. Not the token, but shown shortened all the same.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct TokenDigest(pub [u8; 32]);

impl std::fmt::Debug for TokenDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TokenDigest({}…)", hex::encode(&self.0[..4]))
    }
}

impl TokenDigest {
    /// The digest of a presented token.
    pub fn of(token: &str) -> Self {
        Self(digest(token))
    }

    /// A short, stable name for the token (the sign-in throttle's key): the first 16 bytes of
    /// the digest, hex.
    pub fn fingerprint(&self) -> String {
        hex::encode(&self.0[..16])
    }
}

impl Operator {
    /// 403 unless the operator's role is at least `needed`.
    pub fn require(&self, needed: Role) -> Result<(), AccessError> {
        if self.role >= needed {
            Ok(())
        } else {
            Err(AccessError::Forbidden(format!(
                "the token `{}` has the `{}` role; this needs `{}`",
                self.name,
                self.role.as_str(),
                needed.as_str()
            )))
        }
    }

    /// Whether the operator may see this store's orders.
    pub fn sees_site(&self, site_id: &str) -> bool {
        match &self.scope {
            Scope::All => true,
            Scope::Sites(sites) => sites.iter().any(|s| s == site_id),
        }
    }

    /// The site ids the operator is limited to (`None`: every store).
    pub fn site_filter(&self) -> Option<&[String]> {
        match &self.scope {
            Scope::All => None,
            Scope::Sites(sites) => Some(sites),
        }
    }

    /// A store outside the scope reads as an order that does not exist.
    pub fn check_site(&self, site_id: &str, order_id: &str) -> Result<(), AccessError> {
        if self.sees_site(site_id) {
            Ok(())
        } else {
            Err(order_not_found(site_id, order_id))
        }
    }

    /// The merchants whose stock the operator may read or change, by name: those its merchant
    /// scope names, of those its stores belong to.
    pub async fn stock_merchants<C: warehouse_db::Db>(&self, client: &C) -> Result<Vec<Merchant>, AccessError> {
        let named = match &self.merchants {
            MerchantScope::All => merchants::list(client).await?,
            MerchantScope::Names(names) => merchants::by_names(client, names).await?,
        };
        let Some(sites) = self.site_filter() else {
            return Ok(named);
        };
        let of_sites = merchants::of_sites(client, sites).await?;
        Ok(named.into_iter().filter(|m| of_sites.contains(m)).collect())
    }

    /// The merchant whose stock a request means. Named (`/api/v1/merchants/{merchant}/…`):
    /// that merchant, which an out-of-scope one reads as unknown (404). Unnamed
    /// (`/api/v1/inventory/{sku}`): the one merchant the operator may see; with several, the
    /// request is ambiguous ([`AccessError::MerchantRequired`], 409).
    pub async fn stock_merchant<C: warehouse_db::Db>(
        &self,
        client: &C,
        named: Option<&str>,
    ) -> Result<Merchant, AccessError> {
        let visible = self.stock_merchants(client).await?;
        match named {
            Some(name) => visible
                .into_iter()
                .find(|m| m.name == name)
                .ok_or_else(|| AccessError::NotFound(format!("no merchant named `{name}`"))),
            None => {
                let mut visible = visible.into_iter();
                match (visible.next(), visible.next()) {
                    (Some(only), None) => Ok(only),
                    (None, _) => Err(AccessError::NotFound(
                        "the token may see no merchant's stock".to_owned(),
                    )),
                    (Some(_), Some(_)) => Err(AccessError::MerchantRequired),
                }
            }
        }
    }

    /// A token limited to some stores sees a merchant's SKU only when an order of one of its
    /// stores has a line with it; otherwise the SKU reads as unknown (404). A SKU nobody
    /// ordered yet (creating one with `PUT`) needs a token on every store (`*`).
    pub async fn check_sku<C: warehouse_db::Db>(
        &self,
        client: &C,
        merchant_id: i64,
        sku: &str,
    ) -> Result<(), AccessError> {
        let Some(sites) = self.site_filter() else {
            return Ok(());
        };
        if warehouse_db::console::sku_used_by_sites(client, merchant_id, &sku.into(), sites).await? {
            Ok(())
        } else {
            Err(AccessError::NotFound(format!("unknown SKU `{sku}`")))
        }
    }
}

pub fn order_not_found(site_id: &str, order_id: &str) -> AccessError {
    AccessError::NotFound(format!("no order {order_id} for site {site_id}"))
}

/// Handlers take the caller as an argument; the middleware has authenticated it.
impl FromRequest for Operator {
    type Error = AccessError;
    type Future = Ready<Result<Self, AccessError>>;

    fn from_request(request: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(
            request
                .extensions()
                .get::<Operator>()
                .cloned()
                .ok_or(AccessError::Unauthorized),
        )
    }
}

/// The configured tokens, by digest.
#[derive(Clone, Default)]
pub struct TokenStore {
    entries: Vec<([u8; 32], Operator)>,
}

fn digest(token: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(ring::digest::digest(&ring::digest::SHA256, token.as_bytes()).as_ref());
    out
}

impl TokenStore {
    /// Builds the store from `warehouse.tokens` and the legacy `warehouse.api_tokens` (admin
    /// on every store, named `token-1`, `token-2`...). Settings were validated already, so a
    /// `token_file` has been read into `token_sha256`.
    pub fn from_settings(settings: &WarehouseSettings) -> Result<Self, SettingsError> {
        let mut entries = Vec::new();
        for (index, token) in settings.api_tokens.iter().enumerate() {
            let digest = digest(token.expose_secret());
            entries.push((
                digest,
                Operator {
                    name: format!("token-{}", index + 1),
                    role: Role::Admin,
                    scope: Scope::All,
                    merchants: MerchantScope::All,
                    token_sha256: TokenDigest(digest),
                },
            ));
        }
        for (index, token) in settings.tokens.iter().enumerate() {
            let digest = parse_digest(index, token)?;
            entries.push((
                digest,
                Operator {
                    name: token.name.clone(),
                    role: token.role,
                    scope: Scope::from_sites(&token.sites),
                    merchants: MerchantScope::from_names(&token.merchants),
                    token_sha256: TokenDigest(digest),
                },
            ));
        }
        Ok(Self { entries })
    }

    /// The operator whose token this is. Every configured digest is compared, in constant time.
    pub fn authenticate(&self, presented: &str) -> Option<Operator> {
        let presented = digest(presented);
        let mut found = None;
        for (digest, operator) in &self.entries {
            if bool::from(digest.ct_eq(&presented)) && found.is_none() {
                found = Some(operator);
            }
        }
        found.cloned()
    }

    /// The operator named `name` whose token has this digest, if it is still configured
    /// (console sessions). Every digest is compared, in constant time.
    pub fn by_digest(&self, name: &str, token_sha256: &TokenDigest) -> Option<Operator> {
        let mut found = None;
        for (digest, operator) in &self.entries {
            if bool::from(digest.ct_eq(&token_sha256.0)) && found.is_none() {
                found = Some(operator);
            }
        }
        found.filter(|o| o.name == name).cloned()
    }

    /// Whether a config-file token is named `name` (database tokens may not take it).
    pub fn has_name(&self, name: &str) -> bool {
        self.entries.iter().any(|(_, operator)| operator.name == name)
    }

    /// The config-file tokens (name, role, scope), in file order; never their digests.
    pub fn operators(&self) -> impl Iterator<Item = &Operator> {
        self.entries.iter().map(|(_, operator)| operator)
    }

    /// Authenticates `Authorization: Bearer <token>`: the config-file tokens first, then the
    /// database's (see [`authenticate`]).
    pub async fn check(&self, pool: &warehouse_db::Pool, request: &HttpRequest) -> Result<Operator, AccessError> {
        let presented = request
            .headers()
            .get(actix_web::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or(AccessError::Unauthorized)?;
        authenticate(self, pool, presented)
            .await?
            .ok_or(AccessError::Unauthorized)
    }
}

/// The operator whose token this is: a config-file token (compared in constant time), else an
/// unrevoked database token (looked up by its SHA-256 in PostgreSQL, on every request, so a
/// revocation holds at once on every replica).
pub async fn authenticate(
    tokens: &TokenStore,
    pool: &warehouse_db::Pool,
    presented: &str,
) -> Result<Option<Operator>, AccessError> {
    if let Some(operator) = tokens.authenticate(presented) {
        return Ok(Some(operator));
    }
    let client = pool.get().await.map_err(warehouse_db::DbError::from)?;
    Ok(database_operator(&*client, &TokenDigest::of(presented)).await?)
}

/// The unrevoked database token with this digest, as an operator.
pub async fn database_operator<C: warehouse_db::Db>(
    client: &C,
    digest: &TokenDigest,
) -> Result<Option<Operator>, warehouse_db::DbError> {
    let Some(stored) = warehouse_db::operator_tokens::find_active(client, &digest.0).await? else {
        return Ok(None);
    };
    Ok(Some(stored_operator(&stored)?))
}

/// A stored token as an operator (its role must be one this build knows).
pub fn stored_operator(stored: &warehouse_db::operator_tokens::StoredToken) -> Result<Operator, warehouse_db::DbError> {
    let role = Role::parse(&stored.role).ok_or_else(|| warehouse_db::error::UnknownValue::new("role", &stored.role))?;
    Ok(Operator {
        name: stored.name.clone(),
        role,
        scope: Scope::from_sites(&stored.sites),
        merchants: MerchantScope::from_names(&stored.merchants),
        token_sha256: TokenDigest(stored.token_sha256),
    })
}

fn parse_digest(index: usize, token: &TokenSettings) -> Result<[u8; 32], SettingsError> {
    let key = format!("warehouse.tokens[{index}].token_sha256");
    let hex_digest = token
        .token_sha256
        .as_deref()
        .ok_or_else(|| SettingsError::invalid(&key, "set token_sha256 or token_file"))?;
    let bytes =
        hex::decode(hex_digest).map_err(|_| SettingsError::invalid(&key, "64 lowercase hex characters (SHA-256)"))?;
    bytes
        .try_into()
        .map_err(|_| SettingsError::invalid(&key, "64 lowercase hex characters (SHA-256)"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::SecretString;

    fn settings() -> WarehouseSettings {
        WarehouseSettings {
            api_tokens: vec![SecretString::from("legacy")],
            tokens: vec![TokenSettings {
                name: "ana".into(),
                token_sha256: Some(sha256_hex("ana-secret")),
                token_file: None,
                sites: vec!["site-a".into()],
                merchants: vec!["*".into()],
                role: Role::Floor,
            }],
            ..WarehouseSettings::default()
        }
    }

    #[test]
    fn legacy_tokens_are_admins_on_every_store() {
        let store = TokenStore::from_settings(&settings()).unwrap();
        let operator = store.authenticate("legacy").unwrap();
        assert_eq!(operator.name, "token-1");
        assert_eq!(operator.role, Role::Admin);
        assert_eq!(operator.scope, Scope::All);
    }

    #[test]
    fn named_tokens_carry_their_role_and_stores() {
        let store = TokenStore::from_settings(&settings()).unwrap();
        let operator = store.authenticate("ana-secret").unwrap();
        assert_eq!(operator.name, "ana");
        assert!(operator.require(Role::Floor).is_ok());
        assert!(matches!(operator.require(Role::Admin), Err(AccessError::Forbidden(_))));
        assert!(operator.sees_site("site-a"));
        assert!(!operator.sees_site("site-b"));
        assert!(store.authenticate("ana-secret ").is_none());
        assert!(store.authenticate("").is_none());
    }

    #[test]
    fn a_known_vector_hashes_to_lowercase_hex() {
        assert_eq!(
            sha256_hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
