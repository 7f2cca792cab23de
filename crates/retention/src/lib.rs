//! Bounded data (issue 25): how long the warehouse database keeps what grows with every order,
//! and the job that prunes it.
//!
//! | table | kept | why it may go |
//! |---|---|---|
//! | `processed_messages` | `retention.processed_messages_days` (30) | the dedupe window: longer than any way a message can come back (below) |
//! | `outbox`, published rows | `retention.outbox_published_days` (7) | published and confirmed; only kept to look into. Unpublished rows are never deleted, whatever their age |
//! | `audit_log` | `retention.audit_log_days` (400), or forever (`audit_log_keep_forever`) | through `prune_audit_log` only, never less than 30 days (a floor in the database) |
//!
//! **The dedupe window is longer than any redelivery.** A message can come back after its
//! consumer recorded it (`processed_messages`) by: a RabbitMQ redelivery of an unacked delivery
//! (minutes: the broker's consumer timeout); the retry tiers (each hop at most
//! `worker.retry.max_ms`, at most `worker.max_attempts` hops, and deferrals for at most
//! `worker.max_deferral_secs`); a second copy of the same id (Webflow sending the same webhook
//! again, a reconcile injection, an outbox row published again after a lost mark: hours at
//! most); and an operator's replay of a dead letter, which `dead-letters` refuses when the
//! message was made more than [`dead_letters::MAX_REPLAY_AGE`] (7 days) ago. Every record of a
//! message id is at least as recent as the message was made, so [`Settings`] refuses a window
//! not above `MAX_REPLAY_AGE + max_deferral + max_attempts × retry.max_ms + 1 day` (the day
//! covers the queueing of a replayed message, Webflow's retries and the job's schedule).

use chrono::{DateTime, Utc};
use platform::settings::{DatabaseSettings, Profile, SettingsError, Validate};
use platform::telemetry::TelemetrySettings;
use serde::{Deserialize, Serialize};
use service_base::{StartupError, WorkerSettings};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use warehouse_db::retention::{self, PrunedTable};

pub const ACTOR: &str = "prune";
const DAY_SECS: f64 = 86_400.0;
/// The margin on top of the redelivery delays: the queueing of a replayed message, Webflow
/// sending a webhook again, the job's schedule.
pub const REDELIVERY_MARGIN: Duration = Duration::from_secs(86_400);
/// The floor `prune_audit_log` enforces in the database (migration V13).
pub const AUDIT_LOG_MIN_DAYS: f64 = 30.0;

/// The `prune` job's settings: `[database]`, `[telemetry]`, `[worker]` (read only for the
/// redelivery bound) and `[retention]`. No `[amqp]`: the job never talks to RabbitMQ, so it
/// holds no broker credentials and its checks do not apply.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct Settings {
    pub database: DatabaseSettings,
    pub telemetry: TelemetrySettings,
    pub worker: WorkerSettings,
    pub retention: RetentionSettings,
}

impl platform::service::ServiceSettings for Settings {
    fn telemetry(&self) -> &TelemetrySettings {
        &self.telemetry
    }

    /// The database only: the job has no `[amqp]` section.
    fn check_shared_profile(&self, profile: Profile) -> Result<Vec<String>, SettingsError> {
        self.database.check_profile(profile)?;
        Ok(self.database.opt_outs(profile))
    }
}

/// `[retention]`: how long pruned tables keep their rows, and how the job deletes them.
#[derive(Clone, Debug, Deserialize)]
#[serde(default)]
pub struct RetentionSettings {
    /// The dedupe window: days a consumer's `processed_messages` record is kept.
    pub processed_messages_days: f64,
    /// Days a published outbox row is kept (unpublished rows are never pruned).
    pub outbox_published_days: f64,
    /// Days an audit entry is kept; at least 30. Ignored with `audit_log_keep_forever`.
    pub audit_log_days: f64,
    /// Never prune the audit log.
    pub audit_log_keep_forever: bool,
    /// Rows per delete statement (each its own short transaction).
    pub batch_size: u32,
    /// Pause between two batches, so a long backlog is deleted without hogging I/O.
    pub batch_pause_ms: u64,
    /// A run stops after this long (what is left goes to the next run).
    pub max_run_secs: u64,
    /// VACUUM (ANALYZE) each table the run deleted from, so the space is reused at once.
    pub vacuum: bool,
    /// Local runs only (benchmarks, tests): accept a dedupe window shorter than the redelivery
    /// bound, which could let a replayed message be processed twice.
    pub allow_short_dedupe_window: bool,
}

