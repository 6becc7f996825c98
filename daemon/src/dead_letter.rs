//! Keeps every message the pipeline could not process, with the stage and the reason.
//!
//! A message that fails to decode, that a plugin fails on, that the sink rejects
//! or that the broker gives up redelivering is appended as one JSON line to the
//! dead-letter file: when, at which stage, the error, the plugin and post id when
//! known, how many deliveries were attempted, and the original message — embedded
//! as JSON when it is JSON, otherwise kept as a string with `"message_raw": true`.
//! [`DeadLetterFile::commit`] flushes and `fdatasync`s, and the pipeline acks a
//! message only after its dead letter is committed, so nothing is lost between
//! the broker and this file. Replaying a dead letter means publishing its
//! `message` again.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::Utc;
use serde::{Deserialize, Serialize, Serializer};
use serde_json::value::RawValue;

use crate::sinks::row::Rfc3339Millis;

/// Where in the pipeline a message failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    /// The message could not be decoded into a post.
    Decode,
    /// A plugin failed, trapped or timed out on the post.
    Plugin,
    /// The sink rejected the row.
    Sink,
    /// The broker gave up delivering the message.
    Broker,
}

impl Stage {
    /// The lowercase name used in dead letters and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Decode => "decode",
            Stage::Plugin => "plugin",
            Stage::Sink => "sink",
            Stage::Broker => "broker",
        }
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A message that could not be processed, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadLetter {
    pub stage: Stage,
    pub error: String,
    /// The plugin that failed, for [`Stage::Plugin`].
    pub plugin: Option<String>,
    /// The post id, when the message decoded far enough to have one.
    pub post_id: Option<String>,
    /// The original message text as it came from the broker.
    pub message: Arc<str>,
    /// Deliveries attempted, when the broker counts them.
    pub attempts: Option<u32>,
}

impl DeadLetter {
    /// A dead letter with no plugin, post id or attempt count.
    pub fn new(stage: Stage, error: impl Into<String>, message: Arc<str>) -> Self {
        DeadLetter {
            stage,
            error: error.into(),
            plugin: None,
            post_id: None,
            message,
            attempts: None,
        }
    }

    pub fn with_plugin(mut self, plugin: impl Into<String>) -> Self {
        self.plugin = Some(plugin.into());
        self
    }

    pub fn with_post_id(mut self, post_id: impl Into<String>) -> Self {
        self.post_id = Some(post_id.into());
        self
    }

    pub fn with_attempts(mut self, attempts: u32) -> Self {
        self.attempts = Some(attempts);
        self
    }
}

/// Why a dead letter could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum DeadLetterError {
    #[error("dead letters: cannot create directory {}: {source}", path.display())]
    CreateDir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("dead letters: {}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("dead letters: cannot encode a dead letter: {0}")]
    Encode(#[source] serde_json::Error),
    #[error("dead letters: {}:{line}: not a JSON line: {source}", path.display())]
    Parse {
        path: PathBuf,
        line: usize,
        #[source]
        source: serde_json::Error,
    },
}

/// The append-only JSONL file dead letters are written to.
///
/// [`append`](Self::append) only buffers; [`commit`](Self::commit) makes the
/// appended letters durable. Letters appended but not committed when the value
/// is dropped are discarded: their messages were not acked and come back.
#[derive(Debug)]
pub struct DeadLetterFile {
    path: PathBuf,
    file: File,
    /// The file length after the last commit.
    committed_len: u64,
    pending: Vec<u8>,
}

impl DeadLetterFile {
    /// Opens `path` for appending, creating it and its parent directories if missing.
    pub fn open(path: &Path) -> Result<Self, DeadLetterError> {
        let io_error = |source| DeadLetterError::Io {
            path: path.to_owned(),
            source,
        };
        let parent = path
            .parent()
            .filter(|parent| !parent.as_os_str().is_empty());
        if let Some(parent) = parent {
            std::fs::create_dir_all(parent).map_err(|source| DeadLetterError::CreateDir {
                path: parent.to_owned(),
                source,
            })?;
        }
        let existed = path.exists();
        let file = OpenOptions::new()
            .append(true)
            .create(true)
            .open(path)
            .map_err(io_error)?;
        if !existed {
            // Make the new file's name durable too.
            File::open(parent.unwrap_or(Path::new(".")))
                .and_then(|dir| dir.sync_all())
                .map_err(io_error)?;
        }
        let committed_len = file.metadata().map_err(io_error)?.len();
        Ok(DeadLetterFile {
            path: path.to_owned(),
            file,
            committed_len,
            pending: Vec::new(),
        })
    }

    /// The file dead letters go to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Adds `letter` as one JSON line; durable only after [`commit`](Self::commit).
    pub fn append(&mut self, letter: &DeadLetter) -> Result<(), DeadLetterError> {
        let start = self.pending.len();
        let result = serde_json::to_writer(&mut self.pending, &Line::new(letter));
        if let Err(error) = result {
            self.pending.truncate(start);
            return Err(DeadLetterError::Encode(error));
        }
        self.pending.push(b'\n');
        Ok(())
    }

    /// Writes the appended letters and syncs the file.
    ///
    /// On error the file is cut back to its last committed length and the
    /// appended letters are discarded: their messages must not be acked.
    pub fn commit(&mut self) -> Result<(), DeadLetterError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let result = self
            .file
            .write_all(&self.pending)
            .and_then(|()| self.file.flush())
            .and_then(|()| self.file.sync_data());
        match result {
            Ok(()) => {
                self.committed_len += self.pending.len() as u64;
                self.pending.clear();
                Ok(())
            }
            Err(source) => {
                self.pending.clear();
                if let Err(error) = self.file.set_len(self.committed_len) {
                    log::warn!(
                        "dead letters: cutting {} back to its last committed length failed: {error}",
                        self.path.display()
                    );
                }
                Err(DeadLetterError::Io {
                    path: self.path.clone(),
                    source,
                })
            }
        }
    }
}

