//! The Pub/Sub broker against the real emulator: replay → topic → subscription → SQLite.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use tweetpipe::broker::PubsubPublisher;
use tweetpipe::config::{BrokerKind, Config};
use tweetpipe::metrics::Metrics;
use tweetpipe::pipeline::{NoObserver, RunOutcome, run_with_metrics};
use tweetpipe::plugins::LoadedChain;
use tweetpipe::sample::{SampleOptions, write_sample};
use tweetpipe::stats::Stats;

mod support;

use support::pubsub_emulator::PubsubEmulator;
use support::relay::Relay;

/// Writes `count` distinct well-formed posts and returns their ids.
fn write_posts(dir: &Path, count: usize, seed: u64) -> BTreeSet<String> {
    let mut file = std::fs::File::create(dir.join("posts.jsonl")).unwrap();
    write_sample(
        &SampleOptions {
            count,
            seed,
            malformed_every: 0,
            duplicate_every: 0,
            blank_every: 0,
            ..SampleOptions::default()
        },
        &mut file,
    )
    .unwrap();
    let text = std::fs::read_to_string(dir.join("posts.jsonl")).unwrap();
    text.lines()
        .map(|line| tweetpipe::post::decode(line).unwrap().id)
        .collect()
}

/// A config for `roles`, with a replay source, a SQLite sink at `db` and the emulator.
fn config(
    dir: &Path,
    emulator: &PubsubEmulator,
    names: &str,
    roles: &str,
    db: &str,
    extra_broker: &str,
) -> Config {
    let path = write_config(dir, emulator, names, roles, db, extra_broker, "");
    Config::load(&path).unwrap()
}

