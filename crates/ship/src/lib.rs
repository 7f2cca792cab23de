//! The `ship` worker: `order.packed` → a carrier label → `order.shipped`.
//!
//! Never a second label: the attempt is recorded before the carrier is called, the carrier is
//! given our reference (`<site_id>-<order_id>`) and asked for an existing label before buying,
//! and the booking is stored in the same transaction that moves the order to `shipped`.
//! Two deliveries never call the carrier at once for one order: a fenced lease
//! (`warehouse_db::locks`) is confirmed right before each carrier call and checked and ended
//! in the transaction that records the result. Confirming it before a call extends it to cover
//! the carrier's own time limit for that call (a ShipEngine booking is two HTTP calls of up to
//! `carrier.shipengine.timeout_ms` each) plus a whole lease lifetime, and the call is cut off
//! at that limit: the lease cannot lapse mid-call even when its background renewal stalls, so
//! a second delivery never buys a label while the first one's purchase is in flight.
//! What is left (a process paused longer than that, then resumed with a label in hand) is
//! recorded, not dropped: a label whose buyer lost the lease is kept as an orphaned label, and
//! the next holder of the lease adopts it (the order is still `packed`) or voids it (the order
//! shipped with another label, or moved on).
//! An order cancelled while its label was being bought gets the label voided, and its
//! shipment ends `voided`.
//! An invalid address or an unavailable service sends the order to `needs_review` with the
//! carrier's message; timeouts, 5xx and 429 are retried through the consumer runtime.

use carrier::{Address, AnyCarrier, Booking, Carrier, CarrierError, Parcel, ShipmentRequest};
use domain::{Event, OrderId, OrderState};
use platform::amqp::topology::consumer;
use platform::settings::SettingsError;
use service_base::{ServiceBase, StartupError};
use std::sync::Arc;
use warehouse_db::Transaction;
use warehouse_db::audit::{self, AuditEntry, AuditKind};
use warehouse_db::floor::{self, BookedShipment};
use warehouse_db::locks::OrderLock;
use warehouse_db::orders;
use worker::{Effects, Handler, HandlerError, IncomingMessage, Preparation, SeenCheck, WorkerService};

pub const ACTOR: &str = consumer::SHIP;

service_base::service_settings! {
    pub struct Settings {
        pub carrier: carrier::CarrierSettings,
    }
}

impl platform::settings::Validate for Settings {
    fn validate(&mut self) -> Result<(), SettingsError> {
        self.base.validate()?;
        self.carrier.validate()
    }

    fn check_profile(&self, profile: platform::settings::Profile) -> Result<(), SettingsError> {
        self.carrier.check_profile(profile)
    }
}

pub struct ShipHandler {
    carrier: Arc<AnyCarrier>,
    ship_from: Address,
    /// The process's pool; sized with one extra connection per delivery in flight, for the
    /// per-order leases (taken, confirmed and renewed around the carrier call).
    pool: warehouse_db::Pool,
}

impl ShipHandler {
    pub fn new(carrier: Arc<AnyCarrier>, ship_from: Address, pool: warehouse_db::Pool) -> Self {
        Self {
            carrier,
            ship_from,
            pool,
        }
    }
}

pub enum Prepared {
    /// Not packed (already shipped, cancelled, …): nothing to do.
    Skip { reason: String },
    /// A carrier call was made under the order's lease; its result is recorded (and the lease
    /// checked and ended) in the handler's transaction.
    Done { lease: OrderLock, outcome: Outcome },
}

pub enum Outcome {
    Booked {
        booking: Box<Booking>,
        reused: bool,
    },
    Refused {
        error: String,
    },
    /// The order was cancelled while its label was being bought: the label (if one was
    /// bought) is voided at the carrier.
    Voided {
        label: Option<String>,
    },
}

/// The reference the carrier knows the shipment by.
pub fn reference_for(site_id: &str, order_id: &str) -> String {
    format!("{site_id}-{order_id}")
}

/// The carrier's address for the order's stored shipping address (checked complete when the
/// order was enriched).
fn ship_to(address: Option<&domain::Address>) -> Address {
    let address = address.cloned().unwrap_or_default();
    Address {
        name: address.addressee.unwrap_or_default(),
        company: None,
        phone: None,
        line1: address.line1.unwrap_or_default(),
        line2: address.line2,
        city: address.city.unwrap_or_default(),
        state: address.state,
        postal_code: address.postal_code.unwrap_or_default(),
        country: address.country.unwrap_or_default(),
    }
}

