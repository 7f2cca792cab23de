//! The `notify-webflow` worker: the customer-facing write-back.
//!
//! - `order.shipped`: `PATCH` the order with carrier, tracking number and tracking URL, then
//!   `POST .../fulfill` (with the site's email setting). The order becomes `fulfilled`.
//! - `order.refund_requested`: `POST .../refund` once; the order is then cancelled.
//! - `order.address_corrected`: the corrected address is noted on the order's `comment`, once.
//!
//! Exactly once toward the customer: each step is recorded in the write ledger as `pending`
//! before its call and `done` after it. A redelivery skips done steps; a pending step (a crash
//! or a timeout whose outcome is unknown) reads the order first and only writes what is
//! missing, so the fulfilment email is never sent twice. Two deliveries never write for one
//! order at once: a fenced lease (`warehouse_db::locks`) is confirmed before each write and
//! checked when its outcome is recorded. An order refunded in Webflow
//! meanwhile is not fulfilled: it goes to `needs_review`.
//!
//! The process also runs the stock-level sync of the stores with `inventory_sync` on (the
//! `inventory-sync` crate), at the lowest priority of the same budgets. The sync task is
//! supervised: if it ends or panics before shutdown, the consumer drains and the process exits
//! with an error, so Kubernetes restarts it (a worker that consumes but no longer syncs stock
//! would stay Ready while every store's stock goes stale).

use domain::{Event, OrderId, OrderState, SiteId};
use platform::amqp::topology::consumer;
use platform::settings::{Profile, SettingsError, Validate};
use secrecy::SecretString;
use service_base::{ServiceBase, StartupError};
use stores::StoreRegistry;
use warehouse_db::Transaction;
use warehouse_db::audit::{self, AuditEntry, AuditKind};
use warehouse_db::locks::OrderLock;
use warehouse_db::orders;
use warehouse_db::webflow_writes::{self as ledger, StepStatus, WriteStep};
use webflow::{
    CallRecord, FulfillOrderRequest, Order, OrderStatus, RefundOrderRequest, RefundReason, UpdateOrderRequest,
};
use webflow::{WebflowClient, WebflowSettings};
use webflow_gateway::{GatewayError, Priority, WebflowGateway};
use worker::{Effects, Handler, HandlerError, IncomingMessage, Preparation, SeenCheck, WorkerService};

pub const ACTOR: &str = consumer::NOTIFY_WEBFLOW;

service_base::service_settings! {
    pub struct Settings {
        pub webflow: WebflowSettings,
        /// `[inventory_sync]`: the stock-level pushes this worker runs beside the write-back.
        pub inventory_sync: inventory_sync::InventorySyncSettings,
    }
}

impl Validate for Settings {
    fn validate(&mut self) -> Result<(), SettingsError> {
        self.base.validate()?;
        self.webflow.validate()?;
        self.inventory_sync.validate()?;
        self.webflow.require_api_tokens()
    }

    /// Production: the stores' sealed tokens need `secrets.key_file`.
    fn check_profile(&self, profile: Profile) -> Result<(), SettingsError> {
        self.base.secrets.check_profile(profile)
    }
}

pub struct NotifyHandler {
    gateway: WebflowGateway,
    /// The process's pool; sized with one extra connection per delivery in flight, for the
    /// per-order leases (taken, confirmed and renewed around the Webflow calls).
    pool: warehouse_db::Pool,
    /// The live stores (a removed store's messages fail permanently in the gateway).
    stores: StoreRegistry,
}

impl NotifyHandler {
    pub fn new(gateway: WebflowGateway, pool: warehouse_db::Pool, stores: StoreRegistry) -> Self {
        Self { gateway, pool, stores }
    }
}

pub enum Outcome {
    Skip(String),
    Fulfilled,
    RefundedMeanwhile(String),
    Refunded(String),
    Commented,
}

