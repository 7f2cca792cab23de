//! A postal address in Webflow's shape, as the warehouse stores and ships to it.

use serde::{Deserialize, Serialize};

/// A shipping address. The JSON layout is Webflow's (`addressee`, `line1`, `postalCode`,
/// `type`…), so the address Webflow sent, the one an operator corrected and the one stored in
/// `orders.shipping_address` are the same value. Fields are in alphabetical order of their JSON
/// names: serialised, an address reads as it did when it was kept as untyped JSON. Every field
/// is optional and tolerant of `null`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Address {
    pub addressee: Option<String>,
    pub city: Option<String>,
    /// 2-letter ISO code in practice (`US`).
    pub country: Option<String>,
    /// `kana` or `kanji` for Japanese addresses.
    pub japan_type: Option<String>,
    pub line1: Option<String>,
    pub line2: Option<String>,
    pub postal_code: Option<String>,
    pub state: Option<String>,
    /// `shipping` or `billing`.
    #[serde(rename = "type")]
    pub address_type: Option<String>,
}

impl Address {
    /// Enough to put on a parcel: a recipient, a street line, a city and a country.
    pub fn is_complete(&self) -> bool {
        [&self.addressee, &self.line1, &self.city, &self.country]
            .iter()
            .all(|field| field.as_deref().is_some_and(|v| !v.trim().is_empty()))
    }

    /// The JSON names of the fields, in the order they serialise.
    pub const FIELD_NAMES: [&'static str; 9] = [
        "addressee",
        "city",
        "country",
        "japanType",
        "line1",
        "line2",
        "postalCode",
        "state",
        "type",
    ];

    fn fields(&self) -> [&Option<String>; 9] {
        [
            &self.addressee,
            &self.city,
            &self.country,
            &self.japan_type,
            &self.line1,
            &self.line2,
            &self.postal_code,
            &self.state,
            &self.address_type,
        ]
    }

    /// The JSON names of the fields that differ between `self` and `other` (never their values:
    /// addresses are customer data).
    pub fn changed_fields(&self, other: &Address) -> Vec<&'static str> {
        Self::FIELD_NAMES
            .into_iter()
            .zip(self.fields().into_iter().zip(other.fields()))
            .filter(|(_, (a, b))| a != b)
            .map(|(name, _)| name)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_writes_webflows_layout() {
        let json = serde_json::json!({
            "type": "shipping", "japanType": null, "addressee": "Ada", "line1": "1 Main St",
            "line2": null, "city": "Austin", "state": "TX", "country": "US", "postalCode": "78701",
        });
        let address: Address = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(address.postal_code.as_deref(), Some("78701"));
        assert_eq!(address.address_type.as_deref(), Some("shipping"));
        assert!(address.is_complete());
        assert_eq!(serde_json::to_value(&address).unwrap(), json);
        // Alphabetical, as the untyped JSON (a sorted map) was written.
        let text = serde_json::to_string(&address).unwrap();
        assert!(text.starts_with(r#"{"addressee":"Ada","city":"Austin","country":"US","japanType":null"#));
    }

    #[test]
    fn missing_fields_read_as_none() {
        let address: Address = serde_json::from_value(serde_json::json!({"line1": "x"})).unwrap();
        assert_eq!(address.line1.as_deref(), Some("x"));
        assert!(!address.is_complete());
        let other = Address {
            line1: Some("y".into()),
            city: Some("z".into()),
            ..Address::default()
        };
        assert_eq!(address.changed_fields(&other), ["city", "line1"]);
        assert!(address.changed_fields(&address).is_empty());
        let all = Address {
            address_type: Some("shipping".into()),
            japan_type: Some("kana".into()),
            ..Address::default()
        };
        let json = serde_json::to_value(&all).unwrap();
        let keys: Vec<&str> = json.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys, Address::FIELD_NAMES);
        assert_eq!(Address::default().changed_fields(&all), ["japanType", "type"]);
    }
}
