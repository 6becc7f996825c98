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
    new_project_with(name, lang, &sdk())
}

/// [`new_project`] against the SDK folder `sdk`.
fn new_project_with(name: &str, lang: &str, sdk: &Path) -> (tempfile::TempDir, PathBuf) {
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
            .arg(sdk),
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
    build_and_check_rust(&project);
}

/// The files the package installs under `/usr/share/tweetpipe/sdk/`, copied
/// by the `.deb`'s asset list (daemon/Cargo.toml) into `root`; returns the SDK
/// folder there.
fn packaged_sdk(root: &Path) -> PathBuf {
    const SDK: &str = "usr/share/tweetpipe/sdk/";
    let daemon = Path::new(env!("CARGO_MANIFEST_DIR"));
    let manifest: toml::Table =
        toml::from_str(&std::fs::read_to_string(daemon.join("Cargo.toml")).unwrap()).unwrap();
    let assets = manifest["package"]["metadata"]["deb"]["assets"]
        .as_array()
        .unwrap();
    for asset in assets {
        let asset = asset.as_array().unwrap();
        let (source, dest) = (asset[0].as_str().unwrap(), asset[1].as_str().unwrap());
        if !dest.starts_with(SDK) {
            continue;
        }
        let sources: Vec<PathBuf> = match source.strip_suffix("*.rs") {
            Some(dir) => std::fs::read_dir(daemon.join(dir))
                .unwrap()
                .map(|entry| entry.unwrap().path())
                .filter(|path| path.extension().is_some_and(|ext| ext == "rs"))
                .collect(),
            None => vec![daemon.join(source)],
        };
        for source in sources {
            let target = match dest.ends_with('/') {
                true => root.join(dest).join(source.file_name().unwrap()),
                false => root.join(dest),
            };
            std::fs::create_dir_all(target.parent().unwrap()).unwrap();
            std::fs::copy(&source, &target)
                .unwrap_or_else(|error| panic!("{}: {error}", source.display()));
        }
    }
    root.join(SDK)
}

/// Issue 21: the package shipped no Rust SDK crate, so `plugin new --lang
/// rust` on an installed machine had nothing to build against. The package's
/// SDK folder, as its asset list lays it out, now builds a Rust plugin
/// outside any source tree.
#[test]
fn a_new_rust_plugin_builds_against_the_packaged_sdk() {
    let root = tempfile::tempdir().unwrap();
    let sdk = packaged_sdk(root.path());
    let (_dir, project) = new_project_with("only-portuguese", "rust", &sdk);
    let manifest = std::fs::read_to_string(project.join("Cargo.toml")).unwrap();
    assert!(
        manifest.contains(&sdk.join("rust/tweetpipe-plugin").display().to_string()),
        "{manifest}"
    );
    build_and_check_rust(&project);
}

/// The workspace the packaged SDK inherits from says what the source tree's
/// Cargo.toml says for every key its crates inherit.
#[test]
fn the_packaged_rust_sdk_inherits_what_the_source_tree_sets() {
    let read = |path: &Path| -> toml::Table {
        toml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
    };
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let tree = read(&repo.join("Cargo.toml"))["workspace"].clone();
    let shipped = read(&repo.join("packaging/sdk-rust-workspace.toml"))["workspace"].clone();
    for (key, value) in shipped["package"].as_table().unwrap() {
        assert_eq!(
            Some(value),
            tree["package"].get(key),
            "workspace.package.{key}"
        );
    }
    for (name, value) in shipped["dependencies"].as_table().unwrap() {
        let ours = &tree["dependencies"][name];
        match name.as_str() {
            // The same crate at its place in the package.
            "tweetpipe-plugin-macros" => assert_eq!(value["version"], ours["version"]),
            _ => assert_eq!(value, ours, "workspace.dependencies.{name}"),
        }
    }
    assert_eq!(shipped["lints"], tree["lints"], "workspace.lints");
    // Every workspace key the SDK's crates inherit is there.
    for crate_manifest in ["plugin-sdk/Cargo.toml", "plugin-sdk/macros/Cargo.toml"] {
        let manifest = read(&repo.join(crate_manifest));
        for (name, value) in manifest["dependencies"].as_table().unwrap() {
            if value.get("workspace").is_some() {
                assert!(
                    shipped["dependencies"].get(name).is_some(),
                    "{crate_manifest}: {name} is not in packaging/sdk-rust-workspace.toml"
                );
            }
        }
        for (key, value) in manifest["package"].as_table().unwrap() {
            if value.get("workspace").is_some() {
                assert!(
                    shipped["package"].get(key).is_some(),
                    "{crate_manifest}: package.{key} is not in packaging/sdk-rust-workspace.toml"
                );
            }
        }
    }
}

/// Builds the Rust project with the command its README gives, runs its tests
/// and its `test.sh`, and checks its verdicts.
fn build_and_check_rust(project: &Path) {
    let project = project.to_owned();
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
