//! JSON text written straight into a byte buffer, for the rows the local sinks
//! write by the hundred thousand.
//!
//! serde_json escapes a string by looking up every byte in a table, one at a
//! time; for a JSONL line that loop was about half of the line's cost. Here a
//! string is checked sixteen bytes at a time (a plain fold the compiler turns
//! into vector compares) and only a block that holds a byte to escape is walked
//! byte by byte. The output is byte for byte what serde_json writes for the same
//! value (the tests compare them): the same short escapes, `\u00XX` in lower-case
//! hex for the other control characters, everything else (non-ASCII included)
//! as it is, and floats through serde_json itself, `null` when not finite.

use std::collections::BTreeMap;

use crate::post::{AttrName, AttrValue};

/// What a byte is written as inside a string: 0 for itself, `u` for `\u00XX`,
/// anything else for a backslash and that letter.
const ESCAPE: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut byte = 0;
    while byte < 0x20 {
        table[byte] = b'u';
        byte += 1;
    }
    table[0x08] = b'b';
    table[0x09] = b't';
    table[0x0a] = b'n';
    table[0x0c] = b'f';
    table[0x0d] = b'r';
    table[b'"' as usize] = b'"';
    table[b'\\' as usize] = b'\\';
    table
};

const HEX: [u8; 16] = *b"0123456789abcdef";

/// How many bytes a string is checked at a time.
const BLOCK: usize = 16;

/// Whether `byte` cannot stand for itself inside a JSON string.
fn needs_escape(byte: u8) -> bool {
    byte < 0x20 || byte == b'"' || byte == b'\\'
}

/// Appends `value` as a JSON string, quotes included.
pub fn string(out: &mut Vec<u8>, value: &str) {
    let bytes = value.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    // `bytes[written..at]` is waiting to be copied as it is.
    let mut written = 0;
    let mut at = 0;
    for block in bytes.chunks_exact(BLOCK) {
        let block: &[u8; BLOCK] = block.try_into().expect("chunks_exact yields whole blocks");
        if has_escape(block) {
            for (offset, &byte) in block.iter().enumerate() {
                if needs_escape(byte) {
                    out.extend_from_slice(&bytes[written..at + offset]);
                    escape(out, byte);
                    written = at + offset + 1;
                }
            }
        }
        at += BLOCK;
    }
    // The last bytes, fewer than a block (most attribute names are all of a
    // string): checked as one padded block, walked only when one needs it.
    let tail = &bytes[at..];
    let mut padded = [b' '; BLOCK];
    padded[..tail.len()].copy_from_slice(tail);
    if has_escape(&padded) {
        for (offset, &byte) in tail.iter().enumerate() {
            if needs_escape(byte) {
                out.extend_from_slice(&bytes[written..at + offset]);
                escape(out, byte);
                written = at + offset + 1;
            }
        }
    }
    out.extend_from_slice(&bytes[written..]);
    out.push(b'"');
}

/// Whether any byte of `block` [`needs_escape`], with no early exit so that
/// the compares run side by side.
fn has_escape(block: &[u8; BLOCK]) -> bool {
    block
        .iter()
        .fold(false, |found, &byte| found | needs_escape(byte))
}

/// Appends the escape sequence of `byte`, one that [`needs_escape`].
fn escape(out: &mut Vec<u8>, byte: u8) {
    match ESCAPE[usize::from(byte)] {
        b'u' => out.extend_from_slice(&[
            b'\\',
            b'u',
            b'0',
            b'0',
            HEX[usize::from(byte >> 4)],
            HEX[usize::from(byte & 0xf)],
        ]),
        letter => out.extend_from_slice(&[b'\\', letter]),
    }
}

/// Appends `value` as a JSON string, or `null`.
pub fn optional_string(out: &mut Vec<u8>, value: Option<&str>) {
    match value {
        Some(value) => string(out, value),
        None => out.extend_from_slice(b"null"),
    }
}

/// Appends the strings as a JSON array.
pub fn strings<'a>(out: &mut Vec<u8>, items: impl IntoIterator<Item = &'a str>) {
    out.push(b'[');
    for (index, item) in items.into_iter().enumerate() {
        if index > 0 {
            out.push(b',');
        }
        string(out, item);
    }
    out.push(b']');
}

