//! Where a replay is up to, so a restart continues instead of starting again.
//!
//! A replay records the position up to which every line is *settled* (its row
//! committed, or its message dead-lettered): the contiguous settled prefix, not
//! merely what was read, so a crash never skips a line whose row was still in
//! flight. Each published line carries a [`Receipt`]; the acks arrive out of
//! order, and [`Progress`] advances the prefix over them. A background task
//! writes the prefix to the state file (`source.replay.state_file`) whenever it
//! moves, at most every [`WRITE_EVERY`], atomically (a temporary file renamed
//! over the old one), off the hot path.
//!
//! The state file is JSON keyed by the replay's path (`source.replay.path`,
//! made absolute): the file being read, its line and byte offset, and SHA-256
//! digests of the file's first bytes and of the bytes just before the offset.
//! A file that is now shorter than the offset, or whose digests differ, was
//! replaced or rewritten: the replay then starts from line one and says why.

use std::collections::{BTreeMap, VecDeque};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::broker::{Receipt, SettleLog};

/// The most often the state file is rewritten.
pub const WRITE_EVERY: Duration = Duration::from_millis(10);

/// How many bytes the digests cover (at most).
const DIGEST_BYTES: u64 = 4096;

/// A place in a replay: after `line` lines (blank ones included) of the
/// `file`-th file, `offset` bytes into it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Position {
    pub file: usize,
    pub line: u64,
    pub offset: u64,
}

/// Why the replay positions cannot be read or written.
#[derive(Debug, thiserror::Error)]
pub enum PositionsError {
    #[error("replay: cannot read the positions in {} (source.replay.state_file): {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "replay: the positions in {} (source.replay.state_file) are not valid JSON ({source}); delete the file or run with --from-start",
        path.display()
    )]
    Parse {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error("replay: cannot write the positions to {} (source.replay.state_file): {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The state file's contents.
#[derive(Debug, Default, Serialize, Deserialize)]
struct StateFile {
    /// By the replay's path, as configured (made absolute).
    replays: BTreeMap<String, Entry>,
}

/// One replay's settled position.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Entry {
    file: PathBuf,
    line: u64,
    offset: u64,
    head_sha256: String,
    tail_sha256: String,
}

/// Where a replay starts, and what to say about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Start {
    pub at: Position,
    /// "resuming FILE at line N" when it continues an earlier run.
    pub note: Option<String>,
}

/// The settled prefix of one replay, fed by the receipts of its messages.
#[derive(Debug)]
pub struct Progress {
    window: Mutex<Window>,
    changed: Notify,
}

#[derive(Debug)]
struct Window {
    /// The receipt number of `slots[0]`.
    base: u64,
    /// Each published, not yet prefix-settled line: settled?, and where it ends.
    slots: VecDeque<(bool, Position)>,
    /// The end of the settled prefix.
    settled: Position,
}

impl Progress {
    fn new(start: Position) -> Progress {
        Progress {
            window: Mutex::new(Window {
                base: 0,
                slots: VecDeque::new(),
                settled: start,
            }),
            changed: Notify::new(),
        }
    }

    /// A receipt for the line that ends at `end`, published next.
    pub fn issue(self: &Arc<Self>, end: Position) -> Receipt {
        let mut window = self
            .window
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        let seq = window.base + window.slots.len() as u64;
        window.slots.push_back((false, end));
        drop(window);
        Receipt::new(self.clone(), seq)
    }

    /// The end of the settled prefix.
    pub fn settled(&self) -> Position {
        self.window
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .settled
    }
}

impl SettleLog for Progress {
    fn settled(&self, seq: u64) {
        let mut window = self
            .window
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        let Some(index) = seq.checked_sub(window.base) else {
            return;
        };
        let Some(slot) = window.slots.get_mut(index as usize) else {
            return;
        };
        slot.0 = true;
        let mut moved = false;
        while let Some(&(true, end)) = window.slots.front() {
            window.slots.pop_front();
            window.base += 1;
            window.settled = end;
            moved = true;
        }
        drop(window);
        if moved {
            self.changed.notify_one();
        }
    }
}

