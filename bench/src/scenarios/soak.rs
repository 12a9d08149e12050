//! `soak`: an hour of sign-ins, messages and sign-outs, with the real
//! binaries. Scripted users u0..u11 (accounts made once at start), each
//! in a loop: start a real `udpchat --json` client process that signs in,
//! stays online a moment, sends 3-10 direct messages to as many distinct
//! random other users (`send uJ soak uI N`), then closes its stdin at
//! once (the client signs out and exits, finishing what is still on its
//! way first), stays offline a moment, and again. Recipients who are
//! offline get the message sealed into their mailbox, handed over at
//! their next sign-in (`"stored": true`).
//!
//! Every message is tracked by its text: its outcome at the sender
//! (`delivered`, `queued` or an `error` naming the recipient; the
//! recipients of one session are distinct, so the event's `to` says
//! which message it is about) and every `message` event with that text at
//! any client. After the run, a drain: every user signs in once more and
//! waits for its mailbox. Then: lost (delivered or queued, never
//! received), failed (the sender was told, never received), duplicated
//! (received more than once), and every `error` event by kind. The
//! server's RSS and CPU are read from `/proc` every 30 s.
//!
//! The run's event log (every client line, with time, user and session,
//! and every `send` typed), the clients' stderr and the server's log go to
//! `--logs DIR`.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{BufWriter, Write as _};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use clap::Args;
use parking_lot::Mutex;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::mpsc;

use super::{params_with, Ctx};
use crate::procfs;
use crate::report::Report;

mod tally;
use tally::{summarize, Msg, Outcome, Reading, Tracker};

/// The scenario's options.
#[derive(Debug, Args, Clone)]
pub struct SoakArgs {
    /// Scripted users, u0..u(N-1).
    #[arg(long, default_value_t = 12)]
    pub users: usize,
    /// Seconds between readings of the server's RSS and CPU [default: 30, quick 5].
    #[arg(long, value_name = "SECS")]
    pub sample: Option<f64>,
    /// The server's --password-memory (KiB per argon2 hash).
    #[arg(long, value_name = "KIB", default_value_t = 1024)]
    pub password_memory: u32,
    /// Where the event log, the clients' stderr and the server's log go.
    #[arg(long, value_name = "DIR", default_value = "target/bench-results/soak")]
    pub logs: PathBuf,
}

/// Messages a session sends, at least and at most.
const MESSAGES: std::ops::RangeInclusive<usize> = 3..=10;
/// Online before the first message, at most.
const LINGER_MAX: Duration = Duration::from_millis(2_000);
/// Between two messages of a session, at most.
const GAP_MAX: Duration = Duration::from_millis(300);
/// Offline between two sessions, least and most.
const OFFLINE: (Duration, Duration) = (Duration::from_millis(300), Duration::from_millis(3_000));
/// How long a client may take to sign in.
const SIGNIN_WAIT: Duration = Duration::from_secs(60);
/// How long a client may take to exit once its stdin is closed: it
/// finishes deliveries first for up to 90 s (`logout::FINISH_WITHIN`).
const EXIT_WAIT: Duration = Duration::from_secs(150);
/// The drain: a user's mailbox is taken as empty after this long without
/// a message (or at once when nothing it is owed is missing, plus
/// [`DRAIN_SETTLE`] for duplicates), and the drain ends after
/// [`DRAIN_MAX`] whatever comes.
const DRAIN_QUIET: Duration = Duration::from_secs(15);
const DRAIN_SETTLE: Duration = Duration::from_secs(3);
const DRAIN_MAX: Duration = Duration::from_secs(180);

/// What one client session knows: the messages it sent whose outcome is
/// still to come, by recipient (one per recipient).
struct SessionState {
    user: usize,
    pending: HashMap<String, String>,
}

/// Shared by every user's loop.
struct Env {
    client_bin: PathBuf,
    server: SocketAddr,
    server_key: PathBuf,
    names: Vec<String>,
    dirs: Vec<PathBuf>,
    logs: PathBuf,
    t0: Instant,
    events: Mutex<BufWriter<File>>,
    tracker: Mutex<Tracker>,
}

