//! Plugin hot swap under load, on the real binary: a replay runs at a steady
//! rate while a plugin's file is replaced 20 times between two versions (copied
//! over, `install -m 644`, written to a temporary file and renamed), two broken
//! versions are dropped in, and SIGHUP / `tweetpipe reload` reorder and
//! re-configure the chain. Afterwards nothing is lost or doubled, every row was
//! tagged by exactly one version, the broken versions processed nothing, and the
//! process never restarted.
//!
//! Hostile plugins written against the bare contract (`hostile-wasi`: sleep,
//! print, a huge result, `exit`, in `init` and in `process`) go through the
//! real binary too: in a chain of `tweetpipe run`, at three of them returning
//! as much as they may while the daemon's peak RSS is read from /proc, and
//! hot-swapped into a running daemon and out again.
//!
//! The `.wasm` files are built by `make plugins`; the tests fail (never skip)
//! when they are missing.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tweetpipe::config::{OnError, PluginConfig};
use tweetpipe::plugins::{ChainSwitch, LoadedChain, PluginReloader, RuntimeOptions, Verdict};
use tweetpipe::post::{AttrValue, Post};
use tweetpipe::sample::{SampleOptions, write_sample};

const BIN: &str = env!("CARGO_BIN_EXE_tweetpipe");

fn target_dir() -> PathBuf {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if Path::new(&dir).is_absolute() => PathBuf::from(dir),
        Some(dir) => workspace.join(dir),
        None => workspace.join("target"),
    }
}

/// The built plugin `name` (crate name with `_`), or a failure saying how to build it.
fn wasm(name: &str) -> PathBuf {
    let path = target_dir()
        .join("wasm32-wasip2/plugin")
        .join(format!("{name}.wasm"));
    assert!(
        path.is_file(),
        "{} is missing: run `make plugins` before this test",
        path.display()
    );
    path
}

struct Daemon {
    dir: tempfile::TempDir,
    child: Child,
}

