//! Prometheus metrics and health of the running pipeline: what `/metrics` and `/readyz` report.
//!
//! The pipeline's [`Stats`] counters are read at scrape time by a collector, so
//! they are never counted twice. Labelled series (per plugin, per flush cause,
//! per dead-letter stage, latencies) are `prometheus-client` families whose
//! handles are resolved once per plugin or sink, so a post only ever touches
//! atomics; drop reasons are tallied per batch. Every name starts with
//! `tweetpipe_`; the list is in the README.
//!
//! # Layout
//!
//! - `server` serves `/metrics`, `/healthz` and `/readyz` over HTTP/1 (hyper).
//! - `top` is `tweetpipe top`: scrapes `/metrics` and draws the pipeline in a terminal.

pub mod server;
pub mod top;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::batcher::FlushCause;
use crate::dead_letter::Stage;
use crate::plugins::{ChainObserver, LoadedChain, PluginBatch};
use crate::stats::Stats;

/// Distinct drop reasons kept as label values per plugin; later ones count as `other`.
const MAX_REASONS_PER_PLUGIN: usize = 20;
/// Longer drop reasons are cut to this many characters in the `reason` label.
const MAX_REASON_CHARS: usize = 80;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PluginLabels {
    plugin: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DropLabels {
    plugin: String,
    reason: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PluginInfoLabels {
    plugin: String,
    version: String,
    sha256: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SinkLabels {
    sink: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FlushLabels {
    sink: String,
    cause: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StageLabels {
    stage: String,
}

type HistogramFamily<S> = Family<S, Histogram, fn() -> Histogram>;

fn plugin_batch_histogram() -> Histogram {
    // 100 µs … 6.5 s.
    Histogram::new(exponential_buckets(0.0001, 4.0, 9))
}

fn sink_write_histogram() -> Histogram {
    // 1 ms … 16 s.
    Histogram::new(exponential_buckets(0.001, 4.0, 8))
}

fn batch_rows_histogram() -> Histogram {
    // 1 … 8192 rows.
    Histogram::new(exponential_buckets(1.0, 2.0, 14))
}

/// The labelled families, registered once; clones share their values.
#[derive(Debug, Clone)]
struct Families {
    plugin_in: Family<PluginLabels, Counter>,
    plugin_passed: Family<PluginLabels, Counter>,
    plugin_dropped: Family<DropLabels, Counter>,
    plugin_failed: Family<PluginLabels, Counter>,
    plugin_batch_seconds: HistogramFamily<PluginLabels>,
    plugin_restarts: Family<PluginLabels, Counter>,
    plugin_info: Family<PluginInfoLabels, Gauge>,
    plugin_loaded: Family<PluginLabels, Gauge<f64, AtomicU64>>,
    flushes: Family<FlushLabels, Counter>,
    batch_rows: HistogramFamily<SinkLabels>,
    sink_write_seconds: HistogramFamily<SinkLabels>,
    sink_errors: Family<SinkLabels, Counter>,
    dead_letters: Family<StageLabels, Counter>,
}

/// Everything `/metrics` and `/readyz` report, shared by the pipeline and the server.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    families: Families,
    shared: Arc<Shared>,
}

/// Told about every batch the sink commits (the dashboard's aggregates).
pub trait CommitObserver: Send + Sync {
    /// `posts` were written to the sink, except those whose index is in `rejected`.
    fn committed(&self, posts: &[crate::post::Post], rejected: &[crate::sinks::RejectedRow]);
}

/// Reads one queue's depth at scrape time.
type DepthProbe = Box<dyn Fn() -> u64 + Send + Sync>;

/// What the collector reads at scrape time.
#[derive(Default)]
struct Shared {
    stats: Arc<Stats>,
    /// Set when the pipeline starts.
    shape: OnceLock<Shape>,
    running: AtomicBool,
    sink_up: AtomicBool,
    sink_error: Mutex<Option<String>>,
    x: Arc<ConnectionStatus>,
    /// Rows in the sink stage's open batch.
    open_batch: AtomicU64,
    queues: Mutex<Vec<(&'static str, DepthProbe)>>,
    /// Distinct drop reasons seen per plugin (bounds the `reason` label).
    reasons: Mutex<HashMap<String, usize>>,
    /// The `plugin_info` labels of each plugin's loaded version, so a swap
    /// replaces the series instead of leaving the old version reported.
    plugin_versions: Mutex<HashMap<String, PluginInfoLabels>>,
    /// Set once when the dashboard runs.
    commits: OnceLock<Arc<dyn CommitObserver>>,
    /// The embedded broker's spool, reported once it is open.
    spool: Arc<crate::broker::spool::SpoolStatus>,
    spool_active: AtomicBool,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Shared")
            .field("shape", &self.shape.get())
            .field("running", &self.running)
            .finish_non_exhaustive()
    }
}

/// Which sources and sink the running pipeline has.
#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub sink: &'static str,
    pub broker: &'static str,
    pub replay: bool,
    pub x: bool,
}

/// The X stream's connection state, updated by the source on every change.
#[derive(Debug, Default)]
pub struct ConnectionStatus {
    /// One of the `STATE_*` values.
    state: AtomicU8,
    received: AtomicU64,
    reconnects: AtomicU64,
    backoff_ms: AtomicU64,
    reason: Mutex<String>,
    /// Gaps (time without the stream) noticed after a reconnect or a restart.
    gaps: AtomicU64,
    /// Their total length, in milliseconds.
    gap_ms: AtomicU64,
    /// The last gap's length, in milliseconds.
    last_gap_ms: AtomicU64,
    /// Posts published by gap recovery through recent search (backfilled posts
    /// come on the stream and are counted as received only).
    recovered: AtomicU64,
    /// Recent-search requests that failed (retried, or given up).
    recovery_errors: AtomicU64,
}

const STATE_CONNECTING: u8 = 0;
const STATE_CONNECTED: u8 = 1;
const STATE_BACKING_OFF: u8 = 2;
/// Backing off after X refused the token (401) or the app's access (403).
const STATE_REFUSED: u8 = 3;

impl ConnectionStatus {
    /// A post arrived on the stream.
    pub fn received(&self) {
        self.received.fetch_add(1, Ordering::Relaxed);
    }

    /// Data flows on a (new) connection.
    pub fn connected(&self) {
        self.state.store(STATE_CONNECTED, Ordering::Relaxed);
        self.backoff_ms.store(0, Ordering::Relaxed);
    }

    /// An attempt failed; the next one comes after `delay`.
    pub fn backing_off(&self, reason: &str, delay: Duration) {
        if let Ok(mut current) = self.reason.lock() {
            reason.clone_into(&mut current);
        }
        self.reconnects.fetch_add(1, Ordering::Relaxed);
        self.backoff_ms
            .store(delay.as_millis() as u64, Ordering::Relaxed);
        self.state.store(STATE_BACKING_OFF, Ordering::Relaxed);
    }

    /// X refused the credentials or the app's access; the next attempt comes
    /// after `delay`. `/readyz` answers 503 until a connection succeeds.
    pub fn refused(&self, reason: &str, delay: Duration) {
        self.backing_off(reason, delay);
        self.state.store(STATE_REFUSED, Ordering::Relaxed);
    }

    /// True while the last attempt was refused for its credentials or access.
    pub fn is_refused(&self) -> bool {
        self.state.load(Ordering::Relaxed) == STATE_REFUSED
    }

    /// A gap of `length` without the stream was noticed.
    pub fn gap(&self, length: Duration) {
        let ms = u64::try_from(length.as_millis()).unwrap_or(u64::MAX);
        self.gaps.fetch_add(1, Ordering::Relaxed);
        self.gap_ms.fetch_add(ms, Ordering::Relaxed);
        self.last_gap_ms.store(ms, Ordering::Relaxed);
    }

    /// Gap recovery published `posts` more posts.
    pub fn recovered(&self, posts: u64) {
        self.recovered.fetch_add(posts, Ordering::Relaxed);
    }

    /// A gap-recovery request failed.
    pub fn recovery_failed(&self) {
        self.recovery_errors.fetch_add(1, Ordering::Relaxed);
    }

    /// One line for `/readyz`.
    fn describe(&self) -> String {
        match self.state.load(Ordering::Relaxed) {
            STATE_CONNECTED => "connected".to_owned(),
            STATE_REFUSED => {
                let reason = self
                    .reason
                    .lock()
                    .map(|reason| reason.clone())
                    .unwrap_or_default();
                format!(
                    "refused by X, not streaming (next attempt after {} ms): {reason}",
                    self.backoff_ms.load(Ordering::Relaxed)
                )
            }
            STATE_BACKING_OFF => {
                let reason = self
                    .reason
                    .lock()
                    .map(|reason| reason.clone())
                    .unwrap_or_default();
                format!(
                    "backing off (next attempt after {} ms): {reason}",
                    self.backoff_ms.load(Ordering::Relaxed)
                )
            }
            STATE_CONNECTING => "connecting".to_owned(),
            _ => "unknown".to_owned(),
        }
    }
}

/// What `/readyz` answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Readiness {
    pub ready: bool,
    /// One `check: state` line per check.
    pub checks: Vec<String>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// A registry with every family registered and no pipeline yet.
    pub fn new() -> Metrics {
        let families = Families {
            plugin_in: Family::default(),
            plugin_passed: Family::default(),
            plugin_dropped: Family::default(),
            plugin_failed: Family::default(),
            plugin_batch_seconds: Family::new_with_constructor(plugin_batch_histogram),
            plugin_restarts: Family::default(),
            plugin_info: Family::default(),
            plugin_loaded: Family::default(),
            flushes: Family::default(),
            batch_rows: Family::new_with_constructor(batch_rows_histogram),
            sink_write_seconds: Family::new_with_constructor(sink_write_histogram),
            sink_errors: Family::default(),
            dead_letters: Family::default(),
        };
        let shared = Arc::new(Shared::default());
        let mut registry = Registry::with_prefix("tweetpipe");
        let f = families.clone();
        registry.register(
            "plugin_posts_in",
            "Posts handed to each plugin",
            f.plugin_in,
        );
        registry.register(
            "plugin_posts_passed",
            "Posts each plugin passed down the chain (kept, or failed with on_error = pass)",
            f.plugin_passed,
        );
        registry.register(
            "plugin_posts_dropped",
            "Posts each plugin dropped, by reason (at most 20 reasons per plugin, then `other`)",
            f.plugin_dropped,
        );
        registry.register(
            "plugin_posts_failed",
            "Posts each plugin failed on; they went to the dead letters",
            f.plugin_failed,
        );
        registry.register(
            "plugin_batch_duration_seconds",
            "Time each plugin took per batch call",
            f.plugin_batch_seconds,
        );
        registry.register(
            "plugin_instance_restarts",
            "Plugin instances discarded after a trap, timeout or memory exhaustion and created again",
            f.plugin_restarts,
        );
        registry.register(
            "plugin_info",
            "The loaded version of each plugin (its own version and the sha256 of its file); always 1",
            f.plugin_info,
        );
        registry.register(
            "plugin_loaded_timestamp_seconds",
            "When each plugin's current version was loaded (Unix time)",
            f.plugin_loaded,
        );
        registry.register(
            "batch_flushes",
            "Batches flushed to the sink, by what triggered the flush",
            f.flushes,
        );
        registry.register("batch_rows", "Rows per flushed batch", f.batch_rows);
        registry.register(
            "sink_write_duration_seconds",
            "Time of each sink write attempt",
            f.sink_write_seconds,
        );
        registry.register(
            "sink_write_errors",
            "Sink writes that failed (retried or not)",
            f.sink_errors,
        );
        registry.register(
            "dead_letters",
            "Messages written to the dead-letter file, by the stage that gave up on them",
            f.dead_letters,
        );
        registry.register_collector(Box::new(PipelineCollector(shared.clone())));
        Metrics {
            registry,
            families,
            shared,
        }
    }

    /// The pipeline's counters (the pipeline counts into these).
    pub fn stats(&self) -> Arc<Stats> {
        self.shared.stats.clone()
    }

    /// The X source's connection status (the source updates it).
    pub fn x_status(&self) -> Arc<ConnectionStatus> {
        self.shared.x.clone()
    }

    /// The OpenMetrics text of every metric.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut text = String::with_capacity(16 * 1024);
        prometheus_client::encoding::text::encode(&mut text, &self.registry)?;
        Ok(text)
    }

    /// Hands every committed batch to `observer` from now on (set once; later calls are ignored).
    pub fn observe_commits(&self, observer: Arc<dyn CommitObserver>) {
        let _ = self.shared.commits.set(observer);
    }

    /// The pipeline's stages run; its sink is open.
    pub fn pipeline_started(&self, shape: Shape) {
        let _ = self.shared.shape.set(shape);
        self.shared.sink_up.store(true, Ordering::Relaxed);
        self.shared.running.store(true, Ordering::Relaxed);
    }

    /// The pipeline has drained and stopped.
    pub fn pipeline_stopped(&self) {
        self.shared.running.store(false, Ordering::Relaxed);
    }

    /// What the spool holds; the broker counts into it.
    pub fn spool_status(&self) -> Arc<crate::broker::spool::SpoolStatus> {
        self.shared.spool.clone()
    }

    /// The spool is open: report its series from now on.
    pub fn spool_active(&self) {
        self.shared.spool_active.store(true, Ordering::Relaxed);
    }

    /// Reports `depth()` as `tweetpipe_queue_depth{stage}` at every scrape.
    pub fn watch_queue(
        &self,
        stage: &'static str,
        depth: impl Fn() -> u64 + Send + Sync + 'static,
    ) {
        if let Ok(mut queues) = self.shared.queues.lock() {
            queues.push((stage, Box::new(depth)));
        }
    }

    /// Plugin metrics for a chain: records its loaded versions now, and returns the
    /// observer every worker's runner reports to.
    pub fn chain_observer(&self, chain: &LoadedChain) -> Arc<dyn ChainObserver> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64();
        let mut plugins = HashMap::new();
        for (plugin, version, sha256) in chain.versions() {
            let labels = PluginLabels {
                plugin: plugin.clone(),
            };
            let info = PluginInfoLabels {
                plugin: plugin.clone(),
                version,
                sha256,
            };
            self.families.plugin_info.get_or_create(&info).set(1);
            if let Ok(mut versions) = self.shared.plugin_versions.lock()
                && let Some(previous) = versions.insert(plugin.clone(), info.clone())
                && previous != info
            {
                self.families.plugin_info.remove(&previous);
            }
            self.families.plugin_loaded.get_or_create(&labels).set(now);
            plugins.insert(plugin, self.plugin_handles(&labels));
        }
        Arc::new(PluginMetrics {
            plugins,
            families: self.families.clone(),
        })
    }

    fn plugin_handles(&self, labels: &PluginLabels) -> PluginHandles {
        PluginHandles::new(&self.families, labels)
    }

    /// Counts the drops and failures of one batch's verdicts.
    pub fn record_verdicts(&self, tally: VerdictTally) {
        if tally.is_empty() {
            return;
        }
        for (plugin, failed) in tally.failed {
            self.families
                .plugin_failed
                .get_or_create(&PluginLabels { plugin })
                .inc_by(failed);
        }
        let Ok(mut reasons) = self.shared.reasons.lock() else {
            return;
        };
        let drops = tally.dropped.into_iter().flat_map(|(plugin, reasons)| {
            reasons
                .into_iter()
                .map(move |(reason, dropped)| (plugin.clone(), reason, dropped))
        });
        for (plugin, reason, dropped) in drops {
            let mut labels = DropLabels {
                plugin,
                reason: reason.chars().take(MAX_REASON_CHARS).collect(),
            };
            if self.families.plugin_dropped.get(&labels).is_none() {
                let seen = reasons.entry(labels.plugin.clone()).or_default();
                if *seen >= MAX_REASONS_PER_PLUGIN {
                    labels.reason = "other".to_owned();
                } else {
                    *seen += 1;
                }
            }
            self.families
                .plugin_dropped
                .get_or_create(&labels)
                .inc_by(dropped);
        }
    }

    /// The handles the sink stage counts into.
    pub fn sink(&self, sink: &'static str) -> SinkMetrics {
        let labels = SinkLabels {
            sink: sink.to_owned(),
        };
        let cause = |cause: FlushCause| {
            self.families.flushes.get_or_create_owned(&FlushLabels {
                sink: sink.to_owned(),
                cause: cause.as_str().to_owned(),
            })
        };
        SinkMetrics {
            flushes: [
                cause(FlushCause::Rows),
                cause(FlushCause::Bytes),
                cause(FlushCause::Age),
                cause(FlushCause::End),
                cause(FlushCause::Shutdown),
            ],
            batch_rows: self.families.batch_rows.get_or_create_owned(&labels),
            write_seconds: self
                .families
                .sink_write_seconds
                .get_or_create_owned(&labels),
            errors: self.families.sink_errors.get_or_create_owned(&labels),
            shared: self.shared.clone(),
        }
    }

    /// The handles the dead-letter stage counts into, by [`Stage`].
    pub fn dead_letters(&self) -> DeadLetterMetrics {
        let stage = |stage: Stage| {
            self.families
                .dead_letters
                .get_or_create_owned(&StageLabels {
                    stage: stage.to_string(),
                })
        };
        DeadLetterMetrics {
            by_stage: [
                stage(Stage::Decode),
                stage(Stage::Plugin),
                stage(Stage::Sink),
                stage(Stage::Broker),
            ],
        }
    }

    /// What `/readyz` answers: ready while the pipeline runs and its sink's last
    /// write succeeded. The source's state is reported but does not make the
    /// daemon unready: backing off is what it should do while X is down. The
    /// exception is X refusing the token or the app (401/403): no retry fixes
    /// that, so the daemon is unready until a connection succeeds.
    pub fn readiness(&self) -> Readiness {
        let shared = &self.shared;
        let running = shared.running.load(Ordering::Relaxed);
        let sink_up = shared.sink_up.load(Ordering::Relaxed);
        let mut checks = vec![format!(
            "pipeline: {}",
            if running { "running" } else { "not running" }
        )];
        if let Some(shape) = shared.shape.get() {
            let sink = if sink_up {
                "reachable".to_owned()
            } else {
                let error = shared
                    .sink_error
                    .lock()
                    .ok()
                    .and_then(|error| error.clone())
                    .unwrap_or_default();
                format!("unreachable: {error}")
            };
            checks.push(format!("sink {}: {sink}", shape.sink));
            if shape.x {
                checks.push(format!("source x: {}", shared.x.describe()));
            }
            if shape.replay {
                checks.push("source replay: reading".to_owned());
            }
        }
        let refused = shared.shape.get().is_some_and(|shape| shape.x) && shared.x.is_refused();
        Readiness {
            ready: running && sink_up && !refused,
            checks,
        }
    }
}

