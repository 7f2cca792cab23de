//! Structured logging. JSON lines in production, human-readable locally.
//!
//! A JSON line carries the fields of every span it was written in, flattened next to the
//! event's own ([`FlatJson`]): a handler's span holds `trace_id`, so every line written while
//! handling an order has the order's `trace_id` at the top level, and one `grep` (or one log
//! query) shows the order's whole journey through every service.
//!
//! Split into [`subscriber`] and [`init`] so tests can build a subscriber with a sink of their
//! choice (silent unless `TEST_LOG` is set).

use serde::Deserialize;
use serde_json::{Map, Value};
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::{JsonFields, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields, MakeWriter};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::{EnvFilter, layer::SubscriberExt};

#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Json,
    Pretty,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(default)]
pub struct TelemetrySettings {
    /// `json` (one object per line) or `pretty`.
    pub log_format: LogFormat,
    /// A `tracing` filter such as `info` or `info,lapin=warn`; `RUST_LOG` overrides it.
    pub log_level: String,
    /// The base URL of an OpenTelemetry collector's OTLP/HTTP receiver
    /// (`http://otel-collector:4318`); spans are POSTed to `<url>/v1/traces`. Unset: no export.
    pub otlp_endpoint: Option<String>,
}

impl TelemetrySettings {
    /// `otlp_endpoint`, when set, must be an http(s) URL with a host.
    pub fn validate(&self) -> Result<(), crate::settings::SettingsError> {
        let Some(endpoint) = &self.otlp_endpoint else {
            return Ok(());
        };
        let invalid = |message: String| crate::settings::SettingsError::invalid("telemetry.otlp_endpoint", message);
        let url = reqwest::Url::parse(endpoint).map_err(|e| invalid(format!("`{endpoint}` is not a URL: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none_or(str::is_empty) {
            return Err(invalid(format!(
                "`{endpoint}` must be an http:// or https:// URL with a host, such as http://otel-collector:4318"
            )));
        }
        Ok(())
    }
}

impl Default for TelemetrySettings {
    fn default() -> Self {
        Self {
            log_format: LogFormat::Json,
            log_level: "info,lapin=error,actix_server=warn".into(),
            otlp_endpoint: None,
        }
    }
}

/// Builds a subscriber that writes to `sink` (no span export).
pub fn subscriber<W>(settings: &TelemetrySettings, sink: W) -> Box<dyn Subscriber + Send + Sync>
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    build(settings, sink, None::<tracing_subscriber::layer::Identity>)
}

/// The subscriber of the process of `service`: logs to `sink`, and spans to the OpenTelemetry
/// collector at `telemetry.otlp_endpoint` when it is set. Call from within the Tokio runtime.
pub fn service_subscriber<W>(
    settings: &TelemetrySettings,
    sink: W,
    service: &str,
) -> Result<Box<dyn Subscriber + Send + Sync>, crate::otlp::OtlpError>
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
{
    let export = match &settings.otlp_endpoint {
        Some(endpoint) => Some(crate::otlp::layer(endpoint, service)?),
        None => None,
    };
    Ok(build(settings, sink, export))
}

type Filtered = tracing_subscriber::layer::Layered<EnvFilter, tracing_subscriber::Registry>;

fn build<W, L>(settings: &TelemetrySettings, sink: W, export: Option<L>) -> Box<dyn Subscriber + Send + Sync>
where
    W: for<'a> MakeWriter<'a> + Send + Sync + 'static,
    L: tracing_subscriber::Layer<Filtered> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&settings.log_level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let registry = tracing_subscriber::registry().with(filter).with(export);
    match settings.log_format {
        LogFormat::Json => Box::new(
            registry.with(
                tracing_subscriber::fmt::layer()
                    .fmt_fields(JsonFields::new())
                    .event_format(FlatJson)
                    .with_writer(sink),
            ),
        ),
        LogFormat::Pretty => Box::new(registry.with(tracing_subscriber::fmt::layer().with_writer(sink))),
    }
}

/// One JSON object per line: `timestamp`, `level`, `target`, the fields of the spans the
/// event is in (outermost first, an inner span's field wins) and the event's own fields
/// (`message` among them; they win over span fields).
pub struct FlatJson;

impl<S, N> FormatEvent<S, N> for FlatJson
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(&self, ctx: &FmtContext<'_, S, N>, mut writer: Writer<'_>, event: &Event<'_>) -> std::fmt::Result {
        let mut line = Map::new();
        line.insert(
            "timestamp".into(),
            chrono::Utc::now()
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
                .into(),
        );
        line.insert("level".into(), event.metadata().level().as_str().into());
        if let Some(scope) = ctx.event_scope() {
            for span in scope.from_root() {
                let extensions = span.extensions();
                // `JsonFields` keeps a span's fields as a JSON object (empty when it has none).
                if let Some(fields) = extensions.get::<FormattedFields<N>>()
                    && let Ok(Value::Object(fields)) = serde_json::from_str::<Value>(fields.as_str())
                {
                    line.extend(fields);
                }
            }
        }
        event.record(&mut JsonVisitor(&mut line));
        line.insert("target".into(), event.metadata().target().into());
        writeln!(writer, "{}", Value::Object(line))
    }
}

