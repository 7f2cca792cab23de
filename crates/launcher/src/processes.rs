//! The processes of one stack: each started from its binary with the stack's environment and a
//! health listener of its own, its output in `<log dir>/<name>.log`, waited for until ready,
//! and stopped with SIGTERM (each must exit cleanly) or killed.

use crate::LaunchError;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

/// How a started process shows it is ready.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Readiness {
    /// `/readyz` of its health listener answers 200 (every service and worker).
    Health,
    /// This URL answers 200 (the simulator: an endpoint only a simulator has, so another
    /// listener on its port is not taken for it).
    Url(String),
}

/// One process to start.
#[derive(Clone, Debug)]
pub struct ProcessSpec {
    /// Its name in the stack (the log file's name, what the other calls refer to).
    pub name: String,
    /// The binary in the stack's binary directory.
    pub binary: String,
    pub args: Vec<String>,
    /// Settings for this process only, on top of the stack's.
    pub env: Vec<(String, String)>,
    /// Its health listener's port (`WMS__HEALTH__BIND`); a free one when not given.
    pub health_port: Option<u16>,
    pub readiness: Readiness,
}

impl ProcessSpec {
    /// The binary `name`, ready when its health listener says so.
    pub fn service(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            binary: name.to_owned(),
            args: Vec::new(),
            env: Vec::new(),
            health_port: None,
            readiness: Readiness::Health,
        }
    }

    /// `webflow-sim` serving on `port`, with these arguments besides `--bind`.
    pub fn simulator(port: u16, args: &[String]) -> Self {
        let mut spec = Self::service("webflow-sim");
        spec.args = ["--bind".to_owned(), format!("127.0.0.1:{port}")]
            .into_iter()
            .chain(args.iter().cloned())
            .collect();
        spec.readiness = Readiness::Url(format!("http://127.0.0.1:{port}/_sim/faults"));
        spec
    }

    pub fn with_args(mut self, args: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    pub fn with_env(mut self, key: &str, value: impl Into<String>) -> Self {
        self.env.push((key.to_owned(), value.into()));
        self
    }

    pub fn with_health_port(mut self, port: u16) -> Self {
        self.health_port = Some(port);
        self
    }
}

/// A started process.
struct Running {
    spec: ProcessSpec,
    child: Child,
    health_port: u16,
}

/// The processes of one stack.
pub struct Processes {
    bin_dir: PathBuf,
    log_dir: PathBuf,
    env: Vec<(String, String)>,
    env_removed: Vec<String>,
    /// Append to the log files (across restarts) rather than start them afresh.
    append_logs: bool,
    running: Vec<Running>,
    http: reqwest::Client,
}

impl Processes {
    /// Processes from the binaries in `bin_dir`, logging into `log_dir` (created), each with
    /// `env` on top of the launcher's environment.
    pub fn new(bin_dir: &Path, log_dir: &Path, env: Vec<(String, String)>) -> Result<Self, LaunchError> {
        crate::install_crypto_provider();
        std::fs::create_dir_all(log_dir).map_err(|source| LaunchError::Io {
            what: format!("create {}", log_dir.display()),
            source,
        })?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(LaunchError::Http)?;
        Ok(Self {
            bin_dir: bin_dir.to_owned(),
            log_dir: log_dir.to_owned(),
            env,
            env_removed: Vec::new(),
            append_logs: true,
            running: Vec::new(),
            http,
        })
    }

    /// Starts no process with `key` in its environment (e.g. `WMS_CONFIG`, when the stack is
    /// configured only through `WMS__…` variables).
    pub fn without_env(mut self, key: &str) -> Self {
        self.env_removed.push(key.to_owned());
        self
    }

    /// Whether each start appends to the process's log (the default) or truncates it.
    pub fn append_logs(mut self, append: bool) -> Self {
        self.append_logs = append;
        self
    }

    pub fn log_dir(&self) -> &Path {
        &self.log_dir
    }

    /// The stack's settings every process gets.
    pub fn env(&self) -> &[(String, String)] {
        &self.env
    }

