//! Webflow wire types (docs/webflow-api.md §2–§7). Field names follow Webflow exactly
//! (`variantSKU`, `shippingTrackingURL`); every field is optional and tolerant of `null`.

use domain::WebhookTrigger;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// Defines a string enum with known values and an `Other` catch-all, as Webflow's SDKs
/// accept values they do not know yet.
macro_rules! open_enum {
    ($(#[$doc:meta])* $name:ident { $($variant:ident => $wire:expr),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, Hash)]
        pub enum $name {
            $($variant,)+
            /// A value this version does not know; kept verbatim.
            Other(String),
        }

        impl $name {
            pub fn as_str(&self) -> &str {
                match self {
                    $(Self::$variant => $wire,)+
                    Self::Other(other) => other,
                }
            }

            pub fn from_wire(value: &str) -> Self {
                $(if value == $wire {
                    return Self::$variant;
                })+
                Self::Other(value.to_owned())
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let value = String::deserialize(deserializer)?;
                Ok(Self::from_wire(&value))
            }
        }
    };
}

/// Order status: the domain's, as the warehouse stores it too.
pub use domain::WebflowOrderStatus as OrderStatus;

open_enum!(
    /// Webhook trigger types.
    TriggerType {
        FormSubmission => "form_submission",
        SitePublish => "site_publish",
        PageCreated => "page_created",
        PageMetadataUpdated => "page_metadata_updated",
        PageDeleted => "page_deleted",
        EcommNewOrder => WebhookTrigger::NewOrder.as_str(),
        EcommOrderChanged => WebhookTrigger::OrderChanged.as_str(),
        EcommInventoryChanged => WebhookTrigger::InventoryChanged.as_str(),
        CollectionItemCreated => "collection_item_created",
        CollectionItemChanged => "collection_item_changed",
        CollectionItemDeleted => "collection_item_deleted",
        CollectionItemPublished => "collection_item_published",
        CollectionItemUnpublished => "collection_item_unpublished",
        CommentCreated => "comment_created",
    }
);

impl TriggerType {
    /// The trigger as the warehouse knows it, if it is one the system acts on.
    pub fn handled(&self) -> Option<WebhookTrigger> {
        match self {
            Self::EcommNewOrder => Some(WebhookTrigger::NewOrder),
            Self::EcommOrderChanged => Some(WebhookTrigger::OrderChanged),
            Self::EcommInventoryChanged => Some(WebhookTrigger::InventoryChanged),
            _ => None,
        }
    }
}

impl From<WebhookTrigger> for TriggerType {
    fn from(trigger: WebhookTrigger) -> Self {
        match trigger {
            WebhookTrigger::NewOrder => Self::EcommNewOrder,
            WebhookTrigger::OrderChanged => Self::EcommOrderChanged,
            WebhookTrigger::InventoryChanged => Self::EcommInventoryChanged,
        }
    }
}

open_enum!(
    /// Refund reasons accepted by `POST .../refund`.
    RefundReason {
        Duplicate => "duplicate",
        Fraudulent => "fraudulent",
        Requested => "requested",
    }
);

/// `OrderPrice`: `value` is a string holding the amount in the currency's minor unit.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct OrderPrice {
    pub unit: Option<String>,
    pub value: Option<String>,
    pub string: Option<String>,
}

impl OrderPrice {
    /// The amount in minor units (cents), if `value` is a whole number.
    pub fn minor_units(&self) -> Option<i64> {
        self.value.as_deref()?.trim().parse().ok()
    }
}

/// An address in an order: the domain's, stored as Webflow sent it.
pub use domain::Address as OrderAddress;

#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct CustomerInfo {
    pub full_name: Option<String>,
    pub email: Option<String>,
}

