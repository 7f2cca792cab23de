//! How a failed step should be treated, said by the error itself: every library error that can
//! reach a consumer classifies itself, so the consumer runtime decides retries without knowing
//! which library (database, Webflow, carrier) failed.

use std::time::Duration;

/// What to do about a failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureClass {
    /// Might work later (network, timeouts, 5xx, lost connections, serialization conflicts).
    Transient,
    /// Will never work as it is (malformed input, a refusal, a broken invariant).
    Permanent,
    /// Not a failure: something else must happen first (a full rate budget, a busy order).
    /// Try again after the given wait without counting it as an attempt.
    Deferred(Duration),
}

/// An error that knows how it should be handled.
pub trait Classify: std::fmt::Display {
    fn class(&self) -> FailureClass;

    /// A minimum wait the remote side asked for (`Retry-After`), if any.
    fn retry_after(&self) -> Option<Duration> {
        None
    }

    /// A short prefix naming where the failure happened (`database`, `webflow`…).
    fn source_name(&self) -> &'static str;

    /// For a deferral: an opaque token the consumer runtime keeps with the deferred message
    /// (a header) and hands back to the handler when the message returns, e.g. the id of a
    /// rate-budget slot reserved for it.
    fn resume_token(&self) -> Option<String> {
        None
    }
}
