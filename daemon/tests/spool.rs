//! The embedded broker's durable spool, attacked from outside: the daemon is
//! SIGKILLed at random moments while a fake X streams into it, and right after
//! its spool says the posts are on disk; its spool file is truncated or
//! overwritten with garbage before a start.

mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use rand::{Rng, SeedableRng};
use support::daemon::{Daemon, metric, scrape, wait_until};
use support::fake_x::{End, FakeX, Step};
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

/// The config for the daemon against `fake`: the embedded spool, SQLite, and
/// `/metrics` on a free port (its `tweetpipe_spool_appended_total` says what
/// the spool has on disk).
fn x_config(dir: &Path, name: &str, fake: &FakeX, batch: &str) -> PathBuf {
    let config = dir.join(name);
    std::fs::write(
        &config,
        format!(
            r#"[source.x]
api_base = "{base}"
rules = [{{ value = "spool", tag = "spool" }}]

[broker]
kind = "embedded"

[batch]
{batch}

[sink.sqlite]
path = "posts.db"

[dead_letter]
path = "dead.jsonl"

[metrics]
listen = "127.0.0.1:0"
"#,
            base = fake.base()
        ),
    )
    .unwrap();
    config
}

/// Messages the daemon has committed to its spool, from `/metrics` at `addr`.
fn appended(addr: &str) -> Option<usize> {
    metric(&scrape(addr), "tweetpipe_spool_appended_total").map(|value| value as usize)
}

/// Posts streamed and kills.
const POSTS: usize = 12_000;
const PACE: Duration = Duration::from_millis(2);
const KILLS: usize = 5;

