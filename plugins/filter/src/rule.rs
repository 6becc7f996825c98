//! The X filtered-stream rule language: parsing one rule into an expression
//! tree and checking it against X's validity rules, with errors that point at
//! the column.

use thiserror::Error;

use crate::text::{CharClass, char_class};

/// X's limit on the length of one rule, in characters.
pub const MAX_RULE_CHARS: usize = 1024;

/// A parsed rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expr {
    /// Every part matches (a space between terms).
    And(Vec<Expr>),
    /// At least one part matches (`OR`).
    Or(Vec<Expr>),
    /// The part does not match (`-term`, `-(group)`).
    Not(Box<Expr>),
    /// One operator.
    Term(Term),
}

/// One operator of a rule. Text values are stored lowercased.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Term {
    /// A bare keyword: a tokenised, case-insensitive match in the text.
    Keyword(String),
    /// `"an exact phrase"`: consecutive tokens in the text.
    Phrase(String),
    /// `#hashtag` (without `#`).
    Hashtag(String),
    /// `@username` (without `@`).
    Mention(String),
    /// `$cashtag` (without `$`).
    Cashtag(String),
    /// `from:username` or `from:user_id`.
    From(String),
    /// `to:username` or `to:user_id`: a reply to that user.
    To(String),
    /// `url:value`: a tokenised match in the post's expanded URLs.
    Url(String),
    /// `lang:xx`.
    Lang(String),
    /// `is:...`.
    Is(IsKind),
    /// `has:...`.
    Has(HasKind),
}

/// The `is:` operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IsKind {
    Retweet,
    Reply,
    Quote,
    Verified,
}

/// The `has:` operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HasKind {
    Links,
    Hashtags,
    Mentions,
    Cashtags,
    Media,
    Geo,
}

impl Term {
    /// True for X's standalone operators; false for the conjunction-required
    /// ones (`is:`, `has:`, `lang:`), which cannot make a rule on their own.
    pub fn is_standalone(&self) -> bool {
        !matches!(self, Term::Lang(_) | Term::Is(_) | Term::Has(_))
    }
}

/// Why a rule is invalid, and where (1-based character column).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("column {column}: {kind}")]
pub struct RuleError {
    /// The 1-based character column the problem starts at.
    pub column: usize,
    /// What is wrong.
    pub kind: RuleErrorKind,
}

/// The ways a rule can be invalid.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RuleErrorKind {
    /// The rule has no terms.
    #[error("the rule is empty")]
    Empty,
    /// The rule exceeds [`MAX_RULE_CHARS`].
    #[error("the rule is {length} characters long; X allows at most {MAX_RULE_CHARS}")]
    TooLong { length: usize },
    /// A `(` without its `)`.
    #[error("`(` is never closed")]
    UnclosedGroup,
    /// A `)` without its `(`.
    #[error("`)` has no matching `(`")]
    UnmatchedClose,
    /// `()`.
    #[error("empty parentheses")]
    EmptyGroup,
    /// A `"` without its closing `"`.
    #[error("the quote is never closed")]
    UnclosedQuote,
    /// `""`.
    #[error("empty quotes")]
    EmptyPhrase,
    /// `OR` at the start or end of a group, or twice in a row.
    #[error("`OR` needs a term on both sides")]
    DanglingOr,
    /// `-` not directly followed by a term.
    #[error("`-` must be directly followed by a term (no space), e.g. `-is:retweet`")]
    DanglingMinus,
    /// A keyword with no letters, digits or symbols to match.
    #[error("`{0}` has nothing to match (only punctuation); quote it or remove it")]
    NothingToMatch(String),
    /// An operator X does not have.
    #[error(
        "unknown operator `{0}:` (supported: from:, to:, url:, lang:, is:, has:; quote the term to match it as text)"
    )]
    UnknownOperator(String),
    /// An operator X has but a local evaluation cannot (the post lacks the data).
    #[error("operator `{0}` is not supported by this filter")]
    Unsupported(String),
    /// An operator with a value it does not accept.
    #[error("`{operator}` {problem}")]
    BadValue { operator: String, problem: String },
    /// Every term is negated.
    #[error("a rule cannot consist only of negated terms; add a term the posts must contain")]
    OnlyNegated,
    /// Only `is:`, `has:` and `lang:` operators.
    #[error(
        "`is:`, `has:` and `lang:` must be combined with at least one standalone operator (a keyword, phrase, #hashtag, @mention, $cashtag, from:, to: or url:)"
    )]
    NoStandalone,
}