pub struct Prepared {
    order_pk: i64,
    outcome: Outcome,
    calls: Vec<CallRecord>,
    /// Steps done whose ledger mark is written with the outcome (in the same transaction).
    done: Vec<(WriteStep, Option<i32>)>,
    /// The order's lease, checked and ended in the transaction that records the outcome.
    lease: OrderLock,
}

/// One order's write-back session: the calls made and the freshest order seen.
struct Session<'a> {
    handler: &'a NotifyHandler,
    lease: &'a OrderLock,
    site_id: SiteId,
    order_id: OrderId,
    order_pk: i64,
    calls: Vec<CallRecord>,
    seen: Option<Order>,
    /// The budget slot reserved on an earlier delivery (the first call uses it).
    resume: Option<String>,
    /// The ledger as it was when the lease was taken (only the lease holder changes it).
    ledger: ledger::StepStatuses,
    /// The booked shipment's carrier and tracking, read with the ledger.
    tracking: Option<ledger::BookedTracking>,
    /// Steps done and not yet marked in the ledger: the mark goes with the next write's
    /// `pending` (one fenced statement), or with the outcome's transaction. A mark lost in a
    /// crash leaves the step `pending`, which the next delivery reads before writing.
    done: Vec<(WriteStep, Option<i32>)>,
}

impl Session<'_> {
    fn ledger_status(&self, step: &WriteStep) -> StepStatus {
        if self.done.iter().any(|(done, _)| done == step) {
            return StepStatus::Done;
        }
        self.ledger.get(step)
    }

    /// Records a write as pending, right before it is made, with the done marks not yet
    /// written, in one statement that confirms (and extends) the lease first: a holder that
    /// lost it records nothing and never writes to Webflow.
    async fn begin(&mut self, step: &WriteStep, request: &impl serde::Serialize) -> Result<(), HandlerError> {
        let client = self.handler.pool.get().await?;
        let request = serde_json::to_value(request).unwrap_or_default();
        if !ledger::record_fenced(&*client, self.lease, &self.done, Some((step, &request))).await? {
            return Err(lease_lost());
        }
        self.done.clear();
        Ok(())
    }

    /// Notes a write as done; the mark is written with the next `begin` or the outcome.
    fn finish(&mut self, step: &WriteStep, status: Option<u16>) {
        self.done.push((step.clone(), status.map(i32::from)));
    }

    /// Writes the done marks now, under the lease (when the delivery fails after a write).
    async fn flush(&mut self) -> Result<(), HandlerError> {
        if self.done.is_empty() {
            return Ok(());
        }
        let client = self.handler.pool.get().await?;
        if !ledger::record_fenced(&*client, self.lease, &self.done, None).await? {
            return Err(lease_lost());
        }
        self.done.clear();
        Ok(())
    }

    /// Reads the order from Webflow (the truth after an unknown outcome).
    async fn read(&mut self) -> Result<&Order, HandlerError> {
        let response = self
            .call(|client, token, site, id| async move { client.get_order(&token, &site, &id).await })
            .await;
        let response = self.record(response)?;
        Ok(self.seen.insert(response))
    }

    /// One Webflow call about this order at write-back priority (in the budget slot reserved
    /// on an earlier delivery, if any).
    async fn call<T, F, Fut>(&mut self, call: F) -> Result<webflow::ApiResponse<T>, GatewayError>
    where
        F: FnOnce(WebflowClient, SecretString, SiteId, OrderId) -> Fut,
        Fut: std::future::Future<Output = Result<webflow::ApiResponse<T>, webflow::WebflowError>>,
    {
        let (site, id) = (self.site_id.clone(), self.order_id.clone());
        self.handler
            .gateway
            .call_resuming(&self.site_id, Priority::WriteBack, &mut self.resume, |client, token| {
                call(client, token, site, id)
            })
            .await
    }

    /// The write of `step` (announced with `begin`): a call that was not sent is taken back;
    /// the answer is recorded.
    async fn write<F, Fut>(&mut self, step: &WriteStep, call: F) -> Result<Order, HandlerError>
    where
        F: FnOnce(WebflowClient, SecretString, SiteId, OrderId) -> Fut,
        Fut: std::future::Future<Output = Result<webflow::ApiResponse<Order>, webflow::WebflowError>>,
    {
        let response = self.call(call).await;
        self.withdraw_unsent(step, &response).await?;
        self.record(response)
    }

    fn record(&mut self, response: Result<webflow::ApiResponse<Order>, GatewayError>) -> Result<Order, HandlerError> {
        match response {
            Ok(response) => {
                self.calls.push(response.call);
                Ok(response.value)
            }
            Err(error) => {
                if let GatewayError::Api(api) = &error
                    && let Some(call) = api.call()
                {
                    self.calls.push(call.clone());
                }
                Err(HandlerError::classified(error))
            }
        }
    }

    /// A call for `step` was not sent (no slot yet, or a 429): take `begin` back, so the next
    /// try does not read the order first as after an unknown outcome (each read would use the
    /// slot reserved for the write, and the write would never get one).
    async fn withdraw_unsent<T>(
        &self,
        step: &WriteStep,
        response: &Result<T, GatewayError>,
    ) -> Result<(), HandlerError> {
        if let Err(error) = response
            && error.was_not_sent()
        {
            let client = self.handler.pool.get().await?;
            ledger::withdraw(&*client, self.order_pk, step).await?;
        }
        Ok(())
    }

    async fn patch(&mut self, step: &WriteStep, body: UpdateOrderRequest) -> Result<Order, HandlerError> {
        self.write(step, |client, token, site, id| async move {
            client.update_order(&token, &site, &id, &body).await
        })
        .await
    }
}

