//! The table `make bench` ends with. It runs the cases criterion cannot: `tweetpipe
//! run` as a whole process (release binary, pinned to one core) on a generated
//! replay of a million posts through filter → sentiment → pii-scrub into each local
//! sink, and on a small replay through three plugins that each return the most
//! their limits let them (its peak RSS against the 300 MiB target); the Python pipeline it replaces (`benches/python_peer.py`) on the same
//! replay; and Python's reference `vaderSentiment` on the texts the sentiment
//! benchmark scores. Then it reads criterion's results for the in-process cases
//! (`benches/decode.rs`, `benches/plugins.rs`, `benches/sinks.rs`) and prints every figure beside its
//! target, as Markdown, also saved to `target/bench/table.md`.
//!
//! Settings (environment): `TWEETPIPE_BENCH_POSTS` posts in the replay (1000000),
//! `TWEETPIPE_BENCH_RUNS` runs per end-to-end case (3), `TWEETPIPE_BENCH_CPU` the
//! core to pin to (0; empty for no pinning).

mod support;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result, bail};

/// The seed of the generated replay file (any fixed value keeps runs comparable).
const REPLAY_SEED: u64 = 11;
/// The batch size the in-process rows of the table are read at.
const BATCH: &str = "batch 512";

fn main() -> Result<()> {
    let settings = Settings::from_env()?;
    let machine = machine_note();
    let results = support::results_dir();
    std::fs::create_dir_all(&results)?;
    let criterion = CriterionResults::read(&support::target_dir().join("criterion"))?;

    let mut lines = Vec::new();
    lines.push(criterion.line(
        "decode (X v2 JSON → Post)",
        "decode/sample posts",
        Target::Rate(500e3),
    ));
    for (case, group, target) in [
        ("plugin: no-op", "plugin/noop", Target::None),
        (
            "plugin: filter, 25 rules",
            "plugin/filter 25 rules",
            Target::Rate(400e3),
        ),
        ("plugin: sentiment", "plugin/sentiment", Target::Rate(250e3)),
        ("plugin: pii-scrub", "plugin/pii_scrub", Target::Rate(250e3)),
        (
            "chain: filter → sentiment → pii-scrub",
            "chain/filter, sentiment, pii_scrub",
            Target::Rate(150e3),
        ),
    ] {
        lines.push(criterion.line(case, &format!("{group}/{BATCH}"), target));
    }

    for (case, name, target) in [
        (
            "plugin: keyword filter, Rust",
            "keyword_filter",
            Target::None,
        ),
        (
            "plugin: keyword filter, Python",
            "keyword_filter_py",
            Target::Rate(20e3),
        ),
        (
            "plugin: keyword filter, JavaScript",
            "keyword_filter_js",
            Target::Rate(20e3),
        ),
    ] {
        lines.push(criterion.line(case, &format!("language/{name}/{BATCH}"), target));
    }

    for sink in ["sqlite", "jsonl", "null"] {
        let case = format!("sink alone: {sink}, batches of 500");
        lines.push(criterion.line(&case, &format!("sink/{sink}/batch 500"), Target::None));
    }
    // What a flush writes when the sink is behind and rows wait (group commit).
    for (sink, target) in [("sqlite", Target::Rate(250e3)), ("jsonl", Target::None)] {
        let case = format!("sink alone: {sink}, group commit of 2,500");
        lines.push(criterion.line(&case, &format!("sink/{sink}/batch 2500"), target));
    }
    lines.push(criterion.line(
        "spool alone: append + settle (group commit, synchronous=FULL)",
        "spool/append + settle/sample posts",
        Target::Rate(100e3),
    ));

    let end_to_end = EndToEnd::prepare(&settings);
    for (sink, target) in [
        ("sqlite", Target::RateAndRss(100e3, 100 * 1024)),
        ("jsonl", Target::None),
        ("null", Target::Rate(150e3)),
    ] {
        let case = format!("end to end → {sink}, 1 process");
        let figures = end_to_end
            .as_ref()
            .map_err(|error| format!("{error:#}"))
            .and_then(|end_to_end| {
                end_to_end
                    .measure(sink)
                    .map_err(|error| format!("{error:#}"))
            });
        lines.push(Line {
            case,
            figures,
            target,
        });
    }

    // The same SQLite run with the spool off: what the spool costs end to end.
    let unspooled = end_to_end
        .as_ref()
        .map_err(|error| format!("{error:#}"))
        .and_then(|end_to_end| {
            end_to_end
                .measure_with(SQLITE_WITHOUT_SPOOL)
                .map_err(|error| format!("{error:#}"))
        });
    let spooled = lines
        .iter()
        .find(|line| line.case == "end to end → sqlite, 1 process")
        .and_then(|line| line.figures.as_ref().ok())
        .map(|figures| figures.value);
    let spool_ratio = match (&unspooled, spooled) {
        (Ok(without), Some(with)) => Ok(Figures {
            value: with / without.value,
            cpu_per_million: None,
            peak_rss_kib: None,
            note: String::new(),
        }),
        (Err(error), _) => Err(error.clone()),
        (_, None) => Err("the end-to-end SQLite run has no result".to_owned()),
    };
    lines.push(Line {
        case: "end to end → sqlite, 1 process, spool off".to_owned(),
        figures: unspooled,
        target: Target::None,
    });
    lines.push(Line {
        case: "end to end → sqlite: spool on / spool off".to_owned(),
        figures: spool_ratio,
        target: Target::Ratio(0.8),
    });

    // Both cores and two workers against the one-core run above.
    let two_cores = end_to_end
        .as_ref()
        .map_err(|error| format!("{error:#}"))
        .and_then(|end_to_end| {
            end_to_end
                .measure_two_cores()
                .map_err(|error| format!("{error:#}"))
        });
    let one_core = lines
        .iter()
        .find(|line| line.case == "end to end → sqlite, 1 process")
        .and_then(|line| line.figures.as_ref().ok())
        .map(|figures| figures.value);
    let cores_ratio = match (&two_cores, one_core) {
        (Ok(two), Some(one)) => Ok(Figures {
            value: two.value / one,
            cpu_per_million: None,
            peak_rss_kib: None,
            note: String::new(),
        }),
        (Err(error), _) => Err(error.clone()),
        (_, None) => Err("the end-to-end SQLite run has no result".to_owned()),
    };
    lines.push(Line {
        case: "end to end → sqlite, 2 cores, workers = 2".to_owned(),
        figures: two_cores,
        target: Target::None,
    });
    lines.push(Line {
        case: "end to end → sqlite: 2 cores / 1 core".to_owned(),
        figures: cores_ratio,
        target: Target::Ratio(1.7),
    });

    // Start and stop, from a small run's summary (plugins from the cache).
    let (start, stop) = match end_to_end
        .as_ref()
        .map_err(|error| format!("{error:#}"))
        .and_then(|end_to_end| {
            end_to_end
                .measure_start_stop()
                .map_err(|error| format!("{error:#}"))
        }) {
        Ok((start, stop)) => (Ok(start), Ok(stop)),
        Err(error) => (Err(error.clone()), Err(error)),
    };
    lines.push(Line {
        case: format!(
            "start: `tweetpipe run` to the first post read, plugins from the cache ({} posts → sqlite)",
            thousands(START_STOP_POSTS as f64)
        ),
        figures: start,
        target: Target::AtMostMs(150.0),
    });
    lines.push(Line {
        case: "stop: the last commit to the process's exit (`--quiet`, as the service runs)"
            .to_owned(),
        figures: stop,
        target: Target::AtMostMs(50.0),
    });

    // What three plugins at their default caps can make the daemon hold when
    // each returns the most it may (the shape of the hot swap tests' RSS case).
    let hostile = end_to_end
        .as_ref()
        .map_err(|error| format!("{error:#}"))
        .and_then(|end_to_end| {
            end_to_end
                .measure_hostile()
                .map_err(|error| format!("{error:#}"))
        });
    lines.push(Line {
        case: format!(
            "end to end → null, 3 plugins returning their most, {} posts",
            thousands(HOSTILE_POSTS as f64)
        ),
        figures: hostile,
        target: Target::Rss(300 * 1024),
    });

    // The Python pipeline users replace, on the same replay: json.loads →
    // VADER → HMAC of the handle + an e-mail regex → sqlite3, 500 rows a
    // transaction, synchronous=FULL. Our chain also runs the 25-rule filter.
    let peer = end_to_end
        .as_ref()
        .map_err(|error| format!("{error:#}"))
        .and_then(|end_to_end| {
            python_peer(&settings, &end_to_end.replay).map_err(|error| format!("{error:#}"))
        });
    let ours = lines
        .iter()
        .find(|line| line.case == "end to end → sqlite, 1 process")
        .and_then(|line| line.figures.as_ref().ok())
        .map(|figures| figures.value);
    let peer_ratio = match (&peer, ours) {
        (Ok((_, peer)), Some(ours)) => Ok(Figures {
            value: ours / peer.value,
            cpu_per_million: None,
            peak_rss_kib: None,
            note: String::new(),
        }),
        (Err(error), _) => Err(error.clone()),
        (_, None) => Err("the end-to-end SQLite run has no result".to_owned()),
    };
    lines.push(Line {
        case: "Python peer: json → VADER → HMAC + e-mail regex → sqlite3 (reference)".to_owned(),
        figures: peer.map(|(_, figures)| figures),
        target: Target::None,
    });
    lines.push(Line {
        case: "end to end → sqlite / Python peer".to_owned(),
        figures: peer_ratio,
        target: Target::Ratio(5.0),
    });

    lines.push(criterion.line(
        "sentiment scoring alone, native (no Wasm)",
        "sentiment/native/sample texts",
        Target::None,
    ));
    let python = python_vader(&settings).map_err(|error| format!("{error:#}"));
    let rate = |case: &str| {
        lines
            .iter()
            .find(|line| line.case == case)
            .and_then(|line| line.figures.as_ref().ok())
            .map(|figures| figures.value)
    };
    let ratio = |ours: Option<f64>| match (&python, ours) {
        (Ok((_, python)), Some(ours)) => Ok(Figures {
            value: ours / python.value,
            cpu_per_million: None,
            peak_rss_kib: None,
            note: String::new(),
        }),
        (Err(error), _) => Err(error.clone()),
        (_, None) => Err("the sentiment benchmark has no result".to_owned()),
    };
    let plugin_ratio = ratio(rate("plugin: sentiment"));
    let native_ratio = ratio(rate("sentiment scoring alone, native (no Wasm)"));
    lines.push(Line {
        case: match &python {
            Ok((version, _)) => format!("Python vaderSentiment {version} (reference)"),
            Err(_) => "Python vaderSentiment (reference)".to_owned(),
        },
        figures: python.clone().map(|(_, figures)| figures),
        target: Target::None,
    });
    lines.push(Line {
        case: "sentiment: tweetpipe plugin / Python".to_owned(),
        figures: plugin_ratio,
        target: Target::Ratio(30.0),
    });
    lines.push(Line {
        case: "sentiment: VADER method alone, native / Python".to_owned(),
        figures: native_ratio,
        target: Target::RatioOnly,
    });

    let mut table = render(&lines, &settings);
    table.push_str(&plugin_loads(&results));
    table.push_str(&criterion.others());
    let _ = write!(table, "\n{machine}\n");
    println!("\n{table}");
    let saved = results.join("table.md");
    std::fs::write(&saved, &table).with_context(|| format!("writing {}", saved.display()))?;
    println!("(saved in {})", saved.display());
    Ok(())
}

