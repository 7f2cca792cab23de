//! Latency percentiles and throughput.

use serde::Serialize;
use std::time::Duration;

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub label: String,
    pub requests: usize,
    pub ok: usize,
    pub failed: usize,
    pub elapsed_s: f64,
    pub throughput_per_s: f64,
    pub p50_ms: f64,
    pub p95_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// Every answered request's latency, sorted (for [`Report::combine`]).
    #[serde(skip)]
    latencies: Vec<Duration>,
}

impl Report {
    pub fn new(label: impl Into<String>, mut latencies: Vec<Duration>, failed: usize, elapsed: Duration) -> Self {
        latencies.sort_unstable();
        let ok = latencies.len();
        let pick = |q: f64| -> f64 {
            if latencies.is_empty() {
                return 0.0;
            }
            let index = ((q * latencies.len() as f64).ceil() as usize).clamp(1, latencies.len()) - 1;
            latencies[index].as_secs_f64() * 1_000.0
        };
        Self {
            label: label.into(),
            requests: ok + failed,
            ok,
            failed,
            elapsed_s: elapsed.as_secs_f64(),
            throughput_per_s: ok as f64 / elapsed.as_secs_f64().max(1e-9),
            p50_ms: pick(0.50),
            p95_ms: pick(0.95),
            p99_ms: pick(0.99),
            max_ms: pick(1.0),
            latencies,
        }
    }

    /// One report over several runs: their requests together, over their summed time.
    pub fn combine(label: impl Into<String>, runs: &[Report]) -> Self {
        let latencies = runs.iter().flat_map(|r| r.latencies.iter().copied()).collect();
        let failed = runs.iter().map(|r| r.failed).sum();
        let elapsed = runs.iter().map(|r| Duration::from_secs_f64(r.elapsed_s)).sum();
        Self::new(label, latencies, failed, elapsed)
    }

    pub fn line(&self) -> String {
        format!(
            "{:<28} {:>7} ok {:>5} failed {:>9.1}/s  p50 {:>7.2} ms  p95 {:>7.2} ms  p99 {:>7.2} ms  max {:>7.2} ms",
            self.label, self.ok, self.failed, self.throughput_per_s, self.p50_ms, self.p95_ms, self.p99_ms, self.max_ms
        )
    }
}

/// The median of `values` (0 when empty).
pub fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    match sorted.len() {
        0 => 0.0,
        n if n % 2 == 1 => sorted[n / 2],
        n => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

/// Resident memory of a process from /proc (Linux): (current, peak) in KiB.
pub fn memory_kib(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<u64>().ok())
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_pick_the_right_sample() {
        let latencies = (1..=100).map(Duration::from_millis).collect();
        let report = Report::new("x", latencies, 2, Duration::from_secs(1));
        assert_eq!(report.p50_ms, 50.0);
        assert_eq!(report.p99_ms, 99.0);
        assert_eq!(report.max_ms, 100.0);
        assert_eq!(report.requests, 102);
        assert_eq!(report.throughput_per_s, 100.0);
    }

    #[test]
    fn the_median_ignores_one_outlier() {
        assert_eq!(median(&[0.76, 1.17, 0.80, 0.78, 0.88]), 0.80);
        assert_eq!(median(&[1.0, 3.0]), 2.0);
        assert_eq!(median(&[]), 0.0);
    }

    #[test]
    fn combined_runs_add_requests_and_time() {
        let fast = Report::new("a", vec![Duration::from_millis(1); 100], 0, Duration::from_secs(1));
        let slow = Report::new("b", vec![Duration::from_millis(3); 100], 1, Duration::from_secs(3));
        let both = Report::combine("both", &[fast, slow]);
        assert_eq!((both.ok, both.failed, both.requests), (200, 1, 201));
        assert_eq!(both.throughput_per_s, 50.0);
        assert_eq!((both.p50_ms, both.max_ms), (1.0, 3.0));
    }
}
