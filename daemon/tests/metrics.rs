//! The metrics endpoint, `/readyz` and `tweetpipe top`, against real pipeline runs.
//!
//! `/metrics` is read with a strict OpenMetrics parser (`openmetrics-parser`), so
//! a malformed exposition fails the test rather than being skipped over.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use openmetrics_parser::{MetricsExposition, OpenMetricsType, OpenMetricsValue};
use tweetpipe::config::Config;
use tweetpipe::metrics::{Metrics, server};
use tweetpipe::pipeline::{self, NoObserver};
use tweetpipe::plugins::LoadedChain;
use tweetpipe::sample::{SampleOptions, write_sample};

mod support;

use support::wasm::plugin as wasm;

const BIN: &str = env!("CARGO_BIN_EXE_tweetpipe");

/// A scratch directory with `count` sample posts.
fn scenario(count: usize) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let mut file = std::fs::File::create(dir.path().join("posts.jsonl")).unwrap();
    write_sample(
        &SampleOptions {
            count,
            seed: 7,
            ..SampleOptions::default()
        },
        &mut file,
    )
    .unwrap();
    dir
}

/// The id of the `nth` decodable post of the sample.
fn nth_post_id(dir: &Path, nth: usize) -> String {
    let text = std::fs::read_to_string(dir.join("posts.jsonl")).unwrap();
    text.lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter_map(|value| value["data"]["id"].as_str().map(str::to_owned))
        .nth(nth)
        .unwrap()
}

type Exposition = MetricsExposition<OpenMetricsType, OpenMetricsValue>;

/// Parses the exposition strictly; panics with the text on any error.
fn parse(text: &str) -> Exposition {
    assert!(text.ends_with("# EOF\n"), "no `# EOF` terminator:\n{text}");
    openmetrics_parser::openmetrics::parse_openmetrics(text)
        .unwrap_or_else(|error| panic!("invalid OpenMetrics ({error:?}):\n{text}"))
}

/// The sum of a family's samples whose labels include `filter` (a histogram
/// counts its observations); panics when the family is missing.
fn value(exposition: &Exposition, family: &str, filter: &[(&str, &str)]) -> f64 {
    let family = exposition
        .families
        .get(family)
        .unwrap_or_else(|| panic!("no metric family {family}"));
    family
        .iter_samples()
        .filter(|sample| {
            let labels = sample.get_labelset().unwrap();
            filter
                .iter()
                .all(|(key, value)| labels.get_label_value(key) == Some(*value))
        })
        .map(|sample| match &sample.value {
            OpenMetricsValue::Counter(counter) => counter.value.as_f64(),
            OpenMetricsValue::Gauge(gauge) | OpenMetricsValue::Unknown(gauge) => gauge.as_f64(),
            OpenMetricsValue::Histogram(histogram) => histogram.count.unwrap_or(0) as f64,
            other => panic!("unexpected value {other:?}"),
        })
        .sum()
}

