//! The VADER rules (Hutto & Gilbert, 2014), reimplemented to agree with the
//! reference `vaderSentiment` 3.3.2 package score for score.
//!
//! A text is scored in four steps: emojis are replaced by their descriptions;
//! the text is split on whitespace into tokens with surrounding punctuation
//! removed (short tokens such as `:)` are kept whole); each token gets a
//! valence from the lexicon, adjusted by the boosters, negations, ALL-CAPS and
//! idioms before it; then "but" reweights the halves, `!` and `?` add emphasis
//! and the sum is normalised into the compound score. The reference's quirks
//! are kept on purpose (see [`but_check`]), because agreement is the point.
//!
//! Every post of the pipeline goes through here, so the first two steps are
//! one pass over the text's bytes (emoji descriptions are tokenized once, when
//! the [`Analyzer`] is built) and the rules compare small word ids, not strings.

use crate::lexicon::{BOOSTER_PHRASES, Lexicon, LexiconError, SPECIAL_CASES, WordInfo, rule_word};

/// Emphasis an ALL-CAPS word gets when the rest of the text is not all caps.
const C_INCR: f64 = 0.733;
/// Factor a negation applies to a valence.
const N_SCALAR: f64 = -0.74;
/// The normalisation constant of `x / sqrt(x² + α)`.
const ALPHA: f64 = 15.0;

/// VADER's four scores for one text.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Scores {
    /// Normalised sum of valences, −1 (most negative) to 1 (most positive).
    pub compound: f64,
    /// Share of the text that is positive.
    pub pos: f64,
    /// Share of the text that is neutral.
    pub neu: f64,
    /// Share of the text that is negative.
    pub neg: f64,
}

impl Scores {
    /// The scores rounded as the reference prints them: compound to 4
    /// decimals, the shares to 3.
    pub fn rounded(self) -> Scores {
        fn round(value: f64, scale: f64) -> f64 {
            (value * scale).round() / scale
        }
        Scores {
            compound: round(self.compound, 1e4),
            pos: round(self.pos, 1e3),
            neu: round(self.neu, 1e3),
            neg: round(self.neg, 1e3),
        }
    }
}

/// Ids of the rule words the rules below name (see [`RULE_WORDS`](crate::lexicon::RULE_WORDS)).
const NO: u8 = rule_word("no");
const OR: u8 = rule_word("or");
const NOR: u8 = rule_word("nor");
const NEVER: u8 = rule_word("never");
const SO: u8 = rule_word("so");
const THIS: u8 = rule_word("this");
const WITHOUT: u8 = rule_word("without");
const DOUBT: u8 = rule_word("doubt");
const LEAST: u8 = rule_word("least");
const AT: u8 = rule_word("at");
const VERY: u8 = rule_word("very");
const BUT: u8 = rule_word("but");
const KIND: u8 = rule_word("kind");
const OF: u8 = rule_word("of");

/// A phrase of [`SPECIAL_CASES`] or [`BOOSTER_PHRASES`] as rule-word ids.
#[derive(Debug, Clone, Copy)]
struct Phrase {
    /// The ids of its words; the unused tail is 0, which no token matches.
    words: [u8; 3],
    /// How many words it has.
    len: usize,
    /// Its valence (special cases) or scalar (booster phrases).
    value: f64,
}

/// `table` as [`Phrase`]s, at compile time.
const fn phrases<const N: usize>(table: &[(&[&str], f64)]) -> [Phrase; N] {
    let mut out = [Phrase {
        words: [0; 3],
        len: 0,
        value: 0.0,
    }; N];
    let mut index = 0;
    while index < N {
        let (words, value) = table[index];
        assert!(
            !words.is_empty() && words.len() <= 3,
            "phrases have 1 to 3 words"
        );
        let mut word = 0;
        while word < words.len() {
            out[index].words[word] = rule_word(words[word]);
            word += 1;
        }
        out[index].len = words.len();
        out[index].value = value;
        index += 1;
    }
    out
}

const SPECIAL_CASE_PHRASES: [Phrase; SPECIAL_CASES.len()] = phrases(SPECIAL_CASES);
const BOOSTER_PHRASE_IDS: [Phrase; BOOSTER_PHRASES.len()] = phrases(BOOSTER_PHRASES);

/// One whitespace-separated token with what the rules ask about it.
#[derive(Debug, Clone, Copy)]
struct Token {
    /// Lexicon facts about the lowercase form, including its rule-word id.
    info: WordInfo,
    /// Python's `str.isupper()` on the original form.
    upper: bool,
    /// A negation word, or a lowercase form containing `n't`.
    negated: bool,
}

/// What tokenizing learns about the whole text on the way.
#[derive(Debug, Clone, Copy, Default)]
struct Summary {
    /// How many tokens are ALL CAPS.
    caps: usize,
    /// The index of the first "but".
    but: Option<usize>,
    /// True when some token has a lexicon valence.
    any_valence: bool,
    /// `!` in the emoji descriptions put into the text.
    exclamations: usize,
    /// `?` in the emoji descriptions put into the text.
    questions: usize,
}

/// An emoji's description, tokenized once when the analyzer is built.
#[derive(Debug, Clone)]
struct Described {
    /// The tokens of the description, but for `tail`.
    tokens: Vec<Token>,
    /// The description's last word when no space ends the description: VADER
    /// inserts no space after a description, so that word joins whatever
    /// non-space text follows the emoji into one token.
    tail: Option<Tail>,
    /// `!` in the description.
    exclamations: usize,
    /// `?` in the description.
    questions: usize,
}

/// The last word of a description, which may join the text after the emoji.
#[derive(Debug, Clone, Copy)]
struct Tail {
    /// The word.
    word: &'static str,
    /// Its [`BYTE_CLASS`]es or'ed together.
    flags: u8,
    /// Its token when a space or the end of the text follows the emoji.
    token: Token,
}

