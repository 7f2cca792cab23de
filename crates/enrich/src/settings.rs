//! `enrich`'s settings: the shared sections, `[webflow]` and `[enrich]`.

use platform::settings::{Profile, SettingsError, Validate};
use serde::Deserialize;
use webflow::WebflowSettings;

service_base::service_settings! {
    pub struct Settings {
        pub webflow: WebflowSettings,
        pub enrich: EnrichSettings,
    }
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

    /// Production: the stores' sealed tokens need `secrets.key_file`.
    fn check_profile(&self, profile: Profile) -> Result<(), SettingsError> {
        self.base.secrets.check_profile(profile)
    }
}
