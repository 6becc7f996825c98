//! How post text is split into tokens and compared, shared by the rule parser
//! (so a keyword is tokenised exactly like the text it is matched against)
//! and the matcher.

use std::hash::{BuildHasherDefault, Hasher};
use std::sync::OnceLock;

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
/// is the reused buffer a token is built in when it is not a slice of `text`
/// already lowercase.
///
/// Most text is ASCII, so ASCII bytes are classified with a table and a run of
/// ASCII word bytes is emitted as a slice of `text` (copied and lowercased
/// only when it has capitals); other characters go through [`classify`],
/// which caches [`char_class`] and the lowercase form per Unicode block. The
/// tokens are exactly those of [`reference_tokens`].
pub fn tokens(text: &str, word: &mut String, emit: impl FnMut(&str)) {
    scan::<false>(text, word, &mut Lowered(emit));
}

/// Where [`raw_tokens`] sends the tokens. `token` runs for every token and is
/// called from several places of the scan: implementations on hot paths
/// should be `#[inline(always)]`, or each token costs a call.
pub trait TokenSink {
    /// Takes the next token.
    fn token(&mut self, token: RawToken<'_>);
}

/// The sink of [`tokens`]: every token is lowercase there.
struct Lowered<F>(F);

impl<F: FnMut(&str)> TokenSink for Lowered<F> {
    fn token(&mut self, token: RawToken<'_>) {
        (self.0)(token.text);
    }
}

/// A token as [`raw_tokens`] finds it.
#[derive(Debug, Clone, Copy)]
pub struct RawToken<'a> {
    /// The token, lowercase unless `capitals`.
    pub text: &'a str,
    /// The token is ASCII with capitals: `to_ascii_lowercase` gives the
    /// token [`tokens`] would emit.
    pub capitals: bool,
}

impl RawToken<'_> {
    /// The token's first and last bytes as they are once lowercased.
    pub fn ends(&self) -> (u8, u8) {
        let bytes = self.text.as_bytes();
        let (first, last) = (bytes[0], bytes[bytes.len() - 1]);
        if self.capitals {
            (first.to_ascii_lowercase(), last.to_ascii_lowercase())
        } else {
            (first, last)
        }
    }
}

/// [`tokens`], except that ASCII tokens with capitals are emitted as they are
/// (flagged), for callers that rule most tokens out without lowercasing them.
pub fn raw_tokens(text: &str, word: &mut String, sink: &mut impl TokenSink) {
    scan::<true>(text, word, sink);
}

fn scan<const RAW: bool>(text: &str, word: &mut String, sink: &mut impl TokenSink) {
    let bytes = text.as_bytes();
    word.clear();
    // Where the current word starts when it is an ASCII run followed by a
    // non-ASCII character, not yet copied into `word` (then `word` is empty),
    // and whether it has capitals. It lives until that character is read.
    let mut pending: Option<(usize, bool)> = None;
    let mut at = 0;
    while at < bytes.len() {
        let byte = bytes[at];
        if byte.is_ascii() {
            let kind = WORD_BYTES[usize::from(byte)];
            if kind == 0 {
                if !word.is_empty() {
                    sink.token(lower(word));
                    word.clear();
                }
                at += 1;
                continue;
            }
            let start = at;
            let mut kinds = kind;
            at += 1;
            while at < bytes.len() {
                let kind = WORD_BYTES[usize::from(bytes[at])];
                if kind == 0 {
                    break;
                }
                kinds |= kind;
                at += 1;
            }
            let run = &text[start..at];
            let capitals = kinds & UPPER != 0;
            if !word.is_empty() {
                push_ascii_lower(word, run);
            } else if at < bytes.len() && !bytes[at].is_ascii() {
                pending = Some((start, capitals));
            } else {
                emit_ascii::<RAW>(run, capitals, word, sink);
            }
            continue;
        }
        let c = text[at..]
            .chars()
            .next()
            .expect("`at` is on a character boundary");
        match classify(c) {
            (CharClass::Word, lower) => {
                if let Some((start, _)) = pending.take() {
                    push_ascii_lower(word, &text[start..at]);
                }
                push_lower_with(word, c, lower);
            }
            (CharClass::Separator, _) => flush::<RAW>(text, at, &mut pending, word, sink),
            (CharClass::Symbol, lower) => {
                flush::<RAW>(text, at, &mut pending, word, sink);
                push_lower_with(word, c, lower);
                sink.token(self::lower(word));
                word.clear();
            }
        }
        at += c.len_utf8();
    }
    flush::<RAW>(text, at, &mut pending, word, sink);
}

fn lower(token: &str) -> RawToken<'_> {
    RawToken {
        text: token,
        capitals: false,
    }
}