/// Reusable buffers, so scoring a post allocates nothing once warm.
#[derive(Debug, Default)]
pub struct Scratch {
    /// A description's last word joined with the text after its emoji.
    joined: String,
    lower: String,
    tokens: Vec<Token>,
    sentiments: Vec<f64>,
}

/// Scores texts with the VADER lexicon and rules.
#[derive(Debug, Clone)]
pub struct Analyzer {
    lexicon: Lexicon,
    /// [`BYTE_CLASS`] plus [`EMOJI`] on the bytes that start an emoji.
    classes: [u8; 256],
    /// The lexicon's emoji descriptions as tokens, by [`Lexicon::emoji_id`].
    described: Vec<Described>,
}

impl Analyzer {
    /// An analyzer with the lexicons shipped in the plugin.
    pub fn new() -> Result<Analyzer, LexiconError> {
        Ok(Analyzer::with_lexicon(Lexicon::vader()?))
    }

    /// An analyzer over another lexicon.
    pub fn with_lexicon(lexicon: Lexicon) -> Analyzer {
        let mut classes = BYTE_CLASS;
        for (byte, class) in (0..=255u8).zip(classes.iter_mut()) {
            if lexicon.may_start_emoji(byte) {
                *class |= EMOJI;
            }
        }
        let mut analyzer = Analyzer {
            lexicon,
            classes,
            described: Vec::new(),
        };
        analyzer.described = analyzer
            .lexicon
            .descriptions()
            .iter()
            .map(|description| analyzer.describe(description))
            .collect();
        analyzer
    }

    /// Tokenizes an emoji description as it reads inside a text.
    fn describe(&self, description: &'static str) -> Described {
        let mut lower = String::new();
        let mut tokens: Vec<Token> = Vec::new();
        let mut tail = None;
        let words = description
            .split(is_py_space)
            .filter(|word| !word.is_empty());
        for word in words {
            let flags = word
                .bytes()
                .fold(0, |flags, byte| flags | BYTE_CLASS[usize::from(byte)]);
            let token = self.token(word, flags, &mut lower);
            if let Some(Tail { token, .. }) = tail.replace(Tail { word, flags, token }) {
                tokens.push(token);
            }
        }
        if description.ends_with(is_py_space)
            && let Some(Tail { token, .. }) = tail.take()
        {
            tokens.push(token);
        }
        let count = |mark: u8| description.bytes().filter(|byte| *byte == mark).count();
        Described {
            tokens,
            tail,
            exclamations: count(b'!'),
            questions: count(b'?'),
        }
    }

    /// The unrounded scores of `text` (allocates fresh buffers).
    pub fn polarity_scores(&self, text: &str) -> Scores {
        self.scores_with(&mut Scratch::default(), text)
    }

    /// The unrounded scores of `text`, reusing `scratch`'s buffers.
    pub fn scores_with(&self, scratch: &mut Scratch, text: &str) -> Scores {
        let summary = self.tokenize(text, scratch);
        let Scratch {
            tokens, sentiments, ..
        } = scratch;
        if tokens.is_empty() {
            return Scores::default();
        }
        if !summary.any_valence {
            // Every sentiment would be 0: what `score_valence` makes of that.
            return Scores {
                compound: 0.0,
                pos: 0.0,
                neu: 1.0,
                neg: 0.0,
            };
        }
        let cap_diff = 0 < summary.caps && summary.caps < tokens.len();

        sentiments.clear();
        for (index, token) in tokens.iter().enumerate() {
            let sentiment = if token.info.booster != 0.0
                || (token.info.rule == KIND
                    && tokens
                        .get(index + 1)
                        .is_some_and(|next| next.info.rule == OF))
            {
                0.0
            } else {
                sentiment_valence(tokens, index, cap_diff)
            };
            sentiments.push(sentiment);
        }
        if let Some(but) = summary.but {
            but_check(but, sentiments);
        }
        let (exclamations, questions) = count_marks(text.as_bytes());
        let emphasis = punctuation_emphasis(
            summary.exclamations + exclamations,
            summary.questions + questions,
        );
        score_valence(sentiments, emphasis)
    }

    /// The tokens of `text` after VADER's emoji step, in one pass.
    ///
    /// VADER first replaces each emoji character by its description, preceded
    /// by a space unless one is already there, then splits on whitespace and
    /// strips punctuation from each token's ends, unless that leaves two
    /// characters or fewer (an emoticon such as `:)`). Here the descriptions'
    /// tokens come ready-made: an emoji ends the token before it, and only a
    /// description's last word can join the text after it into one token.
    /// (The reference also strips the text, which changes no token.)
    fn tokenize(&self, text: &str, scratch: &mut Scratch) -> Summary {
        let Scratch {
            joined,
            lower,
            tokens,
            ..
        } = scratch;
        tokens.clear();
        let mut summary = Summary::default();
        let bytes = text.as_bytes();
        let mut tail: Option<&Tail> = None;
        let mut at = 0;
        while at < bytes.len() {
            let class = self.classes[usize::from(bytes[at])];
            if class & SPACE != 0 {
                // The common separator, without the call.
                if let Some(tail) = tail.take() {
                    push_token(tokens, &mut summary, tail.token);
                }
                at += 1;
                continue;
            }
            if class & (MAYBE_SPACE | EMOJI) != 0 {
                let (length, described) = self.separator_at(text, at, class);
                if length > 0 {
                    if let Some(tail) = tail.take() {
                        push_token(tokens, &mut summary, tail.token);
                    }
                    if let Some(described) = described {
                        for token in &described.tokens {
                            push_token(tokens, &mut summary, *token);
                        }
                        tail = described.tail.as_ref();
                        summary.exclamations += described.exclamations;
                        summary.questions += described.questions;
                    }
                    at += length;
                    continue;
                }
            }
            let start = at;
            let mut flags = class;
            at += 1;
            while at < bytes.len() {
                // Four bytes at a time while none of them can end the token.
                if let Some(&[a, b, c, d]) = bytes.get(at..at + 4) {
                    let four = self.classes[usize::from(a)]
                        | self.classes[usize::from(b)]
                        | self.classes[usize::from(c)]
                        | self.classes[usize::from(d)];
                    if four & (SPACE | MAYBE_SPACE | EMOJI) == 0 {
                        flags |= four;
                        at += 4;
                        continue;
                    }
                }
                let class = self.classes[usize::from(bytes[at])];
                if class & SPACE != 0
                    || (class & (MAYBE_SPACE | EMOJI) != 0
                        && self.separator_at(text, at, class).0 > 0)
                {
                    break;
                }
                flags |= class;
                at += 1;
            }
            let token = match tail.take() {
                None => self.token(&text[start..at], flags, lower),
                Some(tail) => {
                    joined.clear();
                    joined.push_str(tail.word);
                    joined.push_str(&text[start..at]);
                    self.token(joined, flags | tail.flags, lower)
                }
            };
            push_token(tokens, &mut summary, token);
        }
        if let Some(tail) = tail {
            push_token(tokens, &mut summary, tail.token);
        }
        summary
    }

