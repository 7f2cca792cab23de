//! A consumer's worker slots, and waiting for a timed slot (a Webflow rate budget's) without
//! holding one.
//!
//! A message handler that must wait for its turn on a rate budget would otherwise sleep inside
//! one of the worker's concurrency slots: a busy store's calls then fill every slot and the next
//! message in the shared queue (another store's) is not even read. The consumer runtime runs
//! each handler inside [`WorkerSlots::run`]; code deep inside the handler (the Webflow gateway)
//! calls [`wait_outside_slot`], which gives the slot back for the wait and takes one again
//! before going on. The delivery itself stays prefetched, so the runtime sizes its AMQP prefetch
//! as `concurrency + max_waiting`: up to `max_waiting` waits never stop it reading the queue.
//! Outside a worker (a job, a loop, a test) [`wait_outside_slot`] just sleeps.
//!
//! Here rather than in the `worker` crate: the Webflow gateway calls [`wait_outside_slot`], and
//! the jobs and tools that use the gateway (reconciliation, `wmsctl`) must not depend on the
//! consumer runtime.

use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

tokio::task_local! {
    static HELD: Arc<HeldSlot>;
}

/// The slot a handler holds, which it may give back while it waits.
struct HeldSlot {
    slots: Arc<Semaphore>,
    permit: Mutex<Option<OwnedSemaphorePermit>>,
    waiting: Option<prometheus::IntGauge>,
}

impl HeldSlot {
    fn put(&self, permit: Option<OwnedSemaphorePermit>) -> Option<OwnedSemaphorePermit> {
        let mut held = self.permit.lock().unwrap_or_else(PoisonError::into_inner);
        std::mem::replace(&mut *held, permit)
    }
}

/// `concurrency` slots shared by every delivery of one consumer.
#[derive(Clone)]
pub struct WorkerSlots {
    slots: Arc<Semaphore>,
    waiting: Option<prometheus::IntGauge>,
}

impl WorkerSlots {
    pub fn new(concurrency: usize) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(concurrency.max(1))),
            waiting: None,
        }
    }

    /// Counts the handlers waiting outside their slot in `gauge`.
    pub fn with_waiting_gauge(mut self, gauge: prometheus::IntGauge) -> Self {
        self.waiting = Some(gauge);
        self
    }

    /// Slots free right now.
    pub fn available(&self) -> usize {
        self.slots.available_permits()
    }

    /// Waits for a slot, then runs `work` holding it (except while `work` waits in
    /// [`wait_outside_slot`]).
    pub async fn run<F: Future>(&self, work: F) -> F::Output {
        let permit = self.slots.clone().acquire_owned().await.ok();
        let held = Arc::new(HeldSlot {
            slots: self.slots.clone(),
            permit: Mutex::new(permit),
            waiting: self.waiting.clone(),
        });
        HELD.scope(held, work).await
    }
}

/// Sleeps for `wait`. Inside [`WorkerSlots::run`] the worker slot is given back for the sleep
/// and taken again after it (behind handlers already waiting for one), so other deliveries are
/// handled meanwhile.
pub async fn wait_outside_slot(wait: Duration) {
    if wait.is_zero() {
        return;
    }
    let Ok(held) = HELD.try_with(Arc::clone) else {
        tokio::time::sleep(wait).await;
        return;
    };
    drop(held.put(None));
    if let Some(gauge) = &held.waiting {
        gauge.inc();
    }
    tokio::time::sleep(wait).await;
    if let Some(gauge) = &held.waiting {
        gauge.dec();
    }
    let permit = held.slots.clone().acquire_owned().await.ok();
    drop(held.put(permit));
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};

    #[tokio::test(start_paused = true)]
    async fn a_handler_waiting_for_its_turn_lets_others_use_its_slot() {
        let slots = WorkerSlots::new(1);
        let woke = Arc::new(AtomicBool::new(false));
        let sleeper = tokio::spawn({
            let (slots, woke) = (slots.clone(), woke.clone());
            async move {
                slots
                    .run(async {
                        wait_outside_slot(Duration::from_secs(10)).await;
                        woke.store(true, Ordering::SeqCst);
                    })
                    .await
            }
        });
        tokio::task::yield_now().await;
        // The only slot is free while the first handler waits: a second one runs meanwhile.
        slots.run(async {}).await;
        assert!(
            !woke.load(Ordering::SeqCst),
            "the second handler did not wait for the first"
        );
        sleeper.await.expect("sleeper");
        assert!(woke.load(Ordering::SeqCst));
        assert_eq!(slots.available(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_handler_takes_its_slot_back_before_going_on() {
        let slots = WorkerSlots::new(1);
        slots
            .run(async {
                wait_outside_slot(Duration::from_millis(5)).await;
                assert_eq!(slots.available(), 0, "the slot is held again after the wait");
            })
            .await;
        assert_eq!(slots.available(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn outside_a_worker_it_only_sleeps() {
        let started = tokio::time::Instant::now();
        wait_outside_slot(Duration::from_secs(3)).await;
        assert!(started.elapsed() >= Duration::from_secs(3));
    }
}