impl ShipHandler {
    async fn book(
        &self,
        order: &orders::OrderRecord,
        order_id: &OrderId,
        lease: &OrderLock,
    ) -> Result<Option<Outcome>, HandlerError> {
        let reference = reference_for(order.site_id.as_str(), order.webflow_order_id.as_str());
        // The intent is recorded before the call, under the lease (confirmed by the same
        // statement): a crash after buying is found by reference.
        let start = {
            let client = self.pool.get().await?;
            floor::begin_booking(&*client, lease, &reference, self.carrier.kind().as_str()).await?
        };
        let (attempts, parcels) = match start {
            floor::BookingStart::Recorded {
                attempts,
                parcels,
                orphaned_labels,
            } => {
                // A label an earlier delivery bought and could not record: adopted instead of
                // buying another (the others are voided).
                if orphaned_labels && let Some(booking) = self.settle_orphans(order, lease).await? {
                    tracing::info!(order_id = %order_id, label = %booking.external_id, "adopting an orphaned label");
                    return Ok(Some(Outcome::Booked {
                        booking: Box::new(booking),
                        reused: true,
                    }));
                }
                (attempts, parcels)
            }
            floor::BookingStart::AlreadyBooked
            | floor::BookingStart::NotPacked {
                state: OrderState::Shipped | OrderState::Fulfilled,
            } => return Ok(None),
            // Moved on after this delivery found it packed (cancelled, sent to review): the next
            // delivery sees it settled, and voids a label an earlier attempt may have bought.
            floor::BookingStart::NotPacked { state } => {
                return Err(HandlerError::deferred(
                    format!("the order became {state} before its label was bought; looking again"),
                    std::time::Duration::from_millis(500),
                ));
            }
            floor::BookingStart::LeaseLost => return Err(lease_lost()),
        };
        let parcels: Vec<Parcel> = parcels
            .into_iter()
            .map(|p| Parcel {
                weight_grams: p.weight_grams,
                length_cm: p.length_cm,
                width_cm: p.width_cm,
                height_cm: p.height_cm,
            })
            .collect();
        tracing::info!(order_id = %order_id, attempt = attempts, "booking shipment");

        let carrier_result =
            match within(self.carrier.lookup_time_limit(), self.carrier.find_existing(&reference)).await {
                Ok(Some(existing)) => Ok((existing, true)),
                Ok(None) => {
                    let request = ShipmentRequest {
                        reference: reference.clone(),
                        ship_from: self.ship_from.clone(),
                        ship_to: ship_to(order.shipping_address.as_ref()),
                        parcels,
                    };
                    // The lease now outlasts the booking's time limit, whatever its renewal does.
                    let limit = self.carrier.booking_time_limit();
                    confirm_for(lease, limit).await?;
                    within(limit, self.carrier.book(&request)).await.map(|b| (b, false))
                }
                Err(error) => Err(error),
            };
        match carrier_result {
            // An order cancelled while its label was being bought is found by the recording
            // transaction (the order is locked there), whose retry voids the label.
            Ok((booking, reused)) => Ok(Some(Outcome::Booked {
                booking: Box::new(booking),
                reused,
            })),
            Err(error) if error.needs_review() => Ok(Some(Outcome::Refused {
                error: error.to_string(),
            })),
            Err(error) => Err(carrier_error(error)),
        }
    }

    /// Whether the order's shipment is still `booking` (a label may have been bought for it).
    async fn is_booking(&self, order_pk: i64) -> Result<bool, HandlerError> {
        let client = self.pool.get().await?;
        let shipment = floor::shipment(&*client, order_pk).await?;
        Ok(shipment.is_some_and(|s| s.status == floor::ShipmentStatus::Booking))
    }

