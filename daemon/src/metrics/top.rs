//! `tweetpipe top`: scrapes a running daemon's `/metrics` and draws the pipeline in a terminal.
//!
//! Plain text redrawn in place (no full-screen mode), so it works over SSH and in
//! any terminal; `--once` prints a single frame for scripts and tests. Rates and
//! latency percentiles cover the interval between two scrapes.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Write as _;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use prometheus_parse::{HistogramCount, Scrape, Value};

/// `tweetpipe top` arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct TopArgs {
    /// The daemon's metrics endpoint (its [metrics] listen address).
    #[arg(long, default_value = "http://127.0.0.1:9464")]
    pub metrics: String,
    /// Print one frame (two scrapes one interval apart) and exit.
    #[arg(long)]
    pub once: bool,
    /// Time between refreshes, in milliseconds.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(100..))]
    pub interval_ms: u64,
}

/// Why a scrape failed.
#[derive(Debug, thiserror::Error)]
pub enum TopError {
    #[error(
        "cannot scrape {url}: {message} (is `tweetpipe run` up with [metrics] enabled on that address?)"
    )]
    Scrape { url: String, message: String },
    #[error("cannot start the async runtime: {0}")]
    Runtime(#[source] std::io::Error),
}

/// The `/metrics` URL for a `--metrics` value (`http://host:port` or the full URL).
pub fn metrics_url(base: &str) -> String {
    let base = base.trim_end_matches('/');
    let base = if base.contains("://") {
        base.to_owned()
    } else {
        format!("http://{base}")
    };
    if base.ends_with("/metrics") {
        base
    } else {
        format!("{base}/metrics")
    }
}

/// Runs `tweetpipe top`.
pub fn execute(args: &TopArgs) -> ExitCode {
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::from(1)
        }
    }
}

fn run(args: &TopArgs) -> Result<(), TopError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(TopError::Runtime)?;
    let url = metrics_url(&args.metrics);
    let interval = Duration::from_millis(args.interval_ms);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .map_err(|error| TopError::Scrape {
            url: url.clone(),
            message: error.to_string(),
        })?;
    runtime.block_on(async {
        let mut previous = scrape(&client, &url).await?;
        let mut stdout = std::io::stdout();
        loop {
            tokio::time::sleep(interval).await;
            let current = match scrape(&client, &url).await {
                Ok(current) => current,
                Err(error) if !args.once => {
                    let _ = write!(stdout, "\x1b[H\x1b[2J{error}\n(retrying)\n");
                    let _ = stdout.flush();
                    continue;
                }
                Err(error) => return Err(error),
            };
            let frame = render(&url, &previous.1, &current.1, current.0 - previous.0);
            if args.once {
                let _ = stdout.write_all(frame.as_bytes());
                let _ = stdout.flush();
                return Ok(());
            }
            // Home and clear, then the frame: no flicker-prone per-line updates.
            let _ = write!(stdout, "\x1b[H\x1b[2J{frame}");
            let _ = stdout.flush();
            previous = current;
        }
    })
}

async fn scrape(client: &reqwest::Client, url: &str) -> Result<(Instant, Samples), TopError> {
    let failed = |message: String| TopError::Scrape {
        url: url.to_owned(),
        message,
    };
    let response = client
        .get(url)
        .send()
        .await
        .map_err(|error| failed(error.to_string()))?;
    if !response.status().is_success() {
        return Err(failed(format!("HTTP {}", response.status())));
    }
    let text = response
        .text()
        .await
        .map_err(|error| failed(error.to_string()))?;
    Ok((Instant::now(), Samples::parse(&text)))
}

/// A metric name and its labels, sorted.
type SeriesKey = (String, Vec<(String, String)>);

/// One scrape, indexed by metric name and labels.
#[derive(Debug, Default, Clone)]
pub struct Samples {
    /// `(metric, sorted labels) → value` for counters and gauges.
    values: BTreeMap<SeriesKey, f64>,
    /// `(metric, sorted labels) → cumulative buckets` for histograms.
    histograms: BTreeMap<SeriesKey, Vec<(f64, f64)>>,
}

