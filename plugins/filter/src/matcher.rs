//! Rules compiled once for fast matching: every keyword and phrase token gets
//! a number, so a post's text is tokenised once and each keyword test is a bit
//! lookup, whatever the number of rules; and each rule is filed under
//! triggers (a token, an entity, ...) one of which a post must have to match
//! it, so a post evaluates only the few rules it can match.

use std::collections::HashMap;

use serde::Deserialize;
use thiserror::Error;
use tweetpipe_plugin::Post;

use crate::rule::{self, Expr, HasKind, IsKind, RuleError, Term};
use crate::text::{
    BuildTokenHasher, RawToken, TokenSink, eq_lower, raw_tokens, token_list, tokens,
};

/// One entry of `config.rules`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// The rule, in X's filtered-stream rule language.
    pub value: String,
    /// The name reported in `matched_rules`; the rule itself when absent.
    #[serde(default)]
    pub tag: Option<String>,
}

/// The plugin's `config` table.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FilterConfig {
    /// The rules; a post is kept when at least one matches.
    pub rules: Vec<RuleConfig>,
}

/// Why the filter's configuration is rejected.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FilterError {
    /// `config.rules` is empty.
    #[error(
        "config.rules is empty: add at least one rule, e.g. rules = [{{ value = \"covid lang:en\", tag = \"covid\" }}]"
    )]
    NoRules,
    /// One rule is invalid.
    #[error("config.rules[{index}] ({label}): {error}\n    {value}\n    {caret:>width$}", caret = "^", width = error.column)]
    Rule {
        /// The rule's position in `config.rules` (0-based).
        index: usize,
        /// `tag "..."`, or `no tag`.
        label: String,
        /// The rule as written.
        value: String,
        /// What is wrong and where.
        error: RuleError,
    },
}

/// A rule tree whose text terms are token numbers.
#[derive(Debug)]
enum Node {
    And(Vec<Node>),
    Or(Vec<Node>),
    Not(Box<Node>),
    /// A keyword of one token.
    Token(u32),
    /// Consecutive tokens (a phrase, or a keyword such as `e-mail`).
    Tokens(Box<[u32]>),
    Hashtag(String),
    Mention(String),
    Cashtag(String),
    From(String),
    To(String),
    /// The value's tokens joined and framed by `\0`, searched in a URL's
    /// tokens framed the same way.
    Url(String),
    Lang(String),
    Is(IsKind),
    Has(HasKind),
}

#[derive(Debug)]
struct CompiledRule {
    tag: String,
    node: Node,
}

/// The compiled rules of one filter instance.
#[derive(Debug)]
pub struct RuleSet {
    rules: Vec<CompiledRule>,
    /// Every distinct token of every keyword and phrase.
    vocabulary: HashMap<Box<str>, u32, BuildTokenHasher>,
    /// A Bloom filter of the vocabulary keyed by first byte, last byte and
    /// length (see [`filter_bit`]): most text tokens are ruled out with one
    /// bit test.
    token_filter: [u64; FILTER_WORDS],
    /// The vocabulary by filter bit, for the tokens that pass: `slots[bit]`
    /// is the first of `entries` with that bit ([`NONE`] if none), and the
    /// entries with the same bit are chained by `next`. A token is found
    /// with a compare or two and no hashing.
    slots: Box<[u32]>,
    entries: Vec<VocabularyEntry>,
    needs_text: bool,
    /// Words per rule set (one bit per rule, in rule order).
    rule_words: usize,
    /// The rules evaluated for every post: no cheap test rules them out.
    always: Vec<u64>,
    /// `rule_words` words per vocabulary token: the rules that token makes
    /// worth evaluating.
    token_rules: Vec<u64>,
    /// The rules hashtags, mentions, cashtags and the author (`from:`) make
    /// worth evaluating.
    hashtag_rules: TermIndex,
    mention_rules: TermIndex,
    cashtag_rules: TermIndex,
    author_rules: TermIndex,
    /// The rules only a post with URLs, or a reply, can match.
    url_rules: Vec<u64>,
    reply_rules: Vec<u64>,
}

