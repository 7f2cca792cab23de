//! Stores as data (issue 24): admins onboard, change and remove stores at runtime, through the
//! API, the console (also "Connect with Webflow") and `wmsctl`. The rows are written by
//! `warehouse_db::store_admin`; every service reads them within `webflow.store_refresh_ms`.
//!
//! Onboarding never leaves anything half-created. In order: the name, site and merchant are
//! checked against the database (404/409 before Webflow is asked anything); Webflow is asked
//! for the site with the token (a token it refuses is a 422 with its message); the webhooks
//! are registered; then one transaction writes the store and its webhooks, sealed. If anything
//! fails after a webhook was created, the webhooks created so far are deleted again.
//! Removing deletes the store's webhooks at Webflow first (a 404 there counts as deleted),
//! then marks the store removed. No token or secret is logged or returned.

use super::CommandError;
use crate::auth::{Operator, Role};
use crate::state::AppState;
use secrecy::SecretString;
use warehouse_db::store_admin::{self, NewStore, NewWebhook, StoreAdminError, StoreInfo, StorePatch, StoreSource};
use webflow::{CreateWebhookRequest, SiteId, TriggerType, WebflowError};

/// The triggers the bridge listens to; a store with registered webhooks gets one of each.
pub const TRIGGERS: [TriggerType; 3] = [
    TriggerType::EcommNewOrder,
    TriggerType::EcommOrderChanged,
    TriggerType::EcommInventoryChanged,
];

/// Webflow's default limit for a site token (requests per minute).
pub const DEFAULT_RATE_LIMIT_PER_MINUTE: i32 = 60;

/// A store to onboard.
pub struct StoreInput {
    pub name: String,
    pub merchant: String,
    pub site_id: String,
    pub api_token: SecretString,
    pub rate_limit_per_minute: i32,
    pub send_fulfillment_email: bool,
    pub inventory_sync: bool,
    pub sku_collection_id: Option<String>,
    pub inventory_safety_buffer: i64,
    /// Register the bridge's webhooks at Webflow (and keep their secrets).
    pub register_webhooks: bool,
    pub source: StoreSource,
}

impl From<StoreAdminError> for CommandError {
    fn from(error: StoreAdminError) -> Self {
        match error {
            StoreAdminError::UnknownMerchant(_) | StoreAdminError::NotFound(_) => Self::NotFound(error.to_string()),
            StoreAdminError::DuplicateName(_) => Self::conflict("duplicate_name", error.to_string()),
            StoreAdminError::DuplicateSite(_) => Self::conflict("duplicate_site", error.to_string()),
            StoreAdminError::ConfigStore(_) => Self::conflict("config_store", error.to_string()),
            StoreAdminError::Invalid { field, message } => Self::invalid(field, message),
            StoreAdminError::Seal(_) | StoreAdminError::Open(_) => {
                Self::Database(warehouse_db::DbError::Invariant(error.to_string()))
            }
            StoreAdminError::Database(error) => Self::Database(error),
        }
    }
}

/// Webflow's answer as a command error: a refusal (4xx) passes its message on; anything else
/// (timeout, 5xx, network) is "unavailable". Never names the token.
fn webflow_error(what: &str, error: &WebflowError) -> CommandError {
    match error {
        WebflowError::Api { status, body, .. } if !error.is_transient() => CommandError::WebflowRefused(format!(
            "{what}: {} ({status}{})",
            body.message.as_deref().unwrap_or("no message"),
            body.code.as_deref().map(|c| format!(", {c}")).unwrap_or_default(),
        )),
        _ => CommandError::WebflowUnavailable(format!("{what}: {error}")),
    }
}

/// A store name as the table holds it: 1-63 letters, digits, `.`, `_`, `-`, starting with a
/// letter or digit (it appears in URLs).
pub fn check_name(name: &str) -> Result<(), CommandError> {
    let valid = !name.is_empty()
        && name.len() <= 63
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if valid {
        Ok(())
    } else {
        Err(CommandError::invalid(
            "name",
            "a store name is 1-63 letters, digits, `.`, `_` or `-`, starting with a letter or digit",
        ))
    }
}