/// Records an event's fields into a JSON object.
struct JsonVisitor<'a>(&'a mut Map<String, Value>);

impl Visit for JsonVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.0.insert(field.name().into(), value.to_string().into());
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().into(), format!("{value:?}").into());
    }
}

/// The trace id of a request: the one in a W3C `traceparent` header when it is valid, else a
/// fresh one. 32 lowercase hex digits either way, the form of W3C and OpenTelemetry trace ids.
pub fn trace_id(traceparent: Option<&str>) -> String {
    traceparent
        .and_then(|value| value.split('-').nth(1))
        .filter(|id| id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()) && id.bytes().any(|b| b != b'0'))
        .map(str::to_ascii_lowercase)
        // A random UUID's 32 digits (never all zeros: its version digit is 4). `uuid`'s fast-rng
        // draws them from a thread-local generator: no system call per request, where the
        // system's random source costs the ingress one per webhook.
        .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string())
}

/// Installs `subscriber` as the global default. Call once, from `main`.
pub fn init(subscriber: Box<dyn Subscriber + Send + Sync>) {
    // A second call (tests) keeps the first subscriber.
    let _ = tracing::subscriber::set_global_default(subscriber);
}

/// Sets up logging for tests: silent unless `TEST_LOG` is set.
pub fn init_for_tests() {
    let settings = TelemetrySettings {
        log_format: LogFormat::Pretty,
        log_level: "info,lapin=warn".into(),
        otlp_endpoint: None,
    };
    if std::env::var_os("TEST_LOG").is_some() {
        init(subscriber(&settings, std::io::stdout));
    } else {
        init(subscriber(&settings, std::io::sink));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .map_err(|_| std::io::ErrorKind::Other)?
                .extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn the_otlp_endpoint_must_be_an_http_url_with_a_host() {
        let with = |endpoint: Option<&str>| TelemetrySettings {
            otlp_endpoint: endpoint.map(str::to_owned),
            ..TelemetrySettings::default()
        };
        assert!(with(None).validate().is_ok());
        assert!(with(Some("http://otel-collector:4318")).validate().is_ok());
        assert!(with(Some("https://collector.example/otlp")).validate().is_ok());
        for bad in ["otel-collector:4318", "ftp://collector", "http://", "not a url"] {
            let error = with(Some(bad))
                .validate()
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(error.contains("telemetry.otlp_endpoint"), "{bad}: {error}");
        }
    }

    #[test]
    fn trace_ids_come_from_traceparent_or_are_made() {
        let given = "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01";
        assert_eq!(trace_id(Some(given)), "4bf92f3577b34da6a3ce929d0e0e4736");
        for bad in [
            None,
            Some("garbage"),
            Some("00-00000000000000000000000000000000-00f067aa0ba902b7-01"),
        ] {
            let made = trace_id(bad);
            assert_eq!(made.len(), 32, "{made}");
            assert!(made.bytes().all(|b| b.is_ascii_hexdigit()), "{made}");
        }
        assert_ne!(trace_id(None), trace_id(None));
    }

    #[test]
    fn a_json_line_carries_the_trace_id_of_the_span_it_was_written_in() {
        let sink = Sink::default();
        let writer = sink.clone();
        let settings = TelemetrySettings {
            log_level: "info".into(),
            ..TelemetrySettings::default()
        };
        let subscriber = subscriber(&settings, move || writer.clone());
        tracing::subscriber::with_default(subscriber, || {
            let outer = tracing::info_span!("message", trace_id = "abc123", consumer = "ship");
            let _outer = outer.enter();
            let inner = tracing::info_span!("call", consumer = "carrier");
            let _inner = inner.enter();
            tracing::info!(order_id = "o-1", attempt = 2_u64, "label bought");
        });
        let text = String::from_utf8(sink.0.lock().map(|b| b.clone()).unwrap_or_default()).unwrap_or_default();
        let line: Value = serde_json::from_str(text.trim()).unwrap_or_default();
        assert_eq!(line["trace_id"], "abc123", "{text}");
        assert_eq!(line["consumer"], "carrier", "the inner span wins: {text}");
        assert_eq!(line["order_id"], "o-1", "{text}");
        assert_eq!(line["attempt"], 2, "{text}");
        assert_eq!(line["message"], "label bought", "{text}");
        assert_eq!(line["level"], "INFO", "{text}");
        assert!(line["timestamp"].as_str().is_some(), "{text}");
    }
}
