//! Prints rows as JSON Lines on standard output, for pipes (`| jq`) and trying things out.
//!
//! Each row is one JSON object per line with the same keys as the SQLite columns
//! (lists as arrays, `attrs` as an object). A batch is written in one piece and
//! flushed before the sink reports it committed; what the reader on the other
//! end does with it is outside the daemon's guarantee. Duplicates are skipped
//! against the most recent ids of this run (see [`RecentIds`]); consumers that
//! need exactly one row per post deduplicate by `id`.

use std::collections::HashSet;
use std::io::Write;

use chrono::Utc;

use super::row::{self, RecentIds, Row};
use super::{BoxFuture, RejectedRow, Sink, SinkError, WriteReport};
use crate::config::StdoutSinkConfig;
use crate::post::Post;

/// A sink printing one JSON row per line on standard output.
#[derive(Debug, Default)]
pub struct StdoutSink {
    store_raw: bool,
    recent: RecentIds,
    buffer: Vec<u8>,
}

impl StdoutSink {
    pub fn new(config: &StdoutSinkConfig) -> Self {
        StdoutSink {
            store_raw: config.store_raw,
            recent: RecentIds::default(),
            buffer: Vec::new(),
        }
    }

    /// Renders the rows that are new into the buffer; the ids to remember once written.
    fn render<'p>(&mut self, rows: &'p [Post]) -> (WriteReport, HashSet<&'p str>) {
        let ingested_at = row::rfc3339_millis(Utc::now());
        let mut report = WriteReport::default();
        let mut in_batch: HashSet<&str> = HashSet::with_capacity(rows.len());
        self.buffer.clear();
        for (index, post) in rows.iter().enumerate() {
            if let Some(reason) = row::refuse(post) {
                report.rejected.push(RejectedRow {
                    index,
                    reason: reason.to_owned(),
                });
                continue;
            }
            if self.recent.contains(&post.id) || !in_batch.insert(&post.id) {
                report.duplicates += 1;
                continue;
            }
            let row = Row::new(post, &ingested_at, self.store_raw);
            row.write_json_line(&mut self.buffer);
            report.written += 1;
        }
        (report, in_batch)
    }
}

impl Sink for StdoutSink {
    fn name(&self) -> &'static str {
        "stdout"
    }

    fn write<'a>(&'a mut self, rows: &'a [Post]) -> BoxFuture<'a, Result<WriteReport, SinkError>> {
        Box::pin(async move {
            let (report, written) = self.render(rows);
            if !self.buffer.is_empty() {
                let buffer = &self.buffer;
                row::blocking(|| {
                    let mut stdout = std::io::stdout().lock();
                    stdout.write_all(buffer).and_then(|()| stdout.flush())
                })
                .map_err(|source| SinkError::Io {
                    sink: "stdout",
                    source,
                })?;
            }
            for id in written {
                self.recent.insert(id);
            }
            Ok(report)
        })
    }

    fn close(&mut self) -> BoxFuture<'_, Result<(), SinkError>> {
        Box::pin(async move {
            row::blocking(|| std::io::stdout().lock().flush()).map_err(|source| SinkError::Io {
                sink: "stdout",
                source,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_new_rows_once() {
        let mut sink = StdoutSink::new(&StdoutSinkConfig { store_raw: false });
        let posts = [
            Post {
                id: "1".to_owned(),
                ..Post::default()
            },
            Post {
                id: "1".to_owned(),
                ..Post::default()
            },
        ];
        let (report, ids) = sink.render(&posts);
        assert_eq!((report.written, report.duplicates), (1, 1));
        assert_eq!(ids.len(), 1);
        let text = String::from_utf8(sink.buffer.clone()).unwrap();
        assert_eq!(text.lines().count(), 1);
        let value: serde_json::Value = serde_json::from_str(text.trim_end()).unwrap();
        assert_eq!(value["id"], "1");
    }
}
