//! The stores every service serves (V16), read side: the live stores with their sealed
//! secrets, a cheap fingerprint to tell whether anything changed, and the import of the config
//! file's stores (`source = 'config'`). Creating, changing and removing API and OAuth stores
//! is `store_admin`'s.
//!
//! Sealed values are returned as stored: opening them (`secrets-at-rest`) is the caller's, so
//! this crate never holds a secret in the clear.

use crate::db::Db;
use crate::error::{DbError, Result, UnknownValue};
use deadpool_postgres::Transaction;

/// Where a store came from (`stores.source`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum StoreSource {
    /// The config file (`webflow.sites.<name>`): its secrets stay in the config.
    Config,
    /// Created through the API, the console or wmsctl with a site token.
    Api,
    /// Created by "Connect with Webflow" (an OAuth access token): webhooks are signed with the
    /// app's client secret.
    Oauth,
}

impl StoreSource {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Config => "config",
            Self::Api => "api",
            Self::Oauth => "oauth",
        }
    }

    pub fn parse(value: &str) -> std::result::Result<Self, UnknownValue> {
        match value {
            "config" => Ok(Self::Config),
            "api" => Ok(Self::Api),
            "oauth" => Ok(Self::Oauth),
            other => Err(UnknownValue::new("store source", other)),
        }
    }
}

/// One sealed webhook secret of a store (`store_webhooks`).
#[derive(Clone, PartialEq, Eq)]
pub struct SealedWebhookSecret {
    /// `store_webhooks.id`: part of the seal's context.
    pub id: i64,
    pub secret_sealed: String,
}

impl std::fmt::Debug for SealedWebhookSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Sealed, but nothing of a secret belongs in a log.
        f.debug_struct("SealedWebhookSecret")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// A live store as the database holds it (secrets still sealed).
#[derive(Clone, PartialEq, Eq)]
pub struct StoreRow {
    pub id: i64,
    pub name: String,
    pub merchant_id: i64,
    /// `merchants.name`.
    pub merchant: String,
    pub site_id: String,
    pub source: StoreSource,
    /// Sealed with the context `stores.api_token:<id>`; `None` for config stores.
    pub api_token_sealed: Option<String>,
    pub rate_limit_per_minute: u32,
    pub send_fulfillment_email: bool,
    pub inventory_sync: bool,
    pub sku_collection_id: Option<String>,
    pub inventory_safety_buffer: i64,
    pub updated_at: chrono::DateTime<chrono::Utc>,
    /// The live webhooks' sealed secrets (webhooks signed with the OAuth app's secret have none).
    pub webhook_secrets_sealed: Vec<SealedWebhookSecret>,
}

impl std::fmt::Debug for StoreRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreRow")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("merchant", &self.merchant)
            .field("site_id", &self.site_id)
            .field("source", &self.source)
            .field("rate_limit_per_minute", &self.rate_limit_per_minute)
            .finish_non_exhaustive()
    }
}

/// The seal context of a store's API token.
pub fn api_token_context(store_id: i64) -> String {
    format!("stores.api_token:{store_id}")
}

/// The seal context of a webhook's secret.
pub fn webhook_secret_context(webhook_id: i64) -> String {
    format!("store_webhooks.secret:{webhook_id}")
}

/// Which columns [`load_live`] reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Columns {
    /// Everything, sealed API tokens included (the services that call Webflow).
    WithApiTokens,
    /// Without the sealed API tokens: the ingress's role may not read them (a column grant in
    /// deploy/k8s/base/sql/grants.sql), and it only verifies webhooks.
    WithoutApiTokens,
}

