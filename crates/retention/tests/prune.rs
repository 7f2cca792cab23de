//! The prune job against the real PostgreSQL: what it deletes, what it keeps, batches,
//! concurrent runs, the audit log's guard, and the retention settings' checks.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

use platform::settings::{Profile, SettingsError, Validate};
use retention::{Pruner, RetentionSettings, Settings};
use test_support::db::TestDatabase;
use tokio_util::sync::CancellationToken;

fn retention() -> RetentionSettings {
    RetentionSettings {
        batch_pause_ms: 0,
        ..RetentionSettings::default()
    }
}

/// `count` rows of each kind, `age_days` old, tagged `tag`.
async fn seed(db: &TestDatabase, tag: &str, count: i32, age_days: i64) {
    let client = db.client().await;
    let age = format!("{age_days} days");
    client
        .execute(
            "INSERT INTO processed_messages (consumer, message_id, processed_at)
             SELECT 'enrich', $1 || '-' || g, now() - $3::text::interval FROM generate_series(1, $2::int) g",
            &[&tag, &count, &age],
        )
        .await
        .unwrap();
    // Published and unpublished outbox rows of that age.
    client
        .execute(
            "INSERT INTO outbox (message_id, routing_key, payload, created_at, published_at)
             SELECT $1 || '-pub-' || g, 'order.ready', '{}', now() - $3::text::interval, now() - $3::text::interval
               FROM generate_series(1, $2::int) g",
            &[&tag, &count, &age],
        )
        .await
        .unwrap();
    client
        .execute(
            "INSERT INTO outbox (message_id, routing_key, payload, created_at)
             SELECT $1 || '-unpub-' || g, 'order.ready', '{}', now() - $3::text::interval FROM generate_series(1, $2::int) g",
            &[&tag, &count, &age],
        )
        .await
        .unwrap();
    client
        .execute(
            "INSERT INTO audit_log (occurred_at, site_id, webflow_order_id, kind, actor)
             SELECT now() - $3::text::interval, 's', $1 || '-' || g, 'test', 'test' FROM generate_series(1, $2::int) g",
            &[&tag, &count, &age],
        )
        .await
        .unwrap();
}

async fn count(db: &TestDatabase, sql: &str, tag: &str) -> i64 {
    db.client()
        .await
        .query_one(sql, &[&format!("{tag}-%")])
        .await
        .unwrap()
        .get(0)
}

async fn counts(db: &TestDatabase, tag: &str) -> [i64; 4] {
    [
        count(
            db,
            "SELECT count(*) FROM processed_messages WHERE message_id LIKE $1",
            tag,
        )
        .await,
        count(
            db,
            "SELECT count(*) FROM outbox WHERE message_id LIKE $1 AND published_at IS NOT NULL",
            tag,
        )
        .await,
        count(
            db,
            "SELECT count(*) FROM outbox WHERE message_id LIKE $1 AND published_at IS NULL",
            tag,
        )
        .await,
        count(db, "SELECT count(*) FROM audit_log WHERE webflow_order_id LIKE $1", tag).await,
    ]
}

#[tokio::test]
async fn prunes_exactly_what_is_older_than_its_retention() {
    let db = TestDatabase::create().await;
    // Defaults: dedupe window 30 days, published outbox 7 days, audit 400 days.
    seed(&db, "recent", 3, 1).await; // everything kept
    seed(&db, "week", 4, 10).await; // published outbox pruned only
    seed(&db, "month", 5, 45).await; // + dedupe records
    seed(&db, "ancient", 6, 500).await; // + audit entries

    let summary = Pruner::new(db.pool.clone(), retention(), CancellationToken::new())
        .run_once()
        .await
        .unwrap();

    // [processed_messages, published outbox, unpublished outbox, audit_log]
    assert_eq!(counts(&db, "recent").await, [3, 3, 3, 3]);
    assert_eq!(counts(&db, "week").await, [4, 0, 4, 4]);
    assert_eq!(counts(&db, "month").await, [0, 0, 5, 5]);
    // Unpublished outbox rows are never deleted, however old.
    assert_eq!(counts(&db, "ancient").await, [0, 0, 6, 0]);
    assert_eq!(summary.tables["processed_messages"].deleted, 11);
    assert_eq!(summary.tables["outbox"].deleted, 15);
    assert_eq!(summary.tables["audit_log"].deleted, 6);
    assert_eq!(summary.deleted, 32);
    assert!(summary.complete);
}

#[tokio::test]
async fn keep_forever_keeps_every_audit_entry() {
    let db = TestDatabase::create().await;
    seed(&db, "ancient", 4, 3_000).await;
    let settings = RetentionSettings {
        audit_log_keep_forever: true,
        ..retention()
    };
    let summary = Pruner::new(db.pool.clone(), settings, CancellationToken::new())
        .run_once()
        .await
        .unwrap();
    assert_eq!(counts(&db, "ancient").await, [0, 0, 4, 4]);
    assert_eq!(summary.tables["audit_log"].before, None);
    assert_eq!(summary.tables["audit_log"].deleted, 0);
}

#[tokio::test]
async fn more_rows_than_a_batch_are_deleted_in_several_batches() {
    let db = TestDatabase::create().await;
    seed(&db, "old", 50, 500).await;
    seed(&db, "new", 3, 1).await;
    let settings = RetentionSettings {
        batch_size: 7,
        ..retention()
    };
    let summary = Pruner::new(db.pool.clone(), settings, CancellationToken::new())
        .run_once()
        .await
        .unwrap();
    assert_eq!(counts(&db, "old").await, [0, 0, 50, 0]);
    assert_eq!(counts(&db, "new").await, [3, 3, 3, 3]);
    for table in ["processed_messages", "outbox", "audit_log"] {
        // 7 full batches and a last one of 1.
        assert_eq!(summary.tables[table].deleted, 50, "{table}");
        assert_eq!(summary.tables[table].batches, 8, "{table}");
    }
}

