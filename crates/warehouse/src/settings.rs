//! The warehouse service's settings: the shared sections, `[warehouse]` and `[webflow]`.

use platform::settings::{SettingsError, Validate, parse_bind};
use secrecy::SecretString;
use serde::Deserialize;
use service_base::BaseSettings;
use webflow::WebflowSettings;

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct Settings {
    #[serde(flatten)]
    pub base: BaseSettings,
    pub warehouse: WarehouseSettings,
    pub webflow: WebflowSettings,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(default)]
pub struct WarehouseSettings {
    pub bind: String,
    /// Bearer tokens accepted by the API (several, so one can be rotated); a list, or a
    /// comma-separated string in the environment.
    #[serde(deserialize_with = "platform::settings::string_or_list")]
    pub api_tokens: Vec<SecretString>,
    /// Pick and pack reserved orders automatically (local runs and demos).
    pub auto_pack: bool,
    pub auto_pack_interval_ms: u64,
}

impl Default for WarehouseSettings {
    fn default() -> Self {
        Self {
            bind: "0.0.0.0:8081".into(),
            api_tokens: Vec::new(),
            auto_pack: false,
            auto_pack_interval_ms: 500,
        }
    }
}

impl platform::service::ServiceSettings for Settings {
    fn telemetry(&self) -> &platform::telemetry::TelemetrySettings {
        &self.base.telemetry
    }
}

impl Validate for Settings {
    fn validate(&mut self) -> Result<(), SettingsError> {
        self.base.validate()?;
        self.webflow.validate()?;
        parse_bind("warehouse.bind", &self.warehouse.bind)?;
        if self.warehouse.api_tokens.is_empty() {
            return Err(SettingsError::invalid(
                "warehouse.api_tokens",
                "at least one API token is required",
            ));
        }
        if self.warehouse.auto_pack_interval_ms == 0 {
            return Err(SettingsError::invalid(
                "warehouse.auto_pack_interval_ms",
                "must be above 0",
            ));
        }
        Ok(())
    }
}
