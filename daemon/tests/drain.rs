//! SIGTERM at random moments: every message a source read is committed or
//! dead-lettered before the daemon exits, and the run summary adds up.
//!
//! Regression for "SIGTERM loses the last post read": the replay and the X
//! source counted a line as read and then returned on cancellation before
//! publishing it, so the summary said N read while N-1 reached the sink or the
//! dead letters. Each try runs the real binary, sends SIGTERM after a seeded
//! random delay, and checks the summary's arithmetic and that the first N lines
//! of the input (the N it read) are each in the table or the dead-letter file,
//! once, and nothing else is.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use support::fake_x::FakeX;
use tweetpipe::sample::{SampleOptions, write_sample};

const BIN: &str = env!("CARGO_BIN_EXE_tweetpipe");

/// The input's non-blank lines, each with its post id when it decodes (decoded
/// on first need: a debug build decodes 200,000 posts slowly).
struct Input {
    lines: Vec<(String, std::cell::OnceCell<Option<String>>)>,
}

impl Input {
    fn sample(count: usize, seed: u64) -> Input {
        let mut out = Vec::new();
        write_sample(
            &SampleOptions {
                count,
                seed,
                ..SampleOptions::default()
            },
            &mut out,
        )
        .unwrap();
        Input::from_lines(
            String::from_utf8(out)
                .unwrap()
                .lines()
                .filter(|line| !line.trim().is_empty())
                .map(str::to_owned),
        )
    }

    fn from_lines(lines: impl IntoIterator<Item = String>) -> Input {
        let lines = lines
            .into_iter()
            .map(|line| (line, std::cell::OnceCell::new()))
            .collect();
        Input { lines }
    }

    /// The first `n` lines, each with its post id when it decodes.
    fn first(&self, n: usize) -> impl Iterator<Item = (&str, Option<&str>)> {
        self.lines[..n].iter().map(|(line, id)| {
            let id = id.get_or_init(|| tweetpipe::post::decode(line).ok().map(|post| post.id));
            (line.as_str(), id.as_deref())
        })
    }

    fn write(&self, path: &Path) {
        let mut text = String::new();
        for (line, _) in &self.lines {
            text.push_str(line);
            text.push('\n');
        }
        std::fs::write(path, text).unwrap();
    }
}

/// The counters of a run summary, by label.
fn summary_counts(summary: &str) -> BTreeMap<String, u64> {
    summary
        .lines()
        .filter_map(|line| {
            let line = line.trim();
            let (label, value) = line.rsplit_once(' ')?;
            Some((label.trim().to_owned(), value.parse().ok()?))
        })
        .collect()
}

/// What one try left behind, checked against the first `read` lines of `input`.
fn check_try(input: &Input, read: usize, db: &Path, dead: &Path, summary: &str, what: &str) {
    let counts = summary_counts(summary);
    let count = |label: &str| {
        *counts
            .get(label)
            .unwrap_or_else(|| panic!("{what}: no {label:?} in the summary:\n{summary}"))
    };
    assert_eq!(count("posts read") as usize, read);
    assert_eq!(
        count("kept")
            + count("dropped by plugins")
            + count("failed in plugins")
            + count("malformed"),
        count("posts read"),
        "{what}: read = kept + dropped + failed + malformed:\n{summary}"
    );
    assert_eq!(
        count("rows written") + count("duplicates skipped") + count("rows rejected by sink"),
        count("kept"),
        "{what}: every kept row is written or a duplicate:\n{summary}"
    );
    assert_eq!(
        count("dead-lettered"),
        count("malformed") + count("failed in plugins") + count("rows rejected by sink"),
        "{what}:\n{summary}"
    );

    let mut expected_ids: BTreeSet<&str> = BTreeSet::new();
    let mut expected_letters: BTreeMap<String, usize> = BTreeMap::new();
    for (line, id) in input.first(read) {
        if let Some(id) = id {
            expected_ids.insert(id);
        } else {
            *expected_letters.entry(letter_key(line)).or_default() += 1;
        }
    }

    let rows: BTreeMap<String, i64> = if db.exists() {
        let db = rusqlite::Connection::open(db).unwrap();
        let mut statement = db
            .prepare("SELECT id, count(*) FROM posts GROUP BY id")
            .unwrap();
        statement
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    } else {
        BTreeMap::new()
    };
    assert!(rows.values().all(|count| *count == 1), "{what}");
    let in_table: BTreeSet<&str> = rows.keys().map(String::as_str).collect();
    let missing: Vec<_> = expected_ids.difference(&in_table).take(5).collect();
    let extra: Vec<_> = in_table.difference(&expected_ids).take(5).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "{what}: {read} lines read; ids read but not in the table: {missing:?}; \
         in the table but not read: {extra:?}\n{summary}"
    );

    let mut letters: BTreeMap<String, usize> = BTreeMap::new();
    if let Ok(text) = std::fs::read_to_string(dead) {
        for line in text.lines() {
            let letter: serde_json::Value = serde_json::from_str(line).unwrap();
            assert_eq!(letter["stage"], "decode", "{what}: {letter}");
            let message = match &letter["message"] {
                serde_json::Value::String(text) if letter["message_raw"] == true => text.clone(),
                embedded => embedded.to_string(),
            };
            *letters.entry(message).or_default() += 1;
        }
    }
    assert_eq!(
        letters, expected_letters,
        "{what}: each malformed line read is dead-lettered exactly once"
    );
}

/// A malformed line as its dead letter holds it: JSON embedded (so compared
/// as parsed JSON), anything else as the text.
fn letter_key(line: &str) -> String {
    match serde_json::from_str::<serde_json::Value>(line) {
        Ok(value) => value.to_string(),
        Err(_) => line.to_owned(),
    }
}

