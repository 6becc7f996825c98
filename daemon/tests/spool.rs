//! The embedded broker's durable spool, attacked from outside: the daemon is
//! SIGKILLed at random moments while a fake X streams into it, and its spool
//! file is truncated or overwritten with garbage before a start.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use rand::{Rng, SeedableRng};
use support::fake_x::{FakeX, TOKEN};
use tweetpipe::sample::{SampleOptions, write_sample};

const BIN: &str = env!("CARGO_BIN_EXE_tweetpipe");

/// `n` v2 stream posts with distinct ids (no malformed lines, no repeats).
fn posts(n: usize, seed: u64) -> Vec<String> {
    let mut out = Vec::new();
    write_sample(
        &SampleOptions {
            count: n,
            seed,
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

fn post_id(line: &str) -> String {
    let value: serde_json::Value = serde_json::from_str(line).unwrap();
    value["data"]["id"].as_str().unwrap().to_owned()
}

fn committed_ids(db: &Path) -> Vec<String> {
    let Ok(db) = rusqlite::Connection::open(db) else {
        return Vec::new();
    };
    let Ok(mut statement) = db.prepare("select id from posts") else {
        return Vec::new();
    };
    statement
        .query_map([], |row| row.get::<_, String>(0))
        .map(|rows| rows.map(Result::unwrap).collect())
        .unwrap_or_default()
}

fn spawn(config: &Path, log: &Path) -> Child {
    Command::new(BIN)
        .args(["run", "--config"])
        .arg(config)
        .env("TWEETPIPE_X_BEARER_TOKEN", TOKEN)
        .env_remove("CREDENTIALS_DIRECTORY")
        .env_remove("STATE_DIRECTORY")
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap()
}

fn wait_until(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + limit;
    while std::time::Instant::now() < deadline {
        if check() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    check()
}

/// Posts streamed, kills, and the allowance for what was still in flight.
const POSTS: usize = 12_000;
const PACE: Duration = Duration::from_millis(2);
const KILLS: usize = 5;
/// Posts handed to a connection this shortly before the kill may still have
/// been in socket buffers or in the commit under way: the daemon never had them
/// on disk. Without the spool, a kill loses everything the sink had not
/// committed, up to `max_age_ms` (2 s here) of posts.
const IN_FLIGHT: Duration = Duration::from_millis(250);

// 12,000 posts at 500/s rather than the 20,000 of the issue, so the test stays
// near 30 s (24 s of streaming plus five restarts).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_moments_loses_no_post_the_daemon_had_received() {
    let script = posts(POSTS, 5);
    let ids: Vec<String> = script.iter().map(|line| post_id(line)).collect();
    let fake = FakeX::start(script).await;
    fake.set_pace(PACE);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("tweetpipe.toml");
    std::fs::write(
        &config,
        format!(
            r#"[source.x]
api_base = "{base}"
rules = [{{ value = "spool", tag = "spool" }}]

[broker]
kind = "embedded"

[batch]
max_rows = 500
max_age_ms = 2000

[sink.sqlite]
path = "posts.db"

[dead_letter]
path = "dead.jsonl"

[metrics]
enabled = false
"#,
            base = fake.base()
        ),
    )
    .unwrap();
    let db = dir.path().join("posts.db");
    let seed: u64 = rand::rng().random();
    eprintln!("kill moments seeded with {seed}");
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);

    let mut kills = Vec::new();
    for round in 0..KILLS {
        let log = dir.path().join(format!("run-{round}.log"));
        let mut child = spawn(&config, &log);
        let connections = fake.connections().len();
        assert!(
            wait_until(Duration::from_secs(20), || fake.connections().len()
                > connections),
            "run {round} never connected: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(rng.random_range(1200..3500)));
        child.kill().unwrap();
        kills.push((fake.connections().len() - 1, tokio::time::Instant::now()));
        child.wait().unwrap();
        std::thread::sleep(Duration::from_millis(rng.random_range(100..600)));
    }
    // A last run streams the rest of the script, then stops cleanly.
    let log = dir.path().join("run-last.log");
    let mut child = spawn(&config, &log);
    let all_sent = wait_until(Duration::from_secs(60), || {
        fake.delivered().last() == Some(&(POSTS - 1))
    });
    assert!(
        all_sent,
        "the fake did not stream the whole script: {}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    let last_connection = fake.connections().len() - 1;
    let deliveries = fake.deliveries();
    let expected_last: BTreeSet<&str> = deliveries
        .iter()
        .filter(|(connection, _, _)| *connection == last_connection)
        .map(|(_, index, _)| ids[*index].as_str())
        .collect();
    assert!(
        wait_until(Duration::from_secs(20), || {
            let committed: BTreeSet<String> = committed_ids(&db).into_iter().collect();
            expected_last.iter().all(|id| committed.contains(*id))
        }),
        "the last run did not commit what it was sent"
    );
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    assert!(child.wait().unwrap().success(), "the last run failed");

    let committed = committed_ids(&db);
    let unique: BTreeSet<&str> = committed.iter().map(String::as_str).collect();
    assert_eq!(unique.len(), committed.len(), "a post was committed twice");
    let sent: BTreeSet<&str> = ids.iter().map(String::as_str).collect();
    assert!(unique.is_subset(&sent), "a row the fake never sent");

    let kill_at: BTreeMap<usize, tokio::time::Instant> = kills.iter().copied().collect();
    let mut missing = Vec::new();
    let mut allowed = 0usize;
    for (connection, index, at) in &deliveries {
        let id = ids[*index].as_str();
        if unique.contains(id) {
            continue;
        }
        match kill_at.get(connection) {
            // In flight when the daemon died: it never had it on disk.
            Some(killed) if *at + IN_FLIGHT >= *killed => allowed += 1,
            _ => missing.push((*connection, *index)),
        }
    }
    assert!(
        missing.is_empty(),
        "{} posts the daemon had received were never committed (connection, script line): {:?}",
        missing.len(),
        &missing[..missing.len().min(20)]
    );
    eprintln!(
        "{} of {} posts committed across {KILLS} kills; {allowed} were in flight at a kill",
        unique.len(),
        deliveries.len()
    );
    // Every kill fell while posts streamed, so the runs did overlap the stream.
    assert!(deliveries.len() >= POSTS, "{}", deliveries.len());
    // Settled means removed: after the clean stop the spool is empty.
    let left: i64 = rusqlite::Connection::open(dir.path().join("spool/spool.db"))
        .unwrap()
        .query_row("select count(*) from spool", [], |row| row.get(0))
        .unwrap();
    assert_eq!(left, 0);
}

/// A spool file with `n` distinct posts, written as the daemon writes it, all
/// in the database file itself (no WAL), as after a checkpoint.
fn write_spool(dir: &Path, lines: &[String]) -> PathBuf {
    let spool = dir.join("spool");
    std::fs::create_dir_all(&spool).unwrap();
    let path = spool.join("spool.db");
    let db = rusqlite::Connection::open(&path).unwrap();
    db.execute_batch(
        "CREATE TABLE spool (id INTEGER PRIMARY KEY, appended_ms INTEGER NOT NULL, payload TEXT NOT NULL);",
    )
    .unwrap();
    let tx = db.unchecked_transaction().unwrap();
    for (index, line) in lines.iter().enumerate() {
        tx.execute(
            "INSERT INTO spool (id, appended_ms, payload) VALUES (?1, ?2, ?3)",
            rusqlite::params![index as i64 + 1, 1_772_352_000_000i64, line],
        )
        .unwrap();
    }
    tx.commit().unwrap();
    drop(db);
    path
}

/// Runs the daemon on an empty replay with the spool in `dir`; returns its
/// exit status, stderr and the ids it committed.
fn run_on_spool(dir: &Path) -> (bool, String, Vec<String>) {
    std::fs::write(dir.join("empty.jsonl"), "").unwrap();
    let config = dir.join("tweetpipe.toml");
    std::fs::write(
        &config,
        "[source.replay]\npath = \"empty.jsonl\"\n\n[broker]\nkind = \"embedded\"\n\n\
         [sink.sqlite]\npath = \"posts.db\"\n\n[dead_letter]\npath = \"dead.jsonl\"\n\n\
         [metrics]\nenabled = false\n",
    )
    .unwrap();
    let output = Command::new(BIN)
        .args(["run", "--config"])
        .arg(&config)
        .env_remove("STATE_DIRECTORY")
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
        committed_ids(&dir.join("posts.db")),
    )
}

/// The posts whose whole record is still in `file`'s bytes.
fn whole_records<'a>(file: &Path, lines: &'a [String]) -> BTreeSet<&'a str> {
    let bytes = std::fs::read(file).unwrap();
    let text = String::from_utf8_lossy(&bytes);
    lines
        .iter()
        .filter(|line| text.contains(line.as_str()))
        .map(|line| line.as_str())
        .collect()
}

fn check_recovery(dir: &Path, lines: &[String], damaged: &Path) {
    let whole: BTreeSet<String> = whole_records(damaged, lines)
        .into_iter()
        .map(post_id)
        .collect();
    assert!(whole.len() < lines.len(), "the damage removed no record");
    assert!(whole.len() > lines.len() / 2, "the damage removed too much");
    let (ok, stderr, committed) = run_on_spool(dir);
    assert!(ok, "the daemon did not start on a damaged spool:\n{stderr}");
    let committed: BTreeSet<String> = committed.into_iter().collect();
    assert_eq!(
        committed,
        whole,
        "kept {} of the {} whole records (and {} others):\n{stderr}",
        committed.intersection(&whole).count(),
        whole.len(),
        committed.difference(&whole).count()
    );
    let lost = lines.len() - whole.len();
    assert!(stderr.contains("is damaged"), "{stderr}");
    let said = stderr
        .lines()
        .find(|line| line.contains("recovered") && line.contains("dropped"))
        .unwrap_or_else(|| panic!("no line says what was dropped:\n{stderr}"));
    // Either a bound on what was lost, or the last id kept when the end is gone.
    let at_most: Option<usize> = said
        .split("dropped up to ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|number| number.parse().ok());
    let tail_unknown = said.contains("how many is unknown");
    assert!(
        at_most.is_some_and(|at_most| at_most >= lost) || tail_unknown,
        "{lost} records were lost; the log said: {said}"
    );
    assert!(
        said.contains(&format!("recovered {} whole", whole.len())),
        "{said}"
    );
    let aside = std::fs::read_dir(dir.join("spool"))
        .unwrap()
        .filter_map(Result::ok)
        .any(|entry| {
            entry
                .file_name()
                .to_string_lossy()
                .starts_with("spool.corrupt-")
        });
    assert!(aside, "the damaged file was not kept aside");
    // The next start finds a sound, empty spool and says nothing about damage.
    let (ok, stderr, _) = run_on_spool(dir);
    assert!(ok && !stderr.contains("damaged"), "{stderr}");
}

#[test]
fn a_spool_truncated_mid_record_keeps_every_whole_record_and_says_what_it_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let lines = posts(600, 8);
    let path = write_spool(dir.path(), &lines);
    let size = std::fs::metadata(&path).unwrap().len();
    // A power cut that lost the file's tail, cutting a page (and a record) in two.
    let cut = size - 4096 * 3 - 1500;
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.set_len(cut).unwrap();
    drop(file);
    check_recovery(dir.path(), &lines, &path.clone());
}

#[test]
fn a_spool_with_garbage_over_a_page_keeps_every_whole_record_and_says_what_it_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let lines = posts(600, 9);
    let path = write_spool(dir.path(), &lines);
    let mut bytes = std::fs::read(&path).unwrap();
    // Garbage over part of a page in the middle of the file.
    let page = (bytes.len() / 4096 / 2) * 4096;
    for (offset, byte) in bytes[page + 40..page + 3000].iter_mut().enumerate() {
        *byte = (offset as u8).wrapping_mul(37) ^ 0x5a;
    }
    std::fs::write(&path, &bytes).unwrap();
    check_recovery(dir.path(), &lines, &path.clone());
}
