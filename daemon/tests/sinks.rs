//! The sinks and the dead-letter file, end to end on real files.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

use chrono::{TimeZone, Utc};
use tweetpipe::config::{JsonlSinkConfig, SinkKind, SqliteSinkConfig};
use tweetpipe::dead_letter::{DeadLetter, DeadLetterFile, Stage, read_dead_letters};
use tweetpipe::post::{AttrValue, Author, MatchingRule, Metrics, Place, Post};
use tweetpipe::sinks::{self, SinkError, sqlite};

fn post(id: u32, hour: u32, location: &str, hashtags: &[&str]) -> Post {
    Post {
        id: format!("{}", 1_000 + id),
        created_at: Some(Utc.with_ymd_and_hms(2026, 3, 1, hour, 15, 0).unwrap()),
        text: format!("post number {id} with \"quotes\" and ünïcödé"),
        lang: "en".to_owned(),
        author: Author {
            id: format!("u{id}"),
            username: format!("user{id}"),
            name: format!("User {id}"),
            location: Some(location.to_owned()),
            followers: u64::from(id) * 10,
            verified: false,
        },
        metrics: Metrics {
            retweets: 1,
            likes: 2,
            replies: 3,
            quotes: 4,
        },
        hashtags: hashtags.iter().map(|tag| (*tag).to_owned()).collect(),
        mentions: vec!["someone".to_owned()],
        urls: vec!["https://example.com/a".to_owned()],
        place: Some(Place {
            id: "p1".to_owned(),
            full_name: "Paris, France".to_owned(),
            country_code: Some("FR".to_owned()),
        }),
        is_retweet: id.is_multiple_of(2),
        matching_rules: vec![MatchingRule {
            id: "r1".to_owned(),
            tag: "topic".to_owned(),
        }],
        attrs: BTreeMap::from([(
            "sentiment_compound".into(),
            AttrValue::Float(f64::from(id) / 10.0),
        )]),
        raw: Some(Arc::from(format!(
            "{{\"data\":{{\"id\":\"{}\"}}}}",
            1_000 + id
        ))),
        ..Post::default()
    }
}

/// Ten posts over three hours, with known locations and hashtags.
fn dataset() -> Vec<Post> {
    vec![
        post(1, 8, "Paris", &["Rust", "wasm"]),
        post(2, 8, "Paris", &["rust"]),
        post(3, 8, "Berlin", &["RUST", "sqlite"]),
        post(4, 9, "Berlin", &["wasm"]),
        post(5, 9, "Paris", &[]),
        post(6, 9, "", &["Tokio"]),
        post(7, 10, "Lyon", &["tokio", "wasm"]),
        post(8, 10, "  ", &["serde"]),
        post(9, 10, "Rome", &["json"]),
        post(10, 10, "Oslo", &["sqlite"]),
    ]
}

fn sqlite_config(path: &Path) -> SqliteSinkConfig {
    SqliteSinkConfig {
        path: path.to_owned(),
        table: "posts".to_owned(),
        store_raw: false,
    }
}

