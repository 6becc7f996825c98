//! tweetpipe's `sentiment` plugin: VADER sentiment scores for every post.
//!
//! Layout: [`lexicon`] holds VADER's word and emoji lexicons (shipped inside
//! the plugin) and parses them once into fast maps; [`vader`] applies VADER's
//! rules to a text; [`settings`] reads the plugin's config and turns a compound
//! score into a label; `plugin` (wasm only) is the SDK glue that adds the
//! `sentiment_*` attributes to each post.

pub mod lexicon;
pub mod settings;
pub mod vader;

#[cfg(target_arch = "wasm32")]
mod plugin;

pub use settings::{Label, Settings, SettingsError};
pub use vader::{Analyzer, Scores, Scratch};