/// Emits an ASCII token, lowercased unless `RAW`. Inlined: most tokens take
/// this path, and the sink is inlined into it.
#[inline(always)]
fn emit_ascii<const RAW: bool>(
    token: &str,
    capitals: bool,
    word: &mut String,
    sink: &mut impl TokenSink,
) {
    if capitals && !RAW {
        push_ascii_lower(word, token);
        sink.token(lower(word));
        word.clear();
    } else {
        sink.token(RawToken {
            text: token,
            capitals,
        });
    }
}

/// Emits the word that ends at `end`, if any.
fn flush<const RAW: bool>(
    text: &str,
    end: usize,
    pending: &mut Option<(usize, bool)>,
    word: &mut String,
    sink: &mut impl TokenSink,
) {
    if let Some((start, capitals)) = pending.take() {
        emit_ascii::<RAW>(&text[start..end], capitals, word, sink);
    } else if !word.is_empty() {
        sink.token(lower(word));
        word.clear();
    }
}

fn push_ascii_lower(word: &mut String, ascii: &str) {
    let from = word.len();
    word.push_str(ascii);
    word[from..].make_ascii_lowercase();
}

/// The ASCII bytes of [`CharClass::Word`] (letters, digits and `_`): [`UPPER`]
/// for capitals, [`LOWER`] for the others, 0 for every other byte (including
/// those of multi-byte characters).
const WORD_BYTES: [u8; 256] = {
    let mut table = [0; 256];
    let mut byte = 0;
    while byte < 128 {
        let ascii = byte as u8;
        table[byte] = if ascii.is_ascii_uppercase() {
            UPPER
        } else if ascii.is_ascii_alphanumeric() || ascii == b'_' {
            LOWER
        } else {
            0
        };
        byte += 1;
    }
    table
};
const LOWER: u8 = 1;
const UPPER: u8 = 2;

