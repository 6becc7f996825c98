//! The X API v2 filtered-stream source: syncs the stream's rules to the config,
//! holds one streaming connection, and publishes each post as it arrives.
//!
//! It speaks `GET /2/tweets/search/stream` (one JSON object per line, a blank
//! keep-alive line about every 20 s) and `/2/tweets/search/stream/rules`. Only one
//! connection is ever open: X closes the older one when an app opens a second.
//! Reconnects follow X's schedule ([`backoff`]); every state change (connected,
//! failing for a new reason) is logged once, and repeated retries only at debug
//! level, so `journalctl -u tweetpipe` shows the story without the noise. Posts
//! are published raw; decoding, and dead-lettering malformed lines, is the
//! process stage's job.
//!
//! X does not resend what it matched while no connection was open. The source
//! remembers when the stream last delivered ([`gap`], kept in a state file
//! across restarts), so after a reconnect or a restart it logs and counts the
//! gap once, and fills it as `source.x.gap_recovery` says: reconnecting with
//! `backfill_minutes`, or reading the gap again with recent search ([`search`])
//! beside the live stream.

pub mod backoff;
pub mod client;
pub mod gap;
pub mod rules;
pub mod search;
pub mod stream;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::Method;
use tokio_util::sync::CancellationToken;

use self::backoff::{FailureKind, ReconnectSchedule};
use self::client::{ApiError, BearerToken, ClientBuildError, Problem, TokenError, XClient};
use self::gap::{Cause, Gap, MAX_BACKFILL_MINUTES, SavedState, Tracker};
use self::rules::{RulePlan, RulesError};
use self::search::Recovery;
use self::stream::{Line, LineBuffer, classify};
use crate::broker::Publisher;
use crate::config::{GapRecovery, XSourceConfig};
use crate::metrics::ConnectionStatus;
use crate::stats::Stats;

/// The filtered-stream endpoint.
pub const STREAM_PATH: &str = "/2/tweets/search/stream";

/// Why the X source could not start or had to stop.
#[derive(Debug, thiserror::Error)]
pub enum XSourceError {
    #[error(transparent)]
    Token(#[from] TokenError),
    #[error(transparent)]
    Client(#[from] ClientBuildError),
    #[error(transparent)]
    Rules(#[from] RulesError),
    #[error("source.x: the broker closed while posts were still arriving")]
    BrokerClosed,
}

/// How the source waits out a reconnect delay. The default is a tokio sleep;
/// tests pass one that records the delays X's schedule asked for and returns at
/// once, so minutes of backoff take no time and can be checked exactly.
pub type Sleeper = Arc<dyn Fn(Duration) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// Streams posts matching `source.x.rules` into the broker.
#[derive(Clone)]
pub struct XSource {
    config: XSourceConfig,
    client: XClient,
    sleeper: Sleeper,
    status: Arc<ConnectionStatus>,
}

impl std::fmt::Debug for XSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XSource")
            .field("config", &self.config)
            .field("client", &self.client)
            .finish_non_exhaustive()
    }
}

impl XSource {
    /// Finds the bearer token (see [`BearerToken::load`]) and prepares the client.
    pub fn new(config: XSourceConfig) -> Result<XSource, XSourceError> {
        let token = BearerToken::load(&config)?;
        XSource::with_token(config, &token)
    }

    /// Prepares the client with a token found elsewhere.
    pub fn with_token(config: XSourceConfig, token: &BearerToken) -> Result<XSource, XSourceError> {
        let client = XClient::new(&config.api_base, token)?;
        Ok(XSource {
            config,
            client,
            sleeper: Arc::new(|delay| Box::pin(tokio::time::sleep(delay))),
            status: Arc::default(),
        })
    }

    /// Reports the connection state (for metrics and `/readyz`) to `status`.
    pub fn with_status(mut self, status: Arc<ConnectionStatus>) -> XSource {
        self.status = status;
        self
    }

    /// Waits out reconnect delays with `sleeper` instead of a tokio sleep.
    pub fn with_sleeper(mut self, sleeper: Sleeper) -> XSource {
        self.sleeper = sleeper;
        self
    }

    /// The API client (for `x-rules`).
    pub fn client(&self) -> &XClient {
        &self.client
    }

