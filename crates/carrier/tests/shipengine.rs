//! The ShipEngine adapter against wiremock, with the documented request and response shapes.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

use carrier::settings::ShipEngineSettings;
use carrier::shipengine::ShipEngineCarrier;
use carrier::{Address, Carrier, CarrierError, Parcel, ShipmentRequest};
use secrecy::SecretString;
use serde_json::json;
use wiremock::matchers::{body_partial_json, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn carrier(server: &MockServer) -> ShipEngineCarrier {
    ShipEngineCarrier::new(&ShipEngineSettings {
        base_url: server.uri(),
        api_key: Some(SecretString::from("TEST_key")),
        carrier_ids: vec!["se-123890".into()],
        service_codes: vec!["usps_ground_advantage".into(), "ups_ground".into()],
        timeout_ms: 2_000,
        ..ShipEngineSettings::default()
    })
    .unwrap()
}

fn request() -> ShipmentRequest {
    let address = |name: &str, postal: &str| Address {
        name: name.into(),
        line1: "20 W 34th St".into(),
        city: "New York".into(),
        state: Some("NY".into()),
        postal_code: postal.into(),
        country: "US".into(),
        ..Address::default()
    };
    ShipmentRequest {
        reference: "site1-fc7-128".into(),
        ship_from: address("Warehouse", "78756"),
        ship_to: address("Arthur Dent", "10118"),
        parcels: vec![Parcel {
            weight_grams: 490.0,
            length_cm: 40.0,
            width_cm: 82.0,
            height_cm: 155.0,
        }],
    }
}

fn rates_response() -> serde_json::Value {
    json!({
        "shipment_id": "se-2128732",
        "rate_response": {
            "rates": [
                {"rate_id": "se-rate-ups", "rate_type": "shipment", "carrier_id": "se-123890", "service_code": "ups_ground",
                 "shipping_amount": {"currency": "usd", "amount": 12.40}, "other_amount": {"currency": "usd", "amount": 0.0}},
                {"rate_id": "se-rate-usps", "rate_type": "shipment", "carrier_id": "se-123890", "service_code": "usps_ground_advantage",
                 "shipping_amount": {"currency": "usd", "amount": 7.95}, "other_amount": {"currency": "usd", "amount": 0.0}},
                {"rate_id": "se-rate-express", "rate_type": "shipment", "carrier_id": "se-123890", "service_code": "usps_priority_mail_express",
                 "shipping_amount": {"currency": "usd", "amount": 2.00}, "other_amount": {"currency": "usd", "amount": 0.0}}
            ],
            "invalid_rates": [], "rate_request_id": "se-28529731", "shipment_id": "se-2128732",
            "created_at": "2019-07-25T18:43:15.038Z", "status": "completed", "errors": []
        }
    })
}

fn label_response() -> serde_json::Value {
    json!({
        "label_id": "se-28529731", "status": "completed", "shipment_id": "se-2128732",
        "ship_date": "2019-07-25T05:00:00.000Z", "created_at": "2019-07-25T18:43:15.038Z",
        "shipment_cost": {"currency": "usd", "amount": 7.95}, "insurance_cost": {"currency": "usd", "amount": 0.0},
        "tracking_number": "9400111899223434769485", "is_return_label": false, "carrier_id": "se-123890",
        "service_code": "usps_ground_advantage", "carrier_code": "stamps_com", "voided": false,
        "label_download": {"href": "https://api.shipengine.com/v1/downloads/10/label.pdf", "pdf": "https://api.shipengine.com/v1/downloads/10/label.pdf"}
    })
}

fn error(code: &str, error_type: &str, source: &str, message: &str) -> serde_json::Value {
    json!({"request_id": "aa3d8e8e-462b-4476-9618-72db7f7b7009",
           "errors": [{"error_source": source, "error_type": error_type, "error_code": code, "message": message}]})
}

#[tokio::test]
async fn books_the_cheapest_rate_of_the_service_level() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/rates"))
        .and(header("API-Key", "TEST_key"))
        .and(body_partial_json(json!({
            "rate_options": {"carrier_ids": ["se-123890"], "service_codes": ["usps_ground_advantage", "ups_ground"]},
            "shipment": {"external_shipment_id": "site1-fc7-128", "ship_to": {"postal_code": "10118", "country_code": "US"},
                         "packages": [{"weight": {"value": 490.0, "unit": "gram"}}]}
        })))
        .respond_with(ResponseTemplate::new(200).set_body_json(rates_response()))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/labels/rates/se-rate-usps"))
        .and(body_partial_json(
            json!({"label_format": "pdf", "label_download_type": "url"}),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(label_response()))
        .expect(1)
        .mount(&server)
        .await;
    let booking = carrier(&server).book(&request()).await.unwrap();
    assert_eq!(booking.tracking_number, "9400111899223434769485");
    assert_eq!(booking.service, "usps_ground_advantage");
    assert_eq!(booking.cost_minor, Some(795));
    assert_eq!(booking.currency.as_deref(), Some("USD"));
    assert_eq!(booking.external_id, "se-28529731");
    assert!(booking.tracking_url.contains("9400111899223434769485"));
    assert_eq!(
        booking.label_url.as_deref(),
        Some("https://api.shipengine.com/v1/downloads/10/label.pdf")
    );
    server.verify().await;
}

#[tokio::test]
async fn finds_a_label_already_bought_for_the_reference() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/v1/labels/external_shipment_id/site1-fc7-128"))
        .respond_with(ResponseTemplate::new(200).set_body_json(label_response()))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/v1/labels/external_shipment_id/unknown"))
        .respond_with(ResponseTemplate::new(404).set_body_json(error(
            "not_found",
            "validation",
            "shipengine",
            "label not found",
        )))
        .mount(&server)
        .await;
    let carrier = carrier(&server);
    assert_eq!(
        carrier
            .find_existing("site1-fc7-128")
            .await
            .unwrap()
            .unwrap()
            .external_id,
        "se-28529731"
    );
    assert_eq!(carrier.find_existing("unknown").await.unwrap(), None);
}

