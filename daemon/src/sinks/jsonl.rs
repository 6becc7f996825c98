//! Appends rows to rotating JSON Lines files, for tools that read files rather than databases.
//!
//! Rows go to `<dir>/<prefix>-<UTC timestamp>-<seq>.jsonl`, one JSON object per
//! line with the same keys as the SQLite columns (lists as arrays, `attrs` as an
//! object). A new file is started once the current one reaches `rotate_bytes`
//! (checked after each row, so a file exceeds the limit by at most one row) or,
//! when a batch arrives, once it is older than `rotate_secs`. A batch is written,
//! flushed and `fdatasync`ed before the sink reports it committed; if writing
//! fails, the file is cut back to its last committed length so no half line
//! remains.
//!
//! Files cannot be searched cheaply for ids written earlier, so duplicates are
//! only skipped within a run, against the most recent ids (see [`RecentIds`]).
//! A failed batch that is retried may also repeat rows already synced to a file
//! rotated away mid-batch. Post ids are unique keys: consumers deduplicate across
//! files and restarts by `id`.

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::Utc;

use super::row::{self, RecentIds, Row};
use super::{BoxFuture, RejectedRow, Sink, SinkError, WriteReport};
use crate::config::JsonlSinkConfig;
use crate::post::Post;

/// A sink appending JSON rows to size- and age-rotated files.
#[derive(Debug)]
pub struct JsonlSink {
    dir: PathBuf,
    prefix: String,
    rotate_bytes: u64,
    rotate_after: Option<Duration>,
    store_raw: bool,
    current: Option<OpenFile>,
    /// The sequence number of the last file opened by this sink.
    seq: u32,
    recent: RecentIds,
    buffer: Vec<u8>,
}

#[derive(Debug)]
struct OpenFile {
    file: File,
    path: PathBuf,
    /// Bytes committed (written and synced) so far.
    len: u64,
    opened: Instant,
}

impl JsonlSink {
    /// Prepares the sink, creating `dir` if missing; files are created on first write.
    pub fn open(config: &JsonlSinkConfig) -> Result<Self, SinkError> {
        let prefix_ok = !config.prefix.is_empty()
            && !config
                .prefix
                .chars()
                .any(|c| std::path::is_separator(c) || c == '\0' || c.is_control());
        if !prefix_ok {
            return Err(SinkError::Config {
                sink: "jsonl",
                message: format!(
                    "invalid file prefix {:?}: use a non-empty name without path separators",
                    config.prefix
                ),
            });
        }
        super::create_dir("jsonl", &config.dir)?;
        Ok(JsonlSink {
            dir: config.dir.clone(),
            prefix: config.prefix.clone(),
            rotate_bytes: config.rotate_bytes,
            rotate_after: config.rotate_secs.map(Duration::from_secs),
            store_raw: config.store_raw,
            current: None,
            seq: 0,
            recent: RecentIds::default(),
            buffer: Vec::new(),
        })
    }

    /// The file rows currently go to, if one is open.
    pub fn current_path(&self) -> Option<&Path> {
        self.current.as_ref().map(|current| current.path.as_path())
    }

    fn write_blocking(&mut self, rows: &[Post]) -> Result<WriteReport, SinkError> {
        if let (Some(current), Some(after)) = (&self.current, self.rotate_after)
            && current.opened.elapsed() >= after
        {
            self.current = None;
        }
        let ingested_at = row::rfc3339_millis(Utc::now());
        let mut report = WriteReport::default();
        let mut in_batch: HashSet<&str> = HashSet::with_capacity(rows.len());
        let mut buffer = std::mem::take(&mut self.buffer);
        buffer.clear();
        let result = (|| -> Result<(), SinkError> {
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
                row.write_json_line(&mut buffer);
                report.written += 1;
                let current_len = self.current.as_ref().map_or(0, |current| current.len);
                if current_len + buffer.len() as u64 >= self.rotate_bytes {
                    self.commit(&buffer)?;
                    buffer.clear();
                    self.current = None;
                }
            }
            if !buffer.is_empty() {
                self.commit(&buffer)?;
            }
            Ok(())
        })();
        buffer.clear();
        self.buffer = buffer;
        result?;
        for id in in_batch {
            self.recent.insert(id);
        }
        Ok(report)
    }

    /// Appends `bytes` to the current file (opening one if needed) and syncs it.
    fn commit(&mut self, bytes: &[u8]) -> Result<(), SinkError> {
        if self.current.is_none() {
            self.current = Some(self.create_file()?);
        }
        let Some(current) = self.current.as_mut() else {
            unreachable!("a file was just opened");
        };
        let result = current
            .file
            .write_all(bytes)
            .and_then(|()| current.file.flush())
            .and_then(|()| current.file.sync_data());
        match result {
            Ok(()) => {
                current.len += bytes.len() as u64;
                Ok(())
            }
            Err(source) => {
                if let Err(error) = current.file.set_len(current.len) {
                    log::warn!(
                        "jsonl: cutting {} back to its last committed length failed: {error}",
                        current.path.display()
                    );
                }
                // Start afresh in a new file rather than trust this one.
                self.current = None;
                Err(SinkError::Io {
                    sink: "jsonl",
                    source,
                })
            }
        }
    }

    /// Creates the next `<prefix>-<timestamp>-<seq>.jsonl` and makes its name durable.
    fn create_file(&mut self) -> Result<OpenFile, SinkError> {
        let io_error = |source| SinkError::Io {
            sink: "jsonl",
            source,
        };
        let timestamp = Utc::now().format("%Y%m%dT%H%M%SZ").to_string();
        loop {
            self.seq = self.seq.wrapping_add(1);
            let path = self
                .dir
                .join(format!("{}-{timestamp}-{:04}.jsonl", self.prefix, self.seq));
            match OpenOptions::new().append(true).create_new(true).open(&path) {
                Ok(file) => {
                    sync_dir(&self.dir).map_err(io_error)?;
                    log::debug!("jsonl: writing {}", path.display());
                    return Ok(OpenFile {
                        file,
                        path,
                        len: 0,
                        opened: Instant::now(),
                    });
                }
                // A file of an earlier run in the same second: take the next number.
                Err(error) if error.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(source) => return Err(io_error(source)),
            }
        }
    }
}

