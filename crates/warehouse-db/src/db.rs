//! The four query methods every repository function needs, over any client or transaction.
//!
//! Through the pool's clients and transactions, statements are prepared once per connection
//! and cached (deadpool's statement cache): PostgreSQL then skips parsing, analysis and most
//! planning, which was a third of its CPU per order. Plain `tokio_postgres` clients (tests,
//! one-off tools) prepare each time.

use std::future::Future;
use tokio_postgres::types::{FromSql, ToSql};
use tokio_postgres::{Error, Row};

pub type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

pub trait Db: Sync {
    fn execute(&self, sql: &str, params: Params<'_>) -> impl Future<Output = Result<u64, Error>> + Send;
    fn query(&self, sql: &str, params: Params<'_>) -> impl Future<Output = Result<Vec<Row>, Error>> + Send;
    fn query_one(&self, sql: &str, params: Params<'_>) -> impl Future<Output = Result<Row, Error>> + Send;
    fn query_opt(&self, sql: &str, params: Params<'_>) -> impl Future<Output = Result<Option<Row>, Error>> + Send;
}

/// Pooled clients and transactions: prepare through the connection's statement cache.
macro_rules! cached {
    ($type:ty, $inner:ty) => {
        impl Db for $type {
            async fn execute(&self, sql: &str, params: Params<'_>) -> Result<u64, Error> {
                let statement = self.prepare_cached(sql).await?;
                <$inner>::execute(self, &statement, params).await
            }
            async fn query(&self, sql: &str, params: Params<'_>) -> Result<Vec<Row>, Error> {
                let statement = self.prepare_cached(sql).await?;
                <$inner>::query(self, &statement, params).await
            }
            async fn query_one(&self, sql: &str, params: Params<'_>) -> Result<Row, Error> {
                let statement = self.prepare_cached(sql).await?;
                <$inner>::query_one(self, &statement, params).await
            }
            async fn query_opt(&self, sql: &str, params: Params<'_>) -> Result<Option<Row>, Error> {
                let statement = self.prepare_cached(sql).await?;
                <$inner>::query_opt(self, &statement, params).await
            }
        }
    };
}

/// Plain `tokio_postgres` clients and transactions: prepare each time.
macro_rules! uncached {
    ($type:ty) => {
        impl Db for $type {
            async fn execute(&self, sql: &str, params: Params<'_>) -> Result<u64, Error> {
                <$type>::execute(self, sql, params).await
            }
            async fn query(&self, sql: &str, params: Params<'_>) -> Result<Vec<Row>, Error> {
                <$type>::query(self, sql, params).await
            }
            async fn query_one(&self, sql: &str, params: Params<'_>) -> Result<Row, Error> {
                <$type>::query_one(self, sql, params).await
            }
            async fn query_opt(&self, sql: &str, params: Params<'_>) -> Result<Option<Row>, Error> {
                <$type>::query_opt(self, sql, params).await
            }
        }
    };
}

cached!(deadpool_postgres::ClientWrapper, tokio_postgres::Client);
cached!(deadpool_postgres::Transaction<'_>, tokio_postgres::Transaction<'_>);
uncached!(tokio_postgres::Client);
uncached!(tokio_postgres::Transaction<'_>);

/// Reads column `index` as a domain type; a value the type does not accept (an unknown state)
/// is a permanent [`DbError::Decode`](crate::DbError::Decode), not a transient driver error.
pub(crate) fn column<'a, T: FromSql<'a>>(row: &'a Row, index: usize) -> crate::error::Result<T> {
    row.try_get(index)
        .map_err(|error| crate::DbError::Decode(error.to_string()))
}
