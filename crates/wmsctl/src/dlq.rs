//! Dead-letter queues: the `dead-letters` library, shared with the warehouse console.

pub use dead_letters::*;
