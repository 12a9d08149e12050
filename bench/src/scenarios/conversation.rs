//! `conversation`: two real `udpchat` clients (the binaries, in scripted
//! mode, `--json`) writing to each other through a real server, as a person
//! typing would: the shell's dispatcher, the `send` command and whatever it
//! asks the server before a message goes (which `p2p`, on bare Links,
//! leaves out). Times are taken in this process: a `send` line written to
//! alice's stdin; bob's `message` event read from his stdout (typed to
//! shown); alice's `delivered` event (typed to acknowledged).
//!
//! - **one at a time**: the next line once the last was delivered;
//! - **N in flight**: lines written while fewer than N are undelivered.
//!
//! A phase lasts until bob showed its last message: a receiver slower to
//! show than the sender is to send sets the rate (its backlog shows in the
//! latency).
//!
//! Each row has the server's CPU per message and, in `extra`, the sending
//! client's. The first message (the meeting and the end-to-end handshake)
//! is sent before anything is measured. With `--client-bin` and
//! `--server-bin`, two builds compare in one sitting.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context as _};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;

use super::{params_with, Ctx};
use crate::load::{histogram, micros};
use crate::procfs::Watch;
use crate::report::{Latency, Report, Row};
use crate::server::ServerRef;

/// Lines not yet delivered, at most, in the second phase.
pub const INFLIGHT: usize = 8;
/// The text of each message, bytes.
const TEXT: usize = 100;
/// Longest wait for any one event before the scenario gives up.
const EVENT_WAIT: Duration = Duration::from_secs(30);

/// The `udpchat` next to this executable.
pub fn default_client_binary() -> PathBuf {
    crate::server::beside_this("udpchat")
}

/// A `udpchat --json` process and the events it writes, each with the
/// moment this process read it.
struct RealClient {
    child: Child,
    stdin: ChildStdin,
    events: mpsc::UnboundedReceiver<(Instant, Value)>,
    _dir: tempfile::TempDir,
}

impl RealClient {
    /// Starts a client that creates `user` and signs in.
    async fn sign_up(binary: &Path, server: &ServerRef, user: &str) -> anyhow::Result<RealClient> {
        if !binary.exists() {
            bail!(
                "{} is missing: build it first (`cargo build --release -p udpchat-client`) or pass --client-bin",
                binary.display()
            );
        }
        let dir = tempfile::tempdir().context("cannot make a data dir for a client")?;
        let server_addr = server.addr.to_string();
        let mut child = Command::new(binary)
            .args([
                "--json",
                "--signup",
                "--password-stdin",
                "--bind",
                "127.0.0.1:0",
            ])
            .args(["--server", &server_addr, "-u", user, "--data-dir"])
            .arg(dir.path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start {}", binary.display()))?;
        let stdin = child.stdin.take().expect("piped stdin");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, events) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let at = Instant::now();
                if let Ok(event) = serde_json::from_str::<Value>(&line) {
                    if tx.send((at, event)).is_err() {
                        break;
                    }
                }
            }
        });
        let mut client = RealClient {
            child,
            stdin,
            events,
            _dir: dir,
        };
        client.line(&format!("bench-{user}-password")).await?;
        client.until(|e| e["event"] == "signed-in").await?;
        Ok(client)
    }

    fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    async fn line(&mut self, line: &str) -> anyhow::Result<()> {
        self.stdin.write_all(line.as_bytes()).await?;
        self.stdin.write_all(b"\n").await?;
        self.stdin.flush().await?;
        Ok(())
    }

    /// The next event `test` accepts (others are passed over); an `error`
    /// event is an error.
    async fn until(&mut self, test: impl Fn(&Value) -> bool) -> anyhow::Result<(Instant, Value)> {
        loop {
            let next = tokio::time::timeout(EVENT_WAIT, self.events.recv()).await;
            let (at, event) = next
                .map_err(|_| anyhow!("no event for {EVENT_WAIT:?}"))?
                .ok_or_else(|| anyhow!("the client exited"))?;
            if event["event"] == "error" {
                bail!("the client said: {}", event["message"]);
            }
            if test(&event) {
                return Ok((at, event));
            }
        }
    }
}

/// `send bob SEQ xxx...`, a [`TEXT`]-byte text that names its number.
fn send_line(to: &str, seq: u64) -> String {
    let mut text = format!("{seq} ");
    text.push_str(&"x".repeat(TEXT.saturating_sub(text.len())));
    format!("send {to} {text}")
}

fn seq_of(event: &Value) -> Option<u64> {
    event["text"].as_str()?.split(' ').next()?.parse().ok()
}

/// What one phase measured.
struct Phase {
    typed: HashMap<u64, Instant>,
    shown: hdrhistogram::Histogram<u64>,
    delivered: hdrhistogram::Histogram<u64>,
    seconds: f64,
}