    /// The length in bytes of the space or emoji at byte `at` of `text`
    /// (whose byte class is `class`), and the emoji's description; 0 when
    /// the byte starts neither.
    #[inline]
    fn separator_at(&self, text: &str, at: usize, class: u8) -> (usize, Option<&Described>) {
        if class & SPACE != 0 {
            return (1, None);
        }
        if class & MAYBE_SPACE != 0 {
            let space = py_space_len(text, at);
            if space > 0 {
                return (space, None);
            }
        }
        if class & EMOJI != 0
            && let Some(emoji) = text[at..].chars().next()
            && let Some(id) = self.lexicon.emoji_id(emoji)
        {
            return (emoji.len_utf8(), Some(&self.described[id]));
        }
        (0, None)
    }

    /// One token of [`Analyzer::tokenize`]: `flags` are the [`BYTE_CLASS`]es
    /// of its bytes or'ed together, `lower` a buffer for its lowercase form.
    fn token(&self, raw: &str, flags: u8, lower: &mut String) -> Token {
        let word = if flags & PUNCTUATION == 0 {
            raw
        } else {
            let stripped = trim_ascii_punctuation(raw);
            if char_count_below_3(stripped) {
                raw
            } else {
                stripped
            }
        };
        // Stripping removes only ASCII punctuation, so `flags` hold for `word` too.
        let (lowercase, upper) = if flags & NON_ASCII == 0 {
            let upper = flags & UPPER != 0 && flags & LOWER == 0;
            if !self.lexicon.may_hold_ascii(word) {
                // No lexicon word, so no rule word or negation word either.
                return Token {
                    info: WordInfo::default(),
                    upper,
                    negated: flags & APOSTROPHE != 0 && contains_nt(word),
                };
            }
            if flags & UPPER != 0 {
                lower.clear();
                lower.push_str(word);
                lower.make_ascii_lowercase();
                (lower.as_str(), upper)
            } else {
                (word, upper)
            }
        } else if !self.lexicon.has_non_ascii_words()
            && word.chars().any(|ch| !ch.is_ascii() && ch != KELVIN)
        {
            // Its lowercase form keeps a non-ASCII character (only the Kelvin
            // sign lowercases to ASCII), so it is no lexicon word; and as no
            // non-ASCII character lowercases to `n`, `'` or `t`, its `n't`
            // test can be done on the bytes.
            return Token {
                info: WordInfo::default(),
                upper: py_isupper(word),
                negated: flags & APOSTROPHE != 0 && contains_nt(word),
            };
        } else {
            let upper = lowercase_into(word, lower);
            (lower.as_str(), upper)
        };
        let info = self.lexicon.word(lowercase);
        Token {
            info,
            upper,
            negated: info.negation || (flags & APOSTROPHE != 0 && lowercase.contains("n't")),
        }
    }
}

/// The one non-ASCII character whose lowercase form is ASCII (`k`).
const KELVIN: char = '\u{212a}';

/// `text.to_ascii_lowercase().contains("n't")`, without the copy.
fn contains_nt(text: &str) -> bool {
    text.as_bytes()
        .windows(3)
        .any(|window| window[1] == b'\'' && window[0] | 0x20 == b'n' && window[2] | 0x20 == b't')
}

/// How many `!` and `?` bytes `text` has, eight bytes at a time: most texts
/// have few, so most eight-byte words are skipped after one test.
fn count_marks(text: &[u8]) -> (usize, usize) {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    // Nonzero exactly when some byte of `word` is `byte`.
    let has = |word: u64, byte: u8| {
        let folded = word ^ (ONES * u64::from(byte));
        folded.wrapping_sub(ONES) & !folded & HIGHS != 0
    };
    let count = |bytes: &[u8]| {
        bytes
            .iter()
            .fold((0, 0), |(exclamations, questions), byte| {
                (
                    exclamations + usize::from(*byte == b'!'),
                    questions + usize::from(*byte == b'?'),
                )
            })
    };
    let (mut exclamations, mut questions) = (0, 0);
    let mut chunks = text.chunks_exact(8);
    for chunk in &mut chunks {
        let word = u64::from_le_bytes(chunk.try_into().unwrap_or([0; 8]));
        if has(word, b'!') || has(word, b'?') {
            let (more_exclamations, more_questions) = count(chunk);
            exclamations += more_exclamations;
            questions += more_questions;
        }
    }
    let (more_exclamations, more_questions) = count(chunks.remainder());
    (exclamations + more_exclamations, questions + more_questions)
}

