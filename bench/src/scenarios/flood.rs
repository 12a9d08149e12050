//! `flood`: junk HELLOs beside the normal load (issue 11, finding 2).
//!
//! K signed-in clients (default 32) ask `list` at a steady rate each
//! (default 20/s: not flat out, a load the server takes easily), while
//! every 250 ms a fresh client opens an NK session and signs in to one of
//! 8 accounts made beforehand. Three phases on one server, each a warm-up
//! and a measured stretch:
//!
//! 1. **calm**: no attack; the same run's baseline.
//! 2. **spoofed flood**: junk HELLOs at `rate` (default 6,000/s) from
//!    `sources` UDP sockets on 127.0.0.2, .3, ... Each is a real HELLO with
//!    its AEAD part corrupted and a valid mac1 ([`raw::junk_hello`]), so only
//!    P-384 work finds it out. The attackers read their sockets (bytes back
//!    are counted) but never use a cookie: a flood from spoofed addresses.
//! 3. **cookie flood** (unless `--spoofed-only`): the same, but each
//!    attacker sends its HELLOs with the mac2 of the last cookie it got:
//!    what the per-source limit holds.
//! 4. **KEY REQUEST flood** (unless `--spoofed-only`): KEY REQUESTs at
//!    `rate` from the same sockets, each answered with the server's key
//!    (anyone may ask, from any address: what one costs the server).
//!
//! Reported per phase: the `list` rate, p50/p99 and errors; the sign-ins'
//! time from connect to signed in (p50, max, how many within 2 s, and
//! failures); the server's CPU (from `/proc`) and the datagrams the kernel
//! dropped at its socket; the junk sent and the bytes that came back to
//! the attackers.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::net::UdpSocket;
use udpchat_commands::signin::SignIn;
use udpchat_core::crypto::keys::StaticKey;
use udpchat_core::secure::cookie::{self, Cookie};
use udpchat_core::wire;

use super::rpc::{measure, setup, SIGNUP_PARALLEL};
use super::{params_with, Ctx};
use crate::clients::{drain, sign_up_many, AbortOnDrop, SimClient};
use crate::load::{histogram, micros, Plan};
use crate::procfs;
use crate::raw;
use crate::report::{Latency, Report, Row};
use crate::server::{ServerRef, Target};

/// Junk HELLOs per second, all sources together.
pub const RATE: f64 = 6_000.0;
/// Attacking sockets, one per address from 127.0.0.2 up.
pub const SOURCES: u8 = 8;
/// `list` requests per second per signed-in client.
pub const LIST_RATE: f64 = 20.0;
/// Signed-in clients asking `list` when `--clients` is not given.
pub const CLIENTS: usize = 32;
/// A fresh client signs in this often.
pub const PROBE_EVERY: Duration = Duration::from_millis(250);
/// The target for an honest sign-in under the flood.
const SIGNIN_TARGET: Duration = Duration::from_secs(2);
/// A sign-in not done by then counts as failed (the client itself gives
/// up sooner: six HELLOs unanswered take about 31.5 s).
const PROBE_TIMEOUT: Duration = Duration::from_secs(40);
/// Different junk HELLOs the attackers cycle through (each costs the
/// bench a real message 1 to make; the server's replay guard would only
/// see a repeat after the AEAD, which junk never passes).
const JUNK_POOL: usize = 256;
/// Junk sent in one go at most when the sender is behind its schedule.
const BURST: u64 = 64;

/// What the flood is shaped by.
#[derive(Debug, Clone, Copy)]
pub struct FloodArgs {
    pub rate: f64,
    pub sources: usize,
    pub list_rate: f64,
    pub cookie_phase: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Attack {
    None,
    /// Cookie replies are read and thrown away.
    Spoofed,
    /// Each attacker stamps its junk with its latest cookie.
    Cookies,
    /// KEY REQUESTs instead of HELLOs: each is answered with the server's
    /// key, unauthenticated, from any address.
    KeyRequests,
}

impl Attack {
    fn phase(self) -> &'static str {
        match self {
            Attack::None => "calm",
            Attack::Spoofed => "spoofed flood",
            Attack::Cookies => "cookie flood",
            Attack::KeyRequests => "KEY REQUEST flood",
        }
    }
}