#[tokio::test]
async fn sqlite_counts_duplicates_and_keeps_one_row_per_id() {
    let dir = tempfile::tempdir().unwrap();
    // The parent directory does not exist yet: `build` creates it.
    let path = dir.path().join("data/posts.db");
    let mut sink = sinks::build(&SinkKind::Sqlite(sqlite_config(&path)))
        .await
        .unwrap();
    assert_eq!(sink.name(), "sqlite");
    let batch = dataset();

    let first = sink.write(&batch).await.unwrap();
    assert_eq!(first.written, 10);
    assert_eq!(first.duplicates, 0);
    assert!(first.rejected.is_empty());

    let again = sink.write(&batch).await.unwrap();
    assert_eq!(again.written, 0);
    assert_eq!(again.duplicates, 10);

    // Duplicates within one batch count too.
    let within = [post(11, 11, "Paris", &[]), post(11, 11, "Paris", &[])];
    let report = sink.write(&within).await.unwrap();
    assert_eq!((report.written, report.duplicates), (1, 1));
    sink.close().await.unwrap();

    let connection = rusqlite::Connection::open(&path).unwrap();
    let (rows, ids): (i64, i64) = connection
        .query_row(
            "SELECT count(*), count(DISTINCT id) FROM posts",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .unwrap();
    assert_eq!((rows, ids), (11, 11));
    let mode: String = connection
        .query_row("PRAGMA journal_mode", [], |row| row.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
}

#[tokio::test]
async fn sqlite_creates_16k_pages_and_keeps_an_existing_files_size() {
    let dir = tempfile::tempdir().unwrap();
    let page_size = |path: &Path| -> i64 {
        rusqlite::Connection::open(path)
            .unwrap()
            .query_row("PRAGMA page_size", [], |row| row.get(0))
            .unwrap()
    };
    let fresh = dir.path().join("fresh.db");
    let mut sink = sinks::build(&SinkKind::Sqlite(sqlite_config(&fresh)))
        .await
        .unwrap();
    assert_eq!(sink.write(&dataset()).await.unwrap().written, 10);
    sink.close().await.unwrap();
    assert_eq!(page_size(&fresh), 16_384);

    // A database made before (SQLite's default 4 KiB pages, rows in it).
    let old = dir.path().join("old.db");
    let mut sink = {
        let connection = rusqlite::Connection::open(&old).unwrap();
        connection
            .execute_batch(
                "PRAGMA page_size = 4096; CREATE TABLE keep (x); INSERT INTO keep VALUES (1);",
            )
            .unwrap();
        drop(connection);
        sinks::build(&SinkKind::Sqlite(sqlite_config(&old)))
            .await
            .unwrap()
    };
    assert_eq!(sink.write(&dataset()).await.unwrap().written, 10);
    sink.close().await.unwrap();
    assert_eq!(page_size(&old), 4096);
    let connection = rusqlite::Connection::open(&old).unwrap();
    let (posts, kept): (i64, i64) = connection
        .query_row(
            "SELECT (SELECT count(*) FROM posts), (SELECT count(*) FROM keep)",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .unwrap();
    assert_eq!((posts, kept), (10, 1));
}

#[tokio::test]
async fn sqlite_rows_read_back_with_json_columns() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("posts.db");
    let mut config = sqlite_config(&path);
    config.store_raw = true;
    let mut sink = sinks::build(&SinkKind::Sqlite(config)).await.unwrap();
    let mut undated = post(2, 0, "Paris", &[]);
    undated.created_at = None;
    undated.raw = None;
    let report = sink
        .write(&[post(1, 8, "Paris", &["Rust", "wasm"]), undated])
        .await;
    assert_eq!(report.unwrap().written, 2);
    sink.close().await.unwrap();

    let connection = rusqlite::Connection::open(&path).unwrap();
    let row = connection
        .query_row(
            "SELECT created_at, tweet_location, text, favorite_count, user_name, \
             user_display_name, user_location, user_followers_count, hashtags, \
             matching_rules, json_extract(attrs, '$.sentiment_compound'), is_retweet, raw, \
             ingested_at \
             FROM posts WHERE id = '1001'",
            [],
            |row| {
                Ok((
                    row.get::<_, Option<String>>(0)?,
                    row.get::<_, Option<String>>(1)?,
                    row.get::<_, String>(2)?,
                    row.get::<_, i64>(3)?,
                    row.get::<_, String>(4)?,
                    row.get::<_, String>(5)?,
                    row.get::<_, Option<String>>(6)?,
                    row.get::<_, i64>(7)?,
                    row.get::<_, String>(8)?,
                    row.get::<_, String>(9)?,
                    row.get::<_, f64>(10)?,
                    row.get::<_, bool>(11)?,
                    row.get::<_, Option<String>>(12)?,
                    row.get::<_, String>(13)?,
                ))
            },
        )
        .unwrap();
    assert_eq!(row.0.as_deref(), Some("2026-03-01T08:15:00.000Z"));
    assert_eq!(row.1.as_deref(), Some("Paris, France"));
    assert_eq!(row.2, "post number 1 with \"quotes\" and ünïcödé");
    assert_eq!(row.3, 2);
    assert_eq!(row.4, "user1");
    assert_eq!(row.5, "User 1");
    assert_eq!(row.6.as_deref(), Some("Paris"));
    assert_eq!(row.7, 10);
    assert_eq!(row.8, r#"["Rust","wasm"]"#);
    assert_eq!(row.9, r#"["topic"]"#);
    assert!((row.10 - 0.1).abs() < 1e-9);
    assert!(!row.11);
    assert_eq!(row.12.as_deref(), Some(r#"{"data":{"id":"1001"}}"#));
    assert!(
        chrono::DateTime::parse_from_rfc3339(&row.13).is_ok(),
        "{}",
        row.13
    );
    assert!(row.13.ends_with('Z') && row.13.len() == 24, "{}", row.13);

    let (created, raw): (Option<String>, Option<String>) = connection
        .query_row(
            "SELECT created_at, raw FROM posts WHERE id = '1002'",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .unwrap();
    assert_eq!((created, raw), (None, None));
}

#[tokio::test]
async fn sqlite_missing_column_is_a_clear_build_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    {
        let connection = rusqlite::Connection::open(&path).unwrap();
        connection
            .execute_batch(
                "CREATE TABLE posts (id TEXT PRIMARY KEY, created_at TEXT, text TEXT, \
                 retweet_count INTEGER, favorite_count INTEGER)",
            )
            .unwrap();
    }
    let error = match sinks::build(&SinkKind::Sqlite(sqlite_config(&path))).await {
        Ok(_) => panic!("a table lacking columns was accepted"),
        Err(error) => error,
    };
    assert!(
        matches!(error, SinkError::MissingColumns { .. }),
        "{error:?}"
    );
    assert!(!error.is_retriable());
    let message = error.to_string();
    assert!(message.contains("table \"posts\""), "{message}");
    assert!(message.contains("user_location"), "{message}");
    assert!(message.contains("attrs"), "{message}");
    assert!(
        message.contains("ALTER TABLE \"posts\" ADD COLUMN attrs TEXT"),
        "{message}"
    );
    assert!(message.contains("new table name"), "{message}");

    // Asking for `raw` on a table created without it names that column.
    let path = dir.path().join("no-raw.db");
    let sink = sinks::build(&SinkKind::Sqlite(sqlite_config(&path))).await;
    sink.unwrap().close().await.unwrap();
    let mut config = sqlite_config(&path);
    config.store_raw = true;
    let message = match sinks::build(&SinkKind::Sqlite(config)).await {
        Ok(_) => panic!("a table without `raw` was accepted"),
        Err(error) => error.to_string(),
    };
    assert!(message.contains("no column raw"), "{message}");
}

#[tokio::test]
async fn sqlite_rejects_invalid_table_names() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = sqlite_config(&dir.path().join("posts.db"));
    config.table = "posts; DROP TABLE x".to_owned();
    let message = match sinks::build(&SinkKind::Sqlite(config)).await {
        Ok(_) => panic!("an invalid table name was accepted"),
        Err(error) => error.to_string(),
    };
    assert!(message.contains("invalid table name"), "{message}");
}

#[tokio::test]
async fn sqlite_rejects_a_row_and_commits_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("posts.db");
    let mut sink = sinks::build(&SinkKind::Sqlite(sqlite_config(&path)))
        .await
        .unwrap();
    sink.close().await.unwrap();
    {
        // A user-added rule the sink does not know about.
        let connection = rusqlite::Connection::open(&path).unwrap();
        connection
            .execute_batch(
                "CREATE TRIGGER no_boom BEFORE INSERT ON posts WHEN NEW.text = 'boom' \
                 BEGIN SELECT RAISE(ABORT, 'boom is not allowed'); END;",
            )
            .unwrap();
    }
    let mut sink = sinks::build(&SinkKind::Sqlite(sqlite_config(&path)))
        .await
        .unwrap();
    let mut boom = post(2, 8, "Paris", &[]);
    boom.text = "boom".to_owned();
    let no_id = Post::default();
    let report = sink
        .write(&[
            post(1, 8, "Paris", &[]),
            boom,
            no_id,
            post(3, 8, "Paris", &[]),
        ])
        .await
        .unwrap();
    assert_eq!(report.written, 2);
    assert_eq!(report.duplicates, 0);
    let rejected: Vec<usize> = report.rejected.iter().map(|row| row.index).collect();
    assert_eq!(rejected, [1, 2]);
    assert!(
        report.rejected[0].reason.contains("boom is not allowed"),
        "{:?}",
        report.rejected
    );
    sink.close().await.unwrap();

    let connection = rusqlite::Connection::open(&path).unwrap();
    let ids: Vec<String> = connection
        .prepare("SELECT id FROM posts ORDER BY id")
        .unwrap()
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(ids, ["1001", "1003"]);
}

#[tokio::test]
async fn sqlite_summary_on_a_known_dataset() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("posts.db");
    let mut sink = sinks::build(&SinkKind::Sqlite(sqlite_config(&path)))
        .await
        .unwrap();
    let mut batch = dataset();
    let mut undated = post(11, 0, "Paris", &["wasm"]);
    undated.created_at = None;
    batch.push(undated);
    for (index, label) in [(0, "positive"), (1, "negative"), (2, "positive")] {
        batch[index]
            .attrs
            .insert("sentiment_label".into(), AttrValue::Str(label.to_owned()));
    }
    batch[3]
        .attrs
        .insert("sentiment_label".into(), AttrValue::Float(0.5));
    sink.write(&batch).await.unwrap();

    // Readable while the sink still holds the database open.
    let summary = sqlite::summarize(&path, "posts").unwrap();
    sink.close().await.unwrap();

    let pairs = |items: &[(&str, u64)]| -> Vec<(String, u64)> {
        items
            .iter()
            .map(|(key, count)| ((*key).to_owned(), *count))
            .collect()
    };
    assert_eq!(summary.total_rows, 11);
    assert_eq!(
        summary.posts_per_hour,
        pairs(&[
            ("2026-03-01 08:00", 3),
            ("2026-03-01 09:00", 3),
            ("2026-03-01 10:00", 4),
        ])
    );
    assert_eq!(
        summary.top_locations,
        pairs(&[
            ("Paris", 4),
            ("Berlin", 2),
            ("Lyon", 1),
            ("Oslo", 1),
            ("Rome", 1),
        ])
    );
    assert_eq!(
        summary.top_hashtags,
        pairs(&[
            ("wasm", 4),
            ("rust", 3),
            ("sqlite", 2),
            ("tokio", 2),
            ("json", 1),
        ])
    );
    assert_eq!(
        summary.sentiment_labels,
        pairs(&[("positive", 2), ("negative", 1)]),
        "only text labels count"
    );

    let message = sqlite::summarize(&path, "bad name")
        .unwrap_err()
        .to_string();
    assert!(message.contains("invalid table name"), "{message}");
}

fn jsonl_config(dir: &Path, rotate_bytes: u64) -> JsonlSinkConfig {
    JsonlSinkConfig {
        dir: dir.to_owned(),
        prefix: "posts".to_owned(),
        rotate_bytes,
        rotate_secs: None,
        store_raw: false,
    }
}

fn jsonl_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "jsonl"))
        .collect();
    files.sort();
    files
}