impl Daemon {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(self.path("stderr.log")).unwrap_or_default()
    }

    /// Waits until the log holds `count` lines containing `needle`.
    fn wait_log(&self, needle: &str, count: usize, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.stderr().matches(needle).count() >= count {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!(
            "no {count}× {needle:?} in the log within {timeout:?}:\n{}",
            self.stderr()
        );
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([format!("-{name}"), self.child.id().to_string()])
            .status()
            .expect("the `kill` command (procps) is needed by this test");
        assert!(status.success(), "kill -{name} failed");
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `[[plugins]]` part of the config: the swapped `tagger` and a `poison`
/// plugin that fails one post on purpose, in either order.
fn chain(dir: &Path, tagger_first: bool, label: &str, poison_id: &str) -> String {
    let tagger = format!(
        "[[plugins]]\nname = \"tagger\"\npath = \"{}\"\nself_check = \"{}\"\nconfig = {{ label = \"{label}\" }}\n",
        dir.join("plugins/tagger.wasm").display(),
        dir.join("self-check.jsonl").display()
    );
    let poison = format!(
        "[[plugins]]\nname = \"poison\"\npath = \"{}\"\nconfig = {{ poison = \"{poison_id}\" }}\n",
        wasm("hostile_fail").display()
    );
    if tagger_first {
        format!("{tagger}\n{poison}")
    } else {
        format!("{poison}\n{tagger}")
    }
}

/// A config with the replay, a JSONL sink and `plugins`; `max_rows` is a sink
/// setting a reload cannot apply.
fn write_config(dir: &Path, plugins: &str, max_rows: u32) {
    let config = format!(
        r#"[source.replay]
path = "{posts}"
rate = 400.0

[sink.jsonl]
dir = "{out}"

[batch]
max_rows = {max_rows}
max_age_ms = 50

[process]
chain_batch = 16
workers = 2
watch_plugins = true
watch_debounce_ms = 150

[dead_letter]
path = "{dead}"

[daemon]
pid_file = "{pid}"

[metrics]
enabled = false

{plugins}"#,
        posts = dir.join("posts.jsonl").display(),
        out = dir.join("out").display(),
        dead = dir.join("dead-letters.jsonl").display(),
        pid = dir.join("tweetpipe.pid").display(),
    );
    let temp = dir.join("tweetpipe.toml.tmp");
    std::fs::write(&temp, config).unwrap();
    std::fs::rename(temp, dir.join("tweetpipe.toml")).unwrap();
}

/// The three ways people deploy a file.
fn deploy(source: &Path, target: &Path, way: usize) {
    match way % 3 {
        0 => {
            std::fs::copy(source, target).unwrap();
        }
        1 => {
            let status = Command::new("install")
                .args(["-m", "644"])
                .arg(source)
                .arg(target)
                .status()
                .expect("the `install` command (coreutils) is needed by this test");
            assert!(status.success());
        }
        _ => {
            let temp = target.with_extension("wasm.part");
            std::fs::copy(source, &temp).unwrap();
            std::fs::rename(&temp, target).unwrap();
        }
    }
}

#[test]
fn swaps_under_load_lose_nothing_and_never_run_a_broken_version() {
    let (one, two) = (wasm("tag_one"), wasm("tag_two"));
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().to_owned();
    std::fs::create_dir_all(root.join("plugins")).unwrap();
    std::fs::create_dir_all(root.join("out")).unwrap();
    let options = SampleOptions {
        count: 12_000,
        seed: 11,
        malformed_every: 0,
        duplicate_every: 0,
        blank_every: 0,
        ..SampleOptions::default()
    };
    let mut file = std::fs::File::create(root.join("posts.jsonl")).unwrap();
    write_sample(&options, &mut file).unwrap();
    let text = std::fs::read_to_string(root.join("posts.jsonl")).unwrap();
    let input: Vec<String> = text
        .lines()
        .map(|line| tweetpipe::post::decode(line).unwrap().id)
        .collect();
    assert_eq!(
        input.iter().collect::<HashSet<_>>().len(),
        input.len(),
        "sample ids are unique"
    );
    let self_check: String = text
        .lines()
        .take(20)
        .map(|line| format!("{line}\n"))
        .collect();
    std::fs::write(root.join("self-check.jsonl"), self_check).unwrap();
    let poison_id = input[300].clone();

    std::fs::copy(&one, root.join("plugins/tagger.wasm")).unwrap();
    write_config(&root, &chain(&root, true, "l0", &poison_id), 50);
    let stderr = std::fs::File::create(root.join("stderr.log")).unwrap();
    let child = Command::new(BIN)
        .args(["run", "--quiet", "--config"])
        .arg(root.join("tweetpipe.toml"))
        .env("RUST_LOG", "info")
        .env("XDG_CACHE_HOME", root.join("cache"))
        .env_remove("NOTIFY_SOCKET")
        .env_remove("JOURNAL_STREAM")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .unwrap();
    let pid = child.id();
    let daemon = Daemon { dir, child };
    daemon.wait_log("loaded plugin tagger", 1, Duration::from_secs(60));
    std::thread::sleep(Duration::from_millis(500));

    let mut running_two = false;
    let (mut swaps, mut refused, mut reloads) = (0, 0, 0);
    let target = root.join("plugins/tagger.wasm");
    for round in 0..20 {
        if round == 6 {
            // A truncated component (as a half-finished copy leaves it): refused.
            let bytes = std::fs::read(if running_two { &one } else { &two }).unwrap();
            std::fs::write(root.join("broken.wasm"), &bytes[..bytes.len() / 2]).unwrap();
            deploy(&root.join("broken.wasm"), &target, 2);
            refused += 1;
            daemon.wait_log("is refused", refused, Duration::from_secs(30));
        }
        if round == 12 {
            // A complete plugin that fails the self-check batch: refused too.
            deploy(&wasm("hostile_fail"), &target, 2);
            refused += 1;
            daemon.wait_log("is refused", refused, Duration::from_secs(30));
        }
        if round == 4 || round == 14 {
            // Reorder and re-configure the chain: SIGHUP once, `tweetpipe reload` once.
            let label = format!("l{round}");
            // The second one also changes a sink setting: reported, not applied.
            let max_rows = if round == 14 { 60 } else { 50 };
            write_config(
                &root,
                &chain(&root, round == 14, &label, &poison_id),
                max_rows,
            );
            if round == 4 {
                daemon.signal("HUP");
            } else {
                let status = Command::new(BIN)
                    .args(["reload", "--config"])
                    .arg(root.join("tweetpipe.toml"))
                    .status()
                    .unwrap();
                assert!(status.success(), "tweetpipe reload failed");
            }
            reloads += 1;
            daemon.wait_log(" applied: ", reloads, Duration::from_secs(30));
            assert_eq!(
                daemon
                    .stderr()
                    .matches("reloaded config is invalid")
                    .count(),
                0
            );
        }
        let next = if running_two { &one } else { &two };
        deploy(next, &target, round);
        running_two = !running_two;
        swaps += 1;
        daemon.wait_log("plugin tagger: swapped v", swaps, Duration::from_secs(30));
        std::thread::sleep(Duration::from_millis(150));
    }

    let pid_file = std::fs::read_to_string(root.join("tweetpipe.pid")).unwrap();
    assert_eq!(
        pid_file.trim(),
        pid.to_string(),
        "the daemon never restarted"
    );
    daemon.signal("TERM");
    let mut daemon = daemon;
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = daemon.child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "no exit:\n{}", daemon.stderr());
        std::thread::sleep(Duration::from_millis(50));
    };
    let log = daemon.stderr();
    assert!(status.success(), "exit {status:?}:\n{log}");
    assert_eq!(log.matches("plugin tagger: swapped v").count(), 20, "{log}");
    assert!(log.contains("failed its self-check"), "{log}");
    assert!(log.contains("plugin chain reordered"), "{log}");
    assert_eq!(
        log.matches("sink settings changed: restart required")
            .count(),
        1,
        "{log}"
    );

    // Rows: every one tagged by exactly one version, with a known label.
    let mut seen: HashMap<String, &'static str> = HashMap::new();
    let mut tags: HashMap<String, usize> = HashMap::new();
    let mut labels: HashSet<String> = HashSet::new();
    for entry in std::fs::read_dir(root.join("out")).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        for line in text.lines() {
            let row: serde_json::Value = serde_json::from_str(line).unwrap();
            let id = row["id"].as_str().unwrap().to_owned();
            let tag = row["attrs"]["tag"].as_str();
            assert!(
                matches!(tag, Some("one" | "two")),
                "row {id} carries no version tag: {row}"
            );
            *tags.entry(tag.unwrap().to_owned()).or_default() += 1;
            labels.insert(row["attrs"]["label"].as_str().unwrap().to_owned());
            assert!(seen.insert(id.clone(), "sink").is_none(), "row {id} twice");
        }
    }
    let letters = tweetpipe::dead_letter::read_dead_letters(&root.join("dead-letters.jsonl"))
        .unwrap_or_default();
    for letter in &letters {
        assert_eq!(
            letter["plugin"], "poison",
            "only the poison post may fail: {letter}"
        );
        let id = letter["post_id"].as_str().unwrap().to_owned();
        assert!(
            seen.insert(id.clone(), "dead letters").is_none(),
            "{id} twice"
        );
    }
    assert!(seen.contains_key(&poison_id) && seen[&poison_id] == "dead letters");
    // The replay reads in order and the drain commits everything read, so the
    // output is exactly the first ids of the input: none lost, none invented.
    let read = seen.len();
    assert!(read > 1000, "only {read} posts went through");
    for id in &input[..read] {
        assert!(seen.contains_key(id), "post {id} was lost");
    }
    assert!(tags.len() == 2, "both versions ran: {tags:?}");
    for label in ["l0", "l4", "l14"] {
        assert!(
            labels.contains(label),
            "no row ran with label {label}: {labels:?}"
        );
    }

    let pauses: Vec<u64> = log
        .lines()
        .filter_map(|line| {
            let rest = line.split("hot-path pause ").nth(1)?;
            rest.split(' ').next()?.parse().ok()
        })
        .collect();
    assert!(!pauses.is_empty(), "workers switched generations:\n{log}");
    println!(
        "hot swap: {} worker switches, longest hot-path pause {} us, {} rows, {} dead letters, tags {tags:?}",
        pauses.len(),
        pauses.iter().max().unwrap(),
        read - letters.len(),
        letters.len()
    );
}

