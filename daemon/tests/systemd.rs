//! The real binary under a fake service manager: a Unix datagram socket at
//! `NOTIFY_SOCKET` receives what systemd would (READY, STATUS, WATCHDOG,
//! RELOADING, STOPPING), and the drain after SIGTERM is bounded.

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use tweetpipe::sample::{SampleOptions, write_sample};

const BIN: &str = env!("CARGO_BIN_EXE_tweetpipe");

/// A scratch directory with sample posts, a config and the notify socket.
struct Daemon {
    dir: tempfile::TempDir,
    socket: UnixDatagram,
    child: Option<Child>,
}

impl Daemon {
    /// Writes `posts.jsonl` and a config whose source and sink tables are `source_sink`.
    fn new(source_sink: &str, drain_timeout_ms: u64) -> Daemon {
        let dir = tempfile::tempdir().unwrap();
        let mut posts = std::fs::File::create(dir.path().join("posts.jsonl")).unwrap();
        write_sample(
            &SampleOptions {
                count: 300,
                seed: 7,
                ..SampleOptions::default()
            },
            &mut posts,
        )
        .unwrap();
        let config = format!(
            r#"
{source_sink}

[batch]
max_rows = 50
max_age_ms = 100

[dead_letter]
path = "dead-letters.jsonl"

[daemon]
drain_timeout_ms = {drain_timeout_ms}
"#
        );
        std::fs::write(dir.path().join("tweetpipe.toml"), config).unwrap();
        let socket = UnixDatagram::bind(dir.path().join("notify.sock")).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        Daemon {
            dir,
            socket,
            child: None,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Starts `tweetpipe run` with `NOTIFY_SOCKET` and `WATCHDOG_USEC` set.
    fn start(&mut self, watchdog: Duration, stdout: Stdio) {
        let stderr = std::fs::File::create(self.path("stderr.log")).unwrap();
        let child = Command::new(BIN)
            .args(["run", "--quiet", "--config"])
            .arg(self.path("tweetpipe.toml"))
            .env("NOTIFY_SOCKET", self.path("notify.sock"))
            .env("WATCHDOG_USEC", watchdog.as_micros().to_string())
            .env_remove("WATCHDOG_PID")
            .env_remove("RUST_LOG")
            .env_remove("JOURNAL_STREAM")
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr)
            .spawn()
            .unwrap();
        self.child = Some(child);
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(self.path("stderr.log")).unwrap_or_default()
    }

    /// Receives datagrams until one has a line satisfying `wanted`; returns every
    /// datagram received on the way (the matching one last).
    fn wait_for(
        &self,
        what: &str,
        timeout: Duration,
        wanted: impl Fn(&str) -> bool,
    ) -> Vec<String> {
        let deadline = Instant::now() + timeout;
        let mut seen = Vec::new();
        while Instant::now() < deadline {
            if let Some(message) = self.recv() {
                let hit = message.lines().any(&wanted);
                seen.push(message);
                if hit {
                    return seen;
                }
            }
        }
        panic!(
            "no {what} within {timeout:?}; received {seen:#?}\nstderr:\n{}",
            self.stderr()
        );
    }

    fn recv(&self) -> Option<String> {
        let mut buffer = [0u8; 4096];
        match self.socket.recv(&mut buffer) {
            Ok(len) => Some(String::from_utf8_lossy(&buffer[..len]).into_owned()),
            Err(error)
                if matches!(
                    error.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                None
            }
            Err(error) => panic!("recv on the notify socket: {error}"),
        }
    }

    fn signal(&self, name: &str) {
        let pid = self.child.as_ref().unwrap().id().to_string();
        let status = Command::new("kill")
            .args([&format!("-{name}"), &pid])
            .status()
            .expect("the `kill` command (procps) is needed by this test");
        assert!(status.success(), "kill -{name} {pid} failed");
    }

    fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        let child = self.child.as_mut().unwrap();
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                panic!(
                    "tweetpipe did not exit within {timeout:?}; stderr:\n{}",
                    self.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn has_line(message: &str, line: &str) -> bool {
    message.lines().any(|candidate| candidate == line)
}

fn replay(path: &Path) -> String {
    format!(
        "[source.replay]\npath = \"{}\"\nloop = true",
        path.display()
    )
}

#[test]
fn notifies_ready_status_watchdog_reloading_and_stopping() {
    let mut daemon = Daemon::new("", 5_000);
    let config = format!(
        "{}\nrate = 200.0\n\n[sink.sqlite]\npath = \"out/posts.db\"\n",
        replay(&daemon.path("posts.jsonl"))
    );
    let text = std::fs::read_to_string(daemon.path("tweetpipe.toml")).unwrap();
    std::fs::write(daemon.path("tweetpipe.toml"), format!("{config}{text}")).unwrap();
    daemon.start(Duration::from_millis(400), Stdio::null());

    let startup = Duration::from_secs(60);
    daemon.wait_for("READY=1", startup, |line| line == "READY=1");
    // A status line with a rate; the first one says the pipeline is waiting for posts.
    daemon.wait_for("a throughput STATUS", Duration::from_secs(15), |line| {
        line.starts_with("STATUS=running: ") && line.contains(" posts/s; ")
    });

    // WATCHDOG_USEC = 400 ms: pings every 200 ms, from the pipeline's loop.
    let started = Instant::now();
    let mut pings = 0;
    while started.elapsed() < Duration::from_secs(2) {
        if daemon
            .recv()
            .is_some_and(|message| has_line(&message, "WATCHDOG=1"))
        {
            pings += 1;
        }
    }
    assert!(
        (5..=20).contains(&pings),
        "expected about 10 WATCHDOG=1 in 2 s at half of WATCHDOG_USEC=400ms, got {pings}"
    );

    daemon.signal("HUP");
    let reload = daemon.wait_for("RELOADING=1", Duration::from_secs(10), |line| {
        line == "RELOADING=1"
    });
    let reloading = reload.last().unwrap();
    assert!(
        reloading
            .lines()
            .any(|line| line.starts_with("MONOTONIC_USEC=")),
        "RELOADING=1 without MONOTONIC_USEC: {reloading:?}"
    );
    let after = daemon.wait_for(
        "READY=1 after the reload",
        Duration::from_secs(30),
        |line| line == "READY=1",
    );
    assert!(
        after
            .last()
            .unwrap()
            .contains("STATUS=running: reloaded config applied"),
        "{after:?}"
    );
    // Still running and pinging after the reload.
    daemon.wait_for(
        "WATCHDOG=1 after the reload",
        Duration::from_secs(5),
        |line| line == "WATCHDOG=1",
    );

    daemon.signal("TERM");
    daemon.wait_for("STOPPING=1", Duration::from_secs(10), |line| {
        line == "STOPPING=1"
    });
    let status = daemon.wait_exit(Duration::from_secs(10));
    assert!(
        status.success(),
        "exit {status:?}; stderr:\n{}",
        daemon.stderr()
    );
    let stderr = daemon.stderr();
    assert!(
        stderr.contains("reload: ") && stderr.contains(" applied: 0 plugin change(s)"),
        "the reload log must say the re-read config was applied (nothing changed):\n{stderr}"
    );
}

#[test]
fn a_reload_with_a_broken_config_keeps_running_and_says_so() {
    let mut daemon = Daemon::new("", 5_000);
    let config = format!(
        "{}\nrate = 100.0\n\n[sink.sqlite]\npath = \"out/posts.db\"\n",
        replay(&daemon.path("posts.jsonl"))
    );
    let text = std::fs::read_to_string(daemon.path("tweetpipe.toml")).unwrap();
    let good = format!("{config}{text}");
    std::fs::write(daemon.path("tweetpipe.toml"), &good).unwrap();
    daemon.start(Duration::from_secs(10), Stdio::null());
    daemon.wait_for("READY=1", Duration::from_secs(60), |line| line == "READY=1");

    std::fs::write(
        daemon.path("tweetpipe.toml"),
        good.replace("max_rows = 50", "max_rowz = 50"),
    )
    .unwrap();
    daemon.signal("HUP");
    let after = daemon.wait_for(
        "READY=1 after the reload",
        Duration::from_secs(30),
        |line| line == "READY=1",
    );
    assert!(
        after.last().unwrap().contains("reloaded config is invalid"),
        "{after:?}"
    );
    daemon.signal("TERM");
    let status = daemon.wait_exit(Duration::from_secs(10));
    assert!(status.success(), "exit {status:?}");
    let stderr = daemon.stderr();
    assert!(
        stderr.contains("max_rowz") && stderr.contains("keeps running as started"),
        "the reload error must name the key and say nothing changed:\n{stderr}"
    );
}

/// A sink that blocks forever (stdout into a pipe nobody reads) stops the
/// watchdog pings, so systemd would restart the service; SIGTERM then gives up
/// after `drain_timeout_ms` instead of hanging until SIGKILL.
#[test]
fn a_stuck_sink_stops_the_watchdog_and_the_drain_is_bounded() {
    let mut daemon = Daemon::new("", 1_000);
    let config = format!(
        "{}\n\n[sink.stdout]\nstore_raw = true\n",
        replay(&daemon.path("posts.jsonl"))
    );
    let text = std::fs::read_to_string(daemon.path("tweetpipe.toml")).unwrap();
    std::fs::write(daemon.path("tweetpipe.toml"), format!("{config}{text}")).unwrap();
    // Piped and never read: the pipe buffer (64 KiB) fills within the first batches.
    daemon.start(Duration::from_millis(400), Stdio::piped());
    daemon.wait_for("READY=1", Duration::from_secs(60), |line| line == "READY=1");

    // Pings stop: find a 2 s window without WATCHDOG=1 (they come every 200 ms while alive).
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last_ping = Instant::now();
    loop {
        if daemon
            .recv()
            .is_some_and(|message| has_line(&message, "WATCHDOG=1"))
        {
            last_ping = Instant::now();
        }
        if last_ping.elapsed() >= Duration::from_secs(2) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "WATCHDOG=1 kept coming although the sink is blocked"
        );
    }

    let stop = Instant::now();
    daemon.signal("TERM");
    daemon.wait_for("STOPPING=1", Duration::from_secs(5), |line| {
        line == "STOPPING=1"
    });
    let status = daemon.wait_exit(Duration::from_secs(10));
    let took = stop.elapsed();
    assert_eq!(status.code(), Some(1), "stderr:\n{}", daemon.stderr());
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(6),
        "the drain gave up after {took:?}, expected about drain_timeout_ms = 1000 (+1 s runtime shutdown)"
    );
    let stderr = daemon.stderr();
    assert!(
        stderr.contains("daemon.drain_timeout_ms = 1000"),
        "the log must name the setting:\n{stderr}"
    );
}
