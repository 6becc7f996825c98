//! Human-readable reports: the run summary `tweetpipe run` ends with, and the
//! resolved pipeline `tweetpipe check-config` prints.

use std::fmt::Write;
use std::path::Path;

use crate::config::{Config, SinkKind};
use crate::pipeline::RunOutcome;
use crate::plugins::LoadedChain;
use crate::sinks::sqlite::{SqliteSummary, summarize};

/// The end-of-run summary: counters, rate, and (for SQLite) what the table holds.
pub fn render(outcome: &RunOutcome) -> String {
    let stats = &outcome.stats;
    let secs = outcome.elapsed.as_secs_f64();
    let rate = if secs > 0.0 {
        stats.read as f64 / secs
    } else {
        0.0
    };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\ntweetpipe run {}",
        if outcome.interrupted {
            "interrupted (drained cleanly)"
        } else {
            "finished"
        }
    );
    let rows = [
        ("posts read", stats.read),
        ("kept", stats.kept),
        ("dropped by plugins", stats.dropped),
        ("failed in plugins", stats.failed),
        ("malformed", stats.malformed),
        ("dead-lettered", stats.dead_lettered),
        ("rows written", stats.written),
        ("duplicates skipped", stats.duplicates),
        ("rows rejected by sink", stats.rejected),
        ("sink retries", stats.sink_retries),
    ];
    for (label, value) in rows {
        let _ = writeln!(out, "  {label:<22} {value:>10}");
    }
    if outcome.published_to_pubsub {
        let _ = writeln!(
            out,
            "  {:<22} {:>10}",
            "published to Pub/Sub", stats.published
        );
    }
    let _ = writeln!(
        out,
        "  {:<22} {:>10.2} s ({:.0} posts/s)",
        "elapsed", secs, rate
    );
    // How long the start and the stop took (plugin loading, opening the
    // sink and the spool; the final flush and checkpoints come after this).
    for (label, at) in [
        ("first post read", stats.first_read),
        ("last commit", stats.last_commit),
    ] {
        if let Some(at) = at {
            let _ = writeln!(out, "  {label:<22} {:>10} after start", since_start(at));
        }
    }
    let _ = writeln!(out, "  {:<22} {}", "sink", outcome.sink);
    if let Some(resumed) = &outcome.resumed {
        let _ = writeln!(out, "  {:<22} {resumed}", "replay");
    }
    if let SinkKind::Sqlite(sqlite) = &outcome.sink {
        match summarize(&sqlite.path, &sqlite.table) {
            Ok(table) => render_table(&mut out, &table),
            Err(error) => {
                let _ = writeln!(out, "\n  (could not query the table: {error})");
            }
        }
    }
    out
}

/// `; first post read 84 ms after start, last commit 9.91 s after start`
/// (what of it is known), for the log line that ends a run.
pub fn timeline(stats: &crate::stats::StatsSnapshot) -> String {
    let mut out = String::new();
    for (label, at) in [
        ("first post read", stats.first_read),
        ("last commit", stats.last_commit),
    ] {
        if let Some(at) = at {
            let _ = write!(
                out,
                "{} {label} {} after start",
                if out.is_empty() { ";" } else { "," },
                since_start(at)
            );
        }
    }
    out
}

/// `84 ms`, `9.91 s`.
fn since_start(at: std::time::Duration) -> String {
    if at < std::time::Duration::from_secs(1) {
        format!("{} ms", at.as_millis())
    } else {
        format!("{:.2} s", at.as_secs_f64())
    }
}

