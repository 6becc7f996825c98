//! `tweetpipe plugin new`: a ready plugin project in Rust, Python or
//! JavaScript (source, build file, sample posts, a test, a README), built
//! against the SDK of the installed package or of a clone.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::sample::{SampleOptions, write_sample};

/// Where the installed package puts the SDKs and the contract.
pub const INSTALLED_SDK: &str = "/usr/share/tweetpipe/sdk";

/// The pinned plugin toolchains the templates name.
pub const COMPONENTIZE_PY_VERSION: &str = "0.25.1";

/// A language a project can be written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    Rust,
    Python,
    Js,
}

/// What the generated plugin does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    /// Keeps the posts in the language `config.lang` (default "en"), drops the rest.
    Filter,
    /// Keeps every post, setting the `label` attribute to `config.label`.
    Map,
    /// Keeps the posts in `config.lang`, labelled with `config.label`; drops the rest.
    FilterMap,
}

/// Why a project could not be written.
#[derive(Debug, thiserror::Error)]
pub enum NewError {
    #[error(
        "plugin name {0:?}: use lower-case letters, digits and `-` or `_`, starting with a letter"
    )]
    Name(String),
    #[error("{0} already exists: choose another name or remove it")]
    Exists(PathBuf),
    #[error(
        "no tweetpipe SDK found (looked for {INSTALLED_SDK} and a plugin-sdk/ folder beside this binary's build): pass --sdk DIR, the plugin-sdk folder of a tweetpipe clone or {INSTALLED_SDK} of the package"
    )]
    NoSdk,
    #[error("--sdk {0}: it holds no wit/plugin.wit, so it is not a tweetpipe SDK folder")]
    NotAnSdk(PathBuf),
    #[error(
        "{0} has the contract but not the Rust SDK crate (neither Cargo.toml nor rust/tweetpipe-plugin/ in it): reinstall the tweetpipe package, which ships it under /usr/share/tweetpipe/sdk/rust/, or pass --sdk with the plugin-sdk folder of a tweetpipe source tree"
    )]
    NoRustSdk(PathBuf),
    #[error("writing {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// What `plugin new` wrote.
#[derive(Debug)]
pub struct Project {
    pub dir: PathBuf,
    /// The component the build command writes, relative to `dir`.
    pub wasm: String,
    /// The commands the README gives, in order.
    pub commands: Vec<String>,
}

/// The SDK folder: `explicit`, else the installed package's, else the clone
/// this binary was built in (`target/<profile>/tweetpipe` → `plugin-sdk/`).
pub fn find_sdk(explicit: Option<&Path>) -> Result<PathBuf, NewError> {
    let is_sdk = |dir: &Path| dir.join("wit/plugin.wit").is_file();
    if let Some(dir) = explicit {
        let dir = std::path::absolute(dir).unwrap_or_else(|_| dir.to_owned());
        return match is_sdk(&dir) {
            true => Ok(dir),
            false => Err(NewError::NotAnSdk(dir)),
        };
    }
    if is_sdk(Path::new(INSTALLED_SDK)) {
        return Ok(PathBuf::from(INSTALLED_SDK));
    }
    let exe = std::env::current_exe().ok();
    exe.iter()
        .flat_map(|exe| exe.ancestors().skip(1).take(4))
        .map(|dir| dir.join("plugin-sdk"))
        .find(|dir| is_sdk(dir))
        .ok_or(NewError::NoSdk)
}

/// The Rust SDK crate of the SDK folder `sdk`: the folder itself in a source
/// tree (`plugin-sdk/`), `rust/tweetpipe-plugin` in the package's.
pub fn rust_crate(sdk: &Path) -> Option<PathBuf> {
    [sdk.to_owned(), sdk.join("rust/tweetpipe-plugin")]
        .into_iter()
        .find(|dir| dir.join("Cargo.toml").is_file() && dir.join("src/lib.rs").is_file())
}