/// Per-plugin handles, resolved once.
#[derive(Debug, Clone)]
struct PluginHandles {
    posts: Counter,
    passed: Counter,
    seconds: Histogram,
    restarts: Counter,
}

impl PluginHandles {
    fn new(families: &Families, labels: &PluginLabels) -> PluginHandles {
        PluginHandles {
            posts: families.plugin_in.get_or_create_owned(labels),
            passed: families.plugin_passed.get_or_create_owned(labels),
            seconds: families.plugin_batch_seconds.get_or_create_owned(labels),
            restarts: families.plugin_restarts.get_or_create_owned(labels),
        }
    }

    fn record(&self, batch: PluginBatch) {
        self.posts.inc_by(batch.posts as u64);
        self.passed.inc_by(batch.passed as u64);
        self.seconds.observe(batch.elapsed.as_secs_f64());
        if batch.restarts > 0 {
            self.restarts.inc_by(u64::from(batch.restarts));
        }
    }
}

/// The chain's metrics hook: a lookup in an immutable map, then atomics.
#[derive(Debug)]
struct PluginMetrics {
    plugins: HashMap<String, PluginHandles>,
    families: Families,
}

impl ChainObserver for PluginMetrics {
    fn plugin_batch(&self, plugin: &str, batch: PluginBatch) {
        match self.plugins.get(plugin) {
            Some(handles) => handles.record(batch),
            // A plugin this chain did not start with (a hot swap renamed it).
            None => PluginHandles::new(
                &self.families,
                &PluginLabels {
                    plugin: plugin.to_owned(),
                },
            )
            .record(batch),
        }
    }
}

