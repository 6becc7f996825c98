//! End-to-end tests of the embedded default: replay → queue → chain → batcher → SQLite.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tweetpipe::config::Config;
use tweetpipe::plugins::LoadedChain;
use tweetpipe::sample::{SampleOptions, write_sample};

mod support;

const BIN: &str = env!("CARGO_BIN_EXE_tweetpipe");

/// A scratch directory with a sample file and a config pointing at it.
struct Scenario {
    dir: tempfile::TempDir,
}

impl Scenario {
    fn new(count: usize, seed: u64) -> Scenario {
        let dir = tempfile::tempdir().unwrap();
        let mut file = std::fs::File::create(dir.path().join("posts.jsonl")).unwrap();
        write_sample(
            &SampleOptions {
                count,
                seed,
                ..SampleOptions::default()
            },
            &mut file,
        )
        .unwrap();
        let scenario = Scenario { dir };
        scenario.write_config("");
        scenario
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes `tweetpipe.toml`; `replay_extra` is appended to `[source.replay]`.
    fn write_config(&self, replay_extra: &str) {
        self.write_config_with(replay_extra, "");
    }

    /// Like [`Scenario::write_config`], with extra tables (e.g. `[[plugins]]`) at the end.
    fn write_config_with(&self, replay_extra: &str, tables: &str) {
        let config = format!(
            r#"
[source.replay]
path = "posts.jsonl"
{replay_extra}

[broker]
kind = "embedded"
capacity = 256

[batch]
max_rows = 100
max_age_ms = 200

[sink.sqlite]
path = "out/posts.db"

[dead_letter]
path = "out/dead.jsonl"

[logging]
level = "warn"

{tables}
"#
        );
        std::fs::write(self.path("tweetpipe.toml"), config).unwrap();
    }

    fn config(&self) -> Config {
        Config::load(&self.path("tweetpipe.toml")).unwrap()
    }

    /// Ids in the table, with how many rows each has.
    fn rows(&self) -> BTreeMap<String, i64> {
        let db = rusqlite::Connection::open(self.path("out/posts.db")).unwrap();
        let mut statement = db
            .prepare("SELECT id, count(*) FROM posts GROUP BY id")
            .unwrap();
        statement
            .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    }

    fn row_count(&self) -> i64 {
        let db = rusqlite::Connection::open(self.path("out/posts.db")).unwrap();
        db.query_row("SELECT count(*) FROM posts", [], |row| row.get(0))
            .unwrap()
    }

    fn dead_letters(&self) -> Vec<serde_json::Value> {
        match std::fs::read_to_string(self.path("out/dead.jsonl")) {
            Ok(text) => text
                .lines()
                .map(|line| serde_json::from_str(line).unwrap())
                .collect(),
            Err(_) => Vec::new(),
        }
    }

    /// What the input holds: ids of decodable posts, and the undecodable lines.
    fn input(&self) -> (BTreeSet<String>, Vec<String>) {
        let text = std::fs::read_to_string(self.path("posts.jsonl")).unwrap();
        let mut ids = BTreeSet::new();
        let mut malformed = Vec::new();
        for line in text.lines().filter(|line| !line.trim().is_empty()) {
            match tweetpipe::post::decode(line) {
                Ok(post) => {
                    ids.insert(post.id);
                }
                Err(_) => malformed.push(line.to_owned()),
            }
        }
        (ids, malformed)
    }
}

fn run_pipeline(config: &Config) -> tweetpipe::pipeline::RunOutcome {
    let chain = LoadedChain::load(&config.plugins).unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime
        .block_on(tweetpipe::pipeline::run(
            config,
            chain,
            std::future::pending(),
        ))
        .unwrap()
}

#[test]
fn every_input_id_is_in_the_table_or_the_dead_letters_once() {
    let scenario = Scenario::new(1500, 7);
    let (ids, malformed) = scenario.input();
    assert!(
        !malformed.is_empty(),
        "the sample should hold malformed lines"
    );

    let outcome = run_pipeline(&scenario.config());

    let rows = scenario.rows();
    let in_table: BTreeSet<String> = rows.keys().cloned().collect();
    assert_eq!(in_table, ids, "every decodable post has exactly its row");
    assert!(rows.values().all(|count| *count == 1));

    let letters = scenario.dead_letters();
    assert_eq!(letters.len(), malformed.len());
    for letter in &letters {
        assert_eq!(letter["stage"], "decode");
        assert!(
            !letter["error"].as_str().unwrap_or_default().is_empty(),
            "a dead letter says why: {letter}"
        );
    }
    let stats = outcome.stats;
    assert_eq!(stats.written, ids.len() as u64);
    assert_eq!(stats.written + stats.duplicates, stats.kept);
    assert_eq!(stats.kept + stats.malformed, stats.read);
    assert_eq!(
        stats.acked, stats.read,
        "every message is acked exactly once"
    );
    assert!(stats.duplicates > 0, "the sample holds duplicate posts");
    assert_eq!(outcome.abandoned, 0);
}

/// `[sink.null]` stores nothing, yet every message is settled: rows acked as
/// written, malformed lines dead-lettered as with any other sink.
#[test]
fn the_null_sink_acks_every_row_and_stores_nothing() {
    let scenario = Scenario::new(1500, 7);
    let (ids, malformed) = scenario.input();
    let config = std::fs::read_to_string(scenario.path("tweetpipe.toml"))
        .unwrap()
        .replace("[sink.sqlite]\npath = \"out/posts.db\"", "[sink.null]");
    std::fs::write(scenario.path("tweetpipe.toml"), config).unwrap();

    let outcome = run_pipeline(&scenario.config());

    assert!(matches!(outcome.sink, tweetpipe::config::SinkKind::Null(_)));
    assert!(!scenario.path("out/posts.db").exists());
    assert_eq!(scenario.dead_letters().len(), malformed.len());
    let stats = outcome.stats;
    assert_eq!(stats.kept, stats.read - stats.malformed);
    assert_eq!(
        stats.written, stats.kept,
        "every kept row counts as written"
    );
    assert!(
        stats.written > ids.len() as u64,
        "repeats are not deduplicated"
    );
    assert_eq!(stats.duplicates, 0);
    assert_eq!(stats.acked, stats.read);
}

/// When the replay has ended the last batch is written at once, not after
/// `max_age`: with an hour-long `max_age` and a batch (and queue) larger than
/// the input, the run still ends (a bound of two minutes stands for "did not wait").
#[test]
fn the_last_batch_of_a_replay_does_not_wait_for_max_age() {
    let scenario = Scenario::new(300, 5);
    let (ids, _) = scenario.input();
    let config = std::fs::read_to_string(scenario.path("tweetpipe.toml"))
        .unwrap()
        .replace("capacity = 256", "capacity = 100000")
        .replace(
            "max_rows = 100\nmax_age_ms = 200",
            "max_rows = 100000\nmax_age_ms = 3600000",
        );
    std::fs::write(scenario.path("tweetpipe.toml"), config).unwrap();
    let config = scenario.config();
    assert_eq!(config.batch.max_age, Duration::from_secs(3600));

    let chain = LoadedChain::load(&config.plugins).unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let outcome = runtime
        .block_on(async {
            tokio::time::timeout(
                Duration::from_secs(120),
                tweetpipe::pipeline::run(&config, chain, std::future::pending()),
            )
            .await
        })
        .expect("the run waited for max_age after the replay ended")
        .unwrap();

    let in_table: BTreeSet<String> = scenario.rows().keys().cloned().collect();
    assert_eq!(in_table, ids);
    assert_eq!(outcome.stats.acked, outcome.stats.read);
}

#[test]
fn a_second_run_of_the_same_input_adds_no_rows() {
    let scenario = Scenario::new(400, 11);
    let first = run_pipeline(&scenario.config());
    let rows_after_first = scenario.row_count();
    // Read it all again (`--from-start`), not from where the first run ended.
    let mut config = scenario.config();
    config.source.replay.as_mut().unwrap().from_start = true;
    let second = run_pipeline(&config);
    assert_eq!(scenario.row_count(), rows_after_first);
    assert_eq!(second.stats.written, 0);
    assert_eq!(second.stats.duplicates, first.stats.kept);
}

#[test]
fn a_locked_database_delays_rows_but_loses_none() {
    let scenario = Scenario::new(300, 3);
    // Create the table, then hold a write lock while the pipeline runs.
    run_pipeline(&scenario.config());
    let db_path = scenario.path("out/posts.db");
    let blocker = rusqlite::Connection::open(&db_path).unwrap();
    blocker.execute_batch("DELETE FROM posts").unwrap();
    blocker.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let release = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(2));
        blocker.execute_batch("COMMIT").unwrap();
    });
    let mut config = scenario.config();
    config.source.replay.as_mut().unwrap().from_start = true;
    let outcome = run_pipeline(&config);
    release.join().unwrap();
    let (ids, _) = scenario.input();
    let in_table: BTreeSet<String> = scenario.rows().into_keys().collect();
    assert_eq!(in_table, ids);
    assert_eq!(outcome.stats.acked, outcome.stats.read);
}