impl Samples {
    /// Parses Prometheus or OpenMetrics text.
    pub fn parse(text: &str) -> Samples {
        let lines = text.lines().map(|line| Ok(line.to_owned()));
        let Ok(scrape) = Scrape::parse(lines) else {
            return Samples::default();
        };
        let mut samples = Samples::default();
        for sample in scrape.samples {
            let mut labels: Vec<(String, String)> = sample
                .labels
                .iter()
                .map(|(key, value)| (key.clone(), value.clone()))
                .collect();
            labels.sort();
            let key = (sample.metric, labels);
            match sample.value {
                Value::Counter(value) | Value::Gauge(value) | Value::Untyped(value) => {
                    samples.values.insert(key, value);
                }
                Value::Histogram(buckets) => {
                    let buckets = buckets
                        .iter()
                        .map(|HistogramCount { less_than, count }| (*less_than, *count))
                        .collect();
                    samples.histograms.insert(key, buckets);
                }
                Value::Summary(_) => {}
            }
        }
        samples
    }

    /// The sum of `metric` over every series whose labels include `filter`.
    pub fn sum(&self, metric: &str, filter: &[(&str, &str)]) -> f64 {
        self.values
            .iter()
            .filter(|((name, labels), _)| name == metric && matches(labels, filter))
            .map(|(_, value)| value)
            .sum()
    }

    /// Whether any series of `metric` exists.
    fn has(&self, metric: &str) -> bool {
        self.values.keys().any(|(name, _)| name == metric)
    }

    /// The distinct values of `label` on `metric`, in order.
    pub(crate) fn label_values(&self, metric: &str, label: &str) -> Vec<String> {
        let mut values: Vec<String> = self
            .values
            .keys()
            .chain(self.histograms.keys())
            .filter(|(name, _)| name == metric)
            .filter_map(|(_, labels)| {
                labels
                    .iter()
                    .find(|(key, _)| key == label)
                    .map(|(_, value)| value.clone())
            })
            .collect();
        values.sort();
        values.dedup();
        values
    }

    /// The value of `label` on the first series of `metric` matching `filter`.
    fn label(&self, metric: &str, filter: &[(&str, &str)], label: &str) -> Option<String> {
        self.values
            .keys()
            .filter(|(name, labels)| name == metric && matches(labels, filter))
            .find_map(|(_, labels)| {
                labels
                    .iter()
                    .find(|(key, _)| key == label)
                    .map(|(_, value)| value.clone())
            })
    }

    fn buckets(&self, metric: &str, filter: &[(&str, &str)]) -> Vec<(f64, f64)> {
        let mut total: Vec<(f64, f64)> = Vec::new();
        for ((name, labels), buckets) in &self.histograms {
            if name != metric || !matches(labels, filter) {
                continue;
            }
            if total.is_empty() {
                total = buckets.clone();
            } else {
                for ((_, sum), (_, count)) in total.iter_mut().zip(buckets) {
                    *sum += count;
                }
            }
        }
        total
    }
}

fn matches(labels: &[(String, String)], filter: &[(&str, &str)]) -> bool {
    filter.iter().all(|(key, value)| {
        labels
            .iter()
            .any(|(have_key, have_value)| have_key == key && have_value == value)
    })
}

/// The `quantile` (0–1) of a histogram's observations between two scrapes, by
/// linear interpolation inside the bucket (as PromQL's `histogram_quantile`).
/// Falls back to every observation when none fell in the window.
pub fn quantile(before: &[(f64, f64)], after: &[(f64, f64)], quantile: f64) -> Option<f64> {
    let window: Vec<(f64, f64)> = after
        .iter()
        .map(|(le, count)| {
            let earlier = before
                .iter()
                .find(|(before_le, _)| before_le == le)
                .map_or(0.0, |(_, count)| *count);
            (*le, count - earlier)
        })
        .collect();
    let buckets = match window.last() {
        Some((_, total)) if *total > 0.0 => &window[..],
        _ => after,
    };
    let total = buckets.last()?.1;
    if total <= 0.0 {
        return None;
    }
    let rank = quantile * total;
    let mut lower = 0.0;
    let mut below = 0.0;
    for (le, count) in buckets {
        if *count >= rank {
            if le.is_infinite() {
                return Some(lower);
            }
            let inside = count - below;
            let fraction = if inside > 0.0 {
                (rank - below) / inside
            } else {
                1.0
            };
            return Some(lower + (le - lower) * fraction);
        }
        lower = *le;
        below = *count;
    }
    Some(lower)
}

