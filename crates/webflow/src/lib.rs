//! Webflow Data API v2: wire types with Webflow's exact JSON names, webhook signature
//! verification, the API client and the `[webflow]` settings.
//!
//! Every wire type tolerates missing fields, `null` and unknown fields: Webflow's spec marks
//! no field as required and its SDKs accept unknown enum values, so neither do we reject them.
//! This crate knows nothing about AMQP or the warehouse database.

pub mod client;
pub mod settings;
pub mod signature;
pub mod types;

pub use client::{ApiResponse, CallRecord, WebflowClient, WebflowError};
/// The ids the client's methods take, so callers need not name the domain crate.
pub use domain::{OrderId, SiteId};
pub use settings::{BudgetSettings, OAuthSettings, SiteSettings, WebflowSettings};
pub use signature::{SignatureError, WebhookSignature, sign, verify_webhook};
pub use types::*;
