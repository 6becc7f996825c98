//! Decoding X API v2 stream messages and v1.1 statuses into [`Post`].
//!
//! One serde pass reads a line into borrowed structs that know both shapes (a v2
//! message keeps its post under `data`; a v1.1 status has `id_str`, `user`, … at the
//! top level), so strings are copied once, straight into the [`Post`]. Only when that
//! pass fails does a second, slower pass run to name the offending field. Before
//! serde, a direct reader (`fast`) fills the same structs for the common v2 shape,
//! and leaves every line it is not sure about to serde.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde::de::value::MapAccessDeserializer;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::{Author, MatchingRule, Metrics, Place, Post};

/// The `created_at` format of X API v2 (RFC 3339).
const V2_TIME_FORMAT: &str = "RFC 3339, like 2026-11-21T10:00:00.000Z";
/// The `created_at` format of X API v1.1.
const V1_TIME_FORMAT: &str = "v1.1, like Wed Oct 10 20:19:24 +0000 2018";

/// Why a line could not be turned into a post.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The line is empty or only whitespace: X sends these as stream keep-alives.
    #[error("empty line (a stream keep-alive), not a post")]
    Blank,
    /// The line is not valid JSON (often a message cut short).
    #[error("not JSON (line {line}, column {column}): {message}")]
    NotJson {
        line: usize,
        column: usize,
        message: String,
    },
    /// Valid JSON, but not an object.
    #[error("expected a JSON object holding a post, found {found}")]
    NotObject { found: &'static str },
    /// An error message from X (`{"errors": [...]}` with no `data`), e.g. a disconnect.
    #[error("an error message from X, not a post: {title}{}", detail_suffix(.detail))]
    XError { title: String, detail: String },
    /// A JSON object with neither a v2 `data` post nor v1.1 status fields.
    #[error(
        "a JSON object but not a post: it has no `data` (X API v2) and no `id_str`, `user` \
         or `text` (v1.1); its keys are [{keys}]"
    )]
    NotAPost { keys: String },
    /// A post without an id (or with an empty one).
    #[error("the post has no id: `{field}` is missing or empty")]
    MissingId { field: &'static str },
    /// A field holds a value of the wrong type (a string where a count belongs, …).
    #[error("field `{field}` has the wrong type or value (column {column}): {message}")]
    WrongType {
        /// The path to the field, like `data.public_metrics.like_count`.
        field: String,
        column: usize,
        message: String,
    },
    /// `created_at` is present but is not a timestamp in the shape's format.
    #[error("`{field}` is not a valid timestamp ({expected}): {value:?}")]
    BadCreatedAt {
        field: &'static str,
        value: String,
        expected: &'static str,
    },
}

impl DecodeError {
    /// A short stable name for the kind of error, for counters and dead-letter rows.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Blank => "blank",
            Self::NotJson { .. } => "not_json",
            Self::NotObject { .. } => "not_object",
            Self::XError { .. } => "x_error",
            Self::NotAPost { .. } => "not_a_post",
            Self::MissingId { .. } => "missing_id",
            Self::WrongType { .. } => "wrong_type",
            Self::BadCreatedAt { .. } => "bad_created_at",
        }
    }
}

fn detail_suffix(detail: &str) -> String {
    if detail.is_empty() {
        String::new()
    } else {
        format!(" ({detail})")
    }
}

/// Decodes one message (either shape) into a post, keeping `line` as its raw form.
///
/// Absent optional fields become empty values; an author or place missing from
/// `includes` leaves only the author id, and no place.
pub fn decode(line: &str) -> Result<Post, DecodeError> {
    decode_with_raw(line, || Arc::from(line))
}

/// [`decode`] for a message already shared as an `Arc<str>` (a broker delivery):
/// the post's `raw` is that same allocation instead of a copy of the line.
pub fn decode_shared(message: &Arc<str>) -> Result<Post, DecodeError> {
    decode_with_raw(message, || Arc::clone(message))
}

fn decode_with_raw(line: &str, raw: impl FnOnce() -> Arc<str>) -> Result<Post, DecodeError> {
    starts_an_object(line)?;
    if let Some((data, includes, rules)) = fast::v2(line) {
        return from_v2(data, includes, rules, raw());
    }
    decode_serde(line, raw)
}

/// Refuses blank lines and JSON values that are not objects.
fn starts_an_object(line: &str) -> Result<(), DecodeError> {
    let trimmed = line.trim_ascii_start();
    match trimmed.as_bytes().first() {
        None => Err(DecodeError::Blank),
        Some(b'{') => Ok(()),
        Some(&first) => Err(not_an_object(trimmed, first)),
    }
}

/// The general pass: serde reads either shape and names any error.
fn decode_serde(line: &str, raw: impl FnOnce() -> Arc<str>) -> Result<Post, DecodeError> {
    let message: Message<'_> = match serde_json::from_str(line) {
        Ok(message) => message,
        Err(error) => return Err(explain(line, error)),
    };
    let raw = raw();
    if let Some(data) = message.data {
        return from_v2(data, message.includes, message.matching_rules, raw);
    }
    if let Some(errors) = message.errors {
        return Err(x_error(errors));
    }
    if message.id_str.is_some()
        || message.id.is_some()
        || message.user.is_some()
        || message.text.is_some()
        || message.full_text.is_some()
        || message.extended_tweet.is_some()
    {
        return from_v1(message, raw);
    }
    Err(DecodeError::NotAPost {
        keys: top_level_keys(line),
    })
}

fn not_an_object(trimmed: &str, first: u8) -> DecodeError {
    if let Err(error) = serde_json::from_str::<IgnoredAny>(trimmed) {
        return not_json(&error);
    }
    let found = match first {
        b'[' => "an array",
        b'"' => "a string",
        b't' | b'f' => "a boolean",
        b'n' => "null",
        _ => "a number",
    };
    DecodeError::NotObject { found }
}

fn not_json(error: &serde_json::Error) -> DecodeError {
    DecodeError::NotJson {
        line: error.line(),
        column: error.column(),
        message: bare_message(error),
    }
}

/// serde_json's message without its trailing " at line L column C".
fn bare_message(error: &serde_json::Error) -> String {
    let full = error.to_string();
    let suffix = format!(" at line {} column {}", error.line(), error.column());
    match full.strip_suffix(&suffix) {
        Some(bare) => bare.to_owned(),
        None => full,
    }
}

/// Turns a failed fast pass into an error naming what is wrong (slow path only).
fn explain(line: &str, error: serde_json::Error) -> DecodeError {
    if !error.is_data() {
        return not_json(&error);
    }
    let mut deserializer = serde_json::Deserializer::from_str(line);
    match serde_path_to_error::deserialize::<_, Message<'_>>(&mut deserializer) {
        Err(located) => DecodeError::WrongType {
            field: located.path().to_string(),
            column: located.inner().column(),
            message: bare_message(located.inner()),
        },
        // Cannot happen (same input, same type); report the first error as is.
        Ok(_) => DecodeError::WrongType {
            field: "?".to_owned(),
            column: error.column(),
            message: bare_message(&error),
        },
    }
}

fn x_error(errors: Vec<XErrorItem<'_>>) -> DecodeError {
    let count = errors.len();
    let Some(first) = errors.into_iter().next() else {
        return DecodeError::XError {
            title: "an empty `errors` list".to_owned(),
            detail: String::new(),
        };
    };
    let title = first
        .title
        .or(first.message)
        .map_or_else(|| "untitled error".to_owned(), Str::into_string);
    let mut detail = first.detail.map(Str::into_string).unwrap_or_default();
    if let Some(kind) = first.kind {
        if !detail.is_empty() {
            detail.push_str("; ");
        }
        detail.push_str("see ");
        detail.push_str(&kind.0);
    }
    if count > 1 {
        if !detail.is_empty() {
            detail.push_str("; ");
        }
        detail.push_str(&format!("and {} more error(s)", count - 1));
    }
    DecodeError::XError { title, detail }
}

fn top_level_keys(line: &str) -> String {
    let keys: Vec<String> =
        serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(line)
            .map(|map| map.keys().take(8).cloned().collect())
            .unwrap_or_default();
    keys.join(", ")
}

fn from_v2(
    data: V2Post<'_>,
    includes: Option<Includes<'_>>,
    rules: Option<Vec<Rule<'_>>>,
    raw: Arc<str>,
) -> Result<Post, DecodeError> {
    let id = non_empty(data.id).ok_or(DecodeError::MissingId { field: "data.id" })?;
    let created_at = data
        .created_at
        .map(|value| parse_time(value, "data.created_at"))
        .transpose()?;
    let (text, entities) = match data.note_tweet {
        Some(Note {
            text: Some(text),
            entities,
        }) => (Some(text), entities.or(data.entities)),
        _ => (data.text, data.entities),
    };
    let (users, places) = match includes {
        Some(includes) => (includes.users, includes.places),
        None => (None, None),
    };
    let author_id = data.author_id.map(Str::into_string).unwrap_or_default();
    let author = users
        .and_then(|users| {
            users
                .into_iter()
                .find(|user| user.id.as_ref().is_some_and(|id| id.as_str() == author_id))
        })
        .map(|user| Author {
            id: String::new(),
            username: user.username.map(Str::into_string).unwrap_or_default(),
            name: user.name.map(Str::into_string).unwrap_or_default(),
            location: location(user.location),
            followers: user
                .public_metrics
                .and_then(|metrics| metrics.followers_count)
                .unwrap_or_default(),
            verified: user.verified.unwrap_or_default(),
        })
        .unwrap_or_default();
    let author = Author {
        id: author_id,
        ..author
    };
    let place = data
        .geo
        .and_then(|geo| geo.place_id)
        .and_then(|place_id| {
            places?.into_iter().find(|place| {
                place
                    .id
                    .as_ref()
                    .is_some_and(|id| id.as_str() == place_id.as_str())
            })
        })
        .map(|place| Place {
            id: place.id.map(|id| id.0.into_string()).unwrap_or_default(),
            full_name: place.full_name.map(Str::into_string).unwrap_or_default(),
            country_code: place.country_code.map(Str::into_string),
        });
    let metrics = data
        .public_metrics
        .map(|m| Metrics {
            retweets: m.retweet_count.unwrap_or_default(),
            likes: m.like_count.unwrap_or_default(),
            replies: m.reply_count.unwrap_or_default(),
            quotes: m.quote_count.unwrap_or_default(),
        })
        .unwrap_or_default();
    let (mut is_retweet, mut is_reply, mut is_quote) = (false, false, false);
    for reference in data.referenced_tweets.iter().flatten() {
        match reference.kind.as_ref().map(|kind| &*kind.0) {
            Some("retweeted") => is_retweet = true,
            Some("replied_to") => is_reply = true,
            Some("quoted") => is_quote = true,
            _ => {}
        }
    }
    let in_reply_to_user_id = non_empty(data.in_reply_to_user_id);
    is_reply |= in_reply_to_user_id.is_some();
    let has_media = data
        .attachments
        .and_then(|attachments| attachments.media_keys)
        .is_some_and(|keys| keys.0);
    let mut post = Post {
        id,
        created_at,
        text: text.map(Str::into_string).unwrap_or_default(),
        lang: data.lang.map(Str::into_string).unwrap_or_default(),
        author,
        metrics,
        place,
        is_retweet,
        is_reply,
        is_quote,
        has_media,
        in_reply_to_user_id,
        matching_rules: rules
            .unwrap_or_default()
            .into_iter()
            .map(|rule| MatchingRule {
                id: rule.id.map(Str::into_string).unwrap_or_default(),
                tag: rule.tag.map(Str::into_string).unwrap_or_default(),
            })
            .collect(),
        raw: Some(raw),
        ..Post::default()
    };
    if let Some(entities) = entities {
        post.has_media |= entities.media.as_ref().is_some_and(|media| media.0);
        fill_entities(&mut post, entities);
    }
    Ok(post)
}

