//! The dashboard in a real headless Chromium: a wrong password gets nothing, the
//! right one shows the numbers of the chosen range, and a screenshot is saved
//! under target/ (`target/tmp/dashboard.png`).
//!
//! Chromium is driven over its DevTools pipe (`--remote-debugging-pipe`: JSON
//! messages ending in NUL on file descriptors 3 and 4), so no WebDriver is needed.
//! It comes from Debian's `chromium` package; `make test` installs it.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tweetpipe::config::DashboardConfig;
use tweetpipe::dashboard::{Aggregates, Dashboard, auth, save_state, unix_now};
use tweetpipe::metrics::Metrics;
use tweetpipe::post::Post;

const PASSWORD: &str = "browser passphrase";

struct Browser {
    child: Child,
    /// Chromium's stderr, shown when it exits without answering.
    log: std::path::PathBuf,
    input: ChildStdin,
    replies: mpsc::Receiver<Value>,
    next_id: u64,
    session: Option<String>,
}

impl Browser {
    /// Chromium, once it has answered: a start that exits before its first
    /// answer (seen on a loaded machine) is tried again, up to three times.
    fn start(profile: &std::path::Path) -> Browser {
        for attempt in 1..=3 {
            let mut browser = Browser::spawn(profile, attempt);
            match browser.try_call("Browser.getVersion", json!({})) {
                Ok(_) => return browser,
                Err(why) if attempt < 3 => {
                    eprintln!("Chromium start {attempt}: {why}; trying again")
                }
                Err(why) => panic!("Chromium did not start: {why}"),
            }
        }
        unreachable!("the last attempt returns or panics")
    }

    fn spawn(profile: &std::path::Path, attempt: u32) -> Browser {
        let profile = profile.join(attempt.to_string());
        std::fs::create_dir_all(&profile).unwrap();
        let log = profile.join("chromium.log");
        let script = format!(
            "exec chromium --headless --no-sandbox --disable-gpu --disable-background-networking --no-first-run --window-size=1280,1700 --user-data-dir={} --remote-debugging-pipe about:blank 3<&0 4>&1 0</dev/null 1>/dev/null 2>{}",
            profile.display(),
            log.display()
        );
        let mut child = Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let input = child.stdin.take().unwrap();
        let output = child.stdout.take().unwrap();
        let (sender, replies) = mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(output);
            loop {
                let mut message = Vec::new();
                match reader.read_until(0, &mut message) {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
                message.pop();
                if let Ok(value) = serde_json::from_slice::<Value>(&message)
                    && sender.send(value).is_err()
                {
                    return;
                }
            }
        });
        Browser {
            child,
            log,
            input,
            replies,
            next_id: 0,
            session: None,
        }
    }

    fn call(&mut self, method: &str, params: Value) -> Value {
        self.try_call(method, params).unwrap_or_else(|why| {
            panic!("{why} (is Debian's `chromium` installed? `make test` installs it)")
        })
    }

    /// Sends `method` and waits for its answer; the reason when none comes.
    fn try_call(&mut self, method: &str, params: Value) -> Result<Value, String> {
        self.next_id += 1;
        let id = self.next_id;
        let mut message = json!({ "id": id, "method": method, "params": params });
        if let Some(session) = &self.session {
            message["sessionId"] = json!(session);
        }
        let mut bytes = serde_json::to_vec(&message).unwrap();
        bytes.push(0);
        let sent = self
            .input
            .write_all(&bytes)
            .and_then(|()| self.input.flush());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let reply = match (&sent, self.replies.recv_timeout(left)) {
                (Ok(()), Ok(reply)) => reply,
                (_, Err(mpsc::RecvTimeoutError::Timeout)) => {
                    return Err(format!("Chromium did not answer {method} within 30 s"));
                }
                _ => {
                    let status = self.child.try_wait().ok().flatten();
                    let log = std::fs::read_to_string(&self.log).unwrap_or_default();
                    let tail: Vec<&str> = log.lines().rev().take(15).collect();
                    return Err(format!(
                        "Chromium exited before it answered {method} (status {status:?}); its stderr ends:\n{}",
                        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
                    ));
                }
            };
            if reply["id"] == json!(id) {
                assert!(reply.get("error").is_none(), "{method}: {reply}");
                return Ok(reply["result"].clone());
            }
        }
    }

    fn eval(&mut self, expression: &str) -> Value {
        let result = self.call(
            "Runtime.evaluate",
            json!({ "expression": expression, "returnByValue": true }),
        );
        result["result"]["value"].clone()
    }

    /// Waits until `expression` evaluates to `want`.
    fn wait_for(&mut self, expression: &str, want: Value) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let got = self.eval(expression);
            if got == want {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "`{expression}` is {got}, expected {want}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn post(id: &str, tag: &str, lang: &str) -> Post {
    let mut post = Post {
        id: id.to_owned(),
        lang: lang.to_owned(),
        text: format!("post number {id} about #{tag}"),
        hashtags: vec![tag.to_owned()],
        ..Post::default()
    };
    post.author.username = format!("user{id}");
    post.attrs.insert(
        Arc::from("sentiment_compound"),
        tweetpipe::post::AttrValue::Float(0.5),
    );
    post
}

