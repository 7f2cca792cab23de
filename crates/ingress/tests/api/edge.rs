//! The internet-facing edge: a slow sender is cut off, and health and metrics are not public.

use crate::helpers::{Options, SITE_ID, spawn_app, spawn_app_with};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A slow-loris body: 1000 bytes declared, 10 sent every 100 ms. The ingress answers 408 when
/// `ingress.body_timeout_ms` has passed and closes the connection.
#[tokio::test]
async fn a_body_sent_too_slowly_is_cut_and_its_connection_closed() {
    let app = spawn_app_with(Options {
        body_timeout_ms: 500,
        ..Options::default()
    })
    .await;
    let port = app.address.rsplit(':').next().unwrap().to_owned();
    let mut stream = TcpStream::connect(format!("127.0.0.1:{port}")).await.unwrap();
    let head = format!(
        "POST /webhooks/webflow/{SITE_ID} HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n\
         content-length: 1000\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let started = Instant::now();
    let (mut reader, mut writer) = stream.into_split();
    // Keep trickling in the background until the server stops reading.
    let trickle = tokio::spawn(async move {
        for _ in 0..100 {
            if writer.write_all(b"{\"aaaaaaa\"").await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let mut response = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), reader.read_to_end(&mut response)).await;
    trickle.abort();
    let elapsed = started.elapsed();
    assert!(read.is_ok(), "the connection was still open after 5 s");
    let text = String::from_utf8_lossy(&response);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("body_timeout"), "{text}");
    assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");
    let metrics = app.metrics().await;
    assert!(
        crate::helpers::counter(&metrics, "wms_ingress_webhooks_total", &[("reason", "body_timeout")]) == 1,
        "{metrics}"
    );
    app.teardown().await;
}

#[tokio::test]
async fn health_and_metrics_are_served_on_the_health_port_only() {
    let app = spawn_app().await;
    for path in ["/healthz", "/readyz", "/metrics"] {
        let public = app.client.get(format!("{}{path}", app.address)).send().await.unwrap();
        assert_eq!(public.status(), 404, "{path} on the public port");
        let health = app
            .client
            .get(format!("{}{path}", app.health_address))
            .send()
            .await
            .unwrap();
        assert_eq!(health.status(), 200, "{path} on the health port");
    }
    app.teardown().await;
}
