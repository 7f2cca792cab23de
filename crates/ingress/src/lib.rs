//! The webhook ingress: verifies each Webflow webhook exactly as Webflow signs it, answers
//! fast, and answers 200 only once RabbitMQ has confirmed the message. Anything else is a
//! non-200, so Webflow retries rather than the order being lost.

pub mod error;
pub mod metrics;
pub mod routes;
pub mod settings;
pub mod startup;

pub use settings::Settings;
pub use startup::{Application, StartupError};

/// Builds the ingress (for `platform::service::launch`): see [`Application::build`].
pub async fn build(
    settings: Settings,
    shutdown: tokio_util::sync::CancellationToken,
) -> Result<Application, StartupError> {
    Application::build(settings, shutdown).await
}