/// `GET path` over HTTP/1.1; (status, content type, body).
fn get(addr: &str, path: &str) -> (u16, String, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let content_type = head
        .lines()
        .find_map(|line| line.strip_prefix("content-type: "))
        .unwrap_or_default()
        .to_owned();
    (status, content_type, body.to_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_scraped_during_and_after_a_replay_run_add_up() {
    let dir = scenario(1500);
    let poison = nth_post_id(dir.path(), 10);
    std::fs::write(
        dir.path().join("tweetpipe.toml"),
        format!(
            r#"
[source.replay]
path = "posts.jsonl"
rate = 1500

[[plugins]]
path = "{}"

[[plugins]]
path = "{}"
config = {{ poison = "{poison}" }}

[batch]
max_rows = 100
max_age_ms = 100

[sink.sqlite]
path = "out/posts.db"

[dead_letter]
path = "out/dead.jsonl"
"#,
            wasm("drop_retweets").display(),
            wasm("hostile_fail").display()
        ),
    )
    .unwrap();
    let config = Config::load(&dir.path().join("tweetpipe.toml")).unwrap();
    let chain = LoadedChain::load(&config.plugins).unwrap();

    let metrics = Arc::new(Metrics::new());
    let listener = server::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let server = server::spawn(listener, metrics.clone());
    let run = tokio::spawn({
        let metrics = metrics.clone();
        async move {
            pipeline::run_with_metrics(
                &config,
                chain,
                std::future::pending(),
                Arc::new(NoObserver),
                metrics,
            )
            .await
        }
    });

    // While posts flow: valid text, the pipeline is up, and nothing is counted
    // downstream that did not come from upstream.
    let mut scraped_while_running = 0;
    while !run.is_finished() {
        let addr = addr.clone();
        let (status, content_type, text) =
            tokio::task::spawn_blocking(move || get(&addr, "/metrics"))
                .await
                .unwrap();
        assert_eq!(status, 200);
        assert!(
            content_type.starts_with("application/openmetrics-text"),
            "{content_type}"
        );
        let m = parse(&text);
        if value(&m, "tweetpipe_up", &[]) == 1.0
            && value(&m, "tweetpipe_plugin_posts_in", &[]) > 0.0
        {
            scraped_while_running += 1;
            let received = value(&m, "tweetpipe_source_posts_received", &[]);
            let published = value(&m, "tweetpipe_broker_published", &[]);
            let first_in = value(
                &m,
                "tweetpipe_plugin_posts_in",
                &[("plugin", "drop_retweets")],
            );
            let acked = value(&m, "tweetpipe_broker_acked", &[]);
            assert!(published <= received, "{published} > {received}");
            assert!(first_in <= published, "{first_in} > {published}");
            assert!(acked <= published, "{acked} > {published}");
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    assert!(
        scraped_while_running >= 2,
        "only {scraped_while_running} scrapes saw posts flowing"
    );
    let outcome = run.await.unwrap().unwrap();

    // After the drain, every message is settled and every count balances.
    let m = parse(&metrics.encode().unwrap());
    let v = |family: &str, filter: &[(&str, &str)]| value(&m, family, filter);
    assert_eq!(v("tweetpipe_up", &[]), 0.0);
    let received = v("tweetpipe_source_posts_received", &[("source", "replay")]);
    let lines = std::fs::read_to_string(dir.path().join("posts.jsonl"))
        .unwrap()
        .lines()
        .filter(|line| !line.trim().is_empty())
        .count();
    assert_eq!(received, lines as f64);
    assert_eq!(received, outcome.stats.read as f64);
    assert_eq!(v("tweetpipe_broker_published", &[]), received);
    assert_eq!(v("tweetpipe_broker_acked", &[]), received);
    assert_eq!(v("tweetpipe_broker_nacked", &[]), 0.0);

    // Per plugin: in = passed + dropped + failed; the chain hands on what passed.
    let malformed = v("tweetpipe_decode_malformed", &[]);
    assert!(malformed > 0.0, "the sample has malformed lines");
    let mut expected_in = received - malformed;
    for plugin in ["drop_retweets", "hostile_fail"] {
        let p = [("plugin", plugin)];
        let posts_in = v("tweetpipe_plugin_posts_in", &p);
        let passed = v("tweetpipe_plugin_posts_passed", &p);
        let dropped = v("tweetpipe_plugin_posts_dropped", &p);
        let failed = v("tweetpipe_plugin_posts_failed", &p);
        assert_eq!(posts_in, expected_in, "{plugin}: posts in");
        assert_eq!(posts_in, passed + dropped + failed, "{plugin}");
        assert!(v("tweetpipe_plugin_batch_duration_seconds", &p) > 0.0);
        assert_eq!(v("tweetpipe_plugin_info", &p), 1.0);
        expected_in = passed;
    }
    assert!(
        v(
            "tweetpipe_plugin_posts_dropped",
            &[("plugin", "drop_retweets")]
        ) > 0.0
    );
    assert_eq!(
        v(
            "tweetpipe_plugin_posts_failed",
            &[("plugin", "hostile_fail")]
        ),
        1.0
    );

    // Chain: in = kept + dropped + failed.
    let kept = v("tweetpipe_chain_posts", &[("outcome", "kept")]);
    let dropped = v("tweetpipe_chain_posts", &[("outcome", "dropped")]);
    let failed = v("tweetpipe_chain_posts", &[("outcome", "failed")]);
    assert_eq!(received - malformed, kept + dropped + failed);
    assert_eq!(kept, expected_in);

    // Sink and dead letters: written + duplicates + dead-lettered + dropped = in.
    let written = v("tweetpipe_sink_rows", &[("result", "written")]);
    let duplicates = v("tweetpipe_sink_rows", &[("result", "duplicate")]);
    let rejected = v("tweetpipe_sink_rows", &[("result", "rejected")]);
    let dead = v("tweetpipe_dead_letters", &[]);
    assert_eq!(written + duplicates + rejected, kept);
    assert_eq!(written + duplicates + dead + dropped, received);
    assert_eq!(
        v("tweetpipe_dead_letters", &[("stage", "decode")]),
        malformed
    );
    assert_eq!(v("tweetpipe_dead_letters", &[("stage", "plugin")]), 1.0);
    assert_eq!(dead, outcome.stats.dead_lettered as f64);
    let db = rusqlite::Connection::open(dir.path().join("out/posts.db")).unwrap();
    let rows: i64 = db
        .query_row("SELECT count(*) FROM posts", [], |row| row.get(0))
        .unwrap();
    assert_eq!(written, rows as f64, "written vs rows in the table");

    // Batches: every flush has a cause and a size; queues are empty.
    let flushes = v("tweetpipe_batch_flushes", &[]);
    assert_eq!(flushes, v("tweetpipe_sink_batches", &[]));
    assert_eq!(flushes, v("tweetpipe_batch_rows", &[]));
    assert_eq!(v("tweetpipe_sink_write_errors", &[]), 0.0);
    assert_eq!(v("tweetpipe_queue_depth", &[]), 0.0);
    server.abort();
}

/// A `tweetpipe run` child whose stderr lines are collected.
struct Daemon {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Daemon {
    fn start(config: &Path) -> Daemon {
        let mut child = Command::new(BIN)
            .args(["run", "--quiet", "--config"])
            .arg(config)
            .env_remove("NOTIFY_SOCKET")
            .env_remove("RUST_LOG")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        Daemon {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// The metrics address from the daemon's `metrics: serving http://…/metrics` log line.
    fn metrics_addr(&mut self) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(line) = self.lines.recv_timeout(Duration::from_millis(200)) {
                self.seen.push(line.clone());
                if let Some(rest) = line.split("metrics: serving http://").nth(1) {
                    return rest.split('/').next().unwrap().to_owned();
                }
            }
        }
        panic!("no metrics address logged:\n{}", self.seen.join("\n"));
    }

    fn stop(mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let status = self.child.wait().unwrap();
        assert!(status.success(), "{status}");
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A config replaying the sample forever at a steady rate, serving metrics on a free port.
fn looping_config(dir: &Path) -> PathBuf {
    let path = dir.join("tweetpipe.toml");
    std::fs::write(
        &path,
        format!(
            r#"
[source.replay]
path = "posts.jsonl"
rate = 300
loop = true

[[plugins]]
path = "{}"

[batch]
max_rows = 50
max_age_ms = 100

[sink.sqlite]
path = "out/posts.db"

[dead_letter]
path = "out/dead.jsonl"

[metrics]
listen = "127.0.0.1:0"

[logging]
level = "info"
"#,
            wasm("drop_retweets").display()
        ),
    )
    .unwrap();
    path
}

/// Polls `/readyz` until its status is `want`; returns the body.
fn wait_readyz(addr: &str, want: u16, timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        let (status, _, body) = get(addr, "/readyz");
        if status == want {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "/readyz stayed {status}, wanted {want}:\n{body}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn readyz_flips_while_the_sink_is_unreachable() {
    let dir = scenario(500);
    let mut daemon = Daemon::start(&looping_config(dir.path()));
    let addr = daemon.metrics_addr();
    assert_eq!(get(&addr, "/healthz").0, 200);
    let body = wait_readyz(&addr, 200, Duration::from_secs(30));
    assert!(body.starts_with("ready\n"), "{body}");
    assert!(body.contains("sink sqlite: reachable"), "{body}");

    // Another connection holds the database's write lock: every write fails busy.
    let db = rusqlite::Connection::open(dir.path().join("out/posts.db")).unwrap();
    db.busy_timeout(Duration::from_secs(30)).unwrap();
    db.execute_batch("BEGIN EXCLUSIVE").unwrap();
    let body = wait_readyz(&addr, 503, Duration::from_secs(60));
    assert!(body.starts_with("not ready\n"), "{body}");
    assert!(body.contains("sink sqlite: unreachable: "), "{body}");
    let m = parse(&get(&addr, "/metrics").2);
    assert_eq!(value(&m, "tweetpipe_ready", &[]), 0.0);
    assert_eq!(value(&m, "tweetpipe_sink_up", &[("sink", "sqlite")]), 0.0);
    assert!(value(&m, "tweetpipe_sink_write_errors", &[]) >= 1.0);

    db.execute_batch("ROLLBACK").unwrap();
    drop(db);
    let body = wait_readyz(&addr, 200, Duration::from_secs(60));
    assert!(body.contains("sink sqlite: reachable"), "{body}");
    let m = parse(&get(&addr, "/metrics").2);
    assert!(value(&m, "tweetpipe_sink_retries", &[]) >= 1.0);
    daemon.stop();
}

#[test]
fn top_once_draws_a_frame_of_a_running_daemon() {
    let dir = scenario(500);
    let mut daemon = Daemon::start(&looping_config(dir.path()));
    let addr = daemon.metrics_addr();
    wait_readyz(&addr, 200, Duration::from_secs(30));
    let output = Command::new(BIN)
        .args(["top", "--once", "--interval-ms", "500", "--metrics"])
        .arg(format!("http://{addr}"))
        .output()
        .unwrap();
    let frame = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{frame}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(frame.contains("pipeline up, ready"), "{frame}");
    let lines: HashMap<&str, &str> = frame
        .lines()
        .filter_map(|line| line.trim_start().split_once(' '))
        .collect();
    // The first numbers: posts/s in, the plugin's and the sink's rates.
    let first_number = |key: &str| -> f64 {
        lines
            .get(key)
            .unwrap_or_else(|| panic!("no `{key}` line in:\n{frame}"))
            .split_whitespace()
            .find_map(|word| word.parse().ok())
            .unwrap()
    };
    assert!(first_number("posts/s") > 0.0, "{frame}");
    assert!(first_number("drop_retweets") > 0.0, "{frame}");
    assert!(first_number("replay") > 0.0, "{frame}");
    assert!(frame.contains("sqlite"), "{frame}");
    assert!(frame.contains("QUEUES"), "{frame}");
    daemon.stop();

    // Nothing listening any more: a clear error and exit code 1.
    let output = Command::new(BIN)
        .args(["top", "--once", "--metrics"])
        .arg(format!("http://{addr}"))
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("cannot scrape http://{addr}/metrics")),
        "{stderr}"
    );
}

#[test]
fn metrics_config_errors_name_the_key() {
    let base = r#"
[source.replay]
path = "posts.jsonl"
[sink.stdout]
[dead_letter]
path = "dead.jsonl"
"#;
    let parse = |metrics: &str| Config::parse(&format!("{base}{metrics}"), Path::new("t.toml"));
    let config = parse("").unwrap();
    assert!(config.metrics.enabled);
    assert_eq!(config.metrics.listen.to_string(), "127.0.0.1:9464");
    assert!(
        !parse("[metrics]\nenabled = false\n")
            .unwrap()
            .metrics
            .enabled
    );

    let error = parse("[metrics]\nlisten = \"localhost\"\n")
        .unwrap_err()
        .to_string();
    assert!(error.contains("metrics.listen"), "{error}");
    assert!(error.contains("127.0.0.1:9464"), "{error}");
    let error = parse("[metrics]\nport = 9464\n").unwrap_err().to_string();
    assert!(
        error.contains("metrics") && error.contains("port"),
        "{error}"
    );
}

/// A swapped plugin is reported once, at the version now loaded: the old
/// version's `tweetpipe_plugin_info` series goes away.
#[test]
fn plugin_info_names_only_the_loaded_version_after_a_swap() {
    use tweetpipe::config::{OnError, PluginConfig};

    let entry = |file: &str| PluginConfig {
        name: Some("tagger".to_owned()),
        path: wasm(file),
        config: toml::Table::new(),
        on_error: OnError::DeadLetter,
        timeout: None,
        memory_mb: None,
        max_result_mb: None,
        max_post_kb: None,
        self_check: None,
    };
    let one = LoadedChain::load(&[entry("tag_one")]).unwrap();
    let two = LoadedChain::load(&[entry("tag_two")]).unwrap();
    let sha256 = |chain: &LoadedChain| chain.versions()[0].2.clone();
    assert_ne!(sha256(&one), sha256(&two));
    let info_lines = |metrics: &Metrics| -> Vec<String> {
        let text = metrics.encode().unwrap();
        parse(&text);
        text.lines()
            .filter(|line| line.starts_with("tweetpipe_plugin_info{"))
            .map(str::to_owned)
            .collect()
    };

    let metrics = Metrics::new();
    metrics.chain_observer(&one);
    metrics.chain_observer(&one);
    let lines = info_lines(&metrics);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].contains(&sha256(&one)), "{lines:?}");

    metrics.chain_observer(&two);
    let lines = info_lines(&metrics);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].contains(&sha256(&two)), "{lines:?}");
    assert!(lines[0].ends_with(" 1"), "{lines:?}");

    metrics.chain_observer(&one);
    let lines = info_lines(&metrics);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(lines[0].contains(&sha256(&one)), "{lines:?}");
}
