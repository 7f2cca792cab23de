//! Stores as data (admin): onboard a store with its Webflow site token (optionally registering
//! the bridge's webhooks), list, show, change and remove stores. Tokens and webhook secrets
//! are write-only: no answer contains them.

use crate::auth::Operator;
use crate::commands::stores::{self, DEFAULT_RATE_LIMIT_PER_MINUTE, StoreInput};
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;
use actix_web::{HttpResponse, web};
use secrecy::SecretString;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};
use warehouse_db::merchants::DEFAULT_MERCHANT;
use warehouse_db::store_admin::StorePatch;
pub use warehouse_db::store_admin::{StoreInfo, StoreSource, WebhookInfo};

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateStoreRequest {
    /// Unique among live stores; appears in URLs and the console.
    #[schema(min_length = 1, max_length = 63, pattern = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$")]
    pub name: String,
    /// The merchant that owns the store's stock (`default` on a single-merchant install).
    #[serde(default = "default_merchant")]
    #[schema(default = "default")]
    pub merchant: String,
    /// The Webflow site id; unique among live stores.
    #[schema(min_length = 1)]
    pub site_id: String,
    /// The site's API token (scopes `ecommerce:read`, `ecommerce:write`, `sites:read`,
    /// `sites:write`). Checked with Webflow, stored encrypted, never shown again.
    #[schema(value_type = String, format = Password)]
    pub api_token: SecretString,
    #[serde(default = "default_rate_limit")]
    #[schema(minimum = 1, default = 60)]
    pub rate_limit_per_minute: i32,
    #[serde(default = "default_true")]
    #[schema(default = true)]
    pub send_fulfillment_email: bool,
    /// Register webhooks for `ecomm_new_order`, `ecomm_order_changed` and
    /// `ecomm_inventory_changed` at `warehouse.public_ingress_url` + `/webhooks/webflow/<site_id>`
    /// and keep their secrets (encrypted).
    #[serde(default)]
    pub register_webhooks: bool,
    #[serde(default)]
    pub inventory_sync: bool,
    /// Required when `inventory_sync` is on.
    #[serde(default)]
    pub sku_collection_id: Option<String>,
    #[serde(default)]
    #[schema(minimum = 0)]
    pub inventory_safety_buffer: i64,
}

fn default_merchant() -> String {
    DEFAULT_MERCHANT.into()
}

fn default_rate_limit() -> i32 {
    DEFAULT_RATE_LIMIT_PER_MINUTE
}

fn default_true() -> bool {
    true
}

/// Fields to change; an absent field stays as it is.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchStoreRequest {
    pub merchant: Option<String>,
    /// A new site token: checked with Webflow, then stored encrypted.
    #[schema(value_type = Option<String>, format = Password)]
    pub api_token: Option<SecretString>,
    #[schema(minimum = 1)]
    pub rate_limit_per_minute: Option<i32>,
    pub send_fulfillment_email: Option<bool>,
    pub inventory_sync: Option<bool>,
    /// `null` clears it (inventory sync must then be off).
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub sku_collection_id: Option<Option<String>>,
    #[schema(minimum = 0)]
    pub inventory_safety_buffer: Option<i64>,
}

/// Tells an absent field (`None`) from an explicit `null` (`Some(None)`).
fn double_option<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(deserializer).map(Some)
}

/// `?removed=true` lists removed stores too.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    #[serde(default)]
    pub removed: bool,
}

/// A store in a path.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code, reason = "describes the path for the OpenAPI document")]
pub struct StoreName {
    /// The store's name.
    #[param(min_length = 1, max_length = 63)]
    name: String,
}

#[utoipa::path(
    post,
    path = "/api/v1/stores",
    tag = "stores",
    summary = "Onboard a store (admin): check its token with Webflow, optionally register webhooks",
    request_body = CreateStoreRequest,
    responses(
        (status = 201, description = "The store (every service serves it within `webflow.store_refresh_ms`)", body = StoreInfo),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 403, description = "The token's role is not `admin`", body = ErrorBody),
        (status = 404, description = "No merchant has this name", body = ErrorBody),
        (status = 409, description = "`duplicate_name` or `duplicate_site`: a live store has this name or site", body = ErrorBody),
        (status = 422, description = "A field breaks a rule (`field` names it), or `webflow_refused`: Webflow refused the token or a webhook (its message is passed on); nothing was created", body = ErrorBody),
        (status = 502, description = "`webflow_unavailable`: Webflow did not answer or failed; nothing was created", body = ErrorBody),
    ),
)]
pub async fn create_store(
    state: web::Data<AppState>,
    operator: Operator,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    operator.require(crate::auth::Role::Admin)?;
    let request: CreateStoreRequest = crate::error::parse_json(&body)?;
    let store = stores::create(
        &state,
        &operator,
        StoreInput {
            name: request.name,
            merchant: request.merchant,
            site_id: request.site_id,
            api_token: request.api_token,
            rate_limit_per_minute: request.rate_limit_per_minute,
            send_fulfillment_email: request.send_fulfillment_email,
            inventory_sync: request.inventory_sync,
            sku_collection_id: request.sku_collection_id,
            inventory_safety_buffer: request.inventory_safety_buffer,
            register_webhooks: request.register_webhooks,
            source: StoreSource::Api,
        },
    )
    .await?;
    Ok(HttpResponse::Created().json(store))
}

