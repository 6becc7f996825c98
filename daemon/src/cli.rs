//! The `tweetpipe` command line: parse arguments, run a command, map the result to an exit code.
//!
//! Exit codes: 0 success, 1 runtime failure, 2 bad usage or configuration.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand};

use crate::config::{Config, ConfigError};
use crate::plugins::{ChainSwitch, LoadedChain, PluginReloader, RuntimeOptions};
use crate::sample::{SampleOptions, write_sample};
use crate::sources::ReplaySource;
use crate::systemd::{Notifier, SystemdObserver};
use crate::{logging, pipeline, summary};

/// The config file a packaged install uses.
pub const DEFAULT_CONFIG: &str = "/etc/tweetpipe/tweetpipe.toml";

/// Stream posts from X or a replay file through WebAssembly plugins into BigQuery, SQLite or JSONL.
#[derive(Debug, Parser)]
#[command(name = "tweetpipe", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the pipeline until its sources end or SIGINT/SIGTERM, then drain and report.
    Run {
        /// The configuration file.
        #[arg(short, long, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// Do not print the run summary.
        #[arg(short, long)]
        quiet: bool,
        /// Read the replay from line one, not from where the last run stopped
        /// (see source.replay.resume).
        #[arg(long)]
        from_start: bool,
    },
    /// Make the running daemon re-read its config and plugins (SIGHUP to the process in `daemon.pid_file`).
    Reload {
        /// The configuration file of the running daemon.
        #[arg(short, long, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
    },
    /// Validate a configuration and print the pipeline it describes.
    CheckConfig {
        /// The configuration file.
        #[arg(short, long, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
    },
    /// Show how X's filtered-stream rules differ from source.x.rules (validated with dry_run); changes nothing.
    XRules {
        /// The configuration file.
        #[arg(short, long, default_value = DEFAULT_CONFIG)]
        config: PathBuf,
    },
    /// Build-and-try tools for plugin authors: run a plugin on sample posts, check a file.
    Plugin {
        #[command(subcommand)]
        command: crate::plugins::cli::PluginCommand,
    },
    /// Watch a running daemon: rates, plugins, sink and queues from its /metrics, every second.
    Top(crate::metrics::top::TopArgs),
    /// Tools for the web dashboard ([dashboard]).
    Dashboard {
        #[command(subcommand)]
        command: DashboardCommand,
    },
    /// Write deterministic synthetic posts (X API v2 stream shape) as JSONL.
    Sample {
        /// How many posts.
        #[arg(short = 'n', long, default_value_t = 3000)]
        count: usize,
        /// The random seed; the same seed gives the same file.
        #[arg(short, long, default_value_t = 42)]
        seed: u64,
        /// Write to this file instead of standard output.
        #[arg(short, long)]
        out: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum DashboardCommand {
    /// Print an argon2 hash of a password for `[dashboard] password_hash`; reads
    /// the password from standard input (one line), or asks for it twice on a terminal.
    HashPassword,
}

/// Code for a runtime failure.
const EXIT_FAILURE: u8 = 1;
/// Code for bad usage or configuration.
const EXIT_USAGE: u8 = 2;

/// Parses the process arguments and runs the command.
pub fn main() -> ExitCode {
    crate::stats::mark_process_start();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => {
            let _ = error.print();
            return match error.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
                    ExitCode::SUCCESS
                }
                _ => ExitCode::from(EXIT_USAGE),
            };
        }
    };
    match cli.command {
        Command::Run {
            config,
            quiet,
            from_start,
        } => run(&config, quiet, from_start),
        Command::CheckConfig { config } => check_config(&config),
        Command::Reload { config } => reload(&config),
        Command::XRules { config } => x_rules(&config),
        Command::Sample { count, seed, out } => sample(count, seed, out.as_deref()),
        Command::Plugin { command } => crate::plugins::cli::execute(command),
        Command::Top(args) => crate::metrics::top::execute(&args),
        Command::Dashboard {
            command: DashboardCommand::HashPassword,
        } => hash_password(),
    }
}

