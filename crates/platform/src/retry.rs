//! The one place that turns a retry policy into delays.
//!
//! `backoff` is unmaintained upstream; every caller goes through [`RetryPolicy::delays`] so the
//! crate can be swapped by changing this file alone.

use serde::Deserialize;
use std::time::Duration;

/// Exponential backoff with jitter.
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default)]
pub struct RetryPolicy {
    /// First delay, in milliseconds.
    pub initial_ms: u64,
    /// Growth factor between attempts.
    pub multiplier: f64,
    /// Upper bound of one delay, in milliseconds.
    pub max_ms: u64,
    /// Jitter: each delay is drawn from `delay * (1 ± randomization)`.
    pub randomization: f64,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            initial_ms: 1_000,
            multiplier: 3.0,
            max_ms: 600_000,
            randomization: 0.2,
        }
    }
}

impl RetryPolicy {
    /// An endless sequence of jittered, exponentially growing delays.
    pub fn delays(&self) -> impl Iterator<Item = Duration> + Send + use<> {
        use backoff::backoff::Backoff;
        let mut backoff = backoff::ExponentialBackoff {
            current_interval: Duration::from_millis(self.initial_ms),
            initial_interval: Duration::from_millis(self.initial_ms),
            randomization_factor: self.randomization.clamp(0.0, 1.0),
            multiplier: self.multiplier.max(1.0),
            max_interval: Duration::from_millis(self.max_ms.max(self.initial_ms)),
            // We bound attempts ourselves; never let `backoff` give up on elapsed time.
            max_elapsed_time: None,
            ..backoff::ExponentialBackoff::default()
        };
        std::iter::from_fn(move || backoff.next_backoff())
    }

    /// Deserializes a possibly partial policy, taking the fields it leaves out from `base`
    /// rather than from [`RetryPolicy::default`] (so `WMS__AMQP__RECONNECT__INITIAL_MS` alone
    /// keeps the reconnect policy's own ceiling).
    pub fn deserialize_over<'de, D>(deserializer: D, base: Self) -> Result<Self, D::Error>
    where
        D: serde::Deserializer<'de>,
    {
        #[derive(Deserialize)]
        struct Partial {
            initial_ms: Option<u64>,
            multiplier: Option<f64>,
            max_ms: Option<u64>,
            randomization: Option<f64>,
        }
        let partial = Partial::deserialize(deserializer)?;
        Ok(Self {
            initial_ms: partial.initial_ms.unwrap_or(base.initial_ms),
            multiplier: partial.multiplier.unwrap_or(base.multiplier),
            max_ms: partial.max_ms.unwrap_or(base.max_ms),
            randomization: partial.randomization.unwrap_or(base.randomization),
        })
    }

    /// The delay before retry number `attempt` (1-based).
    pub fn delay_for_attempt(&self, attempt: u32) -> Duration {
        self.delays()
            .nth(attempt.saturating_sub(1) as usize)
            .unwrap_or(Duration::from_millis(self.max_ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_and_stay_bounded() {
        let policy = RetryPolicy {
            initial_ms: 100,
            multiplier: 2.0,
            max_ms: 1_000,
            randomization: 0.0,
        };
        let delays: Vec<u64> = policy.delays().take(6).map(|d| d.as_millis() as u64).collect();
        assert_eq!(delays, vec![100, 200, 400, 800, 1_000, 1_000]);
        assert_eq!(policy.delay_for_attempt(3), Duration::from_millis(400));
    }

    #[test]
    fn jitter_stays_within_its_band() {
        let policy = RetryPolicy {
            initial_ms: 1_000,
            multiplier: 2.0,
            max_ms: 60_000,
            randomization: 0.5,
        };
        for _ in 0..100 {
            let first = policy.delay_for_attempt(1).as_millis();
            assert!((500..=1_500).contains(&first), "{first}");
        }
    }
}