pub async fn run(ctx: &Ctx, args: FloodArgs) -> anyhow::Result<Report> {
    let plan = Plan {
        window: 1,
        pace: Some(Duration::from_secs_f64(1.0 / args.list_rate.max(0.01))),
        ..ctx.plan()
    };
    let mut report = Report::new(
        "flood",
        params_with(
            ctx,
            serde_json::json!({
                "junk_rate": args.rate,
                "sources": args.sources,
                "list_rate_per_client": args.list_rate,
                "list_offered_rate": plan.offered_rate(ctx.clients),
                "signin_every_ms": PROBE_EVERY.as_millis() as u64,
                "cookie_phase": args.cookie_phase,
            }),
        ),
    );
    let mut attacks = vec![Attack::None, Attack::Spoofed];
    if args.cookie_phase {
        attacks.extend([Attack::Cookies, Attack::KeyRequests]);
    }
    let target = ctx.server()?;
    let clients = setup(ctx, &target).await?;
    // Each sign-in has an account of its own that nobody holds: a name
    // held by a vanished client would make the server probe that client
    // first, and the wait would be counted as the sign-in's.
    let per_phase = ((plan.warmup + plan.measure).as_secs_f64() / PROBE_EVERY.as_secs_f64()).ceil()
        as usize
        + 1;
    let accounts = sign_up_many(
        &target.server,
        &ctx.users("probe"),
        per_phase * attacks.len(),
        SIGNUP_PARALLEL,
    )
    .await?;
    for account in &accounts {
        account.sign_out().await?;
    }
    let accounts: Vec<Account> = accounts
        .into_iter()
        .map(|a| (a.user.clone(), a.identity.clone()))
        .collect();
    report.params["signin_accounts"] = accounts.len().into();
    let key = target.server.key.clone();
    let pool = tokio::task::spawn_blocking(move || {
        (0..JUNK_POOL)
            .map(|_| raw::junk_hello(&mut rand::rngs::OsRng, &key))
            .collect::<anyhow::Result<Vec<_>>>()
    })
    .await??;
    report.params["junk_bytes"] = pool[0].len().into();
    let pool = Arc::new(pool);

    let mut calm: Option<Phase> = None;
    for (attack, accounts) in attacks.into_iter().zip(accounts.chunks(per_phase)) {
        let phase = phase(attack, &target, &clients, accounts, &pool, plan, args).await?;
        let rows = phase.rows(calm.as_ref());
        report.rows.extend(rows);
        if let Some(calm) = &calm {
            report.note(phase.summary(calm));
        }
        if attack == Attack::None {
            calm = Some(phase);
        }
    }
    report.note(format!(
        "{} signed-in clients ask `list` every {:.0} ms each (paced, one outstanding: {:.0}/s offered); latency is from each request's start; a reply later than the pace lowers the rate achieved",
        ctx.clients,
        1e3 / args.list_rate,
        plan.offered_rate(ctx.clients).unwrap_or(0.0)
    ));
    report.note(format!(
        "every {} ms a fresh client (its own socket on 127.0.1.x) opens an NK session and signs in (argon2id on the server) to an account made beforehand and signed out, one per sign-in; its time runs from the connect to the sign-in reply; one not signed in after {} s counts as failed",
        PROBE_EVERY.as_millis(),
        PROBE_TIMEOUT.as_secs()
    ));
    report.note(format!(
        "junk: {} B HELLOs, a real NK message 1 with its AEAD part corrupted and a valid mac1, from {} sockets on 127.0.0.2..; server CPU and kernel drops are over each phase's measured stretch",
        report.params["junk_bytes"], args.sources
    ));
    Ok(report)
}

/// What one phase measured.
struct Phase {
    attack: Attack,
    list: Row,
    signins: Signins,
    junk: Option<JunkCount>,
    /// Datagrams the kernel dropped at the server's socket.
    drops: Option<u64>,
}

async fn phase(
    attack: Attack,
    target: &Target,
    clients: &[SimClient],
    accounts: &[Account],
    pool: &Arc<Vec<Vec<u8>>>,
    plan: Plan,
    args: FloodArgs,
) -> anyhow::Result<Phase> {
    let start = Instant::now();
    let measure_from = start + plan.warmup;
    let stop_at = measure_from + plan.measure;
    let flood = match attack {
        Attack::None => None,
        Attack::Spoofed | Attack::Cookies => Some(
            Flood::start(
                &target.server,
                pool.clone(),
                args,
                attack == Attack::Cookies,
                stop_at,
            )
            .await?,
        ),
        Attack::KeyRequests => {
            let requests = Arc::new(vec![wire::Packet::KeyRequest.encode()]);
            Some(Flood::start(&target.server, requests, args, false, stop_at).await?)
        }
    };
    let probes = tokio::spawn(sign_ins(
        target.server.clone(),
        accounts.to_vec(),
        measure_from,
        stop_at,
    ));
    // The kernel's drops at the server's socket over the measured stretch.
    let addr = target.server.addr;
    let drops = tokio::spawn(async move {
        tokio::time::sleep_until(measure_from.into()).await;
        let before = procfs::udp_drops(addr);
        tokio::time::sleep_until(stop_at.into()).await;
        procfs::udp_drops(addr)
            .zip(before)
            .map(|(a, b)| a.saturating_sub(b))
    });
    let list = measure(
        &format!("list, {}", attack.phase()),
        target,
        clients,
        plan,
        false,
    )
    .await;
    let drops = drops.await?;
    let junk = match flood {
        Some(flood) => Some(flood.finish().await),
        None => None,
    };
    let signins = probes.await?;
    Ok(Phase {
        attack,
        list,
        signins,
        junk,
        drops,
    })
}

