//! Posts per second through the plugin runtime on one core: a no-op plugin that
//! reads nothing, a no-op that reads every field (the full-record crossing), and
//! a keyword filter, at batch sizes 1, 64 and 512; then the process's peak RSS.
//!
//! Needs the plugins built by `make plugins`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use tweetpipe::config::{OnError, PluginConfig};
use tweetpipe::plugins::{LoadedChain, RuntimeOptions};
use tweetpipe::post::{Author, MatchingRule, Metrics, Post};

fn wasm(name: &str) -> PathBuf {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let target = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if Path::new(&dir).is_absolute() => PathBuf::from(dir),
        Some(dir) => workspace.join(dir),
        None => workspace.join("target"),
    };
    let path = target
        .join("wasm32-wasip2/plugin")
        .join(format!("{name}.wasm"));
    assert!(
        path.is_file(),
        "{} is missing: run `make plugins` before `make bench`",
        path.display()
    );
    path
}

/// A post shaped like a typical filtered-stream message.
fn sample_post(index: usize) -> Post {
    Post {
        id: format!("18610000000{index:08}"),
        created_at: Some("2026-11-21T10:00:00.000Z".parse().unwrap()),
        text: if index.is_multiple_of(4) {
            format!(
                "post {index}: trying the new Rust release with wasm plugins #rustlang https://t.co/abc"
            )
        } else {
            format!("post {index}: what a night at the concert, the crowd was amazing #Concert")
        },
        lang: "en".to_owned(),
        author: Author {
            id: "2244994945".to_owned(),
            username: "synth_fan".to_owned(),
            name: "Synthetic Fan".to_owned(),
            location: Some("London, England".to_owned()),
            followers: 512,
            verified: false,
        },
        metrics: Metrics {
            retweets: 12,
            likes: 140,
            replies: 3,
            quotes: 1,
        },
        hashtags: vec!["Concert".to_owned()],
        mentions: vec!["synth_dev".to_owned()],
        cashtags: Vec::new(),
        urls: vec!["https://example.com/some/article".to_owned()],
        matching_rules: vec![MatchingRule {
            id: "1861000000000000100".to_owned(),
            tag: "music".to_owned(),
        }],
        ..Post::default()
    }
}

fn bench_plugins(criterion: &mut Criterion) {
    let options = RuntimeOptions {
        cache_dir: None,
        ..RuntimeOptions::default()
    };
    let plugins = [
        ("noop", serde_json::json!({})),
        ("noop_all_fields", serde_json::json!({})),
        (
            "keyword_filter",
            serde_json::json!({ "keywords": ["rust", "wasm"] }),
        ),
    ];
    for (name, config) in plugins {
        let entry = PluginConfig {
            name: None,
            path: wasm(name),
            config: serde_json::from_value(config).unwrap(),
            on_error: OnError::DeadLetter,
            timeout: None,
            memory_mb: None,
            self_check: None,
        };
        let chain = LoadedChain::load_with(&[entry], &options).expect("loading the plugin");
        let mut runner = chain.instantiate().expect("instantiating the plugin");
        let mut group = criterion.benchmark_group(format!("plugin/{name}"));
        group
            .measurement_time(Duration::from_secs(3))
            .warm_up_time(Duration::from_secs(1));
        for batch in [1usize, 64, 512] {
            let posts: Vec<Post> = (0..batch).map(sample_post).collect();
            group.throughput(Throughput::Elements(batch as u64));
            group.bench_function(format!("batch {batch}"), |bencher| {
                bencher.iter_batched(
                    || posts.clone(),
                    |posts| runner.run(posts),
                    BatchSize::SmallInput,
                )
            });
        }
        group.finish();
    }
    // Peak resident memory of the whole benchmark process.
    if let Ok(status) = std::fs::read_to_string("/proc/self/status")
        && let Some(line) = status.lines().find(|line| line.starts_with("VmHWM:"))
    {
        println!("peak RSS (VmHWM): {}", line["VmHWM:".len()..].trim());
    }
}

/// The 25 filtered-stream rules of the `filter` plugin's benchmark: keywords,
/// phrases, entities, negations, groups and the conjunction-required operators.
const FILTER_RULES: [&str; 25] = [
    "(covid OR vaccine OR booster) lang:en -is:retweet",
    "#COVID19 -is:retweet",
    "\"long covid\" OR #LongCovid",
    "(vacina OR vacuna OR vaccin OR Impfung) -is:retweet",
    "masks (bus OR train) has:hashtags",
    "#Lisbon lang:pt",
    "#LisbonLife -is:reply",
    "(tram OR eléctrico OR elétrico) 28",
    "\"storm warning\" OR orages OR Unwetter",
    "heatwave OR calor OR Hitze -is:retweet",
    "(golazo OR golaço OR goal) -is:retweet",
    "marathon bridge",
    "miradouro OR \"city tonight\"",
    "$ACME OR $GLBX",
    "(earnings OR balanço OR resultados) has:cashtags",
    "(stocks OR bolsa OR Börse) -is:quote",
    "\"Nova Lark\" (tickets OR ingressos OR entradas)",
    "#NovaLarkLive has:links",
    "\"Nova Lark\" -lang:en",
    "(concert OR concierto OR Konzert) -is:retweet",
    "from:synth_fan OR to:synth_fan",
    "@synth_dev has:mentions",
    "url:\"example.com\" -has:media",
    "(rust OR wasm) -(java OR golang)",
    "😭 OR 🔥 OR 🎸 is:verified",
];

