//! The BigQuery sink against a fake BigQuery REST API on loopback (no Google).

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use serde_json::json;
use support::fake_bigquery::{FakeBigQuery, Fault, STATIC_TOKEN, service_account_key};
use tweetpipe::config::{Config, SinkKind};
use tweetpipe::post::{AttrValue, Author, Post};
use tweetpipe::sinks::bigquery::{
    BigQuerySink, BigQuerySinkConfig, Credentials, check_table, schema,
};
use tweetpipe::sinks::{Sink, SinkError};

const PROJECT: &str = "tweetpipe-test";
const DATASET: &str = "tweets";
const TABLE: &str = "posts";

fn post(id: u32) -> Post {
    Post {
        id: format!("{}", 1_900_000 + id),
        created_at: Some(Utc.with_ymd_and_hms(2026, 3, 1, 8, id % 60, 0).unwrap()),
        text: format!("post {id} about #rust"),
        lang: if id.is_multiple_of(2) { "en" } else { "fr" }.to_owned(),
        author: Author {
            id: format!("u{id}"),
            username: format!("user{id}"),
            name: format!("User {id}"),
            location: Some("Paris".to_owned()),
            followers: u64::from(id),
            verified: false,
        },
        hashtags: vec!["rust".to_owned()],
        attrs: BTreeMap::from([(
            "sentiment_compound".into(),
            AttrValue::Float(f64::from(id) / 100.0),
        )]),
        ..Post::default()
    }
}

fn posts(ids: std::ops::Range<u32>) -> Vec<Post> {
    ids.map(post).collect()
}

fn ids(posts: &[Post]) -> Vec<String> {
    posts.iter().map(|post| post.id.clone()).collect()
}

/// A config pointed at `fake`, with millisecond backoffs so retries take no time.
fn config(fake: &FakeBigQuery) -> BigQuerySinkConfig {
    let mut config = BigQuerySinkConfig::new(PROJECT, DATASET, TABLE);
    config.api_base = fake.base();
    config.backoff_base = Duration::from_millis(1);
    config.backoff_max = Duration::from_millis(5);
    config.request_timeout = Duration::from_secs(5);
    config
}

async fn connect(config: &BigQuerySinkConfig) -> Result<BigQuerySink, SinkError> {
    BigQuerySink::connect_with(config, Credentials::StaticToken(STATIC_TOKEN.to_owned())).await
}

async fn fake_with_dataset() -> FakeBigQuery {
    let fake = FakeBigQuery::start().await;
    fake.add_dataset(PROJECT, DATASET);
    fake
}

