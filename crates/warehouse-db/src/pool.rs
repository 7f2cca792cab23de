//! The connection pool.

use crate::error::{DbError, Result};
use deadpool_postgres::{Manager, ManagerConfig, RecyclingMethod};
use secrecy::{ExposeSecret, SecretString};
use std::str::FromStr;
use std::time::Duration;
use tokio_postgres::NoTls;
use tokio_postgres::error::SqlState;

pub use deadpool_postgres::{Object, Pool, PoolError};

/// Builds a pool and checks that the database answers. A database that does not exist is
/// reported as [`DbError::DatabaseMissing`].
pub async fn connect(url: &SecretString, size: usize) -> Result<Pool> {
    let config =
        tokio_postgres::Config::from_str(url.expose_secret()).map_err(|e| DbError::InvalidUrl(e.to_string()))?;
    let dbname = config.get_dbname().unwrap_or("postgres").to_owned();
    let manager = Manager::from_config(
        config,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    let pool = Pool::builder(manager)
        .max_size(size.max(1))
        .wait_timeout(Some(Duration::from_secs(10)))
        .create_timeout(Some(Duration::from_secs(5)))
        .recycle_timeout(Some(Duration::from_secs(5)))
        .runtime(deadpool_postgres::Runtime::Tokio1)
        .build()
        .map_err(|e| DbError::InvalidUrl(e.to_string()))?;
    match pool.get().await {
        Ok(_) => Ok(pool),
        Err(deadpool_postgres::PoolError::Backend(error)) if error.code() == Some(&SqlState::INVALID_CATALOG_NAME) => {
            Err(DbError::DatabaseMissing(dbname))
        }
        Err(error) => Err(error.into()),
    }
}
