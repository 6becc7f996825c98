//! Gap recovery through recent search: each window the stream missed is read
//! again, rule by rule, with `GET /2/tweets/search/recent`, and the posts are
//! published like streamed ones.
//!
//! It runs in its own task beside the live stream, never in its way: X wants a
//! search's `end_time` at least 10 s in the past (and `gap_search_delay_secs`,
//! 30 s by default, gives its index time to hold the newest posts), so searching
//! before reconnecting would keep the stream down (and open a new gap) for that
//! long.
//! Each post is published as a stream message of its own (`data`, the
//! `includes` it refers to, and `matching_rules` with every rule whose search
//! returned it), so decoding, plugins and sinks see no difference; duplicates of
//! streamed posts (the overlap) are removed by id in the sinks as always.
//!
//! Pages are followed with `next_token`; `x-rate-limit-remaining` /
//! `x-rate-limit-reset` are honoured before the next request and a 429 waits for
//! the reset. A failed request (network, 5xx, an answer that is not JSON) is
//! retried a few times with a growing delay, then that rule's part of the window
//! is given up; a refusal (400, 401, 403) is given up at once. Each is logged
//! with what to do and counted in `tweetpipe_source_recovery_errors_total`; none
//! touches the live stream.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::Method;
use serde::Deserialize;
use serde_json::{Map, Value};
use tokio_util::sync::CancellationToken;

use super::client::{ApiError, Problem, XClient};
use super::gap::{Tracker, Window, humanize};
use super::rules::{self, RemoteRule};
use crate::broker::Publisher;
use crate::metrics::ConnectionStatus;
use crate::stats::Stats;

/// The recent-search endpoint.
pub const SEARCH_PATH: &str = "/2/tweets/search/recent";
/// X refuses an `end_time` less than this far before the request
/// (`source.x.gap_search_delay_secs` may not be lower).
pub const MIN_SEARCH_DELAY: Duration = Duration::from_secs(10);
/// Posts per page (X's maximum).
const PAGE_SIZE: &str = "100";
/// Tries of one request before its rule's part of the window is given up.
const MAX_ATTEMPTS: u32 = 5;
/// The delay after the first failed try; doubled after each.
const RETRY_START: Duration = Duration::from_secs(1);
/// A 429 without `x-rate-limit-reset` waits this long.
const RATE_LIMIT_WAIT: Duration = Duration::from_secs(60);
/// The longest wait for a rate-limit reset (X's windows are 15 min).
const RATE_LIMIT_MAX_WAIT: Duration = Duration::from_secs(15 * 60);
/// How long one search request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Posts kept to merge the rules they match before they are published; past
/// this, they are published as they are (a post matching several rules may then
/// carry only some of its tags).
const MERGE_LIMIT: usize = 20_000;

/// Why one search request gave no page.
#[derive(Debug, thiserror::Error)]
pub enum SearchError {
    #[error(transparent)]
    Api(#[from] ApiError),
    /// HTTP 429, or a request made after the remaining count reached zero.
    #[error("X is rate-limiting recent search (HTTP 429: {problem}); waiting {} for the limit to reset", humanize(*wait))]
    RateLimited { wait: Duration, problem: Problem },
}

impl SearchError {
    /// Retrying the same request cannot help: the query or the credentials are refused.
    fn is_refusal(&self) -> bool {
        matches!(
            self,
            SearchError::Api(ApiError::Status {
                status: 400 | 401 | 403 | 404,
                ..
            })
        )
    }

    /// What to do about it, for the log.
    fn advice(&self) -> &'static str {
        match self {
            SearchError::Api(ApiError::Status { status: 401, .. }) => "check the bearer token; ",
            SearchError::Api(ApiError::Status { status: 403, .. }) => {
                "recent search needs an X plan that includes it (pay-per-use, Basic or higher); without one set source.x.gap_recovery = \"off\" (or \"backfill\" with Enterprise access); "
            }
            SearchError::Api(ApiError::Status { status: 400, .. }) => {
                "X refused the rule as a search query (some stream operators do not exist in search); "
            }
            _ => "",
        }
    }
}

/// One page of a recent search.
#[derive(Debug, Default, Deserialize)]
struct Page {
    #[serde(default)]
    data: Vec<Value>,
    #[serde(default)]
    includes: Map<String, Value>,
    #[serde(default)]
    meta: Meta,
}

#[derive(Debug, Default, Deserialize)]
struct Meta {
    #[serde(default)]
    next_token: Option<String>,
}

