//! The plugin chain stage: every batch of posts passes each configured plugin in order.
//!
//! The pipeline only sees [`LoadedChain`] (compiled once, shared by all workers)
//! and [`ChainRunner`] (one per worker, owns the plugin instances). With an empty
//! chain every post is kept unchanged.
//!
//! Plugins are WebAssembly components implementing `tweetpipe:plugin@0.3.0`
//! (`plugin-sdk/wit`). Each runs in its own store with no capabilities, a CPU
//! deadline and a memory cap. A trap, a missed deadline or memory exhaustion
//! discards the instance; the batch is then retried post by post on fresh
//! instances so only the poison post fails, with the plugin's name and reason.
//!
//! # Layout
//!
//! - `bindings` is the host side of the contract, generated from the WIT.
//! - `engine` is the sandbox: the shared engine, the linker of the few WASI interfaces granted,
//!   memory caps and captured stderr.
//! - `cache` keeps compiled plugins on disk across restarts.
//! - `load` validates and compiles a `.wasm` file into a [`LoadedChain`] member.
//! - `convert` lowers posts into the contract's batch and applies plugins' changes.
//! - `lowering` is the batch record a `process` call takes; `lifting` bounds and converts
//!   the outcomes it returns.
//! - `cli` is `tweetpipe plugin run|check`, for plugin authors; `new` writes a plugin
//!   project and `producers` reads which language and toolchain built a component.
//! - `reload` builds new chain generations and swaps them in between batches.
//! - `watch` notices changed plugin files and asks `reload` to swap them.

mod bindings;
mod cache;
pub mod cli;
mod convert;
mod engine;
mod lifting;
mod load;
mod lowering;
pub mod new;
mod producers;
mod reload;
mod watch;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use self::lifting::{Outcome, Outcomes, ResultLimits};
use self::load::{Live, LoadedPlugin};
use self::lowering::Batch;
use crate::config::{OnError, PluginConfig};
use crate::post::Post;

pub use self::cache::default_cache_dir;
pub use self::reload::{ChainGeneration, ChainSwitch, PluginReloader, ReloadReport};
pub use self::watch::watch_plugin_files;

/// Per plugin name, the lines it wrote to stdout or stderr that were not
/// logged whole: cut at 4 KiB, or over its rate of 50 lines a second.
pub fn output_lines_dropped() -> Vec<(String, u64)> {
    engine::output_lines_dropped()
}

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

/// Why a plugin could not be loaded. Every message names the plugin and says
/// what to do about it.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// The file does not exist.
    #[error(
        "plugin {plugin}: {} does not exist; check the `path` of its [[plugins]] entry (plugins are `.wasm` files built for wasm32-wasip2)",
        path.display()
    )]
    Missing { plugin: String, path: PathBuf },
    /// The file exists but cannot be read.
    #[error("plugin {plugin}: cannot read {}: {source}", path.display())]
    Read {
        plugin: String,
        path: PathBuf,
        source: std::io::Error,
    },
    /// The file is not WebAssembly at all.
    #[error(
        "plugin {plugin}: {} is not a WebAssembly file; point `path` at the `.wasm` produced by `cargo build --target wasm32-wasip2`",
        path.display()
    )]
    NotWasm { plugin: String, path: PathBuf },
    /// The file is a core module, not a component.
    #[error(
        "plugin {plugin}: {} is a core WebAssembly module, not a component; build it with the tweetpipe-plugin SDK for the wasm32-wasip2 target (or wrap it with `wasm-tools component new`)",
        path.display()
    )]
    CoreModule { plugin: String, path: PathBuf },
    /// The component does not implement this version of the contract.
    #[error("plugin {plugin}: not a tweetpipe:plugin@0.3.0 component: {message}")]
    Contract { plugin: String, message: String },
    /// The component imports something the sandbox does not provide.
    #[error(
        "plugin {plugin}: needs a capability tweetpipe does not grant (plugins get stdio, frozen clocks and random numbers, and a filesystem and network with nothing in them; see `tweetpipe plugin check`): {message}"
    )]
    Capability {
        plugin: String,
        message: String,
        /// Every import of the component, granted or not.
        imports: Vec<String>,
    },
    /// Compilation failed.
    #[error("plugin {plugin}: cannot compile: {message}")]
    Compile { plugin: String, message: String },
    /// Instantiation failed.
    #[error("plugin {plugin}: cannot instantiate: {message}")]
    Instantiate { plugin: String, message: String },
    /// The plugin's `init` rejected its configuration.
    #[error(
        "plugin {plugin}: rejected its configuration: {message} (fix the `config` table of its [[plugins]] entry)"
    )]
    Init { plugin: String, message: String },
    /// `init` trapped, exited or ran out of its deadline.
    #[error(
        "plugin {plugin}: `init` failed: {message} (it gets the same `timeout_ms` ({timeout_ms} ms) and `memory_mb` as every call; raise them in its [[plugins]] entry, or fix the plugin)"
    )]
    InitFailed {
        plugin: String,
        message: String,
        timeout_ms: u128,
    },
    /// `info` trapped or timed out.
    #[error("plugin {plugin}: failed its self-check: {message}")]
    SelfCheck { plugin: String, message: String },
    /// Anything else that prevents loading.
    #[error("plugin {plugin}: {message}")]
    Load { plugin: String, message: String },
}

