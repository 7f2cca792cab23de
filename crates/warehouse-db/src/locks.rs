//! Per-order work leases, for handlers whose external calls must not run twice at once for
//! the same order (two deliveries of the same event can be handled concurrently before either
//! commits its idempotency record).
//!
//! A lease is a row, not a held connection: waiting handlers do not pin pool connections, and a
//! lease left by a crashed worker expires after its time-to-live.

use crate::error::Result;
use crate::pool::Pool;
use std::time::Duration;

pub struct OrderLease {
    pool: Pool,
    purpose: String,
    order_pk: i64,
    holder: String,
}

impl OrderLease {
    /// Takes the lease, or returns `None` if another holder has a live one.
    pub async fn try_acquire(pool: &Pool, purpose: &str, order_pk: i64, ttl: Duration) -> Result<Option<Self>> {
        let holder = format!("{}-{:x}", std::process::id(), rand_suffix());
        let client = pool.get().await?;
        let row = client
            .query_opt(
                "INSERT INTO work_leases (purpose, order_id, holder, expires_at)
                 VALUES ($1, $2, $3, now() + make_interval(secs => $4))
                 ON CONFLICT (purpose, order_id) DO UPDATE SET holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at
                 WHERE work_leases.expires_at < now()
                 RETURNING holder",
                &[&purpose, &order_pk, &holder, &ttl.as_secs_f64()],
            )
            .await?;
        Ok(row.map(|_| Self {
            pool: pool.clone(),
            purpose: purpose.to_owned(),
            order_pk,
            holder,
        }))
    }

    /// Gives the lease back (best effort: it expires anyway).
    pub async fn release(self) {
        if let Ok(client) = self.pool.get().await {
            let _ = client
                .execute(
                    "DELETE FROM work_leases WHERE purpose = $1 AND order_id = $2 AND holder = $3",
                    &[&self.purpose, &self.order_pk, &self.holder],
                )
                .await;
        }
    }
}

fn rand_suffix() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    hasher.finish()
}
