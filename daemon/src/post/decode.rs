//! Decoding X API v2 stream messages and v1.1 statuses into [`Post`].
//!
//! One serde pass reads a line into borrowed structs that know both shapes (a v2
//! message keeps its post under `data`; a v1.1 status has `id_str`, `user`, … at the
//! top level), so strings are copied once, straight into the [`Post`]. Only when that
//! pass fails does a second, slower pass run to name the offending field.

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
    let trimmed = line.trim_ascii_start();
    match trimmed.as_bytes().first() {
        None => return Err(DecodeError::Blank),
        Some(b'{') => {}
        Some(&first) => return Err(not_an_object(trimmed, first)),
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    const V2_FULL: &str = r#"{"data":{"id":"1861000000000000001","text":"Booster done 💉 #VaccinesWork with @synth_quiet_otter1 $ACME https://t.co/abc","created_at":"2026-11-21T10:00:00.000Z","lang":"en","author_id":"42","public_metrics":{"retweet_count":3,"reply_count":1,"like_count":20,"quote_count":2},"entities":{"hashtags":[{"start":15,"end":28,"tag":"VaccinesWork"}],"mentions":[{"start":34,"end":53,"username":"synth_quiet_otter1","id":"7"}],"cashtags":[{"start":54,"end":59,"tag":"ACME"}],"urls":[{"start":60,"end":77,"url":"https://t.co/abc","expanded_url":"https://example.com/a","display_url":"example.com/a"}]},"geo":{"place_id":"p1"},"attachments":{"media_keys":["3_1"]},"edit_history_tweet_ids":["1861000000000000001"]},"includes":{"users":[{"id":"7","username":"synth_quiet_otter1","name":"Other"},{"id":"42","username":"synth_brisk_heron2","name":"Brisk Heron","location":"NYC 🗽","verified":true,"public_metrics":{"followers_count":1234,"following_count":5}}],"places":[{"id":"p0","full_name":"Elsewhere"},{"id":"p1","full_name":"Lisbon, Portugal","country_code":"PT"}]},"matching_rules":[{"id":"1","tag":"covid"},{"id":2,"tag":"city"}]}"#;

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
