//! libpq's `sslmode` and `sslrootcert` in `database.url` work exactly as `database.ssl_mode`
//! and `database.ssl_root_cert`, against the local PostgreSQL with TLS on (a self-signed
//! certificate for `localhost`; `.ci/run` turns TLS on when it is off).

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

use platform::settings::{DatabaseSslMode, SettingsError, load_from};
use secrecy::{ExposeSecret, SecretString};
use service_base::{BaseSettings, connect_options};
use std::path::PathBuf;

fn server_url() -> String {
    std::env::var("WMS_TEST_DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

fn tls_host() -> String {
    std::env::var("WMS_TEST_DATABASE_TLS_HOST").unwrap_or_else(|_| "localhost".into())
}

/// The server's certificate file (self-signed: its own CA).
async fn server_ca() -> PathBuf {
    let pool = warehouse_db::connect(&warehouse_db::ConnectOptions::new(
        SecretString::from(format!("{}/postgres", server_url())),
        1,
    ))
    .await
    .unwrap();
    let client = pool.get().await.unwrap();
    let ssl: String = client.query_one("SHOW ssl", &[]).await.unwrap().get(0);
    assert_eq!(ssl, "on", "these tests need TLS on in the local PostgreSQL (.ci/run)");
    let file: String = client.query_one("SHOW ssl_cert_file", &[]).await.unwrap().get(0);
    let path = PathBuf::from(&file);
    if path.is_absolute() {
        path
    } else {
        let dir: String = client.query_one("SHOW data_directory", &[]).await.unwrap().get(0);
        PathBuf::from(dir).join(file)
    }
}

fn settings(env: &[(&str, &str)]) -> Result<BaseSettings, SettingsError> {
    let mut env: Vec<(String, String)> = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    env.push(("WMS__PROFILE".into(), "local".into()));
    load_from(None, env)
}

async fn encrypted(settings: &BaseSettings) -> Result<bool, warehouse_db::DbError> {
    let pool = warehouse_db::connect(&connect_options(&settings.database, 1)).await?;
    let client = pool.get().await.unwrap();
    Ok(client
        .query_one("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()", &[])
        .await
        .unwrap()
        .get(0))
}

#[tokio::test]
async fn sslmode_verify_full_in_the_url_verifies_the_server() {
    platform::install_crypto_provider();
    let ca = server_ca().await;
    let host_url = server_url().replace("127.0.0.1", &tls_host());
    let url = format!("{host_url}/postgres?sslmode=verify-full&sslrootcert={}", ca.display());
    let from_url = settings(&[("WMS__DATABASE__URL", &url)]).unwrap();
    assert_eq!(from_url.database.ssl_mode(), DatabaseSslMode::VerifyFull);
    assert_eq!(from_url.database.ssl_root_cert.as_deref(), Some(ca.as_path()));
    assert!(
        !from_url.database.url.expose_secret().contains("ssl"),
        "the parameters moved to the settings"
    );
    assert!(encrypted(&from_url).await.unwrap(), "verify-full from the URL: TLS");

    // The same as the keys.
    let from_keys = settings(&[
        ("WMS__DATABASE__URL", &format!("{host_url}/postgres")),
        ("WMS__DATABASE__SSL_MODE", "verify-full"),
        ("WMS__DATABASE__SSL_ROOT_CERT", ca.to_str().unwrap()),
    ])
    .unwrap();
    assert_eq!(
        format!("{:?}", connect_options(&from_keys.database, 1)),
        format!("{:?}", connect_options(&from_url.database, 1))
    );

    // verify-full, not require: the certificate does not name 127.0.0.1.
    let wrong_host = settings(&[(
        "WMS__DATABASE__URL",
        &format!(
            "{}/postgres?sslmode=verify-full&sslrootcert={}",
            server_url(),
            ca.display()
        ),
    )])
    .unwrap();
    let error = encrypted(&wrong_host).await.unwrap_err();
    assert!(format!("{error:?}").contains("NotValidForName"), "{error:?}");
}

#[tokio::test]
async fn sslmode_require_and_disable_in_the_url() {
    platform::install_crypto_provider();
    server_ca().await;
    let require = settings(&[(
        "WMS__DATABASE__URL",
        &format!("{}/postgres?sslmode=require", server_url()),
    )])
    .unwrap();
    assert_eq!(require.database.ssl_mode(), DatabaseSslMode::Require);
    assert!(encrypted(&require).await.unwrap());
    let disable = settings(&[(
        "WMS__DATABASE__URL",
        &format!("{}/postgres?application_name=t&sslmode=disable", server_url()),
    )])
    .unwrap();
    assert_eq!(
        disable.database.url.expose_secret(),
        &format!("{}/postgres?application_name=t", server_url())
    );
    assert!(!encrypted(&disable).await.unwrap());
}

#[test]
fn a_url_and_a_key_that_disagree_are_refused() {
    let error = settings(&[
        ("WMS__DATABASE__URL", "postgres://u@db.example.com/wms?sslmode=require"),
        ("WMS__DATABASE__SSL_MODE", "verify-full"),
    ])
    .unwrap_err();
    assert!(
        matches!(error, SettingsError::Invalid { ref key, .. } if key == "database.url"),
        "{error}"
    );
    assert!(error.to_string().contains("contradicts database.ssl_mode"), "{error}");
    // Agreeing is fine.
    let agreed = settings(&[
        ("WMS__DATABASE__URL", "postgres://u@db.example.com/wms?sslmode=require"),
        ("WMS__DATABASE__SSL_MODE", "require"),
    ])
    .unwrap();
    assert_eq!(agreed.database.ssl_mode(), DatabaseSslMode::Require);
    let error = settings(&[
        (
            "WMS__DATABASE__URL",
            "postgres://u@db.example.com/wms?sslmode=verify-full&sslrootcert=/a.pem",
        ),
        ("WMS__DATABASE__SSL_ROOT_CERT", "/b.pem"),
    ])
    .unwrap_err();
    assert!(error.to_string().contains("sslrootcert=/a.pem"), "{error}");
    // libpq modes with a clear-text fallback or no host check are named.
    for (mode, advice) in [("prefer", "may fall back"), ("verify-ca", "verify-full")] {
        let error = settings(&[(
            "WMS__DATABASE__URL",
            &format!("postgres://u@db.example.com/wms?sslmode={mode}"),
        )])
        .unwrap_err();
        assert!(
            error.to_string().contains("database.url") && error.to_string().contains(advice),
            "{error}"
        );
    }
    // The key/value form libpq also accepts.
    let kv = settings(&[(
        "WMS__DATABASE__URL",
        "host=db.example.com user=u dbname=wms sslmode=require",
    )])
    .unwrap();
    assert_eq!(kv.database.ssl_mode(), DatabaseSslMode::Require);
    assert_eq!(kv.database.url.expose_secret(), "host=db.example.com user=u dbname=wms");
}
