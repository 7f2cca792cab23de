//! `webflow-sim`: the simulator's flags (no config file), telemetry, then the simulator the
//! library builds, until Ctrl-C / SIGTERM.

use anyhow::Context;
use clap::Parser;
use platform::service::RunUntilStopped;
use webflow_sim::{Faults, SimConfig};

#[derive(Parser)]
#[command(about = "A stand-in Webflow store and Orders API")]
struct Cli {
    #[arg(long, env = "SIM_BIND", default_value = "127.0.0.1:8090")]
    bind: String,
    #[arg(long, env = "SIM_SITE_ID", default_value = "65f0c0ffee0000000000beef")]
    site_id: String,
    #[arg(long, env = "SIM_TOKEN", default_value = "sim-token")]
    token: String,
    #[arg(long, env = "SIM_WEBHOOK_SECRET", default_value = "sim-webhook-secret")]
    webhook_secret: String,
    /// Where to deliver webhooks, e.g. http://127.0.0.1:8080/webhooks/webflow/<site_id>.
    #[arg(long, env = "SIM_WEBHOOK_URL")]
    webhook_url: Option<String>,
    #[arg(long, env = "SIM_ORDERS_PER_MINUTE", default_value_t = 30.0)]
    orders_per_minute: f64,
    /// Comma-separated SKUs the store sells.
    #[arg(
        long,
        env = "SIM_CATALOG",
        default_value = "sim-sku-1,sim-sku-2,sim-sku-3,sim-sku-4,sim-sku-5"
    )]
    catalog: String,
    #[arg(long, env = "SIM_DIGITAL_SHARE", default_value_t = 0.1)]
    digital_share: f64,
    #[arg(long, env = "SIM_REFUND_SHARE", default_value_t = 0.05)]
    refund_share: f64,
    #[arg(long, env = "SIM_RETRY_INTERVAL_MS", default_value_t = 600_000)]
    retry_interval_ms: u64,
    #[arg(long, env = "SIM_MAX_ORDERS", default_value_t = 0)]
    max_orders: u64,
    #[arg(long, env = "SIM_RATE_LIMIT_PER_MINUTE", default_value_t = 120)]
    rate_limit_per_minute: u32,
    #[arg(long, env = "SIM_LATENCY_MS", default_value_t = 0)]
    latency_ms: u64,
    #[arg(long, env = "SIM_ERROR_RATE", default_value_t = 0.0)]
    error_rate: f64,
    /// Share of API calls that hang for 30 s, after applying writes.
    #[arg(long, env = "SIM_TIMEOUT_RATE", default_value_t = 0.0)]
    timeout_rate: f64,
    /// Share of API calls answered 429 whatever the rate limit.
    #[arg(long, env = "SIM_THROTTLE_RATE", default_value_t = 0.0)]
    throttle_rate: f64,
    /// More sites, each `site_id:token:webhook_secret[:limit_per_minute]` (comma-separated);
    /// their webhooks go to the webhook URL with its last segment replaced by the site id.
    #[arg(long, env = "SIM_EXTRA_SITES", value_delimiter = ',')]
    extra_sites: Vec<String>,
}

fn extra_site(spec: &str) -> anyhow::Result<webflow_sim::state::SimSite> {
    let parts: Vec<&str> = spec.split(':').collect();
    let (site_id, token, secret) = match parts.as_slice() {
        [site_id, token, secret] | [site_id, token, secret, _] => (*site_id, *token, *secret),
        _ => anyhow::bail!("--extra-sites: `{spec}` is not site_id:token:secret[:limit]"),
    };
    let limit = match parts.get(3) {
        Some(limit) => Some(limit.parse().context("--extra-sites: the limit is not a number")?),
        None => None,
    };
    Ok(webflow_sim::state::SimSite {
        site_id: site_id.into(),
        token: token.into(),
        webhook_secret: secret.into(),
        webhook_url: None,
        rate_limit_per_minute: limit,
    })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    // A stand-in Webflow must never run by accident where real orders flow: it runs only when
    // the configuration layers (WMS_CONFIG, WMS__PROFILE) select the local profile.
    let profile = platform::settings::load_profile().context("invalid configuration")?;
    if profile != platform::settings::Profile::Local {
        anyhow::bail!(
            "webflow-sim runs only with profile = \"local\" (set it in the file named by WMS_CONFIG, or WMS__PROFILE=local); \
             the configuration selects {profile:?}"
        );
    }
    let settings = platform::telemetry::TelemetrySettings {
        log_format: platform::telemetry::LogFormat::Pretty,
        ..Default::default()
    };
    platform::telemetry::init(platform::telemetry::subscriber(&settings, std::io::stdout));
    platform::install_crypto_provider();
    let shutdown = platform::shutdown::on_signal();
    let config = SimConfig {
        bind: cli.bind,
        site_id: cli.site_id,
        token: cli.token,
        webhook_secret: cli.webhook_secret,
        webhook_url: cli.webhook_url,
        orders_per_minute: cli.orders_per_minute,
        catalog: cli
            .catalog
            .split(',')
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect(),
        digital_share: cli.digital_share,
        refund_share: cli.refund_share,
        retry_interval_ms: cli.retry_interval_ms,
        max_orders: cli.max_orders,
        faults: Faults {
            latency_ms: cli.latency_ms,
            error_rate: cli.error_rate,
            timeout_rate: cli.timeout_rate,
            rate_limit_per_minute: cli.rate_limit_per_minute,
            throttle_rate: cli.throttle_rate,
            rate_window_ms: 0,
        },
        extra_sites: cli
            .extra_sites
            .iter()
            .filter(|s| !s.is_empty())
            .map(|s| extra_site(s))
            .collect::<anyhow::Result<_>>()?,
        ..SimConfig::default()
    };
    let sim = webflow_sim::build(config, shutdown.clone())
        .await
        .context("cannot start the simulator")?;
    sim.run_until_stopped(shutdown).await?;
    Ok(())
}
