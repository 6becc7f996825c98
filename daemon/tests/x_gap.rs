//! X gap recovery end to end: the `tweetpipe` binary against a fake X that
//! produces posts on a clock whether or not the daemon is connected (as X does),
//! into SQLite. After a SIGKILL and a restart, or a mid-stream disconnect, every
//! post the fake produced is committed exactly once when `gap_recovery` fills
//! the gap (recent search, or `backfill_minutes`), and bad answers from search
//! are logged without stopping the stream.

mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::fake_x::{End, FakeX, SearchStep, Step, TOKEN};
use tweetpipe::sample::{SampleOptions, write_sample};

/// Posts a second the fake produces.
const RATE: f64 = 200.0;

/// `n` well-formed v2 stream messages (no malformed, duplicate or blank lines).
fn bodies(n: usize) -> Vec<String> {
    let mut out = Vec::new();
    write_sample(
        &SampleOptions {
            count: n,
            seed: 11,
            malformed_every: 0,
            duplicate_every: 0,
            blank_every: 0,
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
    assert_eq!(lines.len(), n);
    lines
}

/// A config for the daemon against `fake`, committing into `posts.db`.
fn write_config(dir: &Path, fake: &FakeX, gap_recovery: &str) -> PathBuf {
    let path = dir.join("tweetpipe.toml");
    std::fs::write(
        &path,
        format!(
            r#"[source.x]
api_base = "{}"
rules = [{{ value = "covid", tag = "covid" }}]
gap_recovery = "{gap_recovery}"
# X's minimum, so the tests wait 10 s rather than 30 for each gap.
gap_search_delay_secs = 10
state_file = "state/x-stream.json"

[batch]
max_age_ms = 50

[sink.sqlite]
path = "posts.db"

[dead_letter]
path = "dead.jsonl"

[metrics]
listen = "127.0.0.1:0"
"#,
            fake.base()
        ),
    )
    .unwrap();
    path
}

/// The `tweetpipe` binary as a child process; dropping it SIGKILLs it.
struct Daemon {
    child: Child,
    log: PathBuf,
}

impl Daemon {
    fn start(config: &Path, log: PathBuf) -> Daemon {
        let child = Command::new(env!("CARGO_BIN_EXE_tweetpipe"))
            .args(["run", "--quiet", "--config"])
            .arg(config)
            .env("TWEETPIPE_X_BEARER_TOKEN", TOKEN)
            .env_remove("CREDENTIALS_DIRECTORY")
            .env_remove("STATE_DIRECTORY")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Daemon { child, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL: no drain, nothing saved at stop.
    fn sigkill(mut self) -> String {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        self.log()
    }

    /// SIGTERM, then waits for the drain; returns the log.
    async fn terminate(mut self) -> String {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let exited = wait_for(
            "the daemon to exit after SIGTERM",
            Duration::from_secs(20),
            || self.child.try_wait().unwrap().is_some(),
        )
        .await;
        let log = self.log();
        assert!(exited, "still running 20 s after SIGTERM:\n{log}");
        log
    }

    /// The address of its `/metrics`, from the log line that announces it.
    async fn metrics(&self) -> String {
        let mut found = None;
        wait_for("the metrics address", Duration::from_secs(20), || {
            found = self.log().lines().find_map(|line| {
                let rest = line.split("metrics: serving http://").nth(1)?;
                Some(rest.split("/metrics").next()?.to_owned())
            });
            found.is_some()
        })
        .await;
        let addr = found.unwrap_or_else(|| panic!("no metrics address in:\n{}", self.log()));
        reqwest::get(format!("http://{addr}/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `done` every 50 ms for up to `limit`; true when it held.
async fn wait_for(_what: &str, limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if done() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    done()
}

/// The post ids committed to `posts.db` (empty before the table exists).
fn committed(db: &Path) -> Vec<String> {
    let Ok(connection) =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
    else {
        return Vec::new();
    };
    let Ok(mut statement) = connection.prepare("SELECT id FROM posts") else {
        return Vec::new();
    };
    statement
        .query_map([], |row| row.get::<_, String>(0))
        .map(|rows| rows.filter_map(Result::ok).collect())
        .unwrap_or_default()
}

/// Waits until the fake has produced everything and every produced post is in
/// `posts.db`; then checks each is there exactly once and nothing else is.
async fn assert_all_committed_once(
    fake: &FakeX,
    db: &Path,
    limit: Duration,
    log: impl Fn() -> String,
) {
    let all = wait_for("every post committed", limit, || {
        fake.done_producing() && committed(db).len() >= fake.produced().len()
    })
    .await;
    let produced: Vec<String> = fake.produced().into_iter().map(|post| post.id).collect();
    let rows = committed(db);
    let distinct: BTreeSet<&String> = rows.iter().collect();
    let expected: BTreeSet<&String> = produced.iter().collect();
    let missing: Vec<_> = expected.difference(&distinct).take(10).collect();
    assert!(
        all && missing.is_empty(),
        "{} of {} produced posts committed; missing (first 10) {missing:?}; searches {:#?}\nlog:\n{}",
        distinct.len(),
        produced.len(),
        fake.searches(),
        log()
    );
    assert_eq!(rows.len(), distinct.len(), "a post was committed twice");
    assert_eq!(distinct, expected, "rows that the fake never produced");
}

/// One metric's value for `source="x"`, from a Prometheus text page.
fn metric(page: &str, name: &str) -> f64 {
    page.lines()
        .find(|line| line.starts_with(&format!("{name}{{source=\"x\"}}")))
        .and_then(|line| line.rsplit(' ').next())
        .and_then(|value| value.parse().ok())
        .unwrap_or_else(|| panic!("{name} is not in /metrics:\n{page}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_sigkill_and_a_restart_recent_search_commits_what_x_matched_meanwhile() {
    let fake = FakeX::start_live(bodies(1_400), RATE).await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &fake, "search");
    let db = dir.path().join("posts.db");

    let first = Daemon::start(&config, dir.path().join("first.log"));
    let streaming = wait_for("posts committed", Duration::from_secs(20), || {
        committed(&db).len() >= 300
    })
    .await;
    assert!(
        streaming,
        "the first run committed nothing:\n{}",
        first.log()
    );
    let killed_after = fake.produced().len();
    first.sigkill();
    // The fake goes on producing while no daemon runs.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let down = fake.produced().len() - killed_after;
    assert!(
        down >= 300,
        "only {down} posts fell due while the daemon was down"
    );

    let second = Daemon::start(&config, dir.path().join("second.log"));
    assert_all_committed_once(&fake, &db, Duration::from_secs(30), || second.log()).await;
    let page = second.metrics().await;
    let log = second.terminate().await;
    assert!(
        log.contains("without posts (restart); recovering with recent search"),
        "{log}"
    );
    // Far more than the posts of the gap were not streamed to either run.
    let streamed: BTreeSet<usize> = fake.delivered().into_iter().collect();
    assert!(fake.produced().len() - streamed.len() >= down);
    assert!(
        fake.searches()
            .iter()
            .all(|search| search.query == "covid" && search.status == 200),
        "{:#?}",
        fake.searches()
    );
    assert_eq!(metric(&page, "tweetpipe_source_gaps_total"), 1.0, "{page}");
    assert!(
        metric(&page, "tweetpipe_source_gap_seconds_total") >= 2.0,
        "{page}"
    );
    assert!(
        metric(&page, "tweetpipe_source_recovered_posts_total") >= down as f64,
        "{page}"
    );
    assert_eq!(metric(&page, "tweetpipe_source_recovery_errors_total"), 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mid_stream_disconnect_is_filled_by_recent_search_within_the_rate_limit() {
    let fake = FakeX::start_live(bodies(1_200), RATE).await;
    // 300 posts, a broken connection, then three refused reconnects (X's
    // network backoff: 0.25 + 0.5 + 0.75 s) while the fake goes on producing.
    fake.plan([
        Step::serve(300, End::Abort),
        Step::Drop,
        Step::Drop,
        Step::Drop,
    ]);
    // Pages of 100: the gap takes several; the first answer uses the window up.
    fake.limit_search(1);
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &fake, "search");
    let db = dir.path().join("posts.db");
    let daemon = Daemon::start(&config, dir.path().join("daemon.log"));
    assert_all_committed_once(&fake, &db, Duration::from_secs(30), || daemon.log()).await;
    let page = daemon.metrics().await;
    let log = daemon.terminate().await;
    assert!(
        log.contains("without posts (reconnect); recovering with recent search"),
        "{log}"
    );
    let searches = fake.searches();
    assert!(searches.len() >= 2, "{searches:#?}");
    assert!(
        searches.iter().all(|search| search.status == 200),
        "the daemon searched before the rate limit's reset: {searches:#?}"
    );
    assert!(
        searches
            .iter()
            .skip(1)
            .all(|search| search.next_token.is_some()),
        "{searches:#?}"
    );
    assert!(log.contains("x-rate-limit-remaining: 0"), "{log}");
    assert_eq!(metric(&page, "tweetpipe_source_gaps_total"), 1.0, "{page}");
    assert!(metric(&page, "tweetpipe_source_recovered_posts_total") > 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backfill_reconnects_with_backfill_minutes_and_fills_the_gap() {
    let fake = FakeX::start_live(bodies(1_000), RATE).await;
    fake.plan([
        Step::serve(300, End::Abort),
        Step::Drop,
        Step::Drop,
        Step::Drop,
    ]);
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &fake, "backfill");
    let db = dir.path().join("posts.db");
    let daemon = Daemon::start(&config, dir.path().join("daemon.log"));
    assert_all_committed_once(&fake, &db, Duration::from_secs(20), || daemon.log()).await;
    let log = daemon.terminate().await;
    let connections = fake.connections();
    assert!(
        !connections[0].query.contains("backfill_minutes"),
        "the first connection had no gap to fill: {}",
        connections[0].query
    );
    for reconnect in &connections[1..] {
        assert!(
            reconnect.query.contains("backfill_minutes=1"),
            "{}",
            reconnect.query
        );
    }
    assert!(
        log.contains("without posts (reconnect); recovering with backfill_minutes=1"),
        "{log}"
    );
    assert!(fake.searches().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_and_errors_from_search_are_logged_and_the_stream_goes_on() {
    let fake = FakeX::start_live(bodies(1_000), RATE).await;
    fake.plan([Step::serve(300, End::Abort), Step::Drop, Step::Drop]);
    // The first search gets garbage, the retry a 503, the next a real answer.
    fake.plan_search([SearchStep::Garbage, SearchStep::Status(503)]);
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &fake, "search");
    let db = dir.path().join("posts.db");
    let daemon = Daemon::start(&config, dir.path().join("daemon.log"));
    assert_all_committed_once(&fake, &db, Duration::from_secs(30), || daemon.log()).await;
    let page = daemon.metrics().await;
    let log = daemon.terminate().await;
    assert!(log.contains("the answer is not a search page"), "{log}");
    assert!(log.contains("HTTP 503"), "{log}");
    assert!(log.contains("the live stream is not affected"), "{log}");
    assert_eq!(metric(&page, "tweetpipe_source_recovery_errors_total"), 2.0);
    // The stream never stopped: after the reconnect, one connection carried the rest.
    assert_eq!(fake.connections().len(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_search_refused_with_403_is_given_up_with_advice_and_the_stream_goes_on() {
    let fake = FakeX::start_live(bodies(800), RATE).await;
    fake.plan([Step::serve(200, End::Abort), Step::Drop, Step::Drop]);
    fake.plan_search([SearchStep::Status(403)]);
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &fake, "search");
    let db = dir.path().join("posts.db");
    let daemon = Daemon::start(&config, dir.path().join("daemon.log"));
    let given_up = wait_for("the search to be given up", Duration::from_secs(25), || {
        daemon.log().contains("giving up")
    })
    .await;
    assert!(given_up, "{}", daemon.log());
    // Everything produced after the reconnect is still streamed and committed.
    let finished = wait_for("the stream to go on", Duration::from_secs(10), || {
        fake.done_producing()
    })
    .await;
    assert!(finished);
    let last = fake.produced().last().unwrap().id.clone();
    let streamed = wait_for("the last post", Duration::from_secs(10), || {
        committed(&db).contains(&last)
    })
    .await;
    let log = daemon.terminate().await;
    assert!(streamed, "{log}");
    assert!(log.contains("HTTP 403"), "{log}");
    assert!(log.contains("source.x.gap_recovery"), "{log}");
    assert_eq!(fake.searches().len(), 1, "a refusal is not retried");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gap_search_had_not_finished_at_sigterm_is_read_after_the_restart() {
    let fake = FakeX::start_live(bodies(1_200), RATE).await;
    fake.plan([Step::serve(200, End::Abort), Step::Drop, Step::Drop]);
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &fake, "search");
    let db = dir.path().join("posts.db");
    let first = Daemon::start(&config, dir.path().join("first.log"));
    let queued = wait_for("the gap to be queued", Duration::from_secs(20), || {
        first.log().contains("recovering with recent search")
    })
    .await;
    assert!(queued, "{}", first.log());
    // Stopped while recent search still waits for the gap to be 10 s old.
    let log = first.terminate().await;
    assert!(fake.searches().is_empty(), "{log}");
    let state: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("state/x-stream.json")).unwrap(),
    )
    .unwrap();
    let pending = state["pending"].as_array().cloned().unwrap_or_default();
    assert_eq!(pending.len(), 1, "{state}");
    let start = pending[0]["start"].as_str().unwrap().to_owned();

    let second = Daemon::start(&config, dir.path().join("second.log"));
    assert_all_committed_once(&fake, &db, Duration::from_secs(30), || second.log()).await;
    // The window from the file was read (X's format: whole seconds).
    let start = start
        .parse::<chrono::DateTime<chrono::Utc>>()
        .unwrap()
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    assert!(
        fake.searches()
            .iter()
            .any(|search| search.start_time == start),
        "no search from {start}: {:#?}",
        fake.searches()
    );
    // Finished windows leave the file.
    let state_file = dir.path().join("state/x-stream.json");
    let emptied = wait_for("the queue to empty", Duration::from_secs(20), || {
        std::fs::read_to_string(&state_file).is_ok_and(|state| state.contains("\"pending\": []"))
    })
    .await;
    let log = second.terminate().await;
    assert!(emptied, "{log}");
    assert!(
        log.contains("(restart); recovering with recent search"),
        "{log}"
    );
}
