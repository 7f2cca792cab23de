//! How a handler says a message failed.

use domain::{Classify, FailureClass};
use std::time::Duration;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// Might work later (network, timeouts, 5xx, 429, serialization failures): retried with backoff.
    Transient,
    /// Will never work (malformed payload, 4xx other than 429): dead-lettered at once.
    Permanent,
    /// Not a failure: something else must finish first (a busy order, a full rate budget).
    /// Tried again after `retry_after` without using up an attempt.
    Deferred,
}

#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct HandlerError {
    pub kind: ErrorKind,
    pub message: String,
    /// A minimum wait the remote side asked for (`Retry-After`).
    pub retry_after: Option<Duration>,
    /// For a deferral: kept with the message (header [`crate::RESUME_TOKEN`]) and handed back
    /// on its next delivery ([`crate::IncomingMessage::resume_token`]).
    pub resume_token: Option<String>,
}

impl HandlerError {
    pub fn transient(message: impl Into<String>) -> Self {
        Self {
            kind: ErrorKind::Transient,
            message: message.into(),
            retry_after: None,
            resume_token: None,
        }
    }

    pub fn permanent(message: impl Into<String>) -> Self {
        Self {
            kind: ErrorKind::Permanent,
            message: message.into(),
            retry_after: None,
            resume_token: None,
        }
    }

    pub fn deferred(message: impl Into<String>, retry_after: Duration) -> Self {
        Self {
            kind: ErrorKind::Deferred,
            message: message.into(),
            retry_after: Some(retry_after),
            resume_token: None,
        }
    }

    pub fn with_retry_after(mut self, retry_after: Option<Duration>) -> Self {
        self.retry_after = retry_after;
        self
    }

    pub fn is_transient(&self) -> bool {
        self.kind == ErrorKind::Transient
    }
}

impl HandlerError {
    /// Any error that classifies itself (Webflow, the rate budget, a carrier, the database).
    pub fn classified<E: Classify>(error: E) -> Self {
        let message = format!("{}: {error}", error.source_name());
        match error.class() {
            FailureClass::Transient => Self::transient(message).with_retry_after(error.retry_after()),
            FailureClass::Permanent => Self::permanent(message),
            FailureClass::Deferred(wait) => Self {
                resume_token: error.resume_token(),
                ..Self::deferred(message, wait)
            },
        }
    }
}

impl From<warehouse_db::DbError> for HandlerError {
    fn from(error: warehouse_db::DbError) -> Self {
        Self::classified(error)
    }
}

impl From<tokio_postgres::Error> for HandlerError {
    fn from(error: tokio_postgres::Error) -> Self {
        warehouse_db::DbError::from(error).into()
    }
}

impl From<warehouse_db::pool::PoolError> for HandlerError {
    fn from(error: warehouse_db::pool::PoolError) -> Self {
        warehouse_db::DbError::from(error).into()
    }
}
