//! The `filter` plugin (X filtered-stream rules) through the real host: with
//! `tweetpipe plugin run` on the committed sample posts, with `plugin check`
//! and `check-config` refusing a bad rule at its column, and inside
//! `tweetpipe::pipeline::run` from a `[[plugins]]` entry down to SQLite.
//!
//! Needs `filter.wasm` from `make plugins`; the tests fail (never skip) without it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use tweetpipe::config::Config;
use tweetpipe::plugins::LoadedChain;
use tweetpipe::post::Post;

mod support;

use support::cli::tweetpipe;

/// The rules the tests configure, as the plugin's JSON config.
fn rules_config() -> serde_json::Value {
    serde_json::json!({ "rules": [
        { "value": "#COVID19 -is:retweet", "tag": "covid" },
        { "value": "lang:pt (#Lisbon OR #LisbonLife)", "tag": "lisbon" },
        { "value": "\"Nova Lark\" -lang:pt" },
    ]})
}

fn has_hashtag(post: &Post, tag: &str) -> bool {
    post.hashtags
        .iter()
        .any(|hashtag| hashtag.eq_ignore_ascii_case(tag))
}

/// The tags of [`rules_config`] a post matches, computed here without the plugin.
fn expected_tags(post: &Post) -> Vec<String> {
    let mut tags = Vec::new();
    if has_hashtag(post, "COVID19") && !post.is_retweet {
        tags.push("covid".to_owned());
    }
    if post.lang == "pt" && (has_hashtag(post, "Lisbon") || has_hashtag(post, "LisbonLife")) {
        tags.push("lisbon".to_owned());
    }
    let lower = post.text.to_lowercase();
    let words: Vec<&str> = lower
        .split(|c: char| !(c.is_alphanumeric() || c == '_'))
        .filter(|word| !word.is_empty())
        .collect();
    if words.windows(2).any(|pair| pair == ["nova", "lark"]) && post.lang != "pt" {
        tags.push("\"Nova Lark\" -lang:pt".to_owned());
    }
    tags
}

/// Every decodable sample post by id.
fn sample_posts() -> BTreeMap<String, Post> {
    std::fs::read_to_string(support::cli::sample_posts())
        .unwrap()
        .lines()
        .filter_map(|line| tweetpipe::post::decode(line).ok())
        .map(|post| (post.id.clone(), post))
        .collect()
}

/// How many sample lines decode to a post (the sample repeats some posts).
fn decodable_lines() -> usize {
    std::fs::read_to_string(support::cli::sample_posts())
        .unwrap()
        .lines()
        .filter(|line| tweetpipe::post::decode(line).is_ok())
        .count()
}

/// Writes a pipeline config reading the samples through the filter with
/// `rules` (a TOML array) into `dir`, with a copy of the samples; returns its path.
fn write_config(dir: &Path, rules: &str) -> PathBuf {
    std::fs::copy(support::cli::sample_posts(), dir.join("posts.jsonl")).unwrap();
    let path = dir.join("tweetpipe.toml");
    std::fs::write(
        &path,
        format!(
            r#"
[source.replay]
path = "posts.jsonl"

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

[[plugins]]
path = {:?}
config = {{ rules = {rules} }}
"#,
            support::wasm::plugin("filter").display().to_string(),
        ),
    )
    .unwrap();
    path
}

#[test]
fn plugin_run_keeps_the_sample_posts_a_rule_matches_and_tags_them() {
    let plugin = support::wasm::plugin("filter");
    let config = rules_config().to_string();
    let (code, stdout, stderr) = tweetpipe(
        &[
            "plugin",
            "run",
            plugin.to_str().unwrap(),
            "--plugin-config",
            &config,
            "--input",
            support::cli::sample_posts().to_str().unwrap(),
        ],
        "",
    );
    assert_eq!(code, 0, "stderr: {stderr}");
    let posts = sample_posts();
    let mut kept = 0;
    let mut dropped = 0;
    let mut per_tag: BTreeMap<String, usize> = BTreeMap::new();
    for line in stdout.lines() {
        let verdict: serde_json::Value = serde_json::from_str(line).unwrap();
        let Some(post) = verdict["id"].as_str().and_then(|id| posts.get(id)) else {
            assert_eq!(verdict["action"], "error", "{verdict}");
            continue;
        };
        let expected = expected_tags(post);
        match verdict["action"].as_str() {
            Some("keep") => {
                kept += 1;
                let tags: Vec<String> =
                    serde_json::from_value(verdict["post"]["attrs"]["matched_rules"].clone())
                        .unwrap_or_else(|error| panic!("matched_rules in {verdict}: {error}"));
                assert_eq!(tags, expected, "post {:?}", post.text);
                for tag in tags {
                    *per_tag.entry(tag).or_default() += 1;
                }
            }
            Some("drop") => {
                dropped += 1;
                assert!(
                    expected.is_empty(),
                    "dropped {:?}, expected {expected:?}",
                    post.text
                );
                assert_eq!(verdict["plugin"], "filter");
            }
            other => panic!("unexpected action {other:?}: {verdict}"),
        }
    }
    assert_eq!(kept + dropped, decodable_lines());
    // The rules select something from every side of the sample, and not everything.
    assert_eq!(per_tag.len(), 3, "{per_tag:?}");
    assert!(dropped > 0 && kept > 0, "kept {kept}, dropped {dropped}");
    assert!(
        stderr.contains(&format!("{kept} kept, {dropped} dropped, 0 failed")),
        "{stderr}"
    );
}

