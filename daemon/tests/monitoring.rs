//! The Grafana dashboard and Prometheus alerts in packaging/: valid, tested with
//! promtool, and naming only metrics the daemon really exports.
//!
//! promtool comes with Debian's `prometheus` package (`make test` installs it
//! when missing); without it these tests fail and say so.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use tweetpipe::config::Config;
use tweetpipe::metrics::{Metrics, Shape};
use tweetpipe::pipeline::{self, NoObserver};
use tweetpipe::plugins::LoadedChain;
use tweetpipe::sample::{SampleOptions, write_sample};

mod support;

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

fn promtool(args: &[&str]) {
    let dir = repo("packaging/prometheus");
    let output = Command::new("promtool")
        .args(args)
        .current_dir(&dir)
        .output()
        .unwrap_or_else(|error| {
            panic!(
                "promtool cannot run ({error}): install Debian's `prometheus` package (apt-get install prometheus; `make test` does it)"
            )
        });
    assert!(
        output.status.success(),
        "promtool {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn the_alerting_rules_pass_promtool_check_and_their_unit_tests() {
    promtool(&["check", "rules", "tweetpipe-alerts.yml"]);
    // Each alert fires on a synthetic series and is quiet before it.
    promtool(&["test", "rules", "tweetpipe-alerts.test.yml"]);
}

/// Every `tweetpipe_*` name in `text`.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(start) = rest.find("tweetpipe_") {
        let tail = &rest[start..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        names.insert(tail[..end].to_owned());
        rest = &tail[end..];
    }
    names
}

/// The sample names of a real exposition: a pipeline run over sample posts with
/// a plugin, a sink and dead letters, its shape also claiming an X source so the
/// connection series are there too.
async fn exported_names() -> BTreeSet<String> {
    let dir = tempfile::tempdir().unwrap();
    let mut file = std::fs::File::create(dir.path().join("posts.jsonl")).unwrap();
    write_sample(
        &SampleOptions {
            count: 200,
            seed: 3,
            ..SampleOptions::default()
        },
        &mut file,
    )
    .unwrap();
    std::fs::write(
        dir.path().join("tweetpipe.toml"),
        format!(
            r#"
[source.replay]
path = "posts.jsonl"

[[plugins]]
path = "{}"

[sink.sqlite]
path = "out/posts.db"

[dead_letter]
path = "out/dead.jsonl"
"#,
            support::wasm::plugin("drop_retweets").display()
        ),
    )
    .unwrap();
    let config = Config::load(&dir.path().join("tweetpipe.toml")).unwrap();
    let chain = LoadedChain::load(&config.plugins).unwrap();
    let metrics = Arc::new(Metrics::new());
    metrics.pipeline_started(Shape {
        sink: "sqlite",
        broker: "embedded",
        replay: true,
        x: true,
    });
    let _ = metrics.dead_letters();
    pipeline::run_with_metrics(
        &config,
        chain,
        std::future::pending(),
        Arc::new(NoObserver),
        metrics.clone(),
    )
    .await
    .unwrap();
    // The body `/metrics` serves.
    let text = metrics.encode().unwrap();
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .flat_map(metric_names)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_grafana_query_and_alert_names_an_exported_metric() {
    let exported = exported_names().await;
    assert!(
        exported.contains("tweetpipe_source_connected"),
        "{exported:?}"
    );

    let text = std::fs::read_to_string(repo("packaging/grafana/tweetpipe-dashboard.json")).unwrap();
    let dashboard: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut exprs = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            exprs.push(target["expr"].as_str().unwrap().to_owned());
        }
    }
    assert!(exprs.len() >= 10, "{exprs:?}");
    for variable in dashboard["templating"]["list"].as_array().unwrap() {
        if let Some(query) = variable["definition"].as_str() {
            exprs.push(query.to_owned());
        }
    }
    let rules = std::fs::read_to_string(repo("packaging/prometheus/tweetpipe-alerts.yml")).unwrap();
    let rule_exprs: Vec<String> = rules
        .lines()
        .skip_while(|line| !line.contains("groups:"))
        .filter(|line| !line.trim_start().starts_with('#'))
        .map(str::to_owned)
        .collect();
    for expr in exprs.iter().chain(&rule_exprs) {
        let names = metric_names(expr);
        for name in names {
            assert!(
                exported.contains(&name),
                "`{name}` in `{expr}` is not exported by /metrics; exported: {exported:?}"
            );
        }
    }
}
