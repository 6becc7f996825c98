//! What the benchmarks share: the workspace's target directory, the sample posts,
//! and the per-case peak-RSS records that `benches/report.rs` puts in its table.
//!
//! Each bench target compiles this module and uses part of it.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

/// The 25 filtered-stream rules of the `filter` plugin's benchmark: keywords,
/// phrases, entities, negations, groups and the conjunction-required operators
/// (one per line in `plugins/filter/bench-rules.txt`, which the filter's own
/// tests also check against).
pub fn filter_rules() -> impl Iterator<Item = &'static str> {
    include_str!("../../../plugins/filter/bench-rules.txt").lines()
}

/// The workspace's target directory (`CARGO_TARGET_DIR` when set).
pub fn target_dir() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let workspace = manifest_dir.parent().unwrap_or(manifest_dir);
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if Path::new(&dir).is_absolute() => PathBuf::from(dir),
        Some(dir) => workspace.join(dir),
        None => workspace.join("target"),
    }
}

/// Where the benchmarks keep what criterion does not: peak RSS per case, the
/// end-to-end runs, the generated replay file.
pub fn results_dir() -> PathBuf {
    target_dir().join("bench")
}

/// What the language benchmark measured of each component's load, one line
/// each in the results directory: name, `.wasm` bytes, seconds compiling,
/// seconds from the compiled-module cache (tab-separated).
pub const PLUGIN_LOADS: &str = "plugin-loads.tsv";

/// The committed sample posts (X API v2 stream messages), one per line.
pub fn sample_lines() -> Vec<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/samples/posts.jsonl");
    std::fs::read_to_string(&path)
        .unwrap_or_else(|error| panic!("reading {}: {error}", path.display()))
        .lines()
        .map(str::to_owned)
        .collect()
}

/// A built plugin, `target/wasm32-wasip2/plugin/<name>.wasm`.
pub fn wasm(name: &str) -> PathBuf {
    let path = target_dir()
        .join("wasm32-wasip2/plugin")
        .join(format!("{name}.wasm"));
    assert!(
        path.is_file(),
        "{} is missing: run `make plugins` before `make bench`",
        path.display()
    );
    path
}

/// Resets the process's peak RSS (VmHWM) to its current RSS, so the next
/// [`record_peak_rss`] measures one case (Linux ≥ 4.0; elsewhere a no-op).
pub fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// The process's peak RSS in KiB since start or the last [`reset_peak_rss`].
pub fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    line["VmHWM:".len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// The file holding the peak RSS of the criterion group `group`.
pub fn rss_file(group: &str) -> PathBuf {
    let slug: String = group
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    results_dir().join("rss").join(format!("{slug}.kib"))
}

/// Records the peak RSS since the last reset as that of criterion group `group`.
pub fn record_peak_rss(group: &str) {
    let Some(kib) = peak_rss_kib() else {
        return;
    };
    let path = rss_file(group);
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    if let Err(error) = std::fs::write(&path, format!("{kib}\n")) {
        eprintln!("cannot record peak RSS in {}: {error}", path.display());
    }
}