/// Parses and validates one rule.
pub fn parse(rule: &str) -> Result<Expr, RuleError> {
    let length = rule.chars().count();
    if length > MAX_RULE_CHARS {
        return Err(RuleError {
            column: MAX_RULE_CHARS + 1,
            kind: RuleErrorKind::TooLong { length },
        });
    }
    let tokens = lex(rule)?;
    let mut parser = Parser {
        rule,
        tokens: &tokens,
        next: 0,
    };
    if tokens.is_empty() {
        return Err(parser.error(0, RuleErrorKind::Empty));
    }
    let expr = parser.or_expr()?;
    if let Some(token) = tokens.get(parser.next) {
        // or_expr stops only at `)` or the end.
        return Err(parser.error(token.offset, RuleErrorKind::UnmatchedClose));
    }
    let mut stats = Stats::default();
    stats.walk(&expr, false);
    if stats.positive == 0 {
        let kind = if stats.negative > 0 && stats.positive_conjunction == 0 {
            RuleErrorKind::OnlyNegated
        } else {
            RuleErrorKind::NoStandalone
        };
        return Err(RuleError { column: 1, kind });
    }
    Ok(expr)
}

/// Counts of the terms of a rule, by polarity and kind.
#[derive(Default)]
struct Stats {
    /// Standalone terms not under a negation.
    positive: usize,
    /// Conjunction-required terms not under a negation.
    positive_conjunction: usize,
    /// Terms under a negation.
    negative: usize,
}

impl Stats {
    fn walk(&mut self, expr: &Expr, negated: bool) {
        match expr {
            Expr::And(parts) | Expr::Or(parts) => {
                parts.iter().for_each(|part| self.walk(part, negated));
            }
            Expr::Not(inner) => self.walk(inner, !negated),
            Expr::Term(_) if negated => self.negative += 1,
            Expr::Term(term) if term.is_standalone() => self.positive += 1,
            Expr::Term(_) => self.positive_conjunction += 1,
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum TokenKind<'a> {
    Open,
    Close,
    Or,
    Minus,
    /// A quoted phrase, unescaped.
    Quoted(String),
    /// A bare word (a keyword, `#tag`, `@user`, `$tag` or `op:value`).
    Word(&'a str),
    /// `op:"quoted value"`.
    OperatorQuoted(&'a str, String),
}

#[derive(Debug)]
struct Token<'a> {
    /// Byte offset in the rule.
    offset: usize,
    kind: TokenKind<'a>,
}

fn column(rule: &str, offset: usize) -> usize {
    rule[..offset].chars().count() + 1
}

fn is_word_end(c: char) -> bool {
    c.is_whitespace() || matches!(c, '(' | ')' | '"')
}

/// Reads a quoted string starting at the `"` at `start`; returns the content
/// (with `\"` and `\\` unescaped) and the offset after the closing quote.
fn quoted(rule: &str, start: usize) -> Result<(String, usize), RuleError> {
    let mut content = String::new();
    let mut chars = rule[start + 1..].char_indices();
    while let Some((index, c)) = chars.next() {
        match c {
            '"' => return Ok((content, start + 1 + index + 1)),
            '\\' => match chars.next() {
                Some((_, escaped)) => content.push(escaped),
                None => break,
            },
            other => content.push(other),
        }
    }
    Err(RuleError {
        column: column(rule, start),
        kind: RuleErrorKind::UnclosedQuote,
    })
}

fn lex(rule: &str) -> Result<Vec<Token<'_>>, RuleError> {
    let mut tokens = Vec::new();
    let mut offset = 0;
    while let Some(c) = rule[offset..].chars().next() {
        let start = offset;
        match c {
            c if c.is_whitespace() => offset += c.len_utf8(),
            '(' | ')' => {
                let kind = if c == '(' {
                    TokenKind::Open
                } else {
                    TokenKind::Close
                };
                tokens.push(Token {
                    offset: start,
                    kind,
                });
                offset += 1;
            }
            '"' => {
                let (content, end) = quoted(rule, start)?;
                tokens.push(Token {
                    offset: start,
                    kind: TokenKind::Quoted(content),
                });
                offset = end;
            }
            '-' => {
                let next = rule[start + 1..].chars().next();
                if next.is_none_or(|next| next.is_whitespace() || next == ')') {
                    return Err(RuleError {
                        column: column(rule, start),
                        kind: RuleErrorKind::DanglingMinus,
                    });
                }
                tokens.push(Token {
                    offset: start,
                    kind: TokenKind::Minus,
                });
                offset += 1;
            }
            _ => {
                let end = rule[start..]
                    .find(is_word_end)
                    .map_or(rule.len(), |length| start + length);
                let word = &rule[start..end];
                if word.ends_with(':') && rule[end..].starts_with('"') {
                    let (value, after) = quoted(rule, end)?;
                    tokens.push(Token {
                        offset: start,
                        kind: TokenKind::OperatorQuoted(&word[..word.len() - 1], value),
                    });
                    offset = after;
                } else {
                    let kind = if word == "OR" {
                        TokenKind::Or
                    } else {
                        TokenKind::Word(word)
                    };
                    tokens.push(Token {
                        offset: start,
                        kind,
                    });
                    offset = end;
                }
            }
        }
    }
    Ok(tokens)
}

struct Parser<'r, 't> {
    rule: &'r str,
    tokens: &'t [Token<'r>],
    next: usize,
}

impl Parser<'_, '_> {
    fn error(&self, offset: usize, kind: RuleErrorKind) -> RuleError {
        RuleError {
            column: column(self.rule, offset),
            kind,
        }
    }

