//! The connection pool: TLS (rustls, with certificate and hostname verification), timeouts and
//! TCP keepalives, so that a managed PostgreSQL that requires TLS works, customer data never
//! crosses the network in clear text unless asked to, and no query or dead peer can hang a
//! handler forever.

use crate::error::{DbError, Result};
use deadpool_postgres::{Manager, ManagerConfig, RecyclingMethod};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use secrecy::{ExposeSecret, SecretString};
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;
use tokio_postgres::error::SqlState;
use tokio_postgres::{NoTls, config::SslMode as WireSslMode};

pub use deadpool_postgres::{Object, Pool, PoolError};

/// How the connection is protected (the libpq modes of the same names).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SslMode {
    /// Plain TCP: a database on the same host or a trusted private network only.
    #[default]
    Disable,
    /// TLS, without checking the server's certificate (protects against eavesdropping, not
    /// against an impostor).
    Require,
    /// TLS; the certificate must chain to the CA (`ssl_root_cert`, else the system's roots) and
    /// name the host of the URL.
    VerifyFull,
}

/// Everything [`connect`] needs; built from `[database]` by the services.
#[derive(Clone, Debug)]
pub struct ConnectOptions {
    pub url: SecretString,
    pub pool_size: usize,
    pub ssl_mode: SslMode,
    /// PEM file with the CA certificate(s) for `verify-full`.
    pub ssl_root_cert: Option<PathBuf>,
    /// Establishing one connection (TCP, TLS and authentication).
    pub connect_timeout: Duration,
    /// The server cancels a statement that runs longer (`statement_timeout`); zero: no limit.
    pub statement_timeout: Duration,
    /// Idle time before the first TCP keepalive probe.
    pub keepalives_idle: Duration,
    pub keepalives_interval: Duration,
    pub keepalives_retries: u32,
    /// Data sent but unacknowledged for this long closes the connection (`TCP_USER_TIMEOUT`):
    /// a peer that vanished mid-query is noticed even while the connection is busy.
    pub tcp_user_timeout: Duration,
    /// How long a handler waits for a free connection.
    pub wait_timeout: Duration,
}

impl ConnectOptions {
    /// The defaults of `[database]` for `url`.
    pub fn new(url: SecretString, pool_size: usize) -> Self {
        Self {
            url,
            pool_size,
            ssl_mode: SslMode::Disable,
            ssl_root_cert: None,
            connect_timeout: Duration::from_secs(5),
            statement_timeout: Duration::from_secs(30),
            keepalives_idle: Duration::from_secs(30),
            keepalives_interval: Duration::from_secs(10),
            keepalives_retries: 3,
            tcp_user_timeout: Duration::from_secs(30),
            wait_timeout: Duration::from_secs(10),
        }
    }

    /// The driver's configuration: the URL plus our timeouts, keepalives and TLS mode.
    fn driver_config(&self) -> Result<tokio_postgres::Config> {
        let url = self.url.expose_secret();
        // Our TLS settings decide. `[database]` moves libpq's `sslmode` and `sslrootcert` out
        // of the URL into them (`platform::settings::DatabaseSettings::validate`); client
        // certificates are not supported.
        if let Some(param) = ["sslmode", "sslrootcert", "sslcert", "sslkey"]
            .into_iter()
            .find(|p| url.contains(&format!("{p}=")))
        {
            return Err(DbError::Config {
                key: "database.url",
                message: if param.starts_with("sslmode") || param == "sslrootcert" {
                    format!(
                        "`{param}` in the URL reached the pool: build the options from [database] \
                         (database.ssl_mode, database.ssl_root_cert)"
                    )
                } else {
                    format!("`{param}`: client certificates are not supported")
                },
            });
        }
        let mut config = tokio_postgres::Config::from_str(url).map_err(|e| DbError::InvalidUrl(e.to_string()))?;
        config
            .connect_timeout(self.connect_timeout)
            .keepalives(true)
            .keepalives_idle(self.keepalives_idle)
            .keepalives_interval(self.keepalives_interval)
            .keepalives_retries(self.keepalives_retries)
            .tcp_user_timeout(self.tcp_user_timeout)
            .ssl_mode(match self.ssl_mode {
                SslMode::Disable => WireSslMode::Disable,
                SslMode::Require | SslMode::VerifyFull => WireSslMode::Require,
            });
        if !self.statement_timeout.is_zero() {
            // A startup parameter, so it holds for every statement of every pooled connection.
            // (PgBouncer: session pooling passes it on; see docs/configuration.md.)
            let timeout = format!("-c statement_timeout={}", self.statement_timeout.as_millis());
            let options = match config.get_options() {
                Some(existing) if !existing.is_empty() => format!("{existing} {timeout}"),
                _ => timeout,
            };
            config.options(options);
        }
        Ok(config)
    }