    /// What syncing would change on X, validated with `dry_run`; changes nothing.
    pub async fn plan_rules(&self) -> Result<RulePlan, RulesError> {
        rules::plan(&self.client, &self.config.rules).await
    }

    /// The query string of the stream request: the fields and expansions to fill.
    pub fn stream_query(&self) -> Vec<(&'static str, String)> {
        [
            ("tweet.fields", &self.config.tweet_fields),
            ("expansions", &self.config.expansions),
            ("user.fields", &self.config.user_fields),
            ("place.fields", &self.config.place_fields),
        ]
        .into_iter()
        .filter(|(_, fields)| !fields.is_empty())
        .map(|(name, fields)| (name, fields.join(",")))
        .collect()
    }

    /// Syncs the rules, then streams until `cancel` fires. Returns an error only
    /// when it cannot go on: a rule X rejects, or a closed broker. Everything else
    /// (network, HTTP errors, stalls, X's disconnects) is retried on X's schedule.
    pub async fn run(
        self,
        publisher: Publisher,
        stats: Arc<Stats>,
        cancel: CancellationToken,
    ) -> Result<(), XSourceError> {
        let mut state = StateLog::new(self.client.base(), self.status.clone());
        let mut schedule = ReconnectSchedule::new();
        loop {
            let synced = tokio::select! {
                biased;
                _ = cancel.cancelled() => return Ok(()),
                synced = rules::sync(&self.client, &self.config.rules) => synced,
            };
            match synced {
                Ok(plan) => {
                    log::info!(
                        "X rules synced: {} kept, {} added, {} deleted",
                        plan.keep.len(),
                        plan.add.len(),
                        plan.delete.len()
                    );
                    break;
                }
                Err(RulesError::Api(error)) if error.is_transient() => {
                    let failure = Failure::from_api(error);
                    let delay = schedule.next_delay(failure.kind());
                    state.failed(&failure, "syncing rules", delay);
                    if self.wait(delay, &cancel).await {
                        return Ok(());
                    }
                }
                Err(error) => return Err(error.into()),
            }
        }

        let saved = self.load_state();
        let tracker = Tracker::from_saved(&saved);
        let stop = cancel.child_token();
        // The state is saved a last time after recovery stopped, so a window it
        // did not finish stays in the file.
        let saved_last = CancellationToken::new();
        let saver =
            self.config.state_file.clone().map(|path| {
                tokio::spawn(gap::keep_saved(path, tracker.clone(), saved_last.clone()))
            });
        let recovery = match self.config.gap_recovery {
            GapRecovery::Search => Some(tokio::spawn(
                Recovery {
                    client: self.client.clone(),
                    fields: self.stream_query(),
                    publisher: publisher.clone(),
                    stats: stats.clone(),
                    status: self.status.clone(),
                    tracker: tracker.clone(),
                    cancel: stop.clone(),
                    delay: self.config.gap_search_delay,
                }
                .run(),
            )),
            other => {
                let dropped = tracker.clear_pending();
                if dropped > 0 {
                    log::info!(
                        "X stream: {dropped} gap(s) an earlier run left to recent search are not recovered (source.x.gap_recovery is now \"{}\")",
                        other.as_str()
                    );
                }
                None
            }
        };
        let streamed = self
            .stream(&publisher, &stats, &cancel, &mut state, &tracker, &saved)
            .await;
        stop.cancel();
        if let Some(recovery) = recovery {
            let _ = recovery.await;
        }
        saved_last.cancel();
        if let Some(saver) = saver {
            let _ = saver.await;
        }
        streamed
    }

    /// Reads the state file; a file that cannot be read is logged and the run
    /// goes on without knowing the gap since the last run.
    fn load_state(&self) -> SavedState {
        let Some(path) = &self.config.state_file else {
            return SavedState::default();
        };
        match gap::load(path) {
            Ok(saved) => saved,
            Err(error) => {
                log::warn!("{error}");
                SavedState::default()
            }
        }
    }

