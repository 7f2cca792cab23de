//! `notify-webflow`: loads settings, starts telemetry and runs the worker the library builds.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    Ok(platform::service::launch("notify-webflow", notify_webflow::build).await?)
}
