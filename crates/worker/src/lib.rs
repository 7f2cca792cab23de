//! The consumer runtime shared by every worker.
//!
//! A handler says *what* a message means; the runtime alone decides what happens to the
//! delivery: ack, retry later through the broker's delay queues, or dead-letter with reason
//! headers. The handler's state change, the idempotency record and the events it emits are
//! written in one transaction; events are published after commit and the delivery is acked
//! only once they are confirmed, so a crash at any point leaves no duplicate and no loss.

pub mod error;
pub mod message;
pub mod metrics;
pub mod outbox;
pub mod runtime;
pub mod service;
pub mod settings;
pub mod webflow_gateway;

pub use error::{ErrorKind, HandlerError};
pub use message::{Effects, IncomingMessage};
pub use runtime::{Disposition, Handler, SeenCheck, WorkerRuntime};
pub use settings::WorkerSettings;
