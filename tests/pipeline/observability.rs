//! The dashboard, the alert rules, the logs and the span export against a running stack: every
//! metric the Grafana dashboard and the Prometheus rules name is exported by a service (so
//! neither can drift from the code), every process says what it is (`wms_build_info`), an
//! order's journey shows in every service's JSON log lines under one `trace_id`, and with
//! `telemetry.otlp_endpoint` set every service sends its spans to the collector, in the order's
//! trace (our trace id is the OpenTelemetry trace id). One stack for all three, to spare the
//! machine.

use e2e::SITE_ID;
use e2e::stack::{Stack, StackOptions, WORKERS};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

#[tokio::test]
async fn metrics_logs_and_spans_of_a_running_stack_match_the_dashboard_alerts_and_one_trace_id() {
    // A stand-in OpenTelemetry collector: accepts OTLP/HTTP trace exports.
    let collector = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/traces"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&collector)
        .await;
    let (p, mut stack) = Stack::launch(StackOptions {
        orders: 3,
        env: vec![("WMS__TELEMETRY__OTLP_ENDPOINT".into(), collector.uri())],
        ..StackOptions::default()
    })
    .await;
    stack.wait_fulfilled(&p, 3, Duration::from_secs(120)).await;
    // Reconcile in its loop mode, which serves metrics like the services. Started once the
    // orders are done: while they flow it may repair a write-back that is merely under way.
    stack.spawn("reconcile");
    stack.wait_ready("reconcile").await;
    let orders = p
        .client()
        .await
        .query("SELECT webflow_order_id, correlation_id FROM orders", &[])
        .await
        .unwrap();
    let orders: Vec<(String, String)> = orders
        .iter()
        .map(|row| {
            (
                row.get(0),
                row.get::<_, Option<String>>(1).expect("every order has a trace id"),
            )
        })
        .collect();
    // An operator reads an order: the warehouse's HTTP metrics have a request to show.
    let answer = reqwest::Client::new()
        .get(format!(
            "http://127.0.0.1:{}/api/v1/orders/{SITE_ID}/{}",
            stack.warehouse_port, orders[0].0
        ))
        .bearer_auth("t1")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);

    assert_every_named_metric_is_exported(&stack).await;
    assert_one_trace_id_per_order(&stack, &orders);
    assert_spans_reach_the_collector(&collector, &orders).await;
    stack.finish(p).await;
}

/// Every service exported spans (its `service.name` is in an export) and some are in each
/// order's trace: the protobuf bodies hold the trace id's 16 bytes as they are.
async fn assert_spans_reach_the_collector(collector: &MockServer, orders: &[(String, String)]) {
    let services = ["ingress", "enrich", "reserve", "ship", "notify-webflow", "warehouse"];
    // The batch exporter sends every 5 s.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let bodies: Vec<Vec<u8>> = collector
            .received_requests()
            .await
            .unwrap_or_default()
            .into_iter()
            .map(|request| request.body)
            .collect();
        let contains = |needle: &[u8]| {
            bodies
                .iter()
                .any(|body| body.windows(needle.len()).any(|w| w == needle))
        };
        let silent: Vec<&str> = services
            .iter()
            .copied()
            .filter(|service| !contains(&service_name_attribute(service)))
            .collect();
        let untraced: Vec<&str> = orders
            .iter()
            .filter(|(_, trace_id)| !contains(&decode_hex(trace_id)))
            .map(|(order_id, _)| order_id.as_str())
            .collect();
        if silent.is_empty() && untraced.is_empty() {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "after {} exports, no spans from {silent:?}; none in the trace of {untraced:?}",
            bodies.len()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The resource attribute `service.name = <service>` as OTLP's protobuf encodes it: the key,
/// then the value (field 2, an `AnyValue`) holding a `string_value` (field 1).
fn service_name_attribute(service: &str) -> Vec<u8> {
    let len = u8::try_from(service.len()).unwrap();
    let mut bytes = b"service.name".to_vec();
    bytes.extend([0x12, len + 2, 0x0a, len]);
    bytes.extend(service.as_bytes());
    bytes
}

fn decode_hex(text: &str) -> Vec<u8> {
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap())
        .collect()
}

/// The processes whose `/metrics` the dashboard and the rules read.
const SERVICES: [&str; 7] = [
    "ingress",
    "enrich",
    "reserve",
    "ship",
    "notify-webflow",
    "warehouse",
    "reconcile",
];

async fn assert_every_named_metric_is_exported(stack: &Stack) {
    let wanted = metric_names_in_dashboard_and_rules();
    assert!(wanted.len() > 20, "the parser found the metrics: {wanted:?}");
    let http = reqwest::Client::new();
    // The warehouse refreshes its gauges every 15 s and the budget gauges every 5 s.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let mut exported = BTreeSet::new();
        for service in SERVICES {
            let text = http
                .get(stack.metrics_url(service))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            assert!(
                text.lines().any(|line| line.starts_with("wms_build_info{")
                    && line.contains(&format!("service=\"{service}\""))
                    && line.ends_with(" 1")),
                "{service} exports wms_build_info: {text}"
            );
            exported.extend(
                text.lines()
                    .filter(|line| !line.starts_with('#') && !line.is_empty())
                    .filter_map(|line| line.split(['{', ' ']).next())
                    .map(str::to_owned),
            );
        }
        let missing: Vec<&String> = wanted.difference(&exported).collect();
        if missing.is_empty() {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "named in deploy/grafana or deploy/prometheus but exported by no service: {missing:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Every metric name in the dashboard's queries and the alert rules' expressions.
fn metric_names_in_dashboard_and_rules() -> BTreeSet<String> {
    let mut expressions = Vec::new();
    for entry in std::fs::read_dir(Path::new(ROOT).join("deploy/grafana")).unwrap() {
        let dashboard: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(entry.unwrap().path()).unwrap()).unwrap();
        for panel in dashboard["panels"].as_array().unwrap() {
            for target in panel["targets"].as_array().into_iter().flatten() {
                expressions.push(target["expr"].as_str().unwrap().to_owned());
            }
        }
    }
    // scripts/check-observability.py makes sure every rule's expression is on its `expr:` line.
    let rules = std::fs::read_to_string(Path::new(ROOT).join("deploy/prometheus/alerts.yml")).unwrap();
    expressions.extend(
        rules
            .lines()
            .filter_map(|line| line.trim().strip_prefix("expr:"))
            .map(|expr| expr.trim().to_owned()),
    );
    assert!(expressions.len() > 20, "{expressions:?}");
    expressions.iter().flat_map(|expr| promql_metric_names(expr)).collect()
}

/// The metric names a PromQL expression selects: identifiers that are neither functions,
/// aggregations, keywords, label names (inside `{…}` or a grouping clause) nor durations (`[…]`).
fn promql_metric_names(expr: &str) -> BTreeSet<String> {
    const KEYWORDS: [&str; 19] = [
        "and",
        "or",
        "unless",
        "bool",
        "offset",
        // Aggregations, which may be followed by `by (…)` before their parenthesis.
        "sum",
        "min",
        "max",
        "avg",
        "group",
        "stddev",
        "stdvar",
        "count",
        "count_values",
        "bottomk",
        "topk",
        "quantile",
        "limitk",
        "limit_ratio",
    ];
    const GROUPING: [&str; 6] = ["by", "without", "on", "ignoring", "group_left", "group_right"];
    let chars: Vec<char> = expr.chars().collect();
    let mut names = BTreeSet::new();
    let mut i = 0;
    let skip_to = |i: usize, close: char| {
        let mut j = i;
        while j < chars.len() && chars[j] != close {
            if chars[j] == '"' {
                j += 1;
                while j < chars.len() && chars[j] != '"' {
                    j += usize::from(chars[j] == '\\') + 1;
                }
            }
            j += 1;
        }
        j + 1
    };
    while i < chars.len() {
        let c = chars[i];
        if c == '{' {
            i = skip_to(i, '}');
        } else if c == '[' {
            i = skip_to(i, ']');
        } else if c == '"' {
            i = skip_to(i + 1, '"');
        } else if c.is_ascii_digit() || c == '.' {
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '.') {
                i += 1;
            }
        } else if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':') {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let mut next = i;
            while next < chars.len() && chars[next].is_whitespace() {
                next += 1;
            }
            let call = next < chars.len() && chars[next] == '(';
            if GROUPING.contains(&word.as_str()) {
                if call {
                    i = skip_to(next, ')');
                }
            } else if !call && !KEYWORDS.contains(&word.as_str()) {
                names.insert(word);
            }
        } else {
            i += 1;
        }
    }
    names
}

