//! The audit log's guard with the deployment's roles (deploy/k8s/base/sql): a service's role
//! can neither delete audit entries nor call the pruning function; the prune job's role prunes
//! old entries through it and nothing else.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

use secrecy::SecretString;
use tokio_postgres::error::SqlState;
use warehouse_db::ConnectOptions;

fn server_url() -> String {
    test_support::database_server_url()
}

fn sql(name: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/../../deploy/k8s/base/sql/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

async fn client(user: &str, db: &str) -> tokio_postgres::Client {
    let url = server_url().replacen("postgres@", &format!("{user}@"), 1);
    let (client, connection) = tokio_postgres::connect(&format!("{url}/{db}"), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
}

fn denied<T: std::fmt::Debug>(result: Result<T, tokio_postgres::Error>) -> bool {
    result.is_err_and(|e| e.code() == Some(&SqlState::INSUFFICIENT_PRIVILEGE))
}

#[tokio::test]
async fn only_the_prune_role_prunes_the_audit_log_and_only_old_entries() {
    let db = format!("wms_prune_roles_{}", std::process::id());
    let admin = client("postgres", "postgres").await;
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
        .await
        .unwrap();
    admin.batch_execute(&format!("CREATE DATABASE {db}")).await.unwrap();
    client("postgres", &db)
        .await
        .batch_execute(&sql("roles.sql"))
        .await
        .unwrap();
    let owner = warehouse_db::connect(&ConnectOptions::new(
        SecretString::from(format!(
            "{}/{db}",
            server_url().replacen("postgres@", "wms_migrate@", 1)
        )),
        2,
    ))
    .await
    .unwrap();
    warehouse_db::migrate::run(&owner).await.unwrap();
    owner
        .get()
        .await
        .unwrap()
        .batch_execute(&sql("grants.sql"))
        .await
        .unwrap();
    drop(owner);
    // Old and recent entries, as they would have been written over time.
    client("postgres", &db)
        .await
        .batch_execute(
            "INSERT INTO audit_log (occurred_at, kind, actor)
             SELECT now() - interval '500 days', 'old', 't' FROM generate_series(1, 5);
             INSERT INTO audit_log (occurred_at, kind, actor)
             SELECT now() - interval '100 days', 'kept', 't' FROM generate_series(1, 3);",
        )
        .await
        .unwrap();

    let service = client("wms_enrich", &db).await;
    assert!(denied(service.execute("DELETE FROM audit_log", &[]).await));
    assert!(denied(
        service
            .query_one("SELECT prune_audit_log(now() - interval '400 days', 100)", &[])
            .await
    ));

    let prune = client("wms_prune", &db).await;
    // The job's role has no DELETE on the audit log either: only the function.
    assert!(denied(prune.execute("DELETE FROM audit_log", &[]).await));
    let deleted: i64 = prune
        .query_one("SELECT prune_audit_log(now() - interval '400 days', 100)", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(deleted, 5);
    // Not younger than 30 days, whatever it asks.
    let error = prune
        .query_one("SELECT prune_audit_log(now(), 100)", &[])
        .await
        .unwrap_err();
    assert_eq!(error.code(), Some(&SqlState::INVALID_PARAMETER_VALUE), "{error:?}");
    // The dedupe records and the outbox are plain tables for it (as for every wms_app member).
    prune
        .execute(
            "DELETE FROM processed_messages WHERE processed_at < now() - interval '30 days'",
            &[],
        )
        .await
        .unwrap();
    let kinds: Vec<String> = prune
        .query("SELECT kind FROM audit_log", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(kinds, ["kept", "kept", "kept"]);

    // The whole job as its role: it owns no table, so its VACUUM after pruning is skipped with
    // a warning, not an error.
    client("postgres", &db)
        .await
        .batch_execute(
            "INSERT INTO processed_messages (consumer, message_id, processed_at)
             SELECT 'enrich', 'm-' || g, now() - interval '45 days' FROM generate_series(1, 20) g;
             INSERT INTO processed_messages (consumer, message_id) VALUES ('enrich', 'fresh');",
        )
        .await
        .unwrap();
    let job_pool = warehouse_db::connect(&ConnectOptions::new(
        SecretString::from(format!("{}/{db}", server_url().replacen("postgres@", "wms_prune@", 1))),
        2,
    ))
    .await
    .unwrap();
    let summary = retention::Pruner::new(
        job_pool,
        retention::RetentionSettings {
            batch_size: 8,
            ..retention::RetentionSettings::default()
        },
        tokio_util::sync::CancellationToken::new(),
    )
    .run_once()
    .await
    .unwrap();
    assert_eq!(summary.tables["processed_messages"].deleted, 20);
    let left: i64 = prune
        .query_one("SELECT count(*) FROM processed_messages", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, 1);

    drop((service, prune));
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
        .await
        .unwrap();
}
