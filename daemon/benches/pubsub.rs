//! Publish and receive throughput of the Pub/Sub broker against the real emulator.
//!
//! Starts the Pub/Sub emulator on a free loopback port (as the tests do),
//! publishes sample posts through tweetpipe's publisher and receives them through
//! tweetpipe's subscriber with 1, 4 and 8 streaming pulls, acking each message,
//! and prints one table. The emulator paces each streaming pull (about 2,000
//! messages/s per stream), so receive throughput grows with the streams used.
//! `TWEETPIPE_BENCH_PUBSUB_MESSAGES` sets the posts per run (default 20,000).
//!
//! Run it with `cargo bench -p tweetpipe --bench pubsub`.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;
use tweetpipe::broker::{PubsubPublisher, PubsubSubscriber};
use tweetpipe::config::PubsubConfig;
use tweetpipe::sample::{SampleOptions, write_sample};
use tweetpipe::stats::Stats;

#[allow(dead_code)]
#[path = "../tests/support/pubsub_emulator.rs"]
mod pubsub_emulator;

use pubsub_emulator::PubsubEmulator;

/// The streaming pulls each receive run opens.
const STREAMS: [usize; 3] = [1, 4, 8];

/// A receive run that has not seen every message by then has failed.
const RECEIVE_LIMIT: Duration = Duration::from_secs(600);

/// One measured run.
struct Measure {
    what: &'static str,
    streams: Option<usize>,
    messages: usize,
    duplicates: usize,
    elapsed: Duration,
}

impl Measure {
    fn per_second(&self) -> f64 {
        self.messages as f64 / self.elapsed.as_secs_f64()
    }
}

fn main() {
    let messages = std::env::var("TWEETPIPE_BENCH_PUBSUB_MESSAGES")
        .ok()
        .map(|value| {
            value.parse::<usize>().unwrap_or_else(|_| {
                panic!(
                    "TWEETPIPE_BENCH_PUBSUB_MESSAGES must be a count of messages, found {value:?}"
                )
            })
        })
        .unwrap_or(20_000);
    let posts = sample_posts(messages);
    let bytes: usize = posts.iter().map(|post| post.len()).sum();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let emulator = PubsubEmulator::start();
    let mut measures = Vec::new();
    for streams in STREAMS {
        let config = pubsub_config(&emulator, streams);
        let (publish, receive) = runtime.block_on(run(&config, &posts));
        measures.push(publish);
        measures.push(receive);
    }
    drop(emulator);

    println!();
    println!(
        "Pub/Sub broker against the emulator: {messages} sample posts per run, {} bytes on average",
        bytes / messages.max(1)
    );
    println!(
        "publish = PubsubPublisher until every message is confirmed; \
         receive = PubsubSubscriber until every post id arrived, each message acked"
    );
    println!();
    println!(
        "{:<8} {:>7} {:>9} {:>10} {:>9} {:>12}",
        "what", "streams", "messages", "duplicates", "seconds", "messages/s"
    );
    for measure in &measures {
        println!(
            "{:<8} {:>7} {:>9} {:>10} {:>9.2} {:>12.0}",
            measure.what,
            measure
                .streams
                .map_or_else(|| "-".to_owned(), |streams| streams.to_string()),
            measure.messages,
            measure.duplicates,
            measure.elapsed.as_secs_f64(),
            measure.per_second(),
        );
    }
    println!();
    println!(
        "The emulator paces each streaming pull at about 2,000 messages/s; \
         Google Cloud Pub/Sub itself does not, so these are the emulator's figures."
    );
}

/// `count` distinct well-formed sample posts, one JSON message each.
fn sample_posts(count: usize) -> Vec<Arc<str>> {
    let mut text = Vec::new();
    write_sample(
        &SampleOptions {
            count,
            malformed_every: 0,
            duplicate_every: 0,
            blank_every: 0,
            ..SampleOptions::default()
        },
        &mut text,
    )
    .expect("writing sample posts to memory");
    String::from_utf8(text)
        .expect("sample posts are UTF-8")
        .lines()
        .map(Arc::from)
        .collect()
}

/// A fresh topic and subscription per run, so each receive starts from a full backlog.
fn pubsub_config(emulator: &PubsubEmulator, streams: usize) -> PubsubConfig {
    let text = format!(
        r#"
project = "tweetpipe-bench"
topic = "bench-{streams}-topic"
subscription = "bench-{streams}-sub"
create_if_missing = true
endpoint = "{}"
streams = {streams}
"#,
        emulator.endpoint()
    );
    toml::from_str(&text).expect("a valid [broker.pubsub] table")
}

/// Publishes `posts`, then receives them all with `config.streams` streams.
async fn run(config: &PubsubConfig, posts: &[Arc<str>]) -> (Measure, Measure) {
    tweetpipe::broker::pubsub::ensure_resources(config)
        .await
        .expect("creating the topic and the subscription");
    let stats = Arc::new(Stats::default());
    let cancel = CancellationToken::new();
    let publisher = PubsubPublisher::connect(config, stats.clone(), cancel.clone())
        .await
        .expect("connecting the publisher")
        .with_source("bench");

    let started = Instant::now();
    for post in posts {
        publisher
            .publish(post.clone())
            .await
            .expect("the publisher is open");
    }
    publisher.flush().await;
    let publish = Measure {
        what: "publish",
        streams: None,
        messages: posts.len(),
        duplicates: 0,
        elapsed: started.elapsed(),
    };
    assert_eq!(
        stats.snapshot().published,
        posts.len() as u64,
        "every post is confirmed"
    );

    let started = Instant::now();
    let (mut subscriber, control) = PubsubSubscriber::connect(config, stats, cancel.clone())
        .await
        .expect("connecting the subscriber");
    let mut seen = HashSet::with_capacity(posts.len());
    let mut received = 0usize;
    while seen.len() < posts.len() {
        let left = RECEIVE_LIMIT.saturating_sub(started.elapsed());
        let batch = tokio::time::timeout(left, subscriber.recv_many(1024))
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "{} of {} posts received after {RECEIVE_LIMIT:?}",
                    seen.len(),
                    posts.len()
                )
            });
        for delivery in batch {
            received += 1;
            seen.insert(delivery.payload.clone());
            delivery.token.ack();
        }
    }
    let elapsed = started.elapsed();
    control.shutdown().await;
    cancel.cancel();
    let receive = Measure {
        what: "receive",
        streams: Some(config.streams),
        messages: posts.len(),
        duplicates: received - seen.len(),
        elapsed,
    };
    (publish, receive)
}
