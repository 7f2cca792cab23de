//! Issue 13: per-order work leases that stay fenced when their connection dies, and a label
//! bought for an order cancelled meanwhile is voided.

use e2e::*;
use serde_json::json;
use std::time::Duration;
use warehouse_db::locks::OrderLock;
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, MockServer, Request, Respond, ResponseTemplate};

const WAIT: Duration = Duration::from_secs(25);

async fn an_order(p: &Pipeline) -> i64 {
    insert_order(&**p.client().await, "leased", "packed").await
}

/// An order of store `s` in `state`; its primary key.
async fn insert_order(client: &tokio_postgres::Client, webflow_order_id: &str, state: &str) -> i64 {
    client
        .query_one(
            "INSERT INTO orders (site_id, webflow_order_id, state, snapshot) VALUES ('s', $1, $2, '{}') RETURNING id",
            &[&webflow_order_id, &state],
        )
        .await
        .unwrap()
        .get(0)
}

/// A pipeline whose database and broker the test drives itself: no enrich or reserve workers.
async fn without_workers() -> Pipeline {
    start_pipeline(PipelineOptions {
        start_enrich: false,
        start_reserve: false,
        ..PipelineOptions::default()
    })
    .await
}

/// The holder's database connection dies mid-call (a network cut, a PostgreSQL restart):
/// before, the session advisory lock vanished with it and a concurrent redelivery took the
/// order while the holder carried on.
#[tokio::test]
async fn a_lease_outlives_its_holders_connection() {
    let p = without_workers().await;
    let order_pk = an_order(&p).await;
    let holder = warehouse_db::connect(&warehouse_db::ConnectOptions::new(
        secrecy::SecretString::from(p.db.url.clone()),
        2,
    ))
    .await
    .unwrap();
    let lease = OrderLock::try_acquire(&holder, "ship", order_pk).await.unwrap();
    assert!(lease.is_some());
    // Every connection of the holder's pool dies.
    p.client()
        .await
        .execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
             WHERE datname = current_database() AND pid <> pg_backend_pid()",
            &[],
        )
        .await
        .unwrap();
    let other = warehouse_db::connect(&warehouse_db::ConnectOptions::new(
        secrecy::SecretString::from(p.db.url.clone()),
        2,
    ))
    .await
    .unwrap();
    let second = OrderLock::try_acquire(&other, "ship", order_pk).await.unwrap();
    assert!(second.is_none(), "a concurrent delivery must not take a held lease");
    drop(lease);
    p.teardown().await;
}

/// A lease that expired and was taken over cannot record its result: the token is checked in
/// the transaction that records it, and right before the external call.
#[tokio::test]
async fn an_expired_lease_cannot_record_its_result() {
    let p = without_workers().await;
    let order_pk = an_order(&p).await;
    let first = OrderLock::try_acquire(&p.db.pool, "ship", order_pk)
        .await
        .unwrap()
        .unwrap();
    // Its holder stalled past the expiry; a redelivery takes the order.
    p.client()
        .await
        .execute("UPDATE order_leases SET expires_at = now() - interval '1 second'", &[])
        .await
        .unwrap();
    let second = OrderLock::try_acquire(&p.db.pool, "ship", order_pk)
        .await
        .unwrap()
        .expect("an expired lease is free");
    assert!(!first.confirm().await.unwrap(), "the stale holder may not call out");
    let mut client = p.client().await;
    let tx = client.transaction().await.unwrap();
    assert!(!first.finish_in(&tx).await.unwrap(), "nor record a result");
    assert!(second.finish_in(&tx).await.unwrap());
    tx.commit().await.unwrap();
    p.teardown().await;
}

