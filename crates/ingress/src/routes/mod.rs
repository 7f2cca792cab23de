//! The ingress routes: the one webhook endpoint.

mod webhook;

pub use webhook::{IngressState, receive_webflow_webhook};
