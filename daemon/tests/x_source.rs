//! The X filtered-stream source against a fake X on loopback: rule sync, X's
//! reconnect schedule, and that no post is lost or published twice across
//! reconnects.
//!
//! The source's waits go through a recording sleeper that returns at once, so the
//! tests check the exact delays X's schedule asked for without spending them.
//! (Paused tokio time does not work here: with real sockets in flight, the paused
//! clock jumps to the next timer — the 20 s stall — before loopback data is read.)

mod support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use support::fake_x::{End, FakeX, Serve, Step, TOKEN};
use tokio_util::sync::CancellationToken;
use tweetpipe::broker::{Publisher, Subscriber, embedded};
use tweetpipe::config::{Config, XSourceConfig};
use tweetpipe::sample::{SampleOptions, write_sample};
use tweetpipe::sources::x::Sleeper;
use tweetpipe::sources::x::client::BearerToken;
use tweetpipe::sources::{XSource, XSourceError};
use tweetpipe::stats::Stats;

const BIN: &str = env!("CARGO_BIN_EXE_tweetpipe");

/// `n` realistic v2 stream messages.
fn script(n: usize) -> Vec<String> {
    let mut out = Vec::new();
    write_sample(
        &SampleOptions {
            count: n,
            seed: 7,
            ..SampleOptions::default()
        },
        &mut out,
    )
    .unwrap();
    let lines: Vec<String> = String::from_utf8(out)
        .unwrap()
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(str::to_owned)
        .collect();
    assert!(lines.len() >= n, "the sample has {} lines", lines.len());
    lines
}

fn config_text(fake: &FakeX, rules: &str) -> String {
    format!(
        "[source.x]\napi_base = \"{}\"\nrules = {rules}\n\n[sink.stdout]\n\n[dead_letter]\npath = \"dead.jsonl\"\n",
        fake.base()
    )
}

fn x_config(fake: &FakeX, rules: &str) -> XSourceConfig {
    Config::parse(&config_text(fake, rules), Path::new("test.toml"))
        .unwrap()
        .source
        .x
        .unwrap()
}

const RULES: &str = r#"[{ value = "covid", tag = "covid" }]"#;

/// A running X source and the far end of its broker.
struct Running {
    subscriber: Subscriber,
    cancel: CancellationToken,
    task: tokio::task::JoinHandle<Result<(), XSourceError>>,
    got: Vec<String>,
    delays: Arc<Mutex<Vec<Duration>>>,
}

/// Runs the source with a sleeper that records each delay and returns at once.
fn spawn_source(config: XSourceConfig) -> Running {
    let delays = Arc::new(Mutex::new(Vec::new()));
    let recorded = delays.clone();
    let sleeper: Sleeper = Arc::new(move |delay| {
        recorded.lock().unwrap().push(delay);
        Box::pin(tokio::time::sleep(Duration::from_millis(1)))
    });
    spawn_source_with(config, Some(sleeper), delays)
}

fn spawn_source_with(
    config: XSourceConfig,
    sleeper: Option<Sleeper>,
    delays: Arc<Mutex<Vec<Duration>>>,
) -> Running {
    let stats = Arc::new(Stats::default());
    let (publisher, subscriber) = embedded(10_000, stats.clone());
    let mut source = XSource::with_token(config, &BearerToken::new(TOKEN, "test")).unwrap();
    if let Some(sleeper) = sleeper {
        source = source.with_sleeper(sleeper);
    }
    let cancel = CancellationToken::new();
    let task = tokio::spawn(source.run(Publisher::Embedded(publisher), stats, cancel.clone()));
    Running {
        subscriber: Subscriber::Embedded(subscriber),
        cancel,
        task,
        got: Vec::new(),
        delays,
    }
}