/// The one-statement forms the workers use: the order found and its lease taken together
/// (only in the states asked for, and never while another holder has it), and the lease
/// ended with the order locked in the recording transaction, fenced like `finish_in`.
#[tokio::test]
async fn an_order_is_found_and_leased_in_one_statement_and_a_lost_lease_locks_nothing() {
    use domain::{OrderId, OrderState, SiteId};
    let db = test_support::db::TestDatabase::create().await;
    let pool = &db.pool;
    let order_pk = insert_order(&**db.client().await, "leased", "packed").await;
    let (site, order) = (SiteId::new("s"), OrderId::new("leased"));
    let lease = |states: Option<&'static [OrderState]>| {
        let (site, order) = (site.clone(), order.clone());
        async move {
            OrderLock::try_acquire_order(pool, "ship", &site, &order, states)
                .await
                .unwrap()
        }
    };

    let missing = OrderLock::try_acquire_order(pool, "ship", &site, &OrderId::new("nope"), None)
        .await
        .unwrap();
    assert!(missing.is_none(), "no such order");
    let shipped_only = lease(Some(&[OrderState::Shipped])).await.expect("the order is found");
    assert_eq!(shipped_only.order.id, order_pk);
    assert_eq!(shipped_only.order.state, OrderState::Packed);
    assert!(shipped_only.lease.is_none(), "not in a state asked for: no lease");
    let held = lease(Some(&[OrderState::Packed])).await.unwrap();
    let first = held.lease.expect("free: taken");
    let busy = lease(None).await.unwrap();
    assert!(busy.lease.is_none(), "a held lease is not taken again");
    assert_eq!(busy.order.webflow_order_id.as_str(), "leased");

    // The holder stalls past the expiry; a redelivery takes the order over.
    db.client()
        .await
        .execute("UPDATE order_leases SET expires_at = now() - interval '1 second'", &[])
        .await
        .unwrap();
    let second = lease(None).await.unwrap().lease.expect("an expired lease is free");
    let mut client = db.client().await;
    let tx = client.transaction().await.unwrap();
    assert!(
        first.finish_locking_order(&tx).await.unwrap().is_none(),
        "the stale holder records nothing"
    );
    let locked = second
        .finish_locking_order(&tx)
        .await
        .unwrap()
        .expect("the holder ends its lease and gets the order");
    assert_eq!((locked.id, locked.state), (order_pk, OrderState::Packed));
    // Locked until the transaction ends: another session cannot take the row.
    let blocked = db
        .client()
        .await
        .query_opt("SELECT 1 FROM orders WHERE id = $1 FOR UPDATE NOWAIT", &[&order_pk])
        .await;
    assert!(blocked.is_err(), "the order is locked by the recording transaction");
    tx.commit().await.unwrap();
    second.committed();
    let leases: i64 = db
        .client()
        .await
        .query_one("SELECT count(*) FROM order_leases", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(leases, 0, "the lease ended with the transaction");
}

/// A delivery that found the order `packed`, then waited for the lease while the holder sent
/// it to review (a refused label), records no booking attempt, so it buys no label: the state
/// is read again by the statement that records the attempt.
#[tokio::test]
async fn a_booking_attempt_is_recorded_only_for_an_order_still_packed() {
    use warehouse_db::floor::{self, BookingStart};
    let db = test_support::db::TestDatabase::create().await;
    let order_pk = insert_order(&**db.client().await, "reviewed", "needs_review").await;
    let lease = OrderLock::try_acquire(&db.pool, "ship", order_pk)
        .await
        .unwrap()
        .expect("free");
    let client = db.client().await;
    let start = floor::begin_booking(&*client, &lease, "s-reviewed", "sandbox")
        .await
        .unwrap();
    assert!(
        matches!(
            start,
            BookingStart::NotPacked {
                state: domain::OrderState::NeedsReview
            }
        ),
        "nothing to book for an order in review"
    );
    let attempts: i64 = client
        .query_one("SELECT count(*) FROM shipments WHERE order_id = $1", &[&order_pk])
        .await
        .unwrap()
        .get(0);
    assert_eq!(attempts, 0, "no attempt recorded");

    client
        .execute("UPDATE orders SET state = 'packed' WHERE id = $1", &[&order_pk])
        .await
        .unwrap();
    let start = floor::begin_booking(&*client, &lease, "s-reviewed", "sandbox")
        .await
        .unwrap();
    assert!(
        matches!(start, BookingStart::Recorded { attempts: 1, .. }),
        "packed: the attempt is recorded"
    );
    lease.release().await;
}

