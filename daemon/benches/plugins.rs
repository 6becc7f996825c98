//! Posts per second through the plugin runtime on one core: a no-op plugin that
//! reads nothing, a no-op that reads every field (the full-record crossing), and
//! a keyword filter, at batch sizes 1, 64 and 512; the shipped plugins (filter
//! with 25 rules, sentiment, pii-scrub, and pii-scrub on posts dense with
//! personal data) alone and chained as `make run` chains them. Each group
//! records its peak RSS for the table `benches/report.rs` prints.
//!
//! Needs the plugins built by `make plugins`.

mod support;

use std::time::Duration;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use support::wasm;
use tweetpipe::config::{OnError, PluginConfig};
use tweetpipe::plugins::{LoadedChain, RuntimeOptions};
use tweetpipe::post::{Author, MatchingRule, Metrics, Post};

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
            max_result_mb: None,
            max_post_kb: None,
            self_check: None,
        };
        support::reset_peak_rss();
        let chain = LoadedChain::load_with(&[entry], &options).expect("loading the plugin");
        let mut runner = chain.instantiate().expect("instantiating the plugin");
        let group_name = format!("plugin/{name}");
        let mut group = criterion.benchmark_group(&group_name);
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
        support::record_peak_rss(&group_name);
    }
}

/// The committed sample posts that decode (the malformed lines left out).
fn sample_posts() -> Vec<Post> {
    support::sample_lines()
        .iter()
        .filter_map(|line| tweetpipe::post::decode(line).ok())
        .collect()
}

/// A plugin entry for `name.wasm` with `config`.
fn entry(name: &str, config: serde_json::Value) -> PluginConfig {
    PluginConfig {
        path: wasm(name),
        config: serde_json::from_value(config).expect("a plugin config table"),
        ..toml::from_str(r#"path = "plugin.wasm""#).expect("a minimal plugin entry")
    }
}

/// The filter plugin's config with [`support::filter_rules`].
fn filter_config() -> serde_json::Value {
    let rules: Vec<serde_json::Value> = support::filter_rules()
        .enumerate()
        .map(|(index, rule)| serde_json::json!({ "value": rule, "tag": format!("r{index}") }))
        .collect();
    serde_json::json!({ "rules": rules })
}

/// The pii-scrub plugin's config: a key, every detector on.
fn pii_scrub_config() -> serde_json::Value {
    serde_json::json!({ "key": "benchmark-key-0123456789" })
}

/// Posts per second through `entries` chained, on consecutive slices of the
/// sample posts (so caches inside plugins see the file's real mix), at batch
/// sizes 64 and 512; records the group's peak RSS.
fn bench_chain_on_samples(criterion: &mut Criterion, group_name: &str, entries: &[PluginConfig]) {
    bench_chain_on(criterion, group_name, entries, sample_posts());
}

/// Posts per second through `entries` chained, on consecutive slices of
/// `samples`, at batch sizes 64 and 512; records the group's peak RSS.
fn bench_chain_on(
    criterion: &mut Criterion,
    group_name: &str,
    entries: &[PluginConfig],
    samples: Vec<Post>,
) {
    support::reset_peak_rss();
    let options = RuntimeOptions {
        cache_dir: None,
        ..RuntimeOptions::default()
    };
    let chain = LoadedChain::load_with(entries, &options).expect("loading the plugins");
    let mut runner = chain.instantiate().expect("instantiating the plugins");
    let mut group = criterion.benchmark_group(group_name);
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
    support::record_peak_rss(group_name);
}

/// Posts per second through the `filter` plugin with 25 rules.
fn bench_filter_rules(criterion: &mut Criterion) {
    bench_chain_on_samples(
        criterion,
        "plugin/filter 25 rules",
        &[entry("filter", filter_config())],
    );
}

/// Posts per second through the `pii-scrub` plugin (every detector on); the
/// sample posts plant e-mail addresses, phone numbers and card numbers, and
/// repeat authors as a real stream does.
fn bench_pii_scrub(criterion: &mut Criterion) {
    bench_chain_on_samples(
        criterion,
        "plugin/pii_scrub",
        &[entry("pii_scrub", pii_scrub_config())],
    );
}

/// Posts per second through the `pii-scrub` plugin when every post carries
/// personal data the numbering plans, card networks and IBAN rules judge
/// (foreign phone numbers, cards of several networks, IBANs) or a look-alike
/// they must let pass: the worst case beside the sample posts' mix.
fn bench_pii_scrub_dense(criterion: &mut Criterion) {
    const PLANTED: &[&str] = &[
        "bel me op 0490 75 40 81",
        "WhatsApp 699 956 915",
        "+49 151 12345678 oder 030 12345678",
        "maestro 630427373398",
        "IBAN DE89 3704 0044 0532 0130 00",
        "JCB 1800 1607 0420 458",
        "Kaunas (37) 788-063",
        "invoice 2023-508182, order no. 4588089875",
        "on 2026-11-21 at 10:30, won 3-1",
        "tel. 0151/12345678 ext. 12",
    ];
    let posts = sample_posts()
        .into_iter()
        .enumerate()
        .map(|(index, mut post)| {
            post.text = format!("{} {}", post.text, PLANTED[index % PLANTED.len()]);
            post
        })
        .collect();
    bench_chain_on(
        criterion,
        "plugin/pii_scrub dense",
        &[entry("pii_scrub", pii_scrub_config())],
        posts,
    );
}

/// Posts per second through the `sentiment` plugin (VADER).
fn bench_sentiment(criterion: &mut Criterion) {
    bench_chain_on_samples(
        criterion,
        "plugin/sentiment",
        &[entry("sentiment", serde_json::json!({}))],
    );
}

/// VADER scoring alone, natively in this process (no Wasm, no host crossing),
/// on the texts of the sample posts: what the method itself costs, beside the
/// plugin through the host.
fn bench_sentiment_native(criterion: &mut Criterion) {
    support::reset_peak_rss();
    let texts: Vec<String> = sample_posts().into_iter().map(|post| post.text).collect();
    let analyzer = sentiment::Analyzer::new().expect("the shipped lexicons parse");
    let mut scratch = sentiment::Scratch::default();
    let mut group = criterion.benchmark_group("sentiment/native");
    group
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1))
        .throughput(Throughput::Elements(texts.len() as u64));
    group.bench_function("sample texts", |bencher| {
        bencher.iter(|| {
            for text in &texts {
                std::hint::black_box(
                    analyzer.scores_with(&mut scratch, std::hint::black_box(text)),
                );
            }
        })
    });
    group.finish();
    support::record_peak_rss("sentiment/native");
}

