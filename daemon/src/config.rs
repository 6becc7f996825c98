//! `tweetpipe.toml`: the typed configuration and the errors that point at the key.
//!
//! Unknown keys and wrong types are rejected with the file, line and column, the
//! key path and what was expected. Relative paths resolve against the directory
//! of the config file, so a config and its data can move together.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// The whole configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where posts come from.
    #[serde(default)]
    pub source: SourcesConfig,
    /// What carries messages from ingest to process.
    #[serde(default)]
    pub broker: BrokerConfig,
    /// The plugin chain, in order.
    #[serde(default)]
    pub plugins: Vec<PluginConfig>,
    /// How rows are grouped before they reach the sink.
    #[serde(default)]
    pub batch: BatchConfig,
    /// Where rows are committed.
    #[serde(default)]
    pub sink: SinkConfig,
    /// Where messages that cannot be processed are kept.
    pub dead_letter: DeadLetterConfig,
    /// Process-stage settings.
    #[serde(default)]
    pub process: ProcessConfig,
    /// Log level and destination.
    #[serde(default)]
    pub logging: LoggingConfig,
    /// How the daemon behaves as a service.
    #[serde(default)]
    pub daemon: DaemonConfig,
    /// The Prometheus endpoint.
    #[serde(default)]
    pub metrics: MetricsConfig,
    /// The web dashboard behind a login.
    #[serde(default)]
    pub dashboard: DashboardConfig,
}

/// `[dashboard]`: one web page of the stream's aggregates, behind a login.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DashboardConfig {
    /// Serve the dashboard at all (off unless enabled).
    #[serde(default)]
    pub enabled: bool,
    /// Address and port of its own listener; loopback by default.
    #[serde(default = "default_dashboard_listen", with = "socket_addr")]
    pub listen: std::net::SocketAddr,
    /// The login name.
    #[serde(default = "default_dashboard_user")]
    pub user: String,
    /// An argon2 PHC string (`tweetpipe dashboard hash-password` makes one).
    #[serde(default)]
    pub password_hash: Option<String>,
    /// A file holding the PHC string instead; else the systemd credential
    /// `dashboard-password-hash` ($CREDENTIALS_DIRECTORY).
    #[serde(default)]
    pub password_hash_file: Option<PathBuf>,
    /// Where the aggregates are kept across restarts; unset: `dashboard.json` in
    /// $STATE_DIRECTORY (systemd's StateDirectory=), else beside this file.
    #[serde(default)]
    pub state_file: Option<PathBuf>,
    /// Serve HTTPS with this PEM certificate chain (with `tls_key`).
    #[serde(default)]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of `tls_cert`.
    #[serde(default)]
    pub tls_key: Option<PathBuf>,
    /// Mark the session cookie `Secure` without `tls_cert` (behind a TLS reverse proxy).
    #[serde(default)]
    pub secure_cookie: bool,
    /// How long a login lasts, in hours.
    #[serde(default = "default_session_hours")]
    pub session_hours: u64,
    /// Failed logins allowed per client address per minute before it must wait.
    #[serde(default = "default_login_attempts")]
    pub login_attempts_per_minute: u32,
}

impl Default for DashboardConfig {
    fn default() -> Self {
        DashboardConfig {
            enabled: false,
            listen: default_dashboard_listen(),
            user: default_dashboard_user(),
            password_hash: None,
            password_hash_file: None,
            state_file: None,
            tls_cert: None,
            tls_key: None,
            secure_cookie: false,
            session_hours: default_session_hours(),
            login_attempts_per_minute: default_login_attempts(),
        }
    }
}

impl DashboardConfig {
    fn validate(&self) -> Result<(), (&'static str, String)> {
        match (&self.tls_cert, &self.tls_key) {
            (Some(_), None) => {
                return Err((
                    "tls_key",
                    "is missing: tls_cert needs the PEM private key beside it".to_owned(),
                ));
            }
            (None, Some(_)) => {
                return Err((
                    "tls_cert",
                    "is missing: tls_key needs the PEM certificate chain beside it".to_owned(),
                ));
            }
            _ => {}
        }
        if self.password_hash.is_some() && self.password_hash_file.is_some() {
            return Err((
                "password_hash_file",
                "set password_hash or password_hash_file, not both".to_owned(),
            ));
        }
        if self.user.is_empty() {
            return Err(("user", "must not be empty".to_owned()));
        }
        if self.session_hours == 0 {
            return Err(("session_hours", "must be at least 1".to_owned()));
        }
        if self.login_attempts_per_minute == 0 {
            return Err(("login_attempts_per_minute", "must be at least 1".to_owned()));
        }
        Ok(())
    }
}

fn default_dashboard_listen() -> std::net::SocketAddr {
    std::net::SocketAddr::from(([127, 0, 0, 1], 9465))
}

fn default_dashboard_user() -> String {
    "admin".to_owned()
}

fn default_session_hours() -> u64 {
    12
}

fn default_login_attempts() -> u32 {
    5
}

/// `[metrics]`: `/metrics` (Prometheus), `/healthz` and `/readyz` over HTTP.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// Serve the endpoints at all.
    #[serde(default = "default_metrics_enabled")]
    pub enabled: bool,
    /// Address and port; loopback by default. Port 0 picks a free port (logged at start).
    #[serde(default = "default_metrics_listen", with = "socket_addr")]
    pub listen: std::net::SocketAddr,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            enabled: default_metrics_enabled(),
            listen: default_metrics_listen(),
        }
    }
}

fn default_metrics_enabled() -> bool {
    true
}

fn default_metrics_listen() -> std::net::SocketAddr {
    std::net::SocketAddr::from(([127, 0, 0, 1], 9464))
}

/// `[daemon]`: service behaviour (shutdown).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DaemonConfig {
    /// After SIGTERM, how long the drain may take before the daemon gives up and
    /// exits; keep it below the unit's `TimeoutStopSec=`.
    #[serde(
        default = "default_drain_timeout",
        with = "duration_ms",
        rename = "drain_timeout_ms"
    )]
    pub drain_timeout: Duration,
    /// Where `run` writes its process id, for `tweetpipe reload`; unset writes none.
    #[serde(default)]
    pub pid_file: Option<PathBuf>,
}

impl Default for DaemonConfig {
    fn default() -> Self {
        DaemonConfig {
            drain_timeout: default_drain_timeout(),
            pid_file: None,
        }
    }
}

fn default_drain_timeout() -> Duration {
    Duration::from_secs(30)
}

/// `[source.*]`: each present table is one source.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourcesConfig {
    pub replay: Option<ReplayConfig>,
    pub x: Option<XSourceConfig>,
}