#[test]
fn a_headless_chromium_logs_in_and_sees_the_numbers_of_the_chosen_range() {
    let dir = tempfile::tempdir().unwrap();
    let now = unix_now();
    let mut aggregates = Aggregates::default();
    aggregates.commit(
        now - 5 * 3600,
        &[post("1", "older", "pt"), post("2", "older", "pt")],
        &[],
    );
    aggregates.commit(now - 600, &[post("3", "newest", "en")], &[]);
    save_state(&dir.path().join("dashboard.json"), &aggregates).unwrap();
    let config = DashboardConfig {
        enabled: true,
        listen: "127.0.0.1:0".parse().unwrap(),
        user: "ana".to_owned(),
        password_hash: Some(auth::hash_password(PASSWORD).unwrap()),
        state_file: Some(dir.path().join("dashboard.json")),
        ..DashboardConfig::default()
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let metrics = Arc::new(Metrics::new());
    let dashboard = runtime
        .block_on(Dashboard::start(&config, metrics.clone()))
        .unwrap();
    let url = format!("http://{}/", dashboard.addr());

    let mut browser = Browser::start(&dir.path().join("profile"));
    let target = browser.call("Target.createTarget", json!({ "url": "about:blank" }));
    let attached = browser.call(
        "Target.attachToTarget",
        json!({ "targetId": target["targetId"], "flatten": true }),
    );
    browser.session = Some(attached["sessionId"].as_str().unwrap().to_owned());
    browser.call("Page.enable", json!({}));
    browser.call(
        "Emulation.setDeviceMetricsOverride",
        json!({ "width": 1280, "height": 1700, "deviceScaleFactor": 1, "mobile": false }),
    );
    browser.call("Page.navigate", json!({ "url": url }));
    browser.wait_for("document.getElementById('login').hidden", json!(false));
    browser.wait_for("document.getElementById('app').hidden", json!(true));

    // A wrong password: an error, no data, no cookie.
    let submit = |user: &str, password: &str| {
        format!(
            "document.getElementById('user').value = {user:?}; document.getElementById('password').value = {password:?}; document.getElementById('login').requestSubmit(); true"
        )
    };
    browser.eval(&submit("ana", "wrong"));
    browser.wait_for(
        "document.getElementById('login-error').textContent",
        json!("wrong user or password"),
    );
    browser.wait_for("document.getElementById('app').hidden", json!(true));
    let status = browser.call(
        "Runtime.evaluate",
        json!({ "expression": "fetch('/api/summary').then(r => r.status)", "awaitPromise": true, "returnByValue": true }),
    );
    assert_eq!(status["result"]["value"], json!(401));

    // The right one: the last hour holds one post.
    browser.eval(&submit("ana", PASSWORD));
    browser.wait_for("document.getElementById('app').hidden", json!(false));
    browser.wait_for("!!document.body.dataset.loaded", json!(true));
    browser.wait_for(
        "document.getElementById('total-committed').textContent",
        json!("1"),
    );
    browser.wait_for(
        "document.querySelector('#top-hashtags td').textContent",
        json!("#newest"),
    );
    browser.wait_for(
        "document.querySelectorAll('#latest tr').length",
        json!(2), // the header and one post
    );
    browser.wait_for(
        "document.querySelectorAll('#posts-chart canvas').length > 0",
        json!(true),
    );

    // The last day holds all three, #older first, per minute.
    browser.eval("document.querySelector('[data-last=\"86400\"]').click(); true");
    browser.wait_for(
        "document.getElementById('posts-title').textContent",
        json!("Posts per minute"),
    );
    browser.wait_for(
        "document.getElementById('total-committed').textContent",
        json!("3"),
    );
    browser.wait_for(
        "document.querySelector('#top-hashtags td').textContent",
        json!("#older"),
    );
    browser.wait_for(
        "document.querySelector('#top-languages td').textContent",
        json!("pt"),
    );
    browser.wait_for(
        "document.getElementById('sentiment-chart').hidden",
        json!(false),
    );
    // The last 30 days come per hour.
    browser.eval("document.querySelector('[data-last=\"2592000\"]').click(); true");
    browser.wait_for(
        "document.getElementById('posts-title').textContent",
        json!("Posts per hour"),
    );
    browser.wait_for(
        "document.getElementById('total-committed').textContent",
        json!("3"),
    );
    browser.eval("document.querySelector('[data-last=\"86400\"]').click(); true");
    browser.wait_for(
        "document.getElementById('posts-title').textContent",
        json!("Posts per minute"),
    );

    let shot = browser.call("Page.captureScreenshot", json!({ "format": "png" }));
    let png = decode_base64(shot["data"].as_str().unwrap());
    assert!(png.starts_with(b"\x89PNG"), "not a PNG");
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard.png");
    std::fs::write(&path, &png).unwrap();
    eprintln!("screenshot: {}", path.display());
    drop(browser);
    runtime.block_on(dashboard.stop(&metrics));
}

fn decode_base64(text: &str) -> Vec<u8> {
    let value = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => u32::from(c - b'A'),
            b'a'..=b'z' => u32::from(c - b'a') + 26,
            b'0'..=b'9' => u32::from(c - b'0') + 52,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("not base64: {c}"),
        }
    };
    let bytes: Vec<u8> = text.bytes().filter(|c| *c != b'=').collect();
    let mut out = Vec::with_capacity(bytes.len() * 3 / 4);
    for chunk in bytes.chunks(4) {
        let mut n = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            n |= value(*c) << (18 - 6 * i);
        }
        out.push((n >> 16) as u8);
        if chunk.len() > 2 {
            out.push((n >> 8) as u8);
        }
        if chunk.len() > 3 {
            out.push(n as u8);
        }
    }
    out
}
