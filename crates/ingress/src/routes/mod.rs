mod webhook;

pub use webhook::{IngressState, WebhookMessage, message_id_for, message_properties, receive_webflow_webhook};