/// `[source.replay]`: JSONL files (X v2 stream messages or v1.1 statuses).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplayConfig {
    /// A file, a directory of `*.jsonl` files, or `-` for standard input.
    pub path: PathBuf,
    /// Posts per second; absent or 0 replays as fast as the pipeline takes them.
    #[serde(default)]
    pub rate: Option<f64>,
    /// Start again at the beginning after the last line.
    #[serde(default, rename = "loop")]
    pub loop_forever: bool,
    /// Continue where the last run of this replay had every line settled
    /// (committed or dead-lettered); false reads from line one every run.
    #[serde(default = "default_replay_resume")]
    pub resume: bool,
    /// Where replay positions are kept; unset: `replay-positions.json` in
    /// $STATE_DIRECTORY (systemd's StateDirectory=), else beside this file.
    #[serde(default)]
    pub state_file: Option<PathBuf>,
    /// `tweetpipe run --from-start`: ignore the recorded position this run.
    #[serde(skip)]
    pub from_start: bool,
}

fn default_replay_resume() -> bool {
    true
}

/// `[source.x]`: the X API v2 filtered stream; X's rules are synced to `rules` on start.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct XSourceConfig {
    /// Where the API lives (`https://api.x.com`); change it for a proxy or a test server.
    #[serde(default = "default_x_api_base")]
    pub api_base: String,
    /// A file holding the bearer token. Without it, the token comes from the
    /// `TWEETPIPE_X_BEARER_TOKEN` environment variable or the systemd credential
    /// `x-bearer-token` (`$CREDENTIALS_DIRECTORY/x-bearer-token`).
    #[serde(default)]
    pub bearer_token_file: Option<PathBuf>,
    /// The filtered-stream rules; matched with X's by value and tag.
    pub rules: Vec<XRule>,
    /// `tweet.fields` to request.
    #[serde(default = "default_x_tweet_fields")]
    pub tweet_fields: Vec<String>,
    /// `expansions` to request.
    #[serde(default = "default_x_expansions")]
    pub expansions: Vec<String>,
    /// `user.fields` to request (for `includes.users`).
    #[serde(default = "default_x_user_fields")]
    pub user_fields: Vec<String>,
    /// `place.fields` to request (for `includes.places`).
    #[serde(default = "default_x_place_fields")]
    pub place_fields: Vec<String>,
    /// No post and no keep-alive for this long means the connection stalled.
    #[serde(
        default = "default_x_stall_timeout",
        with = "duration_secs",
        rename = "stall_timeout_secs"
    )]
    pub stall_timeout: Duration,
    /// What to do about the posts X matched while the stream was down (a
    /// reconnect or a restart): nothing, X's backfill, or recent search.
    #[serde(default)]
    pub gap_recovery: GapRecovery,
    /// How far before the last post (or keep-alive) received a recovery starts:
    /// covers posts X delivers a little late and, without a durable spool, posts
    /// read but not yet committed when the daemon was killed.
    #[serde(
        default = "default_x_gap_overlap",
        with = "duration_secs",
        rename = "gap_overlap_secs"
    )]
    pub gap_overlap: Duration,
    /// How old a gap's end must be before recent search reads it: X refuses
    /// less than 10 s, and its search index may lag the stream a little.
    #[serde(
        default = "default_x_gap_search_delay",
        with = "duration_secs",
        rename = "gap_search_delay_secs"
    )]
    pub gap_search_delay: Duration,
    /// Where the time of the last post received (and unrecovered gaps) is kept
    /// across restarts; unset: `x-stream.json` in $STATE_DIRECTORY (systemd's
    /// StateDirectory=), else beside the config file.
    #[serde(default)]
    pub state_file: Option<PathBuf>,
}

/// `source.x.gap_recovery`: how the X source fills a gap in the stream.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GapRecovery {
    /// Log and count gaps; recover nothing (no extra post reads).
    #[default]
    Off,
    /// Reconnect with X's `backfill_minutes` (Enterprise access; at most 5 min).
    Backfill,
    /// Run each stream rule through recent search over the gap (at most 7 days).
    Search,
}

impl GapRecovery {
    /// The value as written in the config.
    pub fn as_str(self) -> &'static str {
        match self {
            GapRecovery::Off => "off",
            GapRecovery::Backfill => "backfill",
            GapRecovery::Search => "search",
        }
    }
}

/// One filtered-stream rule: X's rule language, and the tag posts carry when it matches.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct XRule {
    pub value: String,
    #[serde(default)]
    pub tag: Option<String>,
}

fn default_x_api_base() -> String {
    "https://api.x.com".to_owned()
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|item| (*item).to_owned()).collect()
}

fn default_x_tweet_fields() -> Vec<String> {
    strings(&[
        "created_at",
        "lang",
        "public_metrics",
        "entities",
        "author_id",
        "referenced_tweets",
        "in_reply_to_user_id",
        "geo",
        "attachments",
        "note_tweet",
    ])
}

fn default_x_expansions() -> Vec<String> {
    strings(&["author_id", "geo.place_id"])
}

fn default_x_user_fields() -> Vec<String> {
    strings(&["username", "name", "location", "public_metrics", "verified"])
}

fn default_x_place_fields() -> Vec<String> {
    strings(&["full_name", "country_code"])
}

fn default_x_stall_timeout() -> Duration {
    Duration::from_secs(20)
}

fn default_x_gap_overlap() -> Duration {
    Duration::from_secs(5)
}

fn default_x_gap_search_delay() -> Duration {
    Duration::from_secs(30)
}

/// `[broker]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BrokerConfig {
    pub kind: BrokerKind,
    /// Embedded queue: messages queued or in flight before ingest waits.
    #[serde(default = "default_capacity")]
    pub capacity: usize,
    /// Deliveries of one message before it goes to the dead-letter destination.
    #[serde(default = "default_max_deliveries")]
    pub max_deliveries: u32,
    /// What this daemon runs: `ingest` (sources → broker), `process` (broker → sink), or both.
    #[serde(default = "default_roles")]
    pub roles: Vec<Role>,
    /// `[broker.pubsub]`: required when `kind = "pubsub"`.
    #[serde(default)]
    pub pubsub: Option<PubsubConfig>,
    /// `[broker.spool]`: the embedded broker's messages on disk until settled.
    #[serde(default)]
    pub spool: SpoolConfig,
}

/// `[broker.spool]`: with `kind = "embedded"`, every message is on disk from
/// publish until it is committed or dead-lettered, and a restart delivers what
/// was left first.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpoolConfig {
    /// Off: the embedded broker is an in-memory queue only (a crash loses what it holds).
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// The spool's directory; unset: `spool` in $STATE_DIRECTORY (systemd's
    /// StateDirectory=), else beside the config file.
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// Bytes of unsettled messages the spool holds before `when_full` applies.
    #[serde(default = "default_spool_max_bytes")]
    pub max_bytes: u64,
    /// What publishing does when the spool holds `max_bytes`.
    #[serde(default)]
    pub when_full: WhenFull,
}

impl Default for SpoolConfig {
    fn default() -> Self {
        SpoolConfig {
            enabled: true,
            path: None,
            max_bytes: default_spool_max_bytes(),
            when_full: WhenFull::default(),
        }
    }
}

fn default_true() -> bool {
    true
}

fn default_spool_max_bytes() -> u64 {
    1024 * 1024 * 1024
}

