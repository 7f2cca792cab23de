//! The `warehouse` service: the operators' HTTP API (inventory, picking, packing, order
//! views), the operator console (`/console`, server-rendered pages) and, when `warehouse.auto_pack` is on, a packer that picks and packs reserved orders
//! by itself so the pipeline runs end to end with no operator.
//!
//! Every state change goes through the same repositories and lifecycle rules as the workers,
//! and every event it emits goes through the outbox.

pub mod auth;
pub mod commands;
pub mod console;
pub mod error;
pub mod metrics;
pub mod openapi;
pub mod routes;
pub mod settings;
pub mod startup;
pub mod state;

pub use settings::Settings;
pub use startup::{Application, StartupError, build};
