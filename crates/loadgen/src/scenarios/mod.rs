//! One module per `wms-loadgen` subcommand: its command-line options and its run, which
//! prints its report to stdout.

#![allow(clippy::print_stdout, reason = "the scenarios report to stdout")]

pub mod fair;
pub mod flow;
pub mod ingress;
pub mod pipeline;
pub mod summary;

use crate::stats::Report;

/// The reports as one JSON line, for scripts that collect the numbers.
fn print_json(reports: &[Report]) {
    if let Ok(json) = serde_json::to_string(reports) {
        println!("json: {json}");
    }
}
