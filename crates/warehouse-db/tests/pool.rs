//! The pool against the local PostgreSQL as users run it: TLS (`require`, `verify-full` with the
//! server's CA, a wrong CA and a wrong host name refused), the statement timeout, and a server
//! that accepts TCP but never answers.
//!
//! Needs TLS on in the server (`ssl = on`); `.ci/run` turns it on when it is off.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "test helpers fail loudly")]

use secrecy::SecretString;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use warehouse_db::{ConnectOptions, DbError, SslMode};

fn server_url() -> String {
    std::env::var("WMS_TEST_DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

/// The host name the server's certificate is issued to (`localhost` for the snakeoil and
/// `.ci/run` certificates).
fn tls_host() -> String {
    std::env::var("WMS_TEST_DATABASE_TLS_HOST").unwrap_or_else(|_| "localhost".into())
}

fn options(url: String) -> ConnectOptions {
    ConnectOptions::new(SecretString::from(url), 2)
}

/// The server's certificate file, which is its own CA (self-signed); fails loudly without TLS.
async fn server_ca() -> PathBuf {
    let pool = warehouse_db::connect(&options(format!("{}/postgres", server_url())))
        .await
        .unwrap();
    let client = pool.get().await.unwrap();
    let ssl: String = client.query_one("SHOW ssl", &[]).await.unwrap().get(0);
    assert_eq!(
        ssl, "on",
        "these tests need TLS in the local PostgreSQL: `.ci/run` enables it (ALTER SYSTEM SET ssl = on, \
         with a certificate for localhost, then SELECT pg_reload_conf())"
    );
    let file: String = client.query_one("SHOW ssl_cert_file", &[]).await.unwrap().get(0);
    let path = PathBuf::from(&file);
    if path.is_absolute() {
        path
    } else {
        let dir: String = client.query_one("SHOW data_directory", &[]).await.unwrap().get(0);
        PathBuf::from(dir).join(file)
    }
}

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// Whether this connection is encrypted, as the server sees it.
async fn encrypted(pool: &warehouse_db::Pool) -> bool {
    let client = pool.get().await.unwrap();
    client
        .query_one("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0)
}

fn with_host(host: &str) -> String {
    server_url().replace("127.0.0.1", host) + "/postgres"
}

#[tokio::test]
async fn require_encrypts() {
    server_ca().await;
    let plain = warehouse_db::connect(&options(format!("{}/postgres", server_url())))
        .await
        .unwrap();
    assert!(!encrypted(&plain).await, "disable: plain TCP");
    let tls = warehouse_db::connect(&ConnectOptions {
        ssl_mode: SslMode::Require,
        ..options(format!("{}/postgres", server_url()))
    })
    .await
    .unwrap();
    assert!(encrypted(&tls).await, "require: TLS");
}

#[tokio::test]
async fn verify_full_accepts_the_servers_ca_and_host() {
    let ca = server_ca().await;
    let pool = warehouse_db::connect(&ConnectOptions {
        ssl_mode: SslMode::VerifyFull,
        ssl_root_cert: Some(ca),
        ..options(with_host(&tls_host()))
    })
    .await
    .unwrap();
    assert!(encrypted(&pool).await);
}

#[tokio::test]
async fn verify_full_refuses_another_ca() {
    server_ca().await;
    let error = warehouse_db::connect(&ConnectOptions {
        ssl_mode: SslMode::VerifyFull,
        ssl_root_cert: Some(fixture("other-ca.pem")),
        ..options(with_host(&tls_host()))
    })
    .await
    .unwrap_err();
    let text = format!("{error:?}");
    assert!(text.contains("UnknownIssuer") || text.contains("certificate"), "{text}");
}

#[tokio::test]
async fn verify_full_checks_the_host_name() {
    // Right CA, but the certificate does not name 127.0.0.1.
    let ca = server_ca().await;
    let error = warehouse_db::connect(&ConnectOptions {
        ssl_mode: SslMode::VerifyFull,
        ssl_root_cert: Some(ca),
        ..options(format!("{}/postgres", server_url()))
    })
    .await
    .unwrap_err();
    let text = format!("{error:?}");
    assert!(text.contains("NotValidForName"), "{text}");
}

#[tokio::test]
async fn a_ca_file_that_is_not_pem_is_named() {
    let error = warehouse_db::connect(&ConnectOptions {
        ssl_mode: SslMode::VerifyFull,
        ssl_root_cert: Some(PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml")),
        ..options(with_host(&tls_host()))
    })
    .await
    .unwrap_err();
    assert!(
        matches!(
            error,
            DbError::Config {
                key: "database.ssl_root_cert",
                ..
            }
        ),
        "{error}"
    );
}

#[tokio::test]
async fn sslmode_in_the_url_is_refused_with_the_keys_to_use() {
    let error = warehouse_db::connect(&options(format!("{}/postgres?sslmode=verify-full", server_url())))
        .await
        .unwrap_err();
    assert!(error.to_string().contains("database.ssl_mode"), "{error}");
}

#[tokio::test]
async fn the_statement_timeout_cancels_a_long_query() {
    let pool = warehouse_db::connect(&ConnectOptions {
        statement_timeout: Duration::from_millis(200),
        ..options(format!("{}/postgres", server_url()))
    })
    .await
    .unwrap();
    let client = pool.get().await.unwrap();
    let started = Instant::now();
    let error = client.query_one("SELECT pg_sleep(10)", &[]).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(
        error.code(),
        Some(&tokio_postgres::error::SqlState::QUERY_CANCELED),
        "{error:?}"
    );
    let error = DbError::from(error);
    assert!(error.is_transient(), "a slow database is worth a retry");
    // The default limit is on every connection.
    let pool = warehouse_db::connect(&options(format!("{}/postgres", server_url())))
        .await
        .unwrap();
    let timeout: String = pool
        .get()
        .await
        .unwrap()
        .query_one("SHOW statement_timeout", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(timeout, "30s");
}

#[tokio::test]
async fn a_server_that_never_answers_fails_the_connect_in_time() {
    // Accepts TCP and then says nothing, like a peer behind a dead link.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let started = Instant::now();
    let result = warehouse_db::connect(&ConnectOptions {
        connect_timeout: Duration::from_millis(300),
        ..options(format!("postgres://postgres@127.0.0.1:{port}/postgres"))
    })
    .await;
    assert!(result.is_err());
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
}
