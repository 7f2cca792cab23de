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

    fn booking_time_limit(&self) -> Duration {
        Duration::from_millis(self.settings.latency_ms)
    }

    fn lookup_time_limit(&self) -> Duration {
        Duration::ZERO
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

/// What a label shows.
#[derive(Debug, Clone, Default)]
pub struct LabelInfo {
    pub carrier: String,
    pub service: String,
    pub tracking_number: String,
    /// Our shipment reference (site and order).
    pub reference: String,
    pub ship_from: Vec<String>,
    pub ship_to: Vec<String>,
    pub weight_grams: f64,
}

/// The sandbox's shipping label: a real 4×6 inch PDF with addresses, the service and the
/// tracking number as an Interleaved 2 of 5 barcode. The sandbox buys nothing, so the label is
/// rendered from the stored shipment whenever it is asked for (the same every time).
pub fn label_pdf(info: &LabelInfo) -> Result<Vec<u8>, crate::pdf::PdfError> {
    use crate::pdf::{Item, document, interleaved_2_of_5};
    let (width, height) = (288.0, 432.0);
    let mut items = vec![
        Item::bold(14.0, 404.0, 16.0, info.carrier.to_uppercase()),
        Item::text(14.0, 388.0, 10.0, format!("Service: {}", info.service)),
        Item::text(180.0, 388.0, 9.0, format!("{:.2} kg", info.weight_grams / 1000.0)),
        Item::Line {
            x1: 10.0,
            y1: 380.0,
            x2: 278.0,
            y2: 380.0,
            width: 1.5,
        },
        Item::bold(14.0, 364.0, 8.0, "FROM"),
    ];
    let mut y = 352.0;
    for line in &info.ship_from {
        items.push(Item::text(14.0, y, 9.0, line.clone()));
        y -= 11.0;
    }
    items.push(Item::Line {
        x1: 10.0,
        y1: y - 2.0,
        x2: 278.0,
        y2: y - 2.0,
        width: 0.75,
    });
    y -= 18.0;
    items.push(Item::bold(14.0, y, 8.0, "SHIP TO"));
    y -= 16.0;
    for (index, line) in info.ship_to.iter().enumerate() {
        let size = if index == 0 { 14.0 } else { 12.0 };
        items.push(Item::bold(24.0, y, size, line.clone()));
        y -= size + 4.0;
    }
    items.push(Item::Line {
        x1: 10.0,
        y1: 130.0,
        x2: 278.0,
        y2: 130.0,
        width: 1.5,
    });
    items.push(Item::bold(14.0, 114.0, 8.0, "TRACKING"));
    items.extend(interleaved_2_of_5(24.0, 46.0, 60.0, 1.2, &info.tracking_number));
    items.push(Item::bold(60.0, 30.0, 13.0, info.tracking_number.clone()));
    items.push(Item::text(
        14.0,
        12.0,
        7.0,
        format!("Ref {}  -  SANDBOX LABEL, NOT FOR POSTAGE", info.reference),
    ));
    document(width, height, &[items])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::{Address, Parcel};

    #[test]
    fn the_label_is_a_4x6_pdf() {
        let pdf = label_pdf(&LabelInfo {
            carrier: "Sandbox Express".into(),
            service: "ground".into(),
            tracking_number: SandboxCarrier::tracking_number_for("r"),
            reference: "r".into(),
            ship_from: vec!["Warehouse".into()],
            ship_to: vec!["Ana López".into(), "1 Main St".into()],
            weight_grams: 250.0,
        })
        .unwrap();
        let text = String::from_utf8_lossy(&pdf);
        assert!(pdf.starts_with(b"%PDF-"));
        assert!(text.contains("/MediaBox[0 0 288 432]"), "a 4x6 inch page");
    }

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