#[test]
fn promql_names_are_parsed_out_of_expressions() {
    let names = promql_metric_names(
        r#"histogram_quantile(0.95, sum by (consumer, le) (rate(wms_a_bucket{x="a}b"}[$__rate_interval]))) / on (job) group_left(service) wms_b > bool 1e3 or max without (le) (wms_c)"#,
    );
    let expected = ["wms_a_bucket", "wms_b", "wms_c"].map(str::to_owned);
    assert_eq!(names, BTreeSet::from(expected));
}

/// For every order: each service wrote lines with the order's trace id; every line of the
/// services after enrich that names the order carries it or a repair's (reconcile starts a
/// trace of its own for each repair); enrich's carry the trace id of a webhook the ingress
/// accepted (a later `ecomm_order_changed` webhook has a trace of its own) or a repair's.
fn assert_one_trace_id_per_order(stack: &Stack, orders: &[(String, String)]) {
    let repair_traces: BTreeSet<String> = stack
        .log("reconcile")
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter_map(|line| line["trace_id"].as_str().map(str::to_owned))
        .collect();
    let lines: BTreeMap<&str, Vec<serde_json::Value>> = std::iter::once("ingress")
        .chain(WORKERS)
        .map(|service| {
            let lines = stack
                .log(service)
                .lines()
                .filter_map(|line| serde_json::from_str(line).ok())
                .collect();
            (service, lines)
        })
        .collect();
    let webhook_traces: BTreeSet<&str> = lines["ingress"]
        .iter()
        .filter(|line| line["message"] == "webhook handled")
        .filter_map(|line| line["trace_id"].as_str())
        .collect();
    for (order_id, trace_id) in orders {
        assert!(
            webhook_traces.contains(trace_id.as_str()),
            "{order_id}: its trace began at the ingress"
        );
        for (service, lines) in &lines {
            let traced = lines
                .iter()
                .filter(|line| line["trace_id"] == trace_id.as_str())
                .count();
            assert!(
                traced > 0,
                "{service} logged nothing with {order_id}'s trace id {trace_id}; {}",
                stack.log_tail(service)
            );
            for line in lines.iter().filter(|line| line["order_id"] == order_id.as_str()) {
                let line_trace = line["trace_id"].as_str().unwrap_or_default();
                let from_webhook = *service == "enrich" && webhook_traces.contains(line_trace);
                assert!(
                    line_trace == trace_id || from_webhook || repair_traces.contains(line_trace),
                    "{service}: a line about {order_id} in no trace of it: {line}"
                );
            }
        }
    }
}
