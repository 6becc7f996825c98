//! The web dashboard: one page of the stream's aggregates behind a login, on its own listener.
//!
//! The aggregates are computed in the process from the rows the sink commits
//! (whatever the sink, BigQuery included) and from the pipeline's counters,
//! sampled every few seconds, in bounded windows (per minute for 24 hours, per
//! hour for 30 days). They are written to a small JSON state file atomically
//! (a temporary file, fsync, rename) every [`SAVE_EVERY`] and at shutdown, and read
//! back at start, so a restart keeps the charts.
//!
//! # Layout
//!
//! - `aggregate` holds the buckets and answers a date range.
//! - `auth` checks the login, keeps the sessions and limits failed attempts.
//! - `server` serves the page, its vendored assets and the JSON endpoints.

pub mod aggregate;
pub mod auth;
pub mod server;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::config::DashboardConfig;
use crate::metrics::top::Samples;
use crate::metrics::{CommitObserver, Metrics};
use crate::post::Post;
use crate::sinks::RejectedRow;
use crate::sinks::row::RecentIds;

pub use aggregate::Aggregates;

/// How often the pipeline's counters are sampled into the current bucket.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(5);
/// How often the state file is written.
pub const SAVE_EVERY: Duration = Duration::from_secs(30);

/// Why the dashboard could not start.
#[derive(Debug, thiserror::Error)]
pub enum DashboardError {
    #[error(transparent)]
    Auth(#[from] auth::AuthError),
    #[error(
        "dashboard: cannot listen on {addr}: {source} (change [dashboard] listen, or set enabled = false)"
    )]
    Bind {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("dashboard: TLS: {0} (check [dashboard] tls_cert and tls_key)")]
    Tls(String),
    #[error(
        "dashboard: cannot read the state file {}: {source} (move it away to start with empty charts, or set [dashboard] state_file)",
        path.display()
    )]
    State {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The current time in Unix seconds.
pub fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs() as i64)
}

/// The shared aggregates, fed by the sink stage and the sampler, read by the server.
#[derive(Debug, Default)]
pub struct Recorder {
    aggregates: Mutex<Aggregates>,
    /// Post ids counted lately: a redelivered post the sink skipped as a
    /// duplicate is not counted twice (within this memory, in this process).
    recent: Mutex<RecentIds>,
}

impl Recorder {
    pub fn new(aggregates: Aggregates) -> Recorder {
        Recorder {
            aggregates: Mutex::new(aggregates),
            recent: Mutex::new(RecentIds::default()),
        }
    }

    /// Runs `f` on the aggregates.
    pub fn with<T>(&self, f: impl FnOnce(&mut Aggregates) -> T) -> T {
        let mut aggregates = self
            .aggregates
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        f(&mut aggregates)
    }

    /// Counts the pipeline's counters and plugin metrics now.
    pub fn sample(&self, metrics: &Metrics) {
        let stats = metrics.stats().snapshot();
        let counts = aggregate::Counts {
            read: stats.read,
            kept: stats.kept,
            dropped: stats.dropped,
            dead_lettered: stats.dead_lettered,
        };
        let plugins = plugin_counts(metrics);
        let now = unix_now();
        self.with(|aggregates| aggregates.sample(now, counts, &plugins));
    }
}

impl CommitObserver for Recorder {
    fn committed(&self, posts: &[Post], rejected: &[RejectedRow]) {
        let mut skipped: Vec<usize> = rejected.iter().map(|row| row.index).collect();
        {
            let mut recent = self
                .recent
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            for (index, post) in posts.iter().enumerate() {
                if !skipped.contains(&index) && !recent.insert(&post.id) {
                    skipped.push(index);
                }
            }
        }
        let rejected = skipped;
        let now = unix_now();
        self.with(|aggregates| aggregates.commit(now, posts, &rejected));
    }
}

/// Each plugin's counters, read from the metrics exposition (the families are
/// `prometheus-client`'s, which can be read back only as text).
fn plugin_counts(metrics: &Metrics) -> BTreeMap<String, aggregate::PluginCounts> {
    let Ok(text) = metrics.encode() else {
        return BTreeMap::new();
    };
    let samples = Samples::parse(&text);
    samples
        .label_values("tweetpipe_plugin_posts_in_total", "plugin")
        .into_iter()
        .map(|plugin| {
            let filter = [("plugin", plugin.as_str())];
            let counts = aggregate::PluginCounts {
                posts: samples.sum("tweetpipe_plugin_posts_in_total", &filter) as u64,
                dropped: samples.sum("tweetpipe_plugin_posts_dropped_total", &filter) as u64,
                failed: samples.sum("tweetpipe_plugin_posts_failed_total", &filter) as u64,
                batches: samples.sum("tweetpipe_plugin_batch_duration_seconds_count", &filter)
                    as u64,
                seconds: samples.sum("tweetpipe_plugin_batch_duration_seconds_sum", &filter),
            };
            (plugin, counts)
        })
        .collect()
}

