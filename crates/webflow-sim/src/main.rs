//! `webflow-sim`: the simulator's flags (no config file), telemetry, then the simulator the
//! library builds, until Ctrl-C / SIGTERM.

use anyhow::Context;
use clap::Parser;
use platform::service::RunUntilStopped;
use platform::settings::Profile;
use platform::telemetry::{LogFormat, TelemetrySettings};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = webflow_sim::cli::Cli::parse();
    // A stand-in Webflow must never run by accident where real orders flow: it runs only when
    // the configuration layers (WMS_CONFIG, WMS__PROFILE) select the local profile.
    let profile = platform::settings::load_profile().context("invalid configuration")?;
    if profile != Profile::Local {
        anyhow::bail!(
            "webflow-sim runs only with profile = \"local\" (set it in the file named by WMS_CONFIG, or WMS__PROFILE=local); \
             the configuration selects {profile:?}"
        );
    }
    let telemetry = TelemetrySettings {
        log_format: LogFormat::Pretty,
        ..Default::default()
    };
    platform::telemetry::init(platform::telemetry::subscriber(&telemetry, std::io::stdout));
    platform::install_crypto_provider();
    let shutdown = platform::shutdown::on_signal();
    let config = cli.into_config()?;
    let sim = webflow_sim::build(config, shutdown.clone())
        .await
        .context("cannot start the simulator")?;
    sim.run_until_stopped(shutdown).await?;
    Ok(())
}
