//! The warehouse database's errors, each cause its own variant, classified for retries.

use tokio_postgres::error::SqlState;

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database `{0}` does not exist; create it (createdb -h <host> -U postgres {0}) or fix database.url")]
    DatabaseMissing(String),
    #[error("invalid database.url: {0}")]
    InvalidUrl(String),
    #[error("cannot get a database connection: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error("database error: {}", server_message(.0))]
    Postgres(#[from] tokio_postgres::Error),
    #[error("migration failed: {0}")]
    Migration(String),
    /// Someone else changed the row first (optimistic lock): reread and try again.
    #[error("{0}")]
    ConcurrentChange(String),
    /// The lifecycle does not allow this change from the order's current state.
    #[error(transparent)]
    Transition(#[from] domain::TransitionError),
    /// A column holds a value its domain type does not read: a state this build does not know,
    /// an address that is not one (a newer schema, or a hand edit).
    #[error("unreadable value in the database: {0}")]
    Decode(String),
    /// A column holds a value none of our enums names (a newer schema, or a hand edit).
    #[error(transparent)]
    UnknownValue(#[from] UnknownValue),
    #[error("cannot serialise {what}: {message}")]
    Serialize { what: &'static str, message: String },
    /// The rate budget row is missing: the process that owns it has not set it up yet.
    #[error("no rate budget `{0}` (set up at start by the services that call Webflow)")]
    MissingRateBudget(String),
    /// A statement did less than the locks it holds guarantee; retried, never half-applied.
    #[error("{0}")]
    Invariant(String),
    /// A `[database]` setting the pool cannot use (a CA file that does not parse…).
    #[error("invalid setting `{key}`: {message}")]
    Config { key: &'static str, message: String },
}

/// A database string that maps onto none of an enum's values (audit kinds, statuses, steps).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} in the database: `{value}`")]
pub struct UnknownValue {
    pub what: &'static str,
    pub value: String,
}

impl UnknownValue {
    pub fn new(what: &'static str, value: &str) -> Self {
        Self {
            what,
            value: value.to_owned(),
        }
    }
}

/// The server's message and SQLSTATE (tokio-postgres shows only "db error"); never its
/// `detail`, which may quote row values (customer data stays out of logs and dead letters).
fn server_message(error: &tokio_postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => format!("{} (SQLSTATE {})", db.message(), db.code().code()),
        None => error.to_string(),
    }
}

impl DbError {
    /// Worth retrying: lost connections, timeouts, serialization failures, deadlocks and
    /// optimistic-lock conflicts.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Pool(_) => true,
            Self::Postgres(error) => {
                if error.is_closed() {
                    return true;
                }
                match error.code() {
                    Some(code) => {
                        *code == SqlState::T_R_SERIALIZATION_FAILURE
                            || *code == SqlState::T_R_DEADLOCK_DETECTED
                            || *code == SqlState::LOCK_NOT_AVAILABLE
                            // statement_timeout: the database was slow, not the request wrong.
                            || *code == SqlState::QUERY_CANCELED
                            || *code == SqlState::ADMIN_SHUTDOWN
                            || *code == SqlState::CANNOT_CONNECT_NOW
                            || *code == SqlState::TOO_MANY_CONNECTIONS
                            || code.code().starts_with("08")
                    }
                    // No SQLSTATE: an I/O or protocol failure.
                    None => true,
                }
            }
            // A transition is checked against the state as read: a reread may allow it.
            Self::ConcurrentChange(_) | Self::Transition(_) | Self::MissingRateBudget(_) | Self::Invariant(_) => true,
            Self::DatabaseMissing(_)
            | Self::InvalidUrl(_)
            | Self::Migration(_)
            | Self::Decode(_)
            | Self::UnknownValue(_)
            | Self::Serialize { .. }
            | Self::Config { .. } => false,
        }
    }
}

impl domain::Classify for DbError {
    fn class(&self) -> domain::FailureClass {
        if self.is_transient() {
            domain::FailureClass::Transient
        } else {
            domain::FailureClass::Permanent
        }
    }

    fn source_name(&self) -> &'static str {
        "database"
    }
}

pub type Result<T, E = DbError> = std::result::Result<T, E>;