/// Appends `token`, noting what the rules ask about the whole text.
#[inline]
fn push_token(tokens: &mut Vec<Token>, summary: &mut Summary, token: Token) {
    summary.caps += usize::from(token.upper);
    if summary.but.is_none() && token.info.rule == BUT {
        summary.but = Some(tokens.len());
    }
    summary.any_valence |= token.info.valence.is_some();
    tokens.push(token);
}

/// [`BYTE_CLASS`] bit: an ASCII Python space.
const SPACE: u8 = 1;
/// [`BYTE_CLASS`] bit: a lead byte some non-ASCII Python spaces start with.
const MAYBE_SPACE: u8 = 2;
/// [`BYTE_CLASS`] bit: any byte of a non-ASCII character.
const NON_ASCII: u8 = 4;
/// [`BYTE_CLASS`] bit: `A` to `Z`.
const UPPER: u8 = 8;
/// [`BYTE_CLASS`] bit: `a` to `z`.
const LOWER: u8 = 16;
/// [`BYTE_CLASS`] bit: `'`, which any `n't` contains.
const APOSTROPHE: u8 = 32;
/// [`BYTE_CLASS`] bit: ASCII punctuation, which tokens are stripped of.
const PUNCTUATION: u8 = 64;
/// Bit of [`Analyzer`]'s byte classes: a byte some emoji of the lexicon starts with.
const EMOJI: u8 = 128;

/// What the tokenizer needs to know about each byte, in one table lookup.
const BYTE_CLASS: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut byte = 0;
    while byte < 256 {
        table[byte] = match byte as u8 {
            b'\t'..=b'\r' | 0x1c..=0x1f | b' ' => SPACE,
            b'A'..=b'Z' => UPPER,
            b'a'..=b'z' => LOWER,
            b'\'' => APOSTROPHE | PUNCTUATION,
            b'!'..=b'/' | b':'..=b'@' | b'['..=b'`' | b'{'..=b'~' => PUNCTUATION,
            0xc2 | 0xe1 | 0xe2 | 0xe3 => NON_ASCII | MAYBE_SPACE,
            0x80..=0xff => NON_ASCII,
            _ => 0,
        };
        byte += 1;
    }
    table
};

/// `text.trim_matches(|ch: char| ch.is_ascii_punctuation())`, on bytes: no
/// byte of a non-ASCII character is ASCII punctuation, so the cuts fall on
/// character boundaries.
#[inline]
fn trim_ascii_punctuation(text: &str) -> &str {
    let bytes = text.as_bytes();
    let Some(start) = bytes.iter().position(|byte| !byte.is_ascii_punctuation()) else {
        return "";
    };
    let end = bytes
        .iter()
        .rposition(|byte| !byte.is_ascii_punctuation())
        .map_or(start, |last| last + 1);
    &text[start..end]
}

/// The valence of token `i` after the rules that look backwards.
fn sentiment_valence(tokens: &[Token], i: usize, cap_diff: bool) -> f64 {
    let Some(base) = tokens[i].info.valence else {
        return 0.0;
    };
    let mut valence = base;
    let rule = |k: usize| tokens[k].info.rule;
    if rule(i) == NO && i + 1 != tokens.len() && tokens[i + 1].info.valence.is_some() {
        // "no" before a lexicon word is a determiner, not a sentiment.
        valence = 0.0;
    }
    if (i > 0 && rule(i - 1) == NO)
        || (i > 1 && rule(i - 2) == NO)
        || (i > 2 && rule(i - 3) == NO && matches!(rule(i - 1), OR | NOR))
    {
        valence = base * N_SCALAR;
    }
    if tokens[i].upper && cap_diff {
        if valence > 0.0 {
            valence += C_INCR;
        } else {
            valence -= C_INCR;
        }
    }
    for start in 0..3 {
        if i > start && tokens[i - (start + 1)].info.valence.is_none() {
            let mut scalar = scalar_inc_dec(&tokens[i - (start + 1)], valence, cap_diff);
            if start == 1 && scalar != 0.0 {
                scalar *= 0.95;
            }
            if start == 2 && scalar != 0.0 {
                scalar *= 0.9;
            }
            valence += scalar;
            valence = negation_check(tokens, valence, start, i);
            if start == 2 {
                valence = special_idioms_check(tokens, valence, i);
            }
        }
    }
    least_check(tokens, valence, i)
}

/// True when the tokens from `start` spell `phrase`.
#[inline]
fn spells(tokens: &[Token], start: usize, phrase: &Phrase) -> bool {
    start + phrase.len <= tokens.len()
        && tokens[start..start + phrase.len]
            .iter()
            .zip(phrase.words)
            .all(|(token, word)| token.info.rule == word)
}

/// The value of the phrase of `table` spelled by `len` tokens from `start`.
fn phrase_at(tokens: &[Token], start: usize, len: usize, table: &[Phrase]) -> Option<f64> {
    if tokens[start].info.rule == 0 {
        return None;
    }
    table
        .iter()
        .find(|phrase| phrase.len == len && spells(tokens, start, phrase))
        .map(|phrase| phrase.value)
}

/// Python's `str.isspace()`, which `str.split()` and `str.strip()` use.
fn is_py_space(ch: char) -> bool {
    matches!(ch, '\t'..='\r' | '\x1c'..='\x1f' | ' ')
        || (!ch.is_ascii() && (ch.is_whitespace() || ch == '\u{85}'))
}

