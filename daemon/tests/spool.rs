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
        .query_row("select count(*) from chunk", [], |row| row.get(0))
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

/// How a spool file is laid out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    /// As this version writes it: chunks of consecutive messages on 16 KiB
    /// pages (the layout `tweetpipe::broker::spool::chunk` documents).
    Chunks,
    /// As versions before chunks wrote it: a row per message, 4 KiB pages.
    RowPerMessage,
}

/// A spool file with `lines` as distinct posts, laid out as `format` says,
/// all in the database file itself (no WAL), as after a checkpoint.
fn write_spool(dir: &Path, lines: &[String], format: Format) -> PathBuf {
    use tweetpipe::broker::spool::chunk;
    let spool = dir.join("spool");
    std::fs::create_dir_all(&spool).unwrap();
    let path = spool.join("spool.db");
    let db = rusqlite::Connection::open(&path).unwrap();
    let appended_ms = 1_772_352_000_000i64;
    match format {
        Format::RowPerMessage => {
            db.execute_batch(
                "CREATE TABLE spool (id INTEGER PRIMARY KEY, appended_ms INTEGER NOT NULL, payload TEXT NOT NULL);",
            )
            .unwrap();
            let tx = db.unchecked_transaction().unwrap();
            for (index, line) in lines.iter().enumerate() {
                tx.execute(
                    "INSERT INTO spool (id, appended_ms, payload) VALUES (?1, ?2, ?3)",
                    rusqlite::params![index as i64 + 1, appended_ms, line],
                )
                .unwrap();
            }
            tx.commit().unwrap();
        }
        Format::Chunks => {
            db.execute_batch(
                "PRAGMA page_size = 16384;
                 CREATE TABLE chunk (first_id INTEGER PRIMARY KEY, count INTEGER NOT NULL,
                                     appended_ms INTEGER NOT NULL, bytes INTEGER NOT NULL,
                                     body BLOB NOT NULL);",
            )
            .unwrap();
            let tx = db.unchecked_transaction().unwrap();
            let mut first = 0;
            while first < lines.len() {
                let mut body = Vec::new();
                let mut end = first;
                while end < lines.len()
                    && end - first < chunk::MAX_MESSAGES
                    && (end == first
                        || body.len() + chunk::record_len(&lines[end], Some("x"))
                            <= chunk::MAX_BYTES)
                {
                    chunk::encode(&mut body, end as i64 + 1, Some("x"), &lines[end]);
                    end += 1;
                }
                let bytes: usize = lines[first..end].iter().map(String::len).sum();
                tx.execute(
                    "INSERT INTO chunk (first_id, count, appended_ms, bytes, body) VALUES (?1, ?2, ?3, ?4, ?5)",
                    rusqlite::params![
                        first as i64 + 1,
                        (end - first) as i64,
                        appended_ms,
                        bytes as i64,
                        body
                    ],
                )
                .unwrap();
                first = end;
            }
            tx.commit().unwrap();
        }
    }
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

/// A power cut that lost the file's tail, cutting a page (and a record) in two.
fn truncated_mid_record(format: Format, seed: u64) {
    let dir = tempfile::tempdir().unwrap();
    let lines = posts(600, seed);
    let path = write_spool(dir.path(), &lines, format);
    let size = std::fs::metadata(&path).unwrap().len();
    let cut = size - 4096 * 3 - 1500;
    let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    file.set_len(cut).unwrap();
    drop(file);
    check_recovery(dir.path(), &lines, &path.clone());
}

#[test]
fn a_spool_truncated_mid_record_keeps_every_whole_record_and_says_what_it_dropped() {
    truncated_mid_record(Format::Chunks, 8);
}

#[test]
fn a_spool_of_an_earlier_version_truncated_mid_record_keeps_every_whole_record() {
    truncated_mid_record(Format::RowPerMessage, 8);
}

/// Garbage over `span` of the page at `page` bytes into the file.
fn garbage_over(path: &Path, page: usize, span: std::ops::Range<usize>) {
    let mut bytes = std::fs::read(path).unwrap();
    for (offset, byte) in bytes[page + span.start..page + span.end]
        .iter_mut()
        .enumerate()
    {
        *byte = (offset as u8).wrapping_mul(37) ^ 0x5a;
    }
    std::fs::write(path, &bytes).unwrap();
}

#[test]
fn a_spool_with_garbage_over_a_page_keeps_every_whole_record_and_says_what_it_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let lines = posts(600, 9);
    let path = write_spool(dir.path(), &lines, Format::RowPerMessage);
    let size = std::fs::metadata(&path).unwrap().len() as usize;
    // Garbage over part of a page in the middle of the file.
    garbage_over(&path, (size / 4096 / 2) * 4096, 40..3000);
    check_recovery(dir.path(), &lines, &path.clone());
}

