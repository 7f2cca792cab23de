//! A delivery as a handler sees it, and the events a handler emits.

use crate::error::HandlerError;
use domain::{Envelope, Event, MessageId, SiteId};
use lapin::types::FieldTable;
use platform::amqp::headers;

/// Header that keeps the original routing key when a message goes through a retry queue.
pub const ORIGINAL_ROUTING_KEY: &str = "x-original-routing-key";
/// Header with the resume token of the last deferral (see [`domain::Classify::resume_token`]).
pub const RESUME_TOKEN: &str = "x-resume-token";
/// Header set once, when a message is first deferred (RFC 3339): the deferral ceiling
/// (`worker.max_deferral_secs`) counts from it.
pub const DEFERRED_SINCE: &str = "x-deferred-since";

#[derive(Clone, Debug)]
pub struct IncomingMessage {
    pub message_id: String,
    /// The key it was first published with (kept across retries).
    pub routing_key: String,
    pub body: Vec<u8>,
    pub headers: FieldTable,
    pub correlation_id: Option<String>,
    /// 1 on the first attempt.
    pub attempt: u32,
}

impl IncomingMessage {
    pub fn from_delivery(delivery: &lapin::message::Delivery) -> Self {
        let headers = delivery.properties.headers().clone().unwrap_or_default();
        let routing_key =
            headers::get_str(Some(&headers), ORIGINAL_ROUTING_KEY).unwrap_or_else(|| delivery.routing_key.to_string());
        let message_id = delivery
            .properties
            .message_id()
            .as_ref()
            .map(|id| id.to_string())
            .filter(|id| !id.is_empty())
            // No id: derive one from the content so a redelivery still dedupes.
            .unwrap_or_else(|| content_id(&routing_key, &delivery.data));
        let attempt = headers::get_i64(Some(&headers), headers::ATTEMPT)
            .and_then(|a| u32::try_from(a).ok())
            .filter(|a| *a >= 1)
            .unwrap_or(1);
        Self {
            message_id,
            routing_key,
            body: delivery.data.clone(),
            correlation_id: delivery.properties.correlation_id().as_ref().map(|c| c.to_string()),
            headers,
            attempt,
        }
    }

    /// What the handler's last deferral asked to be handed back (e.g. a reserved budget slot).
    pub fn resume_token(&self) -> Option<String> {
        self.header(RESUME_TOKEN)
    }

    pub fn header(&self, key: &str) -> Option<String> {
        headers::get_str(Some(&self.headers), key)
    }

    /// Parses the body as an internal event envelope.
    pub fn envelope(&self) -> Result<Envelope, HandlerError> {
        serde_json::from_slice(&self.body).map_err(|e| HandlerError::permanent(format!("not an event envelope: {e}")))
    }

    /// Correlation id for events caused by this message.
    pub fn correlation(&self) -> String {
        self.correlation_id.clone().unwrap_or_else(|| self.message_id.clone())
    }
}

fn content_id(routing_key: &str, body: &[u8]) -> String {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    ctx.update(routing_key.as_bytes());
    ctx.update(&[0]);
    ctx.update(body);
    format!("c-{}", hex::encode(ctx.finish().as_ref()))
}

/// Events a handler emits; written to the outbox in the handler's transaction.
#[derive(Default)]
pub struct Effects {
    pub(crate) events: Vec<Envelope>,
    /// Run once the handler's transaction committed; dropped unrun if it did not.
    pub(crate) on_commit: Vec<Box<dyn FnOnce() + Send + Sync>>,
}

impl std::fmt::Debug for Effects {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Effects")
            .field("events", &self.events)
            .field("on_commit", &self.on_commit.len())
            .finish()
    }
}

impl Effects {
    /// Emits `event` caused by `cause`. Its message id derives from the cause, the consumer and
    /// the event, so re-running the same handler emits the same id (and consumers dedupe).
    pub fn emit(&mut self, consumer: &str, cause: &IncomingMessage, site_id: &SiteId, event: Event) {
        let index = self.events.len();
        let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
        for part in [
            consumer,
            cause.message_id.as_str(),
            event.routing_key(),
            &index.to_string(),
        ] {
            ctx.update(part.as_bytes());
            ctx.update(&[0]);
        }
        let id = format!("ev-{}", &hex::encode(ctx.finish().as_ref())[..40]);
        self.events.push(Envelope::new(
            MessageId::new(id),
            cause.correlation(),
            site_id.clone(),
            event,
        ));
    }

    pub fn events(&self) -> &[Envelope] {
        &self.events
    }

    /// Runs `f` once the handler's transaction has committed (e.g. to let go of a lease that
    /// the transaction ended); if it rolls back, `f` is dropped without running.
    pub fn on_commit(&mut self, f: impl FnOnce() + Send + Sync + 'static) {
        self.on_commit.push(Box::new(f));
    }
}
