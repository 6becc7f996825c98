//! The files in `packaging/` agree with the code: the packaged config has the
//! reference config's keys and only absolute paths into the package, the unit
//! keeps the promises the daemon relies on, and the maintainer scripts are sound.
//! (The built `.deb` itself is checked by `make test-deb`.)

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tweetpipe::config::{Config, DaemonConfig};

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(path)
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo(path)).unwrap_or_else(|error| panic!("{path}: {error}"))
}

/// Every table and key path in a TOML document (`source.replay.path`, `plugins`).
fn key_paths(text: &str) -> BTreeSet<String> {
    fn walk(prefix: &str, table: &toml::Table, out: &mut BTreeSet<String>) {
        for (key, value) in table {
            let path = if prefix.is_empty() {
                key.clone()
            } else {
                format!("{prefix}.{key}")
            };
            out.insert(path.clone());
            match value {
                toml::Value::Table(inner) => walk(&path, inner, out),
                toml::Value::Array(items) => {
                    for item in items {
                        if let toml::Value::Table(inner) = item {
                            walk(&path, inner, out);
                        }
                    }
                }
                _ => {}
            }
        }
    }
    let table: toml::Table = text.parse().expect("valid TOML");
    let mut out = BTreeSet::new();
    walk("", &table, &mut out);
    out
}

/// Keys the packaged config sets on purpose and the reference leaves commented out.
const PACKAGED_ONLY: &[&str] = &["source.replay.rate", "plugins", "plugins.path"];

#[test]
fn the_packaged_config_has_the_reference_configs_keys() {
    let reference = key_paths(&read("config/tweetpipe.toml"));
    let packaged = key_paths(&read("packaging/tweetpipe.toml"));
    let missing: Vec<_> = reference.difference(&packaged).collect();
    assert!(
        missing.is_empty(),
        "packaging/tweetpipe.toml lacks keys config/tweetpipe.toml has: {missing:?} (rerun python3 packaging/derive-config.py)"
    );
    let extra: Vec<_> = packaged
        .difference(&reference)
        .filter(|key| !PACKAGED_ONLY.contains(&key.as_str()))
        .collect();
    assert!(
        extra.is_empty(),
        "packaging/tweetpipe.toml has keys config/tweetpipe.toml lacks: {extra:?} (add them to the reference, or to PACKAGED_ONLY with a reason)"
    );
}

#[test]
fn the_packaged_config_is_valid_and_points_into_the_package() {
    let path = Path::new("/etc/tweetpipe/tweetpipe.toml");
    let config = Config::parse(&read("packaging/tweetpipe.toml"), path)
        .unwrap_or_else(|error| panic!("{error}"));

    let replay = config
        .source
        .replay
        .as_ref()
        .expect("the embedded default replays samples");
    assert_eq!(
        replay.path,
        Path::new("/usr/share/tweetpipe/samples/posts.jsonl")
    );
    assert!(
        replay.loop_forever && replay.rate.is_some_and(|rate| rate > 0.0),
        "the service must keep running visibly: loop = true and a rate"
    );
    assert!(config.source.x.is_none(), "no cloud account needed");

    let state = Path::new("/var/lib/tweetpipe");
    let sqlite = config
        .sink
        .sqlite
        .as_ref()
        .expect("the embedded default writes SQLite");
    assert!(sqlite.path.starts_with(state), "{}", sqlite.path.display());
    let dead_letters = config
        .dead_letter
        .path
        .as_deref()
        .expect("a dead-letter file");
    assert!(
        dead_letters.starts_with(state),
        "{}",
        dead_letters.display()
    );

    // Every plugin the config names is shipped by the package.
    let manifest: toml::Table = read("daemon/Cargo.toml").parse().unwrap();
    let assets = manifest["package"]["metadata"]["deb"]["assets"]
        .as_array()
        .expect("[package.metadata.deb] assets");
    let shipped: BTreeSet<PathBuf> = assets
        .iter()
        .map(|asset| {
            let source = Path::new(asset[0].as_str().unwrap());
            let dest = asset[1].as_str().unwrap();
            if dest.ends_with('/') {
                Path::new("/").join(dest).join(source.file_name().unwrap())
            } else {
                Path::new("/").join(dest)
            }
        })
        .collect();
    assert!(
        !config.plugins.is_empty(),
        "the packaged chain shows a plugin at work"
    );
    for plugin in &config.plugins {
        assert!(
            shipped.contains(&plugin.path),
            "{} is not in the package's assets",
            plugin.path.display()
        );
    }
    assert!(shipped.contains(Path::new("/usr/share/tweetpipe/samples/posts.jsonl")));
    assert!(shipped.contains(Path::new("/etc/tweetpipe/tweetpipe.toml")));
}

