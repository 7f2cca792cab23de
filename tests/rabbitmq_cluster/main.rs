//! A real 3-node RabbitMQ cluster loses the node that leads the work queues mid-stream
//! (`kill -9`), with every service its own process pointed at the three addresses: every order
//! is still fulfilled in Webflow exactly once, and the test reports how long the pipeline
//! stalled (docs/runbook.md records the figure).
//!
//! The nodes are started beside the machine's broker with the installed `rabbitmq-server`, each
//! with its own node name (unique per run), AMQP and distribution ports, data and log
//! directories, configuration file (the machine's pins 5672), an empty plugin list (no
//! management) and an Erlang cookie of this run (`-setcookie`), so they can neither reach nor be
//! reached by the machine's node. `rabbitmq-server` must run as the `rabbitmq` user, so this
//! test needs root. [`Cluster`]'s `Drop` stops and kills the nodes (their process groups, then
//! any process still carrying this run's cookie) and removes their directories, also when the
//! test fails. Its own test target, so it never runs beside the other tests.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

use e2e::stack::{Stack, StackOptions, free_port};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const RABBITMQ_SERVER: &str = "/usr/lib/rabbitmq/bin/rabbitmq-server";
const RABBITMQCTL: &str = "rabbitmqctl";
/// Generous for three nodes booting at once on two shared cores, but bounded.
const NODE_START: Duration = Duration::from_secs(240);
const ORDERS: u32 = 300;

struct Node {
    name: String,
    amqp_port: u16,
    dir: PathBuf,
    child: Option<Child>,
    /// The beam's OS pid, once it answered.
    os_pid: Option<u32>,
}

struct Cluster {
    base: PathBuf,
    cookie: String,
    uid: u32,
    gid: u32,
    nodes: Vec<Node>,
}

