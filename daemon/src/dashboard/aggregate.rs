//! The dashboard's aggregates: bounded time buckets filled from committed rows and the pipeline's counters.
//!
//! Two windows are kept: one bucket per minute for the last 24 hours and one per
//! hour for the last 30 days. Every event counts into both the current minute
//! and the current hour, so a range inside the last day is answered per minute
//! and a longer one per hour. Top hashtags, mentions, languages and locations are
//! kept per bucket, each capped (a bucket that is full counts new keys only in
//! its total), so memory and the state file stay bounded whatever the stream.
//! The whole state serialises to JSON for the state file (see `super::state`).

use std::collections::{BTreeMap, HashMap, VecDeque};

use serde::{Deserialize, Serialize};

use crate::post::{AttrValue, Post};

/// Seconds in a minute bucket.
pub const MINUTE: i64 = 60;
/// Seconds in an hour bucket.
pub const HOUR: i64 = 3600;
/// How long minute buckets are kept.
pub const MINUTE_WINDOW: i64 = 24 * HOUR;
/// How long hour buckets are kept.
pub const HOUR_WINDOW: i64 = 30 * 24 * HOUR;
/// Distinct keys a minute bucket keeps per top list.
const MINUTE_KEYS: usize = 20;
/// Distinct keys an hour bucket keeps per top list.
const HOUR_KEYS: usize = 50;
/// Latest kept posts remembered.
pub const LATEST_POSTS: usize = 100;
/// Characters of a post's text kept in the latest-posts list.
const LATEST_TEXT_CHARS: usize = 400;

/// Pipeline counters at one moment, as the sampler reads them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub read: u64,
    pub kept: u64,
    pub dropped: u64,
    pub dead_lettered: u64,
}

impl Counts {
    fn add(&mut self, other: &Counts) {
        self.read += other.read;
        self.kept += other.kept;
        self.dropped += other.dropped;
        self.dead_lettered += other.dead_lettered;
    }
}

/// One plugin's counters at one moment (or their growth within a bucket).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct PluginCounts {
    /// Posts handed to the plugin.
    pub posts: u64,
    pub dropped: u64,
    pub failed: u64,
    /// Batch calls and the seconds they took.
    pub batches: u64,
    pub seconds: f64,
}

impl PluginCounts {
    fn add(&mut self, other: &PluginCounts) {
        self.posts += other.posts;
        self.dropped += other.dropped;
        self.failed += other.failed;
        self.batches += other.batches;
        self.seconds += other.seconds;
    }

    /// `self - earlier`, or `self` when the counters went back (a restart).
    fn since(&self, earlier: &PluginCounts) -> PluginCounts {
        if self.posts < earlier.posts || self.batches < earlier.batches {
            return *self;
        }
        PluginCounts {
            posts: self.posts - earlier.posts,
            dropped: self.dropped.saturating_sub(earlier.dropped),
            failed: self.failed.saturating_sub(earlier.failed),
            batches: self.batches - earlier.batches,
            seconds: (self.seconds - earlier.seconds).max(0.0),
        }
    }
}

/// Counts of keys, capped at a number of distinct keys.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TopCounts(pub HashMap<String, u64>);

impl TopCounts {
    fn add(&mut self, key: &str, count: u64, cap: usize) {
        if let Some(value) = self.0.get_mut(key) {
            *value += count;
        } else if self.0.len() < cap {
            self.0.insert(key.to_owned(), count);
        }
    }

    /// The `n` largest, ties by key.
    fn top(&self, n: usize) -> Vec<(String, u64)> {
        let mut all: Vec<(String, u64)> = self.0.iter().map(|(k, v)| (k.clone(), *v)).collect();
        all.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        all.truncate(n);
        all
    }
}