impl Phase {
    fn rows(&self, calm: Option<&Phase>) -> Vec<Row> {
        let name = self.attack.phase();
        let mut list = self.list.clone();
        if let Some(drops) = self.drops {
            list = list.with("server_socket_drops", drops);
        }
        if let Some(usage) = list.server {
            let share = usage.cpu_s / list.seconds.max(1e-9);
            list = list.with("server_cpu_share", share);
        }
        if let Some(calm) = calm {
            // Not `against`: the table's ratio column is the echo's.
            let rate_x_calm = list.rate / calm.list.rate.max(1e-9);
            list = list.with("rate_x_calm", rate_x_calm);
            if let (Some(a), Some(b)) = (calm.list.latency, list.latency) {
                list = list.with("p99_x_calm", b.p99 as f64 / a.p99.max(1) as f64);
            }
            if let (Some(a), Some(b)) = (calm.list.server, list.server) {
                list = list.with("server_cpu_x_calm", b.cpu_s / a.cpu_s.max(1e-9));
            }
        }
        let mut rows = vec![list, self.signins.row(name)];
        if let Some(junk) = &self.junk {
            rows.push(junk.row(name));
        }
        rows
    }

    /// One line comparing this phase with the calm one.
    fn summary(&self, calm: &Phase) -> String {
        let p99 = |p: &Phase| p.list.latency.map_or(0, |l| l.p99);
        let cpu = |p: &Phase| {
            p.list
                .server
                .map_or(0.0, |u| u.cpu_s / p.list.seconds.max(1e-9))
        };
        let signin = |p: &Phase| {
            p.signins
                .latency()
                .map_or("none signed in".to_string(), |l| {
                    format!("p50 {} ms, max {} ms", l.p50 / 1000, l.max / 1000)
                })
        };
        let junk = self.junk.as_ref().map_or(String::new(), |j| {
            format!(
                "; junk {:.0}/s, {:.3} B back per B sent",
                j.rate(),
                j.bytes_in_per_out()
            )
        });
        format!(
            "{}: list p99 {} us (calm {} us, x{:.2}), {} errors; sign-ins {} of {} within {} s ({}; calm {}), {} failed; server CPU {:.0}% of a core (calm {:.0}%){junk}",
            self.attack.phase(),
            p99(self),
            p99(calm),
            p99(self) as f64 / p99(calm).max(1) as f64,
            self.list.errors,
            self.signins.within_target,
            self.signins.started(),
            SIGNIN_TARGET.as_secs(),
            signin(self),
            signin(calm),
            self.signins.failed,
            cpu(self) * 100.0,
            cpu(calm) * 100.0,
        )
    }
}

/// The sign-ins of one phase (those started in its measured stretch).
struct Signins {
    hist: hdrhistogram::Histogram<u64>,
    failed: u64,
    within_target: u64,
    seconds: f64,
    first_error: Option<String>,
}

impl Signins {
    fn latency(&self) -> Option<Latency> {
        Latency::of(&self.hist)
    }

    fn started(&self) -> u64 {
        self.hist.len() + self.failed
    }

    fn row(&self, phase: &str) -> Row {
        let mut row = Row::new(
            format!("sign-in, {phase}"),
            "signins/s",
            self.hist.len(),
            self.seconds,
        )
        .with("started", self.started())
        .with("within_2s", self.within_target);
        row.errors = self.failed;
        row.latency = self.latency();
        if let Some(e) = &self.first_error {
            row = row.with("first_error", e.clone());
        }
        row
    }
}

