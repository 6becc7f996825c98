//! The post a plugin works on: the contract's record with its optional fields
//! made plain (empty when absent or not read), plus typed attributes and
//! common questions.

use crate::bindings::exports::tweetpipe::plugin::processor::Post as Wire;
use crate::{Attr, AttrValue, Author, MatchingRule, Metrics, Place};

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
            author: empty_author(),
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

fn empty_author() -> Author {
    Author {
        id: String::new(),
        username: String::new(),
        name: String::new(),
        location: None,
        followers: 0,
        verified: false,
    }
}

const EMPTY_METRICS: Metrics = Metrics {
    retweets: 0,
    likes: 0,
    replies: 0,
    quotes: 0,
};

impl From<Wire> for Post {
    /// The record as it crossed from the host, its `none`s made empty (moves,
    /// never copies).
    fn from(wire: Wire) -> Post {
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
        Post {
            id,
            created_at,
            text: text.unwrap_or_default(),
            lang: lang.unwrap_or_default(),
            author: author.unwrap_or_else(empty_author),
            metrics: metrics.unwrap_or(EMPTY_METRICS),
            hashtags: hashtags.unwrap_or_default(),
            mentions: mentions.unwrap_or_default(),
            cashtags: cashtags.unwrap_or_default(),
            urls: urls.unwrap_or_default(),
            place,
            is_retweet,
            is_reply,
            is_quote,
            has_media,
            in_reply_to_user_id,
            matching_rules: matching_rules.unwrap_or_default(),
            attrs: attrs.unwrap_or_default(),
        }
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