    /// The stream connection, reconnected on X's schedule until `cancel` fires.
    async fn stream(
        &self,
        publisher: &Publisher,
        stats: &Stats,
        cancel: &CancellationToken,
        state: &mut StateLog,
        tracker: &Tracker,
        saved: &SavedState,
    ) -> Result<(), XSourceError> {
        let base_query = self.stream_query();
        let mut schedule = ReconnectSchedule::new();
        let mut lines = LineBuffer::default();
        let mut gaps = GapWatch {
            since: saved.last_seen.map(|since| (since, Cause::Restart)),
            backfill_refused: false,
        };
        loop {
            let backfill = gaps.backfill(self.config.gap_recovery, self.config.gap_overlap);
            let mut query = base_query.clone();
            if let Some(minutes) = backfill {
                query.push(("backfill_minutes", minutes.to_string()));
            }
            let attempt = Attempt {
                source: self,
                query: &query,
                publisher,
                stats,
                cancel,
                tracker,
                backfill,
            };
            let failure = match attempt
                .run(&mut schedule, state, &mut lines, &mut gaps)
                .await?
            {
                Some(failure) => failure,
                None => return Ok(()),
            };
            lines.clear();
            if gaps.since.is_none()
                && let Some(seen) = tracker.last_seen()
            {
                gaps.since = Some((seen, Cause::Reconnect));
            }
            if backfill.is_some()
                && let Failure::Http {
                    status: status @ (400 | 403),
                    problem,
                } = &failure
            {
                gaps.backfill_refused = true;
                log::warn!(
                    "X stream: X refused the connection with backfill_minutes (HTTP {status}: {problem}); backfill needs Enterprise access, so the source reconnects without it and gaps are not recovered (set source.x.gap_recovery = \"search\" or \"off\")"
                );
            }
            let delay = schedule.next_delay(failure.kind());
            state.failed(&failure, "streaming", delay);
            if self.wait(delay, cancel).await {
                return Ok(());
            }
        }
    }

    /// A gap ended: the new connection answered at `gap.until`. Logs it once,
    /// counts it, and hands it to recent search when that is the mode.
    fn gap_closed(&self, gap: Gap, backfill: Option<u32>, tracker: &Tracker) {
        self.status.gap(gap.length());
        let head = format!(
            "X stream: {} without posts ({})",
            gap::humanize(gap.length()),
            gap.cause.as_str()
        );
        let overlap = self.config.gap_overlap;
        match (self.config.gap_recovery, backfill) {
            (GapRecovery::Off, _) => log::info!(
                "{head}; not recovered (source.x.gap_recovery = \"off\"; \"search\" or \"backfill\" fill gaps, at the cost of post reads)"
            ),
            (GapRecovery::Backfill, None) => {
                log::warn!("{head}; not recovered (X refused backfill_minutes for this app)")
            }
            (GapRecovery::Backfill, Some(minutes)) => {
                let reach = Duration::from_secs(u64::from(MAX_BACKFILL_MINUTES) * 60);
                let wanted = gap.length() + overlap;
                if wanted > reach {
                    log::warn!(
                        "{head}; recovering the last {MAX_BACKFILL_MINUTES} min with backfill_minutes={minutes}: X backfills at most {MAX_BACKFILL_MINUTES} min, so the {} before are not recovered (source.x.gap_recovery = \"search\" reaches back 7 days)",
                        gap::humanize(wanted - reach)
                    );
                } else {
                    log::info!("{head}; recovering with backfill_minutes={minutes}");
                }
            }
            (GapRecovery::Search, _) => {
                let window = gap.search_window(overlap);
                tracker.add_pending(window);
                if gap.length() > gap::SEARCH_REACH {
                    log::warn!(
                        "{head}; recovering with recent search, which reaches back 7 days only: the {} before are not recovered",
                        gap::humanize(gap.length() - gap::SEARCH_REACH)
                    );
                } else {
                    log::info!(
                        "{head}; recovering with recent search ({})",
                        window.describe()
                    );
                }
            }
        }
    }
}

/// Where the stream's current gap started, if it is in one.
#[derive(Debug)]
struct GapWatch {
    /// When the stream last delivered before the gap, and why it went away.
    since: Option<(DateTime<Utc>, Cause)>,
    /// X refused `backfill_minutes` once: it is not sent again.
    backfill_refused: bool,
}

impl GapWatch {
    /// The `backfill_minutes` the next connection asks for, if any.
    fn backfill(&self, mode: GapRecovery, overlap: Duration) -> Option<u32> {
        if mode != GapRecovery::Backfill || self.backfill_refused {
            return None;
        }
        let (since, cause) = self.since?;
        Some(
            Gap {
                since,
                until: Utc::now(),
                cause,
            }
            .backfill_minutes(overlap),
        )
    }
}

impl XSource {
    /// Waits `delay`; true when `cancel` fired first.
    async fn wait(&self, delay: Duration, cancel: &CancellationToken) -> bool {
        tokio::select! {
            biased;
            _ = cancel.cancelled() => true,
            _ = (self.sleeper)(delay) => false,
        }
    }
}

/// One connection, from the request to its end.
struct Attempt<'a> {
    source: &'a XSource,
    query: &'a [(&'static str, String)],
    publisher: &'a Publisher,
    stats: &'a Stats,
    cancel: &'a CancellationToken,
    tracker: &'a Tracker,
    /// The `backfill_minutes` this connection asks for.
    backfill: Option<u32>,
}

