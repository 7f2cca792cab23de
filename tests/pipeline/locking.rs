//! Issue 13: one lock order for inventory rows everywhere (the database's, under a non-C
//! collation too), and an outbox relay that one bad row cannot block.

use e2e::*;
use std::time::Duration;
use test_support::db::TestDatabase;
use tokio_postgres::error::SqlState;

const WAIT: Duration = Duration::from_secs(20);

/// An order holding active reservations of SKUs `a` and `B` (which en-US sorts `a`, `B` and
/// byte order `B`, `a`).
async fn order_reserving_a_and_b(db: &TestDatabase) -> i64 {
    let client = db.client().await;
    for sku in ["a", "B"] {
        client
            .execute(
                "INSERT INTO inventory (sku, on_hand, reserved) VALUES ($1, 5, 1)",
                &[&sku],
            )
            .await
            .unwrap();
    }
    let order_pk: i64 = client
        .query_one(
            "INSERT INTO orders (site_id, webflow_order_id, state, snapshot) VALUES ('s', 'o', 'packed', '{}') RETURNING id",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    for sku in ["a", "B"] {
        client
            .execute(
                "INSERT INTO reservations (order_id, sku, quantity, status) VALUES ($1, $2, 1, 'active')",
                &[&order_pk, &sku],
            )
            .await
            .unwrap();
    }
    order_pk
}

/// Waits until backend `pid` waits for a lock (not a timing assert: the interleaving the
/// test needs).
async fn wait_until_blocked(db: &TestDatabase, pid: i32) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let waiting: i64 = db
            .client()
            .await
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE pid = $1 AND wait_event_type = 'Lock'",
                &[&pid],
            )
            .await
            .unwrap()
            .get(0);
        if waiting == 1 {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "backend {pid} never waited");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[derive(Clone, Copy, Debug)]
enum Path {
    Release,
    Consume,
}

/// A reservation locks `a` then `B` (the database's order); meanwhile `path` works on an
/// order holding both. Locked in Rust's byte order (`B` first), the two deadlock.
async fn against_a_reservation(path: Path) {
    let db = TestDatabase::create_with_icu_collation("en-US").await;
    let order_pk = order_reserving_a_and_b(&db).await;

    let mut reserving = db.client().await;
    let reservation = reserving.transaction().await.unwrap();
    reservation
        .query("SELECT sku FROM inventory WHERE sku = 'a' FOR UPDATE", &[])
        .await
        .unwrap();

    let mut other = db.client().await;
    let pid: i32 = other.query_one("SELECT pg_backend_pid()", &[]).await.unwrap().get(0);
    let releasing = tokio::spawn(async move {
        let tx = other.transaction().await.unwrap();
        // How many reservations the path closed.
        let done = match path {
            Path::Release => warehouse_db::inventory::release_order(&*tx, order_pk)
                .await
                .map(|released| released.len()),
            // What ship records once the label is bought.
            Path::Consume => ship_order(&tx, order_pk).await,
        };
        let done = done?;
        tx.commit().await.map_err(warehouse_db::DbError::from)?;
        Ok::<_, warehouse_db::DbError>(done)
    });
    wait_until_blocked(&db, pid).await;
    let second = reservation
        .query("SELECT sku FROM inventory WHERE sku = 'B' FOR UPDATE", &[])
        .await;
    if let Err(error) = &second {
        assert_ne!(
            error.code(),
            Some(&SqlState::T_R_DEADLOCK_DETECTED),
            "{path:?} deadlocked"
        );
    }
    second.unwrap();
    reservation.commit().await.unwrap();
    let done = releasing.await.unwrap();
    assert!(done.is_ok(), "{path:?}: {done:?}");
    assert_eq!(done.unwrap(), 2);
}

/// The order shipped as the ship worker records it: its reservations consumed. Returns how
/// many were.
async fn ship_order(tx: &warehouse_db::Transaction<'_>, order_pk: i64) -> Result<usize, warehouse_db::DbError> {
    let order = warehouse_db::orders::lock_by_id(tx, order_pk)
        .await?
        .expect("the order exists");
    let booking = warehouse_db::floor::BookedShipment {
        carrier: "ups",
        service_level: "ups_ground",
        tracking_number: "1Z1",
        tracking_url: "https://example.test/1Z1",
        label_url: None,
        cost_minor: None,
        currency: None,
        external_id: "label-1",
        shipped_at: chrono::Utc::now(),
    };
    warehouse_db::floor::record_shipped(tx, &order, &booking, &serde_json::json!({}), "ship").await?;
    let consumed: i64 = tx
        .query_one(
            "SELECT count(*) FROM reservations WHERE order_id = $1 AND status = 'consumed'",
            &[&order_pk],
        )
        .await?
        .get(0);
    Ok(consumed as usize)
}

#[tokio::test]
async fn releasing_locks_inventory_in_the_databases_order() {
    against_a_reservation(Path::Release).await;
}

#[tokio::test]
async fn consuming_locks_inventory_in_the_databases_order() {
    against_a_reservation(Path::Consume).await;
}

