//! `tweetpipe plugin run|check`: what a plugin author uses to try a plugin on a
//! file of sample posts and to validate a `.wasm` against the contract, without
//! a config file or a running daemon.

use std::io::{BufRead, BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::bindings::{CONTRACT_PACKAGE, CONTRACT_VERSION};
use super::load::{load_plugin_with, name_for_path};
use super::{LoadedChain, PluginError, RuntimeOptions, Verdict};
use crate::config::{OnError, PluginConfig};
use crate::post::{self, Post};

/// Commands for plugin authors.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum PluginCommand {
    /// Run posts from a JSONL file through a plugin (or a chain) and print one
    /// JSON verdict per post, then a summary on stderr.
    Run {
        /// The plugin(s), in chain order.
        #[arg(value_name = "PLUGIN.wasm")]
        plugins: Vec<PathBuf>,
        /// A further plugin of the chain (after the positional ones); repeatable.
        #[arg(long = "plugin", value_name = "PLUGIN.wasm")]
        more_plugins: Vec<PathBuf>,
        /// Posts, one JSON message per line (X API v2 stream messages or v1.1
        /// statuses); `-` reads stdin.
        #[arg(long, short, value_name = "FILE")]
        input: PathBuf,
        /// The plugin's `config` table as a JSON object; give it once per plugin,
        /// in chain order.
        #[arg(long = "plugin-config", value_name = "JSON")]
        plugin_config: Vec<String>,
        /// Posts handed to the chain in one call.
        #[arg(long, default_value_t = 64, value_name = "N")]
        batch: usize,
        /// CPU time one call may take, in milliseconds.
        #[arg(long = "timeout-ms", value_name = "MS")]
        timeout_ms: Option<u64>,
        /// Linear memory a plugin may use, in MiB.
        #[arg(long = "memory-mb", value_name = "MIB")]
        memory_mb: Option<u64>,
        /// The most a plugin may return for one batch, in MiB (default: a
        /// quarter of the memory cap).
        #[arg(long = "max-result-mb", value_name = "MIB")]
        max_result_mb: Option<u64>,
        /// The most one post's changes may carry, in KiB (default 256).
        #[arg(long = "max-post-kb", value_name = "KIB")]
        max_post_kb: Option<u64>,
    },
    /// Validate a plugin against the contract and print its name, version,
    /// exports, imports and size.
    Check {
        #[arg(value_name = "PLUGIN.wasm")]
        plugin: PathBuf,
        /// A `config` table (JSON object) to try the plugin's `init` with.
        #[arg(long = "plugin-config", value_name = "JSON")]
        plugin_config: Option<String>,
    },
    /// Write a ready plugin project: the source, its build file, sample posts,
    /// a test and a README of three commands.
    New {
        /// The plugin's name, also its folder (created in the current directory).
        name: String,
        /// The language to write it in.
        #[arg(long, value_enum, default_value = "rust")]
        lang: super::new::Lang,
        /// What the plugin does: filter posts, set an attribute, or both.
        #[arg(long, value_enum, default_value = "filter")]
        kind: super::new::Kind,
        /// The SDK folder (with wit/, python/, js/); default: the installed
        /// package's, else the plugin-sdk/ of the clone this binary was built in.
        #[arg(long, value_name = "DIR")]
        sdk: Option<PathBuf>,
    },
}

/// Runs a plugin command: 0 when it worked, 2 for bad usage or a plugin that
/// does not load, 1 when the run itself failed (unreadable input, closed output).
pub fn execute(command: PluginCommand) -> ExitCode {
    match command {
        PluginCommand::Run {
            plugins,
            more_plugins,
            input,
            plugin_config,
            batch,
            timeout_ms,
            memory_mb,
            max_result_mb,
            max_post_kb,
        } => {
            let plugins: Vec<PathBuf> = plugins.into_iter().chain(more_plugins).collect();
            let settings = RunSettings {
                timeout: timeout_ms.map(Duration::from_millis),
                memory_mb,
                max_result_mb,
                max_post_kb,
                batch: batch.max(1),
            };
            run(&plugins, &input, &plugin_config, &settings)
        }
        PluginCommand::New {
            name,
            lang,
            kind,
            sdk,
        } => new_project(&name, lang, kind, sdk.as_deref()),
        PluginCommand::Check {
            plugin,
            plugin_config,
        } => check(&plugin, plugin_config.as_deref()),
    }
}

