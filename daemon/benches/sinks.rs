//! Rows per second committed by each local sink on one core, in batches of 500
//! (the default `batch.max_rows`) and of 2,500 (a group commit when rows wait
//! behind a write): the sample posts with the attributes the shipped plugins
//! add, every row with a new post id and a later `created_at`, as a live stream
//! has them, into a fresh database or directory that grows as the benchmark runs.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use tweetpipe::config::{JsonlSinkConfig, NullSinkConfig, SinkKind, SqliteSinkConfig};
use tweetpipe::post::{AttrValue, Post};

/// The default `batch.max_rows`, and the rows of one group commit.
const BATCHES: [usize; 2] = [500, 2500];
const TEMPLATE: usize = 500;

/// The sample posts as they reach the sink after filter → sentiment → pii-scrub.
fn rows() -> Vec<Post> {
    let mut attrs = BTreeMap::new();
    attrs.insert(
        "matched_rules".into(),
        AttrValue::List(vec!["r0".to_owned()]),
    );
    attrs.insert("sentiment_compound".into(), AttrValue::Float(0.4404));
    attrs.insert("sentiment_pos".into(), AttrValue::Float(0.297));
    attrs.insert("sentiment_neu".into(), AttrValue::Float(0.703));
    attrs.insert("sentiment_neg".into(), AttrValue::Float(0.0));
    attrs.insert(
        "sentiment_label".into(),
        AttrValue::Str("positive".to_owned()),
    );
    attrs.insert("pii_redactions".into(), AttrValue::Int(0));
    support::sample_lines()
        .iter()
        .filter_map(|line| tweetpipe::post::decode(line).ok())
        .map(|post| Post {
            attrs: attrs.clone(),
            ..post
        })
        .take(TEMPLATE)
        .collect()
}

fn bench_sinks(criterion: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let template = rows();
    assert_eq!(template.len(), TEMPLATE, "the sample has enough posts");
    let start = chrono::DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
        .expect("a timestamp")
        .to_utc();
    let dir = tempfile::tempdir().expect("a scratch directory");
    let kinds = [
        SinkKind::Sqlite(SqliteSinkConfig {
            path: dir.path().join("posts.db"),
            table: "posts".to_owned(),
            store_raw: false,
        }),
        SinkKind::Jsonl(JsonlSinkConfig {
            dir: dir.path().join("jsonl"),
            prefix: "posts".to_owned(),
            rotate_bytes: 64 * 1024 * 1024,
            rotate_secs: None,
            store_raw: false,
        }),
        SinkKind::Null(NullSinkConfig::default()),
    ];
    let mut next_id = 0u64;
    for kind in kinds {
        support::reset_peak_rss();
        let mut sink = runtime
            .block_on(tweetpipe::sinks::build(&kind))
            .expect("opening the sink");
        let group_name = format!("sink/{}", sink.name());
        let mut group = criterion.benchmark_group(&group_name);
        group
            .measurement_time(Duration::from_secs(3))
            .warm_up_time(Duration::from_secs(1));
        for rows in BATCHES {
            group.throughput(Throughput::Elements(rows as u64));
            group.bench_function(format!("batch {rows}"), |bencher| {
                bencher.iter_batched(
                    || {
                        let mut batch: Vec<Post> =
                            template.iter().cycle().take(rows).cloned().collect();
                        for post in &mut batch {
                            next_id += 1;
                            post.id = format!("9{next_id:018}");
                            post.created_at =
                                Some(start + chrono::Duration::milliseconds(next_id.cast_signed()));
                        }
                        batch
                    },
                    |batch| {
                        let report = runtime
                            .block_on(sink.write(&batch))
                            .expect("writing a batch");
                        assert_eq!(report.written, rows);
                    },
                    BatchSize::SmallInput,
                )
            });
        }
        group.finish();
        runtime.block_on(sink.close()).expect("closing the sink");
        support::record_peak_rss(&group_name);
    }
}

criterion_group!(benches, bench_sinks);
criterion_main!(benches);
