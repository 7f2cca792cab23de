//! The warehouse database (PostgreSQL): connection pool, versioned migrations, and the
//! repositories the workers share. Every function that changes state takes the caller's
//! transaction, so a handler's state change, its idempotency record, its outbox events and
//! its audit entries commit together or not at all.
//!
//! This crate knows SQL and the domain types; it knows nothing of AMQP or HTTP.

pub mod audit;
pub mod console;
pub mod console_sessions;
pub mod db;
pub mod error;
pub mod floor;
pub mod idempotency;
pub mod inventory;
pub mod inventory_sync;
pub mod job_lock;
pub mod locks;
pub mod merchants;
pub mod migrate;
pub mod operator_tokens;
pub mod order_view;
pub mod orders;
pub mod outbox;
pub mod pool;
pub mod rate_budget;
pub mod retention;
pub mod store_admin;
pub mod store_names;
pub mod stores;
pub mod webflow_writes;

pub use db::Db;
pub use deadpool_postgres::Transaction;
pub use error::DbError;
pub use order_view::OrderView;
pub use pool::{ConnectOptions, Pool, SslMode, connect};