    fn peek(&self) -> Option<&Token<'_>> {
        self.tokens.get(self.next)
    }

    /// `and_expr ("OR" and_expr)*`, stopping at `)` or the end.
    fn or_expr(&mut self) -> Result<Expr, RuleError> {
        let mut parts = vec![self.and_expr()?];
        while let Some(token) = self.peek() {
            if token.kind != TokenKind::Or {
                break;
            }
            let offset = token.offset;
            self.next += 1;
            match self.peek() {
                None => return Err(self.error(offset, RuleErrorKind::DanglingOr)),
                Some(token) if matches!(token.kind, TokenKind::Or | TokenKind::Close) => {
                    return Err(self.error(offset, RuleErrorKind::DanglingOr));
                }
                Some(_) => parts.push(self.and_expr()?),
            }
        }
        Ok(if parts.len() == 1 {
            parts.pop().expect("one part")
        } else {
            Expr::Or(parts)
        })
    }

    /// `unary+`, stopping at `OR`, `)` or the end.
    fn and_expr(&mut self) -> Result<Expr, RuleError> {
        let mut parts = Vec::new();
        while let Some(token) = self.peek() {
            match token.kind {
                TokenKind::Or if parts.is_empty() => {
                    return Err(self.error(token.offset, RuleErrorKind::DanglingOr));
                }
                TokenKind::Or | TokenKind::Close => break,
                _ => parts.push(self.unary()?),
            }
        }
        Ok(if parts.len() == 1 {
            parts.pop().expect("one part")
        } else {
            Expr::And(parts)
        })
    }

    fn unary(&mut self) -> Result<Expr, RuleError> {
        let token = &self.tokens[self.next];
        if token.kind == TokenKind::Minus {
            let offset = token.offset;
            self.next += 1;
            match self.peek() {
                Some(next) if !matches!(next.kind, TokenKind::Or | TokenKind::Minus) => {
                    Ok(Expr::Not(Box::new(self.primary()?)))
                }
                _ => Err(self.error(offset, RuleErrorKind::DanglingMinus)),
            }
        } else {
            self.primary()
        }
    }