/// Posts per second through the `filter` plugin with 25 rules, on the
/// committed sample posts, at the batch size the daemon uses most.
fn bench_filter_rules(criterion: &mut Criterion) {
    let samples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/samples/posts.jsonl");
    let samples: Vec<Post> = std::fs::read_to_string(&samples)
        .expect("reading the sample posts")
        .lines()
        .filter_map(|line| tweetpipe::post::decode(line).ok())
        .collect();
    let rules: Vec<serde_json::Value> = FILTER_RULES
        .iter()
        .enumerate()
        .map(|(index, rule)| serde_json::json!({ "value": rule, "tag": format!("r{index}") }))
        .collect();
    let entry = PluginConfig {
        path: wasm("filter"),
        config: serde_json::from_value(serde_json::json!({ "rules": rules })).unwrap(),
        ..toml::from_str(r#"path = "filter.wasm""#).expect("a minimal plugin entry")
    };
    let options = RuntimeOptions {
        cache_dir: None,
        ..RuntimeOptions::default()
    };
    let chain = LoadedChain::load_with(&[entry], &options).expect("loading the filter plugin");
    let mut runner = chain
        .instantiate()
        .expect("instantiating the filter plugin");
    let mut group = criterion.benchmark_group("plugin/filter 25 rules");
    group
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1));
    for batch in [64usize, 512] {
        let posts: Vec<Post> = samples.iter().cycle().take(batch).cloned().collect();
        group.throughput(Throughput::Elements(batch as u64));
        group.bench_function(format!("batch {batch}"), |bencher| {
            bencher.iter_batched(
                || posts.clone(),
                |posts| runner.run(posts),
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

/// Posts per second through the `pii-scrub` plugin (every detector on) on the
/// committed sample posts, which plant e-mail addresses, phone numbers and card
/// numbers; each batch is the next slice of the file, so the cache of author
/// pseudonyms sees the file's real mix of repeated and new handles.
fn bench_pii_scrub(criterion: &mut Criterion) {
    let samples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/samples/posts.jsonl");
    let samples: Vec<Post> = std::fs::read_to_string(&samples)
        .expect("reading the sample posts")
        .lines()
        .filter_map(|line| tweetpipe::post::decode(line).ok())
        .collect();
    let entry = PluginConfig {
        path: wasm("pii_scrub"),
        config: serde_json::from_value(serde_json::json!({ "key": "benchmark-key-0123456789" }))
            .unwrap(),
        ..toml::from_str(r#"path = "pii_scrub.wasm""#).expect("a minimal plugin entry")
    };
    let options = RuntimeOptions {
        cache_dir: None,
        ..RuntimeOptions::default()
    };
    let chain = LoadedChain::load_with(&[entry], &options).expect("loading the pii-scrub plugin");
    let mut runner = chain
        .instantiate()
        .expect("instantiating the pii-scrub plugin");
    let mut group = criterion.benchmark_group("plugin/pii_scrub");
    group
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1));
    for batch in [64usize, 512] {
        let batches: Vec<Vec<Post>> = samples.chunks_exact(batch).map(<[Post]>::to_vec).collect();
        let mut next = 0;
        group.throughput(Throughput::Elements(batch as u64));
        group.bench_function(format!("batch {batch}"), |bencher| {
            bencher.iter_batched(
                || {
                    next = (next + 1) % batches.len();
                    batches[next].clone()
                },
                |posts| runner.run(posts),
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

/// Posts per second through the `sentiment` plugin (VADER) on the committed
/// sample posts; each batch is the next slice of the file.
fn bench_sentiment(criterion: &mut Criterion) {
    let samples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/samples/posts.jsonl");
    let samples: Vec<Post> = std::fs::read_to_string(&samples)
        .expect("reading the sample posts")
        .lines()
        .filter_map(|line| tweetpipe::post::decode(line).ok())
        .collect();
    let entry = PluginConfig {
        path: wasm("sentiment"),
        ..toml::from_str(r#"path = "sentiment.wasm""#).expect("a minimal plugin entry")
    };
    let options = RuntimeOptions {
        cache_dir: None,
        ..RuntimeOptions::default()
    };
    let chain = LoadedChain::load_with(&[entry], &options).expect("loading the sentiment plugin");
    let mut runner = chain
        .instantiate()
        .expect("instantiating the sentiment plugin");
    let mut group = criterion.benchmark_group("plugin/sentiment");
    group
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1));
    for batch in [64usize, 512] {
        let batches: Vec<Vec<Post>> = samples.chunks_exact(batch).map(<[Post]>::to_vec).collect();
        let mut next = 0;
        group.throughput(Throughput::Elements(batch as u64));
        group.bench_function(format!("batch {batch}"), |bencher| {
            bencher.iter_batched(
                || {
                    next = (next + 1) % batches.len();
                    batches[next].clone()
                },
                |posts| runner.run(posts),
                BatchSize::SmallInput,
            )
        });
    }
    group.finish();
}

criterion_group!(
    benches,
    bench_plugins,
    bench_filter_rules,
    bench_pii_scrub,
    bench_sentiment
);
criterion_main!(benches);