impl Env {
    fn tracker(&self) -> parking_lot::MutexGuard<'_, Tracker> {
        self.tracker.lock()
    }

    fn log_event(&self, user: usize, session: u64, line: &str) {
        let t = self.t0.elapsed().as_secs_f64();
        let mut events = self.events.lock();
        let _ = writeln!(events, "{t:.3} {} s{session} {line}", self.names[user]);
    }

    /// Starts `udpchat --json` for `user`, signing in (or up).
    fn start(self: &Arc<Env>, user: usize, session: u64, signup: bool) -> anyhow::Result<Proc> {
        let name = &self.names[user];
        let stderr = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.logs.join(format!("{name}.stderr.log")))?;
        let mut command = Command::new(&self.client_bin);
        command
            .args(["--json", "--bind", "127.0.0.1:0", "--server"])
            .arg(self.server.to_string())
            .arg("--server-key")
            .arg(&self.server_key)
            .arg("--data-dir")
            .arg(&self.dirs[user])
            .args(["-u", name, "-p", &password(name)]);
        if signup {
            command.arg("--signup");
        }
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr))
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start {}", self.client_bin.display()))?;
        let stdout = child.stdout.take().context("no client stdout")?;
        let stdin = child.stdin.take();
        let (tx, events) = mpsc::unbounded_channel();
        let env = self.clone();
        tokio::spawn(async move {
            // Ends when the client's stdout does (it exited or was killed).
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                env.log_event(user, session, &line);
                let event = serde_json::from_str(&line)
                    .unwrap_or_else(|_| json!({ "event": "not-json", "line": line }));
                if tx.send(event).is_err() {
                    break;
                }
            }
        });
        Ok(Proc {
            child,
            stdin,
            events,
            state: SessionState {
                user,
                pending: HashMap::new(),
            },
        })
    }

    /// Takes in one event of `state`'s client.
    fn observe(&self, state: &mut SessionState, event: &Value) {
        let kind = event["event"].as_str().unwrap_or("");
        let mut tracker = self.tracker();
        match kind {
            "message" => tracker.received(state.user, event),
            // The server's word that a queued message was taken from the
            // mailbox (`mail-status`): not the outcome of a `send`.
            "delivered" if event["stored"] == true => tracker.mailbox_receipts += 1,
            "delivered" | "queued" => {
                let text = event["to"].as_str().and_then(|to| state.pending.remove(to));
                match text.and_then(|text| tracker.messages.get_mut(&text)) {
                    Some(msg) => {
                        msg.outcome = if kind == "delivered" {
                            Outcome::Delivered
                        } else {
                            Outcome::Queued
                        };
                    }
                    None => tracker.stray_outcomes += 1,
                }
            }
            "error" => {
                let code = event["code"].as_str().unwrap_or("?");
                let message = event["message"].as_str().unwrap_or("?");
                let to = event["to"].as_str();
                tracker.error(code, message, to.is_some());
                let text = to.and_then(|to| state.pending.remove(to));
                if let Some(msg) = text.and_then(|text| tracker.messages.get_mut(&text)) {
                    msg.outcome = Outcome::Failed(code.to_string());
                }
            }
            "finishing" => tracker.finishing += 1,
            "not-json" => tracker.harness.push(format!(
                "{}: a line that is not JSON: {}",
                self.names[state.user], event["line"]
            )),
            _ => {}
        }
    }

    /// Messages to `user` not received yet that may still come.
    fn awaiting(&self, user: usize) -> usize {
        self.tracker()
            .messages
            .values()
            .filter(|m| m.to == user && m.received == 0 && !matches!(m.outcome, Outcome::Failed(_)))
            .count()
    }
}

fn password(user: &str) -> String {
    format!("soak password of {user}")
}

/// One client process.
struct Proc {
    child: Child,
    stdin: Option<ChildStdin>,
    events: mpsc::UnboundedReceiver<Value>,
    state: SessionState,
}

