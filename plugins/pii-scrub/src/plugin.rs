//! The WebAssembly entry points: read the config once per instance, then
//! scrub every post of each batch. Only built for the wasm target; the logic
//! lives in host-testable modules.

use std::sync::OnceLock;

use tweetpipe_plugin::prelude::*;

use crate::scrubber::Scrubber;

static SCRUBBER: OnceLock<Scrubber> = OnceLock::new();

#[init]
fn init(config: &Config) -> Result<()> {
    let scrubber = Scrubber::from_config(config)?;
    let _ = SCRUBBER.set(scrubber);
    Ok(())
}

#[map(reads(text, author, mentions, kind))]
fn pii_scrub(post: &Post) -> Result<Changes> {
    let scrubber = SCRUBBER
        .get()
        .ok_or_else(|| Error::msg("pii-scrub was not initialised with a config"))?;
    Ok(scrubber.scrub(post))
}
