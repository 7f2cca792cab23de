//! Every Webflow call of every process goes through here: it takes a slot from its token's
//! shared budget (PostgreSQL), makes the call, learns from `X-RateLimit-*`, and on a 429
//! pauses the whole budget for `Retry-After`.
//!
//! **No head-of-line blocking.** A call sleeps for its slot only when the slot is within
//! `webflow.budget.horizon_ms` (about a second). A further slot is *reserved* in the token's
//! schedule and the call fails with [`GatewayError::Busy`], a deferral carrying the
//! reservation as its resume token: the consumer runtime parks the message in the broker (no
//! attempt used, no worker or prefetch slot held) and hands the token back when the message
//! returns, and the call then uses the reserved slot. Slots are handed out FIFO per token, so a
//! backlog keeps the budget fully used while other stores' messages never wait for it.
//!
//! **Priorities within a token**: customer-facing write-backs reserve however far ahead (the
//! runtime's deferral ceiling bounds it); enrichment reads reserve only while the token's
//! queue is short (`enrichment_queue_secs`), else defer without reserving and look again, so a
//! write-back backlog goes first; reconciliation only takes idle capacity
//! (`reconcile_idle_ms`) within its share (a sub-budget of `reconcile_share` of the limit),
//! else the reconciler skips the site for this run; stock-level pushes (issue 17) take a slot
//! only when one is free at that moment, never reserving one.
//!
//! **No worker slot held while waiting.** The wait for a slot within the horizon happens
//! through [`platform::worker_slot::wait_outside_slot`]: inside a consumer, the handler gives
//! its worker slot back for the wait (the delivery stays prefetched, within
//! `worker.max_waiting`), so however many of a fast token's calls wait at once, the replica goes
//! on reading and handling the other stores' messages.
//!
//! **Stores come and go.** The tokens and limits follow the store registry (issue 24): a store
//! onboarded at runtime gets its budget row on the registry's next refresh, a changed
//! `rate_limit_per_minute` resizes it, and a removed store's calls fail permanently
//! ([`GatewayError::UnknownSite`]).
//!
//! **One clock.** Every wait is `slot - clock_timestamp()` computed by the same statement on the
//! database and slept as a duration: replicas whose clocks disagree still call in turn.

use domain::{Classify, FailureClass, SiteId};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};
use stores::{Store, StoreRegistry};
use tokio_util::sync::CancellationToken;
use warehouse_db::rate_budget::{self, Grant, Take};
use webflow::{ApiResponse, BudgetSettings, SiteSettings, WebflowClient, WebflowError};

pub mod metrics;

/// Tokio's timer resolution: a shorter wait is not slept.
const TIMER_RESOLUTION: Duration = Duration::from_millis(1);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Priority {
    /// Tracking and fulfilment: what the customer waits for.
    WriteBack,
    /// Reading an order the webhook did not carry in full.
    Enrichment,
    /// Background repair.
    Reconciliation,
    /// Stock levels pushed to the storefront: the lowest priority. Takes a slot only when
    /// one is free now (never reserves, never waits), so a write-back that comes next is
    /// delayed by at most this one slot.
    InventorySync,
}

