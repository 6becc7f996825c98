//! The one row shape every sink writes, and the small helpers the sinks share.
//!
//! A [`Row`] borrows a [`Post`] and names its fields the way the tables and files
//! downstream expect them (`favorite_count`, `user_name`, `matching_rules`, …).
//! [`Row::write_json_line`] renders a JSONL line in one pass with the writers of
//! [`json`], byte for byte what `serde_json` would write; the `Serialize` impl
//! gives the same keys to the BigQuery sink, and [`COLUMNS`] lists them with
//! their SQL types for the SQLite sink. [`RecentIds`] is the
//! bounded memory of recently written post ids that sinks without a primary key
//! use to skip duplicates within a run.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, Datelike, SecondsFormat, Timelike, Utc};
use serde::{Serialize, Serializer};

use super::json;
use crate::post::{AttrName, AttrValue, MatchingRule, Post};

/// A column the sinks write, with the SQLite type it is stored as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Column {
    pub name: &'static str,
    /// The SQLite type (`TEXT` or `INTEGER`).
    pub sql_type: &'static str,
    /// Extra constraints used when the sink creates the table.
    pub constraint: &'static str,
}

const fn column(name: &'static str, sql_type: &'static str, constraint: &'static str) -> Column {
    Column {
        name,
        sql_type,
        constraint,
    }
}

/// The default columns, in the order [`Row`] serialises them (`raw` is separate).
pub const COLUMNS: [Column; 23] = [
    column("id", "TEXT", "PRIMARY KEY NOT NULL"),
    column("created_at", "TEXT", ""),
    column("tweet_location", "TEXT", ""),
    column("text", "TEXT", "NOT NULL"),
    column("retweet_count", "INTEGER", "NOT NULL"),
    column("favorite_count", "INTEGER", "NOT NULL"),
    column("reply_count", "INTEGER", "NOT NULL"),
    column("quote_count", "INTEGER", "NOT NULL"),
    column("user_id", "TEXT", "NOT NULL"),
    column("user_name", "TEXT", "NOT NULL"),
    column("user_display_name", "TEXT", "NOT NULL"),
    column("user_location", "TEXT", ""),
    column("user_followers_count", "INTEGER", "NOT NULL"),
    column("lang", "TEXT", "NOT NULL"),
    column("hashtags", "TEXT", "NOT NULL"),
    column("mentions", "TEXT", "NOT NULL"),
    column("urls", "TEXT", "NOT NULL"),
    column("is_retweet", "INTEGER", "NOT NULL"),
    column("is_reply", "INTEGER", "NOT NULL"),
    column("is_quote", "INTEGER", "NOT NULL"),
    column("matching_rules", "TEXT", "NOT NULL"),
    column("attrs", "TEXT", "NOT NULL"),
    column("ingested_at", "TEXT", "NOT NULL"),
];

/// The original message, written only when a sink's `store_raw` is set.
pub const RAW_COLUMN: Column = column("raw", "TEXT", "");

/// The columns a sink writes, `raw` last when `store_raw` is set.
pub fn columns(store_raw: bool) -> impl Iterator<Item = &'static Column> {
    COLUMNS.iter().chain(store_raw.then_some(&RAW_COLUMN))
}

/// One post as a row: borrowed, cheap to build, serialisable as a JSON object.
#[derive(Debug, Clone, Serialize)]
pub struct Row<'a> {
    pub id: &'a str,
    pub created_at: Option<Rfc3339Millis>,
    pub tweet_location: Option<&'a str>,
    pub text: &'a str,
    pub retweet_count: u64,
    pub favorite_count: u64,
    pub reply_count: u64,
    pub quote_count: u64,
    pub user_id: &'a str,
    pub user_name: &'a str,
    pub user_display_name: &'a str,
    pub user_location: Option<&'a str>,
    pub user_followers_count: u64,
    pub lang: &'a str,
    pub hashtags: &'a [String],
    pub mentions: &'a [String],
    pub urls: &'a [String],
    pub is_retweet: bool,
    pub is_reply: bool,
    pub is_quote: bool,
    pub matching_rules: RuleTags<'a>,
    pub attrs: &'a BTreeMap<AttrName, AttrValue>,
    pub ingested_at: &'a str,
    /// `None` leaves the key out; `Some(None)` writes `null` (no original kept).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub raw: Option<Option<&'a str>>,
}