    /// An order cancelled while a delivery was buying its label (the shipment is still
    /// `booking`): whatever label the carrier has for it is voided.
    async fn void_booking(&self, order: &orders::OrderRecord, lease: &OrderLock) -> Result<Outcome, HandlerError> {
        let reference = reference_for(order.site_id.as_str(), order.webflow_order_id.as_str());
        let limit = self.carrier.lookup_time_limit();
        confirm_for(lease, limit).await?;
        let existing = within(limit, self.carrier.find_existing(&reference))
            .await
            .map_err(carrier_error)?;
        let label = match existing {
            Some(booking) => {
                confirm_for(lease, limit).await?;
                within(limit, self.carrier.void(&booking.external_id))
                    .await
                    .map_err(carrier_error)?;
                Some(booking.external_id)
            }
            None => None,
        };
        Ok(Outcome::Voided { label })
    }

    /// Settles, under `lease`, the labels of `order` that deliveries bought and could not record
    /// (their lease had lapsed): the one the order shipped with is kept; while the order is
    /// still `packed` and has no label, the oldest is returned to be adopted (recorded as its
    /// label, nothing bought); every other one is voided at the carrier, on the order's
    /// timeline. One the carrier refuses to void for good (`void_failed`), or of another
    /// carrier (`other_carrier`), is settled as such, on the timeline, for an operator; only a
    /// transient failure to void is retried (with the message).
    async fn settle_orphans(
        &self,
        order: &orders::OrderRecord,
        lease: &OrderLock,
    ) -> Result<Option<Booking>, HandlerError> {
        let (orphans, shipment) = {
            let client = self.pool.get().await?;
            (
                floor::orphaned_labels(&*client, order.id).await?,
                floor::shipment(&*client, order.id).await?,
            )
        };
        let in_use = shipment
            .filter(|s| s.status == floor::ShipmentStatus::Booked)
            .and_then(|s| s.external_id);
        let adoptable = order.state == OrderState::Packed && in_use.is_none();
        let mut adopted: Option<Booking> = None;
        for orphan in orphans {
            if in_use.as_deref() == Some(orphan.external_id.as_str()) {
                let client = self.pool.get().await?;
                floor::settle_orphaned_label(
                    &*client,
                    order.id,
                    &orphan.external_id,
                    floor::OrphanOutcome::InUse,
                    None,
                )
                .await?;
                continue;
            }
            if orphan.carrier_kind != self.carrier.kind().as_str() {
                // Not ours to void (nor to adopt): settled for good, for an operator, rather
                // than looked at again by every delivery.
                tracing::warn!(order_id = %order.webflow_order_id, label = %orphan.external_id,
                    carrier = %orphan.carrier_kind, "an orphaned label of another carrier: void it there by hand");
                let reason = format!(
                    "bought from carrier `{}`, not the one configured now: void it there by hand",
                    orphan.carrier_kind
                );
                self.needs_operator(order, &orphan, floor::OrphanOutcome::OtherCarrier, &reason)
                    .await?;
                continue;
            }
            if adoptable && adopted.is_none() {
                match serde_json::from_value::<Booking>(orphan.booking.clone()) {
                    Ok(booking) => {
                        adopted = Some(booking);
                        continue;
                    }
                    Err(error) => {
                        tracing::warn!(%error, label = %orphan.external_id, "unreadable orphaned label; voiding it")
                    }
                }
            }
            let limit = self.carrier.lookup_time_limit();
            confirm_for(lease, limit).await?;
            match within(limit, self.carrier.void(&orphan.external_id)).await {
                Ok(()) => {}
                // Tried again with the message.
                Err(error @ CarrierError::Transient { .. }) => return Err(carrier_error(error)),
                // Refused for good (the label was used, say): retrying cannot help, and must
                // not hold the order up. Settled as such, for an operator to void by hand.
                Err(error) => {
                    tracing::warn!(order_id = %order.webflow_order_id, label = %orphan.external_id, %error,
                        "the carrier refused to void an orphaned label: void it by hand");
                    self.needs_operator(order, &orphan, floor::OrphanOutcome::VoidFailed, &error.to_string())
                        .await?;
                    continue;
                }
            }
            let client = self.pool.get().await?;
            floor::settle_orphaned_label(
                &*client,
                order.id,
                &orphan.external_id,
                floor::OrphanOutcome::Voided,
                None,
            )
            .await?;
            let detail = serde_json::json!({
                "voided_label": orphan.external_id,
                "reason": "bought by a delivery whose lease on the order had lapsed; the order has another label",
            });
            audit::record(&*client, self.carrier_call(order, detail)).await?;
            tracing::info!(order_id = %order.webflow_order_id, label = %orphan.external_id, "voided an orphaned label");
        }
        Ok(adopted)
    }