/// `broker.spool.when_full`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WhenFull {
    /// The source waits until settled messages make room (backpressure).
    #[default]
    Block,
    /// The new message is not kept: logged and counted in
    /// `tweetpipe_spool_dropped_total`, and the source reads on.
    Drop,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            kind: BrokerKind::Embedded,
            capacity: default_capacity(),
            max_deliveries: default_max_deliveries(),
            roles: default_roles(),
            pubsub: None,
            spool: SpoolConfig::default(),
        }
    }
}

impl BrokerConfig {
    /// True when this daemon reads its sources and publishes.
    pub fn ingest(&self) -> bool {
        self.roles.contains(&Role::Ingest)
    }

    /// True when this daemon subscribes and writes to the sink.
    pub fn process(&self) -> bool {
        self.roles.contains(&Role::Process)
    }

    fn validate(&self) -> Result<(), (String, String)> {
        if self.roles.is_empty() {
            return Err((
                "broker.roles".to_owned(),
                "must name at least one role (\"ingest\", \"process\")".to_owned(),
            ));
        }
        match self.kind {
            BrokerKind::Embedded => {
                if !(self.ingest() && self.process()) {
                    return Err((
                        "broker.roles".to_owned(),
                        "the embedded broker lives in one process, so it needs both roles; use kind = \"pubsub\" to split ingest and process".to_owned(),
                    ));
                }
            }
            BrokerKind::Pubsub => {
                let Some(pubsub) = &self.pubsub else {
                    return Err((
                        "broker.pubsub".to_owned(),
                        "kind = \"pubsub\" needs a [broker.pubsub] table with `project`, `topic` and `subscription`".to_owned(),
                    ));
                };
                pubsub.validate()?;
            }
        }
        Ok(())
    }
}

fn default_roles() -> Vec<Role> {
    vec![Role::Ingest, Role::Process]
}

/// One half of the pipeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Sources → broker.
    Ingest,
    /// Broker → plugins → sink.
    Process,
}

/// `[broker.pubsub]`: a Google Cloud Pub/Sub topic and subscription.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PubsubConfig {
    /// The Google Cloud project id.
    pub project: String,
    /// The topic ingest publishes to (a short name, or `projects/…/topics/…`).
    pub topic: String,
    /// The subscription process pulls from (a short name, or `projects/…/subscriptions/…`).
    pub subscription: String,
    /// Create the topic and subscription when they do not exist.
    #[serde(default)]
    pub create_if_missing: bool,
    /// A service-account key file; without it, application default credentials
    /// (the metadata server on a Google VM). Plaintext `http://` endpoints (an
    /// emulator) use no credentials.
    #[serde(default)]
    pub credentials_file: Option<PathBuf>,
    /// Overrides the service endpoint; `PUBSUB_EMULATOR_HOST` also sets it.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// Publish a batch once it holds this many messages.
    #[serde(default = "default_pubsub_batch_messages")]
    pub batch_max_messages: u32,
    /// Publish a batch once it holds this many bytes.
    #[serde(default = "default_pubsub_batch_bytes")]
    pub batch_max_bytes: u32,
    /// Publish a batch at the latest this long after its first message.
    #[serde(
        default = "default_pubsub_batch_delay",
        with = "duration_ms",
        rename = "batch_delay_ms"
    )]
    pub batch_delay: Duration,
    /// Publishes not yet confirmed before the source waits (backpressure).
    #[serde(default = "default_pubsub_max_in_flight")]
    pub max_in_flight: usize,
    /// Streaming pull: messages leased and not yet acked, per stream.
    #[serde(default = "default_pubsub_max_outstanding_messages")]
    pub max_outstanding_messages: i64,
    /// Streaming pull: bytes leased and not yet acked, per stream.
    #[serde(default = "default_pubsub_max_outstanding_bytes")]
    pub max_outstanding_bytes: i64,
    /// Streaming pull streams opened by this daemon.
    #[serde(default = "default_pubsub_streams")]
    pub streams: usize,
    /// How long a message leased by a daemon that stopped answering stays
    /// invisible before Pub/Sub redelivers it: the ack deadline of a
    /// subscription created by `create_if_missing`, and the lease each
    /// streaming pull asks for and renews while the message is processed.
    #[serde(default = "default_pubsub_ack_deadline")]
    pub ack_deadline_seconds: i32,
}

impl PubsubConfig {
    fn validate(&self) -> Result<(), (String, String)> {
        let key = |name: &str| format!("broker.pubsub.{name}");
        for (name, value) in [
            ("project", &self.project),
            ("topic", &self.topic),
            ("subscription", &self.subscription),
        ] {
            if value.trim().is_empty() {
                return Err((key(name), "must not be empty".to_owned()));
            }
        }
        let positive = [
            ("batch_max_messages", i64::from(self.batch_max_messages)),
            ("batch_max_bytes", i64::from(self.batch_max_bytes)),
            ("max_in_flight", self.max_in_flight as i64),
            ("max_outstanding_messages", self.max_outstanding_messages),
            ("max_outstanding_bytes", self.max_outstanding_bytes),
            ("streams", self.streams as i64),
        ];
        for (name, value) in positive {
            if value < 1 {
                return Err((key(name), "must be at least 1".to_owned()));
            }
        }
        if !(10..=600).contains(&self.ack_deadline_seconds) {
            return Err((
                key("ack_deadline_seconds"),
                format!(
                    "must be between 10 and 600 (Pub/Sub's limits), found {}",
                    self.ack_deadline_seconds
                ),
            ));
        }
        if let Some(endpoint) = &self.endpoint
            && !(endpoint.starts_with("http://") || endpoint.starts_with("https://"))
        {
            return Err((
                key("endpoint"),
                format!(
                    "expected a URL such as `https://pubsub.googleapis.com`, found `{endpoint}`"
                ),
            ));
        }
        Ok(())
    }
}

fn default_pubsub_batch_messages() -> u32 {
    100
}

fn default_pubsub_batch_bytes() -> u32 {
    1_000_000
}

fn default_pubsub_batch_delay() -> Duration {
    Duration::from_millis(10)
}

fn default_pubsub_max_in_flight() -> usize {
    1_000
}

fn default_pubsub_max_outstanding_messages() -> i64 {
    1_000
}

fn default_pubsub_max_outstanding_bytes() -> i64 {
    100 * 1024 * 1024
}

fn default_pubsub_streams() -> usize {
    1
}

fn default_pubsub_ack_deadline() -> i32 {
    60
}

fn default_capacity() -> usize {
    4_096
}

fn default_max_deliveries() -> u32 {
    5
}

/// Where state lives: $STATE_DIRECTORY (systemd's StateDirectory=; the first
/// of several), else `base` (the config file's directory).
fn state_dir(base: &Path) -> PathBuf {
    std::env::var("STATE_DIRECTORY")
        .ok()
        .and_then(|dirs| dirs.split(':').next().map(PathBuf::from))
        .filter(|dir| !dir.as_os_str().is_empty())
        .unwrap_or_else(|| base.to_owned())
}

/// The broker implementation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BrokerKind {
    /// A bounded in-process queue: no cloud account needed.
    Embedded,
    /// Google Cloud Pub/Sub: ingest and process may run on different machines.
    Pubsub,
}

