//! The one typed post every stage works on, whatever source or API shape it came from.
//!
//! Sources hand over raw JSON; [`decode`] normalises X API v2 filtered-stream
//! messages (`data` + `includes` + `matching_rules`) and v1.1 status objects into a
//! [`Post`]. Plugins read and annotate posts; sinks turn them into rows.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

mod decode;

pub use decode::{DecodeError, decode, decode_shared};

/// A post normalised from any supported source shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Post {
    /// The post id as X gives it (a decimal string).
    pub id: String,
    /// When the post was created, if the source said.
    pub created_at: Option<DateTime<Utc>>,
    /// The full text (v1.1 `extended_tweet.full_text` when present).
    pub text: String,
    /// BCP 47 language tag as detected by X (`und` when unknown, empty when absent).
    pub lang: String,
    pub author: Author,
    pub metrics: Metrics,
    /// Hashtags without the leading `#`, as written.
    pub hashtags: Vec<String>,
    /// Mentioned usernames without the leading `@`.
    pub mentions: Vec<String>,
    /// Cashtags without the leading `$`.
    pub cashtags: Vec<String>,
    /// Expanded URLs (falling back to the short `t.co` URL).
    pub urls: Vec<String>,
    /// The tagged place, if any (`includes.places` in v2, `place` in v1.1).
    pub place: Option<Place>,
    pub is_retweet: bool,
    pub is_reply: bool,
    pub is_quote: bool,
    /// True when the post carries media (photos, video, GIFs).
    pub has_media: bool,
    /// The user id this post replies to, if it is a reply.
    pub in_reply_to_user_id: Option<String>,
    /// The filtered-stream rules that matched this post on X.
    pub matching_rules: Vec<MatchingRule>,
    /// Values added by plugins, by name.
    pub attrs: BTreeMap<AttrName, AttrValue>,
    /// The original message, for sinks that keep it.
    #[serde(skip)]
    pub raw: Option<Arc<str>>,
}

/// The name of a plugin attribute. Plugins set the same few names on every
/// post, so a name is shared between posts instead of allocated for each.
pub type AttrName = Arc<str>;

/// The author of a post.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
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

/// Public engagement counts at the time the post was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Metrics {
    pub retweets: u64,
    pub likes: u64,
    pub replies: u64,
    pub quotes: u64,
}

/// A place a post is tagged with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Place {
    pub id: String,
    pub full_name: String,
    pub country_code: Option<String>,
}

/// A filtered-stream rule that matched a post.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct MatchingRule {
    pub id: String,
    pub tag: String,
}

/// A typed value a plugin attached to a post.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum AttrValue {
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    List(Vec<String>),
}

impl Post {
    /// The place's full name, the seeds' `tweet_location` column.
    pub fn tweet_location(&self) -> Option<&str> {
        self.place.as_ref().map(|place| place.full_name.as_str())
    }

    /// The tags of the rules that matched, in order.
    pub fn rule_tags(&self) -> impl Iterator<Item = &str> {
        self.matching_rules.iter().map(|rule| rule.tag.as_str())
    }
}
