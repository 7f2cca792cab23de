//! Issue 24: merchants own stock. Two merchants selling the same SKU string hold two products:
//! concurrent orders of both reserve only their own merchant's stock, never oversell it, and
//! stock received by one serves that merchant's backorders only.

use e2e::*;
use std::time::Duration;
use warehouse_db::merchants::{self, DEFAULT_MERCHANT_ID};

const WAIT: Duration = Duration::from_secs(30);
/// The second store's site: it belongs to the merchant `acme`.
const ACME_SITE: &str = "65f0c0ffee0000000000ac3e";
const SKU: &str = "TEE-M";

/// The second store, configured as `acme`'s: the services import it (creating the merchant)
/// at start, as they do every config store.
fn acme_site() -> webflow::SiteSettings {
    webflow::SiteSettings {
        merchant: "acme".into(),
        ..other_site(ACME_SITE, "acme-token", 6000)
    }
}

/// The config import's outcome: the test site is `default`'s, the other `acme`'s. Returns acme's id.
async fn two_merchants(p: &Pipeline) -> i64 {
    let client = p.client().await;
    let acme = merchants::get_by_name(&**client, "acme").await.unwrap();
    let owners: Vec<(String, i64)> = client
        .query(
            "SELECT site_id, merchant_id FROM stores WHERE removed_at IS NULL ORDER BY site_id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    let mut expected = vec![
        (SITE_ID.to_owned(), DEFAULT_MERCHANT_ID),
        (ACME_SITE.to_owned(), acme.id),
    ];
    expected.sort();
    assert_eq!(owners, expected, "each store belongs to its configured merchant");
    acme.id
}

/// Orders of `site_id` in `state`.
async fn in_state(p: &Pipeline, site_id: &str, state: &str) -> i64 {
    p.scalar(
        "SELECT count(*) FROM orders WHERE site_id = $1 AND state = $2",
        &[&site_id, &state],
    )
    .await
}

/// Waits until `site_id` has `reserved` reserved and `backordered` backordered orders.
async fn wait_for_split(p: &Pipeline, site_id: &str, reserved: i64, backordered: i64) {
    wait_for(
        &format!("{site_id}: {reserved} reserved, {backordered} backordered"),
        WAIT,
        || async {
            let now = (
                in_state(p, site_id, "reserved").await,
                in_state(p, site_id, "backordered").await,
            );
            (now == (reserved, backordered)).then_some(())
        },
    )
    .await;
}

/// Receives stock of a merchant's SKU as the warehouse API does: the stock and its
/// `stock.received` (naming the merchant) in one transaction, the event relayed after commit.
async fn receive(p: &Pipeline, merchant_id: i64, quantity: i64) {
    let mut client = p.client().await;
    let tx = client.transaction().await.unwrap();
    warehouse_db::inventory::receive(&*tx, merchant_id, &SKU.into(), quantity)
        .await
        .unwrap();
    let envelope = domain::Envelope::new(
        domain::MessageId::new(format!("recv-{merchant_id}-{quantity}")),
        "test",
        domain::SiteId::new(""),
        domain::Event::StockReceivedV1 {
            sku: domain::Sku::new(SKU),
            quantity,
            merchant_id,
        },
    );
    warehouse_db::outbox::enqueue(&*tx, &envelope, None).await.unwrap();
    tx.commit().await.unwrap();
    drop(client);
    p.enrich.as_ref().unwrap().outbox().relay_once(0, 100).await.unwrap();
}

