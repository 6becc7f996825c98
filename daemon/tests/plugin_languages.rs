//! Python and JavaScript plugins, built from `plugins/examples/*/python` and
//! `*/js` by `make plugins` (componentize-py and componentize-js): they give
//! the Rust examples' verdicts and attributes on the sample posts, the sandbox
//! contains a Python loop, memory bomb and exception, and a running daemon
//! swaps between the three languages without losing a post.
//!
//! The components are 12-20 MB and take tens of seconds to compile in a debug
//! build, so the tests share one compiled-module cache under the target
//! directory and compile each component once.

mod support;

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::cli::sample_posts;
use support::wasm::{plugin, target_dir};

const BIN: &str = env!("CARGO_BIN_EXE_tweetpipe");
const KEYWORDS: &str = r##"{"keywords": ["golaço", "#covid19", "LISBOA", "🏆"]}"##;

/// The compiled-module cache these tests share (`XDG_CACHE_HOME` of every run).
fn cache_home() -> PathBuf {
    target_dir().join("tmp/plugin-languages-cache")
}

/// `plugin`, compiled into the shared cache once, whichever test asks first
/// (other components compile meanwhile).
fn warm(name: &str) -> PathBuf {
    static WARMED: Mutex<BTreeMap<String, Arc<Mutex<bool>>>> = Mutex::new(BTreeMap::new());
    let path = plugin(name);
    let slot = WARMED
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
        .entry(name.to_owned())
        .or_default()
        .clone();
    let mut warmed = slot.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if !*warmed {
        let output = Command::new(BIN)
            .args(["plugin", "check"])
            .arg(&path)
            .env("XDG_CACHE_HOME", cache_home())
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "plugin check {name}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        *warmed = true;
    }
    path
}

/// `plugin run` of `name` with `config` on `input`: (stdout lines, stderr).
fn plugin_run(name: &str, config: &str, input: &Path) -> (Vec<String>, String) {
    let output = Command::new(BIN)
        .args(["plugin", "run"])
        .arg(warm(name))
        .args(["--plugin-config", config, "--input"])
        .arg(input)
        .env("XDG_CACHE_HOME", cache_home())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "plugin run {name}: {stderr}");
    let stdout = String::from_utf8(output.stdout).unwrap();
    (stdout.lines().map(str::to_owned).collect(), stderr)
}

/// A verdict line without the `plugin` that gave it (the names differ by language).
fn verdict(line: &str) -> serde_json::Value {
    let mut value: serde_json::Value = serde_json::from_str(line).unwrap();
    value.as_object_mut().unwrap().remove("plugin");
    value
}

