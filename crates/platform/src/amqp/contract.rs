//! What producers and consumers must agree on for every message: its id, its AMQP properties
//! and its headers. The ingress, reconciliation, the outbox and the load generator's baseline
//! all build messages here, so a message looks the same whoever published it.

use super::headers;
use chrono::{DateTime, SecondsFormat, Utc};
pub use domain::WebhookTrigger;
use lapin::BasicProperties;
use lapin::types::FieldTable;

/// Who put a message on the broker (`x-source`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MessageSource {
    /// A signed Webflow webhook, through the ingress.
    Webhook,
    /// Re-injected or repaired by the reconciliation job.
    Reconcile,
}

impl MessageSource {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Webhook => "webhook",
            Self::Reconcile => "reconcile",
        }
    }
}

/// The id of a webhook message: a hash of the site and the signed body, so a Webflow retry
/// and a replay of the same body share it (and consumers drop the second).
pub fn webhook_message_id(site_id: &str, body: &[u8]) -> String {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(site_id.as_bytes());
    ctx.update(&[0]);
    ctx.update(body);
    format!("wh-{}", hex::encode(ctx.finish().as_ref()))
}

/// `x-received-at`: RFC 3339 in UTC with milliseconds, whoever publishes.
pub fn received_at(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// A Webflow webhook as it travels to `enrich`.
pub struct WebhookMessage<'a> {
    pub site_id: &'a str,
    pub trigger_type: WebhookTrigger,
    /// Webflow's `x-webflow-timestamp` (absent when reconciliation re-injects an order).
    pub webflow_timestamp: Option<&'a str>,
    pub received_at: DateTime<Utc>,
    pub trace_id: &'a str,
    pub message_id: &'a str,
    pub source: MessageSource,
    /// `wms-ingress`, `wms-reconcile`…
    pub app_id: &'a str,
}

/// The properties and headers a webhook message is published with.
pub fn webhook_properties(webhook: &WebhookMessage<'_>) -> BasicProperties {
    let mut table = FieldTable::default();
    headers::insert_str(&mut table, headers::SITE_ID, webhook.site_id);
    headers::insert_str(&mut table, headers::TRIGGER_TYPE, webhook.trigger_type.as_str());
    if let Some(timestamp) = webhook.webflow_timestamp {
        headers::insert_str(&mut table, headers::WEBFLOW_TIMESTAMP, timestamp);
    }
    headers::insert_str(&mut table, headers::RECEIVED_AT, received_at(webhook.received_at));
    headers::insert_str(&mut table, headers::TRACE_ID, webhook.trace_id);
    headers::insert_str(&mut table, headers::SOURCE, webhook.source.as_str());
    BasicProperties::default()
        .with_message_id(webhook.message_id.into())
        .with_correlation_id(webhook.trace_id.into())
        .with_content_type("application/json".into())
        .with_type(webhook.trigger_type.as_str().into())
        .with_app_id(webhook.app_id.into())
        .with_timestamp(u64::try_from(webhook.received_at.timestamp()).unwrap_or_default())
        .with_headers(table)
}

/// The properties and headers a domain event (an `Envelope`) is published with.
pub fn event_properties(
    message_id: &str,
    correlation_id: &str,
    site_id: Option<&str>,
    app_id: &str,
    source: Option<MessageSource>,
) -> BasicProperties {
    let mut table = FieldTable::default();
    if let Some(site_id) = site_id {
        headers::insert_str(&mut table, headers::SITE_ID, site_id);
    }
    if let Some(source) = source {
        headers::insert_str(&mut table, headers::SOURCE, source.as_str());
    }
    BasicProperties::default()
        .with_message_id(message_id.into())
        .with_correlation_id(correlation_id.into())
        .with_content_type("application/json".into())
        .with_app_id(app_id.into())
        .with_headers(table)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn received_at_is_rfc3339_millis_utc() {
        let at = DateTime::from_timestamp_millis(1_700_000_000_123).unwrap_or_default();
        assert_eq!(received_at(at), "2023-11-14T22:13:20.123Z");
    }

    #[test]
    fn webhook_ids_depend_on_site_and_body() {
        let a = webhook_message_id("site-a", b"{}");
        assert_eq!(a, webhook_message_id("site-a", b"{}"));
        assert_ne!(a, webhook_message_id("site-b", b"{}"));
        assert_ne!(a, webhook_message_id("site-a", b"{ }"));
        assert!(a.starts_with("wh-") && a.len() == 3 + 64);
    }

    #[test]
    fn webhook_properties_carry_every_header() {
        let properties = webhook_properties(&WebhookMessage {
            site_id: "s",
            trigger_type: WebhookTrigger::NewOrder,
            webflow_timestamp: None,
            received_at: Utc::now(),
            trace_id: "t",
            message_id: "m",
            source: MessageSource::Reconcile,
            app_id: "wms-reconcile",
        });
        let table = properties.headers().as_ref();
        assert_eq!(headers::get_str(table, headers::SOURCE).as_deref(), Some("reconcile"));
        assert_eq!(
            headers::get_str(table, headers::TRIGGER_TYPE).as_deref(),
            Some("ecomm_new_order")
        );
        assert!(headers::get_str(table, headers::WEBFLOW_TIMESTAMP).is_none());
        let received = headers::get_str(table, headers::RECEIVED_AT).unwrap_or_default();
        assert!(DateTime::parse_from_rfc3339(&received).is_ok(), "{received}");
    }
}