impl<'a> Row<'a> {
    /// The row for `post`, written at `ingested_at` (see [`rfc3339_millis`]).
    pub fn new(post: &'a Post, ingested_at: &'a str, store_raw: bool) -> Self {
        Row {
            id: &post.id,
            created_at: post.created_at.map(Rfc3339Millis),
            tweet_location: post.tweet_location(),
            text: &post.text,
            retweet_count: post.metrics.retweets,
            favorite_count: post.metrics.likes,
            reply_count: post.metrics.replies,
            quote_count: post.metrics.quotes,
            user_id: &post.author.id,
            user_name: &post.author.username,
            user_display_name: &post.author.name,
            user_location: post.author.location.as_deref(),
            user_followers_count: post.author.followers,
            lang: &post.lang,
            hashtags: &post.hashtags,
            mentions: &post.mentions,
            urls: &post.urls,
            is_retweet: post.is_retweet,
            is_reply: post.is_reply,
            is_quote: post.is_quote,
            matching_rules: RuleTags(&post.matching_rules),
            attrs: &post.attrs,
            ingested_at,
            raw: store_raw.then_some(post.raw.as_deref()),
        }
    }

    /// Appends the row as one JSON line (with the trailing `\n`) to `out`:
    /// the bytes `serde_json` writes for the row, rendered without it (see
    /// [`json`]).
    pub fn write_json_line(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"id\":");
        json::string(out, self.id);
        out.extend_from_slice(b",\"created_at\":");
        match self.created_at {
            Some(time) => {
                out.push(b'"');
                time.write_text(out);
                out.push(b'"');
            }
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(b",\"tweet_location\":");
        json::optional_string(out, self.tweet_location);
        out.extend_from_slice(b",\"text\":");
        json::string(out, self.text);
        out.extend_from_slice(b",\"retweet_count\":");
        json::unsigned(out, self.retweet_count);
        out.extend_from_slice(b",\"favorite_count\":");
        json::unsigned(out, self.favorite_count);
        out.extend_from_slice(b",\"reply_count\":");
        json::unsigned(out, self.reply_count);
        out.extend_from_slice(b",\"quote_count\":");
        json::unsigned(out, self.quote_count);
        out.extend_from_slice(b",\"user_id\":");
        json::string(out, self.user_id);
        out.extend_from_slice(b",\"user_name\":");
        json::string(out, self.user_name);
        out.extend_from_slice(b",\"user_display_name\":");
        json::string(out, self.user_display_name);
        out.extend_from_slice(b",\"user_location\":");
        json::optional_string(out, self.user_location);
        out.extend_from_slice(b",\"user_followers_count\":");
        json::unsigned(out, self.user_followers_count);
        out.extend_from_slice(b",\"lang\":");
        json::string(out, self.lang);
        out.extend_from_slice(b",\"hashtags\":");
        json::strings(out, self.hashtags.iter().map(String::as_str));
        out.extend_from_slice(b",\"mentions\":");
        json::strings(out, self.mentions.iter().map(String::as_str));
        out.extend_from_slice(b",\"urls\":");
        json::strings(out, self.urls.iter().map(String::as_str));
        out.extend_from_slice(b",\"is_retweet\":");
        json::boolean(out, self.is_retweet);
        out.extend_from_slice(b",\"is_reply\":");
        json::boolean(out, self.is_reply);
        out.extend_from_slice(b",\"is_quote\":");
        json::boolean(out, self.is_quote);
        out.extend_from_slice(b",\"matching_rules\":");
        json::strings(
            out,
            self.matching_rules.0.iter().map(|rule| rule.tag.as_str()),
        );
        out.extend_from_slice(b",\"attrs\":");
        json::attrs(out, self.attrs);
        out.extend_from_slice(b",\"ingested_at\":");
        json::string(out, self.ingested_at);
        if let Some(raw) = self.raw {
            out.extend_from_slice(b",\"raw\":");
            json::optional_string(out, raw);
        }
        out.extend_from_slice(b"}\n");
    }
}

