use tokio_postgres::error::SqlState;

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database `{0}` does not exist; create it (createdb -h <host> -U postgres {0}) or fix database.url")]
    DatabaseMissing(String),
    #[error("invalid database.url: {0}")]
    InvalidUrl(String),
    #[error("cannot get a database connection: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error("database error: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    #[error("migration failed: {0}")]
    Migration(String),
    #[error("{0}")]
    Conflict(String),
}

impl DbError {
    /// Worth retrying: lost connections, timeouts, serialization failures and deadlocks.
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
                            || *code == SqlState::ADMIN_SHUTDOWN
                            || *code == SqlState::CANNOT_CONNECT_NOW
                            || *code == SqlState::TOO_MANY_CONNECTIONS
                            || code.code().starts_with("08")
                    }
                    // No SQLSTATE: an I/O or protocol failure.
                    None => true,
                }
            }
            Self::DatabaseMissing(_) | Self::InvalidUrl(_) | Self::Migration(_) | Self::Conflict(_) => false,
        }
    }

    /// A unique-constraint violation (someone else did it first).
    pub fn is_unique_violation(&self) -> bool {
        matches!(self, Self::Postgres(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION))
    }
}

pub type Result<T, E = DbError> = std::result::Result<T, E>;