fn tagger_entry(path: PathBuf) -> PluginConfig {
    PluginConfig {
        name: Some("tagger".to_owned()),
        path,
        config: toml::Table::new(),
        on_error: OnError::DeadLetter,
        timeout: None,
        memory_mb: None,
        max_result_mb: None,
        max_post_kb: None,
        self_check: None,
    }
}

/// The version tag the current generation puts on a post.
fn current_tag(switch: &ChainSwitch) -> Option<AttrValue> {
    let mut runner = switch.current().chain.instantiate().unwrap();
    let post = Post {
        id: "1".to_owned(),
        text: "hello".to_owned(),
        ..Post::default()
    };
    match runner.run(vec![post]).pop() {
        Some(Verdict::Keep(post)) => post.attrs.get("tag").cloned(),
        other => panic!("expected the post kept, got {other:?}"),
    }
}

#[test]
fn a_refused_file_keeps_the_old_version_until_the_file_is_fixed() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tagger.wasm");
    std::fs::copy(wasm("tag_one"), &path).unwrap();
    let options = RuntimeOptions {
        cache_dir: None,
        default_timeout: Duration::from_secs(1),
        default_memory_mb: 32,
    };
    let entry = tagger_entry(path.clone());
    let chain = LoadedChain::load_with(std::slice::from_ref(&entry), &options).unwrap();
    let switch = ChainSwitch::new(chain);
    let reloader = PluginReloader::new(switch.clone(), vec![entry.clone()], options);
    let one = Some(AttrValue::Str("one".to_owned()));
    let two = Some(AttrValue::Str("two".to_owned()));

    // Unchanged files publish nothing.
    let report = reloader.reload_files().unwrap();
    assert_eq!(report.generation, None, "{report:?}");

    // A half-written component is refused; the old version stays.
    let bytes = std::fs::read(wasm("tag_two")).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 3]).unwrap();
    let report = reloader.reload_files().unwrap();
    assert_eq!(
        (report.generation, report.refused.len()),
        (None, 1),
        "{report:?}"
    );
    assert!(report.refused[0].contains("tagger"), "{report:?}");
    assert_eq!(switch.current().number, 0);
    assert_eq!(current_tag(&switch), one);
    // The same bytes are not tried again.
    let report = reloader.reload_files().unwrap();
    assert!(report.refused.is_empty(), "{report:?}");

    // The fixed file is picked up.
    std::fs::write(&path, &bytes).unwrap();
    let report = reloader.reload_files().unwrap();
    assert_eq!(report.generation, Some(1), "{report:?}");
    assert_eq!(report.changes.len(), 1, "{report:?}");
    assert!(
        report.changes[0].starts_with("plugin tagger: swapped v")
            && report.changes[0].contains(" -> v"),
        "{report:?}"
    );
    assert_eq!(current_tag(&switch), two);

    // A new entry that cannot load fails the whole reload; nothing changes.
    let mut missing = tagger_entry(dir.path().join("missing.wasm"));
    missing.name = Some("other".to_owned());
    let error = reloader
        .reload_config(&[entry.clone(), missing])
        .unwrap_err();
    assert!(error.to_string().contains("missing.wasm"), "{error}");
    assert_eq!(switch.current().number, 1);

    // Added, then reordered, then removed.
    let mut noop = tagger_entry(wasm("noop"));
    noop.name = Some("noop".to_owned());
    let report = reloader
        .reload_config(&[entry.clone(), noop.clone()])
        .unwrap();
    assert_eq!(report.changes.len(), 1, "{report:?}");
    assert!(
        report.changes[0].starts_with("plugin noop: added v"),
        "{report:?}"
    );
    let report = reloader
        .reload_config(&[noop.clone(), entry.clone()])
        .unwrap();
    assert_eq!(
        report.changes,
        ["plugin chain reordered: noop -> tagger"],
        "{report:?}"
    );
    assert_eq!(switch.current().chain.names(), ["noop", "tagger"]);
    let report = reloader
        .reload_config(std::slice::from_ref(&entry))
        .unwrap();
    assert!(
        report.changes[0].starts_with("plugin noop: removed"),
        "{report:?}"
    );
    assert_eq!(switch.current().number, 4);
    assert_eq!(current_tag(&switch), two);
}

