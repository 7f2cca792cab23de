//! What every handler and command shares: the database pool, the operators' tokens and the
//! outbox publisher. The console's own state (session keys, broker connection) is registered
//! next to it by `startup`, so this module depends on neither the routes nor the console.

use crate::auth::TokenStore;
use service_base::OutboxPublisher;

/// Shared by every handler and command.
pub struct AppState {
    pub pool: warehouse_db::Pool,
    pub tokens: TokenStore,
    pub outbox: OutboxPublisher,
}
