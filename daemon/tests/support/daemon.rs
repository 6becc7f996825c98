//! The `tweetpipe` binary as a child process: one way to start it against a
//! fake X, signal it, and read its log and its `/metrics`.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use super::fake_x::TOKEN;

/// A running daemon; dropping it SIGKILLs it (a no-op once it has exited).
pub struct Daemon {
    child: Child,
    log: PathBuf,
}

impl Daemon {
    /// `tweetpipe run --quiet --config CONFIG`, its stderr in `log`, with the
    /// fake X's token and none of the environment that would point it
    /// elsewhere (systemd's directories, `RUST_LOG`, a Pub/Sub emulator).
    pub fn start(config: &Path, log: PathBuf) -> Daemon {
        let child = Command::new(env!("CARGO_BIN_EXE_tweetpipe"))
            .args(["run", "--quiet", "--config"])
            .arg(config)
            .env("TWEETPIPE_X_BEARER_TOKEN", TOKEN)
            .env_remove("CREDENTIALS_DIRECTORY")
            .env_remove("STATE_DIRECTORY")
            .env_remove("RUST_LOG")
            .env_remove("PUBSUB_EMULATOR_HOST")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Daemon { child, log }
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What it logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL: no drain, nothing saved at stop. Returns the log.
    pub fn sigkill(mut self) -> String {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        self.log()
    }

    /// Sends SIGTERM (the drain starts).
    pub fn sigterm(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits up to `limit` for it to exit by itself.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM, then the drain (up to `limit`); returns the exit status and log.
    pub fn terminate(mut self, limit: Duration) -> (Option<ExitStatus>, String) {
        self.sigterm();
        let status = self.wait_exit(limit);
        (status, self.log())
    }

    /// The `host:port` of its `/metrics`, from the log line that announces it
    /// (the config says `[metrics] listen = "127.0.0.1:0"`).
    pub fn metrics_addr(&self, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        loop {
            let found = self.log().lines().find_map(|line| {
                let rest = line.split("metrics: serving http://").nth(1)?;
                Some(rest.split("/metrics").next()?.to_owned())
            });
            if let Some(addr) = found {
                return addr;
            }
            assert!(
                Instant::now() < deadline,
                "no metrics address in:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `/metrics` page at `addr` (blocking; empty when it cannot be read).
pub fn scrape(addr: &str) -> String {
    let Ok(mut stream) = std::net::TcpStream::connect(addr) else {
        return String::new();
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let request = format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    if stream.write_all(request.as_bytes()).is_err() {
        return String::new();
    }
    let mut page = String::new();
    let _ = stream.read_to_string(&mut page);
    page
}

/// The value of the unlabelled series `name` on a Prometheus text page.
pub fn metric(page: &str, name: &str) -> Option<f64> {
    page.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|value| value.trim().parse().ok())
}

/// Polls `check` every 50 ms for up to `limit`; true once it held.
pub fn wait_until(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if check() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    check()
}