fn lease_lost() -> HandlerError {
    HandlerError::deferred(
        "the order's lease expired and may be someone else's; not writing to Webflow",
        std::time::Duration::from_secs(1),
    )
}

fn is_refunded(order: &Order) -> bool {
    matches!(order.status, Some(OrderStatus::Refunded | OrderStatus::DisputeLost))
}

impl NotifyHandler {
    async fn write_back_shipment(&self, session: &mut Session<'_>) -> Result<Outcome, HandlerError> {
        let shipment = session
            .tracking
            .clone()
            .ok_or_else(|| HandlerError::permanent("the order is shipped but has no booked shipment"))?;
        let desired = UpdateOrderRequest {
            comment: None,
            shipping_provider: shipment.carrier,
            shipping_tracking: shipment.tracking_number,
            shipping_tracking_url: shipment.tracking_url,
        };

        // Step 1: carrier and tracking.
        match session.ledger_status(&WriteStep::Tracking) {
            StepStatus::Done => {}
            status => {
                let already = if status == StepStatus::Pending {
                    let order = session.read().await?;
                    order.shipping_tracking == desired.shipping_tracking
                        && order.shipping_provider == desired.shipping_provider
                        && order.shipping_tracking_url == desired.shipping_tracking_url
                } else {
                    false
                };
                if !already {
                    session.begin(&WriteStep::Tracking, &desired).await?;
                    let updated = session.patch(&WriteStep::Tracking, desired.clone()).await?;
                    session.seen = Some(updated);
                }
                session.finish(&WriteStep::Tracking, Some(200));
            }
        }

        // Step 2: fulfil, once, unless refunded meanwhile.
        let send_email = self
            .stores
            .by_site(session.site_id.as_str())
            .is_none_or(|s| s.send_fulfillment_email);
        match session.ledger_status(&WriteStep::Fulfill) {
            StepStatus::Done => Ok(Outcome::Fulfilled),
            status => {
                let current = match (&session.seen, status) {
                    (Some(order), StepStatus::New) => Some(order.clone()),
                    // The tracking was written on an earlier delivery (the budget deferred the
                    // fulfilment): the warehouse still has the order `shipped`, so no refund
                    // arrived meanwhile; reading again here would use the slot reserved for
                    // the fulfilment, and it would never get one of its own.
                    (None, StepStatus::New) => None,
                    _ => Some(session.read().await?.clone()),
                };
                if let Some(current) = &current {
                    if current.status == Some(OrderStatus::Fulfilled) {
                        session.finish(&WriteStep::Fulfill, Some(200));
                        return Ok(Outcome::Fulfilled);
                    }
                    if is_refunded(current) {
                        let status = current
                            .status
                            .as_ref()
                            .map(OrderStatus::as_str)
                            .unwrap_or_default()
                            .to_owned();
                        return Ok(Outcome::RefundedMeanwhile(format!(
                            "{status} in Webflow before fulfilment"
                        )));
                    }
                }
                let body = FulfillOrderRequest {
                    send_order_fulfilled_email: send_email,
                };
                session.begin(&WriteStep::Fulfill, &body).await?;
                session
                    .write(&WriteStep::Fulfill, |client, token, site, id| async move {
                        client.fulfill_order(&token, &site, &id, &body).await
                    })
                    .await?;
                session.finish(&WriteStep::Fulfill, Some(200));
                Ok(Outcome::Fulfilled)
            }
        }
    }

