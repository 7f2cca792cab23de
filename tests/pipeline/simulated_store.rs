//! The simulator's store drives the whole pipeline: every shippable in-stock order is
//! fulfilled exactly once, digital orders are recorded only, refunded ones are not fulfilled,
//! backordered ones wait for stock.

use e2e::*;
use reqwest::Method;
use std::time::Duration;

#[tokio::test]
async fn two_hundred_simulated_orders_end_exactly_where_they_should() {
    let mut config = simulator_config();
    config.orders_per_minute = 12_000.0;
    config.max_orders = 200;
    config.catalog = vec![
        "sim-sku-1".into(),
        "sim-sku-2".into(),
        "sim-sku-3".into(),
        "sim-sku-out".into(),
    ];
    config.digital_share = 0.1;
    config.refund_share = 0.05;
    config.refund_after_ms = 50;
    let p = start_pipeline(PipelineOptions {
        start_ship: true,
        start_notify: true,
        start_warehouse: true,
        auto_pack: true,
        simulator: Some(config),
        stock: vec![
            ("sim-sku-1", 1_000),
            ("sim-sku-2", 1_000),
            ("sim-sku-3", 1_000),
            ("sim-sku-out", 0),
        ],
        ..PipelineOptions::default()
    })
    .await;
    let sim = p.sim.as_ref().unwrap();

    // Wait until all 200 exist and every order has settled.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    loop {
        let orders = sim.state.orders.lock().unwrap().len();
        let unsettled = p
            .scalar(
                "SELECT count(*) FROM orders WHERE state IN ('ready', 'reserved', 'packed', 'shipped')",
                &[],
            )
            .await;
        let known = p.scalar("SELECT count(*) FROM orders", &[]).await;
        if orders == 200 && known == 200 && unsettled == 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not settled: {orders} simulated, {known} known, {unsettled} in flight"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let orders: Vec<serde_json::Value> = sim.state.orders.lock().unwrap().values().cloned().collect();
    let mut backordered = Vec::new();
    for order in &orders {
        let id = order["orderId"].as_str().unwrap();
        let state = p.order_state(id).await.unwrap();
        let writes = sim.state.writes_for(id);
        let digital = order["isShippingRequired"] == false;
        let out_of_stock = order["purchasedItems"]
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["variantSKU"] == "sim-sku-out");
        let refunded = order["status"] == "refunded";
        if refunded {
            assert!(["cancelled", "needs_review"].contains(&state.as_str()), "{id}: {state}");
            assert!(
                writes.iter().all(|w| !w.path.ends_with("/fulfill")),
                "{id}: a refunded order is never fulfilled"
            );
        } else if digital {
            assert_eq!(state, "received", "{id}: digital orders are recorded, not reserved");
            assert!(writes.is_empty(), "{id}");
        } else if out_of_stock {
            assert_eq!(state, "backordered", "{id}");
            assert!(writes.is_empty(), "{id}: untouched until stock arrives");
            backordered.push(id.to_owned());
        } else {
            if state != "fulfilled" {
                panic!(
                    "{id} is {state}, not fulfilled; Webflow has it {}; history:\n{}",
                    order["status"],
                    p.order_history(id).await
                );
            }
            let kinds: Vec<String> = writes
                .iter()
                .map(|w| format!("{} {}", w.method, w.path.rsplit('/').next().unwrap()))
                .collect();
            assert_eq!(
                kinds,
                [format!("PATCH {id}"), "POST fulfill".to_owned()],
                "{id}: one PATCH then one fulfil"
            );
            assert!(
                writes[0].body["shippingTracking"]
                    .as_str()
                    .is_some_and(|t| t.starts_with("SBX"))
            );
            assert!(writes[0].body["shippingTrackingURL"].as_str().is_some());
            assert_eq!(writes[1].body["sendOrderFulfilledEmail"], true, "one email");
        }
    }
    let refunded_cancelled = p
        .scalar("SELECT count(*) FROM orders WHERE state = 'cancelled'", &[])
        .await;
    let released = p.scalar("SELECT count(*) FROM reservations r JOIN orders o ON o.id = r.order_id WHERE o.state = 'cancelled' AND r.status = 'active'", &[]).await;
    assert_eq!(
        released, 0,
        "cancelled orders hold no stock ({refunded_cancelled} cancelled)"
    );

    // Stock for the backordered SKU arrives: they are fulfilled too, once each.
    if !backordered.is_empty() {
        let response = p
            .warehouse(Method::PUT, "/api/v1/inventory/sim-sku-out")
            .json(&serde_json::json!({"on_hand": 1_000}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        for id in &backordered {
            let state = p
                .wait_for_any_state(id, &["fulfilled", "needs_review", "cancelled"], Duration::from_secs(60))
                .await;
            assert_eq!(state.as_deref(), Some("fulfilled"), "{id}");
            let fulfils = sim
                .state
                .writes_for(id)
                .iter()
                .filter(|w| w.path.ends_with("/fulfill"))
                .count();
            assert_eq!(fulfils, 1, "{id}");
        }
    }
    // Inventory stays consistent: what was shipped left on_hand, nothing is over-reserved.
    let inconsistent = p
        .scalar(
            "SELECT count(*) FROM inventory WHERE reserved > on_hand OR on_hand < 0",
            &[],
        )
        .await;
    assert_eq!(inconsistent, 0);
    p.teardown().await;
}
