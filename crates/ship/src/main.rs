//! `ship`: loads settings, starts telemetry and runs the worker the library builds.

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    Ok(platform::service::launch(platform::amqp::topology::consumer::SHIP, ship::build).await?)
}