#[tokio::test]
async fn jsonl_rotates_by_bytes_and_keeps_every_row_once() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("rows");
    let mut sink = sinks::build(&SinkKind::Jsonl(jsonl_config(&out, 1_500)))
        .await
        .unwrap();
    assert_eq!(sink.name(), "jsonl");
    let batch = dataset();
    let report = sink.write(&batch[..6]).await.unwrap();
    assert_eq!((report.written, report.duplicates), (6, 0));
    // Overlapping batch: the first four are duplicates.
    let report = sink.write(&batch[2..]).await.unwrap();
    assert_eq!((report.written, report.duplicates), (4, 4));
    sink.close().await.unwrap();

    let files = jsonl_files(&out);
    assert!(files.len() >= 3, "expected rotation, got {files:?}");
    let mut ids = Vec::new();
    for file in &files {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            name.starts_with("posts-") && name.ends_with(".jsonl"),
            "{name}"
        );
        let text = std::fs::read_to_string(file).unwrap();
        assert!(text.ends_with('\n'));
        // A file exceeds the limit by at most its last row.
        let lines: Vec<&str> = text.lines().collect();
        let before_last: usize = lines[..lines.len() - 1].iter().map(|l| l.len() + 1).sum();
        assert!(before_last < 1_500, "{name} kept growing past rotate_bytes");
        for line in lines {
            let value: serde_json::Value = serde_json::from_str(line).unwrap();
            ids.push(value["id"].as_str().unwrap().to_owned());
        }
    }
    let unique: BTreeSet<&String> = ids.iter().collect();
    assert_eq!(ids.len(), 10, "{ids:?}");
    assert_eq!(unique.len(), 10, "{ids:?}");
}

