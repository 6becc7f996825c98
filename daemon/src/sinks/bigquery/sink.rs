//! [`BigQuerySink`]: splits a batch into insertAll requests and reports what BigQuery kept.

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

/// Streams rows into one BigQuery table with `tabledata.insertAll`.
///
/// Retries of 429/5xx/network errors happen inside [`Sink::write`], per request,
/// within `max_attempts`; past that the batch fails with a retriable error and the
/// pipeline keeps it un-acked and tries again later. Requests already committed are
/// then sent again, and BigQuery drops them by `insertId` (the post id).
#[derive(Debug)]
pub struct BigQuerySink {
    service: BigQueryService,
    fields: Vec<TableFieldSchema>,
    config: BigQuerySinkConfig,
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
        })
    }

    async fn write_batch(&mut self, posts: &[Post]) -> Result<WriteReport, SinkError> {
        let ingested_at = rfc3339_millis(Utc::now());
        let mut report = WriteReport::default();
        let mut chunk: Vec<PendingRow> = Vec::new();
        let mut chunk_bytes = ENVELOPE;
        for (index, post) in posts.iter().enumerate() {
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
        &self,
        chunk: Vec<PendingRow>,
        report: &mut WriteReport,
    ) -> Result<(), SinkError> {
        let rows = chunk.len();
        let outcome = self.service.insert(chunk).await?;
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