/// The loopback address of the `n`th sign-in's client: 127.0.1.1 to
/// 127.0.1.250, away from the load's 127.0.0.1 and the attackers.
fn probe_ip(n: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 1, 1 + (n % 250) as u8))
}

/// A user name and its identity key.
type Account = (String, Arc<StaticKey>);

/// Every [`PROBE_EVERY`] until `stop_at` (or the accounts run out), a
/// fresh client signs in to the next account (open loop: one does not
/// wait for the last). Counts those started from `measure_from`.
async fn sign_ins(
    server: ServerRef,
    accounts: Vec<Account>,
    measure_from: Instant,
    stop_at: Instant,
) -> Signins {
    let mut tick = tokio::time::interval(PROBE_EVERY);
    let mut tasks = Vec::new();
    for (n, (user, identity)) in accounts.into_iter().enumerate() {
        tick.tick().await;
        let t0 = Instant::now();
        if t0 >= stop_at {
            break;
        }
        let server = server.clone();
        tasks.push(tokio::spawn(async move {
            let signed =
                tokio::time::timeout(PROBE_TIMEOUT, sign_in(&server, probe_ip(n), user, identity))
                    .await;
            let result = match signed {
                Ok(result) => result,
                Err(_) => Err(anyhow::anyhow!(
                    "not signed in after {} s",
                    PROBE_TIMEOUT.as_secs()
                )),
            };
            (t0, t0.elapsed(), result)
        }));
    }
    let mut signins = Signins {
        hist: histogram(),
        failed: 0,
        within_target: 0,
        seconds: stop_at
            .saturating_duration_since(measure_from)
            .as_secs_f64(),
        first_error: None,
    };
    for task in tasks {
        let Ok((t0, took, result)) = task.await else {
            continue;
        };
        if t0 < measure_from {
            continue;
        }
        match result {
            Ok(()) => {
                signins.hist.saturating_record(micros(took).max(1));
                if took <= SIGNIN_TARGET {
                    signins.within_target += 1;
                }
            }
            Err(e) => {
                signins.failed += 1;
                signins.first_error.get_or_insert_with(|| format!("{e:#}"));
            }
        }
    }
    signins
}

/// A new client on its own socket: NK session, then `signin`.
async fn sign_in(
    server: &ServerRef,
    ip: IpAddr,
    user: String,
    identity: Arc<StaticKey>,
) -> anyhow::Result<()> {
    let (client, inbound) = SimClient::connect_as(server, ip, user, identity).await?;
    drain(inbound);
    client.sign::<SignIn>().await
}

/// The attackers' counts.
#[derive(Default)]
struct Counts {
    sent: AtomicU64,
    bytes_out: AtomicU64,
    send_errors: AtomicU64,
    /// Junk sent with a valid mac2.
    with_cookie: AtomicU64,
    received: AtomicU64,
    bytes_in: AtomicU64,
    cookies: AtomicU64,
}

/// What the attackers sent and got back over one phase.
struct JunkCount {
    sent: u64,
    bytes_out: u64,
    send_errors: u64,
    with_cookie: u64,
    received: u64,
    bytes_in: u64,
    cookies: u64,
    seconds: f64,
}

impl JunkCount {
    fn rate(&self) -> f64 {
        self.sent as f64 / self.seconds.max(1e-9)
    }

    fn bytes_in_per_out(&self) -> f64 {
        self.bytes_in as f64 / self.bytes_out.max(1) as f64
    }

    fn row(&self, phase: &str) -> Row {
        let mut row = Row::new(
            format!("junk, {phase}"),
            "HELLOs/s",
            self.sent,
            self.seconds,
        )
        .with("bytes_out", self.bytes_out)
        .with("bytes_in", self.bytes_in)
        .with("bytes_in_per_out", self.bytes_in_per_out())
        .with("datagrams_in", self.received)
        .with("cookie_replies", self.cookies)
        .with("sent_with_mac2", self.with_cookie)
        .with(
            "mbit_per_s_out",
            self.bytes_out as f64 * 8.0 / 1e6 / self.seconds.max(1e-9),
        );
        row.errors = self.send_errors;
        row
    }
}

/// The attackers of one phase: a sender and a reader per socket.
struct Flood {
    counts: Arc<Counts>,
    started: Instant,
    stop_at: Instant,
    senders: Vec<tokio::task::JoinHandle<()>>,
    _readers: Vec<AbortOnDrop>,
}