/// Appends an unsigned integer.
pub fn unsigned(out: &mut Vec<u8>, value: u64) {
    out.extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
}

/// Appends `true` or `false`.
pub fn boolean(out: &mut Vec<u8>, value: bool) {
    out.extend_from_slice(if value { b"true" } else { b"false" });
}

/// Appends a plugin attribute's value.
pub fn attr_value(out: &mut Vec<u8>, value: &AttrValue) {
    match value {
        AttrValue::Bool(value) => boolean(out, *value),
        AttrValue::Int(value) => {
            out.extend_from_slice(itoa::Buffer::new().format(*value).as_bytes())
        }
        AttrValue::Float(value) => {
            serde_json::to_writer(&mut *out, value).expect("a float always renders into a Vec");
        }
        AttrValue::Str(value) => string(out, value),
        AttrValue::List(items) => strings(out, items.iter().map(String::as_str)),
    }
}

/// Appends a post's attributes as a JSON object, in name order.
pub fn attrs(out: &mut Vec<u8>, attrs: &BTreeMap<AttrName, AttrValue>) {
    out.push(b'{');
    for (index, (name, value)) in attrs.iter().enumerate() {
        if index > 0 {
            out.push(b',');
        }
        string(out, name);
        out.push(b':');
        attr_value(out, value);
    }
    out.push(b'}');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ours(value: &str) -> String {
        let mut out = Vec::new();
        string(&mut out, value);
        String::from_utf8(out).expect("escaped output is UTF-8")
    }

    #[test]
    fn strings_match_serde_json_for_every_byte_and_position() {
        // Every ASCII byte and some multi-byte characters, at every offset of
        // a block, alone and in runs, so both the block path and the tail see
        // each of them.
        let mut specials: Vec<String> = (0u8..0x80)
            .map(|byte| char::from(byte).to_string())
            .collect();
        specials.extend(["é", "日本", "🎉", "\u{2028}", "\u{7f}"].map(str::to_owned));
        for special in &specials {
            for offset in 0..=2 * BLOCK + 1 {
                for tail in [0, 1, BLOCK - 1, BLOCK + 3] {
                    let value = format!(
                        "{}{special}{}{special}{special}",
                        "a".repeat(offset),
                        "z".repeat(tail)
                    );
                    assert_eq!(
                        ours(&value),
                        serde_json::to_string(&value).unwrap(),
                        "{value:?}"
                    );
                }
            }
        }
        for value in [
            "",
            "\"",
            "\\\\",
            "\u{0}\u{1f}\n\r\t\u{8}\u{c}",
            &"\"".repeat(40),
        ] {
            assert_eq!(ours(value), serde_json::to_string(value).unwrap());
        }
    }

    #[test]
    fn attribute_values_match_serde_json() {
        let mut map = BTreeMap::new();
        for (name, value) in [
            ("b", AttrValue::Bool(true)),
            ("f", AttrValue::Float(0.4404)),
            ("f-nan", AttrValue::Float(f64::NAN)),
            ("f-inf", AttrValue::Float(f64::NEG_INFINITY)),
            ("f-tiny", AttrValue::Float(5e-324)),
            ("f-whole", AttrValue::Float(-3.0)),
            ("i", AttrValue::Int(i64::MIN)),
            ("l", AttrValue::List(vec!["a\"b".to_owned(), String::new()])),
            ("l-empty", AttrValue::List(Vec::new())),
            ("s\n", AttrValue::Str("x\u{1}y".to_owned())),
        ] {
            map.insert(AttrName::from(name), value);
        }
        let mut out = Vec::new();
        attrs(&mut out, &map);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            serde_json::to_string(&map).unwrap()
        );
        let mut empty = Vec::new();
        attrs(&mut empty, &BTreeMap::new());
        assert_eq!(empty, b"{}");
    }

    #[test]
    fn numbers_and_lists_match_serde_json() {
        for value in [0, 7, u64::MAX] {
            let mut out = Vec::new();
            unsigned(&mut out, value);
            assert_eq!(out, serde_json::to_vec(&value).unwrap());
        }
        let items = ["one", "t\two", ""];
        let mut out = Vec::new();
        strings(&mut out, items);
        assert_eq!(out, serde_json::to_vec(&items).unwrap());
        let mut out = Vec::new();
        strings(&mut out, []);
        assert_eq!(out, b"[]");
    }
}
