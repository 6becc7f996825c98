//! The synthetic sample generator: deterministic, decodable, and matching the
//! committed `config/samples/posts.jsonl`.

use std::collections::BTreeSet;
use std::path::PathBuf;

use tweetpipe::post::{DecodeError, decode};
use tweetpipe::sample::{SampleOptions, SampleSummary, write_sample};

const REGENERATE: &str = "regenerate it with `cargo test -p tweetpipe --test sample -- --ignored regenerate_committed_sample` \
     (or `tweetpipe sample --count 3000 --seed 42 > config/samples/posts.jsonl`)";

fn committed_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../config/samples/posts.jsonl")
}

fn generate(options: &SampleOptions) -> (Vec<u8>, SampleSummary) {
    let mut out = Vec::new();
    let summary = write_sample(options, &mut out).expect("writing to memory cannot fail");
    (out, summary)
}

fn committed_options() -> SampleOptions {
    SampleOptions {
        count: 3000,
        seed: 42,
        ..SampleOptions::default()
    }
}

/// What each line of a sample turned out to be, counted like [`SampleSummary`].
fn classify(text: &str) -> (SampleSummary, BTreeSet<&'static str>) {
    let mut summary = SampleSummary::default();
    let mut ids = BTreeSet::new();
    let mut seen_lines = BTreeSet::new();
    let mut malformed_kinds = BTreeSet::new();
    for line in text.lines() {
        summary.lines += 1;
        match decode(line) {
            Ok(post) => {
                summary.posts += 1;
                assert_eq!(post.raw.as_deref(), Some(line));
                if ids.insert(post.id.clone()) {
                    assert!(seen_lines.insert(line), "a new id on a repeated line");
                } else {
                    assert!(
                        seen_lines.contains(line),
                        "id {} repeated on a line that is not an exact duplicate",
                        post.id
                    );
                    summary.duplicates += 1;
                }
            }
            Err(DecodeError::Blank) => {
                assert_eq!(line, "", "keep-alive lines are empty");
                summary.blank += 1;
            }
            Err(error) => {
                assert!(
                    matches!(
                        error,
                        DecodeError::NotJson { .. }
                            | DecodeError::XError { .. }
                            | DecodeError::MissingId { .. }
                            | DecodeError::WrongType { .. }
                    ),
                    "unexpected error kind for {line}: {error}"
                );
                malformed_kinds.insert(error.kind());
                summary.malformed += 1;
            }
        }
    }
    summary.unique_ids = ids.len();
    (summary, malformed_kinds)
}

#[test]
fn same_options_give_identical_bytes() {
    let options = SampleOptions {
        count: 500,
        seed: 7,
        ..SampleOptions::default()
    };
    let (first, first_summary) = generate(&options);
    let (second, second_summary) = generate(&options);
    assert_eq!(first_summary, second_summary);
    assert!(first == second, "two runs with the same seed differ");

    let (other, _) = generate(&SampleOptions { seed: 8, ..options });
    assert_ne!(
        first, other,
        "different seeds should give different samples"
    );
}

#[test]
fn committed_sample_is_the_generators_output() {
    let committed = std::fs::read(committed_path()).unwrap_or_else(|error| {
        panic!("cannot read config/samples/posts.jsonl ({error}); {REGENERATE}")
    });
    let (generated, _) = generate(&committed_options());
    assert!(
        committed == generated,
        "config/samples/posts.jsonl is not the generator's output for count 3000, seed 42 \
         (edited by hand, or the generator changed); {REGENERATE}"
    );
}

#[test]
fn every_line_is_what_the_summary_says() {
    let (bytes, summary) = generate(&committed_options());
    let text = String::from_utf8(bytes).expect("the sample is UTF-8");
    let (counted, kinds) = classify(&text);
    assert_eq!(counted, summary);
    assert_eq!(summary.posts, 3000);
    assert_eq!(
        summary.lines,
        summary.posts + summary.malformed + summary.blank
    );
    assert_eq!(summary.posts, summary.unique_ids + summary.duplicates);
    assert!(summary.duplicates > 0 && summary.malformed > 0 && summary.blank > 0);
    assert_eq!(
        kinds,
        BTreeSet::from(["missing_id", "not_json", "wrong_type", "x_error"]),
        "every kind of malformed line should occur"
    );
}

