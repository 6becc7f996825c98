//! VADER's word and emoji lexicons, shipped inside the plugin and parsed once into fast maps.
//!
//! The two files under `data/` are copied unchanged from the `vaderSentiment`
//! package (MIT licence, see `LICENSE-vader`). Every word the rules look up is
//! folded into one [`WordInfo`] per lowercase word, so scoring a token costs one
//! hash lookup.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// `vader_lexicon.txt`: word, mean valence, standard deviation, raw ratings (tab-separated).
pub const VADER_LEXICON: &str = include_str!("../data/vader_lexicon.txt");
/// `emoji_utf8_lexicon.txt`: emoji, English description (tab-separated).
pub const EMOJI_LEXICON: &str = include_str!("../data/emoji_utf8_lexicon.txt");

/// Scalar added by an intensifying booster ("very", "extremely").
pub const B_INCR: f64 = 0.293;
/// Scalar added by a dampener ("kinda", "slightly").
pub const B_DECR: f64 = -0.293;

/// Degree modifiers, as in VADER's `BOOSTER_DICT` (single words).
const BOOSTERS: &[(&str, f64)] = &[
    ("absolutely", B_INCR),
    ("amazingly", B_INCR),
    ("awfully", B_INCR),
    ("completely", B_INCR),
    ("considerable", B_INCR),
    ("considerably", B_INCR),
    ("decidedly", B_INCR),
    ("deeply", B_INCR),
    ("effing", B_INCR),
    ("enormous", B_INCR),
    ("enormously", B_INCR),
    ("entirely", B_INCR),
    ("especially", B_INCR),
    ("exceptional", B_INCR),
    ("exceptionally", B_INCR),
    ("extreme", B_INCR),
    ("extremely", B_INCR),
    ("fabulously", B_INCR),
    ("flipping", B_INCR),
    ("flippin", B_INCR),
    ("frackin", B_INCR),
    ("fracking", B_INCR),
    ("fricking", B_INCR),
    ("frickin", B_INCR),
    ("frigging", B_INCR),
    ("friggin", B_INCR),
    ("fully", B_INCR),
    ("fuckin", B_INCR),
    ("fucking", B_INCR),
    ("fuggin", B_INCR),
    ("fugging", B_INCR),
    ("greatly", B_INCR),
    ("hella", B_INCR),
    ("highly", B_INCR),
    ("hugely", B_INCR),
    ("incredible", B_INCR),
    ("incredibly", B_INCR),
    ("intensely", B_INCR),
    ("major", B_INCR),
    ("majorly", B_INCR),
    ("more", B_INCR),
    ("most", B_INCR),
    ("particularly", B_INCR),
    ("purely", B_INCR),
    ("quite", B_INCR),
    ("really", B_INCR),
    ("remarkably", B_INCR),
    ("so", B_INCR),
    ("substantially", B_INCR),
    ("thoroughly", B_INCR),
    ("total", B_INCR),
    ("totally", B_INCR),
    ("tremendous", B_INCR),
    ("tremendously", B_INCR),
    ("uber", B_INCR),
    ("unbelievably", B_INCR),
    ("unusually", B_INCR),
    ("utter", B_INCR),
    ("utterly", B_INCR),
    ("very", B_INCR),
    ("almost", B_DECR),
    ("barely", B_DECR),
    ("hardly", B_DECR),
    ("kinda", B_DECR),
    ("kindof", B_DECR),
    ("kind-of", B_DECR),
    ("less", B_DECR),
    ("little", B_DECR),
    ("marginal", B_DECR),
    ("marginally", B_DECR),
    ("occasional", B_DECR),
    ("occasionally", B_DECR),
    ("partly", B_DECR),
    ("scarce", B_DECR),
    ("scarcely", B_DECR),
    ("slight", B_DECR),
    ("slightly", B_DECR),
    ("somewhat", B_DECR),
    ("sorta", B_DECR),
    ("sortof", B_DECR),
    ("sort-of", B_DECR),
];