/// Posts per second through the chain `make run` runs: filter (25 rules) →
/// sentiment → pii-scrub; posts the filter drops are not seen by the others.
fn bench_shipped_chain(criterion: &mut Criterion) {
    bench_chain_on_samples(
        criterion,
        "chain/filter, sentiment, pii_scrub",
        &[
            entry("filter", filter_config()),
            entry("sentiment", serde_json::json!({})),
            entry("pii_scrub", pii_scrub_config()),
        ],
    );
}

/// The keyword-filter example in Rust, Python and JavaScript on the sample
/// posts; prints each component's size and its load time without the
/// compiled-module cache (compilation) and from it.
fn bench_languages(criterion: &mut Criterion) {
    let config = serde_json::json!({ "keywords": ["golaço", "#covid19", "lisboa"] });
    let mut rows = String::new();
    for name in ["keyword_filter", "keyword_filter_py", "keyword_filter_js"] {
        let plugin = entry(name, config.clone());
        let size = std::fs::metadata(&plugin.path).map_or(0, |meta| meta.len());
        let cache = tempfile::tempdir().expect("a temporary cache directory");
        let options = RuntimeOptions {
            cache_dir: Some(cache.path().to_owned()),
            ..RuntimeOptions::default()
        };
        let mut loads = Vec::new();
        for _ in 0..2 {
            let started = std::time::Instant::now();
            LoadedChain::load_with(std::slice::from_ref(&plugin), &options).expect("loading");
            loads.push(started.elapsed());
        }
        eprintln!(
            "{name}: {:.1} MB, load {:.2} s compiling, {:.0} ms from the cache",
            size as f64 / 1e6,
            loads[0].as_secs_f64(),
            loads[1].as_secs_f64() * 1e3
        );
        rows.push_str(&format!(
            "{name}\t{size}\t{}\t{}\n",
            loads[0].as_secs_f64(),
            loads[1].as_secs_f64()
        ));
        bench_chain_on_samples(criterion, &format!("language/{name}"), &[plugin]);
    }
    // For the report's load table (`report.rs`).
    let saved = support::results_dir().join(support::PLUGIN_LOADS);
    if let Err(error) =
        std::fs::create_dir_all(support::results_dir()).and_then(|()| std::fs::write(&saved, rows))
    {
        eprintln!("writing {}: {error}", saved.display());
    }
}

criterion_group!(
    benches,
    bench_plugins,
    bench_languages,
    bench_filter_rules,
    bench_pii_scrub,
    bench_pii_scrub_dense,
    bench_sentiment,
    bench_sentiment_native,
    bench_shipped_chain
);
criterion_main!(benches);
