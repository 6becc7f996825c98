//! How the spool packs consecutive messages into one row: a chunk's framing, and
//! the reading back that keeps every whole record of a damaged one.
//!
//! A chunk holds the messages with ids `first_id .. first_id + count`, each as
//! one record, in id order:
//!
//! ```text
//! id: i64 LE | source length: u8 (0: none) | source | payload length: u32 LE | payload | crc32: u32 LE
//! ```
//!
//! The CRC-32 covers the record's bytes before it. A record that does not
//! check (torn by a power cut, overwritten) is skipped, and reading goes on at
//! the next offset where a whole record with a later id of the chunk checks,
//! so one bad record costs only itself.

use std::sync::Arc;

/// Messages in one chunk, at most.
pub const MAX_MESSAGES: usize = 64;
/// Record bytes in one chunk, at most (a larger message is a chunk on its own):
/// a chunk then fits one 16 KiB page, so a page lost or torn costs at most the
/// records on it, and no chunk spans pages that can be lost apart.
pub const MAX_BYTES: usize = 16_000;
/// Bytes of a record around its source and payload.
const OVERHEAD: usize = 8 + 1 + 4 + 4;
/// Source labels are cut to this many bytes (they are short names: "x", "replay").
const MAX_SOURCE: usize = u8::MAX as usize;

/// The bytes one record of `payload` with `source` takes in a chunk.
pub fn record_len(payload: &str, source: Option<&str>) -> usize {
    OVERHEAD + source.map_or(0, |source| cut_source(source).len()) + payload.len()
}

/// The bytes of `source` a record keeps.
fn cut_source(source: &str) -> &[u8] {
    let mut at = MAX_SOURCE.min(source.len());
    while !source.is_char_boundary(at) {
        at -= 1;
    }
    &source.as_bytes()[..at]
}

/// Appends the record of message `id` to `body`.
pub fn encode(body: &mut Vec<u8>, id: i64, source: Option<&str>, payload: &str) {
    let start = body.len();
    let source = source.map_or(&[][..], cut_source);
    body.extend_from_slice(&id.to_le_bytes());
    body.push(source.len() as u8);
    body.extend_from_slice(source);
    body.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    body.extend_from_slice(payload.as_bytes());
    let crc = crc32fast::hash(&body[start..]);
    body.extend_from_slice(&crc.to_le_bytes());
}

/// One message read back from a chunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub id: i64,
    pub source: Option<Arc<str>>,
    /// Shared as it is queued: one copy out of the database.
    pub payload: Arc<str>,
}

/// What a chunk's body held.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Decoded {
    /// The whole records, in id order.
    pub records: Vec<Record>,
    /// Id ranges (inclusive) of the chunk with no whole record.
    pub missing: Vec<(i64, i64)>,
}

/// The record at `at` in `body`, if it is whole and its id is in `ids`, with
/// the offset after it.
fn record_at(body: &[u8], at: usize, ids: std::ops::Range<i64>) -> Option<(Record, usize)> {
    let id = i64::from_le_bytes(body.get(at..at + 8)?.try_into().ok()?);
    if !ids.contains(&id) {
        return None;
    }
    let source_len = usize::from(*body.get(at + 8)?);
    let source_end = at + 9 + source_len;
    let payload_len =
        u32::from_le_bytes(body.get(source_end..source_end + 4)?.try_into().ok()?) as usize;
    let payload_start = source_end + 4;
    let payload_end = payload_start.checked_add(payload_len)?;
    let crc = u32::from_le_bytes(body.get(payload_end..payload_end + 4)?.try_into().ok()?);
    if crc32fast::hash(&body[at..payload_end]) != crc {
        return None;
    }
    let source = match source_len {
        0 => None,
        _ => Some(Arc::from(
            std::str::from_utf8(&body[at + 9..source_end]).ok()?,
        )),
    };
    let payload = Arc::from(std::str::from_utf8(&body[payload_start..payload_end]).ok()?);
    Some((
        Record {
            id,
            source,
            payload,
        },
        payload_end + 4,
    ))
}