/// A replay's recorded position: read at start, kept up to date while it runs.
#[derive(Debug)]
pub struct ReplayPositions {
    state_file: PathBuf,
    key: String,
    files: Vec<PathBuf>,
    progress: Arc<Progress>,
    /// The state file as read at start (other replays' entries are kept).
    state: Mutex<StateFile>,
    last_written: Mutex<Option<Position>>,
    stop: CancellationToken,
}

impl ReplayPositions {
    /// Reads the recorded position of the replay of `path` (whose files are
    /// `files`) from `state_file`; `from_start` ignores it. A missing file, or a
    /// file changed since, starts from line one.
    pub fn open(
        state_file: &Path,
        path: &Path,
        files: &[PathBuf],
        from_start: bool,
    ) -> Result<(Arc<ReplayPositions>, Start), PositionsError> {
        let key = key_of(path);
        // A damaged file (a power cut before the rename reached the disk) only
        // costs re-reading: never refuse to start over it.
        let state = match read_state(state_file) {
            Ok(state) => state,
            Err(error @ PositionsError::Parse { .. }) => {
                log::warn!("{error}; reading from line one and replacing it");
                StateFile::default()
            }
            Err(error) => return Err(error),
        };
        let start = match state.replays.get(&key) {
            None => Start {
                at: Position::default(),
                note: None,
            },
            Some(_) if from_start => Start {
                at: Position::default(),
                note: Some(format!(
                    "reading {} from line one (--from-start); the recorded position is replaced",
                    path.display()
                )),
            },
            Some(entry) => resume_point(entry, files),
        };
        if let Some(note) = &start.note {
            log::info!("{note}");
        }
        let positions = Arc::new(ReplayPositions {
            state_file: state_file.to_owned(),
            key,
            files: files.to_vec(),
            progress: Arc::new(Progress::new(start.at)),
            state: Mutex::new(state),
            last_written: Mutex::new(None),
            stop: CancellationToken::new(),
        });
        Ok((positions, start))
    }

    /// The settled prefix the receipts feed.
    pub fn progress(&self) -> &Arc<Progress> {
        &self.progress
    }

    /// Writes the settled position whenever it moves (at most every
    /// [`WRITE_EVERY`]) until [`ReplayPositions::finish`].
    pub fn spawn_writer(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let positions = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = positions.progress.changed.notified() => {}
                    _ = positions.stop.cancelled() => return,
                }
                let wrote_at = tokio::time::Instant::now();
                let writer = positions.clone();
                match tokio::task::spawn_blocking(move || writer.write(false)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(error)) => log::warn!("{error}"),
                    Err(error) => log::warn!("replay: writing the position failed: {error}"),
                }
                tokio::select! {
                    _ = tokio::time::sleep_until(wrote_at + WRITE_EVERY) => {}
                    _ = positions.stop.cancelled() => return,
                }
            }
        })
    }

    /// Stops the writer and records the final settled position (synced to disk).
    pub fn finish(&self) -> Result<Position, PositionsError> {
        self.stop.cancel();
        self.write(true)?;
        Ok(self.progress.settled())
    }

    /// Writes the settled position if it moved since the last write.
    fn write(&self, sync: bool) -> Result<(), PositionsError> {
        let mut last = self
            .last_written
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        let at = self.progress.settled();
        if *last == Some(at) && !sync {
            return Ok(());
        }
        let Some(file) = self.files.get(at.file) else {
            return Ok(());
        };
        let write_error = |source| PositionsError::Write {
            path: self.state_file.clone(),
            source,
        };
        let (head_sha256, tail_sha256) = digests(file, at.offset).map_err(write_error)?;
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        state.replays.insert(
            self.key.clone(),
            Entry {
                file: absolute(file),
                line: at.line,
                offset: at.offset,
                head_sha256,
                tail_sha256,
            },
        );
        let text = serde_json::to_vec_pretty(&*state).expect("the state serialises");
        replace_file(&self.state_file, &text, sync).map_err(write_error)?;
        *last = Some(at);
        Ok(())
    }
}