    async fn refund(&self, session: &mut Session<'_>, reason: &str) -> Result<Outcome, HandlerError> {
        let status = session.ledger_status(&WriteStep::Refund);
        if status == StepStatus::Done {
            return Ok(Outcome::Refunded(reason.to_owned()));
        }
        if status == StepStatus::Pending && is_refunded(session.read().await?) {
            session.finish(&WriteStep::Refund, Some(200));
            return Ok(Outcome::Refunded(reason.to_owned()));
        }
        let body = RefundOrderRequest {
            reason: Some(RefundReason::from_wire(reason)),
        };
        session.begin(&WriteStep::Refund, &body).await?;
        session
            .write(&WriteStep::Refund, |client, token, site, id| async move {
                client.refund_order(&token, &site, &id, &body).await
            })
            .await?;
        session.finish(&WriteStep::Refund, Some(200));
        Ok(Outcome::Refunded(reason.to_owned()))
    }

    async fn comment(&self, session: &mut Session<'_>, comment: &str) -> Result<Outcome, HandlerError> {
        let digest = ring::digest::digest(&ring::digest::SHA256, comment.as_bytes());
        let step = WriteStep::Comment(hex::encode(digest.as_ref())[..16].to_owned());
        let status = session.ledger_status(&step);
        if status == StepStatus::Done {
            return Ok(Outcome::Commented);
        }
        let present = status == StepStatus::Pending && session.read().await?.comment.as_deref() == Some(comment);
        if !present {
            let body = UpdateOrderRequest {
                comment: Some(comment.to_owned()),
                ..UpdateOrderRequest::default()
            };
            session.begin(&step, &body).await?;
            session.patch(&step, body).await?;
        }
        session.finish(&step, Some(200));
        Ok(Outcome::Commented)
    }
}

