//! Sinks commit batches of rows; the pipeline acks messages only after a sink says so.
//!
//! Every sink speaks the same small [`Sink`] trait: write a batch, report how many
//! rows were new, how many were duplicates (already present by post id), and which
//! rows were rejected (they go to the dead-letter destination). An `Err` means
//! nothing in the batch may be considered committed.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;

use crate::config::SinkKind;
use crate::post::Post;

pub mod bigquery;
mod json;
pub mod jsonl;
pub mod null;
pub mod row;
pub mod sqlite;
pub mod stdout;

pub use bigquery::BigQuerySink;
pub use jsonl::JsonlSink;
pub use null::NullSink;
pub use sqlite::{SqliteSink, SqliteSummary};
pub use stdout::StdoutSink;

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
    /// The sink's settings cannot work (an invalid table name, a bad prefix, …).
    #[error("{sink}: {message}")]
    Config { sink: &'static str, message: String },
    /// An existing SQLite table lacks columns the sink writes.
    #[error("{}", sqlite::missing_columns_message(path, table, columns))]
    MissingColumns {
        path: PathBuf,
        table: String,
        /// The missing columns with their SQLite types.
        columns: Vec<(String, &'static str)>,
    },
    /// An existing BigQuery table lacks columns the sink writes.
    #[error("{}", bigquery::missing_columns_message(table, columns))]
    BigQueryMissingColumns {
        /// `project.dataset.table`.
        table: String,
        /// The missing columns with their BigQuery types.
        columns: Vec<bigquery::MissingColumn>,
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
            SinkError::Config { .. }
            | SinkError::MissingColumns { .. }
            | SinkError::BigQueryMissingColumns { .. } => false,
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

/// Opens the configured sink, creating its directory (and SQLite table) if missing.
pub async fn build(kind: &SinkKind) -> Result<Box<dyn Sink>, SinkError> {
    match kind {
        SinkKind::Sqlite(config) => {
            let config = config.clone();
            let sink = tokio::task::spawn_blocking(move || SqliteSink::open(&config))
                .await
                .map_err(|error| SinkError::Other {
                    sink: "sqlite",
                    message: format!("opening the database failed: {error}"),
                    retriable: false,
                })??;
            Ok(Box::new(sink))
        }
        SinkKind::Jsonl(config) => Ok(Box::new(row::blocking(|| JsonlSink::open(config))?)),
        SinkKind::Stdout(config) => Ok(Box::new(StdoutSink::new(config))),
        SinkKind::Null(_) => Ok(Box::new(NullSink)),
        SinkKind::BigQuery(config) => Ok(Box::new(BigQuerySink::connect(config).await?)),
    }
}

/// Creates `dir` and its parents, naming it in the error.
pub(crate) fn create_dir(sink: &'static str, dir: &Path) -> Result<(), SinkError> {
    if dir.as_os_str().is_empty() {
        return Ok(());
    }
    std::fs::create_dir_all(dir).map_err(|error| SinkError::Other {
        sink,
        message: format!("cannot create directory {}: {error}", dir.display()),
        retriable: false,
    })
}
