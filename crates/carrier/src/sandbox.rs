//! The built-in carrier: no account, no network. Deterministic per reference, so a retried
//! booking returns the same label; latency and failures are configurable.
//! A destination postal code of `00000` is refused as an invalid address, and country `AQ`
//! as a service the sandbox does not offer, so those paths can be demonstrated too.

use crate::Carrier;
use crate::settings::SandboxSettings;
use crate::types::{Booking, CarrierError, ShipmentRequest};
use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

pub struct SandboxCarrier {
    settings: SandboxSettings,
    booked: Mutex<HashMap<String, Booking>>,
    purchases: AtomicU64,
    voids: AtomicU64,
}

impl SandboxCarrier {
    pub fn new(settings: SandboxSettings) -> Self {
        Self {
            settings,
            booked: Mutex::new(HashMap::new()),
            purchases: AtomicU64::new(0),
            voids: AtomicU64::new(0),
        }
    }

    /// Labels bought by this process (tests).
    pub fn purchases(&self) -> u64 {
        self.purchases.load(Ordering::Relaxed)
    }

    /// Labels voided by this process (tests).
    pub fn voids(&self) -> u64 {
        self.voids.load(Ordering::Relaxed)
    }

    /// The tracking number the sandbox gives `reference`: `SBX` and 12 digits.
    pub fn tracking_number_for(reference: &str) -> String {
        let digest = ring::digest::digest(&ring::digest::SHA256, reference.as_bytes());
        let n = digest.as_ref()[..8]
            .iter()
            .fold(0u64, |acc, b| (acc << 8) | u64::from(*b))
            % 1_000_000_000_000;
        format!("SBX{n:012}")
    }
}

impl Carrier for SandboxCarrier {
    fn kind(&self) -> crate::CarrierKind {
        crate::CarrierKind::Sandbox
    }

    async fn find_existing(&self, reference: &str) -> Result<Option<Booking>, CarrierError> {
        Ok(self
            .booked
            .lock()
            .map_err(|_| CarrierError::Permanent("poisoned".into()))?
            .get(reference)
            .cloned())
    }

    async fn book(&self, request: &ShipmentRequest) -> Result<Booking, CarrierError> {
        if self.settings.latency_ms > 0 {
            tokio::time::sleep(Duration::from_millis(self.settings.latency_ms)).await;
        }
        if self.settings.failure_rate > 0.0 && rand::random::<f64>() < self.settings.failure_rate {
            return Err(CarrierError::Transient {
                message: "sandbox: simulated outage".into(),
                retry_after: None,
            });
        }
        if request.ship_to.postal_code.trim() == "00000" {
            return Err(CarrierError::AddressInvalid(
                "sandbox: postal code 00000 does not exist".into(),
            ));
        }
        if request.ship_to.country.eq_ignore_ascii_case("AQ") {
            return Err(CarrierError::ServiceUnavailable(
                "sandbox: no service to Antarctica".into(),
            ));
        }
        if request.parcels.is_empty() {
            return Err(CarrierError::Permanent("no parcels".into()));
        }
        let tracking_number = Self::tracking_number_for(&request.reference);
        let grams: f64 = request.parcels.iter().map(|p| p.weight_grams).sum();
        let booking = Booking {
            carrier: "Sandbox Express".into(),
            service: "ground".into(),
            tracking_url: format!("https://track.sandbox-carrier.example/{tracking_number}"),
            label_url: Some(format!("https://labels.sandbox-carrier.example/{tracking_number}.pdf")),
            cost_minor: Some(500 + (grams / 100.0).ceil() as i64 * 25),
            currency: Some("USD".into()),
            external_id: format!("sbx-label-{}", &tracking_number[3..]),
            tracking_number,
            shipped_at: chrono::Utc::now(),
        };
        let mut booked = self
            .booked
            .lock()
            .map_err(|_| CarrierError::Permanent("poisoned".into()))?;
        let booking = booked.entry(request.reference.clone()).or_insert(booking).clone();
        self.purchases.fetch_add(1, Ordering::Relaxed);
        Ok(booking)
    }

    /// Forgets the label (a later lookup by reference finds nothing, as with a voided label).
    async fn void(&self, external_id: &str) -> Result<(), CarrierError> {
        let mut booked = self
            .booked
            .lock()
            .map_err(|_| CarrierError::Permanent("poisoned".into()))?;
        let before = booked.len();
        booked.retain(|_, b| b.external_id != external_id);
        if booked.len() < before {
            self.voids.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{Address, Parcel};

    fn request(postal: &str) -> ShipmentRequest {
        ShipmentRequest {
            reference: "site-order".into(),
            ship_from: Address::default(),
            ship_to: Address {
                postal_code: postal.into(),
                country: "US".into(),
                ..Address::default()
            },
            parcels: vec![Parcel {
                weight_grams: 250.0,
                length_cm: 10.0,
                width_cm: 10.0,
                height_cm: 5.0,
            }],
        }
    }

    #[tokio::test]
    async fn deterministic_and_remembered() {
        let carrier = SandboxCarrier::new(SandboxSettings::default());
        assert_eq!(carrier.find_existing("site-order").await.unwrap(), None);
        let booking = carrier.book(&request("10118")).await.unwrap();
        assert_eq!(
            booking.tracking_number,
            SandboxCarrier::tracking_number_for("site-order")
        );
        assert!(booking.tracking_number.starts_with("SBX") && booking.tracking_number.len() == 15);
        assert!(booking.tracking_url.ends_with(&booking.tracking_number));
        assert_eq!(carrier.find_existing("site-order").await.unwrap(), Some(booking));
    }

    #[tokio::test]
    async fn a_voided_label_is_gone() {
        let carrier = SandboxCarrier::new(SandboxSettings::default());
        let booking = carrier.book(&request("10118")).await.unwrap();
        carrier.void(&booking.external_id).await.unwrap();
        assert_eq!(carrier.voids(), 1);
        assert_eq!(carrier.find_existing("site-order").await.unwrap(), None);
        carrier.void(&booking.external_id).await.unwrap();
        assert_eq!(carrier.voids(), 1, "voiding twice voids once");
    }

    #[tokio::test]
    async fn refusals_are_classified() {
        let carrier = SandboxCarrier::new(SandboxSettings::default());
        assert!(carrier.book(&request("00000")).await.unwrap_err().needs_review());
        let always_failing = SandboxCarrier::new(SandboxSettings {
            latency_ms: 0,
            failure_rate: 1.0,
        });
        assert!(matches!(
            always_failing.book(&request("10118")).await,
            Err(CarrierError::Transient { .. })
        ));
    }
}