impl Running {
    /// Waits until `n` messages were published.
    async fn wait_for(&mut self, n: usize) {
        while self.got.len() < n {
            let batch =
                tokio::time::timeout(Duration::from_secs(10), self.subscriber.recv_many(100))
                    .await
                    .unwrap_or_else(|_| panic!("only {} of {n} posts arrived", self.got.len()));
            if batch.is_empty() {
                let ended = (&mut self.task).await.unwrap();
                panic!(
                    "the source stopped after {} posts: {ended:?}",
                    self.got.len()
                );
            }
            for delivery in batch {
                self.got.push(delivery.payload.to_string());
                delivery.token.ack();
            }
        }
    }

    /// The reconnect delays the source asked for so far.
    fn delays(&self) -> Vec<Duration> {
        self.delays.lock().unwrap().clone()
    }

    /// Stops the source; returns its result and every message it published.
    async fn stop(mut self) -> (Result<(), XSourceError>, Vec<String>) {
        self.cancel.cancel();
        let result = self.task.await.unwrap();
        loop {
            let batch = self.subscriber.recv_many(100).await;
            if batch.is_empty() {
                break;
            }
            for delivery in batch {
                self.got.push(delivery.payload.to_string());
                delivery.token.ack();
            }
        }
        (result, self.got)
    }
}

/// The post ids of stream messages, for readable failures.
fn ids(lines: &[String]) -> Vec<String> {
    lines
        .iter()
        .map(
            |line| match serde_json::from_str::<serde_json::Value>(line) {
                Ok(value) => value["data"]["id"].as_str().unwrap_or("?").to_owned(),
                Err(_) => format!("malformed: {}", &line[..line.len().min(40)]),
            },
        )
        .collect()
}

/// Runs the source on `plan` until `n` posts arrived; asserts they are the first
/// n script lines, each exactly once, in order, and that the fake delivered each
/// once. Returns the fake and the reconnect delays the source asked for.
async fn stream_through(plan: Vec<Step>, n: usize) -> (FakeX, Vec<Duration>) {
    stream_through_with(plan, n, |_, _| {}).await
}

async fn stream_through_with(
    plan: Vec<Step>,
    n: usize,
    setup: impl FnOnce(&FakeX, &mut XSourceConfig),
) -> (FakeX, Vec<Duration>) {
    let lines = script(n + 5);
    let fake = FakeX::start(lines.clone()).await;
    fake.plan(plan);
    let mut config = x_config(&fake, RULES);
    setup(&fake, &mut config);
    let mut running = spawn_source(config);
    running.wait_for(n).await;
    let delays = running.delays();
    let (result, got) = running.stop().await;
    result.unwrap();
    assert_eq!(
        ids(&got),
        ids(&lines[..n]),
        "posts lost, duplicated or reordered"
    );
    assert_eq!(got, lines[..n]);
    assert_eq!(fake.delivered(), (0..n).collect::<Vec<_>>());
    (fake, delays)
}

fn secs(list: &[f64]) -> Vec<Duration> {
    list.iter()
        .map(|secs| Duration::from_secs_f64(*secs))
        .collect()
}

#[tokio::test]
async fn rules_are_validated_with_dry_run_then_synced_before_the_stream_opens() {
    let fake = FakeX::start(script(3)).await;
    fake.set_rules(&[("covid", Some("old")), ("stale", None)]);
    let mut running = spawn_source(x_config(
        &fake,
        r##"[{ value = "covid", tag = "covid" }, { value = "#longcovid lang:en" }]"##,
    ));
    running.wait_for(3).await;
    let (result, _) = running.stop().await;
    result.unwrap();
    assert_eq!(
        fake.rule_requests(),
        ["GET", "POST dry_run add", "POST delete", "POST add"]
    );
    assert_eq!(
        fake.rules(),
        [
            ("#longcovid lang:en".to_owned(), None),
            ("covid".to_owned(), Some("covid".to_owned()))
        ]
    );
    let connections = fake.connections();
    assert_eq!(connections.len(), 1);
    let query = &connections[0].query;
    for wanted in [
        "tweet.fields=created_at%2Clang%2Cpublic_metrics%2Centities%2Cauthor_id",
        "expansions=author_id%2Cgeo.place_id",
        "user.fields=username%2Cname%2Clocation%2Cpublic_metrics%2Cverified",
        "place.fields=full_name%2Ccountry_code",
    ] {
        assert!(query.contains(wanted), "{wanted} missing from {query}");
    }
    assert!(
        connections[0]
            .user_agent
            .starts_with(&format!("tweetpipe/{}", env!("CARGO_PKG_VERSION"))),
        "{}",
        connections[0].user_agent
    );
}