impl Proc {
    /// Takes in events until one satisfies `stop` (returned), `within`
    /// passes or the client's output ends (both `None`).
    async fn until(
        &mut self,
        env: &Env,
        within: Duration,
        stop: impl Fn(&Value) -> bool,
    ) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            match tokio::time::timeout_at(deadline, self.events.recv()).await {
                Ok(Some(event)) => {
                    env.observe(&mut self.state, &event);
                    if stop(&event) {
                        return Some(event);
                    }
                }
                Ok(None) | Err(_) => return None,
            }
        }
    }

    async fn line(&mut self, line: &str) -> anyhow::Result<()> {
        let stdin = self.stdin.as_mut().context("stdin closed")?;
        stdin.write_all(format!("{line}\n").as_bytes()).await?;
        stdin.flush().await?;
        Ok(())
    }

    /// Closes stdin (the client signs out and exits), takes in what it
    /// still says, and waits for it; kills it after [`EXIT_WAIT`].
    async fn finish(mut self, env: &Env) {
        drop(self.stdin.take());
        let user = self.state.user;
        let ended = tokio::time::timeout(EXIT_WAIT, async {
            while let Some(event) = self.events.recv().await {
                env.observe(&mut self.state, &event);
            }
            self.child.wait().await
        })
        .await;
        match ended {
            Ok(Ok(status)) if status.success() => {}
            Ok(_) => env.tracker().bad_exits += 1,
            Err(_) => {
                let _ = self.child.kill().await;
                let mut tracker = env.tracker();
                tracker.hung += 1;
                tracker.harness.push(format!(
                    "{} did not exit within {EXIT_WAIT:?} of its stdin closing: killed",
                    env.names[user]
                ));
            }
        }
    }
}

/// One sign-in: online a moment, 3-10 messages, then stdin closed.
async fn session(
    env: &Arc<Env>,
    user: usize,
    number: u64,
    rng: &mut StdRng,
    sent: &mut u64,
) -> anyhow::Result<()> {
    let mut proc = env.start(user, number, false)?;
    let signed_in = proc
        .until(env, SIGNIN_WAIT, |e| {
            e["event"] == "signed-in" || e["event"] == "error"
        })
        .await;
    if !signed_in.is_some_and(|e| e["event"] == "signed-in") {
        env.tracker().signin_failures += 1;
        proc.finish(env).await;
        return Ok(());
    }
    env.tracker().sessions += 1;
    let linger = LINGER_MAX.mul_f64(rng.gen::<f64>());
    proc.until(env, linger, |_| false).await;
    let mut to: Vec<usize> = (0..env.names.len()).filter(|&u| u != user).collect();
    to.shuffle(rng);
    to.truncate(rng.gen_range(MESSAGES).min(to.len()));
    for to in to {
        *sent += 1;
        let text = format!("soak {} {sent}", env.names[user]);
        let to_name = env.names[to].clone();
        {
            let mut tracker = env.tracker();
            tracker.order.push(text.clone());
            tracker.messages.insert(
                text.clone(),
                Msg {
                    from: user,
                    to,
                    outcome: Outcome::None,
                    received: 0,
                    stored: 0,
                    unverified: 0,
                    misdelivered: 0,
                },
            );
        }
        proc.state.pending.insert(to_name.clone(), text.clone());
        let line = format!("send {to_name} {text}");
        // In the event log too, marked as the harness's, not the client's.
        env.log_event(
            user,
            number,
            &json!({ "harness": "typed", "line": line }).to_string(),
        );
        proc.line(&line).await?;
        let gap = GAP_MAX.mul_f64(rng.gen::<f64>());
        proc.until(env, gap, |_| false).await;
    }
    proc.finish(env).await;
    Ok(())
}