struct Settings {
    posts: u64,
    runs: usize,
    /// The core to pin to, when `taskset` is there to do it.
    pin: Option<String>,
}

impl Settings {
    fn from_env() -> Result<Settings> {
        let number = |name: &str, default: u64| -> Result<u64> {
            match std::env::var(name) {
                Ok(value) if !value.is_empty() => value
                    .replace('_', "")
                    .parse()
                    .with_context(|| format!("{name}={value:?} is not a number")),
                _ => Ok(default),
            }
        };
        let cpu = std::env::var("TWEETPIPE_BENCH_CPU").unwrap_or_else(|_| "0".to_owned());
        let taskset = Command::new("taskset")
            .arg("--version")
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
        Ok(Settings {
            posts: number("TWEETPIPE_BENCH_POSTS", 1_000_000)?.max(1),
            runs: number("TWEETPIPE_BENCH_RUNS", 3)?.max(1) as usize,
            pin: (!cpu.is_empty() && taskset).then_some(cpu),
        })
    }

    /// `program` as a command, pinned to the configured core when possible.
    fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        match &self.pin {
            Some(cpu) => {
                let mut command = Command::new("taskset");
                command.arg("-c").arg(cpu).arg(program);
                command
            }
            None => Command::new(program),
        }
    }
}

