//! ShipEngine (ShipStation API) adapter, from its public API reference:
//!
//! - `GET  /v1/labels/external_shipment_id/{id}`: a label already bought for our reference.
//! - `POST /v1/rates`: rates for the shipment (with `external_shipment_id` = our reference),
//!   limited to the configured carriers and service codes; we take the cheapest.
//! - `POST /v1/labels/rates/{rate_id}`: buy that rate's label (PDF, URL download).
//! - `PUT  /v1/labels/{label_id}/void`: void a label (`{"approved": bool, "message": ...}`).
//!
//! Auth is the `API-Key` header. Errors come as
//! `{"request_id": ..., "errors": [{"error_source", "error_type", "error_code", "message"}]}`.

use crate::Carrier;
use crate::settings::ShipEngineSettings;
use crate::types::{Address, Booking, CarrierError, Parcel, ShipmentRequest};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use std::time::Duration;

pub struct ShipEngineCarrier {
    http: reqwest::Client,
    base_url: String,
    api_key: SecretString,
    carrier_ids: Vec<String>,
    service_codes: Vec<String>,
    /// Every HTTP call's limit, from connecting to the last byte of the body.
    timeout: Duration,
}

/// The HTTP calls [`Carrier::book`] makes one after the other: rates, then the label.
const CALLS_PER_BOOKING: u32 = 2;

#[derive(Serialize)]
struct SeAddress<'a> {
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    company_name: Option<&'a str>,
    phone: &'a str,
    address_line1: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    address_line2: Option<&'a str>,
    city_locality: &'a str,
    state_province: &'a str,
    postal_code: &'a str,
    country_code: &'a str,
}

impl<'a> From<&'a Address> for SeAddress<'a> {
    fn from(a: &'a Address) -> Self {
        Self {
            name: &a.name,
            company_name: a.company.as_deref(),
            phone: a.phone.as_deref().unwrap_or(""),
            address_line1: &a.line1,
            address_line2: a.line2.as_deref(),
            city_locality: &a.city,
            state_province: a.state.as_deref().unwrap_or(""),
            postal_code: &a.postal_code,
            country_code: &a.country,
        }
    }
}

#[derive(Serialize)]
struct SePackage {
    weight: SeValue,
    dimensions: SeDimensions,
}

#[derive(Serialize)]
struct SeValue {
    value: f64,
    unit: &'static str,
}

#[derive(Serialize)]
struct SeDimensions {
    unit: &'static str,
    length: f64,
    width: f64,
    height: f64,
}

