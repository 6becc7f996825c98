//! Posts per second decoded from X API v2 stream JSON into [`Post`]s on one core,
//! on the committed sample posts (the malformed lines the sample plants included,
//! as they are in a real replay), the way the process stage decodes a broker
//! delivery: [`decode_shared`] on the message's `Arc<str>`.
//!
//! [`Post`]: tweetpipe::post::Post
//! [`decode_shared`]: tweetpipe::post::decode_shared

mod support;

use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn bench_decode(criterion: &mut Criterion) {
    let lines: Vec<Arc<str>> = support::sample_lines().into_iter().map(Arc::from).collect();
    let mut group = criterion.benchmark_group("decode");
    group
        .measurement_time(Duration::from_secs(5))
        .warm_up_time(Duration::from_secs(1))
        .throughput(Throughput::Elements(lines.len() as u64));
    support::reset_peak_rss();
    group.bench_function("sample posts", |bencher| {
        bencher.iter(|| {
            for line in &lines {
                let _ = black_box(tweetpipe::post::decode_shared(black_box(line)));
            }
        })
    });
    group.finish();
    // The same posts with every non-ASCII character as a `\u` escape (surrogate
    // pairs beyond the BMP), as some producers write them: every text is unescaped.
    let escaped: Vec<Arc<str>> = lines
        .iter()
        .map(|line| Arc::from(escape_non_ascii(line)))
        .collect();
    let mut group = criterion.benchmark_group("decode");
    group
        .measurement_time(Duration::from_secs(5))
        .warm_up_time(Duration::from_secs(1))
        .throughput(Throughput::Elements(escaped.len() as u64));
    group.bench_function("escaped sample posts", |bencher| {
        bencher.iter(|| {
            for line in &escaped {
                let _ = black_box(tweetpipe::post::decode_shared(black_box(line)));
            }
        })
    });
    group.finish();
    support::record_peak_rss("decode");
}

fn escape_non_ascii(line: &str) -> String {
    let mut out = String::with_capacity(line.len() * 2);
    for ch in line.chars() {
        if ch.is_ascii() {
            out.push(ch);
        } else {
            let mut units = [0u16; 2];
            for unit in ch.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        }
    }
    out
}

criterion_group!(benches, bench_decode);
criterion_main!(benches);
