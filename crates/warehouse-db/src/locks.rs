//! Per-order work leases, for handlers whose external calls must not run twice at once for the
//! same order (two deliveries of the same event can be handled concurrently before either
//! commits its idempotency record).
//!
//! A lease is a row of `order_leases` with a random token and an expiry, taken by
//! compare-and-set (free, or expired). It is fenced: the holder checks its token right before
//! each external call ([`OrderLock::confirm`], which also extends it) and in the transaction
//! that records the call's result ([`OrderLock::finish_in`], which ends it). A holder whose
//! lease expired and was taken over can therefore neither call out again nor record a
//! result. Unlike the session advisory lock it replaces, a lease does not vanish when its
//! holder's connection dies while the holder carries on; a crashed holder's lease is free
//! once it expires ([`LEASE_TTL`]; a live holder renews it in the background).
//!
//! A call that may outlast [`LEASE_TTL`] (a carrier booking: two HTTP calls of up to 15 s
//! each) is confirmed with [`OrderLock::confirm_for`], which extends the lease to cover the
//! call's time limit and a whole [`LEASE_TTL`] after it: the lease cannot lapse during the call
//! even if the background renewal stalls (a slow database, a starved runtime). No statement
//! ever shortens a lease: every extension keeps the later of the two expiries.

use crate::db::Db;
use crate::error::Result;
use crate::orders::{self, OrderRecord};
use crate::pool::Pool;
use domain::{OrderId, OrderState, SiteId};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// How long a lease lasts without renewal (a crashed holder's orders wait this long).
pub const LEASE_TTL: Duration = Duration::from_secs(15);

pub struct OrderLock {
    pool: Pool,
    order_pk: i64,
    purpose: String,
    token: uuid::Uuid,
    /// Set once the lease is known to be gone (renewal found another token).
    lost: Arc<AtomicBool>,
    /// Set once the lease was ended (released, or finished in a transaction).
    ended: bool,
    renewal: tokio::task::JoinHandle<()>,
}

fn ttl_secs() -> f64 {
    LEASE_TTL.as_secs_f64()
}

/// Extends a lease still held to at least `secs` from now (never shortens it: a lease
/// extended for a long call keeps that expiry through the renewals).
async fn extend<C: Db>(client: &C, order_pk: i64, purpose: &str, token: &uuid::Uuid, secs: f64) -> Result<bool> {
    let row = client
        .query_opt(
            "UPDATE order_leases SET expires_at = GREATEST(expires_at, now() + make_interval(secs => $4))
             WHERE order_id = $1 AND purpose = $2 AND token = $3 AND expires_at > now() RETURNING 1",
            &[&order_pk, &purpose, token, &secs],
        )
        .await?;
    Ok(row.is_some())
}

/// A CTE `held` that confirms and extends a lease, for statements that record something only
/// while the lease is ours (one round trip for the check and the write). Its parameters are
/// `$1` order pk, `$2` purpose, `$3` lifetime in seconds, `$4` token ([`OrderLock::fence`]).
macro_rules! held_lease_cte {
    () => {
        "held AS (
             UPDATE order_leases SET expires_at = GREATEST(expires_at, now() + make_interval(secs => $3))
             WHERE order_id = $1 AND purpose = $2 AND token = $4 AND expires_at > now() RETURNING 1)"
    };
}
pub(crate) use held_lease_cte;

/// The parameters [`held_lease_cte`] takes, in order.
pub(crate) struct Fence<'a> {
    pub order_pk: i64,
    pub purpose: &'a str,
    pub ttl_secs: f64,
    pub token: &'a uuid::Uuid,
}

type Param<'p> = &'p (dyn tokio_postgres::types::ToSql + Sync);

