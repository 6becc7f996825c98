//! The `filter` plugin: keeps posts that match at least one X filtered-stream
//! rule, evaluated locally, and records the tags of the matching rules in the
//! `matched_rules` attribute.
//!
//! Layout: `rule` parses and validates one rule; `text` is the tokeniser
//! shared by rules and posts; `matcher` compiles the rules and matches posts;
//! the plugin glue (built for `wasm32` only) wires them to the SDK.

pub mod matcher;
pub mod rule;
pub mod text;

#[cfg(test)]
mod conformance;

#[cfg(target_arch = "wasm32")]
mod plugin {
    use std::cell::RefCell;
    use std::sync::OnceLock;

    use tweetpipe_plugin::prelude::*;

    use crate::matcher::{FilterConfig, RuleSet, Scratch};

    static RULES: OnceLock<RuleSet> = OnceLock::new();

    thread_local! {
        static SCRATCH: RefCell<Scratch> = RefCell::default();
    }

    #[init]
    fn init(config: &Config) -> Result<()> {
        let config: FilterConfig = config.parse()?;
        let rules = RuleSet::new(&config.rules)?;
        // One instance is initialised once; a second init keeps the first rules.
        let _ = RULES.set(rules);
        Ok(())
    }

    #[filter_map(reads(text, lang, author, entities, place, kind))]
    fn filter(post: &Post) -> Result<Option<Changes>> {
        let rules = RULES
            .get()
            .ok_or_else(|| Error::msg("filter: the plugin was not initialised"))?;
        let mut tags: Vec<String> = Vec::new();
        SCRATCH.with_borrow_mut(|scratch| {
            rules.matches(post, scratch, |tag| tags.push(tag.to_owned()));
        });
        if tags.is_empty() {
            return Ok(None);
        }
        Ok(Some(Changes::new().with_attr("matched_rules", tags)))
    }
}