/// Rules filed by the first and last bytes of the (lowercase) term they
/// need, for a post's entities: [`TermIndex::add`] gives the rules of every
/// term in an entity's bucket, a superset of those it can satisfy. No
/// lowercased copy, hashing or comparison per entity; a shared bucket only
/// costs an evaluation.
#[derive(Debug, Default)]
struct TermIndex {
    /// `rule_words` words per bucket; empty when no rule has such a term.
    rules: Vec<u64>,
}

const TERM_BUCKETS: usize = 256;

impl TermIndex {
    fn file(&mut self, term: &str, rule: usize, words: usize) {
        if self.rules.is_empty() {
            self.rules = vec![0; TERM_BUCKETS * words];
        }
        let start = term_bucket(term) * words;
        set_bit(&mut self.rules[start..start + words], rule);
    }

    /// Adds the rules `value`'s bucket holds to `candidates`. A term a rule
    /// tests with `eq_lower(value, term)` is `value` lowercased, so it has the
    /// first and last bytes of the lowercased value. `lower` is a buffer for
    /// lowercasing values that start or end with a non-ASCII character.
    #[inline]
    fn add(&self, value: &str, lower: &mut String, candidates: &mut [u64]) {
        if self.rules.is_empty() || value.is_empty() {
            return;
        }
        let bytes = value.as_bytes();
        let (first, last) = (bytes[0], bytes[bytes.len() - 1]);
        let bucket = if first.is_ascii() && last.is_ascii() {
            // Lowercasing maps each character on its own, and ASCII ones
            // to ASCII: the ends of the lowercased value are these, lowercased.
            bucket_of(first.to_ascii_lowercase(), last.to_ascii_lowercase())
        } else {
            lower.clear();
            lower.extend(value.chars().flat_map(char::to_lowercase));
            term_bucket(lower)
        };
        let words = candidates.len();
        or_into(
            candidates,
            &self.rules[bucket * words..(bucket + 1) * words],
        );
    }
}

/// The [`TermIndex`] bucket of a lowercase term (never empty).
fn term_bucket(term: &str) -> usize {
    let bytes = term.as_bytes();
    bucket_of(bytes[0], bytes[bytes.len() - 1])
}

/// The bucket of a term by its first and last bytes. Not its length: a
/// non-ASCII character can lowercase to another number of bytes, and the
/// value would have to be scanned for them.
fn bucket_of(first: u8, last: u8) -> usize {
    filter_bit(first, last, 0) % TERM_BUCKETS
}

/// One token of [`RuleSet::slots`].
#[derive(Debug)]
struct VocabularyEntry {
    token: Box<str>,
    id: u32,
    next: u32,
}

const NONE: u32 = u32::MAX;

/// Something a post must have for a rule to possibly match, found without
/// evaluating the rule: a rule is evaluated only for posts that have one of
/// its triggers.
#[derive(Debug, Clone)]
enum Trigger {
    Token(u32),
    Hashtag(String),
    Mention(String),
    Cashtag(String),
    /// The author's id or username.
    From(String),
    /// At least one URL.
    Urls,
    /// The post is a reply.
    Reply,
}

impl Trigger {
    /// True for the triggers most posts have, the last choice for an AND.
    fn is_common(&self) -> bool {
        matches!(self, Trigger::Urls | Trigger::Reply)
    }
}