/// The length in bytes of the [`is_py_space`] character at byte `at` of
/// `text`, or 0 when there is none. `at` need not be a character boundary:
/// only the lead bytes that start a non-ASCII space (U+0085, U+00A0, U+1680,
/// U+2000 to U+205F, U+3000) are decoded.
#[inline]
fn py_space_len(text: &str, at: usize) -> usize {
    match text.as_bytes()[at] {
        b'\t'..=b'\r' | 0x1c..=0x1f | b' ' => 1,
        0xc2 | 0xe1 | 0xe2 | 0xe3 => match text[at..].chars().next() {
            Some(ch) if is_py_space(ch) => ch.len_utf8(),
            _ => 0,
        },
        _ => 0,
    }
}

/// `text.chars().nth(2).is_none()`, counting lead bytes.
#[inline]
fn char_count_below_3(text: &str) -> bool {
    text.len() < 3
        || text
            .bytes()
            .filter(|byte| !is_utf8_continuation(*byte))
            .nth(2)
            .is_none()
}

#[inline]
fn is_utf8_continuation(byte: u8) -> bool {
    byte & 0xc0 == 0x80
}

/// Characters with no case at all: not upper, not lower, their own
/// lowercase (checked for every one of them by a test). Scripts such as
/// Devanagari, Arabic and CJK take this shortcut past the Unicode tables.
#[inline]
fn caseless(ch: char) -> bool {
    matches!(u32::from(ch), 0x0590..=0x109f | 0x3040..=0xa63f | 0xac00..=0xd7ff | 0xfe00..=0xfe0f)
}

/// Python's `str.isupper()`: at least one cased character and no lowercase one.
fn py_isupper(word: &str) -> bool {
    let (mut has_upper, mut has_lower) = (false, false);
    for ch in word.chars().filter(|ch| !caseless(*ch)) {
        has_upper |= ch.is_uppercase();
        has_lower |= ch.is_lowercase();
    }
    has_upper && !has_lower
}

/// Writes `word.to_lowercase()` into `out` (without allocating a String) and
/// returns Python's `str.isupper()` of `word`.
fn lowercase_into(word: &str, out: &mut String) -> bool {
    out.clear();
    let (mut has_upper, mut has_lower, mut sigma) = (false, false, false);
    for ch in word.chars() {
        if ch.is_ascii() {
            has_upper |= ch.is_ascii_uppercase();
            has_lower |= ch.is_ascii_lowercase();
            out.push(ch.to_ascii_lowercase());
        } else if caseless(ch) {
            out.push(ch);
        } else {
            has_upper |= ch.is_uppercase();
            has_lower |= ch.is_lowercase();
            sigma |= ch == 'Σ';
            out.extend(ch.to_lowercase());
        }
    }
    if sigma {
        // A capital sigma lowercases by its position in the word; leave that to std.
        out.clear();
        out.push_str(&word.to_lowercase());
    }
    has_upper && !has_lower
}

/// The booster or dampener effect of `token` on a following valence.
fn scalar_inc_dec(token: &Token, valence: f64, cap_diff: bool) -> f64 {
    let mut scalar = token.info.booster;
    if scalar != 0.0 {
        if valence < 0.0 {
            scalar = -scalar;
        }
        if token.upper && cap_diff {
            if valence > 0.0 {
                scalar += C_INCR;
            } else {
                scalar -= C_INCR;
            }
        }
    }
    scalar
}

/// Negation up to three tokens back, with VADER's "never so/this" and
/// "without doubt" exceptions.
fn negation_check(tokens: &[Token], valence: f64, start: usize, i: usize) -> f64 {
    let rule = |k: usize| tokens[k].info.rule;
    let negated_at = |k: usize| tokens[k].negated;
    match start {
        0 if negated_at(i - 1) => valence * N_SCALAR,
        1 => {
            if rule(i - 2) == NEVER && matches!(rule(i - 1), SO | THIS) {
                valence * 1.25
            } else if rule(i - 2) == WITHOUT && rule(i - 1) == DOUBT {
                valence
            } else if negated_at(i - 2) {
                valence * N_SCALAR
            } else {
                valence
            }
        }
        2 => {
            // The reference's operator precedence: (never and (so or this)) or (so or this).
            if (rule(i - 3) == NEVER && matches!(rule(i - 2), SO | THIS))
                || matches!(rule(i - 1), SO | THIS)
            {
                valence * 1.25
            } else if rule(i - 3) == WITHOUT && (rule(i - 2) == DOUBT || rule(i - 1) == DOUBT) {
                valence
            } else if negated_at(i - 3) {
                valence * N_SCALAR
            } else {
                valence
            }
        }
        _ => valence,
    }
}

/// Special-case phrases around token `i` (`i > 2`) and two-word boosters before it.
fn special_idioms_check(tokens: &[Token], mut valence: f64, i: usize) -> f64 {
    let special = |start: usize, len: usize| phrase_at(tokens, start, len, &SPECIAL_CASE_PHRASES);
    // (start, length) of: i-1..=i, i-2..=i, i-2..=i-1, i-3..=i-1, i-3..=i-2.
    let before = [(i - 1, 2), (i - 2, 3), (i - 2, 2), (i - 3, 3), (i - 3, 2)];
    if let Some(value) = before.iter().find_map(|(start, len)| special(*start, *len)) {
        valence = value;
    }
    if tokens.len() - 1 > i
        && let Some(value) = special(i, 2)
    {
        valence = value;
    }
    if tokens.len() - 1 > i + 1
        && let Some(value) = special(i, 3)
    {
        valence = value;
    }
    for (start, len) in [(i - 3, 3), (i - 3, 2), (i - 2, 2)] {
        if let Some(scalar) = phrase_at(tokens, start, len, &BOOSTER_PHRASE_IDS) {
            valence += scalar;
        }
    }
    valence
}