impl NotifyHandler {
    async fn prepare_message(&self, message: &IncomingMessage) -> Result<Prepared, HandlerError> {
        let envelope = message.envelope()?;
        let order_id = envelope
            .event
            .order_id()
            .ok_or_else(|| HandlerError::permanent("the event names no order"))?
            .clone();
        let site_id = envelope.site_id.clone();
        // Two deliveries for the same order must not write concurrently: the order is found
        // and its lease taken by one statement.
        let found = OrderLock::try_acquire_order(&self.pool, "notify", &site_id, &order_id, None)
            .await?
            .ok_or_else(|| HandlerError::permanent(format!("order {order_id} is not in the warehouse database")))?;
        let order = found.order;
        let Some(lease) = found.lease else {
            // Not a failure: the other delivery will finish; look again shortly.
            return Err(HandlerError::deferred(
                "another delivery is working on this order",
                std::time::Duration::from_secs(1),
            ));
        };
        // The order's state is read again under the lease: a delivery that waited for it (a
        // duplicate of the event, say) must see what the previous holder did (an order it
        // found refunded is `needs_review` now), not the `shipped` it read before.
        let statuses = async {
            let client = self.pool.get().await?;
            Ok::<_, HandlerError>(ledger::statuses(&*client, order.id).await?)
        };
        let (ledger, state, tracking) = match statuses.await {
            Ok(ledger::WriteBackStart {
                steps,
                state: Some(state),
                tracking,
            }) => (steps, state, tracking),
            Ok(ledger::WriteBackStart { state: None, .. }) => {
                lease.release().await;
                return Err(HandlerError::permanent(format!(
                    "order {order_id} vanished from the warehouse database"
                )));
            }
            Err(error) => {
                lease.release().await;
                return Err(error);
            }
        };
        let mut session = Session {
            handler: self,
            lease: &lease,
            site_id,
            order_id,
            order_pk: order.id,
            calls: Vec::new(),
            seen: None,
            resume: message.resume_token(),
            ledger,
            tracking,
            done: Vec::new(),
        };
        let outcome = self.write(&mut session, &envelope.event, state).await;
        match outcome {
            Ok(outcome) => Ok(Prepared {
                order_pk: order.id,
                outcome,
                calls: session.calls,
                done: session.done,
                lease,
            }),
            Err(error) => {
                // What was written stays known to the next delivery.
                if let Err(flush_error) = session.flush().await {
                    tracing::warn!(error = %flush_error, "cannot mark written steps done; the next delivery reads them first");
                }
                lease.release().await;
                Err(error)
            }
        }
    }
}

impl NotifyHandler {
    async fn write(
        &self,
        session: &mut Session<'_>,
        event: &Event,
        state: OrderState,
    ) -> Result<Outcome, HandlerError> {
        Ok(match event {
            Event::OrderShippedV1 { .. } if state != OrderState::Shipped => Outcome::Skip(format!("order is {state}")),
            Event::OrderShippedV1 { .. } => self.write_back_shipment(session).await?,
            Event::OrderRefundRequestedV1 { reason, .. } => self.refund(session, reason).await?,
            Event::OrderAddressCorrectedV1 { comment, .. } => self.comment(session, comment).await?,
            other => {
                return Err(HandlerError::permanent(format!(
                    "notify-webflow does not handle `{}`",
                    other.routing_key()
                )));
            }
        })
    }
}

impl Handler for NotifyHandler {
    const NAME: &'static str = consumer::NOTIFY_WEBFLOW;
    // Write-backs wait for their store's budget slot outside a worker slot.
    const WAITS_FOR_RATE_BUDGET: bool = true;
    // No look-up per message before `prepare`: a delivery of an event already handled finds
    // the order past `shipped` or its ledger steps `done` (marked in the transaction that
    // recorded the message) and writes nothing to Webflow; the transaction's idempotency
    // record settles it as a duplicate.
    const CHECK_BEFORE_PREPARE: bool = false;
    type Prepared = Prepared;

    async fn prepare(
        &self,
        message: &IncomingMessage,
        _seen: &SeenCheck<'_>,
    ) -> Result<Preparation<Prepared>, HandlerError> {
        self.prepare_message(message).await.map(Preparation::Ready)
    }

