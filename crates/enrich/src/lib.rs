//! The `enrich` worker: turns Webflow order webhooks into warehouse orders.
//!
//! Webflow's order webhooks carry the full order; the worker uses it when it is complete and
//! calls `GET /sites/{site_id}/orders/{order_id}` only when it is not (or when
//! `enrich.always_fetch` is set). Out-of-order and duplicate events never move an order
//! backwards.

pub mod handler;
pub mod settings;

pub use handler::EnrichHandler;
pub use settings::Settings;
