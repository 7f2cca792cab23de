//! Every Webflow call of every process goes through here: it takes a slot from the site's
//! shared budget (PostgreSQL), makes the call, learns from `X-RateLimit-*`, and on a 429
//! pauses the whole budget for `Retry-After`.
//!
//! Priority when the budget is short: customer-facing write-backs wait as long as needed,
//! enrichment reads wait a little, reconciliation only takes what is idle and never more than
//! its share (a sub-budget of `reconcile_share` of the limit).

use domain::{Classify, FailureClass, SiteId};
use secrecy::SecretString;
use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;
use warehouse_db::rate_budget::{self, Slot};
use webflow::{ApiResponse, SiteSettings, WebflowClient, WebflowError};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Priority {
    /// Tracking and fulfilment: what the customer waits for.
    WriteBack,
    /// Reading an order the webhook did not carry in full.
    Enrichment,
    /// Background repair.
    Reconciliation,
}

impl Priority {
    /// The longest wait for a slot this priority accepts before backing off.
    fn max_wait(self) -> Duration {
        match self {
            Self::WriteBack => Duration::from_secs(120),
            Self::Enrichment => Duration::from_secs(15),
            Self::Reconciliation => Duration::from_secs(2),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("the Webflow budget of site `{site_id}` is busy for {wait:?}")]
    Busy { site_id: String, wait: Duration },
    #[error("Webflow site `{0}` is not configured with an API token")]
    UnknownSite(String),
    #[error(transparent)]
    Api(#[from] WebflowError),
    #[error("rate budget: {0}")]
    Budget(#[from] warehouse_db::DbError),
    #[error("rate budget: {0}")]
    Pool(#[from] warehouse_db::pool::PoolError),
}

impl Classify for GatewayError {
    fn class(&self) -> FailureClass {
        match self {
            // A full budget is not the message's fault: wait without using up attempts.
            Self::Busy { wait, .. } => FailureClass::Deferred((*wait).max(Duration::from_millis(100))),
            Self::UnknownSite(_) => FailureClass::Permanent,
            Self::Api(api) => api.class(),
            Self::Budget(db) => db.class(),
            Self::Pool(_) => FailureClass::Transient,
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
            Self::Busy { .. } | Self::UnknownSite(_) => "webflow budget",
        }
    }
}

#[derive(Clone)]
pub struct WebflowGateway {
    client: WebflowClient,
    pool: warehouse_db::Pool,
    tokens: HashMap<String, SecretString>,
    limits: HashMap<String, u32>,
    /// Set only by the processes that reconcile ([`WebflowGateway::with_reconcile_share`]):
    /// the others neither use nor resize the reconciliation sub-budget.
    reconcile_share: Option<f64>,
}

pub fn budget_key(site_id: &str) -> String {
    format!("webflow:{site_id}")
}

fn reconcile_key(site_id: &str) -> String {
    format!("webflow:{site_id}:reconcile")
}

impl WebflowGateway {
    pub fn new(client: WebflowClient, pool: warehouse_db::Pool, sites: impl IntoIterator<Item = SiteSettings>) -> Self {
        let mut tokens = HashMap::new();
        let mut limits = HashMap::new();
        for site in sites {
            if let Some(token) = site.api_token.clone() {
                tokens.insert(site.site_id.clone(), token);
            }
            limits.insert(site.site_id.clone(), site.rate_limit_per_minute);
        }
        Self {
            client,
            pool,
            tokens,
            limits,
            reconcile_share: None,
        }
    }

    /// The gateway for every site of `[webflow]`, over the process's pool.
    pub fn from_settings(settings: &webflow::WebflowSettings, pool: warehouse_db::Pool) -> Result<Self, WebflowError> {
        Ok(Self::new(
            WebflowClient::from_settings(settings)?,
            pool,
            settings.sites.values().cloned(),
        ))
    }

    /// Lets this gateway make [`Priority::Reconciliation`] calls, within `share` of each
    /// site's limit (`reconcile.budget_share`).
    pub fn with_reconcile_share(mut self, share: f64) -> Self {
        self.reconcile_share = Some(share.clamp(0.01, 1.0));
        self
    }

    pub fn client(&self) -> &WebflowClient {
        &self.client
    }

    /// Creates (or resizes) every site's budget row, and the reconciliation sub-budgets when
    /// this gateway reconciles. Call at start, after migrations.
    pub async fn ensure_budgets(&self) -> Result<(), GatewayError> {
        let client = self.pool.get().await?;
        for (site_id, limit) in &self.limits {
            rate_budget::ensure(&*client, &budget_key(site_id), f64::from(*limit)).await?;
            if let Some(share) = self.reconcile_share {
                rate_budget::ensure(&*client, &reconcile_key(site_id), f64::from(*limit) * share).await?;
            }
        }
        Ok(())
    }

    /// Calls Webflow for `site_id` within its budget. `call` gets the client and the token.
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
        let site_id = site_id.as_str();
        let token = self
            .tokens
            .get(site_id)
            .cloned()
            .ok_or_else(|| GatewayError::UnknownSite(site_id.to_owned()))?;
        if priority == Priority::Reconciliation {
            self.wait_for_slot(site_id, &reconcile_key(site_id), Duration::from_secs(3_600))
                .await?;
        }
        self.wait_for_slot(site_id, &budget_key(site_id), priority.max_wait())
            .await?;
        let result = call(self.client.clone(), token).await;
        self.observe(site_id, &result).await;
        Ok(result?)
    }

    async fn wait_for_slot(&self, site_id: &str, key: &str, max_wait: Duration) -> Result<(), GatewayError> {
        let slot = {
            let client = self.pool.get().await?;
            rate_budget::take_slot(&*client, key, max_wait).await?
        };
        match slot {
            Slot::At(at) => {
                let wait = (at - chrono::Utc::now()).to_std().unwrap_or_default();
                if !wait.is_zero() {
                    tokio::time::sleep(wait).await;
                }
                Ok(())
            }
            Slot::Busy { wait } => Err(GatewayError::Busy {
                site_id: site_id.to_owned(),
                wait,
            }),
        }
    }

    async fn observe<T>(&self, site_id: &str, result: &Result<ApiResponse<T>, WebflowError>) {
        let key = budget_key(site_id);
        let Ok(client) = self.pool.get().await else { return };
        let call = match result {
            Ok(response) => Some(&response.call),
            Err(error) => error.call(),
        };
        if let Some(limit) = call.and_then(|c| c.rate_limit_limit)
            && limit > 0
        {
            let _ = rate_budget::adopt_limit(&*client, &key, f64::from(limit)).await;
        }
        if let Err(error) = result
            && error.status() == Some(429)
        {
            let wait = error.retry_after().unwrap_or(Duration::from_secs(60));
            let until = chrono::Utc::now() + chrono::Duration::from_std(wait).unwrap_or(chrono::Duration::seconds(60));
            tracing::warn!(
                site_id,
                retry_after_s = wait.as_secs_f64(),
                "Webflow answered 429; pausing the site's budget"
            );
            let _ = rate_budget::pause(&*client, &key, until).await;
        }
    }
}
