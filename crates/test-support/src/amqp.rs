//! Observing queues from a test: read messages without consuming the topology's consumers,
//! count messages, and delete a test namespace afterwards.

use lapin::options::{BasicAckOptions, BasicGetOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use std::time::Duration;

/// A message read back from a queue.
#[derive(Debug, Clone)]
pub struct ReadMessage {
    pub routing_key: String,
    pub body: Vec<u8>,
    pub properties: BasicProperties,
}

impl ReadMessage {
    pub fn header(&self, key: &str) -> Option<String> {
        platform::amqp::headers::get_str(self.properties.headers().as_ref(), key)
    }

    pub fn message_id(&self) -> Option<String> {
        self.properties.message_id().as_ref().map(|s| s.to_string())
    }
}

/// A plain connection for observing (not through any proxy under test).
pub struct QueueObserver {
    _connection: Connection,
    channel: Channel,
}

impl QueueObserver {
    pub async fn connect() -> Self {
        Self::connect_to(&crate::amqp_url()).await
    }

    /// Observing through `url` (another vhost, say).
    pub async fn connect_to(url: &str) -> Self {
        let connection = Connection::connect(url, ConnectionProperties::default())
            .await
            .expect("RabbitMQ must run on 127.0.0.1:5672 (see README)");
        let channel = connection.create_channel().await.unwrap();
        Self {
            _connection: connection,
            channel,
        }
    }

    pub fn channel(&self) -> &Channel {
        &self.channel
    }

    /// Takes (and acks) the next message, waiting up to `timeout`.
    pub async fn next_message(&self, queue: &str, timeout: Duration) -> Option<ReadMessage> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(message) = self.try_get(queue).await {
                return Some(message);
            }
            if tokio::time::Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Takes (and acks) the next message if there is one.
    pub async fn try_get(&self, queue: &str) -> Option<ReadMessage> {
        let got = self
            .channel
            .basic_get(queue.into(), BasicGetOptions::default())
            .await
            .unwrap()?;
        let delivery = got.delivery;
        delivery.ack(BasicAckOptions::default()).await.unwrap();
        Some(ReadMessage {
            routing_key: delivery.routing_key.to_string(),
            body: delivery.data,
            properties: delivery.properties,
        })
    }

    /// Drains every message currently in `queue`.
    pub async fn drain(&self, queue: &str) -> Vec<ReadMessage> {
        let mut out = Vec::new();
        while let Some(message) = self.try_get(queue).await {
            out.push(message);
        }
        out
    }

    /// Ready messages in `queue` (passive declare).
    pub async fn message_count(&self, queue: &str) -> u32 {
        let options = QueueDeclareOptions {
            passive: true,
            ..QueueDeclareOptions::default()
        };
        self.channel
            .queue_declare(queue.into(), options, FieldTable::default())
            .await
            .unwrap()
            .message_count()
    }

    /// Waits until `queue` holds `expected` ready messages, or the timeout passes; returns the last count.
    pub async fn wait_for_count(&self, queue: &str, expected: u32, timeout: Duration) -> u32 {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let count = self.message_count(queue).await;
            if count >= expected || tokio::time::Instant::now() >= deadline {
                return count;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Publishes a raw message (tests inject poison, duplicates and replays with this).
    pub async fn publish(&self, exchange: &str, routing_key: &str, body: &[u8], properties: BasicProperties) {
        let publish = self.channel.basic_publish(
            exchange.into(),
            routing_key.into(),
            lapin::options::BasicPublishOptions::default(),
            body,
            properties,
        );
        tokio::time::timeout(Duration::from_secs(10), async { publish.await.unwrap().await.unwrap() })
            .await
            .expect("the broker confirms a test publish within 10 s");
    }
}