/// Every live store (not removed), by name, with its live webhooks' sealed secrets.
pub async fn load_live<C: Db>(client: &C, columns: Columns) -> Result<Vec<StoreRow>> {
    let token = match columns {
        Columns::WithApiTokens => "s.api_token_sealed",
        Columns::WithoutApiTokens => "NULL::text",
    };
    let rows = client
        .query(
            &format!(
                "SELECT s.id, s.name, s.merchant_id, m.name, s.site_id, s.source, {token},
                    s.rate_limit_per_minute, s.send_fulfillment_email, s.inventory_sync,
                    s.sku_collection_id, s.inventory_safety_buffer, s.updated_at,
                    coalesce(array_agg(w.id ORDER BY w.id) FILTER (WHERE w.id IS NOT NULL), '{{}}'),
                    coalesce(array_agg(w.secret_sealed ORDER BY w.id) FILTER (WHERE w.id IS NOT NULL), '{{}}')
             FROM stores s
             JOIN merchants m ON m.id = s.merchant_id
             LEFT JOIN store_webhooks w
                    ON w.store_id = s.id AND w.removed_at IS NULL AND w.secret_sealed IS NOT NULL
             WHERE s.removed_at IS NULL
             GROUP BY s.id, m.name
             ORDER BY s.name"
            ),
            &[],
        )
        .await?;
    rows.iter()
        .map(|row| {
            let source: String = row.get(5);
            let limit: i32 = row.get(7);
            let hook_ids: Vec<i64> = row.get(13);
            let hook_secrets: Vec<String> = row.get(14);
            Ok(StoreRow {
                id: row.get(0),
                name: row.get(1),
                merchant_id: row.get(2),
                merchant: row.get(3),
                site_id: row.get(4),
                source: StoreSource::parse(&source)?,
                api_token_sealed: row.get(6),
                rate_limit_per_minute: u32::try_from(limit)
                    .map_err(|_| DbError::Decode(format!("stores.rate_limit_per_minute = {limit}")))?,
                send_fulfillment_email: row.get(8),
                inventory_sync: row.get(9),
                sku_collection_id: row.get(10),
                inventory_safety_buffer: row.get(11),
                updated_at: row.get(12),
                webhook_secrets_sealed: hook_ids
                    .into_iter()
                    .zip(hook_secrets)
                    .map(|(id, secret_sealed)| SealedWebhookSecret { id, secret_sealed })
                    .collect(),
            })
        })
        .collect()
}

/// A fingerprint of the live stores and their webhooks: it changes whenever a store is added,
/// changed (`updated_at`) or removed, or a webhook added or removed. One small aggregate, so
/// services can poll it every second and reload only when it moved.
pub async fn live_fingerprint<C: Db>(client: &C) -> Result<String> {
    let row = client
        .query_one(
            "SELECT coalesce(md5(string_agg(s.id || '@' || s.updated_at || '/' || coalesce(w.hooks, ''), ','
                                            ORDER BY s.id)), '')
             FROM stores s
             LEFT JOIN LATERAL (
                 SELECT string_agg(w.id::text, '+' ORDER BY w.id) AS hooks
                 FROM store_webhooks w
                 WHERE w.store_id = s.id AND w.removed_at IS NULL
             ) w ON TRUE
             WHERE s.removed_at IS NULL",
            &[],
        )
        .await?;
    Ok(row.get(0))
}

/// A store of the config file, as [`import_config`] writes it (no secrets: they stay in the
/// config).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigStore {
    pub name: String,
    pub merchant: String,
    pub site_id: String,
    pub rate_limit_per_minute: u32,
    pub send_fulfillment_email: bool,
    pub inventory_sync: bool,
    pub sku_collection_id: Option<String>,
    pub inventory_safety_buffer: i64,
}

/// Why the config's stores could not be imported.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// A config store's name or site id is a live API or OAuth store's.
    #[error(
        "config store `{config_store}` (webflow.sites.{config_store}) clashes with the {store_source} store `{store}` on its {field}: rename or remove one of them"
    )]
    Clash {
        config_store: String,
        store: String,
        store_source: &'static str,
        /// `name` or `site_id`.
        field: &'static str,
    },
    #[error(transparent)]
    Db(#[from] DbError),
}