#[test]
fn posts_look_like_a_real_stream() {
    let (bytes, _) = generate(&committed_options());
    let text = String::from_utf8(bytes).expect("the sample is UTF-8");
    let posts: Vec<_> = text.lines().filter_map(|line| decode(line).ok()).collect();

    // Ids are 19-digit snowflakes, increasing with created_at (duplicates aside).
    let mut last: Option<(u64, chrono::DateTime<chrono::Utc>)> = None;
    for post in &posts {
        assert_eq!(post.id.len(), 19, "{}", post.id);
        let id: u64 = post.id.parse().expect("numeric id");
        let created_at = post.created_at.expect("every post has created_at");
        if let Some((last_id, last_at)) = last
            && id > last_id
        {
            assert!(created_at >= last_at);
        }
        if last.is_none_or(|(last_id, _)| id > last_id) {
            last = Some((id, created_at));
        }
        assert!(!post.text.is_empty() && post.text.chars().count() <= 280);
        assert!(
            !post.author.username.is_empty(),
            "the author is in includes"
        );
        assert!(!post.matching_rules.is_empty());
    }
    let first = posts.first().and_then(|post| post.created_at).unwrap();
    let end = posts
        .iter()
        .filter_map(|post| post.created_at)
        .max()
        .unwrap();
    let hours = (end - first).num_hours();
    assert!((9..=15).contains(&hours), "spans {hours} hours");

    let langs: BTreeSet<_> = posts.iter().map(|post| post.lang.as_str()).collect();
    assert_eq!(
        langs,
        BTreeSet::from(["ar", "de", "en", "es", "fr", "hi", "ja", "pt"])
    );
    let tags: BTreeSet<_> = posts.iter().flat_map(|post| post.rule_tags()).collect();
    assert_eq!(tags, BTreeSet::from(["city", "covid", "music", "stocks"]));
    let count = |predicate: &dyn Fn(&tweetpipe::post::Post) -> bool| {
        posts.iter().filter(|post| predicate(post)).count()
    };
    assert!(count(&|post| post.is_retweet && post.text.starts_with("RT @")) > 100);
    assert!(count(&|post| post.is_reply && post.in_reply_to_user_id.is_some()) > 100);
    assert!(count(&|post| post.is_quote) > 50);
    assert!(count(&|post| post.has_media) > 50);
    assert!(count(&|post| post.place.is_some()) > 50);
    assert!(count(&|post| !post.cashtags.is_empty()) > 50);
    assert!(count(&|post| !post.mentions.is_empty()) > 100);
    assert!(count(&|post| !post.urls.is_empty()) > 100);
    assert!(count(&|post| post.text.chars().count() >= 250) > 30);
    assert!(count(&|post| post.text.contains("@example.")) > 5);
    assert!(count(&|post| post.text.contains("4111 1111 1111 1111")) > 0);
    assert!(count(&|post| post.author.location.is_none()) > 100);

    // Locations are skewed: the top five cover a good share of located posts.
    let mut by_location = std::collections::BTreeMap::new();
    for post in &posts {
        if let Some(location) = &post.author.location {
            *by_location.entry(location.as_str()).or_insert(0usize) += 1;
        }
    }
    let mut counts: Vec<usize> = by_location.values().copied().collect();
    counts.sort_unstable_by(|a, b| b.cmp(a));
    let located: usize = counts.iter().sum();
    let top5: usize = counts.iter().take(5).sum();
    assert!(
        by_location.len() >= 25,
        "{} distinct locations",
        by_location.len()
    );
    assert!(
        top5 * 100 / located >= 30,
        "top 5 locations: {top5} of {located}"
    );
}

#[test]
fn options_switch_off_the_noise() {
    let options = SampleOptions {
        count: 300,
        malformed_every: 0,
        duplicate_every: 0,
        blank_every: 0,
        ..SampleOptions::default()
    };
    let (bytes, summary) = generate(&options);
    assert_eq!(
        summary,
        SampleSummary {
            lines: 300,
            posts: 300,
            unique_ids: 300,
            duplicates: 0,
            malformed: 0,
            blank: 0,
        }
    );
    let text = String::from_utf8(bytes).unwrap();
    assert!(text.lines().all(|line| decode(line).is_ok()));
}

/// Rewrites the committed sample from the generator.
#[test]
#[ignore = "writes config/samples/posts.jsonl"]
fn regenerate_committed_sample() {
    let (generated, summary) = generate(&committed_options());
    std::fs::create_dir_all(committed_path().parent().unwrap()).unwrap();
    std::fs::write(committed_path(), generated).unwrap();
    println!("{summary:?}");
}
