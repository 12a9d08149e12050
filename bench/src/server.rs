//! The servers a scenario runs against: the real `udpchat-server` binary
//! (started on 127.0.0.1 with a fresh data dir, or one the user names with
//! `--server`), and the baseline's UDP echo server, which is this same
//! binary run as `udpchat-bench echo-server` so that it too is a process
//! of its own whose CPU and memory `/proc` reports.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context as _};
use udpchat_core::crypto::keyfile;
use udpchat_core::crypto::keys::PublicKey;

/// How long a server may take to say it listens.
const START_WAIT: Duration = Duration::from_secs(30);

/// A child process killed when dropped.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Where a udpchat server is and the key it answers handshakes with.
#[derive(Debug, Clone)]
pub struct ServerRef {
    pub addr: SocketAddr,
    /// The server's static key (NK handshakes).
    pub key: PublicKey,
}

/// A server to measure.
pub struct Target {
    pub server: ServerRef,
    /// Its process, when the bench started it (for /proc readings).
    pub pid: Option<u32>,
    _child: Option<Guard>,
    _data_dir: Option<tempfile::TempDir>,
}

/// Where the server comes from.
#[derive(Debug, Clone)]
pub enum ServerSource {
    /// Start this binary on 127.0.0.1 with a fresh data dir.
    Spawn(PathBuf),
    /// Use a server already running (its key read from a PEM file).
    Running { addr: SocketAddr, key: PathBuf },
}

impl ServerSource {
    /// Starts (or names) the server for one scenario.
    pub fn start(&self) -> anyhow::Result<Target> {
        self.start_with(&[])
    }

    /// `n` server nodes of one deployment on the PostgreSQL database
    /// `database`: the first makes the key, the others share it.
    pub fn start_nodes(&self, n: usize, database: &str) -> anyhow::Result<Vec<Target>> {
        let ServerSource::Spawn(binary) = self else {
            bail!("several nodes need the bench to start them (no --server)");
        };
        let first = spawn_udpchat(binary, &["--database", database])?;
        let dir = first
            ._data_dir
            .as_ref()
            .map(|d| d.path().to_path_buf())
            .expect("a spawned server has a data dir");
        let key = dir.join("server.priv").to_string_lossy().into_owned();
        let public = dir.join("server.pub");
        let mut nodes = vec![first];
        for _ in 1..n {
            nodes.push(spawn_node(
                binary,
                &["--database", database, "--key", &key],
                Some(&public),
            )?);
        }
        Ok(nodes)
    }

    /// The same, with extra options for a server it starts.
    pub fn start_with(&self, args: &[&str]) -> anyhow::Result<Target> {
        match self {
            ServerSource::Running { addr, key } => Ok(Target {
                server: ServerRef {
                    addr: *addr,
                    key: keyfile::read_public(key)
                        .with_context(|| format!("cannot read the server key {}", key.display()))?,
                },
                pid: None,
                _child: None,
                _data_dir: None,
            }),
            ServerSource::Spawn(binary) => spawn_udpchat(binary, args),
        }
    }
}

/// The `udpchat-server` next to this executable (or `--server-bin`).
pub fn default_server_binary() -> PathBuf {
    beside_this("udpchat-server")
}

/// The workspace binary `name`, built next to this executable.
pub fn beside_this(name: &str) -> PathBuf {
    let mut dir = std::env::current_exe().unwrap_or_default();
    dir.pop();
    if dir.ends_with("deps") {
        dir.pop();
    }
    dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX))
}

fn spawn_udpchat(binary: &Path, args: &[&str]) -> anyhow::Result<Target> {
    spawn_node(binary, args, None)
}

