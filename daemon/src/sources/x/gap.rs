//! Gaps in the X stream: what the source remembers across restarts (when the
//! stream last delivered, and the windows recent search has not finished), and
//! the arithmetic of a gap (its length, what backfill asks for, which window
//! recent search reads).
//!
//! X does not resend what it matched while no connection was open. The source
//! notes the time of every post and keep-alive it receives; a small JSON file in
//! the state directory keeps the latest one (written at most once a second,
//! atomically, and at stop), so after a reconnect or a restart the source knows
//! from when to when the stream was away.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

/// X's backfill reaches back at most this many minutes.
pub const MAX_BACKFILL_MINUTES: u32 = 5;
/// Recent search covers the last seven days…
pub const SEARCH_REACH: Duration = Duration::from_secs(7 * 24 * 3600);
/// …less this much, so a request is not refused for a start a moment too old.
const SEARCH_REACH_MARGIN: Duration = Duration::from_secs(60);
/// How often the state file is rewritten at most while posts flow.
pub const SAVE_EVERY: Duration = Duration::from_secs(1);

/// Why the stream was away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    /// The daemon was not running (the time since the last run's last post).
    Restart,
    /// The connection broke and was opened again.
    Reconnect,
}

impl Cause {
    pub fn as_str(self) -> &'static str {
        match self {
            Cause::Restart => "restart",
            Cause::Reconnect => "reconnect",
        }
    }
}

/// A time without the stream: from the last data received to the moment a new
/// connection was answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gap {
    pub since: DateTime<Utc>,
    pub until: DateTime<Utc>,
    pub cause: Cause,
}

impl Gap {
    /// How long the stream was away (zero if the clock went backwards).
    pub fn length(&self) -> Duration {
        (self.until - self.since).to_std().unwrap_or_default()
    }

    /// The `backfill_minutes` that covers this gap and `overlap` before it:
    /// whole minutes, 1 to [`MAX_BACKFILL_MINUTES`].
    pub fn backfill_minutes(&self, overlap: Duration) -> u32 {
        let seconds = (self.length() + overlap).as_secs_f64();
        ((seconds / 60.0).ceil() as u32).clamp(1, MAX_BACKFILL_MINUTES)
    }

    /// The window recent search reads for this gap: from `overlap` before the
    /// last data received to a second or two after the new connection was
    /// answered, on whole seconds (X's granularity; `start_time` is inclusive,
    /// `end_time` exclusive).
    pub fn search_window(&self, overlap: Duration) -> Window {
        let overlap = TimeDelta::from_std(overlap).unwrap_or(TimeDelta::zero());
        let second = TimeDelta::seconds(1);
        let start = (self.since - overlap)
            .duration_trunc(second)
            .unwrap_or(self.since);
        let end = self.until.duration_trunc(second).unwrap_or(self.until) + second * 2;
        Window { start, end }
    }
}

/// A span of time recent search is to read, `start` inclusive, `end` exclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

impl Window {
    /// The part recent search can still read at `now` (the last seven days),
    /// and how much of the window is older than that.
    pub fn within_reach(&self, now: DateTime<Utc>) -> (Option<Window>, Duration) {
        let reach = TimeDelta::from_std(SEARCH_REACH - SEARCH_REACH_MARGIN).unwrap_or_default();
        let oldest = now - reach;
        if self.start >= oldest {
            return (Some(*self), Duration::ZERO);
        }
        let lost_until = self.end.min(oldest);
        let lost = (lost_until - self.start).to_std().unwrap_or_default();
        if self.end <= oldest {
            return (None, lost);
        }
        (
            Some(Window {
                start: oldest,
                end: self.end,
            }),
            lost,
        )
    }

    /// RFC 3339 in whole seconds, as X's `start_time`/`end_time` want it.
    pub fn format(time: DateTime<Utc>) -> String {
        time.format("%Y-%m-%dT%H:%M:%SZ").to_string()
    }

    pub fn describe(&self) -> String {
        format!(
            "{} to {}",
            Window::format(self.start),
            Window::format(self.end)
        )
    }
}

