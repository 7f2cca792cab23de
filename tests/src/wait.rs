//! Waiting on observable conditions instead of sleeping: a condition polled until it holds,
//! with a deadline that fails the test naming what never happened.

use std::time::Duration;

/// How often [`wait_for`] checks its condition.
const POLL: Duration = Duration::from_millis(100);

/// Checks `condition` every 100 ms until it gives `Some`, and returns that; panics naming
/// `what` if `deadline` passes first.
pub async fn wait_for<T, F, Fut>(what: &str, deadline: Duration, mut condition: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let until = tokio::time::Instant::now() + deadline;
    loop {
        if let Some(value) = condition().await {
            return value;
        }
        assert!(tokio::time::Instant::now() < until, "waited {deadline:?} for {what}");
        tokio::time::sleep(POLL).await;
    }
}

/// The sum of the samples of metric `name` in a Prometheus text exposition whose `consumer`
/// label is `consumer` and, when given, whose `outcome` label is `outcome`.
pub fn sum_of_series(text: &str, name: &str, consumer: &str, outcome: Option<&str>) -> u64 {
    let consumer_label = format!("consumer=\"{consumer}\"");
    let outcome_label = outcome.map(|o| format!("outcome=\"{o}\""));
    text.lines()
        .filter_map(|line| line.strip_prefix(name)?.strip_prefix('{'))
        .filter_map(|rest| rest.split_once('}'))
        .filter(|(labels, _)| {
            labels.split(',').any(|l| l == consumer_label)
                && outcome_label
                    .as_deref()
                    .is_none_or(|o| labels.split(',').any(|l| l == o))
        })
        .filter_map(|(_, value)| value.trim().parse::<f64>().ok())
        .map(|value| value.max(0.0) as u64)
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXPOSITION: &str = "\
# HELP wms_worker_messages_total Messages handled, by consumer and outcome
# TYPE wms_worker_messages_total counter
wms_worker_messages_total{consumer=\"reserve\",outcome=\"duplicate\"} 5
wms_worker_messages_total{consumer=\"reserve\",outcome=\"processed\"} 1
wms_worker_messages_total{consumer=\"ship\",outcome=\"processed\"} 7
wms_worker_in_flight{consumer=\"reserve\"} 2
";

    #[test]
    fn series_are_summed_by_consumer_and_outcome() {
        let total = |consumer, outcome| sum_of_series(EXPOSITION, "wms_worker_messages_total", consumer, outcome);
        assert_eq!(total("reserve", None), 6);
        assert_eq!(total("reserve", Some("duplicate")), 5);
        assert_eq!(total("ship", Some("duplicate")), 0);
        assert_eq!(sum_of_series(EXPOSITION, "wms_worker_in_flight", "reserve", None), 2);
        assert_eq!(sum_of_series(EXPOSITION, "wms_worker_in_flight", "enrich", None), 0);
    }

    #[tokio::test]
    async fn wait_for_returns_what_the_condition_gave_once_it_holds() {
        let mut checks = 0;
        let value = wait_for("the third check", Duration::from_secs(5), || {
            checks += 1;
            let now = checks;
            async move { (now >= 3).then_some(now) }
        })
        .await;
        assert_eq!(value, 3);
    }

    #[tokio::test]
    #[should_panic(expected = "waited 200ms for nothing")]
    async fn wait_for_fails_naming_what_never_happened() {
        wait_for("nothing", Duration::from_millis(200), || async { None::<()> }).await;
    }
}