    async fn apply(
        &self,
        tx: &Transaction<'_>,
        message: &IncomingMessage,
        prepared: Prepared,
        effects: &mut Effects,
    ) -> Result<(), HandlerError> {
        // Fenced: a holder whose lease expired and was taken over records nothing. The order
        // is locked by the statement that ends the lease.
        let Some(order) = prepared.lease.finish_locking_order(tx).await? else {
            return Err(lease_lost());
        };
        let lease = prepared.lease;
        effects.on_commit(move || lease.committed());
        ledger::finish_many(tx, prepared.order_pk, &prepared.done).await?;
        let entries: Vec<AuditEntry<'_>> = prepared
            .calls
            .iter()
            .map(|call| {
                AuditEntry::for_order(
                    &order,
                    AuditKind::ApiCall,
                    ACTOR,
                    serde_json::to_value(call).unwrap_or_default(),
                )
            })
            .collect();
        audit::record_many(tx, &entries).await?;
        let site_id = order.site_id.clone();
        let order_id = order.webflow_order_id.clone();
        match prepared.outcome {
            Outcome::Skip(reason) => tracing::info!(order_id = %order_id, reason, "nothing to write back"),
            Outcome::Fulfilled => {
                if order.state == OrderState::Shipped {
                    orders::transition(tx, &order, OrderState::Fulfilled, None, ACTOR).await?;
                    effects.emit(Self::NAME, message, &site_id, Event::OrderFulfilledV1 { order_id });
                }
            }
            Outcome::RefundedMeanwhile(reason) => {
                if !order.state.is_terminal() {
                    orders::transition(tx, &order, OrderState::NeedsReview, Some(&reason), ACTOR).await?;
                }
            }
            Outcome::Refunded(reason) => {
                let reason = format!("refunded by an operator ({reason})");
                effects.emit(
                    Self::NAME,
                    message,
                    &site_id,
                    Event::OrderCancelledV1 { order_id, reason },
                );
            }
            Outcome::Commented => {}
        }
        Ok(())
    }
}

/// Builds the worker: the service base (its pool holds one more connection per delivery in
/// flight, for the per-order leases), the stores (refreshed from the database), the Webflow
/// gateway over that pool, the handler, and the stock-level sync beside it.
pub async fn build(
    settings: Settings,
    shutdown: tokio_util::sync::CancellationToken,
) -> Result<NotifyService, StartupError> {
    let lock_connections = usize::from(settings.base.worker.concurrency);
    let base = ServiceBase::start(NotifyHandler::NAME, &settings.base, lock_connections, shutdown.clone()).await?;
    let (stores, gateway) = WebflowGateway::start_with_stores(
        &settings.webflow,
        &settings.base.secrets,
        base.pool.clone(),
        None,
        shutdown.clone(),
    )
    .await
    .map_err(StartupError::dependency)?;
    gateway.export_metrics(&base.registry, shutdown.clone())?;
    // Stock levels back to the storefront run here, beside the write-back: the same gateway,
    // budget and pool, and no further service to deploy (issue 17).
    let mut sync = inventory_sync::InventorySync::new(
        gateway.clone(),
        base.pool.clone(),
        stores.clone(),
        &settings.webflow,
        settings.inventory_sync.clone(),
    );
    // Registered whether or not a store syncs: the stall alert's gauge is always exported.
    if let Some(metrics) = inventory_sync::SyncMetrics::register(&base.registry)? {
        sync = sync.with_metrics(metrics);
    }
    if sync.is_enabled() {
        tracing::info!(sites = ?sync.site_ids(), "inventory sync on");
    }
    let sync = sync.spawn(shutdown);
    let handler = NotifyHandler::new(gateway, base.pool.clone(), stores);
    let worker = WorkerService::start(handler, &base)?;
    Ok(NotifyService { worker, sync })
}

/// The write-back consumer and the stock-level sync task it supervises.
pub struct NotifyService {
    worker: WorkerService<NotifyHandler>,
    sync: tokio::task::JoinHandle<()>,
}

impl NotifyService {
    pub fn runtime(&self) -> &worker::WorkerRuntime<NotifyHandler> {
        self.worker.runtime()
    }

    pub fn health_port(&self) -> u16 {
        self.worker.health_port()
    }

