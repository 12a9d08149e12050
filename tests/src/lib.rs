//! The end-to-end harness: starts the real `udpchat-server` and `udpchat`
//! binaries on 127.0.0.1 with ephemeral ports, drives clients in scripted
//! JSON mode (or text mode, [`TextClient`]), and waits on their events
//! (never on the clock: a deadline is only a failsafe that turns a hang
//! into a failure). Either binary can also run inside a network namespace
//! ([`Server::start_in_netns`], [`Client::start_in_netns`]), behind the NATs
//! [`nat`] builds.
#![forbid(unsafe_code)]

pub mod deployment;
pub mod direct;
pub mod groups;
pub mod nat;
pub mod operations;
pub mod postgres;
pub mod raw;
pub mod relay;
mod text_client;
pub mod tmux;

pub use groups::{group_messages, no_more_group_messages, one_order_once_each};
pub use text_client::TextClient;

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use serde_json::Value;

/// How long any one expected event may take before the test fails.
pub const FAILSAFE: Duration = Duration::from_secs(30);

/// The path of one of the workspace's binaries, built next to the tests.
pub fn binary(name: &str) -> PathBuf {
    let mut dir = std::env::current_exe().expect("test executable path");
    dir.pop(); // the test binary
    if dir.ends_with("deps") {
        dir.pop();
    }
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: build the binaries first (`cargo build --workspace`)",
        path.display()
    );
    path
}

/// The first event of this kind not taken yet: one the client showed
/// while the test waited for another (a push may overtake the reply to
/// `signin`), or the next. Taken events leave `seen`.
pub fn take(client: &mut Client, event: &str, test: impl Fn(&Value) -> bool) -> Value {
    let earlier = client
        .seen
        .iter()
        .position(|e| e["event"] == event && test(e));
    match earlier {
        Some(i) => client.seen.remove(i),
        None => {
            let found = client.expect_where(event, test);
            client.seen.pop();
            found
        }
    }
}

/// The texts of the lines `client`'s history keeps with `with` (a user or
/// a group), oldest first.
pub fn history_texts(client: &mut Client, with: &str) -> Vec<String> {
    client.line(&format!("history {with}"));
    let history = client.expect_where("history", |e| e["with"] == with);
    history["lines"]
        .as_array()
        .expect("lines")
        .iter()
        .filter_map(|l| l["text"].as_str().map(str::to_string))
        .collect()
}

/// Another process writing to `user`'s history in `device` (their data
/// dir), until dropped: their client's next write waits (SQLite gives up
/// after 5 s, and the client then shows the line with an error).
pub fn busy_history(device: &Path, user: &str) -> rusqlite::Connection {
    let file = device.join("users").join(user).join("chat.sqlite3");
    let busy = rusqlite::Connection::open(file).expect("open the history");
    busy.execute_batch("BEGIN IMMEDIATE")
        .expect("take the history's write lock");
    busy
}

/// The password the harness gives `user`.
pub fn password(user: &str) -> String {
    format!("pw of {user}!")
}

/// A running `udpchat-server`, killed when dropped.
pub struct Server {
    child: Child,
    pub addr: SocketAddr,
    /// Kept so the server's stdout stays drained (a closed pipe would make
    /// its last `println!` fail).
    _log: Receiver<String>,
    /// Its data dir (key, database) and its stderr log, `server.log`.
    pub data_dir: PathBuf,
    /// Its metrics endpoint, when started with `--metrics`.
    pub metrics: Option<SocketAddr>,
    _dir: Option<tempfile::TempDir>,
}

impl Server {
    /// Starts a server with a fresh data dir on an ephemeral port and
    /// waits until it listens.
    pub fn start() -> Server {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut server = Server::start_in(dir.path(), "127.0.0.1:0");
        server._dir = Some(dir);
        server
    }

    /// Starts a server on `data_dir` (kept by the caller) and `bind`.
    pub fn start_in(data_dir: &Path, bind: &str) -> Server {
        Server::start_with(data_dir, bind, &[])
    }

    /// Starts a server on `data_dir` and `bind` with extra arguments.
    pub fn start_with(data_dir: &Path, bind: &str, extra: &[&str]) -> Server {
        Server::launch(data_dir, bind, extra, None, None)
    }

    /// [`Server::start_with`], with arguments that need not be UTF-8.
    pub fn start_with_os(data_dir: &Path, bind: &str, extra: &[OsString]) -> Server {
        Server::launch(data_dir, bind, extra, None, None)
    }

