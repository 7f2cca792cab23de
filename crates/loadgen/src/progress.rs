//! Progress of a run, read from the warehouse database: orders in given states (of one site, or
//! among given orders), committed transactions, the connections the services hold, and waiting
//! until a count is reached.

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

/// The load generator's own connections say so (`application_name`), so that
/// [`Warehouse::connections`] counts only the services'.
const APPLICATION_NAME: &str = "wms-loadgen";

/// Connections to the database under test, from `pg_stat_activity`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Connections {
    /// Every connection open (pools keep idle ones).
    pub open: i64,
    /// Those running a statement or inside a transaction.
    pub busy: i64,
}

impl Warehouse {
    pub async fn connect(database_url: &str) -> anyhow::Result<Self> {
        let mut config: tokio_postgres::Config = database_url.parse().context("the database URL")?;
        config.application_name(APPLICATION_NAME);
        let (db, connection) = config.connect(tokio_postgres::NoTls).await.context("PostgreSQL")?;
        tokio::spawn(connection);
        Ok(Self { db })
    }

    /// Orders of `site_id` whose state is one of `states`.
    pub async fn site_orders_in(&self, site_id: &str, states: &[&str]) -> anyhow::Result<i64> {
        let row = self
            .db
            .query_one(
                "SELECT count(*) FROM orders WHERE site_id = $1 AND state = ANY($2)",
                &[&site_id, &states],
            )
            .await?;
        Ok(row.get(0))
    }

    /// How many of the orders with these Webflow ids are in `state`.
    pub async fn orders_with_ids_in(&self, webflow_order_ids: &[String], state: &str) -> anyhow::Result<i64> {
        let row = self
            .db
            .query_one(
                "SELECT count(*) FROM orders WHERE webflow_order_id = ANY($1) AND state = $2",
                &[&webflow_order_ids, &state],
            )
            .await?;
        Ok(row.get(0))
    }

    /// Connections to this database other than the load generator's.
    pub async fn connections(&self) -> anyhow::Result<Connections> {
        let row = self
            .db
            .query_one(
                "SELECT count(*), count(*) FILTER (WHERE state <> 'idle') FROM pg_stat_activity \
                 WHERE datname = current_database() AND application_name <> $1",
                &[&APPLICATION_NAME],
            )
            .await?;
        Ok(Connections {
            open: row.get(0),
            busy: row.get(1),
        })
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