/// What the rate-limit headers said about the next request.
#[derive(Debug, Clone, Copy, Default)]
struct Budget {
    remaining: Option<u64>,
    reset: Option<DateTime<Utc>>,
}

impl Budget {
    fn from_headers(headers: &reqwest::header::HeaderMap) -> Budget {
        let number = |name: &str| {
            headers
                .get(name)
                .and_then(|value| value.to_str().ok())
                .and_then(|value| value.trim().parse::<i64>().ok())
        };
        Budget {
            remaining: number("x-rate-limit-remaining").and_then(|n| u64::try_from(n).ok()),
            reset: number("x-rate-limit-reset").and_then(|secs| DateTime::from_timestamp(secs, 0)),
        }
    }

    /// How long to wait for the reset from `now` (a second past it, bounded).
    fn wait_for_reset(&self, now: DateTime<Utc>) -> Duration {
        match self.reset {
            Some(reset) => (reset - now)
                .to_std()
                .unwrap_or_default()
                .saturating_add(Duration::from_secs(1))
                .min(RATE_LIMIT_MAX_WAIT),
            None => RATE_LIMIT_WAIT,
        }
    }
}

/// The recovery task: reads every queued window with recent search.
#[derive(Debug)]
pub struct Recovery {
    pub client: XClient,
    /// The stream's fields and expansions, so recovered posts look like streamed ones.
    pub fields: Vec<(&'static str, String)>,
    pub publisher: Publisher,
    pub stats: Arc<Stats>,
    pub status: Arc<ConnectionStatus>,
    pub tracker: Arc<Tracker>,
    pub cancel: CancellationToken,
    /// How old a gap's end must be before it is searched (X's index catching up).
    pub delay: Duration,
}

/// A window's progress, for its closing log line.
#[derive(Debug, Default)]
struct Tally {
    requests: u64,
    published: u64,
    given_up: Vec<String>,
}

impl Recovery {
    /// Recovers queued windows, oldest first, until `cancel` fires. A window
    /// interrupted by the stop stays queued in the state file and is read again
    /// after the restart.
    pub async fn run(self) {
        let mut budget = Budget::default();
        loop {
            let Some(window) = self.tracker.next_pending() else {
                tokio::select! {
                    _ = self.cancel.cancelled() => return,
                    _ = self.tracker.added() => continue,
                }
            };
            match self.recover(window, &mut budget).await {
                Some(tally) => {
                    self.tracker.finish(&window);
                    if tally.given_up.is_empty() {
                        log::info!(
                            "X recent search: recovered {} post(s) for {} ({} request(s))",
                            tally.published,
                            window.describe(),
                            tally.requests
                        );
                    } else {
                        log::warn!(
                            "X recent search: recovered {} post(s) for {} ({} request(s)); gave up on {}, so posts X matched then for those rules may be missing",
                            tally.published,
                            window.describe(),
                            tally.requests,
                            tally.given_up.join(", ")
                        );
                    }
                }
                None => return,
            }
        }
    }

    /// Sleeps `delay`; false when `cancel` fired first.
    async fn sleep(&self, delay: Duration) -> bool {
        tokio::select! {
            _ = self.cancel.cancelled() => false,
            _ = tokio::time::sleep(delay) => true,
        }
    }