/// A row that keeps failing (its routing key lost its binding) does not block the others,
/// and is counted.
#[tokio::test]
async fn one_failing_outbox_row_does_not_block_the_others() {
    let p = start_pipeline(PipelineOptions {
        start_reserve: false,
        ..PipelineOptions::default()
    })
    .await;
    // Every client declares the whole topology when it connects: unbind only once the enrich
    // worker (connecting in the background) is up, or it would bind the key again.
    let enrich = p.enrich.as_ref().unwrap();
    tokio::time::timeout(WAIT, async {
        while !enrich.is_ready() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("the enrich worker is consuming");
    let reserve_queue = p.topology.work_queue(consumer::RESERVE);
    p.observer
        .channel()
        .queue_unbind(
            reserve_queue.as_str().into(),
            p.topology.events_exchange().as_str().into(),
            domain::routing::STOCK_RECEIVED.into(),
            Default::default(),
        )
        .await
        .unwrap();
    let site = domain::SiteId::new(SITE_ID);
    let poison = domain::Envelope::new(
        domain::MessageId::new("poison"),
        "test",
        site.clone(),
        domain::Event::StockReceivedV1 {
            sku: domain::Sku::new("x"),
            quantity: 1,
            merchant_id: warehouse_db::merchants::DEFAULT_MERCHANT_ID,
        },
    );
    let good = domain::Envelope::new(
        domain::MessageId::new("good"),
        "test",
        site,
        domain::Event::OrderReadyV1 {
            order_id: domain::OrderId::new("o-1"),
        },
    );
    {
        let client = p.client().await;
        warehouse_db::outbox::enqueue(&**client, &poison, None).await.unwrap();
        warehouse_db::outbox::enqueue(&**client, &good, None).await.unwrap();
    }
    let outbox = p.enrich.as_ref().unwrap().outbox();
    for _ in 0..2 {
        let _ = outbox.relay_once(0, 100).await;
    }
    assert_eq!(
        p.observer.wait_for_count(&reserve_queue, 1, WAIT).await,
        1,
        "the good event is published"
    );
    assert_eq!(
        p.scalar(
            "SELECT count(*) FROM outbox WHERE message_id = 'good' AND published_at IS NOT NULL",
            &[]
        )
        .await,
        1
    );
    assert_eq!(
        p.scalar(
            "SELECT count(*) FROM outbox WHERE message_id = 'poison' AND published_at IS NULL AND attempts >= 1 AND last_error IS NOT NULL",
            &[]
        )
        .await,
        1,
        "the bad row is kept, counted and retried later"
    );
    p.teardown().await;
}

/// Issue 25: marking a pick task picked locks the order before the task, as every order-level
/// command does (pack, cancel, review: the order, then its pick task). A pack holds the order
/// while the operator's "picked" arrives, then reaches for the pick task; when "picked" locked
/// the task first and then waited for the order, the two deadlocked (40P01) and one of them
/// failed.
#[tokio::test]
async fn marking_a_task_picked_locks_the_order_before_the_task() {
    let p = start_pipeline(PipelineOptions {
        start_enrich: false,
        start_reserve: false,
        start_warehouse: true,
        ..PipelineOptions::default()
    })
    .await;
    let (order_pk, task_id): (i64, i64) = {
        let client = p.client().await;
        let order_pk: i64 = client
            .query_one(
                "INSERT INTO orders (site_id, webflow_order_id, state, snapshot)
                 VALUES ($1, 'lock-order', 'reserved', '{}') RETURNING id",
                &[&SITE_ID],
            )
            .await
            .unwrap()
            .get(0);
        let task_id: i64 = client
            .query_one(
                "INSERT INTO pick_tasks (order_id, status) VALUES ($1, 'open') RETURNING id",
                &[&order_pk],
            )
            .await
            .unwrap()
            .get(0);
        (order_pk, task_id)
    };

    // An order-level command has locked the order (as `pack` does first).
    let mut packing = p.client().await;
    let packing_pid: i32 = packing.query_one("SELECT pg_backend_pid()", &[]).await.unwrap().get(0);
    let pack = packing.transaction().await.unwrap();
    warehouse_db::orders::lock_by_id(&*pack, order_pk)
        .await
        .unwrap()
        .expect("the order exists");

    // The operator's "picked" arrives meanwhile and waits for a lock.
    let picked = tokio::spawn(
        p.warehouse(reqwest::Method::POST, &format!("/api/v1/pick-tasks/{task_id}/picked"))
            .send(),
    );
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let waiting = p
            .scalar(
                "SELECT count(*) FROM pg_stat_activity
                 WHERE datname = current_database() AND wait_event_type = 'Lock' AND pid <> $1",
                &[&packing_pid],
            )
            .await;
        if waiting >= 1 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "\"picked\" never waited for a lock"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // The pack goes on to its pick task (what `pack` locks second).
    let task = warehouse_db::floor::pick_task_of_order(&*pack, order_pk).await;
    if let Err(warehouse_db::DbError::Postgres(error)) = &task {
        assert_ne!(
            error.code(),
            Some(&SqlState::T_R_DEADLOCK_DETECTED),
            "the pack deadlocked"
        );
    }
    let (locked_task, _) = task.unwrap().expect("the order has its pick task");
    assert_eq!(locked_task, task_id);
    pack.commit().await.unwrap();

    let response = picked.await.unwrap().unwrap();
    let status = response.status();
    let body = response.text().await.unwrap();
    assert_eq!(status, 200, "\"picked\" failed: {body}");
    assert_eq!(
        p.scalar(
            "SELECT count(*) FROM pick_tasks WHERE id = $1 AND status = 'picked'",
            &[&task_id]
        )
        .await,
        1
    );
    p.teardown().await;
}
