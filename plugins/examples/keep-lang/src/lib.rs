//! Keeps posts in one language: `config = { lang = "en" }` (default "en").

use std::sync::OnceLock;

use tweetpipe_plugin::prelude::*;

static LANG: OnceLock<String> = OnceLock::new();

#[init]
fn init(config: &Config) -> Result<()> {
    let lang: String = config.get_or("lang", "en".to_owned())?;
    if lang.is_empty() {
        return Err(Error::msg(
            "config.lang must be a language tag such as \"en\"",
        ));
    }
    let _ = LANG.set(lang);
    Ok(())
}

#[filter(reads(lang))]
fn keep_lang(post: &Post) -> bool {
    LANG.get().is_some_and(|lang| post.lang == *lang)
}
