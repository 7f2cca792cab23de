//! API errors: a stable `code`, a message, and the field when one is at fault. Every error the
//! API answers has this one JSON shape ([`ErrorBody`]): handler errors, extractor errors
//! (path, query, JSON body), unknown routes (404) and undeclared methods (405, with `Allow`).

use crate::auth::AccessError;
use crate::commands::CommandError;
use actix_web::body::MessageBody;
use actix_web::dev::ServiceResponse;
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::ErrorHandlerResponse;
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};

/// The body of every error response: the workspace's one error shape (`platform::http_error`).
pub use platform::http_error::ErrorBody;

#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub field: Option<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            field: None,
        }
    }

    pub fn field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    pub fn not_found(what: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", what)
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, message)
    }

    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed", message).field(field)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "a valid `Authorization: Bearer <token>` header is required",
        )
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        HttpResponse::build(self.status)
            .json(ErrorBody::new(self.code, self.message.clone()).with_field(self.field.clone()))
    }
}

impl From<warehouse_db::DbError> for ApiError {
    fn from(error: warehouse_db::DbError) -> Self {
        match &error {
            warehouse_db::DbError::ConcurrentChange(message) => return Self::conflict("conflict", message.clone()),
            warehouse_db::DbError::Transition(transition) => {
                return Self::conflict("invalid_transition", transition.to_string());
            }
            _ => {}
        }
        tracing::error!(error.message = %error, "database error");
        let status = if error.is_transient() {
            StatusCode::SERVICE_UNAVAILABLE
        } else {
            StatusCode::INTERNAL_SERVER_ERROR
        };
        Self::new(status, "database_error", "the warehouse database failed; try again")
    }
}

impl From<tokio_postgres::Error> for ApiError {
    fn from(error: tokio_postgres::Error) -> Self {
        warehouse_db::DbError::from(error).into()
    }
}

impl From<warehouse_db::pool::PoolError> for ApiError {
    fn from(error: warehouse_db::pool::PoolError) -> Self {
        warehouse_db::DbError::from(error).into()
    }
}

impl From<AccessError> for ApiError {
    fn from(error: AccessError) -> Self {
        match error {
            AccessError::Unauthorized => Self::unauthorized(),
            AccessError::Forbidden(message) => Self::forbidden(message),
            AccessError::NotFound(message) => Self::not_found(message),
            error @ AccessError::MerchantRequired => Self::conflict("merchant_required", error.to_string()),
            AccessError::Database(error) => error.into(),
        }
    }
}

/// The bearer-token extractor's rejection answers in the same JSON shape.
impl ResponseError for AccessError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::MerchantRequired => StatusCode::CONFLICT,
            Self::Database(error) if error.is_transient() => StatusCode::SERVICE_UNAVAILABLE,
            Self::Database(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let error = match self {
            Self::Unauthorized => ApiError::unauthorized(),
            Self::Forbidden(message) => ApiError::forbidden(message.clone()),
            Self::NotFound(message) => ApiError::not_found(message.clone()),
            Self::MerchantRequired => ApiError::conflict("merchant_required", self.to_string()),
            Self::Database(_) => ApiError::new(
                self.status_code(),
                "database_error",
                "the warehouse database failed; try again",
            ),
        };
        error.error_response()
    }
}

impl From<CommandError> for ApiError {
    fn from(error: CommandError) -> Self {
        match error {
            CommandError::Access(error) => error.into(),
            CommandError::Invalid { field, message } => Self::invalid(&field, message),
            CommandError::StockOverflow { field, message } => {
                Self::new(StatusCode::UNPROCESSABLE_ENTITY, "stock_overflow", message).field(field)
            }
            CommandError::NotFound(message) => Self::not_found(message),
            CommandError::Conflict { code, message } => Self::conflict(code, message),
            CommandError::WebflowRefused(message) => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "webflow_refused",
                format!("Webflow refused: {message}"),
            ),
            CommandError::WebflowUnavailable(message) => Self::new(
                StatusCode::BAD_GATEWAY,
                "webflow_unavailable",
                format!("Webflow is unavailable, nothing was changed; try again: {message}"),
            ),
            CommandError::Database(error) => error.into(),
        }
    }
}

