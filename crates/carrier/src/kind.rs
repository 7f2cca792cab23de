//! Which carrier adapter books labels (`carrier.kind`, and `shipments.carrier_kind`).

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum CarrierKind {
    /// The built-in sandbox (default).
    #[default]
    Sandbox,
    /// ShipEngine ("ShipStation API").
    ShipEngine,
}

impl CarrierKind {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Sandbox => "sandbox",
            Self::ShipEngine => "shipengine",
        }
    }
}

impl fmt::Display for CarrierKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A `carrier.kind` that names no adapter.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not sandbox or shipengine")]
pub struct UnknownCarrierKind(pub String);

impl FromStr for CarrierKind {
    type Err = UnknownCarrierKind;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value {
            "sandbox" => Ok(Self::Sandbox),
            "shipengine" => Ok(Self::ShipEngine),
            other => Err(UnknownCarrierKind(other.to_owned())),
        }
    }
}

impl Serialize for CarrierKind {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for CarrierKind {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = String::deserialize(deserializer)?;
        value.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_and_unknown_ones_are_refused() {
        for kind in [CarrierKind::Sandbox, CarrierKind::ShipEngine] {
            assert_eq!(kind.as_str().parse(), Ok(kind));
        }
        assert_eq!(
            "fedex".parse::<CarrierKind>().unwrap_err().to_string(),
            "`fedex` is not sandbox or shipengine"
        );
    }
}