#[tokio::test]
async fn two_merchants_with_the_same_sku_never_touch_each_others_stock() {
    let p = start_pipeline(PipelineOptions {
        extra_sites: vec![acme_site()],
        ..PipelineOptions::default()
    })
    .await;
    let acme = two_merchants(&p).await;
    p.db.merchant_stock(DEFAULT_MERCHANT_ID, SKU, 10).await;
    p.db.merchant_stock(acme, SKU, 4).await;

    // 15 orders of one unit per store, all at once, interleaved.
    let bodies: Vec<(&str, serde_json::Value)> = (0..15)
        .flat_map(|i| [SITE_ID, ACME_SITE].map(|site_id| (site_id, single_sku_order(&format!("tee-{i:02}"), SKU, 1))))
        .collect();
    let statuses =
        futures_util::future::join_all(bodies.iter().map(|(site_id, body)| p.post_webhook_to(site_id, body))).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");

    // Each store's orders took exactly its merchant's stock: 10 of default's, 4 of acme's.
    wait_for_split(&p, SITE_ID, 10, 5).await;
    wait_for_split(&p, ACME_SITE, 4, 11).await;
    let default_level = p.merchant_inventory(DEFAULT_MERCHANT_ID, SKU).await;
    let acme_level = p.merchant_inventory(acme, SKU).await;
    assert_eq!(
        (default_level.on_hand, default_level.reserved, default_level.available),
        (10, 10, 0)
    );
    assert_eq!(
        (acme_level.on_hand, acme_level.reserved, acme_level.available),
        (4, 4, 0)
    );
    assert_eq!(
        (default_level.merchant.as_str(), acme_level.merchant.as_str()),
        ("default", "acme")
    );
    let orders_of_acme = p
        .scalar(
            "SELECT count(*) FROM orders WHERE site_id = $1 AND merchant_id = $2",
            &[&ACME_SITE, &acme],
        )
        .await;
    assert_eq!(orders_of_acme, 15, "every order of the acme store is acme's");
    let crossed = p
        .scalar(
            "SELECT count(*) FROM reservations r JOIN orders o ON o.id = r.order_id
             WHERE r.merchant_id <> o.merchant_id",
            &[],
        )
        .await;
    assert_eq!(crossed, 0, "no reservation holds another merchant's stock");
    let acme_reserved = p
        .scalar(
            "SELECT COALESCE(sum(quantity), 0)::bigint FROM reservations WHERE merchant_id = $1 AND status = 'active'",
            &[&acme],
        )
        .await;
    assert_eq!(acme_reserved, 4);

    // Stock received by acme serves acme's backorders only, oldest first; default's still wait.
    p.wait_until_idle(consumer::RESERVE, WAIT).await;
    receive(&p, acme, 3).await;
    wait_for_split(&p, ACME_SITE, 7, 8).await;
    p.wait_until_idle(consumer::RESERVE, WAIT).await;
    assert_eq!(in_state(&p, SITE_ID, "backordered").await, 5);
    let default_level = p.merchant_inventory(DEFAULT_MERCHANT_ID, SKU).await;
    assert_eq!((default_level.on_hand, default_level.reserved), (10, 10));
    let acme_level = p.merchant_inventory(acme, SKU).await;
    assert_eq!((acme_level.on_hand, acme_level.reserved), (7, 7));

    // A cancellation in the default store gives its unit back to default's backorders.
    let reserved: String = p
        .client()
        .await
        .query_one(
            "SELECT webflow_order_id FROM orders WHERE site_id = $1 AND state = 'reserved' ORDER BY id LIMIT 1",
            &[&SITE_ID],
        )
        .await
        .unwrap()
        .get(0);
    let mut refund = single_sku_order(&reserved, SKU, 1);
    refund["triggerType"] = "ecomm_order_changed".into();
    refund["payload"]["status"] = "refunded".into();
    assert_eq!(p.post_webhook_to(SITE_ID, &refund).await, 200);
    wait_for("a default backorder served by the released unit", WAIT, || async {
        (in_state(&p, SITE_ID, "backordered").await == 4).then_some(())
    })
    .await;
    p.wait_until_idle(consumer::RESERVE, WAIT).await;
    assert_eq!(
        in_state(&p, ACME_SITE, "backordered").await,
        8,
        "acme's backorders untouched"
    );
    let acme_level = p.merchant_inventory(acme, SKU).await;
    assert_eq!((acme_level.on_hand, acme_level.reserved), (7, 7));
    p.teardown().await;
}

/// A site no store row names (a config store before the registry imports it) is `default`'s:
/// an install without merchants behaves as before.
#[tokio::test]
async fn an_order_of_a_site_no_store_names_takes_the_default_merchants_stock() {
    let p = start_pipeline(PipelineOptions::default()).await;
    p.db.stock(SKU, 2).await;
    assert_eq!(
        p.post_webhook_to(SITE_ID, &single_sku_order("plain", SKU, 2)).await,
        200
    );
    assert_eq!(
        p.wait_for_state("plain", "reserved", WAIT).await.as_deref(),
        Some("reserved")
    );
    let merchant = p
        .scalar("SELECT merchant_id FROM orders WHERE webflow_order_id = 'plain'", &[])
        .await;
    assert_eq!(merchant, DEFAULT_MERCHANT_ID);
    assert_eq!(p.inventory(SKU).await.available, 0);
    p.teardown().await;
}

/// Packing and shipping consume each order's own merchant's stock: on hand and reserved go down
/// and shipped up on the merchant's row only.
#[tokio::test]
async fn shipping_consumes_each_merchants_own_stock() {
    let p = start_pipeline(PipelineOptions {
        extra_sites: vec![acme_site()],
        start_ship: true,
        start_warehouse: true,
        auto_pack: true,
        ..PipelineOptions::default()
    })
    .await;
    let acme = two_merchants(&p).await;
    p.db.merchant_stock(DEFAULT_MERCHANT_ID, SKU, 5).await;
    p.db.merchant_stock(acme, SKU, 5).await;
    assert_eq!(
        p.post_webhook_to(SITE_ID, &single_sku_order("ship-d", SKU, 1)).await,
        200
    );
    assert_eq!(
        p.post_webhook_to(ACME_SITE, &single_sku_order("ship-a", SKU, 3)).await,
        200
    );
    wait_for("both orders shipped", WAIT, || async {
        let shipped = p
            .scalar(
                "SELECT count(*) FROM orders WHERE webflow_order_id IN ('ship-d', 'ship-a') AND state = 'shipped'",
                &[],
            )
            .await;
        (shipped == 2).then_some(())
    })
    .await;
    let shipped = |merchant_id: i64| {
        let p = &p;
        async move {
            p.scalar(
                "SELECT shipped FROM inventory WHERE merchant_id = $1 AND sku = $2",
                &[&merchant_id, &SKU],
            )
            .await
        }
    };
    let default_level = p.merchant_inventory(DEFAULT_MERCHANT_ID, SKU).await;
    let acme_level = p.merchant_inventory(acme, SKU).await;
    assert_eq!((default_level.on_hand, default_level.reserved), (4, 0));
    assert_eq!((acme_level.on_hand, acme_level.reserved), (2, 0));
    assert_eq!((shipped(DEFAULT_MERCHANT_ID).await, shipped(acme).await), (1, 3));
    p.teardown().await;
}