/// Why a sink refuses a post before trying to write it, if it does.
pub fn refuse(post: &Post) -> Option<&'static str> {
    post.id.is_empty().then_some("post has an empty id")
}

/// The matching rules of a post, serialised as an array of their tags.
#[derive(Debug, Clone, Copy)]
pub struct RuleTags<'a>(pub &'a [MatchingRule]);

impl Serialize for RuleTags<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().map(|rule| rule.tag.as_str()))
    }
}

/// A UTC time rendered as RFC 3339 with milliseconds: `2026-03-01T08:00:00.000Z`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rfc3339Millis(pub DateTime<Utc>);

impl Rfc3339Millis {
    /// The 24 bytes of the text, written digit by digit; `None` for a year
    /// outside 0–9999, which chrono renders in its longer form. (Through
    /// `write!`, the seven padded fields cost about 2,500 instructions.)
    fn render(self) -> Option<[u8; 24]> {
        let time = self.0.naive_utc();
        let year = u32::try_from(time.year())
            .ok()
            .filter(|year| *year <= 9999)?;
        let mut out = *b"0000-00-00T00:00:00.000Z";
        let digits = |out: &mut [u8], mut value: u32| {
            for slot in out.iter_mut().rev() {
                *slot = b'0' + (value % 10) as u8;
                value /= 10;
            }
        };
        digits(&mut out[0..4], year);
        digits(&mut out[5..7], time.month());
        digits(&mut out[8..10], time.day());
        digits(&mut out[11..13], time.hour());
        digits(&mut out[14..16], time.minute());
        digits(&mut out[17..19], time.second());
        // A leap second shows as nanoseconds ≥ 1e9; keep it at .999.
        digits(&mut out[20..23], (time.nanosecond() / 1_000_000).min(999));
        Some(out)
    }

    /// Appends the text (ASCII, so a JSON string needs no escapes in it).
    pub fn write_text(self, out: &mut Vec<u8>) {
        match self.render() {
            Some(bytes) => out.extend_from_slice(&bytes),
            None => out.extend_from_slice(self.to_string().as_bytes()),
        }
    }
}

impl fmt::Display for Rfc3339Millis {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.render() {
            Some(bytes) => f.write_str(ascii(&bytes)),
            None => f.write_str(&self.0.to_rfc3339_opts(SecondsFormat::Millis, true)),
        }
    }
}

impl Serialize for Rfc3339Millis {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.render() {
            Some(bytes) => serializer.serialize_str(ascii(&bytes)),
            None => serializer.collect_str(self),
        }
    }
}

/// The digits and separators [`Rfc3339Millis::render`] writes.
fn ascii(bytes: &[u8; 24]) -> &str {
    std::str::from_utf8(bytes).expect("a rendered timestamp is ASCII")
}

/// `time` as RFC 3339 UTC with milliseconds, the format of every time column.
pub fn rfc3339_millis(time: DateTime<Utc>) -> String {
    Rfc3339Millis(time).to_string()
}

/// How many ids [`RecentIds::default`] remembers.
pub const RECENT_IDS: usize = 100_000;

/// A bounded set of the most recently written post ids, evicted oldest first.
///
/// Sinks that cannot look up what they wrote before (files, standard output) use
/// it to skip duplicates within a run. It forgets across restarts and past its
/// capacity, so consumers still deduplicate by id.
#[derive(Debug, Clone)]
pub struct RecentIds {
    set: HashSet<Arc<str>>,
    order: VecDeque<Arc<str>>,
    capacity: usize,
}

impl Default for RecentIds {
    fn default() -> Self {
        RecentIds::with_capacity(RECENT_IDS)
    }
}

impl RecentIds {
    /// Remembers at most `capacity` ids (at least one).
    pub fn with_capacity(capacity: usize) -> Self {
        RecentIds {
            set: HashSet::new(),
            order: VecDeque::new(),
            capacity: capacity.max(1),
        }
    }

    /// Whether `id` was written recently.
    pub fn contains(&self, id: &str) -> bool {
        self.set.contains(id)
    }