/// Writes the project `name` under `parent`.
pub fn create(
    parent: &Path,
    name: &str,
    lang: Lang,
    kind: Kind,
    sdk: &Path,
) -> Result<Project, NewError> {
    let valid = name.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if !valid {
        return Err(NewError::Name(name.to_owned()));
    }
    let rust_crate = match lang {
        Lang::Rust => Some(rust_crate(sdk).ok_or_else(|| NewError::NoRustSdk(sdk.to_owned()))?),
        Lang::Python | Lang::Js => None,
    };
    let dir = parent.join(name);
    if dir.exists() {
        return Err(NewError::Exists(dir));
    }
    let ident = name.replace('-', "_");
    let wasm = match lang {
        Lang::Rust => format!("target/wasm32-wasip2/release/{ident}.wasm"),
        Lang::Python | Lang::Js => format!("{ident}.wasm"),
    };
    let build = match lang {
        Lang::Rust => "cargo build --release --target wasm32-wasip2".to_owned(),
        Lang::Python | Lang::Js => "make".to_owned(),
    };
    let commands = vec![
        build,
        format!(
            "tweetpipe plugin run {wasm} --plugin-config '{{\"lang\": \"en\", \"label\": \"checked\"}}' --input sample.jsonl"
        ),
        format!("sudo cp {wasm} /var/lib/tweetpipe/plugins/"),
    ];
    let sdk_text = sdk.display().to_string();
    let mut files: Vec<(String, String)> = Vec::new();
    match lang {
        Lang::Rust => {
            let crate_dir = rust_crate.as_deref().unwrap_or(sdk).display().to_string();
            files.push(("Cargo.toml".into(), rust_manifest(name, &crate_dir)));
            files.push(("src/lib.rs".into(), rust_source(name, kind)));
            files.push((".gitignore".into(), "target/\n".into()));
        }
        Lang::Python => {
            files.push(("app.py".into(), python_source(name, kind)));
            files.push(("Makefile".into(), python_makefile(&ident, &sdk_text)));
            files.push((".gitignore".into(), "*.wasm\n__pycache__/\n".into()));
        }
        Lang::Js => {
            files.push(("app.js".into(), js_source(name, kind)));
            files.push(("Makefile".into(), js_makefile(&ident, &sdk_text)));
            files.push(("package.json".into(), js_package(name)));
            files.push((".gitignore".into(), "*.wasm\nnode_modules/\n".into()));
            let sdk_module = sdk.join("js/tweetpipe_plugin.js");
            let module =
                std::fs::read_to_string(&sdk_module).map_err(|source| NewError::Write {
                    path: sdk_module.clone(),
                    source,
                })?;
            files.push(("tweetpipe_plugin.js".into(), module));
        }
    }
    files.push((
        "README.md".into(),
        readme(name, lang, kind, &commands, &ident),
    ));
    files.push(("test.sh".into(), test_script(&wasm, kind)));

    for (relative, text) in &files {
        write(&dir.join(relative), text.as_bytes())?;
    }
    let mut sample = Vec::new();
    let options = SampleOptions {
        count: 200,
        seed: 1,
        ..SampleOptions::default()
    };
    write_sample(&options, &mut sample).map_err(|source| NewError::Write {
        path: dir.join("sample.jsonl"),
        source,
    })?;
    write(&dir.join("sample.jsonl"), &sample)?;
    set_executable(&dir.join("test.sh"))?;
    Ok(Project {
        dir,
        wasm,
        commands,
    })
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), NewError> {
    let error = |source| NewError::Write {
        path: path.to_owned(),
        source,
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(error)?;
    }
    std::fs::write(path, bytes).map_err(error)
}

fn set_executable(path: &Path) -> Result<(), NewError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).map_err(|source| {
        NewError::Write {
            path: path.to_owned(),
            source,
        }
    })
}

fn what(kind: Kind) -> &'static str {
    match kind {
        Kind::Filter => {
            "Keeps the posts in the language `config.lang` (default \"en\"); drops the rest."
        }
        Kind::Map => {
            "Keeps every post, with the attribute `label` set to `config.label` (default \"checked\")."
        }
        Kind::FilterMap => {
            "Keeps the posts in the language `config.lang` (default \"en\"), with the attribute `label` set to `config.label` (default \"checked\"); drops the rest."
        }
    }
}

fn rust_manifest(name: &str, sdk: &str) -> String {
    format!(
        r#"[package]
name = "{name}"
version = "0.1.0"
edition = "2024"
publish = false

[lib]
crate-type = ["cdylib"]

[dependencies]
# The SDK beside the contract it builds for (the package's or a clone's).
tweetpipe-plugin = {{ path = "{sdk}" }}

[profile.release]
opt-level = "s"
lto = true
codegen-units = 1
strip = true
"#
    )
}

