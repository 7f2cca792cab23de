//! Booking shipments with a carrier, behind one interface.
//!
//! - [`sandbox::SandboxCarrier`]: the built-in default; deterministic, valid-looking tracking
//!   numbers and URLs, with configurable latency and failure rate.
//! - [`shipengine::ShipEngineCarrier`]: ShipEngine (now "ShipStation API"), chosen because
//!   it looks a label up by our own `external_shipment_id`, which makes "never buy a second
//!   label" checkable against the carrier itself (docs/carriers.md).
//!
//! Every adapter is idempotent by `ShipmentRequest::reference`: callers ask
//! [`Carrier::find_existing`] before [`Carrier::book`].

pub mod kind;
pub mod pdf;
pub mod sandbox;
pub mod settings;
pub mod shipengine;
pub mod types;

pub use kind::{CarrierKind, UnknownCarrierKind};
pub use settings::CarrierSettings;
pub use types::{Address, Booking, CarrierError, Parcel, ShipmentRequest};

use std::future::Future;
use std::time::Duration;

pub trait Carrier: Send + Sync {
    /// Short name recorded on the shipment (`sandbox`, `shipengine`).
    fn kind(&self) -> CarrierKind;

    /// The longest [`Self::book`] can take before it returns (an answer or a timeout): what a
    /// caller holding a lease around the booking must cover. ShipEngine: a booking is two HTTP
    /// calls (rates, then the label), each bounded by `carrier.shipengine.timeout_ms`; the
    /// sandbox: its `latency_ms`.
    fn booking_time_limit(&self) -> Duration;

    /// The longest [`Self::find_existing`] or [`Self::void`] can take (one HTTP call for
    /// ShipEngine; nothing for the sandbox).
    fn lookup_time_limit(&self) -> Duration;

    /// A label already bought for `reference`, if any.
    fn find_existing(&self, reference: &str) -> impl Future<Output = Result<Option<Booking>, CarrierError>> + Send;

    /// Buys a label: the cheapest rate of the configured service level.
    fn book(&self, request: &ShipmentRequest) -> impl Future<Output = Result<Booking, CarrierError>> + Send;

    /// Voids a bought label (`Booking::external_id`), e.g. for an order cancelled while its
    /// label was being bought. Voiding a label already voided succeeds.
    fn void(&self, external_id: &str) -> impl Future<Output = Result<(), CarrierError>> + Send;
}

/// The carrier chosen by `carrier.kind`.
pub enum AnyCarrier {
    Sandbox(sandbox::SandboxCarrier),
    ShipEngine(shipengine::ShipEngineCarrier),
}

impl AnyCarrier {
    pub fn from_settings(settings: &CarrierSettings) -> Result<Self, CarrierError> {
        match settings.kind {
            CarrierKind::Sandbox => Ok(Self::Sandbox(sandbox::SandboxCarrier::new(settings.sandbox.clone()))),
            CarrierKind::ShipEngine => Ok(Self::ShipEngine(shipengine::ShipEngineCarrier::new(
                &settings.shipengine,
            )?)),
        }
    }
}

impl Carrier for AnyCarrier {
    fn kind(&self) -> CarrierKind {
        match self {
            Self::Sandbox(c) => c.kind(),
            Self::ShipEngine(c) => c.kind(),
        }
    }

    fn booking_time_limit(&self) -> Duration {
        match self {
            Self::Sandbox(c) => c.booking_time_limit(),
            Self::ShipEngine(c) => c.booking_time_limit(),
        }
    }

    fn lookup_time_limit(&self) -> Duration {
        match self {
            Self::Sandbox(c) => c.lookup_time_limit(),
            Self::ShipEngine(c) => c.lookup_time_limit(),
        }
    }

    async fn find_existing(&self, reference: &str) -> Result<Option<Booking>, CarrierError> {
        match self {
            Self::Sandbox(c) => c.find_existing(reference).await,
            Self::ShipEngine(c) => c.find_existing(reference).await,
        }
    }

    async fn book(&self, request: &ShipmentRequest) -> Result<Booking, CarrierError> {
        match self {
            Self::Sandbox(c) => c.book(request).await,
            Self::ShipEngine(c) => c.book(request).await,
        }
    }

    async fn void(&self, external_id: &str) -> Result<(), CarrierError> {
        match self {
            Self::Sandbox(c) => c.void(external_id).await,
            Self::ShipEngine(c) => c.void(external_id).await,
        }
    }
}
