//! Locating the plugins `make plugins` builds, for tests that run them.

use std::path::{Path, PathBuf};

/// The cargo target directory the workspace builds into.
pub fn target_dir() -> PathBuf {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if Path::new(&dir).is_absolute() => PathBuf::from(dir),
        Some(dir) => workspace.join(dir),
        None => workspace.join("target"),
    }
}

/// The built plugin `name` (crate name with `_`); fails, never skips, when it is missing.
pub fn plugin(name: &str) -> PathBuf {
    let path = target_dir()
        .join("wasm32-wasip2/plugin")
        .join(format!("{name}.wasm"));
    assert!(
        path.is_file(),
        "{} is missing: run `make plugins` before these tests",
        path.display()
    );
    path
}