    /// Starts a server on `data_dir` (kept by the caller) under `umask`.
    pub fn start_under_umask(data_dir: &Path, umask: u32) -> Server {
        Server::launch(data_dir, "127.0.0.1:0", &[] as &[&str], Some(umask), None)
    }

    /// Starts a server inside the network namespace `netns` (see [`nat`])
    /// on `data_dir` (kept by the caller) and `bind`, one of that
    /// namespace's addresses.
    pub fn start_in_netns(netns: &str, data_dir: &Path, bind: &str) -> Server {
        Server::start_in_netns_with(netns, data_dir, bind, &[])
    }

    /// [`Server::start_in_netns`] with extra arguments.
    pub fn start_in_netns_with(
        netns: &str,
        data_dir: &Path,
        bind: &str,
        extra: &[OsString],
    ) -> Server {
        Server::launch(data_dir, bind, extra, None, Some(netns))
    }

    fn launch(
        data_dir: &Path,
        bind: &str,
        extra: &[impl AsRef<std::ffi::OsStr>],
        umask: Option<u32>,
        netns: Option<&str>,
    ) -> Server {
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(data_dir.join("server.log"))
            .expect("server log");
        let mut child = command("udpchat-server", umask, netns)
            .args(["--bind", bind, "--data-dir"])
            .arg(data_dir)
            .args(extra)
            .env("RUST_LOG", "trace")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log_file)
            .spawn()
            .expect("start udpchat-server");
        let log = lines_of(child.stdout.take().expect("server stdout"));
        let mut metrics = None;
        let addr = loop {
            let line = log
                .recv_timeout(FAILSAFE)
                .expect("the server did not start listening");
            if let Some(addr) = line.strip_prefix("udpchat-server listening on ") {
                break addr.parse().expect("server address");
            }
            if let Some(url) = line.strip_prefix("udpchat-server metrics at http://") {
                let addr = url.strip_suffix("/metrics").expect("metrics path");
                metrics = Some(addr.parse().expect("metrics address"));
            }
        };
        Server {
            child,
            addr,
            _log: log,
            data_dir: data_dir.to_path_buf(),
            metrics,
            _dir: None,
        }
    }

    /// The server's public key file.
    pub fn public_key(&self) -> PathBuf {
        self.data_dir.join("server.pub")
    }

    /// Sends SIGTERM and waits for the server to exit.
    pub fn terminate(mut self) -> ExitStatus {
        signal(&self.child, "TERM");
        wait_failsafe(&mut self.child)
    }

    /// Kills the server outright (SIGKILL).
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A running `udpchat --json` client, driven through its stdin.
pub struct Client {
    child: Child,
    stdin: Option<ChildStdin>,
    events: Receiver<String>,
    /// Every event seen so far, in order.
    pub seen: Vec<Value>,
    /// The same events as the client wrote them, one line each.
    pub raw: Vec<String>,
    /// The client's own socket address (from its `ready` event).
    pub addr: SocketAddr,
    /// Its data dir (known servers, identity keys).
    pub data_dir: PathBuf,
    _dir: Option<tempfile::TempDir>,
}

impl Client {
    /// `user`'s identity key, as this client made it in its data dir.
    pub fn identity_key(&self, user: &str) -> udpchat_core::crypto::keys::PublicKey {
        let path = self.data_dir.join("users").join(user).join("identity.pub");
        udpchat_core::crypto::keyfile::read_public(&path).expect("the client's identity key")
    }

    /// Starts a client against `server` that creates the account `user`
    /// (password [`password`]) and signs in, waiting for `signed-in`.
    pub fn sign_up(server: SocketAddr, user: &str) -> Client {
        let mut client = Client::start(server, &["-u", user, "-p", &password(user), "--signup"]);
        client.expect("signed-in");
        client
    }

    /// Signs `user` up from a data dir of their own and leaves: `user` is
    /// away, with prekeys on the server and keys in the dir returned (for
    /// [`Client::start_in`] when they come back).
    pub fn away(server: SocketAddr, user: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("temp dir");
        let pw = password(user);
        let mut client = Client::start_in(server, dir.path(), &["-u", user, "-p", &pw, "--signup"]);
        client.expect("signed-in");
        assert!(client.finish().0.success(), "{user} left");
        dir
    }

    /// Signs `user` up from `device` (a data dir the caller keeps, so the
    /// same device can come back: [`Client::sign_in_on`]).
    pub fn sign_up_on(server: SocketAddr, device: &Path, user: &str) -> Client {
        let pw = password(user);
        let mut client = Client::start_in(server, device, &["-u", user, "-p", &pw, "--signup"]);
        client.expect("signed-in");
        client
    }

