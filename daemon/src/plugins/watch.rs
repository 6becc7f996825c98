//! Notices changed plugin files and hands them to the reloader once they stopped changing.
//!
//! This is a polling loop over each configured file's (mtime, size, inode) rather
//! than inotify (the `notify` crate): the chain has a handful of files, so a few
//! `stat` calls per second cost nothing, and polling sees every way people deploy
//! a file the same way — copying over it (the inode stays, the size and mtime
//! move), `install -m 644` and writing a temporary file then renaming it (a new
//! inode, which a watch on the old inode would never report). It also works on
//! network and overlay filesystems where inotify is silent. A file is loaded only
//! after it kept the same stamp for the debounce time; the reloader then compares
//! its sha256 with the running version, so a `touch` swaps nothing, and compiling
//! it fully rejects a file that was still incomplete (the next change is tried).

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use super::PluginReloader;

/// What a `stat` says about a file; `None` when it is missing.
type Stamp = Option<(SystemTime, u64, u64)>;

fn stamp(path: &Path) -> Stamp {
    let metadata = std::fs::metadata(path).ok()?;
    Some((metadata.modified().ok()?, metadata.len(), metadata.ino()))
}

/// Watches the plugin files of `reloader`'s configuration until the task is
/// aborted; a file whose stamp changed and then held still for `debounce` makes
/// the reloader re-check the files (off the async threads).
pub async fn watch_plugin_files(reloader: Arc<PluginReloader>, debounce: Duration) {
    let poll = (debounce / 4).clamp(Duration::from_millis(20), Duration::from_millis(250));
    // The stamp each file had when the reloader last looked at it.
    let mut applied: HashMap<PathBuf, Stamp> = reloader
        .watched_paths()
        .into_iter()
        .map(|path| {
            let stamp = stamp(&path);
            (path, stamp)
        })
        .collect();
    // A changed stamp and since when it holds.
    let mut pending: HashMap<PathBuf, (Stamp, Instant)> = HashMap::new();
    let mut ticker = tokio::time::interval(poll);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let paths = reloader.watched_paths();
        let mut settled = Vec::new();
        for path in &paths {
            let now = stamp(path);
            // A path added by a config reload starts from what the reload loaded.
            let before = *applied.entry(path.clone()).or_insert(now);
            if now == before {
                pending.remove(path);
                continue;
            }
            match pending.get(path) {
                Some((seen, since)) if *seen == now => {
                    if since.elapsed() >= debounce {
                        settled.push((path.clone(), now));
                    }
                }
                _ => {
                    log::debug!(
                        "plugin file {} changed; waiting for it to settle",
                        path.display()
                    );
                    pending.insert(path.clone(), (now, Instant::now()));
                }
            }
        }
        applied.retain(|path, _| paths.contains(path));
        if settled.is_empty() {
            continue;
        }
        for (path, now) in settled {
            log::info!("plugin file {} changed; checking it", path.display());
            pending.remove(&path);
            applied.insert(path, now);
        }
        let worker = Arc::clone(&reloader);
        match tokio::task::spawn_blocking(move || worker.reload_files()).await {
            Ok(Ok(_report)) => {}
            Ok(Err(error)) => {
                log::error!("plugin reload failed, the chain keeps running as it was: {error}")
            }
            Err(error) => log::error!("plugin reload task failed: {error}"),
        }
    }
}