/// Settings of the plugin runtime that are not per plugin.
#[derive(Debug, Clone)]
pub struct RuntimeOptions {
    /// Where compiled plugins are cached; `None` compiles on every load.
    pub cache_dir: Option<PathBuf>,
    /// CPU time one call into a plugin may take, unless its entry sets `timeout_ms`.
    pub default_timeout: Duration,
    /// Linear memory a plugin may use, unless its entry sets `memory_mb`.
    pub default_memory_mb: u64,
}

impl Default for RuntimeOptions {
    /// The cache in [`default_cache_dir`], 1 s per call, 64 MiB per plugin.
    fn default() -> Self {
        RuntimeOptions {
            cache_dir: default_cache_dir(),
            default_timeout: Duration::from_secs(1),
            default_memory_mb: 64,
        }
    }
}

/// The compiled plugin chain, shared by every worker.
#[derive(Debug, Clone, Default)]
pub struct LoadedChain {
    names: Vec<String>,
    plugins: Arc<[Arc<LoadedPlugin>]>,
}

impl LoadedChain {
    /// [`LoadedChain::load_with`] with the default [`RuntimeOptions`].
    pub fn load(plugins: &[PluginConfig]) -> Result<LoadedChain, PluginError> {
        LoadedChain::load_with(plugins, &RuntimeOptions::default())
    }

    /// Compiles, validates and self-checks every plugin of the chain (each one
    /// is instantiated once and its `init` accepts its config).
    pub fn load_with(
        plugins: &[PluginConfig],
        options: &RuntimeOptions,
    ) -> Result<LoadedChain, PluginError> {
        let loaded = plugins
            .iter()
            .map(|plugin| reload::load_checked(plugin, options))
            .collect::<Result<Vec<_>, _>>()?;
        for plugin in &loaded {
            log::info!(
                "loaded plugin {} v{}",
                plugin.describe(),
                reload::short(&plugin.sha256)
            );
        }
        Ok(LoadedChain::from_plugins(loaded))
    }

    fn from_plugins(loaded: Vec<Arc<LoadedPlugin>>) -> LoadedChain {
        LoadedChain {
            names: loaded.iter().map(|plugin| plugin.name.clone()).collect(),
            plugins: loaded.into(),
        }
    }

    /// The plugin names, in chain order.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Each plugin's name, its own version and the sha256 of its `.wasm`, in chain order.
    pub fn versions(&self) -> Vec<(String, String, String)> {
        self.plugins
            .iter()
            .map(|plugin| {
                let version = plugin.info.version.clone();
                (plugin.name.clone(), version, plugin.sha256.clone())
            })
            .collect()
    }