/// The seeds' classic questions, answered from the SQLite table.
fn render_table(out: &mut String, table: &SqliteSummary) {
    let _ = writeln!(out, "\nIn the table now: {} rows", table.total_rows);
    let _ = writeln!(out, "\nPosts per hour (UTC)");
    let widest = table
        .posts_per_hour
        .iter()
        .map(|(_, count)| *count)
        .max()
        .unwrap_or(0);
    for (hour, count) in &table.posts_per_hour {
        let bar = if widest == 0 {
            0
        } else {
            (*count * 40).div_ceil(widest) as usize
        };
        let _ = writeln!(out, "  {hour}  {count:>7}  {}", "#".repeat(bar));
    }
    let _ = writeln!(out, "\nTop 5 user locations");
    for (location, count) in &table.top_locations {
        let _ = writeln!(out, "  {count:>7}  {location}");
    }
    let _ = writeln!(out, "\nTop 5 hashtags");
    for (hashtag, count) in &table.top_hashtags {
        let _ = writeln!(out, "  {count:>7}  #{hashtag}");
    }
    if !table.sentiment_labels.is_empty() {
        let labelled: u64 = table.sentiment_labels.iter().map(|(_, count)| count).sum();
        let _ = writeln!(out, "\nSentiment");
        for (label, count) in &table.sentiment_labels {
            let share = *count as f64 * 100.0 / labelled as f64;
            let _ = writeln!(out, "  {count:>7}  {label:<9} {share:>5.1} %");
        }
    }
}

/// The resolved pipeline as text, and the problems found while checking it.
#[derive(Debug, Default)]
pub struct Description {
    pub text: String,
    /// Problems that keep the pipeline from running (e.g. a table lacking columns).
    pub problems: Vec<String>,
}