fn from_v1(message: Message<'_>, raw: Arc<str>) -> Result<Post, DecodeError> {
    let id = non_empty(message.id_str)
        .or_else(|| message.id.map(|id| id.to_string()))
        .ok_or(DecodeError::MissingId { field: "id_str" })?;
    let created_at = message
        .created_at
        .map(|value| parse_time(value, "created_at"))
        .transpose()?;
    let mut has_media = [&message.entities, &message.extended_entities]
        .into_iter()
        .flatten()
        .any(|entities| entities.media.as_ref().is_some_and(|media| media.0));
    let (text, entities) = match message.extended_tweet {
        Some(extended) => {
            has_media |= [&extended.entities, &extended.extended_entities]
                .into_iter()
                .flatten()
                .any(|entities| entities.media.as_ref().is_some_and(|media| media.0));
            (
                extended.full_text.or(message.full_text).or(message.text),
                extended.entities.or(message.entities),
            )
        }
        None => (message.full_text.or(message.text), message.entities),
    };
    let author = message
        .user
        .map(|user| Author {
            id: non_empty(user.id_str)
                .or_else(|| user.id.map(|id| id.to_string()))
                .unwrap_or_default(),
            username: user.screen_name.map(Str::into_string).unwrap_or_default(),
            name: user.name.map(Str::into_string).unwrap_or_default(),
            location: location(user.location),
            followers: user.followers_count.unwrap_or_default(),
            verified: user.verified.unwrap_or_default(),
        })
        .unwrap_or_default();
    let in_reply_to_user_id = non_empty(message.in_reply_to_user_id_str);
    let is_reply = in_reply_to_user_id.is_some()
        || message
            .in_reply_to_status_id_str
            .is_some_and(|id| !id.0.is_empty());
    let mut post = Post {
        id,
        created_at,
        text: text.map(Str::into_string).unwrap_or_default(),
        lang: message.lang.map(Str::into_string).unwrap_or_default(),
        author,
        metrics: Metrics {
            retweets: message.retweet_count.unwrap_or_default(),
            likes: message.favorite_count.unwrap_or_default(),
            replies: message.reply_count.unwrap_or_default(),
            quotes: message.quote_count.unwrap_or_default(),
        },
        place: message.place.map(|place| Place {
            id: place.id.map(Str::into_string).unwrap_or_default(),
            full_name: place.full_name.map(Str::into_string).unwrap_or_default(),
            country_code: place.country_code.map(Str::into_string),
        }),
        is_retweet: message.retweeted_status.is_some(),
        is_reply,
        is_quote: message.is_quote_status.unwrap_or_default() || message.quoted_status.is_some(),
        has_media,
        in_reply_to_user_id,
        raw: Some(raw),
        ..Post::default()
    };
    if let Some(entities) = entities {
        fill_entities(&mut post, entities);
    }
    Ok(post)
}

fn fill_entities(post: &mut Post, entities: Entities<'_>) {
    post.hashtags = tags(entities.hashtags);
    post.cashtags = tags(entities.cashtags);
    post.mentions = entities
        .mentions
        .unwrap_or_default()
        .into_iter()
        .filter_map(|mention| mention.username.map(Str::into_string))
        .collect();
    post.urls = entities
        .urls
        .unwrap_or_default()
        .into_iter()
        .filter_map(|url| url.expanded_url.or(url.url).map(Str::into_string))
        .collect();
}

fn tags(tags: Option<Vec<Tag<'_>>>) -> Vec<String> {
    tags.unwrap_or_default()
        .into_iter()
        .filter_map(|tag| tag.tag.map(Str::into_string))
        .collect()
}

fn non_empty(value: Option<Str<'_>>) -> Option<String> {
    value.filter(|id| !id.0.is_empty()).map(Str::into_string)
}

/// A profile location, or `None` when it is absent or blank.
fn location(value: Option<Str<'_>>) -> Option<String> {
    value
        .filter(|location| !location.0.trim().is_empty())
        .map(Str::into_string)
}

fn parse_time(value: Str<'_>, field: &'static str) -> Result<DateTime<Utc>, DecodeError> {
    let (parsed, expected) = if field == "created_at" {
        // The weekday is redundant; skip it rather than reject a mismatch.
        let without_weekday = value.0.split_once(' ').map_or("", |(_, rest)| rest);
        (
            DateTime::parse_from_str(without_weekday, "%b %d %H:%M:%S %z %Y"),
            V1_TIME_FORMAT,
        )
    } else {
        if let Some(time) = x_v2_time(&value.0) {
            return Ok(time);
        }
        (DateTime::parse_from_rfc3339(&value.0), V2_TIME_FORMAT)
    };
    parsed
        .map(|time| time.with_timezone(&Utc))
        .map_err(|_| DecodeError::BadCreatedAt {
            field,
            value: value.into_string(),
            expected,
        })
}

/// The one shape X API v2 writes, `2026-11-21T10:00:00.000Z`, read directly: a
/// fast path around chrono's general RFC 3339 parser (about a tenth of the cost).
/// Anything else, and any value out of range, is left to that parser.
fn x_v2_time(value: &str) -> Option<DateTime<Utc>> {
    let bytes = value.as_bytes();
    let shape_ok = bytes.len() == 24
        && bytes[4] == b'-'
        && bytes[7] == b'-'
        && bytes[10] == b'T'
        && bytes[13] == b':'
        && bytes[16] == b':'
        && bytes[19] == b'.'
        && bytes[23] == b'Z';
    if !shape_ok {
        return None;
    }
    let number = |range: std::ops::Range<usize>| -> Option<u32> {
        bytes[range].iter().try_fold(0u32, |acc, &byte| {
            byte.is_ascii_digit()
                .then(|| acc * 10 + u32::from(byte - b'0'))
        })
    };
    let date = chrono::NaiveDate::from_ymd_opt(
        i32::try_from(number(0..4)?).ok()?,
        number(5..7)?,
        number(8..10)?,
    )?;
    let time = chrono::NaiveTime::from_hms_milli_opt(
        number(11..13)?,
        number(14..16)?,
        number(17..19)?,
        number(20..23)?,
    )?;
    Some(date.and_time(time).and_utc())
}

/// A string borrowed from the line when it has no escapes, owned otherwise.
struct Str<'a>(Cow<'a, str>);

impl Str<'_> {
    fn into_string(self) -> String {
        self.0.into_owned()
    }
}

struct StrVisitor<'a>(PhantomData<&'a ()>);

impl<'de: 'a, 'a> Visitor<'de> for StrVisitor<'a> {
    type Value = Str<'a>;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a string")
    }

    fn visit_borrowed_str<E: de::Error>(self, value: &'de str) -> Result<Self::Value, E> {
        Ok(Str(Cow::Borrowed(value)))
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<Self::Value, E> {
        Ok(Str(Cow::Owned(value.to_owned())))
    }

    fn visit_string<E: de::Error>(self, value: String) -> Result<Self::Value, E> {
        Ok(Str(Cow::Owned(value)))
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Str<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(StrVisitor(PhantomData))
    }
}

/// An id: a string, or (leniently) a non-negative integer.
struct Id<'a>(Str<'a>);

struct IdVisitor<'a>(PhantomData<&'a ()>);

impl<'de: 'a, 'a> Visitor<'de> for IdVisitor<'a> {
    type Value = Id<'a>;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("an id (a string of digits)")
    }

    fn visit_borrowed_str<E: de::Error>(self, value: &'de str) -> Result<Self::Value, E> {
        Ok(Id(Str(Cow::Borrowed(value))))
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<Self::Value, E> {
        Ok(Id(Str(Cow::Owned(value.to_owned()))))
    }

    fn visit_string<E: de::Error>(self, value: String) -> Result<Self::Value, E> {
        Ok(Id(Str(Cow::Owned(value))))
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<Self::Value, E> {
        Ok(Id(Str(Cow::Owned(value.to_string()))))
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Id<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(IdVisitor(PhantomData))
    }
}

impl Id<'_> {
    fn as_str(&self) -> &str {
        &self.0.0
    }
}

impl<'a> From<Id<'a>> for Str<'a> {
    fn from(id: Id<'a>) -> Self {
        id.0
    }
}

/// Whether a list has at least one element, without keeping the elements.
struct NonEmpty(bool);