    /// Signs `user` in from `device`, a data dir used before: the same
    /// identity key, and what that client kept (private groups' keys and
    /// lines).
    pub fn sign_in_on(server: SocketAddr, device: &Path, user: &str) -> Client {
        let mut client = Client::start_in(server, device, &["-u", user, "-p", &password(user)]);
        client.expect("signed-in");
        client
    }

    /// Starts a client that signs in to the existing account `user` from
    /// a new device (a fresh data dir: its identity key replaces the one
    /// the server holds, `--new-device`).
    pub fn sign_in(server: SocketAddr, user: &str) -> Client {
        let mut client =
            Client::start(server, &["-u", user, "-p", &password(user), "--new-device"]);
        client.expect("signed-in");
        client
    }

    /// Starts a client with a fresh data dir and extra arguments; waits
    /// for its `ready` event.
    pub fn start(server: SocketAddr, extra: &[&str]) -> Client {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut client = Client::start_in(server, dir.path(), extra);
        client._dir = Some(dir);
        client
    }

    /// Starts a client with a fresh data dir whose socket is bound to
    /// `bind` (another loopback address is another source to the server).
    pub fn start_from(server: SocketAddr, bind: &str, extra: &[&str]) -> Client {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut client = Client::start_bound(server, dir.path(), bind, extra);
        client._dir = Some(dir);
        client
    }

    /// Starts a client on `data_dir` (kept by the caller).
    pub fn start_in(server: SocketAddr, data_dir: &Path, extra: &[&str]) -> Client {
        Client::launch(
            &server.to_string(),
            data_dir,
            "127.0.0.1:0",
            extra,
            None,
            None,
        )
    }

    /// Starts a client with a fresh data dir inside the network namespace
    /// `netns` (see [`nat`]), its socket bound to `bind` (`0.0.0.0:0`, or
    /// one of the namespace's addresses with port 0); waits for `ready`.
    pub fn start_in_netns(netns: &str, server: SocketAddr, bind: &str, extra: &[&str]) -> Client {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut client = Client::launch(
            &server.to_string(),
            dir.path(),
            bind,
            extra,
            None,
            Some(netns),
        );
        client._dir = Some(dir);
        client
    }

    /// [`Client::sign_up`] inside the network namespace `netns`, bound to
    /// `bind`.
    pub fn sign_up_in_netns(netns: &str, server: SocketAddr, bind: &str, user: &str) -> Client {
        let extra = ["-u", user, "-p", &password(user), "--signup"];
        let mut client = Client::start_in_netns(netns, server, bind, &extra);
        client.expect("signed-in");
        client
    }

    /// Starts a client on `data_dir` (kept by the caller) under `umask`.
    pub fn start_under_umask(
        server: SocketAddr,
        data_dir: &Path,
        extra: &[&str],
        umask: u32,
    ) -> Client {
        Client::launch(
            &server.to_string(),
            data_dir,
            "127.0.0.1:0",
            extra,
            Some(umask),
            None,
        )
    }

    /// Starts a client with a fresh data dir on the client's default
    /// socket (no `--bind`: dual-stack where the host has IPv6).
    pub fn start_unbound(server: SocketAddr, extra: &[&str]) -> Client {
        Client::start_from(server, "", extra)
    }

    fn start_bound(server: SocketAddr, data_dir: &Path, bind: &str, extra: &[&str]) -> Client {
        Client::launch(&server.to_string(), data_dir, bind, extra, None, None)
    }

    /// Starts a client on `data_dir` (kept by the caller) given several
    /// servers of one deployment (`--server A,B`).
    pub fn start_on_servers(servers: &[SocketAddr], data_dir: &Path, extra: &[&str]) -> Client {
        let servers: Vec<String> = servers.iter().map(ToString::to_string).collect();
        Client::launch(
            &servers.join(","),
            data_dir,
            "127.0.0.1:0",
            extra,
            None,
            None,
        )
    }

