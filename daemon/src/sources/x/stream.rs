//! Reading the filtered stream's body: chunks become lines, lines become posts,
//! keep-alives or in-stream error objects.
//!
//! X sends one JSON object per `\r\n`-terminated line and a bare `\r\n` as a
//! keep-alive; a line can be split across any number of network chunks.

use serde::Deserialize;
use serde::de::IgnoredAny;

/// The longest line accepted before the connection is treated as broken.
pub const MAX_LINE: usize = 16 * 1024 * 1024;

/// Reassembles lines from chunks.
#[derive(Debug, Default)]
pub struct LineBuffer {
    pending: Vec<u8>,
}

/// A line grew past [`MAX_LINE`] without ending.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a line of the stream grew past {MAX_LINE} bytes without ending")]
pub struct LineTooLong;

impl LineBuffer {
    /// Adds a chunk and returns the lines it completed, without their line
    /// endings; blank lines (keep-alives) come back empty.
    pub fn push(&mut self, chunk: &[u8]) -> Result<Vec<String>, LineTooLong> {
        let mut lines = Vec::new();
        let mut rest = chunk;
        while let Some(end) = rest.iter().position(|byte| *byte == b'\n') {
            self.pending.extend_from_slice(&rest[..end]);
            rest = &rest[end + 1..];
            let line = std::mem::take(&mut self.pending);
            // A valid line becomes the string without a copy; only an invalid
            // one is repaired (with U+FFFD) by `from_utf8_lossy`.
            let mut text = String::from_utf8(line)
                .unwrap_or_else(|error| String::from_utf8_lossy(error.as_bytes()).into_owned());
            text.truncate(text.trim_end_matches('\r').len());
            lines.push(text);
        }
        self.pending.extend_from_slice(rest);
        if self.pending.len() > MAX_LINE {
            self.pending.clear();
            return Err(LineTooLong);
        }
        Ok(lines)
    }

    /// Forgets a partial line (the connection it came from is gone).
    pub fn clear(&mut self) {
        self.pending.clear();
    }

    /// Bytes of an unfinished line.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }
}

/// What one complete line of the stream is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line {
    /// A blank keep-alive.
    KeepAlive,
    /// A post (or anything that is not an error object, malformed JSON included:
    /// the process stage dead-letters what it cannot decode).
    Post,
    /// An error object without data; `disconnect` when X is closing the stream.
    Error { disconnect: bool, message: String },
}

#[derive(Debug, Deserialize)]
struct Probe {
    #[serde(default)]
    data: Option<IgnoredAny>,
    #[serde(default)]
    errors: Option<Vec<StreamProblem>>,
}

#[derive(Debug, Deserialize)]
struct StreamProblem {
    #[serde(default)]
    title: Option<String>,
    #[serde(default)]
    detail: Option<String>,
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    disconnect_type: Option<String>,
}

/// Sorts a line into keep-alive, post or in-stream error.
pub fn classify(line: &str) -> Line {
    if line.trim().is_empty() {
        return Line::KeepAlive;
    }
    let Ok(probe) = serde_json::from_str::<Probe>(line) else {
        return Line::Post;
    };
    match (probe.data, probe.errors) {
        (None, Some(errors)) if !errors.is_empty() => {
            let disconnect = errors.iter().any(|error| {
                error.disconnect_type.is_some()
                    || error.title.as_deref() == Some("operational-disconnect")
                    || error
                        .kind
                        .as_deref()
                        .is_some_and(|kind| kind.ends_with("/operational-disconnect"))
            });
            let message = errors
                .iter()
                .map(|error| {
                    [&error.title, &error.disconnect_type, &error.detail]
                        .into_iter()
                        .flatten()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(": ")
                })
                .collect::<Vec<_>>()
                .join("; ");
            Line::Error {
                disconnect,
                message,
            }
        }
        _ => Line::Post,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_split_across_chunks_are_reassembled() {
        let mut buffer = LineBuffer::default();
        assert!(buffer.push(b"{\"data\":").unwrap().is_empty());
        assert!(buffer.push(b"{\"id\":\"1\"}").unwrap().is_empty());
        assert_eq!(
            buffer.push(b"}\r\n\r\n{\"da").unwrap(),
            ["{\"data\":{\"id\":\"1\"}}", ""]
        );
        assert_eq!(buffer.pending(), 4);
        assert_eq!(buffer.push(b"ta\":2}\r").unwrap(), Vec::<String>::new());
        assert_eq!(buffer.push(b"\n").unwrap(), ["{\"data\":2}"]);
        buffer.push(b"partial").unwrap();
        buffer.clear();
        assert_eq!(buffer.push(b"x\n").unwrap(), ["x"]);
    }

    #[test]
    fn invalid_utf8_is_repaired_and_valid_text_kept() {
        let mut buffer = LineBuffer::default();
        assert_eq!(
            buffer
                .push(b"caf\xc3\xa9 \xf0\x9f\x94\xa5\r\nbad \xff\n")
                .unwrap(),
            ["café 🔥", "bad \u{FFFD}"]
        );
    }

    #[test]
    fn a_line_that_never_ends_is_refused() {
        let mut buffer = LineBuffer::default();
        let chunk = vec![b'a'; 1024 * 1024];
        for _ in 0..16 {
            buffer.push(&chunk).unwrap();
        }
        assert_eq!(buffer.push(b"a"), Err(LineTooLong));
        assert_eq!(buffer.pending(), 0);
    }

    #[test]
    fn lines_are_sorted_into_posts_keepalives_and_errors() {
        assert_eq!(classify(""), Line::KeepAlive);
        assert_eq!(classify("{\"data\":{\"id\":\"1\"}}"), Line::Post);
        assert_eq!(classify("{not json"), Line::Post);
        // A post with partial errors (an include X could not fill) is still a post.
        assert_eq!(
            classify("{\"data\":{\"id\":\"1\"},\"errors\":[{\"title\":\"Not Found Error\"}]}"),
            Line::Post
        );
        let disconnect = classify(
            r#"{"errors":[{"title":"operational-disconnect","disconnect_type":"OperationalDisconnect","detail":"This stream has been disconnected for operational reasons.","type":"https://api.twitter.com/2/problems/operational-disconnect"}]}"#,
        );
        assert_eq!(
            disconnect,
            Line::Error {
                disconnect: true,
                message: "operational-disconnect: OperationalDisconnect: This stream has been disconnected for operational reasons.".to_owned()
            }
        );
        assert!(matches!(
            classify(r#"{"errors":[{"title":"Something else"}]}"#),
            Line::Error {
                disconnect: false,
                ..
            }
        ));
    }
}
