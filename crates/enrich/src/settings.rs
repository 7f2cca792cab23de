//! `enrich`'s settings: the shared sections, `[webflow]` and `[enrich]`.

use platform::settings::{SettingsError, Validate};
use platform::telemetry::TelemetrySettings;
use serde::Deserialize;
use service_base::BaseSettings;
use webflow::WebflowSettings;

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct Settings {
    #[serde(flatten)]
    pub base: BaseSettings,
    pub webflow: WebflowSettings,
    pub enrich: EnrichSettings,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct EnrichSettings {
    /// Always GET the order from Webflow, even when the webhook carried all of it.
    pub always_fetch: bool,
}

impl Validate for Settings {
    fn validate(&mut self) -> Result<(), SettingsError> {
        self.base.validate()?;
        self.webflow.validate()?;
        self.webflow.require_api_tokens()
    }
}

impl platform::service::ServiceSettings for Settings {
    fn telemetry(&self) -> &TelemetrySettings {
        &self.base.telemetry
    }
}
