//! Replays resume: a replay killed with SIGKILL continues, on restart, from the
//! position up to which its first run had every line settled, re-reading at
//! most a batch or two; every post is committed exactly once overall and the
//! malformed lines before the position are not dead-lettered again.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use tweetpipe::sample::{SampleOptions, write_sample};

const BIN: &str = env!("CARGO_BIN_EXE_tweetpipe");

/// The batch size of the runs.
const MAX_ROWS: usize = 500;

fn config(dir: &Path) -> std::path::PathBuf {
    let path = dir.join("tweetpipe.toml");
    std::fs::write(
        &path,
        format!(
            r#"
[source.replay]
path = "posts.jsonl"

[broker]
kind = "embedded"
capacity = 2000

# Positions settled by the acks themselves: with the spool on, a line is
# settled once the spool holds it (the spool's tests cover its redelivery).
[broker.spool]
enabled = false

[batch]
max_rows = {MAX_ROWS}
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

fn row_ids(db: &Path) -> BTreeSet<String> {
    let Ok(db) = rusqlite::Connection::open(db) else {
        return BTreeSet::new();
    };
    let Ok(mut statement) = db.prepare("SELECT id FROM posts") else {
        return BTreeSet::new();
    };
    statement
        .query_map([], |row| row.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

/// The dead letters' messages, as text comparable with [`letter_key`].
fn letters(path: &Path) -> Vec<String> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Vec::new();
    };
    text.lines()
        .map(|line| {
            let letter: serde_json::Value = serde_json::from_str(line).unwrap();
            match &letter["message"] {
                serde_json::Value::String(text) if letter["message_raw"] == true => text.clone(),
                embedded => embedded.to_string(),
            }
        })
        .collect()
}

fn letter_key(line: &str) -> String {
    match serde_json::from_str::<serde_json::Value>(line) {
        Ok(value) => value.to_string(),
        Err(_) => line.to_owned(),
    }
}

fn summary_count(summary: &str, label: &str) -> u64 {
    summary
        .lines()
        .find_map(|line| {
            let (name, value) = line.trim().rsplit_once(' ')?;
            (name.trim() == label).then(|| value.parse().ok())?
        })
        .unwrap_or_else(|| panic!("no {label:?} in the summary:\n{summary}"))
}

fn run(config: &Path, args: &[&str]) -> String {
    let output = Command::new(BIN)
        .args(["run", "--config"])
        .arg(config)
        .args(args)
        .output()
        .unwrap();
    let summary = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{summary}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    summary
}

#[test]
fn a_replay_killed_halfway_resumes_where_every_line_was_settled() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = Vec::new();
    write_sample(
        &SampleOptions {
            count: 30_000,
            seed: 33,
            ..SampleOptions::default()
        },
        &mut text,
    )
    .unwrap();
    std::fs::write(dir.path().join("posts.jsonl"), &text).unwrap();
    // Every line of the file (blank ones too: positions count them), with its id.
    let lines: Vec<(String, Option<String>)> = String::from_utf8(text)
        .unwrap()
        .lines()
        .map(|line| {
            let id = (!line.trim().is_empty())
                .then(|| tweetpipe::post::decode(line).ok().map(|post| post.id))
                .flatten();
            (line.to_owned(), id)
        })
        .collect();
    let is_malformed =
        |line: &str| !line.trim().is_empty() && tweetpipe::post::decode(line).is_err();
    let all_ids: BTreeSet<&str> = lines.iter().filter_map(|(_, id)| id.as_deref()).collect();
    let config = config(dir.path());
    let db = dir.path().join("posts.db");
    let dead = dir.path().join("dead.jsonl");

    // First run: SIGKILL once about half the posts are committed.
    let mut child = Command::new(BIN)
        .args(["run", "--quiet", "--config"])
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    while row_ids(&db).len() < all_ids.len() / 2 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the first run never got halfway"
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "the first run ended before it was killed"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    child.kill().unwrap();
    child.wait().unwrap();

    let state: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("replay-positions.json")).unwrap(),
    )
    .unwrap();
    let entry = state["replays"]
        .as_object()
        .unwrap()
        .values()
        .next()
        .unwrap()
        .clone();
    let recorded = entry["line"].as_u64().unwrap() as usize;
    let committed = row_ids(&db);
    let first_letters = letters(&dead);
    let mut lettered: BTreeMap<String, usize> = BTreeMap::new();
    for letter in &first_letters {
        *lettered.entry(letter.clone()).or_default() += 1;
    }
    // The recorded position is settled: every line before it is committed or
    // dead-lettered (not merely read).
    for (number, (line, id)) in lines[..recorded].iter().enumerate() {
        match id {
            Some(id) => assert!(
                committed.contains(id),
                "line {} is recorded as settled but its row is missing",
                number + 1
            ),
            None if is_malformed(line) => assert!(
                lettered.contains_key(&letter_key(line)),
                "line {} is recorded as settled but not dead-lettered",
                number + 1
            ),
            None => {}
        }
    }
    // What the first run had really settled: the longest prefix in the table
    // or the dead letters.
    let settled = lines
        .iter()
        .position(|(line, id)| match id {
            Some(id) => !committed.contains(id),
            None => is_malformed(line) && !lettered.contains_key(&letter_key(line)),
        })
        .unwrap_or(lines.len());
    let reread = settled - recorded;
    eprintln!(
        "killed with {} of {} ids committed; settled prefix {settled} lines, recorded {recorded}: {reread} settled lines read again",
        committed.len(),
        all_ids.len()
    );
    assert!(
        recorded > 0 && recorded < lines.len(),
        "recorded {recorded} of {} lines",
        lines.len()
    );
    // The position is written every 10 ms (WRITE_EVERY) off the hot path, so
    // what is read again is what the run settled since its last write: a few
    // batches when the machine is idle, more when the writer waits for a core.
    // A tenth of the file still tells a resume from a start at line one.
    assert!(
        reread <= lines.len() / 10,
        "the second run re-reads {reread} lines the first had settled (more than a tenth of the file)"
    );

    // Second run: continues after the recorded line, to the end.
    let summary = run(&config, &[]);
    assert!(
        summary.contains(&format!("at line {}", recorded + 1)),
        "the summary says where it resumed:\n{summary}"
    );
    let after: Vec<&(String, Option<String>)> = lines[recorded..]
        .iter()
        .filter(|(line, _)| !line.trim().is_empty())
        .collect();
    assert_eq!(summary_count(&summary, "posts read") as usize, after.len());
    assert_eq!(
        row_ids(&db)
            .iter()
            .map(String::as_str)
            .collect::<BTreeSet<_>>(),
        all_ids
    );

    // The second run dead-letters exactly the malformed lines after the
    // position: none before it is dead-lettered again.
    let all_letters = letters(&dead);
    let mut second: Vec<&str> = all_letters[first_letters.len()..]
        .iter()
        .map(String::as_str)
        .collect();
    second.sort_unstable();
    let mut expected: Vec<String> = after
        .iter()
        .filter(|(line, _)| is_malformed(line))
        .map(|(line, _)| letter_key(line))
        .collect();
    expected.sort_unstable();
    assert!(!expected.is_empty() && lines[..recorded].iter().any(|(line, _)| is_malformed(line)));
    assert_eq!(second, expected);

    // A third run has nothing new to read; --from-start reads it all again.
    let summary = run(&config, &[]);
    assert_eq!(summary_count(&summary, "posts read"), 0, "{summary}");
    assert!(summary.contains("nothing new to read"), "{summary}");
    let summary = run(&config, &["--from-start"]);
    let non_blank = lines
        .iter()
        .filter(|(line, _)| !line.trim().is_empty())
        .count();
    assert_eq!(summary_count(&summary, "posts read") as usize, non_blank);
    assert_eq!(
        summary_count(&summary, "rows written"),
        0,
        "all duplicates: {summary}"
    );
}
