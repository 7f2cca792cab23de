//! ingress → enrich → reserve against real PostgreSQL and RabbitMQ, Webflow faked.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

mod api_routes;
mod broker_addresses;
mod chaos;
mod config_files;
mod database;
mod delivery;
mod failures;
mod fair_budget;
mod floor;
mod inventory_sync;
mod leases;
mod least_privilege;
mod lifecycle;
mod locking;
mod merchants;
mod observability;
mod operator_tools;
mod order_truth;
mod processes;
mod rate_budget;
mod reconciliation;
mod reservation;
mod retention;
mod simulated_store;
mod stores_runtime;
mod wmsctl_stores;
mod writeback;