#[test]
fn check_config_prints_the_resolved_pipeline() {
    let scenario = Scenario::new(10, 1);
    let output = Command::new(BIN)
        .args(["check-config", "--config"])
        .arg(scenario.path("tweetpipe.toml"))
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let text = String::from_utf8(output.stdout).unwrap();
    for expected in [
        "source        replay",
        "posts.jsonl",
        "broker        embedded",
        "plugins       none",
        "batch         flush at 100 rows",
        "sink          sqlite",
        "dead letters",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
}

fn check_config_error(config: &str) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, config).unwrap();
    let output = Command::new(BIN)
        .args(["check-config", "--config"])
        .arg(&path)
        .output()
        .unwrap();
    (
        output.status.code().unwrap(),
        String::from_utf8(output.stderr).unwrap(),
    )
}

const VALID: &str = r#"
[source.replay]
path = "posts.jsonl"

[sink.sqlite]
path = "out.db"

[dead_letter]
path = "dead.jsonl"
"#;

#[test]
fn unknown_key_is_reported_with_position_and_key_path() {
    let config = VALID.replace("[sink.sqlite]", "[batch]\nmax_rowz = 5\n\n[sink.sqlite]");
    let (code, stderr) = check_config_error(&config);
    assert_eq!(code, 2);
    assert!(stderr.contains("bad.toml:6:1"), "{stderr}");
    assert!(stderr.contains("batch.max_rowz"), "{stderr}");
    assert!(stderr.contains("unknown field `max_rowz`"), "{stderr}");
    assert!(
        stderr.contains("max_rows"),
        "lists what is expected: {stderr}"
    );
}

