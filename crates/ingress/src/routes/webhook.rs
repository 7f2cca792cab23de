//! `POST /webhooks/webflow/{site_id}`.
//!
//! Order of checks: a live store for the site (the in-memory registry, no query) → body size and body deadline → signature (over the raw bytes) → JSON with a
//! `triggerType` → handled type → publish and wait for the confirm. Nothing is published
//! before the signature has been verified.

use crate::error::WebhookError;
use crate::metrics::IngressMetrics;
use actix_web::{HttpRequest, HttpResponse, web};
use bytes::BytesMut;
use futures_util::StreamExt;
use platform::amqp::Publisher;
use platform::amqp::contract::{self, MessageSource, WebhookMessage};
use secrecy::ExposeSecret;
use std::task::Poll;
use std::time::Instant;
use stores::StoreRegistry;
use tracing::Instrument;
use webflow::signature::{SIGNATURE_HEADER, TIMESTAMP_HEADER};
use webflow::{TriggerType, WebhookHead, WebhookSignature, verify_webhook};

/// Everything the handler needs, shared by all HTTP workers.
pub struct IngressState {
    /// The live stores and their webhook secrets, by Webflow site id.
    pub stores: StoreRegistry,
    pub publisher: Publisher,
    pub exchange: String,
    pub max_body_bytes: usize,
    /// The whole body must arrive within this, counted from the end of the headers.
    pub body_timeout: std::time::Duration,
    pub replay_window_ms: i64,
    pub metrics: IngressMetrics,
}

struct Accepted {
    outcome: &'static str,
    reason: &'static str,
    trigger_type: TriggerType,
    message_id: Option<String>,
}

pub async fn receive_webflow_webhook(
    request: HttpRequest,
    site_id: String,
    payload: web::Payload,
    state: web::Data<IngressState>,
) -> Result<HttpResponse, WebhookError> {
    let trace_id = trace_id(&request);
    // Every line of this webhook carries its trace id, which travels on with the message.
    let span = tracing::info_span!(
        "webhook",
        site_id = %site_id,
        trigger_type = tracing::field::Empty,
        message_id = tracing::field::Empty,
        trace_id = %trace_id,
    );
    platform::otlp::join_trace(&span, &trace_id);
    receive(request, site_id, payload, state, trace_id)
        .instrument(span)
        .await
}

async fn receive(
    request: HttpRequest,
    site_id: String,
    payload: web::Payload,
    state: web::Data<IngressState>,
    trace_id: String,
) -> Result<HttpResponse, WebhookError> {
    let started = Instant::now();
    let result = handle(&request, &site_id, payload, &state, &trace_id).await;
    let latency_ms = started.elapsed().as_secs_f64() * 1_000.0;
    match &result {
        Ok(accepted) => {
            state
                .metrics
                .webhooks
                .with_label_values(&[accepted.outcome, accepted.reason])
                .inc();
            tracing::info!(
                outcome = accepted.outcome,
                reason = accepted.reason,
                trigger_type = %accepted.trigger_type,
                message_id = accepted.message_id.as_deref().unwrap_or(""),
                status = 200,
                latency_ms,
                "webhook handled"
            );
        }
        Err(error) => {
            state
                .metrics
                .webhooks
                .with_label_values(&["rejected", error.reason()])
                .inc();
            let status = actix_web::ResponseError::status_code(error).as_u16();
            if status >= 500 {
                tracing::error!(outcome = "rejected", reason = error.reason(), status, latency_ms, error.message = %error, "webhook not accepted");
            } else {
                tracing::warn!(outcome = "rejected", reason = error.reason(), status, latency_ms, error.message = %error, "webhook rejected");
            }
        }
    }
    result.map(|_| HttpResponse::Ok().content_type("application/json").body(ACCEPTED_BODY))
}

/// The answer to every accepted (or deliberately ignored) webhook.
const ACCEPTED_BODY: &str = r#"{"status":"accepted"}"#;

async fn handle(
    request: &HttpRequest,
    site_id: &str,
    payload: web::Payload,
    state: &IngressState,
    trace_id: &str,
) -> Result<Accepted, WebhookError> {
    // A removed store's path answers 404 as an unknown one does.
    let store = state
        .stores
        .by_site(site_id)
        .ok_or_else(|| WebhookError::UnknownSite(site_id.to_owned()))?;
    let mut read = std::pin::pin!(read_body(request, payload, state.max_body_bytes));
    // A webhook's body nearly always arrives with its headers: read it at once, and arm the
    // deadline (a timer registered and cancelled per request) only for a body still on its way.
    let body = match std::future::poll_fn(|cx| Poll::Ready(read.as_mut().poll(cx))).await {
        Poll::Ready(body) => body?,
        Poll::Pending => {
            tokio::time::timeout(state.body_timeout, read)
                .await
                .map_err(|_| WebhookError::BodyTimeout {
                    limit_ms: u64::try_from(state.body_timeout.as_millis()).unwrap_or(u64::MAX),
                })??
        }
    };

    let header = |name: &str| request.headers().get(name).and_then(|v| v.to_str().ok()).unwrap_or("");
    let signature = WebhookSignature {
        timestamp: header(TIMESTAMP_HEADER),
        signature: header(SIGNATURE_HEADER),
    };
    let secret_values: Vec<&str> = store.webhook_secrets.iter().map(|s| s.expose_secret()).collect();
    let now = chrono::Utc::now();
    let now_ms = now.timestamp_millis();
    verify_webhook(&secret_values, signature, &body, now_ms, state.replay_window_ms)?;

    let head: WebhookHead = serde_json::from_slice(&body)
        .map_err(|e| WebhookError::InvalidPayload(format!("expected a JSON object with a `triggerType`: {e}")))?;
    let trigger_type = head.trigger_type;
    tracing::Span::current().record("trigger_type", trigger_type.as_str());
    let Some(trigger) = trigger_type.handled() else {
        // 200 so Webflow does not retry something we will never process.
        return Ok(Accepted {
            outcome: "ignored",
            reason: "unhandled_trigger",
            trigger_type,
            message_id: None,
        });
    };

    let message_id = contract::webhook_message_id(site_id, &body);
    tracing::Span::current().record("message_id", message_id.as_str());
    let properties = contract::webhook_properties(&WebhookMessage {
        site_id,
        trigger_type: trigger,
        webflow_timestamp: Some(signature.timestamp),
        received_at: now,
        trace_id,
        message_id: &message_id,
        source: MessageSource::Webhook,
        app_id: "wms-ingress",
    });

    let routing_key = trigger.routing_key();
    let timer = state.metrics.publish_seconds.start_timer();
    state
        .publisher
        .publish(&state.exchange, routing_key, &body, properties)
        .await?;
    timer.observe_duration();
    Ok(Accepted {
        outcome: "accepted",
        reason: "published",
        trigger_type,
        message_id: Some(message_id),
    })
}

/// Reads the body, refusing (413) as soon as it exceeds the limit.
async fn read_body(
    request: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
) -> Result<bytes::Bytes, WebhookError> {
    let declared = request
        .headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|len| len > limit) {
        return Err(WebhookError::PayloadTooLarge { limit });
    }
    let mut body = BytesMut::with_capacity(declared.unwrap_or(4096).min(limit));
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| WebhookError::ReadBody(e.to_string()))?;
        if body.len() + chunk.len() > limit {
            return Err(WebhookError::PayloadTooLarge { limit });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

/// Trace id from a W3C `traceparent` header when present, else a fresh one.
fn trace_id(request: &HttpRequest) -> String {
    platform::telemetry::trace_id(request.headers().get("traceparent").and_then(|v| v.to_str().ok()))
}
