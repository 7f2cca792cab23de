//! Pure domain types of the WMS bridge: identifiers, the order lifecycle, the message
//! envelope exchanged between services and the routing keys that carry it.
//!
//! This crate does no I/O and depends on no transport, database or HTTP crate, so every
//! other crate can share it without pulling in infrastructure. The optional `postgres`
//! feature adds only the `ToSql`/`FromSql` conversions the database crate binds with.

pub mod address;
pub mod events;
pub mod failure;
pub mod ids;
pub mod lifecycle;
pub mod routing;
#[cfg(feature = "postgres")]
mod sql;
pub mod webflow_status;

pub use address::Address;
pub use events::{Envelope, Event};
pub use failure::{Classify, FailureClass};
pub use ids::{MessageId, OrderId, SiteId, Sku};
pub use lifecycle::{OrderState, TransitionError};
pub use routing::{UnhandledTrigger, WebhookTrigger};
pub use webflow_status::WebflowOrderStatus;