/// What one case measured.
#[derive(Debug, Clone)]
struct Figures {
    /// Posts/s; or a ratio, or milliseconds, as the line's [`Target`] says.
    value: f64,
    cpu_per_million: Option<f64>,
    peak_rss_kib: Option<u64>,
    note: String,
}

#[derive(Debug, Clone, Copy)]
enum Target {
    None,
    /// At least this many posts/s.
    Rate(f64),
    /// At least this many posts/s within this peak RSS (KiB).
    RateAndRss(f64, u64),
    /// At most this peak RSS (KiB), whatever the rate.
    Rss(u64),
    /// At least this ratio.
    Ratio(f64),
    /// A ratio shown for comparison, with no target.
    RatioOnly,
    /// At most this many milliseconds (the value is a time).
    AtMostMs(f64),
}

impl Target {
    fn describe(self) -> String {
        match self {
            Target::None | Target::RatioOnly => String::new(),
            Target::Rate(rate) => format!("≥ {}/s", thousands(rate)),
            Target::RateAndRss(rate, kib) => {
                format!("≥ {}/s, ≤ {} MiB", thousands(rate), kib / 1024)
            }
            Target::Rss(kib) => format!("≤ {} MiB", kib / 1024),
            Target::Ratio(ratio) if ratio.fract() == 0.0 => format!("≥ {ratio:.0}×"),
            Target::Ratio(ratio) => format!("≥ {ratio:.2}×"),
            Target::AtMostMs(ms) => format!("< {ms:.0} ms"),
        }
    }

    fn met(self, figures: &Figures) -> Option<bool> {
        match self {
            Target::None | Target::RatioOnly => None,
            Target::Rate(rate) | Target::Ratio(rate) => Some(figures.value >= rate),
            Target::RateAndRss(rate, kib) => {
                Some(figures.value >= rate && figures.peak_rss_kib.is_some_and(|rss| rss <= kib))
            }
            Target::Rss(kib) => Some(figures.peak_rss_kib.is_some_and(|rss| rss <= kib)),
            Target::AtMostMs(ms) => Some(figures.value < ms),
        }
    }
}

struct Line {
    case: String,
    figures: Result<Figures, String>,
    target: Target,
}

