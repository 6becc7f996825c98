//! Logging through the `log` facade: to the journal under systemd, else to stderr.
//!
//! The level comes from `[logging] level`, and `RUST_LOG` overrides it (with the
//! usual `module=level` directives) when set.

use crate::config::LevelName;

/// Installs the process-wide logger; later calls are ignored.
pub fn init(level: LevelName) {
    let level: log::LevelFilter = level.into();
    if systemd_journal_logger::connected_to_journal() {
        let installed = systemd_journal_logger::JournalLog::new()
            .map(|journal| journal.with_syslog_identifier("tweetpipe".to_owned()))
            .and_then(|journal| journal.install().map_err(std::io::Error::other));
        if installed.is_ok() {
            log::set_max_level(env_level().unwrap_or(level));
            return;
        }
    }
    let mut builder = env_logger::Builder::new();
    builder
        .filter_level(level)
        .format_target(false)
        .parse_env(env_logger::Env::new().filter("RUST_LOG"));
    let _ = builder.try_init();
}

/// A plain level from `RUST_LOG` (the journal logger takes no directives).
fn env_level() -> Option<log::LevelFilter> {
    std::env::var("RUST_LOG").ok()?.trim().parse().ok()
}
