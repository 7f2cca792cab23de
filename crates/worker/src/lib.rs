//! The consumer runtime shared by every worker.
//!
//! A handler says *what* a message means; the runtime alone decides what happens to the
//! delivery: ack, retry later through the broker's delay queues, or dead-letter with reason
//! headers. The handler's state change, the idempotency record and the events it emits are
//! written in one transaction; events are published after commit and the delivery is acked
//! only once they are confirmed, so a crash at any point leaves no duplicate and no loss.
//!
//! The runtime knows the warehouse database (idempotency, outbox) and RabbitMQ; it knows
//! nothing of Webflow or carriers: their errors classify themselves (`domain::Classify`).

pub mod error;
pub mod message;
pub mod metrics;
pub mod runtime;
pub mod service;

pub use error::{ErrorKind, HandlerError};
pub use message::{DEFERRED_SINCE, Effects, IncomingMessage, RESUME_TOKEN};
pub use runtime::{Disposition, Handler, Preparation, SeenCheck, WorkerRuntime};
pub use service::WorkerService;
pub use service_base::{BaseSettings, ServiceBase, StartupError, WorkerSettings};
