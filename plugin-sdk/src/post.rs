//! The post a plugin works on: the contract's record read out of its batch
//! into plain owned fields (empty when absent or not read), plus typed
//! attributes and common questions.

use crate::bindings::exports::tweetpipe::plugin::processor::{
    Batch as WireBatch, MatchingRule as WireRule, Post as Wire, Range, Span,
};
use crate::{Attr, AttrValue, Metrics};

/// The author of a post.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Author {
    pub id: String,
    /// The handle, without `@`.
    pub username: String,
    /// The display name.
    pub name: String,
    /// The free-text profile location.
    pub location: Option<String>,
    pub followers: u64,
    pub verified: bool,
}

/// A place a post is tagged with.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Place {
    pub id: String,
    pub full_name: String,
    pub country_code: Option<String>,
}

/// A filtered-stream rule that matched the post on X.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MatchingRule {
    pub id: String,
    pub tag: String,
}

/// A post, normalised from any source.
///
/// Only the field groups the plugin declares in `reads(...)` are filled; the
/// others are empty (`""`, `[]`, `None`, `false`, zero). `Post::default()`
/// is an empty post, handy in tests:
/// `Post { text: "hello".into(), ..Post::default() }`.
#[derive(Debug, Clone, PartialEq)]
pub struct Post {
    /// The post id as X gives it (a decimal string). Always filled.
    pub id: String,
    /// Creation time in milliseconds since the Unix epoch, if known.
    pub created_at: Option<i64>,
    pub text: String,
    /// BCP 47 language tag as detected by X (`und` when unknown).
    pub lang: String,
    pub author: Author,
    /// Public engagement counts at the time the post was read.
    pub metrics: Metrics,
    /// Hashtags without `#`.
    pub hashtags: Vec<String>,
    /// Mentioned usernames without `@`.
    pub mentions: Vec<String>,
    /// Cashtags without `$`.
    pub cashtags: Vec<String>,
    /// Expanded URLs.
    pub urls: Vec<String>,
    pub place: Option<Place>,
    pub is_retweet: bool,
    pub is_reply: bool,
    pub is_quote: bool,
    pub has_media: bool,
    pub in_reply_to_user_id: Option<String>,
    /// The filtered-stream rules that matched the post on X.
    pub matching_rules: Vec<MatchingRule>,
    /// Attributes added by earlier plugins in the chain.
    pub attrs: Vec<Attr>,
}

impl Default for Post {
    fn default() -> Post {
        Post {
            id: String::new(),
            created_at: None,
            text: String::new(),
            lang: String::new(),
            author: Author::default(),
            metrics: EMPTY_METRICS,
            hashtags: Vec::new(),
            mentions: Vec::new(),
            cashtags: Vec::new(),
            urls: Vec::new(),
            place: None,
            is_retweet: false,
            is_reply: false,
            is_quote: false,
            has_media: false,
            in_reply_to_user_id: None,
            matching_rules: Vec::new(),
            attrs: Vec::new(),
        }
    }
}

const EMPTY_METRICS: Metrics = Metrics {
    retweets: 0,
    likes: 0,
    replies: 0,
    quotes: 0,
};

/// A span or range of the batch that lies outside it: the host and the plugin
/// disagree on the contract.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OutOfBatch {
    what: &'static str,
    start: u32,
    len: u32,
    size: usize,
}

impl std::fmt::Display for OutOfBatch {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            formatter,
            "the host sent a post pointing outside its batch ({} {}+{} of {}); \
             the host and this plugin disagree on the plugin contract",
            self.what, self.start, self.len, self.size
        )
    }
}

/// The storage of one batch, which its posts point into.
pub(crate) struct Storage {
    text: String,
    strings: Vec<Span>,
    rules: Vec<WireRule>,
}

impl Storage {
    /// Splits a batch into its storage and its posts.
    pub(crate) fn split(batch: WireBatch) -> (Storage, Vec<Wire>) {
        let WireBatch {
            text,
            strings,
            rules,
            posts,
        } = batch;
        (
            Storage {
                text,
                strings,
                rules,
            },
            posts,
        )
    }