/// Triggers of which a post must have at least one for `node` to match, or
/// `None` when there is no such set (a negation, `from:`, `lang:`, ...).
fn triggers(node: &Node) -> Option<Vec<Trigger>> {
    match node {
        Node::Token(id) => Some(vec![Trigger::Token(*id)]),
        // Every token is needed; one is enough to look for.
        Node::Tokens(ids) => ids.first().map(|id| vec![Trigger::Token(*id)]),
        Node::Hashtag(tag) => Some(vec![Trigger::Hashtag(tag.clone())]),
        Node::Mention(user) => Some(vec![Trigger::Mention(user.clone())]),
        Node::Cashtag(tag) => Some(vec![Trigger::Cashtag(tag.clone())]),
        Node::From(user) => Some(vec![Trigger::From(user.clone())]),
        Node::Url(_) => Some(vec![Trigger::Urls]),
        Node::To(_) => Some(vec![Trigger::Reply]),
        Node::Not(_) | Node::Lang(_) | Node::Is(_) | Node::Has(_) => None,
        // Any part's triggers will do: the most specific, then the fewest.
        Node::And(parts) => parts
            .iter()
            .filter_map(triggers)
            .min_by_key(|set| (set.iter().any(Trigger::is_common), set.len())),
        Node::Or(parts) => parts
            .iter()
            .map(triggers)
            .collect::<Option<Vec<_>>>()
            .map(|sets| sets.concat()),
    }
}

/// A rough evaluation cost, to test the cheap parts of an AND or OR first
/// (the result does not depend on the order).
fn cost(node: &Node) -> u32 {
    match node {
        Node::Lang(_) | Node::Is(_) | Node::Has(_) => 1,
        Node::Token(_) => 2,
        Node::Tokens(_) => 4,
        Node::Hashtag(_) | Node::Mention(_) | Node::Cashtag(_) | Node::From(_) => 6,
        Node::To(_) => 8,
        Node::Url(_) => 16,
        Node::Not(inner) => cost(inner),
        Node::And(parts) | Node::Or(parts) => parts.iter().map(cost).sum(),
    }
}

/// True when `ids` are consecutive tokens of the text: consecutive entries of
/// `known` (the text's vocabulary tokens, with their positions) with
/// consecutive positions.
fn consecutive(known: &[(u32, u32)], ids: &[u32]) -> bool {
    known.windows(ids.len()).any(|window| {
        let first = window[0].0;
        window
            .iter()
            .zip(ids)
            .zip(0u32..)
            .all(|((&(position, id), want), offset)| {
                id == *want && position == first.wrapping_add(offset)
            })
    })
}

const FILTER_WORDS: usize = 64;

/// The bit of a (lowercase) token in [`RuleSet::token_filter`]: a hash of its
/// first and last bytes and its length in bytes.
fn filter_bit(first: u8, last: u8, length: usize) -> usize {
    let key = u32::from(first) | u32::from(last) << 8 | (length.min(255) as u32) << 16;
    (key.wrapping_mul(0x9E37_79B1) >> 20) as usize % (FILTER_WORDS * 64)
}

fn has_bit(bits: &[u64], index: usize) -> bool {
    bits[index / 64] & (1 << (index % 64)) != 0
}

fn set_bit(bits: &mut [u64], index: usize) {
    bits[index / 64] |= 1 << (index % 64);
}

fn or_into(target: &mut [u64], bits: &[u64]) {
    for (target, bits) in target.iter_mut().zip(bits) {
        *target |= bits;
    }
}

/// Per-instance buffers reused for every post, so matching does not allocate
/// once they have grown to the size of the longest post.
#[derive(Debug, Default)]
pub struct Scratch {
    word: String,
    /// The text's vocabulary tokens in order: (position among all the text's
    /// tokens, token number).
    known: Vec<(u32, u32)>,
    /// One bit per vocabulary token: present in the text.
    present: Vec<u64>,
    /// A URL's tokens framed by `\0`.
    url: String,
    /// One bit per rule: worth evaluating for this post.
    candidates: Vec<u64>,
    /// An entity being lowercased.
    lower: String,
}

