//! ingress → enrich → reserve against real PostgreSQL and RabbitMQ, Webflow faked.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

mod api_routes;
mod chaos;
mod config_files;
mod database;
mod delivery;
mod failures;
mod fair_budget;
mod floor;
mod lifecycle;
mod operator_tools;
mod processes;
mod rate_budget;
mod reconciliation;
mod reservation;
mod simulated_store;
mod writeback;
