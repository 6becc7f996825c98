//! [`BigQuerySink`]: splits a batch into insertAll requests and reports what BigQuery kept.

use std::collections::{HashSet, VecDeque};

use chrono::Utc;
use gcp_bigquery_client::model::table_field_schema::TableFieldSchema;

use super::BigQuerySinkConfig;
use super::schema;
use super::service::{BigQueryService, Credentials, PendingRow};
use crate::post::Post;
use crate::sinks::row::{self, rfc3339_millis};
use crate::sinks::{BoxFuture, RejectedRow, Sink, SinkError, WriteReport};

/// JSON framing of one row in an insertAll body besides its JSON:
/// `{"insertId":"…","json":…},`.
const ROW_OVERHEAD: usize = 32;

/// The rest of an insertAll body: `{"ignoreUnknownValues":false,"rows":[…],"skipInvalidRows":true}`.
const ENVELOPE: usize = 128;

/// How many of the ids this sink wrote it remembers, to count a post seen again
/// in the same run (a redelivery, a reconnect's overlap) as a duplicate instead
/// of sending it again. About 40 bytes an id.
const REMEMBERED_IDS: usize = 200_000;

/// Streams rows into one BigQuery table with `tabledata.insertAll`.
///
/// Retries of 429/5xx/network errors happen inside [`Sink::write`], per request,
/// within `max_attempts`; past that the batch fails with a retriable error and the
/// pipeline keeps it un-acked and tries again later. Requests already committed are
/// then sent again, and BigQuery drops them by `insertId` (the post id).
///
/// insertAll does not say which rows BigQuery dropped by `insertId`, so the sink
/// remembers the ids it wrote in this run (the most recent [`REMEMBERED_IDS`]):
/// a post written again is reported as a duplicate and not sent, as the SQLite
/// sink reports it. An id is remembered only once BigQuery accepted its row.
#[derive(Debug)]
pub struct BigQuerySink {
    service: BigQueryService,
    fields: Vec<TableFieldSchema>,
    config: BigQuerySinkConfig,
    written: RecentIds,
}

/// The most recent ids written, bounded; the oldest is forgotten first.
#[derive(Debug, Default)]
struct RecentIds {
    ids: HashSet<String>,
    order: VecDeque<String>,
    capacity: usize,
}

impl RecentIds {
    fn new(capacity: usize) -> RecentIds {
        RecentIds {
            capacity,
            ..RecentIds::default()
        }
    }

    fn contains(&self, id: &str) -> bool {
        self.ids.contains(id)
    }

    fn insert(&mut self, id: &str) {
        if self.capacity == 0 || self.ids.contains(id) {
            return;
        }
        if self.order.len() == self.capacity
            && let Some(oldest) = self.order.pop_front()
        {
            self.ids.remove(&oldest);
        }
        self.ids.insert(id.to_owned());
        self.order.push_back(id.to_owned());
    }
}

impl BigQuerySink {
    /// Connects with the configured credentials, checks the table's columns and
    /// creates the table when it is missing (and `create_if_missing` is set).
    pub async fn connect(config: &BigQuerySinkConfig) -> Result<Self, SinkError> {
        Self::connect_with(config, Credentials::from_config(config)).await
    }

    /// [`BigQuerySink::connect`] with explicit credentials.
    pub async fn connect_with(
        config: &BigQuerySinkConfig,
        credentials: Credentials,
    ) -> Result<Self, SinkError> {
        let fields = schema::load(config)?;
        let service = BigQueryService::connect(config, credentials).await?;
        service.ensure_table(&fields).await?;
        Ok(BigQuerySink {
            service,
            fields,
            config: config.clone(),
            written: RecentIds::new(REMEMBERED_IDS),
        })
    }

    async fn write_batch(&mut self, posts: &[Post]) -> Result<WriteReport, SinkError> {
        let ingested_at = rfc3339_millis(Utc::now());
        let mut report = WriteReport::default();
        let mut chunk: Vec<PendingRow> = Vec::new();
        let mut chunk_bytes = ENVELOPE;
        // Ids of this batch already on their way, so a post twice in one batch
        // is sent once.
        let mut in_batch: HashSet<&str> = HashSet::new();
        for (index, post) in posts.iter().enumerate() {
            if self.written.contains(&post.id) || !in_batch.insert(&post.id) {
                report.duplicates += 1;
                continue;
            }
            if let Some(reason) = row::refuse(post) {
                report.rejected.push(RejectedRow {
                    index,
                    reason: reason.to_owned(),
                });
                continue;
            }
            let json = match schema::render(post, &ingested_at, &self.fields, self.config.store_raw)
            {
                Ok(json) => json,
                Err(error) => {
                    report.rejected.push(RejectedRow {
                        index,
                        reason: format!("cannot render the row as JSON: {error}"),
                    });
                    continue;
                }
            };
            let bytes = json.to_string().len() + post.id.len() + ROW_OVERHEAD;
            if bytes + ENVELOPE > self.config.max_bytes_per_request {
                report.rejected.push(RejectedRow {
                    index,
                    reason: format!(
                        "the row is {bytes} bytes, over sink.bigquery.max_bytes_per_request ({})",
                        self.config.max_bytes_per_request
                    ),
                });
                continue;
            }
            if !chunk.is_empty()
                && (chunk.len() >= self.config.max_rows_per_request
                    || chunk_bytes + bytes > self.config.max_bytes_per_request)
            {
                self.send(std::mem::take(&mut chunk), &mut report).await?;
                chunk_bytes = ENVELOPE;
            }
            chunk_bytes += bytes;
            chunk.push(PendingRow {
                index,
                insert_id: post.id.clone(),
                json,
            });
        }
        if !chunk.is_empty() {
            self.send(chunk, &mut report).await?;
        }
        report.rejected.sort_by_key(|rejected| rejected.index);
        Ok(report)
    }

    async fn send(
        &mut self,
        chunk: Vec<PendingRow>,
        report: &mut WriteReport,
    ) -> Result<(), SinkError> {
        let rows = chunk.len();
        let ids: Vec<(usize, String)> = chunk
            .iter()
            .map(|row| (row.index, row.insert_id.clone()))
            .collect();
        let outcome = self.service.insert(chunk).await?;
        let refused: HashSet<usize> = outcome.rejected.iter().map(|(index, _)| *index).collect();
        for (index, id) in &ids {
            if !refused.contains(index) {
                self.written.insert(id);
            }
        }
        if !outcome.rejected.is_empty() {
            log::warn!(
                "bigquery: {} of {rows} rows refused by {}",
                outcome.rejected.len(),
                self.service.table_name()
            );
        }
        report.written += outcome.written;
        report.rejected.extend(
            outcome
                .rejected
                .into_iter()
                .map(|(index, reason)| RejectedRow { index, reason }),
        );
        Ok(())
    }
}

impl Sink for BigQuerySink {
    fn name(&self) -> &'static str {
        "bigquery"
    }

    fn write<'a>(&'a mut self, rows: &'a [Post]) -> BoxFuture<'a, Result<WriteReport, SinkError>> {
        Box::pin(self.write_batch(rows))
    }

    fn close(&mut self) -> BoxFuture<'_, Result<(), SinkError>> {
        // insertAll has nothing buffered client-side.
        Box::pin(async { Ok(()) })
    }
}