fn check_input(input: &StoreInput) -> Result<(), CommandError> {
    check_name(&input.name)?;
    if input.site_id.trim().is_empty() || input.site_id.trim() != input.site_id {
        return Err(CommandError::invalid(
            "site_id",
            "site_id must be non-empty, without spaces around it",
        ));
    }
    super::printable("site_id", &input.site_id, Some(200))?;
    super::printable("merchant", &input.merchant, Some(200))?;
    check_settings(
        Some(input.rate_limit_per_minute),
        Some(input.inventory_safety_buffer),
        input.inventory_sync.then_some(input.sku_collection_id.as_deref()),
    )?;
    if secrecy::ExposeSecret::expose_secret(&input.api_token).trim().is_empty() {
        return Err(CommandError::invalid("api_token", "api_token is required"));
    }
    Ok(())
}

/// `sku_collection`: `Some(collection)` when inventory sync is to be on.
fn check_settings(
    rate_limit: Option<i32>,
    safety_buffer: Option<i64>,
    sku_collection: Option<Option<&str>>,
) -> Result<(), CommandError> {
    if rate_limit.is_some_and(|r| r < 1) {
        return Err(CommandError::invalid(
            "rate_limit_per_minute",
            "rate_limit_per_minute must be at least 1",
        ));
    }
    if safety_buffer.is_some_and(|b| b < 0) {
        return Err(CommandError::invalid(
            "inventory_safety_buffer",
            "inventory_safety_buffer must be 0 or more",
        ));
    }
    if let Some(collection) = sku_collection
        && collection.is_none_or(|c| c.trim().is_empty())
    {
        return Err(CommandError::invalid(
            "sku_collection_id",
            "sku_collection_id is required when inventory_sync is on",
        ));
    }
    Ok(())
}

/// Where Webflow delivers a site's webhooks.
fn webhook_url(state: &AppState, site_id: &str) -> Result<String, CommandError> {
    let base = state.public_ingress_url.as_deref().ok_or_else(|| {
        CommandError::invalid(
            "register_webhooks",
            "warehouse.public_ingress_url is not set: the bridge does not know where Webflow should deliver webhooks",
        )
    })?;
    Ok(join_webhook_url(base, site_id))
}

/// `<base>/webhooks/webflow/<site_id>`, the site id percent-encoded as one path segment.
pub fn join_webhook_url(base: &str, site_id: &str) -> String {
    format!(
        "{}/webhooks/webflow/{}",
        base.trim_end_matches('/'),
        encode_component(site_id)
    )
}