impl RuleSet {
    /// Parses and compiles the rules of a configuration.
    pub fn new(rules: &[RuleConfig]) -> Result<RuleSet, FilterError> {
        if rules.is_empty() {
            return Err(FilterError::NoRules);
        }
        let mut set = RuleSet {
            rules: Vec::with_capacity(rules.len()),
            vocabulary: HashMap::default(),
            token_filter: [0; FILTER_WORDS],
            slots: vec![NONE; FILTER_WORDS * 64].into(),
            entries: Vec::new(),
            needs_text: false,
            rule_words: rules.len().div_ceil(64),
            always: Vec::new(),
            token_rules: Vec::new(),
            hashtag_rules: TermIndex::default(),
            mention_rules: TermIndex::default(),
            cashtag_rules: TermIndex::default(),
            author_rules: TermIndex::default(),
            url_rules: Vec::new(),
            reply_rules: Vec::new(),
        };
        for (index, config) in rules.iter().enumerate() {
            let expr = rule::parse(&config.value).map_err(|error| FilterError::Rule {
                index,
                label: match &config.tag {
                    Some(tag) => format!("tag {tag:?}"),
                    None => "no tag".to_owned(),
                },
                value: config.value.clone(),
                error,
            })?;
            let node = set.compile(expr);
            set.rules.push(CompiledRule {
                tag: config.tag.clone().unwrap_or_else(|| config.value.clone()),
                node,
            });
        }
        for (token, &id) in &set.vocabulary {
            let bytes = token.as_bytes();
            let bit = filter_bit(bytes[0], bytes[bytes.len() - 1], bytes.len());
            set_bit(&mut set.token_filter, bit);
            let index = u32::try_from(set.entries.len()).expect("fewer than 2^32 tokens");
            set.entries.push(VocabularyEntry {
                token: token.clone(),
                id,
                next: set.slots[bit],
            });
            set.slots[bit] = index;
        }
        set.index_triggers();
        Ok(set)
    }

    /// Files every rule under its triggers (or as always evaluated).
    fn index_triggers(&mut self) {
        let words = self.rule_words;
        let empty = || vec![0; words];
        self.always = empty();
        self.url_rules = empty();
        self.reply_rules = empty();
        self.token_rules = vec![0; self.vocabulary.len() * words];
        for (index, rule) in self.rules.iter().enumerate() {
            let Some(triggers) = triggers(&rule.node) else {
                set_bit(&mut self.always, index);
                continue;
            };
            for trigger in triggers {
                let bits = match trigger {
                    Trigger::Token(id) => {
                        let start = id as usize * words;
                        &mut self.token_rules[start..start + words]
                    }
                    Trigger::Hashtag(tag) => {
                        self.hashtag_rules.file(&tag, index, words);
                        continue;
                    }
                    Trigger::Mention(user) => {
                        self.mention_rules.file(&user, index, words);
                        continue;
                    }
                    Trigger::Cashtag(tag) => {
                        self.cashtag_rules.file(&tag, index, words);
                        continue;
                    }
                    Trigger::From(user) => {
                        self.author_rules.file(&user, index, words);
                        continue;
                    }
                    Trigger::Urls => &mut self.url_rules,
                    Trigger::Reply => &mut self.reply_rules,
                };
                set_bit(bits, index);
            }
        }
    }

    /// The number of rules.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// True when there are no rules (never, once built).
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    fn token_id(&mut self, token: String) -> u32 {
        let next = u32::try_from(self.vocabulary.len()).expect("fewer than 2^32 tokens");
        *self.vocabulary.entry(token.into()).or_insert(next)
    }

    /// The parts of an AND or OR, cheapest first.
    fn compile_parts(&mut self, parts: Vec<Expr>) -> Vec<Node> {
        let mut nodes: Vec<Node> = parts.into_iter().map(|part| self.compile(part)).collect();
        nodes.sort_by_key(cost);
        nodes
    }

