use platform::retry::RetryPolicy;
use platform::settings::SettingsError;
use serde::Deserialize;

/// `[worker]`: how every worker consumes.
#[derive(Clone, Debug, Deserialize)]
#[serde(default)]
pub struct WorkerSettings {
    /// Deliveries handled at once (also the AMQP prefetch).
    pub concurrency: u16,
    /// Attempts before a transiently failing message is dead-lettered.
    pub max_attempts: u32,
    /// Delays between attempts; each delay is rounded up to a retry-queue tier.
    pub retry: RetryPolicy,
    /// How often the outbox relay looks for events a crash left unpublished.
    pub relay_interval_ms: u64,
    /// Only events older than this are the relay's (fresher ones belong to their handler).
    pub relay_min_age_ms: i64,
}

impl Default for WorkerSettings {
    fn default() -> Self {
        Self {
            concurrency: 16,
            max_attempts: 8,
            retry: RetryPolicy {
                initial_ms: 1_000,
                multiplier: 3.0,
                max_ms: 600_000,
                randomization: 0.2,
            },
            relay_interval_ms: 1_000,
            relay_min_age_ms: 5_000,
        }
    }
}

impl WorkerSettings {
    pub fn validate(&self) -> Result<(), SettingsError> {
        if self.concurrency == 0 {
            return Err(SettingsError::invalid("worker.concurrency", "must be at least 1"));
        }
        if self.max_attempts == 0 {
            return Err(SettingsError::invalid("worker.max_attempts", "must be at least 1"));
        }
        if self.relay_interval_ms == 0 {
            return Err(SettingsError::invalid("worker.relay_interval_ms", "must be above 0"));
        }
        Ok(())
    }
}
