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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn production_refuses_to_start_without_the_secrets_key_file() {
        let mut settings = Settings::default();
        let error = settings.check_profile(Profile::Production).unwrap_err();
        assert!(
            matches!(error, SettingsError::Insecure { ref key, .. } if key == "secrets.key_file"),
            "{error}"
        );
        settings.check_profile(Profile::Local).unwrap();
        settings.base.secrets.key_file = Some("/run/secrets/wms-keys".into());
        settings.check_profile(Profile::Production).unwrap();
    }
}
