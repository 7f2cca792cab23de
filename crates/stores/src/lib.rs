//! The stores every service serves, read from PostgreSQL at runtime (issue 24).
//!
//! A [`StoreRegistry`] holds the live stores in memory (lookups by site id or name are a map
//! lookup, never a query) and re-reads the `stores` table every `webflow.store_refresh_ms`:
//! a store created, changed or removed through the API is served, changed or refused by every
//! process within that period, without a restart. Each poll is one small aggregate
//! ([`warehouse_db::stores::live_fingerprint`]); the stores are reloaded only when it moved.
//!
//! The config file's stores (`webflow.sites.<name>`) are imported at start (`source =
//! 'config'`); their secrets never go to the database, they are merged in from the config by
//! name. API and OAuth stores' token and webhook secrets are stored sealed and opened here
//! with the keyring (`secrets-at-rest`); a value that does not open (a key dropped from the key
//! file, a tampered row) is logged by store name and that store is left out, so one bad row
//! never stops a service.
//!
//! This crate knows the database and the settings; it knows nothing of HTTP or AMQP.

use secrecy::{ExposeSecret, SecretString};
use secrets_at_rest::{Keyring, KeyringError, SecretsSettings};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use warehouse_db::stores::{self as store_rows, ConfigStore, ImportError, StoreRow};
use webflow::{SiteSettings, WebflowSettings};

pub use warehouse_db::stores::StoreSource;

/// One live store, with its secrets opened.
#[derive(Clone, Debug)]
pub struct Store {
    /// `stores.id`; 0 for a config store that a read-only process
    /// ([`StoreRegistry::start_read_only`]) finds in its config but not yet in the database.
    pub id: i64,
    pub name: String,
    /// `merchants.id` (0 together with `id`, see there).
    pub merchant_id: i64,
    /// `merchants.name`.
    pub merchant: String,
    pub site_id: domain::SiteId,
    pub source: StoreSource,
    /// Opened from the database, or the config's token.
    pub api_token: Option<SecretString>,
    /// Every secret a webhook for this store may be signed with: the config's, the opened
    /// `store_webhooks` secrets and, for OAuth stores, the app's client secret.
    pub webhook_secrets: Vec<SecretString>,
    pub rate_limit_per_minute: u32,
    pub send_fulfillment_email: bool,
    pub inventory_sync: bool,
    pub sku_collection_id: Option<String>,
    pub inventory_safety_buffer: i64,
}

impl Store {
    /// A config store as its settings describe it alone (ids unknown: 0), for a read-only
    /// process whose database does not hold it yet.
    pub fn from_config(name: &str, site: &SiteSettings) -> Self {
        Self {
            id: 0,
            name: name.to_owned(),
            merchant_id: 0,
            merchant: site.merchant.clone(),
            site_id: domain::SiteId::new(site.site_id.clone()),
            source: StoreSource::Config,
            api_token: site.api_token.clone(),
            webhook_secrets: site.webhook_secrets.clone(),
            rate_limit_per_minute: site.rate_limit_per_minute,
            send_fulfillment_email: site.send_fulfillment_email,
            inventory_sync: site.inventory_sync,
            sku_collection_id: site.sku_collection_id.clone(),
            inventory_safety_buffer: site.inventory_safety_buffer,
        }
    }