/// The state file's contents.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SavedState {
    /// When the stream last delivered data (a post or a keep-alive).
    #[serde(default)]
    pub last_seen: Option<DateTime<Utc>>,
    /// When the last post arrived.
    #[serde(default)]
    pub last_post_at: Option<DateTime<Utc>>,
    /// Windows recent search has not finished (read again after a restart).
    #[serde(default)]
    pub pending: Vec<Window>,
}

/// The state file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error(
        "cannot read the X stream state {}: {source}; the time without the stream since the last run is unknown, so that gap is not recovered (the file is rewritten)",
        path.display()
    )]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the X stream state {} is not what tweetpipe writes ({message}); the time without the stream since the last run is unknown, so that gap is not recovered (the file is rewritten)",
        path.display()
    )]
    Corrupt { path: PathBuf, message: String },
    #[error(
        "cannot write the X stream state {}: {source}; gaps after a restart will not be known (check that the directory exists and is writable, or set source.x.state_file)",
        path.display()
    )]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Reads the state file; a missing file is a first run (the default state).
pub fn load(path: &Path) -> Result<SavedState, StateError> {
    let text = match std::fs::read(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            return Ok(SavedState::default());
        }
        Err(source) => {
            return Err(StateError::Read {
                path: path.to_owned(),
                source,
            });
        }
    };
    serde_json::from_slice(&text).map_err(|error| StateError::Corrupt {
        path: path.to_owned(),
        message: error.to_string(),
    })
}

/// Writes the state file atomically: a temporary file beside it, synced, then
/// renamed over it, so a crash leaves the old state or the new one.
pub fn save(path: &Path, state: &SavedState) -> Result<(), StateError> {
    let write = || -> std::io::Result<()> {
        if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let mut temporary = path.as_os_str().to_owned();
        temporary.push(".tmp");
        let temporary = PathBuf::from(temporary);
        let text = serde_json::to_vec_pretty(state).map_err(std::io::Error::other)?;
        {
            let mut file = std::fs::File::create(&temporary)?;
            std::io::Write::write_all(&mut file, &text)?;
            file.sync_data()?;
        }
        std::fs::rename(&temporary, path)
    };
    write().map_err(|source| StateError::Write {
        path: path.to_owned(),
        source,
    })
}

/// What the stream loop, the recovery task and the state writer share: the last
/// times data and posts arrived, and the windows still to recover.
#[derive(Debug, Default)]
pub struct Tracker {
    /// Milliseconds since the epoch; 0 for never.
    last_seen_ms: AtomicI64,
    last_post_ms: AtomicI64,
    pending: Mutex<Vec<Window>>,
    added: tokio::sync::Notify,
}

impl Tracker {
    /// A tracker that starts from a saved state.
    pub fn from_saved(saved: &SavedState) -> Arc<Tracker> {
        let tracker = Tracker::default();
        let ms = |time: Option<DateTime<Utc>>| time.map_or(0, |time| time.timestamp_millis());
        tracker
            .last_seen_ms
            .store(ms(saved.last_seen), Ordering::Relaxed);
        tracker
            .last_post_ms
            .store(ms(saved.last_post_at), Ordering::Relaxed);
        *tracker.pending.lock().unwrap_or_else(|e| e.into_inner()) = saved.pending.clone();
        Arc::new(tracker)
    }

    /// Data (a post or a keep-alive) arrived at `now`.
    pub fn seen(&self, now: DateTime<Utc>) {
        self.last_seen_ms
            .fetch_max(now.timestamp_millis(), Ordering::Relaxed);
    }

    /// A post arrived at `now`.
    pub fn post(&self, now: DateTime<Utc>) {
        self.seen(now);
        self.last_post_ms
            .fetch_max(now.timestamp_millis(), Ordering::Relaxed);
    }

    /// When data last arrived.
    pub fn last_seen(&self) -> Option<DateTime<Utc>> {
        from_ms(self.last_seen_ms.load(Ordering::Relaxed))
    }