impl Phase {
    fn new() -> Phase {
        Phase {
            typed: HashMap::new(),
            shown: histogram(),
            delivered: histogram(),
            seconds: 0.0,
        }
    }
}

/// Sends for `duration`, keeping at most `inflight` undelivered.
async fn phase(
    alice: &mut RealClient,
    bob: &mut RealClient,
    to: &str,
    next_seq: &mut u64,
    inflight: usize,
    duration: Duration,
) -> anyhow::Result<Phase> {
    let mut phase = Phase::new();
    let mut undelivered: std::collections::VecDeque<(u64, Instant)> = Default::default();
    let started = Instant::now();
    loop {
        let writing = started.elapsed() < duration;
        if writing && undelivered.len() < inflight {
            let seq = *next_seq;
            *next_seq += 1;
            let at = Instant::now();
            alice.line(&send_line(to, seq)).await?;
            phase.typed.insert(seq, at);
            undelivered.push_back((seq, at));
            continue;
        }
        let Some((_, typed)) = undelivered.pop_front() else {
            break;
        };
        // Deliveries are reported in the order the messages went.
        let (at, _) = alice
            .until(|e| e["event"] == "delivered" && e["to"] == to)
            .await?;
        phase
            .delivered
            .saturating_record(micros(at.saturating_duration_since(typed)).max(1));
    }
    // What bob showed, up to the last message (each was delivered, so
    // shown or about to be). The phase lasts until then: a receiver that
    // shows messages more slowly than they arrive sets the rate.
    let last = *next_seq - 1;
    loop {
        let (at, event) = bob.until(|e| e["event"] == "message").await?;
        if let Some(seq) = seq_of(&event) {
            if let Some(typed) = phase.typed.get(&seq) {
                phase
                    .shown
                    .saturating_record(micros(at.saturating_duration_since(*typed)).max(1));
            }
            if seq == last {
                phase.seconds = at.saturating_duration_since(started).as_secs_f64();
                break;
            }
        }
    }
    Ok(phase)
}

pub async fn run(ctx: &Ctx, client_bin: &Path) -> anyhow::Result<Report> {
    let mut report = Report::new(
        "conversation",
        params_with(
            ctx,
            serde_json::json!({
                "inflight": INFLIGHT,
                "text_bytes": TEXT,
                "client_bin": client_bin.display().to_string(),
            }),
        ),
    );
    let target = ctx.server()?;
    let (alice_name, bob_name) = (ctx.users("alice"), ctx.users("bob"));
    let mut bob = RealClient::sign_up(client_bin, &target.server, &bob_name).await?;
    let mut alice = RealClient::sign_up(client_bin, &target.server, &alice_name).await?;
    // The first message opens the session (a meeting and a handshake):
    // not measured.
    let mut seq = 0;
    alice.line(&send_line(&bob_name, seq)).await?;
    seq += 1;
    alice
        .until(|e| e["event"] == "delivered" && e["to"] == bob_name.as_str())
        .await?;
    bob.until(|e| e["event"] == "message").await?;
    if !ctx.warmup.is_zero() {
        phase(&mut alice, &mut bob, &bob_name, &mut seq, 1, ctx.warmup).await?;
    }
    for (name, inflight) in [
        ("one at a time".to_string(), 1),
        (format!("{INFLIGHT} in flight"), INFLIGHT),
    ] {
        let server = Watch::start(target.pid);
        let sender = Watch::start(alice.pid());
        let measured = phase(
            &mut alice,
            &mut bob,
            &bob_name,
            &mut seq,
            inflight,
            ctx.duration,
        )
        .await?;
        let sent = measured.delivered.len();
        let mut row = Row::new(name, "msg/s", sent, measured.seconds);
        row.latency = Latency::of(&measured.shown);
        row.server = server.usage();
        if let Some(delivered) = Latency::of(&measured.delivered) {
            row = row.with(
                "typed_to_delivered_us",
                serde_json::to_value(delivered).unwrap_or_default(),
            );
        }
        if let Some(usage) = sender.usage().filter(|_| sent > 0) {
            row = row.with("sender_cpu_us_per_msg", usage.cpu_s * 1e6 / sent as f64);
        }
        if let Some(cpu) = row.server_cpu_per_op_us() {
            row = row.with("server_cpu_us_per_msg", cpu);
        }
        report.rows.push(row);
    }
    report.note(
        "latency_us: typed (a line written to alice's stdin) to shown (bob's `message` event read); \
         typed_to_delivered_us: to alice's `delivered` event",
    );
    alice.line("exit").await?;
    bob.line("exit").await?;
    Ok(report)
}
