//! Merchants (issue 24): who owns stock. List and read (every role, in scope), create (admin
//! on every store and merchant).

use crate::auth::Operator;
use crate::commands::merchants;
use crate::error::{ApiError, ErrorBody, parse_json};
use crate::state::AppState;
use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
pub use warehouse_db::merchants::Merchant;

/// A merchant in a path.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code, reason = "describes the path for the OpenAPI document")]
pub struct MerchantName {
    /// The merchant's name.
    #[param(min_length = 1, max_length = 63, pattern = r"^[a-z0-9][a-z0-9._-]{0,62}$")]
    merchant: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateMerchantRequest {
    /// Unique; lower-case letters, digits, `.`, `_` and `-`, starting with a letter or digit.
    #[schema(min_length = 1, max_length = 63, pattern = r"^[a-z0-9][a-z0-9._-]{0,62}$")]
    pub name: String,
}

/// The merchants a token may see.
#[derive(Serialize, Deserialize, ToSchema)]
pub struct MerchantList {
    pub merchants: Vec<Merchant>,
}

#[utoipa::path(
    get,
    path = "/api/v1/merchants",
    tag = "merchants",
    summary = "The merchants whose stock the token may see",
    responses(
        (status = 200, description = "By name", body = MerchantList),
    ),
)]
pub async fn list_merchants(state: web::Data<AppState>, operator: Operator) -> Result<HttpResponse, ApiError> {
    let merchants = merchants::list(&state, &operator).await?;
    Ok(HttpResponse::Ok().json(MerchantList { merchants }))
}

#[utoipa::path(
    post,
    path = "/api/v1/merchants",
    tag = "merchants",
    summary = "Create a merchant (admin on every store and merchant)",
    request_body = CreateMerchantRequest,
    responses(
        (status = 201, description = "The merchant", body = Merchant),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 403, description = "The token is not an admin on every store and merchant", body = ErrorBody),
        (status = 409, description = "`duplicate_name`: a merchant has this name", body = ErrorBody),
        (status = 422, description = "The name breaks the naming rule; `field` names it", body = ErrorBody),
    ),
)]
pub async fn create_merchant(
    state: web::Data<AppState>,
    operator: Operator,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    operator.require(crate::auth::Role::Admin)?;
    let request: CreateMerchantRequest = parse_json(&body)?;
    let merchant = merchants::create(&state, &operator, &request.name).await?;
    Ok(HttpResponse::Created().json(merchant))
}

#[utoipa::path(
    get,
    path = "/api/v1/merchants/{merchant}",
    tag = "merchants",
    summary = "One merchant",
    params(MerchantName),
    responses(
        (status = 200, description = "The merchant", body = Merchant),
        (status = 404, description = "No merchant of that name the token may see", body = ErrorBody),
    ),
)]
pub async fn get_merchant(
    state: web::Data<AppState>,
    operator: Operator,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let merchant = merchants::get(&state, &operator, &name).await?;
    Ok(HttpResponse::Ok().json(merchant))
}
