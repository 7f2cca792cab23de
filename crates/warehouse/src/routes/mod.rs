//! `/api/v1/...` routes. Every route needs a bearer token (see `startup`).

pub mod inventory;
pub mod orders;
pub mod picking;

use crate::auth::TokenStore;
use crate::error::{ApiError, printable};
use service_base::OutboxPublisher;
use utoipa::IntoParams;

/// The SKU in a path.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code, reason = "describes the path for the OpenAPI document")]
pub struct SkuParam {
    /// The SKU: 1-200 bytes of UTF-8, no control characters.
    #[param(min_length = 1, max_length = 200, pattern = r"^[^\x00-\x1F\x7F-\x9F]+$")]
    sku: String,
}

/// An order in a path: its Webflow site and order id.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code, reason = "describes the path for the OpenAPI document")]
pub struct OrderPath {
    /// The Webflow site id (no control characters).
    #[param(min_length = 1, pattern = r"^[^\x00-\x1F\x7F-\x9F]+$")]
    site_id: String,
    /// The Webflow order id (no control characters).
    #[param(min_length = 1, pattern = r"^[^\x00-\x1F\x7F-\x9F]+$")]
    order_id: String,
}

/// Checks the ids of an order path: no id that cannot exist reaches the database.
fn order_ids(path: actix_web::web::Path<(String, String)>) -> Result<(String, String), ApiError> {
    let (site_id, order_id) = path.into_inner();
    printable("site_id", &site_id, None)?;
    printable("order_id", &order_id, None)?;
    Ok((site_id, order_id))
}

/// The order a request names, once the token may act on it with `role`: the role is
/// checked, the ids are printable, and a store outside the token's scope reads as a missing
/// order.
pub fn authorized_order(
    operator: &crate::auth::Operator,
    role: crate::auth::Role,
    path: actix_web::web::Path<(String, String)>,
) -> Result<(String, String), ApiError> {
    operator.require(role)?;
    let (site_id, order_id) = order_ids(path)?;
    operator.check_site(&site_id, &order_id)?;
    Ok((site_id, order_id))
}

/// Shared by every handler.
pub struct AppState {
    pub pool: warehouse_db::Pool,
    pub tokens: TokenStore,
    pub outbox: OutboxPublisher,
    pub console: crate::console::ConsoleState,
}

impl AppState {
    /// Publishes what a committed request wrote to the outbox; the relay retries on failure.
    pub async fn publish(&self, actor: &str, message_id: &str) {
        if let Err(error) = self.outbox.publish_for(actor, message_id).await {
            tracing::warn!(%error, message_id, "event committed; the outbox relay will publish it");
        }
    }
}
