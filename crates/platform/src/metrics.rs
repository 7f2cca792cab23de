//! What every process exports whatever it does: `wms_build_info`, the process's own CPU,
//! memory and file descriptors (`process_*`), and, for the HTTP services, request counts and
//! latency by route pattern ([`HttpMetrics`], an actix middleware).

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry};
use std::time::Instant;

/// The version every crate of the workspace shares.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The commit the binary was built from: `WMS_GIT_SHA` at build time (the Dockerfile and CI
/// pass it), `unknown` otherwise.
pub const GIT_SHA: &str = match option_env!("WMS_GIT_SHA") {
    Some(sha) => sha,
    None => "unknown",
};

/// A registry for one process of `service`, with `wms_build_info` and the process metrics
/// registered.
pub fn registry(service: &str) -> Result<Registry, prometheus::Error> {
    let registry = Registry::new();
    let build_info = IntGaugeVec::new(
        Opts::new(
            "wms_build_info",
            "Always 1: which service, version and commit this process runs",
        ),
        &["service", "version", "git_sha"],
    )?;
    build_info.with_label_values(&[service, VERSION, GIT_SHA]).set(1);
    registry.register(Box::new(build_info))?;
    // `process_cpu_seconds_total`, `process_resident_memory_bytes`, `process_open_fds`…,
    // read from /proc at each scrape (Linux only; elsewhere the collector exports nothing).
    registry.register(Box::new(prometheus::process_collector::ProcessCollector::for_self()))?;
    Ok(registry)
}

/// `wms_http_requests_total{route,method,status}` and
/// `wms_http_request_duration_seconds{route,method}`. `route` is the matched pattern
/// (`/api/v1/orders/{site_id}/{order_id}`), never the raw path, so ids cannot blow up the
/// number of series; a request no route matched is `unmatched`.
#[derive(Clone)]
pub struct HttpMetrics {
    requests: IntCounterVec,
    duration: HistogramVec,
}

impl HttpMetrics {
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        let requests = IntCounterVec::new(
            Opts::new(
                "wms_http_requests_total",
                "HTTP requests answered, by route pattern, method and status",
            ),
            &["route", "method", "status"],
        )?;
        let duration = HistogramVec::new(
            HistogramOpts::new(
                "wms_http_request_duration_seconds",
                "Time to answer an HTTP request, by route pattern and method",
            )
            .buckets(vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ]),
            &["route", "method"],
        )?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(duration.clone()))?;
        Ok(Self { requests, duration })
    }

    fn observe(&self, route: &str, method: &str, status: actix_web::http::StatusCode, started: Instant) {
        // `as_str` is the code's three digits without formatting a string per request.
        self.requests.with_label_values(&[route, method, status.as_str()]).inc();
        self.duration
            .with_label_values(&[route, method])
            .observe(started.elapsed().as_secs_f64());
    }
}

/// The `method` label: the standard methods by name, anything else as `other`. A client may
/// send any token as a method, and each distinct label value would be a new series (a counter
/// and a histogram's buckets) for as long as the process lives.
fn method_label(method: &actix_web::http::Method) -> &'static str {
    use actix_web::http::Method;
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// The middleware: `App::new().app_data(web::Data::new(metrics)).wrap(from_fn(measure))`.
/// Without `web::Data<HttpMetrics>` in the app it only passes requests on.
pub async fn measure(
    request: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let started = Instant::now();
    let metrics = request.app_data::<actix_web::web::Data<HttpMetrics>>().cloned();
    // Matched against the routes before routing (a cloned request would stop the router): a
    // string comparison for static routes such as the ingress's per-site webhook paths.
    let route = request.match_pattern().unwrap_or_else(|| "unmatched".to_owned());
    let method = method_label(request.method());
    let result = next.call(request).await;
    if let Some(metrics) = metrics {
        let status = match &result {
            Ok(response) => response.status(),
            Err(error) => error.as_response_error().status_code(),
        };
        metrics.observe(&route, method, status, started);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::test as actix_test;
    use actix_web::{App, HttpResponse, web};

    #[test]
    fn invented_methods_share_one_label() {
        use actix_web::http::Method;
        assert_eq!(method_label(&Method::POST), "POST");
        assert_eq!(method_label(&Method::from_bytes(b"BREW").unwrap()), "other");
        assert_eq!(method_label(&Method::from_bytes(b"XYZZY").unwrap()), "other");
        assert_eq!(method_label(&Method::CONNECT), "other");
    }

    fn names(registry: &Registry) -> Vec<String> {
        registry.gather().iter().map(|f| f.name().to_owned()).collect()
    }

    #[test]
    fn every_process_exports_build_info_and_process_metrics() {
        let registry = registry("enrich").unwrap_or_default();
        let families = registry.gather();
        let info = families
            .iter()
            .find(|f| f.name() == "wms_build_info")
            .map(|f| f.get_metric()[0].clone());
        let labels: Vec<(String, String)> = info
            .iter()
            .flat_map(|m| m.get_label())
            .map(|l| (l.name().to_owned(), l.value().to_owned()))
            .collect();
        assert!(labels.contains(&("service".into(), "enrich".into())), "{labels:?}");
        assert!(labels.contains(&("version".into(), VERSION.into())), "{labels:?}");
        let names = names(&registry);
        assert!(names.iter().any(|n| n == "process_cpu_seconds_total"), "{names:?}");
        assert!(names.iter().any(|n| n == "process_resident_memory_bytes"), "{names:?}");
    }

    #[actix_web::test]
    async fn requests_are_counted_by_route_pattern_not_path() {
        let registry = Registry::new();
        let metrics = HttpMetrics::register(&registry).unwrap_or_else(|e| panic!("{e}"));
        let app = actix_test::init_service(
            App::new()
                .app_data(web::Data::new(metrics))
                .wrap(actix_web::middleware::from_fn(measure))
                .route("/orders/{id}", web::get().to(|| async { HttpResponse::Ok().finish() })),
        )
        .await;
        for path in ["/orders/1", "/orders/2", "/nowhere"] {
            actix_test::call_service(&app, actix_test::TestRequest::get().uri(path).to_request()).await;
        }
        let mut buffer = Vec::new();
        prometheus::Encoder::encode(&prometheus::TextEncoder::new(), &registry.gather(), &mut buffer)
            .unwrap_or_default();
        let text = String::from_utf8_lossy(&buffer);
        assert!(
            text.contains(r#"wms_http_requests_total{method="GET",route="/orders/{id}",status="200"} 2"#),
            "{text}"
        );
        assert!(
            text.contains(r#"wms_http_requests_total{method="GET",route="unmatched",status="404"} 1"#),
            "{text}"
        );
        assert!(!text.contains("/orders/1"), "{text}");
    }
}