#[test]
fn wrong_type_is_reported_with_position_and_expectation() {
    let config = VALID.replace("path = \"out.db\"", "path = \"out.db\"\ntable = 7");
    let (code, stderr) = check_config_error(&config);
    assert_eq!(code, 2);
    assert!(stderr.contains("bad.toml:7:9"), "{stderr}");
    assert!(stderr.contains("sink.sqlite.table"), "{stderr}");
    assert!(stderr.contains("expected a string"), "{stderr}");
}

#[test]
fn missing_sink_and_two_sinks_are_explained() {
    let (code, stderr) = check_config_error(&VALID.replace("[sink.sqlite]\npath = \"out.db\"", ""));
    assert_eq!(code, 2);
    assert!(stderr.contains("no sink is configured"), "{stderr}");
    let (code, stderr) = check_config_error(&format!("{VALID}\n[sink.stdout]\n"));
    assert_eq!(code, 2);
    assert!(stderr.contains("keep exactly one"), "{stderr}");
}

#[test]
fn missing_required_key_is_named() {
    let (code, stderr) = check_config_error(&VALID.replace("path = \"dead.jsonl\"", ""));
    assert_eq!(code, 2);
    assert!(stderr.contains("dead_letter.path"), "{stderr}");
    assert!(stderr.contains("required"), "{stderr}");
}

#[test]
fn missing_input_file_is_a_config_error() {
    let (code, stderr) = check_config_error(VALID);
    assert_eq!(code, 2);
    assert!(stderr.contains("source.replay.path"), "{stderr}");
    assert!(stderr.contains("posts.jsonl"), "{stderr}");
}