fn terminate(pid: u32) {
    let status = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Waits for the child, failing (and killing it) after `limit`.
fn wait_with_limit(mut child: std::process::Child, limit: Duration) -> std::process::Output {
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > limit {
            let _ = child.kill();
            let output = child.wait_with_output().unwrap();
            panic!(
                "still running {limit:?} after SIGTERM; stderr:\n{}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    child.wait_with_output().unwrap()
}

fn wait_for_rows(db: &Path) {
    let started = Instant::now();
    loop {
        if let Ok(db) = rusqlite::Connection::open(db)
            && let Ok(count) =
                db.query_row("SELECT count(*) FROM posts", [], |row| row.get::<_, i64>(0))
            && count > 0
        {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no rows within 20 s"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn write_config(dir: &Path, source: &str) -> PathBuf {
    let path = dir.join("tweetpipe.toml");
    std::fs::write(
        &path,
        format!(
            r#"
{source}

[broker]
kind = "embedded"
capacity = 2000

# A small spool, so a replay is held back by the pipeline (as by the queue
# without one) and SIGTERM finds it mid-file.
[broker.spool]
max_bytes = 65536

[batch]
max_rows = 500
max_age_ms = 200

[sink.sqlite]
path = "posts.db"

[dead_letter]
path = "dead.jsonl"

[logging]
level = "warn"
"#
        ),
    )
    .unwrap();
    path
}

#[test]
fn sigterm_at_random_moments_of_a_replay_settles_every_line_read() {
    let started = Instant::now();
    let input = Input::sample(30_000, 20);
    let shared = tempfile::tempdir().unwrap();
    let posts = shared.path().join("posts.jsonl");
    input.write(&posts);
    eprintln!("input ready after {:?}", started.elapsed());
    let seed = 2020;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut reads = Vec::new();
    for attempt in 0..10 {
        let delay = Duration::from_millis(rng.random_range(0..700));
        let what = format!("try {attempt} (seed {seed}, SIGTERM after {delay:?})");
        let dir = tempfile::tempdir().unwrap();
        let config = write_config(
            dir.path(),
            &format!("[source.replay]\npath = {:?}", posts.display().to_string()),
        );
        let child = Command::new(BIN)
            .args(["run", "--config"])
            .arg(&config)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // From the first committed batch on, the daemon handles SIGTERM.
        wait_for_rows(&dir.path().join("posts.db"));
        std::thread::sleep(delay);
        terminate(child.id());
        let output = wait_with_limit(child, Duration::from_secs(20));
        let summary = String::from_utf8_lossy(&output.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{what}: {stderr}\n{summary}");
        let read = summary_counts(&summary)
            .get("posts read")
            .copied()
            .unwrap_or_else(|| panic!("{what}: no summary:\n{summary}\n{stderr}"))
            as usize;
        check_try(
            &input,
            read,
            &dir.path().join("posts.db"),
            &dir.path().join("dead.jsonl"),
            &summary,
            &what,
        );
        reads.push(read);
    }
    eprintln!(
        "lines read before SIGTERM drained, per try: {reads:?} ({:?} in all)",
        started.elapsed()
    );
    assert!(
        reads
            .iter()
            .filter(|read| **read < input.lines.len())
            .count()
            >= 5,
        "most tries must stop mid-replay to test anything: {reads:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_at_random_moments_of_the_x_stream_settles_every_post_received() {
    let script = Input::sample(20_000, 21);
    // The X source publishes what is not an error object; the fake sends only those.
    let input = Input::from_lines(
        script
            .lines
            .into_iter()
            .map(|(line, _)| line)
            .filter(|line| {
                matches!(
                    tweetpipe::sources::x::stream::classify(line),
                    tweetpipe::sources::x::stream::Line::Post
                )
            }),
    );
    let seed = 2021;
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut reads = Vec::new();
    for attempt in 0..3 {
        let delay = Duration::from_millis(rng.random_range(50..600));
        let what = format!("X try {attempt} (seed {seed}, SIGTERM after {delay:?})");
        let fake = FakeX::start(input.lines.iter().map(|(line, _)| line.clone()).collect()).await;
        let dir = tempfile::tempdir().unwrap();
        let config = write_config(
            dir.path(),
            &format!(
                "[source.x]\napi_base = \"{}\"\nrules = [{{ value = \"covid\", tag = \"covid\" }}]",
                fake.base()
            ),
        );
        let child = Command::new(BIN)
            .args(["run", "--config"])
            .arg(&config)
            .env("TWEETPIPE_X_BEARER_TOKEN", support::fake_x::TOKEN)
            .env_remove("CREDENTIALS_DIRECTORY")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let started = Instant::now();
        while fake.connections().is_empty() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "{what}: the daemon never connected"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        tokio::time::sleep(delay).await;
        terminate(child.id());
        let output =
            tokio::task::spawn_blocking(move || wait_with_limit(child, Duration::from_secs(20)))
                .await
                .unwrap();
        let summary = String::from_utf8_lossy(&output.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{what}: {stderr}\n{summary}");
        let read = summary_counts(&summary)
            .get("posts read")
            .copied()
            .unwrap_or_else(|| panic!("{what}: no summary:\n{summary}\n{stderr}"))
            as usize;
        assert!(read > 0, "{what}: nothing was read\n{stderr}");
        assert!(
            read <= fake.delivered().len() + 1,
            "{what}: read more than the fake sent"
        );
        check_try(
            &input,
            read,
            &dir.path().join("posts.db"),
            &dir.path().join("dead.jsonl"),
            &summary,
            &what,
        );
        reads.push(read);
    }
    eprintln!("X posts read before SIGTERM drained, per try: {reads:?}");
}