    /// Settles an orphaned label this worker cannot void (`outcome`, `reason` saying why) and
    /// puts it on the order's timeline (`orphaned_label`, `outcome`, `reason`), for an operator
    /// to void by hand (docs/runbook.md).
    async fn needs_operator(
        &self,
        order: &orders::OrderRecord,
        orphan: &floor::OrphanedLabel,
        outcome: floor::OrphanOutcome,
        reason: &str,
    ) -> Result<(), HandlerError> {
        let client = self.pool.get().await?;
        floor::settle_orphaned_label(&*client, order.id, &orphan.external_id, outcome, Some(reason)).await?;
        let detail = serde_json::json!({
            "orphaned_label": orphan.external_id,
            "label_carrier": orphan.carrier_kind,
            "outcome": outcome.as_str(),
            "reason": reason,
            "action": "void this label by hand at its carrier (docs/runbook.md, orphaned labels)",
        });
        audit::record(&*client, self.carrier_call(order, detail)).await?;
        Ok(())
    }

    /// A delivery for an order past `packed` that has orphaned labels: settles them under the
    /// order's lease (voiding every one the order did not ship with).
    async fn settle_orphans_of(&self, order: &orders::OrderRecord) -> Result<(), HandlerError> {
        let lease = OrderLock::try_acquire(&self.pool, consumer::SHIP, order.id)
            .await?
            .ok_or_else(busy)?;
        let settled = self.settle_orphans(order, &lease).await;
        lease.release().await;
        settled.map(|_| ())
    }

    /// Keeps a label this delivery bought but can no longer record (its lease lapsed and may be
    /// someone else's) for the next holder of the lease to adopt or void.
    async fn orphan(&self, order_pk: i64, booking: &Booking) -> Result<(), HandlerError> {
        let json = serde_json::to_value(booking).map_err(|e| HandlerError::permanent(e.to_string()))?;
        let client = self.pool.get().await?;
        floor::record_orphaned_label(
            &*client,
            order_pk,
            &booking.external_id,
            self.carrier.kind().as_str(),
            &json,
        )
        .await?;
        tracing::warn!(label = %booking.external_id, "the order's lease lapsed during the booking; label kept as orphaned");
        Ok(())
    }
}

/// The carrier's own time limit for a call, with a little slack, enforced here too: the lease
/// was extended to cover it.
async fn within<T>(
    limit: std::time::Duration,
    call: impl std::future::Future<Output = Result<T, CarrierError>>,
) -> Result<T, CarrierError> {
    const SLACK: std::time::Duration = std::time::Duration::from_secs(1);
    tokio::time::timeout(limit + SLACK, call).await.unwrap_or_else(|_| {
        Err(CarrierError::Transient {
            message: format!("the carrier did not answer within {:?}", limit + SLACK),
            retry_after: None,
        })
    })
}

/// Another delivery holds the order's lease: not a failure; it will finish, look again shortly.
fn busy() -> HandlerError {
    HandlerError::deferred(
        "another delivery is working on this order",
        std::time::Duration::from_secs(1),
    )
}

/// Right before an external call that may take up to `call`: the lease must still be ours, and
/// is extended to outlast the call ([`OrderLock::confirm_for`]).
async fn confirm_for(lease: &OrderLock, call: std::time::Duration) -> Result<(), HandlerError> {
    if lease.confirm_for(call).await? {
        Ok(())
    } else {
        Err(lease_lost())
    }
}

fn lease_lost() -> HandlerError {
    HandlerError::deferred(
        "the order's lease expired and may be someone else's; not calling the carrier",
        std::time::Duration::from_secs(1),
    )
}

fn carrier_error(error: CarrierError) -> HandlerError {
    match error {
        CarrierError::Transient { message, retry_after } => {
            HandlerError::transient(message).with_retry_after(retry_after)
        }
        error => HandlerError::permanent(error.to_string()),
    }
}