impl<'a> Fence<'a> {
    /// The parameters of a statement opening with [`held_lease_cte!`]: `$1`–`$4` the fence's,
    /// in the order the CTE reads them, then `rest` from `$5`.
    pub(crate) fn params<'p>(&'p self, rest: &[Param<'p>]) -> Vec<Param<'p>> {
        let mut params: Vec<Param<'p>> = vec![&self.order_pk, &self.purpose, &self.ttl_secs, self.token];
        params.extend_from_slice(rest);
        params
    }
}

/// What [`OrderLock::try_acquire_order`] found.
pub struct OrderLease {
    /// The order as read by the statement that took the lease: read again under the lease
    /// what a previous holder may have changed.
    pub order: OrderRecord,
    /// `None`: someone else holds the lease, or the order is in none of the states asked for.
    pub lease: Option<OrderLock>,
}

/// The tail of an insert into `order_leases` that takes a free (or expired) lease and returns a
/// row only when it did.
macro_rules! take_lease {
    () => {
        "ON CONFLICT (order_id, purpose) DO UPDATE
             SET token = EXCLUDED.token, expires_at = EXCLUDED.expires_at
             WHERE order_leases.expires_at <= now()
         RETURNING 1"
    };
}

impl OrderLock {
    /// Takes the lease on `order_pk` for `purpose`, or returns `None` if someone holds it.
    pub async fn try_acquire(pool: &Pool, purpose: &str, order_pk: i64) -> Result<Option<Self>> {
        const SQL: &str = concat!(
            "INSERT INTO order_leases (order_id, purpose, token, expires_at)
             VALUES ($1, $2, $3, now() + make_interval(secs => $4)) ",
            take_lease!()
        );
        let token = uuid::Uuid::new_v4();
        let taken = {
            let client = pool.get().await?;
            client
                .query_opt(SQL, &[&order_pk, &purpose, &token, &ttl_secs()])
                .await?
                .is_some()
        };
        Ok(taken.then(|| Self::held(pool, purpose, order_pk, token)))
    }

    /// Finds an order by its store and Webflow id and, when it is in one of `states` (any
    /// state: `None`), takes its lease for `purpose`: one statement where a look-up and
    /// [`Self::try_acquire`] were two. `None`: no such order.
    pub async fn try_acquire_order(
        pool: &Pool,
        purpose: &str,
        site_id: &SiteId,
        order_id: &OrderId,
        states: Option<&[OrderState]>,
    ) -> Result<Option<OrderLease>> {
        const SQL: &str = concat!(
            "WITH found AS (SELECT ",
            orders::columns!(),
            " FROM orders WHERE site_id = $1 AND webflow_order_id = $2),
             taken AS (
                 INSERT INTO order_leases (order_id, purpose, token, expires_at)
                 SELECT id, $3, $4, now() + make_interval(secs => $5) FROM found
                 WHERE $6::text[] IS NULL OR state = ANY($6) ",
            take_lease!(),
            ")
             SELECT *, EXISTS (SELECT 1 FROM taken) FROM found"
        );
        let token = uuid::Uuid::new_v4();
        let states: Option<Vec<&str>> = states.map(|states| states.iter().map(|s| s.as_str()).collect());
        let row = {
            let client = pool.get().await?;
            client
                .query_opt(
                    SQL,
                    &[
                        &site_id.as_str(),
                        &order_id.as_str(),
                        &purpose,
                        &token,
                        &ttl_secs(),
                        &states,
                    ],
                )
                .await?
        };
        let Some(row) = row else { return Ok(None) };
        let order = orders::from_row(&row)?;
        let taken: bool = row.get(orders::COLUMN_COUNT);
        let lease = taken.then(|| Self::held(pool, purpose, order.id, token));
        Ok(Some(OrderLease { order, lease }))
    }

    /// A lease just taken with `token`: renewed in the background until it ends.
    fn held(pool: &Pool, purpose: &str, order_pk: i64, token: uuid::Uuid) -> Self {
        let lost = Arc::new(AtomicBool::new(false));
        let renewal = tokio::spawn(renew(pool.clone(), order_pk, purpose.to_owned(), token, lost.clone()));
        Self {
            pool: pool.clone(),
            order_pk,
            purpose: purpose.to_owned(),
            token,
            lost,
            ended: false,
            renewal,
        }
    }

    /// Checks, right before an external call, that the lease is still ours (and extends it).
    /// `false`: it expired and may be someone else's; do not call out.
    pub async fn confirm(&self) -> Result<bool> {
        self.confirm_for(Duration::ZERO).await
    }

    /// [`Self::confirm`] right before an external call that may take up to `call`: the lease
    /// is extended to last at least `call` and then a whole [`LEASE_TTL`] from now, so that it
    /// cannot lapse during the call (nor before its result is recorded) even if the background
    /// renewal stalls. `false`: it expired and may be someone else's; do not call out.
    pub async fn confirm_for(&self, call: Duration) -> Result<bool> {
        if self.lost.load(Ordering::Relaxed) {
            return Ok(false);
        }
        let client = self.pool.get().await?;
        let secs = (call + LEASE_TTL).as_secs_f64();
        let held = extend(&*client, self.order_pk, &self.purpose, &self.token, secs).await?;
        if !held {
            self.lost.store(true, Ordering::Relaxed);
        }
        Ok(held)
    }

    /// The order the lease is on.
    pub fn order_pk(&self) -> i64 {
        self.order_pk
    }

    /// What a fenced statement of this crate needs (see [`held_lease_cte`]).
    pub(crate) fn fence(&self) -> Fence<'_> {
        Fence {
            order_pk: self.order_pk,
            purpose: &self.purpose,
            ttl_secs: ttl_secs(),
            token: &self.token,
        }
    }