impl Attempt<'_> {
    /// Streams until the connection fails (`Some`) or `cancel` fires (`None`).
    async fn run(
        self,
        schedule: &mut ReconnectSchedule,
        state: &mut StateLog,
        lines: &mut LineBuffer,
        gaps: &mut GapWatch,
    ) -> Result<Option<Failure>, XSourceError> {
        let client = &self.source.client;
        let request = client.request(Method::GET, STREAM_PATH).query(self.query);
        let sent = tokio::select! {
            biased;
            _ = self.cancel.cancelled() => return Ok(None),
            sent = request.send() => sent,
        };
        let mut response = match sent {
            Ok(response) => response,
            Err(error) => return Ok(Some(Failure::Network(client.network(&error).to_string()))),
        };
        let status = response.status();
        if !status.is_success() {
            let problem = tokio::select! {
                biased;
                _ = self.cancel.cancelled() => return Ok(None),
                problem = XClient::problem(response) => problem,
            };
            return Ok(Some(Failure::Http {
                status: status.as_u16(),
                problem,
            }));
        }
        let answered = Utc::now();
        let stall = self.source.config.stall_timeout;
        let mut healthy = false;
        // Chunks read while the last posts' commit synced, not yet published.
        let mut pending: Vec<bytes::Bytes> = Vec::new();
        // How the body ended, once it did (behind what `pending` holds).
        let mut body_end: Option<Failure> = None;
        loop {
            if pending.is_empty() {
                if let Some(failure) = body_end.take() {
                    return Ok(Some(failure));
                }
                let chunk = tokio::select! {
                    biased;
                    _ = self.cancel.cancelled() => return Ok(None),
                    chunk = tokio::time::timeout(stall, response.chunk()) => chunk,
                };
                match chunk {
                    Err(_) => return Ok(Some(Failure::Stalled(stall))),
                    Ok(Err(error)) => {
                        return Ok(Some(Failure::Network(client::error_chain(&error))));
                    }
                    Ok(Ok(None)) => return Ok(Some(Failure::Ended)),
                    Ok(Ok(Some(chunk))) => pending.push(chunk),
                }
            }
            let now = Utc::now();
            self.tracker.seen(now);
            if !healthy {
                healthy = true;
                schedule.healthy();
                state.connected();
                if let Some((since, cause)) = gaps.since.take() {
                    let gap = Gap {
                        since,
                        until: answered,
                        cause,
                    };
                    self.source.gap_closed(gap, self.backfill, self.tracker);
                }
            }
            let mut posts = 0usize;
            let mut failure = None;
            'chunks: for chunk in pending.drain(..) {
                let complete = match lines.push(&chunk) {
                    Ok(complete) => complete,
                    Err(error) => {
                        failure = Some(Failure::Network(error.to_string()));
                        break;
                    }
                };
                for line in complete {
                    match classify(&line) {
                        Line::KeepAlive => {}
                        // X never sends a post again: once received, it is published
                        // even when shutdown comes meanwhile (with the rest of the
                        // chunk's lines); cancellation is looked at before the next read.
                        Line::Post => {
                            self.stats.read_one();
                            self.source.status.received();
                            self.tracker.post(now);
                            posts += 1;
                            if self.publisher.publish(Arc::from(line)).await.is_err() {
                                return self.broker_closed();
                            }
                        }
                        Line::Error {
                            disconnect: true,
                            message,
                        } => {
                            failure = Some(Failure::Operational(message));
                            break 'chunks;
                        }
                        Line::Error {
                            disconnect: false,
                            message,
                        } => log::warn!("X stream: X reported an error in the stream: {message}"),
                    }
                }
            }
            pending.clear();
            let mut pending_bytes = 0usize;
            // X never sends these posts again: they are on disk (with a spool)
            // before any later one is published. One commit covers everything
            // published since the last; while it syncs, the body is read on
            // into `pending`, so the next round publishes more at once and the
            // waits batch themselves instead of capping the stream.
            if posts > 0 {
                let synced = self.publisher.sync();
                tokio::pin!(synced);
                loop {
                    tokio::select! {
                        biased;
                        synced = &mut synced => {
                            if synced.is_err() {
                                return self.broker_closed();
                            }
                            break;
                        }
                        // After SIGTERM nothing more is read: what is read
                        // must be published, and a stream faster than the
                        // sink would otherwise keep `pending` full forever.
                        chunk = response.chunk(),
                            if failure.is_none()
                                && body_end.is_none()
                                && pending_bytes < READ_AHEAD_BYTES
                                && !self.cancel.is_cancelled() =>
                        {
                            match chunk {
                                Ok(Some(chunk)) => {
                                    pending_bytes += chunk.len();
                                    pending.push(chunk);
                                }
                                Ok(None) => body_end = Some(Failure::Ended),
                                Err(error) => {
                                    body_end = Some(Failure::Network(client::error_chain(&error)));
                                }
                            }
                        }
                    }
                }
            }
            if let Some(failure) = failure {
                return Ok(Some(failure));
            }
        }
    }

    /// The broker refused a post: expected only at shutdown.
    fn broker_closed(&self) -> Result<Option<Failure>, XSourceError> {
        if self.cancel.is_cancelled() {
            log::error!(
                "X stream: a post was received but the broker had closed at shutdown; it was not processed"
            );
            return Ok(None);
        }
        Err(XSourceError::BrokerClosed)
    }
}

