//! One run at a time of a periodic job across every process and replica (a reconciliation
//! pass started by the loop while an operator runs `wmsctl reconcile --once`, two replicas
//! during a rollout): a PostgreSQL session advisory lock, tried once, never waited for.
//!
//! The lock lives on one pooled connection for the whole run. No transaction stays open (a
//! long pass must not hold back vacuum), and a crashed process's lock ends with its
//! connection. A lock dropped without [`JobLock::release`] (a panic, a cancelled task) takes
//! its connection out of the pool, so the lock ends when the connection closes instead of
//! staying held by a connection another caller borrows next.

use crate::error::Result;
use crate::pool::{Object, Pool};

/// Key space of the jobs' advisory locks: (this class, the job's number). The two-key form
/// keeps them apart from the migrations' single-key lock.
const JOB_LOCK_CLASS: i32 = 0x574d_534a; // "WMSJ"

/// The periodic jobs that must not overlap themselves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Job {
    Reconcile,
}

impl Job {
    fn key(self) -> i32 {
        match self {
            Job::Reconcile => 1,
        }
    }
}

/// A held job lock; [`JobLock::release`] ends it.
pub struct JobLock {
    client: Option<Object>,
    job: Job,
}

impl JobLock {
    /// Takes the job's lock if no one holds it; `None` when another run holds it.
    pub async fn try_acquire(pool: &Pool, job: Job) -> Result<Option<Self>> {
        let client = pool.get().await?;
        let row = client
            .query_one("SELECT pg_try_advisory_lock($1, $2)", &[&JOB_LOCK_CLASS, &job.key()])
            .await?;
        Ok(row.get::<_, bool>(0).then_some(Self {
            client: Some(client),
            job,
        }))
    }

    /// Ends the lock and gives its connection back to the pool.
    pub async fn release(mut self) {
        if let Some(client) = self.client.take() {
            let unlocked = client
                .execute("SELECT pg_advisory_unlock($1, $2)", &[&JOB_LOCK_CLASS, &self.job.key()])
                .await;
            if unlocked.is_err() {
                // Unsure whether the lock ended: the connection must not serve anyone else.
                let _ = Object::take(client);
            }
        }
    }
}

impl Drop for JobLock {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            // Closing the connection ends the lock (see the module's comment).
            let _ = Object::take(client);
        }
    }
}
