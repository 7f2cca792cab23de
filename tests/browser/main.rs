//! The operator console in a real headless Chromium, driven over WebDriver (chromedriver).
//! Each test has its own database and AMQP namespace (`start_pipeline`) and its own
//! chromedriver on a free port, stopped when the test ends, also on a panic. No fixed sleeps:
//! every wait polls for an element or a state, with a deadline.
//!
//! The tests save screenshots of the main pages to target/screenshots/, and to docs/screenshots/
//! (see docs/console.md) with `UPDATE_SCREENSHOTS=1` (`make screenshots`).

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

mod browser;
mod console;