    fn compile(&mut self, expr: Expr) -> Node {
        match expr {
            Expr::And(parts) => Node::And(self.compile_parts(parts)),
            Expr::Or(parts) => Node::Or(self.compile_parts(parts)),
            Expr::Not(inner) => Node::Not(Box::new(self.compile(*inner))),
            Expr::Term(term) => match term {
                Term::Keyword(text) | Term::Phrase(text) => {
                    self.needs_text = true;
                    let ids: Vec<u32> = token_list(&text)
                        .into_iter()
                        .map(|token| self.token_id(token))
                        .collect();
                    match ids.as_slice() {
                        [id] => Node::Token(*id),
                        _ => Node::Tokens(ids.into()),
                    }
                }
                Term::To(user) => {
                    self.needs_text = true;
                    Node::To(user)
                }
                Term::Url(value) => {
                    let mut framed = String::from("\0");
                    for token in token_list(&value) {
                        framed.push_str(&token);
                        framed.push('\0');
                    }
                    Node::Url(framed)
                }
                Term::Hashtag(tag) => Node::Hashtag(tag),
                Term::Mention(user) => Node::Mention(user),
                Term::Cashtag(tag) => Node::Cashtag(tag),
                Term::From(user) => Node::From(user),
                Term::Lang(lang) => Node::Lang(lang),
                Term::Is(kind) => Node::Is(kind),
                Term::Has(kind) => Node::Has(kind),
            },
        }
    }

    /// Calls `on_match` with the tag of every rule `post` matches, in rule
    /// order; returns how many matched.
    pub fn matches<'r>(
        &'r self,
        post: &Post,
        scratch: &mut Scratch,
        mut on_match: impl FnMut(&'r str),
    ) -> usize {
        let words = self.rule_words;
        scratch.candidates.clear();
        scratch.candidates.extend_from_slice(&self.always);
        if self.needs_text {
            self.index_text(&post.text, scratch);
        }
        let Scratch {
            candidates, lower, ..
        } = scratch;
        for (values, rules) in [
            (&post.hashtags, &self.hashtag_rules),
            (&post.mentions, &self.mention_rules),
            (&post.cashtags, &self.cashtag_rules),
        ] {
            for value in values {
                rules.add(value, lower, candidates);
            }
        }
        // `from:` matches the exact id (lowercase like the term, or it
        // differs) or the username lowercased.
        self.author_rules.add(&post.author.id, lower, candidates);
        self.author_rules
            .add(&post.author.username, lower, candidates);
        if !post.urls.is_empty() {
            or_into(candidates, &self.url_rules);
        }
        if post.is_reply {
            or_into(candidates, &self.reply_rules);
        }
        let mut matched = 0;
        for word in 0..words {
            let mut bits = scratch.candidates[word];
            while bits != 0 {
                let index = word * 64 + bits.trailing_zeros() as usize;
                bits &= bits - 1;
                let rule = &self.rules[index];
                if eval(&rule.node, post, scratch) {
                    matched += 1;
                    on_match(&rule.tag);
                }
            }
        }
        if self.needs_text {
            for &(_, id) in &scratch.known {
                scratch.present[id as usize / 64] = 0;
            }
        }
        matched
    }

    /// The number of `token`, whose filter bit is `bit`, if it is in the
    /// vocabulary.
    fn find(&self, token: RawToken<'_>, bit: usize) -> Option<u32> {
        let mut next = self.slots[bit];
        while next != NONE {
            let entry = &self.entries[next as usize];
            // Vocabulary tokens are lowercase: an ASCII token with capitals
            // lowercases to one exactly when it equals it but for ASCII case.
            let same = if token.capitals {
                token.text.eq_ignore_ascii_case(&entry.token)
            } else {
                token.text == &*entry.token
            };
            if same {
                return Some(entry.id);
            }
            next = entry.next;
        }
        None
    }

    /// Tokenises the text once: the vocabulary tokens in order and the set
    /// of tokens present.
    fn index_text(&self, text: &str, scratch: &mut Scratch) {
        let words = self.vocabulary.len().div_ceil(64);
        if scratch.present.len() < words {
            scratch.present.resize(words, 0);
        }
        let Scratch {
            word,
            known,
            present,
            candidates,
            ..
        } = scratch;
        known.clear();
        raw_tokens(
            text,
            word,
            &mut TextIndex {
                set: self,
                position: 0,
                known,
                present,
                candidates,
            },
        );
    }
}

