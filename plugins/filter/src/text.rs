//! How post text is split into tokens and compared, shared by the rule parser
//! (so a keyword is tokenised exactly like the text it is matched against)
//! and the matcher.

use std::hash::{BuildHasherDefault, Hasher};

/// What a character is to the tokeniser.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CharClass {
    /// Part of a word: letters, digits, `_` and combining marks.
    Word,
    /// Splits tokens and is dropped: spaces, punctuation, emoji joiners.
    Separator,
    /// A token on its own (emoji and other symbols).
    Symbol,
}

/// Classifies `c` as X's tokeniser does: words split on punctuation, symbols
/// and separators; an emoji is a token of its own.
pub fn char_class(c: char) -> CharClass {
    if c.is_ascii() {
        return if c.is_ascii_alphanumeric() || c == '_' {
            CharClass::Word
        } else {
            CharClass::Separator
        };
    }
    let code = u32::from(c);
    // Emoji and pictographs: no letters there, so skip the Unicode tables.
    if (0x1F300..=0x1FAFF).contains(&code) && !(0x1F3FB..=0x1F3FF).contains(&code) {
        return CharClass::Symbol;
    }
    if c.is_alphanumeric() {
        return CharClass::Word;
    }
    match code {
        // Combining diacritical marks: an accent written as a separate code
        // point stays part of its word (accents must match).
        0x0300..=0x036F | 0x1AB0..=0x1AFF | 0x1DC0..=0x1DFF | 0x20D0..=0x20FF => CharClass::Word,
        // Latin-1 punctuation, general punctuation (incl. zero-width joiner),
        // CJK punctuation, variation selectors, full-width ASCII punctuation,
        // skin-tone modifiers and emoji tag characters.
        0x0080..=0x00BF
        | 0x2000..=0x206F
        | 0x3000..=0x303F
        | 0xFE00..=0xFE0F
        | 0xFF00..=0xFF0F
        | 0x1F3FB..=0x1F3FF
        | 0xE0000..=0xE007F => CharClass::Separator,
        _ if c.is_whitespace() => CharClass::Separator,
        _ => CharClass::Symbol,
    }
}

/// Splits `text` into lowercased tokens, calling `emit` with each one. `word`
/// is the reused buffer the token is built in.
pub fn tokens(text: &str, word: &mut String, mut emit: impl FnMut(&str)) {
    word.clear();
    for c in text.chars() {
        match char_class(c) {
            CharClass::Word => push_lower(word, c),
            CharClass::Separator => {
                if !word.is_empty() {
                    emit(word);
                    word.clear();
                }
            }
            CharClass::Symbol => {
                if !word.is_empty() {
                    emit(word);
                    word.clear();
                }
                push_lower(word, c);
                emit(word);
                word.clear();
            }
        }
    }
    if !word.is_empty() {
        emit(word);
        word.clear();
    }
}

/// The lowercased tokens of `text`, for building rules (allocates).
pub fn token_list(text: &str) -> Vec<String> {
    let mut list = Vec::new();
    tokens(text, &mut String::new(), |token| {
        list.push(token.to_owned())
    });
    list
}

fn push_lower(word: &mut String, c: char) {
    if c.is_ascii() {
        word.push(c.to_ascii_lowercase());
    } else if is_caseless(c) {
        word.push(c);
    } else {
        word.extend(c.to_lowercase());
    }
}

/// True for characters of scripts without case (Hebrew to Tibetan, kana and
/// CJK, Hangul, pictographs), which lowercasing leaves alone.
fn is_caseless(c: char) -> bool {
    matches!(u32::from(c), 0x0590..=0x0FFF | 0x3040..=0x9FFF | 0xAC00..=0xD7AF | 0x1F000..)
}

/// True when `value` lowercased equals `lower` (already lowercase), without
/// allocating.
pub fn eq_lower(value: &str, lower: &str) -> bool {
    if value.is_ascii() && lower.is_ascii() {
        return value.eq_ignore_ascii_case(lower);
    }
    value.chars().flat_map(char::to_lowercase).eq(lower.chars())
}

/// A small fast hasher for the short token strings looked up per post
/// (the multiply-rotate scheme of rustc's FxHasher).
#[derive(Debug, Default, Clone, Copy)]
pub struct TokenHasher(u64);

const SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl TokenHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(SEED);
    }
}

impl Hasher for TokenHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            self.add(u64::from_le_bytes(chunk.try_into().expect("8 bytes")));
        }
        let mut tail = [0u8; 8];
        let rest = chunks.remainder();
        tail[..rest.len()].copy_from_slice(rest);
        self.add(u64::from_le_bytes(tail) ^ rest.len() as u64);
    }

    fn write_u8(&mut self, byte: u8) {
        self.add(u64::from(byte));
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// Builds [`TokenHasher`]s for a `HashMap`.
pub type BuildTokenHasher = BuildHasherDefault<TokenHasher>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_split_on_punctuation_and_keep_emoji_apart() {
        assert_eq!(
            token_list("Hello, WORLD! #Rust_lang @jack don't 😷🙏 e-mail"),
            [
                "hello",
                "world",
                "rust_lang",
                "jack",
                "don",
                "t",
                "😷",
                "🙏",
                "e",
                "mail"
            ]
        );
    }

    #[test]
    fn accents_are_kept_and_lowercased() {
        assert_eq!(token_list("CUMPLEAÑOS Café"), ["cumpleaños", "café"]);
        // A decomposed accent stays in its word.
        assert_eq!(token_list("cafe\u{301}!"), ["cafe\u{301}"]);
    }

    #[test]
    fn emoji_sequences_split_into_their_symbols() {
        assert_eq!(token_list("👍🏽 ❤️"), ["👍", "❤"]);
    }

    #[test]
    fn caseless_scripts_are_really_caseless() {
        for c in ('\u{0590}'..='\u{0FFF}')
            .chain('\u{3040}'..='\u{9FFF}')
            .chain('\u{AC00}'..='\u{D7AF}')
            .chain('\u{1F000}'..='\u{10FFFF}')
        {
            assert!(c.to_lowercase().eq([c]), "{c:?} has a lowercase form");
        }
        for c in '\u{1F300}'..='\u{1FAFF}' {
            assert!(!c.is_alphanumeric(), "{c:?} is alphanumeric");
        }
    }

    #[test]
    fn eq_lower_is_case_insensitive_but_accent_sensitive() {
        assert!(eq_lower("CoViD", "covid"));
        assert!(eq_lower("ÉTÉ", "été"));
        assert!(!eq_lower("ete", "été"));
        assert!(!eq_lower("covid19", "covid"));
    }
}
