//! A fresh PostgreSQL database per test, migrated, dropped when the test ends (also on a panic).

use secrecy::SecretString;
use tokio_postgres::NoTls;
use warehouse_db::Pool;

pub struct TestDatabase {
    pub name: String,
    pub url: String,
    pub pool: Pool,
}

async fn admin() -> tokio_postgres::Client {
    let url = format!("{}/postgres", crate::database_server_url());
    let (client, connection) = tokio_postgres::connect(&url, NoTls)
        .await
        .expect("PostgreSQL must run on 127.0.0.1:5432 with trust auth for user postgres (see README)");
    tokio::spawn(connection);
    client
}

impl TestDatabase {
    /// Creates `wms_test_<random>` and applies the migrations.
    pub async fn create() -> Self {
        Self::create_with("").await
    }

    /// Like [`Self::create`], with text sorted by the ICU collation `icu_locale` (e.g. `en-US`,
    /// where `a` sorts before `B`, unlike byte order): for tests of lock order.
    pub async fn create_with_icu_collation(icu_locale: &str) -> Self {
        Self::create_with(&format!(
            " TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE '{icu_locale}' LOCALE 'C.UTF-8'"
        ))
        .await
    }

    async fn create_with(options: &str) -> Self {
        let name = format!("wms_test_{}", &uuid::Uuid::new_v4().simple().to_string()[..16]);
        admin()
            .await
            .batch_execute(&format!("CREATE DATABASE {name}{options}"))
            .await
            .unwrap();
        let url = format!("{}/{name}", crate::database_server_url());
        let pool = warehouse_db::connect(&warehouse_db::ConnectOptions::new(SecretString::from(url.clone()), 32))
            .await
            .unwrap();
        warehouse_db::migrate::run(&pool).await.unwrap();
        Self { name, url, pool }
    }

    pub async fn client(&self) -> deadpool_postgres_client::Client {
        self.pool.get().await.unwrap()
    }

    /// Sets a SKU's stock (the `default` merchant's).
    pub async fn stock(&self, sku: &str, on_hand: i64) {
        self.merchant_stock(warehouse_db::merchants::DEFAULT_MERCHANT_ID, sku, on_hand)
            .await;
    }

    /// Sets a merchant's SKU's stock.
    pub async fn merchant_stock(&self, merchant_id: i64, sku: &str, on_hand: i64) {
        let client = self.client().await;
        warehouse_db::inventory::set_on_hand(&*client, merchant_id, &sku.into(), on_hand)
            .await
            .unwrap();
    }
}

/// Re-export so tests can name the pooled client type.
pub mod deadpool_postgres_client {
    pub type Client = warehouse_db::pool::Object;
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let name = self.name.clone();
        crate::block_on_fresh_runtime(async move {
            let url = format!("{}/postgres", crate::database_server_url());
            if let Ok((client, connection)) = tokio_postgres::connect(&url, NoTls).await {
                tokio::spawn(connection);
                let _ = client
                    .batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .await;
            }
        });
    }
}
