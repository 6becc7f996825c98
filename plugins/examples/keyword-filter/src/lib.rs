//! Keeps posts whose text contains one of `config.keywords` (case-insensitive)
//! and records which one matched in the `keyword` attribute.

use std::sync::OnceLock;

use tweetpipe_plugin::prelude::*;

static KEYWORDS: OnceLock<Vec<String>> = OnceLock::new();

#[init]
fn init(config: &Config) -> Result<()> {
    let keywords: Vec<String> = config.require("keywords")?;
    if keywords.is_empty() {
        return Err(Error::msg("config.keywords must list at least one keyword"));
    }
    let _ = KEYWORDS.set(
        keywords
            .iter()
            .map(|keyword| keyword.to_lowercase())
            .collect(),
    );
    Ok(())
}

#[filter_map(reads(text))]
fn keyword_filter(mut post: Post) -> Option<Post> {
    let text = post.text.to_lowercase();
    let keyword = KEYWORDS
        .get()?
        .iter()
        .find(|keyword| text.contains(keyword.as_str()))?;
    post.set_attr("keyword", keyword.as_str());
    Some(post)
}
