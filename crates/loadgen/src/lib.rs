//! Benchmarks as code: every number in docs/benchmarks.md comes from here.

pub mod raw_http;
pub mod stats;
pub mod workload;