/// The drops (by plugin and reason) and failures (by plugin) of one batch.
#[derive(Debug, Default)]
pub struct VerdictTally {
    /// Counts by plugin, then by reason.
    dropped: HashMap<String, HashMap<String, u64>>,
    failed: HashMap<String, u64>,
}

impl VerdictTally {
    /// Counts a drop; allocates only for a plugin or reason not seen in this batch.
    pub fn dropped(&mut self, plugin: &str, reason: &str) {
        if !self.dropped.contains_key(plugin) {
            self.dropped.insert(plugin.to_owned(), HashMap::new());
        }
        let reasons = self
            .dropped
            .get_mut(plugin)
            .expect("the plugin's counts were just made");
        match reasons.get_mut(reason) {
            Some(count) => *count += 1,
            None => {
                reasons.insert(reason.to_owned(), 1);
            }
        }
    }

    pub fn failed(&mut self, plugin: &str) {
        *self.failed.entry(plugin.to_owned()).or_default() += 1;
    }

    fn is_empty(&self) -> bool {
        self.dropped.is_empty() && self.failed.is_empty()
    }
}

/// The sink stage's handles.
#[derive(Debug)]
pub struct SinkMetrics {
    flushes: [Counter; 5],
    batch_rows: Histogram,
    write_seconds: Histogram,
    errors: Counter,
    shared: Arc<Shared>,
}