/// Two-word degree modifiers of `BOOSTER_DICT`; only the idiom rule sees them.
pub const BOOSTER_PHRASES: &[(&[&str], f64)] = &[
    (&["just", "enough"], B_DECR),
    (&["kind", "of"], B_DECR),
    (&["sort", "of"], B_DECR),
];

/// Multi-word expressions whose valence replaces the word's own (`SPECIAL_CASES`).
pub const SPECIAL_CASES: &[(&[&str], f64)] = &[
    (&["the", "shit"], 3.0),
    (&["the", "bomb"], 3.0),
    (&["bad", "ass"], 1.5),
    (&["bus", "stop"], 0.0),
    (&["yeah", "right"], -2.0),
    (&["kiss", "of", "death"], -1.5),
    (&["to", "die", "for"], 3.0),
    (&["beating", "heart"], 3.5),
];

/// Words that negate what follows (`NEGATE`); any word containing `n't` does too.
const NEGATIONS: &[&str] = &[
    "aint",
    "arent",
    "cannot",
    "cant",
    "couldnt",
    "darent",
    "didnt",
    "doesnt",
    "ain't",
    "aren't",
    "can't",
    "couldn't",
    "daren't",
    "didn't",
    "doesn't",
    "dont",
    "hadnt",
    "hasnt",
    "havent",
    "isnt",
    "mightnt",
    "mustnt",
    "neither",
    "don't",
    "hadn't",
    "hasn't",
    "haven't",
    "isn't",
    "mightn't",
    "mustn't",
    "neednt",
    "needn't",
    "never",
    "none",
    "nope",
    "nor",
    "not",
    "nothing",
    "nowhere",
    "oughtnt",
    "shant",
    "shouldnt",
    "uhuh",
    "wasnt",
    "werent",
    "oughtn't",
    "shan't",
    "shouldn't",
    "uh-uh",
    "wasn't",
    "weren't",
    "without",
    "wont",
    "wouldnt",
    "won't",
    "wouldn't",
    "rarely",
    "seldom",
    "despite",
];

/// Words the rules compare tokens with: "no", "but", the words of the
/// negation and "least" exceptions and every word of [`SPECIAL_CASES`] and
/// [`BOOSTER_PHRASES`]. Each is tagged with its [`rule_word`] id in the word
/// map, so the rules compare one small integer per token instead of strings.
pub const RULE_WORDS: &[&str] = &[
    "no", "or", "nor", "never", "so", "this", "without", "doubt", "least", "at", "very", "but",
    "kind", "of", "sort", "just", "enough", "the", "shit", "bomb", "bad", "ass", "bus", "stop",
    "yeah", "right", "kiss", "death", "to", "die", "for", "beating", "heart",
];

/// The id of `word` in [`RULE_WORDS`] (its index + 1; 0 means "no rule word").
/// Evaluated at compile time, so naming a word missing from the list does not build.
pub const fn rule_word(word: &str) -> u8 {
    let mut index = 0;
    while index < RULE_WORDS.len() {
        if same_bytes(RULE_WORDS[index].as_bytes(), word.as_bytes()) {
            return index as u8 + 1;
        }
        index += 1;
    }
    panic!("not one of RULE_WORDS")
}

const fn same_bytes(left: &[u8], right: &[u8]) -> bool {
    if left.len() != right.len() {
        return false;
    }
    let mut index = 0;
    while index < left.len() {
        if left[index] != right[index] {
            return false;
        }
        index += 1;
    }
    true
}

/// What the rules need to know about one lowercase word.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct WordInfo {
    /// Its valence in the lexicon, if it is a lexicon word.
    pub valence: Option<f64>,
    /// Its booster scalar (`B_INCR` or `B_DECR`), or 0 when it is no booster.
    pub booster: f64,
    /// True when it is one of the negation words.
    pub negation: bool,
    /// Its [`rule_word`] id, or 0 when it is none of [`RULE_WORDS`].
    pub rule: u8,
}

