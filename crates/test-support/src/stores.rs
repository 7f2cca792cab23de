//! Stores written straight into the database as the stores API would (issue 24): the token
//! and the webhook secret sealed with their row's context, in one transaction.

use secrecy::SecretString;
use secrets_at_rest::Keyring;
use warehouse_db::stores::{api_token_context, webhook_secret_context};

/// A live `api` store of the `default` merchant with one webhook, its token and secret sealed
/// with `keyring`; returns `stores.id`.
pub async fn insert_api_store(
    pool: &warehouse_db::Pool,
    keyring: &Keyring,
    name: &str,
    site_id: &str,
    api_token: &str,
    webhook_secret: &str,
) -> i64 {
    let mut client = pool.get().await.unwrap();
    let tx = client.transaction().await.unwrap();
    // The row is inserted with a placeholder and sealed before the commit: no one ever sees it
    // unsealed.
    let store_id: i64 = tx
        .query_one(
            "INSERT INTO stores (name, merchant_id, site_id, source, api_token_sealed, rate_limit_per_minute)
             VALUES ($1, 1, $2, 'api', 'pending', 600) RETURNING id",
            &[&name, &site_id],
        )
        .await
        .unwrap()
        .get(0);
    let sealed = keyring
        .seal(&SecretString::from(api_token.to_owned()), &api_token_context(store_id))
        .unwrap();
    tx.execute(
        "UPDATE stores SET api_token_sealed = $1 WHERE id = $2",
        &[&sealed, &store_id],
    )
    .await
    .unwrap();
    let hook_id: i64 = tx
        .query_one(
            "INSERT INTO store_webhooks (store_id, trigger_type, url)
             VALUES ($1, 'ecomm_new_order', 'http://127.0.0.1/webhooks/webflow/' || $2) RETURNING id",
            &[&store_id, &site_id],
        )
        .await
        .unwrap()
        .get(0);
    let sealed = keyring
        .seal(
            &SecretString::from(webhook_secret.to_owned()),
            &webhook_secret_context(hook_id),
        )
        .unwrap();
    tx.execute(
        "UPDATE store_webhooks SET secret_sealed = $1 WHERE id = $2",
        &[&sealed, &hook_id],
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    store_id
}

/// Marks a store removed, as `DELETE /api/v1/stores/{name}` does.
pub async fn remove_store(pool: &warehouse_db::Pool, name: &str) {
    let client = pool.get().await.unwrap();
    let removed = client
        .execute(
            "UPDATE stores SET removed_at = now(), updated_at = now() WHERE name = $1 AND removed_at IS NULL",
            &[&name],
        )
        .await
        .unwrap();
    assert_eq!(removed, 1, "no live store `{name}`");
}
