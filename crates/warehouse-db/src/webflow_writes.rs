//! The write ledger: one row per (order, Webflow write step). A step is marked `pending`
//! before the call and `done` after it, so after a crash or a timeout whose outcome is unknown
//! the next attempt reads the order first instead of writing blindly.

use crate::db::Db;
use crate::error::{Result, UnknownValue};
use crate::locks::OrderLock;
use domain::OrderState;

/// One Webflow write of notify-webflow; `webflow_writes.step` holds [`WriteStep::as_db`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum WriteStep {
    /// `PATCH` carrier and tracking number.
    Tracking,
    /// `POST .../fulfill` (sends the customer's email).
    Fulfill,
    /// `POST .../refund`.
    Refund,
    /// `PATCH` a comment; the key is the first 16 hex digits of the comment's SHA-256, so
    /// each distinct comment is written once.
    Comment(String),
}

impl WriteStep {
    const COMMENT_PREFIX: &'static str = "comment:";

    pub fn as_db(&self) -> std::borrow::Cow<'static, str> {
        match self {
            Self::Tracking => "tracking".into(),
            Self::Fulfill => "fulfill".into(),
            Self::Refund => "refund".into(),
            Self::Comment(key) => format!("{}{key}", Self::COMMENT_PREFIX).into(),
        }
    }
}

impl std::fmt::Display for WriteStep {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.as_db())
    }
}

impl std::str::FromStr for WriteStep {
    type Err = UnknownValue;

    fn from_str(value: &str) -> std::result::Result<Self, Self::Err> {
        match value {
            "tracking" => Ok(Self::Tracking),
            "fulfill" => Ok(Self::Fulfill),
            "refund" => Ok(Self::Refund),
            other => other
                .strip_prefix(Self::COMMENT_PREFIX)
                .map(|key| Self::Comment(key.to_owned()))
                .ok_or_else(|| UnknownValue::new("Webflow write step", other)),
        }
    }
}

/// Where a step stands, as notify-webflow sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepStatus {
    /// Never tried.
    New,
    /// Tried; the outcome is unknown.
    Pending,
    Done,
}

impl StepStatus {
    /// The status of a ledger row (`pending`, `done` or `skipped`).
    fn from_db(value: &str) -> std::result::Result<Self, UnknownValue> {
        match value {
            "pending" => Ok(Self::Pending),
            "done" | "skipped" => Ok(Self::Done),
            other => Err(UnknownValue::new("Webflow write status", other)),
        }
    }
}

pub async fn status<C: Db>(client: &C, order_pk: i64, step: &WriteStep) -> Result<StepStatus> {
    let row = client
        .query_opt(
            "SELECT status FROM webflow_writes WHERE order_id = $1 AND step = $2",
            &[&order_pk, &step.as_db()],
        )
        .await?;
    match row {
        None => Ok(StepStatus::New),
        Some(row) => Ok(StepStatus::from_db(row.get(0))?),
    }
}

/// Every step of an order as the ledger has it (one read for a whole write-back).
#[derive(Debug, Clone, Default)]
pub struct StepStatuses(Vec<(String, StepStatus)>);

impl StepStatuses {
    pub fn get(&self, step: &WriteStep) -> StepStatus {
        let key = step.as_db();
        self.0
            .iter()
            .find(|(s, _)| *s == key)
            .map_or(StepStatus::New, |(_, status)| *status)
    }
}

/// The carrier and tracking of an order's booked shipment: what the write-back sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BookedTracking {
    pub carrier: Option<String>,
    pub tracking_number: Option<String>,
    pub tracking_url: Option<String>,
}

/// What a write-back starts from, read by one statement once the order's lease is held.
#[derive(Debug, Clone, Default)]
pub struct WriteBackStart {
    pub steps: StepStatuses,
    /// `None`: the order is gone.
    pub state: Option<OrderState>,
    /// `None`: no shipment, or one not (or no longer) `booked`.
    pub tracking: Option<BookedTracking>,
}

/// Every step of the order, with the order's state and its booked shipment's tracking, read
/// together. Called once the order's lease is held: a delivery that found the order before
/// waiting for the lease must act on the state the previous holder left (say `needs_review`
/// after a refund), not on what it read before.
pub async fn statuses<C: Db>(client: &C, order_pk: i64) -> Result<WriteBackStart> {
    // At most one shipment per order (its primary key): the join repeats nothing.
    let rows = client
        .query(
            "SELECT o.state, w.step, w.status, s.status = 'booked', s.carrier, s.tracking_number, s.tracking_url
             FROM orders o
             LEFT JOIN shipments s ON s.order_id = o.id
             LEFT JOIN webflow_writes w ON w.order_id = o.id WHERE o.id = $1",
            &[&order_pk],
        )
        .await?;
    let Some(first) = rows.first() else {
        return Ok(WriteBackStart::default());
    };
    let state = crate::db::column(first, 0)?;
    let tracking = first
        .get::<_, Option<bool>>(3)
        .unwrap_or(false)
        .then(|| BookedTracking {
            carrier: first.get(4),
            tracking_number: first.get(5),
            tracking_url: first.get(6),
        });
    let steps = rows
        .iter()
        .filter_map(|row| Some((row.get::<_, Option<String>>(1)?, row.get::<_, Option<String>>(2)?)))
        .map(|(step, status)| Ok((step, StepStatus::from_db(&status)?)))
        .collect::<Result<Vec<_>>>()?;
    Ok(WriteBackStart {
        steps: StepStatuses(steps),
        state: Some(state),
        tracking,
    })
}