#[tokio::test]
async fn a_rule_x_rejects_stops_the_start_with_xs_message_and_changes_nothing() {
    let fake = FakeX::start(script(3)).await;
    fake.set_rules(&[("stale", None)]);
    let running = spawn_source(x_config(
        &fake,
        r#"[{ value = "covid" }, { value = "(vaccine OR booster" }]"#,
    ));
    let error = running.task.await.unwrap().unwrap_err();
    let message = error.to_string();
    assert!(message.contains("(vaccine OR booster"), "{message}");
    assert!(
        message.contains("Rules must contain balanced parentheses."),
        "{message}"
    );
    assert!(!message.contains(TOKEN), "{message}");
    assert_eq!(fake.rule_requests(), ["GET", "POST dry_run add"]);
    assert_eq!(fake.rules(), [("stale".to_owned(), None)]);
    assert!(fake.connections().is_empty(), "the stream was opened");
}

#[tokio::test]
async fn a_mid_stream_disconnect_reconnects_at_once_without_losing_a_post() {
    let (_fake, delays) = stream_through(
        vec![Step::serve(3, End::Abort), Step::serve(3, End::Hold)],
        6,
    )
    .await;
    assert_eq!(delays, [Duration::ZERO]);
}

#[tokio::test]
async fn a_line_cut_by_a_disconnect_is_dropped_and_published_once_when_resent() {
    let (_fake, delays) = stream_through(
        vec![Step::serve(2, End::AbortMidLine), Step::serve(3, End::Hold)],
        5,
    )
    .await;
    assert_eq!(delays, [Duration::ZERO]);
}

#[tokio::test]
async fn lines_split_across_chunks_are_reassembled() {
    stream_through(
        vec![Step::Serve(Serve {
            lines: 5,
            split: Some(7),
            then: End::Hold,
        })],
        5,
    )
    .await;
}

#[tokio::test]
async fn a_stall_without_keepalives_reconnects_at_once_after_the_stall_timeout() {
    let stall = Duration::from_millis(400);
    let (fake, delays) = stream_through_with(
        vec![Step::serve(2, End::Stall), Step::serve(2, End::Hold)],
        4,
        |fake, config| {
            config.stall_timeout = stall;
            fake.set_keepalive(Duration::from_millis(50));
        },
    )
    .await;
    // The stalled connection had been healthy, so the reconnect is immediate…
    assert_eq!(delays, [Duration::ZERO]);
    // …once the stall timeout has passed since its last byte.
    let gaps = fake.reconnect_gaps();
    assert_eq!(gaps.len(), 1);
    assert!(
        gaps[0] >= stall,
        "reconnected {:?} after the last byte",
        gaps[0]
    );
}

#[tokio::test]
async fn keepalives_keep_a_quiet_connection_open() {
    let fake = FakeX::start(script(2)).await;
    fake.set_keepalive(Duration::from_millis(50));
    fake.plan([Step::serve(1, End::Hold)]);
    let mut config = x_config(&fake, RULES);
    config.stall_timeout = Duration::from_millis(300);
    let mut running = spawn_source(config);
    running.wait_for(1).await;
    // Four stall timeouts with nothing but keep-alives.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let (result, got) = running.stop().await;
    result.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(
        fake.connections().len(),
        1,
        "a connection with keep-alives was dropped"
    );
}

#[tokio::test]
async fn http_errors_back_off_from_5_s_and_a_healthy_connection_resets_the_schedule() {
    let (_fake, delays) = stream_through(
        vec![
            Step::status(503),
            Step::status(503),
            Step::status(503),
            Step::serve(1, End::Abort),
            Step::status(503),
            Step::serve(1, End::Hold),
        ],
        2,
    )
    .await;
    assert_eq!(delays, secs(&[5.0, 10.0, 20.0, 0.0, 5.0]));
}

