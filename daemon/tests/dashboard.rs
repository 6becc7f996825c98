//! The dashboard over HTTP, as a browser or an attacker sees it: the login, its
//! cookie and rate limit, 401s without a session, date ranges, and aggregates
//! that survive a restart.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tweetpipe::config::DashboardConfig;
use tweetpipe::dashboard::aggregate::{HOUR_WINDOW, MINUTE_WINDOW};
use tweetpipe::dashboard::{Aggregates, Dashboard, auth, save_state, unix_now};
use tweetpipe::metrics::Metrics;
use tweetpipe::post::Post;

mod support;

const PASSWORD: &str = "correct horse battery";

fn config(dir: &Path, attempts: u32) -> DashboardConfig {
    DashboardConfig {
        enabled: true,
        listen: "127.0.0.1:0".parse().unwrap(),
        user: "ana".to_owned(),
        password_hash: Some(auth::hash_password(PASSWORD).unwrap()),
        state_file: Some(dir.join("dashboard.json")),
        login_attempts_per_minute: attempts,
        ..DashboardConfig::default()
    }
}

struct Reply {
    status: u16,
    head: String,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.eq_ignore_ascii_case(name).then(|| value.trim())
        })
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|error| panic!("{error}: {}", self.body))
    }
}

async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    cookie: Option<&str>,
    body: &str,
) -> Reply {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let cookie = cookie.map_or(String::new(), |cookie| format!("Cookie: {cookie}\r\n"));
    let text = format!(
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n{cookie}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(text.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    let raw = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    Reply {
        status,
        head: head.to_owned(),
        body: body.to_owned(),
    }
}

/// Logs in and returns the `name=value` of the session cookie.
async fn login(addr: SocketAddr) -> String {
    let reply = request(
        addr,
        "POST",
        "/api/login",
        None,
        &format!(r#"{{"user":"ana","password":"{PASSWORD}"}}"#),
    )
    .await;
    assert_eq!(reply.status, 204, "{}", reply.body);
    let cookie = reply.header("set-cookie").unwrap();
    cookie.split(';').next().unwrap().to_owned()
}

fn post(id: &str, tag: &str, lang: &str, sentiment: f64) -> Post {
    let mut post = Post {
        id: id.to_owned(),
        lang: lang.to_owned(),
        text: format!("post {id} #{tag}"),
        hashtags: vec![tag.to_owned()],
        ..Post::default()
    };
    post.author.username = format!("user{id}");
    post.attrs.insert(
        Arc::from("sentiment_compound"),
        tweetpipe::post::AttrValue::Float(sentiment),
    );
    post
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_data_endpoint_needs_a_session_and_the_cookie_is_locked_down() {
    let dir = tempfile::tempdir().unwrap();
    let metrics = Arc::new(Metrics::new());
    let dashboard = Dashboard::start(&config(dir.path(), 5), metrics.clone())
        .await
        .unwrap();
    let addr = dashboard.addr();

    for path in [
        "/api/summary",
        "/api/summary?from=0&to=10",
        "/api/status",
        "/api/session",
    ] {
        let reply = request(addr, "GET", path, None, "").await;
        assert_eq!(reply.status, 401, "{path} without a session");
        let forged = request(
            addr,
            "GET",
            path,
            Some("tweetpipe_session=00000000000000000000000000000000"),
            "",
        )
        .await;
        assert_eq!(forged.status, 401, "{path} with a forged session");
    }
    // The page itself carries no data and loads without a session.
    let page = request(addr, "GET", "/", None, "").await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("/assets/uPlot.iife.min.js"));
    assert!(
        !page.body.contains("http://") && !page.body.contains("https://"),
        "no CDN"
    );
    let mut weight = page.body.len();
    for asset in [
        "/assets/app.js",
        "/assets/uPlot.iife.min.js",
        "/assets/uPlot.min.css",
    ] {
        let reply = request(addr, "GET", asset, None, "").await;
        assert_eq!(reply.status, 200, "{asset}");
        weight += reply.body.len();
    }
    assert!(weight < 500 * 1024, "the page weighs {weight} bytes");
    let license = request(addr, "GET", "/assets/uPlot.LICENSE", None, "").await;
    assert!(license.body.contains("MIT License"));

    let wrong = request(
        addr,
        "POST",
        "/api/login",
        None,
        r#"{"user":"ana","password":"wrong"}"#,
    )
    .await;
    assert_eq!(wrong.status, 401);
    assert!(wrong.header("set-cookie").is_none());
    let wrong_user = request(
        addr,
        "POST",
        "/api/login",
        None,
        &format!(r#"{{"user":"bob","password":"{PASSWORD}"}}"#),
    )
    .await;
    assert_eq!(wrong_user.status, 401);

    let reply = request(
        addr,
        "POST",
        "/api/login",
        None,
        &format!(r#"{{"user":"ana","password":"{PASSWORD}"}}"#),
    )
    .await;
    assert_eq!(reply.status, 204);
    let set_cookie = reply.header("set-cookie").unwrap().to_owned();
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=43200"] {
        assert!(set_cookie.contains(flag), "{flag} in {set_cookie}");
    }
    assert!(!set_cookie.contains("Secure"), "no TLS, no secure_cookie");
    let cookie = set_cookie.split(';').next().unwrap().to_owned();
    let status = request(addr, "GET", "/api/status", Some(&cookie), "").await;
    assert_eq!(status.status, 200);
    assert_eq!(status.header("cache-control"), Some("no-store"));
    assert!(
        status.json()["checks"][0]
            .as_str()
            .unwrap()
            .starts_with("pipeline:")
    );

    // Logging out ends the session on the server, not only in the browser.
    let out = request(addr, "POST", "/api/logout", Some(&cookie), "").await;
    assert_eq!(out.status, 204);
    let after = request(addr, "GET", "/api/summary", Some(&cookie), "").await;
    assert_eq!(after.status, 401);
    dashboard.stop(&metrics).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_logins_are_rate_limited_even_with_the_right_password_next() {
    let dir = tempfile::tempdir().unwrap();
    let metrics = Arc::new(Metrics::new());
    let dashboard = Dashboard::start(&config(dir.path(), 3), metrics.clone())
        .await
        .unwrap();
    let addr = dashboard.addr();
    for _ in 0..3 {
        let reply = request(
            addr,
            "POST",
            "/api/login",
            None,
            r#"{"user":"ana","password":"guess"}"#,
        )
        .await;
        assert_eq!(reply.status, 401);
    }
    let limited = request(
        addr,
        "POST",
        "/api/login",
        None,
        &format!(r#"{{"user":"ana","password":"{PASSWORD}"}}"#),
    )
    .await;
    assert_eq!(limited.status, 429);
    assert!(limited.header("set-cookie").is_none());
    let wait: u64 = limited.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&wait), "Retry-After {wait}");
    dashboard.stop(&metrics).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_date_range_selects_the_buckets_and_the_aggregates_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let now = unix_now();
    // Two hours ago: two posts tagged #old; ten minutes ago: one #new.
    let mut aggregates = Aggregates::default();
    aggregates.commit(
        now - 7200,
        &[post("1", "old", "pt", 0.5), post("2", "old", "pt", -0.1)],
        &[],
    );
    aggregates.commit(now - 600, &[post("3", "new", "en", 0.9)], &[]);
    save_state(&dir.path().join("dashboard.json"), &aggregates).unwrap();

    let metrics = Arc::new(Metrics::new());
    let dashboard = Dashboard::start(&config(dir.path(), 5), metrics.clone())
        .await
        .unwrap();
    let addr = dashboard.addr();
    let cookie = login(addr).await;
    let summary = |from: i64, to: i64| {
        let cookie = cookie.clone();
        async move {
            let reply = request(
                addr,
                "GET",
                &format!("/api/summary?from={from}&to={to}"),
                Some(&cookie),
                "",
            )
            .await;
            assert_eq!(reply.status, 200, "{}", reply.body);
            reply.json()
        }
    };

    let hour = summary(now - 3600, now + 1).await;
    assert_eq!(hour["step"], 60);
    assert_eq!(hour["totals"]["committed"], 1);
    assert_eq!(hour["hashtags"], serde_json::json!([["new", 1]]));
    assert_eq!(hour["latest"][0]["id"], "3");
    assert_eq!(hour["latest"].as_array().unwrap().len(), 1);
    assert!((hour["totals"]["sentiment"].as_f64().unwrap() - 0.9).abs() < 1e-9);

    let day = summary(now - 86_400 + 120, now + 1).await;
    assert_eq!(day["totals"]["committed"], 3);
    assert_eq!(day["hashtags"][0], serde_json::json!(["old", 2]));
    assert_eq!(day["languages"], serde_json::json!([["pt", 2], ["en", 1]]));

    // Three hours back to an hour back: only the old posts.
    let earlier = summary(now - 3 * 3600, now - 3600).await;
    assert_eq!(earlier["totals"]["committed"], 2);
    assert_eq!(earlier["hashtags"], serde_json::json!([["old", 2]]));

    // Beyond the minute window the answer comes per hour.
    let month = summary(now - 29 * 86_400, now + 1).await;
    assert_eq!(month["step"], 3600);
    assert_eq!(month["totals"]["committed"], 3);

    // RFC 3339 works as well as Unix seconds; a reversed range is refused.
    let from = chrono::DateTime::from_timestamp(now - 3600, 0)
        .unwrap()
        .to_rfc3339();
    let reply = request(
        addr,
        "GET",
        &format!("/api/summary?from={}", from.replace('+', "%2B")),
        Some(&cookie),
        "",
    )
    .await;
    assert_eq!(reply.json()["totals"]["committed"], 1);
    let reversed = request(addr, "GET", "/api/summary?from=10&to=5", Some(&cookie), "").await;
    assert_eq!(reversed.status, 400);

    // A batch the sink commits now counts, but its rejected rows do not.
    metrics.sink("sqlite").committed(
        &[
            post("4", "live", "de", 0.0),
            post("5", "rejected", "de", 0.0),
        ],
        &[tweetpipe::sinks::RejectedRow {
            index: 1,
            reason: "bad".to_owned(),
        }],
    );
    let live = summary(now - 60, unix_now() + 1).await;
    assert_eq!(live["hashtags"], serde_json::json!([["live", 1]]));

    // Stop (writes the state file) and start again: everything is still there.
    dashboard.stop(&metrics).await;
    let metrics = Arc::new(Metrics::new());
    let dashboard = Dashboard::start(&config(dir.path(), 5), metrics.clone())
        .await
        .unwrap();
    let addr = dashboard.addr();
    let cookie = login(addr).await;
    let reply = request(
        addr,
        "GET",
        &format!(
            "/api/summary?from={}&to={}",
            now - 86_400 + 120,
            unix_now() + 1
        ),
        Some(&cookie),
        "",
    )
    .await;
    let day = reply.json();
    assert_eq!(day["totals"]["committed"], 4);
    assert_eq!(day["hashtags"][0], serde_json::json!(["old", 2]));
    dashboard.stop(&metrics).await;
}

#[test]
fn the_state_file_stays_small_after_a_month_of_traffic() {
    let mut aggregates = Aggregates::default();
    // Every 5 minutes for 35 days up to now, a batch of posts with fresh hashtags each time.
    let steps = 35 * 24 * 12;
    let start = unix_now() - steps * 300;
    for step in 0..steps {
        let posts: Vec<Post> = (0..5)
            .map(|i| post(&format!("{step}-{i}"), &format!("tag{step}x{i}"), "en", 0.1))
            .collect();
        aggregates.commit(start + step * 300, &posts, &[]);
    }
    let end = start + (steps - 1) * 300;
    assert!(*aggregates.minutes.keys().next().unwrap() > end - MINUTE_WINDOW);
    assert!(*aggregates.hours.keys().next().unwrap() > end - HOUR_WINDOW);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dashboard.json");
    save_state(&path, &aggregates).unwrap();
    let size = std::fs::metadata(&path).unwrap().len();
    assert!(size < 8 * 1024 * 1024, "state file of {size} bytes");
    let loaded = tweetpipe::dashboard::load_state(&path).unwrap();
    // Loading prunes at the current time, which may have moved one bucket on.
    let keys = |buckets: &std::collections::BTreeMap<i64, _>| buckets.len();
    assert!(keys(&aggregates.minutes) - keys(&loaded.minutes) <= 1);
    assert_eq!(loaded.latest, aggregates.latest);
    let last = aggregates.minutes.keys().next_back().unwrap();
    assert_eq!(
        loaded.minutes[last].hashtags,
        aggregates.minutes[last].hashtags
    );
}

#[test]
fn a_corrupt_state_file_is_set_aside_and_the_charts_start_empty() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dashboard.json");
    std::fs::write(&path, "{not json").unwrap();
    let loaded = tweetpipe::dashboard::load_state(&path).unwrap();
    assert_eq!(loaded, Aggregates::default());
    assert!(dir.path().join("dashboard.json.corrupt").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_a_tls_proxy_the_cookie_is_secure() {
    let dir = tempfile::tempdir().unwrap();
    let metrics = Arc::new(Metrics::new());
    let config = DashboardConfig {
        secure_cookie: true,
        ..config(dir.path(), 5)
    };
    let dashboard = Dashboard::start(&config, metrics.clone()).await.unwrap();
    let reply = request(
        dashboard.addr(),
        "POST",
        "/api/login",
        None,
        &format!(r#"{{"user":"ana","password":"{PASSWORD}"}}"#),
    )
    .await;
    assert_eq!(reply.status, 204);
    let cookie = reply.header("set-cookie").unwrap();
    assert!(cookie.ends_with("; Secure"), "{cookie}");
    dashboard.stop(&metrics).await;
}

/// A free loopback port (bound, then released for the daemon).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_counts_what_its_sink_committed_and_keeps_it_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut file = std::fs::File::create(dir.path().join("posts.jsonl")).unwrap();
    tweetpipe::sample::write_sample(
        &tweetpipe::sample::SampleOptions {
            count: 300,
            seed: 11,
            ..Default::default()
        },
        &mut file,
    )
    .unwrap();
    let port = free_port();
    let hash = auth::hash_password(PASSWORD).unwrap();
    std::fs::write(
        dir.path().join("tweetpipe.toml"),
        format!(
            r#"
[source.replay]
path = "posts.jsonl"
[sink.sqlite]
path = "out/posts.db"
[dead_letter]
path = "out/dead.jsonl"
[metrics]
enabled = false
[dashboard]
enabled = true
listen = "127.0.0.1:{port}"
user = "ana"
password_hash = "{hash}"
state_file = "state/dashboard.json"
"#
        ),
    )
    .unwrap();
    let config_file = dir.path().join("tweetpipe.toml");
    let run = move || {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_tweetpipe"))
            .args(["run", "--quiet", "--config"])
            .arg(&config_file)
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    };
    // The replay ends, the daemon drains and writes the state file on the way out.
    tokio::task::spawn_blocking(run).await.unwrap();
    let db = rusqlite::Connection::open(dir.path().join("out/posts.db")).unwrap();
    let rows: i64 = db
        .query_row("select count(*) from posts", [], |row| row.get(0))
        .unwrap();
    let rows = rows as u64;
    assert!(rows > 200, "{rows} rows");
    let aggregates =
        tweetpipe::dashboard::load_state(&dir.path().join("state/dashboard.json")).unwrap();
    let view = aggregates.query(unix_now() - 3600, unix_now() + 1, unix_now());
    assert_eq!(view.totals.committed, rows);
    // Every line of the replay counts as read (the sample holds a few broken ones).
    let lines = std::fs::read_to_string(dir.path().join("posts.jsonl"))
        .unwrap()
        .lines()
        .filter(|line| !line.trim().is_empty())
        .count();
    assert_eq!(view.totals.read, lines as u64);
    let (tag, count): (String, i64) = db
        .query_row(
            "select lower(value), count(*) from posts, json_each(posts.hashtags) group by lower(value) order by count(*) desc, lower(value) limit 1",
            [],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .unwrap();
    assert_eq!(view.hashtags[0], (tag, count as u64));

    // Run again over the same posts (all duplicates now; `--from-start`, not
    // resuming after the last line): the first run's figures are still served,
    // behind the login, by the new process. Paced, so that it runs for a few
    // seconds.
    let config_path = dir.path().join("tweetpipe.toml");
    let text = std::fs::read_to_string(&config_path).unwrap();
    std::fs::write(
        &config_path,
        text.replace(
            "path = \"posts.jsonl\"",
            "path = \"posts.jsonl\"\nrate = 100.0",
        ),
    )
    .unwrap();
    let daemon = std::process::Command::new(env!("CARGO_BIN_EXE_tweetpipe"))
        .args(["run", "--quiet", "--from-start", "--config"])
        .arg(dir.path().join("tweetpipe.toml"))
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut cookie = None;
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            cookie = Some(login(addr).await);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let Some(cookie) = cookie else {
        panic!("the dashboard never listened on {addr}");
    };
    let reply = request(addr, "GET", "/api/summary", Some(&cookie), "").await;
    let summary = reply.json();
    assert!(summary["totals"]["committed"].as_u64().unwrap() >= rows);
    assert!(request(addr, "GET", "/api/summary", None, "").await.status == 401);
    let mut daemon = daemon;
    assert!(daemon.wait().unwrap().success());
}

#[test]
fn hash_password_prints_a_hash_the_login_accepts() {
    let (code, stdout, stderr) =
        support::cli::tweetpipe(&["dashboard", "hash-password"], "s3cret phrase\n");
    assert_eq!(code, 0, "{stderr}");
    let hash = stdout.trim();
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    assert!(!stdout.contains("s3cret"));
    let config = DashboardConfig {
        password_hash: Some(hash.to_owned()),
        ..DashboardConfig::default()
    };
    let credentials = auth::Credentials::load(&config).unwrap();
    assert!(credentials.verify("admin", "s3cret phrase"));
    let (code, _, stderr) = support::cli::tweetpipe(&["dashboard", "hash-password"], "");
    assert_eq!(code, 2);
    assert!(stderr.contains("no password"), "{stderr}");
}

#[test]
fn dashboard_config_mistakes_name_the_key_and_the_fix() {
    let parse = |dashboard: &str| {
        tweetpipe::config::Config::parse(
            &format!(
                "[source.replay]\npath = \"p.jsonl\"\n[sink.null]\n[dead_letter]\npath = \"d.jsonl\"\n[dashboard]\n{dashboard}"
            ),
            Path::new("t.toml"),
        )
    };
    let off = parse("").unwrap();
    assert!(!off.dashboard.enabled, "off by default");
    assert_eq!(off.dashboard.listen.ip().to_string(), "127.0.0.1");
    let unknown = parse("passwd = \"x\"").unwrap_err().to_string();
    assert!(unknown.contains("passwd"), "{unknown}");
    let half_tls = parse("tls_cert = \"c.pem\"").unwrap_err().to_string();
    assert!(half_tls.contains("dashboard.tls_key"), "{half_tls}");
    let both = parse("password_hash = \"x\"\npassword_hash_file = \"f\"")
        .unwrap_err()
        .to_string();
    assert!(both.contains("not both"), "{both}");
}

#[test]
fn an_enabled_dashboard_without_a_password_hash_is_refused_by_check_config() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("posts.jsonl"), "").unwrap();
    std::fs::write(
        dir.path().join("t.toml"),
        "[source.replay]\npath = \"posts.jsonl\"\n[sink.null]\n[dead_letter]\npath = \"d.jsonl\"\n[dashboard]\nenabled = true\n",
    )
    .unwrap();
    let config = dir.path().join("t.toml");
    let (code, _, stderr) =
        support::cli::tweetpipe(&["check-config", "--config", config.to_str().unwrap()], "");
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("hash-password"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_tls_cert_and_key_it_serves_https_and_the_cookie_is_secure() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    // A throwaway self-signed certificate (openssl is part of every Debian).
    let made = std::process::Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args([
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl makes the test certificate");
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let metrics = Arc::new(Metrics::new());
    let config = DashboardConfig {
        tls_cert: Some(cert.clone()),
        tls_key: Some(key),
        ..config(dir.path(), 5)
    };
    let dashboard = Dashboard::start(&config, metrics.clone()).await.unwrap();
    let base = format!("https://127.0.0.1:{}", dashboard.addr().port());
    // webpki refuses openssl's self-signed (CA) certificate as a server's own;
    // what is tested here is that the listener speaks TLS with it.
    let client = reqwest::Client::builder()
        .danger_accept_invalid_certs(true)
        .build()
        .unwrap();
    let denied = client
        .get(format!("{base}/api/summary"))
        .send()
        .await
        .unwrap();
    assert_eq!(denied.status(), 401);
    let login = client
        .post(format!("{base}/api/login"))
        .body(format!(r#"{{"user":"ana","password":"{PASSWORD}"}}"#))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 204);
    let cookie = login.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(cookie.contains("; Secure"), "{cookie}");
    // Plain HTTP on the TLS port gets no HTTP answer.
    let mut stream = tokio::net::TcpStream::connect(dashboard.addr())
        .await
        .unwrap();
    stream
        .write_all(b"GET /api/summary HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut raw = Vec::new();
    let _ = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        stream.read_to_end(&mut raw),
    )
    .await;
    assert!(!raw.starts_with(b"HTTP/"), "plain HTTP was answered");
    dashboard.stop(&metrics).await;
}
