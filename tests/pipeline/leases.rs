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
    p.client()
        .await
        .query_one(
            "INSERT INTO orders (site_id, webflow_order_id, state, snapshot) VALUES ('s', 'leased', 'packed', '{}') RETURNING id",
            &[],
        )
        .await
        .unwrap()
        .get(0)
}

/// The holder's database connection dies mid-call (a network cut, a PostgreSQL restart):
/// before, the session advisory lock vanished with it and a concurrent redelivery took the
/// order while the holder carried on.
#[tokio::test]
async fn a_lease_outlives_its_holders_connection() {
    let p = start_pipeline(PipelineOptions {
        start_enrich: false,
        start_reserve: false,
        ..PipelineOptions::default()
    })
    .await;
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
    let p = start_pipeline(PipelineOptions {
        start_enrich: false,
        start_reserve: false,
        ..PipelineOptions::default()
    })
    .await;
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