/// Syncs a directory so a file just created in it survives a crash.
fn sync_dir(dir: &Path) -> io::Result<()> {
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    File::open(dir)?.sync_all()
}

impl Sink for JsonlSink {
    fn name(&self) -> &'static str {
        "jsonl"
    }

    fn write<'a>(&'a mut self, rows: &'a [Post]) -> BoxFuture<'a, Result<WriteReport, SinkError>> {
        Box::pin(async move {
            if rows.is_empty() {
                return Ok(WriteReport::default());
            }
            row::blocking(|| self.write_blocking(rows))
        })
    }

    fn close(&mut self) -> BoxFuture<'_, Result<(), SinkError>> {
        Box::pin(async move {
            // Every batch is synced when written; closing only releases the file.
            self.current = None;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(dir: &Path) -> JsonlSinkConfig {
        JsonlSinkConfig {
            dir: dir.to_owned(),
            prefix: "posts".to_owned(),
            rotate_bytes: 1 << 20,
            rotate_secs: None,
            store_raw: false,
        }
    }

    fn post(id: &str) -> Post {
        Post {
            id: id.to_owned(),
            text: format!("post {id}"),
            ..Post::default()
        }
    }

    #[test]
    fn duplicates_within_a_run_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let mut sink = JsonlSink::open(&config(dir.path())).unwrap();
        let batch = [post("1"), post("2"), post("1"), post("")];
        let report = sink.write_blocking(&batch).unwrap();
        assert_eq!(report.written, 2);
        assert_eq!(report.duplicates, 1);
        assert_eq!(report.rejected.len(), 1);
        assert_eq!(report.rejected[0].index, 3);
        let report = sink.write_blocking(&batch[..2]).unwrap();
        assert_eq!((report.written, report.duplicates), (0, 2));
        let text = std::fs::read_to_string(sink.current_path().unwrap()).unwrap();
        assert_eq!(text.lines().count(), 2);
    }

    #[test]
    fn file_names_follow_the_pattern() {
        let dir = tempfile::tempdir().unwrap();
        let mut sink = JsonlSink::open(&config(dir.path())).unwrap();
        sink.write_blocking(&[post("1")]).unwrap();
        let name = sink
            .current_path()
            .unwrap()
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        // posts-20260301T080000Z-0001.jsonl
        assert!(name.starts_with("posts-"), "{name}");
        assert!(name.ends_with("Z-0001.jsonl"), "{name}");
        assert_eq!(
            name.len(),
            "posts-20260301T080000Z-0001.jsonl".len(),
            "{name}"
        );
    }

    #[test]
    fn rotates_by_age() {
        let dir = tempfile::tempdir().unwrap();
        let mut sink = JsonlSink::open(&JsonlSinkConfig {
            rotate_secs: Some(0),
            ..config(dir.path())
        })
        .unwrap();
        sink.write_blocking(&[post("1")]).unwrap();
        let first = sink.current_path().unwrap().to_owned();
        sink.write_blocking(&[post("2")]).unwrap();
        assert_ne!(sink.current_path().unwrap(), first);
    }

    #[test]
    fn rejects_a_prefix_with_a_separator() {
        let dir = tempfile::tempdir().unwrap();
        let error = JsonlSink::open(&JsonlSinkConfig {
            prefix: "a/b".to_owned(),
            ..config(dir.path())
        })
        .unwrap_err();
        assert!(error.to_string().contains("invalid file prefix"), "{error}");
    }
}
