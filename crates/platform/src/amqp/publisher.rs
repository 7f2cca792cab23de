//! Publishing with publisher confirms: a message counts as sent only when the broker has
//! confirmed it, and it must be routable (`mandatory`), so a missing queue is an error.

use super::connection::{AmqpClient, AmqpError};
use lapin::BasicProperties;
use lapin::options::BasicPublishOptions;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("not connected to RabbitMQ")]
    Unavailable,
    #[error("the broker refused the message (nack)")]
    Nacked,
    #[error("no queue is bound for routing key `{routing_key}` ({reply_text})")]
    Unroutable { routing_key: String, reply_text: String },
    #[error("no publisher confirm within {0:?}")]
    Timeout(Duration),
    #[error("publish failed: {0}")]
    Protocol(#[from] lapin::Error),
}

impl PublishError {
    /// A short stable label for metrics and logs.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::Unavailable => "broker_unavailable",
            Self::Nacked => "broker_nack",
            Self::Unroutable { .. } => "unroutable",
            Self::Timeout(_) => "confirm_timeout",
            Self::Protocol(_) => "broker_error",
        }
    }
}

/// Publishes persistent, mandatory messages and waits for the broker's confirm.
#[derive(Clone)]
pub struct Publisher {
    client: AmqpClient,
    confirm_timeout: Duration,
}

impl Publisher {
    pub fn new(client: AmqpClient, confirm_timeout: Duration) -> Self {
        Self {
            client,
            confirm_timeout,
        }
    }

    pub fn client(&self) -> &AmqpClient {
        &self.client
    }

    /// Publishes `body` as a persistent (delivery mode 2), mandatory message and returns once the
    /// broker has confirmed it: a message no queue is bound for is an error
    /// ([`PublishError::Unroutable`]).
    pub async fn publish(
        &self,
        exchange: &str,
        routing_key: &str,
        body: &[u8],
        properties: BasicProperties,
    ) -> Result<(), PublishError> {
        self.publish_with(exchange, routing_key, body, properties, true).await
    }

    /// [`Self::publish`], with `mandatory` chosen: an event that may have no subscriber yet is
    /// published without it, so nobody listening is not an error (and nothing comes back).
    pub async fn publish_with(
        &self,
        exchange: &str,
        routing_key: &str,
        body: &[u8],
        properties: BasicProperties,
        mandatory: bool,
    ) -> Result<(), PublishError> {
        let channel = self.client.publish_channel().await.map_err(|e| match e {
            AmqpError::Protocol(error) => PublishError::Protocol(error),
            _ => PublishError::Unavailable,
        })?;
        let properties = properties.with_delivery_mode(2);
        let options = BasicPublishOptions {
            mandatory,
            ..BasicPublishOptions::default()
        };
        let attempt = async {
            let confirm = channel
                .basic_publish(exchange.into(), routing_key.into(), options, body, properties)
                .await?
                .await?;
            Ok::<_, lapin::Error>(confirm)
        };
        let confirmation = match tokio::time::timeout(self.confirm_timeout, attempt).await {
            Err(_) => {
                self.client.report_failure();
                return Err(PublishError::Timeout(self.confirm_timeout));
            }
            Ok(Err(error)) => {
                self.client.report_failure();
                return Err(PublishError::Protocol(error));
            }
            Ok(Ok(confirmation)) => confirmation,
        };
        if confirmation.is_nack() {
            return Err(PublishError::Nacked);
        }
        if let Some(returned) = confirmation.take_message() {
            return Err(PublishError::Unroutable {
                routing_key: routing_key.to_owned(),
                reply_text: returned.reply_text.to_string(),
            });
        }
        Ok(())
    }
}
