//! Times the analyzer natively over the committed sample posts, so a change to
//! the rules' speed can be judged in seconds before the host confirms it.
//!
//! `cargo run --release -p tweetpipe-sentiment --example score_samples [rounds]`
//! prints the best nanoseconds per post over the rounds and a checksum of the
//! scores (it must not change when only speed does).

use std::path::Path;
use std::time::Instant;

use sentiment::{Analyzer, Scratch};

fn main() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/samples/posts.jsonl");
    let file = std::fs::read_to_string(&path)
        .unwrap_or_else(|error| panic!("reading {}: {error}", path.display()));
    // The samples include malformed lines on purpose; they have no text to score.
    let texts: Vec<String> = file
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter_map(|post| post["data"]["text"].as_str().map(str::to_owned))
        .collect();
    // The reference corpus only counts towards the checksum: its texts exercise
    // rules (idioms, "but", negation chains) that the samples rarely do.
    let corpus_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("reference/expected.jsonl");
    let corpus: Vec<String> = std::fs::read_to_string(&corpus_path)
        .unwrap_or_else(|error| panic!("reading {}: {error}", corpus_path.display()))
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter_map(|case| case["text"].as_str().map(str::to_owned))
        .collect();
    let rounds: usize = std::env::args()
        .nth(1)
        .map_or(200, |rounds| rounds.parse().expect("rounds is a number"));
    let analyzer = Analyzer::new().expect("the shipped lexicons parse");
    let mut scratch = Scratch::default();
    // FNV-1a over every score's bits, in order: any change to any score shows.
    let mut checksum = 0xcbf2_9ce4_8422_2325u64;
    for text in texts.iter().chain(&corpus) {
        let scores = analyzer.scores_with(&mut scratch, text);
        for value in [scores.compound, scores.pos, scores.neu, scores.neg] {
            checksum = (checksum ^ value.to_bits()).wrapping_mul(0x100_0000_01b3);
        }
    }
    let mut best = f64::INFINITY;
    for _ in 0..rounds {
        let start = Instant::now();
        for text in &texts {
            std::hint::black_box(analyzer.scores_with(&mut scratch, std::hint::black_box(text)));
        }
        best = best.min(start.elapsed().as_nanos() as f64 / texts.len() as f64);
    }
    println!(
        "{} posts: best {best:.0} ns/post over {rounds} rounds; checksum {checksum:016x}",
        texts.len()
    );
}
