//! Operator tokens kept in the database: create (the token is shown once), list, revoke.
//! Admin only. The config file's tokens are listed too, marked `config`, and cannot be revoked
//! here.

use crate::auth::{Operator, Role};
use crate::commands::tokens::{self, NewToken};
pub use crate::commands::tokens::{CreatedToken, TokenInfo, TokenSource};
use crate::error::{ApiError, ErrorBody};
use crate::state::AppState;
use actix_web::{HttpResponse, web};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

/// A token's role (see the document's description).
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
#[allow(dead_code, reason = "describes `CreateTokenRequest::role` for the OpenAPI document")]
pub enum TokenRole {
    Read,
    Floor,
    Admin,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTokenRequest {
    /// Unique among every token (config file and database, revoked ones included); shown as
    /// the actor of everything done with the token.
    #[schema(min_length = 1, max_length = 100, pattern = r"^[^\x00-\x1F\x7F-\x9F/]+$")]
    pub name: String,
    #[schema(value_type = TokenRole)]
    pub role: Role,
    /// `["*"]` for every store, or Webflow site ids.
    #[schema(min_items = 1)]
    pub sites: Vec<String>,
    /// Merchants whose stock the token may read or change: `["*"]` (the default) for every
    /// merchant, or merchant names (each must exist). Intersected with the stores' merchants.
    #[serde(default = "every_merchant")]
    #[schema(min_items = 1)]
    pub merchants: Vec<String>,
}

fn every_merchant() -> Vec<String> {
    vec!["*".to_owned()]
}

/// A token in a path.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code, reason = "describes the path for the OpenAPI document")]
pub struct TokenName {
    /// The token's name.
    #[param(min_length = 1, pattern = r"^[^\x00-\x1F\x7F-\x9F]+$")]
    name: String,
}

#[utoipa::path(
    post,
    path = "/api/v1/tokens",
    tag = "tokens",
    summary = "Create an operator token (admin); the token is in this answer only",
    request_body = CreateTokenRequest,
    responses(
        (status = 201, description = "The token, shown this once; only its SHA-256 is stored", body = CreatedToken),
        (status = 400, description = "Malformed JSON", body = ErrorBody),
        (status = 403, description = "The token's role is not `admin`", body = ErrorBody),
        (status = 409, description = "`duplicate_name`: a token has this name", body = ErrorBody),
        (status = 422, description = "A field breaks a rule (an unknown role or field, an unknown merchant); `field` names it", body = ErrorBody),
    ),
)]
pub async fn create_token(
    state: web::Data<AppState>,
    operator: Operator,
    body: web::Bytes,
) -> Result<HttpResponse, ApiError> {
    operator.require(Role::Admin)?;
    let request: CreateTokenRequest = crate::error::parse_json(&body)?;
    let created = tokens::create(
        &state,
        &operator,
        NewToken {
            name: request.name,
            role: request.role,
            sites: request.sites,
            merchants: request.merchants,
        },
    )
    .await?;
    Ok(HttpResponse::Created()
        .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
        .json(created))
}

#[utoipa::path(
    get,
    path = "/api/v1/tokens",
    tag = "tokens",
    summary = "Every operator token (admin): config file and database, never a token itself",
    responses(
        (status = 200, description = "The tokens", body = Vec<TokenInfo>),
        (status = 403, description = "The token's role is not `admin`", body = ErrorBody),
    ),
)]
pub async fn list_tokens(state: web::Data<AppState>, operator: Operator) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(tokens::list(&state, &operator).await?))
}

#[utoipa::path(
    delete,
    path = "/api/v1/tokens/{name}",
    tag = "tokens",
    summary = "Revoke a database token (admin); refused at once, its console sessions end",
    params(TokenName),
    responses(
        (status = 204, description = "Revoked (or revoked before)"),
        (status = 400, description = "The path is not valid UTF-8 once decoded", body = ErrorBody),
        (status = 403, description = "The token's role is not `admin`", body = ErrorBody),
        (status = 404, description = "No token has this name", body = ErrorBody),
        (status = 409, description = "`config_token`: the token is in the config file; remove it there", body = ErrorBody),
        (status = 422, description = "The name contains control characters", body = ErrorBody),
    ),
)]
pub async fn revoke_token(
    state: web::Data<AppState>,
    operator: Operator,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    tokens::revoke(&state, &operator, &path.into_inner()).await?;
    Ok(HttpResponse::NoContent().finish())
}
