//! Agreement with the reference: every sentence of `reference/expected.jsonl`
//! (scored once by Python's `vaderSentiment` 3.3.2, see `reference/score.py`)
//! must get the same compound score within 0.001, on at least 99 % of them.
//! Every mismatch is printed.

use std::path::Path;

use sentiment::Analyzer;

#[derive(Debug, serde::Deserialize)]
struct Expected {
    text: String,
    compound: f64,
    pos: f64,
    neu: f64,
    neg: f64,
}

fn expected() -> Vec<Expected> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("reference/expected.jsonl");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|error| panic!("reading {}: {error}", path.display()));
    text.lines()
        .enumerate()
        .map(|(index, line)| {
            serde_json::from_str(line)
                .unwrap_or_else(|error| panic!("expected.jsonl line {}: {error}", index + 1))
        })
        .collect()
}

#[test]
fn compound_matches_python_vader_on_the_corpus() {
    let cases = expected();
    assert!(
        cases.len() >= 1000,
        "the reference corpus has {} sentences, expected at least 1,000",
        cases.len()
    );
    let analyzer = Analyzer::new().expect("the shipped lexicons parse");
    let mut mismatches = 0usize;
    let mut share_mismatches = 0usize;
    for case in &cases {
        let scores = analyzer.polarity_scores(&case.text);
        if (scores.compound - case.compound).abs() > 0.001 {
            mismatches += 1;
            println!(
                "compound mismatch: ours {:.4}, vaderSentiment {:.4}: {:?}",
                scores.compound, case.compound, case.text
            );
        }
        let rounded = scores.rounded();
        if (rounded.pos - case.pos).abs() > 0.0015
            || (rounded.neu - case.neu).abs() > 0.0015
            || (rounded.neg - case.neg).abs() > 0.0015
        {
            share_mismatches += 1;
            println!(
                "pos/neu/neg mismatch: ours {:.3}/{:.3}/{:.3}, vaderSentiment {:.3}/{:.3}/{:.3}: {:?}",
                rounded.pos, rounded.neu, rounded.neg, case.pos, case.neu, case.neg, case.text
            );
        }
    }
    println!(
        "{} sentences: {} compound mismatches, {} pos/neu/neg mismatches",
        cases.len(),
        mismatches,
        share_mismatches
    );
    assert!(
        mismatches * 100 <= cases.len(),
        "{mismatches} of {} compound scores differ from vaderSentiment by more than 0.001 (at most 1 % may)",
        cases.len()
    );
    assert!(
        share_mismatches * 100 <= cases.len(),
        "{share_mismatches} of {} pos/neu/neg triples differ from vaderSentiment",
        cases.len()
    );
}
