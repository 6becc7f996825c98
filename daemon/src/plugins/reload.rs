//! Swapping plugins in a running pipeline: a new chain is loaded and checked off
//! the hot path, then published as a new generation that each worker picks up
//! between two batches.
//!
//! [`ChainSwitch`] holds the current generation behind an atomic pointer
//! ([`arc_swap::ArcSwap`]): publishing is one pointer swap, and a worker's batch in
//! flight keeps the plugins it started with alive until it ends. [`PluginReloader`]
//! builds generations: it reuses every plugin whose file and settings did not
//! change, loads and self-checks the others, and keeps the old version of a plugin
//! whose new file fails (the log says why; the next change to the file is tried).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;

use super::cache::sha256_hex;
use super::load::{LoadedPlugin, load_plugin};
use super::{LoadedChain, PluginError, RuntimeOptions, Verdict};
use crate::config::PluginConfig;

/// Hex digits of a file's sha256 shown in logs (`v1a2b3c4d`).
const SHORT_SHA: usize = 8;

/// One published version of the chain.
#[derive(Debug)]
pub struct ChainGeneration {
    /// Starts at 0 and grows by one per swap.
    pub number: u64,
    /// The compiled chain of this generation.
    pub chain: LoadedChain,
}

/// The chain the workers should run, swapped atomically between batches.
#[derive(Debug)]
pub struct ChainSwitch {
    current: ArcSwap<ChainGeneration>,
}

impl ChainSwitch {
    /// A switch whose generation 0 is `chain`.
    pub fn new(chain: LoadedChain) -> Arc<ChainSwitch> {
        Arc::new(ChainSwitch {
            current: ArcSwap::from_pointee(ChainGeneration { number: 0, chain }),
        })
    }

    /// The current generation.
    pub fn current(&self) -> Arc<ChainGeneration> {
        self.current.load_full()
    }

    /// The current generation when it is not `number`; cheap enough for every batch.
    pub fn newer_than(&self, number: u64) -> Option<Arc<ChainGeneration>> {
        let current = self.current.load();
        (current.number != number).then(|| arc_swap::Guard::into_inner(current))
    }

    /// Publishes `chain` as the next generation and returns its number.
    fn publish(&self, chain: LoadedChain) -> u64 {
        let number = self.current.load().number + 1;
        self.current
            .store(Arc::new(ChainGeneration { number, chain }));
        number
    }
}

/// What a reload changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReloadReport {
    /// One line per change (`plugin my_filter: swapped v… -> v…`), in chain order.
    pub changes: Vec<String>,
    /// New plugin files that were refused; their old version keeps running.
    pub refused: Vec<String>,
    /// The generation published, `None` when nothing changed.
    pub generation: Option<u64>,
}

/// Builds and publishes new chain generations, for SIGHUP and the file watcher.
#[derive(Debug)]
pub struct PluginReloader {
    switch: Arc<ChainSwitch>,
    options: RuntimeOptions,
    state: Mutex<ReloadState>,
}

#[derive(Debug)]
struct ReloadState {
    /// The `[[plugins]]` entries of the current generation.
    configs: Vec<PluginConfig>,
    /// Per plugin name, the sha256 of a file refused already (not retried until it changes).
    refused: HashMap<String, String>,
}

impl PluginReloader {
    /// A reloader whose current chain `switch` was loaded from `configs`.
    pub fn new(
        switch: Arc<ChainSwitch>,
        configs: Vec<PluginConfig>,
        options: RuntimeOptions,
    ) -> PluginReloader {
        PluginReloader {
            switch,
            options,
            state: Mutex::new(ReloadState {
                configs,
                refused: HashMap::new(),
            }),
        }
    }

    /// The switch the workers read.
    pub fn switch(&self) -> &Arc<ChainSwitch> {
        &self.switch
    }

    /// The plugin files of the current configuration.
    pub fn watched_paths(&self) -> Vec<PathBuf> {
        let state = self
            .state
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        state
            .configs
            .iter()
            .map(|config| config.path.clone())
            .collect()
    }

    /// Applies a re-read `[[plugins]]` list (SIGHUP): plugins are added, removed,
    /// reordered or re-configured. A new or re-configured plugin that fails makes
    /// the whole reload fail and nothing changes; a changed file of an unchanged
    /// entry that fails keeps its old version.
    pub fn reload_config(&self, configs: &[PluginConfig]) -> Result<ReloadReport, PluginError> {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        self.apply(&mut state, configs.to_vec())
    }

    /// Re-checks the plugin files of the current configuration (the watcher).
    pub fn reload_files(&self) -> Result<ReloadReport, PluginError> {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        let configs = state.configs.clone();
        self.apply(&mut state, configs)
    }