impl Handler for ShipHandler {
    const NAME: &'static str = consumer::SHIP;
    // No look-up per message before `prepare`: a delivery of an event already handled finds
    // the order past `packed` (or its shipment no longer `booking`) and calls no carrier; the
    // transaction's idempotency record settles it as a duplicate.
    const CHECK_BEFORE_PREPARE: bool = false;
    type Prepared = Prepared;

    async fn prepare(
        &self,
        message: &IncomingMessage,
        _seen: &SeenCheck<'_>,
    ) -> Result<Preparation<Prepared>, HandlerError> {
        let envelope = message.envelope()?;
        let Event::OrderPackedV1 { order_id } = &envelope.event else {
            return Err(HandlerError::permanent(format!(
                "ship does not handle `{}`",
                envelope.event.routing_key()
            )));
        };
        // The order is found and, packed, its lease taken by one statement: two deliveries for
        // the same order must not call the carrier concurrently.
        let found = OrderLock::try_acquire_order(
            &self.pool,
            consumer::SHIP,
            &envelope.site_id,
            order_id,
            Some(&[OrderState::Packed]),
        )
        .await?
        .ok_or_else(|| HandlerError::permanent(format!("order {order_id} is not in the warehouse database")))?;
        let order = found.order;
        let (lease, cancelled_while_booking) = match found.lease {
            Some(lease) => (lease, false),
            None if order.state == OrderState::Packed => return Err(busy()),
            // Cancelled while a delivery was buying its label (the shipment is still
            // `booking`): whatever label the carrier has is voided, under the lease.
            None if order.state == OrderState::Cancelled && self.is_booking(order.id).await? => {
                let lease = OrderLock::try_acquire(&self.pool, consumer::SHIP, order.id)
                    .await?
                    .ok_or_else(busy)?;
                if let Err(error) = self.settle_orphans(&order, &lease).await {
                    lease.release().await;
                    return Err(error);
                }
                // Read again under the lease: a previous holder may have voided it meanwhile.
                if !self.is_booking(order.id).await? {
                    lease.release().await;
                    return Ok(Preparation::Ready(Prepared::Skip {
                        reason: "the cancelled order's label was voided by another delivery".into(),
                    }));
                }
                (lease, true)
            }
            None => {
                // Labels bought by deliveries that lost the lease: voided unless in use.
                let client = self.pool.get().await?;
                if floor::has_orphaned_labels(&*client, order.id).await? {
                    drop(client);
                    self.settle_orphans_of(&order).await?;
                }
                return Ok(Preparation::Ready(Prepared::Skip {
                    reason: format!("order is {}", order.state),
                }));
            }
        };
        let outcome = if cancelled_while_booking {
            self.void_booking(&order, &lease).await.map(Some)
        } else {
            self.book(&order, order_id, &lease).await
        };
        match outcome {
            Ok(Some(outcome)) => Ok(Preparation::Ready(Prepared::Done { lease, outcome })),
            Ok(None) => {
                lease.release().await;
                Ok(Preparation::Ready(Prepared::Skip {
                    reason: "already booked by another delivery".into(),
                }))
            }
            Err(error) => {
                lease.release().await;
                Err(error)
            }
        }
    }

    async fn apply(
        &self,
        tx: &Transaction<'_>,
        message: &IncomingMessage,
        prepared: Prepared,
        effects: &mut Effects,
    ) -> Result<(), HandlerError> {
        match prepared {
            Prepared::Skip { reason } => {
                tracing::info!(message_id = %message.message_id, reason, "nothing to ship");
                Ok(())
            }
            Prepared::Done { lease, outcome } => {
                // Fenced: the lease is checked and ended, and the order locked, in the
                // transaction that records the carrier's answer; a holder that lost the lease
                // records nothing.
                let Some(order) = lease.finish_locking_order(tx).await? else {
                    // A label bought under a lease that lapsed (the process was paused longer
                    // than the extended lease): kept, for the next holder to adopt or void,
                    // never dropped paid. This delivery comes back to see it settled.
                    if let Outcome::Booked { booking, reused: false } = &outcome {
                        self.orphan(lease.order_pk(), booking).await?;
                    }
                    return Err(HandlerError::deferred(
                        "the order's lease expired and was taken over; not recording this carrier call",
                        std::time::Duration::from_secs(1),
                    ));
                };
                effects.on_commit(move || lease.committed());
                self.record(tx, message, order, outcome, effects).await
            }
        }
    }
}

