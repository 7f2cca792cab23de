//! `warehouse`: loads settings, starts telemetry and serves what the library builds.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    Ok(platform::service::launch("warehouse", warehouse::build).await?)
}