/// "least" before a word negates it, except in "at least" and "very least".
fn least_check(tokens: &[Token], valence: f64, i: usize) -> f64 {
    let previous_is_least =
        |k: usize| tokens[k].info.valence.is_none() && tokens[k].info.rule == LEAST;
    if i > 1 && previous_is_least(i - 1) {
        if !matches!(tokens[i - 2].info.rule, AT | VERY) {
            return valence * N_SCALAR;
        }
    } else if i > 0 && previous_is_least(i - 1) {
        return valence * N_SCALAR;
    }
    valence
}

/// "but" (the first one, at token `but`) halves the valences before it and
/// multiplies those after by 1.5.
///
/// Kept exactly as the reference does it: it walks the list and rewrites the
/// *first* element equal to the current value, so repeated valences (common:
/// every neutral word is 0) can be rewritten more than once or not at all.
fn but_check(but: usize, sentiments: &mut [f64]) {
    for position in 0..sentiments.len() {
        let sentiment = sentiments[position];
        let first = sentiments
            .iter()
            .position(|value| *value == sentiment)
            .unwrap_or(position);
        if first < but {
            sentiments[first] = sentiment * 0.5;
        } else if first > but {
            sentiments[first] = sentiment * 1.5;
        }
    }
}

/// Emphasis from up to four `!` and from two or more `?` (counted in the
/// text after the emoji step).
fn punctuation_emphasis(exclamations: usize, questions: usize) -> f64 {
    let exclamation = exclamations.min(4) as f64 * 0.292;
    let question = match questions {
        0 | 1 => 0.0,
        2 | 3 => questions as f64 * 0.18,
        _ => 0.96,
    };
    exclamation + question
}

/// `x / sqrt(x² + 15)`, clamped to −1..1.
pub fn normalize(score: f64) -> f64 {
    (score / (score * score + ALPHA).sqrt()).clamp(-1.0, 1.0)
}