    /// Reads one window; `None` when stopped before the end.
    async fn recover(&self, window: Window, budget: &mut Budget) -> Option<Tally> {
        let mut tally = Tally::default();
        // X refuses an end_time less than 10 s before the request, and its
        // index may not hold the newest posts yet.
        let delay = self.delay.max(MIN_SEARCH_DELAY);
        let ready_at = window.end + chrono::TimeDelta::from_std(delay).unwrap_or_default();
        if let Ok(wait) = (ready_at - Utc::now()).to_std()
            && !self.sleep(wait + Duration::from_millis(200)).await
        {
            return None;
        }
        let (reachable, lost) = window.within_reach(Utc::now());
        if !lost.is_zero() {
            log::warn!(
                "X recent search: recent search reaches back 7 days only; the first {} of {} cannot be recovered",
                humanize(lost),
                window.describe()
            );
        }
        let reachable = reachable?;

        let stream_rules = self.stream_rules(&mut tally).await?;
        let Some(stream_rules) = stream_rules else {
            tally
                .given_up
                .push("every rule (X's rules could not be read)".to_owned());
            return Some(tally);
        };
        let mut merged = Merged::default();
        for rule in &stream_rules {
            let mut next_token: Option<String> = None;
            let mut attempt = 0;
            loop {
                if budget.remaining == Some(0) {
                    let wait = budget.wait_for_reset(Utc::now());
                    log::info!(
                        "X recent search: rate limit used up (x-rate-limit-remaining: 0); waiting {} for the reset",
                        humanize(wait)
                    );
                    if !self.sleep(wait).await {
                        return None;
                    }
                    budget.remaining = None;
                }
                tally.requests += 1;
                let page = tokio::select! {
                    _ = self.cancel.cancelled() => return None,
                    page = self.page(rule, &reachable, next_token.as_deref(), budget) => page,
                };
                match page {
                    Ok(page) => {
                        attempt = 0;
                        merged.add(page, rule);
                        if merged.len() >= MERGE_LIMIT {
                            tally.published += self.publish(&mut merged).await?;
                        }
                        match page_next(&mut next_token, &merged) {
                            true => continue,
                            false => break,
                        }
                    }
                    Err(SearchError::RateLimited { wait, problem }) => {
                        log::info!(
                            "X recent search: rate-limited (HTTP 429: {problem}); waiting {} for the reset",
                            humanize(wait)
                        );
                        if !self.sleep(wait).await {
                            return None;
                        }
                    }
                    Err(error) => {
                        attempt += 1;
                        self.status.recovery_failed();
                        let rule_name = describe_rule(rule);
                        if error.is_refusal() || attempt >= MAX_ATTEMPTS {
                            log::warn!(
                                "X recent search for {rule_name} over {}: {error}; {}giving up this rule's part of the gap after {attempt} attempt(s) (the live stream is not affected)",
                                reachable.describe(),
                                error.advice()
                            );
                            tally.given_up.push(rule_name);
                            break;
                        }
                        let delay = RETRY_START * 2u32.pow(attempt - 1);
                        log::warn!(
                            "X recent search for {rule_name} over {}: {error}; {}retrying in {} (attempt {attempt} of {MAX_ATTEMPTS}; the live stream is not affected)",
                            reachable.describe(),
                            error.advice(),
                            humanize(delay)
                        );
                        if !self.sleep(delay).await {
                            return None;
                        }
                    }
                }
            }
        }
        tally.published += self.publish(&mut merged).await?;
        Some(tally)
    }

    /// The rules on X (with their ids, for `matching_rules`); `Some(None)` when
    /// they could not be read after every attempt.
    async fn stream_rules(&self, tally: &mut Tally) -> Option<Option<Vec<RemoteRule>>> {
        for attempt in 1..=MAX_ATTEMPTS {
            tally.requests += 1;
            let fetched = tokio::select! {
                _ = self.cancel.cancelled() => return None,
                fetched = rules::fetch(&self.client) => fetched,
            };
            match fetched {
                Ok(rules) => return Some(Some(rules)),
                Err(error) => {
                    self.status.recovery_failed();
                    let delay = RETRY_START * 2u32.pow(attempt - 1);
                    log::warn!(
                        "X recent search: cannot read the stream's rules: {error}; {}",
                        if attempt < MAX_ATTEMPTS {
                            format!(
                                "retrying in {} (attempt {attempt} of {MAX_ATTEMPTS})",
                                humanize(delay)
                            )
                        } else {
                            "giving up this gap (the live stream is not affected)".to_owned()
                        }
                    );
                    if attempt < MAX_ATTEMPTS && !self.sleep(delay).await {
                        return None;
                    }
                }
            }
        }
        Some(None)
    }