impl Priority {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::WriteBack => "write_back",
            Self::Enrichment => "enrichment",
            Self::Reconciliation => "reconciliation",
            Self::InventorySync => "inventory_sync",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// No slot now: come back after `wait`. `ticket` (the resume token) names a slot reserved
    /// for this call, or the recorded wait.
    #[error("the Webflow budget of site `{site_id}` is busy for {wait:?}")]
    Busy {
        site_id: String,
        wait: Duration,
        ticket: Option<String>,
    },
    /// No live store with an API token serves the site: never configured, or removed.
    #[error("no live store with an API token serves Webflow site `{0}` (unknown, or the store was removed)")]
    UnknownSite(String),
    #[error(transparent)]
    Api(#[from] WebflowError),
    #[error("rate budget: {0}")]
    Budget(#[from] warehouse_db::DbError),
    #[error("rate budget: {0}")]
    Pool(#[from] warehouse_db::pool::PoolError),
    /// The stores could not be re-read (the database away): try again.
    #[error("{0}")]
    Stores(String),
}

impl GatewayError {
    /// The request never reached Webflow, or Webflow refused it without applying it (a 429).
    pub fn was_not_sent(&self) -> bool {
        match self {
            Self::Api(api) => api.status() == Some(429),
            Self::Busy { .. } | Self::UnknownSite(_) | Self::Budget(_) | Self::Pool(_) | Self::Stores(_) => true,
        }
    }

    /// Webflow answered 429 (the budget is paused; the message is deferred, not failed).
    pub fn is_throttled(&self) -> bool {
        matches!(self, Self::Api(api) if api.status() == Some(429))
    }
}

impl Classify for GatewayError {
    fn class(&self) -> FailureClass {
        match self {
            // A full budget is not the message's fault: wait without using up attempts.
            Self::Busy { wait, .. } => FailureClass::Deferred((*wait).max(Duration::from_millis(100))),
            Self::UnknownSite(_) => FailureClass::Permanent,
            Self::Api(api) => api.class(),
            Self::Budget(db) => db.class(),
            Self::Pool(_) | Self::Stores(_) => FailureClass::Transient,
        }
    }

    fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Api(api) => Classify::retry_after(api),
            _ => None,
        }
    }

    fn source_name(&self) -> &'static str {
        match self {
            Self::Api(_) => "webflow",
            Self::Budget(_) | Self::Pool(_) => "rate budget",
            Self::Stores(_) => "stores",
            Self::Busy { .. } | Self::UnknownSite(_) => "webflow budget",
        }
    }

    fn resume_token(&self) -> Option<String> {
        match self {
            Self::Busy { ticket, .. } => ticket.clone(),
            _ => None,
        }
    }
}

/// The budget key of a token: `webflow-token:<first 16 hex of sha256(token)>`. Sites sharing a
/// token share the key, hence one budget; the token itself is never stored.
pub fn token_key(token: &SecretString) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, token.expose_secret().as_bytes());
    format!("webflow-token:{}", &hex::encode(digest.as_ref())[..16])
}

fn reconcile_key(key: &str) -> String {
    format!("{key}:reconcile")
}

/// A ticket travels as `<key>#<id>`; it is only honoured for the same key.
fn parse_ticket(token: &str, key: &str) -> Option<i64> {
    let (ticket_key, id) = token.rsplit_once('#')?;
    (ticket_key == key).then(|| id.parse().ok()).flatten()
}

#[derive(Clone)]
struct SiteBudget {
    token: SecretString,
    key: String,
}

/// One site's budget and what waits for it, as `wmsctl sites status` and the metrics show it.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SiteStatus {
    pub site_id: String,
    pub budget: rate_budget::BudgetStatus,
    /// Reserved slots not used yet (this site's).
    pub reserved: i64,
    /// Deferred without a reservation (this site's).
    pub deferred: i64,
    pub oldest_wait_secs: Option<f64>,
    /// Other sites sharing this token's budget.
    pub shared_with: Vec<String>,
}

/// Which budget each site draws from, as the stores are now.
#[derive(Default)]
struct BudgetTable {
    sites: HashMap<String, SiteBudget>,
    /// Budget key -> configured limit (the smallest of the sites sharing the token).
    limits: BTreeMap<String, f64>,
    /// Budget key -> the sites sharing it.
    sites_of: BTreeMap<String, Vec<String>>,
}

impl BudgetTable {
    /// `(site id, token, rate limit per minute)` of every site that has a token.
    fn of(sites: impl IntoIterator<Item = (String, Option<SecretString>, u32)>) -> Self {
        let mut table = Self::default();
        for (site_id, token, rate_limit_per_minute) in sites {
            let Some(token) = token.filter(|t| !t.expose_secret().trim().is_empty()) else {
                continue;
            };
            let key = token_key(&token);
            let limit = f64::from(rate_limit_per_minute.max(1));
            table
                .limits
                .entry(key.clone())
                .and_modify(|l| *l = l.min(limit))
                .or_insert(limit);
            table.sites_of.entry(key.clone()).or_default().push(site_id.clone());
            table.sites.insert(site_id, SiteBudget { token, key });
        }
        table
    }

    fn of_stores(stores: &[Arc<Store>]) -> Self {
        Self::of(
            stores
                .iter()
                .map(|s| (s.site_id.to_string(), s.api_token.clone(), s.rate_limit_per_minute)),
        )
    }
}

