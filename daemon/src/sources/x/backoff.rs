//! X's reconnect schedule for the filtered stream, kept as plain arithmetic so it
//! can be checked without waiting and so the stream loop only has to sleep.
//!
//! From X's "Handling disconnections" guide: once an established connection
//! drops, reconnect immediately; if that fails, back off by the kind of failure —
//! linearly by 250 ms up to 16 s for network errors, exponentially from 5 s up to
//! 320 s for HTTP errors, exponentially from one minute for HTTP 429. A healthy
//! connection resets everything.

use std::time::Duration;

/// Network errors: add this much per consecutive failure…
pub const NETWORK_STEP: Duration = Duration::from_millis(250);
/// …up to this.
pub const NETWORK_MAX: Duration = Duration::from_secs(16);
/// HTTP errors (5xx, 401, 403, …): start here and double…
pub const HTTP_START: Duration = Duration::from_secs(5);
/// …up to this.
pub const HTTP_MAX: Duration = Duration::from_secs(320);
/// HTTP 429: start here and double…
pub const RATE_LIMIT_START: Duration = Duration::from_secs(60);
/// …up to this (X names no ceiling; a quarter of an hour keeps a restart in reach).
pub const RATE_LIMIT_MAX: Duration = Duration::from_secs(15 * 60);

/// Which back-off curve a failed attempt follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// TCP/TLS errors, a dropped or stalled connection, an operational disconnect.
    Network,
    /// An HTTP error status other than 429.
    Http,
    /// HTTP 429: too many connections or requests.
    RateLimited,
}

/// Where the reconnect schedule stands; ask it how long to wait after each failure.
#[derive(Debug, Clone, Default)]
pub struct ReconnectSchedule {
    /// A healthy connection just ended: the next reconnect goes at once.
    immediate: bool,
    network: u32,
    http: u32,
    rate_limited: u32,
}

impl ReconnectSchedule {
    /// A fresh schedule; the very first connection attempt needs no delay from it.
    pub fn new() -> ReconnectSchedule {
        ReconnectSchedule::default()
    }

    /// The connection is up and data flows: forget past failures, and reconnect
    /// at once the next time it drops.
    pub fn healthy(&mut self) {
        *self = ReconnectSchedule {
            immediate: true,
            ..ReconnectSchedule::default()
        };
    }

    /// How long to wait before the next attempt after a failure of this kind.
    pub fn next_delay(&mut self, kind: FailureKind) -> Duration {
        if std::mem::take(&mut self.immediate) {
            return Duration::ZERO;
        }
        match kind {
            FailureKind::Network => {
                self.network = self.network.saturating_add(1);
                NETWORK_STEP.saturating_mul(self.network).min(NETWORK_MAX)
            }
            FailureKind::Http => {
                self.http = self.http.saturating_add(1);
                doubled(HTTP_START, self.http).min(HTTP_MAX)
            }
            FailureKind::RateLimited => {
                self.rate_limited = self.rate_limited.saturating_add(1);
                doubled(RATE_LIMIT_START, self.rate_limited).min(RATE_LIMIT_MAX)
            }
        }
    }
}

/// `start · 2^(attempt-1)`, saturating.
fn doubled(start: Duration, attempt: u32) -> Duration {
    start.saturating_mul(1u32 << attempt.saturating_sub(1).min(20))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(list: &[f64]) -> Vec<Duration> {
        list.iter()
            .map(|secs| Duration::from_secs_f64(*secs))
            .collect()
    }

    fn take(schedule: &mut ReconnectSchedule, kind: FailureKind, n: usize) -> Vec<Duration> {
        (0..n).map(|_| schedule.next_delay(kind)).collect()
    }

    #[test]
    fn network_errors_back_off_linearly_to_16_s() {
        let mut schedule = ReconnectSchedule::new();
        let delays = take(&mut schedule, FailureKind::Network, 66);
        assert_eq!(delays[..4], secs(&[0.25, 0.5, 0.75, 1.0]));
        assert_eq!(delays[63], Duration::from_secs(16));
        assert_eq!(delays[65], Duration::from_secs(16));
    }

    #[test]
    fn http_errors_double_from_5_s_to_320_s() {
        let mut schedule = ReconnectSchedule::new();
        let delays = take(&mut schedule, FailureKind::Http, 9);
        assert_eq!(
            delays,
            secs(&[5.0, 10.0, 20.0, 40.0, 80.0, 160.0, 320.0, 320.0, 320.0])
        );
    }

    #[test]
    fn rate_limits_double_from_one_minute() {
        let mut schedule = ReconnectSchedule::new();
        let delays = take(&mut schedule, FailureKind::RateLimited, 6);
        assert_eq!(delays, secs(&[60.0, 120.0, 240.0, 480.0, 900.0, 900.0]));
    }

    #[test]
    fn a_healthy_connection_buys_one_immediate_reconnect_and_a_reset() {
        let mut schedule = ReconnectSchedule::new();
        take(&mut schedule, FailureKind::Http, 3);
        take(&mut schedule, FailureKind::Network, 3);
        schedule.healthy();
        assert_eq!(schedule.next_delay(FailureKind::Network), Duration::ZERO);
        assert_eq!(schedule.next_delay(FailureKind::Network), NETWORK_STEP);
        assert_eq!(schedule.next_delay(FailureKind::Http), HTTP_START);
    }

    #[test]
    fn kinds_escalate_independently() {
        let mut schedule = ReconnectSchedule::new();
        assert_eq!(schedule.next_delay(FailureKind::Http), HTTP_START);
        assert_eq!(schedule.next_delay(FailureKind::Network), NETWORK_STEP);
        assert_eq!(schedule.next_delay(FailureKind::Http), HTTP_START * 2);
    }
}