    /// Queues a window for recent search. A window inside one already queued
    /// is dropped, the part of it the window being read already covers is cut
    /// off, and one that overlaps the last queued window (not yet started) is
    /// merged into it, so no post is paid for twice by recovery alone.
    pub fn add_pending(&self, window: Window) {
        let mut window = window;
        {
            let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            if pending
                .iter()
                .any(|queued| queued.start <= window.start && window.end <= queued.end)
            {
                return;
            }
            if let Some(first) = pending.first()
                && window.start < first.end
                && first.start <= window.start
            {
                window.start = first.end;
            }
            let queued = pending.len();
            match pending.last_mut() {
                Some(last) if queued > 1 && window.start <= last.end => {
                    last.start = last.start.min(window.start);
                    last.end = last.end.max(window.end);
                }
                _ => pending.push(window),
            }
        }
        self.added.notify_one();
    }

    /// The oldest window still to recover (it stays queued until [`Tracker::finish`]).
    pub fn next_pending(&self) -> Option<Window> {
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .first()
            .copied()
    }

    /// Waits until a window is queued.
    pub async fn added(&self) {
        self.added.notified().await;
    }

    /// `window` is recovered (or given up): it leaves the queue.
    pub fn finish(&self, window: &Window) {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(index) = pending.iter().position(|queued| queued == window) {
            pending.remove(index);
        }
    }

    /// Forgets every queued window; returns how many there were.
    pub fn clear_pending(&self) -> usize {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        let count = pending.len();
        pending.clear();
        count
    }

    /// What the state file should hold now.
    pub fn snapshot(&self) -> SavedState {
        SavedState {
            last_seen: from_ms(self.last_seen_ms.load(Ordering::Relaxed)),
            last_post_at: from_ms(self.last_post_ms.load(Ordering::Relaxed)),
            pending: self
                .pending
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        }
    }
}

fn from_ms(ms: i64) -> Option<DateTime<Utc>> {
    (ms != 0)
        .then(|| DateTime::from_timestamp_millis(ms))
        .flatten()
}

/// Keeps the state file up to date: rewrites it at most every [`SAVE_EVERY`]
/// when something changed, and once more when `stop` fires. A write that fails
/// is logged once (and again after it worked in between), never fatal.
pub async fn keep_saved(
    path: PathBuf,
    tracker: Arc<Tracker>,
    stop: tokio_util::sync::CancellationToken,
) {
    let mut written = tracker.snapshot();
    let mut failing = false;
    loop {
        let stopping = tokio::select! {
            _ = stop.cancelled() => true,
            _ = tokio::time::sleep(SAVE_EVERY) => false,
        };
        let now = tracker.snapshot();
        if now != written || stopping {
            let state = now.clone();
            let target = path.clone();
            let saved = tokio::task::spawn_blocking(move || save(&target, &state))
                .await
                .unwrap_or_else(|error| {
                    Err(StateError::Write {
                        path: path.clone(),
                        source: std::io::Error::other(error),
                    })
                });
            match saved {
                Ok(()) => {
                    written = now;
                    failing = false;
                }
                Err(error) => {
                    if !failing {
                        log::warn!("{error}");
                    }
                    failing = true;
                }
            }
        }
        if stopping {
            return;
        }
    }
}