struct RunSettings {
    timeout: Option<Duration>,
    memory_mb: Option<u64>,
    max_result_mb: Option<u64>,
    max_post_kb: Option<u64>,
    batch: usize,
}

fn new_project(
    name: &str,
    lang: super::new::Lang,
    kind: super::new::Kind,
    sdk: Option<&std::path::Path>,
) -> ExitCode {
    let created = super::new::find_sdk(sdk)
        .and_then(|sdk| super::new::create(std::path::Path::new("."), name, lang, kind, &sdk));
    match created {
        Ok(project) => {
            println!("wrote {}/; then:\n", project.dir.display());
            println!("  cd {name}");
            for command in &project.commands {
                println!("  {command}");
            }
            ExitCode::SUCCESS
        }
        Err(error) => usage_error(error),
    }
}

fn usage_error(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::from(2)
}

/// Builds the `[[plugins]]` entry the command line describes.
fn plugin_entry(
    path: &std::path::Path,
    config_json: Option<&str>,
    settings: Option<&RunSettings>,
) -> Result<PluginConfig, String> {
    let config = match config_json {
        None => toml::Table::new(),
        Some(json) => serde_json::from_str::<toml::Table>(json).map_err(|error| {
            format!(
                "--plugin-config for {}: expected a JSON object such as '{{\"lang\": \"en\"}}': {error}",
                path.display()
            )
        })?,
    };
    Ok(PluginConfig {
        name: Some(name_for_path(path)),
        path: path.to_owned(),
        config,
        on_error: OnError::DeadLetter,
        timeout: settings.and_then(|settings| settings.timeout),
        memory_mb: settings.and_then(|settings| settings.memory_mb),
        max_result_mb: settings.and_then(|settings| settings.max_result_mb),
        max_post_kb: settings.and_then(|settings| settings.max_post_kb),
        self_check: None,
    })
}