// Customer data never reaches logs through `Debug`.
impl fmt::Debug for CustomerInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CustomerInfo").finish_non_exhaustive()
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PurchasedItem {
    #[serde(deserialize_with = "lenient_int")]
    pub count: Option<i64>,
    pub row_total: Option<OrderPrice>,
    pub product_id: Option<String>,
    pub product_name: Option<String>,
    pub product_slug: Option<String>,
    pub variant_id: Option<String>,
    pub variant_name: Option<String>,
    pub variant_slug: Option<String>,
    #[serde(rename = "variantSKU")]
    pub variant_sku: Option<String>,
    pub variant_image: Option<serde_json::Value>,
    pub variant_price: Option<OrderPrice>,
    pub weight: Option<f64>,
    pub width: Option<f64>,
    pub height: Option<f64>,
    pub length: Option<f64>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Extra {
    #[serde(rename = "type")]
    pub extra_type: Option<String>,
    pub name: Option<String>,
    pub description: Option<String>,
    pub price: Option<OrderPrice>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Totals {
    pub subtotal: Option<OrderPrice>,
    pub extras: Option<Vec<Extra>>,
    pub total: Option<OrderPrice>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct OrderMetadata {
    pub is_buy_now: Option<bool>,
    pub has_downloads: Option<bool>,
    pub payment_processor: Option<String>,
}

/// The Order object: sent in full by `ecomm_new_order`/`ecomm_order_changed`
/// and returned by every order endpoint.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Order {
    pub order_id: Option<String>,
    pub status: Option<OrderStatus>,
    pub comment: Option<String>,
    pub order_comment: Option<String>,
    pub accepted_on: Option<String>,
    pub fulfilled_on: Option<String>,
    pub refunded_on: Option<String>,
    pub disputed_on: Option<String>,
    pub dispute_updated_on: Option<String>,
    pub dispute_last_status: Option<String>,
    pub customer_paid: Option<OrderPrice>,
    pub net_amount: Option<OrderPrice>,
    pub application_fee: Option<OrderPrice>,
    pub all_addresses: Option<Vec<OrderAddress>>,
    pub shipping_address: Option<OrderAddress>,
    pub billing_address: Option<OrderAddress>,
    pub shipping_provider: Option<String>,
    pub shipping_tracking: Option<String>,
    #[serde(rename = "shippingTrackingURL")]
    pub shipping_tracking_url: Option<String>,
    pub customer_info: Option<CustomerInfo>,
    pub purchased_items: Option<Vec<PurchasedItem>>,
    #[serde(deserialize_with = "lenient_int")]
    pub purchased_items_count: Option<i64>,
    pub stripe_details: Option<serde_json::Value>,
    pub stripe_card: Option<serde_json::Value>,
    pub paypal_details: Option<serde_json::Value>,
    pub custom_data: Option<Vec<serde_json::Value>>,
    pub metadata: Option<OrderMetadata>,
    pub is_customer_deleted: Option<bool>,
    pub is_shipping_required: Option<bool>,
    pub has_downloads: Option<bool>,
    pub payment_processor: Option<String>,
    pub totals: Option<Totals>,
    pub download_files: Option<Vec<serde_json::Value>>,
}

impl Order {
    /// `hasDownloads` is top-level in the schema but inside `metadata` in Webflow's examples.
    pub fn has_downloads(&self) -> Option<bool> {
        self.has_downloads
            .or_else(|| self.metadata.as_ref().and_then(|m| m.has_downloads))
    }

    pub fn payment_processor(&self) -> Option<&str> {
        self.payment_processor
            .as_deref()
            .or_else(|| self.metadata.as_ref()?.payment_processor.as_deref())
    }

    pub fn items(&self) -> &[PurchasedItem] {
        self.purchased_items.as_deref().unwrap_or_default()
    }
}

/// `{ "orders": [...], "pagination": {...} }` from `GET /sites/{site_id}/orders`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct OrderList {
    pub orders: Vec<Order>,
    pub pagination: Option<Pagination>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Pagination {
    pub limit: Option<i64>,
    pub offset: Option<i64>,
    pub total: Option<i64>,
}

/// `PATCH /sites/{site_id}/orders/{order_id}` body; `None` fields are omitted.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateOrderRequest {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shipping_provider: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shipping_tracking: Option<String>,
    #[serde(rename = "shippingTrackingURL", skip_serializing_if = "Option::is_none")]
    pub shipping_tracking_url: Option<String>,
}

/// `POST .../fulfill` body. Webflow's default is `false`; we always send it explicitly.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FulfillOrderRequest {
    pub send_order_fulfilled_email: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefundOrderRequest {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<RefundReason>,
}

/// A SKU's kind of stock (docs/webflow-api.md §6): a counted level, or unlimited.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InventoryType {
    #[default]
    Finite,
    Infinite,
}