/// A length for people: "850 ms", "14 s", "2 min 14 s", "3 h 2 min", "2 d 4 h".
pub fn humanize(length: Duration) -> String {
    let secs = length.as_secs();
    if secs == 0 {
        return format!("{} ms", length.as_millis());
    }
    let (days, hours, minutes, seconds) =
        (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    if days > 0 {
        format!("{days} d {hours} h")
    } else if hours > 0 {
        format!("{hours} h {minutes} min")
    } else if minutes > 0 {
        format!("{minutes} min {seconds} s")
    } else {
        format!("{seconds} s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> DateTime<Utc> {
        text.parse().unwrap()
    }

    #[test]
    fn a_gap_says_how_long_and_what_backfill_and_search_ask_for() {
        let gap = Gap {
            since: at("2026-03-01T08:00:10.400Z"),
            until: at("2026-03-01T08:02:24.900Z"),
            cause: Cause::Restart,
        };
        assert_eq!(humanize(gap.length()), "2 min 14 s");
        assert_eq!(gap.backfill_minutes(Duration::from_secs(5)), 3);
        let window = gap.search_window(Duration::from_secs(5));
        assert_eq!(
            window.describe(),
            "2026-03-01T08:00:05Z to 2026-03-01T08:02:26Z"
        );
        let long = Gap {
            until: at("2026-03-01T09:00:00Z"),
            ..gap
        };
        assert_eq!(long.backfill_minutes(Duration::ZERO), MAX_BACKFILL_MINUTES);
        let short = Gap {
            until: at("2026-03-01T08:00:10.500Z"),
            ..gap
        };
        assert_eq!(short.backfill_minutes(Duration::ZERO), 1);
        assert_eq!(humanize(short.length()), "100 ms");
        assert_eq!(
            humanize(Duration::from_secs(2 * 86_400 + 4 * 3600)),
            "2 d 4 h"
        );
    }

    #[test]
    fn recent_search_reaches_back_seven_days_only() {
        let now = at("2026-03-10T00:00:00Z");
        let recent = Window {
            start: at("2026-03-09T00:00:00Z"),
            end: at("2026-03-09T01:00:00Z"),
        };
        assert_eq!(recent.within_reach(now), (Some(recent), Duration::ZERO));
        let straddling = Window {
            start: at("2026-03-01T00:00:00Z"),
            end: at("2026-03-09T00:00:00Z"),
        };
        let (reachable, lost) = straddling.within_reach(now);
        let reachable = reachable.unwrap();
        assert_eq!(reachable.start, at("2026-03-03T00:01:00Z"));
        assert_eq!(reachable.end, straddling.end);
        assert_eq!(lost, Duration::from_secs(2 * 86_400 + 60));
        let ancient = Window {
            start: at("2026-02-01T00:00:00Z"),
            end: at("2026-02-02T00:00:00Z"),
        };
        assert_eq!(
            ancient.within_reach(now),
            (None, Duration::from_secs(86_400))
        );
    }

    #[test]
    fn the_state_survives_a_round_trip_and_a_bad_file_is_an_error_not_a_crash() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state/x-stream.json");
        assert_eq!(load(&path).unwrap(), SavedState::default());
        let tracker = Tracker::from_saved(&SavedState::default());
        tracker.post(at("2026-03-01T08:00:00.250Z"));
        tracker.seen(at("2026-03-01T08:00:20Z"));
        tracker.seen(at("2026-03-01T08:00:01Z"));
        let window = Window {
            start: at("2026-03-01T07:00:00Z"),
            end: at("2026-03-01T07:10:00Z"),
        };
        tracker.add_pending(window);
        let state = tracker.snapshot();
        assert_eq!(state.last_seen, Some(at("2026-03-01T08:00:20Z")));
        assert_eq!(state.last_post_at, Some(at("2026-03-01T08:00:00.250Z")));
        save(&path, &state).unwrap();
        assert_eq!(load(&path).unwrap(), state);
        let again = Tracker::from_saved(&load(&path).unwrap());
        assert_eq!(again.next_pending(), Some(window));
        again.finish(&window);
        assert_eq!(again.next_pending(), None);

        // Windows inside, overlapping or after the ones queued.
        let window = |start: &str, end: &str| Window {
            start: at(start),
            end: at(end),
        };
        let queue = Tracker::from_saved(&SavedState::default());
        queue.add_pending(window("2026-03-01T08:00:00Z", "2026-03-01T08:01:00Z"));
        queue.add_pending(window("2026-03-01T08:00:10Z", "2026-03-01T08:00:50Z"));
        queue.add_pending(window("2026-03-01T08:00:30Z", "2026-03-01T08:01:30Z"));
        queue.add_pending(window("2026-03-01T08:01:20Z", "2026-03-01T08:02:00Z"));
        assert_eq!(
            queue.snapshot().pending,
            [
                window("2026-03-01T08:00:00Z", "2026-03-01T08:01:00Z"),
                window("2026-03-01T08:01:00Z", "2026-03-01T08:02:00Z")
            ]
        );

        std::fs::write(&path, "{\"last_seen\": 12").unwrap();
        let error = load(&path).unwrap_err();
        assert!(error.to_string().contains("not recovered"), "{error}");
    }
}