/// Starts `tweetpipe run` on `root/tweetpipe.toml`, its stdout and stderr in
/// `stdout.log` and `stderr.log`, compiled plugins cached in `root/cache`.
fn start_daemon(dir: tempfile::TempDir) -> Daemon {
    let root = dir.path();
    let stdout = std::fs::File::create(root.join("stdout.log")).unwrap();
    let stderr = std::fs::File::create(root.join("stderr.log")).unwrap();
    let child = Command::new(BIN)
        .args(["run", "--config"])
        .arg(root.join("tweetpipe.toml"))
        .env("RUST_LOG", "info")
        .env("XDG_CACHE_HOME", root.join("cache"))
        .env_remove("NOTIFY_SOCKET")
        .env_remove("JOURNAL_STREAM")
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .unwrap();
    Daemon { dir, child }
}

impl Daemon {
    /// Waits for the process to exit by itself within `timeout`.
    fn wait_exit(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "no exit within {timeout:?}:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits for the process to exit by itself within `timeout`, reading its
    /// peak resident set (KiB) from /proc every 10 ms until then.
    fn wait_exit_with_peak_rss(&mut self, timeout: Duration) -> (std::process::ExitStatus, u64) {
        let mut peak = 0;
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(rss) = self.peak_rss_kib() {
                peak = peak.max(rss);
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                return (status, peak);
            }
            assert!(Instant::now() < deadline, "no exit:\n{}", self.stderr());
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The process's peak resident set so far (VmHWM), in KiB.
    fn peak_rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
        line.split_whitespace().nth(1)?.parse().ok()
    }
}

/// A scratch directory with `count` sample posts (all decodable, unique ids);
/// returns it and the ids in input order.
fn scratch(count: usize, seed: u64) -> (tempfile::TempDir, Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("plugins")).unwrap();
    std::fs::create_dir_all(dir.path().join("out")).unwrap();
    let options = SampleOptions {
        count,
        seed,
        malformed_every: 0,
        duplicate_every: 0,
        blank_every: 0,
        ..SampleOptions::default()
    };
    let mut file = std::fs::File::create(dir.path().join("posts.jsonl")).unwrap();
    write_sample(&options, &mut file).unwrap();
    let ids: Vec<String> = std::fs::read_to_string(dir.path().join("posts.jsonl"))
        .unwrap()
        .lines()
        .map(|line| tweetpipe::post::decode(line).unwrap().id)
        .collect();
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), ids.len());
    (dir, ids)
}

/// A `[[plugins]]` entry for the `hostile-wasi` fixture named `name` with the
/// inline TOML table `config`.
fn hostile_entry(name: &str, config: &str) -> String {
    fixture_entry(name, "hostile_wasi", config)
}