/// What happened within one minute or one hour.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Bucket {
    /// Read, kept, dropped and dead-lettered posts (from the pipeline's counters).
    pub counts: Counts,
    /// Rows the sink committed.
    pub committed: u64,
    /// Committed rows that carried `sentiment_compound`, and its sum.
    pub sentiment_posts: u64,
    pub sentiment_sum: f64,
    /// Committed rows by `sentiment_label`.
    pub positive: u64,
    pub neutral: u64,
    pub negative: u64,
    pub hashtags: TopCounts,
    pub mentions: TopCounts,
    pub languages: TopCounts,
    pub locations: TopCounts,
    pub plugins: BTreeMap<String, PluginCounts>,
}

impl Bucket {
    fn add_post(&mut self, post: &Post, cap: usize) {
        self.committed += 1;
        if let Some(score) = post.attrs.get("sentiment_compound").and_then(number) {
            self.sentiment_posts += 1;
            self.sentiment_sum += score;
        }
        if let Some(AttrValue::Str(label)) = post.attrs.get("sentiment_label") {
            match label.as_str() {
                "positive" => self.positive += 1,
                "negative" => self.negative += 1,
                "neutral" => self.neutral += 1,
                _ => {}
            }
        }
        // A tag used twice in one post counts once.
        let mut seen: Vec<String> = Vec::with_capacity(post.hashtags.len());
        for tag in &post.hashtags {
            let tag = tag.to_lowercase();
            if !seen.contains(&tag) {
                self.hashtags.add(&tag, 1, cap);
                seen.push(tag);
            }
        }
        seen.clear();
        for mention in &post.mentions {
            let mention = mention.to_lowercase();
            if !seen.contains(&mention) {
                self.mentions.add(&mention, 1, cap);
                seen.push(mention);
            }
        }
        if !post.lang.is_empty() {
            self.languages.add(&post.lang, 1, cap);
        }
        if let Some(location) = post.author.location.as_deref().map(str::trim)
            && !location.is_empty()
        {
            self.locations.add(location, 1, cap);
        }
    }

    fn merge(&mut self, other: &Bucket, cap: usize) {
        self.counts.add(&other.counts);
        self.committed += other.committed;
        self.sentiment_posts += other.sentiment_posts;
        self.sentiment_sum += other.sentiment_sum;
        self.positive += other.positive;
        self.neutral += other.neutral;
        self.negative += other.negative;
        for (mine, theirs) in [
            (&mut self.hashtags, &other.hashtags),
            (&mut self.mentions, &other.mentions),
            (&mut self.languages, &other.languages),
            (&mut self.locations, &other.locations),
        ] {
            for (key, count) in &theirs.0 {
                mine.add(key, *count, cap);
            }
        }
        for (plugin, counts) in &other.plugins {
            self.plugins.entry(plugin.clone()).or_default().add(counts);
        }
    }
}

fn number(value: &AttrValue) -> Option<f64> {
    match value {
        AttrValue::Float(value) => Some(*value),
        AttrValue::Int(value) => Some(*value as f64),
        _ => None,
    }
}

/// A kept post as the sink stored it (after every plugin, pii-scrub included).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LatestPost {
    /// When the sink committed it (Unix seconds).
    pub committed_at: i64,
    pub id: String,
    pub created_at: Option<String>,
    pub user_name: String,
    pub lang: String,
    pub text: String,
    pub hashtags: Vec<String>,
    pub sentiment: Option<f64>,
}

impl LatestPost {
    fn new(post: &Post, now: i64) -> LatestPost {
        LatestPost {
            committed_at: now,
            id: post.id.clone(),
            created_at: post.created_at.map(|at| at.to_rfc3339()),
            user_name: post.author.username.clone(),
            lang: post.lang.clone(),
            text: post.text.chars().take(LATEST_TEXT_CHARS).collect(),
            hashtags: post.hashtags.clone(),
            sentiment: post.attrs.get("sentiment_compound").and_then(number),
        }
    }
}

