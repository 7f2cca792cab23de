//! The warehouse API against real PostgreSQL and RabbitMQ, in-process.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

mod access;
mod console_names;
mod console_sessions;
mod helpers;
mod inputs;
mod merchants;
mod stores;
mod stores_console;
mod tokens;