    /// One line per plugin: name, plugin name and version, contract, size.
    pub fn describe(&self) -> Vec<String> {
        self.plugins
            .iter()
            .map(|plugin| plugin.describe())
            .collect()
    }

    /// Creates the per-worker instances.
    pub fn instantiate(&self) -> Result<ChainRunner, PluginError> {
        let runners = self
            .plugins
            .iter()
            .map(|plugin| {
                Ok(PluginRunner {
                    live: Some(plugin.instantiate()?),
                    batch: Batch::new(),
                    restarts: 0,
                    plugin: Arc::clone(plugin),
                })
            })
            .collect::<Result<Vec<_>, PluginError>>()?;
        Ok(ChainRunner {
            runners,
            scratch: Scratch::default(),
            observer: None,
        })
    }
}

/// What one plugin did with one batch, reported to a [`ChainObserver`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PluginBatch {
    /// Posts handed to the plugin.
    pub posts: usize,
    /// Posts that went on down the chain (kept, or failed with `on_error = "pass"`).
    pub passed: usize,
    /// Wall time of the batch call, including per-post retries after a failure.
    pub elapsed: Duration,
    /// Instances discarded after a trap, timeout or memory exhaustion (and re-created).
    pub restarts: u32,
}

/// Told what each plugin did with each batch (the metrics hook); one call per
/// plugin per batch, from the worker thread, so it must be cheap.
pub trait ChainObserver: Send + Sync + std::fmt::Debug {
    fn plugin_batch(&self, plugin: &str, batch: PluginBatch);
}

/// One worker's instances of the chain.
#[derive(Debug)]
pub struct ChainRunner {
    runners: Vec<PluginRunner>,
    /// Buffers reused from batch to batch, so a batch allocates only its results.
    scratch: Scratch,
    observer: Option<Arc<dyn ChainObserver>>,
}

#[derive(Debug, Default)]
struct Scratch {
    /// The posts still in the chain, and where each came in.
    posts: Vec<Post>,
    slots: Vec<usize>,
    kept_posts: Vec<Post>,
    kept_slots: Vec<usize>,
}

impl ChainRunner {
    /// Reports every plugin's batches to `observer` from now on.
    pub fn observe(&mut self, observer: Arc<dyn ChainObserver>) {
        self.observer = Some(observer);
    }

    /// Runs `posts` through the chain; returns one verdict per post, in input order.
    pub fn run(&mut self, posts: Vec<Post>) -> Vec<Verdict> {
        if self.runners.is_empty() {
            return posts.into_iter().map(Verdict::Keep).collect();
        }
        let Scratch {
            posts: live,
            slots,
            kept_posts,
            kept_slots,
        } = &mut self.scratch;
        let mut verdicts: Vec<Option<Verdict>> = Vec::with_capacity(posts.len());
        verdicts.resize_with(posts.len(), || None);
        slots.extend(0..posts.len());
        live.extend(posts);

        for runner in &mut self.runners {
            if live.is_empty() {
                break;
            }
            let (posts, started) = (live.len(), std::time::Instant::now());
            let Outcomes { outcomes, attrs } = runner.process(live);
            let mut attrs = attrs.into_iter();
            let elapsed = started.elapsed();
            let plugin = &runner.plugin;
            for ((mut post, slot), outcome) in live.drain(..).zip(slots.drain(..)).zip(outcomes) {
                let verdict = match outcome {
                    Outcome::Keep(changes) => {
                        if let Some(changes) = changes {
                            convert::apply_changes(&mut post, changes, &mut attrs);
                        }
                        None
                    }
                    Outcome::Drop(reason) => Some(Verdict::Drop {
                        plugin: plugin.name.clone(),
                        reason,
                    }),
                    Outcome::Fail(error) => match plugin.on_error {
                        OnError::DeadLetter => Some(Verdict::Fail {
                            post: std::mem::take(&mut post),
                            plugin: plugin.name.clone(),
                            error,
                        }),
                        OnError::Drop => Some(Verdict::Drop {
                            plugin: plugin.name.clone(),
                            reason: error,
                        }),
                        OnError::Pass => None,
                    },
                };
                match verdict {
                    Some(verdict) => verdicts[slot] = Some(verdict),
                    None => {
                        kept_posts.push(post);
                        kept_slots.push(slot);
                    }
                }
            }
            if let Some(observer) = &self.observer {
                let restarts = std::mem::take(&mut runner.restarts);
                let passed = kept_posts.len();
                observer.plugin_batch(
                    &runner.plugin.name,
                    PluginBatch {
                        posts,
                        passed,
                        elapsed,
                        restarts,
                    },
                );
            }
            std::mem::swap(live, kept_posts);
            std::mem::swap(slots, kept_slots);
        }

        for (post, slot) in live.drain(..).zip(slots.drain(..)) {
            verdicts[slot] = Some(Verdict::Keep(post));
        }
        verdicts
            .into_iter()
            .map(|verdict| verdict.expect("every post of the batch got a verdict"))
            .collect()
    }
}