fn label() -> serde_json::Value {
    json!({"label_id": "se-2002", "status": "completed", "tracking_number": "1Z2002", "carrier_code": "ups",
           "service_code": "ups_ground", "shipment_cost": {"currency": "usd", "amount": 9.5}, "voided": false,
           "label_download": {"pdf": "https://api.shipengine.com/v1/downloads/2/label.pdf"}})
}

/// Answers the label purchase only after the order was cancelled in the warehouse: the
/// cancellation lands while the label is being bought.
struct CancelsThenSells {
    database_url: String,
    order_id: &'static str,
}

impl Respond for CancelsThenSells {
    fn respond(&self, _request: &Request) -> ResponseTemplate {
        let (url, order_id) = (self.database_url.clone(), self.order_id);
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            runtime.block_on(async move {
                let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.unwrap();
                tokio::spawn(connection);
                client
                    .execute(
                        "UPDATE orders SET state = 'cancelled', state_reason = 'refunded meanwhile', version = version + 1
                         WHERE webflow_order_id = $1",
                        &[&order_id],
                    )
                    .await
                    .unwrap();
            });
        })
        .join()
        .unwrap();
        ResponseTemplate::new(200).set_body_json(label())
    }
}

#[tokio::test]
async fn a_label_bought_for_an_order_cancelled_meanwhile_is_voided() {
    let carrier = MockServer::start().await;
    let p = start_pipeline(PipelineOptions {
        start_ship: true,
        start_warehouse: true,
        auto_pack: true,
        carrier: CarrierChoice::ShipEngine(carrier.uri()),
        // The label is bought on the message's last attempt: the cancellation found when it is
        // recorded must not use one up (it would be dead-lettered, the label kept and paid).
        max_attempts: 1,
        ..PipelineOptions::default()
    })
    .await;
    Mock::given(method("GET"))
        .and(path_regex("^/v1/labels/external_shipment_id/.+$"))
        .respond_with(ResponseTemplate::new(404).set_body_json(json!({"request_id": "r", "errors": []})))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&carrier)
        .await;
    Mock::given(method("GET"))
        .and(path_regex("^/v1/labels/external_shipment_id/.+$"))
        .respond_with(ResponseTemplate::new(200).set_body_json(label()))
        .with_priority(2)
        .mount(&carrier)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/rates"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"rate_response": {"rates": [
            {"rate_id": "se-r2", "service_code": "ups_ground", "shipping_amount": {"currency": "usd", "amount": 9.5}}],
            "errors": []}})),
        )
        .expect(1)
        .mount(&carrier)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/labels/rates/se-r2"))
        .respond_with(CancelsThenSells {
            database_url: p.db.url.clone(),
            order_id: "void-1",
        })
        .expect(1)
        .mount(&carrier)
        .await;
    Mock::given(method("PUT"))
        .and(path("/v1/labels/se-2002/void"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"approved": true, "message": "Request for refund submitted."})),
        )
        .expect(1)
        .mount(&carrier)
        .await;
    p.db.stock(SKU_BALL, 5).await;
    p.db.stock(SKU_GLOVES, 5).await;
    assert_eq!(
        p.post_webhook(&order_webhook("ecomm_new_order", "void-1", "unfulfilled"))
            .await,
        200
    );
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let status: Option<String> = p
            .client()
            .await
            .query_opt("SELECT status FROM shipments", &[])
            .await
            .unwrap()
            .map(|r| r.get(0));
        if status.as_deref() == Some("voided") {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the shipment ended {status:?}, not voided"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    p.wait_until_idle(consumer::SHIP, WAIT).await;
    carrier.verify().await;
    assert_eq!(p.order_state("void-1").await.as_deref(), Some("cancelled"));
    let recorded = p
        .scalar(
            "SELECT count(*) FROM audit_log WHERE webflow_order_id = 'void-1' AND detail->>'voided_label' = 'se-2002'",
            &[],
        )
        .await;
    assert_eq!(recorded, 1, "the void is on the order's timeline");
    p.teardown().await;
}