/// A user's loop until `end` (and at most `rounds` sessions).
async fn user_loop(env: Arc<Env>, user: usize, end: Instant, rounds: u64, seed: u64) {
    let mut rng = StdRng::seed_from_u64(seed.wrapping_mul(1_000_003).wrapping_add(user as u64));
    let mut sent = 0;
    for number in 1..=rounds {
        if Instant::now() >= end {
            break;
        }
        if let Err(e) = session(&env, user, number, &mut rng, &mut sent).await {
            env.tracker()
                .harness
                .push(format!("{}: {e:#}", env.names[user]));
        }
        let offline = OFFLINE.0 + (OFFLINE.1 - OFFLINE.0).mul_f64(rng.gen::<f64>());
        tokio::time::sleep(offline.min(end.saturating_duration_since(Instant::now()))).await;
    }
}

/// The last sign-in: waits for what the mailbox holds.
async fn drain(env: Arc<Env>, user: usize, number: u64) -> anyhow::Result<()> {
    let mut proc = env.start(user, number, false)?;
    let signed_in = proc
        .until(&env, SIGNIN_WAIT, |e| {
            e["event"] == "signed-in" || e["event"] == "error"
        })
        .await;
    if !signed_in.is_some_and(|e| e["event"] == "signed-in") {
        env.tracker().signin_failures += 1;
        proc.finish(&env).await;
        bail!("{} could not sign in for the drain", env.names[user]);
    }
    let started = Instant::now();
    let mut last_message = Instant::now();
    while started.elapsed() < DRAIN_MAX {
        let quiet = last_message.elapsed();
        if quiet >= DRAIN_QUIET || (quiet >= DRAIN_SETTLE && env.awaiting(user) == 0) {
            break;
        }
        let event = proc
            .until(&env, Duration::from_millis(500), |e| {
                e["event"] == "message"
            })
            .await;
        if event.is_some() {
            last_message = Instant::now();
        }
    }
    proc.finish(&env).await;
    Ok(())
}

/// The `udpchat` client next to this executable.
fn client_binary() -> PathBuf {
    let mut dir = std::env::current_exe().unwrap_or_default();
    dir.pop();
    if dir.ends_with("deps") {
        dir.pop();
    }
    dir.join(format!("udpchat{}", std::env::consts::EXE_SUFFIX))
}

