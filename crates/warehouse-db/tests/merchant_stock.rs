//! Migration V17 (merchants own stock) on a database that already holds a single-merchant
//! install's data: every stock row, order, reservation, sync row and operator token becomes the
//! `default` merchant's, and the (merchant, SKU) keys then keep two merchants' SKUs apart.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test helpers fail loudly")]

use tokio_postgres::error::SqlState;

fn server_url() -> String {
    std::env::var("WMS_TEST_DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

async fn client(db: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(&format!("{}/{db}", server_url()), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
}

/// The migration files up to and including `last`, in version order.
fn migrations(last: u32) -> Vec<String> {
    let dir = format!("{}/migrations", env!("CARGO_MANIFEST_DIR"));
    let mut files: Vec<(u32, String)> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .filter_map(|name| {
            let version: u32 = name.strip_prefix('V')?.split("__").next()?.parse().ok()?;
            (version <= last).then(|| (version, format!("{dir}/{name}")))
        })
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|(_, path)| std::fs::read_to_string(path).unwrap())
        .collect()
}

#[tokio::test]
async fn v17_keeps_a_single_merchant_installs_data_in_default() {
    let db = format!("merchant_stock_{}", std::process::id());
    let admin = client("postgres").await;
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {db}"))
        .await
        .unwrap();
    admin.batch_execute(&format!("CREATE DATABASE {db}")).await.unwrap();
    let c = client(&db).await;
    for sql in migrations(16) {
        c.batch_execute(&sql).await.unwrap();
    }
    // A single-merchant install: stock, an order holding a reservation, a backorder, a sync
    // row and a token.
    c.batch_execute(
        "INSERT INTO inventory (sku, on_hand, reserved) VALUES ('TEE-M', 5, 2), ('CAP', 0, 0);
         INSERT INTO orders (id, site_id, webflow_order_id, state, snapshot)
             VALUES (1, 'site-a', 'o-1', 'reserved', '{}'), (2, 'site-a', 'o-2', 'backordered', '{}');
         INSERT INTO order_lines (order_id, line_no, sku, quantity) VALUES (1, 1, 'TEE-M', 2), (2, 1, 'CAP', 1);
         INSERT INTO reservations (order_id, sku, quantity, status) VALUES (1, 'TEE-M', 2, 'active');
         INSERT INTO inventory_sync (site_id, sku, webflow_sku_id, dirty_since) VALUES ('site-a', 'TEE-M', 'wf-1', NULL);
         INSERT INTO operator_tokens (name, role, sites, token_sha256, created_by)
             VALUES ('ana', 'floor', '{site-a}', decode(repeat('ab', 32), 'hex'), 'admin');",
    )
    .await
    .unwrap();

    for sql in migrations(17).into_iter().skip(16) {
        c.batch_execute(&sql).await.unwrap();
    }

    let count = |sql: &'static str| {
        let c = &c;
        async move { c.query_one(sql, &[]).await.unwrap().get::<_, i64>(0) }
    };
    assert_eq!(count("SELECT count(*) FROM inventory WHERE merchant_id = 1").await, 2);
    assert_eq!(count("SELECT count(*) FROM orders WHERE merchant_id = 1").await, 2);
    assert_eq!(
        count("SELECT count(*) FROM reservations WHERE merchant_id = 1").await,
        1
    );
    assert_eq!(
        count("SELECT count(*) FROM inventory_sync WHERE merchant_id = 1").await,
        1
    );
    assert_eq!(
        count("SELECT count(*) FROM operator_tokens WHERE merchants = '{*}'").await,
        1,
        "existing tokens see every merchant, as before"
    );
    let level: (i64, i64) = {
        let row = c
            .query_one(
                "SELECT on_hand, reserved FROM inventory WHERE merchant_id = 1 AND sku = 'TEE-M'",
                &[],
            )
            .await
            .unwrap();
        (row.get(0), row.get(1))
    };
    assert_eq!(level, (5, 2), "stock unchanged");

    // Another merchant's `TEE-M` is another row; changing it marks only its own stores' sync
    // rows dirty, and a reservation cannot point at stock that merchant does not have.
    c.batch_execute(
        "INSERT INTO merchants (name) VALUES ('acme');
         INSERT INTO inventory (merchant_id, sku, on_hand) VALUES (2, 'TEE-M', 9);
         UPDATE inventory SET on_hand = 8 WHERE merchant_id = 2 AND sku = 'TEE-M';",
    )
    .await
    .unwrap();
    assert_eq!(
        count("SELECT count(*) FROM inventory_sync WHERE dirty_since IS NOT NULL").await,
        0,
        "acme's change leaves default's stores alone"
    );
    c.batch_execute("UPDATE inventory SET reserved = 3 WHERE merchant_id = 1 AND sku = 'TEE-M'")
        .await
        .unwrap();
    assert_eq!(
        count("SELECT count(*) FROM inventory_sync WHERE dirty_since IS NOT NULL").await,
        1
    );
    let dangling = c
        .execute(
            "INSERT INTO reservations (order_id, merchant_id, sku, quantity, status) VALUES (2, 2, 'CAP', 1, 'active')",
            &[],
        )
        .await
        .unwrap_err();
    assert_eq!(dangling.code(), Some(&SqlState::FOREIGN_KEY_VIOLATION));

    drop(c);
    admin
        .batch_execute(&format!("DROP DATABASE {db} WITH (FORCE)"))
        .await
        .unwrap();
}

#[tokio::test]
async fn merchants_are_created_once_found_by_name_and_refused_when_unknown_or_invalid() {
    use warehouse_db::merchants::{self, MerchantError};
    let db = format!("merchants_module_{}", std::process::id());
    let admin = client("postgres").await;
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {db}"))
        .await
        .unwrap();
    admin.batch_execute(&format!("CREATE DATABASE {db}")).await.unwrap();
    let pool = warehouse_db::connect(&warehouse_db::ConnectOptions::new(
        secrecy::SecretString::from(format!("{}/{db}", server_url())),
        2,
    ))
    .await
    .unwrap();
    warehouse_db::migrate::run(&pool).await.unwrap();
    let c = pool.get().await.unwrap();

    let acme = merchants::create(&*c, "acme").await.unwrap();
    assert_eq!(acme.name, "acme");
    assert!(matches!(merchants::create(&*c, "acme").await, Err(MerchantError::Conflict(name)) if name == "acme"));
    assert!(matches!(
        merchants::create(&*c, "Acme").await,
        Err(MerchantError::InvalidName(_))
    ));
    assert_eq!(merchants::get_by_name(&*c, "acme").await.unwrap(), acme);
    assert_eq!(
        merchants::get_by_name(&*c, "default").await.unwrap().id,
        merchants::DEFAULT_MERCHANT_ID
    );
    assert!(matches!(
        merchants::get_by_name(&*c, "nobody").await,
        Err(MerchantError::NotFound(_))
    ));
    let names: Vec<String> = merchants::list(&*c)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.name)
        .collect();
    assert_eq!(names, ["acme", "default"]);
    // A site a live store names is its merchant's; any other site is `default`'s.
    c.execute(
        "INSERT INTO stores (name, merchant_id, site_id, source, rate_limit_per_minute) VALUES ('a', $1, 'site-a', 'config', 60)",
        &[&acme.id],
    )
    .await
    .unwrap();
    let of = |sites: &'static [&'static str]| {
        let c = &c;
        async move {
            let sites: Vec<String> = sites.iter().map(|s| (*s).to_owned()).collect();
            merchants::of_sites(&**c, &sites)
                .await
                .unwrap()
                .into_iter()
                .map(|m| m.name)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(of(&["site-a"]).await, ["acme"]);
    assert_eq!(of(&["site-b"]).await, ["default"]);
    assert_eq!(of(&["site-a", "site-b"]).await, ["acme", "default"]);

    drop(c);
    drop(pool);
    admin
        .batch_execute(&format!("DROP DATABASE {db} WITH (FORCE)"))
        .await
        .unwrap();
}

/// A store syncs its merchant's stock: two stores of two merchants selling the same SKU are
/// each told their own merchant's count, and a change of one merchant's stock makes only its
/// stores' rows due.
#[tokio::test]
async fn each_store_syncs_its_own_merchants_stock() {
    use std::time::Duration;
    use warehouse_db::inventory_sync::{self, SyncSite};
    let db = format!("merchant_sync_{}", std::process::id());
    let admin = client("postgres").await;
    admin
        .batch_execute(&format!("DROP DATABASE IF EXISTS {db}"))
        .await
        .unwrap();
    admin.batch_execute(&format!("CREATE DATABASE {db}")).await.unwrap();
    let pool = warehouse_db::connect(&warehouse_db::ConnectOptions::new(
        secrecy::SecretString::from(format!("{}/{db}", server_url())),
        2,
    ))
    .await
    .unwrap();
    warehouse_db::migrate::run(&pool).await.unwrap();
    let c = pool.get().await.unwrap();
    let acme = warehouse_db::merchants::create(&*c, "acme").await.unwrap();
    warehouse_db::inventory::set_on_hand(&*c, 1, &"TEE-M".into(), 7)
        .await
        .unwrap();
    warehouse_db::inventory::set_on_hand(&*c, acme.id, &"TEE-M".into(), 2)
        .await
        .unwrap();
    c.execute(
        "INSERT INTO inventory_sync (site_id, sku, webflow_sku_id, merchant_id)
         VALUES ('site-d', 'TEE-M', 'wf-d', 1), ('site-a', 'TEE-M', 'wf-a', $1)",
        &[&acme.id],
    )
    .await
    .unwrap();
    let claim = |site: &'static str| {
        let c = &c;
        async move {
            let site = SyncSite {
                site_id: site.into(),
                safety_buffer: 0,
            };
            inventory_sync::claim(&**c, &site, Duration::ZERO, 10, Duration::from_secs(30))
                .await
                .unwrap()
        }
    };
    let default_rows = claim("site-d").await;
    let acme_rows = claim("site-a").await;
    assert_eq!(default_rows.iter().map(|r| r.desired).collect::<Vec<_>>(), [7]);
    assert_eq!(acme_rows.iter().map(|r| r.desired).collect::<Vec<_>>(), [2]);
    for claimed in default_rows.iter().chain(&acme_rows) {
        inventory_sync::record_in_step(&*c, claimed).await.unwrap();
    }
    // acme's count changes: only acme's store is due again.
    warehouse_db::inventory::receive(&*c, acme.id, &"TEE-M".into(), 1)
        .await
        .unwrap();
    assert!(claim("site-d").await.is_empty(), "default's store is not due");
    let again = claim("site-a").await;
    assert_eq!(again.iter().map(|r| r.desired).collect::<Vec<_>>(), [3]);
    let status = inventory_sync::status_of_sku(&*c, acme.id, &"TEE-M".into())
        .await
        .unwrap();
    assert_eq!(
        status.iter().map(|s| s.site_id.as_str()).collect::<Vec<_>>(),
        ["site-a"]
    );

    drop(c);
    drop(pool);
    admin
        .batch_execute(&format!("DROP DATABASE {db} WITH (FORCE)"))
        .await
        .unwrap();
}