    fn apply(
        &self,
        state: &mut ReloadState,
        configs: Vec<PluginConfig>,
    ) -> Result<ReloadReport, PluginError> {
        let current = self.switch.current();
        let old = &current.chain.plugins;
        let mut report = ReloadReport::default();
        let mut next: Vec<Arc<LoadedPlugin>> = Vec::with_capacity(configs.len());
        for config in &configs {
            let name = config.display_name();
            let previous = old.iter().find(|plugin| plugin.name == name);
            let same_config = state
                .configs
                .iter()
                .any(|old_config| old_config.display_name() == name && old_config == config);
            // Only an unchanged entry may fall back to the version it runs now.
            let fallback = previous.filter(|_| same_config);
            let sha = match std::fs::read(&config.path) {
                Ok(bytes) => sha256_hex(&bytes),
                // Not a hash: never equal to one, and `short` shows it whole.
                Err(error) => format!("(unreadable: {error})"),
            };
            if let Some(previous) = fallback
                && (previous.sha256 == sha || state.refused.get(&name) == Some(&sha))
            {
                next.push(Arc::clone(previous));
                continue;
            }
            match load_checked(config, &self.options) {
                Ok(loaded) => {
                    state.refused.remove(&name);
                    report.changes.push(match previous {
                        Some(previous) if previous.sha256 != loaded.sha256 => format!(
                            "plugin {name}: swapped v{} -> v{}",
                            short(&previous.sha256),
                            short(&loaded.sha256)
                        ),
                        Some(_) => {
                            format!("plugin {name}: re-configured v{}", short(&loaded.sha256))
                        }
                        None => format!("plugin {name}: added v{}", short(&loaded.sha256)),
                    });
                    next.push(loaded);
                }
                Err(error) => match fallback {
                    Some(previous) => {
                        log::error!(
                            "plugin {name}: the new file {} (v{}) is refused, v{} keeps running: {error}",
                            config.path.display(),
                            short(&sha),
                            short(&previous.sha256)
                        );
                        report.refused.push(error.to_string());
                        state.refused.insert(name, sha);
                        next.push(Arc::clone(previous));
                    }
                    None => return Err(error),
                },
            }
        }
        for plugin in old.iter() {
            if !next.iter().any(|new| new.name == plugin.name) {
                report.changes.push(format!(
                    "plugin {}: removed (was v{})",
                    plugin.name,
                    short(&plugin.sha256)
                ));
            }
        }
        let old_order: Vec<&str> = old.iter().map(|plugin| plugin.name.as_str()).collect();
        let new_order: Vec<&str> = next.iter().map(|plugin| plugin.name.as_str()).collect();
        let kept_old: Vec<&str> = old_order
            .iter()
            .copied()
            .filter(|name| new_order.contains(name))
            .collect();
        let kept_new: Vec<&str> = new_order
            .iter()
            .copied()
            .filter(|name| old_order.contains(name))
            .collect();
        if kept_old != kept_new {
            report.changes.push(format!(
                "plugin chain reordered: {}",
                new_order.join(" -> ")
            ));
        }
        state.configs = configs;
        let unchanged = next.len() == old.len()
            && next
                .iter()
                .zip(old.iter())
                .all(|(new, old)| Arc::ptr_eq(new, old));
        if unchanged {
            return Ok(report);
        }
        let generation = self.switch.publish(LoadedChain::from_plugins(next));
        for change in &report.changes {
            log::info!("{change}");
        }
        log::info!(
            "plugin chain generation {generation} published; workers switch at their next batch"
        );
        report.generation = Some(generation);
        Ok(report)
    }
}

/// The first hex digits of a sha256, as shown in logs.
pub(crate) fn short(sha: &str) -> &str {
    match sha.bytes().all(|byte| byte.is_ascii_hexdigit()) {
        true => sha.get(..SHORT_SHA).unwrap_or(sha),
        false => sha,
    }
}

/// Loads a plugin and runs its `self_check` file, if it has one.
pub(crate) fn load_checked(
    config: &PluginConfig,
    options: &RuntimeOptions,
) -> Result<Arc<LoadedPlugin>, PluginError> {
    let plugin = Arc::new(load_plugin(config, options)?);
    if let Some(samples) = &config.self_check {
        self_check(&plugin, samples)?;
    }
    Ok(plugin)
}

/// Runs the posts of a JSONL file through one plugin; any failure, trap or
/// timeout refuses the plugin.
pub(crate) fn self_check(plugin: &Arc<LoadedPlugin>, samples: &Path) -> Result<(), PluginError> {
    let name = plugin.name.clone();
    let error = |message: String| PluginError::SelfCheck {
        plugin: name.clone(),
        message,
    };
    let text = std::fs::read_to_string(samples).map_err(|io| {
        error(format!(
            "cannot read its self_check file {}: {io}",
            samples.display()
        ))
    })?;
    let mut posts = Vec::new();
    for (index, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let post = crate::post::decode(line).map_err(|decode| {
            error(format!(
                "self_check {} line {}: {decode}",
                samples.display(),
                index + 1
            ))
        })?;
        posts.push(post);
    }
    let chain = LoadedChain::from_plugins(vec![Arc::clone(plugin)]);
    let mut runner = chain.instantiate()?;
    let count = posts.len();
    for verdict in runner.run(posts) {
        if let Verdict::Fail {
            post, error: why, ..
        } = verdict
        {
            return Err(error(format!(
                "post {} of self_check {} failed: {why}",
                post.id,
                samples.display()
            )));
        }
    }
    log::debug!(
        "plugin {}: passed its self_check of {count} posts",
        plugin.name
    );
    Ok(())
}
