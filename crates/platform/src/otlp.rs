//! OpenTelemetry export of the services' spans, over OTLP/HTTP with protobuf bodies, when
//! `telemetry.otlp_endpoint` is set (off otherwise: no exporter, no cost).
//!
//! Our trace id *is* the OpenTelemetry trace id. The ingress makes it in the W3C form (32 hex
//! digits, from `traceparent` when Webflow or a proxy sent one), so [`join_trace`] makes each
//! handler's span a child of a remote parent carrying that id: the spans of one order in every
//! service land in one trace in Jaeger or Tempo, and the id a person greps in the logs finds it
//! there too. (An attribute alone would leave one trace per service and message.) Ids that are
//! not 32 hex digits (a repair's message id) are hashed to one, the same way everywhere.
//!
//! The exporter's HTTP client is the project's reqwest, run on the service's Tokio runtime (the
//! batch processor exports from a thread of its own): no gRPC stack and no second HTTP client.

use opentelemetry::Context;
use opentelemetry::trace::{
    SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState, TracerProvider as _,
};
use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::trace::SdkTracerProvider;
use std::sync::OnceLock;
use std::time::Duration;
use tracing::Subscriber;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::Layer;
use tracing_subscriber::registry::LookupSpan;

/// The process's tracer provider, once export is on (flushed by [`shutdown`]).
static PROVIDER: OnceLock<SdkTracerProvider> = OnceLock::new();

#[derive(Debug, thiserror::Error)]
pub enum OtlpError {
    #[error("OpenTelemetry export needs a Tokio runtime")]
    NoRuntime,
    #[error("cannot build the OTLP exporter: {0}")]
    Build(String),
}

/// Where spans are POSTed: the collector's base URL (`telemetry.otlp_endpoint`) with the OTLP
/// traces path.
pub fn traces_url(endpoint: &str) -> String {
    format!("{}/v1/traces", endpoint.trim_end_matches('/'))
}

/// A `tracing` layer exporting spans to the collector at `endpoint` as `service`.
pub fn layer<S>(endpoint: &str, service: &str) -> Result<impl Layer<S> + use<S>, OtlpError>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    let runtime = tokio::runtime::Handle::try_current().map_err(|_| OtlpError::NoRuntime)?;
    crate::install_crypto_provider();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| OtlpError::Build(e.to_string()))?;
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_http_client(RuntimeClient { client, runtime })
        .with_endpoint(traces_url(endpoint))
        .build()
        .map_err(|e| OtlpError::Build(e.to_string()))?;
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(
            opentelemetry_sdk::Resource::builder()
                .with_service_name(service.to_owned())
                .build(),
        )
        .build();
    let tracer = provider.tracer("wms-bridge");
    let _ = PROVIDER.set(provider);
    Ok(tracing_opentelemetry::layer().with_tracer(tracer))
}

/// Puts `span` (just created, not entered yet) into the OpenTelemetry trace `trace_id`. Does
/// nothing while export is off.
pub fn join_trace(span: &tracing::Span, trace_id: &str) {
    if PROVIDER.get().is_none() {
        return;
    }
    let parent = SpanContext::new(
        otel_trace_id(trace_id),
        SpanId::from_bytes(random_bytes()),
        TraceFlags::SAMPLED,
        true,
        TraceState::default(),
    );
    // Only fails for a span already entered or filtered out: it then stays in a trace of its own.
    let _ = span.set_parent(Context::new().with_remote_span_context(parent));
}

/// Our trace id as an OpenTelemetry one: itself when it is 32 hex digits, else a hash of it.
pub fn otel_trace_id(trace_id: &str) -> TraceId {
    let mut bytes = [0_u8; 16];
    if trace_id.len() == 32 && hex::decode_to_slice(trace_id, &mut bytes).is_ok() && bytes != [0; 16] {
        return TraceId::from_bytes(bytes);
    }
    let digest = ring::digest::digest(&ring::digest::SHA256, trace_id.as_bytes());
    bytes.copy_from_slice(&digest.as_ref()[..16]);
    TraceId::from_bytes(bytes)
}

fn random_bytes() -> [u8; 8] {
    let mut bytes = [1_u8; 8];
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes);
    bytes
}

/// Exports what is still buffered; call once, as the process stops.
pub fn shutdown() {
    if let Some(provider) = PROVIDER.get() {
        let _ = provider.shutdown();
    }
}

/// reqwest on the service's runtime, for the batch processor's export thread (which has no
/// runtime of its own: the request is spawned on the service's and awaited from there).
#[derive(Debug)]
struct RuntimeClient {
    client: reqwest::Client,
    runtime: tokio::runtime::Handle,
}

#[async_trait::async_trait]
impl opentelemetry_http::HttpClient for RuntimeClient {
    async fn send_bytes(
        &self,
        request: http::Request<bytes::Bytes>,
    ) -> Result<http::Response<bytes::Bytes>, opentelemetry_http::HttpError> {
        let client = self.client.clone();
        let (parts, body) = request.into_parts();
        let answer = self
            .runtime
            .spawn(async move {
                let response = client
                    .request(parts.method, parts.uri.to_string())
                    .headers(parts.headers)
                    .body(body)
                    .send()
                    .await?;
                let status = response.status();
                let headers = response.headers().clone();
                let body = response.bytes().await?;
                Ok::<_, reqwest::Error>((status, headers, body))
            })
            .await??;
        let (status, headers, body) = answer;
        let mut response = http::Response::builder().status(status).body(body)?;
        *response.headers_mut() = headers;
        Ok(response)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_trace_id_is_the_opentelemetry_trace_id() {
        let id = "4bf92f3577b34da6a3ce929d0e0e4736";
        assert_eq!(otel_trace_id(id).to_string(), id);
        let repair = otel_trace_id("rc-65f0c0ffee-order-1");
        assert_eq!(
            repair,
            otel_trace_id("rc-65f0c0ffee-order-1"),
            "hashed the same everywhere"
        );
        assert_ne!(repair, TraceId::INVALID);
    }

    #[test]
    fn spans_go_to_the_traces_path() {
        assert_eq!(traces_url("http://collector:4318/"), "http://collector:4318/v1/traces");
        assert_eq!(traces_url("http://collector:4318"), "http://collector:4318/v1/traces");
    }
}
