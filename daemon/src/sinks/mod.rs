//! Sinks commit batches of rows; the pipeline acks messages only after a sink says so.
//!
//! Every sink speaks the same small [`Sink`] trait: write a batch, report how many
//! rows were new, how many were duplicates (already present by post id), and which
//! rows were rejected (they go to the dead-letter destination). An `Err` means
//! nothing in the batch may be considered committed.

use std::future::Future;
use std::pin::Pin;

use crate::post::Post;

/// A boxed future, as returned by [`Sink`] methods.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What a sink did with one batch.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct WriteReport {
    /// Rows newly committed.
    pub written: usize,
    /// Rows skipped because a row with the same post id was already committed.
    pub duplicates: usize,
    /// Rows the sink refused; every other row of the batch is committed.
    pub rejected: Vec<RejectedRow>,
}

/// A row a sink refused, by its index in the batch.
#[derive(Debug, Clone, PartialEq)]
pub struct RejectedRow {
    pub index: usize,
    pub reason: String,
}

/// Why a batch could not be written.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("{sink}: {source}")]
    Io {
        sink: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("{sink}: {message}")]
    Other {
        sink: &'static str,
        message: String,
        retriable: bool,
    },
}

impl SinkError {
    /// Whether trying the same batch again later may succeed.
    pub fn is_retriable(&self) -> bool {
        match self {
            SinkError::Io { .. } => true,
            SinkError::Sqlite(error) => matches!(
                error.sqlite_error_code(),
                Some(rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
            ),
            SinkError::Other { retriable, .. } => *retriable,
        }
    }
}

/// A destination for rows.
pub trait Sink: Send {
    /// A short name for logs and the summary (`sqlite`, `jsonl`, …).
    fn name(&self) -> &'static str;

    /// Commits `rows`; when this returns `Ok`, every row not listed as rejected is durable.
    fn write<'a>(&'a mut self, rows: &'a [Post]) -> BoxFuture<'a, Result<WriteReport, SinkError>>;

    /// Flushes and releases resources at shutdown.
    fn close(&mut self) -> BoxFuture<'_, Result<(), SinkError>>;
}
