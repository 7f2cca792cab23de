//! The database as the deployment sets it up (deploy/k8s/base/sql): a service's role reads and
//! writes the tables but cannot alter the append-only audit log. Against the local PostgreSQL
//! (trust authentication for every role on 127.0.0.1). And services waiting for the schema.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test helpers fail loudly")]

use secrecy::SecretString;
use tokio_postgres::error::SqlState;
use warehouse_db::ConnectOptions;

fn server_url() -> String {
    std::env::var("WMS_TEST_DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
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

/// A new, empty database for one test: its name, and the administrator's connection.
async fn fresh_database(prefix: &str) -> (String, tokio_postgres::Client) {
    let db = format!("{prefix}_{}", std::process::id());
    let admin = client("postgres", "postgres").await;
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {db}"))
        .await
        .unwrap();
    admin.batch_execute(&format!("CREATE DATABASE {db}")).await.unwrap();
    (db, admin)
}

fn denied(result: Result<u64, tokio_postgres::Error>) -> bool {
    result.is_err_and(|e| e.code() == Some(&SqlState::INSUFFICIENT_PRIVILEGE))
}

#[tokio::test]
async fn a_service_role_cannot_alter_the_audit_log() {
    let (db, admin) = fresh_database("wms_roles").await;

    // The administrator's part, then the migrate Job's: migrations and grants as the owner.
    client("postgres", &db)
        .await
        .batch_execute(&sql("roles.sql"))
        .await
        .unwrap();
    client("postgres", &db)
        .await
        .batch_execute(&sql("roles.sql"))
        .await
        .unwrap(); // idempotent
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

    let service = client("wms_enrich", &db).await;
    // What services do.
    service
        .execute(
            "INSERT INTO audit_log (site_id, webflow_order_id, kind, actor) VALUES ('s', 'o', 'test', 'enrich')",
            &[],
        )
        .await
        .unwrap();
    service.query("SELECT * FROM audit_log", &[]).await.unwrap();
    service
        .execute("INSERT INTO inventory (sku, on_hand) VALUES ('sku-1', 5)", &[])
        .await
        .unwrap();
    service
        .execute("UPDATE inventory SET on_hand = 6 WHERE sku = 'sku-1'", &[])
        .await
        .unwrap();
    // What the audit log refuses, by privilege (not only the trigger).
    assert!(denied(
        service
            .execute("UPDATE audit_log SET actor = 'someone else'", &[])
            .await
    ));
    assert!(denied(service.execute("DELETE FROM audit_log", &[]).await));
    assert!(denied(service.execute("TRUNCATE audit_log", &[]).await));
    for statement in [
        "ALTER TABLE audit_log DISABLE TRIGGER audit_log_append_only",
        "DROP TRIGGER audit_log_append_only ON audit_log",
        "DROP TABLE audit_log",
        "CREATE TABLE sneaky (id INT)",
    ] {
        let error = service.batch_execute(statement).await.unwrap_err();
        assert_eq!(
            error.code(),
            Some(&SqlState::INSUFFICIENT_PRIVILEGE),
            "{statement}: {error:?}"
        );
    }
    // The schema history is the owner's to write.
    assert!(denied(
        service.execute("DELETE FROM refinery_schema_history", &[]).await
    ));
    drop(service);

    // The ingress reads the stores to route and verify webhooks, and nothing else: not a
    // store's sealed API token, no order, no stock, no writes.
    let ingress = client("wms_ingress", &db).await;
    ingress
        .query(
            "SELECT s.id, s.name, s.site_id, s.source, s.removed_at, m.name
               FROM stores s JOIN merchants m ON m.id = s.merchant_id",
            &[],
        )
        .await
        .unwrap();
    ingress
        .query("SELECT store_id, secret_sealed FROM store_webhooks", &[])
        .await
        .unwrap();
    // What the ingress's registry runs, as the ingress's role.
    warehouse_db::stores::live_fingerprint(&ingress).await.unwrap();
    warehouse_db::stores::load_live(&ingress, warehouse_db::stores::Columns::WithoutApiTokens)
        .await
        .unwrap();
    for statement in [
        "SELECT api_token_sealed FROM stores",
        "SELECT * FROM orders",
        "SELECT * FROM inventory",
        "SELECT * FROM operator_tokens",
        "UPDATE stores SET removed_at = now()",
        "INSERT INTO merchants (name) VALUES ('sneaky')",
        "DELETE FROM store_webhooks",
    ] {
        let error = ingress.batch_execute(statement).await.unwrap_err();
        assert_eq!(
            error.code(),
            Some(&SqlState::INSUFFICIENT_PRIVILEGE),
            "{statement}: {error:?}"
        );
    }
    drop(ingress);

    admin
        .batch_execute(&format!("DROP DATABASE {db} WITH (FORCE)"))
        .await
        .unwrap();
}

#[tokio::test]
async fn services_wait_for_the_schema_the_job_applies() {
    let (db, admin) = fresh_database("wms_schema_wait").await;
    let pool = warehouse_db::connect(&ConnectOptions::new(
        SecretString::from(format!("{}/{db}", server_url())),
        2,
    ))
    .await
    .unwrap();
    let error = warehouse_db::migrate::wait_for_schema(&pool, std::time::Duration::from_millis(100))
        .await
        .unwrap_err();
    assert!(error.to_string().contains("schema is at version 0"), "{error}");
    // The Job migrates while a service waits: the service goes on.
    let waiting = tokio::spawn({
        let pool = pool.clone();
        async move { warehouse_db::migrate::wait_for_schema(&pool, std::time::Duration::from_secs(30)).await }
    });
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    warehouse_db::migrate::run(&pool).await.unwrap();
    let version = waiting.await.unwrap().unwrap();
    assert_eq!(version, warehouse_db::migrate::expected_version());
    drop(pool);
    admin
        .batch_execute(&format!("DROP DATABASE {db} WITH (FORCE)"))
        .await
        .unwrap();
}