/// The [`TokenSink`] of [`RuleSet::index_text`].
struct TextIndex<'a> {
    set: &'a RuleSet,
    /// The next token's position among all the text's tokens.
    position: u32,
    known: &'a mut Vec<(u32, u32)>,
    present: &'a mut [u64],
    candidates: &'a mut [u64],
}

impl TokenSink for TextIndex<'_> {
    // Inlined into the scan: most tokens stop at the filter test.
    #[inline(always)]
    fn token(&mut self, token: RawToken<'_>) {
        let at = self.position;
        self.position = self.position.wrapping_add(1);
        let (first, last) = token.ends();
        let bit = filter_bit(first, last, token.text.len());
        if has_bit(&self.set.token_filter, bit) {
            self.candidate(token, bit, at);
        }
    }
}

impl TextIndex<'_> {
    /// Records `token` if it is in the vocabulary.
    #[inline(never)]
    fn candidate(&mut self, token: RawToken<'_>, bit: usize, at: u32) {
        let Some(id) = self.set.find(token, bit) else {
            return;
        };
        self.known.push((at, id));
        let slot = &mut self.present[id as usize / 64];
        let bit = 1 << (id % 64);
        if *slot & bit == 0 {
            *slot |= bit;
            let words = self.set.rule_words;
            let start = id as usize * words;
            or_into(self.candidates, &self.set.token_rules[start..start + words]);
        }
    }
}

fn eval(node: &Node, post: &Post, scratch: &mut Scratch) -> bool {
    match node {
        Node::And(parts) => parts.iter().all(|part| term(part, post, scratch)),
        Node::Or(parts) => parts.iter().any(|part| term(part, post, scratch)),
        _ => term(node, post, scratch),
    }
}

/// One node's value, with terms (and negated terms) evaluated in place: only
/// groups cost a call to [`eval`], most rules being a group of terms.
#[inline(always)]
fn term(node: &Node, post: &Post, scratch: &mut Scratch) -> bool {
    match node {
        Node::And(_) | Node::Or(_) => eval(node, post, scratch),
        Node::Not(inner) => !match &**inner {
            Node::And(_) | Node::Or(_) | Node::Not(_) => eval(inner, post, scratch),
            leaf => term(leaf, post, scratch),
        },
        Node::Token(id) => scratch.present[*id as usize / 64] & (1 << (id % 64)) != 0,
        Node::Tokens(ids) => {
            ids.iter()
                .all(|id| scratch.present[*id as usize / 64] & (1 << (id % 64)) != 0)
                && consecutive(&scratch.known, ids)
        }
        Node::Hashtag(tag) => post.hashtags.iter().any(|value| eq_lower(value, tag)),
        Node::Mention(user) => post.mentions.iter().any(|value| eq_lower(value, user)),
        Node::Cashtag(tag) => post.cashtags.iter().any(|value| eq_lower(value, tag)),
        Node::From(user) => post.author.id == *user || eq_lower(&post.author.username, user),
        Node::To(user) => to(user, post),
        Node::Url(framed) => url(framed, post, scratch),
        Node::Lang(lang) => post.lang.eq_ignore_ascii_case(lang),
        Node::Is(kind) => match kind {
            IsKind::Retweet => post.is_retweet,
            IsKind::Reply => post.is_reply,
            IsKind::Quote => post.is_quote,
            IsKind::Verified => post.author.verified,
        },
        Node::Has(kind) => match kind {
            // X: "posts which contain links and media in the post body".
            HasKind::Links => !post.urls.is_empty() || post.has_media,
            HasKind::Hashtags => !post.hashtags.is_empty(),
            HasKind::Mentions => !post.mentions.is_empty(),
            HasKind::Cashtags => !post.cashtags.is_empty(),
            HasKind::Media => post.has_media,
            HasKind::Geo => post.place.is_some(),
        },
    }
}