impl Default for RetentionSettings {
    fn default() -> Self {
        Self {
            processed_messages_days: 30.0,
            outbox_published_days: 7.0,
            audit_log_days: 400.0,
            audit_log_keep_forever: false,
            batch_size: 5_000,
            batch_pause_ms: 20,
            max_run_secs: 1_800,
            vacuum: true,
            allow_short_dedupe_window: false,
        }
    }
}

fn days(value: f64) -> Duration {
    Duration::from_secs_f64(value * DAY_SECS)
}

impl RetentionSettings {
    /// The shortest dedupe window the redelivery paths allow (module docs).
    pub fn redelivery_bound(worker: &WorkerSettings) -> Duration {
        dead_letters::MAX_REPLAY_AGE
            + Duration::from_secs(worker.max_deferral_secs)
            + Duration::from_millis(worker.retry.max_ms.saturating_mul(u64::from(worker.max_attempts)))
            + REDELIVERY_MARGIN
    }

    pub fn validate(&self, worker: &WorkerSettings) -> Result<(), SettingsError> {
        for (key, value) in [
            ("retention.processed_messages_days", self.processed_messages_days),
            ("retention.outbox_published_days", self.outbox_published_days),
            ("retention.audit_log_days", self.audit_log_days),
        ] {
            if !value.is_finite() || value <= 0.0 || value > 36_500.0 {
                return Err(SettingsError::invalid(
                    key,
                    "must be a number of days above 0 (at most 36500)",
                ));
            }
        }
        if !self.audit_log_keep_forever && self.audit_log_days < AUDIT_LOG_MIN_DAYS {
            return Err(SettingsError::invalid(
                "retention.audit_log_days",
                format!(
                    "must be at least {AUDIT_LOG_MIN_DAYS} (the database refuses to prune younger audit \
                     entries); set retention.audit_log_keep_forever = true to never prune"
                ),
            ));
        }
        if !(1..=100_000).contains(&self.batch_size) {
            return Err(SettingsError::invalid(
                "retention.batch_size",
                "must be between 1 and 100000",
            ));
        }
        if self.max_run_secs == 0 {
            return Err(SettingsError::invalid("retention.max_run_secs", "must be above 0"));
        }
        let bound = Self::redelivery_bound(worker);
        if days(self.processed_messages_days) <= bound && !self.allow_short_dedupe_window {
            return Err(SettingsError::invalid(
                "retention.processed_messages_days",
                format!(
                    "the dedupe window ({} days) must be longer than the longest way a message can come back: \
                     {:.2} days = a dead letter's replay limit ({} days) + worker.max_deferral_secs ({} s) \
                     + worker.max_attempts × worker.retry.max_ms ({} × {} ms) + 1 day of margin; a shorter \
                     window could let a replayed or redelivered message be processed twice",
                    self.processed_messages_days,
                    bound.as_secs_f64() / DAY_SECS,
                    dead_letters::MAX_REPLAY_AGE.as_secs() / 86_400,
                    worker.max_deferral_secs,
                    worker.max_attempts,
                    worker.retry.max_ms,
                ),
            ));
        }
        Ok(())
    }

    /// How long `table` keeps its rows; `None`: forever.
    pub fn retention_of(&self, table: PrunedTable) -> Option<Duration> {
        match table {
            PrunedTable::ProcessedMessages => Some(days(self.processed_messages_days)),
            PrunedTable::PublishedOutbox => Some(days(self.outbox_published_days)),
            PrunedTable::AuditLog => (!self.audit_log_keep_forever).then(|| days(self.audit_log_days)),
        }
    }
}

impl Validate for Settings {
    fn validate(&mut self) -> Result<(), SettingsError> {
        self.database.validate()?;
        self.worker.validate()?;
        self.retention.validate(&self.worker)
    }