fn run(
    plugins: &[PathBuf],
    input: &std::path::Path,
    configs: &[String],
    settings: &RunSettings,
) -> ExitCode {
    if plugins.is_empty() {
        return usage_error("give at least one PLUGIN.wasm (positional or --plugin)");
    }
    if configs.len() > plugins.len() {
        return usage_error(format!(
            "{} --plugin-config values for {} plugins; give at most one per plugin, in chain order",
            configs.len(),
            plugins.len()
        ));
    }
    let entries = match plugins
        .iter()
        .enumerate()
        .map(|(index, path)| {
            plugin_entry(path, configs.get(index).map(String::as_str), Some(settings))
        })
        .collect::<Result<Vec<_>, _>>()
    {
        Ok(entries) => entries,
        Err(message) => return usage_error(message),
    };
    let reader: Box<dyn BufRead> = if input.as_os_str() == "-" {
        Box::new(std::io::stdin().lock())
    } else {
        match std::fs::File::open(input) {
            Ok(file) => Box::new(std::io::BufReader::new(file)),
            Err(error) => {
                return usage_error(format!("cannot open --input {}: {error}", input.display()));
            }
        }
    };
    let chain = match LoadedChain::load_with(&entries, &RuntimeOptions::default()) {
        Ok(chain) => chain,
        Err(PluginError::Init { plugin, message }) => {
            return usage_error(format!(
                "plugin {plugin}: rejected its configuration: {message} (pass its config as JSON with --plugin-config, e.g. --plugin-config '{{\"key\": \"value\"}}')"
            ));
        }
        Err(error) => return usage_error(error),
    };
    let mut runner = match chain.instantiate() {
        Ok(runner) => runner,
        Err(error) => return usage_error(error),
    };

    let started = Instant::now();
    let mut summary = Summary::default();
    let stdout = std::io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let mut pending = Pending::default();
    let mut posts_in_batch = 0;
    let mut line_number = 0usize;
    for line in reader.lines() {
        line_number += 1;
        let line = match line {
            Ok(line) => line,
            Err(error) => {
                eprintln!(
                    "error: reading {} line {line_number}: {error}",
                    input.display()
                );
                let _ = out.flush();
                return ExitCode::from(1);
            }
        };
        if line.trim().is_empty() {
            continue;
        }
        match post::decode(&line) {
            Ok(post) => {
                pending.posts.push(post);
                pending.order.push(Entry::Post);
                posts_in_batch += 1;
            }
            Err(error) => pending.order.push(Entry::Undecodable {
                line: line_number,
                reason: error.to_string(),
            }),
        }
        if posts_in_batch >= settings.batch
            && let Err(error) = flush(&mut runner, &mut pending, &mut out, &mut summary)
        {
            eprintln!("error: writing the results: {error}");
            return ExitCode::from(1);
        }
        if posts_in_batch >= settings.batch {
            posts_in_batch = 0;
        }
    }
    if let Err(error) =
        flush(&mut runner, &mut pending, &mut out, &mut summary).and_then(|()| out.flush())
    {
        eprintln!("error: writing the results: {error}");
        return ExitCode::from(1);
    }
    summary.print(chain.names(), started.elapsed());
    ExitCode::SUCCESS
}

/// The lines read since the last flush: posts to run, and in between the lines
/// that did not decode (reported in their place).
#[derive(Default)]
struct Pending {
    posts: Vec<Post>,
    order: Vec<Entry>,
}

enum Entry {
    Post,
    Undecodable { line: usize, reason: String },
}

#[derive(Serialize)]
struct OutputLine<'a> {
    id: Option<&'a str>,
    action: &'static str,
    reason: Option<&'a str>,
    plugin: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    line: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    post: Option<&'a Post>,
}

fn flush(
    runner: &mut super::ChainRunner,
    pending: &mut Pending,
    out: &mut impl Write,
    summary: &mut Summary,
) -> std::io::Result<()> {
    let Pending { posts, order } = std::mem::take(pending);
    let ids: Vec<String> = posts.iter().map(|post| post.id.clone()).collect();
    let mut verdicts = runner.run(posts).into_iter().zip(ids);
    for entry in &order {
        let line = match entry {
            Entry::Undecodable { line, reason } => {
                summary.undecodable += 1;
                serde_json::to_string(&OutputLine {
                    id: None,
                    action: "error",
                    reason: Some(reason),
                    plugin: None,
                    line: Some(*line),
                    post: None,
                })
            }
            Entry::Post => {
                let Some((verdict, id)) = verdicts.next() else {
                    break;
                };
                summary.count(&verdict);
                match &verdict {
                    Verdict::Keep(post) => serde_json::to_string(&OutputLine {
                        id: Some(&post.id),
                        action: "keep",
                        reason: None,
                        plugin: None,
                        line: None,
                        post: Some(post),
                    }),
                    Verdict::Drop { plugin, reason } => serde_json::to_string(&OutputLine {
                        id: Some(&id),
                        action: "drop",
                        reason: Some(reason),
                        plugin: Some(plugin),
                        line: None,
                        post: None,
                    }),
                    Verdict::Fail {
                        post,
                        plugin,
                        error,
                    } => serde_json::to_string(&OutputLine {
                        id: Some(&post.id),
                        action: "fail",
                        reason: Some(error),
                        plugin: Some(plugin),
                        line: None,
                        post: None,
                    }),
                }
            }
        };
        let line = line.map_err(std::io::Error::other)?;
        writeln!(out, "{line}")?;
    }
    Ok(())
}