/// One `[[plugins]]` entry.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginConfig {
    /// The name used in logs and dead letters; defaults to the file stem.
    #[serde(default)]
    pub name: Option<String>,
    /// The `.wasm` component.
    pub path: PathBuf,
    /// Settings handed to the plugin's `init`.
    #[serde(default)]
    pub config: toml::Table,
    /// What happens to a post when the plugin fails on it.
    #[serde(default)]
    pub on_error: OnError,
    /// CPU time one batch call may take before it is interrupted.
    #[serde(default, with = "opt_duration_ms", rename = "timeout_ms")]
    pub timeout: Option<Duration>,
    /// The most linear memory the plugin may grow to, in MiB.
    #[serde(default)]
    pub memory_mb: Option<u64>,
    /// The most the plugin may return for one batch (the strings of all its
    /// outcomes, over every call the batch takes), in MiB; defaults to a
    /// quarter of the memory cap (at least 1).
    #[serde(default)]
    pub max_result_mb: Option<u64>,
    /// The most one post's changes may carry, in KiB; defaults to 256.
    #[serde(default)]
    pub max_post_kb: Option<u64>,
    /// A JSONL file of sample posts a new version must process without a
    /// failure or trap before it is swapped in (and at startup).
    #[serde(default)]
    pub self_check: Option<PathBuf>,
}

impl PluginConfig {
    /// The configured name, or the file stem.
    pub fn display_name(&self) -> String {
        self.name.clone().unwrap_or_else(|| {
            self.path
                .file_stem()
                .map(|stem| stem.to_string_lossy().into_owned())
                .unwrap_or_else(|| self.path.display().to_string())
        })
    }
}

/// `on_error` for a plugin.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OnError {
    /// Send the post to the dead-letter destination with the plugin's error.
    #[default]
    DeadLetter,
    /// Drop the post, counting it as dropped by the plugin.
    Drop,
    /// Keep the post unchanged, as if the plugin were not there.
    Pass,
}

/// `[batch]`: a batch is flushed when any limit is reached, and at shutdown.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchConfig {
    #[serde(default = "default_max_rows")]
    pub max_rows: usize,
    #[serde(default = "default_max_bytes")]
    pub max_bytes: usize,
    #[serde(
        default = "default_max_age",
        with = "duration_ms",
        rename = "max_age_ms"
    )]
    pub max_age: Duration,
}

impl Default for BatchConfig {
    fn default() -> Self {
        BatchConfig {
            max_rows: default_max_rows(),
            max_bytes: default_max_bytes(),
            max_age: default_max_age(),
        }
    }
}

fn default_max_rows() -> usize {
    500
}

fn default_max_bytes() -> usize {
    4 * 1024 * 1024
}

fn default_max_age() -> Duration {
    Duration::from_secs(1)
}

/// `[process]`: how posts are pulled and run through the plugin chain.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessConfig {
    /// Posts handed to the plugin chain in one call.
    #[serde(default = "default_chain_batch")]
    pub chain_batch: usize,
    /// Parallel workers running the chain; by default one per available core.
    #[serde(default = "default_workers")]
    pub workers: usize,
    /// Watch the plugin files and swap in a changed file without a restart.
    #[serde(default = "default_watch_plugins")]
    pub watch_plugins: bool,
    /// How long a changed plugin file must stay unchanged (size, mtime) before
    /// it is loaded, so a file still being written is never loaded.
    #[serde(
        default = "default_watch_debounce",
        with = "duration_ms",
        rename = "watch_debounce_ms"
    )]
    pub watch_debounce: Duration,
    /// How the kernel schedules the daemon's threads (`batch` by default).
    #[serde(default)]
    pub scheduling: crate::scheduling::Scheduling,
}

impl Default for ProcessConfig {
    fn default() -> Self {
        ProcessConfig {
            chain_batch: default_chain_batch(),
            workers: default_workers(),
            watch_plugins: default_watch_plugins(),
            watch_debounce: default_watch_debounce(),
            scheduling: crate::scheduling::Scheduling::default(),
        }
    }
}

fn default_watch_plugins() -> bool {
    true
}

fn default_watch_debounce() -> Duration {
    Duration::from_millis(500)
}

fn default_chain_batch() -> usize {
    256
}

/// One worker per core the process may run on (`available_parallelism` honours
/// the CPU affinity mask and cgroup quotas), at least one.
fn default_workers() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
}

/// `[sink.*]`: exactly one table.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SinkConfig {
    pub sqlite: Option<SqliteSinkConfig>,
    pub jsonl: Option<JsonlSinkConfig>,
    pub stdout: Option<StdoutSinkConfig>,
    pub bigquery: Option<BigQuerySinkConfig>,
    pub null: Option<NullSinkConfig>,
}

pub use crate::sinks::bigquery::BigQuerySinkConfig;

/// `[sink.sqlite]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqliteSinkConfig {
    /// The database file; created with its table when missing.
    pub path: PathBuf,
    #[serde(default = "default_table")]
    pub table: String,
    /// Also store the original message in a `raw` column.
    #[serde(default)]
    pub store_raw: bool,
}

fn default_table() -> String {
    "posts".to_owned()
}

/// `[sink.jsonl]`: one JSON row per line, rotated by size or age.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JsonlSinkConfig {
    /// The directory the files are written to.
    pub dir: PathBuf,
    /// File name prefix (`posts` gives `posts-20260101T120000Z-0001.jsonl`).
    #[serde(default = "default_table")]
    pub prefix: String,
    /// Start a new file past this many bytes.
    #[serde(default = "default_rotate_bytes")]
    pub rotate_bytes: u64,
    /// Start a new file when the current one is this old, in seconds.
    #[serde(default)]
    pub rotate_secs: Option<u64>,
    /// Include the original message as `raw`.
    #[serde(default)]
    pub store_raw: bool,
}

fn default_rotate_bytes() -> u64 {
    64 * 1024 * 1024
}

/// `[sink.stdout]`: one JSON row per line on standard output.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StdoutSinkConfig {
    #[serde(default)]
    pub store_raw: bool,
}

/// `[sink.null]`: rows are discarded (and their messages acked), for benchmarks and dry runs.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NullSinkConfig {}

/// The one sink a config selects.
#[derive(Debug, Clone)]
pub enum SinkKind {
    Sqlite(SqliteSinkConfig),
    Jsonl(JsonlSinkConfig),
    Stdout(StdoutSinkConfig),
    BigQuery(BigQuerySinkConfig),
    Null(NullSinkConfig),
}

/// `[dead_letter]`: a JSONL file (`path`, the default kind) or a Pub/Sub topic.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeadLetterConfig {
    /// `file` (the default) or `pubsub`.
    #[serde(default)]
    pub kind: DeadLetterKind,
    /// `kind = "file"`: the JSONL file dead letters are appended to.
    #[serde(default)]
    pub path: Option<PathBuf>,
    /// `kind = "pubsub"`: the topic dead letters are published to.
    #[serde(default)]
    pub pubsub: Option<DeadLetterPubsubConfig>,
}