#[tokio::test]
async fn creates_a_day_partitioned_table_clustered_by_the_configured_column() {
    let fake = fake_with_dataset().await;
    let mut config = config(&fake);
    config.cluster_by = vec!["user_name".to_owned(), "lang".to_owned()];
    connect(&config).await.unwrap();
    let table = fake.table(PROJECT, DATASET, TABLE).expect("table created");
    assert_eq!(
        table.resource["timePartitioning"]["type"], "DAY",
        "{}",
        table.resource
    );
    assert_eq!(table.resource["timePartitioning"]["field"], "created_at");
    assert_eq!(
        table.resource["clustering"]["fields"],
        json!(["user_name", "lang"])
    );
    // The created schema is the shipped bq-schema.json.
    let shipped: Vec<String> = schema::parse(schema::DEFAULT_SCHEMA_JSON)
        .unwrap()
        .into_iter()
        .map(|field| field.name)
        .collect();
    let created: Vec<String> = table
        .fields()
        .iter()
        .map(|field| field["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(created, shipped);
    assert_eq!(table.fields()[0]["mode"], "REQUIRED");

    // A second processor connecting finds the table and leaves it alone.
    connect(&config).await.unwrap();
    let creates = fake
        .log()
        .iter()
        .filter(|logged| logged.method == "POST" && logged.path.ends_with("/tables"))
        .count();
    assert_eq!(creates, 1);
}

#[tokio::test]
async fn cluster_column_must_exist_in_the_schema() {
    let fake = fake_with_dataset().await;
    let mut config = config(&fake);
    config.cluster_by = vec!["no_such_column".to_owned()];
    let error = connect(&config).await.unwrap_err();
    assert!(!error.is_retriable());
    assert!(error.to_string().contains("cluster_by"), "{error}");
    assert!(fake.table(PROJECT, DATASET, TABLE).is_none());
}

#[tokio::test]
async fn missing_table_is_an_error_when_creation_is_off() {
    let fake = fake_with_dataset().await;
    let mut config = config(&fake);
    config.create_if_missing = false;
    let error = connect(&config).await.unwrap_err();
    assert!(!error.is_retriable());
    assert!(error.to_string().contains("does not exist"), "{error}");
    assert!(error.to_string().contains("create_if_missing"), "{error}");
}

#[tokio::test]
async fn rows_land_once_with_post_ids_as_insert_ids() {
    let fake = fake_with_dataset().await;
    let mut sink = connect(&config(&fake)).await.unwrap();
    let batch = posts(0..5);
    let report = sink.write(&batch).await.unwrap();
    assert_eq!(report.written, 5);
    assert!(report.rejected.is_empty());
    // A redelivered batch (Pub/Sub at-least-once) is absorbed by insertId.
    let report = sink.write(&batch).await.unwrap();
    assert!(report.rejected.is_empty());
    assert_eq!(fake.row_ids(PROJECT, DATASET, TABLE), ids(&batch));
    let table = fake.table(PROJECT, DATASET, TABLE).unwrap();
    let row = &table.rows[1];
    assert_eq!(row["user_name"], "user1");
    assert_eq!(row["created_at"], "2026-03-01T08:01:00.000Z");
    assert_eq!(row["sentiment_compound"], 0.01);
    assert_eq!(row["hashtags"], json!(["rust"]));
    // Requests go gzip-compressed, as the client sends them.
    assert!(fake.inserts().iter().all(|insert| insert.gzip));
}

#[tokio::test]
async fn requests_respect_the_row_and_byte_limits() {
    let fake = fake_with_dataset().await;
    let mut config = config(&fake);
    config.max_rows_per_request = 2;
    let mut sink = connect(&config).await.unwrap();
    let batch = posts(0..5);
    assert_eq!(sink.write(&batch).await.unwrap().written, 5);
    let rows: Vec<usize> = fake.inserts().iter().map(|insert| insert.rows).collect();
    assert_eq!(rows, vec![2, 2, 1]);

    let fake = fake_with_dataset().await;
    let mut config = self::config(&fake);
    config.max_bytes_per_request = 2_000;
    let mut sink = connect(&config).await.unwrap();
    let batch = posts(0..20);
    assert_eq!(sink.write(&batch).await.unwrap().written, 20);
    let inserts = fake.inserts();
    assert!(inserts.len() > 2, "{inserts:?}");
    for insert in &inserts {
        assert!(insert.bytes <= 2_000, "{insert:?}");
    }
    assert_eq!(fake.row_ids(PROJECT, DATASET, TABLE), ids(&batch));
}

#[tokio::test]
async fn row_larger_than_a_request_is_rejected_alone() {
    let fake = fake_with_dataset().await;
    let mut config = config(&fake);
    config.max_bytes_per_request = 2_000;
    let mut sink = connect(&config).await.unwrap();
    let mut batch = posts(0..3);
    batch[1].text = "x".repeat(5_000);
    let report = sink.write(&batch).await.unwrap();
    assert_eq!(report.written, 2);
    assert_eq!(report.rejected.len(), 1);
    assert_eq!(report.rejected[0].index, 1);
    assert!(report.rejected[0].reason.contains("max_bytes_per_request"));
    assert_eq!(
        fake.row_ids(PROJECT, DATASET, TABLE),
        vec![batch[0].id.clone(), batch[2].id.clone()]
    );
}

#[tokio::test]
async fn retries_429_html_503_and_500_without_losing_a_row() {
    let fake = fake_with_dataset().await;
    let mut sink = connect(&config(&fake)).await.unwrap();
    fake.fail_next([Fault::Json(429), Fault::Html(503), Fault::Json(500)]);
    let batch = posts(0..4);
    let report = sink.write(&batch).await.unwrap();
    assert_eq!(report.written, 4);
    let statuses: Vec<u16> = fake.inserts().iter().map(|insert| insert.status).collect();
    assert_eq!(statuses, vec![429, 503, 500, 200]);
    assert_eq!(fake.row_ids(PROJECT, DATASET, TABLE), ids(&batch));
}

/// The HTML 503 case on its own: the client cannot decode the body and loses the
/// status, and the sink must still call it retriable (else the batch is nacked
/// towards the dead letters for a passing outage).
#[tokio::test]
async fn html_503_body_is_a_retriable_error() {
    let fake = fake_with_dataset().await;
    let mut config = config(&fake);
    config.max_attempts = 1;
    let mut sink = connect(&config).await.unwrap();
    fake.fail_next([Fault::Html(503)]);
    let batch = posts(0..3);
    let error = sink.write(&batch).await.unwrap_err();
    assert!(error.is_retriable(), "{error}");
    assert!(fake.row_ids(PROJECT, DATASET, TABLE).is_empty());
    // What the pipeline does next: write the batch again.
    sink.write(&batch).await.unwrap();
    assert_eq!(fake.row_ids(PROJECT, DATASET, TABLE), ids(&batch));
}

#[tokio::test]
async fn a_bad_request_is_not_retried() {
    let fake = fake_with_dataset().await;
    let mut sink = connect(&config(&fake)).await.unwrap();
    fake.fail_next([Fault::Json(400)]);
    let error = sink.write(&posts(0..2)).await.unwrap_err();
    assert!(!error.is_retriable(), "{error}");
    assert!(error.to_string().contains("HTTP 400"), "{error}");
    assert_eq!(fake.inserts().len(), 1);
}

#[tokio::test]
async fn dropped_connections_and_timeouts_are_retried() {
    let fake = fake_with_dataset().await;
    let mut config = config(&fake);
    config.request_timeout = Duration::from_millis(300);
    let mut sink = connect(&config).await.unwrap();
    fake.fail_next([Fault::Drop, Fault::Delay(Duration::from_secs(2))]);
    let batch = posts(0..3);
    assert_eq!(sink.write(&batch).await.unwrap().written, 3);
    assert_eq!(fake.row_ids(PROJECT, DATASET, TABLE), ids(&batch));
}

/// The response is lost after BigQuery committed: the retry carries the same
/// insertIds, so the rows are not duplicated.
#[tokio::test]
async fn a_retry_after_a_lost_response_does_not_duplicate() {
    let fake = fake_with_dataset().await;
    let mut sink = connect(&config(&fake)).await.unwrap();
    fake.fail_next([Fault::CommitThen(503)]);
    let batch = posts(0..4);
    assert_eq!(sink.write(&batch).await.unwrap().written, 4);
    assert_eq!(fake.inserts().len(), 2);
    assert_eq!(fake.row_ids(PROJECT, DATASET, TABLE), ids(&batch));
}

#[tokio::test]
async fn giving_up_after_max_attempts_leaves_the_batch_retriable() {
    let fake = fake_with_dataset().await;
    let mut config = config(&fake);
    config.max_attempts = 3;
    let mut sink = connect(&config).await.unwrap();
    fake.fail_next([Fault::Json(503), Fault::Json(503), Fault::Json(503)]);
    let error = sink.write(&posts(0..2)).await.unwrap_err();
    assert!(error.is_retriable(), "{error}");
    assert!(error.to_string().contains("3 attempts"), "{error}");
    assert_eq!(fake.inserts().len(), 3);
}

/// A schema where plugin attributes are REQUIRED / typed, so some posts break it.
fn strict_schema(dir: &Path) -> std::path::PathBuf {
    let mut fields: Vec<serde_json::Value> =
        serde_json::from_str(schema::DEFAULT_SCHEMA_JSON).unwrap();
    for field in &mut fields {
        if field["name"] == "sentiment_label" {
            field["mode"] = json!("REQUIRED");
        }
    }
    let path = dir.join("schema.json");
    std::fs::write(&path, serde_json::to_string(&fields).unwrap()).unwrap();
    path
}

#[tokio::test]
async fn insert_errors_reject_only_the_bad_rows_with_bigquerys_reason() {
    let dir = tempfile::tempdir().unwrap();
    let fake = fake_with_dataset().await;
    let mut config = config(&fake);
    config.schema_file = Some(strict_schema(dir.path()));
    let mut sink = connect(&config).await.unwrap();
    let mut batch = posts(0..4);
    for post in &mut batch {
        post.attrs
            .insert("sentiment_label".into(), AttrValue::Str("pos".to_owned()));
    }
    // Row 1 lacks a REQUIRED column; row 3 has a string where an INTEGER goes.
    batch[1].attrs.remove("sentiment_label");
    batch[3]
        .attrs
        .insert("pii_redactions".into(), AttrValue::Str("many".to_owned()));
    let report = sink.write(&batch).await.unwrap();
    assert_eq!(report.written, 2);
    let rejected: Vec<(usize, &str)> = report
        .rejected
        .iter()
        .map(|rejected| (rejected.index, rejected.reason.as_str()))
        .collect();
    assert_eq!(rejected.len(), 2, "{rejected:?}");
    assert_eq!(rejected[0].0, 1);
    assert!(
        rejected[0].1.contains("invalid at sentiment_label"),
        "{rejected:?}"
    );
    assert!(
        rejected[0].1.contains("Missing required field"),
        "{rejected:?}"
    );
    assert_eq!(rejected[1].0, 3);
    assert!(rejected[1].1.contains("pii_redactions"), "{rejected:?}");
    assert!(rejected[1].1.contains("integer"), "{rejected:?}");
    assert_eq!(
        fake.row_ids(PROJECT, DATASET, TABLE),
        vec![batch[0].id.clone(), batch[2].id.clone()]
    );
}

#[tokio::test]
async fn existing_table_lacking_columns_is_reported_by_name() {
    let fake = fake_with_dataset().await;
    let mut fields: Vec<serde_json::Value> =
        serde_json::from_str(schema::DEFAULT_SCHEMA_JSON).unwrap();
    fields.retain(|field| field["name"] != "hashtags" && field["name"] != "sentiment_label");
    fake.add_table(PROJECT, DATASET, TABLE, json!(fields));
    let config = config(&fake);
    let error = connect(&config).await.unwrap_err();
    assert!(!error.is_retriable());
    let message = error.to_string();
    assert!(message.contains("hashtags (STRING)"), "{message}");
    assert!(message.contains("sentiment_label (STRING)"), "{message}");
    assert!(message.contains("tweetpipe-test.tweets.posts"), "{message}");
    let missing = check_table(&config, Credentials::StaticToken(STATIC_TOKEN.to_owned()))
        .await
        .unwrap();
    assert_eq!(
        missing,
        Some(vec![
            ("hashtags".to_owned(), "STRING".to_owned()),
            ("sentiment_label".to_owned(), "STRING".to_owned()),
        ])
    );
    // Nothing was written or created.
    assert!(fake.inserts().is_empty());
}

#[tokio::test]
async fn a_wrong_token_is_refused() {
    let fake = fake_with_dataset().await;
    let mut config = config(&fake);
    config.max_attempts = 2;
    let error = BigQuerySink::connect_with(&config, Credentials::StaticToken("nope".to_owned()))
        .await
        .unwrap_err();
    assert!(error.to_string().contains("401"), "{error}");
    assert!(fake.table(PROJECT, DATASET, TABLE).is_none());
}

fn write_key(dir: &Path, fake: &FakeBigQuery) -> std::path::PathBuf {
    let (key, public) = service_account_key(&fake.token_uri());
    fake.trust_key(&public);
    let path = dir.join("key.json");
    std::fs::write(&path, key).unwrap();
    path
}

#[tokio::test]
async fn service_account_tokens_are_cached_then_refreshed_when_they_expire() {
    let dir = tempfile::tempdir().unwrap();
    let fake = fake_with_dataset().await;
    let mut config = config(&fake);
    config.credentials_file = Some(write_key(dir.path(), &fake));

    // Long-lived tokens: one token serves every call.
    let mut sink = BigQuerySink::connect(&config).await.unwrap();
    for round in 0..3 {
        sink.write(&posts(round * 2..round * 2 + 2)).await.unwrap();
    }
    assert_eq!(fake.token_requests(), 1);
    assert_eq!(fake.row_ids(PROJECT, DATASET, TABLE).len(), 6);

    // Tokens that expire within the client's one-minute margin are replaced
    // before each call; the fake refuses expired or unknown tokens.
    let fake = fake_with_dataset().await;
    fake.set_token_lifetime(30);
    let mut config = self::config(&fake);
    config.credentials_file = Some(write_key(dir.path(), &fake));
    let mut sink = BigQuerySink::connect(&config).await.unwrap();
    for round in 0..3 {
        sink.write(&posts(round * 2..round * 2 + 2)).await.unwrap();
    }
    let tokens = fake.insert_tokens();
    assert_eq!(tokens.len(), 3);
    assert!(fake.token_requests() >= 4, "{}", fake.token_requests());
    let distinct: std::collections::BTreeSet<&String> = tokens.iter().collect();
    assert_eq!(distinct.len(), 3, "{tokens:?}");
    assert_eq!(fake.row_ids(PROJECT, DATASET, TABLE).len(), 6);
}

#[tokio::test]
async fn a_key_the_token_endpoint_does_not_trust_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let fake = fake_with_dataset().await;
    let mut config = config(&fake);
    config.max_attempts = 1;
    let (key, _) = service_account_key(&fake.token_uri());
    let (_, other) = service_account_key(&fake.token_uri());
    fake.trust_key(&other);
    let path = dir.path().join("key.json");
    std::fs::write(&path, key).unwrap();
    config.credentials_file = Some(path);
    let error = BigQuerySink::connect(&config).await.unwrap_err();
    assert!(error.to_string().contains("JWT Signature"), "{error}");
    assert_eq!(fake.token_requests(), 0);
}

#[test]
fn config_parses_with_defaults_and_names_bad_keys() {
    let base = r#"
[source.replay]
path = "posts.jsonl"

[dead_letter]
path = "dead.jsonl"
"#;
    let text = format!(
        "{base}\n[sink.bigquery]\nproject = \"my-project\"\ndataset = \"tweets\"\ncredentials_file = \"key.json\"\n"
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tweetpipe.toml");
    std::fs::write(&path, &text).unwrap();
    let config = Config::load(&path).unwrap();
    let Ok(SinkKind::BigQuery(bigquery)) = config.sink_kind() else {
        panic!("not a bigquery sink");
    };
    assert_eq!(bigquery.table, "posts");
    assert_eq!(bigquery.max_rows_per_request, 500);
    assert_eq!(bigquery.max_bytes_per_request, 10_000_000);
    assert!(bigquery.create_if_missing);
    assert_eq!(bigquery.cluster_by, vec!["lang".to_owned()]);
    assert_eq!(
        bigquery.credentials_file.as_deref(),
        Some(dir.path().join("key.json").as_path())
    );

    let text = format!(
        "{base}\n[sink.bigquery]\nproject = \"my-project\"\ndataset = \"tweets\"\nmax_rows_per_request = 0\n"
    );
    let error = Config::parse(&text, Path::new("t.toml"))
        .unwrap_err()
        .to_string();
    assert!(
        error.contains("sink.bigquery.max_rows_per_request"),
        "{error}"
    );

    let text = format!(
        "{base}\n[sink.bigquery]\nproject = \"my-project\"\ndataset = \"tweets\"\ntabel = \"x\"\n"
    );
    let error = Config::parse(&text, Path::new("t.toml"))
        .unwrap_err()
        .to_string();
    assert!(error.contains("tabel"), "{error}");
}

/// End to end through the pipeline: every input post ends in the table or in
/// the dead letters (with BigQuery's reason) exactly once, across a 429 and an
/// HTML 503, with rows refused by the table's schema dead-lettered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipeline_commits_or_dead_letters_every_post_once() {
    use tweetpipe::plugins::LoadedChain;
    use tweetpipe::sample::{SampleOptions, write_sample};

    let dir = tempfile::tempdir().unwrap();
    let mut file = std::fs::File::create(dir.path().join("posts.jsonl")).unwrap();
    write_sample(
        &SampleOptions {
            count: 300,
            seed: 8,
            ..SampleOptions::default()
        },
        &mut file,
    )
    .unwrap();
    let mut input = std::collections::BTreeSet::new();
    for line in std::fs::read_to_string(dir.path().join("posts.jsonl"))
        .unwrap()
        .lines()
    {
        if let Ok(post) = tweetpipe::post::decode(line) {
            input.insert(post.id);
        }
    }

    let fake = fake_with_dataset().await;
    // Posts without a place break this table's schema.
    let mut fields: Vec<serde_json::Value> =
        serde_json::from_str(schema::DEFAULT_SCHEMA_JSON).unwrap();
    for field in &mut fields {
        if field["name"] == "tweet_location" {
            field["mode"] = json!("REQUIRED");
        }
    }
    std::fs::write(
        dir.path().join("schema.json"),
        serde_json::to_string(&fields).unwrap(),
    )
    .unwrap();
    fake.add_table(PROJECT, DATASET, TABLE, json!(fields));
    let key = write_key(dir.path(), &fake);
    fake.fail_next([Fault::Json(429), Fault::Html(503)]);
    std::fs::write(
        dir.path().join("tweetpipe.toml"),
        format!(
            r#"
[source.replay]
path = "posts.jsonl"

[batch]
max_rows = 100
max_age_ms = 100

[sink.bigquery]
project = "{PROJECT}"
dataset = "{DATASET}"
table = "{TABLE}"
credentials_file = "{key}"
schema_file = "schema.json"
api_base = "{base}"
max_rows_per_request = 40
backoff_base_ms = 1
backoff_max_ms = 5

[dead_letter]
path = "dead.jsonl"

[logging]
level = "warn"
"#,
            key = key.display(),
            base = fake.base(),
        ),
    )
    .unwrap();
    let config = Config::load(&dir.path().join("tweetpipe.toml")).unwrap();
    let chain = LoadedChain::load(&config.plugins).unwrap();
    tweetpipe::pipeline::run(&config, chain, std::future::pending())
        .await
        .unwrap();

    let rows = fake.row_ids(PROJECT, DATASET, TABLE);
    let dead: Vec<serde_json::Value> = std::fs::read_to_string(dir.path().join("dead.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    assert!(
        !rows.is_empty() && !dead.is_empty(),
        "{} rows, {} dead",
        rows.len(),
        dead.len()
    );
    let mut seen = std::collections::BTreeMap::new();
    for id in &rows {
        *seen.entry(id.clone()).or_insert(0) += 1;
    }
    for letter in &dead {
        let error = letter["error"].as_str().unwrap_or_default();
        assert!(error.contains("invalid at tweet_location"), "{letter}");
        assert!(error.contains("Missing required field"), "{letter}");
        let id = letter["post_id"]
            .as_str()
            .expect("dead letter has the post id");
        *seen.entry(id.to_owned()).or_insert(0) += 1;
    }
    assert_eq!(
        seen.keys()
            .cloned()
            .collect::<std::collections::BTreeSet<_>>(),
        input
    );
    assert!(seen.values().all(|count| *count == 1), "{seen:?}");
    let statuses: Vec<u16> = fake.inserts().iter().map(|insert| insert.status).collect();
    assert_eq!(&statuses[..2], &[429, 503]);
}

/// `tweetpipe check-config` asks BigQuery for the table and names the columns it lacks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_config_names_the_columns_the_table_lacks() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("posts.jsonl"), "").unwrap();
    let fake = fake_with_dataset().await;
    let mut fields: Vec<serde_json::Value> =
        serde_json::from_str(schema::DEFAULT_SCHEMA_JSON).unwrap();
    fields.retain(|field| field["name"] != "pii_redactions");
    fake.add_table(PROJECT, DATASET, TABLE, json!(fields));
    let key = write_key(dir.path(), &fake);
    let config = dir.path().join("tweetpipe.toml");
    std::fs::write(
        &config,
        format!(
            "[source.replay]\npath = \"posts.jsonl\"\n\n[sink.bigquery]\nproject = \"{PROJECT}\"\ndataset = \"{DATASET}\"\ncredentials_file = \"{}\"\napi_base = \"{}\"\n\n[dead_letter]\npath = \"dead.jsonl\"\n",
            key.display(),
            fake.base()
        ),
    )
    .unwrap();
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_tweetpipe"))
            .args(["check-config", "--config"])
            .arg(&config)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("lacks a column the sink writes: pii_redactions (INTEGER)"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("bigquery tweetpipe-test.tweets.posts"),
        "{stdout}"
    );
    assert_eq!(
        output.status.code(),
        Some(2),
        "a table the sink cannot write to fails the check"
    );
    assert!(String::from_utf8_lossy(&output.stderr).contains("pii_redactions"));
}

/// The token fetch has no timeout of its own in the client; the sink bounds every
/// call so a hung token endpoint (or metadata server) cannot stall it forever.
#[tokio::test]
async fn a_hung_token_endpoint_times_out_as_a_retriable_error() {
    let dir = tempfile::tempdir().unwrap();
    let fake = fake_with_dataset().await;
    fake.set_token_delay(Duration::from_secs(30));
    let mut config = config(&fake);
    config.credentials_file = Some(write_key(dir.path(), &fake));
    config.request_timeout = Duration::from_millis(200);
    config.max_attempts = 1;
    let started = std::time::Instant::now();
    let error = BigQuerySink::connect(&config).await.unwrap_err();
    assert!(error.is_retriable(), "{error}");
    assert!(error.to_string().contains("no answer within"), "{error}");
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(fake.token_requests(), 0);
}

/// A plain-http endpoint (an emulator, a test server) was unreachable without a
/// fake service-account key and token endpoint; the Pub/Sub broker already used
/// no credentials for its emulator.
#[tokio::test]
async fn a_plain_http_endpoint_is_used_without_credentials() {
    let fake = fake_with_dataset().await;
    fake.set_open(true);
    let config = config(&fake);
    assert!(config.api_base.starts_with("http://"));
    assert!(matches!(
        Credentials::from_config(&config),
        Credentials::None
    ));
    let mut sink = BigQuerySink::connect(&config).await.unwrap();
    let batch = posts(0..5);
    let report = sink.write(&batch).await.unwrap();
    assert_eq!(report.written, 5);
    assert_eq!(fake.row_ids(PROJECT, DATASET, TABLE), ids(&batch));
    assert_eq!(fake.token_requests(), 0, "no token endpoint is asked");
    assert!(
        fake.insert_tokens().iter().all(String::is_empty),
        "no credentials are sent: {:?}",
        fake.insert_tokens()
    );

    // With a key file named, the key is used even over http.
    let mut keyed = config.clone();
    keyed.credentials_file = Some("/nonexistent/key.json".into());
    assert!(matches!(
        Credentials::from_config(&keyed),
        Credentials::KeyFile(_)
    ));
    // An https endpoint without a key keeps application default credentials.
    let mut google = config.clone();
    google.api_base = "https://bigquery.googleapis.com/bigquery/v2".to_owned();
    assert!(matches!(
        Credentials::from_config(&google),
        Credentials::ApplicationDefault
    ));
}

/// The summary counted a post written twice in one run as two rows written
/// (2,206 "written" where SQLite said 2,192 written, 14 duplicates).
#[tokio::test]
async fn a_post_written_again_in_the_same_run_is_a_duplicate() {
    let fake = fake_with_dataset().await;
    let mut sink = connect(&config(&fake)).await.unwrap();
    let first = sink.write(&posts(0..3)).await.unwrap();
    assert_eq!((first.written, first.duplicates), (3, 0));

    // Two seen before, one new, and one twice in the same batch.
    let mut again = posts(1..4);
    again.push(post(3));
    let report = sink.write(&again).await.unwrap();
    assert_eq!((report.written, report.duplicates), (1, 3), "{report:?}");
    assert!(report.rejected.is_empty());
    let sent: usize = fake.inserts().iter().map(|logged| logged.rows).sum();
    assert_eq!(sent, 4, "duplicates are not sent again");
    assert_eq!(fake.row_ids(PROJECT, DATASET, TABLE), ids(&posts(0..4)));
}

/// Only an accepted row is remembered: a batch whose request failed is sent in
/// full when the pipeline retries it, and a row BigQuery refused is not a
/// duplicate the next time.
#[tokio::test]
async fn ids_are_remembered_only_once_bigquery_accepted_the_row() {
    let fake = fake_with_dataset().await;
    let mut config = config(&fake);
    config.max_attempts = 1;
    let mut sink = connect(&config).await.unwrap();
    let batch = posts(10..14);
    fake.fail_next([Fault::Json(500)]);
    assert!(sink.write(&batch).await.is_err());
    let retried = sink.write(&batch).await.unwrap();
    assert_eq!((retried.written, retried.duplicates), (4, 0));
    assert_eq!(fake.row_ids(PROJECT, DATASET, TABLE), ids(&batch));

    // A row the table refuses (a string where an INTEGER goes) is not remembered.
    let dir = tempfile::tempdir().unwrap();
    config.schema_file = Some(strict_schema(dir.path()));
    let mut strict = connect(&config).await.unwrap();
    let mut bad = post(20);
    bad.attrs
        .insert("sentiment_label".into(), AttrValue::Str("pos".to_owned()));
    bad.attrs
        .insert("pii_redactions".into(), AttrValue::Str("many".to_owned()));
    let refused = strict.write(std::slice::from_ref(&bad)).await.unwrap();
    assert_eq!(refused.rejected.len(), 1, "{refused:?}");
    let again = strict.write(std::slice::from_ref(&bad)).await.unwrap();
    assert_eq!(
        (again.duplicates, again.rejected.len()),
        (0, 1),
        "{again:?}"
    );
}