    /// Whether the store has an API token to call Webflow with.
    pub fn has_api_token(&self) -> bool {
        self.api_token
            .as_ref()
            .is_some_and(|token| !token.expose_secret().trim().is_empty())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error(transparent)]
    Import(#[from] ImportError),
    #[error("cannot read the stores: {0}")]
    Db(#[from] warehouse_db::DbError),
    #[error("cannot read the stores: {0}")]
    Pool(#[from] warehouse_db::pool::PoolError),
    #[error("cannot open the stores' secrets: {0}")]
    Keyring(#[from] KeyringError),
}

impl From<tokio_postgres::Error> for RegistryError {
    fn from(error: tokio_postgres::Error) -> Self {
        Self::Db(error.into())
    }
}

/// The live stores at one moment.
#[derive(Default)]
struct Snapshot {
    by_site: HashMap<String, Arc<Store>>,
    by_name: HashMap<String, Arc<Store>>,
    /// By name.
    all: Vec<Arc<Store>>,
}

impl Snapshot {
    fn of(stores: Vec<Store>) -> Self {
        let mut snapshot = Self::default();
        for store in stores {
            let store = Arc::new(store);
            snapshot.by_site.insert(store.site_id.to_string(), store.clone());
            snapshot.by_name.insert(store.name.clone(), store.clone());
            snapshot.all.push(store);
        }
        snapshot.all.sort_by(|a, b| a.name.cmp(&b.name));
        snapshot
    }
}

/// Where a registry reads its stores from.
struct Source {
    pool: warehouse_db::Pool,
    keyring: Arc<Keyring>,
    /// The config file's stores by name: their secrets are merged in from here.
    config: BTreeMap<String, SiteSettings>,
    oauth_client_secret: Option<SecretString>,
    /// A process that may not write (the ingress): config stores the database does not hold
    /// yet are served from the config alone.
    read_only: bool,
    /// The fingerprint of what the snapshot holds; also serialises refreshes.
    loaded: tokio::sync::Mutex<Option<String>>,
}

struct Inner {
    snapshot: RwLock<Arc<Snapshot>>,
    generation: watch::Sender<u64>,
    source: Source,
}

/// The live stores, refreshed in the background. Cheap to clone.
#[derive(Clone)]
pub struct StoreRegistry {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for StoreRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreRegistry")
            .field(
                "stores",
                &self.snapshot().all.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// The config file's stores as `import_config` writes them.
fn config_stores(webflow: &WebflowSettings) -> Vec<ConfigStore> {
    webflow
        .sites
        .iter()
        .map(|(name, site)| ConfigStore {
            name: name.clone(),
            merchant: site.merchant.clone(),
            site_id: site.site_id.clone(),
            rate_limit_per_minute: site.rate_limit_per_minute,
            send_fulfillment_email: site.send_fulfillment_email,
            inventory_sync: site.inventory_sync,
            sku_collection_id: site.sku_collection_id.clone(),
            inventory_safety_buffer: site.inventory_safety_buffer,
        })
        .collect()
}

impl StoreRegistry {
    /// Imports the config's stores (idempotent), loads the live stores and refreshes them
    /// every `webflow.store_refresh_ms` until `shutdown`.
    pub async fn start(
        pool: warehouse_db::Pool,
        webflow: &WebflowSettings,
        keyring: Arc<Keyring>,
        oauth_client_secret: Option<SecretString>,
        shutdown: CancellationToken,
    ) -> Result<Self, RegistryError> {
        {
            let mut client = pool.get().await?;
            let tx = client.transaction().await?;
            store_rows::import_config(&tx, &config_stores(webflow)).await?;
            tx.commit().await?;
        }
        Self::start_with(pool, webflow, keyring, oauth_client_secret, false, shutdown).await
    }

    /// [`StoreRegistry::start`] with the keyring of `secrets` (the development key when
    /// `secrets.key_file` is unset) and the OAuth app's client secret of `webflow.oauth`: what
    /// every worker calling Webflow starts with.
    pub async fn start_with_settings(
        pool: warehouse_db::Pool,
        secrets: &SecretsSettings,
        webflow: &WebflowSettings,
        shutdown: CancellationToken,
    ) -> Result<Self, RegistryError> {
        let keyring = secrets_at_rest::keyring_or_dev(secrets)?;
        Self::start(pool, webflow, keyring, webflow.oauth_client_secret(), shutdown).await
    }

    /// [`StoreRegistry::start`] for a process whose database role may only read the stores
    /// (the ingress): it imports nothing, and serves a config store the database does not hold
    /// yet (no writing service has started) from the config alone.
    pub async fn start_read_only(
        pool: warehouse_db::Pool,
        webflow: &WebflowSettings,
        keyring: Arc<Keyring>,
        oauth_client_secret: Option<SecretString>,
        shutdown: CancellationToken,
    ) -> Result<Self, RegistryError> {
        Self::start_with(pool, webflow, keyring, oauth_client_secret, true, shutdown).await
    }

    async fn start_with(
        pool: warehouse_db::Pool,
        webflow: &WebflowSettings,
        keyring: Arc<Keyring>,
        oauth_client_secret: Option<SecretString>,
        read_only: bool,
        shutdown: CancellationToken,
    ) -> Result<Self, RegistryError> {
        let registry = Self {
            inner: Arc::new(Inner {
                snapshot: RwLock::new(Arc::default()),
                generation: watch::channel(0).0,
                source: Source {
                    pool,
                    keyring,
                    config: webflow.sites.clone(),
                    oauth_client_secret,
                    read_only,
                    loaded: tokio::sync::Mutex::new(None),
                },
            }),
        };
        registry.refresh_now().await?;
        tokio::spawn(
            registry
                .clone()
                .refresh_until(Duration::from_millis(webflow.store_refresh_ms.max(1)), shutdown),
        );
        Ok(registry)
    }

    fn snapshot(&self) -> Arc<Snapshot> {
        // A poisoned lock only means a refresh panicked mid-swap; the Arc it holds is whole.
        self.inner
            .snapshot
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// The live store of a Webflow site.
    pub fn by_site(&self, site_id: &str) -> Option<Arc<Store>> {
        self.snapshot().by_site.get(site_id).cloned()
    }

    /// The live store of a Webflow site, re-reading the stores first when this process does
    /// not know the site: another process (the ingress) may have seen a store added a moment
    /// ago, before this one's next refresh. For the handling of a message, where an unknown
    /// site is a permanent failure; costs a query only on a miss.
    pub async fn by_site_or_refresh(&self, site_id: &str) -> Result<Option<Arc<Store>>, RegistryError> {
        if let Some(store) = self.by_site(site_id) {
            return Ok(Some(store));
        }
        self.refresh_now().await?;
        Ok(self.by_site(site_id))
    }

    /// The live store of this name.
    pub fn by_name(&self, name: &str) -> Option<Arc<Store>> {
        self.snapshot().by_name.get(name).cloned()
    }

    /// Every live store, by name.
    pub fn all(&self) -> Vec<Arc<Store>> {
        self.snapshot().all.clone()
    }

    /// Bumps each time the live stores change.
    pub fn changes(&self) -> watch::Receiver<u64> {
        self.inner.generation.subscribe()
    }

    /// Re-reads the stores now (the background refresh does this every
    /// `webflow.store_refresh_ms`). Reloads only when the database's fingerprint moved.
    pub async fn refresh_now(&self) -> Result<(), RegistryError> {
        let source = &self.inner.source;
        let mut loaded = source.loaded.lock().await;
        let client = source.pool.get().await?;
        let fingerprint = store_rows::live_fingerprint(&*client).await?;
        if loaded.as_deref() == Some(fingerprint.as_str()) {
            return Ok(());
        }
        let columns = if source.read_only {
            store_rows::Columns::WithoutApiTokens
        } else {
            store_rows::Columns::WithApiTokens
        };
        let rows = store_rows::load_live(&*client, columns).await?;
        drop(client);
        let stores = source.stores(rows);
        tracing::info!(
            stores = ?stores.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
            "stores loaded"
        );
        *self
            .inner
            .snapshot
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(Snapshot::of(stores));
        *loaded = Some(fingerprint);
        self.inner.generation.send_modify(|generation| *generation += 1);
        Ok(())
    }

    async fn refresh_until(self, every: Duration, shutdown: CancellationToken) {
        let mut ticks = tokio::time::interval(every);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks.tick().await;
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = ticks.tick() => {}
            }
            if let Err(error) = self.refresh_now().await {
                // The stores loaded last stay served; the next tick tries again.
                tracing::warn!(error.message = %error, "cannot refresh the stores");
            }
        }
    }
}

impl Source {
    /// The live stores with their secrets opened; rows whose secrets do not open are left out.
    fn stores(&self, rows: Vec<StoreRow>) -> Vec<Store> {
        let mut stores = Vec::with_capacity(rows.len());
        for row in rows {
            let name = row.name.clone();
            match self.store(row) {
                Ok(Some(store)) => stores.push(store),
                Ok(None) => {}
                Err(why) => {
                    // The store's name and why, never the value.
                    tracing::error!(store = %name, error.message = %why, "a store's secret does not open; the store is not served");
                }
            }
        }
        if self.read_only {
            for (name, site) in &self.config {
                let taken = stores
                    .iter()
                    .any(|s| s.name == *name || s.site_id.as_str() == site.site_id);
                if !taken {
                    stores.push(Store::from_config(name, site));
                }
            }
        }
        stores
    }

    fn store(&self, row: StoreRow) -> Result<Option<Store>, String> {
        let mut webhook_secrets = Vec::new();
        let api_token = match row.source {
            StoreSource::Config => {
                let Some(site) = self.config.get(&row.name) else {
                    // Another process's config (during a rollout) named it; this one cannot
                    // serve it without the config's secrets.
                    tracing::debug!(store = %row.name, "a config store this process's config does not name");
                    return Ok(None);
                };
                webhook_secrets.extend(site.webhook_secrets.iter().cloned());
                site.api_token.clone()
            }
            // The ingress only verifies webhooks: it reads no token (its role may not).
            StoreSource::Api | StoreSource::Oauth if self.read_only => None,
            StoreSource::Api | StoreSource::Oauth => {
                let sealed = row
                    .api_token_sealed
                    .as_deref()
                    .ok_or_else(|| "the API token is missing".to_owned())?;
                let token = self
                    .keyring
                    .open(sealed, &store_rows::api_token_context(row.id))
                    .map_err(|e| format!("the API token {e}"))?;
                Some(token)
            }
        };
        for hook in &row.webhook_secrets_sealed {
            let secret = self
                .keyring
                .open(&hook.secret_sealed, &store_rows::webhook_secret_context(hook.id))
                .map_err(|e| format!("the secret of webhook {} {e}", hook.id))?;
            webhook_secrets.push(secret);
        }
        if row.source == StoreSource::Oauth
            && let Some(secret) = &self.oauth_client_secret
        {
            webhook_secrets.push(secret.clone());
        }
        Ok(Some(Store {
            id: row.id,
            name: row.name,
            merchant_id: row.merchant_id,
            merchant: row.merchant,
            site_id: domain::SiteId::new(row.site_id),
            source: row.source,
            api_token,
            webhook_secrets,
            rate_limit_per_minute: row.rate_limit_per_minute,
            send_fulfillment_email: row.send_fulfillment_email,
            inventory_sync: row.inventory_sync,
            sku_collection_id: row.sku_collection_id,
            inventory_safety_buffer: row.inventory_safety_buffer,
        }))
    }
}