/// A `[[plugins]]` entry named `name` for the built plugin `fixture`, with the
/// inline TOML table `config`.
fn fixture_entry(name: &str, fixture: &str, config: &str) -> String {
    format!(
        "[[plugins]]\nname = \"{name}\"\npath = \"{}\"\nconfig = {config}\n",
        wasm(fixture).display()
    )
}

/// A config replaying `posts.jsonl` once into `sink`, then exiting.
fn write_run_config(dir: &Path, sink: &str, plugins: &str) {
    let config = format!(
        r#"[source.replay]
path = "{posts}"

{sink}

[dead_letter]
path = "{dead}"

[metrics]
enabled = false

{plugins}"#,
        posts = dir.join("posts.jsonl").display(),
        dead = dir.join("dead-letters.jsonl").display(),
    );
    std::fs::write(dir.join("tweetpipe.toml"), config).unwrap();
}

/// Where each post ended: `"sink"` (with its row) or `"dead letters"` (with the
/// letter); fails on a post found twice.
fn outputs(root: &Path) -> (HashMap<String, serde_json::Value>, Vec<serde_json::Value>) {
    let mut rows = HashMap::new();
    for entry in std::fs::read_dir(root.join("out")).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        for line in text.lines() {
            let row: serde_json::Value = serde_json::from_str(line).unwrap();
            let id = row["id"].as_str().unwrap().to_owned();
            assert!(rows.insert(id.clone(), row).is_none(), "row {id} twice");
        }
    }
    let letters = tweetpipe::dead_letter::read_dead_letters(&root.join("dead-letters.jsonl"))
        .unwrap_or_default();
    for letter in &letters {
        let id = letter["post_id"].as_str().unwrap();
        assert!(!rows.contains_key(id), "{id} is a row and a dead letter");
    }
    (rows, letters)
}