/// The key of a replay in the state file: its path, made absolute.
fn key_of(path: &Path) -> String {
    absolute(path).to_string_lossy().into_owned()
}

fn absolute(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned())
}

fn read_state(path: &Path) -> Result<StateFile, PositionsError> {
    let text = match std::fs::read(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            return Ok(StateFile::default());
        }
        Err(source) => {
            return Err(PositionsError::Read {
                path: path.to_owned(),
                source,
            });
        }
    };
    serde_json::from_slice(&text).map_err(|source| PositionsError::Parse {
        path: path.to_owned(),
        source,
    })
}

/// Where to continue from `entry`, or line one (with the reason) when the
/// file it names is gone or changed.
fn resume_point(entry: &Entry, files: &[PathBuf]) -> Start {
    let from_line_one = |why: String| {
        log::warn!("{why}; reading from line one");
        Start {
            at: Position::default(),
            note: Some(format!(
                "{}; read from line one",
                why.trim_start_matches("replay: ")
            )),
        }
    };
    let Some(index) = files.iter().position(|file| absolute(file) == entry.file) else {
        return from_line_one(format!(
            "replay: {} (where the last run stopped) is no longer part of the replay",
            entry.file.display()
        ));
    };
    let size = std::fs::metadata(&files[index]).map_or(0, |metadata| metadata.len());
    if size < entry.offset {
        return from_line_one(format!(
            "replay: {} is shorter ({size} bytes) than the recorded position (byte {}): it was truncated or replaced",
            entry.file.display(),
            entry.offset
        ));
    }
    match digests(&files[index], entry.offset) {
        Ok((head, tail)) if head == entry.head_sha256 && tail == entry.tail_sha256 => {}
        Ok(_) => {
            return from_line_one(format!(
                "replay: {} changed before the recorded position (line {}): it was replaced or rewritten",
                entry.file.display(),
                entry.line
            ));
        }
        Err(error) => {
            return from_line_one(format!(
                "replay: cannot check {} against the recorded position: {error}",
                entry.file.display()
            ));
        }
    }
    let at = Position {
        file: index,
        line: entry.line,
        offset: entry.offset,
    };
    let note = if entry.offset == size && index + 1 == files.len() {
        format!(
            "resuming {} at line {}: every line was settled by an earlier run, nothing new to read (tweetpipe run --from-start reads it again)",
            entry.file.display(),
            entry.line + 1
        )
    } else {
        format!(
            "resuming {} at line {} (byte {})",
            entry.file.display(),
            entry.line + 1,
            entry.offset
        )
    };
    Start {
        at,
        note: Some(note),
    }
}

