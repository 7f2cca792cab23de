//! Per-order work locks, for handlers whose external calls must not run twice at once for the
//! same order (two deliveries of the same event can be handled concurrently before either
//! commits its idempotency record).
//!
//! A lock is a PostgreSQL session advisory lock held on a connection from a dedicated pool (so
//! holders never starve the handlers' own pool). If the holder crashes, its session ends and the
//! lock is free at once; if the lock is dropped without [`OrderLock::release`] (a cancelled
//! future), the connection is detached from the pool and closed, with the same effect.

use crate::error::Result;
use crate::pool::{Object, Pool};

/// Namespace of the advisory lock keys (so they cannot collide with the migration lock).
const ORDER_LOCK_CLASS: i32 = 0x574d_5301;

pub struct OrderLock {
    client: Option<Object>,
    key: i32,
}

fn key_for(purpose: &str, order_pk: i64) -> i32 {
    let purpose_hash = purpose
        .bytes()
        .fold(0i32, |h, b| h.wrapping_mul(31).wrapping_add(i32::from(b)));
    // Collisions only make two different orders wait for each other, never run together.
    (order_pk as i32) ^ (order_pk >> 32) as i32 ^ purpose_hash
}

impl OrderLock {
    /// Takes the lock on `order_pk` for `purpose`, or returns `None` if someone holds it.
    pub async fn try_acquire(pool: &Pool, purpose: &str, order_pk: i64) -> Result<Option<Self>> {
        let client = pool.get().await?;
        let key = key_for(purpose, order_pk);
        let row = client
            .query_one("SELECT pg_try_advisory_lock($1, $2)", &[&ORDER_LOCK_CLASS, &key])
            .await?;
        let taken: bool = row.get(0);
        Ok(taken.then_some(Self {
            client: Some(client),
            key,
        }))
    }

    /// Frees the lock and returns the connection to the pool.
    pub async fn release(mut self) {
        if let Some(client) = self.client.take() {
            let unlocked = client
                .query_one("SELECT pg_advisory_unlock($1, $2)", &[&ORDER_LOCK_CLASS, &self.key])
                .await;
            if !matches!(unlocked.map(|r| r.get::<_, bool>(0)), Ok(true)) {
                // Never give a session that may still hold the lock back to the pool.
                drop(Object::take(client));
            }
        }
    }
}

impl Drop for OrderLock {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            drop(Object::take(client));
        }
    }
}
