//! Ingress integration tests: the real app on random ports against the real RabbitMQ,
//! each test in its own AMQP namespace.

mod broker_outage;
mod concurrency;
mod fuzz;
mod helpers;
mod rejections;
mod webhooks;
