//! `tweetpipe plugin new` in each language, followed as its README says: the
//! project builds with the one build command, its own test passes, and the
//! plugin keeps and labels what its config asks for.
//!
//! The Python and JavaScript toolchains are the pinned ones `make test`
//! installs (`make plugin-tools`); the test fails, never skips, without them.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;

use support::wasm::target_dir;

const BIN: &str = env!("CARGO_BIN_EXE_tweetpipe");

fn sdk() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugin-sdk")
}

fn tool(relative: &str) -> PathBuf {
    let path = target_dir().join("tools").join(relative);
    assert!(
        path.exists(),
        "{} is missing: run `make plugin-tools` before this test",
        path.display()
    );
    path
}

/// Runs `command` in `dir` with the shared plugin cache; panics with its output on failure.
fn run(dir: &Path, command: &mut Command) -> String {
    let output = command
        .current_dir(dir)
        .env(
            "XDG_CACHE_HOME",
            target_dir().join("tmp/plugin-languages-cache"),
        )
        .env("TWEETPIPE", BIN)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{command:?}:\n{text}");
    text
}

/// `plugin new NAME --lang LANG --kind filter-map` in a temp dir: (the dir, the project).
fn new_project(name: &str, lang: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let printed = run(
        dir.path(),
        Command::new(BIN)
            .args([
                "plugin",
                "new",
                name,
                "--lang",
                lang,
                "--kind",
                "filter-map",
                "--sdk",
            ])
            .arg(sdk()),
    );
    let project = dir.path().join(name);
    let readme = std::fs::read_to_string(project.join("README.md")).unwrap();
    for file in ["README.md", "sample.jsonl", "test.sh"] {
        assert!(project.join(file).is_file(), "{file} missing:\n{printed}");
    }
    // The commands printed are the README's.
    for line in printed.lines().skip(3) {
        assert!(
            readme.contains(line.trim()),
            "{line:?} not in the README:\n{readme}"
        );
    }
    (dir, project)
}

/// The verdicts of the built plugin with `lang = "pt"`: every kept post is in
/// Portuguese and labelled, and some were dropped.
fn check_verdicts(project: &Path, wasm: &str) {
    let output = run(
        project,
        Command::new(BIN).args([
            "plugin",
            "run",
            wasm,
            "--plugin-config",
            r#"{"lang": "pt", "label": "seen"}"#,
            "--input",
            "sample.jsonl",
        ]),
    );
    let verdicts: Vec<serde_json::Value> = output
        .lines()
        .filter(|line| line.starts_with('{'))
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let kept: Vec<_> = verdicts.iter().filter(|v| v["action"] == "keep").collect();
    assert!(!kept.is_empty() && kept.len() < verdicts.len(), "{output}");
    for verdict in kept {
        assert_eq!(verdict["post"]["lang"], "pt", "{verdict}");
        assert_eq!(verdict["post"]["attrs"]["label"], "seen", "{verdict}");
    }
}

#[test]
fn a_new_python_plugin_builds_and_passes_its_test() {
    let (_dir, project) = new_project("only-portuguese", "python");
    let componentize = format!(
        "COMPONENTIZE_PY={}",
        tool("py/bin/componentize-py").display()
    );
    run(&project, Command::new("make").arg(&componentize));
    let test = run(&project, Command::new("make").args(["test", &componentize]));
    assert!(test.contains("ok: "), "{test}");
    check_verdicts(&project, "only_portuguese.wasm");
}

#[test]
fn a_new_javascript_plugin_builds_and_passes_its_test() {
    tool("js/node_modules/.bin/componentize-js");
    let (_dir, project) = new_project("only-portuguese", "js");
    run(&project, &mut Command::new("make"));
    let test = run(&project, Command::new("make").arg("test"));
    assert!(test.contains("ok: "), "{test}");
    check_verdicts(&project, "only_portuguese.wasm");
}

#[test]
fn a_new_rust_plugin_builds_and_passes_its_tests() {
    let (_dir, project) = new_project("only-portuguese", "rust");
    // Its own target directory, kept between runs; the build and the host
    // test share the release profile (so the proc-macros are built once),
    // with LTO off and opt-level 1 here: the template's size settings are for
    // users, and would make this test minutes slower.
    let target = target_dir().join("tmp/plugin-new-rust");
    let cargo = |args: &[&str]| {
        let mut command = Command::new("cargo");
        command
            .args(args)
            .env("CARGO_TARGET_DIR", &target)
            .env("CARGO_PROFILE_RELEASE_LTO", "off")
            .env("CARGO_PROFILE_RELEASE_CODEGEN_UNITS", "16")
            .env("CARGO_PROFILE_RELEASE_OPT_LEVEL", "1");
        command
    };
    run(
        &project,
        &mut cargo(&["build", "--release", "--target", "wasm32-wasip2"]),
    );
    run(&project, &mut cargo(&["test", "--release"]));
    let wasm = target.join("wasm32-wasip2/release/only_portuguese.wasm");
    let built = project.join("target/wasm32-wasip2/release/only_portuguese.wasm");
    std::fs::create_dir_all(built.parent().unwrap()).unwrap();
    std::fs::copy(&wasm, &built).unwrap();
    let test = run(&project, &mut Command::new("./test.sh"));
    assert!(test.contains("ok: "), "{test}");
    check_verdicts(
        &project,
        "target/wasm32-wasip2/release/only_portuguese.wasm",
    );
}

#[test]
fn plugin_new_refuses_bad_names_existing_folders_and_folders_without_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    let attempt = |args: &[&str]| {
        let output = Command::new(BIN)
            .current_dir(dir.path())
            .args(["plugin", "new"])
            .args(args)
            .output()
            .unwrap();
        (
            output.status.code(),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let sdk = sdk().display().to_string();
    let (code, stderr) = attempt(&["Bad Name", "--sdk", &sdk]);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("use lower-case letters"), "{stderr}");
    std::fs::create_dir(dir.path().join("taken")).unwrap();
    let (code, stderr) = attempt(&["taken", "--sdk", &sdk]);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("already exists"), "{stderr}");
    let (code, stderr) = attempt(&["fresh", "--sdk", "/"]);
    assert_eq!(code, Some(2));
    assert!(stderr.contains("no wit/plugin.wit"), "{stderr}");
    assert!(!dir.path().join("fresh").exists());
}