fn seconds(value: Option<f64>) -> String {
    match value {
        None => "-".to_owned(),
        Some(value) if value < 0.001 => format!("{:.0} µs", value * 1e6),
        Some(value) if value < 1.0 => format!("{:.1} ms", value * 1e3),
        Some(value) => format!("{value:.2} s"),
    }
}

fn count(value: f64) -> String {
    format!("{}", value.max(0.0).round() as u64)
}

/// Draws one frame from two scrapes taken `elapsed` apart.
pub fn render(url: &str, before: &Samples, after: &Samples, elapsed: Duration) -> String {
    let secs = elapsed.as_secs_f64().max(0.001);
    let rate = |metric: &str, filter: &[(&str, &str)]| {
        ((after.sum(metric, filter) - before.sum(metric, filter)) / secs).max(0.0)
    };
    let mut out = String::new();
    let up = after.sum("tweetpipe_up", &[]) > 0.0;
    let ready = after.sum("tweetpipe_ready", &[]) > 0.0;
    let _ = writeln!(
        out,
        "tweetpipe top — {url} — pipeline {}, {} — rates over {secs:.1} s",
        if up { "up" } else { "down" },
        if ready { "ready" } else { "NOT READY" },
    );
    let received = "tweetpipe_source_posts_received_total";
    let kept = [("outcome", "kept")];
    let _ = writeln!(
        out,
        "posts/s  in {:>9.1}   out {:>9.1}   written {:>9.1}   dead letters {:>7.1}",
        rate(received, &[]),
        rate("tweetpipe_chain_posts_total", &kept),
        rate("tweetpipe_sink_rows_total", &[("result", "written")]),
        rate("tweetpipe_dead_letters_total", &[]),
    );

    let _ = writeln!(out, "\nSOURCE         received        /s  state");
    for source in after.label_values(received, "source") {
        let filter = [("source", source.as_str())];
        let state = if after.has("tweetpipe_source_connected")
            && after
                .label("tweetpipe_source_connected", &filter, "source")
                .is_some()
        {
            if after.sum("tweetpipe_source_connected", &filter) > 0.0 {
                format!(
                    "connected, {} reconnects",
                    count(after.sum("tweetpipe_source_reconnects_total", &filter))
                )
            } else {
                format!(
                    "backing off {:.1} s, {} reconnects",
                    after.sum("tweetpipe_source_backoff_seconds", &filter),
                    count(after.sum("tweetpipe_source_reconnects_total", &filter))
                )
            }
        } else {
            "reading".to_owned()
        };
        let _ = writeln!(
            out,
            "  {source:<12} {:>9} {:>9.1}  {state}",
            count(after.sum(received, &filter)),
            rate(received, &filter),
        );
    }

    let plugins = after.label_values("tweetpipe_plugin_posts_in_total", "plugin");
    if !plugins.is_empty() {
        let _ = writeln!(
            out,
            "\nPLUGIN              in/s   drop %   failed      p50      p99  restarts  version"
        );
    }
    for plugin in plugins {
        let filter = [("plugin", plugin.as_str())];
        let posts_in = after.sum("tweetpipe_plugin_posts_in_total", &filter)
            - before.sum("tweetpipe_plugin_posts_in_total", &filter);
        let dropped = after.sum("tweetpipe_plugin_posts_dropped_total", &filter)
            - before.sum("tweetpipe_plugin_posts_dropped_total", &filter);
        let (posts_in, dropped) = if posts_in > 0.0 {
            (posts_in, dropped)
        } else {
            // Nothing in this window: show the whole run's ratio.
            (
                after.sum("tweetpipe_plugin_posts_in_total", &filter),
                after.sum("tweetpipe_plugin_posts_dropped_total", &filter),
            )
        };
        let drop_percent = if posts_in > 0.0 {
            format!("{:.1}%", 100.0 * dropped / posts_in)
        } else {
            "-".to_owned()
        };
        let latency = "tweetpipe_plugin_batch_duration_seconds";
        let (was, now) = (
            before.buckets(latency, &filter),
            after.buckets(latency, &filter),
        );
        let version = after
            .label("tweetpipe_plugin_info", &filter, "version")
            .unwrap_or_else(|| "-".to_owned());
        let _ = writeln!(
            out,
            "  {plugin:<16} {:>7.1} {drop_percent:>8} {:>8} {:>8} {:>8} {:>9}  {version}",
            rate("tweetpipe_plugin_posts_in_total", &filter),
            count(after.sum("tweetpipe_plugin_posts_failed_total", &filter)),
            seconds(quantile(&was, &now, 0.5)),
            seconds(quantile(&was, &now, 0.99)),
            count(after.sum("tweetpipe_plugin_instance_restarts_total", &filter)),
        );
    }

    let _ = writeln!(
        out,
        "\nSINK          rows/s   written  duplicate  rejected  retries  errors      p50      p99  state"
    );
    for sink in after.label_values("tweetpipe_sink_rows_total", "sink") {
        let filter = [("sink", sink.as_str())];
        let rows = |result: &str| {
            count(after.sum(
                "tweetpipe_sink_rows_total",
                &[("sink", sink.as_str()), ("result", result)],
            ))
        };
        let latency = "tweetpipe_sink_write_duration_seconds";
        let (was, now) = (
            before.buckets(latency, &filter),
            after.buckets(latency, &filter),
        );
        let _ = writeln!(
            out,
            "  {sink:<10} {:>8.1} {:>9} {:>10} {:>9} {:>8} {:>7} {:>8} {:>8}  {}",
            rate(
                "tweetpipe_sink_rows_total",
                &[("sink", sink.as_str()), ("result", "written")]
            ),
            rows("written"),
            rows("duplicate"),
            rows("rejected"),
            count(after.sum("tweetpipe_sink_retries_total", &filter)),
            count(after.sum("tweetpipe_sink_write_errors_total", &filter)),
            seconds(quantile(&was, &now, 0.5)),
            seconds(quantile(&was, &now, 0.99)),
            if after.sum("tweetpipe_sink_up", &filter) > 0.0 {
                "up"
            } else {
                "UNREACHABLE"
            },
        );
    }

    let mut flushes = String::new();
    for cause in after.label_values("tweetpipe_batch_flushes_total", "cause") {
        let _ = write!(
            flushes,
            "  {cause} {}",
            count(after.sum(
                "tweetpipe_batch_flushes_total",
                &[("cause", cause.as_str())]
            ))
        );
    }
    let _ = writeln!(out, "\nFLUSHES     {}", flushes.trim_start());
    let mut letters = String::new();
    for stage in after.label_values("tweetpipe_dead_letters_total", "stage") {
        let _ = write!(
            letters,
            "  {stage} {}",
            count(after.sum("tweetpipe_dead_letters_total", &[("stage", stage.as_str())]))
        );
    }
    let _ = writeln!(out, "DEAD LETTERS {}", letters.trim_start());
    let mut queues = String::new();
    for stage in ["broker", "sink", "batch", "dead_letter"] {
        if after
            .label("tweetpipe_queue_depth", &[("stage", stage)], "stage")
            .is_some()
        {
            let _ = write!(
                queues,
                "  {stage} {}",
                count(after.sum("tweetpipe_queue_depth", &[("stage", stage)]))
            );
        }
    }
    let _ = writeln!(out, "QUEUES      {}", queues.trim_start());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_accept_a_base_or_the_full_path() {
        assert_eq!(
            metrics_url("http://127.0.0.1:9464"),
            "http://127.0.0.1:9464/metrics"
        );
        assert_eq!(
            metrics_url("127.0.0.1:9464/"),
            "http://127.0.0.1:9464/metrics"
        );
        assert_eq!(metrics_url("http://h:1/metrics"), "http://h:1/metrics");
    }

    #[test]
    fn quantiles_interpolate_within_the_window() {
        let before = [(0.1, 10.0), (1.0, 10.0), (f64::INFINITY, 10.0)];
        // In the window: 10 observations ≤ 0.1 s, 10 in (0.1, 1] s.
        let after = [(0.1, 20.0), (1.0, 30.0), (f64::INFINITY, 30.0)];
        assert_eq!(quantile(&before, &after, 0.5), Some(0.1));
        let p75 = quantile(&before, &after, 0.75).unwrap();
        assert!((p75 - 0.55).abs() < 1e-9, "{p75}");
        // Nothing new: the whole run's distribution.
        let whole_run = quantile(&after, &after, 0.5).unwrap();
        assert!((whole_run - 0.075).abs() < 1e-9, "{whole_run}");
        assert_eq!(quantile(&[], &[], 0.5), None);
    }
}