/// `to:user`: a reply to that user (by id, or by the handles it starts with).
fn to(user: &str, post: &Post) -> bool {
    post.is_reply
        && (post.in_reply_to_user_id.as_deref() == Some(user)
            || leading_handles(&post.text).any(|handle| eq_lower(handle, user)))
}

/// `url:`: the value's tokens, `\0`-framed, among a URL's.
fn url(framed: &str, post: &Post, scratch: &mut Scratch) -> bool {
    post.urls.iter().any(|url| {
        let Scratch {
            word, url: buffer, ..
        } = scratch;
        buffer.clear();
        buffer.push('\0');
        tokens(url, word, |token| {
            buffer.push_str(token);
            buffer.push('\0');
        });
        // A plain search: URLs and values are short, and str::contains
        // spends more setting up its two-way searcher than searching.
        let needle = framed.as_bytes();
        buffer
            .as_bytes()
            .windows(needle.len())
            .any(|window| window[0] == needle[0] && window == needle)
    })
}

/// The `@handles` a reply's text starts with: the users it answers.
pub(crate) fn leading_handles(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || {
        let trimmed = rest.trim_start();
        let after = trimmed.strip_prefix('@')?;
        let end = after
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(after.len());
        if end == 0 {
            return None;
        }
        rest = &after[end..];
        Some(&after[..end])
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leading_handles_stop_at_the_first_word() {
        let handles: Vec<&str> = leading_handles("  @alice @bob_2 hi @carol").collect();
        assert_eq!(handles, ["alice", "bob_2"]);
        assert_eq!(leading_handles("hi @alice").count(), 0);
    }

    #[test]
    fn config_errors_show_the_rule_with_a_caret() {
        let error = RuleSet::new(&[RuleConfig {
            value: "covid has:foo".to_owned(),
            tag: Some("c".to_owned()),
        }])
        .unwrap_err();
        let message = error.to_string();
        assert!(
            message.starts_with("config.rules[0] (tag \"c\"): column 7: `has:` takes one of"),
            "{message}"
        );
        assert!(
            message.ends_with("\n    covid has:foo\n          ^"),
            "{message:?}"
        );
        assert_eq!(RuleSet::new(&[]).unwrap_err(), FilterError::NoRules);
    }

    #[test]
    fn vocabulary_tokens_sharing_a_filter_bit_are_all_found() {
        let words: Vec<String> = (0..2_000).map(|n| format!("w{n}x")).collect();
        let rules: Vec<RuleConfig> = words
            .chunks(50)
            .map(|chunk| RuleConfig {
                value: chunk.join(" OR "),
                tag: None,
            })
            .collect();
        let set = RuleSet::new(&rules).unwrap();
        let chained = set
            .entries
            .iter()
            .filter(|entry| entry.next != NONE)
            .count();
        assert!(chained > 100, "only {chained} filter bits are shared");
        let mut scratch = Scratch::default();
        for word in &words {
            for text in [word.clone(), word.to_uppercase(), format!("a {word}, b")] {
                let post = Post {
                    text,
                    ..crate::conformance::empty_post()
                };
                assert_eq!(set.matches(&post, &mut scratch, |_| {}), 1, "{word}");
            }
        }
        let post = Post {
            text: "w1y w2000x wx W20001X".to_owned(),
            ..crate::conformance::empty_post()
        };
        assert_eq!(set.matches(&post, &mut scratch, |_| {}), 0);
    }

    #[test]
    fn the_bitset_is_clean_between_posts() {
        let set = RuleSet::new(&[RuleConfig {
            value: "alpha".to_owned(),
            tag: None,
        }])
        .unwrap();
        let mut scratch = Scratch::default();
        let post = |text: &str| Post {
            text: text.to_owned(),
            ..crate::conformance::empty_post()
        };
        assert_eq!(set.matches(&post("ALPHA beta"), &mut scratch, |_| {}), 1);
        assert_eq!(set.matches(&post("beta"), &mut scratch, |_| {}), 0);
        assert!(scratch.present.iter().all(|word| *word == 0));
    }
}