/// Bytes of the stream read ahead while a commit syncs, at most; past this
/// the socket buffers the rest. Everything read ahead was received, so at
/// SIGTERM it is published before the source stops: with a small or full
/// spool that takes as long as the sink needs for it, so this stays at a few
/// commits' worth (about 180 posts) rather than megabytes.
const READ_AHEAD_BYTES: usize = 256 * 1024;

/// Why a connection (or a rules request) ended.
#[derive(Debug, Clone)]
enum Failure {
    /// No HTTP answer, or the body broke off.
    Network(String),
    /// X ended the body cleanly.
    Ended,
    /// Nothing, not even a keep-alive, for this long.
    Stalled(Duration),
    /// An in-stream error object announced the disconnect.
    Operational(String),
    /// X answered with an error status.
    Http { status: u16, problem: Problem },
}

impl Failure {
    fn from_api(error: ApiError) -> Failure {
        match error {
            ApiError::Status {
                status, problem, ..
            } => Failure::Http {
                status,
                problem: *problem,
            },
            other => Failure::Network(other.to_string()),
        }
    }

    fn kind(&self) -> FailureKind {
        match self {
            Failure::Http { status: 429, .. } => FailureKind::RateLimited,
            Failure::Http { .. } => FailureKind::Http,
            _ => FailureKind::Network,
        }
    }

    /// X refused the credentials (401) or the app's access (403): retrying
    /// alone will not fix it.
    fn is_auth(&self) -> bool {
        matches!(
            self,
            Failure::Http {
                status: 401 | 403,
                ..
            }
        )
    }

    /// Failures with the same key are one state: logged once.
    fn key(&self) -> String {
        match self {
            Failure::Network(_) => "network".to_owned(),
            Failure::Ended => "ended".to_owned(),
            Failure::Stalled(_) => "stalled".to_owned(),
            Failure::Operational(_) => "operational".to_owned(),
            Failure::Http { status, .. } => format!("http-{status}"),
        }
    }

