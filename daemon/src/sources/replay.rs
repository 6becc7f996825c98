//! The replay source: JSONL files of X v2 stream messages or v1.1 statuses, or stdin.
//!
//! Used by `make run`, by tests, and to push archived posts through new plugins.
//! Blank lines (X's keep-alives) are skipped; every other line is published as is
//! and judged by the decoder in the process stage, so malformed lines reach the
//! dead-letter destination instead of vanishing here.

use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::positions::{Position, PositionsError, Progress, ReplayPositions};
use crate::broker::Publisher;
use crate::config::ReplayConfig;
use crate::stats::Stats;

/// Why the replay source stopped early.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("replay: cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "replay: {} holds no *.jsonl files (point source.replay.path at a file or a directory of .jsonl files)",
        path.display()
    )]
    EmptyDirectory { path: PathBuf },
    #[error("replay: the broker closed while posts were still being read")]
    BrokerClosed,
    #[error(transparent)]
    Positions(#[from] PositionsError),
}

/// Replays JSONL posts into the broker.
#[derive(Debug, Clone)]
pub struct ReplaySource {
    config: ReplayConfig,
    /// The recorded position, and where this run starts, once opened.
    positions: Option<(Arc<ReplayPositions>, Position)>,
}

/// Where the replay source stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayEnd {
    /// Every line of every file was published.
    Finished,
    /// Shutdown was requested first.
    Cancelled,
}

impl ReplaySource {
    pub fn new(config: ReplayConfig) -> ReplaySource {
        ReplaySource {
            config,
            positions: None,
        }
    }

    /// Reads the recorded position (with `source.replay.resume`, for a file or
    /// directory, on a broker that settles receipts), so that [`ReplaySource::run`]
    /// continues from it and records how far this run's lines are settled.
    /// Returns what to tell the user ("resuming FILE at line N").
    pub fn open_positions(
        &mut self,
        settles_receipts: bool,
    ) -> Result<Option<String>, SourceError> {
        if !self.config.resume || self.config.path.as_os_str() == "-" {
            return Ok(None);
        }
        let Some(state_file) = self.config.state_file.clone() else {
            return Ok(None);
        };
        if !settles_receipts {
            log::warn!(
                "replay: positions are recorded only with broker.kind = \"embedded\" or a spool in front of Pub/Sub ([broker.spool] enabled = true); a restart of this replay reads {} from line one",
                self.config.path.display()
            );
            return Ok(None);
        }
        let files = self.files()?;
        let (positions, start) = ReplayPositions::open(
            &state_file,
            &self.config.path,
            &files,
            self.config.from_start,
        )?;
        self.positions = Some((positions, start.at));
        Ok(start.note)
    }

    /// The recorded position this run keeps up to date, once opened; the
    /// pipeline calls [`ReplayPositions::finish`] after the drain.
    pub fn positions(&self) -> Option<Arc<ReplayPositions>> {
        self.positions
            .as_ref()
            .map(|(positions, _)| positions.clone())
    }

    /// The files this source will read, in order (`-` is standard input).
    pub fn files(&self) -> Result<Vec<PathBuf>, SourceError> {
        list_files(&self.config.path)
    }

    /// Publishes every non-blank line until the input ends or `cancel` fires.
    pub async fn run(
        self,
        publisher: Publisher,
        stats: Arc<Stats>,
        cancel: CancellationToken,
    ) -> Result<ReplayEnd, SourceError> {
        let files = self.files()?;
        let mut pacer = Pacer::new(self.config.rate);
        let progress = self
            .positions
            .as_ref()
            .map(|(positions, _)| positions.progress().clone());
        if let Some((positions, _)) = &self.positions {
            positions.spawn_writer();
        }
        // Only the first pass (of a looping replay) starts at the recorded position.
        let mut resume_at = self.positions.as_ref().map(|(_, at)| *at);
        loop {
            for (index, path) in files.iter().enumerate() {
                let from = match resume_at {
                    Some(at) if index < at.file => continue,
                    Some(at) => {
                        resume_at = None;
                        at
                    }
                    None => Position {
                        file: index,
                        line: 0,
                        offset: 0,
                    },
                };
                let lines = Lines {
                    path,
                    from,
                    publisher: &publisher,
                    progress: progress.as_ref(),
                    stats: &stats,
                    cancel: &cancel,
                };
                let end = if path.as_os_str() == "-" {
                    lines.publish(tokio::io::stdin(), &mut pacer).await?
                } else {
                    let read_error = |source| SourceError::Read {
                        path: path.clone(),
                        source,
                    };
                    let mut file = tokio::fs::File::open(path).await.map_err(read_error)?;
                    if from.offset > 0 {
                        use tokio::io::AsyncSeekExt;
                        file.seek(std::io::SeekFrom::Start(from.offset))
                            .await
                            .map_err(read_error)?;
                    }
                    lines.publish(file, &mut pacer).await?
                };
                if end == ReplayEnd::Cancelled {
                    return Ok(ReplayEnd::Cancelled);
                }
            }
            let stdin_only = files.iter().all(|path| path.as_os_str() == "-");
            if !self.config.loop_forever || stdin_only {
                return Ok(ReplayEnd::Finished);
            }
        }
    }
}