#[tokio::test]
async fn jsonl_rows_have_the_expected_keys() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = jsonl_config(dir.path(), 1 << 20);
    config.store_raw = true;
    let mut sink = sinks::build(&SinkKind::Jsonl(config)).await.unwrap();
    sink.write(&[post(1, 8, "Paris", &["Rust", "wasm"])])
        .await
        .unwrap();
    sink.close().await.unwrap();

    let files = jsonl_files(dir.path());
    assert_eq!(files.len(), 1);
    let text = std::fs::read_to_string(&files[0]).unwrap();
    let value: serde_json::Value = serde_json::from_str(text.trim_end()).unwrap();
    let keys: BTreeSet<&str> = value
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let expected: BTreeSet<&str> = [
        "id",
        "created_at",
        "tweet_location",
        "text",
        "retweet_count",
        "favorite_count",
        "reply_count",
        "quote_count",
        "user_id",
        "user_name",
        "user_display_name",
        "user_location",
        "user_followers_count",
        "lang",
        "hashtags",
        "mentions",
        "urls",
        "is_retweet",
        "is_reply",
        "is_quote",
        "matching_rules",
        "attrs",
        "raw",
        "ingested_at",
    ]
    .into_iter()
    .collect();
    assert_eq!(keys, expected);
    assert_eq!(value["id"], "1001");
    assert_eq!(value["created_at"], "2026-03-01T08:15:00.000Z");
    assert_eq!(value["hashtags"], serde_json::json!(["Rust", "wasm"]));
    assert_eq!(value["matching_rules"], serde_json::json!(["topic"]));
    assert_eq!(value["attrs"]["sentiment_compound"], 0.1);
    assert_eq!(value["favorite_count"], 2);
    assert_eq!(value["is_retweet"], false);
    assert_eq!(value["raw"], r#"{"data":{"id":"1001"}}"#);
}