/// `dashboard hash-password`: reads a password from standard input and prints its hash.
fn hash_password() -> ExitCode {
    use std::io::{BufRead, IsTerminal};
    let stdin = std::io::stdin();
    let terminal = stdin.is_terminal();
    let read_line = |prompt: &str| -> Option<String> {
        if terminal {
            eprint!("{prompt}");
            let _ = std::io::stderr().flush();
        }
        let mut line = String::new();
        match stdin.lock().read_line(&mut line) {
            Ok(0) | Err(_) => None,
            Ok(_) => Some(line.trim_end_matches(['\n', '\r']).to_owned()),
        }
    };
    let Some(password) = read_line("password (it is echoed): ") else {
        eprintln!(
            "error: no password on standard input (try: echo -n 'secret' | tweetpipe dashboard hash-password)"
        );
        return ExitCode::from(EXIT_USAGE);
    };
    if terminal && read_line("again: ").as_deref() != Some(password.as_str()) {
        eprintln!("error: the two passwords differ");
        return ExitCode::from(EXIT_USAGE);
    }
    if password.is_empty() {
        eprintln!("error: the password is empty");
        return ExitCode::from(EXIT_USAGE);
    }
    match crate::dashboard::auth::hash_password(&password) {
        Ok(hash) => {
            println!("{hash}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

fn load_config(path: &Path) -> Result<Config, ExitCode> {
    Config::load(path).map_err(|error| {
        eprintln!("error: {error}");
        if matches!(error, ConfigError::Read { .. }) && path == Path::new(DEFAULT_CONFIG) {
            eprintln!("hint: pass the config file with --config PATH");
        }
        ExitCode::from(EXIT_USAGE)
    })
}

/// Checks what the config points at: input files and plugins.
fn preflight(config: &Config) -> Result<LoadedChain, String> {
    if let Some(replay) = &config.source.replay {
        ReplaySource::new(replay.clone())
            .files()
            .map_err(|error| format!("source.replay.path: {error}"))?;
    }
    if let Some(x) = &config.source.x {
        crate::sources::x::client::BearerToken::load(x).map_err(|error| error.to_string())?;
    }
    if config.dashboard.enabled {
        crate::dashboard::auth::Credentials::load(&config.dashboard)
            .map_err(|error| error.to_string())?;
    }
    LoadedChain::load(&config.plugins).map_err(|error| error.to_string())
}

/// `x-rules`: prints the rule plan the X source would apply on start.
fn x_rules(config_path: &Path) -> ExitCode {
    let config = match load_config(config_path) {
        Ok(config) => config,
        Err(code) => return code,
    };
    let Some(x) = config.source.x.clone() else {
        eprintln!(
            "error: {} has no [source.x] table; add one with `rules = [...]`",
            config_path.display()
        );
        return ExitCode::from(EXIT_USAGE);
    };
    let source = match crate::sources::XSource::new(x) {
        Ok(source) => source,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    match runtime.block_on(source.plan_rules()) {
        Ok(plan) => {
            println!("X filtered-stream rules at {}:", source.client().base());
            print!("{}", plan.render());
            if plan.is_empty() {
                println!("X's rules match the config; nothing to do.");
            } else {
                println!(
                    "Nothing was changed; `tweetpipe run` applies this on start (the additions passed X's dry_run validation)."
                );
            }
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

fn run(config_path: &Path, quiet: bool, from_start: bool) -> ExitCode {
    let config = match load_config(config_path) {
        Ok(config) => config,
        Err(code) => return code,
    };
    logging::init(config.logging.level);
    let chain = match preflight(&config) {
        Ok(chain) => chain,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    // Before the runtime starts its threads, so every stage inherits it.
    if let Err(error) = crate::scheduling::apply(config.process.scheduling) {
        log::warn!("{error}");
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("tweetpipe")
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the async runtime: {error}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    log::info!(
        "tweetpipe {} starting with {}",
        env!("CARGO_PKG_VERSION"),
        config_path.display()
    );
    let notifier = Arc::new(Notifier::from_env());
    let drain_timeout = config.daemon.drain_timeout;
    let stopping = tokio_util::sync::CancellationToken::new();
    let shutdown = {
        let (notifier, stopping) = (notifier.clone(), stopping.clone());
        async move {
            shutdown_signal().await;
            notifier.stopping(&format!(
                "stopping: draining the pipeline (at most {} ms)",
                drain_timeout.as_millis()
            ));
            stopping.cancel();
        }
    };
    let observer = Arc::new(SystemdObserver::new(notifier.clone()));
    let metrics = Arc::new(crate::metrics::Metrics::new());
    let listener = if config.metrics.enabled {
        match runtime.block_on(crate::metrics::server::bind(config.metrics.listen)) {
            Ok(listener) => Some(listener),
            // The pipeline matters more than its metrics: run without them.
            Err(error) => {
                log::error!("{error}; running without /metrics, /healthz and /readyz");
                None
            }
        }
    } else {
        None
    };
    let pid_file = match &config.daemon.pid_file {
        Some(path) => match PidFile::write(path) {
            Ok(pid_file) => Some(pid_file),
            Err(error) => {
                eprintln!(
                    "error: cannot write daemon.pid_file {}: {error}",
                    path.display()
                );
                return ExitCode::from(EXIT_FAILURE);
            }
        },
        None => None,
    };
    let chains = ChainSwitch::new(chain);
    let reloader = Arc::new(PluginReloader::new(
        chains.clone(),
        config.plugins.clone(),
        RuntimeOptions::default(),
    ));
    let outcome = runtime.block_on(async {
        let reloads = reload_on_sighup(
            config_path.to_owned(),
            config.clone(),
            reloader.clone(),
            notifier.clone(),
        );
        let watcher = config.process.watch_plugins.then(|| {
            tokio::spawn(crate::plugins::watch_plugin_files(
                reloader.clone(),
                config.process.watch_debounce,
            ))
        });
        let server =
            listener.map(|listener| crate::metrics::server::spawn(listener, metrics.clone()));
        let dashboard = if config.dashboard.enabled {
            match crate::dashboard::Dashboard::start(&config.dashboard, metrics.clone()).await {
                Ok(dashboard) => Some(dashboard),
                // The pipeline matters more than its dashboard: run without it.
                Err(error) => {
                    log::error!("{error}; running without the dashboard");
                    None
                }
            }
        } else {
            None
        };
        // Not part of the config a reload compares against.
        let mut run_config = config.clone();
        if let Some(replay) = &mut run_config.source.replay {
            replay.from_start = from_start;
        }
        let pipeline =
            pipeline::run_switched(&run_config, chains, shutdown, observer, metrics.clone());
        let drain_deadline = async {
            stopping.cancelled().await;
            tokio::time::sleep(drain_timeout).await;
        };
        let outcome = tokio::select! {
            outcome = pipeline => Some(outcome),
            _ = drain_deadline => None,
        };
        reloads.abort();
        if let Some(watcher) = watcher {
            watcher.abort();
        }
        if let Some(server) = server {
            server.abort();
        }
        if let Some(dashboard) = dashboard {
            dashboard.stop(&metrics).await;
        }
        outcome
    });
    // Stuck stages (a hung sink write) must not keep the process alive.
    runtime.shutdown_timeout(Duration::from_secs(1));
    drop(pid_file);
    let Some(outcome) = outcome else {
        log::error!(
            "the drain did not finish within daemon.drain_timeout_ms = {} after the stop signal; messages not yet committed stay unacknowledged and will be delivered again",
            drain_timeout.as_millis()
        );
        return ExitCode::from(EXIT_FAILURE);
    };
    match outcome {
        Ok(outcome) => {
            log::info!(
                "pipeline drained: {} read, {} written, {} dead-lettered{}",
                outcome.stats.read,
                outcome.stats.written,
                outcome.stats.dead_lettered,
                summary::timeline(&outcome.stats)
            );
            if !quiet {
                let report = summary::render(&outcome);
                let mut stdout = std::io::stdout().lock();
                let _ = stdout.write_all(report.as_bytes());
                let _ = stdout.flush();
            }
            if outcome.abandoned > 0 {
                eprintln!(
                    "error: {} messages were not committed before shutdown (the sink kept failing); run the same input again to finish them",
                    outcome.abandoned
                );
                return ExitCode::from(EXIT_FAILURE);
            }
            ExitCode::SUCCESS
        }
        Err(error) => {
            log::error!("pipeline failed: {error}");
            eprintln!("error: {error}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

/// Completes on SIGINT or SIGTERM.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut interrupt), Ok(mut terminate)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        log::warn!("cannot listen for SIGINT/SIGTERM; stop the process with SIGKILL");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = interrupt.recv() => {}
        _ = terminate.recv() => {}
    }
}

/// Handles SIGHUP (`systemctl reload`, `tweetpipe reload`) between `RELOADING=1`
/// and `READY=1`: re-reads the config and applies its `[[plugins]]` list to the
/// running pipeline (plugins added, removed, reordered, re-configured; new files
/// loaded and checked off the hot path). Other sections cannot change in place:
/// a changed one is reported as needing a restart, and the plugins still apply.
fn reload_on_sighup(
    config_path: PathBuf,
    running: Config,
    reloader: Arc<PluginReloader>,
    notifier: Arc<Notifier>,
) -> tokio::task::JoinHandle<()> {
    use tokio::signal::unix::{SignalKind, signal};
    // Registered before returning, so a SIGHUP after READY=1 never kills the process.
    let hangup = signal(SignalKind::hangup());
    tokio::spawn(async move {
        let mut hangup = match hangup {
            Ok(hangup) => hangup,
            Err(error) => {
                log::warn!("cannot listen for SIGHUP, reload is unavailable: {error}");
                return;
            }
        };
        while hangup.recv().await.is_some() {
            notifier.reloading();
            log::info!("SIGHUP: re-reading {}", config_path.display());
            let (path, reloader) = (config_path.clone(), reloader.clone());
            let reloaded = tokio::task::spawn_blocking(move || {
                let config = Config::load(&path).map_err(|error| error.to_string())?;
                let applied = reloader.reload_config(&config.plugins);
                Ok::<_, String>((config, applied))
            })
            .await;
            let status = match reloaded {
                Ok(Ok((config, applied))) => {
                    let restart = restart_required(&running, &config);
                    for section in &restart {
                        log::warn!(
                            "reload: {section} settings changed: restart required to apply them (systemctl restart tweetpipe); the plugin chain is reloaded"
                        );
                    }
                    let mut status = match applied {
                        Ok(report) => {
                            log::info!(
                                "reload: {} applied: {} plugin change(s){}",
                                config_path.display(),
                                report.changes.len(),
                                if report.refused.is_empty() {
                                    String::new()
                                } else {
                                    format!(", {} new file(s) refused", report.refused.len())
                                }
                            );
                            format!(
                                "running: reloaded config applied ({} plugin changes)",
                                report.changes.len()
                            )
                        }
                        Err(error) => {
                            log::error!(
                                "reload: the plugins of {} are not usable, the plugin chain keeps running as it was: {error}",
                                config_path.display()
                            );
                            "running: reloaded plugins are invalid, see the log".to_owned()
                        }
                    };
                    if !restart.is_empty() {
                        status.push_str(&format!(
                            "; {} settings changed: restart required",
                            restart.join(", ")
                        ));
                    }
                    status
                }
                Ok(Err(error)) => {
                    log::error!(
                        "reload: {} is not usable, the pipeline keeps running as started: {error}",
                        config_path.display()
                    );
                    "running: reloaded config is invalid, see the log".to_owned()
                }
                Err(error) => {
                    log::error!("reload: checking the config failed: {error}");
                    "running: reload failed, see the log".to_owned()
                }
            };
            notifier.ready(&status);
        }
    })
}

/// The config sections that differ and cannot be changed in a running pipeline.
fn restart_required(running: &Config, reloaded: &Config) -> Vec<&'static str> {
    let differs =
        |a: &dyn std::fmt::Debug, b: &dyn std::fmt::Debug| format!("{a:?}") != format!("{b:?}");
    let mut sections = Vec::new();
    if differs(&running.source, &reloaded.source) {
        sections.push("source");
    }
    if differs(&running.broker, &reloaded.broker) {
        sections.push("broker");
    }
    if differs(&running.sink, &reloaded.sink) || differs(&running.batch, &reloaded.batch) {
        sections.push("sink");
    }
    if differs(&running.dead_letter, &reloaded.dead_letter) {
        sections.push("dead_letter");
    }
    if differs(&running.process, &reloaded.process) {
        sections.push("process");
    }
    if differs(&running.metrics, &reloaded.metrics) {
        sections.push("metrics");
    }
    if differs(&running.dashboard, &reloaded.dashboard) {
        sections.push("dashboard");
    }
    if differs(&running.daemon, &reloaded.daemon) || differs(&running.logging, &reloaded.logging) {
        sections.push("daemon");
    }
    sections
}

/// `reload`: sends SIGHUP to the daemon whose process id is in `daemon.pid_file`.
fn reload(config_path: &Path) -> ExitCode {
    let config = match load_config(config_path) {
        Ok(config) => config,
        Err(code) => return code,
    };
    let Some(pid_file) = config.daemon.pid_file else {
        eprintln!(
            "error: {} sets no daemon.pid_file, so the running daemon cannot be found; set it (and restart), or use `systemctl reload tweetpipe`",
            config_path.display()
        );
        return ExitCode::from(EXIT_USAGE);
    };
    let pid = match std::fs::read_to_string(&pid_file)
        .map_err(|error| error.to_string())
        .and_then(|text| {
            text.trim()
                .parse::<i32>()
                .map_err(|error| error.to_string())
        }) {
        Ok(pid) if pid > 0 => pid,
        Ok(pid) => {
            eprintln!("error: {} holds no process id ({pid})", pid_file.display());
            return ExitCode::from(EXIT_FAILURE);
        }
        Err(error) => {
            eprintln!(
                "error: cannot read the daemon's process id from daemon.pid_file = {}: {error} (is `tweetpipe run` running?)",
                pid_file.display()
            );
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    // A stale file may name a process id reused by another program.
    let command = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
    if command.trim() != "tweetpipe" {
        eprintln!(
            "error: process {pid} from {} is not a running tweetpipe (stale pid file?)",
            pid_file.display()
        );
        return ExitCode::from(EXIT_FAILURE);
    }
    // SAFETY: kill(2) with a checked process id and a valid signal number has no
    // memory-safety preconditions.
    #[allow(unsafe_code)]
    let sent = unsafe { libc::kill(pid, libc::SIGHUP) };
    if sent != 0 {
        eprintln!(
            "error: cannot signal process {pid}: {}",
            std::io::Error::last_os_error()
        );
        return ExitCode::from(EXIT_FAILURE);
    }
    println!("sent SIGHUP to tweetpipe (pid {pid}); the journal reports what the reload changed");
    ExitCode::SUCCESS
}

/// Writes the process id to `daemon.pid_file`; removed again when dropped.
struct PidFile(PathBuf);

impl PidFile {
    fn write(path: &Path) -> std::io::Result<PidFile> {
        let temp = path.with_extension("pid.tmp");
        std::fs::write(&temp, format!("{}\n", std::process::id()))?;
        std::fs::rename(&temp, path)?;
        Ok(PidFile(path.to_owned()))
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn check_config(config_path: &Path) -> ExitCode {
    let config = match load_config(config_path) {
        Ok(config) => config,
        Err(code) => return code,
    };
    let chain = match preflight(&config) {
        Ok(chain) => chain,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let description = summary::describe(config_path, &config, &chain);
    print!("{}", description.text);
    if description.problems.is_empty() {
        return ExitCode::SUCCESS;
    }
    for problem in &description.problems {
        eprintln!("error: {problem}");
    }
    ExitCode::from(EXIT_USAGE)
}

fn sample(count: usize, seed: u64, out: Option<&Path>) -> ExitCode {
    let options = SampleOptions {
        count,
        seed,
        ..SampleOptions::default()
    };
    let written = match out {
        Some(path) => std::fs::File::create(path).and_then(|file| {
            let mut writer = std::io::BufWriter::new(file);
            let summary = write_sample(&options, &mut writer)?;
            writer.flush()?;
            Ok(summary)
        }),
        None => {
            let mut writer = std::io::BufWriter::new(std::io::stdout().lock());
            write_sample(&options, &mut writer).and_then(|summary| {
                writer.flush()?;
                Ok(summary)
            })
        }
    };
    match written {
        Ok(summary) => {
            eprintln!(
                "{} lines: {} posts ({} distinct ids, {} duplicate lines), {} malformed and {} blank lines, on purpose, to try the decoder and the dead letters",
                summary.lines,
                summary.posts,
                summary.unique_ids,
                summary.duplicates,
                summary.malformed,
                summary.blank
            );
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("error: writing the sample failed: {error}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}