/// The compound score and the positive, neutral and negative shares, given
/// the text's [`punctuation_emphasis`].
fn score_valence(sentiments: &[f64], emphasis: f64) -> Scores {
    if sentiments.is_empty() {
        return Scores::default();
    }
    let mut sum: f64 = sentiments.iter().sum();
    if sum > 0.0 {
        sum += emphasis;
    } else if sum < 0.0 {
        sum -= emphasis;
    }
    let compound = normalize(sum);

    let (mut pos_sum, mut neg_sum, mut neu_count) = (0.0f64, 0.0f64, 0usize);
    for &sentiment in sentiments {
        if sentiment > 0.0 {
            pos_sum += sentiment + 1.0;
        }
        if sentiment < 0.0 {
            neg_sum += sentiment - 1.0;
        }
        if sentiment == 0.0 {
            neu_count += 1;
        }
    }
    if pos_sum > neg_sum.abs() {
        pos_sum += emphasis;
    } else if pos_sum < neg_sum.abs() {
        neg_sum -= emphasis;
    }
    let total = pos_sum + neg_sum.abs() + neu_count as f64;
    Scores {
        compound,
        pos: (pos_sum / total).abs(),
        neu: (neu_count as f64 / total).abs(),
        neg: (neg_sum / total).abs(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compound(text: &str) -> f64 {
        let analyzer = Analyzer::new().unwrap();
        analyzer.polarity_scores(text).rounded().compound
    }

    // Expected values printed by vaderSentiment 3.3.2's own demo.
    #[test]
    fn agrees_with_the_reference_demo() {
        assert_eq!(compound("VADER is smart, handsome, and funny."), 0.8316);
        assert_eq!(compound("VADER is smart, handsome, and funny!"), 0.8439);
        assert_eq!(
            compound("VADER is VERY SMART, handsome, and FUNNY."),
            0.9227
        );
        assert_eq!(
            compound("VADER is not smart, handsome, nor funny."),
            -0.7424
        );
        assert_eq!(compound("At least it isn't a horrible book."), 0.431);
        assert_eq!(compound("Today SUX!"), -0.5461);
        assert_eq!(compound("Make sure you :) or :D today!"), 0.8633);
        assert_eq!(
            compound("Catch utf-8 emoji such as 💘 and 💋 and 😁"),
            0.875
        );
        assert_eq!(compound("Not bad at all"), 0.431);
    }

    #[test]
    fn empty_and_neutral_texts_score_zero() {
        let analyzer = Analyzer::new().unwrap();
        assert_eq!(analyzer.polarity_scores(""), Scores::default());
        assert_eq!(analyzer.polarity_scores("   \n"), Scores::default());
        let scores = analyzer.polarity_scores("the bus leaves at nine");
        assert_eq!(scores.compound, 0.0);
        assert_eq!(scores.neu, 1.0);
    }

    #[test]
    fn rules_move_the_score_the_right_way() {
        let good = compound("The food is good");
        assert!(compound("The food is very good") > good);
        assert!(compound("The food is kinda good") < good);
        assert!(compound("The food is not good") < 0.0);
        assert!(compound("The food is GOOD") > good);
        assert!(compound("The food is good!!!") > good);
        assert!(compound("The food is good, but the service is horrible") < 0.0);
    }

    #[test]
    fn compound_stays_in_range() {
        let text = "GREAT GREAT GREAT love love love best best best wonderful!!!!!! 😍😍😍";
        let scores = Analyzer::new().unwrap().polarity_scores(text);
        assert!(scores.compound > 0.99 && scores.compound <= 1.0);
        assert!((scores.pos + scores.neu + scores.neg - 1.0).abs() < 1e-9);
    }

    /// Every character, for the exhaustive tests below.
    fn all_chars() -> impl Iterator<Item = char> {
        (0..=u32::from(char::MAX)).filter_map(char::from_u32)
    }

    /// Python's `str.isupper()`, written plainly.
    fn plain_isupper(word: &str) -> bool {
        word.chars().any(char::is_uppercase) && !word.chars().any(char::is_lowercase)
    }

    #[test]
    fn byte_classes_match_the_byte_tests() {
        for byte in 0..=255u8 {
            let class = BYTE_CLASS[usize::from(byte)];
            let ascii_space = byte.is_ascii() && is_py_space(char::from(byte));
            assert_eq!(class & SPACE != 0, ascii_space, "{byte:#x}");
            assert_eq!(class & NON_ASCII != 0, !byte.is_ascii(), "{byte:#x}");
            assert_eq!(class & UPPER != 0, byte.is_ascii_uppercase(), "{byte:#x}");
            assert_eq!(class & LOWER != 0, byte.is_ascii_lowercase(), "{byte:#x}");
            assert_eq!(class & APOSTROPHE != 0, byte == b'\'', "{byte:#x}");
            assert_eq!(
                class & PUNCTUATION != 0,
                byte.is_ascii_punctuation(),
                "{byte:#x}"
            );
        }
        // Every non-ASCII space starts with a MAYBE_SPACE byte.
        for ch in all_chars().filter(|ch| !ch.is_ascii() && is_py_space(*ch)) {
            let lead = ch.encode_utf8(&mut [0; 4]).as_bytes()[0];
            assert!(BYTE_CLASS[usize::from(lead)] & MAYBE_SPACE != 0, "{ch:?}");
        }
    }

    #[test]
    fn marks_and_nt_are_found_as_plainly() {
        let texts = [
            "",
            "!",
            "?!?!????!!!!!",
            "no marks at all in this longer text of many words",
            "wow! what? 😀!!! ¿¡qué?! 0x2121212121212121 !!!!!!!!?????????",
            "N'T n't DON'T isn`t n'T x'n't 'nt nt'",
        ];
        for text in texts {
            let plain = (
                text.bytes().filter(|byte| *byte == b'!').count(),
                text.bytes().filter(|byte| *byte == b'?').count(),
            );
            assert_eq!(count_marks(text.as_bytes()), plain, "{text:?}");
            for word in text.split(' ') {
                assert_eq!(
                    contains_nt(word),
                    word.to_ascii_lowercase().contains("n't"),
                    "{word:?}"
                );
            }
        }
    }

    #[test]
    fn only_the_kelvin_sign_lowercases_to_ascii_letters_or_apostrophes() {
        for ch in all_chars().filter(|ch| !ch.is_ascii()) {
            let ascii: String = ch.to_lowercase().filter(char::is_ascii).collect();
            match ch {
                KELVIN => assert_eq!(ascii, "k"),
                // Dotted capital I: `i` and a combining dot, which stays non-ASCII.
                '\u{130}' => assert_eq!(ascii, "i"),
                _ => assert_eq!(ascii, "", "{ch:?}"),
            }
            if ch != KELVIN {
                assert!(ch.to_lowercase().any(|lower| !lower.is_ascii()), "{ch:?}");
            }
        }
    }

    #[test]
    fn caseless_characters_have_no_case() {
        for ch in all_chars().filter(|ch| caseless(*ch)) {
            assert!(!ch.is_uppercase() && !ch.is_lowercase(), "{ch:?}");
            assert!(ch.to_lowercase().eq([ch]), "{ch:?}");
        }
    }

    #[test]
    fn lowercase_into_agrees_with_std() {
        let mut out = String::new();
        let words = all_chars()
            .flat_map(|ch| [format!("{ch}"), format!("A{ch}b"), format!("É{ch}Ü")])
            .chain(["ΣΑΣ", "ΑΣ.", "Σa", "ΌΣΟΣ", "İK", "ǅ"].map(str::to_owned));
        for word in words {
            let upper = lowercase_into(&word, &mut out);
            assert_eq!(out, word.to_lowercase(), "{word:?}");
            assert_eq!(upper, plain_isupper(&word), "{word:?}");
            assert_eq!(py_isupper(&word), plain_isupper(&word), "{word:?}");
        }
    }

    #[test]
    fn py_space_len_finds_exactly_the_python_spaces() {
        let mut buffer = [0u8; 4];
        for ch in all_chars() {
            let text = ch.encode_utf8(&mut buffer);
            let expected = if is_py_space(ch) { text.len() } else { 0 };
            assert_eq!(py_space_len(text, 0), expected, "{ch:?}");
            for at in 1..text.len() {
                assert_eq!(py_space_len(text, at), 0, "{ch:?} at {at}");
            }
        }
    }

    /// The tokenizer as first written: `str::split`, `trim_matches`, `to_lowercase`.
    fn plain_tokens(lexicon: &Lexicon, text: &str) -> Vec<(WordInfo, bool, bool)> {
        text.split(is_py_space)
            .filter(|token| !token.is_empty())
            .map(|raw| {
                let stripped = raw.trim_matches(|ch: char| ch.is_ascii_punctuation());
                let word = if stripped.chars().nth(2).is_none() {
                    raw
                } else {
                    stripped
                };
                let lower = word.to_lowercase();
                let info = lexicon.word(&lower);
                (
                    info,
                    plain_isupper(word),
                    info.negation || lower.contains("n't"),
                )
            })
            .collect()
    }

    /// VADER's emoji step as the reference writes it, character by character.
    fn plain_replace_emojis(lexicon: &Lexicon, text: &str) -> String {
        let mut out = String::new();
        let mut prev_space = true;
        for ch in text.chars() {
            match lexicon.emoji(ch) {
                Some(description) => {
                    if !prev_space {
                        out.push(' ');
                    }
                    out.push_str(description);
                    prev_space = false;
                }
                None => {
                    out.push(ch);
                    prev_space = ch == ' ';
                }
            }
        }
        out
    }

    /// Checks the one-pass tokenizer against the emoji step and tokenizer as
    /// first written, token by token, and the `!`/`?` count.
    fn assert_tokenizes_plainly(analyzer: &Analyzer, text: &str) {
        let mut scratch = Scratch::default();
        let summary = analyzer.tokenize(text, &mut scratch);
        let ours: Vec<_> = scratch
            .tokens
            .iter()
            .map(|token| (token.info, token.upper, token.negated))
            .collect();
        let replaced = plain_replace_emojis(&analyzer.lexicon, text);
        let plain = plain_tokens(&analyzer.lexicon, &replaced);
        assert_eq!(ours, plain, "{text:?} → {replaced:?}");
        assert_eq!(summary.caps, plain.iter().filter(|token| token.1).count());
        assert_eq!(
            summary.any_valence,
            plain.iter().any(|token| token.0.valence.is_some())
        );
        let but = plain.iter().position(|token| token.0.rule == BUT);
        assert_eq!(summary.but, but, "{text:?}");
        let count = |text: &str, mark: char| text.chars().filter(|ch| *ch == mark).count();
        assert_eq!(
            summary.exclamations + count(text, '!'),
            count(&replaced, '!')
        );
        assert_eq!(summary.questions + count(text, '?'), count(&replaced, '?'));
    }

    /// Texts for the tokenizer tests.
    const TOKENIZER_TEXTS: &[&str] = &[
        "",
        "  \t\n ",
        "GOOD.. bad!!! :) :-D ok?! \"Love\" (hate) but BUT",
        "no\u{a0}way\u{2003}good\u{3000}great\u{1c}nice\u{85}fine\u{1680}x\u{202f}y\u{205f}z",
        "non\u{200b}break\u{feff}word café CAFÉ ΣΟΦΌΣ \u{212a}ind İstanbul",
        "DON'T isn't WON'T can’t '' ' !!! ... a.b ,;:-) !é! .'n't.",
        "आज शाम का नज़ारा ❤️ #LisbonLife 夕焼けがきれいすぎる https://t.co/k9sj12UwYY",
        "kind of sort-of the shit KISS OF DEATH to die for",
        "आजn't आज'N'T 日本GOOD ا good ΑΒΓ Ωmega ÉTÉ",
        "😀ok 😀😀x😀 é😀\n😀\t😀, 😀!!! but😀 GREAT😀GREAT ©®™ 😀",
        "😀",
        "x😀",
        "😀x",
        "CAFÉ café Café's CAFÉN'T σοφός ΣΟΦΌΣ STRASSE straße \u{212a}ind \u{212a}IND İ",
    ];

    #[test]
    fn tokenizer_agrees_with_the_plain_one() {
        let analyzer = Analyzer::new().unwrap();
        for text in TOKENIZER_TEXTS {
            assert_tokenizes_plainly(&analyzer, text);
        }
    }

    #[test]
    fn tokenizer_agrees_with_the_plain_one_when_the_lexicon_has_non_ascii_words() {
        let words = "café\t2.0\nσοφός\t1.0\nstraße\t-1.0\nkind\t0.5\nno\t-1.0\ni\u{307}\t1.5\n";
        let analyzer = Analyzer::with_lexicon(Lexicon::parse(words, "").unwrap());
        assert!(analyzer.lexicon.has_non_ascii_words());
        for text in TOKENIZER_TEXTS {
            assert_tokenizes_plainly(&analyzer, text);
        }
    }

    #[test]
    fn tokenizer_agrees_with_the_plain_one_on_odd_descriptions() {
        // A blank description, one ending in a space, ones with `!` and `?`
        // and punctuation at the end, which a following word joins.
        let emojis =
            "😀\tgrinning face\tx\n🙂\t \tx\n🙃\tGOOD !!\tx\n😉\tsmile \tx\n😊\t:) happy?\tx\n";
        let lexicon = Lexicon::parse(crate::lexicon::VADER_LEXICON, emojis).unwrap();
        let analyzer = Analyzer::with_lexicon(lexicon);
        let marks = ["😀", "🙂", "🙃", "😉", "😊"];
        let mut texts = vec![String::new()];
        for first in marks {
            for second in marks {
                for glue in ["", " ", "!", "ok", "OK!", "\n"] {
                    texts.push(format!("{first}{glue}{second}{glue}"));
                    texts.push(format!("a{glue}{first}{second}b {first}"));
                }
            }
        }
        for text in &texts {
            assert_tokenizes_plainly(&analyzer, text);
        }
    }

    #[test]
    fn texts_without_lexicon_words_take_the_shortcut_to_the_same_scores() {
        let analyzer = Analyzer::new().unwrap();
        let text = "the bus but a train!!! really?? #nope";
        let mut sentiments = vec![0.0; 7];
        but_check(2, &mut sentiments);
        assert_eq!(
            analyzer.polarity_scores(text),
            score_valence(&sentiments, punctuation_emphasis(3, 2))
        );
    }

    #[test]
    fn emoji_descriptions_are_spaced_as_the_reference_does() {
        let analyzer = Analyzer::new().unwrap();
        // A space before a description only when none precedes it; none after.
        assert_eq!(
            plain_replace_emojis(&analyzer.lexicon, "😀ok 😀😀x😀 é"),
            "grinning faceok grinning face grinning facex grinning face é"
        );
        let mut scratch = Scratch::default();
        analyzer.tokenize("😀ok", &mut scratch);
        let faceok = analyzer.lexicon.word("faceok");
        assert_eq!(scratch.tokens.len(), 2);
        assert_eq!(scratch.tokens[1].info, faceok);
    }

    #[test]
    fn scratch_reuse_does_not_leak_between_texts() {
        let analyzer = Analyzer::new().unwrap();
        let mut scratch = Scratch::default();
        let first = analyzer.scores_with(&mut scratch, "I love this 😀 so much");
        let second = analyzer.scores_with(&mut scratch, "meh");
        assert_eq!(second, analyzer.polarity_scores("meh"));
        assert_eq!(first, analyzer.polarity_scores("I love this 😀 so much"));
    }
}