impl Flood {
    async fn start(
        server: &ServerRef,
        pool: Arc<Vec<Vec<u8>>>,
        args: FloodArgs,
        use_cookies: bool,
        stop_at: Instant,
    ) -> anyhow::Result<Flood> {
        let counts = Arc::new(Counts::default());
        let started = Instant::now();
        let per_source = args.rate / args.sources.max(1) as f64;
        let mac1_key = *cookie::mac1_key(&server.key);
        let (mut senders, mut readers) = (Vec::new(), Vec::new());
        for s in 0..args.sources.max(1) {
            let ip = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2 + (s % 250) as u8));
            let socket = Arc::new(UdpSocket::bind(SocketAddr::new(ip, 0)).await?);
            let cookie: Arc<Mutex<Option<Cookie>>> = Arc::default();
            readers.push(AbortOnDrop(tokio::spawn(read_replies(
                socket.clone(),
                counts.clone(),
                cookie.clone(),
            ))));
            let sender = Sender {
                socket,
                server: server.addr,
                pool: pool.clone(),
                offset: s * pool.len() / args.sources.max(1),
                per_sec: per_source,
                cookie: use_cookies.then_some(cookie),
                mac1_key,
                counts: counts.clone(),
            };
            senders.push(tokio::spawn(sender.run(started, stop_at)));
        }
        Ok(Flood {
            counts,
            started,
            stop_at,
            senders,
            _readers: readers,
        })
    }

    /// Waits for the senders to stop (at `stop_at`) and a little more for
    /// the last replies.
    async fn finish(self) -> JunkCount {
        for sender in self.senders {
            let _ = sender.await;
        }
        let seconds = self
            .started
            .elapsed()
            .min(self.stop_at.saturating_duration_since(self.started))
            .as_secs_f64();
        tokio::time::sleep(Duration::from_millis(200)).await;
        let c = &self.counts;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        JunkCount {
            sent: get(&c.sent),
            bytes_out: get(&c.bytes_out),
            send_errors: get(&c.send_errors),
            with_cookie: get(&c.with_cookie),
            received: get(&c.received),
            bytes_in: get(&c.bytes_in),
            cookies: get(&c.cookies),
            seconds,
        }
    }
}

/// Counts what comes back to an attacking socket; keeps the latest cookie.
async fn read_replies(
    socket: Arc<UdpSocket>,
    counts: Arc<Counts>,
    cookie: Arc<Mutex<Option<Cookie>>>,
) {
    let mut buf = vec![0u8; 2048];
    while let Ok((len, _)) = socket.recv_from(&mut buf).await {
        counts.received.fetch_add(1, Ordering::Relaxed);
        counts.bytes_in.fetch_add(len as u64, Ordering::Relaxed);
        if let Some(c) = raw::cookie_reply(&buf[..len]) {
            counts.cookies.fetch_add(1, Ordering::Relaxed);
            *cookie.lock() = Some(c);
        }
    }
}

/// One attacking socket's sender: junk at `per_sec`, on schedule, until
/// the phase ends.
struct Sender {
    socket: Arc<UdpSocket>,
    server: SocketAddr,
    pool: Arc<Vec<Vec<u8>>>,
    offset: usize,
    per_sec: f64,
    /// With a cookie phase: the cookie its reader keeps.
    cookie: Option<Arc<Mutex<Option<Cookie>>>>,
    /// mac1's key (from the server's public key: nothing secret).
    mac1_key: [u8; 48],
    counts: Arc<Counts>,
}

impl Sender {
    async fn run(self, started: Instant, stop_at: Instant) {
        let mut sent = 0u64;
        let mut datagram = Vec::new();
        loop {
            let now = Instant::now();
            if now >= stop_at {
                break;
            }
            let due = (now.duration_since(started).as_secs_f64() * self.per_sec) as u64;
            for _ in 0..due.saturating_sub(sent).min(BURST) {
                let junk = &self.pool[(self.offset + sent as usize) % self.pool.len()];
                let cookie = self.cookie.as_ref().and_then(|c| *c.lock());
                let bytes: &[u8] = match cookie {
                    Some(c) => {
                        datagram.clear();
                        datagram.extend_from_slice(junk);
                        raw::with_cookie(&mut datagram, &self.mac1_key, &c);
                        self.counts.with_cookie.fetch_add(1, Ordering::Relaxed);
                        &datagram
                    }
                    None => junk,
                };
                sent += 1;
                match self.socket.send_to(bytes, self.server).await {
                    Ok(n) => {
                        self.counts.sent.fetch_add(1, Ordering::Relaxed);
                        self.counts.bytes_out.fetch_add(n as u64, Ordering::Relaxed);
                    }
                    Err(_) => {
                        self.counts.send_errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
}