// Issue 25: a slow carrier booking and the order's lease.

/// A `ship` replica beside the pipeline's, booking with the fake ShipEngine at `carrier_url`
/// with `timeout_ms` per HTTP call.
async fn start_ship(p: &Pipeline, carrier_url: &str, timeout_ms: u64) {
    let mut carrier = carrier::CarrierSettings::default();
    carrier.kind = carrier::CarrierKind::ShipEngine;
    carrier.shipengine.base_url = carrier_url.to_owned();
    carrier.shipengine.api_key = Some(secrecy::SecretString::from("TEST_key"));
    carrier.shipengine.timeout_ms = timeout_ms;
    let settings = ship::Settings {
        base: p.base.clone(),
        carrier,
    };
    let service = ship::build(settings, p.shutdown.clone()).await.unwrap();
    p.track_replica(consumer::SHIP, service.health_port());
    tokio::spawn(service.run_until_stopped(p.shutdown.clone()));
}

/// A packed order of the test store, with its one parcel.
async fn packed_order(p: &Pipeline, webflow_order_id: &str) -> i64 {
    let client = p.client().await;
    let order_pk: i64 = client
        .query_one(
            "INSERT INTO orders (site_id, webflow_order_id, state, snapshot) VALUES ($1, $2, 'packed', '{}') RETURNING id",
            &[&SITE_ID, &webflow_order_id],
        )
        .await
        .unwrap()
        .get(0);
    client
        .execute(
            "INSERT INTO parcels (order_id, parcel_no, weight_grams, length_cm, width_cm, height_cm)
             VALUES ($1, 1, 500, 20, 15, 10)",
            &[&order_pk],
        )
        .await
        .unwrap();
    order_pk
}

/// One delivery of `order.packed` for the order (each with its own message id, as a replay or
/// a duplicate event has).
async fn deliver_packed(p: &Pipeline, webflow_order_id: &str, message_id: &str) {
    let envelope = domain::Envelope::new(
        domain::MessageId::new(message_id),
        "lease-test",
        domain::SiteId::new(SITE_ID),
        domain::Event::OrderPackedV1 {
            order_id: domain::OrderId::new(webflow_order_id),
        },
    );
    p.observer
        .publish(
            &p.topology.events_exchange(),
            "order.packed",
            &serde_json::to_vec(&envelope).unwrap(),
            lapin::BasicProperties::default().with_message_id(message_id.into()),
        )
        .await;
}

/// The fake ShipEngine's requests of `method` whose path starts with `prefix`.
async fn requests(carrier: &MockServer, method: &str, prefix: &str) -> Vec<String> {
    carrier
        .received_requests()
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|r| r.method.as_str() == method && r.url.path().starts_with(prefix))
        .map(|r| r.url.path().to_owned())
        .collect()
}

async fn wait_for_request(carrier: &MockServer, method: &str, prefix: &str) {
    wait_for(&format!("the carrier to get {method} {prefix}"), WAIT, || async {
        (!requests(carrier, method, prefix).await.is_empty()).then_some(())
    })
    .await;
}

/// Sells a new label at each purchase (`se-label-1`, `se-label-2`, …); the first purchase can
/// first make the buyer's lease lapse and answer late (`first`).
struct SellsLabels {
    sold: std::sync::atomic::AtomicUsize,
    first: Option<LapsesTheLease>,
}