/// One plugin's instance inside a worker, re-created after any failure.
struct PluginRunner {
    plugin: Arc<LoadedPlugin>,
    live: Option<Live>,
    /// The batch record this plugin is called with, its buffers reused.
    batch: Batch,
    /// Instances discarded since the last report to the chain's observer.
    restarts: u32,
}

impl std::fmt::Debug for PluginRunner {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("PluginRunner")
            .field("plugin", &self.plugin.name)
            .field("live", &self.live.is_some())
            .finish()
    }
}

impl PluginRunner {
    /// One outcome per post. A failed batch is retried post by post on fresh
    /// instances, so only the posts that fail on their own get `fail`. The
    /// plugin gets only the fields it reads.
    fn process(&mut self, posts: &[Post]) -> Outcomes {
        let reads = self.plugin.info.reads;
        let mut batch = std::mem::replace(&mut self.batch, Batch::new());
        // One budget for the batch's results, however many calls it takes.
        let mut limits = self.plugin.limits;
        let outcomes = match convert::lower(posts, reads, &mut batch) {
            Ok(()) => self.call(&batch, &mut limits),
            Err(error) => Err(error.to_string()),
        };
        let outcomes = match outcomes {
            Ok(outcomes) => outcomes,
            Err(reason) if posts.len() == 1 => Outcomes {
                outcomes: vec![Outcome::Fail(reason)],
                attrs: Vec::new(),
            },
            Err(reason) => {
                log::warn!(
                    "plugin {}: a batch of {} posts failed ({reason}); retrying post by post",
                    self.plugin.name,
                    posts.len()
                );
                let mut all = Outcomes::default();
                for post in posts {
                    let outcome = convert::lower(std::slice::from_ref(post), reads, &mut batch)
                        .map_err(|error| error.to_string())
                        .and_then(|()| self.call(&batch, &mut limits));
                    match outcome {
                        // `call` checked that there is exactly one outcome.
                        Ok(one) => all.append(one),
                        Err(reason) => all.outcomes.push(Outcome::Fail(reason)),
                    }
                }
                all
            }
        };
        self.batch = batch;
        outcomes
    }

    fn call(&mut self, batch: &Batch, limits: &mut ResultLimits) -> Result<Outcomes, String> {
        let live = match &mut self.live {
            Some(live) => live,
            None => self.live.insert(
                self.plugin
                    .instantiate()
                    .map_err(|error| format!("cannot re-create the instance: {error}"))?,
            ),
        };
        match live.process(&self.plugin, batch, limits) {
            Ok(lifted) if lifted.outcomes.len() == batch.posts.len() => Ok(lifted),
            Ok(lifted) => Err(lifting::wrong_count(
                lifted.outcomes.len(),
                batch.posts.len(),
            )),
            Err(reason) => {
                // The store is unusable after a trap: start over on the next call.
                self.live = None;
                self.restarts = self.restarts.saturating_add(1);
                Err(reason)
            }
        }
    }
}