// 12,000 posts at 500/s rather than the 20,000 of the issue, so the test stays
// near 30 s (24 s of streaming plus five restarts).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_moments_loses_no_post_the_daemon_had_received() {
    let script = posts(POSTS, 5);
    let ids: Vec<String> = script.iter().map(|line| post_id(line)).collect();
    let fake = FakeX::start(script).await;
    fake.set_pace(PACE);
    let dir = tempfile::tempdir().unwrap();
    let config = x_config(
        dir.path(),
        "tweetpipe.toml",
        &fake,
        "max_rows = 500\nmax_age_ms = 2000",
    );
    let db = dir.path().join("posts.db");
    let seed: u64 = rand::rng().random();
    eprintln!("kill moments seeded with {seed}");
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);

    // For each killed run: the first connection it opened, and how many posts
    // its spool said were on disk just before the kill.
    let mut kills: Vec<(usize, usize)> = Vec::new();
    for round in 0..KILLS {
        let log = dir.path().join(format!("run-{round}.log"));
        let daemon = Daemon::start(&config, log.clone());
        let connections = fake.connections().len();
        assert!(
            wait_until(Duration::from_secs(20), || fake.connections().len()
                > connections),
            "run {round} never connected: {}",
            daemon.log()
        );
        let addr = daemon.metrics_addr(Duration::from_secs(20));
        std::thread::sleep(Duration::from_millis(rng.random_range(1200..3500)));
        // The count can only grow between this scrape and the kill.
        let on_disk =
            appended(&addr).unwrap_or_else(|| panic!("no spool metrics: {}", daemon.log()));
        daemon.sigkill();
        kills.push((connections, on_disk));
        std::thread::sleep(Duration::from_millis(rng.random_range(100..600)));
    }
    // A last run streams the rest of the script, then stops cleanly.
    let last_connection = fake.connections().len();
    let daemon = Daemon::start(&config, dir.path().join("run-last.log"));
    let all_sent = wait_until(Duration::from_secs(60), || {
        fake.delivered().last() == Some(&(POSTS - 1))
    });
    assert!(
        all_sent,
        "the fake did not stream the whole script: {}",
        daemon.log()
    );
    let deliveries = fake.deliveries();
    let expected_last: BTreeSet<&str> = deliveries
        .iter()
        .filter(|(connection, _, _)| *connection >= last_connection)
        .map(|(_, index, _)| ids[*index].as_str())
        .collect();
    assert!(
        wait_until(Duration::from_secs(20), || {
            let committed: BTreeSet<String> = committed_ids(&db).into_iter().collect();
            expected_last.iter().all(|id| committed.contains(*id))
        }),
        "the last run did not commit what it was sent"
    );
    let (status, log) = daemon.terminate(Duration::from_secs(20));
    assert!(
        status.is_some_and(|status| status.success()),
        "the last run failed:\n{log}"
    );

    let committed = committed_ids(&db);
    let unique: BTreeSet<&str> = committed.iter().map(String::as_str).collect();
    assert_eq!(unique.len(), committed.len(), "a post was committed twice");
    let sent: BTreeSet<&str> = ids.iter().map(String::as_str).collect();
    assert!(unique.is_subset(&sent), "a row the fake never sent");

    // A killed run's source had read on past the first `on_disk` posts it was
    // sent (in order), so each of them must survive the kill. What the fake
    // handed over after those may have been in socket buffers, or in the
    // chunk whose commit was under way: the daemon never had it on disk.
    let mut missing = Vec::new();
    let mut in_flight = 0usize;
    for (round, (first, on_disk)) in kills.iter().enumerate() {
        let until = kills.get(round + 1).map_or(last_connection, |next| next.0);
        let run: Vec<usize> = deliveries
            .iter()
            .filter(|(connection, _, _)| (*first..until).contains(connection))
            .map(|(_, index, _)| *index)
            .collect();
        assert!(
            *on_disk <= run.len(),
            "run {round}: {on_disk} on disk of {} sent",
            run.len()
        );
        for (position, index) in run.iter().enumerate() {
            if unique.contains(ids[*index].as_str()) {
                continue;
            }
            if position < *on_disk {
                missing.push((round, *index));
            } else {
                in_flight += 1;
            }
        }
    }
    assert!(
        missing.is_empty(),
        "{} posts the daemon had on disk were never committed (run, script line): {:?}",
        missing.len(),
        &missing[..missing.len().min(20)]
    );
    eprintln!(
        "{} of {} posts committed across {KILLS} kills; on disk at each kill: {:?}; {in_flight} were sent but not yet on disk at a kill",
        unique.len(),
        deliveries.len(),
        kills.iter().map(|(_, on_disk)| on_disk).collect::<Vec<_>>()
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

/// The issue's "kill right after an append": the sink is set never to commit
/// before the kill, so the spool's fsync alone keeps the posts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_right_after_the_append_keeps_every_post_on_disk() {
    const SENT: usize = 3_000;
    let script = posts(SENT, 6);
    let ids: BTreeSet<String> = script.iter().map(|line| post_id(line)).collect();
    let fake = FakeX::start(script).await;
    // The first connection gets every post, then nothing, not even keep-alives.
    fake.plan([Step::serve(SENT, End::Stall)]);
    let dir = tempfile::tempdir().unwrap();
    let holding = x_config(
        dir.path(),
        "holding.toml",
        &fake,
        "max_rows = 100000\nmax_age_ms = 600000",
    );
    let db = dir.path().join("posts.db");
    let daemon = Daemon::start(&holding, dir.path().join("first.log"));
    let addr = daemon.metrics_addr(Duration::from_secs(20));
    assert!(
        wait_until(Duration::from_secs(30), || appended(&addr) == Some(SENT)),
        "the spool never held all {SENT} posts (it says {:?}): {}",
        appended(&addr),
        daemon.log()
    );
    daemon.sigkill();
    assert!(
        committed_ids(&db).is_empty(),
        "the sink committed before the kill: the test would prove nothing"
    );

    let flowing = x_config(dir.path(), "flowing.toml", &fake, "max_age_ms = 50");
    let daemon = Daemon::start(&flowing, dir.path().join("second.log"));
    assert!(
        wait_until(Duration::from_secs(30), || committed_ids(&db).len() >= SENT),
        "{} of {SENT} committed after the restart: {}",
        committed_ids(&db).len(),
        daemon.log()
    );
    let (status, log) = daemon.terminate(Duration::from_secs(20));
    assert!(status.is_some_and(|status| status.success()), "{log}");
    assert!(log.contains(&format!("spool: {SENT} messages")), "{log}");
    let committed = committed_ids(&db);
    let unique: BTreeSet<String> = committed.iter().cloned().collect();
    assert_eq!(unique.len(), committed.len(), "a post was committed twice");
    assert_eq!(unique, ids);
}

/// The X source waits for the spool's commit once per chunk it reads, which
/// must not cap it: an unpaced fake sends as fast as the daemon reads, and
/// every post is committed exactly once. Prints the rate (no timed assertion;
/// `make bench` holds the speed targets).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unpaced_stream_through_the_spool_loses_nothing() {
    const SENT: usize = 20_000;
    let script = posts(SENT, 7);
    let ids: BTreeSet<String> = script.iter().map(|line| post_id(line)).collect();
    let fake = FakeX::start(script).await;
    let dir = tempfile::tempdir().unwrap();
    let config = x_config(
        dir.path(),
        "tweetpipe.toml",
        &fake,
        "max_rows = 1000\nmax_age_ms = 100",
    );
    let db = dir.path().join("posts.db");
    let daemon = Daemon::start(&config, dir.path().join("run.log"));
    assert!(
        wait_until(Duration::from_secs(60), || fake.delivered().len() >= SENT),
        "the fake sent {} of {SENT}: {}",
        fake.delivered().len(),
        daemon.log()
    );
    let deliveries = fake.deliveries();
    let took = deliveries.last().unwrap().2 - deliveries.first().unwrap().2;
    assert!(
        wait_until(Duration::from_secs(60), || committed_ids(&db).len() >= SENT),
        "{} of {SENT} committed: {}",
        committed_ids(&db).len(),
        daemon.log()
    );
    let (status, log) = daemon.terminate(Duration::from_secs(20));
    assert!(status.is_some_and(|status| status.success()), "{log}");
    let committed = committed_ids(&db);
    let unique: BTreeSet<String> = committed.iter().cloned().collect();
    assert_eq!(unique.len(), committed.len(), "a post was committed twice");
    assert_eq!(unique, ids);
    eprintln!(
        "{SENT} posts read from the socket in {took:?}: {:.0} posts/s into the spool (debug build)",
        SENT as f64 / took.as_secs_f64()
    );
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