/// The first buyer's process is paused longer than its lease, however long: the lease is
/// expired as it would have, and the label arrives `delay` later.
struct LapsesTheLease {
    database_url: String,
    delay: Duration,
}

impl Respond for SellsLabels {
    fn respond(&self, _request: &Request) -> ResponseTemplate {
        let n = self.sold.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        let body = json!({"label_id": format!("se-label-{n}"), "status": "completed",
            "tracking_number": format!("1ZLEASE{n}"), "carrier_code": "ups", "service_code": "ups_ground",
            "shipment_cost": {"currency": "usd", "amount": 9.5}, "voided": false,
            "label_download": {"pdf": format!("https://api.shipengine.com/v1/downloads/{n}/label.pdf")}});
        let response = ResponseTemplate::new(200).set_body_json(body);
        match (&self.first, n) {
            (Some(lapse), 1) => {
                let url = lapse.database_url.clone();
                std::thread::spawn(move || {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .unwrap();
                    runtime.block_on(async move {
                        let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await.unwrap();
                        tokio::spawn(connection);
                        client
                            .execute("UPDATE order_leases SET expires_at = now() - interval '1 second'", &[])
                            .await
                            .unwrap();
                    });
                })
                .join()
                .unwrap();
                response.set_delay(lapse.delay)
            }
            _ => response,
        }
    }
}

/// The fake ShipEngine: no label for any reference (so each purchase is a new label), one
/// rate (the first rates call answered `first_rates_delay` late), labels sold by `labels`,
/// and voids approved.
async fn fake_shipengine(first_rates_delay: Option<Duration>, labels: SellsLabels) -> MockServer {
    let carrier = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path_regex("^/v1/labels/external_shipment_id/.+$"))
        .respond_with(ResponseTemplate::new(404).set_body_json(json!({"request_id": "r", "errors": []})))
        .mount(&carrier)
        .await;
    let rates = ResponseTemplate::new(200).set_body_json(json!({"rate_response": {"rates": [
        {"rate_id": "se-r1", "service_code": "ups_ground", "shipping_amount": {"currency": "usd", "amount": 9.5}}],
        "errors": []}}));
    if let Some(delay) = first_rates_delay {
        Mock::given(method("POST"))
            .and(path("/v1/rates"))
            .respond_with(rates.clone().set_delay(delay))
            .up_to_n_times(1)
            .with_priority(1)
            .mount(&carrier)
            .await;
    }
    Mock::given(method("POST"))
        .and(path("/v1/rates"))
        .respond_with(rates)
        .with_priority(2)
        .mount(&carrier)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/labels/rates/se-r1"))
        .respond_with(labels)
        .mount(&carrier)
        .await;
    Mock::given(method("PUT"))
        .and(path_regex("^/v1/labels/.+/void$"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"approved": true, "message": "Request for refund submitted."})),
        )
        .mount(&carrier)
        .await;
    carrier
}

/// Makes the background renewal of the lease held now fail, as when the holder cannot reach
/// the database for a while (a trigger of this test's database refuses any extension of that
/// token; taking the lease over, or ending it, still works).
async fn stall_the_renewal_of_the_lease_held_now(p: &Pipeline) {
    let client = p.client().await;
    client
        .batch_execute(
            "CREATE TABLE stalled_leases (token uuid PRIMARY KEY);
             CREATE FUNCTION refuse_stalled_renewal() RETURNS trigger LANGUAGE plpgsql AS $$
             BEGIN
                 IF NEW.token = OLD.token AND EXISTS (SELECT 1 FROM stalled_leases WHERE token = OLD.token) THEN
                     RAISE EXCEPTION 'the renewal of this lease is stalled (test)';
                 END IF;
                 RETURN NEW;
             END $$;
             CREATE TRIGGER stalled_renewal BEFORE UPDATE ON order_leases
                 FOR EACH ROW EXECUTE FUNCTION refuse_stalled_renewal();
             INSERT INTO stalled_leases SELECT token FROM order_leases;",
        )
        .await
        .unwrap();
    assert_eq!(p.scalar("SELECT count(*) FROM stalled_leases", &[]).await, 1);
}

