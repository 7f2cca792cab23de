//! RabbitMQ: one topology definition, a self-healing connection, a confirmed publisher.

pub mod addresses;
pub mod connection;
pub mod contract;
pub mod headers;
pub mod permissions;
pub mod publisher;
pub mod topology;

pub use connection::{AmqpClient, AmqpError, connect_any};

use std::time::Duration;

/// Closes a channel, waiting at most a few seconds: on a connection that died under it the
/// close-ok never comes, and shutdown must not hang on it (the broker requeues whatever the
/// channel held either way).
pub async fn close_channel(channel: &lapin::Channel, reason: &str) {
    let _ = tokio::time::timeout(Duration::from_secs(3), channel.close(200, reason.into())).await;
}
pub use permissions::{Permissions, Role};
pub use publisher::{PublishError, Publisher};
pub use topology::{CONSUMERS, ConsumerQueue, Topology, TopologyError};
