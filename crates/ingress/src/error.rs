//! Why a webhook was not accepted, and the status Webflow gets for it.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use platform::amqp::PublishError;
use platform::http_error::ErrorBody;
use webflow::SignatureError;

#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    #[error("no store serves Webflow site `{0}` here")]
    UnknownSite(String),
    #[error("the body is larger than {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("cannot read the request body: {0}")]
    ReadBody(String),
    /// A slow sender (slow-loris) holds a worker's memory and a connection: cut it.
    #[error("the body did not arrive within {limit_ms} ms")]
    BodyTimeout { limit_ms: u64 },
    #[error("webhook signature rejected: {0}")]
    Signature(#[from] SignatureError),
    #[error("the body is not a Webflow webhook: {0}")]
    InvalidPayload(String),
    #[error("could not hand the webhook to the queue: {0}")]
    Publish(#[from] PublishError),
}

impl WebhookError {
    /// A short stable label for metrics and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::UnknownSite(_) => "unknown_site",
            Self::PayloadTooLarge { .. } => "body_too_large",
            Self::ReadBody(_) => "body_read_error",
            Self::BodyTimeout { .. } => "body_timeout",
            Self::Signature(error) => error.reason(),
            Self::InvalidPayload(_) => "invalid_payload",
            Self::Publish(error) => error.reason(),
        }
    }

    fn code(&self) -> &'static str {
        match self {
            Self::UnknownSite(_) => "unknown_site",
            Self::PayloadTooLarge { .. } => "payload_too_large",
            Self::ReadBody(_) => "bad_request",
            Self::BodyTimeout { .. } => "body_timeout",
            Self::Signature(_) => "invalid_signature",
            Self::InvalidPayload(_) => "invalid_payload",
            Self::Publish(_) => "queue_unavailable",
        }
    }
}

impl ResponseError for WebhookError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::UnknownSite(_) => StatusCode::NOT_FOUND,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::ReadBody(_) | Self::InvalidPayload(_) => StatusCode::BAD_REQUEST,
            Self::BodyTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
            Self::Signature(_) => StatusCode::UNAUTHORIZED,
            // Webflow retries anything but 200: the webhook is not lost.
            Self::Publish(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        if matches!(self, Self::Publish(_)) {
            response.insert_header(("Retry-After", "5"));
        }
        if matches!(
            self,
            Self::BodyTimeout { .. } | Self::PayloadTooLarge { .. } | Self::ReadBody(_)
        ) {
            // The rest of the body is never read: the connection cannot carry another request.
            response.force_close();
        }
        // The workspace's one error shape (`platform::http_error`); no field is ever at fault here.
        response.json(ErrorBody::new(self.code(), self.to_string()))
    }
}
