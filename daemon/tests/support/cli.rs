//! Running the `tweetpipe` binary and finding the committed sample posts, shared
//! so the integration tests stop each carrying their own copy.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// `config/samples/posts.jsonl`, the committed sample posts.
pub fn sample_posts() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/samples/posts.jsonl")
}

/// Runs the binary with `stdin`; returns (exit code, stdout, stderr).
pub fn tweetpipe(args: &[&str], stdin: &str) -> (i32, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tweetpipe"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running tweetpipe");
    // Feed stdin from another thread: the output of a large input would fill
    // the stdout pipe while this thread still writes.
    let mut input = child.stdin.take().unwrap();
    let stdin = stdin.to_owned();
    let writer =
        std::thread::spawn(move || std::io::Write::write_all(&mut input, stdin.as_bytes()));
    let output = child.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}
