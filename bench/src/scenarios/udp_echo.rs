//! `udp-echo`: the baseline. A minimal UDP echo server (a process of its
//! own: one thread, `recv_from` then `send_to`) driven by the same load
//! generator as udpchat, with the same clients, window and datagram sizes:
//! the request-reply rate this machine allows at all. Every other
//! request-reply figure of a run is also given as a ratio to this one.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::anyhow;
use parking_lot::Mutex;
use tokio::net::UdpSocket;
use tokio::sync::oneshot;

use super::Ctx;
use crate::clients::{keep_pinging, loopback_for, AbortOnDrop, Pings};
use crate::load::{self, Plan};
use crate::procfs::Stretch;
use crate::report::{Latency, Report, Row};
use crate::server::EchoServer;

/// How long a request waits for its echo before it counts as lost.
const ECHO_WAIT: Duration = Duration::from_secs(1);

/// The shape of a request-reply load.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Shape {
    pub clients: usize,
    pub window: usize,
    pub request_bytes: usize,
    pub reply_bytes: usize,
}

type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<()>>>>;

/// One simulated client of the echo server: its own socket, and a task
/// that hands each echo to the request waiting for it (as udpchat's Link
/// hands each reply to its request).
#[derive(Clone)]
struct EchoClient {
    socket: Arc<UdpSocket>,
    server: SocketAddr,
    pending: Pending,
    next: Arc<AtomicU64>,
    shape: Shape,
    _receiver: Arc<AbortOnDrop>,
}

impl EchoClient {
    async fn open(index: usize, server: SocketAddr, shape: Shape) -> anyhow::Result<EchoClient> {
        let socket = Arc::new(UdpSocket::bind(SocketAddr::new(loopback_for(index), 0)).await?);
        let pending: Pending = Arc::default();
        let receiver = {
            let (socket, pending) = (socket.clone(), pending.clone());
            tokio::spawn(async move {
                let mut buf = vec![0u8; 65_536];
                while let Ok((len, _)) = socket.recv_from(&mut buf).await {
                    if len < 8 {
                        continue;
                    }
                    let seq = u64::from_be_bytes(buf[..8].try_into().expect("8 bytes"));
                    if let Some(done) = pending.lock().remove(&seq) {
                        let _ = done.send(());
                    }
                }
            })
        };
        Ok(EchoClient {
            socket,
            server,
            pending,
            next: Arc::new(AtomicU64::new(0)),
            shape,
            _receiver: Arc::new(AbortOnDrop(receiver)),
        })
    }

    async fn exchange(self) -> anyhow::Result<()> {
        let seq = self.next.fetch_add(1, Ordering::Relaxed);
        let (done, echoed) = oneshot::channel();
        self.pending.lock().insert(seq, done);
        let mut request = vec![0u8; self.shape.request_bytes.max(10)];
        request[..8].copy_from_slice(&seq.to_be_bytes());
        let reply = u16::try_from(self.shape.reply_bytes.max(10)).unwrap_or(u16::MAX);
        request[8..10].copy_from_slice(&reply.to_be_bytes());
        self.socket.send_to(&request, self.server).await?;
        match tokio::time::timeout(ECHO_WAIT, echoed).await {
            Ok(Ok(())) => Ok(()),
            _ => {
                self.pending.lock().remove(&seq);
                Err(anyhow!("no echo within {}s", ECHO_WAIT.as_secs()))
            }
        }
    }
}

/// Measures the baseline for `shape`: the row every other request-reply
/// figure of the run is divided by.
pub async fn baseline(shape: Shape, plan: Plan) -> anyhow::Result<Row> {
    let server = EchoServer::start()?;
    let mut clients = Vec::with_capacity(shape.clients);
    for i in 0..shape.clients {
        clients.push(EchoClient::open(i, server.addr, shape).await?);
    }
    let plan = Plan {
        window: shape.window,
        ..plan
    };
    let outcome = load::closed_loop(
        "udp-echo",
        &clients,
        plan,
        Some(server.pid),
        EchoClient::exchange,
    )
    .await;
    let mut row = Row::new("udp-echo", "req/s", outcome.ok, outcome.seconds)
        .with("clients", shape.clients)
        .with("window", shape.window)
        .with("request_bytes", shape.request_bytes)
        .with("reply_bytes", shape.reply_bytes);
    row.errors = outcome.errors;
    row.latency = Latency::of(&outcome.hist);
    row.server = outcome.server;
    row.generator = outcome.generator;
    row.ratio = Some(1.0);
    Ok(row)
}

/// The scenario on its own: the baseline for the `rpc` shape.
pub async fn run(ctx: &Ctx) -> anyhow::Result<Report> {
    let shape = super::rpc::list_shape(ctx.clients, ctx.window);
    let mut report = Report::new(
        "udp-echo",
        super::params_with(ctx, serde_json::json!({ "shape": shape })),
    );
    let row = baseline(shape, ctx.plan()).await?;
    report.note(format!(
        "{} clients x window {}, {} B requests, {} B replies (the sizes of udpchat's `list` datagrams for this many users)",
        shape.clients, shape.window, shape.request_bytes, shape.reply_bytes
    ));
    report.baseline = Some(row);
    Ok(report)
}

/// A keepalive's datagram and its acknowledgement, in bytes, as udpchat
/// sends them (the transport's empty DATA packet, and its ACK, sealed).
pub const KEEPALIVE_BYTES: (usize, usize) = (60, 69);

/// The baseline for `presence`: `k` clients on `sockets` sockets (shared as
/// `presence` shares them), each sending a datagram of udpchat's
/// keepalive's size to the echo server every `every` (first after a random
/// part of it) and waiting for the echo. The row is the echoes over the
/// measured `stretch`, with the echo server's CPU: what a keepalive costs
/// a server that does nothing but answer it, at the same rate, from as
/// many addresses.
pub async fn keepalives(
    k: usize,
    sockets: usize,
    every: Duration,
    stretch: Duration,
) -> anyhow::Result<Row> {
    let server = EchoServer::start()?;
    let shape = Shape {
        clients: k,
        window: 1,
        request_bytes: KEEPALIVE_BYTES.0,
        reply_bytes: KEEPALIVE_BYTES.1,
    };
    let mut clients = Vec::with_capacity(sockets);
    for i in 0..sockets.max(1) {
        clients.push(EchoClient::open(i, server.addr, shape).await?);
    }
    let pings = Arc::new(Pings::default());
    let pingers: Vec<AbortOnDrop> = (0..k)
        .map(|i| {
            let client = clients[i % clients.len()].clone();
            keep_pinging(every, pings.clone(), move || {
                let client = client.clone();
                async move { client.exchange().await.is_ok() }
            })
        })
        .collect();
    let watched = Stretch::start(Some(server.pid));
    pings.start();
    tokio::time::sleep(stretch).await;
    pings.stop();
    let (usage, generated) = watched.usage();
    drop(pingers);
    let mut row = Row::new(
        format!("K={k} udp-echo"),
        "pings/s",
        pings.answered(),
        stretch.as_secs_f64(),
    )
    .with("clients", k)
    .with("sockets", clients.len())
    .with("request_bytes", shape.request_bytes)
    .with("reply_bytes", shape.reply_bytes);
    row.errors = pings.unanswered();
    row.latency = pings.latency();
    row.server = usage;
    row.generator = generated;
    if let Some(us) = row.server_cpu_per_op_us() {
        row = row.with("cpu_us_per_ping", us);
    }
    Ok(row)
}
