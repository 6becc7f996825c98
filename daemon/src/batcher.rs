//! Groups rows into sink batches, flushed by count, bytes or age, whichever first.
//!
//! The batcher only decides *when*; the sink stage decides what a flush does.
//! A batch that is due may still take the rows already waiting behind it (group
//! commit: one transaction and one sync for all of them), up to
//! [`GROUP_COMMIT_ROWS`] times `max_rows` or `max_bytes`; see [`Batcher::can_grow`].

use std::time::Duration;

use tokio::time::Instant;

use crate::config::BatchConfig;

/// Why a batch was flushed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlushCause {
    Rows,
    Bytes,
    Age,
    /// Every source has ended and no row is waiting: nothing more is coming
    /// soon, so there is no reason to wait for `max_age`.
    End,
    Shutdown,
}

impl FlushCause {
    pub fn as_str(self) -> &'static str {
        match self {
            FlushCause::Rows => "rows",
            FlushCause::Bytes => "bytes",
            FlushCause::Age => "age",
            FlushCause::End => "end",
            FlushCause::Shutdown => "shutdown",
        }
    }
}

/// How many times `max_rows` a batch may hold when rows already waiting join it.
pub const GROUP_COMMIT_ROWS: usize = 8;

/// An open batch of items with their byte sizes.
#[derive(Debug)]
pub struct Batcher<T> {
    max_rows: usize,
    max_bytes: usize,
    max_age: Duration,
    items: Vec<T>,
    bytes: usize,
    opened: Option<Instant>,
}

impl<T> Batcher<T> {
    pub fn new(config: &BatchConfig) -> Batcher<T> {
        Batcher {
            max_rows: config.max_rows,
            max_bytes: config.max_bytes,
            max_age: config.max_age,
            items: Vec::with_capacity(config.max_rows.min(4096)),
            bytes: 0,
            opened: None,
        }
    }

    /// Adds an item; returns the cause when the batch should be flushed now.
    pub fn push(&mut self, item: T, bytes: usize) -> Option<FlushCause> {
        if self.items.is_empty() {
            self.opened = Some(Instant::now());
        }
        self.items.push(item);
        self.bytes += bytes;
        if self.items.len() >= self.max_rows {
            Some(FlushCause::Rows)
        } else if self.bytes >= self.max_bytes {
            Some(FlushCause::Bytes)
        } else {
            None
        }
    }

    /// Whether rows already waiting may still join the batch before it is
    /// written: it holds fewer than [`GROUP_COMMIT_ROWS`] × `max_rows` rows and
    /// fewer than `max_bytes` bytes.
    pub fn can_grow(&self) -> bool {
        self.items.len() < self.max_rows.saturating_mul(GROUP_COMMIT_ROWS)
            && self.bytes < self.max_bytes
    }

    /// When the open batch becomes due by age; `None` while it is empty.
    pub fn deadline(&self) -> Option<Instant> {
        self.opened.map(|opened| opened + self.max_age)
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Takes the open batch, leaving an empty one.
    pub fn take(&mut self) -> Vec<T> {
        self.bytes = 0;
        self.opened = None;
        std::mem::replace(&mut self.items, Vec::with_capacity(self.max_rows.min(4096)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(max_rows: usize, max_bytes: usize, max_age_ms: u64) -> BatchConfig {
        BatchConfig {
            max_rows,
            max_bytes,
            max_age: Duration::from_millis(max_age_ms),
        }
    }

    #[test]
    fn flushes_on_rows_then_bytes() {
        let mut batcher = Batcher::new(&config(3, 100, 1000));
        assert_eq!(batcher.push(1, 10), None);
        assert_eq!(batcher.push(2, 10), None);
        assert_eq!(batcher.push(3, 10), Some(FlushCause::Rows));
        assert_eq!(batcher.take(), vec![1, 2, 3]);
        assert!(batcher.is_empty());
        assert_eq!(batcher.push(4, 60), None);
        assert_eq!(batcher.push(5, 60), Some(FlushCause::Bytes));
        assert_eq!(batcher.take().len(), 2);
    }

    #[test]
    fn a_due_batch_grows_up_to_the_group_limits() {
        let mut batcher = Batcher::new(&config(2, 100, 1000));
        batcher.push(1, 10);
        assert_eq!(batcher.push(2, 10), Some(FlushCause::Rows));
        // Due, and still open to rows that are already waiting...
        assert!(batcher.can_grow());
        for n in 3..=2 * GROUP_COMMIT_ROWS {
            batcher.push(n, 1);
        }
        // ...until it holds GROUP_COMMIT_ROWS times max_rows.
        assert!(!batcher.can_grow());
        assert_eq!(batcher.take().len(), 2 * GROUP_COMMIT_ROWS);
        // max_bytes caps it too.
        batcher.push(1, 100);
        assert!(!batcher.can_grow());
    }

    #[tokio::test(start_paused = true)]
    async fn deadline_starts_with_the_first_item() {
        let mut batcher = Batcher::new(&config(10, 1000, 250));
        assert_eq!(batcher.deadline(), None);
        let before = Instant::now();
        batcher.push("a", 1);
        tokio::time::advance(Duration::from_millis(100)).await;
        batcher.push("b", 1);
        assert_eq!(
            batcher.deadline(),
            Some(before + Duration::from_millis(250))
        );
        batcher.take();
        assert_eq!(batcher.deadline(), None);
    }
}
