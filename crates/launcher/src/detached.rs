//! `wms-stack start` and `wms-stack stop`, for the benchmark scripts: one process started in
//! the background with the caller's environment, a free health port and a log file, returned
//! from once ready (its pid on stdout); and processes stopped with SIGTERM, returned from once
//! they are gone.

use crate::{LaunchError, ProcessSpec, Processes};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// One process for `wms-stack start`.
pub struct Start {
    /// Where the binaries are.
    pub bin_dir: PathBuf,
    /// Its log file.
    pub log: PathBuf,
    /// Append to the log rather than start it afresh.
    pub append: bool,
    /// The binary.
    pub name: String,
    /// `webflow-sim` only: the port it serves on (and is ready when it answers there).
    pub sim_port: Option<u16>,
    /// Its health listener's port; a free one when not given.
    pub health_port: Option<u16>,
    pub args: Vec<String>,
    /// How long it may take to be ready.
    pub timeout: Duration,
}

/// Starts the process, waits until it is ready, and leaves it running; returns its pid.
pub async fn start(start: &Start) -> Result<u32, LaunchError> {
    let log_dir = start.log.parent().unwrap_or(Path::new("."));
    let log_name = start
        .log
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or(&start.name)
        .to_owned();
    let mut processes = Processes::new(&start.bin_dir, log_dir, Vec::new())?.append_logs(start.append);
    let mut spec = match start.sim_port {
        Some(port) => ProcessSpec::simulator(port, &start.args),
        None => ProcessSpec::service(&start.name).with_args(start.args.iter().cloned()),
    };
    spec.binary = start.name.clone();
    spec.name = log_name.clone();
    spec.health_port = start.health_port;
    let pid = processes.spawn(spec)?;
    processes.wait_ready(&log_name, start.timeout).await?;
    processes.leave_running();
    Ok(pid)
}

/// SIGTERM to each pid, then waits until every one has exited (at most `grace`).
pub async fn stop(pids: &[u32], grace: Duration) -> Result<(), LaunchError> {
    for pid in pids {
        crate::processes::signal_term(*pid)?;
    }
    let deadline = tokio::time::Instant::now() + grace;
    while pids.iter().any(|pid| is_running(*pid)) {
        if tokio::time::Instant::now() >= deadline {
            let left: Vec<String> = pids.iter().filter(|p| is_running(**p)).map(u32::to_string).collect();
            return Err(LaunchError::DidNotStop {
                name: format!("pid {}", left.join(", ")),
                grace,
            });
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

/// Whether `pid` is a live process (a zombie, exited and not yet reaped, is not).
fn is_running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            let after_name = stat.rsplit_once(')')?.1;
            after_name.split_whitespace().next().map(|state| state != "Z")
        })
        .unwrap_or(false)
}

/// What `wms-stack start` prints: the pid, alone on its line, for `pid=$(wms-stack start …)`.
#[allow(clippy::print_stdout, reason = "the pid is the command's output")]
pub fn print_pid(pid: u32) {
    println!("{pid}");
}
