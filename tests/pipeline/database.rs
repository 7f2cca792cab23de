//! The warehouse database's query path: through the pool, a statement is prepared once per
//! connection and reused, however often it runs.

use test_support::db::TestDatabase;
use warehouse_db::{Db, idempotency};

#[tokio::test]
async fn pooled_connections_prepare_each_statement_once() {
    let db = TestDatabase::create().await;
    let client = db.pool.get().await.unwrap();
    let prepared = || async {
        client
            .query_one("SELECT count(*) FROM pg_prepared_statements", &[])
            .await
            .unwrap()
            .get::<_, i64>(0)
    };
    // Warm up both statements (the count query and the one under test).
    assert!(!idempotency::was_processed(&*client, "c", "m-0").await.unwrap());
    let before = prepared().await;
    for i in 1..=20 {
        let id = format!("m-{i}");
        assert!(!idempotency::was_processed(&*client, "c", &id).await.unwrap());
    }
    assert_eq!(prepared().await, before, "no new prepared statement per call");

    // Inside a transaction of the pool too.
    let mut client = client;
    let tx = client.transaction().await.unwrap();
    for i in 1..=5 {
        assert!(idempotency::mark_processed(&tx, "c", &format!("t-{i}")).await.unwrap());
    }
    let in_tx: i64 = tx
        .query_one("SELECT count(*) FROM pg_prepared_statements", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(in_tx, before + 1, "the insert was prepared once for five calls");
    tx.commit().await.unwrap();
}

/// The cluster-wide roles grants.sql names, created once for every test database (roles are
/// shared by the whole server; two tests creating one at once must both succeed).
async fn ensure_app_role(db: &TestDatabase) {
    // As roles.sql creates them (wms_prune a member of wms_app), so that a test running
    // roles.sql later finds them right.
    for (role, login) in [
        ("wms_app", "NOLOGIN"),
        ("wms_prune", "LOGIN IN ROLE wms_app"),
        ("wms_ingress", "LOGIN"),
    ] {
        db.client()
            .await
            .batch_execute(&format!(
                "DO $$ BEGIN
                     IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{role}') THEN
                         CREATE ROLE {role} {login};
                     END IF;
                 EXCEPTION WHEN duplicate_object OR unique_violation THEN NULL;
                 END $$"
            ))
            .await
            .unwrap();
    }
}

fn wmsctl_migrate(db: &TestDatabase, script: &std::path::Path) -> std::process::Output {
    std::process::Command::new(e2e::stack::bin_dir().join("wmsctl"))
        .args(["migrate", "--then-run"])
        .arg(script)
        .env("WMS__PROFILE", "local")
        .env("WMS__DATABASE__URL", &db.url)
        .env_remove("WMS_CONFIG")
        .output()
        .expect("wmsctl runs (make test builds it first)")
}

/// The Kubernetes migrate Job's one command: the migrations, then the deployment's grants
/// (deploy/k8s/base/sql/grants.sql) in the same image.
#[tokio::test]
async fn the_migrate_job_applies_the_deployments_grants_after_the_migrations() {
    let db = TestDatabase::create().await;
    ensure_app_role(&db).await;
    let grants = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/k8s/base/sql/grants.sql");
    let out = wmsctl_migrate(&db, &grants);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("grants.sql"));
    let row = db
        .client()
        .await
        .query_one(
            "SELECT has_table_privilege('wms_app', 'orders', 'UPDATE'),
                    has_table_privilege('wms_app', 'audit_log', 'INSERT'),
                    has_table_privilege('wms_app', 'audit_log', 'DELETE')",
            &[],
        )
        .await
        .unwrap();
    let (orders_update, audit_insert, audit_delete): (bool, bool, bool) = (row.get(0), row.get(1), row.get(2));
    assert!(orders_update && audit_insert, "the services' role reads and writes");
    assert!(!audit_delete, "the audit log stays append-only for the services");
}

#[tokio::test]
async fn a_failing_grants_script_changes_nothing_and_fails_the_job() {
    let db = TestDatabase::create().await;
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("grants.sql");
    std::fs::write(
        &script,
        "CREATE TABLE script_ran_halfway (id int);\nGRANT SELECT ON no_such_table TO PUBLIC;\n",
    )
    .unwrap();
    let out = wmsctl_migrate(&db, &script);
    assert!(!out.status.success(), "the Job fails, so Kubernetes retries it");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("grants.sql failed"), "{stderr}");
    let half: Option<String> = db
        .client()
        .await
        .query_one("SELECT to_regclass('script_ran_halfway')::text", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(half, None, "the script ran in one transaction: nothing of it stayed");

    let missing = wmsctl_migrate(&db, &dir.path().join("missing.sql"));
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("cannot read"));
}