/// The resolved pipeline, as `check-config` prints it.
pub fn describe(path: &Path, config: &Config, chain: &LoadedChain) -> Description {
    let mut problems = Vec::new();
    let mut out = String::new();
    let _ = writeln!(out, "config {} is valid", path.display());
    if let Some(replay) = &config.source.replay {
        let rate = replay
            .rate
            .filter(|rate| *rate > 0.0)
            .map_or("as fast as the pipeline takes them".to_owned(), |rate| {
                format!("{rate} posts/s")
            });
        let resume = match (&replay.state_file, replay.resume) {
            (Some(state_file), true) if replay.path.as_os_str() != "-" => format!(
                "; resumes where the last run stopped, positions in {}",
                state_file.display()
            ),
            _ => "; reads from line one every run".to_owned(),
        };
        let _ = writeln!(
            out,
            "source        replay {} ({rate}{}{resume})",
            replay.path.display(),
            if replay.loop_forever { ", looping" } else { "" }
        );
    }
    if let Some(x) = &config.source.x {
        let _ = writeln!(
            out,
            "source        X filtered stream at {} ({} rule(s), synced on start; stall after {} s; gap recovery {})",
            x.api_base,
            x.rules.len(),
            x.stall_timeout.as_secs(),
            x.gap_recovery.as_str()
        );
        for rule in &x.rules {
            let _ = writeln!(
                out,
                "                {:?}{}",
                rule.value,
                rule.tag
                    .as_deref()
                    .map(|tag| format!(" (tag {tag:?})"))
                    .unwrap_or_default()
            );
        }
        let token = match &x.bearer_token_file {
            Some(path) => format!("bearer token from {}", path.display()),
            None => format!(
                "bearer token from ${} or the systemd credential {}",
                crate::sources::x::client::TOKEN_ENV,
                crate::sources::x::client::TOKEN_CREDENTIAL
            ),
        };
        let _ = writeln!(out, "              {token}");
    }
    match (&config.broker.kind, &config.broker.pubsub) {
        (crate::config::BrokerKind::Pubsub, Some(pubsub)) => {
            let roles: Vec<&str> = config
                .broker
                .roles
                .iter()
                .map(|role| match role {
                    crate::config::Role::Ingest => "ingest",
                    crate::config::Role::Process => "process",
                })
                .collect();
            let endpoint = crate::broker::pubsub::resolve_endpoint(
                pubsub.endpoint.as_deref(),
                std::env::var(crate::broker::pubsub::EMULATOR_HOST_VAR)
                    .ok()
                    .as_deref(),
            );
            let _ = writeln!(
                out,
                "broker        pubsub, roles {}{}",
                roles.join(" + "),
                endpoint.map_or(String::new(), |endpoint| format!(" at {endpoint}"))
            );
            let _ = writeln!(
                out,
                "              topic {} (batches of {} messages / {} bytes / {} ms, {} publishes in flight at most)",
                crate::broker::pubsub::topic_name(pubsub),
                pubsub.batch_max_messages,
                pubsub.batch_max_bytes,
                pubsub.batch_delay.as_millis(),
                pubsub.max_in_flight
            );
            let _ = writeln!(
                out,
                "              subscription {} ({} streams, {} messages / {} bytes outstanding per stream, {} deliveries before dead letter)",
                crate::broker::pubsub::subscription_name(pubsub),
                pubsub.streams,
                pubsub.max_outstanding_messages,
                pubsub.max_outstanding_bytes,
                config.broker.max_deliveries
            );
            let credentials = match &pubsub.credentials_file {
                Some(path) => format!("service-account key {}", path.display()),
                None => "application default credentials (none for an http:// emulator)".to_owned(),
            };
            let _ = writeln!(
                out,
                "              {credentials}{}",
                if pubsub.create_if_missing {
                    ", creates the topic and subscription if missing"
                } else {
                    ""
                }
            );
        }
        _ => {
            let _ = writeln!(
                out,
                "broker        embedded queue ({} messages in flight at most, {} deliveries before dead letter)",
                config.broker.capacity, config.broker.max_deliveries
            );
        }
    }
    if config.plugins.is_empty() {
        let _ = writeln!(out, "plugins       none (posts pass unchanged)");
    } else {
        let _ = writeln!(out, "plugins       (in order)");
        for (index, (plugin, name)) in config.plugins.iter().zip(chain.names()).enumerate() {
            let _ = writeln!(
                out,
                "  {}. {name:<16} {} (on_error = {:?}{}{})",
                index + 1,
                plugin.path.display(),
                plugin.on_error,
                plugin
                    .timeout
                    .map(|timeout| format!(", timeout {} ms", timeout.as_millis()))
                    .unwrap_or_default(),
                plugin
                    .memory_mb
                    .map(|mb| format!(", memory {mb} MiB"))
                    .unwrap_or_default(),
            );
        }
    }
    let _ = writeln!(
        out,
        "process       {} worker(s), {} posts per chain call",
        config.process.workers, config.process.chain_batch
    );
    let _ = writeln!(
        out,
        "batch         flush at {} rows, {} bytes or {} ms",
        config.batch.max_rows,
        config.batch.max_bytes,
        config.batch.max_age.as_millis()
    );
    match config.sink_kind() {
        Ok(kind) => {
            let _ = writeln!(out, "sink          {kind}");
            if let SinkKind::Sqlite(_) = kind {
                let _ = writeln!(
                    out,
                    "              (one row per post id; duplicates skipped)"
                );
            }
            if let SinkKind::BigQuery(bigquery) = &kind {
                let report = crate::sinks::bigquery::table_report(bigquery);
                let _ = writeln!(out, "              {report}");
                if let Some(problem) = report.strip_prefix("error: ") {
                    problems.push(format!("sink.bigquery: {problem}"));
                }
            }
        }
        Err(error) => {
            let _ = writeln!(out, "sink          {error}");
        }
    }
    match config.dead_letter_destination() {
        Ok(destination) => {
            let _ = writeln!(out, "dead letters  {destination}");
        }
        Err((key, message)) => {
            let _ = writeln!(out, "dead letters  {key}: {message}");
        }
    }
    if config.metrics.enabled {
        let listen = config.metrics.listen;
        let _ = writeln!(
            out,
            "metrics       http://{listen}/metrics, /healthz, /readyz"
        );
    } else {
        let _ = writeln!(out, "metrics       off");
    }
    if config.dashboard.enabled {
        let dashboard = &config.dashboard;
        let scheme = if dashboard.tls_cert.is_some() {
            "https"
        } else {
            "http"
        };
        let _ = writeln!(
            out,
            "dashboard     {scheme}://{}/ (user {}, state {})",
            dashboard.listen,
            dashboard.user,
            dashboard
                .state_file
                .as_deref()
                .map_or_else(|| "none".to_owned(), |path| path.display().to_string())
        );
    }
    let _ = writeln!(out, "logging       {:?}", config.logging.level);
    Description {
        text: out,
        problems,
    }
}
