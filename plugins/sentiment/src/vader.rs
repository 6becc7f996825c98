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

use crate::lexicon::{BOOSTER_PHRASES, Lexicon, LexiconError, SPECIAL_CASES, WordInfo};

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

/// One whitespace-separated token with what the rules ask about it.
#[derive(Debug, Clone, Copy)]
struct Token {
    /// Byte range of the lowercase form in the scratch buffer.
    lower: (u32, u32),
    /// Lexicon facts about the lowercase form.
    info: WordInfo,
    /// Python's `str.isupper()` on the original form.
    upper: bool,
}

/// Reusable buffers, so scoring a post allocates nothing once warm.
#[derive(Debug, Default)]
pub struct Scratch {
    text: String,
    lower: String,
    tokens: Vec<Token>,
    sentiments: Vec<f64>,
}

/// Scores texts with the VADER lexicon and rules.
#[derive(Debug, Clone)]
pub struct Analyzer {
    lexicon: Lexicon,
}

impl Analyzer {
    /// An analyzer with the lexicons shipped in the plugin.
    pub fn new() -> Result<Analyzer, LexiconError> {
        Ok(Analyzer {
            lexicon: Lexicon::vader()?,
        })
    }

    /// An analyzer over another lexicon.
    pub fn with_lexicon(lexicon: Lexicon) -> Analyzer {
        Analyzer { lexicon }
    }

    /// The unrounded scores of `text` (allocates fresh buffers).
    pub fn polarity_scores(&self, text: &str) -> Scores {
        self.scores_with(&mut Scratch::default(), text)
    }

    /// The unrounded scores of `text`, reusing `scratch`'s buffers.
    pub fn scores_with(&self, scratch: &mut Scratch, text: &str) -> Scores {
        let Scratch {
            text: replaced,
            lower,
            tokens,
            sentiments,
        } = scratch;
        let text = self.replace_emojis(text, replaced);
        self.tokenize(text, lower, tokens);
        let words = Words {
            lower: lower.as_str(),
            tokens: tokens.as_slice(),
        };
        let cap_diff = allcap_differential(tokens);

        sentiments.clear();
        for index in 0..tokens.len() {
            let word = words.lower(index);
            if tokens[index].info.booster != 0.0
                || (index + 1 < tokens.len() && word == "kind" && words.lower(index + 1) == "of")
            {
                sentiments.push(0.0);
                continue;
            }
            sentiments.push(self.sentiment_valence(&words, index, cap_diff));
        }
        but_check(&words, sentiments);
        score_valence(sentiments, text)
    }

