//! Progress of a run, read from the warehouse database: orders in given states, committed
//! transactions, and waiting until a count is reached.

use anyhow::{Context, bail};
use std::time::{Duration, Instant};

/// How to wait for a count: how often to look, and how long without progress means a stall.
#[derive(Clone, Copy, Debug)]
pub struct Wait {
    pub poll: Duration,
    /// A service is down when nothing moves for this long (rather than after a fixed time).
    pub stall_after: Duration,
}

/// A connection to the warehouse database under test.
pub struct Warehouse {
    db: tokio_postgres::Client,
}

impl Warehouse {
    pub async fn connect(database_url: &str) -> anyhow::Result<Self> {
        let (db, connection) = tokio_postgres::connect(database_url, tokio_postgres::NoTls)
            .await
            .context("PostgreSQL")?;
        tokio::spawn(connection);
        Ok(Self { db })
    }

    /// Orders whose state is one of `states`.
    pub async fn orders_in(&self, states: &[&str]) -> anyhow::Result<i64> {
        let row = self
            .db
            .query_one("SELECT count(*) FROM orders WHERE state = ANY($1)", &[&states])
            .await?;
        Ok(row.get(0))
    }

    /// Transactions committed in this database so far (PostgreSQL updates it when a backend reports).
    pub async fn transactions(&self) -> anyhow::Result<i64> {
        let row = self
            .db
            .query_one(
                "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()",
                &[],
            )
            .await?;
        Ok(row.get(0))
    }

    /// Waits until `goal` orders are in `states`; `from` is the count the run started at.
    pub async fn wait_for(&self, states: &[&str], from: i64, goal: i64, wait: Wait) -> anyhow::Result<()> {
        let (mut last, mut last_progress) = (from, Instant::now());
        loop {
            let now = self.orders_in(states).await?;
            if now >= goal {
                return Ok(());
            }
            if now != last {
                (last, last_progress) = (now, Instant::now());
            } else if last_progress.elapsed() > wait.stall_after {
                bail!(
                    "stalled: {} of {} orders {}, none in the last {} s (see the service logs)",
                    now - from,
                    goal - from,
                    states.join(" or "),
                    wait.stall_after.as_secs()
                );
            }
            tokio::time::sleep(wait.poll).await;
        }
    }
}
