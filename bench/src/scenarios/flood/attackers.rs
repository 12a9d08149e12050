//! The attackers of a phase: per socket (127.0.0.2 up), a sender of junk
//! HELLOs or KEY REQUESTs on schedule (with the last cookie it got, in the
//! cookie flood) and a reader counting what comes back.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::net::UdpSocket;
use udpchat_core::secure::cookie::{self, Cookie};

use super::FloodArgs;
use crate::clients::AbortOnDrop;
use crate::raw;
use crate::report::Row;
use crate::server::ServerRef;

/// Junk sent in one go at most when the sender is behind its schedule.
const BURST: u64 = 64;

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
pub(super) struct JunkCount {
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
    pub(super) fn rate(&self) -> f64 {
        self.sent as f64 / self.seconds.max(1e-9)
    }

    pub(super) fn bytes_in_per_out(&self) -> f64 {
        self.bytes_in as f64 / self.bytes_out.max(1) as f64
    }

    pub(super) fn row(&self, phase: &str) -> Row {
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
pub(super) struct Flood {
    counts: Arc<Counts>,
    started: Instant,
    stop_at: Instant,
    senders: Vec<tokio::task::JoinHandle<()>>,
    _readers: Vec<AbortOnDrop>,
}

impl Flood {
    pub(super) async fn start(
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
    pub(super) async fn finish(self) -> JunkCount {
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