    /// VADER's emoji step: each emoji character becomes its description,
    /// preceded by a space unless one is already there; then the text is
    /// stripped. Borrows `text` when it has no emoji.
    fn replace_emojis<'a>(&self, text: &'a str, out: &'a mut String) -> &'a str {
        let first = text
            .char_indices()
            .find(|(_, ch)| self.lexicon.emoji(*ch).is_some());
        let Some((start, _)) = first else {
            return text.trim_matches(is_py_space);
        };
        out.clear();
        out.push_str(&text[..start]);
        let mut prev_space = start == 0 || text[..start].ends_with(' ');
        for ch in text[start..].chars() {
            match self.lexicon.emoji(ch) {
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
        out.trim_matches(is_py_space)
    }

    /// Splits on whitespace and strips punctuation from each token's ends,
    /// unless that leaves two characters or fewer (an emoticon such as `:)`).
    fn tokenize(&self, text: &str, lower: &mut String, tokens: &mut Vec<Token>) {
        lower.clear();
        tokens.clear();
        for raw in text.split(is_py_space).filter(|token| !token.is_empty()) {
            let stripped = raw.trim_matches(|ch: char| ch.is_ascii_punctuation());
            let word = if stripped.chars().nth(2).is_none() {
                raw
            } else {
                stripped
            };
            let start = lower.len();
            if word.is_ascii() {
                lower.extend(
                    word.bytes()
                        .map(|byte| char::from(byte.to_ascii_lowercase())),
                );
            } else {
                lower.push_str(&word.to_lowercase());
            }
            let end = lower.len();
            tokens.push(Token {
                lower: (start as u32, end as u32),
                info: self.lexicon.word(&lower[start..end]),
                upper: py_isupper(word),
            });
        }
    }

    /// The valence of token `i` after the rules that look backwards.
    fn sentiment_valence(&self, words: &Words<'_>, i: usize, cap_diff: bool) -> f64 {
        let tokens = words.tokens;
        let Some(base) = tokens[i].info.valence else {
            return 0.0;
        };
        let mut valence = base;
        let lower = |k: usize| words.lower(k);
        if lower(i) == "no" && i + 1 != tokens.len() && tokens[i + 1].info.valence.is_some() {
            // "no" before a lexicon word is a determiner, not a sentiment.
            valence = 0.0;
        }
        if (i > 0 && lower(i - 1) == "no")
            || (i > 1 && lower(i - 2) == "no")
            || (i > 2 && lower(i - 3) == "no" && matches!(lower(i - 1), "or" | "nor"))
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
                valence = negation_check(words, valence, start, i);
                if start == 2 {
                    valence = special_idioms_check(words, valence, i);
                }
            }
        }
        least_check(words, valence, i)
    }
}

/// The tokens of one text and their lowercase forms.
struct Words<'a> {
    lower: &'a str,
    tokens: &'a [Token],
}

impl Words<'_> {
    #[inline]
    fn lower(&self, index: usize) -> &str {
        let (start, end) = self.tokens[index].lower;
        &self.lower[start as usize..end as usize]
    }

    #[inline]
    fn len(&self) -> usize {
        self.tokens.len()
    }

    /// True when the tokens from `start` spell `phrase`.
    fn spells(&self, start: usize, phrase: &[&str]) -> bool {
        start + phrase.len() <= self.len()
            && phrase
                .iter()
                .enumerate()
                .all(|(offset, word)| self.lower(start + offset) == *word)
    }

    /// The valence of the special case spelled by `len` tokens from `start`.
    fn special_case(&self, start: usize, len: usize) -> Option<f64> {
        SPECIAL_CASES
            .iter()
            .find(|(phrase, _)| phrase.len() == len && self.spells(start, phrase))
            .map(|(_, valence)| *valence)
    }

    /// The scalar of the booster phrase spelled by `len` tokens from `start`.
    fn booster_phrase(&self, start: usize, len: usize) -> Option<f64> {
        BOOSTER_PHRASES
            .iter()
            .find(|(phrase, _)| phrase.len() == len && self.spells(start, phrase))
            .map(|(_, scalar)| *scalar)
    }
}

/// Python's `str.isspace()`, which `str.split()` and `str.strip()` use.
fn is_py_space(ch: char) -> bool {
    matches!(ch, '\t'..='\r' | '\x1c'..='\x1f' | ' ')
        || (!ch.is_ascii() && (ch.is_whitespace() || ch == '\u{85}'))
}

/// Python's `str.isupper()`: at least one cased character and no lowercase one.
fn py_isupper(word: &str) -> bool {
    if word.is_ascii() {
        let bytes = word.as_bytes();
        return bytes.iter().any(u8::is_ascii_uppercase)
            && !bytes.iter().any(u8::is_ascii_lowercase);
    }
    word.chars().any(char::is_uppercase) && !word.chars().any(char::is_lowercase)
}

