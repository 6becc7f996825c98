//! The SDK glue: parse the config and the lexicons once per instance, then add
//! the `sentiment_*` attributes to every post.

use std::cell::RefCell;
use std::sync::OnceLock;

use tweetpipe_plugin::prelude::*;

use crate::{Analyzer, Scratch, Settings};

static SETTINGS: OnceLock<Settings> = OnceLock::new();
static ANALYZER: OnceLock<Analyzer> = OnceLock::new();

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

fn analyzer() -> Result<&'static Analyzer> {
    if let Some(analyzer) = ANALYZER.get() {
        return Ok(analyzer);
    }
    let analyzer = Analyzer::new().map_err(|error| Error::msg(error.to_string()))?;
    Ok(ANALYZER.get_or_init(|| analyzer))
}

#[init]
fn init(config: &Config) -> Result<()> {
    let settings = Settings::from_config(config).map_err(|error| Error::msg(error.to_string()))?;
    let _ = SETTINGS.set(settings);
    analyzer()?;
    Ok(())
}

#[map(reads(text))]
fn sentiment(post: &Post) -> Result<Changes> {
    let analyzer = analyzer()?;
    let settings = SETTINGS.get_or_init(Settings::default);
    let scores = SCRATCH
        .with_borrow_mut(|scratch| analyzer.scores_with(scratch, &post.text))
        .rounded();
    Ok(Changes::new()
        .with_attr("sentiment_compound", scores.compound)
        .with_attr("sentiment_pos", scores.pos)
        .with_attr("sentiment_neu", scores.neu)
        .with_attr("sentiment_neg", scores.neg)
        .with_attr("sentiment_label", settings.label(scores.compound).as_str()))
}