    fn describe(&self) -> String {
        match self {
            Failure::Network(message) => format!("network error: {message}"),
            Failure::Ended => "X closed the stream".to_owned(),
            Failure::Stalled(after) => format!(
                "no data and no keep-alive for {} s (stalled)",
                after.as_secs()
            ),
            Failure::Operational(message) => format!("X disconnected the stream: {message}"),
            Failure::Http {
                status: 401,
                problem,
            } => format!(
                "X refused the bearer token (HTTP 401: {problem}); check the token (source.x.bearer_token_file, ${}, or the {} credential), that the app has access to the filtered stream, and that this machine's clock is right",
                client::TOKEN_ENV,
                client::TOKEN_CREDENTIAL
            ),
            Failure::Http {
                status: 403,
                problem,
            } => format!(
                "X forbade the request (HTTP 403: {problem}); check that the app is attached to a Project with filtered-stream access, its permissions, the bearer token, and that this machine's clock is right"
            ),
            Failure::Http {
                status: 429,
                problem,
            } => format!(
                "X is rate-limiting this app (HTTP 429: {problem}); if it says TooManyConnections, another client (another tweetpipe?) holds this app's one stream connection"
            ),
            Failure::Http { status, problem } => format!("X answered HTTP {status}: {problem}"),
        }
    }
}

/// How often a repeated authentication failure (401/403) is logged at info level:
/// a wrong token is a mistake to fix, so it is not left at debug level, but a
/// failure every few minutes for days must not flood the journal either.
const AUTH_LOG_EVERY: Duration = Duration::from_secs(60);

/// Logs each change of connection state once; repeats go to debug, except
/// authentication failures, which are repeated at info at a bounded rate.
#[derive(Debug)]
struct StateLog {
    base: String,
    last: Option<String>,
    /// Attempts that failed since data last flowed (a healthy connection's end
    /// is not a failed attempt).
    failures: u32,
    /// Why the last healthy connection ended, when it did.
    dropped: Option<String>,
    /// When a repeated authentication failure was last logged at info.
    auth_logged: Option<std::time::Instant>,
    status: Arc<ConnectionStatus>,
}

impl StateLog {
    fn new(base: &str, status: Arc<ConnectionStatus>) -> StateLog {
        StateLog {
            base: base.to_owned(),
            last: None,
            failures: 0,
            dropped: None,
            auth_logged: None,
            status,
        }
    }

    /// The stream is up and data flows. True when this was logged at info.
    fn connected(&mut self) -> bool {
        self.status.connected();
        let changed = self.last.as_deref() != Some("connected");
        if changed {
            match (self.failures, self.dropped.take()) {
                (0, None) => log::info!("X stream at {}: connected, posts flowing", self.base),
                (0, Some(reason)) => log::info!(
                    "X stream at {}: reconnected at once after the connection ended ({reason}), posts flowing",
                    self.base
                ),
                (failures, _) => log::info!(
                    "X stream at {}: connected again after {failures} failed attempt(s), posts flowing",
                    self.base
                ),
            }
        }
        self.last = Some("connected".to_owned());
        self.failures = 0;
        self.dropped = None;
        self.auth_logged = None;
        changed
    }

    /// An attempt failed, or a healthy connection ended. True when this was
    /// logged at warn (a new state).
    fn failed(&mut self, failure: &Failure, doing: &str, delay: Duration) -> bool {
        self.failed_at(failure, doing, delay, std::time::Instant::now())
    }