    /// Remembers `id`, forgetting the oldest id when full; false if already known.
    pub fn insert(&mut self, id: &str) -> bool {
        if self.set.contains(id) {
            return false;
        }
        if self.order.len() >= self.capacity
            && let Some(oldest) = self.order.pop_front()
        {
            self.set.remove(&oldest);
        }
        let id: Arc<str> = Arc::from(id);
        self.set.insert(Arc::clone(&id));
        self.order.push_back(id);
        true
    }

    /// How many ids are remembered.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// Whether no id is remembered.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }
}

/// Runs blocking work (file or database I/O) without stalling other tasks.
///
/// On a multi-threaded runtime the worker thread hands its other tasks away
/// first; elsewhere (a current-thread runtime, no runtime) the work simply runs.
pub(crate) fn blocking<R>(work: impl FnOnce() -> R) -> R {
    match tokio::runtime::Handle::try_current() {
        Ok(handle) if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(work)
        }
        _ => work(),
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::post::{Author, Metrics, Place};

    fn post() -> Post {
        Post {
            id: "42".to_owned(),
            created_at: Some(Utc.with_ymd_and_hms(2026, 3, 1, 8, 0, 0).unwrap()),
            text: "hello \"world\"\n".to_owned(),
            lang: "en".to_owned(),
            author: Author {
                id: "7".to_owned(),
                username: "ada".to_owned(),
                name: "Ada L.".to_owned(),
                location: Some("London".to_owned()),
                followers: 12,
                verified: false,
            },
            metrics: Metrics {
                retweets: 1,
                likes: 2,
                replies: 3,
                quotes: 4,
            },
            hashtags: vec!["Rust".to_owned()],
            mentions: vec!["bob".to_owned()],
            urls: vec!["https://example.com".to_owned()],
            place: Some(Place {
                id: "p".to_owned(),
                full_name: "London, England".to_owned(),
                country_code: Some("GB".to_owned()),
            }),
            is_reply: true,
            matching_rules: vec![MatchingRule {
                id: "1".to_owned(),
                tag: "lang".to_owned(),
            }],
            attrs: BTreeMap::from([
                ("sentiment_compound".into(), AttrValue::Float(0.5)),
                ("flag".into(), AttrValue::Bool(true)),
            ]),
            raw: Some(Arc::from("{\"data\":{}}")),
            ..Post::default()
        }
    }

    #[test]
    fn renders_every_column_as_json() {
        let post = post();
        let mut line = Vec::new();
        Row::new(&post, "2026-03-01T09:00:00.000Z", false).write_json_line(&mut line);
        assert_eq!(line.last(), Some(&b'\n'));
        assert_eq!(line.iter().filter(|byte| **byte == b'\n').count(), 1);
        let value: serde_json::Value = serde_json::from_slice(&line).unwrap();
        let object = value.as_object().unwrap();
        let keys: Vec<&str> = object.keys().map(String::as_str).collect();
        let mut expected: Vec<&str> = COLUMNS.iter().map(|column| column.name).collect();
        expected.sort_unstable();
        let mut keys_sorted = keys.clone();
        keys_sorted.sort_unstable();
        assert_eq!(keys_sorted, expected);
        assert_eq!(value["created_at"], "2026-03-01T08:00:00.000Z");
        assert_eq!(value["tweet_location"], "London, England");
        assert_eq!(value["favorite_count"], 2);
        assert_eq!(value["user_name"], "ada");
        assert_eq!(value["user_display_name"], "Ada L.");
        assert_eq!(value["hashtags"], serde_json::json!(["Rust"]));
        assert_eq!(value["matching_rules"], serde_json::json!(["lang"]));
        assert_eq!(value["attrs"]["sentiment_compound"], 0.5);
        assert_eq!(value["attrs"]["flag"], true);
        assert_eq!(value["text"], "hello \"world\"\n");
    }

    /// The hand-written line is the bytes serde_json writes for the row.
    #[test]
    fn json_line_is_what_serde_json_writes() {
        let sample = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../config/samples/posts.jsonl"
        ))
        .unwrap();
        let mut posts: Vec<Post> = sample
            .lines()
            .filter_map(|line| crate::post::decode(line).ok())
            .collect();
        assert!(posts.len() > 100, "the sample decodes");
        let mut odd = post();
        odd.created_at = None;
        odd.place = None;
        odd.author.location = None;
        odd.raw = None;
        odd.text = "\u{0}\u{1f}\"\\\t\r\u{7f} é 🎉".to_owned();
        odd.attrs.insert("".into(), AttrValue::Float(f64::NAN));
        odd.attrs
            .insert("list".into(), AttrValue::List(vec!["\n".to_owned()]));
        odd.attrs.insert("int".into(), AttrValue::Int(-9));
        odd.attrs
            .insert("str".into(), AttrValue::Str("q\"".to_owned()));
        posts.push(odd);
        let mut far = post();
        far.created_at = Some(Utc.with_ymd_and_hms(12_026, 1, 1, 0, 0, 0).unwrap());
        posts.push(far);
        posts.push(post());
        for post in &posts {
            for store_raw in [false, true] {
                let row = Row::new(post, "2026-03-01T09:00:00.000Z", store_raw);
                let mut ours = Vec::new();
                row.write_json_line(&mut ours);
                let mut theirs = serde_json::to_vec(&row).unwrap();
                theirs.push(b'\n');
                assert_eq!(
                    String::from_utf8(ours).unwrap(),
                    String::from_utf8(theirs).unwrap(),
                    "post {}",
                    post.id
                );
            }
        }
    }

    #[test]
    fn raw_only_when_asked() {
        let mut post = post();
        let with = serde_json::to_value(Row::new(&post, "t", true)).unwrap();
        assert_eq!(with["raw"], "{\"data\":{}}");
        post.raw = None;
        let null = serde_json::to_value(Row::new(&post, "t", true)).unwrap();
        assert!(null.as_object().unwrap().contains_key("raw"));
        assert!(null["raw"].is_null());
        let without = serde_json::to_value(Row::new(&post, "t", false)).unwrap();
        assert!(!without.as_object().unwrap().contains_key("raw"));
    }

    #[test]
    fn time_format_matches_chrono() {
        let time = Utc.timestamp_millis_opt(1_772_352_000_123).unwrap();
        assert_eq!(
            rfc3339_millis(time),
            time.to_rfc3339_opts(SecondsFormat::Millis, true)
        );
        assert_eq!(rfc3339_millis(time), "2026-03-01T08:00:00.123Z");
        for (millis, text) in [
            (0, "1970-01-01T00:00:00.000Z"),
            (-1, "1969-12-31T23:59:59.999Z"),
            (-62_167_219_200_000, "0000-01-01T00:00:00.000Z"),
            (253_402_300_799_999, "9999-12-31T23:59:59.999Z"),
            (951_782_400_007, "2000-02-29T00:00:00.007Z"),
        ] {
            let time = Utc.timestamp_millis_opt(millis).unwrap();
            assert_eq!(rfc3339_millis(time), text);
            assert_eq!(
                serde_json::to_string(&Rfc3339Millis(time)).unwrap(),
                format!("\"{text}\"")
            );
        }
        // Outside four-digit years, chrono's own rendering.
        let far = Utc.timestamp_millis_opt(253_402_300_800_000).unwrap();
        assert_eq!(
            rfc3339_millis(far),
            far.to_rfc3339_opts(SecondsFormat::Millis, true)
        );
        let leap = chrono::NaiveDate::from_ymd_opt(2016, 12, 31)
            .unwrap()
            .and_hms_nano_opt(23, 59, 59, 1_500_000_000)
            .unwrap()
            .and_utc();
        assert_eq!(rfc3339_millis(leap), "2016-12-31T23:59:59.999Z");
    }

    #[test]
    fn recent_ids_evict_oldest_first() {
        let mut recent = RecentIds::with_capacity(2);
        assert!(recent.insert("a"));
        assert!(!recent.insert("a"));
        assert!(recent.insert("b"));
        assert!(recent.insert("c"));
        assert_eq!(recent.len(), 2);
        assert!(!recent.contains("a"));
        assert!(recent.contains("b") && recent.contains("c"));
    }
}
