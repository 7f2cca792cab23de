//! The ingress benchmark's baseline: webhook bodies published straight to the events exchange
//! with publisher confirms, either as the very message the ingress publishes or bare.
//!
//! The message is built by the same contract the ingress uses (`platform::amqp::contract`).

use anyhow::Context;
use domain::routing::WebhookTrigger;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, QueuePurgeOptions};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use platform::amqp::contract::{self, MessageSource, WebhookMessage};
use std::sync::Arc;

/// The benchmark sends only new-order webhooks.
const TRIGGER: WebhookTrigger = WebhookTrigger::NewOrder;

/// A confirm-mode channel to one namespace's events exchange.
#[derive(Clone)]
pub struct Publisher {
    /// Held so the channel stays open as long as a clone of the publisher lives.
    _connection: Arc<Connection>,
    channel: Channel,
    exchange: Arc<str>,
    /// The queue the published webhooks land in (enrich's), emptied between runs.
    queue: Arc<str>,
}

impl Publisher {
    pub async fn connect(amqp_url: &str, namespace: &str) -> anyhow::Result<Self> {
        let connection = Connection::connect(amqp_url, ConnectionProperties::default())
            .await
            .context("RabbitMQ")?;
        let channel = connection.create_channel().await?;
        channel.confirm_select(ConfirmSelectOptions::default()).await?;
        Ok(Self {
            _connection: Arc::new(connection),
            channel,
            exchange: format!("{namespace}.events").into(),
            queue: format!("{namespace}.enrich").into(),
        })
    }

    /// Publishes `body` exactly as the ingress would for a webhook of `site_id`: same
    /// properties and headers, so a comparison isolates what the ingress adds.
    pub async fn publish_as_ingress(&self, site_id: &str, body: &[u8]) -> Result<(), String> {
        let received_at = chrono::Utc::now();
        let webflow_timestamp = received_at.timestamp_millis().to_string();
        let trace_id = uuid::Uuid::new_v4().simple().to_string();
        let message_id = contract::webhook_message_id(site_id, body);
        let properties = contract::webhook_properties(&WebhookMessage {
            site_id,
            trigger_type: TRIGGER,
            webflow_timestamp: Some(&webflow_timestamp),
            received_at,
            trace_id: &trace_id,
            message_id: &message_id,
            source: MessageSource::Webhook,
            app_id: "wms-ingress",
        });
        self.publish_confirmed(body, properties).await
    }

    /// Publishes `body` with no properties or headers: what a bare publish costs the broker.
    pub async fn publish_bare(&self, body: &[u8]) -> Result<(), String> {
        self.publish_confirmed(body, BasicProperties::default()).await
    }

    /// Empties the queue the webhooks land in.
    pub async fn purge(&self) -> anyhow::Result<()> {
        self.channel
            .queue_purge(self.queue.as_ref().into(), QueuePurgeOptions::default())
            .await?;
        Ok(())
    }

    /// One persistent, mandatory message; waits for the broker's confirm.
    async fn publish_confirmed(&self, body: &[u8], properties: BasicProperties) -> Result<(), String> {
        let confirm = self
            .channel
            .basic_publish(
                self.exchange.as_ref().into(),
                TRIGGER.routing_key().into(),
                BasicPublishOptions {
                    mandatory: true,
                    ..Default::default()
                },
                body,
                properties.with_delivery_mode(2),
            )
            .await
            .map_err(|e| e.to_string())?
            .await
            .map_err(|e| e.to_string())?;
        if confirm.is_ack() && confirm.take_message().is_none() {
            Ok(())
        } else {
            Err("not confirmed".into())
        }
    }
}