    fn str(&self, span: Span) -> Result<&str, OutOfBatch> {
        let start = span.start as usize;
        start
            .checked_add(span.len as usize)
            .and_then(|end| self.text.get(start..end))
            .ok_or(OutOfBatch {
                what: "text bytes",
                start: span.start,
                len: span.len,
                size: self.text.len(),
            })
    }

    /// Sets `target` to the text at `span`, reusing its allocation.
    fn set(&self, target: &mut String, span: Span) -> Result<(), OutOfBatch> {
        target.clear();
        if span.len != 0 {
            target.push_str(self.str(span)?);
        }
        Ok(())
    }

    /// Sets `target` to the text at `span`, `None` when it is empty.
    fn set_optional(&self, target: &mut Option<String>, span: Span) -> Result<(), OutOfBatch> {
        if span.len == 0 {
            *target = None;
            return Ok(());
        }
        let value = self.str(span)?;
        match target {
            Some(target) => {
                target.clear();
                target.push_str(value);
            }
            None => *target = Some(value.to_owned()),
        }
        Ok(())
    }

    fn items<'a, T>(
        what: &'static str,
        table: &'a [T],
        range: Range,
    ) -> Result<&'a [T], OutOfBatch> {
        let start = range.start as usize;
        start
            .checked_add(range.len as usize)
            .and_then(|end| table.get(start..end))
            .ok_or(OutOfBatch {
                what,
                start: range.start,
                len: range.len,
                size: table.len(),
            })
    }

    /// Sets `target` to the strings of `range`, reusing its allocations.
    fn set_strings(&self, target: &mut Vec<String>, range: Range) -> Result<(), OutOfBatch> {
        if range.len == 0 {
            target.clear();
            return Ok(());
        }
        let spans = Self::items("strings", &self.strings, range)?;
        target.truncate(spans.len());
        for (index, span) in spans.iter().enumerate() {
            match target.get_mut(index) {
                Some(item) => self.set(item, *span)?,
                None => {
                    let mut item = String::new();
                    self.set(&mut item, *span)?;
                    target.push(item);
                }
            }
        }
        Ok(())
    }

    /// The post `wire` points at, in owned fields.
    #[cfg(test)]
    pub(crate) fn post(&self, wire: Wire) -> Result<Post, OutOfBatch> {
        let mut post = Post::default();
        self.fill(wire, &mut post)?;
        Ok(post)
    }

    /// Overwrites every field of `post` with the post `wire` points at,
    /// reusing the allocations `post` already has: one post value serves a
    /// whole batch. After an error `post` is partly overwritten.
    pub(crate) fn fill(&self, wire: Wire, post: &mut Post) -> Result<(), OutOfBatch> {
        let Wire {
            id,
            created_at,
            text,
            lang,
            author,
            metrics,
            hashtags,
            mentions,
            cashtags,
            urls,
            place,
            is_retweet,
            is_reply,
            is_quote,
            has_media,
            in_reply_to_user_id,
            matching_rules,
            attrs,
        } = wire;
        self.set(&mut post.id, id)?;
        post.created_at = created_at;
        self.set(&mut post.text, text)?;
        self.set(&mut post.lang, lang)?;
        let target = &mut post.author;
        match author {
            Some(author) => {
                self.set(&mut target.id, author.id)?;
                self.set(&mut target.username, author.username)?;
                self.set(&mut target.name, author.name)?;
                self.set_optional(&mut target.location, author.location)?;
                target.followers = author.followers;
                target.verified = author.verified;
            }
            None => {
                target.id.clear();
                target.username.clear();
                target.name.clear();
                target.location = None;
                target.followers = 0;
                target.verified = false;
            }
        }
        post.metrics = metrics.unwrap_or(EMPTY_METRICS);
        self.set_strings(&mut post.hashtags, hashtags)?;
        self.set_strings(&mut post.mentions, mentions)?;
        self.set_strings(&mut post.cashtags, cashtags)?;
        self.set_strings(&mut post.urls, urls)?;
        match place {
            Some(place) => {
                let target = post.place.get_or_insert_with(Place::default);
                self.set(&mut target.id, place.id)?;
                self.set(&mut target.full_name, place.full_name)?;
                self.set_optional(&mut target.country_code, place.country_code)?;
            }
            None => post.place = None,
        }
        post.is_retweet = is_retweet;
        post.is_reply = is_reply;
        post.is_quote = is_quote;
        post.has_media = has_media;
        self.set_optional(&mut post.in_reply_to_user_id, in_reply_to_user_id)?;
        if matching_rules.len == 0 {
            post.matching_rules.clear();
        } else {
            let rules = Self::items("rules", &self.rules, matching_rules)?;
            let target = &mut post.matching_rules;
            target.truncate(rules.len());
            for (index, rule) in rules.iter().enumerate() {
                if index == target.len() {
                    target.push(MatchingRule::default());
                }
                self.set(&mut target[index].id, rule.id)?;
                self.set(&mut target[index].tag, rule.tag)?;
            }
        }
        post.attrs = attrs.unwrap_or_default();
        Ok(())
    }
}

