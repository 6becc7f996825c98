//! The on-disk cache of compiled plugins, so a restart loads a plugin in a
//! fraction of a millisecond instead of recompiling it.
//!
//! An entry is keyed by the sha256 of the `.wasm` file and a fingerprint of the
//! engine (wasmtime version and compilation settings). It is written to a temporary
//! file and renamed into place, and carries the sha256 of the artifact it holds:
//! a truncated or corrupt entry is detected and treated as a miss.

use std::fs;
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::PathBuf;

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

const MAGIC: &[u8; 16] = b"tweetpipe-cwasm1";
const HEADER_LEN: usize = MAGIC.len() + 32;

/// The default cache directory: `$CACHE_DIRECTORY` (set by systemd's
/// `CacheDirectory=`), else `$XDG_CACHE_HOME/tweetpipe`, else `~/.cache/tweetpipe`.
pub fn default_cache_dir() -> Option<PathBuf> {
    let non_empty = |name: &str| std::env::var_os(name).filter(|value| !value.is_empty());
    if let Some(dir) = non_empty("CACHE_DIRECTORY") {
        // systemd may list several directories separated by `:`; use the first.
        let dir = dir.to_string_lossy().split(':').next().map(PathBuf::from)?;
        return Some(dir);
    }
    if let Some(dir) = non_empty("XDG_CACHE_HOME") {
        return Some(PathBuf::from(dir).join("tweetpipe"));
    }
    non_empty("HOME").map(|home| PathBuf::from(home).join(".cache").join("tweetpipe"))
}

/// A directory of compiled plugins for one engine.
#[derive(Debug, Clone)]
pub(crate) struct ComponentCache {
    dir: PathBuf,
    engine_fingerprint: String,
}

impl ComponentCache {
    pub(crate) fn new(dir: PathBuf, engine: &Engine) -> ComponentCache {
        let mut hasher = Sha256Hasher(Sha256::new());
        engine.precompile_compatibility_hash().hash(&mut hasher);
        let digest = hasher.0.finalize();
        ComponentCache {
            dir,
            engine_fingerprint: hex(&digest[..8]),
        }
    }

    fn entry_path(&self, wasm_sha256: &str) -> PathBuf {
        self.dir
            .join(format!("{wasm_sha256}-{}.cwasm", self.engine_fingerprint))
    }

    /// The cached compilation of the file whose sha256 is `wasm_sha256`, if any.
    pub(crate) fn load(&self, engine: &Engine, wasm_sha256: &str) -> Option<Component> {
        let path = self.entry_path(wasm_sha256);
        let bytes = fs::read(&path).ok()?;
        let artifact = verified_artifact(&bytes);
        if artifact.is_none() {
            log::warn!(path:% = path.display(); "ignoring a corrupt compiled-plugin cache entry");
            return None;
        }
        match deserialize(engine, artifact?) {
            Ok(component) => Some(component),
            Err(error) => {
                log::warn!(path:% = path.display(), error:% = error; "ignoring an unusable compiled-plugin cache entry");
                None
            }
        }
    }

    /// Stores a compilation; failures only cost a recompilation later.
    pub(crate) fn store(&self, wasm_sha256: &str, component: &Component) {
        if let Err(error) = self.try_store(wasm_sha256, component) {
            log::warn!(dir:% = self.dir.display(), error:% = error; "cannot cache a compiled plugin");
        }
    }

    fn try_store(&self, wasm_sha256: &str, component: &Component) -> Result<(), String> {
        let artifact = component.serialize().map_err(|error| error.to_string())?;
        fs::create_dir_all(&self.dir).map_err(|error| error.to_string())?;
        let path = self.entry_path(wasm_sha256);
        let temp = self.dir.join(format!(
            ".{}.{}.tmp",
            path.file_name()
                .map(|name| name.to_string_lossy())
                .unwrap_or_default(),
            std::process::id()
        ));
        let write = || -> std::io::Result<()> {
            let mut file = fs::File::create(&temp)?;
            file.write_all(MAGIC)?;
            file.write_all(&Sha256::digest(&artifact))?;
            file.write_all(&artifact)?;
            file.sync_all()?;
            fs::rename(&temp, &path)
        };
        write().map_err(|error| {
            let _ = fs::remove_file(&temp);
            error.to_string()
        })
    }
}

/// The artifact inside a cache entry, if its header and checksum hold.
fn verified_artifact(bytes: &[u8]) -> Option<&[u8]> {
    if bytes.len() < HEADER_LEN || &bytes[..MAGIC.len()] != MAGIC {
        return None;
    }
    let (header, artifact) = bytes.split_at(HEADER_LEN);
    (Sha256::digest(artifact).as_slice() == &header[MAGIC.len()..]).then_some(artifact)
}

/// Loads a compiled component produced by [`Component::serialize`].
#[allow(unsafe_code)]
fn deserialize(engine: &Engine, artifact: &[u8]) -> wasmtime::Result<Component> {
    // SAFETY: wasmtime requires the bytes to be an unmodified artifact produced by
    // `Component::serialize` for a compatible engine. They come from our own cache
    // directory, and `verified_artifact` checked the sha256 recorded when the entry
    // was written, so a truncated or corrupted entry never reaches this call;
    // wasmtime itself rejects artifacts from another version or configuration.
    unsafe { Component::deserialize(engine, artifact) }
}

/// Lower-case hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut text, byte| {
        let _ = write!(text, "{byte:02x}");
        text
    })
}

/// The sha256 of a file's bytes, in hex.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// Feeds `Hash` output into sha256, for a fingerprint stable across runs.
struct Sha256Hasher(Sha256);

impl Hasher for Sha256Hasher {
    fn finish(&self) -> u64 {
        let digest = self.0.clone().finalize();
        u64::from_le_bytes(digest[..8].try_into().unwrap_or([0; 8]))
    }

    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corrupt_entries_are_misses() {
        assert!(verified_artifact(b"short").is_none());
        let artifact = b"compiled bytes";
        let mut entry = MAGIC.to_vec();
        entry.extend_from_slice(&Sha256::digest(artifact));
        entry.extend_from_slice(artifact);
        assert_eq!(verified_artifact(&entry), Some(&artifact[..]));
        let last = entry.len() - 1;
        entry[last] ^= 1;
        assert!(verified_artifact(&entry).is_none());
        entry.truncate(last);
        assert!(verified_artifact(&entry).is_none());
    }
}
