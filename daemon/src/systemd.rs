//! Talks to systemd over `$NOTIFY_SOCKET` (sd_notify): readiness, a status line,
//! watchdog pings from the pipeline's own loop, reloading and stopping.
//!
//! Outside systemd (no `NOTIFY_SOCKET`) every call is a no-op, so `tweetpipe run`
//! behaves the same in a terminal. Notification failures are logged, never fatal:
//! a daemon must not stop because its supervisor went away.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use sd_notify::NotifyState;

use crate::pipeline::Observer;
use crate::stats::StatsSnapshot;

/// How often the `STATUS=` line is refreshed.
pub const STATUS_INTERVAL: Duration = Duration::from_secs(5);

/// Sends sd_notify messages when the process runs under a service manager.
#[derive(Debug)]
pub struct Notifier {
    enabled: bool,
    watchdog: Option<Duration>,
    /// Only the first failed send is logged as a warning, the rest at debug.
    warned: AtomicBool,
}

impl Notifier {
    /// Reads `NOTIFY_SOCKET`, `WATCHDOG_USEC` and `WATCHDOG_PID` from the environment.
    pub fn from_env() -> Notifier {
        Notifier {
            enabled: std::env::var_os("NOTIFY_SOCKET").is_some_and(|socket| !socket.is_empty()),
            watchdog: sd_notify::watchdog_enabled().filter(|timeout| !timeout.is_zero()),
            warned: AtomicBool::new(false),
        }
    }

    /// True when a service manager listens (`NOTIFY_SOCKET` is set).
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// The watchdog timeout systemd enforces (`WatchdogSec=`), if any.
    pub fn watchdog_timeout(&self) -> Option<Duration> {
        self.watchdog
    }

    /// The pipeline runs: `READY=1` with a first status line.
    pub fn ready(&self, status: &str) {
        self.send(&[NotifyState::Ready, NotifyState::Status(status)]);
    }

    /// A one-line summary shown by `systemctl status`.
    pub fn status(&self, status: &str) {
        self.send(&[NotifyState::Status(status)]);
    }

    /// `WATCHDOG=1`, when the unit has a watchdog.
    pub fn watchdog(&self) {
        if self.watchdog.is_some() {
            self.send(&[NotifyState::Watchdog]);
        }
    }

    /// `RELOADING=1` (with the `MONOTONIC_USEC=` that `Type=notify-reload` wants).
    pub fn reloading(&self) {
        let mut states = vec![
            NotifyState::Reloading,
            NotifyState::Status("reloading the configuration"),
        ];
        if let Ok(now) = NotifyState::monotonic_usec_now() {
            states.push(now);
        }
        self.send(&states);
    }

    /// `STOPPING=1` when shutdown starts.
    pub fn stopping(&self, status: &str) {
        self.send(&[NotifyState::Stopping, NotifyState::Status(status)]);
    }

    fn send(&self, states: &[NotifyState<'_>]) {
        if !self.enabled {
            return;
        }
        if let Err(error) = sd_notify::notify(states) {
            if self.warned.swap(true, Ordering::Relaxed) {
                log::debug!("sd_notify failed: {error}");
            } else {
                log::warn!("cannot notify the service manager (NOTIFY_SOCKET): {error}");
            }
        }
    }
}

/// The pipeline observer the daemon runs with: readiness, the status line and
/// watchdog pings all come from inside the pipeline, so a stuck sink stage or a
/// blocked runtime stops the pings and systemd restarts the service.
#[derive(Debug)]
pub struct SystemdObserver {
    notifier: std::sync::Arc<Notifier>,
    interval: Option<Duration>,
    last_status: Mutex<Option<(Instant, StatsSnapshot)>>,
}

impl SystemdObserver {
    pub fn new(notifier: std::sync::Arc<Notifier>) -> SystemdObserver {
        let interval = heartbeat_interval(notifier.enabled(), notifier.watchdog_timeout());
        SystemdObserver {
            notifier,
            interval,
            last_status: Mutex::new(None),
        }
    }
}

/// Half the watchdog timeout (as sd_watchdog_enabled(3) advises), and at least as
/// often as the status line; `None` when nobody listens.
pub fn heartbeat_interval(enabled: bool, watchdog: Option<Duration>) -> Option<Duration> {
    if !enabled {
        return None;
    }
    let interval = watchdog.map_or(STATUS_INTERVAL, |timeout| {
        (timeout / 2).min(STATUS_INTERVAL)
    });
    Some(interval.max(Duration::from_millis(10)))
}

impl Observer for SystemdObserver {
    fn ready(&self, stats: &StatsSnapshot) {
        if let Ok(mut last) = self.last_status.lock() {
            *last = Some((Instant::now(), *stats));
        }
        self.notifier.ready("running: waiting for the first posts");
    }

    fn heartbeat_interval(&self) -> Option<Duration> {
        self.interval
    }

    fn heartbeat(&self, stats: &StatsSnapshot) {
        self.notifier.watchdog();
        let Ok(mut last) = self.last_status.lock() else {
            return;
        };
        let now = Instant::now();
        let due = last.is_none_or(|(at, _)| now.duration_since(at) >= STATUS_INTERVAL);
        if due {
            let (at, before) = last.unwrap_or((now, StatsSnapshot::default()));
            let line = status_line(stats, &before, now.duration_since(at));
            // Journal fields READ=, WRITTEN=, … (`journalctl -u tweetpipe -o verbose`).
            log::debug!(
                read = stats.read,
                written = stats.written,
                duplicates = stats.duplicates,
                dead_lettered = stats.dead_lettered;
                "{line}"
            );
            self.notifier.status(&line);
            *last = Some((now, *stats));
        }
    }
}

/// The one-line throughput summary `systemctl status` shows.
pub fn status_line(now: &StatsSnapshot, before: &StatsSnapshot, over: Duration) -> String {
    let secs = over.as_secs_f64();
    let rate = if secs > 0.0 {
        now.read.saturating_sub(before.read) as f64 / secs
    } else {
        0.0
    };
    format!(
        "running: {:.1} posts/s; {} read, {} written, {} duplicates, {} dropped, {} dead-lettered",
        rate, now.read, now.written, now.duplicates, now.dropped, now.dead_lettered
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heartbeat_is_half_the_watchdog_and_at_most_the_status_interval() {
        assert_eq!(
            heartbeat_interval(false, Some(Duration::from_secs(2))),
            None
        );
        assert_eq!(
            heartbeat_interval(true, Some(Duration::from_secs(2))),
            Some(Duration::from_secs(1))
        );
        assert_eq!(
            heartbeat_interval(true, Some(Duration::from_secs(60))),
            Some(STATUS_INTERVAL)
        );
        assert_eq!(heartbeat_interval(true, None), Some(STATUS_INTERVAL));
    }

    #[test]
    fn status_line_reports_the_rate_since_the_last_line() {
        let before = StatsSnapshot {
            read: 100,
            ..StatsSnapshot::default()
        };
        let now = StatsSnapshot {
            read: 600,
            written: 450,
            dead_lettered: 3,
            ..StatsSnapshot::default()
        };
        let line = status_line(&now, &before, Duration::from_secs(5));
        assert!(
            line.starts_with("running: 100.0 posts/s; 600 read, 450 written"),
            "{line}"
        );
        assert!(line.ends_with("3 dead-lettered"), "{line}");
    }
}