    /// One request: a page of `rule`'s posts in `window`.
    async fn page(
        &self,
        rule: &RemoteRule,
        window: &Window,
        next_token: Option<&str>,
        budget: &mut Budget,
    ) -> Result<Page, SearchError> {
        let mut query: Vec<(&str, String)> = vec![
            ("query", rule.value.clone()),
            ("start_time", Window::format(window.start)),
            ("end_time", Window::format(window.end)),
            ("max_results", PAGE_SIZE.to_owned()),
        ];
        query.extend(self.fields.iter().cloned());
        if let Some(token) = next_token {
            query.push(("next_token", token.to_owned()));
        }
        let response = self
            .client
            .request(Method::GET, SEARCH_PATH)
            .query(&query)
            .timeout(REQUEST_TIMEOUT)
            .send()
            .await
            .map_err(|error| self.client.network(&error))?;
        *budget = Budget::from_headers(response.headers());
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|error| self.client.network(&error))?;
        if status.as_u16() == 429 {
            return Err(SearchError::RateLimited {
                wait: budget.wait_for_reset(Utc::now()),
                problem: Problem::parse(&body[..body.len().min(64 * 1024)]),
            });
        }
        if !status.is_success() {
            return Err(ApiError::Status {
                status: status.as_u16(),
                what: "GET recent search",
                problem: Box::new(Problem::parse(&body[..body.len().min(64 * 1024)])),
            }
            .into());
        }
        serde_json::from_slice::<Page>(&body).map_err(|error| {
            let start: String = String::from_utf8_lossy(&body[..body.len().min(80)]).into_owned();
            ApiError::Unexpected {
                what: "GET recent search",
                message: format!("the answer is not a search page ({error}); it began {start:?}"),
            }
            .into()
        })
    }

    /// Publishes what `merged` holds through the stream's publisher; `None` when
    /// stopped or the broker closed.
    async fn publish(&self, merged: &mut Merged) -> Option<u64> {
        let mut published = 0;
        for message in merged.drain() {
            let line: Arc<str> = Arc::from(message.to_string());
            tokio::select! {
                _ = self.cancel.cancelled() => return None,
                sent = self.publisher.publish(line) => sent.ok()?,
            }
            self.stats.read_one();
            self.status.received();
            self.status.recovered(1);
            published += 1;
        }
        // On disk (with a spool) before the next page is asked for.
        if published > 0 {
            self.publisher.sync().await.ok()?;
        }
        Some(published)
    }
}

/// Moves the page's `next_token` into `next`; false when there is none.
fn page_next(next: &mut Option<String>, merged: &Merged) -> bool {
    *next = merged.next_token.clone();
    next.is_some()
}

fn describe_rule(rule: &RemoteRule) -> String {
    match &rule.tag {
        Some(tag) => format!("rule {:?} (tag {tag:?})", rule.value),
        None => format!("rule {:?}", rule.value),
    }
}

/// Posts found so far in a window, one stream-shaped message each, with the
/// rules of every search that returned them.
#[derive(Debug, Default)]
struct Merged {
    messages: Vec<Value>,
    by_id: HashMap<String, usize>,
    /// The last page's `next_token`.
    next_token: Option<String>,
}

impl Merged {
    fn len(&self) -> usize {
        self.messages.len()
    }

    fn add(&mut self, page: Page, rule: &RemoteRule) {
        self.next_token = page.meta.next_token.filter(|token| !token.is_empty());
        let mut matching = Map::new();
        matching.insert("id".to_owned(), Value::String(rule.id.clone()));
        matching.insert(
            "tag".to_owned(),
            Value::String(rule.tag.clone().unwrap_or_default()),
        );
        let matching = Value::Object(matching);
        for post in page.data {
            let id = post.get("id").and_then(Value::as_str).map(str::to_owned);
            if let Some(index) = id.as_ref().and_then(|id| self.by_id.get(id)) {
                if let Some(rules) = self.messages[*index]
                    .get_mut("matching_rules")
                    .and_then(Value::as_array_mut)
                    && !rules.contains(&matching)
                {
                    rules.push(matching.clone());
                }
                continue;
            }
            let includes = includes_for(&post, &page.includes);
            let mut message = Map::new();
            message.insert("data".to_owned(), post);
            if !includes.is_empty() {
                message.insert("includes".to_owned(), Value::Object(includes));
            }
            message.insert(
                "matching_rules".to_owned(),
                Value::Array(vec![matching.clone()]),
            );
            if let Some(id) = id {
                self.by_id.insert(id, self.messages.len());
            }
            self.messages.push(Value::Object(message));
        }
    }

    fn drain(&mut self) -> Vec<Value> {
        self.by_id.clear();
        std::mem::take(&mut self.messages)
    }
}

/// The page's `includes` objects (users, places, media, polls, tweets) that
/// `post` refers to: those whose `id` or `media_key` appears among its strings.
fn includes_for(post: &Value, includes: &Map<String, Value>) -> Map<String, Value> {
    let mut referenced = BTreeSet::new();
    collect_strings(post, &mut referenced);
    let mut out = Map::new();
    for (kind, objects) in includes {
        let Some(objects) = objects.as_array() else {
            continue;
        };
        let picked: Vec<Value> = objects
            .iter()
            .filter(|object| {
                ["id", "media_key"].iter().any(|key| {
                    object
                        .get(*key)
                        .and_then(Value::as_str)
                        .is_some_and(|id| referenced.contains(id))
                })
            })
            .cloned()
            .collect();
        if !picked.is_empty() {
            out.insert(kind.clone(), Value::Array(picked));
        }
    }
    out
}