impl InventoryType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Finite => "finite",
            Self::Infinite => "infinite",
        }
    }
}

/// `ecomm_inventory_changed` payload and the inventory endpoints' `InventoryItem`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct InventoryItem {
    pub id: Option<String>,
    pub quantity: Option<f64>,
    pub inventory_type: Option<InventoryType>,
}

/// `PATCH /collections/{sku_collection_id}/items/{sku_id}/inventory` (docs/webflow-api.md §6):
/// `inventoryType` is required; `quantity` sets the level, `updateQuantity` adds to it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateInventoryRequest {
    pub inventory_type: InventoryType,
    /// Whole units (the warehouse counts units; sent as a JSON integer).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub quantity: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub update_quantity: Option<i64>,
}

impl UpdateInventoryRequest {
    /// A finite stock of exactly `quantity` (what the bridge sends).
    pub fn finite(quantity: i64) -> Self {
        Self {
            inventory_type: InventoryType::Finite,
            quantity: Some(quantity),
            update_quantity: None,
        }
    }
}

/// One CMS collection of a site (`GET /sites/{site_id}/collections`); the SKU collection is
/// one of them (how to recognise it is unconfirmed: its slug is `sku` on the sites we know).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Collection {
    pub id: Option<String>,
    pub display_name: Option<String>,
    pub singular_name: Option<String>,
    pub slug: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct CollectionList {
    pub collections: Vec<Collection>,
}

/// Webflow's error body. `details` items may be strings or objects.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ErrorBody {
    pub code: Option<String>,
    pub message: Option<String>,
    pub external_reference: Option<String>,
    pub details: Option<Vec<serde_json::Value>>,
}

/// A registered webhook. `secretKey` is only returned at creation with a site token.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Webhook {
    pub id: Option<String>,
    pub trigger_type: Option<TriggerType>,
    pub url: Option<String>,
    pub workspace_id: Option<String>,
    pub site_id: Option<String>,
    pub filter: Option<serde_json::Value>,
    pub last_triggered: Option<String>,
    pub created_on: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_key: Option<String>,
}

impl fmt::Debug for Webhook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Webhook")
            .field("id", &self.id)
            .field("trigger_type", &self.trigger_type)
            .field("url", &self.url)
            .field("site_id", &self.site_id)
            .field("secret_key", &self.secret_key.as_ref().map(|_| "[redacted]"))
            .finish_non_exhaustive()
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct WebhookList {
    pub webhooks: Vec<Webhook>,
    pub pagination: Option<Pagination>,
}

/// A site (`GET /v2/sites/{site_id}`): what the bridge shows and names stores after.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Site {
    pub id: Option<String>,
    pub workspace_id: Option<String>,
    pub display_name: Option<String>,
    pub short_name: Option<String>,
    pub time_zone: Option<String>,
}

/// `GET /v2/token/introspect`: what a token may act on.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TokenIntrospection {
    pub authorization: TokenAuthorization,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct TokenAuthorization {
    pub id: Option<String>,
    pub grant_type: Option<String>,
    /// Requests per minute the token may make.
    pub rate_limit: Option<u32>,
    pub scope: Option<String>,
    pub authorized_to: AuthorizedTo,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct AuthorizedTo {
    pub site_ids: Vec<String>,
    pub workspace_ids: Vec<String>,
    pub user_ids: Vec<String>,
}

/// The OAuth token endpoint's answer to an authorization-code exchange.
#[derive(Clone, Deserialize)]
pub struct OAuthToken {
    pub access_token: secrecy::SecretString,
    #[serde(default)]
    pub token_type: Option<String>,
    #[serde(default)]
    pub scope: Option<String>,
}

impl fmt::Debug for OAuthToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuthToken")
            .field("access_token", &"[redacted]")
            .field("token_type", &self.token_type)
            .field("scope", &self.scope)
            .finish()
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateWebhookRequest {
    pub trigger_type: TriggerType,
    pub url: String,
}

/// The envelope of every v2 webhook: `{ "triggerType": ..., "payload": ... }`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookEnvelope<P = serde_json::Value> {
    pub trigger_type: TriggerType,
    #[serde(default = "Option::default")]
    pub payload: Option<P>,
}