/// Reads the state file; a missing one is an empty start, an unreadable or
/// corrupt one is logged and set aside (`.corrupt`) so the daemon still starts.
pub fn load_state(path: &Path) -> Result<Aggregates, DashboardError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Aggregates::default());
        }
        Err(source) => {
            return Err(DashboardError::State {
                path: path.to_owned(),
                source,
            });
        }
    };
    match serde_json::from_str::<Aggregates>(&text) {
        Ok(mut aggregates) => {
            // This process's counters start from zero.
            aggregates.restart_counters();
            aggregates.prune(unix_now());
            Ok(aggregates)
        }
        Err(error) => {
            let aside = path.with_extension("json.corrupt");
            log::warn!(
                "dashboard: the state file {} is not valid ({error}); moved to {} and starting with empty charts",
                path.display(),
                aside.display()
            );
            let _ = std::fs::rename(path, &aside);
            Ok(Aggregates::default())
        }
    }
}

/// Writes the state file atomically: a temporary file beside it, fsync, rename.
pub fn save_state(path: &Path, aggregates: &Aggregates) -> std::io::Result<()> {
    let text = serde_json::to_vec(aggregates).map_err(std::io::Error::other)?;
    if let Some(dir) = path.parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir)?;
    }
    let temp = path.with_extension("json.tmp");
    {
        let mut file = std::fs::File::create(&temp)?;
        file.write_all(&text)?;
        file.sync_all()?;
    }
    std::fs::rename(&temp, path)?;
    if let Some(dir) = path.parent()
        && let Ok(dir) = std::fs::File::open(if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        })
    {
        let _ = dir.sync_all();
    }
    Ok(())
}

/// A running dashboard: its listener task and the task that samples and saves.
#[derive(Debug)]
pub struct Dashboard {
    recorder: Arc<Recorder>,
    state_file: PathBuf,
    server: tokio::task::JoinHandle<()>,
    ticker: tokio::task::JoinHandle<()>,
    addr: std::net::SocketAddr,
}

impl Dashboard {
    /// Loads the login and the state file, binds the listener, hooks the
    /// aggregates into `metrics` and starts serving (on the current runtime).
    pub async fn start(
        config: &DashboardConfig,
        metrics: Arc<Metrics>,
    ) -> Result<Dashboard, DashboardError> {
        let credentials = auth::Credentials::load(config)?;
        let state_file = config
            .state_file
            .clone()
            .unwrap_or_else(|| PathBuf::from("dashboard.json"));
        let aggregates = {
            let path = state_file.clone();
            tokio::task::spawn_blocking(move || load_state(&path))
                .await
                .unwrap_or_else(|_| Ok(Aggregates::default()))?
        };
        let recorder = Arc::new(Recorder::new(aggregates));
        metrics.observe_commits(recorder.clone());
        let tls = match (&config.tls_cert, &config.tls_key) {
            (Some(cert), Some(key)) => Some(server::tls_acceptor(cert, key)?),
            _ => None,
        };
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|source| DashboardError::Bind {
                addr: config.listen,
                source,
            })?;
        let addr = listener.local_addr().unwrap_or(config.listen);
        let scheme = if tls.is_some() { "https" } else { "http" };
        log::info!(
            "dashboard: serving {scheme}://{addr}/ (login as {})",
            config.user
        );
        let state = Arc::new(server::State {
            credentials,
            sessions: auth::Sessions::new(Duration::from_secs(config.session_hours * 3600)),
            limiter: auth::LoginLimiter::new(config.login_attempts_per_minute),
            secure_cookie: config.secure_cookie || tls.is_some(),
            recorder: recorder.clone(),
            metrics: metrics.clone(),
        });
        let server = tokio::spawn(server::serve(listener, tls, state));
        let ticker = tokio::spawn(tick(recorder.clone(), metrics, state_file.clone()));
        Ok(Dashboard {
            recorder,
            state_file,
            server,
            ticker,
            addr,
        })
    }

    /// The bound address (port 0 in the config picks one).
    pub fn addr(&self) -> std::net::SocketAddr {
        self.addr
    }

    /// Stops serving, takes a last sample of `metrics` and writes the state file.
    pub async fn stop(self, metrics: &Metrics) {
        self.server.abort();
        self.ticker.abort();
        self.recorder.sample(metrics);
        let aggregates = self.recorder.with(|aggregates| aggregates.clone());
        let path = self.state_file.clone();
        let saved = tokio::task::spawn_blocking(move || save_state(&path, &aggregates)).await;
        match saved {
            Ok(Ok(())) => {}
            Ok(Err(error)) => log::warn!(
                "dashboard: cannot write the state file {}: {error}",
                self.state_file.display()
            ),
            Err(error) => log::warn!("dashboard: saving the state failed: {error}"),
        }
    }
}

/// Samples every [`SAMPLE_EVERY`] and saves every [`SAVE_EVERY`].
async fn tick(recorder: Arc<Recorder>, metrics: Arc<Metrics>, state_file: PathBuf) {
    let mut timer = tokio::time::interval(SAMPLE_EVERY);
    timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_save = tokio::time::Instant::now();
    let mut warned = false;
    loop {
        timer.tick().await;
        recorder.sample(&metrics);
        if last_save.elapsed() < SAVE_EVERY {
            continue;
        }
        last_save = tokio::time::Instant::now();
        let aggregates = recorder.with(|aggregates| aggregates.clone());
        let path = state_file.clone();
        match tokio::task::spawn_blocking(move || save_state(&path, &aggregates)).await {
            Ok(Ok(())) => warned = false,
            Ok(Err(error)) if !warned => {
                warned = true;
                log::warn!(
                    "dashboard: cannot write the state file {}: {error} (check [dashboard] state_file and its directory's permissions)",
                    state_file.display()
                );
            }
            _ => {}
        }
    }
}