    fn launch(
        server: &str,
        data_dir: &Path,
        bind: &str,
        extra: &[&str],
        umask: Option<u32>,
        netns: Option<&str>,
    ) -> Client {
        // No bind: the client's own default socket.
        let bind: &[&str] = if bind.is_empty() {
            &[]
        } else {
            &["--bind", bind]
        };
        let mut child = command("udpchat", umask, netns)
            // A config file in the home of whoever runs the tests must not
            // change what they see.
            .env("XDG_CONFIG_HOME", data_dir.join("no-config-home"))
            .arg("--json")
            .args(bind)
            .args(["--server", server, "--data-dir"])
            .arg(data_dir)
            .args(extra)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start udpchat");
        let events = lines_of(child.stdout.take().expect("client stdout"));
        let stdin = child.stdin.take();
        let mut client = Client {
            child,
            stdin,
            events,
            seen: Vec::new(),
            raw: Vec::new(),
            addr: "0.0.0.0:0".parse().unwrap(),
            data_dir: data_dir.to_path_buf(),
            _dir: None,
        };
        let ready = client.expect("ready");
        client.addr = ready["addr"]
            .as_str()
            .expect("ready addr")
            .parse()
            .expect("ready addr");
        client
    }

    /// Types one command line.
    pub fn line(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin is open");
        writeln!(stdin, "{line}").expect("write to client");
        stdin.flush().expect("flush client stdin");
    }

    /// Waits for the next event of this kind, skipping (and keeping) others.
    pub fn expect(&mut self, event: &str) -> Value {
        self.expect_where(event, |_| true)
    }

    /// Waits for the next event of this kind that satisfies `test`.
    pub fn expect_where(&mut self, event: &str, test: impl Fn(&Value) -> bool) -> Value {
        self.expect_first(&[event], test)
    }

    /// Waits for the next event of any of these kinds, whichever comes
    /// first (`signed-in` or `error`, say).
    pub fn expect_any(&mut self, events: &[&str]) -> Value {
        self.expect_first(events, |_| true)
    }

    /// Waits for the next event of any of these kinds that passes `test`.
    pub fn expect_first(&mut self, events: &[&str], test: impl Fn(&Value) -> bool) -> Value {
        self.expect_first_within(events, FAILSAFE, test)
    }

    /// [`Client::expect_first`] with a failsafe of `within` instead of
    /// [`FAILSAFE`], for what is known to take longer (a message that
    /// goes through the server after a direct attempt timed out, say).
    pub fn expect_first_within(
        &mut self,
        events: &[&str],
        within: Duration,
        test: impl Fn(&Value) -> bool,
    ) -> Value {
        let event = events.join(" or ");
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(left) {
                Ok(line) => {
                    let value: Value = serde_json::from_str(&line)
                        .unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
                    self.seen.push(value.clone());
                    self.raw.push(line);
                    if events.iter().any(|e| value["event"] == *e) && test(&value) {
                        return value;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    panic!("no {event:?} event within {within:?}; saw {:#?}", self.seen)
                }
                Err(RecvTimeoutError::Disconnected) => {
                    panic!(
                        "client exited before a {event:?} event; saw {:#?}",
                        self.seen
                    )
                }
            }
        }
    }

    /// Closes stdin and waits for the client to exit; returns its status
    /// and every remaining event.
    pub fn finish(mut self) -> (ExitStatus, Vec<Value>) {
        drop(self.stdin.take());
        let status = wait_failsafe(&mut self.child);
        let rest: Vec<Value> = self
            .events
            .iter()
            .filter_map(|l| serde_json::from_str(&l).ok())
            .collect();
        (status, rest)
    }

    /// Kills the client outright (SIGKILL), as a crash would.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A command that runs one of the workspace's binaries, under `umask` if
/// given (through `sh`: std cannot set a child's umask without unsafe
/// code), inside the network namespace `netns` if given (through `ip netns
/// exec`). Both wrappers `exec` what they run, so the child is the binary
/// itself: killing it kills the binary.
fn command(name: &str, umask: Option<u32>, netns: Option<&str>) -> Command {
    let mut argv: Vec<OsString> = vec![binary(name).into()];
    if let Some(umask) = umask {
        let script = format!("umask {umask:03o} && exec \"$0\" \"$@\"");
        argv.splice(0..0, ["sh".into(), "-c".into(), script.into()]);
    }
    if let Some(netns) = netns {
        argv.splice(0..0, ["ip", "netns", "exec", netns].map(OsString::from));
    }
    let mut command = Command::new(&argv[0]);
    command.args(&argv[1..]);
    command
}

/// Reads a child's output lines on a thread.
fn lines_of(out: impl std::io::Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

fn signal(child: &Child, name: &str) {
    let status = Command::new("kill")
        .args(["-s", name, &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -s {name} failed");
}

fn wait_failsafe(child: &mut Child) -> ExitStatus {
    let deadline = Instant::now() + FAILSAFE;
    loop {
        if let Some(status) = child.try_wait().expect("wait for child") {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "process {} did not exit within {FAILSAFE:?}",
            child.id()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