    fn failed_at(
        &mut self,
        failure: &Failure,
        doing: &str,
        delay: Duration,
        now: std::time::Instant,
    ) -> bool {
        if self.last.as_deref() == Some("connected") {
            self.dropped = Some(failure.describe());
        } else {
            self.failures += 1;
        }
        let key = failure.key();
        let reason = format!("{doing}: {}", failure.describe());
        if failure.is_auth() {
            self.status.refused(&reason, delay);
        } else {
            self.status.backing_off(&reason, delay);
        }
        let changed = self.last.as_deref() != Some(key.as_str());
        let when = if delay.is_zero() {
            "reconnecting now".to_owned()
        } else {
            format!("retrying in {}", humanize(delay))
        };
        if changed {
            let further = if failure.is_auth() {
                format!(
                    "further failures for this reason are logged at info level at most every {} s",
                    AUTH_LOG_EVERY.as_secs()
                )
            } else {
                "further retries for this reason are logged at debug level".to_owned()
            };
            log::warn!(
                "X stream at {}: {doing}: {}; {when} ({further})",
                self.base,
                failure.describe()
            );
            if failure.is_auth() {
                self.auth_logged = Some(now);
            }
        } else if failure.is_auth()
            && self
                .auth_logged
                .is_none_or(|logged| now.duration_since(logged) >= AUTH_LOG_EVERY)
        {
            self.auth_logged = Some(now);
            log::info!(
                "X stream at {}: {doing}: still refused after {} attempt(s) ({}); {when}",
                self.base,
                self.failures,
                failure.describe()
            );
        } else {
            log::debug!(
                "X stream at {}: {doing}: attempt {} failed again ({}); {when}",
                self.base,
                self.failures,
                failure.key()
            );
        }
        self.last = Some(key);
        changed
    }
}

fn humanize(delay: Duration) -> String {
    if delay < Duration::from_secs(1) {
        format!("{} ms", delay.as_millis())
    } else if delay.subsec_millis() == 0 {
        format!("{} s", delay.as_secs())
    } else {
        format!("{:.2} s", delay.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn http(status: u16) -> Failure {
        Failure::Http {
            status,
            problem: Problem::default(),
        }
    }

    #[test]
    fn each_state_change_is_logged_once() {
        let mut state = StateLog::new("https://api.x.com", Arc::default());
        let delay = Duration::from_secs(5);
        assert!(state.failed(&http(503), "streaming", delay));
        assert!(!state.failed(&http(503), "streaming", delay * 2));
        assert!(state.failed(&http(429), "streaming", delay));
        assert!(state.connected());
        assert!(!state.connected());
        assert!(state.failed(
            &Failure::Stalled(Duration::from_secs(20)),
            "streaming",
            Duration::ZERO
        ));
        assert!(state.failed(&Failure::Network("reset".to_owned()), "streaming", delay));
        assert!(!state.failed(&Failure::Network("refused".to_owned()), "streaming", delay));
    }

    #[test]
    fn a_plain_drop_is_not_a_failed_attempt_and_auth_failures_stay_visible() {
        let status = Arc::new(ConnectionStatus::default());
        let mut state = StateLog::new("https://api.x.com", status.clone());
        state.connected();
        state.failed(&Failure::Ended, "streaming", Duration::ZERO);
        assert_eq!(
            state.failures, 0,
            "the end of a healthy connection is no failed attempt"
        );
        assert!(state.dropped.is_some());
        state.connected();
        let start = std::time::Instant::now();
        let delay = Duration::from_secs(5);
        assert!(state.failed_at(&http(401), "syncing rules", delay, start));
        assert!(status.is_refused());
        // Repeats inside the rate bound are not logged at info again…
        state.failed_at(
            &http(401),
            "syncing rules",
            delay,
            start + Duration::from_secs(5),
        );
        assert_eq!(state.auth_logged, Some(start));
        // …repeats after it are.
        let later = start + AUTH_LOG_EVERY;
        state.failed_at(&http(401), "syncing rules", delay, later);
        assert_eq!(state.auth_logged, Some(later));
        state.connected();
        assert!(!status.is_refused());
    }

    #[test]
    fn failures_pick_xs_curves() {
        assert_eq!(http(429).kind(), FailureKind::RateLimited);
        assert_eq!(http(401).kind(), FailureKind::Http);
        assert_eq!(http(503).kind(), FailureKind::Http);
        assert_eq!(Failure::Ended.kind(), FailureKind::Network);
        assert_eq!(
            Failure::Operational(String::new()).kind(),
            FailureKind::Network
        );
        let auth = http(401).describe();
        for hint in ["token", "access", "clock"] {
            assert!(auth.contains(hint), "{auth}");
        }
        assert_eq!(humanize(Duration::from_millis(250)), "250 ms");
        assert_eq!(humanize(Duration::from_secs(320)), "320 s");
    }
}