#[utoipa::path(
    get,
    path = "/api/v1/stores",
    tag = "stores",
    summary = "Every store (admin): config-file and onboarded ones, never a token or secret",
    params(ListQuery),
    responses(
        (status = 200, description = "The stores, by name", body = Vec<StoreInfo>),
        (status = 400, description = "`invalid_query`: the query string is not valid (`removed` is `true` or `false`)", body = ErrorBody),
        (status = 403, description = "The token's role is not `admin`", body = ErrorBody),
    ),
)]
pub async fn list_stores(
    state: web::Data<AppState>,
    operator: Operator,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(stores::list(&state, &operator, query.removed).await?))
}

#[utoipa::path(
    get,
    path = "/api/v1/stores/{name}",
    tag = "stores",
    summary = "A live store (admin)",
    params(StoreName),
    responses(
        (status = 200, description = "The store", body = StoreInfo),
        (status = 400, description = "The path is not valid UTF-8 once decoded", body = ErrorBody),
        (status = 403, description = "The token's role is not `admin`", body = ErrorBody),
        (status = 404, description = "No live store has this name", body = ErrorBody),
        (status = 422, description = "The name contains control characters; `field` names it", body = ErrorBody),
    ),
)]
pub async fn get_store(
    state: web::Data<AppState>,
    operator: Operator,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(stores::get(&state, &operator, &path.into_inner()).await?))
}

#[utoipa::path(
    patch,
    path = "/api/v1/stores/{name}",
    tag = "stores",
    summary = "Change a store (admin): rate limit, e-mails, token, inventory sync, merchant",
    params(StoreName),
    request_body = PatchStoreRequest,
    responses(
        (status = 200, description = "The store as changed", body = StoreInfo),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 403, description = "The token's role is not `admin`", body = ErrorBody),
        (status = 404, description = "No live store (or merchant) has this name", body = ErrorBody),
        (status = 409, description = "`config_store`: the store is in the config file; change it there", body = ErrorBody),
        (status = 422, description = "A field breaks a rule, or `webflow_refused`: Webflow refused the new token", body = ErrorBody),
        (status = 502, description = "`webflow_unavailable`: Webflow did not answer; nothing was changed", body = ErrorBody),
    ),
)]
pub async fn patch_store(
    state: web::Data<AppState>,
    operator: Operator,
    path: web::Path<String>,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    operator.require(crate::auth::Role::Admin)?;
    let request: PatchStoreRequest = crate::error::parse_json(&body)?;
    let store = stores::patch(
        &state,
        &operator,
        &path.into_inner(),
        StorePatch {
            merchant: request.merchant,
            api_token: request.api_token,
            rate_limit_per_minute: request.rate_limit_per_minute,
            send_fulfillment_email: request.send_fulfillment_email,
            inventory_sync: request.inventory_sync,
            sku_collection_id: request.sku_collection_id,
            inventory_safety_buffer: request.inventory_safety_buffer,
        },
    )
    .await?;
    Ok(HttpResponse::Ok().json(store))
}

#[utoipa::path(
    delete,
    path = "/api/v1/stores/{name}",
    tag = "stores",
    summary = "Remove a store (admin): its webhooks are deleted at Webflow, its history stays",
    params(StoreName),
    responses(
        (status = 204, description = "Removed; its ingress path answers 404 within `webflow.store_refresh_ms`"),
        (status = 403, description = "The token's role is not `admin`", body = ErrorBody),
        (status = 404, description = "No live store has this name", body = ErrorBody),
        (status = 409, description = "`config_store`: the store is in the config file; remove it there", body = ErrorBody),
        (status = 422, description = "`webflow_refused`: Webflow refused to delete a webhook; nothing was removed. Or the name contains control characters", body = ErrorBody),
        (status = 502, description = "`webflow_unavailable`: Webflow did not answer; nothing was removed", body = ErrorBody),
    ),
)]
pub async fn remove_store(
    state: web::Data<AppState>,
    operator: Operator,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    stores::remove(&state, &operator, &path.into_inner()).await?;
    Ok(HttpResponse::NoContent().finish())
}