#[tokio::test]
async fn two_runs_at_once_share_the_work_without_failing() {
    let db = TestDatabase::create().await;
    seed(&db, "old", 2_000, 500).await;
    seed(&db, "new", 5, 1).await;
    let settings = RetentionSettings {
        batch_size: 25,
        ..retention()
    };
    let one = Pruner::new(db.pool.clone(), settings.clone(), CancellationToken::new());
    let two = Pruner::new(db.pool.clone(), settings, CancellationToken::new());
    let (a, b) = tokio::join!(one.run_once(), two.run_once());
    let (a, b) = (a.unwrap(), b.unwrap());
    for table in ["processed_messages", "outbox", "audit_log"] {
        assert_eq!(a.tables[table].deleted + b.tables[table].deleted, 2_000, "{table}");
    }
    assert_eq!(counts(&db, "old").await, [0, 0, 2_000, 0]);
    assert_eq!(counts(&db, "new").await, [5, 5, 5, 5]);
}

#[tokio::test]
async fn the_database_refuses_to_prune_recent_audit_entries_or_delete_them_directly() {
    let db = TestDatabase::create().await;
    seed(&db, "mid", 3, 20).await;
    let client = db.client().await;
    // The cut-off floor: 30 days, whatever the caller asks.
    let error = client
        .query_one("SELECT prune_audit_log(now() - interval '1 day', 100)", &[])
        .await
        .unwrap_err();
    assert!(format!("{error:?}").contains("kept at least 30 days"), "{error:?}");
    // A plain DELETE is refused by the trigger, even for old rows and the table's owner.
    seed(&db, "old", 2, 500).await;
    let error = client
        .execute("DELETE FROM audit_log WHERE webflow_order_id LIKE 'old-%'", &[])
        .await
        .unwrap_err();
    assert!(format!("{error:?}").contains("append-only"), "{error:?}");
    // And so is an UPDATE, even while the function's cut-off is set in the session.
    let error = client
        .batch_execute(
            "BEGIN; SELECT set_config('wms.audit_prune_before', now()::text, true);
             UPDATE audit_log SET actor = 'x'; COMMIT;",
        )
        .await
        .unwrap_err();
    assert!(format!("{error:?}").contains("append-only"), "{error:?}");
    client.batch_execute("ROLLBACK").await.unwrap();
    assert_eq!(counts(&db, "mid").await[3], 3);
    assert_eq!(counts(&db, "old").await[3], 2);
}

fn settings_with(retention: RetentionSettings) -> Settings {
    Settings {
        retention,
        ..Settings::default()
    }
}

fn refused_key(result: Result<(), SettingsError>) -> (String, String) {
    match result {
        Err(SettingsError::Invalid { key, message }) => (key, message),
        other => panic!("expected an invalid setting, got {other:?}"),
    }
}

#[test]
fn the_defaults_are_valid() {
    let mut settings = Settings::default();
    settings.validate().unwrap();
    settings.check_profile(Profile::Production).unwrap();
}

#[test]
fn a_dedupe_window_not_longer_than_any_redelivery_is_refused() {
    // 7 days of dead-letter replay + 1 day of deferrals + 8 × 10 min of retries + 1 day.
    let mut settings = settings_with(RetentionSettings {
        processed_messages_days: 9.0,
        ..RetentionSettings::default()
    });
    let (key, message) = refused_key(settings.validate());
    assert_eq!(key, "retention.processed_messages_days");
    assert!(message.contains("dead letter's replay limit (7 days)"), "{message}");
    assert!(message.contains("9.06 days"), "{message}");

    // The bound follows the worker's settings: longer deferrals need a longer window.
    let mut settings = settings_with(RetentionSettings {
        processed_messages_days: 20.0,
        ..RetentionSettings::default()
    });
    settings.validate().unwrap();
    settings.worker.max_deferral_secs = 14 * 86_400;
    let (key, _) = refused_key(settings.validate());
    assert_eq!(key, "retention.processed_messages_days");
}

#[test]
fn a_short_window_is_for_local_runs_only() {
    let mut settings = settings_with(RetentionSettings {
        processed_messages_days: 0.01,
        allow_short_dedupe_window: true,
        ..RetentionSettings::default()
    });
    settings.validate().unwrap();
    settings.check_profile(Profile::Local).unwrap();
    let error = settings.check_profile(Profile::Production).unwrap_err();
    assert!(
        error.to_string().contains("retention.allow_short_dedupe_window"),
        "{error}"
    );
}

#[test]
fn audit_retention_under_the_database_floor_is_refused_unless_kept_forever() {
    let mut settings = settings_with(RetentionSettings {
        audit_log_days: 10.0,
        ..RetentionSettings::default()
    });
    let (key, message) = refused_key(settings.validate());
    assert_eq!(key, "retention.audit_log_days");
    assert!(message.contains("audit_log_keep_forever"), "{message}");
    settings.retention.audit_log_keep_forever = true;
    settings.validate().unwrap();
    settings.retention.batch_size = 0;
    assert_eq!(refused_key(settings.validate()).0, "retention.batch_size");
}
