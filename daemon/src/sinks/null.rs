//! Discards rows: for measuring the pipeline without a sink's cost, and for dry runs.
//!
//! `[sink.null]` commits nothing anywhere, yet reports every row as written, so
//! the pipeline acks each message as soon as its batch reaches the sink (a row
//! other sinks would refuse, one with an empty id, is refused here too and goes
//! to the dead-letter file). It keeps no memory of ids, so it counts no
//! duplicates: nothing is stored that a repeat could duplicate.

use super::row;
use super::{BoxFuture, RejectedRow, Sink, SinkError, WriteReport};
use crate::post::Post;

/// A sink that drops every row it is given.
#[derive(Debug, Default)]
pub struct NullSink;

impl NullSink {
    fn discard(rows: &[Post]) -> WriteReport {
        let mut report = WriteReport::default();
        for (index, post) in rows.iter().enumerate() {
            match row::refuse(post) {
                Some(reason) => report.rejected.push(RejectedRow {
                    index,
                    reason: reason.to_owned(),
                }),
                None => report.written += 1,
            }
        }
        report
    }
}

impl Sink for NullSink {
    fn name(&self) -> &'static str {
        "null"
    }

    fn write<'a>(&'a mut self, rows: &'a [Post]) -> BoxFuture<'a, Result<WriteReport, SinkError>> {
        Box::pin(async move { Ok(Self::discard(rows)) })
    }

    fn close(&mut self) -> BoxFuture<'_, Result<(), SinkError>> {
        Box::pin(async { Ok(()) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_rows_as_written_and_refuses_empty_ids() {
        let posts = [
            Post {
                id: "1".to_owned(),
                ..Post::default()
            },
            Post::default(),
            Post {
                id: "1".to_owned(),
                ..Post::default()
            },
        ];
        let report = NullSink::discard(&posts);
        assert_eq!((report.written, report.duplicates), (2, 0));
        assert_eq!(report.rejected.len(), 1);
        assert_eq!(report.rejected[0].index, 1);
        assert_eq!(report.rejected[0].reason, "post has an empty id");
    }
}