fn collect_strings<'a>(value: &'a Value, out: &mut BTreeSet<&'a str>) {
    match value {
        Value::String(text) => {
            out.insert(text);
        }
        Value::Array(items) => items.iter().for_each(|item| collect_strings(item, out)),
        Value::Object(fields) => fields.values().for_each(|item| collect_strings(item, out)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(id: &str, value: &str, tag: Option<&str>) -> RemoteRule {
        RemoteRule {
            id: id.to_owned(),
            value: value.to_owned(),
            tag: tag.map(str::to_owned),
        }
    }

    #[test]
    fn a_page_becomes_stream_messages_with_their_includes_and_every_matching_rule() {
        let page = |text: &str| serde_json::from_str::<Page>(text).unwrap();
        let mut merged = Merged::default();
        merged.add(
            page(
                r#"{"data":[{"id":"2","author_id":"u1","geo":{"place_id":"p1"},"text":"b"},{"id":"1","author_id":"u2","text":"a"}],
                    "includes":{"users":[{"id":"u1","username":"one"},{"id":"u2","username":"two"}],"places":[{"id":"p1","full_name":"Lisbon"}]},
                    "meta":{"result_count":2,"next_token":"abc"}}"#,
            ),
            &rule("10", "covid", Some("covid")),
        );
        assert_eq!(merged.next_token.as_deref(), Some("abc"));
        merged.add(
            page(r#"{"data":[{"id":"1","author_id":"u2","text":"a"}],"includes":{"users":[{"id":"u2","username":"two"}]},"meta":{"result_count":1}}"#),
            &rule("11", "vaccine", None),
        );
        assert_eq!(merged.next_token, None);
        let messages = merged.drain();
        assert_eq!(messages.len(), 2);
        assert_eq!(
            messages[0],
            serde_json::json!({
                "data": {"id":"2","author_id":"u1","geo":{"place_id":"p1"},"text":"b"},
                "includes": {"users":[{"id":"u1","username":"one"}],"places":[{"id":"p1","full_name":"Lisbon"}]},
                "matching_rules": [{"id":"10","tag":"covid"}]
            })
        );
        assert_eq!(
            messages[1]["matching_rules"],
            serde_json::json!([{"id":"10","tag":"covid"},{"id":"11","tag":""}])
        );
        assert_eq!(messages[1]["includes"]["users"][0]["username"], "two");
        // The decoder reads a recovered message like a streamed one.
        let post = crate::post::decode(&messages[0].to_string()).unwrap();
        assert_eq!(post.author.username, "one");
        assert_eq!(post.matching_rules[0].tag, "covid");
    }

    #[test]
    fn refusals_are_given_up_and_the_rest_retried() {
        let status = |status| {
            SearchError::Api(ApiError::Status {
                status,
                what: "GET recent search",
                problem: Box::default(),
            })
        };
        for refused in [400, 401, 403] {
            assert!(status(refused).is_refusal());
        }
        assert!(!status(503).is_refusal());
        assert!(
            !SearchError::Api(ApiError::Unexpected {
                what: "GET recent search",
                message: String::new()
            })
            .is_refusal()
        );
        assert!(status(403).advice().contains("gap_recovery"));
    }

    #[test]
    fn the_rate_limit_headers_say_when_to_go_on() {
        let mut headers = reqwest::header::HeaderMap::new();
        headers.insert("x-rate-limit-remaining", "0".parse().unwrap());
        headers.insert("x-rate-limit-reset", "1772352030".parse().unwrap());
        let budget = Budget::from_headers(&headers);
        assert_eq!(budget.remaining, Some(0));
        let now = DateTime::from_timestamp(1_772_352_000, 0).unwrap();
        assert_eq!(budget.wait_for_reset(now), Duration::from_secs(31));
        assert_eq!(Budget::default().wait_for_reset(now), RATE_LIMIT_WAIT);
        let far = DateTime::from_timestamp(1_772_352_000 - 3600, 0).unwrap();
        assert_eq!(budget.wait_for_reset(far), RATE_LIMIT_MAX_WAIT);
    }
}
