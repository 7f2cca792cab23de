//! The write side of stores as data (issue 24): creating, changing and removing the stores
//! onboarded through the API, the console, `wmsctl` or "Connect with Webflow", with the
//! webhooks the bridge registered for them. Every service reads the `stores` table (the
//! `stores` crate's registry) and picks a change up within seconds: every change here bumps
//! `updated_at`.
//!
//! Secrets are sealed before they reach a row ([`secrets_at_rest::Keyring`]): a store's token
//! with the context `stores.api_token:<stores.id>`, a webhook's secret with
//! `store_webhooks.secret:<store_webhooks.id>`. The ids are drawn from their sequences first,
//! so each row is inserted sealed, inside the caller's transaction: nothing is ever visible
//! unsealed or half-created. No function here returns or logs a secret.
//!
//! Config-file stores (`source = 'config'`) are imported by every service at start; they are
//! read-only here ([`StoreAdminError::ConfigStore`]).

use crate::db::Db;
use crate::error::DbError;
use crate::merchants::{self, MerchantError};
use secrecy::SecretString;
use secrets_at_rest::{Keyring, OpenError, ResealError, SealError};
use tokio_postgres::error::SqlState;

pub use crate::stores::{StoreSource, api_token_context, webhook_secret_context};

/// Why a store change did nothing.
#[derive(Debug, thiserror::Error)]
pub enum StoreAdminError {
    #[error("no merchant named `{0}`")]
    UnknownMerchant(String),
    #[error("no store named `{0}`")]
    NotFound(String),
    #[error("a store named `{0}` exists")]
    DuplicateName(String),
    #[error("a store serves the Webflow site `{0}` already")]
    DuplicateSite(String),
    #[error("the store `{0}` is in the config file (webflow.sites); change or remove it there")]
    ConfigStore(String),
    /// A value the table's rules refuse; `field` names it.
    #[error("{message}")]
    Invalid { field: &'static str, message: String },
    #[error("cannot seal the store's secrets: {0}")]
    Seal(#[from] SealError),
    #[error("the store's sealed token does not open: {0}")]
    Open(#[from] OpenError),
    #[error(transparent)]
    Database(#[from] DbError),
}

impl From<tokio_postgres::Error> for StoreAdminError {
    fn from(error: tokio_postgres::Error) -> Self {
        Self::Database(error.into())
    }
}

pub type Result<T, E = StoreAdminError> = std::result::Result<T, E>;

/// A store as shown: never its token nor its webhooks' secrets.
#[derive(Clone, Debug, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct StoreInfo {
    pub name: String,
    pub merchant: String,
    pub site_id: String,
    pub source: StoreSource,
    pub rate_limit_per_minute: i32,
    pub send_fulfillment_email: bool,
    pub inventory_sync: bool,
    pub sku_collection_id: Option<String>,
    pub inventory_safety_buffer: i64,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub updated_at: chrono::DateTime<chrono::Utc>,
    /// Set once removed (a removed store keeps its row and history).
    pub removed_at: Option<chrono::DateTime<chrono::Utc>>,
    /// The webhooks the bridge registered at Webflow for it (live ones).
    pub webhooks: Vec<WebhookInfo>,
    #[serde(skip)]
    pub id: i64,
}

/// A registered webhook as shown (never its secret).
#[derive(Clone, Debug, PartialEq, serde::Serialize, utoipa::ToSchema)]
pub struct WebhookInfo {
    /// Webflow's webhook id.
    pub webflow_webhook_id: Option<String>,
    pub trigger_type: String,
    pub url: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

/// A store to create.
pub struct NewStore<'a> {
    pub name: &'a str,
    pub merchant: &'a str,
    pub site_id: &'a str,
    pub source: StoreSource,
    pub api_token: &'a SecretString,
    pub rate_limit_per_minute: i32,
    pub send_fulfillment_email: bool,
    pub inventory_sync: bool,
    pub sku_collection_id: Option<&'a str>,
    pub inventory_safety_buffer: i64,
}

/// A webhook registered at Webflow for a store being created.
pub struct NewWebhook {
    pub webflow_webhook_id: String,
    pub trigger_type: String,
    pub url: String,
    /// Webflow's `secretKey`; `None` when signed with the OAuth app's client secret.
    pub secret: Option<SecretString>,
}

/// A change to a store; `None` leaves a field as it is.
#[derive(Default)]
pub struct StorePatch {
    pub merchant: Option<String>,
    pub api_token: Option<SecretString>,
    pub rate_limit_per_minute: Option<i32>,
    pub send_fulfillment_email: Option<bool>,
    pub inventory_sync: Option<bool>,
    /// `Some(None)` clears it.
    pub sku_collection_id: Option<Option<String>>,
    pub inventory_safety_buffer: Option<i64>,
}

impl StorePatch {
    pub fn is_empty(&self) -> bool {
        self.merchant.is_none()
            && self.api_token.is_none()
            && self.rate_limit_per_minute.is_none()
            && self.send_fulfillment_email.is_none()
            && self.inventory_sync.is_none()
            && self.sku_collection_id.is_none()
            && self.inventory_safety_buffer.is_none()
    }
}

const COLUMNS: &str = "s.id, s.name, m.name, s.site_id, s.source, s.rate_limit_per_minute, \
     s.send_fulfillment_email, s.inventory_sync, s.sku_collection_id, s.inventory_safety_buffer, \
     s.created_at, s.updated_at, s.removed_at";

fn read(row: &tokio_postgres::Row) -> Result<StoreInfo> {
    Ok(StoreInfo {
        id: row.get(0),
        name: row.get(1),
        merchant: row.get(2),
        site_id: row.get(3),
        source: StoreSource::parse(row.get(4)).map_err(DbError::from)?,
        rate_limit_per_minute: row.get(5),
        send_fulfillment_email: row.get(6),
        inventory_sync: row.get(7),
        sku_collection_id: row.get(8),
        inventory_safety_buffer: row.get(9),
        created_at: row.get(10),
        updated_at: row.get(11),
        removed_at: row.get(12),
        webhooks: Vec::new(),
    })
}

/// The id of the merchant named `name` ([`merchants::get_by_name`]).
pub async fn merchant_id<C: Db>(client: &C, name: &str) -> Result<i64> {
    match merchants::get_by_name(client, name).await {
        Ok(merchant) => Ok(merchant.id),
        Err(MerchantError::Database(error)) => Err(error.into()),
        Err(_) => Err(StoreAdminError::UnknownMerchant(name.to_owned())),
    }
}

/// Refuses a name or site id a live store has (before anything is asked of Webflow; the
/// unique indexes are the final word at insert).
pub async fn check_free<C: Db>(client: &C, name: &str, site_id: &str) -> Result<()> {
    let rows = client
        .query(
            "SELECT name = $1, site_id = $2 FROM stores WHERE removed_at IS NULL AND (name = $1 OR site_id = $2)",
            &[&name, &site_id],
        )
        .await?;
    if rows.iter().any(|r| r.get::<_, bool>(0)) {
        return Err(StoreAdminError::DuplicateName(name.to_owned()));
    }
    if !rows.is_empty() {
        return Err(StoreAdminError::DuplicateSite(site_id.to_owned()));
    }
    Ok(())
}

/// A unique violation of a live name or site as its error; anything else as a database error.
fn unique(error: tokio_postgres::Error, name: &str, site_id: &str) -> StoreAdminError {
    if error.code() == Some(&SqlState::UNIQUE_VIOLATION) {
        match error.as_db_error().and_then(|e| e.constraint()) {
            Some("stores_live_name") => return StoreAdminError::DuplicateName(name.to_owned()),
            Some("stores_live_site") => return StoreAdminError::DuplicateSite(site_id.to_owned()),
            _ => {}
        }
    }
    error.into()
}

/// Creates a store and its webhooks' rows, sealed, in the caller's transaction.
pub async fn create<C: Db>(
    tx: &C,
    keyring: &Keyring,
    store: &NewStore<'_>,
    webhooks: &[NewWebhook],
) -> Result<StoreInfo> {
    if store.source == StoreSource::Config {
        return Err(StoreAdminError::ConfigStore(store.name.to_owned()));
    }
    let merchant = merchant_id(tx, store.merchant).await?;
    let id: i64 = tx.query_one("SELECT nextval('stores_id_seq')", &[]).await?.get(0);
    let token = keyring.seal(store.api_token, &api_token_context(id))?;
    tx.execute(
        "INSERT INTO stores (id, name, merchant_id, site_id, source, api_token_sealed, rate_limit_per_minute,
                             send_fulfillment_email, inventory_sync, sku_collection_id, inventory_safety_buffer)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        &[
            &id,
            &store.name,
            &merchant,
            &store.site_id,
            &store.source.as_str(),
            &token,
            &store.rate_limit_per_minute,
            &store.send_fulfillment_email,
            &store.inventory_sync,
            &store.sku_collection_id,
            &store.inventory_safety_buffer,
        ],
    )
    .await
    .map_err(|e| check(unique(e, store.name, store.site_id)))?;
    for webhook in webhooks {
        let webhook_id: i64 = tx
            .query_one("SELECT nextval('store_webhooks_id_seq')", &[])
            .await?
            .get(0);
        let secret = match &webhook.secret {
            Some(secret) => Some(keyring.seal(secret, &webhook_secret_context(webhook_id))?),
            None => None,
        };
        tx.execute(
            "INSERT INTO store_webhooks (id, store_id, webflow_webhook_id, trigger_type, url, secret_sealed)
             VALUES ($1, $2, $3, $4, $5, $6)",
            &[
                &webhook_id,
                &id,
                &webhook.webflow_webhook_id,
                &webhook.trigger_type,
                &webhook.url,
                &secret,
            ],
        )
        .await?;
    }
    get_by_id(tx, id).await
}

/// A column CHECK the table enforces (V16's `stores_<column>_check`), as an input error naming
/// the field; anything else stays a database error.
fn check(error: StoreAdminError) -> StoreAdminError {
    if let StoreAdminError::Database(DbError::Postgres(e)) = &error
        && e.code() == Some(&SqlState::CHECK_VIOLATION)
    {
        let (field, message) = match e.as_db_error().and_then(|d| d.constraint()) {
            Some("stores_name_check") => (
                "name",
                "a store name is 1-63 letters, digits, `.`, `_` or `-`, starting with a letter or digit",
            ),
            Some("stores_rate_limit_per_minute_check") => {
                ("rate_limit_per_minute", "rate_limit_per_minute must be at least 1")
            }
            Some("stores_inventory_safety_buffer_check") => {
                ("inventory_safety_buffer", "inventory_safety_buffer must be 0 or more")
            }
            Some("stores_site_id_check") => ("site_id", "site_id cannot be empty"),
            _ => return error,
        };
        return StoreAdminError::Invalid {
            field,
            message: message.to_owned(),
        };
    }
    error
}

async fn with_webhooks<C: Db>(client: &C, store: StoreInfo) -> Result<StoreInfo> {
    let mut stores = [store];
    attach_webhooks(client, &mut stores).await?;
    let [store] = stores;
    Ok(store)
}

/// Fills each store's live webhooks, in one query for all of them.
async fn attach_webhooks<C: Db>(client: &C, stores: &mut [StoreInfo]) -> Result<()> {
    let ids: Vec<i64> = stores.iter().map(|s| s.id).collect();
    let rows = client
        .query(
            "SELECT store_id, webflow_webhook_id, trigger_type, url, created_at FROM store_webhooks
             WHERE store_id = ANY($1) AND removed_at IS NULL ORDER BY id",
            &[&ids],
        )
        .await?;
    for row in &rows {
        let store_id: i64 = row.get(0);
        if let Some(store) = stores.iter_mut().find(|s| s.id == store_id) {
            store.webhooks.push(WebhookInfo {
                webflow_webhook_id: row.get(1),
                trigger_type: row.get(2),
                url: row.get(3),
                created_at: row.get(4),
            });
        }
    }
    Ok(())
}

async fn get_by_id<C: Db>(client: &C, id: i64) -> Result<StoreInfo> {
    let row = client
        .query_one(
            &format!("SELECT {COLUMNS} FROM stores s JOIN merchants m ON m.id = s.merchant_id WHERE s.id = $1"),
            &[&id],
        )
        .await?;
    with_webhooks(client, read(&row)?).await
}

/// Every live store (with `removed`, removed ones too), by name.
pub async fn list<C: Db>(client: &C, removed: bool) -> Result<Vec<StoreInfo>> {
    let rows = client
        .query(
            &format!(
                "SELECT {COLUMNS} FROM stores s JOIN merchants m ON m.id = s.merchant_id
                 WHERE $1 OR s.removed_at IS NULL ORDER BY s.name, s.id"
            ),
            &[&removed],
        )
        .await?;
    let mut stores = rows.iter().map(read).collect::<Result<Vec<_>>>()?;
    attach_webhooks(client, &mut stores).await?;
    Ok(stores)
}

/// The live store named `name`.
pub async fn get<C: Db>(client: &C, name: &str) -> Result<StoreInfo> {
    let row = client
        .query_opt(
            &format!(
                "SELECT {COLUMNS} FROM stores s JOIN merchants m ON m.id = s.merchant_id
                 WHERE s.name = $1 AND s.removed_at IS NULL"
            ),
            &[&name],
        )
        .await?
        .ok_or_else(|| StoreAdminError::NotFound(name.to_owned()))?;
    with_webhooks(client, read(&row)?).await
}

/// The live store `name`, locked for a change, unless it is a config store.
/// A store row locked for a change, with what the change checks.
struct Locked {
    id: i64,
    inventory_sync: bool,
    sku_collection_id: Option<String>,
    api_token_sealed: Option<String>,
}

async fn lock_changeable<C: Db>(tx: &C, name: &str) -> Result<Locked> {
    let row = tx
        .query_opt(
            "SELECT id, source, inventory_sync, sku_collection_id, api_token_sealed
             FROM stores WHERE name = $1 AND removed_at IS NULL FOR UPDATE",
            &[&name],
        )
        .await?
        .ok_or_else(|| StoreAdminError::NotFound(name.to_owned()))?;
    let source = StoreSource::parse(row.get(1)).map_err(DbError::from)?;
    if source == StoreSource::Config {
        return Err(StoreAdminError::ConfigStore(name.to_owned()));
    }
    Ok(Locked {
        id: row.get(0),
        inventory_sync: row.get(2),
        sku_collection_id: row.get(3),
        api_token_sealed: row.get(4),
    })
}

/// Changes a store (a new token is sealed afresh) and bumps `updated_at`.
pub async fn patch<C: Db>(tx: &C, keyring: &Keyring, name: &str, patch: &StorePatch) -> Result<StoreInfo> {
    let current = lock_changeable(tx, name).await?;
    let id = current.id;
    // Inventory sync needs the SKU collection: checked on the values the change leaves.
    let sync = patch.inventory_sync.unwrap_or(current.inventory_sync);
    let collection_after: Option<String> = match &patch.sku_collection_id {
        Some(value) => value.clone(),
        None => current.sku_collection_id,
    };
    if sync && collection_after.as_deref().is_none_or(|c| c.trim().is_empty()) {
        return Err(StoreAdminError::Invalid {
            field: "sku_collection_id",
            message: "sku_collection_id is required when inventory_sync is on".into(),
        });
    }
    let merchant = match &patch.merchant {
        Some(merchant) => Some(merchant_id(tx, merchant).await?),
        None => None,
    };
    let token = match &patch.api_token {
        Some(token) => Some(keyring.seal(token, &api_token_context(id))?),
        None => None,
    };
    let (set_collection, collection) = match &patch.sku_collection_id {
        Some(value) => (true, value.clone()),
        None => (false, None),
    };
    tx.execute(
        "UPDATE stores SET
             merchant_id = COALESCE($2, merchant_id),
             api_token_sealed = COALESCE($3, api_token_sealed),
             rate_limit_per_minute = COALESCE($4, rate_limit_per_minute),
             send_fulfillment_email = COALESCE($5, send_fulfillment_email),
             inventory_sync = COALESCE($6, inventory_sync),
             sku_collection_id = CASE WHEN $7 THEN $8 ELSE sku_collection_id END,
             inventory_safety_buffer = COALESCE($9, inventory_safety_buffer),
             updated_at = now()
         WHERE id = $1",
        &[
            &id,
            &merchant,
            &token,
            &patch.rate_limit_per_minute,
            &patch.send_fulfillment_email,
            &patch.inventory_sync,
            &set_collection,
            &collection,
            &patch.inventory_safety_buffer,
        ],
    )
    .await
    .map_err(|e| check(e.into()))?;
    if let Some(merchant) = merchant {
        // The storefront now shows the new merchant's stock: the site's sync rows follow it
        // and are pushed again. Orders already placed keep the merchant whose stock they hold.
        tx.execute(
            "UPDATE inventory_sync
                SET merchant_id = $2, dirty_since = COALESCE(dirty_since, clock_timestamp()),
                    change_seq = change_seq + 1
              WHERE site_id = (SELECT site_id FROM stores WHERE id = $1) AND merchant_id <> $2",
            &[&id, &merchant],
        )
        .await?;
    }
    get_by_id(tx, id).await
}

/// The live store `name` (not a config store) with its token opened and its live webhooks'
/// Webflow ids: what removing it at Webflow needs. Locks the store's row.
pub async fn for_removal<C: Db>(tx: &C, keyring: &Keyring, name: &str) -> Result<(StoreInfo, SecretString)> {
    let store = lock_changeable(tx, name).await?;
    // Not a config store, so it holds a token (the table's CHECK).
    let sealed = store.api_token_sealed.unwrap_or_default();
    let token = keyring.open(&sealed, &api_token_context(store.id))?;
    Ok((get_by_id(tx, store.id).await?, token))
}

/// Marks a store and its webhooks removed (its row and history stay) and bumps `updated_at`.
pub async fn mark_removed<C: Db>(tx: &C, id: i64) -> Result<()> {
    tx.execute(
        "UPDATE store_webhooks SET removed_at = now() WHERE store_id = $1 AND removed_at IS NULL",
        &[&id],
    )
    .await?;
    tx.execute(
        "UPDATE stores SET removed_at = now(), updated_at = now() WHERE id = $1 AND removed_at IS NULL",
        &[&id],
    )
    .await?;
    Ok(())
}

/// A name derived from `wanted` that no live store has: `wanted`, else `wanted-2`, `-3`...
pub async fn unique_name<C: Db>(client: &C, wanted: &str) -> Result<String> {
    let taken: Vec<String> = client
        .query(
            "SELECT name FROM stores WHERE removed_at IS NULL AND (name = $1 OR name LIKE $1 || '-%')",
            &[&wanted],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    if !taken.iter().any(|n| n == wanted) {
        return Ok(wanted.to_owned());
    }
    Ok((2..)
        .map(|n| format!("{wanted}-{n}"))
        .find(|candidate| !taken.contains(candidate))
        .unwrap_or_else(|| wanted.to_owned()))
}

/// What [`reseal_all`] did after a key rotation.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Resealed {
    /// The key every value is sealed with now.
    pub key_id: String,
    /// Store API tokens sealed again with it.
    pub api_tokens: u64,
    /// Webhook secrets sealed again with it.
    pub webhook_secrets: u64,
    /// Values of live stores no key of the ring opens (`stores.api_token:<id>`,
    /// `store_webhooks.secret:<id>`): left as they are; such a store is not served until its
    /// token or webhooks are set again.
    pub unopenable: Vec<String>,
    /// The same for removed stores and webhooks (history: nothing opens them again).
    pub unopenable_removed: Vec<String>,
}

/// One sealed column: its rows (id, value, removed) and the compare-and-swap that replaces a
/// value only if it is unchanged since it was read.
struct SealedColumn {
    select: &'static str,
    swap: &'static str,
    context_of: fn(i64) -> String,
}

const API_TOKENS: SealedColumn = SealedColumn {
    select: "SELECT id, api_token_sealed, removed_at IS NOT NULL FROM stores
             WHERE api_token_sealed IS NOT NULL ORDER BY id",
    swap: "UPDATE stores SET api_token_sealed = $1 WHERE id = $2 AND api_token_sealed = $3",
    context_of: api_token_context,
};

const WEBHOOK_SECRETS: SealedColumn = SealedColumn {
    select: "SELECT w.id, w.secret_sealed, w.removed_at IS NOT NULL OR s.removed_at IS NOT NULL
             FROM store_webhooks w JOIN stores s ON s.id = w.store_id
             WHERE w.secret_sealed IS NOT NULL ORDER BY w.id",
    swap: "UPDATE store_webhooks SET secret_sealed = $1 WHERE id = $2 AND secret_sealed = $3",
    context_of: webhook_secret_context,
};

/// Seals again with the keyring's current key every store token and webhook secret sealed
/// with an older one (a key rotation; removed stores' too, so the old key can go). Each value
/// is swapped only if it is unchanged since it was read, so a concurrent change wins; no
/// `updated_at` moves (the opened values are the same: no service reloads). Idempotent.
pub async fn reseal_all<C: Db>(client: &C, keyring: &Keyring) -> Result<Resealed> {
    let mut report = Resealed {
        key_id: keyring.current_key_id().to_owned(),
        ..Resealed::default()
    };
    report.api_tokens = reseal_column(client, keyring, &API_TOKENS, &mut report).await?;
    report.webhook_secrets = reseal_column(client, keyring, &WEBHOOK_SECRETS, &mut report).await?;
    Ok(report)
}

/// Reseals one column; how many values were swapped. Unopenable ones go into `report`.
async fn reseal_column<C: Db>(
    client: &C,
    keyring: &Keyring,
    column: &SealedColumn,
    report: &mut Resealed,
) -> Result<u64> {
    let rows = client.query(column.select, &[]).await?;
    let mut swapped = 0;
    for row in rows {
        let (id, sealed, removed): (i64, String, bool) = (row.get(0), row.get(1), row.get(2));
        if !keyring.needs_resealing(&sealed) {
            continue;
        }
        let context = (column.context_of)(id);
        let resealed = match keyring.reseal(&sealed, &context) {
            Ok(resealed) => resealed,
            Err(ResealError::Open(_)) if removed => {
                report.unopenable_removed.push(context);
                continue;
            }
            Err(ResealError::Open(_)) => {
                report.unopenable.push(context);
                continue;
            }
            Err(ResealError::Seal(error)) => return Err(error.into()),
        };
        swapped += client.execute(column.swap, &[&resealed, &id, &sealed]).await?;
    }
    Ok(swapped)
}