#[tokio::test]
async fn network_errors_back_off_linearly_by_250_ms() {
    let (_fake, delays) = stream_through(
        vec![
            Step::serve(1, End::Abort),
            Step::Drop,
            Step::Drop,
            Step::Drop,
            Step::serve(1, End::Hold),
        ],
        2,
    )
    .await;
    assert_eq!(delays, secs(&[0.0, 0.25, 0.5, 0.75]));
}

#[tokio::test]
async fn too_many_connections_429_backs_off_from_one_minute() {
    let (_fake, delays) = stream_through(
        vec![
            Step::status(429),
            Step::status(429),
            Step::serve(1, End::Hold),
        ],
        1,
    )
    .await;
    assert_eq!(delays, secs(&[60.0, 120.0]));
}

#[tokio::test]
async fn unauthorized_401_and_403_keep_retrying_on_the_http_schedule() {
    let (_fake, delays) = stream_through(
        vec![
            Step::status(401),
            Step::status(403),
            Step::status(401),
            Step::serve(1, End::Hold),
        ],
        1,
    )
    .await;
    assert_eq!(delays, secs(&[5.0, 10.0, 20.0]));
}

#[tokio::test]
async fn an_operational_disconnect_is_not_published_and_reconnects_at_once() {
    let (_fake, delays) = stream_through(
        vec![
            Step::serve(2, End::OperationalDisconnect),
            Step::serve(2, End::Hold),
        ],
        4,
    )
    .await;
    assert_eq!(delays, [Duration::ZERO]);
}

