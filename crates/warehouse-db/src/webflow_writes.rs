//! The write ledger: one row per (order, Webflow write step). A step is marked `pending`
//! before the call and `done` after it, so after a crash or a timeout whose outcome is unknown
//! the next attempt reads the order first instead of writing blindly.

use crate::db::Db;
use crate::error::Result;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepStatus {
    /// Never tried.
    New,
    /// Tried; the outcome is unknown.
    Pending,
    Done,
}

pub async fn status<C: Db>(client: &C, order_pk: i64, step: &str) -> Result<StepStatus> {
    let row = client
        .query_opt(
            "SELECT status FROM webflow_writes WHERE order_id = $1 AND step = $2",
            &[&order_pk, &step],
        )
        .await?;
    Ok(match row.map(|r| r.get::<_, String>(0)).as_deref() {
        None => StepStatus::New,
        Some("done" | "skipped") => StepStatus::Done,
        Some(_) => StepStatus::Pending,
    })
}

/// Records that the step is about to be attempted.
pub async fn begin<C: Db>(client: &C, order_pk: i64, step: &str, request: &serde_json::Value) -> Result<()> {
    client
        .execute(
            "INSERT INTO webflow_writes (order_id, step, status, attempts, request) VALUES ($1, $2, 'pending', 1, $3)
             ON CONFLICT (order_id, step) DO UPDATE SET attempts = webflow_writes.attempts + 1, request = EXCLUDED.request,
                    updated_at = now()
             WHERE webflow_writes.status = 'pending'",
            &[&order_pk, &step, request],
        )
        .await?;
    Ok(())
}

/// Records that the step is done (the call succeeded, or a read showed it already applied).
pub async fn finish<C: Db>(client: &C, order_pk: i64, step: &str, response_status: Option<i32>) -> Result<()> {
    client
        .execute(
            "INSERT INTO webflow_writes (order_id, step, status, attempts, response_status) VALUES ($1, $2, 'done', 0, $3)
             ON CONFLICT (order_id, step) DO UPDATE SET status = 'done', response_status = EXCLUDED.response_status,
                    updated_at = now()",
            &[&order_pk, &step, &response_status],
        )
        .await?;
    Ok(())
}

/// Attempts per step (tests and the order view).
pub async fn attempts<C: Db>(client: &C, order_pk: i64) -> Result<Vec<(String, String, i32)>> {
    let rows = client
        .query(
            "SELECT step, status, attempts FROM webflow_writes WHERE order_id = $1 ORDER BY step",
            &[&order_pk],
        )
        .await?;
    Ok(rows.iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect())
}