    /// The path of the binary `name`; fails when it was not built.
    pub fn binary(&self, name: &str) -> Result<PathBuf, LaunchError> {
        let path = self.bin_dir.join(name);
        if path.exists() {
            Ok(path)
        } else {
            Err(LaunchError::MissingBinary(path))
        }
    }

    /// A command for the binary `name` with the stack's environment.
    pub fn command(&self, name: &str) -> Result<Command, LaunchError> {
        let mut command = Command::new(self.binary(name)?);
        for key in &self.env_removed {
            command.env_remove(key);
        }
        // A start-up error prints as one line, not buried under a backtrace (panics keep theirs).
        command.env("RUST_LIB_BACKTRACE", "0");
        command.envs(self.env.iter().map(|(k, v)| (k, v)));
        Ok(command)
    }

    /// Starts `spec` (again, if it ran before); returns its process id.
    pub fn spawn(&mut self, spec: ProcessSpec) -> Result<u32, LaunchError> {
        let health_port = match spec.health_port {
            Some(port) => port,
            None => crate::ports::free_port()?,
        };
        let log_path = self.log_path(&spec.name);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .append(self.append_logs)
            .truncate(!self.append_logs)
            .open(&log_path)
            .map_err(|source| LaunchError::Io {
                what: format!("open {}", log_path.display()),
                source,
            })?;
        let stderr = log.try_clone().map_err(|source| LaunchError::Io {
            what: format!("open {}", log_path.display()),
            source,
        })?;
        let mut command = self.command(&spec.binary)?;
        command
            .args(&spec.args)
            .envs(spec.env.iter().map(|(k, v)| (k, v)))
            .env("WMS__HEALTH__BIND", format!("127.0.0.1:{health_port}"))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(stderr);
        let child = command.spawn().map_err(|source| LaunchError::Io {
            what: format!("start {}", spec.binary),
            source,
        })?;
        let pid = child.id();
        // A process of the same name started before is replaced, not orphaned.
        if let Some(index) = self.running.iter().position(|r| r.spec.name == spec.name) {
            let mut old = self.running.remove(index);
            let _ = old.child.kill();
            let _ = old.child.wait();
        }
        self.running.push(Running {
            spec,
            child,
            health_port,
        });
        Ok(pid)
    }

