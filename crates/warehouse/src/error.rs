//! API errors: a stable `code`, a message, and the field when one is at fault.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};

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
        let mut body = serde_json::json!({"code": self.code, "message": self.message});
        if let Some(field) = &self.field {
            body["field"] = field.clone().into();
        }
        HttpResponse::build(self.status).json(body)
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
