//! The warehouse's state-changing operations, called by the API (`routes`), the console and the
//! auto-packer alike: plain async functions over typed inputs that return typed results and a
//! [`CommandError`], with no HTTP types. Each checks the operator's role and stores itself, so
//! no caller can skip a check.
//!
//! Every command that emits events runs inside [`with_outbox`]: one transaction holds its
//! writes, its audit rows and its outbox rows; the events are published after the commit (a
//! publish that fails is the outbox relay's to retry).

pub mod inventory;
pub mod merchants;
pub mod orders;
pub mod packing;
pub mod stores;
pub mod tokens;

use crate::auth::AccessError;
use crate::state::AppState;
use domain::Envelope;
use warehouse_db::{DbError, Transaction};

/// Why a command did nothing. The HTTP layer maps each variant to a status and a stable
/// `code` (`crate::error`); the console shows the same as a page.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// A role too low, or something outside the operator's stores.
    #[error(transparent)]
    Access(#[from] AccessError),
    /// An input breaks a rule; `field` names it.
    #[error("{message}")]
    Invalid { field: String, message: String },
    /// A count beyond what a 64-bit integer holds (`stock_overflow`): a bad input, not a
    /// conflict with the stored state.
    #[error("{message}")]
    StockOverflow { field: String, message: String },
    /// Nothing with that id.
    #[error("{0}")]
    NotFound(String),
    /// The stored state does not allow it; `code` says why (`wrong_state`, `below_reserved`...).
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    /// Webflow refused a call (a token it does not accept, a webhook it would not create):
    /// its message, passed on.
    #[error("Webflow refused: {0}")]
    WebflowRefused(String),
    /// Webflow could not be reached or failed (timeout, 5xx): nothing was changed; try again.
    #[error("Webflow is unavailable: {0}")]
    WebflowUnavailable(String),
    #[error(transparent)]
    Database(#[from] DbError),
}

impl CommandError {
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        Self::Invalid {
            field: field.to_owned(),
            message: message.into(),
        }
    }

    pub fn conflict(code: &'static str, message: impl Into<String>) -> Self {
        Self::Conflict {
            code,
            message: message.into(),
        }
    }
}

impl From<tokio_postgres::Error> for CommandError {
    fn from(error: tokio_postgres::Error) -> Self {
        Self::Database(error.into())
    }
}

impl From<warehouse_db::pool::PoolError> for CommandError {
    fn from(error: warehouse_db::pool::PoolError) -> Self {
        Self::Database(error.into())
    }
}

/// Rejects text the database cannot hold or an operator cannot read: control characters
/// (`char::is_control`, which includes NUL). `max_bytes` bounds the UTF-8 length.
pub fn printable(field: &str, value: &str, max_bytes: Option<usize>) -> Result<(), CommandError> {
    if value.chars().any(char::is_control) {
        return Err(CommandError::invalid(
            field,
            format!("{field} cannot contain control characters"),
        ));
    }
    if let Some(max) = max_bytes
        && value.len() > max
    {
        return Err(CommandError::invalid(field, format!("{field} is at most {max} bytes")));
    }
    Ok(())
}

/// The one transaction skeleton of every command that emits events: begin, run `command`
/// (its writes, audit rows and outbox rows, returning its result and the events it wrote),
/// commit, then publish the events. A command that fails rolls everything back. A publish that
/// fails is only logged: the event is committed and the outbox relay publishes it.
///
/// The events are published by their source (the operator and the message id, as [`enqueue`]
/// writes them): a repeated request whose outbox row existed already publishes nothing twice.
pub async fn with_outbox<T>(
    state: &AppState,
    actor: &str,
    command: impl AsyncFnOnce(&Transaction<'_>) -> Result<(T, Vec<Envelope>), CommandError>,
) -> Result<T, CommandError> {
    let (value, events) = in_transaction(&state.pool, command).await?;
    for event in &events {
        if let Err(error) = state.outbox.publish_for(actor, event.message_id.as_str()).await {
            tracing::warn!(%error, message_id = %event.message_id, "event committed; the outbox relay will publish it");
        }
    }
    Ok(value)
}

/// Begin, run `command`, commit: the part of [`with_outbox`] that a command emitting nothing
/// (marking a task picked) and the auto-packer share; the auto-packer publishes its batch its
/// own way (see [`packing::auto_pack`]).
async fn in_transaction<T>(
    pool: &warehouse_db::Pool,
    command: impl AsyncFnOnce(&Transaction<'_>) -> Result<T, CommandError>,
) -> Result<T, CommandError> {
    let mut client = pool.get().await?;
    let tx = client.transaction().await?;
    let value = command(&tx).await?;
    tx.commit().await?;
    Ok(value)
}

/// Writes `event` to the outbox with the operator as its source, so [`with_outbox`] publishes
/// it after the commit.
pub async fn enqueue(tx: &Transaction<'_>, actor: &str, event: &Envelope) -> Result<(), CommandError> {
    warehouse_db::outbox::enqueue(tx, event, Some((actor, event.message_id.as_str()))).await?;
    Ok(())
}