/// Writes the config [`config`] loads, with `extra` tables appended, and returns its path.
/// The dead letters go to `{db}.dead.jsonl` unless `extra` has a `[dead_letter]` table.
fn write_config(
    dir: &Path,
    emulator: &PubsubEmulator,
    names: &str,
    roles: &str,
    db: &str,
    extra_broker: &str,
    extra: &str,
) -> PathBuf {
    let text = format!(
        r#"
[source.replay]
path = "posts.jsonl"

[broker]
kind = "pubsub"
roles = {roles}
max_deliveries = 1000

[broker.pubsub]
project = "tweetpipe-test"
topic = "{names}-topic"
subscription = "{names}-sub"
create_if_missing = true
endpoint = "{endpoint}"
{extra_broker}

[batch]
max_rows = 100
max_age_ms = 100

[sink.sqlite]
path = "{db}"

[logging]
level = "warn"
{extra}
"#,
        endpoint = emulator.endpoint()
    );
    let text = if extra.contains("[dead_letter]") {
        text
    } else {
        format!("{text}\n[dead_letter]\npath = \"{db}.dead.jsonl\"\n")
    };
    let path = dir.join(format!("{db}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

/// A pipeline running in the background until [`Running::stop`].
struct Running {
    stop: CancellationToken,
    stats: Arc<Stats>,
    handle: tokio::task::JoinHandle<RunOutcome>,
}

impl Running {
    fn start(config: Config) -> Running {
        let metrics = Arc::new(Metrics::new());
        let stats = metrics.stats();
        let stop = CancellationToken::new();
        let shutdown = stop.clone();
        let handle = tokio::spawn(async move {
            let chain = LoadedChain::load(&config.plugins).unwrap();
            run_with_metrics(
                &config,
                chain,
                async move { shutdown.cancelled().await },
                Arc::new(NoObserver),
                metrics,
            )
            .await
            .unwrap()
        });
        Running {
            stop,
            stats,
            handle,
        }
    }

    async fn stop(self) -> RunOutcome {
        self.stop.cancel();
        self.handle.await.unwrap()
    }
}

/// Rows per id in a SQLite sink (empty when the table does not exist yet).
fn rows(db: &Path) -> BTreeMap<String, i64> {
    let Ok(db) = rusqlite::Connection::open(db) else {
        return BTreeMap::new();
    };
    let Ok(mut statement) = db.prepare("SELECT id, count(*) FROM posts GROUP BY id") else {
        return BTreeMap::new();
    };
    statement
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// Polls `done` until it holds, failing the test after `limit`.
async fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until the SQLite sink has created its `posts` table in `db`.
async fn wait_for_posts_table(db: &Path) {
    wait_for("the posts table", Duration::from_secs(60), || {
        rusqlite::Connection::open(db)
            .and_then(|db| {
                db.query_row(
                    "SELECT count(*) FROM sqlite_master WHERE name = 'posts'",
                    [],
                    |row| row.get::<_, i64>(0),
                )
            })
            .is_ok_and(|count| count == 1)
    })
    .await;
}

fn db_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_replayed_post_lands_once_through_the_emulator() {
    let emulator = PubsubEmulator::start();
    let dir = tempfile::tempdir().unwrap();
    let ids = write_posts(dir.path(), 20_000, 7);
    // The emulator paces each streaming pull at about 2k messages/s: use four.
    let config = config(
        dir.path(),
        &emulator,
        "once",
        r#"["ingest", "process"]"#,
        "posts.db",
        "streams = 4",
    );
    let db = db_path(dir.path(), "posts.db");
    let running = Running::start(config);
    wait_for("every post in SQLite", Duration::from_secs(240), || {
        rows(&db).len() == ids.len()
    })
    .await;
    let outcome = running.stop().await;
    let rows = rows(&db);
    assert_eq!(rows.keys().cloned().collect::<BTreeSet<_>>(), ids);
    assert!(rows.values().all(|count| *count == 1));
    assert_eq!(outcome.stats.published, 20_000);
    assert!(outcome.stats.acked >= 20_000, "{:?}", outcome.stats);
    assert_eq!(outcome.stats.dead_lettered, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_sink_nacks_and_the_messages_come_back() {
    let emulator = PubsubEmulator::start();
    let dir = tempfile::tempdir().unwrap();
    let ids = write_posts(dir.path(), 600, 11);
    let mut config = config(
        dir.path(),
        &emulator,
        "failing",
        r#"["ingest", "process"]"#,
        "posts.db",
        "",
    );
    // A slow source: most posts arrive while the sink fails.
    config.source.replay.as_mut().unwrap().rate = Some(100.0);
    let db = db_path(dir.path(), "posts.db");
    let running = Running::start(config);
    wait_for_posts_table(&db).await;
    // Every insert now fails the whole batch (an integer overflow is no row-level error).
    let blocker = rusqlite::Connection::open(&db).unwrap();
    blocker.busy_timeout(Duration::from_secs(10)).unwrap();
    blocker
        .execute_batch(
            "CREATE TRIGGER fail_inserts BEFORE INSERT ON posts \
             BEGIN SELECT abs(-9223372036854775808); END;",
        )
        .unwrap();
    let stats = running.stats.clone();
    let before = rows(&db).len();
    wait_for("a nack", Duration::from_secs(60), || {
        stats.snapshot().nacked > 0
    })
    .await;
    blocker.execute_batch("DROP TRIGGER fail_inserts;").unwrap();
    wait_for("every post in SQLite", Duration::from_secs(120), || {
        rows(&db).len() == ids.len()
    })
    .await;
    let outcome = running.stop().await;
    let rows = rows(&db);
    assert!(
        before < ids.len(),
        "the sink failed before all rows were in"
    );
    assert_eq!(rows.keys().cloned().collect::<BTreeSet<_>>(), ids);
    assert!(outcome.stats.nacked > 0);
    assert_eq!(outcome.stats.dead_lettered, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_process_daemons_share_one_subscription_and_lose_nothing() {
    let emulator = PubsubEmulator::start();
    let dir = tempfile::tempdir().unwrap();
    let ids = write_posts(dir.path(), 2_000, 13);
    let flow = "max_outstanding_messages = 50";
    let first_db = db_path(dir.path(), "first.db");
    let second_db = db_path(dir.path(), "second.db");
    let first = Running::start(config(
        dir.path(),
        &emulator,
        "shared",
        r#"["process"]"#,
        "first.db",
        flow,
    ));
    // The second one creates nothing: the first made the topic and subscription.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let second = Running::start(config(
        dir.path(),
        &emulator,
        "shared",
        r#"["process"]"#,
        "second.db",
        flow,
    ));
    tokio::time::sleep(Duration::from_secs(2)).await;
    // An ingest-only daemon ends by itself once every post is published.
    let ingest = Running::start(config(
        dir.path(),
        &emulator,
        "shared",
        r#"["ingest"]"#,
        "ingest.db",
        "",
    ));
    let ingested = tokio::time::timeout(Duration::from_secs(120), ingest.handle)
        .await
        .expect("the ingest-only pipeline ends when its source does")
        .unwrap();
    assert_eq!(ingested.stats.published, 2_000);
    assert_eq!(
        ingested.stats.written, 0,
        "an ingest-only daemon writes no rows"
    );
    wait_for(
        "every post in one of the sinks",
        Duration::from_secs(120),
        || {
            let mut seen: BTreeSet<String> = rows(&first_db).into_keys().collect();
            seen.extend(rows(&second_db).into_keys());
            seen.len() == ids.len()
        },
    )
    .await;
    let first_outcome = first.stop().await;
    let second_outcome = second.stop().await;
    let first_rows = rows(&first_db);
    let second_rows = rows(&second_db);
    assert!(
        !first_rows.is_empty() && !second_rows.is_empty(),
        "both shared the work"
    );
    let mut seen: BTreeSet<String> = first_rows.keys().cloned().collect();
    seen.extend(second_rows.keys().cloned());
    assert_eq!(seen, ids);
    assert_eq!(
        first_rows.len() + second_rows.len(),
        ids.len(),
        "no post doubled"
    );
    assert_eq!(
        first_outcome.stats.published + second_outcome.stats.published,
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_flight_publishes_never_exceed_the_bound_and_carry_attributes() {
    let emulator = PubsubEmulator::start();
    let dir = tempfile::tempdir().unwrap();
    write_posts(dir.path(), 1, 1);
    let config = config(
        dir.path(),
        &emulator,
        "bound",
        r#"["ingest"]"#,
        "bound.db",
        "max_in_flight = 4\nbatch_delay_ms = 20",
    );
    let pubsub = config.broker.pubsub.clone().unwrap();
    tweetpipe::broker::pubsub::ensure_resources(&pubsub)
        .await
        .unwrap();
    let stats = Arc::new(Stats::default());
    let publisher = PubsubPublisher::connect(&pubsub, stats.clone(), CancellationToken::new())
        .await
        .unwrap()
        .with_source("replay");
    let mut tasks = Vec::new();
    for index in 0..200 {
        let publisher = publisher.clone();
        tasks.push(tokio::spawn(async move {
            let payload = format!(r#"{{"data":{{"id":"{index}","text":"post {index}"}}}}"#);
            publisher.publish(payload.into()).await.unwrap();
            assert!(publisher.in_flight() <= 4);
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    publisher.flush().await;
    assert_eq!(stats.snapshot().published, 200);
    assert_eq!(publisher.in_flight(), 0);
    assert_eq!(
        publisher.in_flight_peak(),
        4,
        "the bound is reached, never passed"
    );

    // The post id and the source travel as message attributes.
    let subscriber = google_cloud_pubsub::client::Subscriber::builder()
        .with_endpoint(emulator.endpoint())
        .with_credentials(google_cloud_auth::credentials::anonymous::Builder::new().build())
        .build()
        .await
        .unwrap();
    let mut stream = subscriber
        .subscribe(tweetpipe::broker::pubsub::subscription_name(&pubsub))
        .build();
    let (message, handler) = tokio::time::timeout(Duration::from_secs(30), stream.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    handler.ack();
    let payload: serde_json::Value = serde_json::from_slice(&message.data).unwrap();
    assert_eq!(
        message.attributes.get("post_id").map(String::as_str),
        payload["data"]["id"].as_str()
    );
    assert_eq!(
        message.attributes.get("source").map(String::as_str),
        Some("replay")
    );
}

/// The two-VM layout in `config/examples/` is a valid pair of configs.
#[test]
fn the_two_vm_example_configs_load() {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/examples");
    let ingest = Config::load(&examples.join("ingest.toml")).unwrap();
    assert_eq!(ingest.broker.kind, BrokerKind::Pubsub);
    assert!(ingest.broker.ingest() && !ingest.broker.process());
    assert!(
        ingest.source.x.is_some(),
        "the ingest VM holds the X stream"
    );
    assert!(ingest.plugins.is_empty());

    let process = Config::load(&examples.join("process.toml")).unwrap();
    assert_eq!(process.broker.kind, BrokerKind::Pubsub);
    assert!(process.broker.process() && !process.broker.ingest());
    assert!(process.source.x.is_none() && process.source.replay.is_none());
    assert!(process.sink.bigquery.is_some());
    assert_eq!(process.plugins.len(), 3);

    // Both ends name the same topic and subscription.
    let (a, b) = (
        ingest.broker.pubsub.unwrap(),
        process.broker.pubsub.unwrap(),
    );
    assert_eq!(
        (a.project, a.topic, a.subscription),
        (b.project, b.topic, b.subscription)
    );
}

/// The `tweetpipe` binary as a child process; dropping it SIGKILLs it.
struct Daemon {
    child: Child,
}

impl Daemon {
    fn start(config: &Path, stderr: &Path) -> Daemon {
        let child = Command::new(env!("CARGO_BIN_EXE_tweetpipe"))
            .args(["run", "--quiet", "--config"])
            .arg(config)
            .env_remove("RUST_LOG")
            .env_remove("PUBSUB_EMULATOR_HOST")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(stderr).unwrap())
            .spawn()
            .unwrap();
        Daemon { child }
    }

    /// Waits for the daemon to end by itself.
    fn wait(mut self, limit: Duration) -> ExitStatus {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "the daemon did not end");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// SIGKILL: no drain, no acks for what is in flight.
    fn sigkill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM, then waits for the drain.
    fn terminate(self) -> ExitStatus {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        self.wait(Duration::from_secs(60))
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // Kills only a child not yet reaped; a no-op after `wait`.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `done` until it holds, failing the test after `limit` (blocking).
fn wait_until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Regression test for leases outliving a killed daemon: the streaming pull kept
/// the client library's 60 s lease whatever `ack_deadline_seconds` said.
#[test]
fn a_process_daemon_killed_mid_run_loses_nothing_after_a_restart() {
    const POSTS: usize = 8_000;
    let emulator = PubsubEmulator::start();
    let dir = tempfile::tempdir().unwrap();
    let ids = write_posts(dir.path(), POSTS, 17);
    // The shortest ack deadline Pub/Sub allows: what the killed daemon leased
    // comes back 10 s after its last lease renewal. One stream keeps the run
    // long enough to kill it mid-way.
    let broker = "ack_deadline_seconds = 10\nstreams = 1\nmax_outstanding_messages = 200";
    let no_metrics = "[metrics]\nenabled = false";
    let ingest = write_config(
        dir.path(),
        &emulator,
        "killed",
        r#"["ingest"]"#,
        "ingest.db",
        broker,
        no_metrics,
    );
    let process = write_config(
        dir.path(),
        &emulator,
        "killed",
        r#"["process"]"#,
        "posts.db",
        broker,
        no_metrics,
    );
    // The emulator never notices that a streaming pull's client was killed: it
    // keeps leasing messages to the dead stream, about as many as to each live
    // one, and each comes back only when its lease expires (Google Cloud
    // Pub/Sub closes such a stream). The restarted daemon opens eight streams,
    // so each round of expired leases mostly reaches it.
    let restarted = write_config(
        dir.path(),
        &emulator,
        "killed",
        r#"["process"]"#,
        "posts.db",
        "ack_deadline_seconds = 10\nstreams = 8\nmax_outstanding_messages = 200",
        no_metrics,
    );
    let db = db_path(dir.path(), "posts.db");

    // The ingest-only binary publishes everything (creating the topic and the
    // subscription first) and ends by itself.
    let status =
        Daemon::start(&ingest, &dir.path().join("ingest.log")).wait(Duration::from_secs(120));
    assert!(status.success(), "ingest: {status}");

    let first = Daemon::start(&process, &dir.path().join("first.log"));
    wait_until("the first rows", Duration::from_secs(60), || {
        rows(&db).len() >= POSTS / 8
    });
    first.sigkill();
    let at_kill = rows(&db).len();
    assert!(
        at_kill < POSTS,
        "the daemon was killed before it had written everything ({at_kill})"
    );

    let second = Daemon::start(&restarted, &dir.path().join("second.log"));
    let started = Instant::now();
    while rows(&db).len() < ids.len() {
        assert!(
            started.elapsed() < Duration::from_secs(100),
            "timed out waiting for every post in SQLite: {} of {} ({at_kill} at the kill); \
             the restarted daemon's log:\n{}",
            rows(&db).len(),
            ids.len(),
            std::fs::read_to_string(dir.path().join("second.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!(
        "{at_kill} rows at the kill; all {} after {:?} more",
        ids.len(),
        started.elapsed()
    );
    let status = second.terminate();
    assert!(status.success(), "process after restart: {status}");

    let rows = rows(&db);
    assert_eq!(rows.keys().cloned().collect::<BTreeSet<_>>(), ids);
    assert!(
        rows.values().all(|count| *count == 1),
        "redeliveries collapse by id"
    );
    let dead = std::fs::read_to_string(dir.path().join("posts.db.dead.jsonl")).unwrap_or_default();
    assert!(dead.is_empty(), "nothing dead-lettered: {dead}");
}

/// What the pipelines in this test binary log, kept for tests that check it.
static LOGGED: std::sync::Mutex<Vec<(log::Level, String)>> = std::sync::Mutex::new(Vec::new());

struct CaptureLog;

impl log::Log for CaptureLog {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.target().starts_with("tweetpipe")
    }

    fn log(&self, record: &log::Record<'_>) {
        if self.enabled(record.metadata()) {
            LOGGED
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
                .push((record.level(), record.args().to_string()));
        }
    }

    fn flush(&self) {}
}

/// Starts keeping the daemon's log lines (info and above) in [`LOGGED`].
fn capture_log() {
    static INSTALL: std::sync::Once = std::sync::Once::new();
    INSTALL.call_once(|| {
        log::set_logger(&CaptureLog).expect("no other logger in this test binary");
        log::set_max_level(log::LevelFilter::Info);
    });
}

/// The captured log lines at `level` that contain `text`.
fn logged(level: log::Level, text: &str) -> Vec<String> {
    LOGGED
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .iter()
        .filter(|(at, line)| *at == level && line.contains(text))
        .map(|(_, line)| line.clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishing_resumes_after_the_emulator_restarts() {
    capture_log();
    // The emulator keeps no state across a restart: what it had accepted before
    // is gone, and the topic and subscription must be made again. What can be
    // checked faithfully is the publisher's side: it retries through the outage,
    // confirms every post in the end, and everything not confirmed before the
    // new subscription existed reaches it.
    const POSTS: usize = 3_000;
    let mut emulator = PubsubEmulator::start();
    let dir = tempfile::tempdir().unwrap();
    let ids = write_posts(dir.path(), POSTS, 19);
    let mut config = config(
        dir.path(),
        &emulator,
        "restart",
        r#"["ingest"]"#,
        "ingest.db",
        "max_in_flight = 100",
    );
    config.source.replay.as_mut().unwrap().rate = Some(300.0);
    let pubsub = config.broker.pubsub.clone().unwrap();
    let ingest = Running::start(config);
    let stats = ingest.stats.clone();
    wait_for("the first publishes", Duration::from_secs(60), || {
        stats.snapshot().published >= 300
    })
    .await;

    tokio::task::block_in_place(|| emulator.restart());
    tweetpipe::broker::pubsub::ensure_resources(&pubsub)
        .await
        .unwrap();
    let confirmed_before = stats.snapshot().published;
    assert!(
        (confirmed_before as usize) < POSTS,
        "the outage came mid-run"
    );

    let ingested = tokio::time::timeout(Duration::from_secs(180), ingest.handle)
        .await
        .expect("the ingest-only pipeline ends when its source does")
        .unwrap();
    assert_eq!(
        ingested.stats.published, POSTS as u64,
        "every post confirmed, none given up"
    );

    let subscriber = google_cloud_pubsub::client::Subscriber::builder()
        .with_endpoint(emulator.endpoint())
        .with_credentials(google_cloud_auth::credentials::anonymous::Builder::new().build())
        .build()
        .await
        .unwrap();
    let mut stream = subscriber
        .subscribe(tweetpipe::broker::pubsub::subscription_name(&pubsub))
        .build();
    let mut received = BTreeSet::new();
    while let Ok(Some(next)) = tokio::time::timeout(Duration::from_secs(5), stream.next()).await {
        let (message, handler) = next.unwrap();
        handler.ack();
        received.insert(message.attributes["post_id"].clone());
    }
    assert!(received.is_subset(&ids));
    assert!(
        received.len() >= POSTS - confirmed_before as usize,
        "{} received, {} published after the restart at least",
        received.len(),
        POSTS - confirmed_before as usize
    );

    // Hundreds of publishes failed, many of them several times, during the
    // outage: the log says so once when it starts and once when it ends.
    assert!(
        ingested.stats.published > confirmed_before,
        "publishes failed and were retried"
    );
    let topic = tweetpipe::broker::pubsub::topic_name(&pubsub);
    let failed = logged(
        log::Level::Warn,
        &format!("publishing to {topic} failed, retrying until it works"),
    );
    let recovered = logged(
        log::Level::Info,
        &format!("publishing to {topic} works again"),
    );
    assert_eq!(
        failed.len(),
        1,
        "one line when the outage starts: {failed:#?}"
    );
    assert_eq!(recovered.len(), 1, "one line when it ends: {recovered:#?}");
    let given_up = logged(log::Level::Error, "not confirmed");
    assert!(given_up.is_empty(), "{given_up:#?}");
}

/// `count` posts, every `malformed_every`-th line of them malformed; returns the
/// ids of the posts and the malformed lines (the same text may occur twice).
fn write_posts_with_malformed(
    dir: &Path,
    count: usize,
    malformed_every: u32,
) -> (BTreeSet<String>, Vec<String>) {
    let mut file = std::fs::File::create(dir.join("posts.jsonl")).unwrap();
    write_sample(
        &SampleOptions {
            count,
            seed: 23,
            malformed_every,
            duplicate_every: 0,
            blank_every: 0,
            ..SampleOptions::default()
        },
        &mut file,
    )
    .unwrap();
    let text = std::fs::read_to_string(dir.join("posts.jsonl")).unwrap();
    let mut ids = BTreeSet::new();
    let mut malformed = Vec::new();
    for line in text.lines() {
        match tweetpipe::post::decode(line) {
            Ok(post) => {
                ids.insert(post.id);
            }
            Err(_) => {
                malformed.push(line.to_owned());
            }
        }
    }
    assert!(!malformed.is_empty() && !ids.is_empty());
    (ids, malformed)
}

/// A `[dead_letter]` table sending dead letters to the topic `topic`.
fn dead_letter_topic(topic: &str, create_if_missing: bool) -> String {
    format!(
        "[dead_letter]\nkind = \"pubsub\"\n\n[dead_letter.pubsub]\ntopic = \"{topic}\"\ncreate_if_missing = {create_if_missing}\n"
    )
}

/// A subscriber client of the emulator, outside the daemon.
async fn test_subscriber(emulator: &PubsubEmulator) -> google_cloud_pubsub::client::Subscriber {
    google_cloud_pubsub::client::Subscriber::builder()
        .with_endpoint(emulator.endpoint())
        .with_credentials(google_cloud_auth::credentials::anonymous::Builder::new().build())
        .build()
        .await
        .unwrap()
}

/// Creates `subscription` on `topic` (full names) from outside the daemon,
/// waiting up to 60 s for the topic to exist.
async fn create_subscription(emulator: &PubsubEmulator, topic: &str, subscription: &str) {
    let admin = google_cloud_pubsub::client::SubscriptionAdmin::builder()
        .with_endpoint(emulator.endpoint())
        .with_credentials(google_cloud_auth::credentials::anonymous::Builder::new().build())
        .build()
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let created = admin
            .create_subscription()
            .set_name(subscription)
            .set_topic(topic)
            .send()
            .await;
        match created {
            Ok(_) => return,
            Err(error) if Instant::now() < deadline => {
                eprintln!("creating {subscription} on {topic}: {error}; trying again");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(error) => panic!("creating {subscription} on {topic}: {error}"),
        }
    }
}

/// Receives (and acks) messages from `subscription` until `count` arrived.
async fn receive(
    emulator: &PubsubEmulator,
    subscription: &str,
    count: usize,
) -> Vec<google_cloud_pubsub::model::Message> {
    let subscriber = test_subscriber(emulator).await;
    let mut stream = subscriber.subscribe(subscription).build();
    let mut received = Vec::new();
    while received.len() < count {
        let next = tokio::time::timeout(Duration::from_secs(30), stream.next())
            .await
            .unwrap_or_else(|_| panic!("{} of {count} messages on {subscription}", received.len()));
        let (message, handler) = next.unwrap().unwrap();
        handler.ack();
        received.push(message);
    }
    received
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_are_published_to_a_topic_with_the_reason_as_attributes() {
    let emulator = PubsubEmulator::start();
    let dir = tempfile::tempdir().unwrap();
    let (ids, malformed) = write_posts_with_malformed(dir.path(), 400, 40);
    // Two posts the sink refuses (a row-level constraint), so their dead letters
    // carry a post id.
    let refused: Vec<String> = ids.iter().rev().take(2).cloned().collect();
    let dead_letters = dead_letter_topic("letters", true);
    let process = Config::load(&write_config(
        dir.path(),
        &emulator,
        "lettered",
        r#"["process"]"#,
        "posts.db",
        "",
        &dead_letters,
    ))
    .unwrap();
    let topic = match process.dead_letter_destination().unwrap() {
        tweetpipe::config::DeadLetterDestination::Pubsub(topic) => topic,
        other => panic!("expected a topic, got {other:?}"),
    };
    assert_eq!(topic.topic_name(), "projects/tweetpipe-test/topics/letters");
    assert!(process.dead_letter.path.is_none());

    // `create_if_missing` makes the topic: a subscription can then be made on it.
    let db = db_path(dir.path(), "posts.db");
    let running = Running::start(process);
    wait_for_posts_table(&db).await;
    create_subscription(
        &emulator,
        &topic.topic_name(),
        "projects/tweetpipe-test/subscriptions/letters-sub",
    )
    .await;
    let blocker = rusqlite::Connection::open(&db).unwrap();
    blocker.busy_timeout(Duration::from_secs(10)).unwrap();
    blocker
        .execute_batch(&format!(
            "CREATE TRIGGER refuse_two BEFORE INSERT ON posts \
             WHEN NEW.id IN ('{}', '{}') BEGIN SELECT RAISE(ABORT, 'refused by the test'); END;",
            refused[0], refused[1]
        ))
        .unwrap();

    let ingest = Running::start(config(
        dir.path(),
        &emulator,
        "lettered",
        r#"["ingest"]"#,
        "ingest.db",
        "",
    ));
    let ingested = tokio::time::timeout(Duration::from_secs(120), ingest.handle)
        .await
        .expect("the ingest-only pipeline ends when its source does")
        .unwrap();
    // Junk never crosses the topic: ingest dead-letters what does not decode
    // (to its own file here) and publishes only posts, and its summary adds up.
    let ingest_stats = &ingested.stats;
    assert_eq!(
        ingest_stats.malformed as usize,
        malformed.len(),
        "{ingest_stats:?}"
    );
    assert_eq!(
        ingest_stats.published as usize,
        ids.len(),
        "{ingest_stats:?}"
    );
    assert_eq!(
        ingest_stats.read,
        ingest_stats.published + ingest_stats.malformed,
        "{ingest_stats:?}"
    );
    let summary = tweetpipe::summary::render(&ingested);
    let published_row = summary
        .lines()
        .find_map(|line| line.trim().strip_prefix("published to Pub/Sub"))
        .unwrap_or_else(|| panic!("no published row in {summary}"));
    assert_eq!(published_row.trim(), ids.len().to_string(), "{summary}");
    let ingest_letters =
        tweetpipe::dead_letter::read_dead_letters(&dir.path().join("ingest.db.dead.jsonl"))
            .unwrap();
    // A letter holds its message as JSON when the line is JSON, else as text.
    let lettered_at_ingest: BTreeSet<String> = ingest_letters
        .iter()
        .map(|letter| {
            assert_eq!(letter["stage"], "decode", "{letter}");
            letter["message"].to_string()
        })
        .collect();
    let expected: BTreeSet<String> = malformed
        .iter()
        .map(|line| {
            serde_json::from_str::<serde_json::Value>(line)
                .unwrap_or_else(|_| serde_json::Value::String(line.clone()))
                .to_string()
        })
        .collect();
    assert_eq!(ingest_letters.len(), malformed.len());
    assert_eq!(
        lettered_at_ingest, expected,
        "each malformed line, as it was"
    );
    let expected_letters = refused.len();
    let stats = running.stats.clone();
    wait_for("every dead letter", Duration::from_secs(120), || {
        stats.snapshot().dead_lettered as usize >= expected_letters
            && rows(&db).len() == ids.len() - refused.len()
    })
    .await;
    let outcome = running.stop().await;
    let published = outcome.stats.dead_lettered as usize;
    assert!(published >= expected_letters, "{:?}", outcome.stats);
    assert!(!dir.path().join("posts.db.dead.jsonl").exists());

    let letters = receive(
        &emulator,
        "projects/tweetpipe-test/subscriptions/letters-sub",
        published,
    )
    .await;
    let mut sink_refusals = BTreeSet::new();
    for letter in &letters {
        let data = std::str::from_utf8(&letter.data).unwrap().to_owned();
        let attributes = &letter.attributes;
        assert!(!attributes["error"].is_empty(), "{attributes:?}");
        assert!(attributes.contains_key("time"), "{attributes:?}");
        match attributes["stage"].as_str() {
            "sink" => {
                assert!(
                    attributes["error"].contains("refused by the test"),
                    "{attributes:?}"
                );
                let post = tweetpipe::post::decode(&data).expect("the original message");
                assert_eq!(attributes["post_id"], post.id);
                sink_refusals.insert(post.id);
            }
            other => panic!("unexpected stage {other}: {attributes:?}"),
        }
    }
    assert_eq!(sink_refusals, refused.into_iter().collect());
    assert_eq!(outcome.stats.malformed, 0, "{:?}", outcome.stats);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_is_not_acked_until_its_dead_letter_is_published() {
    let emulator = PubsubEmulator::start();
    let dir = tempfile::tempdir().unwrap();
    let (ids, malformed) = write_posts_with_malformed(dir.path(), 200, 20);
    // The topic does not exist and is not created: every dead letter fails.
    let config = config_with(
        dir.path(),
        &emulator,
        "unlettered",
        &dead_letter_topic("missing-letters", false),
    );
    let topic = "projects/tweetpipe-test/topics/missing-letters";
    let db = db_path(dir.path(), "posts.db");
    let running = Running::start(config);
    let stats = running.stats.clone();
    wait_for("the rows and some nacks", Duration::from_secs(120), || {
        rows(&db).len() == ids.len() && stats.snapshot().nacked > malformed.len() as u64
    })
    .await;
    assert_eq!(
        stats.snapshot().dead_lettered,
        0,
        "nothing acked as dead-lettered while the topic is missing"
    );

    // Once the topic exists, the redelivered messages' dead letters go through
    // and only then are the messages acked.
    let letters = tweetpipe::dead_letter::DeadLetterSink::open(
        &tweetpipe::config::DeadLetterDestination::Pubsub(tweetpipe::config::DeadLetterTopic {
            project: "tweetpipe-test".to_owned(),
            topic: topic.to_owned(),
            create_if_missing: true,
            credentials_file: None,
            endpoint: Some(emulator.endpoint()),
        }),
    )
    .await
    .unwrap();
    drop(letters);
    let deadline = Instant::now() + Duration::from_secs(120);
    // Dead letters are at least once: a message whose letter was published may
    // still be delivered again and make a second one.
    while (stats.snapshot().dead_lettered as usize) < malformed.len() {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {} dead letters: {:?}",
            malformed.len(),
            stats.snapshot()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let outcome = running.stop().await;
    assert!(outcome.stats.dead_lettered as usize >= malformed.len());
    assert_eq!(rows(&db).len(), ids.len());
}

/// A config with both roles and the extra tables `extra`.
fn config_with(dir: &Path, emulator: &PubsubEmulator, names: &str, extra: &str) -> Config {
    let path = write_config(
        dir,
        emulator,
        names,
        r#"["ingest", "process"]"#,
        "posts.db",
        "",
        extra,
    );
    Config::load(&path).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_letter_write_fails_while_the_topic_is_missing() {
    let emulator = PubsubEmulator::start();
    let destination =
        tweetpipe::config::DeadLetterDestination::Pubsub(tweetpipe::config::DeadLetterTopic {
            project: "tweetpipe-test".to_owned(),
            topic: "absent".to_owned(),
            create_if_missing: false,
            credentials_file: None,
            endpoint: Some(emulator.endpoint()),
        });
    let mut sink = tweetpipe::dead_letter::DeadLetterSink::open(&destination)
        .await
        .unwrap();
    let letter = tweetpipe::dead_letter::DeadLetter::new(
        tweetpipe::dead_letter::Stage::Decode,
        "not JSON",
        Arc::from("{"),
    );
    let error = sink.write(&[&letter]).await.unwrap_err();
    assert!(
        error
            .to_string()
            .contains("projects/tweetpipe-test/topics/absent"),
        "{error}"
    );

    // Once the topic exists, the same destination writes again.
    let mut created = destination.clone();
    if let tweetpipe::config::DeadLetterDestination::Pubsub(topic) = &mut created {
        topic.create_if_missing = true;
    }
    drop(
        tweetpipe::dead_letter::DeadLetterSink::open(&created)
            .await
            .unwrap(),
    );
    sink.write(&[&letter]).await.unwrap();
}

/// `[dead_letter]`: the file form as before, the topic form, and what a mistake says.
#[test]
fn dead_letter_configs_keep_the_file_form_and_explain_mistakes() {
    use tweetpipe::config::{DeadLetterDestination, DeadLetterTopic};

    let parse = |broker: &str, dead_letter: &str| {
        let text = format!(
            "[source.replay]\npath = \"posts.jsonl\"\n\n{broker}\n[sink.stdout]\n\n{dead_letter}"
        );
        Config::parse(&text, Path::new("tweetpipe.toml"))
    };
    let error =
        |broker: &str, dead_letter: &str| parse(broker, dead_letter).unwrap_err().to_string();
    let pubsub_broker = "[broker]\nkind = \"pubsub\"\n\n[broker.pubsub]\nproject = \"p1\"\ntopic = \"posts\"\nsubscription = \"posts-sub\"\nendpoint = \"http://127.0.0.1:8085\"\n";

    let file = parse("", "[dead_letter]\npath = \"dead.jsonl\"\n").unwrap();
    assert_eq!(
        file.dead_letter_destination().unwrap(),
        DeadLetterDestination::File("dead.jsonl".into())
    );

    // Project and endpoint come from [broker.pubsub] unless given.
    let topic = parse(
        pubsub_broker,
        "[dead_letter]\nkind = \"pubsub\"\n\n[dead_letter.pubsub]\ntopic = \"letters\"\n",
    )
    .unwrap();
    assert_eq!(
        topic.dead_letter_destination().unwrap(),
        DeadLetterDestination::Pubsub(DeadLetterTopic {
            project: "p1".to_owned(),
            topic: "letters".to_owned(),
            create_if_missing: false,
            credentials_file: None,
            endpoint: Some("http://127.0.0.1:8085".to_owned()),
        })
    );

    let missing_table = error("", "[dead_letter]\nkind = \"pubsub\"\n");
    assert!(
        missing_table.contains("dead_letter.pubsub") && missing_table.contains("`topic`"),
        "{missing_table}"
    );
    let both = error(
        pubsub_broker,
        "[dead_letter]\nkind = \"pubsub\"\npath = \"dead.jsonl\"\n\n[dead_letter.pubsub]\ntopic = \"letters\"\n",
    );
    assert!(
        both.contains("dead_letter.path") && both.contains("remove `path`"),
        "{both}"
    );
    let table_without_kind = error(
        "",
        "[dead_letter]\npath = \"dead.jsonl\"\n\n[dead_letter.pubsub]\ntopic = \"letters\"\n",
    );
    assert!(
        table_without_kind.contains("kind = \"pubsub\""),
        "{table_without_kind}"
    );
    let no_project = error(
        "",
        "[dead_letter]\nkind = \"pubsub\"\n\n[dead_letter.pubsub]\ntopic = \"letters\"\n",
    );
    assert!(
        no_project.contains("dead_letter.pubsub.project"),
        "{no_project}"
    );
    let unknown_key = error("", "[dead_letter]\npath = \"dead.jsonl\"\nfile = \"x\"\n");
    assert!(
        unknown_key.contains("unknown field `file`"),
        "{unknown_key}"
    );
    let unknown_kind = error("", "[dead_letter]\nkind = \"kafka\"\npath = \"d.jsonl\"\n");
    assert!(unknown_kind.contains("kafka"), "{unknown_kind}");
    let no_path = error("", "[dead_letter]\n");
    assert!(
        no_path.contains("dead_letter.path") && no_path.contains("required"),
        "{no_path}"
    );
}

/// A non-UTF-8 message was dead-lettered with its bytes replaced by U+FFFD, so
/// the original could not be recovered from the dead letter.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_that_is_not_utf8_is_dead_lettered_with_its_exact_bytes() {
    use base64::Engine as _;
    let emulator = PubsubEmulator::start();
    let dir = tempfile::tempdir().unwrap();
    write_posts(dir.path(), 1, 3);
    let config = config(
        dir.path(),
        &emulator,
        "binary",
        r#"["process"]"#,
        "posts.db",
        "",
    );
    // The subscription must exist before the message is published to be delivered.
    tweetpipe::broker::pubsub::ensure_resources(config.broker.pubsub.as_ref().unwrap())
        .await
        .unwrap();
    let running = Running::start(config);
    let stats = running.stats.clone();
    let publisher = google_cloud_pubsub::client::Publisher::builder(
        "projects/tweetpipe-test/topics/binary-topic",
    )
    .with_endpoint(emulator.endpoint())
    .with_credentials(google_cloud_auth::credentials::anonymous::Builder::new().build())
    .build()
    .await
    .unwrap();
    let original: Vec<u8> = b"{\"data\":{\"id\":\"1\",\"text\":\"caf\xe9 \xff\xfe\"}}".to_vec();
    assert!(std::str::from_utf8(&original).is_err());
    let message =
        google_cloud_pubsub::model::Message::new().set_data(bytes::Bytes::from(original.clone()));
    publisher.publish(message).await.unwrap();
    wait_for("the dead letter", Duration::from_secs(60), || {
        stats.snapshot().dead_lettered >= 1
    })
    .await;
    let outcome = running.stop().await;
    assert_eq!(outcome.stats.malformed, 1, "{:?}", outcome.stats);
    let letters =
        tweetpipe::dead_letter::read_dead_letters(&dir.path().join("posts.db.dead.jsonl")).unwrap();
    assert_eq!(letters.len(), 1, "{letters:?}");
    let letter = &letters[0];
    assert_eq!(letter["stage"], "decode");
    assert_eq!(letter["message_base64"], true, "{letter}");
    assert!(
        letter["error"].as_str().unwrap().contains("not UTF-8"),
        "{letter}"
    );
    let bytes = base64::prelude::BASE64_STANDARD
        .decode(letter["message"].as_str().unwrap())
        .unwrap();
    assert_eq!(bytes, original, "the exact bytes are recoverable");
}

/// Receives from a subscription on a thread of its own, acking each message
/// and keeping its post id, until dropped; it subscribes again after an error.
struct Collector {
    ids: Arc<std::sync::Mutex<BTreeSet<String>>>,
    stop: CancellationToken,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Collector {
    fn start(endpoint: String, subscription: String) -> Collector {
        let ids = Arc::new(std::sync::Mutex::new(BTreeSet::new()));
        let stop = CancellationToken::new();
        let (kept, stopped) = (ids.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let subscriber = google_cloud_pubsub::client::Subscriber::builder()
                    .with_endpoint(endpoint)
                    .with_credentials(
                        google_cloud_auth::credentials::anonymous::Builder::new().build(),
                    )
                    .build()
                    .await
                    .unwrap();
                while !stopped.is_cancelled() {
                    let mut stream = subscriber.subscribe(subscription.clone()).build();
                    loop {
                        let next = tokio::select! {
                            next = stream.next() => next,
                            _ = stopped.cancelled() => return,
                        };
                        let Some(Ok((message, handler))) = next else {
                            break;
                        };
                        handler.ack();
                        kept.lock()
                            .unwrap()
                            .insert(message.attributes["post_id"].clone());
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            });
        });
        Collector {
            ids,
            stop,
            thread: Some(thread),
        }
    }

    fn ids(&self) -> BTreeSet<String> {
        self.ids.lock().unwrap().clone()
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.stop.cancel();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The post ids of the messages in the spool in `dir` (empty when it does not exist yet).
fn spooled_ids(dir: &Path) -> BTreeSet<String> {
    let file = dir.join(tweetpipe::broker::spool::SPOOL_FILE);
    let Ok(db) = rusqlite::Connection::open_with_flags(
        &file,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    ) else {
        return BTreeSet::new();
    };
    let Ok(mut statement) = db.prepare("SELECT first_id, count, body FROM chunk") else {
        return BTreeSet::new();
    };
    let chunks: Vec<(i64, i64, Vec<u8>)> = statement
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    chunks
        .iter()
        .flat_map(|(first, count, body)| {
            tweetpipe::broker::spool::chunk::decode(*first, *count, body).records
        })
        .map(|record| tweetpipe::post::decode(&record.payload).unwrap().id)
        .collect()
}

/// An ingest-only config with its spool (`spool/` in `dir`) publishing to the
/// emulator through `relay`, replaying `posts` posts at 600 a second; with
/// the topic and subscription made, and a collector receiving from the
/// emulator directly. Returns (the config, the post ids, the collector).
fn outage_setup(
    dir: &Path,
    emulator: &PubsubEmulator,
    relay: &Relay,
    names: &str,
    posts: usize,
) -> (PathBuf, BTreeSet<String>, Collector) {
    let ids = write_posts(dir, posts, 29);
    let path = write_config(
        dir,
        emulator,
        names,
        r#"["ingest"]"#,
        "ingest.db",
        "max_in_flight = 100",
        "[metrics]\nenabled = false\n\n[broker.spool]\npath = \"spool\"",
    );
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace(&emulator.endpoint(), &relay.endpoint())
        .replace(
            "path = \"posts.jsonl\"",
            "path = \"posts.jsonl\"\nrate = 600.0",
        )
        .replace("level = \"warn\"", "level = \"info\"");
    std::fs::write(&path, text).unwrap();
    let pubsub = Config::load(&path).unwrap().broker.pubsub.unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime
        .block_on(tweetpipe::broker::pubsub::ensure_resources(&pubsub))
        .unwrap();
    let collector = Collector::start(
        emulator.endpoint(),
        tweetpipe::broker::pubsub::subscription_name(&pubsub),
    );
    (path, ids, collector)
}

/// The ingest role with its spool, against the real emulator behind a relay
/// the test cuts for 30 s mid-run: the replay reads on, every post it read
/// waits on disk, and once Pub/Sub is reachable again the same daemon
/// publishes them all and ends by itself, with the spool empty.
#[test]
fn ingest_spools_through_a_30_s_pubsub_outage_and_publishes_when_it_is_back() {
    const POSTS: usize = 3_000;
    let emulator = PubsubEmulator::start();
    let relay = Relay::start(&emulator.host());
    let dir = tempfile::tempdir().unwrap();
    let (path, ids, collector) = outage_setup(dir.path(), &emulator, &relay, "back", POSTS);
    let spool = dir.path().join("spool");
    let log = dir.path().join("daemon.log");

    let daemon = Daemon::start(&path, &log);
    wait_until("the first publishes", Duration::from_secs(60), || {
        collector.ids().len() >= 300
    });
    relay.cut();
    let cut = Instant::now();
    wait_until(
        "every post published or spooled",
        Duration::from_secs(60),
        || {
            let mut seen = collector.ids();
            seen.extend(spooled_ids(&spool));
            seen == ids
        },
    );
    let published_before = collector.ids().len();
    assert!(
        published_before < POSTS,
        "the outage came mid-run ({published_before} published)"
    );
    std::thread::sleep(Duration::from_secs(30).saturating_sub(cut.elapsed()));
    // A publish the emulator took just as the relay was cut may have arrived
    // since; nothing published through the outage can.
    let through_outage = collector.ids().len();
    assert!(
        through_outage < POSTS,
        "nothing is published while Pub/Sub is unreachable ({through_outage})"
    );
    relay.restore();
    let status = daemon.wait(Duration::from_secs(120));
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(status.success(), "ingest: {status}\n{text}");
    wait_until(
        "every post received from Pub/Sub",
        Duration::from_secs(60),
        || collector.ids() == ids,
    );
    assert!(
        spooled_ids(&spool).is_empty(),
        "the spool is empty at the end"
    );
    assert!(
        text.contains("failed, retrying until it works") && text.contains("works again"),
        "the log says when the outage started and ended:\n{text}"
    );
}

/// The ingest role with its spool, against the real emulator behind a relay
/// the test cuts: while Pub/Sub is unreachable the replay keeps reading and
/// every post it read is on disk; a `kill -9` in the outage loses none of
/// them, and the next start, with Pub/Sub back, publishes them all.
#[test]
fn ingest_spools_through_a_pubsub_outage_and_a_restart_publishes_the_rest() {
    const POSTS: usize = 3_000;
    let emulator = PubsubEmulator::start();
    let relay = Relay::start(&emulator.host());
    let dir = tempfile::tempdir().unwrap();
    let (path, ids, collector) = outage_setup(dir.path(), &emulator, &relay, "outage", POSTS);
    let spool = dir.path().join("spool");

    let first = Daemon::start(&path, &dir.path().join("first.log"));
    wait_until("the first publishes", Duration::from_secs(60), || {
        collector.ids().len() >= 300
    });
    relay.cut();
    // Pub/Sub is unreachable, yet the source reads on: every post is either
    // confirmed (before the cut) or on disk.
    wait_until(
        "every post published or spooled",
        Duration::from_secs(60),
        || {
            let mut seen = collector.ids();
            seen.extend(spooled_ids(&spool));
            seen == ids
        },
    );
    let published_before = collector.ids().len();
    assert!(
        published_before < POSTS,
        "the outage came mid-run ({published_before} published)"
    );
    first.sigkill();
    let left = spooled_ids(&spool);
    assert!(
        left.len() >= POSTS - published_before,
        "the kill lost nothing on disk: {} spooled, {published_before} published",
        left.len()
    );

    relay.restore();
    let status =
        Daemon::start(&path, &dir.path().join("second.log")).wait(Duration::from_secs(120));
    assert!(
        status.success(),
        "ingest after the restart: {status}\n{}",
        std::fs::read_to_string(dir.path().join("second.log")).unwrap_or_default()
    );
    wait_until(
        "every post received from Pub/Sub",
        Duration::from_secs(60),
        || collector.ids() == ids,
    );
    assert!(
        spooled_ids(&spool).is_empty(),
        "the spool is empty once everything is confirmed"
    );
    for run in ["first.log", "second.log"] {
        let log = std::fs::read_to_string(dir.path().join(run)).unwrap_or_default();
        assert!(
            !log.contains("line one"),
            "the replay records its position with the spool ({run}):\n{log}"
        );
    }
}
