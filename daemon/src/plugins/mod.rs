//! The plugin chain stage: every batch of posts passes each configured plugin in order.
//!
//! The pipeline only sees [`LoadedChain`] (compiled once, shared by all workers)
//! and [`ChainRunner`] (one per worker, owns the plugin instances). With an empty
//! chain every post is kept unchanged.

use crate::config::PluginConfig;
use crate::post::Post;

/// What the chain decided for one post.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// Keep the post, possibly modified by the plugins.
    Keep(Post),
    /// A plugin dropped the post on purpose.
    Drop { plugin: String, reason: String },
    /// A plugin failed on the post (error, trap, timeout); it goes to the dead letters.
    Fail {
        post: Post,
        plugin: String,
        error: String,
    },
}

/// Why a plugin chain could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    #[error("plugin {plugin}: {message}")]
    Load { plugin: String, message: String },
}

/// The compiled plugin chain, shared by every worker.
#[derive(Debug, Clone, Default)]
pub struct LoadedChain {
    names: Vec<String>,
}

impl LoadedChain {
    /// Compiles and validates every plugin of the chain.
    pub fn load(plugins: &[PluginConfig]) -> Result<LoadedChain, PluginError> {
        if let Some(plugin) = plugins.first() {
            return Err(PluginError::Load {
                plugin: plugin.display_name(),
                message: "this build has no WebAssembly plugin runtime".to_owned(),
            });
        }
        Ok(LoadedChain { names: Vec::new() })
    }

    /// The plugin names, in chain order.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Creates the per-worker instances.
    pub fn instantiate(&self) -> Result<ChainRunner, PluginError> {
        Ok(ChainRunner {})
    }
}

/// One worker's instances of the chain.
#[derive(Debug)]
pub struct ChainRunner {}

impl ChainRunner {
    /// Runs `posts` through the chain; returns one verdict per post, in input order.
    pub fn run(&mut self, posts: Vec<Post>) -> Vec<Verdict> {
        posts.into_iter().map(Verdict::Keep).collect()
    }
}
