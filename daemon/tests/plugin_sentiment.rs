//! The `sentiment` plugin through the real host: `tweetpipe plugin run` on the
//! sample posts and on sentences with known VADER scores, its config keys, and
//! a whole `tweetpipe::pipeline::run` into SQLite with the plugin in the chain.
//!
//! The `.wasm` is built by `make plugins`; the tests fail (never skip) when it
//! is missing.

use std::collections::BTreeMap;

use tweetpipe::config::Config;
use tweetpipe::plugins::LoadedChain;

mod support;

use support::cli::{sample_posts, tweetpipe};

/// `tweetpipe plugin run sentiment.wasm` over `input`, one JSON verdict per line.
fn plugin_run(config: Option<&str>, input: &str) -> Vec<serde_json::Value> {
    let plugin = support::wasm::plugin("sentiment");
    let mut args = vec!["plugin", "run", plugin.to_str().unwrap()];
    if let Some(config) = config {
        args.extend(["--plugin-config", config]);
    }
    args.extend(["--input", "-"]);
    let (code, stdout, stderr) = tweetpipe(&args, input);
    assert_eq!(code, 0, "stderr: {stderr}");
    stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

fn v2_line(id: &str, text: &str) -> String {
    serde_json::json!({ "data": { "id": id, "text": text, "lang": "en" } }).to_string()
}

fn number(attrs: &serde_json::Value, name: &str) -> f64 {
    attrs[name]
        .as_f64()
        .unwrap_or_else(|| panic!("attribute {name} is not a number: {attrs}"))
}

/// Checks one kept post's attributes; returns (compound, label).
fn check_attrs(attrs: &serde_json::Value, positive: f64, negative: f64) -> (f64, String) {
    let compound = number(attrs, "sentiment_compound");
    let (pos, neu, neg) = (
        number(attrs, "sentiment_pos"),
        number(attrs, "sentiment_neu"),
        number(attrs, "sentiment_neg"),
    );
    assert!((-1.0..=1.0).contains(&compound), "{attrs}");
    for share in [pos, neu, neg] {
        assert!((0.0..=1.0).contains(&share), "{attrs}");
    }
    let total = pos + neu + neg;
    assert!(
        total == 0.0 || (total - 1.0).abs() <= 0.002,
        "pos + neu + neg is {total}: {attrs}"
    );
    let label = attrs["sentiment_label"]
        .as_str()
        .unwrap_or_else(|| panic!("sentiment_label is not a string: {attrs}"))
        .to_owned();
    let expected = if compound >= positive {
        "positive"
    } else if compound <= negative {
        "negative"
    } else {
        "neutral"
    };
    assert_eq!(label, expected, "{attrs}");
    (compound, label)
}

#[test]
fn plugin_run_scores_every_sample_post_in_range() {
    let input = std::fs::read_to_string(sample_posts()).unwrap();
    let verdicts = plugin_run(None, &input);
    let mut labels: BTreeMap<String, usize> = BTreeMap::new();
    let mut kept = 0;
    for verdict in &verdicts {
        if verdict["action"] != "keep" {
            continue;
        }
        kept += 1;
        let (_, label) = check_attrs(&verdict["post"]["attrs"], 0.05, -0.05);
        *labels.entry(label).or_default() += 1;
    }
    assert!(kept >= 3000, "only {kept} sample posts were kept");
    assert!(
        verdicts.iter().all(|verdict| verdict["action"] != "drop"),
        "the sentiment plugin never drops a post"
    );
    // The sample mixes moods: each label must occur.
    for label in ["positive", "negative", "neutral"] {
        assert!(labels.get(label).copied().unwrap_or(0) > 0, "{labels:?}");
    }
}

#[test]
fn plugin_run_agrees_with_reference_vader_scores() {
    // Scores printed by Python's vaderSentiment 3.3.2 for these sentences.
    let cases = [
        ("VADER is smart, handsome, and funny.", 0.8316, "positive"),
        (
            "VADER is not smart, handsome, nor funny.",
            -0.7424,
            "negative",
        ),
        ("Today SUX!", -0.5461, "negative"),
        (
            "Catch utf-8 emoji such as 💘 and 💋 and 😁",
            0.875,
            "positive",
        ),
        ("Not bad at all", 0.431, "positive"),
        ("the bus leaves at nine", 0.0, "neutral"),
    ];
    let input: String = cases
        .iter()
        .enumerate()
        .map(|(index, (text, _, _))| v2_line(&(index + 1).to_string(), text) + "\n")
        .collect();
    let verdicts = plugin_run(None, &input);
    assert_eq!(verdicts.len(), cases.len());
    for (verdict, (text, compound, label)) in verdicts.iter().zip(cases) {
        let attrs = &verdict["post"]["attrs"];
        assert!(
            (number(attrs, "sentiment_compound") - compound).abs() < 0.001,
            "{text}: {attrs}"
        );
        assert_eq!(attrs["sentiment_label"], label, "{text}: {attrs}");
    }
}

#[test]
fn thresholds_come_from_the_config_and_bad_ones_are_refused() {
    let input = format!(
        "{}\n{}\n",
        v2_line("1", "VADER is smart, handsome, and funny."),
        v2_line("2", "Today SUX!")
    );
    let strict = r#"{"positive_threshold": 0.9, "negative_threshold": -0.9}"#;
    let verdicts = plugin_run(Some(strict), &input);
    for verdict in &verdicts {
        let (_, label) = check_attrs(&verdict["post"]["attrs"], 0.9, -0.9);
        assert_eq!(label, "neutral");
    }

    let plugin = support::wasm::plugin("sentiment");
    let (code, _, stderr) = tweetpipe(
        &[
            "plugin",
            "run",
            plugin.to_str().unwrap(),
            "--plugin-config",
            r#"{"positive_threshold": -0.5}"#,
            "--input",
            "-",
        ],
        &input,
    );
    assert_ne!(code, 0, "an overlapping threshold must be refused");
    assert!(stderr.contains("positive_threshold"), "{stderr}");
}

#[test]
fn pipeline_run_stores_the_sentiment_attributes_in_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let input = std::fs::read_to_string(sample_posts()).unwrap();
    std::fs::write(dir.path().join("posts.jsonl"), &input).unwrap();
    let config = format!(
        r#"
[source.replay]
path = "posts.jsonl"

[broker]
kind = "embedded"
capacity = 256

[batch]
max_rows = 200
max_age_ms = 200

[sink.sqlite]
path = "out/posts.db"

[dead_letter]
path = "out/dead.jsonl"

[logging]
level = "warn"

[[plugins]]
path = {:?}
config = {{ positive_threshold = 0.05, negative_threshold = -0.05 }}
"#,
        support::wasm::plugin("sentiment").display().to_string()
    );
    std::fs::write(dir.path().join("tweetpipe.toml"), config).unwrap();
    let config = Config::load(&dir.path().join("tweetpipe.toml")).unwrap();
    let chain = LoadedChain::load(&config.plugins).unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime
        .block_on(tweetpipe::pipeline::run(
            &config,
            chain,
            std::future::pending(),
        ))
        .unwrap();

    // What `plugin run` says about each post, to compare with the stored rows.
    let expected: BTreeMap<String, String> = plugin_run(None, &input)
        .into_iter()
        .filter(|verdict| verdict["action"] == "keep")
        .map(|verdict| {
            (
                verdict["id"].as_str().unwrap().to_owned(),
                verdict["post"]["attrs"]["sentiment_label"]
                    .as_str()
                    .unwrap()
                    .to_owned(),
            )
        })
        .collect();

    let db = rusqlite::Connection::open(dir.path().join("out/posts.db")).unwrap();
    let mut statement = db
        .prepare(
            "SELECT id, json_extract(attrs, '$.sentiment_label'), \
             json_extract(attrs, '$.sentiment_compound') FROM posts",
        )
        .unwrap();
    let rows: Vec<(String, Option<String>, Option<f64>)> = statement
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    // One row per distinct post id (the sample repeats a few posts on purpose).
    assert_eq!(rows.len(), expected.len(), "rows stored vs posts kept");
    for (id, label, compound) in &rows {
        let label = label
            .as_deref()
            .unwrap_or_else(|| panic!("post {id} has no sentiment_label"));
        let compound = compound.unwrap_or_else(|| panic!("post {id} has no sentiment_compound"));
        assert!((-1.0..=1.0).contains(&compound), "post {id}: {compound}");
        assert_eq!(
            Some(label),
            expected.get(id).map(String::as_str),
            "post {id}: the stored label differs from `plugin run`"
        );
    }
    let positives: i64 = db
        .query_row(
            "SELECT count(*) FROM posts WHERE json_extract(attrs, '$.sentiment_label') = 'positive'",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert!(positives > 0, "no post was stored as positive");
}
