//! The client in scripted text mode, as a person or a script reading its
//! stdout sees it.

use std::net::SocketAddr;
use std::process::{Child, ChildStdin, Stdio};
use std::sync::mpsc::Receiver;
use std::time::Instant;

use crate::{command, lines_of, password, FAILSAFE};

/// A running `udpchat` in scripted text mode (no `--json`): one line of
/// text per event, as a person or a script reading its stdout sees it.
pub struct TextClient {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    /// Every line seen so far, in order.
    pub seen: Vec<String>,
    _dir: tempfile::TempDir,
}

impl TextClient {
    /// Starts a client with a fresh data dir that creates the account
    /// `user` and signs in, waiting for its `Signed in as` line.
    pub fn sign_up(server: SocketAddr, user: &str) -> TextClient {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut child = command("udpchat", None, None)
            .args(["--bind", "127.0.0.1:0", "--server", &server.to_string()])
            .arg("--data-dir")
            .arg(dir.path())
            .args(["-u", user, "-p", &password(user), "--signup"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start udpchat");
        let lines = lines_of(child.stdout.take().expect("client stdout"));
        let stdin = child.stdin.take();
        let mut client = TextClient {
            child,
            stdin,
            lines,
            seen: Vec::new(),
            _dir: dir,
        };
        client.expect_line(|line| line == format!("Signed in as {user}"));
        client
    }

    /// Waits for the next line that satisfies `test`, keeping the others.
    pub fn expect_line(&mut self, test: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + FAILSAFE;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if test(&line) {
                        return line;
                    }
                }
                Err(e) => panic!(
                    "no such line ({e:?}) within {FAILSAFE:?}; saw {:#?}",
                    self.seen
                ),
            }
        }
    }
}

impl Drop for TextClient {
    fn drop(&mut self) {
        drop(self.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