/// Reads the server every `every` until `stop` (bounded by `until`).
async fn sample(
    pid: Option<u32>,
    t0: Instant,
    every: Duration,
    stop: Arc<AtomicBool>,
    until: Instant,
) -> Vec<Reading> {
    let mut readings = Vec::new();
    let Some(pid) = pid else {
        return readings;
    };
    let mut next = Instant::now();
    while !stop.load(Ordering::SeqCst) && Instant::now() < until {
        if Instant::now() >= next {
            if let Some(s) = procfs::sample(pid) {
                readings.push(Reading {
                    t: t0.elapsed().as_secs_f64(),
                    rss_kib: s.rss_kib,
                    cpu_s: s.cpu_s,
                });
            }
            next += every;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    readings
}

pub async fn run(ctx: &Ctx, args: &SoakArgs) -> anyhow::Result<Report> {
    let users = args.users.max(2);
    let every = Duration::from_secs_f64(
        args.sample
            .unwrap_or(if ctx.quick { 5.0 } else { 30.0 })
            .max(0.5),
    );
    let mut report = Report::new(
        "soak",
        params_with(
            ctx,
            json!({
                "users": users,
                "messages_per_session": [MESSAGES.start(), MESSAGES.end()],
                "online_before_sending_ms": [0, LINGER_MAX.as_millis() as u64],
                "gap_between_messages_ms": [0, GAP_MAX.as_millis() as u64],
                "offline_between_sessions_ms": [OFFLINE.0.as_millis() as u64, OFFLINE.1.as_millis() as u64],
                "sample_s": every.as_secs_f64(),
                "password_memory_kib": args.password_memory,
            }),
        ),
    );
    let client_bin = client_binary();
    if !client_bin.exists() {
        bail!(
            "{} is missing: build it first (`cargo build --release -p udpchat-client`)",
            client_bin.display()
        );
    }
    let memory = args.password_memory.to_string();
    let target = ctx.source.start_with(&["--password-memory", &memory])?;
    let pid = target.pid;
    let before = pid.and_then(procfs::sample);

    std::fs::create_dir_all(&args.logs)
        .with_context(|| format!("cannot create {}", args.logs.display()))?;
    let work = tempfile::tempdir().context("cannot make the clients' data dirs")?;
    let server_key = work.path().join("server.pub");
    std::fs::write(&server_key, target.server.key.to_spki_pem())?;
    let names: Vec<String> = (0..users)
        .map(|i| match ctx.source {
            crate::server::ServerSource::Spawn(_) => format!("u{i}"),
            crate::server::ServerSource::Running { .. } => format!("s{}u{i}", ctx.run_tag),
        })
        .collect();
    let mut dirs = Vec::new();
    for name in &names {
        let dir = work.path().join(name);
        std::fs::create_dir_all(&dir)?;
        dirs.push(dir);
        let _ = std::fs::remove_file(args.logs.join(format!("{name}.stderr.log")));
    }
    let events = BufWriter::new(File::create(args.logs.join("events.log"))?);
    let env = Arc::new(Env {
        client_bin,
        server: target.server.addr,
        server_key,
        names,
        dirs,
        logs: args.logs.clone(),
        t0: Instant::now(),
        events: Mutex::new(events),
        tracker: Mutex::new(Tracker::default()),
    });

    // The accounts, once.
    for user in 0..users {
        let mut proc = env.start(user, 0, true)?;
        let signed_up = proc
            .until(&env, SIGNIN_WAIT, |e| {
                e["event"] == "signed-in" || e["event"] == "error"
            })
            .await;
        let ok = signed_up
            .as_ref()
            .is_some_and(|e| e["event"] == "signed-in");
        proc.finish(&env).await;
        if !ok {
            bail!("{} could not sign up: {signed_up:?}", env.names[user]);
        }
    }

    // The loops, sampled.
    let t0 = Instant::now();
    let end = t0 + ctx.duration;
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = tokio::spawn(sample(
        pid,
        t0,
        every,
        stop.clone(),
        end + EXIT_WAIT + DRAIN_MAX + EXIT_WAIT + Duration::from_secs(60),
    ));
    // A session takes at least the least offline pause.
    let rounds = (ctx.duration.as_secs_f64() / OFFLINE.0.as_secs_f64()) as u64 + 1;
    let loops: Vec<_> = (0..users)
        .map(|user| tokio::spawn(user_loop(env.clone(), user, end, rounds, ctx.seed)))
        .collect();
    for task in loops {
        task.await?;
    }
    let loops_s = t0.elapsed().as_secs_f64();

    // The drain: everyone signs in once more, at once.
    let drained_at = Instant::now();
    let drains: Vec<_> = (0..users)
        .map(|user| tokio::spawn(drain(env.clone(), user, rounds + 1)))
        .collect();
    for task in drains {
        if let Err(e) = task.await? {
            env.tracker().harness.push(format!("{e:#}"));
        }
    }
    let drain_s = drained_at.elapsed().as_secs_f64();
    stop.store(true, Ordering::SeqCst);
    let mut readings = sampler.await?;
    if let Some(s) = pid.and_then(procfs::sample) {
        readings.push(Reading {
            t: t0.elapsed().as_secs_f64(),
            rss_kib: s.rss_kib,
            cpu_s: s.cpu_s,
        });
    }
    let peak_kib = pid.and_then(procfs::sample).map(|s| s.peak_rss_kib);

    // The server's log, before the server (and its data dir) goes.
    if let Some(pid) = pid {
        if let Ok(log) = std::fs::read_link(format!("/proc/{pid}/fd/2")) {
            let _ = std::fs::copy(&log, args.logs.join("server.log"));
        }
    }
    env.events.lock().flush()?;
    drop(target);

    let tracker = env.tracker();
    summarize(
        &mut report,
        &tracker,
        &env.names,
        &readings,
        before,
        peak_kib,
        loops_s,
        drain_s,
        &args.logs,
    );
    Ok(report)
}