#[derive(Default)]
struct Summary {
    kept: usize,
    dropped: usize,
    failed: usize,
    undecodable: usize,
    by_plugin: std::collections::BTreeMap<String, (usize, usize)>,
}

impl Summary {
    fn count(&mut self, verdict: &Verdict) {
        match verdict {
            Verdict::Keep(_) => self.kept += 1,
            Verdict::Drop { plugin, .. } => {
                self.dropped += 1;
                self.by_plugin.entry(plugin.clone()).or_default().0 += 1;
            }
            Verdict::Fail { plugin, .. } => {
                self.failed += 1;
                self.by_plugin.entry(plugin.clone()).or_default().1 += 1;
            }
        }
    }

    fn print(&self, chain: &[String], elapsed: Duration) {
        let posts = self.kept + self.dropped + self.failed;
        let rate = posts as f64 / elapsed.as_secs_f64().max(1e-9);
        eprintln!(
            "{posts} posts through {}: {} kept, {} dropped, {} failed, {} lines not decodable ({:.1} ms, {rate:.0} posts/s)",
            chain.join(" → "),
            self.kept,
            self.dropped,
            self.failed,
            self.undecodable,
            elapsed.as_secs_f64() * 1000.0,
        );
        for (plugin, (dropped, failed)) in &self.by_plugin {
            eprintln!("  {plugin}: {dropped} dropped, {failed} failed");
        }
    }
}

fn check(path: &std::path::Path, config_json: Option<&str>) -> ExitCode {
    let entry = match plugin_entry(path, config_json, None) {
        Ok(entry) => entry,
        Err(message) => return usage_error(message),
    };
    let plugin = match load_plugin_with(&entry, &RuntimeOptions::default(), false) {
        Ok(plugin) => plugin,
        Err(error) => {
            // A plugin refused for what it imports: say what each import is.
            if let PluginError::Capability { imports, .. } = &error {
                print_imports(imports);
            }
            return usage_error(error);
        }
    };
    let reads = super::convert::field_names(plugin.info.reads);
    println!("plugin:   {}", plugin.name);
    println!("name:     {}", plugin.info.name);
    println!("version:  {}", plugin.info.version);
    match std::fs::read(&plugin.path) {
        Ok(bytes) => {
            let toolchain = super::producers::toolchain(&bytes);
            println!("language: {toolchain}");
            if !toolchain.processed_by.is_empty() {
                println!("built by: {}", toolchain.processed_by.join(", "));
            }
        }
        Err(error) => println!("language: unknown (reading the file again: {error})"),
    }
    println!("contract: {CONTRACT_PACKAGE}@{CONTRACT_VERSION}");
    println!("file:     {}", plugin.path.display());
    println!("size:     {} bytes", plugin.size);
    println!("sha256:   {}", plugin.sha256);
    println!("exports:  {}", plugin.exports.join(", "));
    print_imports(&plugin.imports);
    println!("reads:    {}", reads.join(", "));
    match plugin.instantiate() {
        Ok(_) => {
            println!(
                "init:     accepts {}",
                config_json.unwrap_or("an empty config")
            );
            ExitCode::SUCCESS
        }
        Err(PluginError::Init { message, .. }) if config_json.is_none() => {
            println!(
                "init:     rejects an empty config ({message}); pass --plugin-config to check yours"
            );
            ExitCode::SUCCESS
        }
        Err(error) => usage_error(error),
    }
}

/// One line per import, saying whether the sandbox grants it and what it gets.
fn print_imports(imports: &[String]) {
    if imports.is_empty() {
        println!("imports:  none");
    }
    for (index, import) in imports.iter().enumerate() {
        let label = if index == 0 { "imports:" } else { "" };
        match super::engine::granted(import) {
            Some(what) => println!("{label:<9} {import}: granted ({what})"),
            None => println!("{label:<9} {import}: NOT granted"),
        }
    }
}