    /// A fenced statement found the lease gone: later checks fail without asking.
    pub(crate) fn observe(&self, held: bool) {
        if !held {
            self.lost.store(true, Ordering::Relaxed);
        }
    }

    /// Whether the lease is known to be lost (then a fenced statement is not even tried).
    pub(crate) fn is_lost(&self) -> bool {
        self.lost.load(Ordering::Relaxed)
    }

    /// Ends the lease in `client`'s transaction (the one that records the result), if it is
    /// still ours. `false`: lost; the transaction must record nothing.
    pub async fn finish_in<C: Db>(&self, client: &C) -> Result<bool> {
        let row = client
            .query_opt(
                "DELETE FROM order_leases
                 WHERE order_id = $1 AND purpose = $2 AND token = $3 AND expires_at > now() RETURNING 1",
                &[&self.order_pk, &self.purpose, &self.token],
            )
            .await?;
        Ok(row.is_some())
    }

    /// [`Self::finish_in`] and [`orders::lock_by_id`] in one statement: ends the lease in
    /// `client`'s transaction, if it is still ours, and locks the order for the rest of that
    /// transaction. `None`: the lease is lost (orders are never deleted); record nothing.
    pub async fn finish_locking_order<C: Db>(&self, client: &C) -> Result<Option<OrderRecord>> {
        const SQL: &str = concat!(
            "WITH ended AS (
                 DELETE FROM order_leases
                 WHERE order_id = $1 AND purpose = $2 AND token = $3 AND expires_at > now() RETURNING 1)
             SELECT ",
            orders::columns!(),
            " FROM orders WHERE id = $1 AND EXISTS (SELECT 1 FROM ended) FOR UPDATE"
        );
        client
            .query_opt(SQL, &[&self.order_pk, &self.purpose, &self.token])
            .await?
            .as_ref()
            .map(orders::from_row)
            .transpose()
    }

    /// The transaction in which [`Self::finish_in`] (or [`Self::finish_locking_order`]) ended
    /// the lease has committed: the row is gone, so nothing is left to free (dropping the lock
    /// instead deletes it once more, in case that transaction rolled back).
    pub fn committed(mut self) {
        self.ended = true;
        self.renewal.abort();
    }

    /// Frees the lease now (when its work is recorded elsewhere, or abandoned).
    pub async fn release(mut self) {
        self.ended = true;
        self.renewal.abort();
        if let Ok(client) = self.pool.get().await {
            let _ = delete(&*client, self.order_pk, &self.purpose, &self.token).await;
        }
    }
}

async fn delete<C: Db>(client: &C, order_pk: i64, purpose: &str, token: &uuid::Uuid) -> Result<()> {
    client
        .execute(
            "DELETE FROM order_leases WHERE order_id = $1 AND purpose = $2 AND token = $3",
            &[&order_pk, &purpose, token],
        )
        .await?;
    Ok(())
}

/// Renews the lease every third of its lifetime while its holder works; stops when the lease
/// is gone (then marks it lost).
async fn renew(pool: Pool, order_pk: i64, purpose: String, token: uuid::Uuid, lost: Arc<AtomicBool>) {
    loop {
        tokio::time::sleep(LEASE_TTL / 3).await;
        let Ok(client) = pool.get().await else {
            continue;
        };
        match extend(&*client, order_pk, &purpose, &token, ttl_secs()).await {
            Ok(true) => {}
            Ok(false) => {
                lost.store(true, Ordering::Relaxed);
                return;
            }
            // The database is unreachable: nobody else can take the lease either.
            Err(_) => {}
        }
    }
}

impl Drop for OrderLock {
    fn drop(&mut self) {
        self.renewal.abort();
        if self.ended {
            return;
        }
        // Not ended: free it in the background (a transaction that ended it may have rolled
        // back); if that fails too, it expires.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let (pool, order_pk, purpose, token) = (self.pool.clone(), self.order_pk, self.purpose.clone(), self.token);
            runtime.spawn(async move {
                if let Ok(client) = pool.get().await {
                    let _ = delete(&*client, order_pk, &purpose, &token).await;
                }
            });
        }
    }
}
