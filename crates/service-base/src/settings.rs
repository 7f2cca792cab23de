//! The sections every service reads: `[amqp]`, `[database]`, `[health]`, `[telemetry]` and
//! `[worker]` (how a service consumes and relays its outbox).

use platform::retry::RetryPolicy;
use platform::settings::{
    AmqpSettings, DatabaseSettings, DatabaseSslMode, HealthSettings, Profile, SettingsError, Validate,
};
use platform::telemetry::TelemetrySettings;
use serde::Deserialize;
use std::time::Duration;

/// The sections every service reads; a service's own settings flatten this in.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct BaseSettings {
    pub amqp: AmqpSettings,
    pub database: DatabaseSettings,
    pub health: HealthSettings,
    pub telemetry: TelemetrySettings,
    pub worker: WorkerSettings,
    /// `[secrets]`: the key file that seals the secrets kept in PostgreSQL.
    pub secrets: secrets_at_rest::SecretsSettings,
}

impl BaseSettings {
    pub fn validate(&mut self) -> Result<(), SettingsError> {
        self.amqp.validate()?;
        self.database.validate()?;
        self.health.socket_addr()?;
        self.worker.validate()
    }
}

impl BaseSettings {
    /// The shared sections' production rules (database TLS, broker user and TLS); on success,
    /// the opt-outs in use, for the start-up log. `platform::service` runs this for every
    /// service, whatever the service's own `check_profile` does.
    pub fn check_shared_profile(&self, profile: Profile) -> Result<Vec<String>, SettingsError> {
        self.amqp.check_profile(profile)?;
        self.database.check_profile(profile)?;
        let mut opt_outs = self.amqp.opt_outs(profile);
        opt_outs.extend(self.database.opt_outs(profile));
        Ok(opt_outs)
    }
}

impl platform::service::ServiceSettings for BaseSettings {
    fn telemetry(&self) -> &TelemetrySettings {
        &self.telemetry
    }

    fn check_shared_profile(&self, profile: Profile) -> Result<Vec<String>, SettingsError> {
        BaseSettings::check_shared_profile(self, profile)
    }
}

impl Validate for BaseSettings {
    fn validate(&mut self) -> Result<(), SettingsError> {
        BaseSettings::validate(self)
    }
}

/// `[worker]`: how a worker consumes, and how every service relays its outbox.
///
/// Defined here rather than in the `worker` crate (which re-exports it): the section also holds
/// the outbox relay's keys (`relay_*`), which every process reads, and since one configuration
/// file serves every binary, the HTTP services and jobs must know, and check, the consumer
/// keys too (an unknown or invalid `worker.*` key stops them as it stops a worker). They must
/// not depend on the consumer runtime to do so.
#[derive(Clone, Debug, Deserialize)]
#[serde(default)]
pub struct WorkerSettings {
    /// Deliveries handled at once.
    pub concurrency: u16,
    /// Deliveries of a consumer that calls Webflow which may wait for their rate-budget slot
    /// without holding one of the `concurrency` slots (issue 12). Added to that consumer's AMQP
    /// prefetch, so a busy store's waits never stop the worker reading other stores' messages.
    pub max_waiting: u16,
    /// Attempts before a transiently failing message is dead-lettered.
    pub max_attempts: u32,
    /// How long a message may keep being deferred (waiting for a Webflow budget, a busy
    /// order) before it goes to its `.dead` queue with reason `deferred_too_long`.
    pub max_deferral_secs: u64,
    /// Delays between attempts; each delay is rounded up to a retry-queue tier.
    pub retry: RetryPolicy,
    /// How often the outbox relay looks for events a crash left unpublished.
    pub relay_interval_ms: u64,
    /// Only events older than this are the relay's (fresher ones belong to their handler).
    pub relay_min_age_ms: i64,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        Self {
            concurrency: 16,
            max_waiting: 32,
            max_attempts: 8,
            max_deferral_secs: 86_400,
            retry: RetryPolicy {
                initial_ms: 1_000,
                multiplier: 3.0,
                max_ms: 600_000,
                randomization: 0.2,
            },
            relay_interval_ms: 1_000,
            relay_min_age_ms: 5_000,
        }
    }
}

impl WorkerSettings {
    pub fn validate(&self) -> Result<(), SettingsError> {
        if self.concurrency == 0 {
            return Err(SettingsError::invalid("worker.concurrency", "must be at least 1"));
        }
        if self.max_deferral_secs == 0 {
            return Err(SettingsError::invalid("worker.max_deferral_secs", "must be above 0"));
        }
        if self.max_attempts == 0 {
            return Err(SettingsError::invalid("worker.max_attempts", "must be at least 1"));
        }
        if self.relay_interval_ms == 0 {
            return Err(SettingsError::invalid("worker.relay_interval_ms", "must be above 0"));
        }
        Ok(())
    }
}

/// The options of a pool of `pool_size` connections, from `[database]`.
pub fn connect_options(database: &DatabaseSettings, pool_size: usize) -> warehouse_db::ConnectOptions {
    warehouse_db::ConnectOptions {
        ssl_mode: match database.ssl_mode() {
            DatabaseSslMode::Disable => warehouse_db::SslMode::Disable,
            DatabaseSslMode::Require => warehouse_db::SslMode::Require,
            DatabaseSslMode::VerifyFull => warehouse_db::SslMode::VerifyFull,
        },
        ssl_root_cert: database.ssl_root_cert.clone(),
        connect_timeout: Duration::from_millis(database.connect_timeout_ms),
        statement_timeout: Duration::from_millis(database.statement_timeout_ms),
        keepalives_idle: Duration::from_secs(database.keepalives_idle_secs),
        keepalives_interval: Duration::from_secs(database.keepalives_interval_secs),
        keepalives_retries: database.keepalives_retries,
        tcp_user_timeout: Duration::from_millis(database.tcp_user_timeout_ms),
        ..warehouse_db::ConnectOptions::new(database.url.clone(), pool_size)
    }
}

/// Declares a service's `Settings`: the shared sections (`base`, flattened so that `[amqp]`,
/// `[database]`… stay top-level keys) followed by the service's own sections, and implements
/// what `platform::service::launch` needs of it. Each service still writes its own
/// `Validate`, since what it requires differs.
///
/// ```text
/// service_base::service_settings! {
///     /// `enrich`'s settings.
///     pub struct Settings {
///         pub webflow: WebflowSettings,
///         pub enrich: EnrichSettings,
///     }
/// }
/// ```
#[macro_export]
macro_rules! service_settings {
    (
        $(#[$meta:meta])*
        pub struct $name:ident {
            $( $(#[$field_meta:meta])* pub $field:ident : $ty:ty ),* $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Debug, Default, $crate::reexports::serde::Deserialize)]
        #[serde(crate = "service_base::reexports::serde", default)]
        pub struct $name {
            #[serde(flatten)]
            pub base: $crate::BaseSettings,
            $( $(#[$field_meta])* pub $field: $ty, )*
        }

        impl $crate::reexports::platform::service::ServiceSettings for $name {
            fn telemetry(&self) -> &$crate::reexports::platform::telemetry::TelemetrySettings {
                &self.base.telemetry
            }

            fn check_shared_profile(
                &self,
                profile: $crate::reexports::platform::settings::Profile,
            ) -> Result<Vec<String>, $crate::reexports::platform::settings::SettingsError> {
                self.base.check_shared_profile(profile)
            }
        }
    };
}