impl SinkMetrics {
    /// A batch of `rows` is being flushed because of `cause`.
    pub fn flushing(&self, cause: FlushCause, rows: usize) {
        let index = match cause {
            FlushCause::Rows => 0,
            FlushCause::Bytes => 1,
            FlushCause::Age => 2,
            FlushCause::End => 3,
            FlushCause::Shutdown => 4,
        };
        self.flushes[index].inc();
        self.batch_rows.observe(rows as f64);
    }

    /// A write attempt succeeded after `elapsed`.
    pub fn written(&self, elapsed: Duration) {
        self.write_seconds.observe(elapsed.as_secs_f64());
        self.shared.sink_up.store(true, Ordering::Relaxed);
    }

    /// A write attempt failed after `elapsed`; the sink counts as unreachable
    /// until a write succeeds.
    pub fn failed(&self, elapsed: Duration, error: &dyn std::fmt::Display) {
        self.write_seconds.observe(elapsed.as_secs_f64());
        self.errors.inc();
        if let Ok(mut last) = self.shared.sink_error.lock() {
            *last = Some(error.to_string());
        }
        self.shared.sink_up.store(false, Ordering::Relaxed);
    }

    /// The sink committed `posts` but the `rejected` ones.
    pub fn committed(&self, posts: &[crate::post::Post], rejected: &[crate::sinks::RejectedRow]) {
        if let Some(observer) = self.shared.commits.get() {
            observer.committed(posts, rejected);
        }
    }