fn rust_source(name: &str, kind: Kind) -> String {
    let ident = name.replace('-', "_");
    let mut source = format!("//! {name}: {}\n\n", what(kind));
    source.push_str(
        r#"use std::sync::OnceLock;

use tweetpipe_plugin::prelude::*;

static LANG: OnceLock<String> = OnceLock::new();
static LABEL: OnceLock<String> = OnceLock::new();

#[init]
fn init(config: &Config) -> Result<()> {
    let _ = LANG.set(config.get_or("lang", "en".to_owned())?);
    let _ = LABEL.set(config.get_or("label", "checked".to_owned())?);
    Ok(())
}

"#,
    );
    let _ = match kind {
        Kind::Filter => write!(
            source,
            "#[filter(reads(lang))]\nfn {ident}(post: &Post) -> bool {{\n    LANG.get().is_some_and(|lang| post.lang == *lang)\n}}\n"
        ),
        Kind::Map => write!(
            source,
            "#[map]\nfn {ident}(_post: &Post) -> Changes {{\n    let label = LABEL.get().map_or(\"checked\", String::as_str);\n    Changes::new().with_attr(\"label\", label)\n}}\n"
        ),
        Kind::FilterMap => write!(
            source,
            "#[filter_map(reads(lang))]\nfn {ident}(mut post: Post) -> Option<Post> {{\n    if LANG.get().is_none_or(|lang| post.lang != *lang) {{\n        return None;\n    }}\n    post.set_attr(\"label\", LABEL.get().map_or(\"checked\", String::as_str));\n    Some(post)\n}}\n"
        ),
    };
    source.push_str(
        r##"
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_is_read() {
        init(&Config::from_json(r#"{"lang": "pt", "label": "seen"}"#).unwrap()).unwrap();
        assert_eq!(LANG.get().unwrap(), "pt");
        assert_eq!(LABEL.get().unwrap(), "seen");
    }
}
"##,
    );
    source
}

fn python_source(name: &str, kind: Kind) -> String {
    let ident = name.replace('-', "_");
    let (imports, body) = match kind {
        Kind::Filter => (
            "Post, filter, init",
            format!(
                "@filter(name=\"{name}\", reads=[\"lang\"])\ndef {ident}(post: Post) -> bool:\n    return post.lang == SETTINGS[\"lang\"]\n"
            ),
        ),
        Kind::Map => (
            "Changes, Post, init, map",
            format!(
                "@map(name=\"{name}\")\ndef {ident}(post: Post) -> Changes:\n    return Changes().set_attr(\"label\", SETTINGS[\"label\"])\n"
            ),
        ),
        Kind::FilterMap => (
            "Changes, Post, filter_map, init",
            format!(
                "@filter_map(name=\"{name}\", reads=[\"lang\"])\ndef {ident}(post: Post):\n    if post.lang != SETTINGS[\"lang\"]:\n        return None\n    return Changes().set_attr(\"label\", SETTINGS[\"label\"])\n"
            ),
        ),
    };
    format!(
        r#""""{name}: {what}"""

from tweetpipe_plugin import {imports}

SETTINGS = {{"lang": "en", "label": "checked"}}


@init
def setup(config: dict) -> None:
    for key in ("lang", "label"):
        if key in config:
            if not isinstance(config[key], str):
                raise ValueError(f"config.{{key}} must be a string")
            SETTINGS[key] = config[key]


{body}"#,
        what = what(kind)
    )
}

fn python_makefile(ident: &str, sdk: &str) -> String {
    format!(
        r#"# Build: `make` (needs componentize-py {COMPONENTIZE_PY_VERSION}: pip install componentize-py=={COMPONENTIZE_PY_VERSION}).
# Test: `make test`.
SDK             ?= {sdk}
COMPONENTIZE_PY ?= componentize-py
TWEETPIPE       ?= tweetpipe

{ident}.wasm: app.py
	$(COMPONENTIZE_PY) -d $(SDK)/wit -w plugin componentize -p . -p $(SDK)/python app -o $@

test: {ident}.wasm
	TWEETPIPE=$(TWEETPIPE) ./test.sh

.PHONY: test
"#
    )
}

fn js_source(name: &str, kind: Kind) -> String {
    let ident = name.replace('-', "_");
    let (imports, body) = match kind {
        Kind::Filter => (
            "filter, init",
            format!(
                "export const processor = filter(\n  function {ident}(post) {{\n    return post.lang === settings.lang;\n  }},\n  {{ name: \"{name}\", reads: [\"lang\"] }},\n);\n"
            ),
        ),
        Kind::Map => (
            "Changes, init, map",
            format!(
                "export const processor = map(\n  function {ident}(post) {{\n    return new Changes().set_attr(\"label\", settings.label);\n  }},\n  {{ name: \"{name}\" }},\n);\n"
            ),
        ),
        Kind::FilterMap => (
            "Changes, filter_map, init",
            format!(
                "export const processor = filter_map(\n  function {ident}(post) {{\n    if (post.lang !== settings.lang) return null;\n    return new Changes().set_attr(\"label\", settings.label);\n  }},\n  {{ name: \"{name}\", reads: [\"lang\"] }},\n);\n"
            ),
        ),
    };
    format!(
        r#"// {name}: {what}

import {{ {imports} }} from "./tweetpipe_plugin.js";

const settings = {{ lang: "en", label: "checked" }};

init(function (config) {{
  for (const key of ["lang", "label"]) {{
    if (config[key] === undefined) continue;
    if (typeof config[key] !== "string") throw new Error(`config.${{key}} must be a string`);
    settings[key] = config[key];
  }}
}});

{body}"#,
        what = what(kind)
    )
}

fn js_makefile(ident: &str, sdk: &str) -> String {
    format!(
        r#"# Build: `make` (installs the pinned componentize-js with npm the first time).
# Test: `make test`.
SDK       ?= {sdk}
TWEETPIPE ?= tweetpipe

{ident}.wasm: app.js tweetpipe_plugin.js node_modules/.bin/componentize-js
	node_modules/.bin/componentize-js app.js --wit $(SDK)/wit -n plugin -d http -d fetch-event -o $@

node_modules/.bin/componentize-js: package.json
	npm install --no-audit --no-fund
	touch $@

test: {ident}.wasm
	TWEETPIPE=$(TWEETPIPE) ./test.sh

.PHONY: test
"#
    )
}

fn js_package(name: &str) -> String {
    format!(
        r#"{{
  "name": "{name}",
  "version": "0.1.0",
  "private": true,
  "type": "module",
  "devDependencies": {{
    "@bytecodealliance/componentize-js": "0.23.0",
    "@bytecodealliance/preview2-shim": "0.25.0"
  }}
}}
"#
    )
}