/// Everything the dashboard shows, over every range it can be asked for.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Aggregates {
    /// Minute buckets by their start (Unix seconds), the last 24 hours.
    pub minutes: BTreeMap<i64, Bucket>,
    /// Hour buckets by their start, the last 30 days.
    pub hours: BTreeMap<i64, Bucket>,
    /// The latest kept posts, oldest first.
    pub latest: VecDeque<LatestPost>,
    /// The counters at the last sample, to count their growth since.
    #[serde(default)]
    pub last_counts: Counts,
    #[serde(default)]
    pub last_plugins: BTreeMap<String, PluginCounts>,
}

fn floor(at: i64, size: i64) -> i64 {
    at.div_euclid(size) * size
}

impl Aggregates {
    /// Counts committed `posts` (but the `rejected` indices) at `now` (Unix seconds).
    pub fn commit(&mut self, now: i64, posts: &[Post], rejected: &[usize]) {
        let minute = self.minutes.entry(floor(now, MINUTE)).or_default();
        let mut kept: usize = 0;
        for (index, post) in posts.iter().enumerate() {
            if rejected.contains(&index) {
                continue;
            }
            minute.add_post(post, MINUTE_KEYS);
            kept += 1;
        }
        if kept == 0 {
            return;
        }
        let hour = self.hours.entry(floor(now, HOUR)).or_default();
        for (index, post) in posts.iter().enumerate() {
            if rejected.contains(&index) {
                continue;
            }
            hour.add_post(post, HOUR_KEYS);
        }
        // Only the newest LATEST_POSTS of the batch can survive the cut.
        let skip = kept.saturating_sub(LATEST_POSTS);
        self.latest.extend(
            posts
                .iter()
                .enumerate()
                .filter(|(index, _)| !rejected.contains(index))
                .skip(skip)
                .map(|(_, post)| LatestPost::new(post, now)),
        );
        while self.latest.len() > LATEST_POSTS {
            self.latest.pop_front();
        }
        self.prune(now);
    }

    /// Counts the growth of the pipeline's counters since the last sample at `now`.
    /// Counters lower than last time (a restarted daemon) count from zero.
    pub fn sample(&mut self, now: i64, counts: Counts, plugins: &BTreeMap<String, PluginCounts>) {
        let last = self.last_counts;
        let restarted = counts.read < last.read
            || counts.kept < last.kept
            || counts.dropped < last.dropped
            || counts.dead_lettered < last.dead_lettered;
        let delta = if restarted {
            counts
        } else {
            Counts {
                read: counts.read - last.read,
                kept: counts.kept - last.kept,
                dropped: counts.dropped - last.dropped,
                dead_lettered: counts.dead_lettered - last.dead_lettered,
            }
        };
        let mut plugin_deltas = BTreeMap::new();
        for (plugin, now_counts) in plugins {
            let delta = match self.last_plugins.get(plugin) {
                Some(earlier) if !restarted => now_counts.since(earlier),
                _ => *now_counts,
            };
            if delta != PluginCounts::default() {
                plugin_deltas.insert(plugin.clone(), delta);
            }
        }
        self.last_counts = counts;
        self.last_plugins = plugins.clone();
        if delta == Counts::default() && plugin_deltas.is_empty() {
            return;
        }
        for bucket in [
            self.minutes.entry(floor(now, MINUTE)).or_default(),
            self.hours.entry(floor(now, HOUR)).or_default(),
        ] {
            bucket.counts.add(&delta);
            for (plugin, delta) in &plugin_deltas {
                bucket.plugins.entry(plugin.clone()).or_default().add(delta);
            }
        }
        self.prune(now);
    }

    /// The counters start again from zero (a new process): the next sample counts
    /// everything as new.
    pub fn restart_counters(&mut self) {
        self.last_counts = Counts::default();
        self.last_plugins.clear();
    }

    /// Forgets buckets older than their window.
    pub fn prune(&mut self, now: i64) {
        let minute_start = floor(now, MINUTE) - MINUTE_WINDOW + MINUTE;
        self.minutes = self.minutes.split_off(&minute_start);
        let hour_start = floor(now, HOUR) - HOUR_WINDOW + HOUR;
        self.hours = self.hours.split_off(&hour_start);
    }

