mod webhook;

pub use webhook::{IngressState, message_id_for, receive_webflow_webhook};
