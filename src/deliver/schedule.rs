//! The retry decision: given an attempt's failure and the connector's
//! schedule, when (if ever) to try again. Pure.

use std::time::Duration;

use crate::config::RetrySchedule;
use crate::connectors::Retry;

/// What happens after a failed attempt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Next {
    /// Try again after this long.
    RetryIn(Duration),
    /// Give up.
    Dead,
}

/// Decides the next step after attempt number `attempt` (1-based) failed.
///
/// The schedule lists the delay before each attempt, so attempt `n` failing
/// leads to `schedule[n]`, spread by ±`jitter`; past its end the delivery is
/// dead. A `Retry-After` from the partner replaces the scheduled delay (the
/// partner knows when it will be ready), capped at `max_retry_after`, but
/// still counts as an attempt. `rand01` is a uniform sample in [0, 1).
pub fn next(schedule: &RetrySchedule, jitter: f64, attempt: u32, retry: Retry, max_retry_after: Duration, rand01: f64) -> Next {
    let idx = attempt as usize;
    if retry == Retry::Never || idx >= schedule.0.len() {
        return Next::Dead;
    }
    match retry {
        Retry::After(d) => Next::RetryIn(d.min(max_retry_after)),
        _ => {
            let base = schedule.0[idx].as_secs_f64();
            let factor = 1.0 + jitter * (2.0 * rand01 - 1.0);
            Next::RetryIn(Duration::from_secs_f64((base * factor).max(0.0)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sched() -> RetrySchedule {
        RetrySchedule::parse("0s 10s 1m").unwrap()
    }

    #[test]
    fn follows_the_schedule_then_dies() {
        let max = Duration::from_secs(3600);
        assert_eq!(
            next(&sched(), 0.0, 1, Retry::Backoff, max, 0.5),
            Next::RetryIn(Duration::from_secs(10))
        );
        assert_eq!(
            next(&sched(), 0.0, 2, Retry::Backoff, max, 0.5),
            Next::RetryIn(Duration::from_secs(60))
        );
        assert_eq!(next(&sched(), 0.0, 3, Retry::Backoff, max, 0.5), Next::Dead);
        assert_eq!(next(&sched(), 0.0, 1, Retry::Never, max, 0.5), Next::Dead);
    }

    #[test]
    fn jitter_stays_within_twenty_percent() {
        let max = Duration::from_secs(3600);
        let lo = next(&sched(), 0.2, 1, Retry::Backoff, max, 0.0);
        let hi = next(&sched(), 0.2, 1, Retry::Backoff, max, 0.999_999);
        assert_eq!(lo, Next::RetryIn(Duration::from_secs(8)));
        let Next::RetryIn(h) = hi else { panic!("retry expected") };
        assert!(h > Duration::from_millis(11_990) && h <= Duration::from_secs(12));
    }

    #[test]
    fn retry_after_replaces_the_delay_but_is_capped() {
        let max = Duration::from_secs(30);
        assert_eq!(
            next(&sched(), 0.2, 1, Retry::After(Duration::from_secs(3)), max, 0.9),
            Next::RetryIn(Duration::from_secs(3))
        );
        assert_eq!(
            next(&sched(), 0.2, 1, Retry::After(Duration::from_secs(300)), max, 0.9),
            Next::RetryIn(max)
        );
        assert_eq!(next(&sched(), 0.2, 3, Retry::After(Duration::from_secs(3)), max, 0.9), Next::Dead);
    }
}