/// Reads the records of the chunk of `count` messages from `first_id` out of
/// `body`, keeping every whole one however the rest is damaged.
pub fn decode(first_id: i64, count: i64, body: &[u8]) -> Decoded {
    let end_id = first_id.saturating_add(count.max(0));
    let mut decoded = Decoded::default();
    let mut next_id = first_id;
    let mut at = 0;
    while at < body.len() && next_id < end_id {
        match record_at(body, at, next_id..end_id) {
            Some((record, after)) => {
                if record.id > next_id {
                    decoded.missing.push((next_id, record.id - 1));
                }
                next_id = record.id + 1;
                decoded.records.push(record);
                at = after;
            }
            // Damaged here: the next whole record is somewhere after.
            None => at += 1,
        }
    }
    if next_id < end_id {
        decoded.missing.push((next_id, end_id - 1));
    }
    decoded
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunk(first_id: i64, payloads: &[&str]) -> Vec<u8> {
        let mut body = Vec::new();
        for (offset, payload) in payloads.iter().enumerate() {
            let source = (offset % 2 == 0).then_some("replay");
            encode(&mut body, first_id + offset as i64, source, payload);
        }
        body
    }

    #[test]
    fn a_chunk_reads_back_as_written() {
        let payloads = [r#"{"data":{"id":"1"}}"#, "", "ünïcode ✓"];
        let body = chunk(40, &payloads);
        let expected: usize = payloads
            .iter()
            .enumerate()
            .map(|(offset, payload)| record_len(payload, (offset % 2 == 0).then_some("replay")))
            .sum();
        assert_eq!(body.len(), expected);
        let decoded = decode(40, 3, &body);
        assert_eq!(decoded.missing, vec![]);
        let read: Vec<(i64, Option<&str>, &str)> = decoded
            .records
            .iter()
            .map(|record| (record.id, record.source.as_deref(), &*record.payload))
            .collect();
        assert_eq!(
            read,
            vec![
                (40, Some("replay"), payloads[0]),
                (41, None, payloads[1]),
                (42, Some("replay"), payloads[2]),
            ]
        );
    }

    #[test]
    fn a_torn_tail_keeps_the_records_before_it() {
        let payloads: Vec<String> = (0..10)
            .map(|n| format!("{{\"n\":{n}}}").repeat(30))
            .collect();
        let refs: Vec<&str> = payloads.iter().map(String::as_str).collect();
        let mut body = chunk(1, &refs);
        let whole = body.len();
        // Zeros past a cut, as a short read of a page returns them.
        let cut = whole * 6 / 10;
        body[cut..].fill(0);
        let decoded = decode(1, 10, &body);
        let kept: Vec<i64> = decoded.records.iter().map(|record| record.id).collect();
        let record = whole / 10;
        assert_eq!(kept, (1..=(cut / record) as i64).collect::<Vec<_>>());
        assert_eq!(decoded.missing, vec![(kept.len() as i64 + 1, 10)]);
    }

    #[test]
    fn garbage_in_the_middle_costs_only_the_records_it_touches() {
        let payloads: Vec<String> = (0..8).map(|n| format!("post {n} ").repeat(20)).collect();
        let refs: Vec<&str> = payloads.iter().map(String::as_str).collect();
        let mut body = chunk(100, &refs);
        let record = body.len() / 8;
        // Garbage over the end of record 2 (id 102) and the start of record 3.
        for (offset, byte) in body[record * 3 - 10..record * 3 + 10]
            .iter_mut()
            .enumerate()
        {
            *byte = (offset as u8).wrapping_mul(37) ^ 0x5a;
        }
        let decoded = decode(100, 8, &body);
        let kept: Vec<i64> = decoded.records.iter().map(|record| record.id).collect();
        assert_eq!(kept, vec![100, 101, 104, 105, 106, 107]);
        assert_eq!(decoded.missing, vec![(102, 103)]);
    }

    #[test]
    fn a_record_with_an_id_outside_its_chunk_is_not_taken() {
        let body = chunk(7, &["a", "b"]);
        // The same bytes claimed by another chunk's ids.
        let decoded = decode(20, 2, &body);
        assert_eq!(decoded.records, vec![]);
        assert_eq!(decoded.missing, vec![(20, 21)]);
    }

    #[test]
    fn an_empty_or_short_body_is_all_missing_never_a_panic() {
        assert_eq!(decode(1, 3, &[]).missing, vec![(1, 3)]);
        let body = chunk(1, &["abc"]);
        for len in 0..body.len() {
            let decoded = decode(1, 1, &body[..len]);
            assert_eq!(decoded.records, vec![]);
            assert_eq!(decoded.missing, vec![(1, 1)]);
        }
        // A length field pointing far past the end.
        let mut body = chunk(1, &["abc"]);
        body[9..13].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(decode(1, 1, &body).records, vec![]);
    }

    #[test]
    fn a_long_source_label_is_cut_on_a_character_boundary() {
        let source = "é".repeat(200);
        let mut body = Vec::new();
        encode(&mut body, 1, Some(&source), "p");
        assert_eq!(body.len(), record_len("p", Some(&source)));
        let decoded = decode(1, 1, &body);
        let read = decoded.records[0].source.as_deref().unwrap();
        assert!(
            source.starts_with(read) && read.len() == 254,
            "{}",
            read.len()
        );
    }
}