fn test_script(wasm: &str, kind: Kind) -> String {
    let dropped = match kind {
        Kind::Map => {
            "test \"$dropped\" -eq 0 || fail \"a map drops nothing, but $dropped posts were dropped\""
        }
        Kind::Filter | Kind::FilterMap => "test \"$dropped\" -gt 0 || fail \"no post was dropped\"",
    };
    let labelled = match kind {
        Kind::Filter => "",
        Kind::Map | Kind::FilterMap => {
            "grep -q '\"label\":\"seen\"' verdicts.jsonl || fail \"no kept post has the label from the config\"\n"
        }
    };
    let language = match kind {
        Kind::Map => "",
        Kind::Filter | Kind::FilterMap => {
            "grep '\"action\":\"keep\"' verdicts.jsonl | grep -v '\"lang\":\"pt\"' | grep -q . && fail \"a kept post is not in Portuguese\"\n"
        }
    };
    format!(
        r#"#!/bin/sh
# The plugin on sample.jsonl (written by `tweetpipe sample`, with malformed,
# blank and duplicate lines on purpose): some posts kept, the config read.
set -eu
fail() {{ echo "test failed: $1" >&2; exit 1; }}
"${{TWEETPIPE:-tweetpipe}}" plugin run {wasm} --plugin-config '{{"lang": "pt", "label": "seen"}}' \
    --input sample.jsonl > verdicts.jsonl
kept=$(grep -c '"action":"keep"' verdicts.jsonl || true)
dropped=$(grep -c '"action":"drop"' verdicts.jsonl || true)
test "$kept" -gt 0 || fail "no post was kept"
{dropped}
{labelled}{language}echo "ok: $kept kept, $dropped dropped"
"#
    )
}