/// True when some but not all tokens are ALL CAPS.
fn allcap_differential(tokens: &[Token]) -> bool {
    let caps = tokens.iter().filter(|token| token.upper).count();
    let differential = tokens.len() - caps;
    0 < differential && differential < tokens.len()
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

/// True for a negation word or any word containing `n't`.
fn negated(token: &Token, lower: &str) -> bool {
    token.info.negation || lower.contains("n't")
}

/// Negation up to three tokens back, with VADER's "never so/this" and
/// "without doubt" exceptions.
fn negation_check(words: &Words<'_>, valence: f64, start: usize, i: usize) -> f64 {
    let lower = |k: usize| words.lower(k);
    let negated_at = |k: usize| negated(&words.tokens[k], words.lower(k));
    match start {
        0 if negated_at(i - 1) => valence * N_SCALAR,
        1 => {
            if lower(i - 2) == "never" && matches!(lower(i - 1), "so" | "this") {
                valence * 1.25
            } else if lower(i - 2) == "without" && lower(i - 1) == "doubt" {
                valence
            } else if negated_at(i - 2) {
                valence * N_SCALAR
            } else {
                valence
            }
        }
        2 => {
            // The reference's operator precedence: (never and (so or this)) or (so or this).
            if (lower(i - 3) == "never" && matches!(lower(i - 2), "so" | "this"))
                || matches!(lower(i - 1), "so" | "this")
            {
                valence * 1.25
            } else if lower(i - 3) == "without"
                && (lower(i - 2) == "doubt" || lower(i - 1) == "doubt")
            {
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
fn special_idioms_check(words: &Words<'_>, mut valence: f64, i: usize) -> f64 {
    // (start, length) of: i-1..=i, i-2..=i, i-2..=i-1, i-3..=i-1, i-3..=i-2.
    let before = [(i - 1, 2), (i - 2, 3), (i - 2, 2), (i - 3, 3), (i - 3, 2)];
    if let Some(special) = before
        .iter()
        .find_map(|(start, len)| words.special_case(*start, *len))
    {
        valence = special;
    }
    if words.len() - 1 > i
        && let Some(special) = words.special_case(i, 2)
    {
        valence = special;
    }
    if words.len() - 1 > i + 1
        && let Some(special) = words.special_case(i, 3)
    {
        valence = special;
    }
    for (start, len) in [(i - 3, 3), (i - 3, 2), (i - 2, 2)] {
        if let Some(scalar) = words.booster_phrase(start, len) {
            valence += scalar;
        }
    }
    valence
}

/// "least" before a word negates it, except in "at least" and "very least".
fn least_check(words: &Words<'_>, valence: f64, i: usize) -> f64 {
    let previous_is_least =
        |k: usize| words.tokens[k].info.valence.is_none() && words.lower(k) == "least";
    if i > 1 && previous_is_least(i - 1) {
        if !matches!(words.lower(i - 2), "at" | "very") {
            return valence * N_SCALAR;
        }
    } else if i > 0 && previous_is_least(i - 1) {
        return valence * N_SCALAR;
    }
    valence
}

/// "but" halves the valences before it and multiplies those after by 1.5.
///
/// Kept exactly as the reference does it: it walks the list and rewrites the
/// *first* element equal to the current value, so repeated valences (common:
/// every neutral word is 0) can be rewritten more than once or not at all.
fn but_check(words: &Words<'_>, sentiments: &mut [f64]) {
    let Some(but) = (0..words.len()).find(|index| words.lower(*index) == "but") else {
        return;
    };
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

/// Emphasis from up to four `!` and from two or more `?`.
fn punctuation_emphasis(text: &str) -> f64 {
    let (mut exclamations, mut questions) = (0usize, 0usize);
    for byte in text.bytes() {
        match byte {
            b'!' => exclamations += 1,
            b'?' => questions += 1,
            _ => {}
        }
    }
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

/// The compound score and the positive, neutral and negative shares.
fn score_valence(sentiments: &[f64], text: &str) -> Scores {
    if sentiments.is_empty() {
        return Scores::default();
    }
    let mut sum: f64 = sentiments.iter().sum();
    let emphasis = punctuation_emphasis(text);
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
