//! Counters of what the pipeline did, shared by every stage, read by the run summary.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

static PROCESS_START: OnceLock<Instant> = OnceLock::new();

/// Marks the start of the process (the first thing `main` does); the run
/// summary's timeline counts from here.
pub fn mark_process_start() {
    PROCESS_START.get_or_init(Instant::now);
}

/// Time since [`mark_process_start`] (since the first call, if it was never made).
pub fn since_process_start() -> Duration {
    PROCESS_START.get_or_init(Instant::now).elapsed()
}

/// Microseconds since the process started, never 0 (0 means "not yet").
fn now_us() -> u64 {
    (since_process_start().as_micros() as u64).max(1)
}

/// Pipeline-wide counters; every stage holds an `Arc<Stats>`.
#[derive(Debug, Default)]
pub struct Stats {
    /// Non-blank lines or messages a source read.
    pub read: AtomicU64,
    /// Messages published to the broker.
    pub published: AtomicU64,
    /// Messages that could not be decoded into a post.
    pub malformed: AtomicU64,
    /// Posts the plugin chain kept.
    pub kept: AtomicU64,
    /// Posts a plugin dropped.
    pub dropped: AtomicU64,
    /// Posts a plugin failed on.
    pub failed: AtomicU64,
    /// Messages written to the dead-letter destination.
    pub dead_lettered: AtomicU64,
    /// Rows newly committed by the sink.
    pub written: AtomicU64,
    /// Rows the sink skipped because their id was already committed.
    pub duplicates: AtomicU64,
    /// Rows the sink rejected.
    pub rejected: AtomicU64,
    /// Batches the sink committed.
    pub batches: AtomicU64,
    /// Sink writes that failed and were retried.
    pub sink_retries: AtomicU64,
    /// Messages acknowledged to the broker.
    pub acked: AtomicU64,
    /// Messages handed back to the broker for redelivery.
    pub nacked: AtomicU64,
    /// When the first message was read (µs since the process started; 0: none).
    first_read_us: AtomicU64,
    /// When the sink last committed a batch (µs since the process started; 0: none).
    last_commit_us: AtomicU64,
}

/// A point-in-time copy of [`Stats`].
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct StatsSnapshot {
    pub read: u64,
    pub published: u64,
    pub malformed: u64,
    pub kept: u64,
    pub dropped: u64,
    pub failed: u64,
    pub dead_lettered: u64,
    pub written: u64,
    pub duplicates: u64,
    pub rejected: u64,
    pub batches: u64,
    pub sink_retries: u64,
    pub acked: u64,
    pub nacked: u64,
    /// Time from the process's start to the first message read.
    pub first_read: Option<Duration>,
    /// Time from the process's start to the sink's last commit.
    pub last_commit: Option<Duration>,
}

impl Stats {
    /// Adds `n` to a counter.
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// A source read one message (the first one marks the timeline).
    pub fn read_one(&self) {
        if self.read.fetch_add(1, Ordering::Relaxed) == 0 {
            let _ = self.first_read_us.compare_exchange(
                0,
                now_us(),
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
        }
    }

    /// The sink committed a batch.
    pub fn committed(&self) {
        self.batches.fetch_add(1, Ordering::Relaxed);
        self.last_commit_us.fetch_max(now_us(), Ordering::Relaxed);
    }

    /// Reads every counter.
    pub fn snapshot(&self) -> StatsSnapshot {
        let get = |counter: &AtomicU64| counter.load(Ordering::Relaxed);
        StatsSnapshot {
            read: get(&self.read),
            published: get(&self.published),
            malformed: get(&self.malformed),
            kept: get(&self.kept),
            dropped: get(&self.dropped),
            failed: get(&self.failed),
            dead_lettered: get(&self.dead_lettered),
            written: get(&self.written),
            duplicates: get(&self.duplicates),
            rejected: get(&self.rejected),
            batches: get(&self.batches),
            sink_retries: get(&self.sink_retries),
            acked: get(&self.acked),
            nacked: get(&self.nacked),
            first_read: match get(&self.first_read_us) {
                0 => None,
                us => Some(Duration::from_micros(us)),
            },
            last_commit: match get(&self.last_commit_us) {
                0 => None,
                us => Some(Duration::from_micros(us)),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_timeline_marks_the_first_read_and_the_last_commit() {
        let stats = Stats::default();
        assert_eq!(stats.snapshot().first_read, None);
        assert_eq!(stats.snapshot().last_commit, None);
        stats.read_one();
        let first = stats
            .snapshot()
            .first_read
            .expect("the first read is marked");
        std::thread::sleep(Duration::from_millis(2));
        stats.read_one();
        stats.committed();
        std::thread::sleep(Duration::from_millis(2));
        stats.committed();
        let snapshot = stats.snapshot();
        assert_eq!(snapshot.read, 2);
        assert_eq!(snapshot.batches, 2);
        // Later reads leave the first read's time; later commits move the last.
        assert_eq!(snapshot.first_read, Some(first));
        let last = snapshot.last_commit.expect("a commit is marked");
        assert!(
            last >= first + Duration::from_millis(4),
            "{first:?} {last:?}"
        );
    }
}