#[test]
fn a_bad_rule_is_refused_at_its_column() {
    let plugin = support::wasm::plugin("filter");
    let config = r#"{"rules":[{"value":"cat","tag":"ok"},{"value":"(covid OR vaccine lang:en","tag":"covid"}]}"#;
    for command in ["run", "check"] {
        let mut args = vec!["plugin", command, plugin.to_str().unwrap()];
        args.extend(["--plugin-config", config]);
        if command == "run" {
            args.extend(["--input", "/dev/null"]);
        }
        let (code, _, stderr) = tweetpipe(&args, "");
        assert_ne!(code, 0, "plugin {command} accepted a bad rule: {stderr}");
        assert!(
            stderr.contains("config.rules[1] (tag \"covid\"): column 1: `(` is never closed"),
            "plugin {command}: {stderr}"
        );
        assert!(
            stderr.contains("    (covid OR vaccine lang:en\n    ^"),
            "plugin {command}: {stderr}"
        );
    }
}

#[test]
fn check_config_shows_an_invalid_rule() {
    let dir = tempfile::tempdir().unwrap();
    let config_path = write_config(
        dir.path(),
        r#"[{ value = "-is:retweet -covid", tag = "neg" }]"#,
    );
    let (code, stdout, stderr) = tweetpipe(
        &["check-config", "--config", config_path.to_str().unwrap()],
        "",
    );
    let output = format!("{stdout}{stderr}");
    assert_ne!(code, 0, "{output}");
    assert!(
        output.contains("column 1: a rule cannot consist only of negated terms"),
        "{output}"
    );
}

#[test]
fn the_pipeline_commits_only_matching_posts_with_their_tags() {
    let dir = tempfile::tempdir().unwrap();
    let rules: Vec<String> = rules_config()["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|rule| {
            let tag = rule["tag"]
                .as_str()
                .map(|tag| format!(", tag = {tag:?}"))
                .unwrap_or_default();
            format!("{{ value = {:?}{tag} }}", rule["value"].as_str().unwrap())
        })
        .collect();
    let config_path = write_config(dir.path(), &format!("[{}]", rules.join(", ")));
    let config = Config::load(&config_path).unwrap();
    let chain = LoadedChain::load(&config.plugins).unwrap();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let outcome = runtime
        .block_on(tweetpipe::pipeline::run(
            &config,
            chain,
            std::future::pending(),
        ))
        .unwrap();

    let expected: BTreeMap<String, Vec<String>> = sample_posts()
        .into_values()
        .map(|post| (post.id.clone(), expected_tags(&post)))
        .filter(|(_, tags)| !tags.is_empty())
        .collect();
    let db = rusqlite::Connection::open(dir.path().join("out/posts.db")).unwrap();
    let mut statement = db
        .prepare("SELECT id, json_extract(attrs, '$.matched_rules') FROM posts")
        .unwrap();
    let rows: BTreeMap<String, Vec<String>> = statement
        .query_map([], |row| {
            Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
        })
        .unwrap()
        .map(|row| {
            let (id, tags) = row.unwrap();
            (id, serde_json::from_str(&tags).unwrap())
        })
        .collect();
    assert!(!expected.is_empty());
    assert_eq!(rows, expected);
    assert_eq!(outcome.stats.failed, 0);
    assert_eq!(outcome.stats.acked, outcome.stats.read);
}
