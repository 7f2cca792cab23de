//! The `webflow-sim` binary's command line: flags (and `SIM_*` variables, no config file),
//! turned into the [`SimConfig`] the library runs.

use crate::state::SimSite;
use crate::{Faults, SimConfig};
use clap::Parser;

#[derive(Debug, Parser)]
#[command(about = "A stand-in Webflow store and Orders API")]
pub struct Cli {
    #[arg(long, env = "SIM_BIND", default_value = "127.0.0.1:8090")]
    pub bind: String,
    #[arg(long, env = "SIM_SITE_ID", default_value = "65f0c0ffee0000000000beef")]
    pub site_id: String,
    #[arg(long, env = "SIM_TOKEN", default_value = "sim-token")]
    pub token: String,
    #[arg(long, env = "SIM_WEBHOOK_SECRET", default_value = "sim-webhook-secret")]
    pub webhook_secret: String,
    /// Where to deliver webhooks, e.g. http://127.0.0.1:8080/webhooks/webflow/<site_id>.
    #[arg(long, env = "SIM_WEBHOOK_URL")]
    pub webhook_url: Option<String>,
    #[arg(long, env = "SIM_ORDERS_PER_MINUTE", default_value_t = 30.0)]
    pub orders_per_minute: f64,
    /// Comma-separated SKUs the store sells.
    #[arg(
        long,
        env = "SIM_CATALOG",
        default_value = "sim-sku-1,sim-sku-2,sim-sku-3,sim-sku-4,sim-sku-5"
    )]
    pub catalog: String,
    #[arg(long, env = "SIM_DIGITAL_SHARE", default_value_t = 0.1)]
    pub digital_share: f64,
    #[arg(long, env = "SIM_REFUND_SHARE", default_value_t = 0.05)]
    pub refund_share: f64,
    #[arg(long, env = "SIM_RETRY_INTERVAL_MS", default_value_t = 600_000)]
    pub retry_interval_ms: u64,
    #[arg(long, env = "SIM_MAX_ORDERS", default_value_t = 0)]
    pub max_orders: u64,
    #[arg(long, env = "SIM_RATE_LIMIT_PER_MINUTE", default_value_t = 120)]
    pub rate_limit_per_minute: u32,
    #[arg(long, env = "SIM_LATENCY_MS", default_value_t = 0)]
    pub latency_ms: u64,
    #[arg(long, env = "SIM_ERROR_RATE", default_value_t = 0.0)]
    pub error_rate: f64,
    /// Share of API calls that hang for 30 s, after applying writes.
    #[arg(long, env = "SIM_TIMEOUT_RATE", default_value_t = 0.0)]
    pub timeout_rate: f64,
    /// Share of API calls answered 429 whatever the rate limit.
    #[arg(long, env = "SIM_THROTTLE_RATE", default_value_t = 0.0)]
    pub throttle_rate: f64,
    /// More sites, each `site_id:token:webhook_secret[:limit_per_minute]` (comma-separated);
    /// their webhooks go to the webhook URL with its last segment replaced by the site id.
    #[arg(long, env = "SIM_EXTRA_SITES", value_delimiter = ',')]
    pub extra_sites: Vec<String>,
}

/// A malformed `--extra-sites` entry.
#[derive(Debug, thiserror::Error)]
pub enum ExtraSiteError {
    #[error("--extra-sites: `{0}` is not site_id:token:secret[:limit]")]
    Form(String),
    #[error("--extra-sites: the limit is not a number")]
    Limit(#[source] std::num::ParseIntError),
}

impl Cli {
    /// The simulator's configuration from the flags.
    pub fn into_config(self) -> Result<SimConfig, ExtraSiteError> {
        Ok(SimConfig {
            bind: self.bind,
            site_id: self.site_id,
            token: self.token,
            webhook_secret: self.webhook_secret,
            webhook_url: self.webhook_url,
            orders_per_minute: self.orders_per_minute,
            catalog: self
                .catalog
                .split(',')
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
                .collect(),
            digital_share: self.digital_share,
            refund_share: self.refund_share,
            retry_interval_ms: self.retry_interval_ms,
            max_orders: self.max_orders,
            faults: Faults {
                latency_ms: self.latency_ms,
                error_rate: self.error_rate,
                timeout_rate: self.timeout_rate,
                rate_limit_per_minute: self.rate_limit_per_minute,
                throttle_rate: self.throttle_rate,
                rate_window_ms: 0,
                webhook_limit_per_site: None,
            },
            extra_sites: self
                .extra_sites
                .iter()
                .filter(|s| !s.is_empty())
                .map(|s| extra_site(s))
                .collect::<Result<_, ExtraSiteError>>()?,
            ..SimConfig::default()
        })
    }
}

fn extra_site(spec: &str) -> Result<SimSite, ExtraSiteError> {
    let parts: Vec<&str> = spec.split(':').collect();
    let (site_id, token, secret) = match parts.as_slice() {
        [site_id, token, secret] | [site_id, token, secret, _] => (*site_id, *token, *secret),
        _ => return Err(ExtraSiteError::Form(spec.to_owned())),
    };
    let limit = match parts.get(3) {
        Some(limit) => Some(limit.parse().map_err(ExtraSiteError::Limit)?),
        None => None,
    };
    Ok(SimSite {
        site_id: site_id.into(),
        token: token.into(),
        webhook_secret: secret.into(),
        webhook_url: None,
        rate_limit_per_minute: limit,
    })
}