fn readme(name: &str, lang: Lang, kind: Kind, commands: &[String], ident: &str) -> String {
    let toolchain = match lang {
        Lang::Rust => "Needs Rust with the `wasm32-wasip2` target (`rustup target add wasm32-wasip2`).".to_owned(),
        Lang::Python => format!(
            "Needs componentize-py {COMPONENTIZE_PY_VERSION} (`pip install componentize-py=={COMPONENTIZE_PY_VERSION}`); `make` passes it the SDK (`SDK=` in the Makefile)."
        ),
        Lang::Js => "Needs Node.js and npm: the first `make` installs the pinned componentize-js into `node_modules/`.".to_owned(),
    };
    let test = match lang {
        Lang::Rust => {
            "`cargo test` runs the unit test on the host; `./test.sh` runs the built plugin on `sample.jsonl`."
        }
        Lang::Python | Lang::Js => {
            "`make test` runs the built plugin on `sample.jsonl` (`test.sh`)."
        }
    };
    let mut text = format!("# {name}\n\n{}\n\n{toolchain}\n\n```sh\n", what(kind));
    for command in commands {
        text.push_str(command);
        text.push('\n');
    }
    let _ = write!(
        text,
        "```\n\n{test} `sample.jsonl` comes from `tweetpipe sample` and holds malformed, blank and duplicate lines on purpose.\n\nThen add it to the chain in `/etc/tweetpipe/tweetpipe.toml` and `sudo systemctl reload tweetpipe`:\n\n```toml\n[[plugins]]\npath = \"/var/lib/tweetpipe/plugins/{ident}.wasm\"\nconfig = {{ lang = \"en\", label = \"checked\" }}\n```\n\nA changed file in place is swapped in without a restart.\n",
    );
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An SDK folder like the package's: the contract and the Python and
    /// JavaScript SDKs, no Rust crate.
    fn packaged_sdk(dir: &Path) -> PathBuf {
        let sdk = dir.join("sdk");
        for file in [
            "wit/plugin.wit",
            "js/tweetpipe_plugin.js",
            "python/tweetpipe_plugin/__init__.py",
        ] {
            write(&sdk.join(file), b"").unwrap();
        }
        sdk
    }

    #[test]
    fn an_sdk_without_the_rust_crate_writes_python_and_javascript_projects_and_refuses_rust_clearly()
     {
        let dir = tempfile::tempdir().unwrap();
        let sdk = packaged_sdk(dir.path());
        assert_eq!(find_sdk(Some(&sdk)).unwrap(), sdk);
        for (lang, name) in [(Lang::Python, "p-one"), (Lang::Js, "j-one")] {
            let project = create(dir.path(), name, lang, Kind::Map, &sdk).unwrap();
            let makefile = std::fs::read_to_string(project.dir.join("Makefile")).unwrap();
            assert!(
                makefile.contains(&format!("SDK ?= {}", sdk.display()))
                    || makefile.contains(&sdk.display().to_string()),
                "{makefile}"
            );
            assert!(project.dir.join("sample.jsonl").metadata().unwrap().len() > 10_000);
        }
        let error = create(dir.path(), "r-one", Lang::Rust, Kind::Filter, &sdk).unwrap_err();
        assert!(matches!(error, NewError::NoRustSdk(_)), "{error}");
        assert!(!dir.path().join("r-one").exists());
    }

    /// The package's layout: the Rust project depends on `rust/tweetpipe-plugin`.
    #[test]
    fn the_package_sdk_writes_a_rust_project_against_its_crate() {
        let dir = tempfile::tempdir().unwrap();
        let sdk = packaged_sdk(dir.path());
        for file in [
            "rust/tweetpipe-plugin/Cargo.toml",
            "rust/tweetpipe-plugin/src/lib.rs",
        ] {
            write(&sdk.join(file), b"").unwrap();
        }
        let project = create(dir.path(), "r-two", Lang::Rust, Kind::Filter, &sdk).unwrap();
        let manifest = std::fs::read_to_string(project.dir.join("Cargo.toml")).unwrap();
        let crate_dir = sdk.join("rust/tweetpipe-plugin");
        assert!(
            manifest.contains(&format!("path = \"{}\"", crate_dir.display())),
            "{manifest}"
        );
    }
}