/// The value of `Key=` in the unit's `[Service]` lines (the last one wins, as in systemd).
fn setting<'a>(unit: &'a str, key: &str) -> Option<&'a str> {
    unit.lines()
        .rev()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| line.strip_prefix(key)?.strip_prefix('='))
}

fn seconds(value: &str) -> Duration {
    Duration::from_secs(
        value
            .strip_suffix('s')
            .unwrap_or(value)
            .parse()
            .unwrap_or_else(|_| panic!("expected seconds like `45s`, found {value}")),
    )
}

#[test]
fn the_unit_keeps_the_daemons_promises() {
    let unit = read("packaging/tweetpipe.service");
    assert_eq!(setting(&unit, "Type"), Some("notify"));
    assert_eq!(setting(&unit, "Restart"), Some("on-failure"));
    assert_eq!(setting(&unit, "StateDirectory"), Some("tweetpipe"));
    assert_eq!(setting(&unit, "CacheDirectory"), Some("tweetpipe"));
    assert_eq!(setting(&unit, "User"), Some("tweetpipe"));
    assert!(
        setting(&unit, "ExecStartPre").is_some_and(|exec| exec.contains("check-config")),
        "ExecStartPre= must validate the config"
    );
    let reloads: Vec<_> = unit
        .lines()
        .filter_map(|line| line.strip_prefix("ExecReload="))
        .collect();
    assert_eq!(reloads.len(), 2, "{reloads:?}");
    assert!(reloads[0].contains("check-config") && reloads[1].contains("kill -HUP $MAINPID"));

    // The drain is the daemon's, not SIGKILL's: TimeoutStopSec= exceeds both the
    // default and the packaged drain_timeout_ms.
    let stop = seconds(setting(&unit, "TimeoutStopSec").expect("TimeoutStopSec="));
    let packaged = Config::parse(
        &read("packaging/tweetpipe.toml"),
        Path::new("tweetpipe.toml"),
    )
    .unwrap();
    assert!(stop > DaemonConfig::default().drain_timeout);
    assert!(stop > packaged.daemon.drain_timeout);
    // Pings come at half of WatchdogSec=, and a sink backing off 30 s still pings.
    let watchdog = seconds(setting(&unit, "WatchdogSec").expect("WatchdogSec="));
    assert!(watchdog >= Duration::from_secs(10), "{watchdog:?}");

    for (key, value) in [
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("PrivateDevices", "yes"),
        ("NoNewPrivileges", "yes"),
        ("RestrictAddressFamilies", "AF_UNIX AF_INET AF_INET6"),
        ("SystemCallFilter", "@system-service"),
        ("CapabilityBoundingSet", ""),
    ] {
        assert_eq!(setting(&unit, key), Some(value), "{key}=");
    }
    // wasmtime's JIT maps compiled plugin code executable.
    assert_eq!(setting(&unit, "MemoryDenyWriteExecute"), None);
    assert!(unit.contains("MemoryDenyWriteExecute= is deliberately NOT set"));
}

#[test]
fn the_maintainer_scripts_are_sh_with_a_debhelper_marker() {
    use std::os::unix::fs::PermissionsExt;
    for script in ["postinst", "postrm"] {
        let path = repo(&format!("packaging/debian/{script}"));
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.starts_with("#!/bin/sh\n"),
            "{script}: not an sh script"
        );
        assert!(text.contains("\nset -e\n"), "{script}: no `set -e`");
        assert_eq!(
            text.matches("#DEBHELPER#").count(),
            1,
            "{script}: cargo-deb fills in exactly one #DEBHELPER#"
        );
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o111, 0o111, "{script} is not executable");
        let checked = std::process::Command::new("sh")
            .arg("-n")
            .arg(&path)
            .status()
            .unwrap();
        assert!(checked.success(), "{script}: sh -n failed");
    }
}