fn list_files(path: &Path) -> Result<Vec<PathBuf>, SourceError> {
    if path.as_os_str() == "-" {
        return Ok(vec![path.to_owned()]);
    }
    let read_error = |source| SourceError::Read {
        path: path.to_owned(),
        source,
    };
    let metadata = std::fs::metadata(path).map_err(read_error)?;
    if !metadata.is_dir() {
        return Ok(vec![path.to_owned()]);
    }
    let mut files = Vec::new();
    for entry in std::fs::read_dir(path).map_err(read_error)? {
        let entry = entry.map_err(read_error)?;
        let file = entry.path();
        if file.extension().is_some_and(|ext| ext == "jsonl") && file.is_file() {
            files.push(file);
        }
    }
    files.sort();
    if files.is_empty() {
        return Err(SourceError::EmptyDirectory {
            path: path.to_owned(),
        });
    }
    Ok(files)
}

/// One file's lines on their way to the broker.
struct Lines<'a> {
    path: &'a Path,
    /// Where in the file reading starts (the input is already there).
    from: Position,
    publisher: &'a Publisher,
    /// The settled prefix each published line gets a receipt in, when recorded.
    progress: Option<&'a Arc<Progress>>,
    stats: &'a Stats,
    cancel: &'a CancellationToken,
}

impl Lines<'_> {
    async fn publish(
        &self,
        input: impl AsyncRead + Unpin,
        pacer: &mut Pacer,
    ) -> Result<ReplayEnd, SourceError> {
        publish_lines(self, input, pacer).await
    }
}

async fn publish_lines(
    lines: &Lines<'_>,
    input: impl AsyncRead + Unpin,
    pacer: &mut Pacer,
) -> Result<ReplayEnd, SourceError> {
    let Lines {
        path,
        publisher,
        stats,
        cancel,
        ..
    } = *lines;
    let mut at = lines.from;
    let mut reader = BufReader::with_capacity(256 * 1024, input);
    let mut line = Vec::with_capacity(4096);
    // Lines published since the last wait for the spool's commit.
    let mut unsynced = false;
    loop {
        line.clear();
        // The next read goes to the file (or stdin, which cannot be read
        // again): what this buffer held is on disk first, one wait per buffer.
        if unsynced && reader.buffer().is_empty() {
            unsynced = false;
            if publisher.sync().await.is_err() {
                return broker_closed(path, cancel);
            }
        }
        let read = tokio::select! {
            biased;
            _ = cancel.cancelled() => return Ok(ReplayEnd::Cancelled),
            read = reader.read_until(b'\n', &mut line) => read,
        };
        let read = read.map_err(|source| SourceError::Read {
            path: path.to_owned(),
            source,
        })?;
        if read == 0 {
            return Ok(ReplayEnd::Finished);
        }
        at.line += 1;
        at.offset += read as u64;
        // `str::from_utf8` checks a valid line several times faster than
        // `from_utf8_lossy`, which is only needed to repair an invalid one.
        let text = match std::str::from_utf8(&line) {
            Ok(text) => Cow::Borrowed(text),
            Err(_) => String::from_utf8_lossy(&line),
        };
        let text = text.trim_end_matches(['\n', '\r']);
        if text.trim().is_empty() {
            continue;
        }
        // From here the line is read: it is published even when shutdown comes
        // meanwhile (only the pacing wait is cut short), so that every line
        // counted as read reaches the sink or the dead letters. Cancellation is
        // looked at again before the next line.
        if let Some(wait) = pacer.next() {
            tokio::select! {
                biased;
                _ = cancel.cancelled() => {}
                _ = tokio::time::sleep_until(wait) => {}
            }
        }
        stats.read_one();
        let published = match lines.progress {
            Some(progress) => {
                publisher
                    .publish_with_receipt(Arc::from(text), progress.issue(at))
                    .await
            }
            None => publisher.publish(Arc::from(text)).await,
        };
        if published.is_err() {
            return broker_closed(path, cancel);
        }
        unsynced = true;
    }
}

