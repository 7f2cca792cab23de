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
