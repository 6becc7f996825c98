//! Wires source → broker → plugin chain → batcher → sink once, and drains it on shutdown.
//!
//! Stages talk over bounded channels, so a slow sink slows the source instead of
//! growing memory. Every message's [`AckToken`] travels with its row; it is acked
//! only after the sink commits the row or the dead-letter file holds the message.
//! Shutdown is passed in as a future (a signal in the daemon, anything in tests):
//! it stops the sources, and the rest drains as channels close.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::{Mutex, OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::batcher::{Batcher, FlushCause};
use crate::broker::{self, AckToken, Delivery, Publisher, Subscriber};
use crate::config::{BrokerKind, Config, SinkKind};
use crate::dead_letter::{DeadLetter, DeadLetterError, DeadLetterSink, Stage};
use crate::metrics::{DeadLetterMetrics, Metrics, Shape, SinkMetrics, VerdictTally};
use crate::plugins::{ChainRunner, ChainSwitch, LoadedChain, PluginError, Verdict};
use crate::post::{Post, decode_shared};
use crate::sinks::{self, Sink, SinkError};
use crate::sources::{ReplaySource, SourceError, XSource, XSourceError};
use crate::stats::{Stats, StatsSnapshot};

/// Why the pipeline could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    XSource(#[from] XSourceError),
    #[error(transparent)]
    Sink(#[from] SinkError),
    #[error("dead letters: {0}")]
    DeadLetter(#[from] DeadLetterError),
    #[error(transparent)]
    Plugin(#[from] PluginError),
    #[error("config: {0}")]
    Config(String),
    #[error(transparent)]
    Pubsub(#[from] crate::broker::pubsub::PubsubError),
    #[error(transparent)]
    Spool(#[from] crate::broker::spool::SpoolError),
    #[error("a pipeline task failed: {0}")]
    Task(String),
}

/// What a finished run did.
#[derive(Debug, Clone)]
pub struct RunOutcome {
    pub stats: StatsSnapshot,
    pub elapsed: Duration,
    /// Messages left uncommitted because the sink failed during shutdown.
    pub abandoned: u64,
    /// True when shutdown was requested before the sources ended.
    pub interrupted: bool,
    pub sink: SinkKind,
    /// True when this run published what it read to Pub/Sub (the ingest role).
    pub published_to_pubsub: bool,
    /// Where a replay continued an earlier run ("resuming FILE at line N"), or
    /// why it could not.
    pub resumed: Option<String>,
}

/// A row on its way to the sink, with the obligation to settle its message.
#[derive(Debug)]
struct Row {
    post: Post,
    token: AckToken,
    bytes: usize,
}

/// A message that goes to the dead-letter file, with its obligation.
type Letter = (DeadLetter, AckToken);

/// What the pipeline reports about itself while it runs; the daemon forwards it to
/// systemd (see `crate::systemd`). Heartbeats come from the sink stage's loop, so
/// they stop when that loop is stuck (a hung sink write, a blocked runtime).
pub trait Observer: Send + Sync {
    /// The stages run and the sources are starting.
    fn ready(&self, _stats: &StatsSnapshot) {}
    /// How often [`Observer::heartbeat`] is wanted; `None` for never.
    fn heartbeat_interval(&self) -> Option<Duration> {
        None
    }
    /// The sink stage is alive (idle, flushing or waiting to retry).
    fn heartbeat(&self, _stats: &StatsSnapshot) {}
}

/// An observer that wants nothing.
#[derive(Debug, Default)]
pub struct NoObserver;

impl Observer for NoObserver {}

/// Runs the configured pipeline until its sources end or `shutdown` completes,
/// then drains: everything read is committed or dead-lettered before this returns.
pub async fn run(
    config: &Config,
    chain: LoadedChain,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<RunOutcome, PipelineError> {
    run_observed(config, chain, shutdown, Arc::new(NoObserver)).await
}

/// [`run`], reporting readiness and heartbeats to `observer`.
pub async fn run_observed(
    config: &Config,
    chain: LoadedChain,
    shutdown: impl Future<Output = ()> + Send + 'static,
    observer: Arc<dyn Observer>,
) -> Result<RunOutcome, PipelineError> {
    run_with_metrics(config, chain, shutdown, observer, Arc::new(Metrics::new())).await
}

/// [`run_observed`], counting into `metrics` (served by `crate::metrics::server`).
pub async fn run_with_metrics(
    config: &Config,
    chain: LoadedChain,
    shutdown: impl Future<Output = ()> + Send + 'static,
    observer: Arc<dyn Observer>,
    metrics: Arc<Metrics>,
) -> Result<RunOutcome, PipelineError> {
    run_switched(config, ChainSwitch::new(chain), shutdown, observer, metrics).await
}

/// [`run_with_metrics`] on the chain in `chains`: each worker checks between two
/// batches whether a newer generation was published (plugin hot swap); it runs
/// the first batch after the new instances are ready (created on a blocking
/// thread) on the new chain. A batch always ends on the chain it started with.
pub async fn run_switched(
    config: &Config,
    chains: Arc<ChainSwitch>,
    shutdown: impl Future<Output = ()> + Send + 'static,
    observer: Arc<dyn Observer>,
    metrics: Arc<Metrics>,
) -> Result<RunOutcome, PipelineError> {
    let started = Instant::now();
    let generation = chains.current();
    let chain = &generation.chain;
    let stats = metrics.stats();
    let sink_kind = config.sink_kind().map_err(PipelineError::Config)?;

    // A process-only daemon reads no source, even when one is configured.
    let ingest = config.broker.ingest();
    let process = config.broker.process();
    let mut replay = config
        .source
        .replay
        .clone()
        .filter(|_| ingest)
        .map(ReplaySource::new);
    let x_status = metrics.x_status();
    let x_source = config
        .source
        .x
        .clone()
        .filter(|_| ingest)
        .map(|x| XSource::new(x).map(|source| source.with_status(x_status)))
        .transpose()?;
    if ingest && replay.is_none() && x_source.is_none() {
        return Err(PipelineError::Config("no source is configured".to_owned()));
    }
    // Fail before anything is read when the input is missing.
    if let Some(replay) = &replay {
        replay.files()?;
    }

    let sink = sinks::build(&sink_kind).await?;
    let sink_metrics = metrics.sink(sink.name());
    let shape = Shape {
        sink: sink.name(),
        broker: match config.broker.kind {
            BrokerKind::Embedded => "embedded",
            BrokerKind::Pubsub => "pubsub",
        },
        replay: replay.is_some(),
        x: x_source.is_some(),
    };
    let destination = config
        .dead_letter_destination()
        .map_err(|(key, message)| PipelineError::Config(format!("{key}: {message}")))?;
    let dead_letters = DeadLetterSink::open(&destination).await?;
    let chain_observer = metrics.chain_observer(chain);
    let mut first_runner = Some(chain.instantiate()?);

    let cancel = CancellationToken::new();
    let built = build_broker(config, &stats, &cancel, &metrics).await?;
    let broker_control = built.embedded.clone();
    let closer = built.embedded;
    let pubsub_control = built.pubsub;
    let publisher = built.publisher;
    let subscriber = Arc::new(Mutex::new(built.subscriber));
    // A replay continues where the last run had every line settled.
    let resumed = match (&mut replay, &publisher) {
        (Some(replay), Some(publisher)) => replay.open_positions(publisher.settles_receipts())?,
        _ => None,
    };
    let positions = replay.as_ref().and_then(ReplaySource::positions);
    // Rows travel to the sink a processed batch at a time, one channel operation
    // per batch; the channel holds about four sink batches of rows, which is
    // what a flush can take along while the sink was busy (group commit).
    let row_chunks = (config.batch.max_rows.max(64) * 4)
        .div_ceil(config.process.chain_batch.max(1))
        .max(2);
    let (row_tx, row_rx) = mpsc::channel::<RowChunk>(row_chunks);
    let rows_waiting = Arc::new(AtomicU64::new(0));
    let row_budget = RowBudget::new(config.batch.max_bytes.saturating_mul(ROW_BUDGET_BATCHES));
    let (letter_tx, letter_rx) = mpsc::channel::<Letter>(1024);
    metrics.watch_queue("sink", {
        let waiting = rows_waiting.clone();
        move || waiting.load(Ordering::Relaxed)
    });
    metrics.watch_queue("dead_letter", queue_depth(&letter_tx));

    let letters_task = tokio::spawn(dead_letter_stage(
        dead_letters,
        letter_rx,
        stats.clone(),
        metrics.dead_letters(),
    ));
    let sources_ended = CancellationToken::new();
    let sink_task = tokio::spawn(sink_stage(SinkStage {
        sink,
        batcher: Batcher::new(&config.batch),
        rows: row_rx,
        rows_waiting: rows_waiting.clone(),
        letters: letter_tx.clone(),
        stats: stats.clone(),
        cancel: cancel.clone(),
        sources_ended: sources_ended.clone(),
        close_broker: Box::new(move || {
            if let Some(closer) = &closer {
                closer.close();
            }
        }),
        heartbeat: heartbeat_timer(observer.as_ref()),
        observer: observer.clone(),
        metrics: sink_metrics,
    }));

    let mut workers = Vec::new();
    for _ in 0..if process { config.process.workers } else { 0 } {
        let mut runner = match first_runner.take() {
            Some(runner) => runner,
            None => chain.instantiate()?,
        };
        runner.observe(chain_observer.clone());
        workers.push(tokio::spawn(process_worker(ProcessWorker {
            subscriber: subscriber.clone(),
            runner: Some(runner),
            chains: chains.clone(),
            generation: generation.number,
            preparing: None,
            chain_batch: config.process.chain_batch,
            max_deliveries: config.broker.max_deliveries,
            rows: row_tx.clone(),
            rows_waiting: rows_waiting.clone(),
            row_budget: row_budget.clone(),
            letters: letter_tx.clone(),
            stats: stats.clone(),
            metrics: metrics.clone(),
        })));
    }
    // At ingest, what is not a post is dead-lettered here rather than published.
    let publisher = publisher.map(|publisher| match publisher {
        Publisher::Pubsub(publisher) => {
            Publisher::Pubsub(publisher.with_dead_letters(letter_tx.clone()))
        }
        embedded => embedded,
    });
    drop(row_tx);
    drop(letter_tx);
    drop(subscriber);

    let stop = cancel.clone();
    let watcher = tokio::spawn(async move {
        tokio::select! {
            _ = shutdown => {
                log::info!("shutdown requested: stopping sources, draining the pipeline");
                stop.cancel();
            }
            _ = stop.cancelled() => {}
        }
    });

    metrics.pipeline_started(shape);
    observer.ready(&stats.snapshot());
    // Holds no dead-letter sender, so the dead-letter stage ends with the sources.
    let mut pubsub_publisher = None;
    let source_error = match publisher {
        Some(publisher) => {
            let flushed = match &publisher {
                Publisher::Pubsub(publisher) => Publisher::Pubsub(publisher.without_dead_letters()),
                other => other.clone(),
            };
            let error = run_sources(replay, x_source, publisher, &stats, &cancel).await;
            match flushed {
                // Everything read is confirmed by Pub/Sub (or given up at shutdown).
                Publisher::Pubsub(publisher) => {
                    publisher.flush().await;
                    pubsub_publisher = Some(publisher);
                }
                // Nothing more will be queued: the sink need not wait for more rows.
                Publisher::Embedded(_) => sources_ended.cancel(),
            }
            error
        }
        None => None,
    };
    // Pub/Sub never ends on its own: a process role runs until shutdown.
    if pubsub_control.is_some() && process {
        cancel.cancelled().await;
    }
    let interrupted = cancel.is_cancelled();
    let mut first_error: Option<PipelineError> = source_error;

    for worker in workers {
        if let Err(error) = flatten(worker.await) {
            log::error!("process worker stopped: {error}");
            first_error.get_or_insert(error);
        }
    }
    // The sink closes (SQLite's final checkpoint, say) while the letters, the
    // replay position and the spool record the end of the run: the last
    // settles came with the last commit, and none of them waits for the other.
    let closing_sink = match sink_task.await {
        Ok(Ok(mut sink)) => Some(tokio::spawn(async move {
            sink.close().await.map_err(PipelineError::from)
        })),
        Ok(Err(error)) => {
            first_error.get_or_insert(error);
            None
        }
        Err(error) => {
            first_error.get_or_insert(PipelineError::Task(error.to_string()));
            None
        }
    };
    if let Err(error) = flatten(letters_task.await) {
        first_error.get_or_insert(error);
    }
    // Everything is settled or given up: record how far the replay got.
    if let Some(positions) = positions {
        match tokio::task::spawn_blocking(move || positions.finish()).await {
            Ok(Ok(at)) => log::debug!(
                "replay: settled up to line {} of file {} (byte {})",
                at.line,
                at.file + 1,
                at.offset
            ),
            Ok(Err(error)) => log::warn!("{error}"),
            Err(error) => log::warn!("replay: recording the position failed: {error}"),
        }
    }
    let published_to_pubsub = pubsub_publisher.is_some();
    if let Some(publisher) = pubsub_publisher {
        // An ingest dead letter that could not be written went to the topic instead.
        publisher.flush().await;
        // The spool's last removals reach the disk before the run ends.
        publisher.close_spool().await;
    }
    if let Some(control) = &pubsub_control {
        // Sends the acks given during the drain before the streams close.
        control.shutdown().await;
    }
    cancel.cancel();
    let _ = watcher.await;
    if let Some(control) = &broker_control {
        // The last settles reach the disk before the run ends.
        control.close_spool().await;
    }
    if let Some(closing) = closing_sink
        && let Err(error) = flatten(closing.await)
    {
        first_error.get_or_insert(error);
    }
    metrics.pipeline_stopped();

    let abandoned = broker_control.map_or(0, |control| control.abandoned());
    if let Some(error) = first_error {
        return Err(error);
    }
    Ok(RunOutcome {
        stats: stats.snapshot(),
        elapsed: started.elapsed(),
        abandoned,
        interrupted,
        sink: sink_kind,
        published_to_pubsub,
        resumed,
    })
}

/// Runs every configured source until each ends or `cancel` fires. A source that
/// fails cancels the others, so the pipeline drains and reports the first error.
async fn run_sources(
    replay: Option<ReplaySource>,
    x_source: Option<XSource>,
    publisher: Publisher,
    stats: &Arc<Stats>,
    cancel: &CancellationToken,
) -> Option<PipelineError> {
    let replay_run = async {
        let Some(replay) = replay else {
            return Ok(());
        };
        let ended = replay
            .run(
                // A file can wait for the pipeline: its posts need not queue on disk.
                publisher.with_source("replay").paced(),
                stats.clone(),
                cancel.clone(),
            )
            .await;
        ended.map(drop).map_err(|error| {
            cancel.cancel();
            PipelineError::from(error)
        })
    };
    let x_run = async {
        let Some(x_source) = x_source else {
            return Ok(());
        };
        let ended = x_source
            .run(publisher.with_source("x"), stats.clone(), cancel.clone())
            .await;
        ended.map_err(|error| {
            log::error!("{error}");
            cancel.cancel();
            PipelineError::from(error)
        })
    };
    let (replay_ended, x_ended) = tokio::join!(replay_run, x_run);
    drop(publisher);
    replay_ended.err().or(x_ended.err())
}

/// The two ends of the configured broker, each present only for its role.
struct BuiltBroker {
    publisher: Option<Publisher>,
    subscriber: Subscriber,
    embedded: Option<broker::embedded::EmbeddedCloser>,
    pubsub: Option<broker::PubsubControl>,
}

async fn build_broker(
    config: &Config,
    stats: &Arc<Stats>,
    cancel: &CancellationToken,
    metrics: &Metrics,
) -> Result<BuiltBroker, PipelineError> {
    match (config.broker.kind, &config.broker.pubsub) {
        (BrokerKind::Embedded, _) => {
            let spool = &config.broker.spool;
            let (publisher, subscriber) = if spool.enabled {
                let options = broker::spool::SpoolOptions {
                    dir: config.spool_dir(),
                    max_bytes: spool.max_bytes,
                    when_full: spool.when_full,
                };
                let status = metrics.spool_status();
                let (capacity, stats) = (config.broker.capacity, stats.clone());
                // Opening checks (and may repair) the file: off the runtime's threads.
                let opened = tokio::task::spawn_blocking(move || {
                    broker::embedded_spooled(capacity, stats, &options, status)
                })
                .await
                .map_err(|error| PipelineError::Task(error.to_string()))??;
                metrics.spool_active();
                opened
            } else {
                broker::embedded(config.broker.capacity, stats.clone())
            };
            Ok(BuiltBroker {
                publisher: Some(Publisher::Embedded(publisher)),
                embedded: Some(subscriber.closer()),
                subscriber: Subscriber::Embedded(subscriber),
                pubsub: None,
            })
        }
        (BrokerKind::Pubsub, None) => Err(PipelineError::Config(
            "broker.pubsub: kind = \"pubsub\" needs a [broker.pubsub] table".to_owned(),
        )),
        (BrokerKind::Pubsub, Some(pubsub)) => {
            if pubsub.create_if_missing {
                broker::pubsub::ensure_resources(pubsub).await?;
            }
            let publisher = if config.broker.ingest() {
                let mut publisher =
                    broker::PubsubPublisher::connect(pubsub, stats.clone(), cancel.clone()).await?;
                let spool = &config.broker.spool;
                if spool.enabled {
                    let options = broker::spool::SpoolOptions {
                        dir: config.spool_dir(),
                        max_bytes: spool.max_bytes,
                        when_full: spool.when_full,
                    };
                    publisher = publisher.spooled(&options, metrics.spool_status()).await?;
                    metrics.spool_active();
                }
                Some(Publisher::Pubsub(publisher))
            } else {
                None
            };
            let (subscriber, control) = if config.broker.process() {
                let (subscriber, control) =
                    broker::PubsubSubscriber::connect(pubsub, stats.clone(), cancel.clone())
                        .await?;
                (Subscriber::Pubsub(subscriber), control)
            } else {
                // No worker pulls when this daemon only ingests.
                let (subscriber, control) =
                    broker::PubsubSubscriber::idle(stats.clone(), cancel.clone());
                (Subscriber::Pubsub(subscriber), control)
            };
            Ok(BuiltBroker {
                publisher,
                subscriber,
                embedded: None,
                pubsub: Some(control),
            })
        }
    }
}

/// Messages waiting in a channel, read at scrape time without keeping it open.
fn queue_depth<T: Send + 'static>(
    sender: &mpsc::Sender<T>,
) -> impl Fn() -> u64 + Send + Sync + 'static {
    let weak = sender.downgrade();
    move || {
        weak.upgrade().map_or(0, |sender| {
            (sender.max_capacity() - sender.capacity()) as u64
        })
    }
}

fn flatten(
    joined: Result<Result<(), PipelineError>, tokio::task::JoinError>,
) -> Result<(), PipelineError> {
    joined.map_err(|error| PipelineError::Task(error.to_string()))?
}

struct ProcessWorker {
    subscriber: Arc<Mutex<Subscriber>>,
    runner: Option<crate::plugins::ChainRunner>,
    /// Where newer chain generations are published, and the one `runner` runs.
    chains: Arc<ChainSwitch>,
    generation: u64,
    preparing: Option<Preparing>,
    chain_batch: usize,
    max_deliveries: u32,
    rows: mpsc::Sender<RowChunk>,
    /// Rows sent to the sink stage and not yet taken by it.
    rows_waiting: Arc<AtomicU64>,
    /// Bounds those rows in bytes.
    row_budget: RowBudget,
    letters: mpsc::Sender<Letter>,
    stats: Arc<Stats>,
    metrics: Arc<Metrics>,
}

/// What the process stage decided for one message.
// Short-lived and moved by value; boxing rows would cost an allocation per post.
#[allow(clippy::large_enum_variant)]
enum Processed {
    Row(Row),
    Dropped(AckToken),
    Letter(Letter),
}

async fn process_worker(mut worker: ProcessWorker) -> Result<(), PipelineError> {
    loop {
        let deliveries = {
            let mut subscriber = worker.subscriber.lock().await;
            subscriber.recv_many(worker.chain_batch).await
        };
        if deliveries.is_empty() {
            return Ok(());
        }
        let runner = worker
            .runner
            .take()
            .expect("the chain runner is returned after every batch");
        // Between two batches: the only point where a worker changes chains.
        let mut runner = worker.next_runner(runner).await;
        let max_deliveries = worker.max_deliveries;
        let stats = worker.stats.clone();
        let metrics = worker.metrics.clone();
        let (runner, processed) = tokio::task::spawn_blocking(move || {
            let mut tally = VerdictTally::default();
            let processed =
                process_batch(&mut runner, deliveries, max_deliveries, &stats, &mut tally);
            metrics.record_verdicts(tally);
            (runner, processed)
        })
        .await
        .map_err(|error| PipelineError::Task(error.to_string()))?;
        worker.runner = Some(runner);
        let mut rows = Vec::with_capacity(processed.len());
        for item in processed {
            match item {
                Processed::Row(row) => rows.push(row),
                Processed::Dropped(token) => token.ack(),
                Processed::Letter(letter) => {
                    if let Err(unsent) = worker.letters.send(letter).await {
                        unsent.0.1.nack("the dead-letter stage stopped");
                        return Err(PipelineError::Task(
                            "the dead-letter stage stopped".to_owned(),
                        ));
                    }
                }
            }
        }
        if rows.is_empty() {
            continue;
        }
        let count = rows.len() as u64;
        let bytes = rows.iter().map(|row| row.bytes).sum();
        let budget = worker.row_budget.reserve(bytes).await;
        worker.rows_waiting.fetch_add(count, Ordering::Relaxed);
        let chunk = RowChunk {
            rows,
            _budget: Some(budget),
        };
        if let Err(unsent) = worker.rows.send(chunk).await {
            worker.rows_waiting.fetch_sub(count, Ordering::Relaxed);
            for row in unsent.0.rows {
                row.token.nack("the sink stage stopped");
            }
            return Err(PipelineError::Task("the sink stage stopped".to_owned()));
        }
    }
}

/// A newer chain generation being instantiated for a worker, off the hot path.
type Preparing = (
    u64,
    tokio::task::JoinHandle<Result<(ChainRunner, Duration), PluginError>>,
);

impl ProcessWorker {
    /// Between two batches: starts instantiating a newer chain generation on a
    /// blocking thread and keeps using `runner` until those instances are ready;
    /// then swaps them in (a pointer move) and frees the old ones off the hot path.
    async fn next_runner(&mut self, runner: ChainRunner) -> ChainRunner {
        if let Some(newer) = self.chains.newer_than(self.generation)
            && self
                .preparing
                .as_ref()
                .is_none_or(|(number, _)| *number != newer.number)
        {
            // Records the new versions in the metrics, as at startup.
            let observer = self.metrics.chain_observer(&newer.chain);
            let number = newer.number;
            let task = tokio::task::spawn_blocking(move || {
                let started = std::time::Instant::now();
                let mut runner = newer.chain.instantiate()?;
                runner.observe(observer);
                Ok((runner, started.elapsed()))
            });
            self.preparing = Some((number, task));
        }
        if !self
            .preparing
            .as_ref()
            .is_some_and(|(_, task)| task.is_finished())
        {
            return runner;
        }
        let Some((number, task)) = self.preparing.take() else {
            return runner;
        };
        let paused = std::time::Instant::now();
        // Tried once: a generation that cannot be instantiated is not retried.
        self.generation = number;
        match task.await {
            Ok(Ok((new, prepared))) => {
                let pause = paused.elapsed();
                tokio::task::spawn_blocking(move || drop(runner));
                log::info!(
                    "process worker: now on plugin chain generation {number} (instantiated in {} us off the hot path; hot-path pause {} us)",
                    prepared.as_micros(),
                    pause.as_micros()
                );
                new
            }
            Ok(Err(error)) => {
                log::error!(
                    "process worker: cannot instantiate plugin chain generation {number}, keeping the previous one: {error}"
                );
                runner
            }
            Err(error) => {
                log::error!(
                    "process worker: instantiating plugin chain generation {number} failed, keeping the previous one: {error}"
                );
                runner
            }
        }
    }
}

/// Decodes a batch of deliveries and runs the decodable ones through the chain.
fn process_batch(
    runner: &mut crate::plugins::ChainRunner,
    deliveries: Vec<Delivery>,
    max_deliveries: u32,
    stats: &Stats,
    tally: &mut VerdictTally,
) -> Vec<Processed> {
    let mut processed: Vec<Option<Processed>> = Vec::with_capacity(deliveries.len());
    let mut posts = Vec::with_capacity(deliveries.len());
    let mut tokens = Vec::with_capacity(deliveries.len());
    for delivery in deliveries {
        if delivery.attempt > max_deliveries {
            let error = format!(
                "gave up after {} deliveries; last error: {}",
                delivery.attempt - 1,
                delivery.last_error.as_deref().unwrap_or("unknown")
            );
            log::warn!("{error}");
            processed.push(Some(Processed::Letter((
                DeadLetter {
                    stage: Stage::Broker,
                    error,
                    plugin: None,
                    post_id: None,
                    message: delivery.payload,
                    message_base64: delivery.payload_base64,
                    attempts: Some(delivery.attempt - 1),
                },
                delivery.token,
            ))));
            continue;
        }
        if delivery.payload_base64 {
            Stats::add(&stats.malformed, 1);
            let letter = DeadLetter::new(
                Stage::Decode,
                "the message is not UTF-8 text, so not JSON; its bytes are kept in base64 \
                 (`message_base64`: true)",
                delivery.payload,
            )
            .with_base64_message();
            processed.push(Some(Processed::Letter((letter, delivery.token))));
            continue;
        }
        match decode_shared(&delivery.payload) {
            Ok(post) => {
                processed.push(None);
                posts.push(post);
                tokens.push(delivery.token);
            }
            Err(error) => {
                Stats::add(&stats.malformed, 1);
                processed.push(Some(Processed::Letter((
                    DeadLetter {
                        stage: Stage::Decode,
                        error: error.to_string(),
                        plugin: None,
                        post_id: None,
                        message: delivery.payload,
                        message_base64: false,
                        attempts: None,
                    },
                    delivery.token,
                ))));
            }
        }
    }
    if posts.is_empty() {
        return processed.into_iter().flatten().collect();
    }
    let raws: Vec<_> = posts.iter().map(|post| post.raw.clone()).collect();
    // Ids are copied only to name dropped posts in the debug log.
    let ids: Vec<Option<String>> = if log::log_enabled!(log::Level::Debug) {
        posts.iter().map(|post| Some(post.id.clone())).collect()
    } else {
        vec![None; posts.len()]
    };
    let verdicts = runner.run(posts);
    debug_assert_eq!(verdicts.len(), tokens.len());
    let mut decided = verdicts
        .into_iter()
        .zip(tokens)
        .zip(raws.into_iter().zip(ids))
        .map(|((verdict, token), (raw, id))| match verdict {
            Verdict::Keep(mut post) => {
                Stats::add(&stats.kept, 1);
                if post.raw.is_none() {
                    post.raw = raw;
                }
                let bytes = row_bytes(&post);
                Processed::Row(Row { post, token, bytes })
            }
            Verdict::Drop { plugin, reason } => {
                Stats::add(&stats.dropped, 1);
                tally.dropped(&plugin, &reason);
                if let Some(id) = id {
                    log::debug!("post {id} dropped by plugin {plugin}: {reason}");
                }
                Processed::Dropped(token)
            }
            Verdict::Fail {
                post,
                plugin,
                error,
            } => {
                Stats::add(&stats.failed, 1);
                tally.failed(&plugin);
                let message = post.raw.clone().or(raw).unwrap_or_else(|| Arc::from(""));
                Processed::Letter((
                    DeadLetter {
                        stage: Stage::Plugin,
                        error,
                        plugin: Some(plugin),
                        post_id: Some(post.id),
                        message,
                        message_base64: false,
                        attempts: None,
                    },
                    token,
                ))
            }
        });
    let mut out = Vec::with_capacity(processed.len());
    for slot in processed {
        match slot {
            Some(item) => out.push(item),
            None => out.extend(decided.next()),
        }
    }
    out.extend(decided);
    out
}

/// The rows of one processed batch on their way to the sink stage, holding
/// their bytes of the [`RowBudget`] until the sink takes them.
struct RowChunk {
    rows: Vec<Row>,
    _budget: Option<OwnedSemaphorePermit>,
}

/// How many times `batch.max_bytes` the rows waiting for the sink may hold.
const ROW_BUDGET_BATCHES: usize = 4;

/// The bytes the rows waiting for the sink (besides its open batch) may hold:
/// a chain returning the largest post its limits allow for every post fills
/// this, and the process stage waits for the sink, instead of the daemon
/// holding the channel's row count times that size.
#[derive(Clone)]
struct RowBudget {
    bytes: Arc<Semaphore>,
    total: u32,
}

impl RowBudget {
    fn new(bytes: usize) -> RowBudget {
        let total = u32::try_from(bytes.clamp(1, Semaphore::MAX_PERMITS)).unwrap_or(u32::MAX);
        RowBudget {
            bytes: Arc::new(Semaphore::new(total as usize)),
            total,
        }
    }

    /// Waits until `bytes` of the budget are free and takes them; a chunk
    /// larger than the whole budget waits for all of it.
    async fn reserve(&self, bytes: usize) -> OwnedSemaphorePermit {
        let wanted = u32::try_from(bytes).unwrap_or(u32::MAX).min(self.total);
        self.bytes
            .clone()
            .acquire_many_owned(wanted)
            .await
            .expect("the row budget is never closed")
    }
}

/// A cheap estimate of a row's size for the batcher's byte limit.
fn row_bytes(post: &Post) -> usize {
    256 + post.text.len()
        + post.raw.as_ref().map_or(0, |raw| raw.len())
        + post.hashtags.iter().map(String::len).sum::<usize>()
        + post.urls.iter().map(String::len).sum::<usize>()
}

struct SinkStage {
    sink: Box<dyn Sink>,
    batcher: Batcher<Row>,
    rows: mpsc::Receiver<RowChunk>,
    rows_waiting: Arc<AtomicU64>,
    letters: mpsc::Sender<Letter>,
    stats: Arc<Stats>,
    cancel: CancellationToken,
    /// Fired when every source of a run on the embedded queue has ended.
    sources_ended: CancellationToken,
    close_broker: Box<dyn Fn() + Send>,
    observer: Arc<dyn Observer>,
    heartbeat: Option<tokio::time::Interval>,
    metrics: SinkMetrics,
}

fn heartbeat_timer(observer: &dyn Observer) -> Option<tokio::time::Interval> {
    let mut timer = tokio::time::interval(observer.heartbeat_interval()?);
    timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    Some(timer)
}

/// Waits for the next heartbeat tick and reports it; never completes without a timer.
async fn beat(timer: &mut Option<tokio::time::Interval>, observer: &dyn Observer, stats: &Stats) {
    match timer {
        Some(timer) => {
            timer.tick().await;
            observer.heartbeat(&stats.snapshot());
        }
        None => std::future::pending().await,
    }
}

/// Batches rows into the sink. Once the sources have ended, a batch is also
/// written when no row has come for [`END_QUIET`]: the last rows of a replay
/// then do not wait `max_age` (their messages stay unacknowledged, and the run
/// open, until they are written), while the queue still draining behind them
/// keeps filling full batches.
///
/// Returns the sink, written and still open, for the caller to close.
async fn sink_stage(mut stage: SinkStage) -> Result<Box<dyn Sink>, PipelineError> {
    let mut ended = false;
    let mut last_row = Instant::now();
    // Rows come a processed batch at a time, and as many batches as are waiting
    // are taken at once, so the select (and its timer) runs once per burst.
    let mut received = Vec::with_capacity(RECEIVE_BATCHES);
    loop {
        let (deadline, cause_at_deadline) =
            next_flush(stage.batcher.deadline(), ended.then_some(last_row));
        let cause = tokio::select! {
            count = stage.rows.recv_many(&mut received, RECEIVE_BATCHES) => {
                if count == 0 {
                    break;
                }
                // A batch that becomes due takes the rest of what was received
                // (group commit), as far as the batcher lets it grow.
                let mut due = None;
                for chunk in received.drain(..) {
                    stage.rows_waiting.fetch_sub(chunk.rows.len() as u64, Ordering::Relaxed);
                    for row in chunk.rows {
                        if !stage.batcher.can_grow()
                            && let Some(cause) = due.take()
                        {
                            flush(&mut stage, cause).await;
                        }
                        let bytes = row.bytes;
                        if let Some(cause) = stage.batcher.push(row, bytes) {
                            due.get_or_insert(cause);
                        }
                    }
                }
                stage.metrics.open_batch(stage.batcher.len());
                last_row = Instant::now();
                due
            },
            _ = stage.sources_ended.cancelled(), if !ended => {
                ended = true;
                None
            }
            _ = sleep_until(deadline), if deadline.is_some() => Some(cause_at_deadline),
            _ = beat(&mut stage.heartbeat, &*stage.observer, &stage.stats) => None,
        };
        if let Some(cause) = cause {
            flush(&mut stage, cause).await;
        }
    }
    if !stage.batcher.is_empty() {
        flush(&mut stage, FlushCause::Shutdown).await;
    }
    Ok(stage.sink)
}

/// After the sources have ended, how long the sink waits for another row
/// before writing what it holds.
const END_QUIET: Duration = Duration::from_millis(20);

/// When the open batch is due, and why: at its `max_age` deadline (`age`, set
/// while the batch holds rows) or, once the sources have ended (`ended_after`
/// holds the time of the last row then), [`END_QUIET`] after the last row if
/// that comes first.
fn next_flush(age: Option<Instant>, ended_after: Option<Instant>) -> (Option<Instant>, FlushCause) {
    match (age, ended_after) {
        (Some(age), Some(last_row)) if last_row + END_QUIET < age => {
            (Some(last_row + END_QUIET), FlushCause::End)
        }
        (age, _) => (age, FlushCause::Age),
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// The most processed batches of rows the sink stage takes from its channel at once.
const RECEIVE_BATCHES: usize = 16;

/// Longest wait between two attempts at the same batch.
const MAX_SINK_BACKOFF: Duration = Duration::from_secs(30);

/// Writes the open batch, after adding the rows already waiting in the channel
/// while the batcher lets it grow: the sink commits everything waiting in one
/// transaction (one WAL sync for SQLite, one `fdatasync` for JSONL) instead of
/// one per `max_rows`, so a sink slower than the chain catches up by writing
/// larger batches rather than falling behind.
async fn flush(stage: &mut SinkStage, cause: FlushCause) {
    while stage.batcher.can_grow() {
        let Ok(chunk) = stage.rows.try_recv() else {
            break;
        };
        stage
            .rows_waiting
            .fetch_sub(chunk.rows.len() as u64, Ordering::Relaxed);
        for row in chunk.rows {
            let bytes = row.bytes;
            stage.batcher.push(row, bytes);
        }
    }
    let rows = stage.batcher.take();
    let count = rows.len();
    stage.metrics.open_batch(0);
    stage.metrics.flushing(cause, count);
    let (posts, tokens): (Vec<Post>, Vec<AckToken>) =
        rows.into_iter().map(|row| (row.post, row.token)).unzip();
    let mut attempt = 0u32;
    loop {
        let write_started = Instant::now();
        let written = stage.sink.write(&posts).await;
        match &written {
            Ok(_) => stage.metrics.written(write_started.elapsed()),
            Err(error) => stage.metrics.failed(write_started.elapsed(), error),
        }
        match written {
            Ok(report) => {
                log::debug!(
                    "{}: batch of {count} rows ({}): {} written, {} duplicates, {} rejected",
                    stage.sink.name(),
                    cause.as_str(),
                    report.written,
                    report.duplicates,
                    report.rejected.len()
                );
                Stats::add(&stage.stats.written, report.written as u64);
                Stats::add(&stage.stats.duplicates, report.duplicates as u64);
                Stats::add(&stage.stats.rejected, report.rejected.len() as u64);
                stage.stats.committed();
                stage.metrics.committed(&posts, &report.rejected);
                let mut tokens: Vec<Option<AckToken>> = tokens.into_iter().map(Some).collect();
                for rejected in report.rejected {
                    let Some(token) = tokens.get_mut(rejected.index).and_then(Option::take) else {
                        continue;
                    };
                    let post = &posts[rejected.index];
                    log::warn!(
                        "{}: row {} rejected: {}",
                        stage.sink.name(),
                        post.id,
                        rejected.reason
                    );
                    let letter = DeadLetter {
                        stage: Stage::Sink,
                        error: rejected.reason,
                        plugin: None,
                        post_id: Some(post.id.clone()),
                        message: post.raw.clone().unwrap_or_else(|| Arc::from("")),
                        message_base64: false,
                        attempts: None,
                    };
                    if let Err(unsent) = stage.letters.send((letter, token)).await {
                        unsent.0.1.nack("the dead-letter stage stopped");
                    }
                }
                for token in tokens.into_iter().flatten() {
                    token.ack();
                }
                return;
            }
            Err(error) if error.is_retriable() && !stage.cancel.is_cancelled() => {
                attempt += 1;
                Stats::add(&stage.stats.sink_retries, 1);
                let backoff = Duration::from_millis(100u64.saturating_mul(1 << attempt.min(9)))
                    .min(MAX_SINK_BACKOFF);
                log::warn!(
                    "{}: writing {count} rows failed (attempt {attempt}), retrying in {backoff:?}: {error}",
                    stage.sink.name()
                );
                let wait = tokio::time::sleep(backoff);
                tokio::pin!(wait);
                loop {
                    tokio::select! {
                        _ = &mut wait => break,
                        _ = stage.cancel.cancelled() => break,
                        _ = beat(&mut stage.heartbeat, &*stage.observer, &stage.stats) => {}
                    }
                }
            }
            Err(error) => {
                let reason = error.to_string();
                if stage.cancel.is_cancelled() {
                    log::error!(
                        "{}: {count} rows not committed at shutdown; their messages stay unacknowledged: {error}",
                        stage.sink.name()
                    );
                    (stage.close_broker)();
                } else {
                    log::error!(
                        "{}: writing {count} rows failed; their messages will be delivered again: {error}",
                        stage.sink.name()
                    );
                }
                for token in tokens {
                    token.nack(&reason);
                }
                return;
            }
        }
    }
}

async fn dead_letter_stage(
    mut destination: DeadLetterSink,
    mut letters: mpsc::Receiver<Letter>,
    stats: Arc<Stats>,
    metrics: DeadLetterMetrics,
) -> Result<(), PipelineError> {
    let mut buffer = Vec::with_capacity(256);
    loop {
        buffer.clear();
        if letters.recv_many(&mut buffer, 256).await == 0 {
            return Ok(());
        }
        let batch: Vec<&DeadLetter> = buffer.iter().map(|(letter, _)| letter).collect();
        let written = destination.write(&batch).await;
        match written {
            Ok(()) => {
                Stats::add(&stats.dead_lettered, buffer.len() as u64);
                for (letter, token) in buffer.drain(..) {
                    metrics.written(letter.stage);
                    token.ack();
                }
            }
            Err(error) => {
                log::error!(
                    "dead letters: writing {} messages failed; they will be delivered again: {error}",
                    buffer.len()
                );
                let reason = error.to_string();
                for (_, token) in buffer.drain(..) {
                    token.nack(&reason);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::Acker;
    use crate::config::BatchConfig;
    use crate::sinks::{BoxFuture, WriteReport};

    struct Settled;

    impl Acker for Settled {
        fn ack(self: Box<Self>) {}
        fn nack(self: Box<Self>, _reason: &str) {}
    }

    /// A sink that records each batch's size and holds its first write until
    /// `release` is notified (announcing it on `started`).
    struct HeldSink {
        sizes: Arc<std::sync::Mutex<Vec<usize>>>,
        started: Arc<tokio::sync::Notify>,
        release: Arc<tokio::sync::Notify>,
    }

    impl Sink for HeldSink {
        fn name(&self) -> &'static str {
            "held"
        }

        fn write<'a>(
            &'a mut self,
            rows: &'a [Post],
        ) -> BoxFuture<'a, Result<WriteReport, SinkError>> {
            Box::pin(async move {
                let first = {
                    let mut sizes = self.sizes.lock().unwrap();
                    sizes.push(rows.len());
                    sizes.len() == 1
                };
                if first {
                    self.started.notify_one();
                    self.release.notified().await;
                }
                Ok(WriteReport {
                    written: rows.len(),
                    ..WriteReport::default()
                })
            })
        }

        fn close(&mut self) -> BoxFuture<'_, Result<(), SinkError>> {
            Box::pin(async { Ok(()) })
        }
    }

    /// Group commit: the rows that arrived while the sink was writing go into
    /// the next transaction together, up to `GROUP_COMMIT_ROWS` × `max_rows`,
    /// instead of one transaction per `max_rows`.
    #[tokio::test]
    async fn rows_waiting_behind_a_write_are_committed_together() {
        let metrics = Metrics::new();
        let stats = metrics.stats();
        let sizes = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (started, release) = (
            Arc::new(tokio::sync::Notify::new()),
            Arc::new(tokio::sync::Notify::new()),
        );
        let (row_tx, row_rx) = mpsc::channel::<RowChunk>(100);
        let (letter_tx, _letter_rx) = mpsc::channel::<Letter>(10);
        let stage = tokio::spawn(sink_stage(SinkStage {
            sink: Box::new(HeldSink {
                sizes: sizes.clone(),
                started: started.clone(),
                release: release.clone(),
            }),
            batcher: Batcher::new(&BatchConfig {
                max_rows: 10,
                max_bytes: usize::MAX,
                max_age: Duration::from_secs(3600),
            }),
            rows: row_rx,
            rows_waiting: Arc::new(AtomicU64::new(0)),
            letters: letter_tx,
            stats: stats.clone(),
            cancel: CancellationToken::new(),
            sources_ended: CancellationToken::new(),
            close_broker: Box::new(|| {}),
            observer: Arc::new(NoObserver),
            heartbeat: None,
            metrics: metrics.sink("held"),
        }));
        let chunk = |rows: usize| RowChunk {
            rows: (0..rows)
                .map(|_| Row {
                    post: Post::default(),
                    token: AckToken::new(Box::new(Settled), stats.clone()),
                    bytes: 1,
                })
                .collect(),
            _budget: None,
        };
        row_tx.send(chunk(10)).await.unwrap();
        started.notified().await;
        // While the first batch is being written, twelve more batches' worth wait.
        for _ in 0..12 {
            row_tx.send(chunk(10)).await.unwrap();
        }
        release.notify_one();
        drop(row_tx);
        stage.await.unwrap().unwrap().close().await.unwrap();
        let group = crate::batcher::GROUP_COMMIT_ROWS * 10;
        assert_eq!(*sizes.lock().unwrap(), [10, group, 130 - 10 - group]);
        assert_eq!(stats.snapshot().written, 130);
        assert_eq!(stats.snapshot().batches, 3);
    }

    /// Issue 19: the rows waiting for the sink were bounded in count only, so
    /// a chain returning 256 KiB posts could hold thousands of them.
    #[tokio::test]
    async fn rows_waiting_for_the_sink_are_bounded_in_bytes() {
        let budget = RowBudget::new(25);
        let first = budget.reserve(10).await;
        let second = budget.reserve(10).await;
        let wait = Duration::from_millis(50);
        assert!(
            tokio::time::timeout(wait, budget.reserve(10))
                .await
                .is_err(),
            "a third chunk waits for the sink"
        );
        drop(first);
        let third = tokio::time::timeout(Duration::from_secs(5), budget.reserve(10))
            .await
            .expect("a chunk the sink took frees its bytes");
        assert!(
            tokio::time::timeout(wait, budget.reserve(1000))
                .await
                .is_err(),
            "a chunk larger than the budget waits for all of it"
        );
        drop((second, third));
        let whole = tokio::time::timeout(Duration::from_secs(5), budget.reserve(1000))
            .await
            .unwrap();
        assert_eq!(whole.num_permits(), 25);
    }

    #[test]
    fn an_open_batch_is_due_at_max_age_or_soon_after_the_last_row_once_the_input_ended() {
        let now = Instant::now();
        let age = now + Duration::from_secs(1);
        // No open batch: nothing is due, ended or not.
        assert_eq!(next_flush(None, None), (None, FlushCause::Age));
        assert_eq!(next_flush(None, Some(now)), (None, FlushCause::Age));
        // While the sources run, only max_age counts.
        assert_eq!(next_flush(Some(age), None), (Some(age), FlushCause::Age));
        // Once they have ended: shortly after the last row...
        assert_eq!(
            next_flush(Some(age), Some(now)),
            (Some(now + END_QUIET), FlushCause::End)
        );
        // ...unless max_age comes first.
        let soon = now + END_QUIET / 2;
        assert_eq!(
            next_flush(Some(soon), Some(now)),
            (Some(soon), FlushCause::Age)
        );
    }
}