/// Where dead letters go.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DeadLetterKind {
    /// Appended to a JSONL file and synced.
    #[default]
    File,
    /// Published to a Pub/Sub topic.
    Pubsub,
}

/// `[dead_letter.pubsub]`: a Pub/Sub topic for dead letters. The project, the
/// endpoint and the credentials default to those of `[broker.pubsub]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeadLetterPubsubConfig {
    /// The Google Cloud project id; `[broker.pubsub] project` when left out.
    #[serde(default)]
    pub project: Option<String>,
    /// The topic (a short name, or `projects/…/topics/…`).
    pub topic: String,
    /// Create the topic when it does not exist.
    #[serde(default)]
    pub create_if_missing: bool,
    /// A service-account key file; `[broker.pubsub] credentials_file` when left out.
    #[serde(default)]
    pub credentials_file: Option<PathBuf>,
    /// Overrides the service endpoint; `[broker.pubsub] endpoint` (or
    /// `PUBSUB_EMULATOR_HOST`) when left out.
    #[serde(default)]
    pub endpoint: Option<String>,
}

/// The dead-letter destination a config selects, with the defaults filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeadLetterDestination {
    /// A JSONL file.
    File(PathBuf),
    /// A Pub/Sub topic.
    Pubsub(DeadLetterTopic),
}

/// A resolved `[dead_letter.pubsub]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetterTopic {
    pub project: String,
    pub topic: String,
    pub create_if_missing: bool,
    pub credentials_file: Option<PathBuf>,
    pub endpoint: Option<String>,
}

impl DeadLetterTopic {
    /// The topic's full resource name.
    pub fn topic_name(&self) -> String {
        if self.topic.starts_with("projects/") {
            self.topic.clone()
        } else {
            format!("projects/{}/topics/{}", self.project, self.topic)
        }
    }
}

impl fmt::Display for DeadLetterDestination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeadLetterDestination::File(path) => write!(f, "{}", path.display()),
            DeadLetterDestination::Pubsub(topic) => write!(f, "pubsub {}", topic.topic_name()),
        }
    }
}

impl DeadLetterConfig {
    /// The destination, with `[dead_letter.pubsub]` defaults taken from `broker`.
    pub fn destination(
        &self,
        broker: Option<&PubsubConfig>,
    ) -> Result<DeadLetterDestination, (String, String)> {
        match self.kind {
            DeadLetterKind::File => {
                if self.pubsub.is_some() {
                    return Err((
                        "dead_letter.pubsub".to_owned(),
                        "is only read with kind = \"pubsub\"; set kind = \"pubsub\" or remove the table".to_owned(),
                    ));
                }
                match &self.path {
                    Some(path) if !path.as_os_str().is_empty() => {
                        Ok(DeadLetterDestination::File(path.clone()))
                    }
                    _ => Err((
                        "dead_letter.path".to_owned(),
                        "is required for the dead-letter file (for example `path = \"dead-letters.jsonl\"`), or set kind = \"pubsub\" with a [dead_letter.pubsub] table".to_owned(),
                    )),
                }
            }
            DeadLetterKind::Pubsub => {
                if self.path.is_some() {
                    return Err((
                        "dead_letter.path".to_owned(),
                        "is only read with kind = \"file\"; dead letters go to the [dead_letter.pubsub] topic, remove `path`".to_owned(),
                    ));
                }
                let Some(pubsub) = &self.pubsub else {
                    return Err((
                        "dead_letter.pubsub".to_owned(),
                        "kind = \"pubsub\" needs a [dead_letter.pubsub] table with `topic`"
                            .to_owned(),
                    ));
                };
                if pubsub.topic.trim().is_empty() {
                    return Err((
                        "dead_letter.pubsub.topic".to_owned(),
                        "must not be empty".to_owned(),
                    ));
                }
                let full_name = pubsub.topic.starts_with("projects/");
                let project = match (&pubsub.project, broker) {
                    (Some(project), _) => project.clone(),
                    (None, Some(broker)) => broker.project.clone(),
                    (None, None) if full_name => String::new(),
                    (None, None) => {
                        return Err((
                            "dead_letter.pubsub.project".to_owned(),
                            "is required when there is no [broker.pubsub] to take it from (or give `topic` as `projects/…/topics/…`)".to_owned(),
                        ));
                    }
                };
                if project.trim().is_empty() && !full_name {
                    return Err((
                        "dead_letter.pubsub.project".to_owned(),
                        "must not be empty".to_owned(),
                    ));
                }
                if let Some(endpoint) = &pubsub.endpoint
                    && !(endpoint.starts_with("http://") || endpoint.starts_with("https://"))
                {
                    return Err((
                        "dead_letter.pubsub.endpoint".to_owned(),
                        format!(
                            "expected a URL such as `https://pubsub.googleapis.com`, found `{endpoint}`"
                        ),
                    ));
                }
                Ok(DeadLetterDestination::Pubsub(DeadLetterTopic {
                    project,
                    topic: pubsub.topic.clone(),
                    create_if_missing: pubsub.create_if_missing,
                    credentials_file: pubsub
                        .credentials_file
                        .clone()
                        .or_else(|| broker.and_then(|broker| broker.credentials_file.clone())),
                    endpoint: pubsub
                        .endpoint
                        .clone()
                        .or_else(|| broker.and_then(|broker| broker.endpoint.clone())),
                }))
            }
        }
    }
}

/// `[logging]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoggingConfig {
    /// `error`, `warn`, `info`, `debug` or `trace`; `RUST_LOG` wins when set.
    #[serde(default = "default_level")]
    pub level: LevelName,
}

impl Default for LoggingConfig {
    fn default() -> Self {
        LoggingConfig {
            level: default_level(),
        }
    }
}

fn default_level() -> LevelName {
    LevelName::Info
}

/// A log level as written in the config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LevelName {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

impl From<LevelName> for log::LevelFilter {
    fn from(level: LevelName) -> Self {
        match level {
            LevelName::Error => log::LevelFilter::Error,
            LevelName::Warn => log::LevelFilter::Warn,
            LevelName::Info => log::LevelFilter::Info,
            LevelName::Debug => log::LevelFilter::Debug,
            LevelName::Trace => log::LevelFilter::Trace,
        }
    }
}

/// A config that could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("config: cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The TOML is malformed, or a key is unknown or of the wrong type.
    #[error("{}", render_parse_error(path, line_col, key, message))]
    Parse {
        path: PathBuf,
        line_col: Option<(usize, usize)>,
        key: String,
        message: String,
    },
    /// The values parse but do not make a pipeline.
    #[error("config: {}: {key}: {message}", path.display())]
    Invalid {
        path: PathBuf,
        key: String,
        message: String,
    },
}

fn render_parse_error(
    path: &Path,
    line_col: &Option<(usize, usize)>,
    key: &str,
    message: &str,
) -> String {
    let mut out = format!("config: {}", path.display());
    if let Some((line, column)) = line_col {
        out.push_str(&format!(":{line}:{column}"));
    }
    if !key.is_empty() && key != "." {
        out.push_str(&format!(": {key}"));
    }
    out.push_str(": ");
    out.push_str(message);
    out
}