/// In one statement, only while `lease` is ours (it is confirmed and extended by the same
/// statement): records the steps in `done` as done and `begin`'s step as about to be
/// attempted. `false`: the lease is lost and nothing was recorded.
pub async fn record_fenced<C: Db>(
    client: &C,
    lease: &OrderLock,
    done: &[(WriteStep, Option<i32>)],
    begin: Option<(&WriteStep, &serde_json::Value)>,
) -> Result<bool> {
    if lease.is_lost() {
        return Ok(false);
    }
    let fence = lease.fence();
    let done_steps: Vec<String> = done.iter().map(|(step, _)| step.as_db().into_owned()).collect();
    let done_statuses: Vec<Option<i32>> = done.iter().map(|(_, status)| *status).collect();
    let (begin_step, begin_request) = begin
        .map(|(step, request)| (step.as_db().into_owned(), request))
        .unzip();
    const SQL: &str = concat!(
        "WITH ",
        crate::locks::held_lease_cte!(),
        ",
         done AS (
             INSERT INTO webflow_writes (order_id, step, status, attempts, response_status)
             SELECT $1, d.step, 'done', 0, d.response_status
             FROM held, unnest($5::text[], $6::int[]) AS d(step, response_status)
             ON CONFLICT (order_id, step) DO UPDATE SET status = 'done',
                    response_status = EXCLUDED.response_status, updated_at = now()),
         begun AS (
             INSERT INTO webflow_writes (order_id, step, status, attempts, request)
             SELECT $1, $7::text, 'pending', 1, $8::jsonb FROM held WHERE $7::text IS NOT NULL
             ON CONFLICT (order_id, step) DO UPDATE SET attempts = webflow_writes.attempts + 1,
                    request = EXCLUDED.request, updated_at = now()
             WHERE webflow_writes.status = 'pending')
         SELECT count(*) FROM held"
    );
    let held: i64 = client
        .query_one(
            SQL,
            &fence.params(&[&done_steps, &done_statuses, &begin_step, &begin_request]),
        )
        .await?
        .get(0);
    lease.observe(held == 1);
    Ok(held == 1)
}

/// Records steps as done, in the caller's transaction (the one that also ends the lease).
pub async fn finish_many<C: Db>(client: &C, order_pk: i64, done: &[(WriteStep, Option<i32>)]) -> Result<()> {
    if done.is_empty() {
        return Ok(());
    }
    let steps: Vec<String> = done.iter().map(|(step, _)| step.as_db().into_owned()).collect();
    let statuses: Vec<Option<i32>> = done.iter().map(|(_, status)| *status).collect();
    client
        .execute(
            "INSERT INTO webflow_writes (order_id, step, status, attempts, response_status)
             SELECT $1, d.step, 'done', 0, d.response_status FROM unnest($2::text[], $3::int[]) AS d(step, response_status)
             ON CONFLICT (order_id, step) DO UPDATE SET status = 'done', response_status = EXCLUDED.response_status,
                    updated_at = now()",
            &[&order_pk, &steps, &statuses],
        )
        .await?;
    Ok(())
}

/// Records that the step is about to be attempted.
pub async fn begin<C: Db>(client: &C, order_pk: i64, step: &WriteStep, request: &serde_json::Value) -> Result<()> {
    client
        .execute(
            "INSERT INTO webflow_writes (order_id, step, status, attempts, request) VALUES ($1, $2, 'pending', 1, $3)
             ON CONFLICT (order_id, step) DO UPDATE SET attempts = webflow_writes.attempts + 1, request = EXCLUDED.request,
                    updated_at = now()
             WHERE webflow_writes.status = 'pending'",
            &[&order_pk, &step.as_db(), request],
        )
        .await?;
    Ok(())
}

/// Records that the step is done (the call succeeded, or a read showed it already applied).
/// The call `begin` announced was never sent (no budget slot yet, or Webflow refused it with a
/// 429): the step is not pending any more, so the next try writes without reading first.
pub async fn withdraw<C: Db>(client: &C, order_pk: i64, step: &WriteStep) -> Result<()> {
    client
        .execute(
            "DELETE FROM webflow_writes WHERE order_id = $1 AND step = $2 AND status = 'pending'",
            &[&order_pk, &step.as_db()],
        )
        .await?;
    Ok(())
}

pub async fn finish<C: Db>(client: &C, order_pk: i64, step: &WriteStep, response_status: Option<i32>) -> Result<()> {
    client
        .execute(
            "INSERT INTO webflow_writes (order_id, step, status, attempts, response_status) VALUES ($1, $2, 'done', 0, $3)
             ON CONFLICT (order_id, step) DO UPDATE SET status = 'done', response_status = EXCLUDED.response_status,
                    updated_at = now()",
            &[&order_pk, &step.as_db(), &response_status],
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_round_trip_and_unknown_ones_are_refused() {
        for step in [
            WriteStep::Tracking,
            WriteStep::Fulfill,
            WriteStep::Refund,
            WriteStep::Comment("0123456789abcdef".into()),
        ] {
            assert_eq!(step.as_db().parse(), Ok(step));
        }
        assert_eq!(WriteStep::Comment("ab".into()).as_db(), "comment:ab");
        assert!("patch".parse::<WriteStep>().is_err());
        assert!(StepStatus::from_db("maybe").is_err());
        assert_eq!(StepStatus::from_db("skipped"), Ok(StepStatus::Done));
    }
}