/// Whether an error is of the expected kind.
type Check = fn(&CarrierError) -> bool;

#[tokio::test]
async fn documented_errors_are_classified() {
    let cases: Vec<(u16, serde_json::Value, Check)> = vec![
        (
            400,
            error("invalid_address", "validation", "shipengine", "Invalid ship_to address"),
            |e| matches!(e, CarrierError::AddressInvalid(_)),
        ),
        (
            400,
            error(
                "field_value_required",
                "validation",
                "shipengine",
                "ship_to.address_line1 is required; address incomplete",
            ),
            |e| matches!(e, CarrierError::AddressInvalid(_)),
        ),
        (
            400,
            error(
                "unspecified",
                "business_rules",
                "carrier",
                "Service not available for this destination",
            ),
            |e| matches!(e, CarrierError::ServiceUnavailable(_)),
        ),
        (
            401,
            error("unauthorized", "security", "shipengine", "The API key is invalid"),
            |e| matches!(e, CarrierError::Permanent(_)),
        ),
        (
            429,
            error("rate_limit_exceeded", "system", "shipengine", "Too many requests"),
            |e| {
                matches!(
                    e,
                    CarrierError::Transient {
                        retry_after: Some(_),
                        ..
                    }
                )
            },
        ),
        (
            500,
            error("unspecified", "system", "shipengine", "An unknown error occurred"),
            |e| matches!(e, CarrierError::Transient { .. }),
        ),
    ];
    for (status, body, check) in cases {
        let server = MockServer::start().await;
        Mock::given(method("POST"))
            .and(path("/v1/rates"))
            .respond_with(
                ResponseTemplate::new(status)
                    .set_body_json(body.clone())
                    .insert_header("Retry-After", "30"),
            )
            .mount(&server)
            .await;
        let err = carrier(&server).book(&request()).await.unwrap_err();
        assert!(check(&err), "{status} {body}: {err:?}");
        assert!(!err.to_string().contains("TEST_key"));
    }
}

#[tokio::test]
async fn no_rate_for_the_service_level_is_service_unavailable() {
    let server = MockServer::start().await;
    let mut rates = rates_response();
    rates["rate_response"]["rates"] = json!([]);
    rates["rate_response"]["errors"] = json!([{"error_source": "carrier", "error_type": "business_rules", "error_code": "unspecified", "message": "No service to destination"}]);
    Mock::given(method("POST"))
        .and(path("/v1/rates"))
        .respond_with(ResponseTemplate::new(200).set_body_json(rates))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/labels/rates/se-rate-usps"))
        .respond_with(ResponseTemplate::new(200))
        .expect(0)
        .mount(&server)
        .await;
    let err = carrier(&server).book(&request()).await.unwrap_err();
    assert!(matches!(err, CarrierError::ServiceUnavailable(_)), "{err:?}");
    server.verify().await;
}

#[tokio::test]
async fn a_label_failure_after_rating_is_transient_on_5xx() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/rates"))
        .respond_with(ResponseTemplate::new(200).set_body_json(rates_response()))
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/labels/rates/se-rate-usps"))
        .respond_with(ResponseTemplate::new(503).set_body_string("upstream"))
        .mount(&server)
        .await;
    assert!(matches!(
        carrier(&server).book(&request()).await,
        Err(CarrierError::Transient { .. })
    ));
}

#[tokio::test]
async fn a_label_is_voided_by_its_id_and_a_refusal_is_an_error() {
    let server = MockServer::start().await;
    Mock::given(method("PUT"))
        .and(path("/v1/labels/se-28529731/void"))
        .and(header("API-Key", "TEST_key"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({"approved": true, "message": "Request for refund submitted."})),
        )
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(method("PUT"))
        .and(path("/v1/labels/se-shipped/void"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!({"approved": false, "message": "The label has been used."})),
        )
        .expect(1)
        .mount(&server)
        .await;
    let carrier = carrier(&server);
    carrier.void("se-28529731").await.unwrap();
    let refused = carrier.void("se-shipped").await.unwrap_err();
    assert!(
        matches!(refused, CarrierError::Permanent(ref m) if m.contains("has been used")),
        "{refused}"
    );
    server.verify().await;
}