/// Only the trigger type, read without parsing the payload (what the ingress needs).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct WebhookHead {
    pub trigger_type: TriggerType,
}

/// Accepts `2`, `2.0` and `null` for integer counts; Webflow types them as `number`.
fn lenient_int<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<i64>, D::Error> {
    let value = Option::<serde_json::Number>::deserialize(deserializer)?;
    match value {
        None => Ok(None),
        Some(n) => {
            if let Some(i) = n.as_i64() {
                Ok(Some(i))
            } else {
                match n.as_f64() {
                    Some(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Ok(Some(f as i64)),
                    _ => Err(serde::de::Error::custom(format!("`{n}` is not a whole number"))),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_status_is_kept() {
        let status: OrderStatus = serde_json::from_str("\"on-hold\"").unwrap();
        assert_eq!(status, OrderStatus::Other("on-hold".into()));
        assert_eq!(serde_json::to_string(&status).unwrap(), "\"on-hold\"");
        let status: OrderStatus = serde_json::from_str("\"dispute-lost\"").unwrap();
        assert_eq!(status, OrderStatus::DisputeLost);
    }

    #[test]
    fn handled_triggers_round_trip_through_the_domain() {
        for trigger in WebhookTrigger::ALL {
            let wire = TriggerType::from(trigger);
            assert_eq!(wire.as_str(), trigger.as_str());
            assert_eq!(TriggerType::from_wire(trigger.as_str()).handled(), Some(trigger));
        }
        assert_eq!(TriggerType::FormSubmission.handled(), None);
        assert_eq!(TriggerType::from_wire("brand_new").handled(), None);
    }

    #[test]
    fn nulls_and_unknown_fields_are_tolerated() {
        let order: Order = serde_json::from_str(
            r#"{"orderId":"a-1","status":null,"purchasedItems":[{"count":2.0,"variantSKU":null,"new":1}],"x":{}}"#,
        )
        .unwrap();
        assert_eq!(order.order_id.as_deref(), Some("a-1"));
        assert_eq!(order.status, None);
        assert_eq!(order.items()[0].count, Some(2));
        assert!(serde_json::from_str::<PurchasedItem>(r#"{"count":1.5}"#).is_err());
    }

    #[test]
    fn update_request_uses_webflow_names_and_omits_none() {
        let body = UpdateOrderRequest {
            shipping_provider: Some("UPS".into()),
            shipping_tracking: Some("1Z".into()),
            shipping_tracking_url: Some("https://t/1Z".into()),
            comment: None,
        };
        assert_eq!(
            serde_json::to_value(&body).unwrap(),
            serde_json::json!({"shippingProvider":"UPS","shippingTracking":"1Z","shippingTrackingURL":"https://t/1Z"})
        );
        assert_eq!(
            serde_json::to_string(&FulfillOrderRequest {
                send_order_fulfilled_email: true
            })
            .unwrap(),
            r#"{"sendOrderFulfilledEmail":true}"#
        );
    }

    #[test]
    fn money_is_minor_units_in_a_string() {
        let price: OrderPrice =
            serde_json::from_str(r#"{"unit":"USD","value":"11873","string":"$ 118.73 USD"}"#).unwrap();
        assert_eq!(price.minor_units(), Some(11873));
    }

    #[test]
    fn customer_data_is_not_in_debug_output() {
        let info = CustomerInfo {
            full_name: Some("Arthur Dent".into()),
            email: Some("a@b.c".into()),
        };
        let printed = format!("{info:?}");
        assert!(!printed.contains("Arthur") && !printed.contains("a@b.c"));
    }
}