    /// Rows waiting in the open batch.
    pub fn open_batch(&self, rows: usize) {
        self.shared.open_batch.store(rows as u64, Ordering::Relaxed);
    }
}

/// The dead-letter stage's handles.
#[derive(Debug)]
pub struct DeadLetterMetrics {
    by_stage: [Counter; 4],
}

impl DeadLetterMetrics {
    pub fn written(&self, stage: Stage) {
        let index = match stage {
            Stage::Decode => 0,
            Stage::Plugin => 1,
            Stage::Sink => 2,
            Stage::Broker => 3,
        };
        self.by_stage[index].inc();
    }
}

/// Exports [`Stats`], the connection state and the queue depths at scrape time.
#[derive(Debug)]
struct PipelineCollector(Arc<Shared>);

fn counter(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    samples: &[(&[(&str, &str)], u64)],
) -> Result<(), std::fmt::Error> {
    let mut metric = encoder.encode_descriptor(
        name,
        help,
        None,
        prometheus_client::metrics::MetricType::Counter,
    )?;
    if let &[(labels, value)] = samples
        && labels.is_empty()
    {
        return ConstCounter::new(value).encode(metric);
    }
    for (labels, value) in samples {
        ConstCounter::new(*value).encode(metric.encode_family(labels)?)?;
    }
    Ok(())
}