fn render(lines: &[Line], settings: &Settings) -> String {
    let mut out = String::new();
    out.push_str("| case | posts/s | CPU-s per 1M posts | peak RSS | target | |\n");
    out.push_str("|---|--:|--:|--:|---|---|\n");
    for line in lines {
        let target = line.target.describe();
        match &line.figures {
            Ok(figures) => {
                let rate = if matches!(line.target, Target::AtMostMs(_)) {
                    format!("{:.0} ms", figures.value)
                } else if matches!(line.target, Target::Ratio(ratio) if ratio < 1.0) {
                    format!("{:.2}×", figures.value)
                } else if matches!(line.target, Target::Ratio(_) | Target::RatioOnly) {
                    format!("{:.1}×", figures.value)
                } else {
                    thousands(figures.value)
                };
                let cpu = figures
                    .cpu_per_million
                    .map_or_else(String::new, |cpu| format!("{cpu:.2}"));
                let rss = figures
                    .peak_rss_kib
                    .map_or_else(String::new, |kib| format!("{:.0} MiB", kib as f64 / 1024.0));
                let verdict = match line.target.met(figures) {
                    Some(true) => "met",
                    Some(false) => "**missed**",
                    None => "",
                };
                let note = if figures.note.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", figures.note)
                };
                let _ = writeln!(
                    out,
                    "| {}{note} | {rate} | {cpu} | {rss} | {target} | {verdict} |",
                    line.case
                );
            }
            Err(error) => {
                let _ = writeln!(
                    out,
                    "| {} | not measured: {error} | | | {target} | |",
                    line.case
                );
            }
        }
    }
    let pinned = match &settings.pin {
        Some(cpu) => format!("pinned to core {cpu} (`taskset -c {cpu}`)"),
        None => "not pinned (no `taskset`)".to_owned(),
    };
    let _ = write!(
        out,
        "\nIn-process cases: criterion medians, one thread, {BATCH} posts per chain call; CPU-s \
         per 1M posts is 10⁶ ÷ posts/s (one busy thread; for the sinks alone the time includes \
         waiting for the disk, so it is an upper bound), peak RSS is the bench process's \
         high-water mark while the case ran. End to end: `tweetpipe run` (release) on a replay \
         of {} posts (seed {REPLAY_SEED}, with the sample's malformed lines and repeats) through \
         the 25-rule filter, sentiment and pii-scrub; median wall time and CPU time (user + \
         system, from wait4) of {} runs, the largest peak RSS; posts/s = posts ÷ wall time. \
         The 3 plugins returning their most are the `hostile-wasi` test fixture at the default \
         caps (64 MiB of memory, 16 MiB of results per batch, 256 KiB a post): two keep every \
         post with a text just under the post limit until their batch budget runs out, the \
         third returns 8 MiB per post; failed posts are dropped. \
         Python: the same texts as the sentiment case, median of 5 passes. Everything {pinned}.\n",
        thousands(settings.posts as f64),
        settings.runs,
    );
    out
}

/// The load table of the keyword filter in each language, from what the
/// language benchmark saved ([`support::PLUGIN_LOADS`]).
fn plugin_loads(results: &Path) -> String {
    let path = results.join(support::PLUGIN_LOADS);
    let Ok(text) = std::fs::read_to_string(&path) else {
        return format!(
            "\nPlugin load: not measured ({} is missing).\n",
            path.display()
        );
    };
    let mut out = String::from(
        "\n| plugin load (keyword filter) | .wasm | compiling (empty cache) | from the cache |\n\
         |---|--:|--:|--:|\n",
    );
    for line in text.lines() {
        let fields: Vec<&str> = line.split('\t').collect();
        let [name, size, compiling, cached] = fields[..] else {
            continue;
        };
        let language = match name {
            "keyword_filter" => "Rust",
            "keyword_filter_py" => "Python",
            "keyword_filter_js" => "JavaScript",
            other => other,
        };
        let size = size.parse::<f64>().unwrap_or(0.0) / 1e6;
        let compiling = compiling.parse::<f64>().unwrap_or(f64::NAN);
        let cached = cached.parse::<f64>().unwrap_or(f64::NAN) * 1e3;
        let _ = writeln!(
            out,
            "| {language} | {size:.1} MB | {compiling:.2} s | {cached:.0} ms |"
        );
    }
    out.push_str(
        "\nLoad: `LoadedChain::load_with` of the one plugin (compile or read the cache, \
         contract check, instantiate, `init`), in the bench process; the compiled-module \
         cache is a fresh directory for the first load.\n",
    );
    out
}

