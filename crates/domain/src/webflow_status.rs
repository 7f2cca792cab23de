//! An order's status in Webflow, as the warehouse records it (`orders.webflow_status`).

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// Webflow's order status. Note the hyphen in `dispute-lost`. A value this version does not
/// know is kept verbatim (`Other`), as Webflow's SDKs accept values they do not know yet.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum WebflowOrderStatus {
    Pending,
    Unfulfilled,
    Fulfilled,
    Disputed,
    DisputeLost,
    Refunded,
    /// A value this version does not know; kept verbatim.
    Other(String),
}

const KNOWN: [WebflowOrderStatus; 6] = [
    WebflowOrderStatus::Pending,
    WebflowOrderStatus::Unfulfilled,
    WebflowOrderStatus::Fulfilled,
    WebflowOrderStatus::Disputed,
    WebflowOrderStatus::DisputeLost,
    WebflowOrderStatus::Refunded,
];

impl WebflowOrderStatus {
    pub fn as_str(&self) -> &str {
        match self {
            Self::Pending => "pending",
            Self::Unfulfilled => "unfulfilled",
            Self::Fulfilled => "fulfilled",
            Self::Disputed => "disputed",
            Self::DisputeLost => "dispute-lost",
            Self::Refunded => "refunded",
            Self::Other(other) => other,
        }
    }

    /// The status Webflow spells `value` (any string: unknown ones are kept as `Other`).
    pub fn from_wire(value: &str) -> Self {
        KNOWN
            .into_iter()
            .find(|status| status.as_str() == value)
            .unwrap_or_else(|| Self::Other(value.to_owned()))
    }

    /// Where the status sits along an order's life: pending, unfulfilled, disputed, fulfilled,
    /// then refunded or dispute-lost. An unknown status ranks with `pending`.
    pub fn progress(&self) -> u8 {
        match self {
            Self::Pending | Self::Other(_) => 0,
            Self::Unfulfilled => 1,
            Self::Disputed => 2,
            Self::Fulfilled => 3,
            Self::Refunded | Self::DisputeLost => 4,
        }
    }
}

impl fmt::Display for WebflowOrderStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for WebflowOrderStatus {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for WebflowOrderStatus {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = String::deserialize(deserializer)?;
        Ok(Self::from_wire(&value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_names_round_trip_and_unknown_ones_are_kept() {
        for status in KNOWN {
            assert_eq!(WebflowOrderStatus::from_wire(status.as_str()), status);
            let json = serde_json::to_string(&status).unwrap();
            assert_eq!(json, format!("\"{}\"", status.as_str()));
        }
        let other: WebflowOrderStatus = serde_json::from_str("\"on-hold\"").unwrap();
        assert_eq!(other, WebflowOrderStatus::Other("on-hold".into()));
        assert_eq!(other.as_str(), "on-hold");
        assert_eq!(WebflowOrderStatus::DisputeLost.as_str(), "dispute-lost");
    }
}
