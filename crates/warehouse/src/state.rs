//! What every handler and command shares: the database pool, the operators' tokens and the
//! outbox publisher. The console's own state (session keys, broker connection) is registered
//! next to it by `startup`, so this module depends on neither the routes nor the console.

use crate::auth::TokenStore;
use secrets_at_rest::Keyring;
use service_base::OutboxPublisher;
use std::sync::Arc;

/// Shared by every handler and command.
pub struct AppState {
    pub pool: warehouse_db::Pool,
    pub tokens: TokenStore,
    pub outbox: OutboxPublisher,
    /// Seals the stores' tokens and webhook secrets (`secrets.key_file`).
    pub keyring: Arc<Keyring>,
    /// Webflow, for onboarding stores (token check, webhooks, OAuth).
    pub webflow: webflow::WebflowClient,
    /// `warehouse.public_ingress_url`, without a trailing `/`.
    pub public_ingress_url: Option<String>,
    /// `webflow.oauth`: "Connect with Webflow" in the console.
    pub oauth: Option<webflow::OAuthSettings>,
}