#[derive(Clone)]
pub struct WebflowGateway {
    client: WebflowClient,
    pool: warehouse_db::Pool,
    /// Swapped whole when the stores change ([`WebflowGateway::start`]).
    table: Arc<RwLock<Arc<BudgetTable>>>,
    /// The stores the table follows (`None`: a fixed set of sites).
    stores: Option<StoreRegistry>,
    budget: BudgetSettings,
    /// Set only by the processes that reconcile ([`WebflowGateway::with_reconcile_share`]):
    /// the others neither use nor resize the reconciliation sub-budget.
    reconcile_share: Option<f64>,
    /// Test hook: how far this replica's own clock is off. Nothing the gateway schedules reads
    /// the local clock, so this only shows in its logs.
    local_clock_offset: chrono::Duration,
    /// Budget key -> the `X-RateLimit-Limit` this process last stored, and when: Webflow sends
    /// the header with every answer, and storing the same value again is a statement per call.
    adopted: Arc<Mutex<HashMap<String, (u32, Instant)>>>,
}

/// How soon the budgets of changed stores are set up again after a failure (the database away).
const BUDGET_RETRY: Duration = Duration::from_secs(1);

/// How long a limit this process stored is taken as still stored (another replica may store a
/// different value meanwhile; then this one writes its own again after at most this long).
const ADOPTED_FOR: Duration = Duration::from_secs(60);

impl WebflowGateway {
    /// A gateway for these config sites only (tests, wmsctl): it does not follow the stores.
    pub fn new(client: WebflowClient, pool: warehouse_db::Pool, sites: impl IntoIterator<Item = SiteSettings>) -> Self {
        let table = BudgetTable::of(
            sites
                .into_iter()
                .map(|site| (site.site_id, site.api_token, site.rate_limit_per_minute)),
        );
        Self::with_table(client, pool, table)
    }

    /// A gateway for the registry's stores as they are now (see [`WebflowGateway::start`] for
    /// one that follows them).
    fn for_stores(client: WebflowClient, pool: warehouse_db::Pool, stores: &StoreRegistry) -> Self {
        Self {
            stores: Some(stores.clone()),
            ..Self::with_table(client, pool, BudgetTable::of_stores(&stores.all()))
        }
    }

    fn with_table(client: WebflowClient, pool: warehouse_db::Pool, table: BudgetTable) -> Self {
        Self {
            client,
            pool,
            table: Arc::new(RwLock::new(Arc::new(table))),
            stores: None,
            budget: BudgetSettings::default(),
            reconcile_share: None,
            local_clock_offset: chrono::Duration::zero(),
            adopted: Arc::default(),
        }
    }

    /// The gateway for every site of `[webflow]`, over the process's pool.
    pub fn from_settings(settings: &webflow::WebflowSettings, pool: warehouse_db::Pool) -> Result<Self, WebflowError> {
        Ok(Self::new(
            WebflowClient::from_settings(settings)?,
            pool,
            settings.sites.values().cloned(),
        )
        .with_budget_settings(settings.budget.clone()))
    }

    /// The gateway for the registry's stores with `reconcile_share` (for the processes that
    /// reconcile), with every token's budget ensured: what every service that calls Webflow
    /// does at start, after its migrations. Until `shutdown` it follows the registry: a new
    /// store's token gets its budget row, a changed limit resizes it, a removed store's site is
    /// refused.
    pub async fn start(
        settings: &webflow::WebflowSettings,
        pool: warehouse_db::Pool,
        stores: &StoreRegistry,
        reconcile_share: Option<f64>,
        shutdown: CancellationToken,
    ) -> Result<Self, GatewayError> {
        // Subscribed before the stores are read: a change in between is seen by `follow`.
        let changes = stores.changes();
        let mut gateway = Self::for_stores(WebflowClient::from_settings(settings)?, pool, stores)
            .with_budget_settings(settings.budget.clone());
        if let Some(share) = reconcile_share {
            gateway = gateway.with_reconcile_share(share);
        }
        gateway.ensure_budgets().await?;
        tokio::spawn(gateway.clone().follow(stores.clone(), changes, shutdown));
        Ok(gateway)
    }

