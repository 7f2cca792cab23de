//! What every carrier adapter takes and returns: addresses, parcels, the shipment request, the
//! booking, and the error with its retry classification.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::time::Duration;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Address {
    pub name: String,
    pub company: Option<String>,
    pub phone: Option<String>,
    pub line1: String,
    pub line2: Option<String>,
    pub city: String,
    pub state: Option<String>,
    pub postal_code: String,
    /// ISO 3166-1 alpha-2.
    pub country: String,
}

/// One box. Grams and centimetres.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Parcel {
    pub weight_grams: f64,
    pub length_cm: f64,
    pub width_cm: f64,
    pub height_cm: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ShipmentRequest {
    /// Our idempotency key (`<site_id>-<order_id>`); sent to the carrier as its reference.
    pub reference: String,
    pub ship_from: Address,
    pub ship_to: Address,
    pub parcels: Vec<Parcel>,
}

/// A bought label.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Booking {
    /// Carrier shown to the customer (`UPS`, `USPS`, `Sandbox Express`).
    pub carrier: String,
    pub service: String,
    pub tracking_number: String,
    pub tracking_url: String,
    pub label_url: Option<String>,
    pub cost_minor: Option<i64>,
    pub currency: Option<String>,
    /// The carrier's id of the label.
    pub external_id: String,
    pub shipped_at: DateTime<Utc>,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum CarrierError {
    /// The carrier refuses the destination: an operator must fix it.
    #[error("address invalid: {0}")]
    AddressInvalid(String),
    /// No rate for the configured service level to this destination.
    #[error("service unavailable: {0}")]
    ServiceUnavailable(String),
    /// Timeouts, 5xx, 429: try again later.
    #[error("carrier temporarily failing: {message}")]
    Transient {
        message: String,
        retry_after: Option<Duration>,
    },
    /// Configuration or a request the carrier will never accept.
    #[error("carrier error: {0}")]
    Permanent(String),
}

impl CarrierError {
    /// Needs a person (visible on the order as `needs_review`).
    pub fn needs_review(&self) -> bool {
        matches!(self, Self::AddressInvalid(_) | Self::ServiceUnavailable(_))
    }
}