/// Starts a server; its public key is `public` (a node given another's
/// key with `--key`), or the one it makes in its data dir.
fn spawn_node(binary: &Path, args: &[&str], public: Option<&Path>) -> anyhow::Result<Target> {
    if !binary.exists() {
        bail!(
            "{} is missing: build it first (`cargo build --release -p udpchat-server`) or pass --server-bin",
            binary.display()
        );
    }
    let dir = tempfile::tempdir().context("cannot make a data dir for the server")?;
    let log = std::fs::File::create(dir.path().join("server.log"))?;
    let mut child = Command::new(binary)
        .args(["--bind", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        // Thousands of simulated users sign up from a few loopback
        // addresses: lift the per-address limits.
        .args(["--signups-per-hour", "100000000"])
        .args(["--sessions-per-address", "10000000"])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .with_context(|| format!("cannot start {}", binary.display()))?;
    let stdout = child.stdout.take().expect("piped stdout");
    let pid = child.id();
    let guard = Guard(child);
    let addr = wait_for_line(stdout, "udpchat-server listening on ")
        .with_context(|| format!("{} did not start", binary.display()))?;
    let public = public.map_or_else(|| dir.path().join("server.pub"), Path::to_path_buf);
    let key = keyfile::read_public(&public).context("cannot read the server's public key")?;
    Ok(Target {
        server: ServerRef { addr, key },
        pid: Some(pid),
        _child: Some(guard),
        _data_dir: Some(dir),
    })
}

/// Reads `stdout` until a line `PREFIX ADDR`; keeps draining it after.
fn wait_for_line(
    stdout: impl std::io::Read + Send + 'static,
    prefix: &str,
) -> anyhow::Result<SocketAddr> {
    let (tx, rx) = mpsc::channel();
    let prefix = prefix.to_string();
    std::thread::spawn(move || {
        let mut sent = false;
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if !sent {
                if let Some(addr) = line.strip_prefix(&prefix) {
                    let _ = tx.send(addr.trim().to_string());
                    sent = true;
                }
            }
        }
    });
    let addr = rx
        .recv_timeout(START_WAIT)
        .map_err(|_| anyhow!("no `listening on` line within {}s", START_WAIT.as_secs()))?;
    addr.parse()
        .with_context(|| format!("bad listening address {addr:?}"))
}

/// The baseline's echo server, a child process.
pub struct EchoServer {
    pub addr: SocketAddr,
    pub pid: u32,
    _child: Guard,
}

/// The line the echo server prints once it listens.
pub const ECHO_LISTENING: &str = "udpchat-bench echo listening on ";

impl EchoServer {
    /// Runs this executable as `echo-server` on 127.0.0.1.
    pub fn start() -> anyhow::Result<EchoServer> {
        let exe = std::env::current_exe().context("cannot find this executable")?;
        let mut child = Command::new(exe)
            .args(["echo-server", "--bind", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("cannot start the echo server")?;
        let stdout = child.stdout.take().expect("piped stdout");
        let pid = child.id();
        let guard = Guard(child);
        let addr = wait_for_line(stdout, ECHO_LISTENING)?;
        Ok(EchoServer {
            addr,
            pid,
            _child: guard,
        })
    }
}

/// The echo server itself: one thread, one socket, `recv_from` then
/// `send_to`, the least a UDP request-reply server can do. A request says
/// how long its reply must be (bytes 8..10), so the baseline's datagrams
/// have the sizes udpchat's have.
pub fn run_echo_server(bind: SocketAddr) -> anyhow::Result<()> {
    let socket = std::net::UdpSocket::bind(bind).with_context(|| format!("cannot bind {bind}"))?;
    println!("{ECHO_LISTENING}{}", socket.local_addr()?);
    use std::io::Write as _;
    std::io::stdout().flush()?;
    let mut buf = vec![0u8; 65_536];
    let mut reply = vec![0u8; 65_536];
    loop {
        let (len, from) = match socket.recv_from(&mut buf) {
            Ok(got) => got,
            Err(_) => continue,
        };
        if len < 10 {
            continue;
        }
        let want = usize::from(u16::from_be_bytes([buf[8], buf[9]])).clamp(10, reply.len());
        reply[..10].copy_from_slice(&buf[..10]);
        let _ = socket.send_to(&reply[..want], from);
    }
}