    /// What every worker calling Webflow starts with: the store registry (config stores
    /// imported, sealed secrets opened with the keyring of `secrets`, the development key when
    /// `secrets.key_file` is unset) and [`WebflowGateway::start`] over it.
    pub async fn start_with_stores(
        settings: &webflow::WebflowSettings,
        secrets: &secrets_at_rest::SecretsSettings,
        pool: warehouse_db::Pool,
        reconcile_share: Option<f64>,
        shutdown: CancellationToken,
    ) -> Result<(StoreRegistry, Self), GatewayError> {
        let stores = StoreRegistry::start_with_settings(pool.clone(), secrets, settings, shutdown.clone())
            .await
            .map_err(|e| GatewayError::Stores(e.to_string()))?;
        let gateway = Self::start(settings, pool, &stores, reconcile_share, shutdown).await?;
        Ok((stores, gateway))
    }

    /// Rebuilds the budget table on every change of the stores, until `shutdown`.
    async fn follow(
        self,
        stores: StoreRegistry,
        mut changes: tokio::sync::watch::Receiver<u64>,
        shutdown: CancellationToken,
    ) {
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                changed = changes.changed() => if changed.is_err() { return },
            }
            // Until the new budgets are set up, the old table stays: a new store's calls would
            // fail as for an unknown site (permanently), so this retries until it succeeds.
            while let Err(error) = self.replace_table(BudgetTable::of_stores(&stores.all())).await {
                tracing::warn!(error.message = %error, "cannot set up the budgets of changed stores; retrying");
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(BUDGET_RETRY) => {}
                }
            }
        }
    }

    /// Ensures the new table's budgets, then serves it.
    async fn replace_table(&self, table: BudgetTable) -> Result<(), GatewayError> {
        let table = Arc::new(table);
        self.ensure_budgets_of(&table).await?;
        *self.table.write().unwrap_or_else(std::sync::PoisonError::into_inner) = table;
        Ok(())
    }

    fn table(&self) -> Arc<BudgetTable> {
        self.table
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    pub fn with_budget_settings(mut self, budget: BudgetSettings) -> Self {
        self.budget = budget;
        self
    }

    /// Lets this gateway make [`Priority::Reconciliation`] calls, within `share` of each
    /// token's limit (`reconcile.budget_share`).
    pub fn with_reconcile_share(mut self, share: f64) -> Self {
        self.reconcile_share = Some(share.clamp(0.01, 1.0));
        self
    }

    /// Test hook: this replica's clock runs `offset` ahead (negative: behind).
    pub fn with_local_clock_offset(mut self, offset: chrono::Duration) -> Self {
        self.local_clock_offset = offset;
        self
    }

    pub fn client(&self) -> &WebflowClient {
        &self.client
    }

    /// The budget key `site_id` draws from.
    pub fn budget_key(&self, site_id: &str) -> Option<String> {
        self.table().sites.get(site_id).map(|s| s.key.clone())
    }

    /// Creates (or resizes) every token's budget row, and the reconciliation sub-budgets when
    /// this gateway reconciles. Call at start, after migrations. The limit learned from Webflow
    /// is kept.
    pub async fn ensure_budgets(&self) -> Result<(), GatewayError> {
        self.ensure_budgets_of(&self.table()).await
    }

    async fn ensure_budgets_of(&self, table: &BudgetTable) -> Result<(), GatewayError> {
        let client = self.pool.get().await?;
        for (key, limit) in &table.limits {
            let sites = table.sites_of.get(key).map_or(&[][..], Vec::as_slice);
            rate_budget::ensure(&*client, key, *limit, sites).await?;
            if let Some(share) = self.reconcile_share {
                rate_budget::ensure(&*client, &reconcile_key(key), *limit * share, sites).await?;
            }
        }
        // A reconciliation share is kept whether or not this process reconciles: another does.
        let in_use: Vec<String> = table
            .limits
            .keys()
            .flat_map(|key| [key.clone(), reconcile_key(key)])
            .collect();
        rate_budget::forget_sites_except(&*client, &in_use).await?;
        Ok(())
    }

    /// The budget of `site_id`. A site this table does not hold may be a store added a moment
    /// ago (seen by another process first): the stores are re-read and the table rebuilt before
    /// the site is called unknown, a permanent failure.
    async fn site(&self, site_id: &str) -> Result<SiteBudget, GatewayError> {
        if let Some(site) = self.table().sites.get(site_id) {
            return Ok(site.clone());
        }
        if let Some(stores) = &self.stores
            && let Some(store) = stores
                .by_site_or_refresh(site_id)
                .await
                .map_err(|e| GatewayError::Stores(e.to_string()))?
            && store.has_api_token()
        {
            self.replace_table(BudgetTable::of_stores(&stores.all())).await?;
        }
        self.table()
            .sites
            .get(site_id)
            .cloned()
            .ok_or_else(|| GatewayError::UnknownSite(site_id.to_owned()))
    }

    /// Calls Webflow for `site_id` within its budget, with no slot held from an earlier try.
    pub async fn call<T, F, Fut>(
        &self,
        site_id: &SiteId,
        priority: Priority,
        call: F,
    ) -> Result<ApiResponse<T>, GatewayError>
    where
        F: FnOnce(WebflowClient, SecretString) -> Fut,
        Fut: Future<Output = Result<ApiResponse<T>, WebflowError>>,
    {
        self.call_resuming(site_id, priority, &mut None, call).await
    }

    /// Calls Webflow for `site_id` within its budget. `resume` is the resume token the message
    /// came back with ([`worker`'s `IncomingMessage::resume_token`]): a slot reserved for it
    /// is used (and `resume` emptied) instead of queueing again. `call` gets the client and the
    /// token.
    pub async fn call_resuming<T, F, Fut>(
        &self,
        site_id: &SiteId,
        priority: Priority,
        resume: &mut Option<String>,
        call: F,
    ) -> Result<ApiResponse<T>, GatewayError>
    where
        F: FnOnce(WebflowClient, SecretString) -> Fut,
        Fut: Future<Output = Result<ApiResponse<T>, WebflowError>>,
    {
        let site = self.site(site_id.as_str()).await?;
        let held = resume.as_deref().and_then(|token| parse_ticket(token, &site.key));
        if priority == Priority::Reconciliation {
            // The sub-budget spaces reconciliation out; the job may sleep for it.
            self.wait_for_slot(site_id.as_str(), &reconcile_key(&site.key), priority, None)
                .await?;
        }
        let used_ticket = self.wait_for_slot(site_id.as_str(), &site.key, priority, held).await?;
        if used_ticket {
            *resume = None;
        }
        tracing::trace!(
            site_id = %site_id,
            local_now = %(chrono::Utc::now() + self.local_clock_offset),
            "calling Webflow"
        );
        let result = call(self.client.clone(), site.token.clone()).await;
        self.observe(site_id.as_str(), &site.key, &result).await;
        Ok(result?)
    }

    /// Waits (at most the horizon) for a slot, or fails with a deferral. Returns whether the
    /// held ticket's slot was used.
    async fn wait_for_slot(
        &self,
        site_id: &str,
        key: &str,
        priority: Priority,
        ticket: Option<i64>,
    ) -> Result<bool, GatewayError> {
        let budget = &self.budget;
        let horizon = Duration::from_millis(budget.horizon_ms);
        let sub_budget = key.ends_with(":reconcile");
        let (horizon, reserve_within, track) = match priority {
            _ if sub_budget => (Duration::from_secs(3_600), Some(Duration::ZERO), false),
            Priority::WriteBack => (horizon, None, true),
            Priority::Enrichment => (horizon, Some(Duration::from_secs(budget.enrichment_queue_secs)), true),
            Priority::Reconciliation => (
                Duration::from_millis(budget.reconcile_idle_ms),
                Some(Duration::ZERO),
                false,
            ),
            Priority::InventorySync => (Duration::ZERO, Some(Duration::ZERO), false),
        };
        let grant = {
            let client = self.pool.get().await?;
            rate_budget::take(
                &*client,
                &Take {
                    key,
                    site_id,
                    priority: priority.as_str(),
                    ticket,
                    horizon,
                    reserve_within,
                    margin: Duration::from_millis(budget.window_margin_ms),
                    grace: Duration::from_millis(budget.reservation_grace_ms),
                    track,
                },
            )
            .await?
        };
        match grant {
            Grant::Slot { wait } => {
                // A slot less than the timer's resolution away is now: a sleep would last a whole
                // millisecond and the pause check after it would cost a statement per call.
                if wait >= TIMER_RESOLUTION {
                    // Not in a worker slot: a busy token's waits must not keep a replica from
                    // reading (and serving) other stores' messages.
                    platform::worker_slot::wait_outside_slot(wait).await;
                    // A 429 may have paused the token while this call slept for its slot.
                    let paused = {
                        let client = self.pool.get().await?;
                        rate_budget::paused_for(&*client, key).await?
                    };
                    if !paused.is_zero() {
                        return Err(GatewayError::Busy {
                            site_id: site_id.to_owned(),
                            wait: paused,
                            ticket: None,
                        });
                    }
                }
                Ok(ticket.is_some())
            }
            Grant::Reserved { wait, ticket } => Err(GatewayError::Busy {
                site_id: site_id.to_owned(),
                // Back a little before the slot: the broker's delay tiers round down, and an
                // early return only hops again.
                wait: wait.saturating_sub(horizon / 2),
                ticket: Some(format!("{key}#{ticket}")),
            }),
            Grant::Busy { wait, ticket } => Err(GatewayError::Busy {
                site_id: site_id.to_owned(),
                wait: match reserve_within {
                    Some(within) => wait.saturating_sub(within),
                    None => wait,
                },
                ticket: ticket.map(|t| format!("{key}#{t}")),
            }),
        }
    }

    async fn observe<T>(&self, site_id: &str, key: &str, result: &Result<ApiResponse<T>, WebflowError>) {
        let call = match result {
            Ok(response) => Some(&response.call),
            Err(error) => error.call(),
        };
        if let Some(limit) = call.and_then(|c| c.rate_limit_limit)
            && limit > 0
            && !self.recently_adopted(key, limit)
            && let Ok(client) = self.pool.get().await
            && rate_budget::adopt_limit(&*client, key, f64::from(limit)).await.is_ok()
            && let Ok(mut adopted) = self.adopted.lock()
        {
            adopted.insert(key.to_owned(), (limit, Instant::now()));
        }
        if let Err(error) = result
            && error.status() == Some(429)
            && let Ok(client) = self.pool.get().await
        {
            let wait = error.retry_after().unwrap_or(Duration::from_secs(60));
            tracing::warn!(
                site_id,
                retry_after_s = wait.as_secs_f64(),
                "Webflow answered 429; pausing the token's budget"
            );
            let _ = rate_budget::pause(&*client, key, wait).await;
        }
    }

    /// Whether this process stored `limit` for `key` less than [`ADOPTED_FOR`] ago.
    fn recently_adopted(&self, key: &str, limit: u32) -> bool {
        let Ok(adopted) = self.adopted.lock() else { return false };
        adopted
            .get(key)
            .is_some_and(|(stored, at)| *stored == limit && at.elapsed() < ADOPTED_FOR)
    }

    /// Every configured site's budget and backlog.
    pub async fn status(&self) -> Result<Vec<SiteStatus>, GatewayError> {
        let table = self.table();
        let keys: Vec<String> = table.limits.keys().cloned().collect();
        let (budgets, waits) = {
            let client = self.pool.get().await?;
            rate_budget::status(&*client, &keys).await?
        };
        let mut sites: Vec<(&String, &SiteBudget)> = table.sites.iter().collect();
        sites.sort_by(|a, b| a.0.cmp(b.0));
        let mut out = Vec::new();
        for (site_id, site) in &sites {
            let Some(budget) = budgets.iter().find(|b| b.key == site.key) else {
                continue;
            };
            let wait = waits.iter().find(|w| w.key == site.key && &w.site_id == *site_id);
            out.push(SiteStatus {
                site_id: (*site_id).clone(),
                budget: budget.clone(),
                reserved: wait.map_or(0, |w| w.reserved),
                deferred: wait.map_or(0, |w| w.deferred),
                oldest_wait_secs: wait.and_then(|w| w.oldest_wait_secs),
                shared_with: sites
                    .iter()
                    .filter(|(other, s)| s.key == site.key && other != site_id)
                    .map(|(other, _)| (*other).clone())
                    .collect(),
            });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sites_sharing_a_token_share_a_key_and_the_token_is_not_in_it() {
        let a = token_key(&SecretString::from("secret-token-1"));
        assert_eq!(a, token_key(&SecretString::from("secret-token-1")));
        assert_ne!(a, token_key(&SecretString::from("secret-token-2")));
        assert!(a.starts_with("webflow-token:") && !a.contains("secret"));
    }

    #[test]
    fn a_ticket_is_honoured_only_for_its_key() {
        assert_eq!(parse_ticket("webflow-token:ab#42", "webflow-token:ab"), Some(42));
        assert_eq!(parse_ticket("webflow-token:ab#42", "webflow-token:cd"), None);
        assert_eq!(parse_ticket("garbage", "webflow-token:ab"), None);
    }
}