/// `1234567.8` as `1,234,568`.
fn thousands(value: f64) -> String {
    let digits = format!("{:.0}", value.max(0.0));
    let mut out = String::new();
    for (index, digit) in digits.chars().enumerate() {
        if index > 0 && (digits.len() - index).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

fn machine_note() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|line| line.starts_with("model name"))
                .and_then(|line| line.split_once(':'))
                .map(|(_, model)| model.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let load = std::fs::read_to_string("/proc/loadavg")
        .map(|load| {
            load.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default();
    format!(
        "Machine: {cpus} CPUs ({model}), load average {load} when the table was made; {}.",
        std::env::consts::ARCH
    )
}

/// Criterion's medians, by benchmark id (`group/function`).
struct CriterionResults {
    by_id: BTreeMap<String, CriterionResult>,
    started: Option<SystemTime>,
}

struct CriterionResult {
    /// Posts per iteration (the benchmark's `Throughput::Elements`).
    elements: f64,
    median_ns: f64,
    measured: Option<SystemTime>,
}

impl CriterionResults {
    fn read(dir: &Path) -> Result<CriterionResults> {
        let mut by_id = BTreeMap::new();
        for group in read_dirs(dir) {
            for function in read_dirs(&group) {
                let new = function.join("new");
                let (Ok(benchmark), Ok(estimates)) = (
                    std::fs::read_to_string(new.join("benchmark.json")),
                    std::fs::read_to_string(new.join("estimates.json")),
                ) else {
                    continue;
                };
                let benchmark: serde_json::Value = serde_json::from_str(&benchmark)?;
                let estimates: serde_json::Value = serde_json::from_str(&estimates)?;
                let (Some(id), Some(elements), Some(median_ns)) = (
                    benchmark["full_id"].as_str(),
                    benchmark["throughput"]["Elements"].as_f64(),
                    estimates["median"]["point_estimate"].as_f64(),
                ) else {
                    continue;
                };
                let measured = std::fs::metadata(new.join("estimates.json"))
                    .and_then(|meta| meta.modified())
                    .ok();
                by_id.insert(
                    id.to_owned(),
                    CriterionResult {
                        elements,
                        median_ns,
                        measured,
                    },
                );
            }
        }
        let started = std::fs::metadata(support::results_dir().join("started"))
            .and_then(|meta| meta.modified())
            .ok();
        Ok(CriterionResults { by_id, started })
    }

    fn stale(&self, result: &CriterionResult) -> bool {
        matches!((self.started, result.measured), (Some(started), Some(measured)) if measured < started)
    }

    fn line(&self, case: &str, id: &str, target: Target) -> Line {
        let figures = match self.by_id.get(id) {
            None => Err(format!("no criterion result for `{id}`")),
            Some(result) => {
                let value = result.elements * 1e9 / result.median_ns;
                let group = id.rsplit_once('/').map_or(id, |(group, _)| group);
                let peak_rss_kib = std::fs::read_to_string(support::rss_file(group))
                    .ok()
                    .and_then(|text| text.trim().parse().ok());
                Ok(Figures {
                    value,
                    cpu_per_million: Some(1e6 / value),
                    peak_rss_kib,
                    note: if self.stale(result) {
                        "stale: not run by this `make bench`".to_owned()
                    } else {
                        String::new()
                    },
                })
            }
        };
        Line {
            case: case.to_owned(),
            figures,
            target,
        }
    }

    /// Criterion results of other bench targets (e.g. Pub/Sub throughput), measured by
    /// this `make bench`, listed as they are.
    fn others(&self) -> String {
        let mine = [
            "decode/",
            "plugin/",
            "chain/",
            "sink/",
            "sentiment/",
            "spool/",
        ];
        let mut out = String::new();
        for (id, result) in &self.by_id {
            if mine.iter().any(|prefix| id.starts_with(prefix)) || self.stale(result) {
                continue;
            }
            if out.is_empty() {
                out.push_str("\nOther criterion benchmarks (median, elements/s):\n\n");
            }
            let rate = result.elements * 1e9 / result.median_ns;
            let _ = writeln!(out, "- `{id}`: {}/s", thousands(rate));
        }
        out
    }
}

fn read_dirs(dir: &Path) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path())
        .filter(|path| path.is_dir())
        .collect();
    dirs.sort();
    dirs
}

/// The end-to-end cases: the release binary, the replay file, a warm plugin cache.
struct EndToEnd<'s> {
    settings: &'s Settings,
    binary: PathBuf,
    replay: PathBuf,
    work: PathBuf,
}