/// A lexicon file that cannot be read.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum LexiconError {
    /// A line lacks the tab-separated second column.
    #[error("{file}, line {line}: expected `<token>\\t<value>`")]
    MissingColumn {
        /// The lexicon file.
        file: &'static str,
        /// The 1-based line number.
        line: usize,
    },
    /// A valence is not a number.
    #[error("{file}, line {line}: valence `{value}` is not a number")]
    BadValence {
        /// The lexicon file.
        file: &'static str,
        /// The 1-based line number.
        line: usize,
        /// The text found.
        value: String,
    },
}

/// FxHash (as in rustc): a fast, non-keyed hash for short lexicon words.
/// Keys come from the shipped lexicon, not from users, so flooding is not a concern.
#[derive(Debug, Default, Clone, Copy)]
pub struct FxHasher {
    hash: u64,
}

const FX_SEED: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl FxHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.hash = (self.hash.rotate_left(5) ^ word).wrapping_mul(FX_SEED);
    }
}

impl Hasher for FxHasher {
    #[inline]
    fn write(&mut self, mut bytes: &[u8]) {
        while let Some((chunk, rest)) = bytes.split_first_chunk::<8>() {
            self.add(u64::from_le_bytes(*chunk));
            bytes = rest;
        }
        if let Some((chunk, rest)) = bytes.split_first_chunk::<4>() {
            self.add(u32::from_le_bytes(*chunk).into());
            bytes = rest;
        }
        for byte in bytes {
            self.add((*byte).into());
        }
    }

    #[inline]
    fn write_u8(&mut self, value: u8) {
        self.add(value.into());
    }

    #[inline]
    fn write_u32(&mut self, value: u32) {
        self.add(value.into());
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.hash
    }
}

type FxMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;

/// Code points below this are screened by [`Lexicon`]'s emoji bitmap (all of
/// Unicode's planes 0 and 1, where the emoji and nearly all text are).
const EMOJI_BITMAP_LIMIT: usize = 0x2_0000;

/// The parsed lexicons.
#[derive(Debug, Clone)]
pub struct Lexicon {
    words: FxMap<&'static str, WordInfo>,
    /// Length in bytes of the longest key of `words`: longer tokens skip the lookup.
    longest_word: usize,
    /// True when some key of `words` has a non-ASCII character and is its own
    /// lowercase form, so a lowercased token could find it.
    non_ascii_words: bool,
    /// True for the first byte of some key of `words`: tokens starting with
    /// another byte (a mention, a number, most non-Latin words) skip the lookup.
    word_starts: [bool; 256],
    /// Each emoji's index in `descriptions`.
    emojis: FxMap<char, u32>,
    /// The emoji descriptions, in file order.
    descriptions: Vec<&'static str>,
    /// One bit per code point below `EMOJI_BITMAP_LIMIT`, set for the keys of
    /// `emojis`, so the many non-emoji characters of a text skip the hash lookup.
    emoji_bits: Vec<u64>,
    /// True for the first UTF-8 byte of each non-ASCII key of `emojis`, so a
    /// text's bytes can be screened without decoding its characters.
    emoji_leads: [bool; 256],
}

impl Lexicon {
    /// Parses the lexicons shipped with the plugin.
    pub fn vader() -> Result<Lexicon, LexiconError> {
        Lexicon::parse(VADER_LEXICON, EMOJI_LEXICON)
    }