    fn primary(&mut self) -> Result<Expr, RuleError> {
        let token = &self.tokens[self.next];
        let offset = token.offset;
        self.next += 1;
        match &token.kind {
            TokenKind::Open => {
                match self.peek() {
                    None => return Err(self.error(offset, RuleErrorKind::UnclosedGroup)),
                    Some(next) if next.kind == TokenKind::Close => {
                        return Err(self.error(offset, RuleErrorKind::EmptyGroup));
                    }
                    Some(_) => {}
                }
                let inner = self.or_expr()?;
                match self.peek() {
                    Some(next) if next.kind == TokenKind::Close => {
                        self.next += 1;
                        Ok(inner)
                    }
                    _ => Err(self.error(offset, RuleErrorKind::UnclosedGroup)),
                }
            }
            TokenKind::Close => Err(self.error(offset, RuleErrorKind::UnmatchedClose)),
            TokenKind::Quoted(content) => {
                if content.trim().is_empty() {
                    return Err(self.error(offset, RuleErrorKind::EmptyPhrase));
                }
                self.text_term(offset, content, true)
            }
            TokenKind::Word(word) => self.word(offset, word),
            TokenKind::OperatorQuoted(operator, value) => {
                self.operator(offset, operator, value, true)
            }
            TokenKind::Or | TokenKind::Minus => {
                unreachable!("and_expr and unary never hand OR or - to primary")
            }
        }
    }

    fn text_term(&self, offset: usize, text: &str, phrase: bool) -> Result<Expr, RuleError> {
        if !text.chars().any(|c| char_class(c) != CharClass::Separator) {
            return Err(self.error(offset, RuleErrorKind::NothingToMatch(text.to_owned())));
        }
        let lower: String = text.chars().flat_map(char::to_lowercase).collect();
        Ok(Expr::Term(if phrase {
            Term::Phrase(lower)
        } else {
            Term::Keyword(lower)
        }))
    }

    fn word(&self, offset: usize, word: &str) -> Result<Expr, RuleError> {
        let bad = |problem: &str| {
            self.error(
                offset,
                RuleErrorKind::BadValue {
                    operator: word.to_owned(),
                    problem: problem.to_owned(),
                },
            )
        };
        let entity = |value: &str| {
            !value.is_empty() && value.chars().all(|c| char_class(c) == CharClass::Word)
        };
        if let Some(tag) = word.strip_prefix('#') {
            if !entity(tag) {
                return Err(bad("is not a hashtag (letters, digits and `_` after `#`)"));
            }
            return Ok(Expr::Term(Term::Hashtag(
                tag.chars().flat_map(char::to_lowercase).collect(),
            )));
        }
        if let Some(user) = word.strip_prefix('@') {
            if !is_username(user) {
                return Err(bad(
                    "is not a username (1 to 15 letters, digits or `_` after `@`)",
                ));
            }
            return Ok(Expr::Term(Term::Mention(user.to_ascii_lowercase())));
        }
        if let Some(tag) = word.strip_prefix('$') {
            if !entity(tag) || !tag.starts_with(|c: char| c.is_alphabetic()) {
                return Err(bad(
                    "is not a cashtag (a letter, then letters or digits after `$`)",
                ));
            }
            return Ok(Expr::Term(Term::Cashtag(
                tag.chars().flat_map(char::to_lowercase).collect(),
            )));
        }
        if let Some((operator, value)) = word.split_once(':')
            && !operator.is_empty()
            && operator
                .chars()
                .all(|c| c.is_ascii_alphabetic() || c == '_')
        {
            return self.operator(offset, operator, value, false);
        }
        self.text_term(offset, word, false)
    }

