//! `[carrier]` settings: which adapter, the sender address, and each adapter's own section.

use crate::CarrierKind;
use crate::types::Address;
use secrecy::SecretString;
use serde::Deserialize;
use wms_settings::{Profile, SettingsError};

/// `[carrier]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(default)]
pub struct CarrierSettings {
    /// `sandbox` (default; only with `profile = "local"`) or `shipengine`.
    pub kind: CarrierKind,
    /// The warehouse's address, printed as the sender.
    pub ship_from: Address,
    pub sandbox: SandboxSettings,
    pub shipengine: ShipEngineSettings,
}

impl Default for CarrierSettings {
    fn default() -> Self {
        Self {
            kind: CarrierKind::Sandbox,
            ship_from: Address {
                name: "Webflow WMS Warehouse".into(),
                company: None,
                phone: Some("+1 512 555 0100".into()),
                line1: "3800 N Lamar Blvd".into(),
                line2: None,
                city: "Austin".into(),
                state: Some("TX".into()),
                postal_code: "78756".into(),
                country: "US".into(),
            },
            sandbox: SandboxSettings::default(),
            shipengine: ShipEngineSettings::default(),
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(default)]
pub struct SandboxSettings {
    /// Added to every booking.
    pub latency_ms: u64,
    /// Share of bookings that fail transiently (0.0-1.0), for demos and chaos tests.
    pub failure_rate: f64,
}

impl Default for SandboxSettings {
    fn default() -> Self {
        Self {
            latency_ms: 0,
            failure_rate: 0.0,
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(default)]
pub struct ShipEngineSettings {
    pub base_url: String,
    pub api_key: Option<SecretString>,
    pub api_key_file: Option<std::path::PathBuf>,
    /// Carrier accounts to rate (`se-123456`); empty = all connected carriers.
    pub carrier_ids: Vec<String>,
    /// The service level: acceptable service codes; the cheapest rate among them is bought.
    pub service_codes: Vec<String>,
    pub timeout_ms: u64,
}

impl Default for ShipEngineSettings {
    fn default() -> Self {
        Self {
            base_url: "https://api.shipengine.com".into(),
            api_key: None,
            api_key_file: None,
            carrier_ids: Vec::new(),
            service_codes: vec!["usps_ground_advantage".into(), "ups_ground".into()],
            timeout_ms: 15_000,
        }
    }
}

impl CarrierSettings {
    /// The sandbox invents tracking numbers that Webflow would email to customers: only a
    /// local profile may use it (the default profile is production).
    pub fn check_profile(&self, profile: Profile) -> Result<(), SettingsError> {
        if profile == Profile::Production && self.kind == CarrierKind::Sandbox {
            return Err(SettingsError::LocalOnly {
                key: "carrier.kind".into(),
                why: "the sandbox carrier invents tracking numbers; set carrier.kind = \"shipengine\" and \
                      carrier.shipengine.api_key_file"
                    .into(),
            });
        }
        Ok(())
    }

    pub fn validate(&mut self) -> Result<(), SettingsError> {
        match self.kind {
            CarrierKind::Sandbox => {
                if !(0.0..=1.0).contains(&self.sandbox.failure_rate) {
                    return Err(SettingsError::invalid(
                        "carrier.sandbox.failure_rate",
                        "must be between 0 and 1",
                    ));
                }
            }
            CarrierKind::ShipEngine => {
                if let Some(path) = &self.shipengine.api_key_file {
                    let key = std::fs::read_to_string(path)
                        .map_err(|e| SettingsError::invalid("carrier.shipengine.api_key_file", e.to_string()))?;
                    self.shipengine.api_key = Some(SecretString::from(key.trim().to_owned()));
                }
                if self.shipengine.api_key.is_none() {
                    return Err(SettingsError::invalid(
                        "carrier.shipengine.api_key",
                        "required when carrier.kind = shipengine",
                    ));
                }
                if self.shipengine.service_codes.is_empty() {
                    return Err(SettingsError::invalid(
                        "carrier.shipengine.service_codes",
                        "name at least one service code",
                    ));
                }
            }
        }
        Ok(())
    }
}