impl Post {
    /// The attribute `name`, if an earlier plugin (or this one) set it.
    pub fn attr(&self, name: &str) -> Option<&AttrValue> {
        self.attrs
            .iter()
            .find(|attr| attr.name == name)
            .map(|attr| &attr.value)
    }

    /// Sets (or replaces) the attribute `name`: `post.set_attr("score", 0.4)`.
    pub fn set_attr(&mut self, name: &str, value: impl Into<AttrValue>) {
        let value = value.into();
        match self.attrs.iter_mut().find(|attr| attr.name == name) {
            Some(attr) => attr.value = value,
            None => self.attrs.push(Attr {
                name: name.to_owned(),
                value,
            }),
        }
    }

    /// Removes the attribute `name`; returns its value if it was set.
    pub fn remove_attr(&mut self, name: &str) -> Option<AttrValue> {
        let index = self.attrs.iter().position(|attr| attr.name == name)?;
        Some(self.attrs.remove(index).value)
    }

    /// The attribute `name` as a number (integers are widened).
    pub fn attr_f64(&self, name: &str) -> Option<f64> {
        match self.attr(name)? {
            AttrValue::Float(value) => Some(*value),
            AttrValue::Integer(value) => Some(*value as f64),
            _ => None,
        }
    }

    /// The attribute `name` as an integer: only an integer attribute (a float,
    /// even a whole one, is `None`; read it with `attr_f64`).
    pub fn attr_i64(&self, name: &str) -> Option<i64> {
        match self.attr(name)? {
            AttrValue::Integer(value) => Some(*value),
            _ => None,
        }
    }

    /// The attribute `name` as a string.
    pub fn attr_str(&self, name: &str) -> Option<&str> {
        match self.attr(name)? {
            AttrValue::Text(value) => Some(value),
            _ => None,
        }
    }

    /// The attribute `name` as a boolean.
    pub fn attr_bool(&self, name: &str) -> Option<bool> {
        match self.attr(name)? {
            AttrValue::Boolean(value) => Some(*value),
            _ => None,
        }
    }

    /// The tags of the filtered-stream rules that matched, in order.
    pub fn rule_tags(&self) -> impl Iterator<Item = &str> {
        self.matching_rules.iter().map(|rule| rule.tag.as_str())
    }

    /// True when the post has the hashtag (without `#`, ASCII case-insensitive).
    pub fn has_hashtag(&self, tag: &str) -> bool {
        let tag = tag.trim_start_matches('#');
        self.hashtags
            .iter()
            .any(|hashtag| hashtag.eq_ignore_ascii_case(tag))
    }
}

impl From<bool> for AttrValue {
    fn from(value: bool) -> AttrValue {
        AttrValue::Boolean(value)
    }
}

impl From<i64> for AttrValue {
    fn from(value: i64) -> AttrValue {
        AttrValue::Integer(value)
    }
}

impl From<i32> for AttrValue {
    fn from(value: i32) -> AttrValue {
        AttrValue::Integer(value.into())
    }
}

impl From<u32> for AttrValue {
    fn from(value: u32) -> AttrValue {
        AttrValue::Integer(value.into())
    }
}