    /// Waits until `name` is ready (see [`Readiness`]); fails with its log's end if it exits
    /// first or is not ready within `timeout`.
    pub async fn wait_ready(&mut self, name: &str, timeout: Duration) -> Result<(), LaunchError> {
        let url = self.ready_url(name)?;
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let answer = self.http.get(&url).send().await;
            let ready = answer.as_ref().is_ok_and(|r| r.status() == 200);
            if let Some(status) = self.exit_status(name)? {
                return Err(LaunchError::Exited {
                    name: name.to_owned(),
                    status,
                    log: self.log_tail(name),
                });
            }
            if ready {
                return Ok(());
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(LaunchError::NotReady {
                    name: name.to_owned(),
                    url,
                    answer: match answer {
                        Ok(response) => response.status().to_string(),
                        Err(error) => error.to_string(),
                    },
                    log: self.log_tail(name),
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Starts each of `specs`, then waits until every one is ready.
    pub async fn start_all(&mut self, specs: Vec<ProcessSpec>, timeout: Duration) -> Result<(), LaunchError> {
        let names: Vec<String> = specs.iter().map(|s| s.name.clone()).collect();
        for spec in specs {
            self.spawn(spec)?;
        }
        for name in &names {
            self.wait_ready(name, timeout).await?;
        }
        Ok(())
    }

    fn ready_url(&self, name: &str) -> Result<String, LaunchError> {
        let running = self.running(name)?;
        Ok(match &running.spec.readiness {
            Readiness::Health => format!("http://127.0.0.1:{}/readyz", running.health_port),
            Readiness::Url(url) => url.clone(),
        })
    }

    fn running(&self, name: &str) -> Result<&Running, LaunchError> {
        self.running
            .iter()
            .find(|r| r.spec.name == name)
            .ok_or_else(|| LaunchError::NotRunning(name.to_owned()))
    }

    fn running_mut(&mut self, name: &str) -> Result<&mut Running, LaunchError> {
        self.running
            .iter_mut()
            .find(|r| r.spec.name == name)
            .ok_or_else(|| LaunchError::NotRunning(name.to_owned()))
    }

    /// How `name` exited, or `None` while it runs.
    pub fn exit_status(&mut self, name: &str) -> Result<Option<ExitStatus>, LaunchError> {
        let running = self.running_mut(name)?;
        running.child.try_wait().map_err(|source| LaunchError::Io {
            what: format!("check on {name}"),
            source,
        })
    }

    /// The names of the processes started, in order.
    pub fn names(&self) -> Vec<String> {
        self.running.iter().map(|r| r.spec.name.clone()).collect()
    }

    pub fn pid(&self, name: &str) -> Result<u32, LaunchError> {
        Ok(self.running(name)?.child.id())
    }

    pub fn health_port(&self, name: &str) -> Result<u16, LaunchError> {
        Ok(self.running(name)?.health_port)
    }

    /// The `/metrics` URL of `name`'s health listener.
    pub fn metrics_url(&self, name: &str) -> Result<String, LaunchError> {
        Ok(format!("http://127.0.0.1:{}/metrics", self.health_port(name)?))
    }

    pub fn log_path(&self, name: &str) -> PathBuf {
        self.log_dir.join(format!("{name}.log"))
    }

    /// Everything `name` logged so far.
    pub fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.log_path(name)).unwrap_or_default()
    }

    /// The last lines `name` logged, for failure messages.
    pub fn log_tail(&self, name: &str) -> String {
        let path = self.log_path(name);
        let log = self.log(name);
        let lines: Vec<&str> = log.lines().collect();
        let tail = lines[lines.len().saturating_sub(20)..].join("\n");
        format!("{} ends:\n{tail}", path.display())
    }

    /// Forgets every process without stopping it: they run on after the launcher exits
    /// (`wms-stack start`; the caller stops them by pid).
    pub fn leave_running(mut self) {
        self.running.clear();
    }

    /// SIGKILL: no chance to finish, ack or clean up.
    pub fn kill_9(&mut self, name: &str) -> Result<(), LaunchError> {
        let running = self.running_mut(name)?;
        let io = |source| LaunchError::Io {
            what: format!("kill {name}"),
            source,
        };
        running.child.kill().map_err(io)?;
        running.child.wait().map_err(io)?;
        self.running.retain(|r| r.spec.name != name);
        Ok(())
    }

    /// SIGTERM to every process, in the order they started; each must exit 0 within `grace`.
    /// Every process is stopped even when one fails; the first failure is returned.
    pub fn stop_all(&mut self, grace: Duration) -> Result<(), LaunchError> {
        let mut outcome = Ok(());
        for mut running in std::mem::take(&mut self.running) {
            let name = running.spec.name.clone();
            let stopped = terminate(&mut running.child, &name, grace);
            if outcome.is_ok() {
                outcome = stopped;
            }
        }
        outcome
    }

    /// Runs the binary `name` with `args` to completion (e.g. `reconcile --once`), its health
    /// listener on any port; fails unless it exits 0 within `timeout`.
    pub async fn run_once(&self, name: &str, args: &[&str], timeout: Duration) -> Result<(), LaunchError> {
        let mut command = tokio::process::Command::from(self.command(name)?);
        command
            .args(args)
            .env("WMS__HEALTH__BIND", "127.0.0.1:0")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            // A run that takes too long is killed with the future that waited for it.
            .kill_on_drop(true);
        let output = tokio::time::timeout(timeout, command.output())
            .await
            .map_err(|_| LaunchError::TookTooLong {
                name: name.to_owned(),
                timeout,
            })?
            .map_err(|source| LaunchError::Io {
                what: format!("run {name}"),
                source,
            })?;
        if output.status.success() {
            Ok(())
        } else {
            Err(LaunchError::Failed {
                name: name.to_owned(),
                status: output.status,
                stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            })
        }
    }
}

impl Drop for Processes {
    /// Whatever still runs (a failed test, a launcher that errs) is killed, never left behind.
    fn drop(&mut self) {
        for running in &mut self.running {
            let _ = running.child.kill();
            let _ = running.child.wait();
        }
    }
}

/// SIGTERM `child`, then waits up to `grace` for it to exit 0.
fn terminate(child: &mut Child, name: &str, grace: Duration) -> Result<(), LaunchError> {
    if child.try_wait().ok().flatten().is_none() {
        signal_term(child.id())?;
    }
    let deadline = std::time::Instant::now() + grace;
    loop {
        let exited = child.try_wait().map_err(|source| LaunchError::Io {
            what: format!("check on {name}"),
            source,
        })?;
        if let Some(status) = exited {
            return if status.success() {
                Ok(())
            } else {
                Err(LaunchError::UncleanExit {
                    name: name.to_owned(),
                    status,
                })
            };
        }
        if std::time::Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(LaunchError::DidNotStop {
                name: name.to_owned(),
                grace,
            });
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Sends SIGTERM to `pid` (with `kill`: the workspace forbids unsafe code, so no libc).
pub fn signal_term(pid: u32) -> Result<(), LaunchError> {
    Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .stderr(Stdio::null())
        .status()
        .map(|_| ())
        .map_err(|source| LaunchError::Io {
            what: format!("kill -TERM {pid}"),
            source,
        })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests fail loudly")]
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    /// A directory of stand-in "binaries" (shell scripts), removed when dropped.
    struct FakeBinaries(PathBuf);

    impl FakeBinaries {
        fn new(test: &str) -> Self {
            let dir = std::env::temp_dir().join(format!("launcher-{test}-{}", std::process::id()));
            std::fs::create_dir_all(&dir).unwrap();
            Self(dir)
        }

        fn add(&self, name: &str, script: &str) {
            let path = self.0.join(name);
            std::fs::write(&path, format!("#!/bin/sh\n{script}\n")).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
    }

    impl Drop for FakeBinaries {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[tokio::test]
    async fn a_process_that_exits_instead_of_becoming_ready_is_reported_with_its_log() {
        let bins = FakeBinaries::new("exits");
        bins.add("broken", "echo \"cannot bind: Address already in use\" >&2; exit 3");
        let mut processes = Processes::new(&bins.0, &bins.0.join("logs"), Vec::new()).unwrap();
        processes.spawn(ProcessSpec::service("broken")).unwrap();
        let error = processes
            .wait_ready("broken", Duration::from_secs(10))
            .await
            .unwrap_err()
            .to_string();
        assert!(error.starts_with("broken exited (exit status: 3)"), "{error}");
        assert!(error.contains("Address already in use"), "{error}");
    }

    #[tokio::test]
    async fn processes_get_the_stack_settings_and_stop_on_sigterm() {
        let bins = FakeBinaries::new("settings");
        // Writes its settings to its log, then runs until SIGTERM, which it exits 0 on.
        bins.add(
            "service",
            "echo \"$STACK_SETTING $WMS__HEALTH__BIND $1\"; trap 'exit 0' TERM; while :; do sleep 0.05; done",
        );
        let env = vec![("STACK_SETTING".to_owned(), "shared".to_owned())];
        let mut processes = Processes::new(&bins.0, &bins.0.join("logs"), env).unwrap();
        processes
            .spawn(
                ProcessSpec::service("service")
                    .with_health_port(4242)
                    .with_args(["first"]),
            )
            .unwrap();
        let logged = crate::tests::eventually(|| processes.log("service")).await;
        assert_eq!(logged.trim(), "shared 127.0.0.1:4242 first");
        assert!(processes.exit_status("service").unwrap().is_none(), "it runs");
        processes.stop_all(Duration::from_secs(10)).unwrap();
        assert!(processes.names().is_empty());
    }

    #[test]
    fn a_binary_that_was_not_built_is_named() {
        let bins = FakeBinaries::new("missing");
        let mut processes = Processes::new(&bins.0, &bins.0.join("logs"), Vec::new()).unwrap();
        let error = processes
            .spawn(ProcessSpec::service("ingress"))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("ingress is missing: build the binaries first"),
            "{error}"
        );
    }
}