    /// Consumes until `shutdown`. If the sync task ends or panics first, drains the consumer
    /// and fails, so the process exits with an error and is restarted.
    pub async fn run_until_stopped(self, shutdown: tokio_util::sync::CancellationToken) -> std::io::Result<()> {
        let worker = self.worker;
        supervise(|stop| worker.run_until_stopped(stop), Some(self.sync), shutdown).await
    }
}

impl platform::service::RunUntilStopped for NotifyService {
    async fn run_until_stopped(self, shutdown: tokio_util::sync::CancellationToken) -> std::io::Result<()> {
        NotifyService::run_until_stopped(self, shutdown).await
    }
}

/// Runs `run` (given a token that stops it) until `shutdown`, watching `task`: when `task`
/// ends before `shutdown` (returned or panicked), `run` is stopped and drained, and the
/// result is an error naming why.
async fn supervise<F, Fut>(
    run: F,
    task: Option<tokio::task::JoinHandle<()>>,
    shutdown: tokio_util::sync::CancellationToken,
) -> std::io::Result<()>
where
    F: FnOnce(tokio_util::sync::CancellationToken) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let stop = shutdown.child_token();
    let running = run(stop.clone());
    tokio::pin!(running);
    let Some(mut task) = task else {
        running.await;
        return Ok(());
    };
    tokio::select! {
        () = &mut running => Ok(()),
        ended = &mut task => {
            if shutdown.is_cancelled() {
                running.await;
                return Ok(());
            }
            let why = match ended {
                Err(error) if error.is_panic() => "panicked",
                _ => "ended",
            };
            tracing::error!(why, "the inventory sync task stopped: draining the consumer and exiting, to be restarted");
            stop.cancel();
            running.await;
            Err(std::io::Error::other(format!("the inventory sync task {why}")))
        }
    }
}

#[cfg(test)]
mod supervision_tests {
    use super::supervise;
    use tokio_util::sync::CancellationToken;

    /// A stand-in consumer: runs until stopped, then says it drained.
    fn consumer(drained: std::sync::Arc<std::sync::atomic::AtomicBool>) -> impl FnOnce(CancellationToken) -> Run {
        move |stop| {
            Box::pin(async move {
                stop.cancelled().await;
                drained.store(true, std::sync::atomic::Ordering::SeqCst);
            })
        }
    }

    type Run = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

    #[tokio::test]
    async fn a_panicking_sync_task_drains_the_consumer_and_fails_the_process() {
        let drained = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let task = tokio::spawn(async { panic!("the sync loop broke") });
        let shutdown = CancellationToken::new();
        let result = supervise(consumer(drained.clone()), Some(task), shutdown.clone()).await;
        let error = result.expect_err("the process must fail");
        assert!(error.to_string().contains("panicked"), "{error}");
        assert!(drained.load(std::sync::atomic::Ordering::SeqCst));
        assert!(!shutdown.is_cancelled(), "only this service's consumer is stopped");
    }

    #[tokio::test]
    async fn a_sync_task_that_returns_early_fails_the_process() {
        let drained = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let task = tokio::spawn(async {});
        let error = supervise(consumer(drained.clone()), Some(task), CancellationToken::new())
            .await
            .expect_err("the process must fail");
        assert!(error.to_string().contains("ended"), "{error}");
        assert!(drained.load(std::sync::atomic::Ordering::SeqCst));
    }

    #[tokio::test]
    async fn on_shutdown_both_stop_and_the_process_succeeds() {
        let drained = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let shutdown = CancellationToken::new();
        let sync_stop = shutdown.clone();
        let task = tokio::spawn(async move { sync_stop.cancelled().await });
        shutdown.cancel();
        supervise(consumer(drained.clone()), Some(task), shutdown)
            .await
            .expect("a clean stop");
        assert!(drained.load(std::sync::atomic::Ordering::SeqCst));
    }
}