impl Config {
    /// Reads, parses and validates a config file, resolving relative paths against
    /// the file's directory.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        let base = path
            .parent()
            .map(Path::to_owned)
            .unwrap_or_else(|| PathBuf::from("."));
        let mut config = Config::parse(&text, path)?;
        config.resolve_paths(&base);
        Ok(config)
    }

    /// Parses and validates config text; `path` is only used in error messages.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let deserializer = toml::Deserializer::parse(text).map_err(|error| ConfigError::Parse {
            path: path.to_owned(),
            line_col: error.span().map(|span| line_col(text, span.start)),
            key: String::new(),
            message: first_line(error.message()),
        })?;
        let config: Config = serde_path_to_error::deserialize(deserializer).map_err(|error| {
            let mut key = error.path().to_string();
            let inner = error.into_inner();
            let mut message = first_line(inner.message());
            // serde says "missing field `path`"; say which key, and that it is required.
            if let Some(field) = message
                .strip_prefix("missing field `")
                .and_then(|rest| rest.strip_suffix('`'))
            {
                key = if key.is_empty() || key == "." {
                    field.to_owned()
                } else {
                    format!("{key}.{field}")
                };
                message =
                    "is required but missing (see the reference config for an example)".to_owned();
            }
            ConfigError::Parse {
                path: path.to_owned(),
                line_col: inner.span().map(|span| line_col(text, span.start)),
                key,
                message,
            }
        })?;
        config.validate(path)?;
        Ok(config)
    }

    fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        let invalid = |key: &str, message: String| ConfigError::Invalid {
            path: path.to_owned(),
            key: key.to_owned(),
            message,
        };
        self.sink_kind()
            .map_err(|message| invalid("sink", message))?;
        if let Some(bigquery) = &self.sink.bigquery {
            bigquery
                .validate()
                .map_err(|(key, message)| invalid(&format!("sink.bigquery.{key}"), message))?;
        }
        self.broker
            .validate()
            .map_err(|(key, message)| invalid(&key, message))?;
        self.dead_letter_destination()
            .map_err(|(key, message)| invalid(&key, message))?;
        if self.broker.ingest() && self.source.replay.is_none() && self.source.x.is_none() {
            return Err(invalid(
                "source",
                "no source is configured (add a [source.replay] table with `path = \"posts.jsonl\"`, or a [source.x] table with `rules`)"
                    .to_owned(),
            ));
        }
        if let Some(x) = &self.source.x {
            x.validate()
                .map_err(|(key, message)| invalid(&key, message))?;
        }
        if let Some(replay) = &self.source.replay
            && let Some(rate) = replay.rate
            && !(rate.is_finite() && rate >= 0.0)
        {
            return Err(invalid(
                "source.replay.rate",
                format!("expected a number of posts per second ≥ 0, found {rate}"),
            ));
        }
        self.dashboard
            .validate()
            .map_err(|(key, message)| invalid(&format!("dashboard.{key}"), message))?;
        if self.daemon.drain_timeout.is_zero() {
            return Err(invalid(
                "daemon.drain_timeout_ms",
                "must be at least 1 (milliseconds the drain may take after SIGTERM)".to_owned(),
            ));
        }
        if self.broker.spool.max_bytes < 65536 {
            return Err(invalid(
                "broker.spool.max_bytes",
                format!(
                    "{} is too small to hold a burst of posts; set at least 65536 (the default is 1073741824, 1 GiB)",
                    self.broker.spool.max_bytes
                ),
            ));
        }
        if self.broker.capacity == 0 {
            return Err(invalid("broker.capacity", "must be at least 1".to_owned()));
        }
        if self.broker.max_deliveries == 0 {
            return Err(invalid(
                "broker.max_deliveries",
                "must be at least 1".to_owned(),
            ));
        }
        if self.batch.max_rows == 0 {
            return Err(invalid("batch.max_rows", "must be at least 1".to_owned()));
        }
        if self.batch.max_bytes == 0 {
            return Err(invalid("batch.max_bytes", "must be at least 1".to_owned()));
        }
        if self.process.chain_batch == 0 {
            return Err(invalid(
                "process.chain_batch",
                "must be at least 1".to_owned(),
            ));
        }
        if self.process.workers == 0 {
            return Err(invalid("process.workers", "must be at least 1".to_owned()));
        }
        let mut names = BTreeMap::new();
        for (index, plugin) in self.plugins.iter().enumerate() {
            let name = plugin.display_name();
            if let Some(first) = names.insert(name.clone(), index) {
                return Err(invalid(
                    &format!("plugins[{index}].name"),
                    format!(
                        "plugin name `{name}` is already used by plugins[{first}]; give one of them a distinct `name`"
                    ),
                ));
            }
            if plugin.memory_mb == Some(0) {
                return Err(invalid(
                    &format!("plugins[{index}].memory_mb"),
                    "must be at least 1".to_owned(),
                ));
            }
            if let Some(memory_mb) = plugin.memory_mb.filter(|memory_mb| *memory_mb > 4096) {
                return Err(invalid(
                    &format!("plugins[{index}].memory_mb"),
                    format!(
                        "{memory_mb} is more than a wasm32 plugin can address (4096 MiB); set at most 4096"
                    ),
                ));
            }
            if plugin.max_result_mb == Some(0) {
                return Err(invalid(
                    &format!("plugins[{index}].max_result_mb"),
                    "must be at least 1".to_owned(),
                ));
            }
            if let Some(max) = plugin.max_result_mb.filter(|max| *max > 4096) {
                return Err(invalid(
                    &format!("plugins[{index}].max_result_mb"),
                    format!(
                        "{max} is more than a wasm32 plugin can return (4096 MiB); set at most 4096"
                    ),
                ));
            }
            if plugin.max_post_kb == Some(0) {
                return Err(invalid(
                    &format!("plugins[{index}].max_post_kb"),
                    "must be at least 1".to_owned(),
                ));
            }
            if let Some(max) = plugin.max_post_kb.filter(|max| *max > 4 * 1024 * 1024) {
                return Err(invalid(
                    &format!("plugins[{index}].max_post_kb"),
                    format!(
                        "{max} is more than a wasm32 plugin can return (4194304 KiB); set at most 4194304"
                    ),
                ));
            }
            if plugin.timeout == Some(Duration::ZERO) {
                return Err(invalid(
                    &format!("plugins[{index}].timeout_ms"),
                    "must be at least 1".to_owned(),
                ));
            }
        }
        Ok(())
    }

    /// The single sink this config selects.
    pub fn sink_kind(&self) -> Result<SinkKind, String> {
        let mut kinds = Vec::new();
        if let Some(sqlite) = &self.sink.sqlite {
            kinds.push(SinkKind::Sqlite(sqlite.clone()));
        }
        if let Some(jsonl) = &self.sink.jsonl {
            kinds.push(SinkKind::Jsonl(jsonl.clone()));
        }
        if let Some(stdout) = &self.sink.stdout {
            kinds.push(SinkKind::Stdout(stdout.clone()));
        }
        if let Some(bigquery) = &self.sink.bigquery {
            kinds.push(SinkKind::BigQuery(bigquery.clone()));
        }
        if let Some(null) = &self.sink.null {
            kinds.push(SinkKind::Null(null.clone()));
        }
        match kinds.len() {
            1 => Ok(kinds.remove(0)),
            0 => Err(
                "no sink is configured (add one of [sink.sqlite], [sink.jsonl], [sink.stdout], [sink.bigquery], [sink.null])"
                    .to_owned(),
            ),
            n => Err(format!(
                "{n} sinks are configured; keep exactly one of [sink.sqlite], [sink.jsonl], [sink.stdout], [sink.bigquery], [sink.null]"
            )),
        }
    }

    /// The spool's directory (set for every loaded config; `spool` under `base` if not).
    pub fn spool_dir(&self) -> PathBuf {
        self.broker
            .spool
            .path
            .clone()
            .unwrap_or_else(|| PathBuf::from("spool"))
    }

    fn resolve_paths(&mut self, base: &Path) {
        let resolve = |path: &mut PathBuf| {
            if path.is_relative() && path.as_os_str() != "-" {
                *path = tidy(&base.join(&*path));
            }
        };
        let state_directory = std::env::var("STATE_DIRECTORY")
            .ok()
            .and_then(|dirs| dirs.split(':').next().map(PathBuf::from))
            .filter(|dir| !dir.as_os_str().is_empty());
        if let Some(replay) = &mut self.source.replay {
            resolve(&mut replay.path);
            match &mut replay.state_file {
                Some(file) => resolve(file),
                None => {
                    let dir = state_directory.clone().unwrap_or_else(|| base.to_owned());
                    replay.state_file = Some(dir.join("replay-positions.json"));
                }
            }
        }
        if let Some(x) = self.source.x.as_mut() {
            for file in [&mut x.bearer_token_file, &mut x.state_file]
                .into_iter()
                .flatten()
            {
                resolve(file);
            }
            if x.state_file.is_none() {
                let dir = state_directory.clone().unwrap_or_else(|| base.to_owned());
                x.state_file = Some(dir.join("x-stream.json"));
            }
        }
        for plugin in &mut self.plugins {
            resolve(&mut plugin.path);
        }
        if let Some(sqlite) = &mut self.sink.sqlite {
            resolve(&mut sqlite.path);
        }
        let dashboard = &mut self.dashboard;
        for file in [
            &mut dashboard.password_hash_file,
            &mut dashboard.state_file,
            &mut dashboard.tls_cert,
            &mut dashboard.tls_key,
        ]
        .into_iter()
        .flatten()
        {
            resolve(file);
        }
        if dashboard.state_file.is_none() {
            // systemd may list several directories, separated by colons.
            let dir = state_directory.unwrap_or_else(|| base.to_owned());
            dashboard.state_file = Some(dir.join("dashboard.json"));
        }
        match &mut self.broker.spool.path {
            Some(path) => resolve(path),
            None => self.broker.spool.path = Some(state_dir(base).join("spool")),
        }
        if let Some(jsonl) = &mut self.sink.jsonl {
            resolve(&mut jsonl.dir);
        }
        if let Some(bigquery) = &mut self.sink.bigquery {
            if let Some(file) = &mut bigquery.credentials_file {
                resolve(file);
            }
            if let Some(file) = &mut bigquery.schema_file {
                resolve(file);
            }
        }
        if let Some(file) = self
            .broker
            .pubsub
            .as_mut()
            .and_then(|pubsub| pubsub.credentials_file.as_mut())
        {
            resolve(file);
        }
        if let Some(path) = &mut self.dead_letter.path {
            resolve(path);
        }
        if let Some(file) = self
            .dead_letter
            .pubsub
            .as_mut()
            .and_then(|pubsub| pubsub.credentials_file.as_mut())
        {
            resolve(file);
        }
    }

    /// Where dead letters go: `[dead_letter]`, with the Pub/Sub defaults taken
    /// from `[broker.pubsub]`.
    pub fn dead_letter_destination(&self) -> Result<DeadLetterDestination, (String, String)> {
        self.dead_letter.destination(self.broker.pubsub.as_ref())
    }
}

