//! `wmsctl`: what an operator on call needs, as a library the binary and the tests share.

pub mod dlq;
pub mod output;
pub mod stores;