#[test]
fn version_and_help_exit_zero_and_bad_usage_exits_two() {
    let version = Command::new(BIN).arg("--version").output().unwrap();
    assert!(version.status.success());
    assert!(String::from_utf8_lossy(&version.stdout).contains(env!("CARGO_PKG_VERSION")));
    let help = Command::new(BIN).arg("--help").output().unwrap();
    assert!(help.status.success());
    assert!(String::from_utf8_lossy(&help.stdout).contains("check-config"));
    let bad = Command::new(BIN).arg("frobnicate").output().unwrap();
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn run_prints_a_summary_with_the_classic_questions() {
    let scenario = Scenario::new(1500, 7);
    let output = Command::new(BIN)
        .args(["run", "--config"])
        .arg(scenario.path("tweetpipe.toml"))
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let text = String::from_utf8(output.stdout).unwrap();
    for expected in [
        "posts read",
        "dead-lettered",
        "rows written",
        "duplicates skipped",
        "posts/s",
        "Posts per hour",
        "Top 5 user locations",
        "Top 5 hashtags",
    ] {
        assert!(text.contains(expected), "missing {expected:?} in:\n{text}");
    }
    // The timeline: when the first post was read and the sink last committed.
    let after_start = |label: &str| -> f64 {
        let line = text
            .lines()
            .find(|line| line.trim_start().starts_with(label))
            .unwrap_or_else(|| panic!("no {label:?} line in:\n{text}"));
        let mut words = line[line.find(label).unwrap() + label.len()..].split_whitespace();
        let value: f64 = words.next().unwrap().parse().unwrap();
        match words.next() {
            Some("ms") => value / 1000.0,
            Some("s") => value,
            unit => panic!("{unit:?} in {line:?}"),
        }
    };
    let first_read = after_start("first post read");
    let last_commit = after_start("last commit");
    assert!(
        0.0 < first_read && first_read <= last_commit,
        "first read at {first_read} s, last commit at {last_commit} s:\n{text}"
    );
}

/// Sends SIGTERM to a child process.
fn terminate(child: &std::process::Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

fn wait_for_rows(path: &Path, deadline: Duration) {
    let started = Instant::now();
    while started.elapsed() < deadline {
        if let Ok(db) = rusqlite::Connection::open(path)
            && let Ok(count) =
                db.query_row("SELECT count(*) FROM posts", [], |row| row.get::<_, i64>(0))
            && count > 0
        {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("no rows appeared within {deadline:?}");
}

#[test]
fn sigterm_mid_replay_drains_cleanly_and_a_rerun_completes_the_input_once() {
    let scenario = Scenario::new(2000, 9);
    // Slow the replay so SIGTERM lands in the middle of it.
    scenario.write_config("rate = 400.0");
    let child = Command::new(BIN)
        .args(["run", "--config"])
        .arg(scenario.path("tweetpipe.toml"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_rows(&scenario.path("out/posts.db"), Duration::from_secs(60));
    terminate(&child);
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{output:?}");
    let summary = String::from_utf8(output.stdout).unwrap();
    assert!(summary.contains("interrupted"), "{summary}");

    let (ids, malformed) = scenario.input();
    let partial = scenario.rows();
    assert!(!partial.is_empty() && partial.len() < ids.len());
    assert!(partial.values().all(|count| *count == 1));

    scenario.write_config("");
    let output = Command::new(BIN)
        .args(["run", "--config"])
        .arg(scenario.path("tweetpipe.toml"))
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let rows = scenario.rows();
    assert_eq!(rows.keys().cloned().collect::<BTreeSet<_>>(), ids);
    assert!(
        rows.values().all(|count| *count == 1),
        "exactly one row per id"
    );
    // Malformed lines read in both runs are dead-lettered each time, never lost.
    let letters = scenario.dead_letters();
    assert!(letters.len() >= malformed.len());
}

/// The SDK's ten-line plugin (`#[filter] fn only_english_with_links`) in a real run.
#[test]
fn the_ten_line_plugin_filters_a_real_run() {
    let scenario = Scenario::new(800, 21);
    let plugin = support::wasm::plugin("only_english_with_links");
    scenario.write_config_with(
        "",
        &format!("[[plugins]]\npath = {:?}\n", plugin.display().to_string()),
    );
    let output = Command::new(BIN)
        .args(["run", "--config"])
        .arg(scenario.path("tweetpipe.toml"))
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let summary = String::from_utf8(output.stdout).unwrap();
    assert!(summary.contains("dropped by plugins"), "{summary}");

    let db = rusqlite::Connection::open(scenario.path("out/posts.db")).unwrap();
    let (rows, off_filter): (i64, i64) = db
        .query_row(
            "SELECT count(*), sum(lang != 'en' OR json_array_length(urls) = 0) FROM posts",
            [],
            |row| Ok((row.get(0)?, row.get::<_, Option<i64>>(1)?.unwrap_or(0))),
        )
        .unwrap();
    assert!(rows > 0, "some English posts with links are kept");
    assert_eq!(off_filter, 0, "only English posts with links are kept");

    // Every decodable post is either a row or was dropped by the plugin.
    let (ids, _) = scenario.input();
    let expected: BTreeSet<String> = std::fs::read_to_string(scenario.path("posts.jsonl"))
        .unwrap()
        .lines()
        .filter_map(|line| tweetpipe::post::decode(line).ok())
        .filter(|post| post.lang == "en" && !post.urls.is_empty())
        .map(|post| post.id)
        .collect();
    assert!(expected.is_subset(&ids));
    assert_eq!(
        scenario.rows().into_keys().collect::<BTreeSet<_>>(),
        expected
    );
}

/// A plugin that traps on one post: only that post is dead-lettered, with the
/// plugin's name and the panic message; every other post is committed.
#[test]
fn a_poison_post_is_dead_lettered_by_name_and_the_rest_commit() {
    let scenario = Scenario::new(500, 4);
    let (ids, malformed) = scenario.input();
    let poison = ids.iter().nth(137).unwrap().clone();
    let plugin = support::wasm::plugin("hostile_panic");
    scenario.write_config_with(
        "",
        &format!(
            "[[plugins]]\nname = \"poisoned\"\npath = {:?}\nconfig = {{ poison = {poison:?} }}\n",
            plugin.display().to_string()
        ),
    );
    let outcome = run_pipeline(&scenario.config());
    let letters = scenario.dead_letters();
    let plugin_letters: Vec<_> = letters
        .iter()
        .filter(|letter| letter["stage"] == "plugin")
        .collect();
    assert_eq!(plugin_letters.len(), 1, "{letters:?}");
    let letter = plugin_letters[0];
    assert_eq!(letter["plugin"], "poisoned");
    assert_eq!(letter["post_id"], poison.as_str());
    assert!(
        letter["error"].as_str().unwrap().contains("poison post"),
        "the dead letter carries the plugin's panic message: {letter}"
    );
    assert_eq!(letters.len(), malformed.len() + 1);
    let mut expected = ids.clone();
    expected.remove(&poison);
    assert_eq!(
        scenario.rows().into_keys().collect::<BTreeSet<_>>(),
        expected
    );
    assert_eq!(outcome.stats.failed, 1);
    assert_eq!(outcome.stats.acked, outcome.stats.read);
}

/// `make run`'s job: the reference config, as shipped, runs filter → sentiment →
/// pii-scrub over the sample posts, and the summary shows what they did.
#[test]
fn the_reference_config_runs_the_shipped_chain() {
    let reference = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/tweetpipe.toml");
    let mut config = Config::load(&reference).unwrap();
    let names: Vec<String> = config
        .plugins
        .iter()
        .map(|plugin| plugin.display_name())
        .collect();
    assert_eq!(names, ["filter", "sentiment", "pii-scrub"]);
    for plugin in &mut config.plugins {
        let file = plugin
            .path
            .file_stem()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        plugin.path = support::wasm::plugin(&file);
    }
    let out = tempfile::tempdir().unwrap();
    let sqlite = config.sink.sqlite.as_mut().unwrap();
    sqlite.path = out.path().join("tweetpipe.db");
    config.dead_letter.path = Some(out.path().join("dead-letters.jsonl"));

    let outcome = run_pipeline(&config);
    let stats = outcome.stats;
    assert!(stats.kept > 0 && stats.dropped > 0, "{stats:?}");
    assert_eq!(stats.failed, 0);
    assert_eq!(stats.kept + stats.dropped + stats.malformed, stats.read);
    let summary = tweetpipe::summary::render(&outcome);
    for expected in [
        "dropped by plugins",
        "Top 5 hashtags",
        "Sentiment",
        "neutral",
        "positive",
        "negative",
    ] {
        assert!(
            summary.contains(expected),
            "missing {expected:?}:\n{summary}"
        );
    }
    let db = rusqlite::Connection::open(out.path().join("tweetpipe.db")).unwrap();
    let (rows, unscored, unmatched, raw_handles): (i64, i64, i64, i64) = db
        .query_row(
            "SELECT count(*), \
                    sum(json_extract(attrs, '$.sentiment_label') IS NULL), \
                    sum(coalesce(json_array_length(attrs, '$.matched_rules'), 0) = 0), \
                    sum(user_name LIKE 'synth_%') \
             FROM posts",
            [],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)),
        )
        .unwrap();
    assert_eq!(rows as u64, stats.written);
    assert_eq!(unscored, 0, "every row carries a sentiment label");
    assert_eq!(unmatched, 0, "every row matched a filter rule");
    assert_eq!(
        raw_handles, 0,
        "no author handle reaches the table unhashed"
    );
}