/// Percent-encodes everything but RFC 3986's unreserved characters: a path segment or a query
/// value.
pub fn encode_component(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => char::from(b).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// A store name from a site's names (`shortName`, else `displayName`), as the name rule
/// allows: lower case, other characters as `-`, at most 63; `site-<id>` when nothing is left.
pub fn name_from_site(short_name: Option<&str>, display_name: Option<&str>, site_id: &str) -> String {
    let source = short_name
        .filter(|s| !s.trim().is_empty())
        .or(display_name)
        .unwrap_or_default();
    let mut name = String::new();
    for c in source.trim().chars() {
        let c = c.to_ascii_lowercase();
        if c.is_ascii_alphanumeric() || matches!(c, '.' | '_') {
            name.push(c);
        } else if !name.ends_with('-') {
            name.push('-');
        }
    }
    let name: String = name
        .trim_matches(|c: char| !c.is_ascii_alphanumeric())
        .chars()
        .take(55)
        .collect();
    let name = name.trim_end_matches(|c: char| !c.is_ascii_alphanumeric()).to_owned();
    if name.is_empty() {
        let id: String = site_id.chars().filter(char::is_ascii_alphanumeric).take(50).collect();
        return format!("site-{id}");
    }
    name
}

/// Onboards a store (admin only): see the module docs for the order of operations.
pub async fn create(state: &AppState, operator: &Operator, input: StoreInput) -> Result<StoreInfo, CommandError> {
    operator.require(Role::Admin)?;
    check_input(&input)?;
    {
        let client = state.pool.get().await?;
        store_admin::merchant_id(&*client, &input.merchant).await?;
        store_admin::check_free(&*client, &input.name, &input.site_id).await?;
    }
    let url = if input.register_webhooks {
        Some(webhook_url(state, &input.site_id)?)
    } else {
        None
    };
    let site = SiteId::from(input.site_id.clone());
    state
        .webflow
        .get_site(&input.api_token, &site)
        .await
        .map_err(|e| webflow_error("the site token was not accepted", &e))?;

    let mut created: Vec<NewWebhook> = Vec::new();
    if let Some(url) = &url {
        for trigger in TRIGGERS {
            let request = CreateWebhookRequest {
                trigger_type: trigger.clone(),
                url: url.clone(),
            };
            match state.webflow.create_webhook(&input.api_token, &site, &request).await {
                Ok(response) => {
                    let Some(id) = response.value.id else {
                        undo_webhooks(state, &input.api_token, &created).await;
                        return Err(CommandError::WebflowUnavailable(
                            "Webflow created a webhook but returned no id".into(),
                        ));
                    };
                    // An OAuth app's webhooks are signed with its client secret, not their own.
                    let secret = match input.source {
                        StoreSource::Oauth => None,
                        _ => response.value.secret_key.map(SecretString::from),
                    };
                    created.push(NewWebhook {
                        webflow_webhook_id: id,
                        trigger_type: trigger.as_str().to_owned(),
                        url: url.clone(),
                        secret,
                    });
                }
                Err(error) => {
                    undo_webhooks(state, &input.api_token, &created).await;
                    return Err(webflow_error(
                        &format!("creating the {} webhook", trigger.as_str()),
                        &error,
                    ));
                }
            }
        }
    }

    let stored = async {
        let mut client = state.pool.get().await?;
        let tx = client.transaction().await?;
        let store = store_admin::create(
            &tx,
            &state.keyring,
            &NewStore {
                name: &input.name,
                merchant: &input.merchant,
                site_id: &input.site_id,
                source: input.source,
                api_token: &input.api_token,
                rate_limit_per_minute: input.rate_limit_per_minute,
                send_fulfillment_email: input.send_fulfillment_email,
                inventory_sync: input.inventory_sync,
                sku_collection_id: input.sku_collection_id.as_deref(),
                inventory_safety_buffer: input.inventory_safety_buffer,
            },
            &created,
        )
        .await?;
        tx.commit().await?;
        Ok::<_, CommandError>(store)
    }
    .await;
    match stored {
        Ok(store) => {
            tracing::info!(
                store = %store.name,
                site_id = %store.site_id,
                merchant = %store.merchant,
                source = store.source.as_str(),
                webhooks = store.webhooks.len(),
                by = %operator.name,
                "store created"
            );
            Ok(store)
        }
        Err(error) => {
            undo_webhooks(state, &input.api_token, &created).await;
            Err(error)
        }
    }
}

/// Deletes webhooks created for a store that was not stored after all. A failure is logged
/// with the webhook id (so an operator can delete it by hand); the caller's error stands.
async fn undo_webhooks(state: &AppState, token: &SecretString, webhooks: &[NewWebhook]) {
    for webhook in webhooks {
        if let Err(error) = delete_webhook(state, token, &webhook.webflow_webhook_id).await {
            tracing::error!(
                webhook_id = %webhook.webflow_webhook_id,
                %error,
                "cannot delete a webhook created for a store that was not created; delete it at Webflow"
            );
        }
    }
}

/// Deletes one webhook at Webflow; one it no longer has (404) counts as deleted.
async fn delete_webhook(state: &AppState, token: &SecretString, id: &str) -> Result<(), WebflowError> {
    match state.webflow.delete_webhook(token, id).await {
        Ok(_) => Ok(()),
        Err(error) if error.status() == Some(404) => Ok(()),
        Err(error) => Err(error),
    }
}

/// Every live store (admin only), by name.
pub async fn list(state: &AppState, operator: &Operator, removed: bool) -> Result<Vec<StoreInfo>, CommandError> {
    operator.require(Role::Admin)?;
    let client = state.pool.get().await?;
    Ok(store_admin::list(&*client, removed).await?)
}

/// One live store (admin only).
pub async fn get(state: &AppState, operator: &Operator, name: &str) -> Result<StoreInfo, CommandError> {
    operator.require(Role::Admin)?;
    super::printable("name", name, Some(200))?;
    let client = state.pool.get().await?;
    Ok(store_admin::get(&*client, name).await?)
}

/// Changes a store (admin only). A new token is checked with Webflow before it is stored.
pub async fn patch(
    state: &AppState,
    operator: &Operator,
    name: &str,
    patch: StorePatch,
) -> Result<StoreInfo, CommandError> {
    operator.require(Role::Admin)?;
    super::printable("name", name, Some(200))?;
    if patch.is_empty() {
        return Err(CommandError::invalid(
            "body",
            "nothing to change: give at least one field",
        ));
    }
    check_settings(
        patch.rate_limit_per_minute,
        patch.inventory_safety_buffer,
        patch
            .sku_collection_id
            .as_ref()
            .filter(|_| patch.inventory_sync == Some(true))
            .map(|c| c.as_deref()),
    )?;
    if let Some(token) = &patch.api_token {
        let client = state.pool.get().await?;
        let current = store_admin::get(&*client, name).await?;
        drop(client);
        // A config store answers 409 before Webflow is asked anything.
        if current.source == StoreSource::Config {
            return Err(StoreAdminError::ConfigStore(current.name).into());
        }
        state
            .webflow
            .get_site(token, &SiteId::from(current.site_id.clone()))
            .await
            .map_err(|e| webflow_error("the new site token was not accepted", &e))?;
    }
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    let store = store_admin::patch(&tx, &state.keyring, name, &patch).await?;
    tx.commit().await?;
    tracing::info!(store = %name, by = %operator.name, token_changed = patch.api_token.is_some(), "store changed");
    Ok(store)
}

/// Removes a store (admin only): its webhooks are deleted at Webflow, then it is marked
/// removed (its orders and history stay; its ingress path answers 404 once every service has
/// refreshed). If Webflow cannot delete a webhook, nothing is marked and the error is shown,
/// so a retry finishes the job.
pub async fn remove(state: &AppState, operator: &Operator, name: &str) -> Result<(), CommandError> {
    operator.require(Role::Admin)?;
    super::printable("name", name, Some(200))?;
    let mut client = state.pool.get().await?;
    let tx = client.transaction().await?;
    let (store, token) = store_admin::for_removal(&tx, &state.keyring, name).await?;
    for webhook in &store.webhooks {
        if let Some(id) = &webhook.webflow_webhook_id {
            delete_webhook(state, &token, id)
                .await
                .map_err(|e| webflow_error(&format!("deleting webhook {id}"), &e))?;
        }
    }
    store_admin::mark_removed(&tx, store.id).await?;
    tx.commit().await?;
    tracing::info!(store = %name, site_id = %store.site_id, by = %operator.name, "store removed");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn webhook_urls_encode_the_site_as_one_segment() {
        assert_eq!(
            join_webhook_url("https://bridge.example.com/", "65f0c0ffee"),
            "https://bridge.example.com/webhooks/webflow/65f0c0ffee"
        );
        assert_eq!(
            join_webhook_url("http://h", "a/b c"),
            "http://h/webhooks/webflow/a%2Fb%20c"
        );
    }

    #[test]
    fn names_derived_from_sites_follow_the_rule() {
        assert_eq!(name_from_site(Some("My Shop!"), None, "x"), "my-shop");
        assert_eq!(name_from_site(None, Some("  Café Berlin "), "x"), "caf-berlin");
        assert_eq!(name_from_site(Some(""), Some("***"), "65f0/c0"), "site-65f0c0");
        for name in ["My Shop!", "a", &"Long ".repeat(30)] {
            assert!(check_name(&name_from_site(Some(name), None, "x")).is_ok());
        }
    }

    #[test]
    fn store_names_follow_the_table_rule() {
        assert!(check_name("shop-eu.2_x").is_ok());
        for bad in ["", "-shop", "shop/eu", "shop eu", &"x".repeat(64)] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }
}