/// A ShipEngine booking (two HTTP calls of up to `timeout_ms` each) may outlast the 15 s lease;
/// if the lease's background renewal stalls meanwhile, the lease lapsed mid-call before, a
/// second delivery of the same order took it over and bought a second label, and the first
/// label was dropped unrecorded, paid and never voided. The lease is now extended to cover the
/// booking's time limit before the call: the second delivery waits, and one label is bought.
#[tokio::test]
async fn a_slow_booking_keeps_the_lease_and_a_second_delivery_buys_no_second_label() {
    // The first rates call answers after 20 s, longer than a lease lives without renewal,
    // within the carrier's 30 s limit per call.
    let carrier = fake_shipengine(
        Some(Duration::from_secs(20)),
        SellsLabels {
            sold: Default::default(),
            first: None,
        },
    )
    .await;
    let p = without_workers().await;
    start_ship(&p, &carrier.uri(), 30_000).await;
    start_ship(&p, &carrier.uri(), 30_000).await;
    packed_order(&p, "slow-1").await;

    deliver_packed(&p, "slow-1", "packed-slow-1").await;
    // The first delivery is in its booking, under the lease, whose renewal now stalls.
    wait_for_request(&carrier, "POST", "/v1/rates").await;
    stall_the_renewal_of_the_lease_held_now(&p).await;
    // A second delivery of the same order arrives during the call.
    deliver_packed(&p, "slow-1", "packed-slow-1-again").await;

    p.wait_until_handled(consumer::SHIP, 2, Duration::from_secs(90)).await;
    assert_eq!(p.order_state("slow-1").await.as_deref(), Some("shipped"));
    let bought = requests(&carrier, "POST", "/v1/labels/rates/").await;
    assert_eq!(bought.len(), 1, "one label bought, not {bought:?}");
    let voided = requests(&carrier, "PUT", "/v1/labels/").await;
    assert!(voided.is_empty(), "nothing to void: {voided:?}");
    let tracking: Vec<String> = p
        .client()
        .await
        .query("SELECT tracking_number FROM shipments WHERE status = 'booked'", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(tracking, ["1ZLEASE1"]);
    p.teardown().await;
}

/// What the extended lease cannot cover: the buyer's process is paused (SIGSTOP, a frozen VM)
/// longer than the lease, a second delivery takes the order over and books it, and the first
/// buyer resumes with a label in hand. Before, that label was dropped (paid, never voided);
/// now it is kept as an orphaned label and voided, since the order shipped with another one
/// (or adopted, had the order not been booked meanwhile). Either way: every label bought but
/// the one the order shipped with is voided, once, and on the order's timeline.
#[tokio::test]
async fn a_label_bought_after_the_lease_lapsed_is_voided_not_dropped() {
    let p = without_workers().await;
    let carrier = fake_shipengine(
        None,
        SellsLabels {
            sold: Default::default(),
            first: Some(LapsesTheLease {
                database_url: p.db.url.clone(),
                delay: Duration::from_secs(4),
            }),
        },
    )
    .await;
    start_ship(&p, &carrier.uri(), 10_000).await;
    start_ship(&p, &carrier.uri(), 10_000).await;
    let order_pk = packed_order(&p, "paused-1").await;

    deliver_packed(&p, "paused-1", "packed-paused-1").await;
    // The first buyer is paused in its label purchase; its lease lapses.
    wait_for_request(&carrier, "POST", "/v1/labels/rates/").await;
    deliver_packed(&p, "paused-1", "packed-paused-1-again").await;

    p.wait_until_handled(consumer::SHIP, 2, WAIT).await;
    assert_eq!(p.order_state("paused-1").await.as_deref(), Some("shipped"));
    let shipped_with: String = p
        .client()
        .await
        .query_one(
            "SELECT external_id FROM shipments WHERE order_id = $1 AND status = 'booked'",
            &[&order_pk],
        )
        .await
        .unwrap()
        .get(0);
    let sold = requests(&carrier, "POST", "/v1/labels/rates/").await.len();
    let mut expected: Vec<String> = (1..=sold)
        .map(|n| format!("/v1/labels/se-label-{n}/void"))
        .filter(|path| !path.contains(&format!("/{shipped_with}/")))
        .collect();
    let mut voided = requests(&carrier, "PUT", "/v1/labels/").await;
    expected.sort();
    voided.sort();
    assert_eq!(
        voided, expected,
        "{sold} labels bought, the order shipped with {shipped_with}: every other one voided, once"
    );
    assert_eq!(
        p.scalar("SELECT count(*) FROM orphaned_labels WHERE outcome IS NULL", &[])
            .await,
        0,
        "no label left unsettled"
    );
    assert_eq!(
        p.scalar(
            "SELECT count(*) FROM audit_log WHERE webflow_order_id = 'paused-1' AND detail ? 'voided_label'",
            &[]
        )
        .await,
        i64::try_from(expected.len()).unwrap(),
        "each void is on the order's timeline"
    );
    p.teardown().await;
}

/// An orphaned label of an order still `packed` (its buyer lost the lease and nobody booked
/// the order since) is adopted by the next delivery: recorded as the order's label, nothing
/// bought and nothing voided.
#[tokio::test]
async fn an_orphaned_label_of_an_order_still_packed_is_adopted() {
    let carrier = fake_shipengine(
        None,
        SellsLabels {
            sold: Default::default(),
            first: None,
        },
    )
    .await;
    let p = without_workers().await;
    start_ship(&p, &carrier.uri(), 10_000).await;
    let order_pk = packed_order(&p, "orphan-1").await;
    // What the delivery that lost its lease left: its booking attempt, and the label it bought.
    let booking = json!({"carrier": "UPS", "service": "ups_ground", "tracking_number": "1ZORPHAN",
        "tracking_url": "https://www.ups.com/track?tracknum=1ZORPHAN", "label_url": null, "cost_minor": 950,
        "currency": "USD", "external_id": "se-orphan", "shipped_at": "2026-01-01T00:00:00Z"});
    {
        let client = p.client().await;
        client
            .execute(
                "INSERT INTO shipments (order_id, reference, carrier_kind, status, attempts)
                 VALUES ($1, $2, 'shipengine', 'booking', 1)",
                &[&order_pk, &format!("{SITE_ID}-orphan-1")],
            )
            .await
            .unwrap();
        warehouse_db::floor::record_orphaned_label(&**client, order_pk, "se-orphan", "shipengine", &booking)
            .await
            .unwrap();
    }

    deliver_packed(&p, "orphan-1", "packed-orphan-1").await;
    p.wait_until_handled(consumer::SHIP, 1, WAIT).await;
    assert_eq!(p.order_state("orphan-1").await.as_deref(), Some("shipped"));
    let (label, tracking): (String, String) = {
        let row = p
            .client()
            .await
            .query_one(
                "SELECT external_id, tracking_number FROM shipments WHERE order_id = $1 AND status = 'booked'",
                &[&order_pk],
            )
            .await
            .unwrap();
        (row.get(0), row.get(1))
    };
    assert_eq!((label.as_str(), tracking.as_str()), ("se-orphan", "1ZORPHAN"));
    assert!(requests(&carrier, "POST", "/v1/").await.is_empty(), "nothing bought");
    assert!(requests(&carrier, "PUT", "/v1/").await.is_empty(), "nothing voided");
    assert_eq!(
        p.scalar(
            "SELECT count(*) FROM orphaned_labels WHERE external_id = 'se-orphan' AND outcome = 'in_use'",
            &[]
        )
        .await,
        1
    );
    p.teardown().await;
}

/// An orphaned label the carrier refuses to void for good (ShipEngine answers `approved: false`:
/// the label was used, say), beside one of another carrier than the one configured. Before, the
/// refusal failed the delivery for good before anything was bought (the order stayed `packed`
/// and every replay hit the same label), and the other carrier's label was looked at again by
/// every delivery. Now both are settled for an operator (`void_failed` with the carrier's
/// message, `other_carrier`), each on the order's timeline, and the order is booked.
#[tokio::test]
async fn an_orphaned_label_the_carrier_refuses_to_void_does_not_hold_the_order_up() {
    let carrier = fake_shipengine(
        None,
        SellsLabels {
            sold: Default::default(),
            first: None,
        },
    )
    .await;
    Mock::given(method("PUT"))
        .and(path("/v1/labels/se-used/void"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"approved": false, "message": "This label has already been used."})),
        )
        .with_priority(1)
        .mount(&carrier)
        .await;
    let p = without_workers().await;
    start_ship(&p, &carrier.uri(), 10_000).await;
    let order_pk = packed_order(&p, "refused-1").await;
    {
        let client = p.client().await;
        client
            .execute(
                "INSERT INTO shipments (order_id, reference, carrier_kind, status, attempts)
                 VALUES ($1, $2, 'shipengine', 'booking', 1)",
                &[&order_pk, &format!("{SITE_ID}-refused-1")],
            )
            .await
            .unwrap();
        // A label of this carrier that cannot be adopted (its booking is unreadable): voided,
        // which the carrier refuses; and one bought from the sandbox carrier.
        warehouse_db::floor::record_orphaned_label(&**client, order_pk, "se-used", "shipengine", &json!({}))
            .await
            .unwrap();
        warehouse_db::floor::record_orphaned_label(&**client, order_pk, "sb-other", "sandbox", &json!({}))
            .await
            .unwrap();
    }

    deliver_packed(&p, "refused-1", "packed-refused-1").await;
    p.wait_until_handled(consumer::SHIP, 1, WAIT).await;
    assert_eq!(p.order_state("refused-1").await.as_deref(), Some("shipped"));
    let bought = requests(&carrier, "POST", "/v1/labels/rates/").await;
    assert_eq!(bought.len(), 1, "one new label bought, not {bought:?}");
    let label: String = p
        .client()
        .await
        .query_one(
            "SELECT external_id FROM shipments WHERE order_id = $1 AND status = 'booked'",
            &[&order_pk],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(label, "se-label-1");
    assert_eq!(
        requests(&carrier, "PUT", "/v1/labels/").await,
        ["/v1/labels/se-used/void"],
        "only this carrier's label is voided, once"
    );
    let settled: Vec<(String, Option<String>, Option<String>)> = p
        .client()
        .await
        .query(
            "SELECT external_id, outcome, detail FROM orphaned_labels WHERE order_id = $1 ORDER BY external_id",
            &[&order_pk],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(settled.len(), 2);
    assert_eq!(
        (settled[0].0.as_str(), settled[0].1.as_deref()),
        ("sb-other", Some("other_carrier"))
    );
    assert_eq!(
        (settled[1].0.as_str(), settled[1].1.as_deref()),
        ("se-used", Some("void_failed"))
    );
    assert!(
        settled[1].2.as_deref().is_some_and(|d| d.contains("already been used")),
        "the carrier's message is kept: {:?}",
        settled[1].2
    );
    let timeline: Vec<(String, String)> = p
        .client()
        .await
        .query(
            "SELECT detail->>'orphaned_label', detail->>'outcome' FROM audit_log
             WHERE webflow_order_id = 'refused-1' AND detail ? 'orphaned_label' ORDER BY 1",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(
        timeline,
        [
            ("sb-other".to_owned(), "other_carrier".to_owned()),
            ("se-used".to_owned(), "void_failed".to_owned())
        ],
        "each is on the order's timeline, for an operator"
    );
    p.teardown().await;
}
