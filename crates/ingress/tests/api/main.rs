//! Ingress integration tests: the real app on random ports against the real RabbitMQ,
//! each test in its own AMQP namespace.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test helpers fail loudly")]

mod broker_outage;
mod concurrency;
mod edge;
mod fuzz;
mod helpers;
mod rejections;
mod stores;
mod webhooks;
