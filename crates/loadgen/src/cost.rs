//! What a run costs, per order: CPU time of every process involved (from `/proc`, Linux),
//! committed transactions and written rows of the bench database (`pg_stat_database`), and,
//! when PostgreSQL logs the bench database's statements, the statements each service ran.
//!
//! CPU time is what contention on a shared machine does not distort (throughput is): a busy
//! neighbour slows the run but does not add to the CPU our processes use per order.

use anyhow::Context;
use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Seek, SeekFrom};
use std::path::PathBuf;

/// Linux reports CPU times in clock ticks of `USER_HZ`, 100 on every supported architecture.
const TICKS_PER_SECOND: f64 = 100.0;

/// What to measure besides the bench database's own counters.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct CostOptions {
    /// A process to measure, as `name=pid` (repeat, or separate with commas).
    #[arg(long = "pid", value_delimiter = ',')]
    pub pids: Vec<String>,
    /// PostgreSQL's log file: statements of the bench database logged while the run lasts
    /// (`ALTER DATABASE … SET log_statement = 'all'` before the services connect) are counted
    /// per service. Logging costs CPU: count statements in a run of their own.
    #[arg(long)]
    pub pg_log: Option<PathBuf>,
}

/// CPU ticks (user + system) of one process, or `None` if it is gone.
fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces; the fields after its `)` are fixed.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

/// Every process whose command name is `comm` (`postgres`, `beam.smp`).
fn pids_named(comm: &str) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|name| name.trim_end() == comm))
        .collect()
}

/// The bench database's counters.
#[derive(Clone, Copy, Debug, Default)]
struct DbCounters {
    commits: i64,
    inserted: i64,
    updated: i64,
    deleted: i64,
}

/// One reading of everything measured.
struct Reading {
    /// Per named process (the services), its ticks.
    named: BTreeMap<String, u64>,
    /// PostgreSQL backends of the bench database: pid → (application name, ticks).
    backends: HashMap<u32, (String, u64)>,
    /// Every PostgreSQL process (other databases too, and the background writers).
    postgres_all: HashMap<u32, u64>,
    rabbitmq: HashMap<u32, u64>,
    db: DbCounters,
    /// Where PostgreSQL's log ended.
    log_offset: u64,
}

/// Reads the same things before and after a run.
pub struct CostProbe {
    options: CostOptions,
    named: Vec<(String, u32)>,
    db: tokio_postgres::Client,
    before: Option<Reading>,
}

impl CostProbe {
    pub async fn start(options: CostOptions, database_url: &str) -> anyhow::Result<Self> {
        let named = options
            .pids
            .iter()
            .map(|spec| {
                let (name, pid) = spec
                    .split_once('=')
                    .with_context(|| format!("--pid `{spec}`: expected name=pid"))?;
                Ok((name.to_owned(), pid.parse().with_context(|| format!("--pid `{spec}`"))?))
            })
            .collect::<anyhow::Result<Vec<(String, u32)>>>()?;
        let (db, connection) = tokio_postgres::connect(database_url, tokio_postgres::NoTls)
            .await
            .context("PostgreSQL")?;
        tokio::spawn(connection);
        let mut probe = Self {
            options,
            named,
            db,
            before: None,
        };
        probe.before = Some(probe.read().await?);
        Ok(probe)
    }

    async fn read(&self) -> anyhow::Result<Reading> {
        let rows = self
            .db
            .query(
                "SELECT pid, COALESCE(NULLIF(application_name, ''), '?') FROM pg_stat_activity
                 WHERE datname = current_database() AND pid <> pg_backend_pid()",
                &[],
            )
            .await?;
        let backends = rows
            .iter()
            .filter_map(|row| {
                let pid = u32::try_from(row.get::<_, i32>(0)).ok()?;
                Some((pid, (row.get::<_, String>(1), cpu_ticks(pid)?)))
            })
            .collect();
        let db = self
            .db
            .query_one(
                "SELECT xact_commit, tup_inserted, tup_updated, tup_deleted FROM pg_stat_database
                 WHERE datname = current_database()",
                &[],
            )
            .await?;
        let ticks_of = |pids: Vec<u32>| -> HashMap<u32, u64> {
            pids.into_iter()
                .filter_map(|pid| Some((pid, cpu_ticks(pid)?)))
                .collect()
        };
        Ok(Reading {
            named: self
                .named
                .iter()
                .filter_map(|(name, pid)| Some((name.clone(), cpu_ticks(*pid)?)))
                .collect(),
            backends,
            postgres_all: ticks_of(pids_named("postgres")),
            rabbitmq: ticks_of(pids_named("beam.smp")),
            db: DbCounters {
                commits: db.get(0),
                inserted: db.get(1),
                updated: db.get(2),
                deleted: db.get(3),
            },
            log_offset: self
                .options
                .pg_log
                .as_ref()
                .and_then(|path| std::fs::metadata(path).ok())
                .map_or(0, |m| m.len()),
        })
    }