impl<'de> Deserialize<'de> for NonEmpty {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct NonEmptyVisitor;
        impl<'de> Visitor<'de> for NonEmptyVisitor {
            type Value = NonEmpty;

            fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str("a list")
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut any = false;
                while seq.next_element::<IgnoredAny>()?.is_some() {
                    any = true;
                }
                Ok(NonEmpty(any))
            }
        }
        deserializer.deserialize_seq(NonEmptyVisitor)
    }
}

/// Both shapes at once: a v2 message (`data`, `includes`, `matching_rules`, or
/// `errors`) or a v1.1 status (everything else).
#[derive(Deserialize)]
struct Message<'a> {
    #[serde(borrow, default, deserialize_with = "object")]
    data: Option<V2Post<'a>>,
    #[serde(borrow)]
    includes: Option<Includes<'a>>,
    #[serde(borrow)]
    matching_rules: Option<Vec<Rule<'a>>>,
    #[serde(borrow)]
    errors: Option<Vec<XErrorItem<'a>>>,

    #[serde(borrow, deserialize_with = "id_as_str")]
    #[serde(default)]
    id_str: Option<Str<'a>>,
    id: Option<u64>,
    #[serde(borrow)]
    created_at: Option<Str<'a>>,
    #[serde(borrow)]
    text: Option<Str<'a>>,
    #[serde(borrow)]
    full_text: Option<Str<'a>>,
    #[serde(borrow)]
    extended_tweet: Option<Extended<'a>>,
    #[serde(borrow)]
    lang: Option<Str<'a>>,
    #[serde(borrow)]
    user: Option<V1User<'a>>,
    #[serde(borrow)]
    entities: Option<Entities<'a>>,
    #[serde(borrow)]
    extended_entities: Option<Entities<'a>>,
    retweet_count: Option<u64>,
    favorite_count: Option<u64>,
    reply_count: Option<u64>,
    quote_count: Option<u64>,
    retweeted_status: Option<IgnoredAny>,
    #[serde(borrow, deserialize_with = "id_as_str")]
    #[serde(default)]
    in_reply_to_status_id_str: Option<Str<'a>>,
    #[serde(borrow, deserialize_with = "id_as_str")]
    #[serde(default)]
    in_reply_to_user_id_str: Option<Str<'a>>,
    is_quote_status: Option<bool>,
    quoted_status: Option<IgnoredAny>,
    #[serde(borrow)]
    place: Option<V1Place<'a>>,
}

/// An optional struct that must be a JSON object (serde's derive also takes arrays).
fn object<'de, T: Deserialize<'de>, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<T>, D::Error> {
    struct ObjectVisitor<T>(PhantomData<T>);
    impl<'de, T: Deserialize<'de>> Visitor<'de> for ObjectVisitor<T> {
        type Value = Option<T>;

        fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
            formatter.write_str("an object")
        }

        fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }

        fn visit_some<D: Deserializer<'de>>(
            self,
            deserializer: D,
        ) -> Result<Self::Value, D::Error> {
            deserializer.deserialize_map(self)
        }

        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
            T::deserialize(MapAccessDeserializer::new(map)).map(Some)
        }
    }
    deserializer.deserialize_option(ObjectVisitor(PhantomData))
}

fn id_as_str<'de: 'a, 'a, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Str<'a>>, D::Error> {
    Ok(Option::<Id<'a>>::deserialize(deserializer)?.map(Str::from))
}

#[derive(Deserialize)]
struct XErrorItem<'a> {
    #[serde(borrow)]
    title: Option<Str<'a>>,
    #[serde(borrow)]
    detail: Option<Str<'a>>,
    /// v1.1 errors say `message` instead of `title`.
    #[serde(borrow)]
    message: Option<Str<'a>>,
    #[serde(borrow, rename = "type")]
    kind: Option<Str<'a>>,
}

#[derive(Deserialize)]
struct V2Post<'a> {
    #[serde(borrow, deserialize_with = "id_as_str")]
    #[serde(default)]
    id: Option<Str<'a>>,
    #[serde(borrow)]
    text: Option<Str<'a>>,
    #[serde(borrow)]
    created_at: Option<Str<'a>>,
    #[serde(borrow)]
    lang: Option<Str<'a>>,
    #[serde(borrow, deserialize_with = "id_as_str")]
    #[serde(default)]
    author_id: Option<Str<'a>>,
    public_metrics: Option<V2Metrics>,
    #[serde(borrow)]
    entities: Option<Entities<'a>>,
    #[serde(borrow)]
    referenced_tweets: Option<Vec<Reference<'a>>>,
    #[serde(borrow, deserialize_with = "id_as_str")]
    #[serde(default)]
    in_reply_to_user_id: Option<Str<'a>>,
    #[serde(borrow)]
    geo: Option<Geo<'a>>,
    attachments: Option<Attachments>,
    #[serde(borrow)]
    note_tweet: Option<Note<'a>>,
}

#[derive(Deserialize)]
struct V2Metrics {
    retweet_count: Option<u64>,
    reply_count: Option<u64>,
    like_count: Option<u64>,
    quote_count: Option<u64>,
}

#[derive(Deserialize)]
struct Note<'a> {
    #[serde(borrow)]
    text: Option<Str<'a>>,
    #[serde(borrow)]
    entities: Option<Entities<'a>>,
}

#[derive(Deserialize)]
struct Reference<'a> {
    #[serde(borrow, rename = "type")]
    kind: Option<Str<'a>>,
}

#[derive(Deserialize)]
struct Geo<'a> {
    #[serde(borrow)]
    place_id: Option<Id<'a>>,
}

#[derive(Deserialize)]
struct Attachments {
    media_keys: Option<NonEmpty>,
}

#[derive(Deserialize)]
struct Includes<'a> {
    #[serde(borrow)]
    users: Option<Vec<V2User<'a>>>,
    #[serde(borrow)]
    places: Option<Vec<V2Place<'a>>>,
}

#[derive(Deserialize)]
struct V2User<'a> {
    #[serde(borrow)]
    id: Option<Id<'a>>,
    #[serde(borrow)]
    username: Option<Str<'a>>,
    #[serde(borrow)]
    name: Option<Str<'a>>,
    #[serde(borrow)]
    location: Option<Str<'a>>,
    verified: Option<bool>,
    public_metrics: Option<UserMetrics>,
}

#[derive(Deserialize)]
struct UserMetrics {
    followers_count: Option<u64>,
}

#[derive(Deserialize)]
struct V2Place<'a> {
    #[serde(borrow)]
    id: Option<Id<'a>>,
    #[serde(borrow)]
    full_name: Option<Str<'a>>,
    #[serde(borrow)]
    country_code: Option<Str<'a>>,
}

#[derive(Deserialize)]
struct Rule<'a> {
    #[serde(borrow, deserialize_with = "id_as_str")]
    #[serde(default)]
    id: Option<Str<'a>>,
    #[serde(borrow)]
    tag: Option<Str<'a>>,
}

/// Entities of either shape: v2 names, with the v1.1 names as aliases.
#[derive(Deserialize)]
struct Entities<'a> {
    #[serde(borrow)]
    hashtags: Option<Vec<Tag<'a>>>,
    #[serde(borrow, alias = "symbols")]
    cashtags: Option<Vec<Tag<'a>>>,
    #[serde(borrow, alias = "user_mentions")]
    mentions: Option<Vec<Mention<'a>>>,
    #[serde(borrow)]
    urls: Option<Vec<Url<'a>>>,
    media: Option<NonEmpty>,
}

#[derive(Deserialize)]
struct Tag<'a> {
    #[serde(borrow, alias = "text")]
    tag: Option<Str<'a>>,
}

#[derive(Deserialize)]
struct Mention<'a> {
    #[serde(borrow, alias = "screen_name")]
    username: Option<Str<'a>>,
}

#[derive(Deserialize)]
struct Url<'a> {
    #[serde(borrow)]
    url: Option<Str<'a>>,
    #[serde(borrow)]
    expanded_url: Option<Str<'a>>,
}

#[derive(Deserialize)]
struct Extended<'a> {
    #[serde(borrow)]
    full_text: Option<Str<'a>>,
    #[serde(borrow)]
    entities: Option<Entities<'a>>,
    #[serde(borrow)]
    extended_entities: Option<Entities<'a>>,
}

#[derive(Deserialize)]
struct V1User<'a> {
    #[serde(borrow, deserialize_with = "id_as_str")]
    #[serde(default)]
    id_str: Option<Str<'a>>,
    id: Option<u64>,
    #[serde(borrow)]
    screen_name: Option<Str<'a>>,
    #[serde(borrow)]
    name: Option<Str<'a>>,
    #[serde(borrow)]
    location: Option<Str<'a>>,
    followers_count: Option<u64>,
    verified: Option<bool>,
}

#[derive(Deserialize)]
struct V1Place<'a> {
    #[serde(borrow)]
    id: Option<Str<'a>>,
    #[serde(borrow)]
    full_name: Option<Str<'a>>,
    #[serde(borrow)]
    country_code: Option<Str<'a>>,
}

mod fast {
    //! A direct reader for the one shape X's filtered stream sends (`data`,
    //! `includes`, `matching_rules`), around the serde pass: it fills the same
    //! borrowed structs without serde's per-token visitor layers, and steps back
    //! (returns `None`) at anything it is not sure serde would read the same way —
    //! escaped keys, duplicate fields, numbers that are not plain `u64`s, a v1.1 or
    //! `errors` key, invalid JSON — so serde then reads the line and reports any
    //! error exactly as before.

    use std::borrow::Cow;

    use super::{
        Attachments, Entities, Geo, Includes, Mention, NonEmpty, Note, Reference, Rule, Str, Tag,
        Url, UserMetrics, V2Metrics, V2Place, V2Post, V2User,
    };

    /// The v1.1 and error keys of `Message`: a line with one of them is left to serde,
    /// which checks their types too.
    const OTHER_MESSAGE_KEYS: [&str; 21] = [
        "errors",
        "id_str",
        "id",
        "created_at",
        "text",
        "full_text",
        "extended_tweet",
        "lang",
        "user",
        "entities",
        "extended_entities",
        "retweet_count",
        "favorite_count",
        "reply_count",
        "quote_count",
        "retweeted_status",
        "in_reply_to_status_id_str",
        "in_reply_to_user_id_str",
        "is_quote_status",
        "quoted_status",
        "place",
    ];