/// The files in `spool` that were moved aside as damaged.
fn moved_aside(spool: &Path) -> Vec<String> {
    std::fs::read_dir(spool)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with("spool.corrupt-"))
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
    assert!(
        !moved_aside(&dir.join("spool")).is_empty(),
        "the damaged file was not kept aside"
    );
    // The next start finds a sound, empty spool and says nothing about damage.
    let (ok, stderr, _) = run_on_spool(dir);
    assert!(ok && !stderr.contains("damaged"), "{stderr}");
}

#[test]
fn a_spool_whose_messages_are_only_in_its_wal_keeps_every_message() {
    let dir = tempfile::tempdir().unwrap();
    let lines = posts(300, 10);
    let spool = dir.path().join("spool");
    std::fs::create_dir_all(&spool).unwrap();
    // Written as the daemon writes it (WAL mode, the messages still in the
    // WAL, not checkpointed) and copied while the connection is open: the
    // files a `kill -9` leaves behind.
    let scratch = tempfile::tempdir().unwrap();
    let path = scratch.path().join("spool.db");
    let db = rusqlite::Connection::open(&path).unwrap();
    db.execute_batch(
        "PRAGMA page_size = 16384; PRAGMA journal_mode = WAL; PRAGMA wal_autocheckpoint = 0;
         CREATE TABLE spool (id INTEGER PRIMARY KEY, appended_ms INTEGER NOT NULL,
                             payload TEXT NOT NULL, source TEXT);",
    )
    .unwrap();
    for (index, line) in lines.iter().enumerate() {
        db.execute(
            "INSERT INTO spool (id, appended_ms, payload, source) VALUES (?1, ?2, ?3, 'replay')",
            rusqlite::params![index as i64 + 1, 1_772_352_000_000i64, line],
        )
        .unwrap();
    }
    let wal = scratch.path().join("spool.db-wal");
    assert!(
        std::fs::metadata(&wal).unwrap().len() > 0,
        "the messages are not in the WAL"
    );
    std::fs::copy(&path, spool.join("spool.db")).unwrap();
    std::fs::copy(&wal, spool.join("spool.db-wal")).unwrap();
    drop(db);
    let (ok, stderr, committed) = run_on_spool(dir.path());
    assert!(ok, "{stderr}");
    assert!(!stderr.contains("damaged"), "{stderr}");
    let committed: BTreeSet<String> = committed.into_iter().collect();
    let sent: BTreeSet<String> = lines.iter().map(|line| post_id(line)).collect();
    assert_eq!(committed, sent, "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_daemon_on_the_same_spool_stops_and_names_the_first() {
    const SENT: usize = 50;
    let fake = FakeX::start(posts(SENT, 11)).await;
    fake.plan([Step::serve(SENT, End::Stall)]);
    let dir = tempfile::tempdir().unwrap();
    let config = x_config(dir.path(), "tweetpipe.toml", &fake, "max_age_ms = 50");
    let db = dir.path().join("posts.db");
    let first = Daemon::start(&config, dir.path().join("first.log"));
    assert!(
        wait_until(Duration::from_secs(30), || committed_ids(&db).len() >= SENT),
        "the first daemon did not commit: {}",
        first.log()
    );
    let mut second = Daemon::start(&config, dir.path().join("second.log"));
    let status = second.wait_exit(Duration::from_secs(20));
    let stderr = second.log();
    assert!(
        status.is_some_and(|status| !status.success()),
        "the second daemon ran beside the first:\n{stderr}"
    );
    assert!(
        stderr.contains("in use by another tweetpipe process")
            && stderr.contains(&format!("(pid {})", first.pid())),
        "{stderr}"
    );
    // The first one's spool was not taken for damage and moved aside, and it
    // goes on: it stops cleanly with every post committed once.
    assert_eq!(moved_aside(&dir.path().join("spool")), Vec::<String>::new());
    let (status, log) = first.terminate(Duration::from_secs(20));
    assert!(status.is_some_and(|status| status.success()), "{log}");
    let committed = committed_ids(&db);
    let unique: BTreeSet<String> = committed.iter().cloned().collect();
    assert_eq!((committed.len(), unique.len()), (SENT, SENT), "{log}");
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
