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

[dead_letter]
path = "{db}.dead.jsonl"

[logging]
level = "warn"
{extra}
"#,
        endpoint = emulator.endpoint()
    );
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
    wait_for("the posts table", Duration::from_secs(60), || {
        rusqlite::Connection::open(&db)
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

#[test]
#[ignore = "fails about half the runs: after the SIGKILL ~600 leased messages are not \
            redelivered to the restarted daemon within 300 s (under investigation, see issue 6)"]
fn a_process_daemon_killed_mid_run_loses_nothing_after_a_restart() {
    const POSTS: usize = 8_000;
    let emulator = PubsubEmulator::start();
    let dir = tempfile::tempdir().unwrap();
    let ids = write_posts(dir.path(), POSTS, 17);
    // The shortest ack deadline Pub/Sub allows: what the killed daemon leased
    // comes back soon. One stream keeps the run long enough to kill it mid-way.
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

    let second = Daemon::start(&process, &dir.path().join("second.log"));
    let started = Instant::now();
    while rows(&db).len() < ids.len() {
        assert!(
            started.elapsed() < Duration::from_secs(300),
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishing_resumes_after_the_emulator_restarts() {
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
}