    fn operator(
        &self,
        offset: usize,
        operator: &str,
        value: &str,
        quoted: bool,
    ) -> Result<Expr, RuleError> {
        let bad = |problem: &str| {
            self.error(
                offset,
                RuleErrorKind::BadValue {
                    operator: format!("{operator}:"),
                    problem: problem.to_owned(),
                },
            )
        };
        if value.is_empty() {
            return Err(bad("needs a value right after the colon"));
        }
        if quoted && operator != "url" {
            return Err(bad("takes an unquoted value"));
        }
        let term = match operator {
            "from" | "to" => {
                if !is_username(value) && !value.chars().all(|c| c.is_ascii_digit()) {
                    return Err(bad("takes a username (without `@`) or a numeric user id"));
                }
                let value = value.to_ascii_lowercase();
                if operator == "from" {
                    Term::From(value)
                } else {
                    Term::To(value)
                }
            }
            "url" => {
                if !value.chars().any(|c| char_class(c) != CharClass::Separator) {
                    return Err(bad("has nothing to match"));
                }
                Term::Url(value.chars().flat_map(char::to_lowercase).collect())
            }
            "lang" => {
                let valid = (2..=8).contains(&value.len())
                    && value.chars().all(|c| c.is_ascii_alphabetic() || c == '-')
                    && value.starts_with(|c: char| c.is_ascii_alphabetic());
                if !valid {
                    return Err(bad("takes a BCP 47 language tag such as `en` or `pt`"));
                }
                Term::Lang(value.to_ascii_lowercase())
            }
            "is" => Term::Is(match value {
                "retweet" => IsKind::Retweet,
                "reply" => IsKind::Reply,
                "quote" => IsKind::Quote,
                "verified" => IsKind::Verified,
                "nullcast" => {
                    return Err(self.error(
                        offset,
                        RuleErrorKind::Unsupported(format!("{operator}:{value}")),
                    ));
                }
                _ => return Err(bad("takes one of retweet, reply, quote, verified")),
            }),
            "has" => Term::Has(match value {
                "links" => HasKind::Links,
                "hashtags" => HasKind::Hashtags,
                "mentions" => HasKind::Mentions,
                "cashtags" => HasKind::Cashtags,
                "media" => HasKind::Media,
                "geo" => HasKind::Geo,
                "images" | "videos" | "video_link" => {
                    return Err(self.error(
                        offset,
                        RuleErrorKind::Unsupported(format!("{operator}:{value}")),
                    ));
                }
                _ => {
                    return Err(bad(
                        "takes one of links, hashtags, mentions, cashtags, media, geo",
                    ));
                }
            }),
            "retweets_of"
            | "context"
            | "entity"
            | "conversation_id"
            | "bio"
            | "bio_name"
            | "bio_location"
            | "place"
            | "place_country"
            | "point_radius"
            | "bounding_box"
            | "sample"
            | "in_reply_to_tweet_id"
            | "retweets_of_tweet_id"
            | "quotes_of_tweet_id"
            | "followers_count"
            | "tweets_count"
            | "following_count"
            | "listed_count"
            | "url_title"
            | "url_description"
            | "url_contains"
            | "source"
            | "list" => {
                return Err(self.error(offset, RuleErrorKind::Unsupported(format!("{operator}:"))));
            }
            _ => {
                return Err(self.error(offset, RuleErrorKind::UnknownOperator(operator.to_owned())));
            }
        };
        Ok(Expr::Term(term))
    }
}