    /// Parses lexicons in VADER's file formats. As in VADER, a later line for
    /// the same token wins, and only single-character emoji keys can match.
    pub fn parse(words: &'static str, emojis: &'static str) -> Result<Lexicon, LexiconError> {
        let mut map: FxMap<&'static str, WordInfo> = FxMap::default();
        map.reserve(8192);
        for (index, line) in words.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            let mut columns = line.split('\t');
            let word = columns.next().unwrap_or_default();
            let value = columns.next().ok_or(LexiconError::MissingColumn {
                file: "vader_lexicon.txt",
                line: index + 1,
            })?;
            let valence: f64 = value.parse().map_err(|_| LexiconError::BadValence {
                file: "vader_lexicon.txt",
                line: index + 1,
                value: value.to_owned(),
            })?;
            map.entry(word).or_default().valence = Some(valence);
        }
        for (word, scalar) in BOOSTERS {
            map.entry(word).or_default().booster = *scalar;
        }
        for word in NEGATIONS {
            map.entry(word).or_default().negation = true;
        }
        for word in RULE_WORDS {
            map.entry(word).or_default().rule = rule_word(word);
        }
        let mut emoji_map: FxMap<char, u32> = FxMap::default();
        let mut descriptions = Vec::new();
        let mut emoji_bits = vec![0u64; EMOJI_BITMAP_LIMIT / 64];
        let mut emoji_leads = [false; 256];
        for (index, line) in emojis.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            let (emoji, rest) = line.split_once('\t').ok_or(LexiconError::MissingColumn {
                file: "emoji_utf8_lexicon.txt",
                line: index + 1,
            })?;
            let description = rest.split('\t').next().unwrap_or_default();
            let mut chars = emoji.chars();
            if let (Some(emoji), None) = (chars.next(), chars.next()) {
                emoji_map.insert(emoji, descriptions.len() as u32);
                descriptions.push(description);
                if let Some(bits) = emoji_bits.get_mut(emoji as usize / 64) {
                    *bits |= 1 << (emoji as usize % 64);
                }
                if !emoji.is_ascii() {
                    emoji_leads[usize::from(emoji.encode_utf8(&mut [0; 4]).as_bytes()[0])] = true;
                }
            }
        }
        let mut word_starts = [false; 256];
        for word in map.keys() {
            if let Some(first) = word.bytes().next() {
                word_starts[usize::from(first)] = true;
            }
        }
        Ok(Lexicon {
            longest_word: map.keys().map(|word| word.len()).max().unwrap_or(0),
            non_ascii_words: map
                .keys()
                .any(|word| !word.is_ascii() && word.to_lowercase() == *word),
            word_starts,
            words: map,
            emojis: emoji_map,
            descriptions,
            emoji_bits,
            emoji_leads,
        })
    }

    /// What is known about a lowercase word (all defaults when nothing).
    #[inline]
    pub fn word(&self, lowercase: &str) -> WordInfo {
        if lowercase.len() > self.longest_word || !self.may_start_word(lowercase) {
            return WordInfo::default();
        }
        self.words.get(lowercase).copied().unwrap_or_default()
    }

    /// True when a lowercase form with a non-ASCII character may be a lexicon
    /// word (the shipped lexicon has none: its two non-ASCII keys have a capital).
    #[inline]
    pub fn has_non_ascii_words(&self) -> bool {
        self.non_ascii_words
    }

    /// False when the ASCII `word`'s lowercase form cannot be a lexicon word:
    /// it is longer than any, or no word starts with its first letter.
    #[inline]
    pub fn may_hold_ascii(&self, word: &str) -> bool {
        word.len() <= self.longest_word
            && word
                .bytes()
                .next()
                .is_some_and(|first| self.word_starts[usize::from(first.to_ascii_lowercase())])
    }

    /// False when no word of the lexicon starts with the first byte of
    /// `text`, so no lowercase form starting that way has anything to find.
    #[inline]
    pub fn may_start_word(&self, text: &str) -> bool {
        text.bytes()
            .next()
            .is_some_and(|first| self.word_starts[usize::from(first)])
    }

    /// The description VADER substitutes for an emoji character.
    #[inline]
    pub fn emoji(&self, emoji: char) -> Option<&'static str> {
        self.emoji_id(emoji).map(|id| self.descriptions[id])
    }

    /// The index in [`Lexicon::descriptions`] of an emoji character's description.
    #[inline]
    pub fn emoji_id(&self, emoji: char) -> Option<usize> {
        if emoji.is_ascii() {
            return None;
        }
        let code = emoji as usize;
        if let Some(bits) = self.emoji_bits.get(code / 64)
            && bits & (1 << (code % 64)) == 0
        {
            return None;
        }
        self.emojis.get(&emoji).map(|id| *id as usize)
    }

    /// Every emoji description, indexed by [`Lexicon::emoji_id`].
    pub fn descriptions(&self) -> &[&'static str] {
        &self.descriptions
    }

    /// False when no emoji's UTF-8 form starts with `byte`.
    #[inline]
    pub fn may_start_emoji(&self, byte: u8) -> bool {
        self.emoji_leads[usize::from(byte)]
    }

    /// Number of lexicon words (with a valence).
    pub fn word_count(&self) -> usize {
        self.words
            .values()
            .filter(|info| info.valence.is_some())
            .count()
    }

    /// Number of single-character emojis with a description.
    pub fn emoji_count(&self) -> usize {
        self.emojis.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_shipped_lexicons() {
        let lexicon = Lexicon::vader().unwrap();
        // 7,520 lines, 14 of them repeat a token.
        assert_eq!(lexicon.word_count(), 7506);
        assert_eq!(lexicon.emoji_count(), 1212);
        assert_eq!(lexicon.word("good").valence, Some(1.9));
        assert_eq!(lexicon.word(":)").valence, Some(2.0));
        assert_eq!(lexicon.word("very").booster, B_INCR);
        assert!(lexicon.word("never").negation);
        assert_eq!(lexicon.word("zzzunknown"), WordInfo::default());
        assert!(lexicon.may_start_word("good") && lexicon.may_start_word(":)"));
        assert!(lexicon.may_hold_ascii("GOOD") && !lexicon.may_hold_ascii("#GOOD"));
        assert!(!lexicon.has_non_ascii_words());
        assert!(
            Lexicon::parse("café\t1.0\n", "")
                .unwrap()
                .has_non_ascii_words()
        );
        assert!(!lexicon.may_hold_ascii("Incomprehensibilities"));
        assert!(!lexicon.may_start_word("#tag") && !lexicon.may_start_word("आज"));
        assert_eq!(lexicon.emoji('😀'), Some("grinning face"));
    }

    #[test]
    fn rule_words_keep_their_other_facts() {
        let lexicon = Lexicon::vader().unwrap();
        assert_eq!(lexicon.word("but").rule, rule_word("but"));
        assert_eq!(lexicon.word("never").rule, rule_word("never"));
        assert!(lexicon.word("never").negation);
        assert_eq!(lexicon.word("so").booster, B_INCR);
        assert_eq!(lexicon.word("bad").valence, Some(-2.5));
        assert_eq!(lexicon.word("bad").rule, rule_word("bad"));
        assert_eq!(lexicon.word("good").rule, 0);
        for (index, word) in RULE_WORDS.iter().enumerate() {
            assert_eq!(
                usize::from(rule_word(word)),
                index + 1,
                "{word} is listed twice"
            );
        }
    }

    #[test]
    fn the_emoji_bitmap_lets_every_emoji_through() {
        let lexicon = Lexicon::vader().unwrap();
        for (emoji, id) in &lexicon.emojis {
            let description = lexicon.descriptions()[*id as usize];
            assert_eq!(lexicon.emoji(*emoji), Some(description), "{emoji:?}");
            assert!(lexicon.may_start_emoji(emoji.encode_utf8(&mut [0; 4]).as_bytes()[0]));
        }
        assert_eq!(lexicon.emoji('é'), None);
        assert!(!lexicon.may_start_emoji(b'a') && !lexicon.may_start_emoji(0xc3));
    }

    #[test]
    fn later_lines_win_and_bad_lines_are_reported() {
        let lexicon = Lexicon::parse("nice\t1.0\t0\t[]\r\nnice\t2.5\t0\t[]\r\n", "").unwrap();
        assert_eq!(lexicon.word("nice").valence, Some(2.5));
        assert_eq!(
            Lexicon::parse("nice\n", "").unwrap_err(),
            LexiconError::MissingColumn {
                file: "vader_lexicon.txt",
                line: 1
            }
        );
        assert!(matches!(
            Lexicon::parse("nice\tgreat\n", ""),
            Err(LexiconError::BadValence { line: 1, .. })
        ));
    }
}