impl From<&Parcel> for SePackage {
    fn from(p: &Parcel) -> Self {
        Self {
            weight: SeValue {
                value: p.weight_grams,
                unit: "gram",
            },
            dimensions: SeDimensions {
                unit: "centimeter",
                length: p.length_cm,
                width: p.width_cm,
                height: p.height_cm,
            },
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Money {
    currency: Option<String>,
    amount: Option<f64>,
}

#[derive(Deserialize)]
struct Rate {
    rate_id: String,
    #[serde(default)]
    service_code: Option<String>,
    #[serde(default)]
    shipping_amount: Money,
    #[serde(default)]
    other_amount: Money,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct RateResponse {
    rates: Vec<Rate>,
    errors: Vec<SeError>,
}

#[derive(Deserialize)]
struct RatesResult {
    #[serde(default)]
    rate_response: RateResponse,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct LabelDownload {
    href: Option<String>,
    pdf: Option<String>,
}

#[derive(Deserialize)]
struct Label {
    label_id: String,
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    tracking_number: Option<String>,
    #[serde(default)]
    tracking_url: Option<String>,
    #[serde(default)]
    carrier_code: Option<String>,
    #[serde(default)]
    service_code: Option<String>,
    #[serde(default)]
    shipment_cost: Money,
    #[serde(default)]
    label_download: LabelDownload,
    #[serde(default)]
    ship_date: Option<String>,
    #[serde(default)]
    voided: Option<bool>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct VoidResult {
    approved: bool,
    message: Option<String>,
}

#[derive(Deserialize, Default, Debug)]
#[serde(default)]
struct SeError {
    error_source: Option<String>,
    error_type: Option<String>,
    error_code: Option<String>,
    message: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct ErrorBody {
    request_id: Option<String>,
    errors: Vec<SeError>,
}

impl ShipEngineCarrier {
    pub fn new(settings: &ShipEngineSettings) -> Result<Self, CarrierError> {
        let api_key = settings
            .api_key
            .clone()
            .ok_or_else(|| CarrierError::Permanent("carrier.shipengine.api_key is not set".into()))?;
        // rustls needs a process-wide crypto provider; ring, as everywhere (idempotent).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let timeout = Duration::from_millis(settings.timeout_ms);
        let http = reqwest::Client::builder()
            // A total limit per request (connect, send, the whole body): what makes
            // `booking_time_limit` a bound.
            .timeout(timeout)
            .build()
            .map_err(|e| CarrierError::Permanent(e.to_string()))?;
        Ok(Self {
            http,
            base_url: settings.base_url.trim_end_matches('/').to_owned(),
            api_key,
            carrier_ids: settings.carrier_ids.clone(),
            service_codes: settings.service_codes.clone(),
            timeout,
        })
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Result<(u16, bytes_body::Body), CarrierError> {
        let response = request
            .header("API-Key", self.api_key.expose_secret())
            .send()
            .await
            .map_err(|e| CarrierError::Transient {
                message: format!("ShipEngine unreachable: {e}"),
                retry_after: None,
            })?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let bytes = response.bytes().await.map_err(|e| CarrierError::Transient {
            message: format!("ShipEngine body: {e}"),
            retry_after: None,
        })?;
        Ok((
            status,
            bytes_body::Body {
                bytes: bytes.to_vec(),
                retry_after,
            },
        ))
    }

    fn classify(status: u16, body: &bytes_body::Body) -> CarrierError {
        let parsed: ErrorBody = serde_json::from_slice(&body.bytes).unwrap_or_default();
        let first = parsed.errors.first();
        let message = format!(
            "ShipEngine {status} {}: {} (request {})",
            first.and_then(|e| e.error_code.as_deref()).unwrap_or("unspecified"),
            first.and_then(|e| e.message.as_deref()).unwrap_or("no message"),
            parsed.request_id.as_deref().unwrap_or("?"),
        );
        if status == 429 || status >= 500 {
            return CarrierError::Transient {
                message,
                retry_after: body.retry_after,
            };
        }
        let address_problem = parsed.errors.iter().any(|e| {
            let code = e.error_code.as_deref().unwrap_or("");
            code.contains("address")
                || (e.error_type.as_deref() == Some("validation")
                    && e.message
                        .as_deref()
                        .is_some_and(|m| m.to_lowercase().contains("address")))
        });
        if address_problem {
            return CarrierError::AddressInvalid(message);
        }
        let service_problem = parsed.errors.iter().any(|e| {
            e.error_source.as_deref() == Some("carrier")
                || e.error_code
                    .as_deref()
                    .is_some_and(|c| c.contains("service") || c == "carrier_not_connected")
        });
        if service_problem {
            return CarrierError::ServiceUnavailable(message);
        }
        CarrierError::Permanent(message)
    }

    fn booking_from(label: Label) -> Result<Booking, CarrierError> {
        let tracking_number =
            label
                .tracking_number
                .filter(|t| !t.is_empty())
                .ok_or_else(|| CarrierError::Transient {
                    message: "label has no tracking number yet".into(),
                    retry_after: None,
                })?;
        let carrier_code = label.carrier_code.unwrap_or_else(|| "carrier".into());
        let tracking_url = label
            .tracking_url
            .unwrap_or_else(|| tracking_url_for(&carrier_code, &tracking_number));
        let shipped_at = label
            .ship_date
            .as_deref()
            .and_then(|d| chrono::DateTime::parse_from_rfc3339(d).ok())
            .map(|d| d.with_timezone(&chrono::Utc))
            .unwrap_or_else(chrono::Utc::now);
        Ok(Booking {
            carrier: carrier_code.to_uppercase(),
            service: label.service_code.unwrap_or_default(),
            tracking_url,
            label_url: label.label_download.pdf.or(label.label_download.href),
            cost_minor: label.shipment_cost.amount.map(|a| (a * 100.0).round() as i64),
            currency: label.shipment_cost.currency.map(|c| c.to_uppercase()),
            external_id: label.label_id,
            tracking_number,
            shipped_at,
        })
    }
}

/// Public tracking pages of the common carriers, for labels that carry no URL.
fn tracking_url_for(carrier_code: &str, tracking_number: &str) -> String {
    match carrier_code {
        "ups" => format!("https://www.ups.com/track?tracknum={tracking_number}"),
        "fedex" => format!("https://www.fedex.com/fedextrack/?trknbr={tracking_number}"),
        "dhl_express" => {
            format!("https://www.dhl.com/en/express/tracking.html?AWB={tracking_number}")
        }
        _ => format!("https://tools.usps.com/go/TrackConfirmAction?tLabels={tracking_number}"),
    }
}

impl Carrier for ShipEngineCarrier {
    fn kind(&self) -> crate::CarrierKind {
        crate::CarrierKind::ShipEngine
    }

    fn booking_time_limit(&self) -> Duration {
        self.timeout * CALLS_PER_BOOKING
    }

    fn lookup_time_limit(&self) -> Duration {
        self.timeout
    }

    async fn find_existing(&self, reference: &str) -> Result<Option<Booking>, CarrierError> {
        let url = format!("{}/v1/labels/external_shipment_id/{}", self.base_url, encode(reference));
        let (status, body) = self
            .send(self.http.get(url).query(&[("label_download_type", "url")]))
            .await?;
        match status {
            200 => {
                let label: Label = serde_json::from_slice(&body.bytes)
                    .map_err(|e| CarrierError::Permanent(format!("ShipEngine label body: {e}")))?;
                if label.voided == Some(true) || matches!(label.status.as_deref(), Some("voided" | "error")) {
                    return Ok(None);
                }
                Self::booking_from(label).map(Some)
            }
            404 => Ok(None),
            _ => Err(Self::classify(status, &body)),
        }
    }

    async fn book(&self, request: &ShipmentRequest) -> Result<Booking, CarrierError> {
        let rates_body = serde_json::json!({
            "rate_options": {"carrier_ids": self.carrier_ids, "service_codes": self.service_codes},
            "shipment": {
                "external_shipment_id": request.reference,
                "ship_from": SeAddress::from(&request.ship_from),
                "ship_to": SeAddress::from(&request.ship_to),
                "packages": request.parcels.iter().map(SePackage::from).collect::<Vec<_>>(),
            }
        });
        let (status, body) = self
            .send(self.http.post(format!("{}/v1/rates", self.base_url)).json(&rates_body))
            .await?;
        if !(200..300).contains(&status) {
            return Err(Self::classify(status, &body));
        }
        let rates: RatesResult = serde_json::from_slice(&body.bytes)
            .map_err(|e| CarrierError::Permanent(format!("ShipEngine rates body: {e}")))?;
        let cost = |r: &Rate| r.shipping_amount.amount.unwrap_or(f64::MAX) + r.other_amount.amount.unwrap_or(0.0);
        let cheapest = rates
            .rate_response
            .rates
            .iter()
            .filter(|r| {
                self.service_codes.is_empty() || r.service_code.as_ref().is_some_and(|c| self.service_codes.contains(c))
            })
            .min_by(|a, b| cost(a).total_cmp(&cost(b)));
        let Some(rate) = cheapest else {
            let why = rates
                .rate_response
                .errors
                .first()
                .and_then(|e| e.message.clone())
                .unwrap_or_default();
            return Err(CarrierError::ServiceUnavailable(format!(
                "no rate for service codes {:?} to {} {}: {why}",
                self.service_codes, request.ship_to.postal_code, request.ship_to.country
            )));
        };
        let buy = serde_json::json!({"label_format": "pdf", "label_layout": "4x6", "label_download_type": "url"});
        let url = format!("{}/v1/labels/rates/{}", self.base_url, encode(&rate.rate_id));
        let (status, body) = self.send(self.http.post(url).json(&buy)).await?;
        if !(200..300).contains(&status) {
            return Err(Self::classify(status, &body));
        }
        let label: Label = serde_json::from_slice(&body.bytes)
            .map_err(|e| CarrierError::Permanent(format!("ShipEngine label body: {e}")))?;
        Self::booking_from(label)
    }

    async fn void(&self, external_id: &str) -> Result<(), CarrierError> {
        let url = format!("{}/v1/labels/{}/void", self.base_url, encode(external_id));
        let (status, body) = self.send(self.http.put(url)).await?;
        if !(200..300).contains(&status) {
            return Err(Self::classify(status, &body));
        }
        let result: VoidResult = serde_json::from_slice(&body.bytes)
            .map_err(|e| CarrierError::Permanent(format!("ShipEngine void body: {e}")))?;
        if result.approved || result.message.as_deref().is_some_and(|m| m.contains("already voided")) {
            Ok(())
        } else {
            Err(CarrierError::Permanent(format!(
                "ShipEngine refused to void label {external_id}: {}",
                result.message.unwrap_or_default()
            )))
        }
    }
}

fn encode(segment: &str) -> String {
    segment
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

mod bytes_body {
    pub struct Body {
        pub bytes: Vec<u8>,
        pub retry_after: Option<std::time::Duration>,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::SecretString;

    #[test]
    fn a_booking_may_take_two_calls_time_limits() {
        let settings = ShipEngineSettings {
            api_key: Some(SecretString::from("k")),
            timeout_ms: 15_000,
            ..ShipEngineSettings::default()
        };
        let carrier = ShipEngineCarrier::new(&settings).unwrap();
        assert_eq!(carrier.booking_time_limit(), Duration::from_secs(30));
        assert_eq!(carrier.lookup_time_limit(), Duration::from_secs(15));
    }
}