/// SHA-256 (hex) of the first bytes of `file` and of the bytes just before
/// `offset`, each at most [`DIGEST_BYTES`] long.
fn digests(file: &Path, offset: u64) -> std::io::Result<(String, String)> {
    let mut input = std::fs::File::open(file)?;
    let span = offset.min(DIGEST_BYTES);
    let mut buffer = vec![0; span as usize];
    input.read_exact(&mut buffer)?;
    let head = hex(&Sha256::digest(&buffer));
    input.seek(SeekFrom::Start(offset - span))?;
    input.read_exact(&mut buffer)?;
    let tail = hex(&Sha256::digest(&buffer));
    Ok((head, tail))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// Replaces `path` with `contents` atomically: a temporary file renamed over it.
fn replace_file(path: &Path, contents: &[u8], sync: bool) -> std::io::Result<()> {
    if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let mut temp = path.as_os_str().to_owned();
    temp.push(".tmp");
    let temp = PathBuf::from(temp);
    {
        let mut file = std::fs::File::create(&temp)?;
        std::io::Write::write_all(&mut file, contents)?;
        if sync {
            file.sync_data()?;
        }
    }
    std::fs::rename(&temp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(line: u64) -> Position {
        Position {
            file: 0,
            line,
            offset: line * 10,
        }
    }

    #[test]
    fn the_prefix_moves_only_over_contiguous_settled_lines() {
        let progress = Arc::new(Progress::new(Position::default()));
        let receipts: Vec<Receipt> = (1..=5).map(|line| progress.issue(at(line))).collect();
        let mut receipts = receipts.into_iter();
        let (first, second, third, fourth, fifth) = (
            receipts.next().unwrap(),
            receipts.next().unwrap(),
            receipts.next().unwrap(),
            receipts.next().unwrap(),
            receipts.next().unwrap(),
        );
        second.settle();
        fourth.settle();
        assert_eq!(progress.settled(), Position::default(), "line 1 is open");
        first.settle();
        assert_eq!(progress.settled(), at(2));
        drop(third); // released unsettled: the prefix stays before it
        fifth.settle();
        assert_eq!(progress.settled(), at(2));
    }

    fn replay_file(dir: &Path, lines: usize) -> PathBuf {
        let path = dir.join("posts.jsonl");
        let text: String = (0..lines).map(|n| format!("{{\"n\":{n}}}\n")).collect();
        std::fs::write(&path, text).unwrap();
        path
    }

    #[tokio::test]
    async fn a_recorded_position_is_resumed_and_a_changed_file_starts_again() {
        let dir = tempfile::tempdir().unwrap();
        let file = replay_file(dir.path(), 1000);
        let state = dir.path().join("state.json");
        let files = vec![file.clone()];
        let (positions, start) = ReplayPositions::open(&state, &file, &files, false).unwrap();
        assert_eq!(start.at, Position::default());
        let line_ends: Vec<u64> = {
            let text = std::fs::read_to_string(&file).unwrap();
            let mut end = 0;
            text.lines()
                .map(|line| {
                    end += line.len() as u64 + 1;
                    end
                })
                .collect()
        };
        for (index, end) in line_ends.iter().take(600).enumerate() {
            positions
                .progress()
                .issue(Position {
                    file: 0,
                    line: index as u64 + 1,
                    offset: *end,
                })
                .settle();
        }
        assert_eq!(positions.finish().unwrap().line, 600);

        let (_, start) = ReplayPositions::open(&state, &file, &files, false).unwrap();
        assert_eq!(start.at.line, 600);
        assert_eq!(start.at.offset, line_ends[599]);
        assert!(start.note.unwrap().contains("at line 601"));
        let (_, start) = ReplayPositions::open(&state, &file, &files, true).unwrap();
        assert_eq!(start.at, Position::default(), "--from-start");
        assert!(start.note.unwrap().contains("--from-start"));

        // Appended lines keep the position; a rewrite of what was read does not.
        let mut text = std::fs::read_to_string(&file).unwrap();
        text.push_str("{\"n\":\"more\"}\n");
        std::fs::write(&file, &text).unwrap();
        let (_, start) = ReplayPositions::open(&state, &file, &files, false).unwrap();
        assert_eq!(start.at.line, 600);
        std::fs::write(&file, text.replace("{\"n\":599}", "{\"n\":-99}")).unwrap();
        let (_, start) = ReplayPositions::open(&state, &file, &files, false).unwrap();
        assert_eq!(start.at, Position::default());
        assert!(start.note.unwrap().contains("changed"), "the log says why");
        std::fs::write(&file, "{}\n").unwrap();
        let (_, start) = ReplayPositions::open(&state, &file, &files, false).unwrap();
        assert_eq!(start.at, Position::default());
        assert!(start.note.unwrap().contains("shorter"));
    }

    #[test]
    fn a_damaged_state_file_reads_from_line_one_and_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let file = replay_file(dir.path(), 3);
        let state = dir.path().join("state.json");
        std::fs::write(&state, "{\"replays\": {").unwrap();
        let files = std::slice::from_ref(&file);
        let (positions, start) = ReplayPositions::open(&state, &file, files, false).unwrap();
        assert_eq!(start.at, Position::default());
        positions
            .progress()
            .issue(Position {
                file: 0,
                line: 1,
                offset: 7,
            })
            .settle();
        positions.finish().unwrap();
        let (_, start) = ReplayPositions::open(&state, &file, files, false).unwrap();
        assert_eq!(start.at.line, 1);
        assert_eq!(start.at.offset, 7);
    }
}