/// One line of the dead-letter file, borrowing the letter.
#[derive(Serialize)]
struct Line<'a> {
    time: Rfc3339Millis,
    stage: Stage,
    error: &'a str,
    plugin: Option<&'a str>,
    post_id: Option<&'a str>,
    attempts: Option<u32>,
    message: Message<'a>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    message_raw: bool,
}

impl<'a> Line<'a> {
    fn new(letter: &'a DeadLetter) -> Self {
        let message = Message::new(&letter.message);
        Line {
            time: Rfc3339Millis(Utc::now()),
            stage: letter.stage,
            error: &letter.error,
            plugin: letter.plugin.as_deref(),
            post_id: letter.post_id.as_deref(),
            attempts: letter.attempts,
            message_raw: matches!(message, Message::Text(_)),
            message,
        }
    }
}

/// The original message: JSON embedded as is, anything else as a string.
enum Message<'a> {
    /// Valid JSON on one line, copied verbatim.
    Json(&'a RawValue),
    /// Valid JSON spanning lines, re-encoded on one line.
    Value(serde_json::Value),
    Text(&'a str),
}

impl<'a> Message<'a> {
    fn new(message: &'a str) -> Self {
        let trimmed = message.trim();
        if trimmed.contains(['\n', '\r']) {
            // Line breaks in valid JSON are whitespace between tokens.
            match serde_json::from_str(trimmed) {
                Ok(value) => Message::Value(value),
                Err(_) => Message::Text(message),
            }
        } else {
            match serde_json::from_str::<&RawValue>(trimmed) {
                Ok(raw) => Message::Json(raw),
                Err(_) => Message::Text(message),
            }
        }
    }
}

impl Serialize for Message<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Message::Json(raw) => raw.serialize(serializer),
            Message::Value(value) => value.serialize(serializer),
            Message::Text(text) => serializer.serialize_str(text),
        }
    }
}

/// Reads every dead letter in `path`, one JSON value per non-empty line.
pub fn read_dead_letters(path: &Path) -> Result<Vec<serde_json::Value>, DeadLetterError> {
    let io_error = |source| DeadLetterError::Io {
        path: path.to_owned(),
        source,
    };
    let reader = BufReader::new(File::open(path).map_err(io_error)?);
    let mut letters = Vec::new();
    for (index, line) in reader.lines().enumerate() {
        let line = line.map_err(io_error)?;
        if line.trim().is_empty() {
            continue;
        }
        let value = serde_json::from_str(&line).map_err(|source| DeadLetterError::Parse {
            path: path.to_owned(),
            line: index + 1,
            source,
        })?;
        letters.push(value);
    }
    Ok(letters)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stages_render_lowercase() {
        assert_eq!(Stage::Plugin.to_string(), "plugin");
        assert_eq!(serde_json::to_string(&Stage::Broker).unwrap(), "\"broker\"");
    }

    #[test]
    fn messages_embed_json_and_keep_text() {
        let line = |message: &str| {
            let letter = DeadLetter::new(Stage::Decode, "bad", Arc::from(message));
            serde_json::to_value(Line::new(&letter)).unwrap()
        };
        let json = line("{\"data\": {\"id\": \"1\"}}\n");
        assert_eq!(json["message"]["data"]["id"], "1");
        assert!(json.get("message_raw").is_none());

        let pretty = line("{\n  \"a\": 1\n}");
        assert_eq!(pretty["message"]["a"], 1);

        let text = line("not json {");
        assert_eq!(text["message"], "not json {");
        assert_eq!(text["message_raw"], true);

        let encoded = serde_json::to_string(&Line::new(&DeadLetter::new(
            Stage::Decode,
            "bad",
            Arc::from("{\n\"a\": [1,\n2]}"),
        )))
        .unwrap();
        assert!(!encoded.contains('\n'));
    }
}