impl From<tokio_postgres::Error> for ImportError {
    fn from(error: tokio_postgres::Error) -> Self {
        Self::Db(error.into())
    }
}

/// Upserts the config file's stores (`source = 'config'`) by live name, creating each one's
/// merchant if missing. Idempotent: an unchanged store is not written (its `updated_at` stays,
/// so no service reloads). A config store that takes the site id of another config store no
/// longer named so (a rename in the config) retires that row. Every service imports at start,
/// so imports are serialised by an advisory lock held for `tx`.
pub async fn import_config(tx: &Transaction<'_>, stores: &[ConfigStore]) -> std::result::Result<(), ImportError> {
    tx.execute("SELECT pg_advisory_xact_lock(hashtext('stores.import_config'))", &[])
        .await?;
    for store in stores {
        if let Some(row) = tx
            .query_opt(
                "SELECT name, site_id, source FROM stores
                 WHERE removed_at IS NULL AND source <> 'config' AND (name = $1 OR site_id = $2)
                 ORDER BY id LIMIT 1",
                &[&store.name, &store.site_id],
            )
            .await?
        {
            let (name, source): (String, String) = (row.get(0), row.get(2));
            let source = StoreSource::parse(&source).map_err(DbError::from)?;
            return Err(ImportError::Clash {
                config_store: store.name.clone(),
                field: if name == store.name { "name" } else { "site_id" },
                store: name,
                store_source: source.as_str(),
            });
        }
        tx.execute(
            "INSERT INTO merchants (name) VALUES ($1) ON CONFLICT (name) DO NOTHING",
            &[&store.merchant],
        )
        .await?;
        // A rename in the config: the old name's row holds the site id.
        tx.execute(
            "UPDATE stores SET removed_at = now(), updated_at = now()
             WHERE removed_at IS NULL AND source = 'config' AND site_id = $1 AND name <> $2",
            &[&store.site_id, &store.name],
        )
        .await?;
        let limit = i32::try_from(store.rate_limit_per_minute).unwrap_or(i32::MAX);
        tx.execute(
            "INSERT INTO stores (name, merchant_id, site_id, source, rate_limit_per_minute,
                                 send_fulfillment_email, inventory_sync, sku_collection_id,
                                 inventory_safety_buffer)
             SELECT $1, m.id, $2, 'config', $3, $4, $5, $6, $7 FROM merchants m WHERE m.name = $8
             ON CONFLICT (name) WHERE removed_at IS NULL DO UPDATE SET
                 merchant_id = EXCLUDED.merchant_id,
                 site_id = EXCLUDED.site_id,
                 rate_limit_per_minute = EXCLUDED.rate_limit_per_minute,
                 send_fulfillment_email = EXCLUDED.send_fulfillment_email,
                 inventory_sync = EXCLUDED.inventory_sync,
                 sku_collection_id = EXCLUDED.sku_collection_id,
                 inventory_safety_buffer = EXCLUDED.inventory_safety_buffer,
                 updated_at = now()
             WHERE stores.source = 'config'
               AND (stores.merchant_id, stores.site_id, stores.rate_limit_per_minute,
                    stores.send_fulfillment_email, stores.inventory_sync, stores.sku_collection_id,
                    stores.inventory_safety_buffer)
                   IS DISTINCT FROM
                   (EXCLUDED.merchant_id, EXCLUDED.site_id, EXCLUDED.rate_limit_per_minute,
                    EXCLUDED.send_fulfillment_email, EXCLUDED.inventory_sync, EXCLUDED.sku_collection_id,
                    EXCLUDED.inventory_safety_buffer)",
            &[
                &store.name,
                &store.site_id,
                &limit,
                &store.send_fulfillment_email,
                &store.inventory_sync,
                &store.sku_collection_id,
                &store.inventory_safety_buffer,
                &store.merchant,
            ],
        )
        .await?;
    }
    Ok(())
}
