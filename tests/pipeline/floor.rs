//! The warehouse API, auto-pack, the ship worker and carriers.

use e2e::*;
use reqwest::Method;
use serde_json::json;
use std::time::Duration;
use wiremock::matchers::{method, path, path_regex};
use wiremock::{Mock, MockServer, ResponseTemplate};

const WAIT: Duration = Duration::from_secs(20);

fn floor_options() -> PipelineOptions {
    PipelineOptions {
        start_ship: true,
        start_warehouse: true,
        ..PipelineOptions::default()
    }
}

async fn reserved(p: &Pipeline, order_id: &str) {
    p.db.stock(SKU_BALL, 5).await;
    p.db.stock(SKU_GLOVES, 5).await;
    assert_eq!(
        p.post_webhook(&order_webhook("ecomm_new_order", order_id, "unfulfilled"))
            .await,
        200
    );
    let past_reserved = ["reserved", "packed", "shipped"];
    let state = p.wait_for_any_state(order_id, &past_reserved, WAIT).await;
    assert!(
        state.as_deref().is_some_and(|s| past_reserved.contains(&s)),
        "{state:?}"
    );
}

async fn json_of(response: reqwest::Response) -> (u16, serde_json::Value) {
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(serde_json::Value::Null))
}

#[tokio::test]
async fn webhook_to_shipped_through_picking_and_packing_with_the_sandbox_carrier() {
    let p = start_pipeline(floor_options()).await;
    reserved(&p, "floor-1").await;

    let (status, body) = json_of(
        p.warehouse(Method::GET, "/api/v1/pick-tasks?status=open")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    let task = &body["pick_tasks"][0];
    assert_eq!(task["order_id"], "floor-1");
    assert_eq!(task["lines"].as_array().unwrap().len(), 2);
    let task_id = task["id"].as_i64().unwrap();

    // Packing before picking is refused.
    let parcels =
        json!({"parcels": [{"weight_grams": 490.0, "length_cm": 40.0, "width_cm": 82.0, "height_cm": 155.0}]});
    let pack_path = format!("/api/v1/orders/{SITE_ID}/floor-1/pack");
    let (status, body) = json_of(
        p.warehouse(Method::POST, &pack_path)
            .json(&parcels)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, body["code"].as_str()), (409, Some("pick_task_not_picked")));

    let picked = p
        .warehouse(Method::POST, &format!("/api/v1/pick-tasks/{task_id}/picked"))
        .send()
        .await
        .unwrap();
    assert_eq!(picked.status(), 200);
    let (status, _) = json_of(
        p.warehouse(Method::POST, &pack_path)
            .json(&parcels)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        p.wait_for_state("floor-1", "shipped", WAIT).await.as_deref(),
        Some("shipped")
    );

    let (status, order) = json_of(
        p.warehouse(Method::GET, &format!("/api/v1/orders/{SITE_ID}/floor-1"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(order["state"], "shipped");
    let shipment = &order["shipment"];
    assert_eq!(shipment["status"], "booked");
    assert_eq!(shipment["carrier"], "Sandbox Express");
    let tracking = shipment["tracking_number"].as_str().unwrap();
    assert_eq!(
        tracking,
        carrier::sandbox::SandboxCarrier::tracking_number_for(&ship::reference_for(SITE_ID, "floor-1"))
    );
    assert!(shipment["tracking_url"].as_str().unwrap().ends_with(tracking));
    assert!(shipment["label_url"].as_str().is_some() && shipment["shipped_at"].as_str().is_some());
    assert_eq!(order["parcels"][0]["weight_grams"], 490.0);
    let kinds: Vec<&str> = order["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["kind"].as_str())
        .collect();
    assert!(
        kinds.contains(&"picked") && kinds.contains(&"state_change"),
        "{kinds:?}"
    );

    // Stock left the building.
    let ball = p.inventory(SKU_BALL).await;
    assert_eq!((ball.on_hand, ball.reserved), (4, 0));
    assert_eq!(
        p.scalar("SELECT shipped FROM inventory WHERE sku = $1", &[&SKU_BALL])
            .await,
        1
    );
    assert_eq!(
        p.scalar("SELECT count(*) FROM outbox WHERE routing_key = 'order.shipped'", &[])
            .await,
        1
    );

    // Packing again is a wrong-state error.
    let (status, body) = json_of(
        p.warehouse(Method::POST, &pack_path)
            .json(&parcels)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, body["code"].as_str()), (409, Some("wrong_state")));
    p.teardown().await;
}

#[tokio::test]
async fn auto_pack_ships_reserved_orders_with_no_operator() {
    let p = start_pipeline(PipelineOptions {
        auto_pack: true,
        ..floor_options()
    })
    .await;
    reserved(&p, "auto-1").await;
    assert_eq!(
        p.wait_for_state("auto-1", "shipped", WAIT).await.as_deref(),
        Some("shipped")
    );
    let weight: f64 = p
        .client()
        .await
        .query_one(
            "SELECT weight_grams FROM parcels p JOIN orders o ON o.id = p.order_id WHERE o.webflow_order_id = 'auto-1'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(weight, 49.0, "the fixture lines weigh 11 + 38");
    p.teardown().await;
}

/// Auto-pack packs every reserved order it finds in one pass (one transaction, a few
/// statements whatever their number): each gets its parcel, its packed pick task, its audit
/// entry and its `order.packed` event, once.
#[tokio::test]
async fn auto_pack_packs_a_batch_of_reserved_orders_in_one_pass() {
    let p = start_pipeline(PipelineOptions::default()).await;
    p.db.stock(SKU_BALL, 50).await;
    p.db.stock(SKU_GLOVES, 50).await;
    let ids = ["batch-1", "batch-2", "batch-3"];
    for id in ids {
        assert_eq!(
            p.post_webhook(&order_webhook("ecomm_new_order", id, "unfulfilled"))
                .await,
            200
        );
    }
    for id in ids {
        assert_eq!(
            p.wait_for_state(id, "reserved", WAIT).await.as_deref(),
            Some("reserved")
        );
    }
    let events = warehouse::commands::packing::auto_pack_batch(&p.db.pool, 100)
        .await
        .unwrap();
    let mut packed: Vec<String> = events.iter().map(|e| e.event.order_id().unwrap().to_string()).collect();
    packed.sort();
    assert_eq!(packed, ids);
    assert!(
        warehouse::commands::packing::auto_pack_batch(&p.db.pool, 100)
            .await
            .unwrap()
            .is_empty(),
        "nothing is packed twice"
    );
    let client = p.client().await;
    for id in ids {
        let row = client
            .query_one(
                "SELECT o.state, t.status,
                        (SELECT count(*) FROM parcels pa WHERE pa.order_id = o.id),
                        (SELECT weight_grams FROM parcels pa WHERE pa.order_id = o.id AND pa.parcel_no = 1),
                        (SELECT count(*) FROM audit_log a WHERE a.webflow_order_id = o.webflow_order_id
                            AND a.actor = 'auto-pack' AND a.detail->>'from' = 'reserved' AND a.detail->>'to' = 'packed'),
                        (SELECT count(*) FROM outbox x WHERE x.routing_key = 'order.packed'
                            AND x.message_id = 'packed-' || o.site_id || '-' || o.webflow_order_id
                            AND x.source_consumer = 'auto-pack')
                 FROM orders o JOIN pick_tasks t ON t.order_id = o.id WHERE o.webflow_order_id = $1",
                &[&id],
            )
            .await
            .unwrap();
        assert_eq!(row.get::<_, String>(0), "packed", "{id}");
        assert_eq!(row.get::<_, String>(1), "packed", "{id}");
        assert_eq!(row.get::<_, i64>(2), 1, "{id}: one parcel");
        assert_eq!(row.get::<_, f64>(3), 49.0, "{id}: the fixture lines weigh 11 + 38");
        assert_eq!(row.get::<_, i64>(4), 1, "{id}: one audit entry");
        assert_eq!(row.get::<_, i64>(5), 1, "{id}: one event");
    }
    p.teardown().await;
}

#[tokio::test]
async fn every_route_needs_a_valid_bearer_token() {
    let p = start_pipeline(PipelineOptions {
        start_enrich: false,
        start_reserve: false,
        ..floor_options()
    })
    .await;
    let base = p.warehouse_url.clone().unwrap();
    for (method, route) in [
        (Method::GET, "/api/v1/inventory/x"),
        (Method::PUT, "/api/v1/inventory/x"),
        (Method::POST, "/api/v1/inventory/x/receive"),
        (Method::GET, "/api/v1/merchants"),
        (Method::POST, "/api/v1/merchants"),
        (Method::GET, "/api/v1/merchants/default"),
        (Method::GET, "/api/v1/merchants/default/inventory/x"),
        (Method::PUT, "/api/v1/merchants/default/inventory/x"),
        (Method::POST, "/api/v1/merchants/default/inventory/x/receive"),
        (Method::GET, "/api/v1/pick-tasks"),
        (Method::POST, "/api/v1/pick-tasks/1/picked"),
        (Method::POST, "/api/v1/orders/s/o/pack"),
        (Method::GET, "/api/v1/orders/s/o"),
        (Method::GET, "/api/v1/openapi.json"),
    ] {
        let url = format!("{base}{route}");
        let missing = p.http.request(method.clone(), &url).send().await.unwrap();
        assert_eq!(missing.status(), 401, "{route} without a token");
        let (_, body) = json_of(missing).await;
        assert_eq!(body["code"], "unauthorized");
        let wrong = p
            .http
            .request(method.clone(), &url)
            .bearer_auth("not-the-token")
            .send()
            .await
            .unwrap();
        assert_eq!(wrong.status(), 401, "{route} with an unknown token");
        let basic = p
            .http
            .request(method, &url)
            .basic_auth("user", Some(WAREHOUSE_TOKEN))
            .send()
            .await
            .unwrap();
        assert_eq!(basic.status(), 401, "{route} with another scheme");
    }
    let (status, spec) = json_of(p.warehouse(Method::GET, "/api/v1/openapi.json").send().await.unwrap()).await;
    assert_eq!(status, 200);
    // The served document is the generated one, committed as docs/openapi.json.
    let committed: serde_json::Value = serde_json::from_str(include_str!("../../docs/openapi.json")).unwrap();
    assert_eq!(spec, committed, "the served spec is docs/openapi.json");
    assert_eq!(spec["openapi"], "3.1.0");
    assert_eq!(spec["info"]["version"], warehouse::openapi::API_VERSION);
    p.teardown().await;
}

#[tokio::test]
async fn bad_requests_name_the_field_and_get_the_right_status() {
    let p = start_pipeline(floor_options()).await;
    reserved(&p, "val-1").await;
    let put = |sku: &str, body: &str| {
        p.warehouse(Method::PUT, &format!("/api/v1/inventory/{sku}"))
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
    };
    let receive = |sku: &str, body: &str| {
        p.warehouse(Method::POST, &format!("/api/v1/inventory/{sku}/receive"))
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
    };
    let pack = |body: &str| {
        p.warehouse(Method::POST, &format!("/api/v1/orders/{SITE_ID}/val-1/pack"))
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
    };
    let cases: Vec<(&str, reqwest::Response, u16, &str, Option<&str>)> = vec![
        (
            "malformed JSON",
            put("new-sku", "{on_hand: 3").await.unwrap(),
            400,
            "malformed_json",
            None,
        ),
        (
            "negative on_hand",
            put("new-sku", r#"{"on_hand": -1}"#).await.unwrap(),
            422,
            "validation_failed",
            Some("on_hand"),
        ),
        (
            "on_hand as text",
            put("new-sku", r#"{"on_hand": "ten"}"#).await.unwrap(),
            422,
            "validation_failed",
            Some("on_hand"),
        ),
        (
            "unknown field",
            put("new-sku", r#"{"on_hand": 1, "onhand": 2}"#).await.unwrap(),
            422,
            "validation_failed",
            None,
        ),
        (
            "below reserved",
            put(SKU_BALL, r#"{"on_hand": 0}"#).await.unwrap(),
            409,
            "below_reserved",
            None,
        ),
        (
            "receive zero",
            receive(SKU_BALL, r#"{"quantity": 0}"#).await.unwrap(),
            422,
            "validation_failed",
            Some("quantity"),
        ),
        (
            "receive unknown SKU",
            receive("never-seen", r#"{"quantity": 3}"#).await.unwrap(),
            404,
            "not_found",
            None,
        ),
        (
            "no parcels",
            pack(r#"{"parcels": []}"#).await.unwrap(),
            422,
            "validation_failed",
            Some("parcels"),
        ),
        (
            "zero weight",
            pack(r#"{"parcels": [{"weight_grams": 0, "length_cm": 1, "width_cm": 1, "height_cm": 1}]}"#)
                .await
                .unwrap(),
            422,
            "validation_failed",
            Some("parcels[0].weight_grams"),
        ),
        (
            "missing dimension",
            pack(r#"{"parcels": [{"weight_grams": 5}]}"#).await.unwrap(),
            422,
            "validation_failed",
            None,
        ),
    ];
    for (name, response, status, code, field) in cases {
        let (got, body) = json_of(response).await;
        assert_eq!(got, status, "{name}: {body}");
        assert_eq!(body["code"], code, "{name}: {body}");
        if let Some(field) = field {
            assert_eq!(body["field"], field, "{name}: {body}");
        }
        assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()), "{name}");
    }
    let (status, _) = json_of(
        p.warehouse(Method::GET, "/api/v1/inventory/never-seen")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 404);
    let (status, _) = json_of(
        p.warehouse(Method::GET, "/api/v1/orders/nope/nope")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 404);
    let (status, _) = json_of(
        p.warehouse(Method::POST, "/api/v1/pick-tasks/999999/picked")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 404);
    // A valid count works and reports availability.
    let (status, level) = json_of(put("new-sku", r#"{"on_hand": 7}"#).await.unwrap()).await;
    assert_eq!((status, level["available"].as_i64()), (200, Some(7)));
    p.teardown().await;
}

#[tokio::test]
async fn receiving_stock_through_the_api_serves_a_backorder() {
    let p = start_pipeline(floor_options()).await;
    p.db.stock("api-scarce", 0).await;
    assert_eq!(p.post_webhook(&single_sku_order("bo-api", "api-scarce", 2)).await, 200);
    assert_eq!(
        p.wait_for_state("bo-api", "backordered", WAIT).await.as_deref(),
        Some("backordered")
    );
    let response = p
        .warehouse(Method::POST, "/api/v1/inventory/api-scarce/receive")
        .json(&json!({"quantity": 2}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        p.wait_for_state("bo-api", "reserved", WAIT).await.as_deref(),
        Some("reserved")
    );
    p.teardown().await;
}

#[tokio::test]
async fn an_invalid_address_sends_the_order_to_review_with_the_carriers_message() {
    let p = start_pipeline(PipelineOptions {
        auto_pack: true,
        ..floor_options()
    })
    .await;
    p.db.stock(SKU_BALL, 5).await;
    p.db.stock(SKU_GLOVES, 5).await;
    let mut body = order_webhook("ecomm_new_order", "bad-addr", "unfulfilled");
    body["payload"]["shippingAddress"]["postalCode"] = "00000".into();
    assert_eq!(p.post_webhook(&body).await, 200);
    assert_eq!(
        p.wait_for_state("bad-addr", "needs_review", WAIT).await.as_deref(),
        Some("needs_review")
    );
    let (_, order) = json_of(
        p.warehouse(Method::GET, &format!("/api/v1/orders/{SITE_ID}/bad-addr"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert!(
        order["state_reason"].as_str().unwrap().contains("postal code 00000"),
        "{order}"
    );
    assert_eq!(order["shipment"]["status"], "failed");
    p.teardown().await;
}

fn label(tracking: &str) -> serde_json::Value {
    json!({"label_id": "se-1001", "status": "completed", "tracking_number": tracking, "carrier_code": "ups",
           "service_code": "ups_ground", "shipment_cost": {"currency": "usd", "amount": 9.5}, "voided": false,
           "label_download": {"pdf": "https://api.shipengine.com/v1/downloads/1/label.pdf"}})
}

fn rates() -> serde_json::Value {
    json!({"rate_response": {"rates": [{"rate_id": "se-r1", "service_code": "ups_ground",
            "shipping_amount": {"currency": "usd", "amount": 9.5}}], "errors": []}})
}

#[tokio::test]
async fn the_same_packed_order_twice_buys_one_label_even_after_a_timeout() {
    let carrier = MockServer::start().await;
    // First lookup: nothing yet. Later lookups: the label the timed-out purchase did buy.
    Mock::given(method("GET"))
        .and(path_regex("^/v1/labels/external_shipment_id/.+$"))
        .respond_with(ResponseTemplate::new(404).set_body_json(json!({"request_id": "r", "errors": []})))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&carrier)
        .await;
    Mock::given(method("GET"))
        .and(path_regex("^/v1/labels/external_shipment_id/.+$"))
        .respond_with(ResponseTemplate::new(200).set_body_json(label("1Z999")))
        .with_priority(2)
        .mount(&carrier)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/rates"))
        .respond_with(ResponseTemplate::new(200).set_body_json(rates()))
        .expect(1)
        .mount(&carrier)
        .await;
    // The purchase succeeds at the carrier, but the answer comes too late (timeout: outcome unknown).
    Mock::given(method("POST"))
        .and(path("/v1/labels/rates/se-r1"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(label("1Z999"))
                .set_delay(Duration::from_secs(3)),
        )
        .expect(1)
        .mount(&carrier)
        .await;
    let p = start_pipeline(PipelineOptions {
        auto_pack: true,
        carrier: CarrierChoice::ShipEngine(carrier.uri()),
        ..floor_options()
    })
    .await;
    reserved(&p, "once-1").await;
    assert_eq!(
        p.wait_for_state("once-1", "shipped", WAIT).await.as_deref(),
        Some("shipped")
    );

    // The same order.packed again (a replay with a new message id): still one label.
    let packed: serde_json::Value = p
        .client()
        .await
        .query_one("SELECT payload FROM outbox WHERE routing_key = 'order.packed'", &[])
        .await
        .unwrap()
        .get(0);
    p.wait_until_idle(consumer::SHIP, WAIT).await;
    let handled = p.handled(consumer::SHIP).await;
    p.observer
        .publish(
            &p.topology.events_exchange(),
            "order.packed",
            &serde_json::to_vec(&packed).unwrap(),
            lapin::BasicProperties::default().with_message_id("replayed-packed".into()),
        )
        .await;
    // The replay is handled (ship finished with one more message), so what it did is done.
    p.wait_until_handled(consumer::SHIP, handled + 1, WAIT).await;
    carrier.verify().await;
    let attempts = p.scalar("SELECT attempts::bigint FROM shipments", &[]).await;
    assert_eq!(attempts, 2, "two attempts recorded, one label bought");
    let tracking: String = p
        .client()
        .await
        .query_one("SELECT tracking_number FROM shipments", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(tracking, "1Z999");
    p.teardown().await;
}

#[tokio::test]
async fn carrier_500s_are_retried_then_succeed() {
    let carrier = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path_regex("^/v1/labels/external_shipment_id/.+$"))
        .respond_with(ResponseTemplate::new(404))
        .mount(&carrier)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/rates"))
        .respond_with(ResponseTemplate::new(500).set_body_json(json!({"request_id": "r", "errors": [{"error_source": "shipengine", "error_type": "system", "error_code": "unspecified", "message": "An unknown error occurred"}]})))
        .up_to_n_times(2)
        .with_priority(1)
        .mount(&carrier)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/rates"))
        .respond_with(ResponseTemplate::new(200).set_body_json(rates()))
        .with_priority(2)
        .mount(&carrier)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/labels/rates/se-r1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(label("1Z500")))
        .expect(1)
        .mount(&carrier)
        .await;
    let p = start_pipeline(PipelineOptions {
        auto_pack: true,
        carrier: CarrierChoice::ShipEngine(carrier.uri()),
        ..floor_options()
    })
    .await;
    reserved(&p, "retry-ship").await;
    assert_eq!(
        p.wait_for_state("retry-ship", "shipped", WAIT).await.as_deref(),
        Some("shipped")
    );
    assert_eq!(p.scalar("SELECT attempts::bigint FROM shipments", &[]).await, 3);
    carrier.verify().await;
    p.teardown().await;
}