    /// Reads again and prints the cost of the run per order.
    #[allow(clippy::print_stdout, reason = "the report goes to stdout")]
    pub async fn finish(self, orders: usize) -> anyhow::Result<()> {
        // pg_stat counters are flushed by each backend at most once a second.
        tokio::time::sleep(std::time::Duration::from_millis(1_100)).await;
        let after = self.read().await?;
        let before = self.before.as_ref().context("no first reading")?;
        let per_order = |ticks: u64| ticks as f64 / TICKS_PER_SECOND * 1_000.0 / orders as f64;
        let delta = |before: &HashMap<u32, u64>, after: &HashMap<u32, u64>| -> u64 {
            // A process that started during the run counts from zero; one that ended is lost.
            after
                .iter()
                .map(|(pid, ticks)| ticks.saturating_sub(before.get(pid).copied().unwrap_or(0)))
                .sum()
        };
        println!("cost per order ({orders} orders): CPU ms per order, by process");
        let mut services = 0u64;
        for (name, ticks) in &after.named {
            let used = ticks.saturating_sub(before.named.get(name).copied().unwrap_or(0));
            services += used;
            println!("  cpu {name:<28} {:>7.3} ms", per_order(used));
        }
        let mut by_app: BTreeMap<&str, u64> = BTreeMap::new();
        for (pid, (app, ticks)) in &after.backends {
            let was = before.backends.get(pid).map_or(0, |(_, t)| *t);
            *by_app.entry(app.as_str()).or_default() += ticks.saturating_sub(was);
        }
        let backends: u64 = by_app.values().sum();
        for (app, ticks) in &by_app {
            println!("  cpu postgres backend: {app:<14} {:>7.3} ms", per_order(*ticks));
        }
        println!("  cpu postgres, bench backends    {:>7.3} ms", per_order(backends));
        let postgres_all = delta(&before.postgres_all, &after.postgres_all);
        let rabbitmq = delta(&before.rabbitmq, &after.rabbitmq);
        println!(
            "  cpu postgres, every process     {:>7.3} ms (other databases on this server included)",
            per_order(postgres_all)
        );
        println!(
            "  cpu rabbitmq (beam.smp)         {:>7.3} ms (other users of the broker included)",
            per_order(rabbitmq)
        );
        println!(
            "  cpu total: services {:.3} + postgres bench backends {:.3} = {:.3} ms per order",
            per_order(services),
            per_order(backends),
            per_order(services + backends)
        );
        let n = orders as f64;
        let (b, a) = (before.db, after.db);
        println!(
            "  database per order: {:.2} transactions committed, rows {:.2} inserted, {:.2} updated, {:.2} deleted",
            (a.commits - b.commits) as f64 / n,
            (a.inserted - b.inserted) as f64 / n,
            (a.updated - b.updated) as f64 / n,
            (a.deleted - b.deleted) as f64 / n,
        );
        if let Some(path) = &self.options.pg_log {
            print_statements(path, before, &after, n)?;
        }
        Ok(())
    }
}

/// Counts the bench database's logged statements of the run, per service (by backend pid) and
/// per statement, and prints them per order.
#[allow(clippy::print_stdout, reason = "the report goes to stdout")]
fn print_statements(path: &PathBuf, before: &Reading, after: &Reading, orders: f64) -> anyhow::Result<()> {
    let mut file = std::fs::File::open(path).with_context(|| format!("{}", path.display()))?;
    file.seek(SeekFrom::Start(before.log_offset))?;
    let mut text = String::new();
    file.take(after.log_offset.saturating_sub(before.log_offset))
        .read_to_string(&mut text)?;
    let app_of = |pid: u32| {
        after
            .backends
            .get(&pid)
            .or_else(|| before.backends.get(&pid))
            .map_or("?", |(app, _)| app.as_str())
    };
    let mut per_app: BTreeMap<&str, u64> = BTreeMap::new();
    let mut per_statement: HashMap<(&str, String), u64> = HashMap::new();
    for line in text.lines() {
        // `<time> [<pid>] <user>@<db> LOG:  statement: …` or `… LOG:  execute <name>: …`.
        let Some((prefix, statement)) = line.split_once(" LOG:  statement: ").or_else(|| {
            line.split_once(" LOG:  execute ")
                .map(|(p, s)| (p, s.split_once(": ").map_or(s, |(_, s)| s)))
        }) else {
            continue;
        };
        let pid = prefix
            .split_once('[')
            .and_then(|(_, rest)| rest.split_once(']'))
            .and_then(|(pid, _)| pid.parse::<u32>().ok());
        let Some(pid) = pid else { continue };
        let app = app_of(pid);
        if app == "?" {
            continue;
        }
        *per_app.entry(app).or_default() += 1;
        let words: Vec<&str> = statement.split_whitespace().take(6).collect();
        *per_statement.entry((app, words.join(" "))).or_default() += 1;
    }
    let total: u64 = per_app.values().sum();
    println!("  statements per order: {:.1} in all", total as f64 / orders);
    for (app, count) in &per_app {
        println!("    {app:<16} {:>6.2}", *count as f64 / orders);
    }
    let mut frequent: Vec<_> = per_statement.into_iter().collect();
    frequent.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    for ((app, statement), count) in frequent.iter().filter(|(_, c)| *c as f64 / orders >= 0.05) {
        println!("      {app:<14} {:>5.2}  {statement}", *count as f64 / orders);
    }
    Ok(())
}