/// Parses a JSON body, naming the field at fault: 400 for malformed JSON, 422 for a wrong type.
pub fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let path = error.path().to_string();
        let inner = error.into_inner();
        if inner.is_syntax() || inner.is_eof() {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "malformed_json",
                format!("the body is not valid JSON: {inner}"),
            )
        } else {
            let field = if path == "." { "body".to_owned() } else { path };
            ApiError::invalid(&field, format!("`{field}`: {inner}"))
        }
    })
}

/// Rejects text the database cannot hold or an operator cannot read (see
/// [`crate::commands::printable`]).
pub fn printable(field: &str, value: &str, max_bytes: Option<usize>) -> Result<(), ApiError> {
    Ok(crate::commands::printable(field, value, max_bytes)?)
}

/// Path segments that do not deserialise (a pick-task id that is not a number, invalid
/// UTF-8 after percent-decoding): 400 `invalid_path`.
pub fn path_config() -> web::PathConfig {
    web::PathConfig::default().error_handler(|error, _| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_path",
            format!("the path is not valid: {error}"),
        )
        .into()
    })
}

/// Query strings that do not deserialise (`limit=ten`): 400 `invalid_query`.
pub fn query_config() -> web::QueryConfig {
    web::QueryConfig::default().error_handler(|error, _| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_query",
            format!("the query string is not valid: {error}"),
        )
        .into()
    })
}

/// `web::Json` bodies, with the same mapping as [`parse_json`]: 400 malformed, 422 wrong
/// shape, 413 too large, 415 not JSON.
pub fn json_config() -> web::JsonConfig {
    web::JsonConfig::default().error_handler(|error, _| {
        use actix_web::error::JsonPayloadError;
        match &error {
            JsonPayloadError::Deserialize(inner) if inner.is_data() => {
                ApiError::invalid("body", format!("`body`: {inner}"))
            }
            JsonPayloadError::Overflow { .. } | JsonPayloadError::OverflowKnownLength { .. } => {
                ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", error.to_string())
            }
            JsonPayloadError::ContentType => ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "the body must be `application/json`",
            ),
            _ => ApiError::new(
                StatusCode::BAD_REQUEST,
                "malformed_json",
                format!("the body is not valid JSON: {error}"),
            ),
        }
        .into()
    })
}

/// No route has this path: 404 in the JSON shape.
pub async fn unknown_route(request: HttpRequest) -> HttpResponse {
    ApiError::not_found(format!("no route `{}`", request.path())).error_response()
}

/// Turns any error response that is not JSON yet (actix's own 405 with `Allow`, 404, 413
/// from the payload limit...) into the JSON shape, keeping its status and headers.
pub fn json_error_body<B: MessageBody + 'static>(
    response: ServiceResponse<B>,
) -> actix_web::Result<ErrorHandlerResponse<B>> {
    // JSON errors, and the console's own error pages (HTML), stay as they are.
    let keep = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json") || v.as_bytes().starts_with(b"text/html"));
    if keep {
        return Ok(ErrorHandlerResponse::Response(response.map_into_left_body()));
    }
    let status = response.status();
    let (code, message) = match status {
        StatusCode::METHOD_NOT_ALLOWED => {
            let allowed = response
                .headers()
                .get(header::ALLOW)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default();
            (
                "method_not_allowed",
                format!(
                    "`{}` is not allowed on `{}`; allowed: {allowed}",
                    response.request().method(),
                    response.request().path()
                ),
            )
        }
        StatusCode::NOT_FOUND => ("not_found", format!("no route `{}`", response.request().path())),
        StatusCode::PAYLOAD_TOO_LARGE => ("payload_too_large", "the body is too large".to_owned()),
        status if status.is_server_error() => ("internal_error", "the request failed; try again".to_owned()),
        status => (
            "bad_request",
            status.canonical_reason().unwrap_or("bad request").to_owned(),
        ),
    };
    let body = serde_json::to_string(&ErrorBody::new(code, message)).unwrap_or_default();
    let (request, mut response) = response.into_parts();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    let response = response.set_body(body).map_into_boxed_body();
    Ok(ErrorHandlerResponse::Response(
        ServiceResponse::new(request, response).map_into_right_body(),
    ))
}
