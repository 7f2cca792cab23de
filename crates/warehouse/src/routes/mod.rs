//! `/api/v1/...` routes. Every route needs a bearer token (see `startup`).

pub mod inventory;
pub mod orders;
pub mod picking;

use crate::auth::ApiTokens;
use service_base::OutboxPublisher;

/// Shared by every handler.
pub struct AppState {
    pub pool: warehouse_db::Pool,
    pub tokens: ApiTokens,
    pub outbox: OutboxPublisher,
}

impl AppState {
    /// Publishes what a committed request wrote to the outbox; the relay retries on failure.
    pub async fn publish(&self, actor: &str, message_id: &str) {
        if let Err(error) = self.outbox.publish_for(actor, message_id).await {
            tracing::warn!(%error, message_id, "event committed; the outbox relay will publish it");
        }
    }
}