    /// What the dashboard shows for `[from, to)` (Unix seconds) at `now`: per
    /// minute when the range starts within the last 24 hours, else per hour.
    pub fn query(&self, from: i64, to: i64, now: i64) -> View {
        // "The last 24 hours" asked a moment later still counts as the minute
        // window; it only misses the part of the oldest minute already pruned.
        let (step, buckets) = if from >= floor(now, MINUTE) - MINUTE_WINDOW {
            (MINUTE, &self.minutes)
        } else {
            (HOUR, &self.hours)
        };
        // A bucket belongs to the range when it starts in it; the first one
        // partly before `from` is included too when `from` is not aligned.
        let first = floor(from, step);
        let mut total = Bucket::default();
        let mut series = Vec::new();
        for (start, bucket) in buckets.range(first..to.max(first)) {
            total.merge(bucket, usize::MAX);
            series.push(Point {
                t: *start,
                read: bucket.counts.read,
                kept: bucket.counts.kept,
                dropped: bucket.counts.dropped,
                dead_lettered: bucket.counts.dead_lettered,
                committed: bucket.committed,
                sentiment: (bucket.sentiment_posts > 0)
                    .then(|| bucket.sentiment_sum / bucket.sentiment_posts as f64),
                sentiment_posts: bucket.sentiment_posts,
                positive: bucket.positive,
                neutral: bucket.neutral,
                negative: bucket.negative,
            });
        }
        let plugins = total
            .plugins
            .iter()
            .map(|(name, counts)| PluginView {
                name: name.clone(),
                posts: counts.posts,
                dropped: counts.dropped,
                failed: counts.failed,
                drop_rate: ratio(counts.dropped as f64, counts.posts as f64),
                mean_batch_ms: ratio(counts.seconds * 1000.0, counts.batches as f64),
                mean_post_us: ratio(counts.seconds * 1e6, counts.posts as f64),
            })
            .collect();
        let latest = self
            .latest
            .iter()
            .rev()
            .filter(|post| post.committed_at >= from && post.committed_at < to)
            .take(LATEST_SHOWN)
            .cloned()
            .collect();
        View {
            from,
            to,
            step,
            totals: Totals {
                read: total.counts.read,
                kept: total.counts.kept,
                dropped: total.counts.dropped,
                dead_lettered: total.counts.dead_lettered,
                committed: total.committed,
                sentiment: (total.sentiment_posts > 0)
                    .then(|| total.sentiment_sum / total.sentiment_posts as f64),
                sentiment_posts: total.sentiment_posts,
            },
            series,
            hashtags: total.hashtags.top(TOP_SHOWN),
            mentions: total.mentions.top(TOP_SHOWN),
            languages: total.languages.top(TOP_SHOWN),
            locations: total.locations.top(TOP_SHOWN),
            plugins,
            latest,
        }
    }
}

fn ratio(numerator: f64, denominator: f64) -> Option<f64> {
    (denominator > 0.0).then(|| numerator / denominator)
}

/// Entries shown per top list.
const TOP_SHOWN: usize = 10;
/// Latest posts shown.
const LATEST_SHOWN: usize = 20;

/// The answer to one range: a series per bucket, totals and tops.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct View {
    pub from: i64,
    pub to: i64,
    /// Seconds per point of `series`.
    pub step: i64,
    pub totals: Totals,
    /// One point per non-empty bucket, oldest first.
    pub series: Vec<Point>,
    pub hashtags: Vec<(String, u64)>,
    pub mentions: Vec<(String, u64)>,
    pub languages: Vec<(String, u64)>,
    pub locations: Vec<(String, u64)>,
    pub plugins: Vec<PluginView>,
    /// Newest first.
    pub latest: Vec<LatestPost>,
}

/// The sums over a range.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Totals {
    pub read: u64,
    pub kept: u64,
    pub dropped: u64,
    pub dead_lettered: u64,
    pub committed: u64,
    /// The mean `sentiment_compound` of the rows that carried one.
    pub sentiment: Option<f64>,
    pub sentiment_posts: u64,
}