/// Issue 19 through `tweetpipe run`: one chain holds the bare-contract fixture
/// in every mode, in `process` (each on its own poison post) and in `init`.
/// The daemon runs the replay to its end and exits 0; only the posts given a
/// huge text or an `exit` are dead-lettered, by the plugin's name with the
/// reason; the plugins' output is in the log, prefixed with their names, and
/// never on the daemon's stdout. A plugin calling `exit` in `init` stops the
/// start with a clear message, not a panic.
#[test]
fn a_chain_of_hostile_plugins_in_a_real_run_fails_only_their_posts() {
    let (dir, ids) = scratch(400, 5);
    let root = dir.path().to_owned();
    let poison = |index: usize| ids[index].clone();
    let plugins = [
        hostile_entry(
            "sleep-process",
            &format!("{{ mode = \"sleep\", poison = \"{}\" }}", poison(40)),
        ),
        hostile_entry(
            "print-process",
            &format!("{{ mode = \"print\", poison = \"{}\" }}", poison(90)),
        ),
        hostile_entry(
            "huge-process",
            &format!("{{ mode = \"huge\", poison = \"{}\" }}", poison(150)),
        ),
        hostile_entry(
            "exit-process",
            &format!("{{ mode = \"exit\", poison = \"{}\" }}", poison(333)),
        ),
        hostile_entry("sleep-init", "{ mode = \"sleep\", in = \"init\" }"),
        hostile_entry("print-init", "{ mode = \"print\", in = \"init\" }"),
        hostile_entry("huge-init", "{ mode = \"huge\", in = \"init\" }"),
    ]
    .join("\n");
    write_run_config(
        &root,
        &format!("[sink.jsonl]\ndir = \"{}\"", root.join("out").display()),
        &plugins,
    );
    let mut daemon = start_daemon(dir);
    // The sleeps would take 30 s each if they waited.
    let status = daemon.wait_exit(Duration::from_secs(120));
    let log = daemon.stderr();
    assert!(status.success(), "exit {status:?}:\n{log}");
    assert!(!log.contains("panicked"), "{log}");

    let (rows, letters) = outputs(&root);
    let mut failed: Vec<(String, String, String)> = letters
        .iter()
        .map(|letter| {
            (
                letter["post_id"].as_str().unwrap().to_owned(),
                letter["plugin"].as_str().unwrap().to_owned(),
                letter["error"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    failed.sort_by_key(|(id, ..)| ids.iter().position(|other| other == id));
    assert_eq!(failed.len(), 2, "{failed:?}");
    assert_eq!(
        (&failed[0].0, failed[0].1.as_str()),
        (&poison(150), "huge-process")
    );
    assert!(
        failed[0].2.contains("past the limit of 256 KiB") && failed[0].2.contains("max_post_kb"),
        "{failed:?}"
    );
    assert_eq!(
        (&failed[1].0, failed[1].1.as_str()),
        (&poison(333), "exit-process")
    );
    assert!(failed[1].2.contains("called exit(1)"), "{failed:?}");
    for id in &ids {
        assert!(
            rows.contains_key(id) || *id == poison(150) || *id == poison(333),
            "post {id} was lost"
        );
    }
    assert_eq!(rows.len(), ids.len() - 2);

    for line in [
        "plugin print-process stdout: hostile-wasi: stdout line 0",
        "plugin print-process stderr: hostile-wasi: stderr line 0",
        "plugin print-init stdout: hostile-wasi: stdout line 0",
        "plugin print-init stderr: hostile-wasi: stderr line 0",
    ] {
        assert!(log.contains(line), "no {line:?} in the log:\n{log}");
    }
    assert!(log.contains("[cut "), "the 10 KiB line is cut:\n{log}");
    let stdout = std::fs::read_to_string(daemon.path("stdout.log")).unwrap();
    assert!(!stdout.contains("hostile-wasi:"), "{stdout}");
    assert!(stdout.contains("tweetpipe run finished"), "{stdout}");

    // `exit` in `init`: the chain does not load, and says why.
    let root = daemon.dir.path().to_owned();
    write_run_config(
        &root,
        "[sink.null]",
        &hostile_entry("exit-init", "{ mode = \"exit\", in = \"init\" }"),
    );
    let output = Command::new(BIN)
        .args(["run", "--config"])
        .arg(root.join("tweetpipe.toml"))
        .env("XDG_CACHE_HOME", root.join("cache"))
        .env_remove("NOTIFY_SOCKET")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert_ne!(output.status.code(), Some(101), "a panic: {stderr}");
    assert!(
        stderr.contains("plugin exit-init: `init` failed: called exit(1)"),
        "{stderr}"
    );
}

/// Issue 19: a plugin returning 48 MiB took the daemon's RSS to 258 MiB, one
/// returning a 4 MiB buffer per post to 0.5-2.1 GiB. Three plugins at their
/// default caps (64 MiB of memory, 16 MiB of results per batch, 256 KiB a
/// post) each return the most they can: the first two a text just under the
/// post limit for every post of each 256-post batch (until their batch budget
/// runs out), the third 8 MiB per post, which fails every post. The daemon's
/// peak RSS stays under 300 MiB (about 140 MiB measured in a debug build).
#[test]
fn peak_rss_stays_bounded_whatever_three_plugins_return() {
    let (dir, ids) = scratch(1500, 9);
    let root = dir.path();
    let plugins = [
        // Failed posts are dropped rather than dead-lettered: letters of
        // 255 KiB posts would fill the disk, not the memory.
        hostile_entry("big-one", "{ mode = \"huge\", kib = 250 }") + "on_error = \"drop\"\n",
        hostile_entry("big-two", "{ mode = \"huge\", kib = 255 }") + "on_error = \"drop\"\n",
        hostile_entry("huge", "{ mode = \"huge\", mib = 8 }") + "on_error = \"drop\"\n",
    ]
    .join("\n");
    write_run_config(root, "[sink.null]", &plugins);
    let mut daemon = start_daemon(dir);
    let (status, peak) = daemon.wait_exit_with_peak_rss(Duration::from_secs(180));
    let log = daemon.stderr();
    assert!(status.success(), "exit {status:?}:\n{log}");
    let stdout = std::fs::read_to_string(daemon.path("stdout.log")).unwrap();
    let dropped = stdout
        .lines()
        .find_map(|line| line.trim().strip_prefix("dropped by plugins"))
        .and_then(|count| count.trim().parse::<usize>().ok());
    assert_eq!(dropped, Some(ids.len()), "every post fails:\n{stdout}");
    println!(
        "peak RSS with three plugins returning their most: {} MiB",
        peak / 1024
    );
    assert!(peak > 0, "VmHWM was read");
    assert!(peak < 300 * 1024, "peak RSS {} MiB", peak / 1024);
}

/// Issue 19 through `tweetpipe run`: the hand-lowered `hostile-alias` fixture
/// returns one 4 MiB buffer of its memory as the text of every post of each
/// batch of up to 256 (a gibibyte per batch for a host that copied each text
/// before counting it). With `max_post_kb = 4096` one such post is allowed,
/// so each batch's 16 MiB budget (`max_result_mb`) keeps 4 posts, committed
/// with their 4 MiB text, and dead-letters the others by the plugin's name
/// with the key to raise. The run ends with exit 0 and the daemon's peak RSS
/// stays under 300 MiB.
#[test]
fn one_buffer_returned_for_every_post_in_a_real_run_is_bounded() {
    let (dir, ids) = scratch(600, 11);
    let root = dir.path().to_owned();
    write_run_config(
        &root,
        &format!("[sink.jsonl]\ndir = \"{}\"", root.join("out").display()),
        &(fixture_entry("alias", "hostile_alias", "{}") + "max_post_kb = 4096\n"),
    );
    let mut daemon = start_daemon(dir);
    let (status, peak) = daemon.wait_exit_with_peak_rss(Duration::from_secs(180));
    let log = daemon.stderr();
    assert!(status.success(), "exit {status:?}:\n{log}");
    assert!(!log.contains("panicked"), "{log}");

    let (rows, letters) = outputs(&root);
    for row in rows.values() {
        let text = row["text"].as_str().unwrap();
        assert!(
            text.len() == 4 * 1024 * 1024 && text.bytes().all(|byte| byte == b'z'),
            "a kept post has the shared text"
        );
    }
    for letter in &letters {
        assert_eq!(letter["plugin"], "alias", "{letter}");
        let error = letter["error"].as_str().unwrap();
        assert!(
            error.contains("past its limit of 16384 KiB per batch")
                && error.contains("max_result_mb"),
            "{letter}"
        );
    }
    assert_eq!(
        rows.len() + letters.len(),
        ids.len(),
        "every post is a row or a letter"
    );
    assert!(
        !rows.is_empty() && letters.len() > rows.len(),
        "{} rows, {} letters",
        rows.len(),
        letters.len()
    );
    println!(
        "one buffer for every post: {} rows, {} dead letters, peak RSS {} MiB",
        rows.len(),
        letters.len(),
        peak / 1024
    );
    assert!(peak > 0, "VmHWM was read");
    assert!(peak < 300 * 1024, "peak RSS {} MiB", peak / 1024);

    // One 4 MiB list of 524,288 empty strings as every post's `mentions`: no
    // string bytes, 12 MiB of strings on the host per post. Past the post
    // limit, every post is dead-lettered.
    let (dir, ids) = scratch(600, 12);
    let root = dir.path().to_owned();
    write_run_config(
        &root,
        &format!("[sink.jsonl]\ndir = \"{}\"", root.join("out").display()),
        &fixture_entry("alias-list", "hostile_alias", "{ items = 524288 }"),
    );
    let mut daemon = start_daemon(dir);
    let (status, peak) = daemon.wait_exit_with_peak_rss(Duration::from_secs(180));
    let log = daemon.stderr();
    assert!(status.success(), "exit {status:?}:\n{log}");
    let (rows, letters) = outputs(&root);
    assert!(rows.is_empty(), "{} rows", rows.len());
    assert_eq!(letters.len(), ids.len());
    for letter in &letters {
        assert_eq!(letter["plugin"], "alias-list", "{letter}");
        let error = letter["error"].as_str().unwrap();
        assert!(
            error.contains("past the limit of 256 KiB") && error.contains("max_post_kb"),
            "{letter}"
        );
    }
    println!(
        "one list for every post: {} dead letters, peak RSS {} MiB",
        letters.len(),
        peak / 1024
    );
    assert!(peak < 300 * 1024, "peak RSS {} MiB", peak / 1024);
}

/// Issue 19 through a hot swap: while a replay runs, the `tagger` entry's file
/// is replaced by the bare-contract fixture in each mode (its config changed
/// first by SIGHUP), left in for a moment, and replaced by a tagging version
/// again. The daemon never restarts and drains on SIGTERM with exit 0; every
/// post read is a row or a dead letter, once; the dead letters are the posts
/// the huge and `exit` versions got, with their reasons; the version whose
/// `init` exits is refused and the running one stays.
#[test]
fn hostile_plugins_swapped_in_and_out_lose_nothing() {
    // 50 s of posts at 400 a second: more than the swaps take.
    let (dir, input) = scratch(20_000, 23);
    let root = dir.path().to_owned();
    let (one, two, hostile) = (wasm("tag_one"), wasm("tag_two"), wasm("hostile_wasi"));
    let alias = wasm("hostile_alias");
    let tagger = |config: &str| {
        format!(
            "[[plugins]]\nname = \"tagger\"\npath = \"{}\"\nconfig = {config}\n",
            root.join("plugins/tagger.wasm").display()
        )
    };
    std::fs::copy(&one, root.join("plugins/tagger.wasm")).unwrap();
    write_config(&root, &tagger("{ label = \"start\" }"), 50);
    let daemon = start_daemon(dir);
    let pid = daemon.child.id();
    daemon.wait_log("loaded plugin tagger", 1, Duration::from_secs(60));

    let target = root.join("plugins/tagger.wasm");
    let phases = [
        ("sleep", false),
        ("print", false),
        ("huge", false),
        ("exit", false),
        ("alias", false),
        ("sleep", true),
        ("print", true),
        ("huge", true),
        ("exit", true),
    ];
    let (mut swaps, mut reloads, mut refused) = (0, 0, 0);
    // Every reload applied and every swap publishes the next chain generation.
    let mut generation = 0;
    let mut running_one = true;
    for (round, (mode, in_init)) in phases.into_iter().enumerate() {
        // A huge text of 300 KiB: past the post limit, and cheap to make; 60
        // lines of output per post: past the log's rate, and cheap to write.
        let config = format!(
            "{{ label = \"p{round}\", mode = \"{mode}\", kib = 300, lines = 60, in = \"{}\" }}",
            if in_init { "init" } else { "process" }
        );
        // `hostile-alias` returns one 4 MiB buffer as every post's text: with
        // a post allowed 4 MiB, each batch of 16 keeps 2 posts within an
        // 8 MiB budget and dead-letters the others.
        let (plugins, fixture) = match mode {
            "alias" => (
                tagger(&format!("{{ label = \"p{round}\" }}"))
                    + "max_post_kb = 4096\nmax_result_mb = 8\n",
                &alias,
            ),
            _ => (tagger(&config), &hostile),
        };
        write_config(&root, &plugins, 50);
        daemon.signal("HUP");
        reloads += 1;
        generation += 1;
        daemon.wait_log(" applied: ", reloads, Duration::from_secs(30));

        deploy(fixture, &target, round);
        if mode == "exit" && in_init {
            refused += 1;
            daemon.wait_log("is refused", refused, Duration::from_secs(30));
            std::thread::sleep(Duration::from_millis(300));
        } else {
            swaps += 1;
            generation += 1;
            daemon.wait_log("plugin tagger: swapped v", swaps, Duration::from_secs(30));
            // A worker busy with a batch takes the newest generation when it
            // is done: wait until one runs the hostile version, then a little.
            daemon.wait_log(
                &format!("now on plugin chain generation {generation} "),
                1,
                Duration::from_secs(30),
            );
            std::thread::sleep(Duration::from_millis(300));
        }
        // Out again, always to the version not running before, so it is a swap.
        deploy(if running_one { &two } else { &one }, &target, round + 1);
        running_one = !running_one;
        swaps += 1;
        generation += 1;
        daemon.wait_log("plugin tagger: swapped v", swaps, Duration::from_secs(30));
    }

    let pid_file = std::fs::read_to_string(root.join("tweetpipe.pid")).unwrap();
    assert_eq!(
        pid_file.trim(),
        pid.to_string(),
        "the daemon never restarted"
    );
    // VmHWM is the peak so far: taken before the exit, it covers every phase.
    let peak = daemon.peak_rss_kib().unwrap();
    println!("peak RSS through the swaps: {} MiB", peak / 1024);
    daemon.signal("TERM");
    let mut daemon = daemon;
    let status = daemon.wait_exit(Duration::from_secs(30));
    let log = daemon.stderr();
    assert!(status.success(), "exit {status:?}:\n{log}");
    assert!(!log.contains("panicked"), "{log}");
    assert!(peak < 300 * 1024, "peak RSS {} MiB", peak / 1024);
    assert!(log.contains("`init` failed: called exit(1)"), "{log}");
    assert!(
        log.contains("plugin tagger stdout: hostile-wasi: stdout line"),
        "{log}"
    );

    let (rows, letters) = outputs(&root);
    let mut reasons: HashMap<&str, usize> = HashMap::new();
    for letter in &letters {
        assert_eq!(letter["plugin"], "tagger", "{letter}");
        let error = letter["error"].as_str().unwrap();
        let reason = if error.contains("past the limit of 256 KiB") {
            "huge"
        } else if error.contains("called exit(1)") {
            "exit"
        } else if error.contains("past its limit of 8192 KiB per batch")
            && error.contains("max_result_mb")
        {
            "alias"
        } else {
            panic!("unexpected dead letter: {letter}")
        };
        *reasons.entry(reason).or_default() += 1;
    }
    assert!(
        reasons.get("huge") > Some(&0)
            && reasons.get("exit") > Some(&0)
            && reasons.get("alias") > Some(&0),
        "the huge, exiting and aliasing versions each failed posts: {reasons:?}\n{log}"
    );
    let shared = rows
        .values()
        .filter(|row| {
            row["text"]
                .as_str()
                .is_some_and(|text| text.len() == 4 << 20)
        })
        .count();
    assert!(
        shared > 0,
        "the aliasing version kept posts within its budget"
    );
    let mut untagged = 0;
    for row in rows.values() {
        match row["attrs"]["tag"].as_str() {
            Some("one" | "two") => {}
            None => untagged += 1,
            Some(other) => panic!("unknown tag {other}: {row}"),
        }
    }
    assert!(untagged > 0, "the hostile versions that keep posts ran");
    // The replay reads in order and the drain commits everything read.
    let read = rows.len() + letters.len();
    assert!(read > 1000, "only {read} posts went through");
    let lettered: HashSet<&str> = letters
        .iter()
        .map(|letter| letter["post_id"].as_str().unwrap())
        .collect();
    for id in &input[..read] {
        assert!(
            rows.contains_key(id) || lettered.contains(id.as_str()),
            "post {id} was lost"
        );
    }
    println!(
        "hostile swaps: {} rows ({untagged} untagged, {shared} with the shared 4 MiB text), dead letters {reasons:?}",
        rows.len()
    );
}
