//! Messages per second through the embedded broker's durable spool on one core:
//! each sample post appended (group-committed, `synchronous = FULL`), delivered
//! and acked, and its settle committed, so an iteration ends with the spool
//! empty again. The figure `make bench` checks against 100,000 messages/s.

mod support;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tweetpipe::broker::embedded_spooled;
use tweetpipe::broker::spool::{SpoolOptions, SpoolStatus};
use tweetpipe::config::WhenFull;
use tweetpipe::stats::Stats;

/// Messages per iteration.
const MESSAGES: usize = 20_000;

fn bench_spool(criterion: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let lines: Vec<Arc<str>> = support::sample_lines()
        .into_iter()
        .filter(|line| !line.trim().is_empty())
        .map(Arc::from)
        .collect();
    let dir = tempfile::tempdir().expect("a scratch directory");
    let options = SpoolOptions {
        dir: dir.path().join("spool"),
        max_bytes: 1 << 30,
        when_full: WhenFull::Block,
    };
    support::reset_peak_rss();
    let group_name = "spool";
    let mut group = criterion.benchmark_group(group_name);
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(8))
        .warm_up_time(Duration::from_secs(1))
        .throughput(Throughput::Elements(MESSAGES as u64));
    group.bench_function("append + settle/sample posts", |bencher| {
        bencher.iter(|| {
            runtime.block_on(async {
                let status = Arc::new(SpoolStatus::default());
                let (publisher, mut subscriber) =
                    embedded_spooled(10_000, Arc::new(Stats::default()), &options, status.clone())
                        .expect("opening the spool");
                let lines = lines.clone();
                let source = tokio::spawn(async move {
                    for line in lines.iter().cycle().take(MESSAGES) {
                        publisher.publish(line.clone()).await.expect("publishing");
                    }
                });
                let mut received = 0;
                while received < MESSAGES {
                    let deliveries = subscriber.recv_many(512).await;
                    assert!(!deliveries.is_empty(), "the spool ended early");
                    received += deliveries.len();
                    for delivery in deliveries {
                        delivery.token.ack();
                    }
                }
                source.await.expect("the source task");
                // Commits the last settles: the iteration ends with the spool empty.
                subscriber.closer().close_spool().await;
                assert_eq!(status.messages.load(Ordering::Relaxed), 0);
            })
        })
    });
    group.finish();
    support::record_peak_rss(group_name);
}

criterion_group!(benches, bench_spool);
criterion_main!(benches);