impl<'s> EndToEnd<'s> {
    fn prepare(settings: &'s Settings) -> Result<EndToEnd<'s>> {
        let binary = support::target_dir().join("release/tweetpipe");
        if !binary.is_file() {
            bail!("{} is missing: run `make build` first", binary.display());
        }
        let work = support::results_dir().join("end-to-end");
        std::fs::create_dir_all(&work)?;
        let replay = replay_file(&binary, settings.posts)?;
        let end_to_end = EndToEnd {
            settings,
            binary,
            replay,
            work,
        };
        // Compiles the plugins into the cache once, so no measured run pays for it.
        let samples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/samples/posts.jsonl");
        end_to_end
            .run_once("null", &samples)
            .context("warm-up run on the sample posts")?;
        Ok(end_to_end)
    }

    fn measure(&self, sink: &str) -> Result<Figures> {
        self.measure_with(sink)
    }

    /// [`EndToEnd::measure`] for a sink name of [`config_text`], which may be
    /// [`SQLITE_WITHOUT_SPOOL`].
    fn measure_with(&self, sink: &str) -> Result<Figures> {
        let mut runs = Vec::new();
        for run in 1..=self.settings.runs {
            eprintln!("end to end → {sink}: run {run} of {}", self.settings.runs);
            runs.push(self.run_once(sink, &self.replay)?);
        }
        Ok(self.figures(&runs))
    }

    /// The peak RSS of `tweetpipe run` with three plugins returning their most
    /// ([`hostile_config_text`]) on a replay of [`HOSTILE_POSTS`] posts: the
    /// largest of the runs, beside the median rate.
    fn measure_hostile(&self) -> Result<Figures> {
        let replay = replay_file(&self.binary, HOSTILE_POSTS)?;
        let config = hostile_config_text(&replay);
        let mut runs = Vec::new();
        for run in 1..=self.settings.runs {
            eprintln!(
                "end to end, 3 plugins returning their most: run {run} of {}",
                self.settings.runs
            );
            runs.push(self.run_config("hostile", &config)?);
        }
        let mut walls: Vec<f64> = runs.iter().map(|run| run.wall.as_secs_f64()).collect();
        walls.sort_by(f64::total_cmp);
        let wall = walls[walls.len() / 2];
        Ok(Figures {
            value: HOSTILE_POSTS as f64 / wall,
            cpu_per_million: None,
            peak_rss_kib: runs.iter().map(|run| run.peak_rss_kib).max(),
            note: format!("{wall:.1} s wall"),
        })
    }

    /// The SQLite case on every core the bench may use (two), with two workers.
    fn measure_two_cores(&self) -> Result<Figures> {
        let cpus = match &self.settings.pin {
            Some(cpu) => {
                let other = std::thread::available_parallelism()
                    .map_or(1, usize::from)
                    .min(2);
                if other < 2 {
                    bail!("this machine has one core");
                }
                // The pinned core and the one next to it.
                let first: usize = cpu.parse().context("TWEETPIPE_BENCH_CPU is not one core")?;
                let second = if first == 0 { 1 } else { first - 1 };
                Some(format!("{first},{second}"))
            }
            None => None,
        };
        let config = config_text(&self.replay, "sqlite").replace("workers = 1", "workers = 2");
        let mut runs = Vec::new();
        for run in 1..=self.settings.runs {
            eprintln!(
                "end to end → sqlite, 2 cores: run {run} of {}",
                self.settings.runs
            );
            runs.push(self.run_config_on("sqlite-2-cores", &config, cpus.as_deref())?);
        }
        Ok(self.figures(&runs))
    }

    /// Medians of the start (to the first post read) and stop (last commit to
    /// exit) times of runs on [`START_STOP_POSTS`] posts, in milliseconds.
    fn measure_start_stop(&self) -> Result<(Figures, Figures)> {
        let replay = replay_file(&self.binary, START_STOP_POSTS)?;
        // As the service runs: `--quiet` (no summary); the timeline is logged at `info`.
        let config = config_text(&replay, "sqlite").replace("level = \"warn\"", "level = \"info\"");
        let mut starts = Vec::new();
        let mut stops = Vec::new();
        for run in 1..=self.settings.runs.max(5) {
            eprintln!("start and stop: run {run}");
            let usage = self.run_config("start-stop", &config)?;
            let (Some(first_read), Some(last_commit)) = (usage.first_read, usage.last_commit)
            else {
                bail!("the run's log has no \"first post read\" or \"last commit\"");
            };
            starts.push(first_read.as_secs_f64() * 1e3);
            stops.push(usage.wall.saturating_sub(last_commit).as_secs_f64() * 1e3);
        }
        let median = |mut values: Vec<f64>| {
            values.sort_by(f64::total_cmp);
            values[values.len() / 2]
        };
        let figures = |value: f64, note: String| Figures {
            value,
            cpu_per_million: None,
            peak_rss_kib: None,
            note,
        };
        let runs = starts.len();
        Ok((
            figures(median(starts), format!("median of {runs}")),
            figures(median(stops), format!("median of {runs}")),
        ))
    }

    /// Posts/s, CPU and peak RSS of whole-replay runs.
    fn figures(&self, runs: &[Usage]) -> Figures {
        let median = |mut values: Vec<f64>| {
            values.sort_by(f64::total_cmp);
            values[values.len() / 2]
        };
        let wall = median(runs.iter().map(|run| run.wall.as_secs_f64()).collect());
        let cpu = median(runs.iter().map(|run| run.cpu.as_secs_f64()).collect());
        let posts = self.settings.posts as f64;
        Figures {
            value: posts / wall,
            cpu_per_million: Some(cpu / posts * 1e6),
            peak_rss_kib: runs.iter().map(|run| run.peak_rss_kib).max(),
            note: format!("{wall:.1} s wall, {cpu:.1} s CPU"),
        }
    }

    /// One `tweetpipe run` from a clean output directory; removes its output after.
    fn run_once(&self, sink: &str, replay: &Path) -> Result<Usage> {
        self.run_config(sink, &config_text(replay, sink))
    }

    /// One `tweetpipe run` of `config` in the clean directory `name`; removes
    /// its output after.
    fn run_config(&self, name: &str, config_text: &str) -> Result<Usage> {
        self.run_config_on(name, config_text, self.settings.pin.as_deref())
    }

    /// [`EndToEnd::run_config`] on the cores `cpus` (`taskset -c` syntax; `None`:
    /// unpinned).
    fn run_config_on(&self, name: &str, config_text: &str, cpus: Option<&str>) -> Result<Usage> {
        let dir = self.work.join(name);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        let config = dir.join("tweetpipe.toml");
        std::fs::write(&config, config_text)?;
        let log = std::fs::File::create(dir.join("stderr.log"))?;
        let summary = std::fs::File::create(dir.join("stdout.log"))?;
        let mut command = match cpus {
            Some(cpus) => {
                let mut command = Command::new("taskset");
                command.arg("-c").arg(cpus).arg(&self.binary);
                command
            }
            None => Command::new(&self.binary),
        };
        let started = Instant::now();
        let child = command
            .args(["run", "--quiet", "--config"])
            .arg(&config)
            .env("XDG_CACHE_HOME", self.work.join("cache"))
            .env_remove("CACHE_DIRECTORY")
            .env_remove("RUST_LOG")
            .stdout(summary)
            .stderr(log)
            .spawn()
            .context("starting `tweetpipe run`")?;
        let (status, usage) = wait_with_usage(child)?;
        let wall = started.elapsed();
        if !status.success() {
            let log = std::fs::read_to_string(dir.join("stderr.log")).unwrap_or_default();
            bail!("`tweetpipe run` ({name}) failed: {status}: {}", log.trim());
        }
        // The timeline is in the summary, and in the log's last line at `info`.
        let mut said = std::fs::read_to_string(dir.join("stdout.log")).unwrap_or_default();
        said.push_str(&std::fs::read_to_string(dir.join("stderr.log")).unwrap_or_default());
        let _ = std::fs::remove_dir_all(dir.join("out"));
        Ok(Usage {
            wall,
            first_read: after_start(&said, "first post read"),
            last_commit: after_start(&said, "last commit"),
            ..usage
        })
    }
}

/// The generated replay of `posts` posts (seed [`REPLAY_SEED`]), written by
/// `tweetpipe sample` the first time.
fn replay_file(binary: &Path, posts: u64) -> Result<PathBuf> {
    let replay = support::results_dir().join(format!("replay-{posts}-seed{REPLAY_SEED}.jsonl"));
    if !replay.is_file() {
        eprintln!("writing {} ({posts} posts)", replay.display());
        let partial = replay.with_extension("partial");
        let status = Command::new(binary)
            .args(["sample", "--count", &posts.to_string()])
            .args(["--seed", &REPLAY_SEED.to_string(), "--out"])
            .arg(&partial)
            .status()
            .context("running `tweetpipe sample`")?;
        if !status.success() {
            bail!("`tweetpipe sample` failed: {status}");
        }
        std::fs::rename(&partial, &replay)?;
    }
    Ok(replay)
}

/// Posts in the replay of the peak-RSS case: enough for several full batches
/// through each plugin; every post fails, so a run costs a call per post.
const HOSTILE_POSTS: u64 = 3000;

/// The config of the peak-RSS case: the `hostile-wasi` test fixture three times
/// at the default caps, two returning a text just under the post limit for
/// every post, the third 8 MiB per post (past it); failed posts are dropped
/// (letters of 255 KiB posts would measure the disk, not the memory).
fn hostile_config_text(replay: &Path) -> String {
    let path = toml::Value::String(support::wasm("hostile_wasi").to_string_lossy().into_owned());
    let plugin = |name: &str, config: &str| {
        format!(
            "[[plugins]]\nname = \"{name}\"\npath = {path}\non_error = \"drop\"\nconfig = {config}\n"
        )
    };
    format!(
        r#"[source.replay]
path = {replay}

{big_one}
{big_two}
{huge}
[process]
chain_batch = 256
workers = 1
watch_plugins = false

[sink.null]

[dead_letter]
path = "out/dead-letters.jsonl"

[logging]
level = "warn"

[metrics]
enabled = false
"#,
        replay = toml::Value::String(replay.to_string_lossy().into_owned()),
        big_one = plugin("big-one", r#"{ mode = "huge", kib = 250 }"#),
        big_two = plugin("big-two", r#"{ mode = "huge", kib = 255 }"#),
        huge = plugin("huge", r#"{ mode = "huge", mib = 8 }"#),
    )
}

/// Posts in the replay of the start and stop case: a run of about a second.
const START_STOP_POSTS: u64 = 20_000;

/// The time after `label` in a run's log or summary, as in
/// `first post read 84 ms after start`.
fn after_start(text: &str, label: &str) -> Option<Duration> {
    let at = text.find(label)?;
    let mut words = text[at + label.len()..].split_whitespace();
    let value: f64 = words.next()?.parse().ok()?;
    let secs = match words.next()?.trim_end_matches(',') {
        "ms" => value / 1e3,
        "s" => value,
        _ => return None,
    };
    Some(Duration::from_secs_f64(secs))
}

/// A whole-process run's cost.
struct Usage {
    wall: Duration,
    /// From the summary's timeline (runs without `--quiet`).
    first_read: Option<Duration>,
    last_commit: Option<Duration>,
    /// User plus system CPU time.
    cpu: Duration,
    peak_rss_kib: u64,
}

/// The config of an end-to-end run: the shipped chain into `sink`, no metrics
/// endpoint, no plugin watcher; otherwise the reference config's settings.
fn config_text(replay: &Path, sink: &str) -> String {
    let string = |value: &str| toml::Value::String(value.to_owned()).to_string();
    let path = |path: &Path| string(&path.to_string_lossy());
    let rules: Vec<String> = support::filter_rules()
        .enumerate()
        .map(|(index, rule)| format!("  {{ value = {}, tag = \"r{index}\" }},", string(rule)))
        .collect();
    // The spool lives in `spool/` beside the config, which each run starts without.
    let spool = if sink == SQLITE_WITHOUT_SPOOL {
        "enabled = false"
    } else {
        "enabled = true"
    };
    let sink = match sink {
        "sqlite" | SQLITE_WITHOUT_SPOOL => "[sink.sqlite]\npath = \"out/posts.db\"",
        "jsonl" => "[sink.jsonl]\ndir = \"out/jsonl\"",
        _ => "[sink.null]",
    };
    format!(
        r#"[source.replay]
path = {replay}

[broker]
kind = "embedded"
capacity = 4096

[broker.spool]
{spool}

[[plugins]]
name = "filter"
path = {filter}
[plugins.config]
rules = [
{rules}
]

[[plugins]]
name = "sentiment"
path = {sentiment}

[[plugins]]
name = "pii-scrub"
path = {pii_scrub}
config = {{ key = "benchmark-key-0123456789" }}

[process]
chain_batch = 256
workers = 1
watch_plugins = false

[batch]
max_rows = 500
max_bytes = 4194304
max_age_ms = 1000

{sink}

[dead_letter]
path = "out/dead-letters.jsonl"

[logging]
level = "warn"

[metrics]
enabled = false
"#,
        replay = path(replay),
        filter = path(&support::wasm("filter")),
        sentiment = path(&support::wasm("sentiment")),
        pii_scrub = path(&support::wasm("pii_scrub")),
        rules = rules.join("\n"),
    )
}

/// The SQLite end-to-end case with `broker.spool.enabled = false`.
const SQLITE_WITHOUT_SPOOL: &str = "sqlite-no-spool";

/// Waits for `child` with `wait4`, which reports the child's own CPU time and
/// peak RSS (std's `wait` does not).
#[allow(unsafe_code)]
fn wait_with_usage(child: std::process::Child) -> Result<(ExitStatus, Usage)> {
    use std::os::unix::process::ExitStatusExt;

    let pid = libc::pid_t::try_from(child.id())?;
    let mut status: libc::c_int = 0;
    // SAFETY: `rusage` is plain integers, so all-zero is a valid value.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: both pointers are to live, writable locals for the whole call.
        let reaped = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
        if reaped == pid {
            break;
        }
        let error = std::io::Error::last_os_error();
        if error.kind() != std::io::ErrorKind::Interrupted {
            return Err(error).context("wait4");
        }
    }
    // Reaped above: dropping the handle must not (and does not) wait again.
    drop(child);
    let time = |value: libc::timeval| {
        Duration::from_secs(value.tv_sec as u64) + Duration::from_micros(value.tv_usec as u64)
    };
    Ok((
        ExitStatus::from_raw(status),
        Usage {
            wall: Duration::ZERO,
            first_read: None,
            last_commit: None,
            cpu: time(usage.ru_utime) + time(usage.ru_stime),
            peak_rss_kib: usage.ru_maxrss as u64,
        },
    ))
}

/// The reference scorer on the texts the sentiment benchmark scores: its version
/// and figures, or why it could not run.
fn python_vader(settings: &Settings) -> Result<(String, Figures)> {
    let texts: Vec<String> = support::sample_lines()
        .iter()
        .filter_map(|line| tweetpipe::post::decode(line).ok())
        .collect::<Vec<_>>()
        .chunks_exact(512)
        .flatten()
        .map(|post| serde_json::to_string(&post.text))
        .collect::<Result<_, _>>()?;
    let file = support::results_dir().join("vader-texts.jsonl");
    std::fs::write(&file, texts.join("\n") + "\n")?;
    python_script(settings, "vader_reference.py", &file)
}

/// The Python pipeline tweetpipe replaces (`benches/python_peer.py`) on the
/// replay the end-to-end runs read, pinned like them.
fn python_peer(settings: &Settings, replay: &Path) -> Result<(String, Figures)> {
    python_script(settings, "python_peer.py", replay)
}

/// Runs `benches/{script}` on `input`; it prints posts/s, CPU-s per million,
/// peak RSS and vaderSentiment's version as JSON, or exits 3 without the package.
fn python_script(settings: &Settings, script: &str, input: &Path) -> Result<(String, Figures)> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("benches")
        .join(script);
    let output = match settings.command("python3").arg(&script).arg(input).output() {
        Ok(output) => output,
        Err(error) => {
            bail!("python3 cannot run ({error}); install Python 3 and `pip install vaderSentiment`")
        }
    };
    if output.status.code() == Some(3) {
        bail!("the vaderSentiment package is not installed (`pip install vaderSentiment`)");
    }
    if !output.status.success() {
        bail!(
            "{} failed: {}",
            script.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let result: serde_json::Value = serde_json::from_slice(&output.stdout)
        .with_context(|| format!("reading the output of {}", script.display()))?;
    let number = |key: &str| {
        result[key]
            .as_f64()
            .with_context(|| format!("{} printed no {key}", script.display()))
    };
    Ok((
        result["version"].as_str().unwrap_or("?").to_owned(),
        Figures {
            value: number("posts_per_sec")?,
            cpu_per_million: Some(number("cpu_seconds_per_million")?),
            peak_rss_kib: Some(number("peak_rss_kib")? as u64),
            note: String::new(),
        },
    ))
}