#[tokio::test]
async fn malformed_json_is_published_for_the_dead_letter_and_the_stream_goes_on() {
    let mut lines = script(3);
    lines.insert(1, r#"{"data":{"id":"1","text":"cut"#.to_owned());
    let fake = FakeX::start(lines.clone()).await;
    let mut running = spawn_source(x_config(&fake, RULES));
    running.wait_for(4).await;
    let (result, got) = running.stop().await;
    result.unwrap();
    assert_eq!(got, lines[..4]);
    assert!(tweetpipe::post::decode(&got[1]).is_err());
    assert!(tweetpipe::post::decode(&got[2]).is_ok());
    assert_eq!(fake.connections().len(), 1);
}

#[tokio::test]
async fn cancel_during_a_backoff_returns_at_once() {
    let fake = FakeX::start(script(1)).await;
    fake.plan(vec![Step::status(503); 20]);
    let running = spawn_source_with(x_config(&fake, RULES), None, Arc::default());
    // The first attempt fails at once; the source now waits 5 s (a real sleep).
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(fake.connections().len(), 1);
    let cancelled_at = std::time::Instant::now();
    let (result, got) = running.stop().await;
    result.unwrap();
    assert!(got.is_empty());
    assert!(
        cancelled_at.elapsed() < Duration::from_millis(500),
        "the source slept through its backoff ({:?})",
        cancelled_at.elapsed()
    );
    assert_eq!(fake.connections().len(), 1);
}

/// Polls `check` in real time for up to `limit`.
fn wait_real(limit: std::time::Duration, mut check: impl FnMut() -> bool) -> bool {
    let start = std::time::Instant::now();
    while start.elapsed() < limit {
        if check() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    check()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_streams_into_the_sink_and_dead_letters_malformed_lines() {
    let mut lines = script(4);
    lines.insert(2, "{not json".to_owned());
    let fake = FakeX::start(lines).await;
    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("tweetpipe.toml");
    let text = config_text(&fake, RULES)
        .replace("[sink.stdout]", "[sink.sqlite]\npath = \"posts.db\"")
        .replace("[dead_letter]", "[batch]\nmax_age_ms = 50\n\n[dead_letter]");
    std::fs::write(&config_path, text).unwrap();
    let config = Config::load(&config_path).unwrap();
    let chain = tweetpipe::plugins::LoadedChain::load(&config.plugins).unwrap();
    let dead = dir.path().join("dead.jsonl");
    let db = dir.path().join("posts.db");
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, format!("{TOKEN}\n")).unwrap();
    let mut config = config;
    config.source.x.as_mut().unwrap().bearer_token_file = Some(token_file);
    let done = {
        let dead = dead.clone();
        async move {
            let dead_written =
                || std::fs::read_to_string(&dead).is_ok_and(|text| text.contains("not json"));
            while !dead_written() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            // Let the batcher flush the last rows (max_age 50 ms).
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    };
    let outcome = tokio::time::timeout(
        Duration::from_secs(20),
        tweetpipe::pipeline::run(&config, chain, done),
    )
    .await
    .expect("the pipeline drained")
    .unwrap();
    assert_eq!(outcome.stats.read, 5);
    assert_eq!(outcome.stats.dead_lettered, 1);
    assert_eq!(outcome.stats.written, 4);
    let rows: i64 = rusqlite::Connection::open(&db)
        .unwrap()
        .query_row("select count(*) from posts", [], |row| row.get(0))
        .unwrap();
    assert_eq!(rows, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_a_backoff_exits_promptly() {
    let fake = FakeX::start(script(1)).await;
    fake.plan(vec![Step::status(503); 20]);
    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("tweetpipe.toml");
    std::fs::write(&config_path, config_text(&fake, RULES)).unwrap();
    let mut child = Command::new(BIN)
        .args(["run", "--quiet", "--config"])
        .arg(&config_path)
        .env("TWEETPIPE_X_BEARER_TOKEN", TOKEN)
        .env_remove("CREDENTIALS_DIRECTORY")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    assert!(
        wait_real(std::time::Duration::from_secs(20), || !fake
            .connections()
            .is_empty()),
        "the daemon never connected to the stream"
    );
    // The daemon now waits 5 s before its next attempt.
    std::thread::sleep(std::time::Duration::from_millis(200));
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let signalled = std::time::Instant::now();
    let exited = wait_real(std::time::Duration::from_secs(4), || {
        child.try_wait().unwrap().is_some()
    });
    if !exited {
        let _ = child.kill();
    }
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(exited, "still running 4 s after SIGTERM; stderr:\n{stderr}");
    assert!(
        signalled.elapsed() < std::time::Duration::from_secs(2),
        "{stderr}"
    );
    assert!(output.status.success(), "{:?}\n{stderr}", output.status);
    assert_eq!(fake.connections().len(), 1);
    assert!(
        !stderr.contains(TOKEN),
        "the token leaked into the log:\n{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn x_rules_shows_the_difference_and_changes_nothing() {
    let fake = FakeX::start(script(1)).await;
    fake.set_rules(&[("stale", Some("old")), ("covid", Some("covid"))]);
    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("tweetpipe.toml");
    std::fs::write(
        &config_path,
        config_text(
            &fake,
            r##"[{ value = "covid", tag = "covid" }, { value = "#longcovid", tag = "lc" }]"##,
        ),
    )
    .unwrap();
    let output = tokio::task::spawn_blocking(move || {
        Command::new(BIN)
            .args(["x-rules", "--config"])
            .arg(&config_path)
            .env("TWEETPIPE_X_BEARER_TOKEN", TOKEN)
            .env_remove("CREDENTIALS_DIRECTORY")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains(r#"  = "covid" (tag "covid")"#), "{stdout}");
    assert!(stdout.contains(r#"  - "stale" (tag "old")"#), "{stdout}");
    assert!(
        stdout.contains(r##"  + "#longcovid" (tag "lc")"##),
        "{stdout}"
    );
    assert_eq!(fake.rule_requests(), ["GET", "POST dry_run add"]);
    assert_eq!(
        fake.rules(),
        [
            ("covid".to_owned(), Some("covid".to_owned())),
            ("stale".to_owned(), Some("old".to_owned()))
        ]
    );
    assert!(fake.connections().is_empty());
}
