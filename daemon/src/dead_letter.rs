//! Keeps every message the pipeline could not process, with the stage and the reason.
//!
//! A message that fails to decode, that a plugin fails on, that the sink rejects
//! or that the broker gives up redelivering becomes a dead letter: when, at which
//! stage, the error, the plugin and post id when known, how many deliveries were
//! attempted, and the original message. It goes to one of two destinations
//! ([`DeadLetterSink`]):
//!
//! - a JSONL file, one line per letter, the original message embedded as JSON
//!   when it is JSON, otherwise kept as a string with `"message_raw": true`, or
//!   as the base64 of its bytes with `"message_base64": true` when it was not
//!   UTF-8 (nothing is replaced, so the bytes can be recovered exactly);
//!   [`DeadLetterFile::commit`] flushes and `fdatasync`s;
//! - a Pub/Sub topic, one message per letter: the original message as the data,
//!   the rest as attributes ([`pubsub_attributes`]); a batch is written once
//!   Pub/Sub confirmed every letter in it.
//!
//! The pipeline acks a message only after its dead letter is written, so nothing
//! is lost between the broker and the destination (a letter may be written twice
//! when the write of its batch failed part-way). Replaying a dead letter means
//! publishing its `message` again.

use std::collections::HashMap;
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use base64::Engine as _;
use base64::prelude::BASE64_STANDARD;
use chrono::Utc;
use serde::{Deserialize, Serialize, Serializer};
use serde_json::value::RawValue;

use crate::broker::pubsub::{PubsubDeadLetters, PubsubError};
use crate::config::DeadLetterDestination;
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
    /// The original message text as it came from the broker (its bytes in
    /// base64 when `message_base64` is set).
    pub message: Arc<str>,
    /// The message was not UTF-8: `message` is its exact bytes in base64.
    pub message_base64: bool,
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
            message_base64: false,
            attempts: None,
        }
    }

    /// Marks `message` as the base64 of a message that was not UTF-8.
    pub fn with_base64_message(mut self) -> Self {
        self.message_base64 = true;
        self
    }

    /// The original message's bytes, decoding `message` when it is base64.
    pub fn message_bytes(&self) -> Vec<u8> {
        if self.message_base64
            && let Ok(bytes) = BASE64_STANDARD.decode(self.message.as_bytes())
        {
            return bytes;
        }
        self.message.as_bytes().to_vec()
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
    #[error("dead letters: {0}")]
    Connect(#[from] PubsubError),
    #[error(
        "dead letters: publishing to {topic} failed (the messages stay unacknowledged and come back): {message}"
    )]
    Publish { topic: String, message: String },
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

/// The configured dead-letter destination.
#[derive(Debug)]
pub enum DeadLetterSink {
    /// A JSONL file.
    File(DeadLetterFile),
    /// A Pub/Sub topic.
    Pubsub(PubsubDeadLetters),
}

impl DeadLetterSink {
    /// Opens the file, or connects to the topic (creating it when configured to).
    pub async fn open(destination: &DeadLetterDestination) -> Result<Self, DeadLetterError> {
        match destination {
            DeadLetterDestination::File(path) => DeadLetterFile::open(path).map(Self::File),
            DeadLetterDestination::Pubsub(topic) => {
                Ok(Self::Pubsub(PubsubDeadLetters::connect(topic).await?))
            }
        }
    }

    /// Writes `letters` durably: synced to the file, or confirmed by Pub/Sub.
    /// On error none of them may be acked (some may have been written).
    pub async fn write(&mut self, letters: &[&DeadLetter]) -> Result<(), DeadLetterError> {
        match self {
            DeadLetterSink::File(file) => {
                for letter in letters {
                    file.append(letter)?;
                }
                file.commit()
            }
            DeadLetterSink::Pubsub(topic) => {
                let messages = letters
                    .iter()
                    .map(|letter| {
                        (
                            bytes::Bytes::from(letter.message_bytes()),
                            pubsub_attributes(letter, Utc::now()),
                        )
                    })
                    .collect();
                topic
                    .publish(messages)
                    .await
                    .map_err(|message| DeadLetterError::Publish {
                        topic: topic.topic().to_owned(),
                        message,
                    })
            }
        }
    }
}