/// One bucket of the series.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Point {
    /// The bucket's start (Unix seconds).
    pub t: i64,
    pub read: u64,
    pub kept: u64,
    pub dropped: u64,
    pub dead_lettered: u64,
    pub committed: u64,
    pub sentiment: Option<f64>,
    pub sentiment_posts: u64,
    pub positive: u64,
    pub neutral: u64,
    pub negative: u64,
}

/// One plugin over a range.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PluginView {
    pub name: String,
    pub posts: u64,
    pub dropped: u64,
    pub failed: u64,
    /// Dropped / posts in.
    pub drop_rate: Option<f64>,
    /// Mean milliseconds per batch call.
    pub mean_batch_ms: Option<f64>,
    /// Mean microseconds per post.
    pub mean_post_us: Option<f64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn post(id: &str, tags: &[&str], lang: &str) -> Post {
        Post {
            id: id.to_owned(),
            lang: lang.to_owned(),
            hashtags: tags.iter().map(|tag| (*tag).to_owned()).collect(),
            ..Post::default()
        }
    }

    #[test]
    fn minute_and_hour_windows_stay_bounded() {
        let mut aggregates = Aggregates::default();
        let start = 1_700_000_000;
        // 40 days of one post every 10 minutes.
        for step in 0..(40 * 24 * 6) {
            aggregates.commit(start + step * 600, &[post("1", &["a"], "en")], &[]);
        }
        let now = start + (40 * 24 * 6 - 1) * 600;
        assert!(aggregates.minutes.len() <= (MINUTE_WINDOW / MINUTE) as usize);
        assert!(aggregates.hours.len() <= (HOUR_WINDOW / HOUR) as usize);
        assert!(*aggregates.minutes.keys().next().unwrap() > now - MINUTE_WINDOW);
        assert!(*aggregates.hours.keys().next().unwrap() > now - HOUR_WINDOW);
        assert_eq!(aggregates.latest.len(), LATEST_POSTS);
    }

    #[test]
    fn a_bucket_keeps_a_bounded_number_of_keys() {
        let mut aggregates = Aggregates::default();
        let tags: Vec<String> = (0..500).map(|i| format!("tag{i}")).collect();
        let posts: Vec<Post> = tags
            .iter()
            .map(|tag| post("1", &[tag.as_str()], "en"))
            .collect();
        aggregates.commit(0, &posts, &[]);
        assert_eq!(aggregates.minutes[&0].hashtags.0.len(), MINUTE_KEYS);
        assert_eq!(aggregates.hours[&0].hashtags.0.len(), HOUR_KEYS);
        assert_eq!(aggregates.minutes[&0].committed, 500);
    }

    #[test]
    fn rejected_rows_are_not_counted() {
        let mut aggregates = Aggregates::default();
        aggregates.commit(0, &[post("1", &["a"], "en"), post("2", &["b"], "de")], &[1]);
        let view = aggregates.query(0, 60, 0);
        assert_eq!(view.totals.committed, 1);
        assert_eq!(view.hashtags, vec![("a".to_owned(), 1)]);
        assert_eq!(view.latest.len(), 1);
    }

    #[test]
    fn counter_growth_is_counted_once_and_a_restart_counts_from_zero() {
        let mut aggregates = Aggregates::default();
        let counts = |read| Counts {
            read,
            kept: read / 2,
            dropped: read / 2,
            dead_lettered: 0,
        };
        aggregates.sample(0, counts(10), &BTreeMap::new());
        aggregates.sample(30, counts(30), &BTreeMap::new());
        aggregates.sample(60, counts(4), &BTreeMap::new());
        assert_eq!(aggregates.minutes[&0].counts.read, 30);
        assert_eq!(aggregates.minutes[&60].counts.read, 4);
        assert_eq!(aggregates.hours[&0].counts.read, 34);
    }
}