    /// How deep an ignored value may nest before the reader leaves it to serde.
    const MAX_DEPTH: u32 = 100;

    /// The parts of a v2 message [`super::from_v2`] needs.
    pub(super) type V2Message<'a> = (V2Post<'a>, Option<Includes<'a>>, Option<Vec<Rule<'a>>>);

    /// Reads `line` as a v2 message with a `data` object, or `None` to let serde decide.
    pub(super) fn v2(line: &str) -> Option<V2Message<'_>> {
        let mut reader = Reader { text: line, pos: 0 };
        let (mut data, mut includes, mut rules) = (None, None, None);
        reader.object(|r, key| match key {
            "data" => set(&mut data, r.v2_post()?),
            "includes" => set(&mut includes, r.opt(Reader::includes)?),
            "matching_rules" => set(&mut rules, r.opt(|r| r.vec(Reader::rule))?),
            _ if OTHER_MESSAGE_KEYS.contains(&key) => None,
            _ => r.skip_value(MAX_DEPTH),
        })?;
        reader.ws();
        if reader.pos != line.len() {
            return None;
        }
        Some((data?, includes.flatten(), rules.flatten()))
    }

    /// Stores a field's value, refusing a second one (serde's "duplicate field").
    fn set<T>(slot: &mut Option<T>, value: T) -> Option<()> {
        if slot.is_some() {
            return None;
        }
        *slot = Some(value);
        Some(())
    }

    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;

    /// A high bit set in each of 8 bytes that is `"`, `\\` or a control character
    /// (below 0x20). The lowest set bit is exact: it marks the first such byte.
    fn special_bytes(chunk: u64) -> u64 {
        let zero_in = |word: u64| word.wrapping_sub(ONES) & !word & HIGHS;
        let quote = zero_in(chunk ^ (ONES * u64::from(b'"')));
        let backslash = zero_in(chunk ^ (ONES * u64::from(b'\\')));
        let control = chunk.wrapping_sub(ONES * 0x20) & !chunk & HIGHS;
        quote | backslash | control
    }

    struct Reader<'a> {
        text: &'a str,
        pos: usize,
    }

    impl<'a> Reader<'a> {
        fn peek(&self) -> Option<u8> {
            self.text.as_bytes().get(self.pos).copied()
        }

        /// Skips JSON whitespace (exactly the four bytes serde_json skips).
        fn ws(&mut self) {
            while let Some(b' ' | b'\n' | b'\t' | b'\r') = self.peek() {
                self.pos += 1;
            }
        }

        /// After whitespace, the next byte of a value (not consumed).
        fn next_value(&mut self) -> Option<u8> {
            self.ws();
            self.peek()
        }

        fn literal(&mut self, word: &[u8]) -> Option<()> {
            if self.text.as_bytes()[self.pos..].starts_with(word) {
                self.pos += word.len();
                Some(())
            } else {
                None
            }
        }

        /// At a value: `Some(true)` when it is `null` (then consumed).
        fn null(&mut self) -> Option<bool> {
            if self.next_value()? == b'n' {
                self.literal(b"null")?;
                Some(true)
            } else {
                Some(false)
            }
        }

        /// At a `"`: steps past the string, returning its contents' byte range and
        /// whether it has escapes. Control characters and bad escapes refuse.
        fn string_span(&mut self) -> Option<(usize, usize, bool)> {
            let bytes = self.text.as_bytes();
            let start = self.pos + 1;
            let mut at = start;
            let mut escaped = false;
            loop {
                // Eight bytes at a time to the first quote, backslash or control byte.
                loop {
                    let Some(chunk) = bytes.get(at..at + 8) else {
                        at += bytes[at..]
                            .iter()
                            .position(|&byte| byte == b'"' || byte == b'\\' || byte < 0x20)?;
                        break;
                    };
                    let special = special_bytes(u64::from_le_bytes(chunk.try_into().ok()?));
                    if special != 0 {
                        at += special.trailing_zeros() as usize / 8;
                        break;
                    }
                    at += 8;
                }
                match *bytes.get(at)? {
                    b'"' => {
                        self.pos = at + 1;
                        return Some((start, at, escaped));
                    }
                    b'\\' => {
                        escaped = true;
                        at += match *bytes.get(at + 1)? {
                            b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => 2,
                            b'u' if bytes
                                .get(at + 2..at + 6)?
                                .iter()
                                .all(u8::is_ascii_hexdigit) =>
                            {
                                6
                            }
                            _ => return None,
                        };
                    }
                    _ => return None,
                }
            }
        }

        /// At a `"`: the string, borrowed when it has no escapes. Escaped strings are
        /// unescaped by serde_json itself, so they come out (or fail) just the same.
        fn string(&mut self) -> Option<Str<'a>> {
            let (text, open) = (self.text, self.pos);
            let (start, end, escaped) = self.string_span()?;
            if escaped {
                let unescaped = serde_json::from_str::<String>(&text[open..=end]).ok()?;
                Some(Str(Cow::Owned(unescaped)))
            } else {
                Some(Str(Cow::Borrowed(&text[start..end])))
            }
        }

        /// At a value: a plain non-negative integer that fits a `u64`.
        fn u64(&mut self) -> Option<u64> {
            let bytes = self.text.as_bytes();
            let start = self.pos;
            let mut at = start;
            let mut value: u64 = 0;
            while let Some(&digit @ b'0'..=b'9') = bytes.get(at) {
                value = value
                    .checked_mul(10)?
                    .checked_add(u64::from(digit - b'0'))?;
                at += 1;
            }
            let leading_zero = bytes[start] == b'0' && at - start > 1;
            if at == start || leading_zero || matches!(bytes.get(at), Some(b'.' | b'e' | b'E')) {
                return None;
            }
            self.pos = at;
            Some(value)
        }

        fn opt_str(&mut self) -> Option<Option<Str<'a>>> {
            match self.next_value()? {
                b'"' => self.string().map(Some),
                b'n' => self.literal(b"null").map(|()| None),
                _ => None,
            }
        }

        /// An id: a string or a non-negative integer (see [`super::Id`]).
        fn opt_id(&mut self) -> Option<Option<Str<'a>>> {
            match self.next_value()? {
                b'"' => self.string().map(Some),
                b'n' => self.literal(b"null").map(|()| None),
                b'0'..=b'9' => Some(Some(Str(Cow::Owned(self.u64()?.to_string())))),
                _ => None,
            }
        }

        fn opt_u64(&mut self) -> Option<Option<u64>> {
            match self.next_value()? {
                b'0'..=b'9' => self.u64().map(Some),
                b'n' => self.literal(b"null").map(|()| None),
                _ => None,
            }
        }

        fn opt_bool(&mut self) -> Option<Option<bool>> {
            match self.next_value()? {
                b't' => self.literal(b"true").map(|()| Some(true)),
                b'f' => self.literal(b"false").map(|()| Some(false)),
                b'n' => self.literal(b"null").map(|()| None),
                _ => None,
            }
        }

        fn opt<T>(&mut self, read: impl FnOnce(&mut Self) -> Option<T>) -> Option<Option<T>> {
            if self.null()? {
                Some(None)
            } else {
                read(self).map(Some)
            }
        }

        /// An object, each key (without escapes) handed to `field` to read its value.
        fn object(
            &mut self,
            mut field: impl FnMut(&mut Self, &'a str) -> Option<()>,
        ) -> Option<()> {
            if self.next_value()? != b'{' {
                return None;
            }
            self.pos += 1;
            if self.next_value()? == b'}' {
                self.pos += 1;
                return Some(());
            }
            loop {
                if self.next_value()? != b'"' {
                    return None;
                }
                let (start, end, escaped) = self.string_span()?;
                if escaped {
                    return None;
                }
                if self.next_value()? != b':' {
                    return None;
                }
                self.pos += 1;
                let text = self.text;
                field(self, &text[start..end])?;
                match self.next_value()? {
                    b',' => self.pos += 1,
                    b'}' => {
                        self.pos += 1;
                        return Some(());
                    }
                    _ => return None,
                }
            }
        }

        /// An array, `element` reading each element.
        fn array(&mut self, mut element: impl FnMut(&mut Self) -> Option<()>) -> Option<()> {
            if self.next_value()? != b'[' {
                return None;
            }
            self.pos += 1;
            if self.next_value()? == b']' {
                self.pos += 1;
                return Some(());
            }
            loop {
                element(self)?;
                match self.next_value()? {
                    b',' => self.pos += 1,
                    b']' => {
                        self.pos += 1;
                        return Some(());
                    }
                    _ => return None,
                }
            }
        }

        fn vec<T>(&mut self, mut read: impl FnMut(&mut Self) -> Option<T>) -> Option<Vec<T>> {
            let mut items = Vec::new();
            self.array(|r| {
                items.push(read(r)?);
                Some(())
            })?;
            Some(items)
        }

        /// Any JSON value, checked as strictly as serde_json's `IgnoredAny` does.
        fn skip_value(&mut self, depth: u32) -> Option<()> {
            match self.next_value()? {
                b'"' => self.string_span().map(drop),
                b'{' if depth > 0 => self.object(|r, _| r.skip_value(depth - 1)),
                b'[' if depth > 0 => self.array(|r| r.skip_value(depth - 1)),
                b't' => self.literal(b"true"),
                b'f' => self.literal(b"false"),
                b'n' => self.literal(b"null"),
                b'-' | b'0'..=b'9' => self.skip_number(),
                _ => None,
            }
        }

        fn digits(&mut self) -> usize {
            let start = self.pos;
            while let Some(b'0'..=b'9') = self.peek() {
                self.pos += 1;
            }
            self.pos - start
        }

        fn skip_number(&mut self) -> Option<()> {
            if self.peek()? == b'-' {
                self.pos += 1;
            }
            match self.peek()? {
                b'0' => {
                    self.pos += 1;
                    if let Some(b'0'..=b'9') = self.peek() {
                        return None;
                    }
                }
                b'1'..=b'9' => {
                    self.digits();
                }
                _ => return None,
            }
            if self.peek() == Some(b'.') {
                self.pos += 1;
                if self.digits() == 0 {
                    return None;
                }
            }
            if let Some(b'e' | b'E') = self.peek() {
                self.pos += 1;
                if let Some(b'+' | b'-') = self.peek() {
                    self.pos += 1;
                }
                if self.digits() == 0 {
                    return None;
                }
            }
            Some(())
        }

        /// `media_keys` / `media`: whether the list has elements.
        fn opt_non_empty(&mut self) -> Option<Option<NonEmpty>> {
            self.opt(|r| {
                let mut any = false;
                r.array(|r| {
                    any = true;
                    r.skip_value(MAX_DEPTH)
                })?;
                Some(NonEmpty(any))
            })
        }

        fn v2_post(&mut self) -> Option<V2Post<'a>> {
            let (mut id, mut text, mut created_at, mut lang, mut author_id) =
                (None, None, None, None, None);
            let (mut public_metrics, mut entities, mut referenced_tweets) = (None, None, None);
            let (mut in_reply_to_user_id, mut geo, mut attachments, mut note_tweet) =
                (None, None, None, None);
            self.object(|r, key| match key {
                "id" => set(&mut id, r.opt_id()?),
                "text" => set(&mut text, r.opt_str()?),
                "created_at" => set(&mut created_at, r.opt_str()?),
                "lang" => set(&mut lang, r.opt_str()?),
                "author_id" => set(&mut author_id, r.opt_id()?),
                "public_metrics" => set(&mut public_metrics, r.opt(Reader::v2_metrics)?),
                "entities" => set(&mut entities, r.opt(Reader::entities)?),
                "referenced_tweets" => {
                    set(&mut referenced_tweets, r.opt(|r| r.vec(Reader::reference))?)
                }
                "in_reply_to_user_id" => set(&mut in_reply_to_user_id, r.opt_id()?),
                "geo" => set(&mut geo, r.opt(Reader::geo)?),
                "attachments" => set(&mut attachments, r.opt(Reader::attachments)?),
                "note_tweet" => set(&mut note_tweet, r.opt(Reader::note)?),
                _ => r.skip_value(MAX_DEPTH),
            })?;
            Some(V2Post {
                id: id.flatten(),
                text: text.flatten(),
                created_at: created_at.flatten(),
                lang: lang.flatten(),
                author_id: author_id.flatten(),
                public_metrics: public_metrics.flatten(),
                entities: entities.flatten(),
                referenced_tweets: referenced_tweets.flatten(),
                in_reply_to_user_id: in_reply_to_user_id.flatten(),
                geo: geo.flatten(),
                attachments: attachments.flatten(),
                note_tweet: note_tweet.flatten(),
            })
        }

        fn v2_metrics(&mut self) -> Option<V2Metrics> {
            let (mut retweets, mut replies, mut likes, mut quotes) = (None, None, None, None);
            self.object(|r, key| match key {
                "retweet_count" => set(&mut retweets, r.opt_u64()?),
                "reply_count" => set(&mut replies, r.opt_u64()?),
                "like_count" => set(&mut likes, r.opt_u64()?),
                "quote_count" => set(&mut quotes, r.opt_u64()?),
                _ => r.skip_value(MAX_DEPTH),
            })?;
            Some(V2Metrics {
                retweet_count: retweets.flatten(),
                reply_count: replies.flatten(),
                like_count: likes.flatten(),
                quote_count: quotes.flatten(),
            })
        }

        fn entities(&mut self) -> Option<Entities<'a>> {
            let (mut hashtags, mut cashtags, mut mentions, mut urls, mut media) =
                (None, None, None, None, None);
            self.object(|r, key| match key {
                "hashtags" => set(&mut hashtags, r.opt(|r| r.vec(Reader::tag))?),
                "cashtags" | "symbols" => set(&mut cashtags, r.opt(|r| r.vec(Reader::tag))?),
                "mentions" | "user_mentions" => {
                    set(&mut mentions, r.opt(|r| r.vec(Reader::mention))?)
                }
                "urls" => set(&mut urls, r.opt(|r| r.vec(Reader::url))?),
                "media" => set(&mut media, r.opt_non_empty()?),
                _ => r.skip_value(MAX_DEPTH),
            })?;
            Some(Entities {
                hashtags: hashtags.flatten(),
                cashtags: cashtags.flatten(),
                mentions: mentions.flatten(),
                urls: urls.flatten(),
                media: media.flatten(),
            })
        }

        fn tag(&mut self) -> Option<Tag<'a>> {
            let mut tag = None;
            self.object(|r, key| match key {
                "tag" | "text" => set(&mut tag, r.opt_str()?),
                _ => r.skip_value(MAX_DEPTH),
            })?;
            Some(Tag { tag: tag.flatten() })
        }

        fn mention(&mut self) -> Option<Mention<'a>> {
            let mut username = None;
            self.object(|r, key| match key {
                "username" | "screen_name" => set(&mut username, r.opt_str()?),
                _ => r.skip_value(MAX_DEPTH),
            })?;
            Some(Mention {
                username: username.flatten(),
            })
        }

        fn url(&mut self) -> Option<Url<'a>> {
            let (mut url, mut expanded_url) = (None, None);
            self.object(|r, key| match key {
                "url" => set(&mut url, r.opt_str()?),
                "expanded_url" => set(&mut expanded_url, r.opt_str()?),
                _ => r.skip_value(MAX_DEPTH),
            })?;
            Some(Url {
                url: url.flatten(),
                expanded_url: expanded_url.flatten(),
            })
        }

        fn reference(&mut self) -> Option<Reference<'a>> {
            let mut kind = None;
            self.object(|r, key| match key {
                "type" => set(&mut kind, r.opt_str()?),
                _ => r.skip_value(MAX_DEPTH),
            })?;
            Some(Reference {
                kind: kind.flatten(),
            })
        }

        fn geo(&mut self) -> Option<Geo<'a>> {
            let mut place_id = None;
            self.object(|r, key| match key {
                "place_id" => set(&mut place_id, r.opt_id()?),
                _ => r.skip_value(MAX_DEPTH),
            })?;
            Some(Geo {
                place_id: place_id.flatten().map(super::Id),
            })
        }

        fn attachments(&mut self) -> Option<Attachments> {
            let mut media_keys = None;
            self.object(|r, key| match key {
                "media_keys" => set(&mut media_keys, r.opt_non_empty()?),
                _ => r.skip_value(MAX_DEPTH),
            })?;
            Some(Attachments {
                media_keys: media_keys.flatten(),
            })
        }

        fn note(&mut self) -> Option<Note<'a>> {
            let (mut text, mut entities) = (None, None);
            self.object(|r, key| match key {
                "text" => set(&mut text, r.opt_str()?),
                "entities" => set(&mut entities, r.opt(Reader::entities)?),
                _ => r.skip_value(MAX_DEPTH),
            })?;
            Some(Note {
                text: text.flatten(),
                entities: entities.flatten(),
            })
        }

        fn includes(&mut self) -> Option<Includes<'a>> {
            let (mut users, mut places) = (None, None);
            self.object(|r, key| match key {
                "users" => set(&mut users, r.opt(|r| r.vec(Reader::user))?),
                "places" => set(&mut places, r.opt(|r| r.vec(Reader::place))?),
                _ => r.skip_value(MAX_DEPTH),
            })?;
            Some(Includes {
                users: users.flatten(),
                places: places.flatten(),
            })
        }

        fn user(&mut self) -> Option<V2User<'a>> {
            let (mut id, mut username, mut name, mut location) = (None, None, None, None);
            let (mut verified, mut public_metrics) = (None, None);
            self.object(|r, key| match key {
                "id" => set(&mut id, r.opt_id()?),
                "username" => set(&mut username, r.opt_str()?),
                "name" => set(&mut name, r.opt_str()?),
                "location" => set(&mut location, r.opt_str()?),
                "verified" => set(&mut verified, r.opt_bool()?),
                "public_metrics" => set(&mut public_metrics, r.opt(Reader::user_metrics)?),
                _ => r.skip_value(MAX_DEPTH),
            })?;
            Some(V2User {
                id: id.flatten().map(super::Id),
                username: username.flatten(),
                name: name.flatten(),
                location: location.flatten(),
                verified: verified.flatten(),
                public_metrics: public_metrics.flatten(),
            })
        }

        fn user_metrics(&mut self) -> Option<UserMetrics> {
            let mut followers_count = None;
            self.object(|r, key| match key {
                "followers_count" => set(&mut followers_count, r.opt_u64()?),
                _ => r.skip_value(MAX_DEPTH),
            })?;
            Some(UserMetrics {
                followers_count: followers_count.flatten(),
            })
        }

        fn place(&mut self) -> Option<V2Place<'a>> {
            let (mut id, mut full_name, mut country_code) = (None, None, None);
            self.object(|r, key| match key {
                "id" => set(&mut id, r.opt_id()?),
                "full_name" => set(&mut full_name, r.opt_str()?),
                "country_code" => set(&mut country_code, r.opt_str()?),
                _ => r.skip_value(MAX_DEPTH),
            })?;
            Some(V2Place {
                id: id.flatten().map(super::Id),
                full_name: full_name.flatten(),
                country_code: country_code.flatten(),
            })
        }

        fn rule(&mut self) -> Option<Rule<'a>> {
            let (mut id, mut tag) = (None, None);
            self.object(|r, key| match key {
                "id" => set(&mut id, r.opt_id()?),
                "tag" => set(&mut tag, r.opt_str()?),
                _ => r.skip_value(MAX_DEPTH),
            })?;
            Some(Rule {
                id: id.flatten(),
                tag: tag.flatten(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const V2_FULL: &str = r#"{"data":{"id":"1861000000000000001","text":"Booster done 💉 #VaccinesWork with @synth_quiet_otter1 $ACME https://t.co/abc","created_at":"2026-11-21T10:00:00.000Z","lang":"en","author_id":"42","public_metrics":{"retweet_count":3,"reply_count":1,"like_count":20,"quote_count":2},"entities":{"hashtags":[{"start":15,"end":28,"tag":"VaccinesWork"}],"mentions":[{"start":34,"end":53,"username":"synth_quiet_otter1","id":"7"}],"cashtags":[{"start":54,"end":59,"tag":"ACME"}],"urls":[{"start":60,"end":77,"url":"https://t.co/abc","expanded_url":"https://example.com/a","display_url":"example.com/a"}]},"geo":{"place_id":"p1"},"attachments":{"media_keys":["3_1"]},"edit_history_tweet_ids":["1861000000000000001"]},"includes":{"users":[{"id":"7","username":"synth_quiet_otter1","name":"Other"},{"id":"42","username":"synth_brisk_heron2","name":"Brisk Heron","location":"NYC 🗽","verified":true,"public_metrics":{"followers_count":1234,"following_count":5}}],"places":[{"id":"p0","full_name":"Elsewhere"},{"id":"p1","full_name":"Lisbon, Portugal","country_code":"PT"}]},"matching_rules":[{"id":"1","tag":"covid"},{"id":2,"tag":"city"}]}"#;

    /// The committed sample, which the fast path must read exactly as serde does.
    const SAMPLE: &str = include_str!("../../../config/samples/posts.jsonl");

    /// Decodes `line` both ways (fast path first, and serde only) and checks they agree.
    #[track_caller]
    fn assert_paths_agree(line: &str) {
        let both = decode(line);
        let serde_only =
            starts_an_object(line).and_then(|()| decode_serde(line, || Arc::from(line)));
        assert_eq!(both, serde_only, "{line:?}");
    }

    #[test]
    fn the_fast_path_reads_the_sample_like_serde() {
        let mut fast_reads = 0;
        let lines: Vec<&str> = SAMPLE.lines().collect();
        for line in &lines {
            assert_paths_agree(line);
            fast_reads += usize::from(fast::v2(line).is_some());
        }
        // Every well-formed v2 post takes the fast path; the planted malformed lines don't.
        assert!(
            fast_reads * 100 > lines.len() * 95,
            "{fast_reads} of {}",
            lines.len()
        );
    }

    /// Every non-ASCII character as a `\u` escape (surrogate pairs beyond the BMP).
    fn escape_non_ascii(line: &str) -> String {
        let mut out = String::with_capacity(line.len() * 2);
        for ch in line.chars() {
            if ch.is_ascii() {
                out.push(ch);
            } else {
                let mut units = [0u16; 2];
                for unit in ch.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
        }
        out
    }

    #[test]
    fn the_fast_path_agrees_on_reordered_spaced_and_escaped_lines() {
        let lines = SAMPLE.lines().take(40).chain([V2_FULL]);
        for line in lines {
            let Ok(value) = serde_json::from_str::<serde_json::Value>(line) else {
                assert_paths_agree(line);
                continue;
            };
            // serde_json's map sorts keys: every object comes out in another order.
            let sorted = value.to_string();
            let pretty = serde_json::to_string_pretty(&value).unwrap();
            let escaped = escape_non_ascii(line);
            for variant in [
                sorted.as_str(),
                &pretty,
                &escaped,
                &format!(" \t\r\n{line}\n "),
            ] {
                assert_paths_agree(variant);
            }
            assert_eq!(
                Post {
                    raw: None,
                    ..decode(&escaped).unwrap_or_default()
                },
                Post {
                    raw: None,
                    ..decode(line).unwrap_or_default()
                }
            );
        }
    }

    #[test]
    fn the_fast_path_agrees_on_every_truncation_and_byte_change() {
        let sample_line = SAMPLE.lines().next().unwrap();
        let replacements = [
            b'"', b'\\', b'0', b'9', b'-', b'n', b't', b'f', b' ', b'{', b'}', b'[', b']', b',',
            b':', b'.', b'e', b'u', 0x01, b'\t', 0x0c,
        ];
        for line in [V2_FULL, sample_line] {
            for end in (0..line.len()).filter(|&end| line.is_char_boundary(end)) {
                assert_paths_agree(&line[..end]);
            }
            for at in (0..line.len()).filter(|&at| line.as_bytes()[at].is_ascii()) {
                for replacement in replacements {
                    let mut bytes = line.as_bytes().to_vec();
                    bytes[at] = replacement;
                    assert_paths_agree(std::str::from_utf8(&bytes).unwrap());
                }
            }
        }
    }

    #[test]
    fn the_fast_path_agrees_on_unusual_values() {
        let cases = [
            // Escapes, \u escapes, surrogate pairs, lone surrogates, bad escapes.
            r#"{"data":{"id":"1","text":"a\"b\\c\/d\b\f\n\r\t\u00e9\ud83d\ude00"}}"#,
            r#"{"data":{"id":"1","text":"lone \ud83d here"}}"#,
            r#"{"data":{"id":"1","text":"lone \ude00 here"}}"#,
            r#"{"data":{"id":"1","text":"bad \x escape"}}"#,
            r#"{"data":{"id":"1","text":"short \u12"}}"#,
            r#"{"data":{"id":"1","skipped":"lone \ud83d is fine when ignored"}}"#,
            r#"{"data":{"id":"1","skipped":"bad \q escape"}}"#,
            "{\"data\":{\"id\":\"1\",\"text\":\"raw\ttab\"}}",
            "{\"data\":{\"id\":\"1\",\"skipped\":\"raw\u{1}control\"}}",
            r#"{"data":{"id":"1","t\u0065xt":"escaped key"}}"#,
            // Nulls everywhere, and missing parts.
            r#"{"data":{"id":"1","text":null,"created_at":null,"lang":null,"author_id":null,"public_metrics":null,"entities":null,"referenced_tweets":null,"in_reply_to_user_id":null,"geo":null,"attachments":null,"note_tweet":null},"includes":null,"matching_rules":null}"#,
            r#"{"data":{"id":"1","author_id":"2","public_metrics":{"like_count":null},"entities":{"hashtags":null,"urls":[{"url":null,"expanded_url":null}]}},"includes":{"users":[{"id":null},{"id":"2","name":null,"location":null,"verified":null,"public_metrics":{"followers_count":null}}],"places":null}}"#,
            r#"{"data":{"id":"1","text":"no includes","author_id":"2","geo":{"place_id":"p"}}}"#,
            r#"{"data":{"id":"1","geo":{"place_id":"p"}},"includes":{"places":[{"id":"p","full_name":"P"}]}}"#,
            r#"{"data":{"id":"1","geo":{"place_id":7}},"includes":{"places":[{"id":7,"full_name":"P"}]}}"#,
            // Out-of-order keys: includes and rules before data.
            r#"{"matching_rules":[{"tag":"t","id":"9"}],"includes":{"users":[{"username":"u","id":"2"}]},"data":{"author_id":"2","id":"1"}}"#,
            // Ids and counts as numbers, at and past their limits.
            r#"{"data":{"id":1,"author_id":18446744073709551615,"in_reply_to_user_id":0}}"#,
            r#"{"data":{"id":18446744073709551616}}"#,
            r#"{"data":{"id":-1}}"#,
            r#"{"data":{"id":1.0}}"#,
            r#"{"data":{"id":"1","public_metrics":{"like_count":01}}}"#,
            r#"{"data":{"id":"1","public_metrics":{"like_count":1e3}}}"#,
            r#"{"data":{"id":"1","public_metrics":{"like_count":-0}}}"#,
            r#"{"data":{"id":"1","public_metrics":{"like_count":18446744073709551615}}}"#,
            r#"{"data":{"id":"1","public_metrics":{"like_count":18446744073709551616}}}"#,
            r#"{"data":{"id":"1","public_metrics":{"like_count":true}}}"#,
            r#"{"data":{"id":"1","skipped":[-0.5e+10,1E-2,0,-12,{"a":[true,false,null]}]}}"#,
            r#"{"data":{"id":"1","skipped":-}}"#,
            r#"{"data":{"id":"1","skipped":1.}}"#,
            r#"{"data":{"id":"1","skipped":1e}}"#,
            r#"{"data":{"id":"1","skipped":[1,]}}"#,
            r#"{"data":{"id":"1","skipped":{"a":1,}}}"#,
            r#"{"data":{"id":"1","skipped":nul}}"#,
            // Duplicates and aliases.
            r#"{"data":{"id":"1","id":"2"}}"#,
            r#"{"data":{"id":"1","text":null,"text":"x"}}"#,
            r#"{"data":{"id":"1"},"data":{"id":"2"}}"#,
            r#"{"data":{"id":"1","entities":{"symbols":[{"text":"A"}],"user_mentions":[{"screen_name":"m"}]}}}"#,
            r#"{"data":{"id":"1","entities":{"symbols":[{"text":"A"}],"cashtags":[{"tag":"B"}]}}}"#,
            r#"{"data":{"id":"1","entities":{"hashtags":[{"text":"A","tag":"B"}]}}}"#,
            // Media, references, notes.
            r#"{"data":{"id":"1","attachments":{"media_keys":[]},"entities":{"media":[{"id":1}]}}}"#,
            r#"{"data":{"id":"1","attachments":{"media_keys":{}}}}"#,
            r#"{"data":{"id":"1","referenced_tweets":[{"type":"retweeted"},{"type":null},{}]}}"#,
            r##"{"data":{"id":"1","text":"s","note_tweet":{"text":"long #x","entities":{"hashtags":[{"tag":"x"}]}}}}"##,
            // Other shapes: v1.1 keys, errors, arrays where objects belong, non-posts.
            r#"{"data":{"id":"1"},"errors":[{"title":"partial"}]}"#,
            r#"{"data":{"id":"1"},"text":5}"#,
            r#"{"data":{"id":"1"},"unknown":{"deep":[[[[1]]]]}}"#,
            r#"{"data":null}"#,
            r#"{"data":[{"id":"1"}]}"#,
            r#"{"data":{"id":"1","public_metrics":[1,2,3,4]}}"#,
            r#"{"data":{"id":"1"},"matching_rules":[null]}"#,
            r#"{"data":{"id":"1"},"matching_rules":[["1","t"]]}"#,
            r#"{"data":{"id":"1"},"includes":{"users":{}}}"#,
            r#"{"id_str":"1","text":"v1"}"#,
            r#"{"errors":[{"title":"x"}]}"#,
            r#"{}"#,
            // Whitespace serde accepts and whitespace it does not, trailing text.
            " {\"data\" : {\"id\" :\"1\" } } \r\n",
            "\u{c}{\"data\":{\"id\":\"1\"}}",
            "{\"data\":{\"id\":\"1\"}}\u{c}",
            r#"{"data":{"id":"1"}} x"#,
            r#"{"data":{"id":"1"}}{}"#,
            r#"{"data":{"id":"1","created_at":"2026-02-30T10:00:00.000Z"}}"#,
        ];
        for line in cases {
            assert_paths_agree(line);
        }
        let deep = format!(
            r#"{{"data":{{"id":"1","deep":{}1{}}}}}"#,
            "[".repeat(200),
            "]".repeat(200)
        );
        assert_paths_agree(&deep);
    }

    #[test]
    fn v2_message_fills_every_field() {
        let post = decode(V2_FULL).unwrap();
        assert_eq!(post.id, "1861000000000000001");
        assert_eq!(
            post.created_at.unwrap().to_rfc3339(),
            "2026-11-21T10:00:00+00:00"
        );
        assert!(post.text.starts_with("Booster done 💉 #VaccinesWork"));
        assert_eq!(post.lang, "en");
        assert_eq!(
            post.author,
            Author {
                id: "42".into(),
                username: "synth_brisk_heron2".into(),
                name: "Brisk Heron".into(),
                location: Some("NYC 🗽".into()),
                followers: 1234,
                verified: true,
            }
        );
        assert_eq!(
            post.metrics,
            Metrics {
                retweets: 3,
                likes: 20,
                replies: 1,
                quotes: 2
            }
        );
        assert_eq!(post.hashtags, ["VaccinesWork"]);
        assert_eq!(post.mentions, ["synth_quiet_otter1"]);
        assert_eq!(post.cashtags, ["ACME"]);
        assert_eq!(post.urls, ["https://example.com/a"]);
        assert_eq!(
            post.place,
            Some(Place {
                id: "p1".into(),
                full_name: "Lisbon, Portugal".into(),
                country_code: Some("PT".into()),
            })
        );
        assert_eq!(post.tweet_location(), Some("Lisbon, Portugal"));
        assert!(post.has_media);
        assert!(!post.is_retweet && !post.is_reply && !post.is_quote);
        assert_eq!(post.in_reply_to_user_id, None);
        assert_eq!(post.rule_tags().collect::<Vec<_>>(), ["covid", "city"]);
        assert_eq!(post.matching_rules[1].id, "2");
        assert_eq!(post.raw.as_deref(), Some(V2_FULL));
        assert!(post.attrs.is_empty());
    }

    #[test]
    fn a_shared_message_is_kept_as_raw_without_a_copy() {
        let message: Arc<str> = Arc::from(V2_FULL);
        let post = decode_shared(&message).unwrap();
        assert!(Arc::ptr_eq(post.raw.as_ref().unwrap(), &message));
        assert_eq!(post, decode(V2_FULL).unwrap());
        assert_eq!(decode_shared(&Arc::from("")), Err(DecodeError::Blank));
    }

    #[test]
    fn v2_without_includes_keeps_author_id_only() {
        let line = r#"{"data":{"id":"5","text":"hi","author_id":"9","geo":{"place_id":"p"}}}"#;
        let post = decode(line).unwrap();
        assert_eq!(post.author.id, "9");
        assert_eq!(post.author.username, "");
        assert_eq!(post.author.location, None);
        assert_eq!(post.place, None);
        assert_eq!(post.created_at, None);
        assert_eq!(post.lang, "");
        assert!(post.matching_rules.is_empty());
        assert!(post.hashtags.is_empty() && post.urls.is_empty());
    }

    #[test]
    fn v2_author_missing_from_includes() {
        let line = r#"{"data":{"id":"5","text":"hi","author_id":"9"},"includes":{"users":[{"id":"8","username":"x"}]}}"#;
        let post = decode(line).unwrap();
        assert_eq!(post.author.id, "9");
        assert_eq!(post.author.username, "");
    }

    #[test]
    fn v2_references_set_the_flags() {
        let retweet = r#"{"data":{"id":"1","text":"RT @a: hi","referenced_tweets":[{"type":"retweeted","id":"0"}]}}"#;
        let post = decode(retweet).unwrap();
        assert!(post.is_retweet && !post.is_reply && !post.is_quote);

        let reply = r#"{"data":{"id":"1","text":"@a yes","in_reply_to_user_id":"77","referenced_tweets":[{"type":"replied_to","id":"0"}]}}"#;
        let post = decode(reply).unwrap();
        assert!(post.is_reply && !post.is_retweet && !post.is_quote);
        assert_eq!(post.in_reply_to_user_id.as_deref(), Some("77"));

        let quote = r#"{"data":{"id":"1","text":"look","referenced_tweets":[{"type":"quoted","id":"0"},{"type":"replied_to","id":"2"}]}}"#;
        let post = decode(quote).unwrap();
        assert!(post.is_quote && post.is_reply && !post.is_retweet);
        assert_eq!(post.in_reply_to_user_id, None);
    }

    #[test]
    fn v2_note_tweet_replaces_text_and_entities() {
        let line = r##"{"data":{"id":"1","text":"short…","entities":{"hashtags":[{"tag":"short"}]},"note_tweet":{"text":"the long #one","entities":{"hashtags":[{"tag":"one"}]}}}}"##;
        let post = decode(line).unwrap();
        assert_eq!(post.text, "the long #one");
        assert_eq!(post.hashtags, ["one"]);

        let without_entities = r##"{"data":{"id":"1","text":"short…","entities":{"hashtags":[{"tag":"short"}]},"note_tweet":{"text":"the long one"}}}"##;
        let post = decode(without_entities).unwrap();
        assert_eq!(post.text, "the long one");
        assert_eq!(post.hashtags, ["short"]);
    }

    #[test]
    fn escapes_and_unicode_are_decoded() {
        let line = r#"{"data":{"id":"1","text":"caf\u00e9 \"quoted\"\nline \ud83d\ude00 مرحبا 東京 नमस्ते","author_id":"2"},"includes":{"users":[{"id":"2","username":"u","name":"Ren\u00e9e \ud83c\udf3b","location":"S\u00e3o Paulo"}]}}"#;
        let post = decode(line).unwrap();
        assert_eq!(post.text, "café \"quoted\"\nline 😀 مرحبا 東京 नमस्ते");
        assert_eq!(post.author.name, "Renée 🌻");
        assert_eq!(post.author.location.as_deref(), Some("São Paulo"));
    }

    #[test]
    fn blank_locations_become_none() {
        let line = r#"{"data":{"id":"1","text":"x","author_id":"2"},"includes":{"users":[{"id":"2","location":"  "}]}}"#;
        assert_eq!(decode(line).unwrap().author.location, None);
    }

    #[test]
    fn v2_data_with_partial_errors_is_still_a_post() {
        let line = r#"{"data":{"id":"1","text":"x"},"errors":[{"title":"Authorization Error"}]}"#;
        assert_eq!(decode(line).unwrap().id, "1");
    }

    const V1_EXTENDED: &str = r#"{"created_at":"Wed Oct 10 20:19:24 +0000 2018","id":1050118621198921728,"id_str":"1050118621198921728","text":"To make room for more expression, we will now count all emojis as equal\u2014including those with gender\u200d\u200d and skin t\u2026 https://t.co/MkGjXf9aXm","truncated":true,"user":{"id":6253282,"id_str":"6253282","name":"Synthetic API","screen_name":"synth_api","location":"San Francisco, CA","followers_count":6129794,"verified":true},"lang":"en","extended_tweet":{"full_text":"To make room for more expression, we will now count all emojis as equal\u2014including those with gender\u200d\u200d and skin tone modifiers \ud83d\udc4d\ud83c\udffb #Emoji @synth_dev $TWTR","entities":{"hashtags":[{"text":"Emoji","indices":[0,1]}],"user_mentions":[{"screen_name":"synth_dev","id_str":"1"}],"symbols":[{"text":"TWTR"}],"urls":[]},"extended_entities":{"media":[{"id":1}]}},"entities":{"hashtags":[],"user_mentions":[],"symbols":[],"urls":[{"url":"https://t.co/MkGjXf9aXm","expanded_url":"https://twitter.com/i/web/status/1050118621198921728"}]},"retweet_count":161,"favorite_count":295,"reply_count":7,"quote_count":3,"is_quote_status":false,"in_reply_to_status_id_str":null,"in_reply_to_user_id_str":null,"place":null,"retweeted_status":null}"#;

    #[test]
    fn v1_status_prefers_extended_tweet() {
        let post = decode(V1_EXTENDED).unwrap();
        assert_eq!(post.id, "1050118621198921728");
        assert_eq!(
            post.created_at.unwrap().to_rfc3339(),
            "2018-10-10T20:19:24+00:00"
        );
        assert!(post.text.ends_with("modifiers 👍🏻 #Emoji @synth_dev $TWTR"));
        assert_eq!(post.lang, "en");
        assert_eq!(post.author.id, "6253282");
        assert_eq!(post.author.username, "synth_api");
        assert_eq!(post.author.name, "Synthetic API");
        assert_eq!(post.author.location.as_deref(), Some("San Francisco, CA"));
        assert_eq!(post.author.followers, 6_129_794);
        assert!(post.author.verified);
        assert_eq!(post.hashtags, ["Emoji"]);
        assert_eq!(post.mentions, ["synth_dev"]);
        assert_eq!(post.cashtags, ["TWTR"]);
        assert!(post.urls.is_empty());
        assert_eq!(
            post.metrics,
            Metrics {
                retweets: 161,
                likes: 295,
                replies: 7,
                quotes: 3
            }
        );
        assert!(post.has_media);
        assert!(!post.is_retweet && !post.is_reply && !post.is_quote);
        assert_eq!(post.place, None);
    }

    #[test]
    fn v1_plain_status_and_fallbacks() {
        let line = r#"{"id":123,"text":"short one https://t.co/x","full_text":"full one https://t.co/x","entities":{"urls":[{"url":"https://t.co/x","expanded_url":null}],"media":[{"id":1}]},"user":{"id":9,"screen_name":"s","location":""},"place":{"id":"pl","full_name":"Paris, France","country_code":"FR"}}"#;
        let post = decode(line).unwrap();
        assert_eq!(post.id, "123");
        assert_eq!(post.text, "full one https://t.co/x");
        assert_eq!(post.urls, ["https://t.co/x"]);
        assert!(post.has_media);
        assert_eq!(post.author.id, "9");
        assert_eq!(post.author.location, None);
        assert_eq!(post.tweet_location(), Some("Paris, France"));
        assert_eq!(post.created_at, None);
    }

    #[test]
    fn v1_retweet_reply_quote() {
        let retweet =
            r#"{"id_str":"2","text":"RT @a: hi","retweeted_status":{"id_str":"1","text":"hi"}}"#;
        assert!(decode(retweet).unwrap().is_retweet);

        let reply = r#"{"id_str":"2","text":"@a hi","in_reply_to_status_id_str":"1","in_reply_to_user_id_str":"55"}"#;
        let post = decode(reply).unwrap();
        assert!(post.is_reply && !post.is_retweet);
        assert_eq!(post.in_reply_to_user_id.as_deref(), Some("55"));

        let quote = r#"{"id_str":"2","text":"look","is_quote_status":true}"#;
        assert!(decode(quote).unwrap().is_quote);
        let quote = r#"{"id_str":"2","text":"look","quoted_status":{"id_str":"1"}}"#;
        assert!(decode(quote).unwrap().is_quote);
    }

    #[test]
    fn blank_lines_are_keep_alives() {
        assert_eq!(decode(""), Err(DecodeError::Blank));
        assert_eq!(decode(" \r\n"), Err(DecodeError::Blank));
        assert_eq!(DecodeError::Blank.kind(), "blank");
    }

    #[test]
    fn truncated_json_is_not_json_with_position() {
        let line = &V2_FULL[..200];
        let error = decode(line).unwrap_err();
        assert!(
            matches!(
                error,
                DecodeError::NotJson {
                    line: 1,
                    column: 200,
                    ..
                }
            ),
            "{error:?}"
        );
        assert_eq!(error.kind(), "not_json");
        let message = error.to_string();
        assert!(
            message.starts_with("not JSON (line 1, column 200): EOF"),
            "{message}"
        );

        let garbage = decode("hello").unwrap_err();
        assert!(
            matches!(garbage, DecodeError::NotJson { .. }),
            "{garbage:?}"
        );
        let trailing = decode(r#"{"id_str":"1"} x"#).unwrap_err();
        assert!(
            matches!(trailing, DecodeError::NotJson { .. }),
            "{trailing:?}"
        );
    }

    #[test]
    fn json_that_is_not_an_object() {
        for (line, found) in [
            ("[1,2]", "an array"),
            (r#""text""#, "a string"),
            ("42", "a number"),
            ("-1.5", "a number"),
            ("null", "null"),
            ("true", "a boolean"),
        ] {
            let error = decode(line).unwrap_err();
            assert_eq!(error, DecodeError::NotObject { found }, "{line}");
            assert_eq!(
                error.to_string(),
                format!("expected a JSON object holding a post, found {found}")
            );
        }
    }

    #[test]
    fn x_error_messages_are_named() {
        let line = r#"{"errors":[{"title":"operational-disconnect","disconnect_type":"UpstreamOperationalDisconnect","detail":"This stream has been disconnected upstream for operational reasons.","type":"https://api.twitter.com/2/problems/operational-disconnect"}]}"#;
        let error = decode(line).unwrap_err();
        assert_eq!(error.kind(), "x_error");
        let DecodeError::XError { title, detail } = &error else {
            panic!("{error:?}");
        };
        assert_eq!(title, "operational-disconnect");
        assert!(detail.starts_with("This stream has been disconnected"));
        assert!(detail.contains("problems/operational-disconnect"));
        assert!(error.to_string().starts_with(
            "an error message from X, not a post: operational-disconnect (This stream"
        ));

        let v1 = r#"{"errors":[{"code":88,"message":"Rate limit exceeded"},{"code":1}]}"#;
        let error = decode(v1).unwrap_err();
        assert_eq!(
            error.to_string(),
            "an error message from X, not a post: Rate limit exceeded (and 1 more error(s))"
        );
        let empty = decode(r#"{"errors":[]}"#).unwrap_err();
        assert_eq!(empty.kind(), "x_error");
    }

    #[test]
    fn objects_without_a_post() {
        let error = decode("{}").unwrap_err();
        assert_eq!(
            error,
            DecodeError::NotAPost {
                keys: String::new()
            }
        );
        let error = decode(r#"{"limit":{"track":3},"x":1}"#).unwrap_err();
        assert_eq!(
            error,
            DecodeError::NotAPost {
                keys: "limit, x".into()
            }
        );
        assert!(error.to_string().contains("[limit, x]"));
    }

    #[test]
    fn missing_or_empty_ids() {
        for line in [
            r#"{"data":{"text":"no id"}}"#,
            r#"{"data":{"id":"","text":"empty id"}}"#,
        ] {
            assert_eq!(
                decode(line),
                Err(DecodeError::MissingId { field: "data.id" }),
                "{line}"
            );
        }
        for line in [
            r#"{"user":{"id_str":"1"},"text":"x"}"#,
            r#"{"id_str":"","text":"x"}"#,
        ] {
            assert_eq!(
                decode(line),
                Err(DecodeError::MissingId { field: "id_str" }),
                "{line}"
            );
        }
        assert_eq!(
            decode(r#"{"data":{}}"#).unwrap_err().to_string(),
            "the post has no id: `data.id` is missing or empty"
        );
    }

    #[test]
    fn wrong_types_name_the_field() {
        let line = V2_FULL.replace(r#""like_count":20"#, r#""like_count":"20""#);
        let error = decode(&line).unwrap_err();
        let DecodeError::WrongType { field, message, .. } = &error else {
            panic!("{error:?}");
        };
        assert_eq!(field, "data.public_metrics.like_count");
        assert_eq!(message, r#"invalid type: string "20", expected u64"#);
        assert_eq!(error.kind(), "wrong_type");
        assert!(
            error
                .to_string()
                .starts_with("field `data.public_metrics.like_count` has the wrong type")
        );

        for (line, expected) in [
            (r#"{"data":[{"id":"1"}]}"#, "data"),
            (r#"{"data":["1"]}"#, "data"),
            (r#"{"data":{"id":"1","text":5}}"#, "data.text"),
            (r#"{"data":{"id":true}}"#, "data.id"),
            (
                r#"{"data":{"id":"1","entities":{"hashtags":[{"tag":1}]}}}"#,
                "data.entities.hashtags[0].tag",
            ),
            (
                r#"{"id_str":"1","user":{"followers_count":-3}}"#,
                "user.followers_count",
            ),
            (
                r#"{"id_str":"1","entities":{"user_mentions":[{"screen_name":["a"]}]}}"#,
                "entities.user_mentions[0].screen_name",
            ),
            (
                r#"{"data":{"id":"1"},"matching_rules":{"id":"1"}}"#,
                "matching_rules",
            ),
        ] {
            match decode(line) {
                Err(DecodeError::WrongType { field, .. }) => assert_eq!(field, expected, "{line}"),
                other => panic!("{line}: {other:?}"),
            }
        }
    }

    #[test]
    fn the_v2_time_fast_path_agrees_with_chrono() {
        for value in [
            "2026-11-21T10:00:00.000Z",
            "2026-03-01T08:00:23.858Z",
            "1999-12-31T23:59:59.999Z",
            "2024-02-29T00:00:00.001Z",
        ] {
            let fast = x_v2_time(value).unwrap();
            let general = DateTime::parse_from_rfc3339(value).unwrap();
            assert_eq!(fast, general.with_timezone(&Utc), "{value}");
        }
        // Other RFC 3339 shapes, leap seconds and impossible dates take the general parser.
        for value in [
            "2026-11-21T10:00:00Z",
            "2026-11-21T10:00:00.000+01:00",
            "2026-11-21T10:00:00.123456Z",
            "2016-12-31T23:59:60.000Z",
            "2026-02-30T10:00:00.000Z",
            "2026-11-21T24:00:00.000Z",
            "2026-1a-21T10:00:00.000Z",
            "+026-11-21T10:00:00.000Z",
        ] {
            assert_eq!(x_v2_time(value), None, "{value}");
        }
        let decoded = decode(r#"{"data":{"id":"1","created_at":"2026-11-21T10:00:00.000+01:00"}}"#);
        assert_eq!(
            decoded.unwrap().created_at.unwrap().to_rfc3339(),
            "2026-11-21T09:00:00+00:00"
        );
        let error = decode(r#"{"data":{"id":"1","created_at":"2026-02-30T10:00:00.000Z"}}"#);
        assert_eq!(error.unwrap_err().kind(), "bad_created_at");
    }

    #[test]
    fn bad_created_at_names_the_value() {
        let error = decode(r#"{"data":{"id":"1","created_at":"yesterday"}}"#).unwrap_err();
        assert_eq!(
            error,
            DecodeError::BadCreatedAt {
                field: "data.created_at",
                value: "yesterday".into(),
                expected: V2_TIME_FORMAT,
            }
        );
        assert_eq!(
            error.to_string(),
            "`data.created_at` is not a valid timestamp (RFC 3339, like 2026-11-21T10:00:00.000Z): \"yesterday\""
        );
        let wrong_weekday = r#"{"id_str":"1","created_at":"Mon Oct 10 20:19:24 +0000 2018"}"#;
        assert!(decode(wrong_weekday).unwrap().created_at.is_some());
        let error = decode(r#"{"id_str":"1","created_at":"2018-10-10T20:19:24Z"}"#).unwrap_err();
        assert_eq!(error.kind(), "bad_created_at");
        assert!(
            error
                .to_string()
                .contains("v1.1, like Wed Oct 10 20:19:24 +0000 2018")
        );
    }
}