/// The longest attribute value Pub/Sub accepts, in bytes.
const MAX_ATTRIBUTE_BYTES: usize = 1024;

/// The attributes of a dead letter published to Pub/Sub: `time`, `stage`,
/// `error` (cut to Pub/Sub's 1024-byte limit), and `plugin`, `post_id` and
/// `attempts` when known.
pub fn pubsub_attributes(
    letter: &DeadLetter,
    time: chrono::DateTime<Utc>,
) -> HashMap<String, String> {
    let mut attributes = HashMap::with_capacity(6);
    attributes.insert("time".to_owned(), Rfc3339Millis(time).to_string());
    attributes.insert("stage".to_owned(), letter.stage.as_str().to_owned());
    attributes.insert(
        "error".to_owned(),
        cut_to(&letter.error, MAX_ATTRIBUTE_BYTES).to_owned(),
    );
    if let Some(plugin) = &letter.plugin {
        attributes.insert(
            "plugin".to_owned(),
            cut_to(plugin, MAX_ATTRIBUTE_BYTES).to_owned(),
        );
    }
    if let Some(post_id) = &letter.post_id {
        attributes.insert(
            "post_id".to_owned(),
            cut_to(post_id, MAX_ATTRIBUTE_BYTES).to_owned(),
        );
    }
    if let Some(attempts) = letter.attempts {
        attributes.insert("attempts".to_owned(), attempts.to_string());
    }
    attributes
}

/// The longest prefix of `text` that fits in `max` bytes, cut on a character boundary.
fn cut_to(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
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
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    message_base64: bool,
}

impl<'a> Line<'a> {
    fn new(letter: &'a DeadLetter) -> Self {
        let message = if letter.message_base64 {
            Message::Text(&letter.message)
        } else {
            Message::new(&letter.message)
        };
        Line {
            time: Rfc3339Millis(Utc::now()),
            stage: letter.stage,
            error: &letter.error,
            plugin: letter.plugin.as_deref(),
            post_id: letter.post_id.as_deref(),
            attempts: letter.attempts,
            message_raw: matches!(message, Message::Text(_)) && !letter.message_base64,
            message_base64: letter.message_base64,
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
    fn pubsub_attributes_carry_the_reason_and_fit_pubsub_limits() {
        let letter = DeadLetter::new(Stage::Plugin, "é".repeat(600), Arc::from("{}"))
            .with_plugin("filter")
            .with_post_id("42")
            .with_attempts(3);
        let time = chrono::DateTime::parse_from_rfc3339("2026-03-01T08:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let attributes = pubsub_attributes(&letter, time);
        assert_eq!(attributes["stage"], "plugin");
        assert_eq!(attributes["plugin"], "filter");
        assert_eq!(attributes["post_id"], "42");
        assert_eq!(attributes["attempts"], "3");
        assert_eq!(attributes["time"], "2026-03-01T08:00:00.000Z");
        // 600 two-byte characters: cut to 512 of them, never inside one.
        assert_eq!(attributes["error"], "é".repeat(512));

        let bare = pubsub_attributes(&DeadLetter::new(Stage::Decode, "bad", Arc::from("x")), time);
        let mut keys: Vec<_> = bare.keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(keys, ["error", "stage", "time"]);
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

    #[test]
    fn a_base64_message_is_marked_and_gives_back_its_bytes() {
        let bytes = b"{\"a\":\"\xff\"}";
        let letter = DeadLetter::new(
            Stage::Decode,
            "not UTF-8",
            Arc::from(BASE64_STANDARD.encode(bytes)),
        )
        .with_base64_message();
        let line = serde_json::to_value(Line::new(&letter)).unwrap();
        assert_eq!(line["message_base64"], true);
        assert!(line.get("message_raw").is_none());
        assert_eq!(line["message"], BASE64_STANDARD.encode(bytes));
        assert_eq!(letter.message_bytes(), bytes);

        let text = DeadLetter::new(Stage::Decode, "bad", Arc::from("plain"));
        assert_eq!(text.message_bytes(), b"plain");
        let line = serde_json::to_value(Line::new(&text)).unwrap();
        assert!(line.get("message_base64").is_none());
    }
}