#[test]
fn python_and_javascript_examples_give_the_rust_verdicts_and_attributes() {
    let posts = sample_posts();
    for (example, config) in [
        ("keyword_filter", KEYWORDS),
        ("only_english_with_links", "{}"),
    ] {
        let (rust, _) = plugin_run(example, config, &posts);
        let kept = rust
            .iter()
            .filter(|line| line.contains(r#""action":"keep""#));
        assert!(
            kept.count() > 100,
            "{example}: the comparison needs kept posts"
        );
        assert!(rust.iter().any(|line| line.contains(r#""action":"drop""#)));
        if example == "keyword_filter" {
            assert!(
                rust.iter()
                    .any(|line| line.contains(r#""keyword":"golaço""#))
            );
        }
        for language in ["py", "js"] {
            let name = format!("{example}_{language}");
            let (other, stderr) = plugin_run(&name, config, &posts);
            assert_eq!(other.len(), rust.len(), "{name}: {stderr}");
            for (ours, theirs) in rust.iter().zip(&other) {
                assert_eq!(verdict(ours), verdict(theirs), "{name} differs from Rust");
            }
        }
    }
}

#[test]
fn python_loops_memory_bombs_and_exceptions_fail_only_their_post() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("posts.jsonl");
    let lines: Vec<String> = std::fs::read_to_string(sample_posts())
        .unwrap()
        .lines()
        .filter(|line| line.contains(r#""text""#))
        .take(5)
        .map(str::to_owned)
        .collect();
    std::fs::write(&input, lines.join("\n") + "\n").unwrap();
    let poison = tweetpipe::post::decode(&lines[1]).unwrap().id;
    for (mode, reason) in [
        ("loop", "exceeded its CPU deadline of 1000 ms".to_owned()),
        ("memory", "exceeded its memory cap of 64 MiB".to_owned()),
        ("raise", format!("ValueError: post {poison} is poison")),
    ] {
        let config = format!(r#"{{"mode": "{mode}", "poison": "{poison}"}}"#);
        let (verdicts, stderr) = plugin_run("hostile_python", &config, &input);
        assert!(
            stderr.contains("5 posts through hostile_python: 4 kept, 0 dropped, 1 failed"),
            "{mode}: {stderr}"
        );
        let failed = verdict(&verdicts[1]);
        assert_eq!(failed["action"], "fail", "{mode}: {failed}");
        assert_eq!(failed["reason"], reason.as_str(), "{mode}");
    }
}

/// The ids of the rows in the SQLite sink at `db`.
fn committed_ids(db: &Path) -> Vec<String> {
    let connection = rusqlite::Connection::open(db).unwrap();
    let mut select = connection.prepare("SELECT id FROM posts").unwrap();
    select
        .query_map([], |row| row.get::<_, String>(0))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

#[test]
fn a_running_daemon_swaps_rust_python_and_javascript_without_losing_a_post() {
    let (rust, python, javascript) = (
        warm("keyword_filter"),
        warm("keyword_filter_py"),
        warm("keyword_filter_js"),
    );
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("plugins")).unwrap();
    let slot = root.join("plugins/keywords.wasm");
    std::fs::copy(&rust, &slot).unwrap();
    std::fs::write(
        root.join("tweetpipe.toml"),
        format!(
            r##"[source.replay]
path = "{posts}"
rate = 300.0

[sink.sqlite]
path = "{db}"

[batch]
max_rows = 50
max_age_ms = 50

[process]
chain_batch = 16
watch_plugins = true
watch_debounce_ms = 150

[dead_letter]
path = "{dead}"

[metrics]
enabled = false

[[plugins]]
name = "keywords"
path = "{slot}"
config = {{ keywords = ["golaço", "#covid19", "LISBOA", "🏆"] }}
"##,
            posts = sample_posts().display(),
            db = root.join("posts.db").display(),
            dead = root.join("dead-letters.jsonl").display(),
            slot = slot.display(),
        ),
    )
    .unwrap();
    let stderr_path = root.join("stderr.log");
    let child = Command::new(BIN)
        .args(["run", "--config"])
        .arg(root.join("tweetpipe.toml"))
        .env("RUST_LOG", "info")
        .env("XDG_CACHE_HOME", cache_home())
        .env_remove("NOTIFY_SOCKET")
        .env_remove("JOURNAL_STREAM")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&stderr_path).unwrap())
        .spawn()
        .unwrap();
    let log = || std::fs::read_to_string(&stderr_path).unwrap_or_default();
    let wait_log = |needle: &str, count: usize| {
        let deadline = Instant::now() + Duration::from_secs(60);
        while log().matches(needle).count() < count {
            assert!(
                Instant::now() < deadline,
                "no {count}× {needle:?}:\n{}",
                log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    };
    wait_log("loaded plugin keywords", 1);
    std::thread::sleep(Duration::from_millis(1500));
    for (swaps, next) in [(1, &python), (2, &javascript)] {
        let temp = slot.with_extension("part");
        std::fs::copy(next, &temp).unwrap();
        std::fs::rename(&temp, &slot).unwrap();
        wait_log("plugin keywords: swapped", swaps);
        std::thread::sleep(Duration::from_millis(1500));
    }
    let output = child.wait_with_output().unwrap();
    let summary = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{summary}\n{}", log());

    // The three give the same verdicts, so whenever the swaps landed the rows
    // are the posts the Rust plugin keeps, each once.
    let (verdicts, _) = plugin_run("keyword_filter", KEYWORDS, &sample_posts());
    let expected: HashSet<String> = verdicts
        .iter()
        .map(|line| verdict(line))
        .filter(|verdict| verdict["action"] == "keep")
        .map(|verdict| verdict["id"].as_str().unwrap().to_owned())
        .collect();
    let committed = committed_ids(&root.join("posts.db"));
    let unique: HashSet<String> = committed.iter().cloned().collect();
    assert_eq!(unique.len(), committed.len(), "a post was committed twice");
    assert_eq!(unique, expected, "{summary}");
}

#[test]
fn plugin_check_names_the_language_and_toolchain_of_each_example() {
    for (name, language, built_by) in [
        (
            "keyword_filter",
            "language: Rust\n",
            "built by: wit-component ",
        ),
        (
            "keyword_filter_py",
            "language: Python (componentize-py)\n",
            "built by: wit-component ",
        ),
        (
            "keyword_filter_js",
            "language: JavaScript (ComponentizeJS 0.23.0)\n",
            "ComponentizeJS 0.23.0",
        ),
    ] {
        let output = Command::new(BIN)
            .args(["plugin", "check"])
            .arg(warm(name))
            .env("XDG_CACHE_HOME", cache_home())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "{name}: {stdout}");
        assert!(stdout.contains(language), "{name}:\n{stdout}");
        let built = stdout.lines().find(|line| line.starts_with("built by:"));
        assert!(
            built.is_some_and(|line| line.contains(built_by)),
            "{name}:\n{stdout}"
        );
    }
}

/// The fenced blocks of `markdown` whose info string is `lang`, in order.
fn code_blocks(markdown: &str, lang: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in markdown.lines() {
        let trimmed = line.trim();
        match &mut current {
            None if trimmed.strip_prefix("```") == Some(lang) => current = Some(String::new()),
            Some(block) if trimmed == "```" => {
                blocks.push(std::mem::take(block));
                current = None;
            }
            Some(block) => {
                block.push_str(line);
                block.push('\n');
            }
            None => {}
        }
    }
    blocks
}

/// A pinned toolchain under the target directory (`make plugin-tools`).
fn tool(relative: &str) -> PathBuf {
    let path = target_dir().join("tools").join(relative);
    assert!(
        path.exists(),
        "{} is missing: run `make plugin-tools` before this test",
        path.display()
    );
    path
}

/// `source` (a Python or JavaScript README block) built into a component,
/// kept under the target directory by a hash of the source, the SDK and the
/// contract, so only a changed block is built again.
fn build_snippet(lang: &str, source: &str) -> PathBuf {
    use sha2::Digest;
    let sdk = Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugin-sdk");
    let (module, sdk_file) = match lang {
        "python" => ("app.py", sdk.join("python/tweetpipe_plugin/__init__.py")),
        _ => ("app.js", sdk.join("js/tweetpipe_plugin.js")),
    };
    let mut hash = sha2::Sha256::new();
    for part in [
        source.as_bytes(),
        &std::fs::read(&sdk_file).unwrap(),
        &std::fs::read(sdk.join("wit/plugin.wit")).unwrap(),
    ] {
        hash.update((part.len() as u64).to_le_bytes());
        hash.update(part);
    }
    let key: String = hash.finalize()[..8]
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    let out = target_dir().join(format!("tmp/readme-snippets/{lang}-{key}.wasm"));
    if out.exists() {
        return out;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(module), source).unwrap();
    let partial = out.with_extension("part");
    std::fs::create_dir_all(out.parent().unwrap()).unwrap();
    let mut command = match lang {
        "python" => {
            let mut command = Command::new(tool("py/bin/componentize-py"));
            command
                .arg("-d")
                .arg(sdk.join("wit"))
                .args(["-w", "plugin", "componentize", "-p"])
                .arg(dir.path())
                .arg("-p")
                .arg(sdk.join("python"))
                .arg("app");
            command
        }
        _ => {
            std::fs::copy(&sdk_file, dir.path().join("tweetpipe_plugin.js")).unwrap();
            let mut command = Command::new(tool("js/node_modules/.bin/componentize-js"));
            command
                .arg(dir.path().join(module))
                .arg("--wit")
                .arg(sdk.join("wit"))
                .args(["-n", "plugin", "-d", "http", "-d", "fetch-event"]);
            command
        }
    };
    let output = command.arg("-o").arg(&partial).output().unwrap();
    assert!(
        output.status.success(),
        "building the README's {lang} block:\n{source}\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    std::fs::rename(&partial, &out).unwrap();
    out
}

/// Every Python and JavaScript example in plugin-sdk/README.md (the Rust ones
/// are its doctests) builds with the pinned toolchain, loads, and runs on
/// sample posts without failing one.
#[test]
fn every_python_and_javascript_example_in_the_sdk_readme_builds_and_runs() {
    let readme = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugin-sdk/README.md"),
    )
    .unwrap();
    let blocks: Vec<(&str, String)> = ["python", "js"]
        .into_iter()
        .flat_map(|lang| {
            code_blocks(&readme, lang)
                .into_iter()
                .map(move |b| (lang, b))
        })
        .collect();
    for lang in ["python", "js"] {
        assert!(
            blocks.iter().filter(|(l, _)| *l == lang).count() >= 2,
            "the README's {lang} blocks were not found"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("posts.jsonl");
    let lines: Vec<String> = std::fs::read_to_string(sample_posts())
        .unwrap()
        .lines()
        .take(50)
        .map(str::to_owned)
        .collect();
    std::fs::write(&input, lines.join("\n") + "\n").unwrap();
    // Python and JavaScript build side by side.
    std::thread::scope(|scope| {
        let builds: Vec<_> = ["python", "js"]
            .into_iter()
            .map(|lang| {
                let blocks = &blocks;
                let input = &input;
                scope.spawn(move || {
                    for (_, source) in blocks.iter().filter(|(l, _)| *l == lang) {
                        let wasm = build_snippet(lang, source);
                        let check = Command::new(BIN)
                            .args(["plugin", "check"])
                            .arg(&wasm)
                            .env("XDG_CACHE_HOME", cache_home())
                            .output()
                            .unwrap();
                        assert!(
                            check.status.success(),
                            "plugin check of the README's {lang} block\n{source}\n{}",
                            String::from_utf8_lossy(&check.stderr)
                        );
                        let language = match lang {
                            "python" => "language: Python",
                            _ => "language: JavaScript",
                        };
                        assert!(
                            String::from_utf8_lossy(&check.stdout).contains(language),
                            "{}",
                            String::from_utf8_lossy(&check.stdout)
                        );
                        let output = Command::new(BIN)
                            .args(["plugin", "run"])
                            .arg(&wasm)
                            .arg("--input")
                            .arg(input)
                            .env("XDG_CACHE_HOME", cache_home())
                            .output()
                            .unwrap();
                        let stdout = String::from_utf8_lossy(&output.stdout);
                        let stderr = String::from_utf8_lossy(&output.stderr);
                        assert!(output.status.success(), "{source}\n{stderr}");
                        assert!(
                            stdout.lines().count() >= 40 && !stdout.contains(r#""action":"fail""#),
                            "the README's {lang} block\n{source}\nfailed posts:\n{stdout}\n{stderr}"
                        );
                    }
                })
            })
            .collect();
        for build in builds {
            if let Err(panic) = build.join() {
                std::panic::resume_unwind(panic);
            }
        }
    });
}