/// The broker refused a line: expected only at shutdown.
fn broker_closed(path: &Path, cancel: &CancellationToken) -> Result<ReplayEnd, SourceError> {
    if cancel.is_cancelled() {
        log::error!(
            "replay: a line of {} was read but the broker had closed at shutdown; it was not processed",
            path.display()
        );
        return Ok(ReplayEnd::Cancelled);
    }
    Err(SourceError::BrokerClosed)
}

/// Spaces posts evenly at a fixed rate, catching up after a slow stretch.
#[derive(Debug)]
struct Pacer {
    interval: Option<Duration>,
    next: Option<Instant>,
}

impl Pacer {
    fn new(rate: Option<f64>) -> Pacer {
        let interval = rate
            .filter(|rate| *rate > 0.0)
            .map(|rate| Duration::from_secs_f64(1.0 / rate));
        Pacer {
            interval,
            next: None,
        }
    }

    /// When the next post may go, or `None` when unpaced.
    fn next(&mut self) -> Option<Instant> {
        let interval = self.interval?;
        let now = Instant::now();
        let due = self.next.map_or(now, |next| next.max(now - interval * 4));
        self.next = Some(due + interval);
        Some(due)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn pacer_spaces_posts_at_the_rate() {
        let mut pacer = Pacer::new(Some(10.0));
        let start = Instant::now();
        let first = pacer.next().unwrap();
        let second = pacer.next().unwrap();
        assert_eq!(first, start);
        assert_eq!(second - first, Duration::from_millis(100));
        assert!(Pacer::new(None).next().is_none());
        assert!(Pacer::new(Some(0.0)).next().is_none());
    }

    #[tokio::test]
    async fn lines_lose_their_endings_blank_ones_are_skipped_and_bad_utf8_is_repaired() {
        let stats = Arc::new(Stats::default());
        let (publisher, mut subscriber) = crate::broker::embedded(16, stats.clone());
        let input: &[u8] = b"{\"a\":\"caf\xc3\xa9\"}\r\n\n  \nbad \xff line\nlast";
        let publisher = Publisher::Embedded(publisher);
        let cancel = CancellationToken::new();
        let lines = Lines {
            path: Path::new("posts.jsonl"),
            from: Position::default(),
            publisher: &publisher,
            progress: None,
            stats: &stats,
            cancel: &cancel,
        };
        let end = lines.publish(input, &mut Pacer::new(None)).await.unwrap();
        assert!(matches!(end, ReplayEnd::Finished));
        let deliveries = subscriber.recv_many(16).await;
        let payloads: Vec<&str> = deliveries
            .iter()
            .map(|delivery| &*delivery.payload)
            .collect();
        assert_eq!(payloads, ["{\"a\":\"café\"}", "bad \u{FFFD} line", "last"]);
    }

    #[test]
    fn directory_lists_jsonl_files_in_order() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("b.jsonl"), "{}\n").unwrap();
        std::fs::write(dir.path().join("a.jsonl"), "{}\n").unwrap();
        std::fs::write(dir.path().join("notes.txt"), "x").unwrap();
        let files = list_files(dir.path()).unwrap();
        let names: Vec<_> = files
            .iter()
            .map(|file| file.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["a.jsonl", "b.jsonl"]);
        let empty = tempfile::tempdir().unwrap();
        assert!(matches!(
            list_files(empty.path()),
            Err(SourceError::EmptyDirectory { .. })
        ));
    }
}
