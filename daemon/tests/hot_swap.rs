//! Plugin hot swap under load, on the real binary: a replay runs at a steady
//! rate while a plugin's file is replaced 20 times between two versions (copied
//! over, `install -m 644`, written to a temporary file and renamed), two broken
//! versions are dropped in, and SIGHUP / `tweetpipe reload` reorder and
//! re-configure the chain. Afterwards nothing is lost or doubled, every row was
//! tagged by exactly one version, the broken versions processed nothing, and the
//! process never restarted.
//!
//! The `.wasm` files are built by `make plugins`; the test fails (never skips)
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