impl From<f64> for AttrValue {
    fn from(value: f64) -> AttrValue {
        AttrValue::Float(value)
    }
}

impl From<f32> for AttrValue {
    fn from(value: f32) -> AttrValue {
        AttrValue::Float(value.into())
    }
}

impl From<String> for AttrValue {
    fn from(value: String) -> AttrValue {
        AttrValue::Text(value)
    }
}

impl From<&str> for AttrValue {
    fn from(value: &str) -> AttrValue {
        AttrValue::Text(value.to_owned())
    }
}

impl From<Vec<String>> for AttrValue {
    fn from(value: Vec<String>) -> AttrValue {
        AttrValue::Texts(value)
    }
}

impl From<&[&str]> for AttrValue {
    fn from(value: &[&str]) -> AttrValue {
        AttrValue::Texts(value.iter().map(|item| (*item).to_owned()).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bindings::exports::tweetpipe::plugin::processor::{
        Author as WireAuthor, Outcome, Place as WirePlace,
    };

    const NO_SPAN: Span = Span { start: 0, len: 0 };
    const NO_RANGE: Range = Range { start: 0, len: 0 };

    /// A batch the way the host builds one: every string appended to `text`.
    #[derive(Default)]
    struct Builder {
        text: String,
        strings: Vec<Span>,
        rules: Vec<WireRule>,
    }

    impl Builder {
        fn span(&mut self, value: &str) -> Span {
            let start = self.text.len() as u32;
            self.text.push_str(value);
            Span {
                start,
                len: value.len() as u32,
            }
        }

        fn list(&mut self, values: &[&str]) -> Range {
            let start = self.strings.len() as u32;
            for value in values {
                let span = self.span(value);
                self.strings.push(span);
            }
            Range {
                start,
                len: values.len() as u32,
            }
        }

        fn post(&mut self, id: &str, text: &str) -> Wire {
            Wire {
                id: self.span(id),
                created_at: None,
                text: self.span(text),
                lang: NO_SPAN,
                author: None,
                metrics: None,
                hashtags: NO_RANGE,
                mentions: NO_RANGE,
                cashtags: NO_RANGE,
                urls: NO_RANGE,
                place: None,
                is_retweet: false,
                is_reply: false,
                is_quote: false,
                has_media: false,
                in_reply_to_user_id: NO_SPAN,
                matching_rules: NO_RANGE,
                attrs: None,
            }
        }

        fn finish(self, posts: Vec<Wire>) -> WireBatch {
            WireBatch {
                text: self.text,
                strings: self.strings,
                rules: self.rules,
                posts,
            }
        }
    }

    #[test]
    fn typed_attribute_readers_take_only_their_type() {
        let mut post = Post::default();
        post.set_attr("words", 31_i64);
        post.set_attr("score", 2.0);
        post.set_attr("label", "x");
        assert_eq!(post.attr_i64("words"), Some(31));
        assert_eq!(post.attr_f64("words"), Some(31.0));
        assert_eq!(post.attr_i64("score"), None, "a float is not an integer");
        assert_eq!(post.attr_i64("label"), None);
        assert_eq!(post.attr_i64("missing"), None);
    }

    #[test]
    fn posts_read_out_of_their_batch_with_every_field() {
        let mut builder = Builder::default();
        let mut first = builder.post("1", "héllo @ana #rust");
        first.lang = builder.span("pt");
        first.author = Some(WireAuthor {
            id: builder.span("42"),
            username: builder.span("ana"),
            name: builder.span("Ana Ñ"),
            location: NO_SPAN,
            followers: 9,
            verified: true,
        });
        first.hashtags = builder.list(&["rust", "wasm"]);
        first.mentions = builder.list(&["ana"]);
        first.in_reply_to_user_id = builder.span("43");
        let rule = WireRule {
            id: builder.span("7"),
            tag: builder.span("music"),
        };
        builder.rules.push(rule);
        first.matching_rules = Range { start: 0, len: 1 };
        let second = builder.post("2", "");
        let (storage, wires) = Storage::split(builder.finish(vec![first, second]));
        let posts: Vec<Post> = wires
            .into_iter()
            .map(|wire| storage.post(wire).unwrap())
            .collect();

        let expected = Post {
            id: "1".to_owned(),
            text: "héllo @ana #rust".to_owned(),
            lang: "pt".to_owned(),
            author: Author {
                id: "42".to_owned(),
                username: "ana".to_owned(),
                name: "Ana Ñ".to_owned(),
                location: None,
                followers: 9,
                verified: true,
            },
            hashtags: vec!["rust".to_owned(), "wasm".to_owned()],
            mentions: vec!["ana".to_owned()],
            in_reply_to_user_id: Some("43".to_owned()),
            matching_rules: vec![MatchingRule {
                id: "7".to_owned(),
                tag: "music".to_owned(),
            }],
            ..Post::default()
        };
        assert_eq!(posts[0], expected);
        assert_eq!(
            posts[1],
            Post {
                id: "2".to_owned(),
                ..Post::default()
            }
        );
    }

    /// Three posts that each leave less set than the one before.
    fn shrinking_batch() -> WireBatch {
        let mut builder = Builder::default();
        let mut first = builder.post("1", "a long first text");
        first.lang = builder.span("en");
        first.author = Some(WireAuthor {
            id: builder.span("42"),
            username: builder.span("ana"),
            name: builder.span("Ana"),
            location: builder.span("Lisboa"),
            followers: 9,
            verified: true,
        });
        first.hashtags = builder.list(&["one", "two", "three"]);
        first.place = Some(WirePlace {
            id: builder.span("p"),
            full_name: builder.span("Lisboa, Portugal"),
            country_code: builder.span("PT"),
        });
        first.in_reply_to_user_id = builder.span("43");
        for tag in ["music", "news"] {
            let rule = WireRule {
                id: builder.span("7"),
                tag: builder.span(tag),
            };
            builder.rules.push(rule);
        }
        first.matching_rules = Range { start: 0, len: 2 };
        first.is_quote = true;
        let mut second = builder.post("2", "short");
        second.hashtags = builder.list(&["x"]);
        second.matching_rules = Range { start: 1, len: 1 };
        second.place = Some(WirePlace {
            id: builder.span("q"),
            full_name: builder.span("Porto"),
            country_code: NO_SPAN,
        });
        let third = builder.post("3", "");
        builder.finish(vec![first, second, third])
    }

    #[test]
    fn a_post_refilled_for_the_next_one_keeps_nothing_of_it() {
        let seen = std::cell::RefCell::new(Vec::new());
        crate::__private::run_filter(shrinking_batch(), "keep", |post: &Post| {
            seen.borrow_mut().push(post.clone());
            true
        });
        let (storage, wires) = Storage::split(shrinking_batch());
        let fresh: Vec<Post> = wires
            .into_iter()
            .map(|wire| storage.post(wire).unwrap())
            .collect();
        assert_eq!(seen.into_inner(), fresh);
        assert_eq!(fresh[1].hashtags, ["x"]);
        assert_eq!(fresh[1].place.as_ref().unwrap().country_code, None);
        assert_eq!(fresh[2].place, None);
    }

    #[test]
    fn a_post_pointing_outside_its_batch_fails_alone_and_says_why() {
        let mut builder = Builder::default();
        let good = builder.post("1", "fine");
        let mut past_the_end = builder.post("2", "x");
        past_the_end.text = Span { start: 3, len: 100 };
        let mut mid_character = builder.post("3", "é");
        mid_character.text.len = 1;
        let mut bad_list = builder.post("4", "y");
        bad_list.urls = Range { start: 5, len: 1 };
        let batch = builder.finish(vec![good, past_the_end, mid_character, bad_list]);
        let outcomes = crate::__private::run_filter(batch, "keep", |_post: &Post| true);
        assert_eq!(outcomes[0], Outcome::Keep(None));
        for outcome in &outcomes[1..] {
            match outcome {
                Outcome::Fail(message) => assert!(
                    message.contains("outside its batch") && message.contains("contract"),
                    "{message}"
                ),
                other => panic!("expected a failure, got {other:?}"),
            }
        }
    }
}