fn first_line(message: &str) -> String {
    message.trim().lines().next().unwrap_or("").to_owned()
}

/// 1-based line and column of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before
        .rfind('\n')
        .map_or(before.chars().count(), |newline| {
            before[newline + 1..].chars().count()
        })
        + 1;
    (line, column)
}

/// `path` with each `dir/..` pair taken out where `dir` is a real directory
/// (not a symlink, so the result names the same file): a sink configured as
/// `../out/tweetpipe.db` next to `config/tweetpipe.toml` reads `out/tweetpipe.db`
/// in logs and summaries instead of `config/../out/tweetpipe.db`.
fn tidy(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut tidied = PathBuf::new();
    for component in path.components() {
        let collapsible = matches!(component, Component::ParentDir)
            && matches!(tidied.components().next_back(), Some(Component::Normal(_)))
            && std::fs::symlink_metadata(&tidied).is_ok_and(|meta| meta.file_type().is_dir());
        if collapsible {
            tidied.pop();
        } else {
            tidied.push(component);
        }
    }
    if tidied.as_os_str().is_empty() {
        tidied.push(".");
    }
    tidied
}

impl fmt::Display for SinkKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SinkKind::Sqlite(sqlite) => write!(
                f,
                "sqlite {} (table {})",
                sqlite.path.display(),
                sqlite.table
            ),
            SinkKind::Jsonl(jsonl) => write!(
                f,
                "jsonl {}/{}-*.jsonl (rotate at {} bytes{})",
                jsonl.dir.display(),
                jsonl.prefix,
                jsonl.rotate_bytes,
                jsonl
                    .rotate_secs
                    .map(|secs| format!(" or {secs} s"))
                    .unwrap_or_default()
            ),
            SinkKind::Stdout(_) => write!(f, "stdout (one JSON row per line)"),
            SinkKind::Null(_) => write!(f, "null (rows are discarded)"),
            SinkKind::BigQuery(bigquery) => write!(
                f,
                "bigquery {}.{}.{} (insertAll, ≤ {} rows / {} bytes per request{})",
                bigquery.project,
                bigquery.dataset,
                bigquery.table,
                bigquery.max_rows_per_request,
                bigquery.max_bytes_per_request,
                if bigquery.create_if_missing {
                    ", created if missing"
                } else {
                    ""
                }
            ),
        }
    }
}

