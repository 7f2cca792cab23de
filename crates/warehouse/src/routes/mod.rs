//! `/api/v1/...` routes. Every route needs a bearer token (see `startup`). Handlers are thin:
//! they parse and check the request, call a read or a [`crate::commands`] function, and answer
//! JSON.

pub mod inventory;
pub mod merchants;
pub mod orders;
pub mod picking;
pub mod stores;
pub mod tokens;

use crate::error::{ApiError, printable};
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

/// A merchant's SKU in a path.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code, reason = "describes the path for the OpenAPI document")]
pub struct MerchantSkuPath {
    /// The merchant's name.
    #[param(min_length = 1, max_length = 63, pattern = r"^[a-z0-9][a-z0-9._-]{0,62}$")]
    merchant: String,
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
