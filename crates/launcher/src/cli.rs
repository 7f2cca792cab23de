//! The `wms-stack` command line: `run` is `make run`; `start` and `stop` are the benchmark
//! scripts' process launching.

use crate::{LaunchError, detached, local};
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Parser)]
#[command(about = "Starts the WMS bridge's processes: the whole stack, or one at a time for the benchmarks")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// The whole pipeline locally on built-in defaults until Ctrl-C (`make run`).
    Run(local::RunOptions),
    /// Starts one binary in the background with this environment, a free health port and a
    /// log file; returns once it is ready, printing its pid.
    Start {
        /// The binary (ingress, enrich, reserve, ship, notify-webflow, warehouse, reconcile, webflow-sim).
        name: String,
        /// Where the binaries are.
        #[arg(long, env = "BIN", default_value = "target/release")]
        bin: PathBuf,
        /// Its log file.
        #[arg(long)]
        log: PathBuf,
        /// Append to the log instead of starting it afresh.
        #[arg(long)]
        append: bool,
        /// The simulator's port (`webflow-sim` only: it serves there, and is ready when it answers).
        #[arg(long)]
        sim_port: Option<u16>,
        /// Its health listener's port (default: a free one).
        #[arg(long)]
        health_port: Option<u16>,
        /// Seconds to wait for it to be ready.
        #[arg(long, default_value_t = 60)]
        timeout_secs: u64,
        /// Its arguments.
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// SIGTERM to each pid; returns once all have exited.
    Stop {
        pids: Vec<u32>,
        /// Seconds to wait for them to exit.
        #[arg(long, default_value_t = 30)]
        grace_secs: u64,
    },
}

/// Runs one command of the command line.
pub async fn run(command: Command) -> Result<(), LaunchError> {
    match command {
        Command::Run(options) => local::run(options).await?,
        Command::Start {
            name,
            bin,
            log,
            append,
            sim_port,
            health_port,
            timeout_secs,
            args,
        } => {
            let start = detached::Start {
                bin_dir: bin,
                log,
                append,
                name,
                sim_port,
                health_port,
                args,
                timeout: Duration::from_secs(timeout_secs),
            };
            let pid = detached::start(&start).await?;
            detached::print_pid(pid);
        }
        Command::Stop { pids, grace_secs } => detached::stop(&pids, Duration::from_secs(grace_secs)).await?,
    }
    Ok(())
}