/// The character-by-character definition of [`tokens`], kept to test that the
/// fast paths agree with it.
pub fn reference_tokens(text: &str, word: &mut String, mut emit: impl FnMut(&str)) {
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

/// What a block entry's lowercase part holds when `to_lowercase` gives more
/// than one character (U+0130 `İ` only): above every `char`.
const MULTI: u32 = 0x1F_FFFF;
const LOWER_BITS: u32 = 0xFF_FFFF;

/// Per 256-character block of the Basic Multilingual Plane, built on first
/// use: each entry is `class << 24 | lowercase`, from [`char_class`] and
/// `char::to_lowercase` (or [`MULTI`]). Those walk Unicode tables (a skip
/// search for `is_alphanumeric`) on every call; a post's non-ASCII characters
/// come from few blocks, so one array load replaces them.
static BLOCKS: [OnceLock<Box<[u32; 256]>>; 256] = [const { OnceLock::new() }; 256];

fn build_block(block: u32) -> Box<[u32; 256]> {
    let mut entries = Box::new([0; 256]);
    for (low, entry) in (0u32..).zip(entries.iter_mut()) {
        // Surrogates are not characters and are never looked up.
        let Some(c) = char::from_u32(block << 8 | low) else {
            continue;
        };
        let mut lower = c.to_lowercase();
        let lower = match (lower.next(), lower.next()) {
            (Some(single), None) => u32::from(single),
            _ => MULTI,
        };
        *entry = (char_class(c) as u32) << 24 | lower;
    }
    entries
}

/// [`char_class`] of `c` and its lowercase form when that is one character
/// ([`MULTI`] otherwise, or for characters outside the BMP: then push with
/// [`push_lower`]).
fn classify(c: char) -> (CharClass, u32) {
    let code = u32::from(c);
    if code > 0xFFFF {
        return (char_class(c), MULTI);
    }
    let entry =
        BLOCKS[(code >> 8) as usize].get_or_init(|| build_block(code >> 8))[(code & 0xFF) as usize];
    let class = match entry >> 24 {
        0 => CharClass::Word,
        1 => CharClass::Separator,
        _ => CharClass::Symbol,
    };
    (class, entry & LOWER_BITS)
}

fn push_lower_with(word: &mut String, c: char, lower: u32) {
    match char::from_u32(lower) {
        Some(lower) => word.push(lower),
        None => push_lower(word, c),
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
    if value.is_ascii() {
        // `value` lowercased is ASCII and as long as `value`: equal to
        // `lower` only if `lower` is ASCII, when ignoring ASCII case is
        // lowercasing both.
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

    struct Collect<F>(F);

    impl<F: FnMut(RawToken<'_>)> TokenSink for Collect<F> {
        fn token(&mut self, token: RawToken<'_>) {
            (self.0)(token);
        }
    }

    fn fast(text: &str) -> Vec<String> {
        let mut list = Vec::new();
        // A dirty buffer must not leak into the tokens.
        let mut word = String::from("dirty");
        tokens(text, &mut word, |token| list.push(token.to_owned()));
        assert!(word.is_empty(), "{text:?} left {word:?} in the buffer");
        let mut raw = Vec::new();
        raw_tokens(
            text,
            &mut word,
            &mut Collect(|token: RawToken<'_>| {
                assert!(!token.capitals || token.text.is_ascii(), "{token:?}");
                let lower = token.text.to_ascii_lowercase();
                assert!(token.capitals || token.text == lower, "{token:?}");
                let (first, last) = token.ends();
                assert_eq!(
                    (first, last),
                    (lower.as_bytes()[0], lower.as_bytes()[lower.len() - 1])
                );
                raw.push(lower);
            }),
        );
        assert_eq!(raw, list, "raw tokens of {text:?}");
        list
    }

    fn reference(text: &str) -> Vec<String> {
        let mut list = Vec::new();
        reference_tokens(text, &mut String::new(), |token| {
            list.push(token.to_owned())
        });
        list
    }

    #[test]
    fn the_block_cache_agrees_with_the_unicode_tables() {
        for c in ('\u{80}'..='\u{FFFF}').chain(['\u{1F600}', '\u{10400}', '\u{E0041}']) {
            let (class, lower) = classify(c);
            assert_eq!(class, char_class(c), "{c:?}");
            let mut fast = String::new();
            push_lower_with(&mut fast, c, lower);
            let mut slow = String::new();
            push_lower(&mut slow, c);
            assert_eq!(fast, slow, "{c:?}");
        }
    }

    #[test]
    fn the_fast_tokeniser_agrees_with_the_reference() {
        let samples = [
            "",
            " ",
            "a",
            "A",
            "Hello, WORLD! #Rust_lang @jack don't 😷🙏 e-mail",
            "CUMPLEAÑOS Café cafe\u{301}! ÉTÉ été",
            "İstanbul İİ xİx",
            "\u{212A}elvin K",
            "👍🏽 ❤️ 👨\u{200D}👩\u{200D}👧",
            "नमस्ते दुनिया COVID वैक्सीन",
            "مرحبا بالعالم Covid-19",
            "東京タワー、ＴＯＫＹＯ。",
            "abcÀBC123é_x ÀÀ aé éa Xé éX",
            "tail ascii ABC",
            "tail accent ÉÀ",
            "x😷y😷Z",
            "\u{301}\u{301}A\u{301}",
        ];
        for text in samples {
            assert_eq!(fast(text), reference(text), "{text:?}");
        }
        // Every BMP character, alone, between ASCII letters and next to capitals.
        for c in ('\u{0}'..='\u{FFFF}').chain('\u{1F300}'..='\u{1F3FF}') {
            for text in [
                format!("{c}"),
                format!("ab{c}cd"),
                format!("AB{c}CD"),
                format!("é{c}É {c}"),
            ] {
                assert_eq!(fast(&text), reference(&text), "{text:?}");
            }
        }
        // Pseudo-random mixes of the interesting kinds of characters.
        let alphabet: Vec<char> =
            "aZ_9 .,-'#@$\n\téÉñÑİı\u{212A}\u{301}\u{200D}\u{FE0F}😷🏽न्तمر東。ＡΣσς"
                .chars()
                .collect();
        let mut state: u64 = 0x2545_F491_4F6C_DD1D;
        for _ in 0..20_000 {
            let mut text = String::new();
            for _ in 0..(state % 12) {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                text.push(alphabet[(state % alphabet.len() as u64) as usize]);
            }
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            assert_eq!(fast(&text), reference(&text), "{text:?}");
        }
    }

    #[test]
    fn eq_lower_is_case_insensitive_but_accent_sensitive() {
        assert!(eq_lower("CoViD", "covid"));
        assert!(eq_lower("ÉTÉ", "été"));
        assert!(!eq_lower("ete", "été"));
        assert!(!eq_lower("covid19", "covid"));
        // Against its definition, on ASCII and non-ASCII pairs both ways.
        let values = [
            "", "k", "K", "\u{212A}", "covid", "CoViD", "café", "CAFÉ", "İ", "i\u{307}", "ß", "ss",
        ];
        for value in values {
            for lower in values {
                let expected = value.chars().flat_map(char::to_lowercase).eq(lower.chars())
                    || (value.is_ascii() && lower.is_ascii() && value.eq_ignore_ascii_case(lower));
                assert_eq!(eq_lower(value, lower), expected, "{value:?} {lower:?}");
            }
        }
    }
}
