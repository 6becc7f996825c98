//! Starts the real Google Cloud Pub/Sub emulator on a free loopback port for a test.
//!
//! The emulator runs in its own process group, so the guard's `Drop` stops the
//! launcher script and its JVM together, also when the test panics.

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Where the Google Cloud SDK installs the emulator.
pub const EMULATOR: &str =
    "/usr/lib/google-cloud-sdk/platform/pubsub-emulator/bin/cloud-pubsub-emulator";

/// One emulator (a JVM) at a time: tests in a binary take turns.
static TURN: Mutex<()> = Mutex::new(());

/// A running emulator; dropping it stops the emulator.
pub struct PubsubEmulator {
    child: Child,
    port: u16,
    log: tempfile::NamedTempFile,
    /// False once stopped, so a stale process-group id is never signalled.
    running: bool,
    _turn: MutexGuard<'static, ()>,
}

impl std::fmt::Debug for PubsubEmulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PubsubEmulator")
            .field("port", &self.port)
            .finish_non_exhaustive()
    }
}

impl PubsubEmulator {
    /// Starts the emulator and waits until it accepts connections.
    ///
    /// Panics (failing the test) when the emulator is not installed.
    pub fn start() -> PubsubEmulator {
        assert!(
            Path::new(EMULATOR).exists(),
            "the Pub/Sub emulator is not installed at {EMULATOR} \
             (install the google-cloud-cli-pubsub-emulator package; it needs Java 17)"
        );
        let turn = TURN.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let port = free_port();
        let log = tempfile::NamedTempFile::new().unwrap();
        let child = spawn(port, &log);
        let mut emulator = PubsubEmulator {
            child,
            port,
            log,
            running: true,
            _turn: turn,
        };
        emulator.wait_until_ready();
        emulator
    }

    /// Stops the emulator (all its state is lost: it keeps none across restarts)
    /// and starts a fresh one on the same port.
    pub fn restart(&mut self) {
        self.stop();
        self.log = tempfile::NamedTempFile::new().unwrap();
        self.child = spawn(self.port, &self.log);
        self.running = true;
        self.wait_until_ready();
    }

    /// Stops the emulator's whole process group and reaps the launcher.
    pub fn stop(&mut self) {
        if !std::mem::replace(&mut self.running, false) {
            return;
        }
        // The launcher is a script that starts java: stop the whole group.
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill")
            .args(["-KILL", "--", &group])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
        // The JVM may outlive the reaped launcher for a moment: wait for the port.
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", self.port)).is_ok() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `127.0.0.1:port`, the form `PUBSUB_EMULATOR_HOST` takes.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `http://127.0.0.1:port`, the form `[broker.pubsub] endpoint` takes.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.host())
    }

    fn log_text(&self) -> String {
        let mut text = String::new();
        let _ = self
            .log
            .reopen()
            .and_then(|mut file| file.read_to_string(&mut text));
        text
    }

    fn wait_until_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "the Pub/Sub emulator exited with {status}:\n{}",
                    self.log_text()
                );
            }
            let listening = self.log_text().contains("Server started");
            if listening && TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the Pub/Sub emulator did not start within 60 s:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for PubsubEmulator {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Starts the emulator launcher in a process group of its own.
fn spawn(port: u16, log: &tempfile::NamedTempFile) -> Child {
    Command::new(EMULATOR)
        .arg("--host=127.0.0.1")
        .arg(format!("--port={port}"))
        .stdin(Stdio::null())
        .stdout(log.reopen().unwrap())
        .stderr(log.reopen().unwrap())
        .process_group(0)
        .spawn()
        .unwrap_or_else(|error| panic!("starting {EMULATOR}: {error}"))
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}