#[tokio::test]
async fn stdout_sink_builds_and_writes() {
    let mut sink = sinks::build(&SinkKind::Stdout(Default::default()))
        .await
        .unwrap();
    assert_eq!(sink.name(), "stdout");
    let batch = [post(1, 8, "Paris", &[])];
    let report = sink.write(&batch).await.unwrap();
    assert_eq!((report.written, report.duplicates), (1, 0));
    let report = sink.write(&batch).await.unwrap();
    assert_eq!((report.written, report.duplicates), (0, 1));
    sink.close().await.unwrap();
}

#[tokio::test]
async fn null_sink_builds_and_discards() {
    let mut sink = sinks::build(&SinkKind::Null(Default::default()))
        .await
        .unwrap();
    assert_eq!(sink.name(), "null");
    let batch = [post(1, 8, "Paris", &[]), post(1, 8, "Paris", &[])];
    let report = sink.write(&batch).await.unwrap();
    assert_eq!((report.written, report.duplicates), (2, 0));
    assert!(report.rejected.is_empty());
    sink.close().await.unwrap();
}

#[tokio::test]
async fn dead_letters_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state/dead/letters.jsonl");
    let mut file = DeadLetterFile::open(&path).unwrap();
    file.append(
        &DeadLetter::new(
            Stage::Plugin,
            "trap: unreachable",
            Arc::from(r#"{"data":{"id":"1001","text":"hi"}}"#),
        )
        .with_plugin("sentiment")
        .with_post_id("1001")
        .with_attempts(3),
    )
    .unwrap();
    file.append(&DeadLetter::new(
        Stage::Decode,
        "expected value at line 1 column 1",
        Arc::from("not json at all\n"),
    ))
    .unwrap();
    file.commit().unwrap();
    drop(file);

    // Reopening appends after what is there.
    let mut file = DeadLetterFile::open(&path).unwrap();
    file.append(&DeadLetter::new(
        Stage::Broker,
        "gave up",
        Arc::from("[1,2]"),
    ))
    .unwrap();
    file.commit().unwrap();

    let letters = read_dead_letters(&path).unwrap();
    assert_eq!(letters.len(), 3);

    let plugin = &letters[0];
    assert_eq!(plugin["stage"], "plugin");
    assert_eq!(plugin["error"], "trap: unreachable");
    assert_eq!(plugin["plugin"], "sentiment");
    assert_eq!(plugin["post_id"], "1001");
    assert_eq!(plugin["attempts"], 3);
    assert_eq!(plugin["message"]["data"]["text"], "hi");
    assert!(plugin.get("message_raw").is_none());
    let time = plugin["time"].as_str().unwrap();
    assert!(chrono::DateTime::parse_from_rfc3339(time).is_ok(), "{time}");

    let decode = &letters[1];
    assert_eq!(decode["stage"], "decode");
    assert_eq!(decode["message"], "not json at all\n");
    assert_eq!(decode["message_raw"], true);
    assert!(decode["plugin"].is_null());
    assert!(decode["post_id"].is_null());
    assert!(decode["attempts"].is_null());

    assert_eq!(letters[2]["stage"], "broker");
    assert_eq!(letters[2]["message"], serde_json::json!([1, 2]));
}
