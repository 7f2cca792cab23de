//! RabbitMQ: one topology definition, a self-healing connection, a confirmed publisher.

pub mod connection;
pub mod headers;
pub mod publisher;
pub mod topology;

pub use connection::{AmqpClient, AmqpError};
pub use publisher::{PublishError, Publisher};
pub use topology::{CONSUMERS, ConsumerQueue, Topology};