    /// The rustls configuration for `require` and `verify-full`.
    fn tls_config(&self) -> Result<Option<rustls::ClientConfig>> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| DbError::Config {
                key: "database.ssl_mode",
                message: e.to_string(),
            })?;
        let config = match self.ssl_mode {
            SslMode::Disable => return Ok(None),
            SslMode::Require => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(EncryptOnly(provider)))
                .with_no_client_auth(),
            SslMode::VerifyFull => builder.with_root_certificates(self.roots()?).with_no_client_auth(),
        };
        Ok(Some(config))
    }

    fn roots(&self) -> Result<RootCertStore> {
        let mut roots = RootCertStore::empty();
        match &self.ssl_root_cert {
            Some(path) => {
                let invalid = |message: String| DbError::Config {
                    key: "database.ssl_root_cert",
                    message: format!("`{}`: {message}", path.display()),
                };
                let certs = CertificateDer::pem_file_iter(path)
                    .map_err(|e| invalid(e.to_string()))?
                    .collect::<std::result::Result<Vec<_>, _>>()
                    .map_err(|e| invalid(e.to_string()))?;
                let (added, _) = roots.add_parsable_certificates(certs);
                if added == 0 {
                    return Err(invalid("holds no usable PEM certificate".into()));
                }
            }
            None => {
                let found = rustls_native_certs::load_native_certs();
                roots.add_parsable_certificates(found.certs);
                if roots.is_empty() {
                    return Err(DbError::Config {
                        key: "database.ssl_root_cert",
                        message: "verify-full needs a CA: no system roots were found; name the CA file".into(),
                    });
                }
            }
        }
        Ok(roots)
    }
}

/// `require`: the handshake is checked (the server proves it holds the key of the certificate
/// it sent) but the certificate itself is not, as with libpq's `sslmode=require`.
#[derive(Debug)]
struct EncryptOnly(Arc<CryptoProvider>);

impl ServerCertVerifier for EncryptOnly {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Builds a pool and checks that the database answers. A database that does not exist is
/// reported as [`DbError::DatabaseMissing`].
pub async fn connect(options: &ConnectOptions) -> Result<Pool> {
    let config = options.driver_config()?;
    let dbname = config.get_dbname().unwrap_or("postgres").to_owned();
    let manager_config = ManagerConfig {
        recycling_method: RecyclingMethod::Fast,
    };
    let manager = match options.tls_config()? {
        None => Manager::from_config(config, NoTls, manager_config),
        Some(tls) => Manager::from_config(
            config,
            tokio_postgres_rustls::MakeRustlsConnect::new(tls),
            manager_config,
        ),
    };
    let pool = Pool::builder(manager)
        .max_size(options.pool_size.max(1))
        .wait_timeout(Some(options.wait_timeout))
        // The driver's connect timeout covers each address; this bounds the whole attempt.
        .create_timeout(Some(options.connect_timeout + Duration::from_secs(1)))
        .recycle_timeout(Some(Duration::from_secs(5)))
        .runtime(deadpool_postgres::Runtime::Tokio1)
        .build()
        .map_err(|e| DbError::InvalidUrl(e.to_string()))?;
    match pool.get().await {
        Ok(_) => Ok(pool),
        Err(deadpool_postgres::PoolError::Backend(error)) if error.code() == Some(&SqlState::INVALID_CATALOG_NAME) => {
            Err(DbError::DatabaseMissing(dbname))
        }
        Err(error) => Err(error.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_connection_gets_the_timeouts_and_keepalives() {
        let options = ConnectOptions {
            keepalives_idle: Duration::from_secs(11),
            keepalives_interval: Duration::from_secs(4),
            keepalives_retries: 2,
            tcp_user_timeout: Duration::from_millis(9_000),
            connect_timeout: Duration::from_millis(1_500),
            statement_timeout: Duration::from_millis(2_500),
            ..ConnectOptions::new(
                SecretString::from("postgres://u@db.example.com/wms?options=-c%20search_path%3Dwms"),
                3,
            )
        };
        let config = options.driver_config().unwrap();
        assert!(config.get_keepalives());
        assert_eq!(config.get_keepalives_idle(), Duration::from_secs(11));
        assert_eq!(config.get_keepalives_interval(), Some(Duration::from_secs(4)));
        assert_eq!(config.get_keepalives_retries(), Some(2));
        assert_eq!(config.get_tcp_user_timeout(), Some(&Duration::from_millis(9_000)));
        assert_eq!(config.get_connect_timeout(), Some(&Duration::from_millis(1_500)));
        // Options already in the URL are kept.
        assert_eq!(
            config.get_options(),
            Some("-c search_path=wms -c statement_timeout=2500")
        );
        assert_eq!(config.get_ssl_mode(), WireSslMode::Disable);
        let tls = ConnectOptions {
            ssl_mode: SslMode::VerifyFull,
            ..options
        };
        assert_eq!(tls.driver_config().unwrap().get_ssl_mode(), WireSslMode::Require);
    }
}
