//! The ingress's settings: shared sections plus `[ingress]`.

use platform::settings::{
    AmqpSettings, DatabaseSettings, HealthSettings, Profile, SettingsError, Validate, parse_bind,
};
use platform::telemetry::TelemetrySettings;
use secrets_at_rest::SecretsSettings;
use serde::Deserialize;
use webflow::WebflowSettings;

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct Settings {
    pub amqp: AmqpSettings,
    /// The stores (issue 24): read only, never migrated by the ingress (`migrate_on_start` is
    /// not read; a read-only role with SELECT on merchants, stores and store_webhooks suffices).
    pub database: DatabaseSettings,
    /// The key that opens the stores' sealed webhook secrets.
    pub secrets: SecretsSettings,
    pub webflow: WebflowSettings,
    pub ingress: IngressSettings,
    pub health: HealthSettings,
    pub telemetry: TelemetrySettings,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(default)]
pub struct IngressSettings {
    /// Where `POST /webhooks/webflow/{site_id}` listens.
    pub bind: String,
    /// Larger bodies are refused with 413 before they are read in full. This is all a request
    /// can make the ingress buffer before its signature is checked.
    pub max_body_bytes: usize,
    /// The whole body must arrive within this many milliseconds after the headers; a slower
    /// sender gets 408 and its connection is closed.
    pub body_timeout_ms: u64,
    /// The request line and headers must arrive within this.
    pub header_timeout_ms: u64,
    /// A webhook whose timestamp is further than this from now (either way) is refused.
    pub replay_window_secs: u64,
    /// How long to wait for RabbitMQ's confirm before answering 503.
    pub publish_timeout_ms: u64,
    /// HTTP worker threads; 0 means one per core.
    pub workers: usize,
}

impl Default for IngressSettings {
    fn default() -> Self {
        Self {
            bind: "0.0.0.0:8080".into(),
            max_body_bytes: 256 * 1024,
            body_timeout_ms: 10_000,
            header_timeout_ms: 5_000,
            replay_window_secs: 300,
            publish_timeout_ms: 5_000,
            workers: 0,
        }
    }
}

impl platform::service::ServiceSettings for Settings {
    fn telemetry(&self) -> &TelemetrySettings {
        &self.telemetry
    }

    /// The broker's and the database's rules (the ingress reads the stores).
    fn check_shared_profile(&self, profile: Profile) -> Result<Vec<String>, SettingsError> {
        self.amqp.check_profile(profile)?;
        self.database.check_profile(profile)?;
        let mut opt_outs = self.amqp.opt_outs(profile);
        opt_outs.extend(self.database.opt_outs(profile));
        Ok(opt_outs)
    }
}

impl Validate for Settings {
    /// Production: the stores' webhook secrets are sealed with `secrets.key_file`'s key.
    fn check_profile(&self, profile: Profile) -> Result<(), SettingsError> {
        self.secrets.check_profile(profile)
    }

    fn validate(&mut self) -> Result<(), SettingsError> {
        self.amqp.validate()?;
        self.database.validate()?;
        self.webflow.validate()?;
        self.webflow.require_webhook_secrets()?;
        parse_bind("ingress.bind", &self.ingress.bind)?;
        self.health.socket_addr()?;
        if self.ingress.max_body_bytes == 0 {
            return Err(SettingsError::invalid("ingress.max_body_bytes", "must be above 0"));
        }
        if self.ingress.body_timeout_ms == 0 {
            return Err(SettingsError::invalid("ingress.body_timeout_ms", "must be above 0"));
        }
        if self.ingress.header_timeout_ms == 0 {
            return Err(SettingsError::invalid("ingress.header_timeout_ms", "must be above 0"));
        }
        if self.ingress.replay_window_secs == 0 {
            return Err(SettingsError::invalid("ingress.replay_window_secs", "must be above 0"));
        }
        if self.ingress.publish_timeout_ms == 0 {
            return Err(SettingsError::invalid("ingress.publish_timeout_ms", "must be above 0"));
        }
        Ok(())
    }
}