impl XSourceConfig {
    /// The first problem with `[source.x]`, as (key, message).
    fn validate(&self) -> Result<(), (String, String)> {
        let base = self.api_base.trim_end_matches('/');
        if !(base.starts_with("https://") || base.starts_with("http://")) || base.contains('?') {
            return Err((
                "source.x.api_base".to_owned(),
                format!(
                    "expected an http(s) URL such as \"https://api.x.com\", found \"{}\"",
                    self.api_base
                ),
            ));
        }
        if self.rules.is_empty() {
            return Err((
                "source.x.rules".to_owned(),
                "add at least one rule, e.g. `rules = [{ value = \"#rustlang -is:retweet\", tag = \"rust\" }]` (X's rules are replaced by these on start)".to_owned(),
            ));
        }
        let mut values = BTreeMap::new();
        for (index, rule) in self.rules.iter().enumerate() {
            if rule.value.trim().is_empty() {
                return Err((
                    format!("source.x.rules[{index}].value"),
                    "is empty; write the rule in X's rule language, e.g. \"#rustlang lang:en\""
                        .to_owned(),
                ));
            }
            if let Some(first) = values.insert(rule.value.as_str(), index) {
                return Err((
                    format!("source.x.rules[{index}].value"),
                    format!(
                        "\"{}\" is already rules[{first}]; X keeps one rule per value, so merge them or change one",
                        rule.value
                    ),
                ));
            }
        }
        for (key, fields) in [
            ("tweet_fields", &self.tweet_fields),
            ("expansions", &self.expansions),
            ("user_fields", &self.user_fields),
            ("place_fields", &self.place_fields),
        ] {
            if let Some(bad) = fields
                .iter()
                .find(|field| field.is_empty() || field.contains([',', ' ', '&', '=']))
            {
                return Err((
                    format!("source.x.{key}"),
                    format!(
                        "\"{bad}\" is not a field name; list one name per string, e.g. [\"created_at\", \"lang\"]"
                    ),
                ));
            }
        }
        if self.stall_timeout.is_zero() {
            return Err((
                "source.x.stall_timeout_secs".to_owned(),
                "must be at least 1 (X sends a keep-alive every 20 s)".to_owned(),
            ));
        }
        if self.gap_search_delay < Duration::from_secs(10) {
            return Err((
                "source.x.gap_search_delay_secs".to_owned(),
                format!(
                    "{} s is too soon: X refuses a recent search whose end_time is less than 10 s old; set at least 10 (default 30)",
                    self.gap_search_delay.as_secs()
                ),
            ));
        }
        if self.gap_overlap > Duration::from_secs(600) {
            return Err((
                "source.x.gap_overlap_secs".to_owned(),
                format!(
                    "{} s re-reads more than 10 min of posts at every gap; set at most 600 (5 covers X's delivery delay)",
                    self.gap_overlap.as_secs()
                ),
            ));
        }
        Ok(())
    }
}

mod duration_secs {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        u64::deserialize(deserializer).map(Duration::from_secs)
    }
}

mod socket_addr {
    use std::net::SocketAddr;

    use serde::{Deserialize, Deserializer, de::Error};

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<SocketAddr, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(|_| {
            D::Error::custom(format!(
                "expected an IP address and port such as \"127.0.0.1:9464\" (or \"[::1]:9464\"), found \"{text}\""
            ))
        })
    }
}

mod duration_ms {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        u64::deserialize(deserializer).map(Duration::from_millis)
    }
}

mod opt_duration_ms {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<Duration>, D::Error> {
        Option::<u64>::deserialize(deserializer).map(|ms| ms.map(Duration::from_millis))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gap_recovery_keys_default_off_and_name_the_key_when_wrong() {
        let text = |extra: &str| {
            format!(
                "[source.x]\nrules = [{{ value = \"cats\" }}]\n{extra}\n[sink.stdout]\n[dead_letter]\npath = \"d.jsonl\"\n"
            )
        };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tweetpipe.toml");
        std::fs::write(&path, text("")).unwrap();
        let x = Config::load(&path).unwrap().source.x.unwrap();
        assert_eq!(x.gap_recovery, GapRecovery::Off);
        assert_eq!(x.gap_overlap, Duration::from_secs(5));
        assert_eq!(x.gap_search_delay, Duration::from_secs(30));
        if std::env::var_os("STATE_DIRECTORY").is_none() {
            assert_eq!(x.state_file, Some(tidy(&dir.path().join("x-stream.json"))));
        }
        let x = Config::parse(
            &text("gap_recovery = \"search\"\ngap_overlap_secs = 0\nstate_file = \"/var/lib/tweetpipe/x.json\""),
            &path,
        )
        .unwrap()
        .source
        .x
        .unwrap();
        assert_eq!(x.gap_recovery, GapRecovery::Search);
        assert_eq!(x.gap_overlap, Duration::ZERO);
        for (bad, key) in [
            ("gap_recovery = \"sometimes\"", "source.x.gap_recovery"),
            ("gap_overlap_secs = 601", "source.x.gap_overlap_secs"),
            (
                "gap_search_delay_secs = 5",
                "source.x.gap_search_delay_secs",
            ),
            ("backfill_minutes = 5", "unknown field `backfill_minutes`"),
        ] {
            let error = Config::parse(&text(bad), &path).unwrap_err().to_string();
            assert!(error.contains(key), "{bad}: {error}");
        }
    }

    #[test]
    fn scheduling_is_batch_unless_told_to_inherit() {
        use crate::scheduling::Scheduling;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tweetpipe.toml");
        let text = |process: &str| {
            format!(
                "[source.replay]\npath = \"posts.jsonl\"\n[process]\n{process}\n[sink.stdout]\n[dead_letter]\npath = \"d.jsonl\"\n"
            )
        };
        let scheduling = |process: &str| {
            Config::parse(&text(process), &path).map(|config| config.process.scheduling)
        };
        assert_eq!(scheduling("").unwrap(), Scheduling::Batch);
        assert_eq!(
            scheduling("scheduling = \"inherit\"").unwrap(),
            Scheduling::Inherit
        );
        let error = scheduling("scheduling = \"fifo\"").unwrap_err().to_string();
        assert!(
            error.contains("process.scheduling") && error.contains("expected `batch` or `inherit`"),
            "{error}"
        );
    }

    /// `make run` summarised its sink as `config/../out/tweetpipe.db`.
    #[test]
    fn paths_lose_their_dir_dot_dot_pairs_but_not_through_a_symlink() {
        let root = tempfile::tempdir().unwrap();
        let config = root.path().join("config");
        let elsewhere = root.path().join("elsewhere/deeper");
        std::fs::create_dir_all(&config).unwrap();
        std::fs::create_dir_all(&elsewhere).unwrap();
        assert_eq!(
            tidy(&config.join("../out/tweetpipe.db")),
            root.path().join("out/tweetpipe.db")
        );
        // Relative to the working directory (a test runs in the crate, beside `src`).
        assert_eq!(tidy(Path::new("src/../out")), Path::new("out"));
        assert_eq!(tidy(Path::new("../x")), Path::new("../x"));
        // `link/..` is `elsewhere`, not the directory holding `link`.
        let link = root.path().join("link");
        std::os::unix::fs::symlink(&elsewhere, &link).unwrap();
        assert_eq!(tidy(&link.join("../db")), link.join("../db"));
        // A directory that does not exist (yet) is not assumed to be one.
        let missing = root.path().join("missing");
        assert_eq!(tidy(&missing.join("../db")), missing.join("../db"));
    }
}