fn id(flag: &str) -> u32 {
    let output = Command::new("id").args([flag, "rabbitmq"]).output().unwrap();
    assert!(
        output.status.success(),
        "there is no `rabbitmq` user: is rabbitmq-server installed?"
    );
    String::from_utf8_lossy(&output.stdout).trim().parse().unwrap()
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

impl Cluster {
    /// Starts three nodes, waits until each is up, joins the second and third to the first.
    fn start() -> Self {
        assert!(
            Path::new(RABBITMQ_SERVER).exists(),
            "{RABBITMQ_SERVER} is missing: this test needs the rabbitmq-server package"
        );
        assert!(
            is_root(),
            "this test starts rabbitmq-server as the rabbitmq user: run it as root"
        );
        let suffix = format!(
            "{:x}{:x}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .subsec_nanos()
        );
        let base = std::env::temp_dir().join(format!("wms-rabbitmq-cluster-{suffix}"));
        let mut cluster = Self {
            base,
            cookie: format!("wmscluster{suffix}"),
            uid: id("-u"),
            gid: id("-g"),
            nodes: (1..=3)
                .map(|i| Node {
                    name: format!("wmsc{i}-{suffix}@localhost"),
                    amqp_port: 0,
                    dir: PathBuf::new(),
                    child: None,
                    os_pid: None,
                })
                .collect(),
        };
        std::fs::create_dir_all(&cluster.base).unwrap();
        std::os::unix::fs::chown(&cluster.base, Some(cluster.uid), Some(cluster.gid)).unwrap();
        let started = Instant::now();
        for index in 0..3 {
            cluster.spawn(index);
        }
        for index in 0..3 {
            cluster.wait_up(index);
        }
        eprintln!("3 nodes up in {:.1} s", started.elapsed().as_secs_f64());
        let first = cluster.nodes[0].name.clone();
        for index in 1..3 {
            let name = cluster.nodes[index].name.clone();
            cluster.ctl_ok(&name, &["stop_app"]);
            cluster.ctl_ok(&name, &["join_cluster", &first]);
            cluster.ctl_ok(&name, &["start_app"]);
            cluster.ctl_ok(&name, &["await_startup", "--timeout", "120"]);
        }
        let status = cluster.ctl_ok(&first, &["cluster_status", "--formatter", "json"]);
        let status: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
        let running = status["running_nodes"].as_array().map_or(0, Vec::len);
        assert_eq!(running, 3, "three running nodes: {status}");
        eprintln!("cluster of 3 formed in {:.1} s", started.elapsed().as_secs_f64());
        cluster
    }

    /// Starts node `index` on fresh ports, in a process group of its own, as the rabbitmq user.
    fn spawn(&mut self, index: usize) {
        let (amqp_port, dist_port) = (free_port(), free_port());
        let node = &mut self.nodes[index];
        node.amqp_port = amqp_port;
        node.dir = self.base.join(format!("n{}-{amqp_port}", index + 1));
        let dir = &node.dir;
        for sub in ["", "mnesia", "log"] {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
        }
        std::fs::write(
            dir.join("rabbitmq.conf"),
            format!("listeners.tcp.local = 127.0.0.1:{amqp_port}\ndisk_free_limit.absolute = 50MB\n"),
        )
        .unwrap();
        // No plugins (so no management listener on 15672), no machine-wide env file.
        std::fs::write(dir.join("enabled_plugins"), "[].\n").unwrap();
        std::fs::write(dir.join("rabbitmq-env.conf"), "").unwrap();
        for entry in [
            "",
            "mnesia",
            "log",
            "rabbitmq.conf",
            "enabled_plugins",
            "rabbitmq-env.conf",
        ] {
            std::os::unix::fs::chown(dir.join(entry), Some(self.uid), Some(self.gid)).unwrap();
        }
        let console = std::fs::File::create(dir.join("console.log")).unwrap();
        let path = |name: &str| dir.join(name).to_string_lossy().into_owned();
        let child = Command::new(RABBITMQ_SERVER)
            .env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
            .env("HOME", "/var/lib/rabbitmq")
            .env("LANG", "C.UTF-8")
            .env("RABBITMQ_NODENAME", &node.name)
            .env("RABBITMQ_DIST_PORT", dist_port.to_string())
            .env("RABBITMQ_MNESIA_BASE", path("mnesia"))
            .env("RABBITMQ_LOG_BASE", path("log"))
            .env("RABBITMQ_CONFIG_FILE", path("rabbitmq.conf"))
            .env("RABBITMQ_ADVANCED_CONFIG_FILE", path("advanced.config"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", path("enabled_plugins"))
            .env("RABBITMQ_CONF_ENV_FILE", path("rabbitmq-env.conf"))
            .env("RABBITMQ_PID_FILE", path("pid"))
            .env(
                "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS",
                format!("-setcookie {}", self.cookie),
            )
            .current_dir(dir)
            .uid(self.uid)
            .gid(self.gid)
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(console.try_clone().unwrap())
            .stderr(console)
            .spawn()
            .unwrap();
        node.child = Some(child);
    }

    /// Waits until node `index` runs RabbitMQ; a node that exits while booting (its port was
    /// taken meanwhile) is started again on other ports, twice at most.
    fn wait_up(&mut self, index: usize) {
        let deadline = Instant::now() + NODE_START;
        let mut restarts = 0;
        loop {
            let exited = self.nodes[index]
                .child
                .as_mut()
                .and_then(|c| c.try_wait().unwrap())
                .is_some();
            if exited {
                let console = std::fs::read_to_string(self.nodes[index].dir.join("console.log")).unwrap_or_default();
                assert!(restarts < 2, "{} did not start:\n{console}", self.nodes[index].name);
                eprintln!(
                    "{} exited while booting; starting it on other ports",
                    self.nodes[index].name
                );
                restarts += 1;
                self.spawn(index);
            }
            let name = self.nodes[index].name.clone();
            if self.ctl(&name, &["await_startup", "--timeout", "20"]).status.success() {
                break;
            }
            assert!(Instant::now() < deadline, "{name} did not start within {NODE_START:?}");
            std::thread::sleep(Duration::from_secs(1));
        }
        let name = self.nodes[index].name.clone();
        let pid = self.ctl_ok(&name, &["eval", "list_to_integer(os:getpid())."]);
        self.nodes[index].os_pid = Some(String::from_utf8_lossy(&pid.stdout).trim().parse().unwrap());
    }

    /// `rabbitmqctl -n <node> ...` with this run's cookie, bounded in time.
    fn ctl(&self, node: &str, args: &[&str]) -> Output {
        Command::new("timeout")
            .args([
                "--kill-after=5",
                "90",
                RABBITMQCTL,
                "--erlang-cookie",
                &self.cookie,
                "-n",
                node,
            ])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    fn ctl_ok(&self, node: &str, args: &[&str]) -> Output {
        let output = self.ctl(node, args);
        assert!(
            output.status.success(),
            "rabbitmqctl -n {node} {args:?} failed: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        output
    }

    /// `amqp.url` for the services: every node, comma-separated.
    fn url(&self) -> String {
        self.nodes
            .iter()
            .map(|n| format!("amqp://guest:guest@127.0.0.1:{}/%2f", n.amqp_port))
            .collect::<Vec<_>>()
            .join(",")
    }

    fn alive(&self) -> impl Iterator<Item = &Node> {
        self.nodes.iter().filter(|n| n.child.is_some())
    }

    /// Leader node of each of `queues`, asked of a node that is up.
    fn leaders(&self, queues: &[String]) -> Vec<(String, String)> {
        let node = self.alive().next().expect("a node is up").name.clone();
        let output = self.ctl_ok(&node, &["list_queues", "name", "leader", "--formatter", "json", "-q"]);
        let listed: Vec<serde_json::Value> = serde_json::from_slice(&output.stdout).unwrap();
        queues
            .iter()
            .map(|queue| {
                let leader = listed
                    .iter()
                    .find(|q| q["name"] == queue.as_str())
                    .and_then(|q| q["leader"].as_str())
                    .unwrap_or("?")
                    .to_owned();
                (queue.clone(), leader)
            })
            .collect()
    }

    /// SIGKILL the node's beam (no clean shutdown, no goodbye to its peers), then its group.
    fn kill_9(&mut self, name: &str) {
        let node = self.nodes.iter_mut().find(|n| n.name == name).unwrap();
        let pid = node.os_pid.expect("the node answered once");
        let status = Command::new("kill").args(["-KILL", &pid.to_string()]).status().unwrap();
        assert!(status.success(), "kill -9 {pid} failed");
        if let Some(mut child) = node.child.take() {
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", child.id())])
                .stderr(Stdio::null())
                .status();
            let _ = child.wait();
        }
    }

    /// Pids of every process that carries this run's cookie on its command line (the nodes'
    /// beams), so none is left behind even if it left its process group.
    fn processes_of_this_run(&self) -> Vec<u32> {
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return Vec::new();
        };
        entries
            .filter_map(Result::ok)
            .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
            .filter(|pid| {
                std::fs::read(format!("/proc/{pid}/cmdline"))
                    .is_ok_and(|cmdline| cmdline.split(|b| *b == 0).any(|arg| arg == self.cookie.as_bytes()))
            })
            .collect()
    }

    /// Stops every node (politely, then by force), removes the directories and returns the
    /// pids of processes of this run that were still there afterwards (none, normally).
    fn clean_up(&mut self) -> Vec<u32> {
        for node in self.nodes.iter().filter(|n| n.child.is_some()) {
            let _ = Command::new("timeout")
                .args([
                    "--kill-after=2",
                    "20",
                    RABBITMQCTL,
                    "--erlang-cookie",
                    &self.cookie,
                    "-n",
                    &node.name,
                    "stop",
                ])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        for node in &mut self.nodes {
            if let Some(mut child) = node.child.take() {
                let _ = Command::new("kill")
                    .args(["-KILL", "--", &format!("-{}", child.id())])
                    .stderr(Stdio::null())
                    .status();
                let _ = child.wait();
            }
        }
        for pid in self.processes_of_this_run() {
            let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut left = self.processes_of_this_run();
        while !left.is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(200));
            left = self.processes_of_this_run();
        }
        if std::thread::panicking() {
            // Kept for the post-mortem: each node's console.log and log/.
            eprintln!("cluster logs kept in {}", self.base.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.base);
        }
        left
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let left = self.clean_up();
        if !left.is_empty() && !std::thread::panicking() {
            panic!("processes of the test cluster survived clean-up: {left:?}");
        }
    }
}

/// Fulfilment times (the simulator records each write), in order.
async fn fulfilment_times(stack: &Stack) -> Vec<chrono::DateTime<chrono::Utc>> {
    let writes = stack.sim("/_sim/writes").await;
    let mut times: Vec<chrono::DateTime<chrono::Utc>> = writes["writes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|w| w["path"].as_str().is_some_and(|p| p.ends_with("/fulfill")))
        .map(|w| w["at"].as_str().unwrap().parse().unwrap())
        .collect();
    times.sort();
    times
}

fn longest_gap(times: &[chrono::DateTime<chrono::Utc>]) -> Duration {
    times
        .windows(2)
        .map(|w| (w[1] - w[0]).to_std().unwrap_or_default())
        .max()
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn losing_the_node_that_leads_the_work_queues_loses_and_duplicates_nothing() {
    let test_started = Instant::now();
    let mut cluster = tokio::task::spawn_blocking(Cluster::start).await.unwrap();
    let (p, stack) = Stack::launch(StackOptions {
        orders: ORDERS,
        orders_per_minute: 600,
        webhook_retry_interval_ms: 2_000,
        amqp_url: cluster.url(),
        ..StackOptions::default()
    })
    .await;
    let work_queues: Vec<String> = p
        .topology
        .consumers()
        .iter()
        .map(|c| p.topology.work_queue(c.name))
        .collect();

    stack.wait_created(100).await;
    let (leaders, cluster_back) = tokio::task::spawn_blocking({
        let queues = work_queues.clone();
        move || (cluster.leaders(&queues), cluster)
    })
    .await
    .unwrap();
    cluster = cluster_back;
    eprintln!("work queue leaders before the kill: {leaders:?}");
    let mut votes: Vec<(String, usize)> = Vec::new();
    for (_, leader) in &leaders {
        match votes.iter_mut().find(|(node, _)| node == leader) {
            Some((_, n)) => *n += 1,
            None => votes.push((leader.clone(), 1)),
        }
    }
    votes.sort_by_key(|v| std::cmp::Reverse(v.1));
    let victim = votes[0].0.clone();
    assert!(
        cluster.nodes.iter().any(|n| n.name == victim),
        "the work queues are led by a node of the test cluster: {leaders:?}"
    );
    let fulfilled_before = fulfilment_times(&stack).await.len();
    let killed_at = chrono::Utc::now();
    cluster = tokio::task::spawn_blocking(move || {
        cluster.kill_9(&victim);
        cluster
    })
    .await
    .unwrap();
    eprintln!(
        "killed -9 the leader {} after {} orders created, {fulfilled_before} fulfilled",
        votes[0].0,
        stack.created().await
    );

    // Let the stream finish and the pipeline drain; if the store gave up on a webhook while
    // no node answered, one reconciliation pass repairs it, as the CronJob does in production.
    stack.wait_created(ORDERS as usize).await;
    let drain = tokio::time::Instant::now() + Duration::from_secs(180);
    while fulfilment_times(&stack).await.len() < ORDERS as usize && tokio::time::Instant::now() < drain {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let given_up = stack.sim("/_sim/stats").await["webhooks_given_up"]
        .as_u64()
        .unwrap_or(0);
    if given_up > 0 {
        eprintln!("the store gave up on {given_up} webhook(s) during the failover; reconciling once");
        stack.reconcile_once().await;
    }
    stack
        .assert_every_order_fulfilled_once(&p, Duration::from_secs(180))
        .await;

    let (leaders_after, cluster_back) = tokio::task::spawn_blocking({
        let queues = work_queues.clone();
        move || (cluster.leaders(&queues), cluster)
    })
    .await
    .unwrap();
    cluster = cluster_back;
    eprintln!("work queue leaders after the kill: {leaders_after:?}");

    let times = fulfilment_times(&stack).await;
    let (before, after): (Vec<_>, Vec<_>) = times.iter().partition(|t| **t < killed_at);
    let last_before = before.last().copied().unwrap_or(killed_at);
    let first_after = after.first().copied().expect("fulfilments after the kill");
    // The gap that spans the kill, and the longest one from the kill to the end.
    let mut around: Vec<_> = vec![last_before];
    around.extend(after.iter().copied());
    let stall = longest_gap(&around);
    let to_first = (first_after - killed_at).to_std().unwrap_or_default();
    let baseline = longest_gap(&before);
    let failures = stack.sim("/_sim/stats").await["webhook_failures"].as_u64().unwrap_or(0);
    eprintln!(
        "STALL: longest gap between fulfilments around the kill {:.1} s (kill to next fulfilment \
         {:.1} s; longest gap before the kill {:.1} s); {failures} webhook deliveries refused, \
         {given_up} given up; {ORDERS} orders fulfilled once each; test took {:.0} s",
        stall.as_secs_f64(),
        to_first.as_secs_f64(),
        baseline.as_secs_f64(),
        test_started.elapsed().as_secs_f64()
    );

    stack.finish(p).await;
    let left = tokio::task::spawn_blocking(move || {
        let left = cluster.clean_up();
        // Its Drop cleans up again: nothing is left to do.
        drop(cluster);
        left
    })
    .await
    .unwrap();
    assert!(
        left.is_empty(),
        "processes of the test cluster survived clean-up: {left:?}"
    );
}