/// An X username: 1 to 15 ASCII letters, digits or underscores.
fn is_username(value: &str) -> bool {
    (1..=15).contains(&value.len())
        && value
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kw(word: &str) -> Expr {
        Expr::Term(Term::Keyword(word.to_owned()))
    }

    #[test]
    fn and_binds_tighter_than_or() {
        assert_eq!(
            parse("apple OR iphone ipad").unwrap(),
            Expr::Or(vec![kw("apple"), Expr::And(vec![kw("iphone"), kw("ipad")])])
        );
        assert_eq!(
            parse("(apple OR iphone) ipad").unwrap(),
            Expr::And(vec![Expr::Or(vec![kw("apple"), kw("iphone")]), kw("ipad")])
        );
    }

    #[test]
    fn negation_applies_to_terms_and_groups() {
        assert_eq!(
            parse("skiing -(snow OR day)").unwrap(),
            Expr::And(vec![
                kw("skiing"),
                Expr::Not(Box::new(Expr::Or(vec![kw("snow"), kw("day")])))
            ])
        );
    }

    #[test]
    fn lowercase_or_is_a_keyword() {
        assert_eq!(
            parse("cats or dogs").unwrap(),
            Expr::And(vec![kw("cats"), kw("or"), kw("dogs")])
        );
    }

    #[test]
    fn quoted_values_keep_escaped_quotes() {
        assert_eq!(
            parse(r#""say \"hi\"""#).unwrap(),
            Expr::Term(Term::Phrase("say \"hi\"".to_owned()))
        );
        assert_eq!(
            parse(r#"url:"https://Example.com/A" news"#).unwrap(),
            Expr::And(vec![
                Expr::Term(Term::Url("https://example.com/a".to_owned())),
                kw("news")
            ])
        );
    }

    fn error(rule: &str) -> RuleError {
        parse(rule).expect_err(rule)
    }

    #[test]
    fn errors_point_at_the_column() {
        let cases: &[(&str, usize, RuleErrorKind)] = &[
            ("", 1, RuleErrorKind::Empty),
            ("   ", 1, RuleErrorKind::Empty),
            ("cat (dog", 5, RuleErrorKind::UnclosedGroup),
            ("cat dog)", 8, RuleErrorKind::UnmatchedClose),
            ("cat () dog", 5, RuleErrorKind::EmptyGroup),
            ("cat \"dog", 5, RuleErrorKind::UnclosedQuote),
            ("cat \"\"", 5, RuleErrorKind::EmptyPhrase),
            ("OR cat", 1, RuleErrorKind::DanglingOr),
            ("cat OR", 5, RuleErrorKind::DanglingOr),
            ("cat OR OR dog", 5, RuleErrorKind::DanglingOr),
            ("(cat OR) dog", 6, RuleErrorKind::DanglingOr),
            ("cat - dog", 5, RuleErrorKind::DanglingMinus),
            ("cat -", 5, RuleErrorKind::DanglingMinus),
            ("cat --dog", 5, RuleErrorKind::DanglingMinus),
            (
                "cat foo:bar",
                5,
                RuleErrorKind::UnknownOperator("foo".to_owned()),
            ),
            (
                "cat -is:nullcast",
                6,
                RuleErrorKind::Unsupported("is:nullcast".to_owned()),
            ),
            (
                "cat bio:rust",
                5,
                RuleErrorKind::Unsupported("bio:".to_owned()),
            ),
            ("-cat -dog", 1, RuleErrorKind::OnlyNegated),
            ("-(cat OR dog)", 1, RuleErrorKind::OnlyNegated),
            ("has:media lang:en", 1, RuleErrorKind::NoStandalone),
            ("is:reply -cat", 1, RuleErrorKind::NoStandalone),
            (
                "cat !!!",
                5,
                RuleErrorKind::NothingToMatch("!!!".to_owned()),
            ),
        ];
        for (rule, column, kind) in cases {
            let error = error(rule);
            assert_eq!(
                (error.column, &error.kind),
                (*column, kind),
                "rule {rule:?}"
            );
        }
    }

    #[test]
    fn columns_count_characters_not_bytes() {
        assert_eq!(error("café (dog").column, 6);
    }

    #[test]
    fn bad_operator_values_are_named() {
        for rule in [
            "cat is:sleeping",
            "cat has:",
            "cat lang:english1",
            "cat from:@jack",
            "# cat",
            "cat @",
            "cat $5",
            "cat from:\"jack\"",
        ] {
            let error = error(rule);
            assert!(
                matches!(error.kind, RuleErrorKind::BadValue { .. }),
                "{rule}: {error}"
            );
        }
    }

    #[test]
    fn the_length_limit_is_1024_characters() {
        let ok = "é".repeat(MAX_RULE_CHARS);
        assert!(parse(&ok).is_ok());
        let long = format!("{ok}x");
        assert_eq!(
            error(&long).kind,
            RuleErrorKind::TooLong {
                length: MAX_RULE_CHARS + 1
            }
        );
    }
}
