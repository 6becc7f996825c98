//! Counters of what the pipeline did, shared by every stage, read by the run summary.

use std::sync::atomic::{AtomicU64, Ordering};

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
}

impl Stats {
    /// Adds `n` to a counter.
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
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
        }
    }
}