fn gauge(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    samples: &[(&[(&str, &str)], i64)],
) -> Result<(), std::fmt::Error> {
    let mut metric = encoder.encode_descriptor(
        name,
        help,
        None,
        prometheus_client::metrics::MetricType::Gauge,
    )?;
    if let &[(labels, value)] = samples
        && labels.is_empty()
    {
        return ConstGauge::new(value).encode(metric);
    }
    for (labels, value) in samples {
        ConstGauge::new(*value).encode(metric.encode_family(labels)?)?;
    }
    Ok(())
}

impl Collector for PipelineCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let shared = &self.0;
        let stats = shared.stats.snapshot();
        let running = shared.running.load(Ordering::Relaxed);
        let sink_up = shared.sink_up.load(Ordering::Relaxed);
        gauge(
            &mut encoder,
            "up",
            "1 while the pipeline runs.",
            &[(&[], i64::from(running))],
        )?;
        gauge(
            &mut encoder,
            "ready",
            "1 while /readyz answers 200 (pipeline running, sink reachable).",
            &[(&[], i64::from(running && sink_up))],
        )?;
        let dropped = crate::plugins::output_lines_dropped();
        let labels: Vec<[(&str, &str); 1]> = dropped
            .iter()
            .map(|(plugin, _)| [("plugin", plugin.as_str())])
            .collect();
        let samples: Vec<(&[(&str, &str)], u64)> = labels
            .iter()
            .zip(&dropped)
            .map(|(labels, (_, count))| (&labels[..], *count))
            .collect();
        if !samples.is_empty() {
            counter(
                &mut encoder,
                "plugin_output_lines_dropped",
                "Lines a plugin wrote to stdout or stderr that were not logged whole: cut at 4 KiB, or over its 50 lines a second.",
                &samples,
            )?;
        }
        let Some(shape) = shared.shape.get().copied() else {
            return Ok(());
        };
        let x = &shared.x;
        let x_received = x.received.load(Ordering::Relaxed);
        let mut received: Vec<(&[(&str, &str)], u64)> = Vec::new();
        if shape.replay {
            // Every source counts into `read`; the X source also counts its own.
            let replay = stats.read.saturating_sub(x_received);
            received.push((&[("source", "replay")], replay));
        }
        if shape.x {
            received.push((&[("source", "x")], x_received));
        }
        counter(
            &mut encoder,
            "source_posts_received",
            "Posts (or lines) read by each source.",
            &received,
        )?;
        if shape.x {
            let state = x.state.load(Ordering::Relaxed);
            gauge(
                &mut encoder,
                "source_connected",
                "1 while the source's stream connection delivers data.",
                &[(&[("source", "x")], i64::from(state == STATE_CONNECTED))],
            )?;
            counter(
                &mut encoder,
                "source_reconnects",
                "Failed connection attempts, each followed by a reconnect.",
                &[(&[("source", "x")], x.reconnects.load(Ordering::Relaxed))],
            )?;
            let backoff = if state == STATE_BACKING_OFF {
                x.backoff_ms.load(Ordering::Relaxed) as f64 / 1000.0
            } else {
                0.0
            };
            let mut metric = encoder.encode_descriptor(
                "source_backoff_seconds",
                "The current wait before the next connection attempt (0 while connected).",
                None,
                prometheus_client::metrics::MetricType::Gauge,
            )?;
            ConstGauge::new(backoff).encode(metric.encode_family(&[("source", "x")])?)?;
            counter(
                &mut encoder,
                "source_gaps",
                "Times the source noticed a gap without the stream (a reconnect or a restart).",
                &[(&[("source", "x")], x.gaps.load(Ordering::Relaxed))],
            )?;
            let seconds = |ms: &AtomicU64| ms.load(Ordering::Relaxed) as f64 / 1000.0;
            let mut metric = encoder.encode_descriptor(
                "source_gap_seconds",
                "Total length of the gaps without the stream.",
                None,
                prometheus_client::metrics::MetricType::Counter,
            )?;
            ConstCounter::new(seconds(&x.gap_ms))
                .encode(metric.encode_family(&[("source", "x")])?)?;
            let mut metric = encoder.encode_descriptor(
                "source_last_gap_seconds",
                "Length of the last gap without the stream.",
                None,
                prometheus_client::metrics::MetricType::Gauge,
            )?;
            ConstGauge::new(seconds(&x.last_gap_ms))
                .encode(metric.encode_family(&[("source", "x")])?)?;
            counter(
                &mut encoder,
                "source_recovered_posts",
                "Posts the source fetched through gap recovery (recent search) and published; some may repeat streamed posts (the sinks remove them by id).",
                &[(&[("source", "x")], x.recovered.load(Ordering::Relaxed))],
            )?;
            counter(
                &mut encoder,
                "source_recovery_errors",
                "Gap-recovery (recent search) requests that failed; each is retried or, after a refusal or the last attempt, given up, leaving part of its gap unfilled.",
                &[(
                    &[("source", "x")],
                    x.recovery_errors.load(Ordering::Relaxed),
                )],
            )?;
        }
        let broker: &[(&str, &str)] = &[("broker", shape.broker)];
        counter(
            &mut encoder,
            "broker_published",
            "Messages published to the broker.",
            &[(broker, stats.published)],
        )?;
        counter(
            &mut encoder,
            "broker_acked",
            "Messages acknowledged (committed or dead-lettered).",
            &[(broker, stats.acked)],
        )?;
        counter(
            &mut encoder,
            "broker_nacked",
            "Messages handed back for redelivery.",
            &[(broker, stats.nacked)],
        )?;
        counter(
            &mut encoder,
            "decode_malformed",
            "Messages that could not be decoded into a post.",
            &[(&[], stats.malformed)],
        )?;
        counter(
            &mut encoder,
            "chain_posts",
            "Posts out of the whole plugin chain, by outcome.",
            &[
                (&[("outcome", "kept")], stats.kept),
                (&[("outcome", "dropped")], stats.dropped),
                (&[("outcome", "failed")], stats.failed),
            ],
        )?;
        let sink: &[(&str, &str)] = &[("sink", shape.sink)];
        counter(
            &mut encoder,
            "sink_rows",
            "Rows the sink handled, by result.",
            &[
                (
                    &[("sink", shape.sink), ("result", "written")],
                    stats.written,
                ),
                (
                    &[("sink", shape.sink), ("result", "duplicate")],
                    stats.duplicates,
                ),
                (
                    &[("sink", shape.sink), ("result", "rejected")],
                    stats.rejected,
                ),
            ],
        )?;
        counter(
            &mut encoder,
            "sink_batches",
            "Batches the sink committed.",
            &[(sink, stats.batches)],
        )?;
        counter(
            &mut encoder,
            "sink_retries",
            "Sink writes that failed and were retried.",
            &[(sink, stats.sink_retries)],
        )?;
        gauge(
            &mut encoder,
            "sink_up",
            "1 while the sink's last write succeeded.",
            &[(sink, i64::from(sink_up))],
        )?;
        if shared.spool_active.load(Ordering::Relaxed) {
            let spool = &shared.spool;
            gauge(
                &mut encoder,
                "spool_messages",
                "Messages on disk in the spool, not yet settled (embedded: committed or dead-lettered; Pub/Sub: confirmed).",
                &[(&[], spool.messages.load(Ordering::Relaxed) as i64)],
            )?;
            gauge(
                &mut encoder,
                "spool_bytes",
                "Payload bytes of the messages in the spool (broker.spool.max_bytes bounds it).",
                &[(&[], spool.bytes.load(Ordering::Relaxed) as i64)],
            )?;
            let metric = encoder.encode_descriptor(
                "spool_oldest_message_age_seconds",
                "How long the oldest message in the spool has waited (0 when it is empty).",
                None,
                prometheus_client::metrics::MetricType::Gauge,
            )?;
            ConstGauge::new(spool.oldest_age_seconds()).encode(metric)?;
            counter(
                &mut encoder,
                "spool_appended",
                "Messages this run committed to the spool (synced to disk); a source reads on only once its posts are.",
                &[(&[], spool.appended.load(Ordering::Relaxed))],
            )?;
            counter(
                &mut encoder,
                "spool_dropped",
                "Messages not kept because the spool was full (broker.spool.when_full = \"drop\").",
                &[(&[], spool.dropped.load(Ordering::Relaxed))],
            )?;
            counter(
                &mut encoder,
                "spool_lost_at_open",
                "Messages of a damaged spool file that could not be read when it was opened.",
                &[(&[], spool.lost_at_open.load(Ordering::Relaxed))],
            )?;
        }
        let mut depths: Vec<(&'static str, u64)> = vec![
            ("broker", stats.published.saturating_sub(stats.acked)),
            ("batch", shared.open_batch.load(Ordering::Relaxed)),
        ];
        if let Ok(queues) = shared.queues.lock() {
            depths.extend(queues.iter().map(|(stage, depth)| (*stage, depth())));
        }
        let labels: Vec<[(&str, &str); 1]> = depths
            .iter()
            .map(|(stage, _)| [("stage", *stage)])
            .collect();
        let samples: Vec<(&[(&str, &str)], i64)> = labels
            .iter()
            .zip(&depths)
            .map(|(labels, (_, depth))| (&labels[..], *depth as i64))
            .collect();
        gauge(
            &mut encoder,
            "queue_depth",
            "Messages waiting per stage: broker = published and not yet acked (queued or in flight), sink = rows waiting for the sink stage, dead_letter = letters waiting to be written, batch = rows in the open batch.",
            &samples,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_are_counted_by_plugin_and_by_reason() {
        let metrics = Metrics::new();
        let mut tally = VerdictTally::default();
        for (plugin, reason) in [
            ("filter", "no rule matched"),
            ("lang", "no rule matched"),
            ("filter", "a retweet"),
            ("filter", "no rule matched"),
        ] {
            tally.dropped(plugin, reason);
        }
        tally.failed("lang");
        metrics.record_verdicts(tally);
        let mut tally = VerdictTally::default();
        tally.dropped("filter", "no rule matched");
        metrics.record_verdicts(tally);

        let text = metrics.encode().unwrap();
        for line in [
            r#"tweetpipe_plugin_posts_dropped_total{plugin="filter",reason="no rule matched"} 3"#,
            r#"tweetpipe_plugin_posts_dropped_total{plugin="filter",reason="a retweet"} 1"#,
            r#"tweetpipe_plugin_posts_dropped_total{plugin="lang",reason="no rule matched"} 1"#,
            r#"tweetpipe_plugin_posts_failed_total{plugin="lang"} 1"#,
        ] {
            assert!(text.lines().any(|got| got == line), "{line} in:\n{text}");
        }
    }
}