impl ShipHandler {
    /// The audit entry of a carrier call about `order`: `detail`, with the API and the carrier.
    fn carrier_call<'a>(&self, order: &'a orders::OrderRecord, mut detail: serde_json::Value) -> AuditEntry<'a> {
        detail["api"] = "carrier".into();
        detail["carrier"] = self.carrier.kind().as_str().into();
        AuditEntry::for_order(order, AuditKind::ApiCall, ACTOR, detail)
    }

    /// Records a carrier call's outcome (in the handler's transaction, under the lease, with
    /// `order` locked).
    async fn record(
        &self,
        tx: &Transaction<'_>,
        message: &IncomingMessage,
        order: orders::OrderRecord,
        outcome: Outcome,
        effects: &mut Effects,
    ) -> Result<(), HandlerError> {
        let order_pk = order.id;
        match outcome {
            Outcome::Voided { label } => {
                floor::mark_voided(tx, order_pk, label.as_deref()).await?;
                let detail = serde_json::json!({
                    "voided_label": label,
                    "reason": "the order was cancelled while its label was being bought",
                });
                audit::record(tx, self.carrier_call(&order, detail)).await?;
                Ok(())
            }
            Outcome::Refused { error } => {
                if order.state != OrderState::Packed {
                    return Ok(());
                }
                floor::mark_failed(tx, order_pk, &error).await?;
                orders::transition(tx, &order, OrderState::NeedsReview, Some(&error), ACTOR).await?;
                Ok(())
            }
            Outcome::Booked { booking, reused } => {
                if order.state == OrderState::Cancelled {
                    // Cancelled while the label was being bought: the next delivery voids it.
                    // A deferral, which uses up none of the message's attempts: a label bought
                    // on its last attempt is voided too, not dead-lettered.
                    return Err(HandlerError::deferred(
                        "the order was cancelled while its label was being bought; voiding it",
                        std::time::Duration::from_millis(500),
                    ));
                }
                if order.state != OrderState::Packed {
                    return Ok(());
                }
                if reused {
                    // An adopted orphaned label (or one found by reference) is the order's now.
                    floor::settle_orphaned_label(tx, order_pk, &booking.external_id, floor::OrphanOutcome::InUse, None)
                        .await?;
                }
                let detail = serde_json::json!({
                    "label": booking.external_id,
                    "tracking_number": booking.tracking_number,
                    "reused_existing_label": reused,
                });
                let call = self.carrier_call(&order, detail);
                floor::record_shipped(
                    tx,
                    &order,
                    &BookedShipment {
                        carrier: &booking.carrier,
                        service_level: &booking.service,
                        tracking_number: &booking.tracking_number,
                        tracking_url: &booking.tracking_url,
                        label_url: booking.label_url.as_deref(),
                        cost_minor: booking.cost_minor,
                        currency: booking.currency.as_deref(),
                        external_id: &booking.external_id,
                        shipped_at: booking.shipped_at,
                    },
                    &call.detail,
                    ACTOR,
                )
                .await?;
                effects.emit(
                    Self::NAME,
                    message,
                    &order.site_id.clone(),
                    Event::OrderShippedV1 {
                        order_id: order.webflow_order_id.clone(),
                    },
                );
                Ok(())
            }
        }
    }
}

/// Builds the worker: the service base (its pool holds one more connection per delivery in
/// flight, for the per-order leases), the carrier from `[carrier]`, and the handler.
pub async fn build(
    settings: Settings,
    shutdown: tokio_util::sync::CancellationToken,
) -> Result<WorkerService<ShipHandler>, StartupError> {
    let carrier = AnyCarrier::from_settings(&settings.carrier).map_err(StartupError::dependency)?;
    let lock_connections = usize::from(settings.base.worker.concurrency);
    let base = ServiceBase::start(ShipHandler::NAME, &settings.base, lock_connections, shutdown).await?;
    let handler = ShipHandler::new(Arc::new(carrier), settings.carrier.ship_from.clone(), base.pool.clone());
    WorkerService::start(handler, &base)
}