    fn check_profile(&self, profile: Profile) -> Result<(), SettingsError> {
        if profile == Profile::Production && self.retention.allow_short_dedupe_window {
            return Err(SettingsError::LocalOnly {
                key: "retention.allow_short_dedupe_window".into(),
                why: "a dedupe window shorter than the redelivery bound can process a message twice".into(),
            });
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PruneError {
    #[error(transparent)]
    Db(#[from] warehouse_db::DbError),
    #[error(transparent)]
    Pool(#[from] warehouse_db::pool::PoolError),
}

/// One table's part of a run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TableSummary {
    /// Rows older than this were deleted; absent when the table is kept forever.
    pub before: Option<DateTime<Utc>>,
    pub deleted: u64,
    pub batches: u64,
    /// The planner's row estimate and the size on disk (bytes) after the run.
    pub rows_estimate: i64,
    pub total_bytes: i64,
}

/// What one run did (`prune` prints it as JSON).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    pub tables: BTreeMap<&'static str, TableSummary>,
    pub deleted: u64,
    /// False when the run stopped early (`max_run_secs`, or a shutdown signal): the next run
    /// goes on.
    pub complete: bool,
    pub elapsed_ms: u64,
}

/// The pruning job over one database.
pub struct Pruner {
    pool: warehouse_db::Pool,
    retention: RetentionSettings,
    shutdown: CancellationToken,
}

/// Opens a small pool and waits for the schema the job needs (the migrate Job owns it; with
/// `database.migrate_on_start`, applies it, as for local runs).
pub async fn build(settings: Settings, shutdown: CancellationToken) -> Result<Pruner, StartupError> {
    let database = &settings.database;
    let pool = warehouse_db::connect(&service_base::connect_options(database, 2)).await?;
    if database.migrate_on_start {
        warehouse_db::migrate::run(&pool).await?;
    } else {
        warehouse_db::migrate::wait_for_schema(&pool, Duration::from_secs(database.schema_wait_secs)).await?;
    }
    Ok(Pruner::new(pool, settings.retention, shutdown))
}

impl Pruner {
    pub fn new(pool: warehouse_db::Pool, retention: RetentionSettings, shutdown: CancellationToken) -> Self {
        Self {
            pool,
            retention,
            shutdown,
        }
    }

    /// Prunes each table in bounded batches until nothing older than its retention is left (or
    /// the run's time is up); the cut-offs are taken once, at the start.
    pub async fn run_once(&self) -> Result<Summary, PruneError> {
        let started = Instant::now();
        let deadline = started + Duration::from_secs(self.retention.max_run_secs);
        let now = Utc::now();
        let batch = i32::try_from(self.retention.batch_size).unwrap_or(i32::MAX);
        let pause = Duration::from_millis(self.retention.batch_pause_ms);
        let mut summary = Summary {
            tables: BTreeMap::new(),
            deleted: 0,
            complete: true,
            elapsed_ms: 0,
        };
        for table in PrunedTable::ALL {
            let before = self
                .retention
                .retention_of(table)
                .and_then(|keep| chrono::Duration::from_std(keep).ok())
                .map(|keep| now - keep);
            let mut part = TableSummary {
                before,
                deleted: 0,
                batches: 0,
                rows_estimate: 0,
                total_bytes: 0,
            };
            if let Some(before) = before {
                let client = self.pool.get().await?;
                loop {
                    if self.shutdown.is_cancelled() || Instant::now() >= deadline {
                        summary.complete = false;
                        break;
                    }
                    let deleted = retention::prune_batch(&*client, table, before, batch).await?;
                    part.batches += 1;
                    part.deleted += deleted;
                    if deleted < u64::from(self.retention.batch_size) {
                        break;
                    }
                    tokio::select! {
                        () = tokio::time::sleep(pause) => {}
                        () = self.shutdown.cancelled() => {}
                    }
                }
                tracing::info!(table = table.as_str(), %before, deleted = part.deleted, batches = part.batches, "pruned");
                if self.retention.vacuum && part.deleted > 0 {
                    retention::vacuum(&client, table).await?;
                }
            }
            let client = self.pool.get().await?;
            (part.rows_estimate, part.total_bytes) = retention::table_size(&*client, table).await?;
            summary.deleted += part.deleted;
            summary.tables.insert(table.as_str(), part);
        }
        summary.elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        tracing::info!(
            deleted = summary.deleted,
            complete = summary.complete,
            elapsed_ms = summary.elapsed_ms,
            "prune finished"
        );
        Ok(summary)
    }
}