#[test]
fn garbage_inside_a_chunk_costs_only_the_records_it_touches() {
    let dir = tempfile::tempdir().unwrap();
    let lines = posts(600, 10);
    let path = write_spool(dir.path(), &lines, Format::Chunks);
    let size = std::fs::metadata(&path).unwrap().len() as usize;
    // The second quarter of a 16 KiB page in the middle: inside a chunk's
    // records, past SQLite's own cell header, so SQLite finds nothing wrong
    // and only the records' checksums tell what the garbage hit.
    garbage_over(&path, (size / 16384 / 2) * 16384, 4096..7000);
    let whole: BTreeSet<String> = whole_records(&path, &lines)
        .into_iter()
        .map(post_id)
        .collect();
    assert!(whole.len() < lines.len() && whole.len() + 10 > lines.len());
    let (ok, stderr, committed) = run_on_spool(dir.path());
    assert!(ok, "the daemon did not start on a damaged spool:\n{stderr}");
    let committed: BTreeSet<String> = committed.into_iter().collect();
    assert_eq!(committed, whole, "{stderr}");
    let said = stderr
        .lines()
        .find(|line| line.contains("do not check"))
        .unwrap_or_else(|| panic!("no line says what was dropped:\n{stderr}"));
    assert!(said.contains("they are dropped"), "{said}");
    // Dropped means settled: the next start finds the spool empty.
    let (ok, stderr, _) = run_on_spool(dir.path());
    assert!(ok && !stderr.contains("do not check"), "{stderr}");
    assert!(!stderr.contains("left unsettled"), "{stderr}");
}

#[test]
fn garbage_over_a_chunks_header_costs_at_most_that_page() {
    let dir = tempfile::tempdir().unwrap();
    let lines = posts(600, 11);
    let path = write_spool(dir.path(), &lines, Format::Chunks);
    let size = std::fs::metadata(&path).unwrap().len() as usize;
    let page = (size / 16384 / 2) * 16384;
    let original = std::fs::read(&path).unwrap();
    // The posts with any byte on that page.
    let on_the_page: BTreeSet<String> = lines
        .iter()
        .filter(|line| {
            let at = find(&original, line.as_bytes()).expect("every record is whole at first");
            at < page + 16384 && at + line.len() > page
        })
        .map(|line| post_id(line))
        .collect();
    assert!(!on_the_page.is_empty() && on_the_page.len() <= chunk_capacity(&lines));
    // Garbage over the page's start: its header and the chunk's cell header,
    // so SQLite cannot say where the chunk's records are.
    garbage_over(&path, page, 0..3000);
    let (ok, stderr, committed) = run_on_spool(dir.path());
    assert!(ok, "the daemon did not start on a damaged spool:\n{stderr}");
    let committed: BTreeSet<String> = committed.into_iter().collect();
    let sent: BTreeSet<String> = lines.iter().map(|line| post_id(line)).collect();
    assert!(
        committed.is_subset(&sent),
        "a record came back changed:\n{stderr}"
    );
    let lost: BTreeSet<String> = sent.difference(&committed).cloned().collect();
    assert!(
        lost.is_subset(&on_the_page),
        "lost {} records, {} of them off the damaged page:\n{stderr}",
        lost.len(),
        lost.difference(&on_the_page).count()
    );
    assert!(
        stderr.contains("is damaged") && stderr.contains("dropped"),
        "{stderr}"
    );
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack
        .windows(needle.len())
        .position(|window| window == needle)
}

/// The most sample posts one chunk holds.
fn chunk_capacity(lines: &[String]) -> usize {
    use tweetpipe::broker::spool::chunk;
    let shortest = lines.iter().map(String::len).min().unwrap_or(1);
    (chunk::MAX_BYTES / chunk::record_len(&"x".repeat(shortest), Some("x")))
        .min(chunk::MAX_MESSAGES)
}
