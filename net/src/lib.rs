//! The one network driver, shared by the server and the client: a UDP
//! socket, a timer and the sans-IO [`SecureEndpoint`], turned into futures.
//!
//! [`Link`] is a cheap handle: `connect` opens an encrypted session,
//! `request` waits for the peer's reply, `push` for the peer's
//! acknowledgement, `reply` answers a request. Requests and pushes that
//! arrive, and sessions that close, come out of the [`Inbound`] channel for
//! the owner's dispatcher.
#![forbid(unsafe_code)]

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rand::SeedableRng as _;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use udpchat_core::context::Reply;
use udpchat_core::crypto::keys::{PublicKey, StaticKey};
use udpchat_core::envelope::{Envelope, Kind};
use udpchat_core::error::{code, CommandError};
use udpchat_core::secure::meeting::Ticket;
use udpchat_core::secure::relay::RelayUsage;
use udpchat_core::secure::{PeerId, PeerInfo, SecureConfig, SecureEndpoint, SecureEvent, Stats};
use udpchat_core::transport::{MessageId, SendError};
use udpchat_core::wire::Pattern;

pub use udpchat_core::secure::PeerId as Peer;

/// Datagrams (and operations) taken from what is ready before each
/// handshake while HELLOs wait.
const READY_BATCH: usize = 64;

/// A client's session used lately sends a keepalive after this long with
/// nothing else sent, so the NATs on its path keep their mappings.
pub const KEEPALIVE: Duration = Duration::from_secs(15);

/// How long a request waits for its reply once sent.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a key request waits for each answer, and how many it sends.
const KEY_FETCH_WAIT: Duration = Duration::from_secs(1);
const KEY_FETCH_TRIES: u32 = 3;

/// Requests and pushes waiting for the owner's dispatcher, at most; past
/// that a request is answered `busy` at once and a push is dropped (the
/// driver counts both). The driver's other queue, of the owner's own
/// operations, is unbounded: only the owner's code fills it, and the
/// owner bounds what it has in hand (the server's dispatcher admits a
/// bounded number of requests at once).
pub const INBOX_CAPACITY: usize = 4096;

/// Where the owner's dispatcher reads what arrives.
pub type Inbox = mpsc::Receiver<Inbound>;

/// What arrives for the owner's dispatcher.
#[derive(Debug)]
pub enum Inbound {
    /// A request or push, with the session's address when it came and
    /// the static key the session proved (see [`PeerInfo`]), so that it
    /// can be handled after the link stopped.
    Envelope {
        from: PeerId,
        addr: SocketAddr,
        remote_static: Option<Box<PublicKey>>,
        envelope: Envelope,
    },
    /// A session is gone: handshake failed, idle, or forgotten.
    Closed { peer: PeerId },
}

enum Op {
    Connect {
        addr: SocketAddr,
        remote: PublicKey,
        pattern: Pattern,
        done: oneshot::Sender<Result<PeerId, CommandError>>,
    },
    FetchKey {
        addr: SocketAddr,
        done: oneshot::Sender<PublicKey>,
    },
    SetIdentity {
        identity: Option<StaticKey>,
    },
    Request {
        to: PeerId,
        cmd: String,
        body: Vec<u8>,
        reply: oneshot::Sender<Reply>,
    },
    Push {
        to: PeerId,
        cmd: String,
        body: Vec<u8>,
        done: oneshot::Sender<Result<(), CommandError>>,
    },
    Reply {
        to: PeerId,
        cmd: String,
        id: u64,
        result: Reply,
    },
    Peer {
        peer: PeerId,
        done: oneshot::Sender<Option<PeerInfo>>,
    },
    Forget {
        peer: PeerId,
    },
    Confirm {
        peer: PeerId,
        keep: bool,
    },
    Stats {
        done: oneshot::Sender<Stats>,
    },
    Meet {
        ticket: Ticket,
        candidates: Vec<SocketAddr>,
        relay: Option<SocketAddr>,
        reachable: mpsc::UnboundedSender<SocketAddr>,
    },
    EndMeeting {
        meeting: u64,
    },
    Migrate {
        peer: PeerId,
        addr: SocketAddr,
    },
    OpenRelay {
        meeting: u64,
        ends: [PeerId; 2],
    },
    RelayUsage {
        meeting: u64,
        done: oneshot::Sender<Option<RelayUsage>>,
    },
    Stop {
        done: oneshot::Sender<()>,
    },
}

/// A handle on the driver; clone it freely.
#[derive(Clone)]
pub struct Link {
    ops: mpsc::UnboundedSender<Op>,
    local: SocketAddr,
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link").field("local", &self.local).finish()
    }
}

fn link_closed() -> CommandError {
    CommandError::new(code::UNREACHABLE, "the network driver has stopped")
}

/// Wall-clock milliseconds, for handshake timestamps.
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Link {
    /// A server's driver: answers handshakes with `key`.
    pub fn spawn_server(
        socket: UdpSocket,
        key: StaticKey,
        config: SecureConfig,
    ) -> std::io::Result<(Link, Inbox)> {
        let endpoint = SecureEndpoint::server(
            config,
            key,
            Box::new(rand::rngs::StdRng::from_entropy()),
            std::time::Instant::now(),
        );
        Link::spawn(socket, endpoint)
    }

    /// A client's driver. Other clients may hold a few sessions with it
    /// from one address (colleagues behind one NAT), not thousands.
    pub fn spawn_client(socket: UdpSocket) -> std::io::Result<(Link, Inbox)> {
        let endpoint = SecureEndpoint::client(
            SecureConfig {
                max_sessions_per_source: 64,
                // Within Linux's 30 s for an unanswered UDP mapping.
                keepalive: Some(KEEPALIVE),
                ..SecureConfig::default()
            },
            Box::new(rand::rngs::StdRng::from_entropy()),
            std::time::Instant::now(),
        );
        Link::spawn(socket, endpoint)
    }

    fn spawn(socket: UdpSocket, endpoint: SecureEndpoint) -> std::io::Result<(Link, Inbox)> {
        let local = socket.local_addr()?;
        let (ops_tx, ops_rx) = mpsc::unbounded_channel();
        let (inbound_tx, inbound_rx) = mpsc::channel(INBOX_CAPACITY);
        let driver = Driver {
            socket,
            local,
            endpoint,
            next_id: 1,
            requests: HashMap::new(),
            waiters: HashMap::new(),
            key_fetches: HashMap::new(),
            meetings: HashMap::new(),
            inbound: inbound_tx,
            closed: VecDeque::new(),
            shed: 0,
            stopped: None,
        };
        tokio::spawn(driver.run(ops_rx));
        Ok((Link { ops: ops_tx, local }, inbound_rx))
    }

    /// Stops the driver for good: what was received (and so acknowledged)
    /// until now is handed to the inbox, and the acknowledgements due are
    /// sent; then nothing more is received or acknowledged, the socket
    /// closes and the inbox ends (its receiver sees `None` once drained).
    /// Everything asked of the link after it fails. A client leaving calls
    /// it so that no message is acknowledged that it will not show.
    pub async fn stop(&self) {
        let (done, stopped) = oneshot::channel();
        if self.ops.send(Op::Stop { done }).is_ok() {
            let _ = stopped.await;
        }
    }

    /// The socket's own address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    async fn ask<T>(&self, op: impl FnOnce(oneshot::Sender<T>) -> Op) -> Option<T> {
        let (done, rx) = oneshot::channel();
        self.ops.send(op(done)).ok()?;
        rx.await.ok()
    }

    /// Opens an encrypted session with `addr`, whose static key is
    /// `remote`. Messages may be sent on it at once; they go out when the
    /// handshake completes (or fail if it does not).
    pub async fn connect(
        &self,
        addr: SocketAddr,
        remote: PublicKey,
        pattern: Pattern,
    ) -> Result<PeerId, CommandError> {
        self.ask(|done| Op::Connect {
            addr,
            remote,
            pattern,
            done,
        })
        .await
        .unwrap_or_else(|| Err(link_closed()))
    }

    /// Asks the server at `addr` for its public key (unauthenticated: for
    /// trust on first use).
    pub async fn fetch_server_key(&self, addr: SocketAddr) -> Result<PublicKey, CommandError> {
        for _ in 0..KEY_FETCH_TRIES {
            let (done, rx) = oneshot::channel();
            self.ops
                .send(Op::FetchKey { addr, done })
                .map_err(|_| link_closed())?;
            if let Ok(Ok(key)) = tokio::time::timeout(KEY_FETCH_WAIT, rx).await {
                return Ok(key);
            }
        }
        Err(CommandError::new(
            code::UNREACHABLE,
            format!("no udpchat server answered at {addr}"),
        ))
    }

    /// Sets the identity key other clients' sessions are answered with.
    pub fn set_identity(&self, identity: Option<StaticKey>) {
        let _ = self.ops.send(Op::SetIdentity { identity });
    }

    /// Sends a request and waits for the reply (or an error: unreachable
    /// peer, no reply in time, the peer's own error).
    pub fn request(
        &self,
        to: PeerId,
        cmd: &str,
        body: Vec<u8>,
    ) -> impl std::future::Future<Output = Reply> + Send + 'static {
        let (reply, rx) = oneshot::channel();
        let sent = self.ops.send(Op::Request {
            to,
            cmd: cmd.to_string(),
            body,
            reply,
        });
        async move {
            sent.map_err(|_| link_closed())?;
            match tokio::time::timeout(REPLY_TIMEOUT, rx).await {
                Ok(Ok(reply)) => reply,
                Ok(Err(_)) => Err(link_closed()),
                Err(_) => Err(CommandError::new(
                    code::TIMEOUT,
                    format!("no reply in {}s", REPLY_TIMEOUT.as_secs()),
                )),
            }
        }
    }

    /// Queues a one-way packet now; the future resolves when the peer
    /// acknowledged it or the transport gave up.
    pub fn push(
        &self,
        to: PeerId,
        cmd: &str,
        body: Vec<u8>,
    ) -> impl std::future::Future<Output = Result<(), CommandError>> + Send + 'static {
        let (done, rx) = oneshot::channel();
        let sent = self.ops.send(Op::Push {
            to,
            cmd: cmd.to_string(),
            body,
            done,
        });
        async move {
            sent.map_err(|_| link_closed())?;
            rx.await.unwrap_or_else(|_| Err(link_closed()))
        }
    }

    /// Answers a request.
    pub fn reply(&self, to: PeerId, cmd: &str, id: u64, result: Reply) {
        let _ = self.ops.send(Op::Reply {
            to,
            cmd: cmd.to_string(),
            id,
            result,
        });
    }

    /// Where a session's peer is and who it is.
    pub async fn peer(&self, peer: PeerId) -> Option<PeerInfo> {
        self.ask(|done| Op::Peer { peer, done }).await.flatten()
    }

    /// Drops a session; its outstanding messages fail.
    pub fn forget(&self, peer: PeerId) {
        let _ = self.ops.send(Op::Forget { peer });
    }

    /// Vouches for a session (`keep`: its user signed in, it stays while
    /// alive) or no longer (it closes a while after, once its messages
    /// are delivered): see `SecureConfig::unconfirmed_timeout`.
    pub fn confirm(&self, peer: PeerId, keep: bool) {
        let _ = self.ops.send(Op::Confirm { peer, keep });
    }

    /// Checks `candidates` for the meeting `ticket` names (see
    /// [`udpchat_core::secure::meeting`]); `relay`: the server that relays
    /// for it. Each address that answers comes out of the receiver; drop
    /// it when no more are wanted (the meeting stays, for the relay and
    /// for the peer's checks, until [`Link::end_meeting`] or idle).
    pub fn meet(
        &self,
        ticket: Ticket,
        candidates: Vec<SocketAddr>,
        relay: Option<SocketAddr>,
    ) -> mpsc::UnboundedReceiver<SocketAddr> {
        let (reachable, rx) = mpsc::unbounded_channel();
        let _ = self.ops.send(Op::Meet {
            ticket,
            candidates,
            relay,
            reachable,
        });
        rx
    }

    /// Forgets a meeting.
    pub fn end_meeting(&self, meeting: u64) {
        let _ = self.ops.send(Op::EndMeeting { meeting });
    }

    /// Moves a session to `addr` (a new path after the old one broke);
    /// what is in flight goes again there at once.
    pub fn migrate(&self, peer: PeerId, addr: SocketAddr) {
        let _ = self.ops.send(Op::Migrate { peer, addr });
    }

    /// A server: relays `meeting`'s packets between the sessions `ends`.
    pub fn open_relay(&self, meeting: u64, ends: [PeerId; 2]) {
        let _ = self.ops.send(Op::OpenRelay { meeting, ends });
    }

    /// What a relay carried so far, while it is open.
    pub async fn relay_usage(&self, meeting: u64) -> Option<RelayUsage> {
        self.ask(|done| Op::RelayUsage { meeting, done })
            .await
            .flatten()
    }

    /// What the endpoint dropped so far.
    pub async fn stats(&self) -> Stats {
        self.ask(|done| Op::Stats { done })
            .await
            .unwrap_or_default()
    }
}

/// Who waits for a message's fate.
enum Waiter {
    Push(oneshot::Sender<Result<(), CommandError>>),
    Request(u64),
}

struct Driver {
    socket: UdpSocket,
    /// The socket's address: an IPv6 one sends to IPv4 peers mapped.
    local: SocketAddr,
    endpoint: SecureEndpoint,
    next_id: u64,
    /// Requests awaiting a reply, by request id.
    requests: HashMap<u64, (PeerId, oneshot::Sender<Reply>)>,
    waiters: HashMap<MessageId, Waiter>,
    key_fetches: HashMap<SocketAddr, Vec<oneshot::Sender<PublicKey>>>,
    /// Who hears of each meeting's reachable addresses.
    meetings: HashMap<u64, mpsc::UnboundedSender<SocketAddr>>,
    inbound: mpsc::Sender<Inbound>,
    /// Closed sessions not yet told to the owner (its channel was full):
    /// never dropped, or the owner would keep state for them.
    closed: VecDeque<PeerId>,
    /// Requests and pushes turned away because the owner was behind.
    shed: u64,
    /// Set by [`Link::stop`]: the loop ends, then this is told.
    stopped: Option<oneshot::Sender<()>>,
}

impl Driver {
    /// The loop. HELLOs that passed the endpoint's gate wait for their
    /// P-384 work until what is already here has been seen to: the
    /// datagrams ready on the socket (up to [`READY_BATCH`]) and the
    /// application's operations, so existing sessions go before new
    /// handshakes, which still get one turn per round.
    async fn run(mut self, mut ops: mpsc::UnboundedReceiver<Op>) {
        let mut buf = vec![0u8; 65_536];
        loop {
            self.flush().await;
            if self.endpoint.has_handshakes() {
                for _ in 0..READY_BATCH {
                    match self.socket.try_recv_from(&mut buf) {
                        Ok((len, from)) => self.datagram(from, &buf[..len]),
                        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                        Err(e) => tracing::debug!("recv: {e}"),
                    }
                }
                for _ in 0..READY_BATCH {
                    match ops.try_recv() {
                        Ok(op) => self.handle_op(op),
                        Err(mpsc::error::TryRecvError::Empty) => break,
                        Err(mpsc::error::TryRecvError::Disconnected) => return,
                    }
                    if self.stopped.is_some() {
                        break;
                    }
                }
                if self.stopped.is_some() {
                    break;
                }
                if self
                    .endpoint
                    .poll_timeout()
                    .is_some_and(|at| at <= std::time::Instant::now())
                {
                    self.timeout();
                }
                self.endpoint
                    .handle_handshake(std::time::Instant::now(), now_ms());
                // Let the runtime's other tasks (the dispatcher) run too.
                tokio::task::yield_now().await;
                continue;
            }
            let deadline = self.endpoint.poll_timeout();
            tokio::select! {
                received = self.socket.recv_from(&mut buf) => match received {
                    Ok((len, from)) => self.datagram(from, &buf[..len]),
                    // ICMP errors from an earlier send surface here; the
                    // transport's own timers deal with the unreachable peer.
                    Err(e) => tracing::debug!("recv: {e}"),
                },
                op = ops.recv() => match op {
                    Some(op) => self.handle_op(op),
                    None => break,
                },
                () = sleep_until(deadline), if deadline.is_some() => self.timeout(),
            }
            if self.stopped.is_some() {
                break;
            }
        }
        // Stopped: what came in is handed over and acknowledged, then the
        // socket and the inbox close with the driver.
        self.flush().await;
        let stopped = self.stopped.take();
        drop(self);
        if let Some(done) = stopped {
            let _ = done.send(());
        }
    }

    fn datagram(&mut self, from: SocketAddr, datagram: &[u8]) {
        // A dual-stack socket sees IPv4 peers as IPv4-mapped IPv6
        // addresses: the endpoint knows them by their IPv4 address.
        let from = SocketAddr::new(from.ip().to_canonical(), from.port());
        if let Err(e) =
            self.endpoint
                .handle_datagram(std::time::Instant::now(), now_ms(), from, datagram)
        {
            tracing::trace!(%from, "dropped datagram: {e}");
        }
    }

    fn timeout(&mut self) {
        self.endpoint
            .handle_timeout(std::time::Instant::now(), now_ms());
        self.requests.retain(|_, (_, tx)| !tx.is_closed());
    }

    fn send(&mut self, to: PeerId, envelope: Vec<u8>) -> Result<MessageId, CommandError> {
        self.endpoint
            .send(std::time::Instant::now(), to, envelope)
            .map_err(|e| match e {
                SendError::QueueFull => CommandError::new(
                    code::BUSY,
                    "too much is already on its way to that peer; try again later",
                ),
                e => CommandError::new(code::TOO_LARGE, e.to_string()),
            })
    }

    fn handle_op(&mut self, op: Op) {
        match op {
            Op::Connect {
                addr,
                remote,
                pattern,
                done,
            } => {
                let result = self
                    .endpoint
                    .connect(std::time::Instant::now(), now_ms(), addr, remote, pattern)
                    .map_err(|e| CommandError::new(code::UNREACHABLE, e.to_string()));
                let _ = done.send(result);
            }
            Op::FetchKey { addr, done } => {
                self.key_fetches.entry(addr).or_default().push(done);
                self.endpoint.request_server_key(addr);
            }
            Op::SetIdentity { identity } => self.endpoint.set_identity(identity),
            Op::Request {
                to,
                cmd,
                body,
                reply,
            } => {
                let id = self.next_id;
                self.next_id += 1;
                match self.send(to, Envelope::encode_parts(&cmd, id, Kind::Request, &body)) {
                    Ok(msg) => {
                        self.waiters.insert(msg, Waiter::Request(id));
                        self.requests.insert(id, (to, reply));
                    }
                    Err(e) => {
                        let _ = reply.send(Err(e));
                    }
                }
            }
            Op::Push {
                to,
                cmd,
                body,
                done,
            } => match self.send(to, Envelope::encode_parts(&cmd, 0, Kind::Push, &body)) {
                Ok(msg) => {
                    self.waiters.insert(msg, Waiter::Push(done));
                }
                Err(e) => {
                    let _ = done.send(Err(e));
                }
            },
            Op::Reply {
                to,
                cmd,
                id,
                result,
            } => {
                let envelope = match &result {
                    Ok(body) => Envelope::encode_parts(&cmd, id, Kind::Reply, body),
                    Err(e) => Envelope::encode_parts(&cmd, id, Kind::Error, &e.to_body()),
                };
                if let Err(e) = self.send(to, envelope) {
                    // The reply itself was too large: tell the requester so.
                    let _ = self.send(
                        to,
                        Envelope::encode_parts(&cmd, id, Kind::Error, &e.to_body()),
                    );
                }
            }
            Op::Peer { peer, done } => {
                let _ = done.send(self.endpoint.peer(peer));
            }
            Op::Forget { peer } => self.endpoint.forget(peer),
            Op::Confirm { peer, keep: true } => self.endpoint.confirm(peer),
            Op::Confirm { peer, keep: false } => {
                self.endpoint.release(std::time::Instant::now(), peer)
            }
            Op::Stats { done } => {
                let _ = done.send(self.endpoint.stats());
            }
            Op::Meet {
                ticket,
                candidates,
                relay,
                reachable,
            } => {
                self.meetings.retain(|_, tx| !tx.is_closed());
                self.meetings.insert(ticket.id, reachable);
                self.endpoint
                    .meet(std::time::Instant::now(), &ticket, &candidates, relay);
            }
            Op::EndMeeting { meeting } => {
                self.meetings.remove(&meeting);
                self.endpoint.end_meeting(meeting);
            }
            Op::Migrate { peer, addr } => {
                self.endpoint.migrate(std::time::Instant::now(), peer, addr)
            }
            Op::OpenRelay {
                meeting,
                ends: [a, b],
            } => self
                .endpoint
                .open_relay(std::time::Instant::now(), meeting, a, b),
            Op::RelayUsage { meeting, done } => {
                let _ = done.send(self.endpoint.relay_usage(meeting));
            }
            Op::Stop { done } => self.stopped = Some(done),
        }
    }

    fn tell_closed(&mut self) {
        while let Some(&peer) = self.closed.front() {
            match self.inbound.try_send(Inbound::Closed { peer }) {
                Ok(()) | Err(mpsc::error::TrySendError::Closed(_)) => {
                    self.closed.pop_front();
                }
                Err(mpsc::error::TrySendError::Full(_)) => return,
            }
        }
    }

    async fn flush(&mut self) {
        self.tell_closed();
        let (now, ms) = (std::time::Instant::now(), now_ms());
        while let Some((to, datagram)) = self.endpoint.poll_transmit(now, ms) {
            let to = match to {
                SocketAddr::V4(v4) if self.local.is_ipv6() => {
                    SocketAddr::new(v4.ip().to_ipv6_mapped().into(), v4.port())
                }
                _ => to,
            };
            if let Err(e) = self.socket.send_to(&datagram, to).await {
                tracing::debug!(%to, "send: {e}");
            }
        }
        while let Some(event) = self.endpoint.poll_event() {
            self.handle_event(event);
        }
    }

    fn handle_event(&mut self, event: SecureEvent) {
        match event {
            SecureEvent::Received { from, message } => self.handle_message(from, &message),
            SecureEvent::Delivered { id, .. } => {
                if let Some(Waiter::Push(done)) = self.waiters.remove(&id) {
                    let _ = done.send(Ok(()));
                }
            }
            SecureEvent::DeliveryFailed { to, id } => {
                let failure = CommandError::new(code::UNREACHABLE, "the other side did not answer");
                match self.waiters.remove(&id) {
                    Some(Waiter::Push(done)) => {
                        let _ = done.send(Err(failure));
                    }
                    Some(Waiter::Request(request)) => {
                        if let Some((_, reply)) = self.requests.remove(&request) {
                            let _ = reply.send(Err(failure));
                        }
                    }
                    None => {}
                }
                tracing::debug!(peer = %to, "delivery failed");
            }
            SecureEvent::Reachable { meeting, addr } => {
                if let Some(tx) = self.meetings.get(&meeting) {
                    if tx.send(addr).is_err() {
                        self.meetings.remove(&meeting);
                    }
                }
            }
            SecureEvent::ServerKey { addr, key } => {
                for done in self.key_fetches.remove(&addr).unwrap_or_default() {
                    let _ = done.send(key.clone());
                }
            }
            SecureEvent::Closed { peer } => {
                // Requests whose message was delivered but whose reply can
                // no longer come fail now rather than at their timeout.
                let orphans: Vec<u64> = self
                    .requests
                    .iter()
                    .filter(|(_, (to, _))| *to == peer)
                    .map(|(id, _)| *id)
                    .collect();
                for id in orphans {
                    if let Some((_, reply)) = self.requests.remove(&id) {
                        let _ = reply.send(Err(CommandError::new(
                            code::UNREACHABLE,
                            "the session closed",
                        )));
                    }
                }
                self.closed.push_back(peer);
                self.tell_closed();
            }
        }
    }

    fn handle_message(&mut self, from: PeerId, message: &[u8]) {
        let envelope = match Envelope::decode(message) {
            Ok(envelope) => envelope,
            Err(e) => {
                tracing::debug!(%from, "dropped message: {e}");
                if let Some(id) = udpchat_core::envelope::request_id(message) {
                    let error =
                        CommandError::new(code::BAD_REQUEST, format!("malformed envelope: {e}"));
                    let _ = self.send(
                        from,
                        Envelope::encode_parts(
                            code::BAD_REQUEST,
                            id,
                            Kind::Error,
                            &error.to_body(),
                        ),
                    );
                }
                return;
            }
        };
        match envelope.kind {
            Kind::Request | Kind::Push => {
                let Some(peer) = self.endpoint.peer(from) else {
                    return;
                };
                let (id, request) = (envelope.id, envelope.kind == Kind::Request);
                let cmd = envelope.cmd.clone();
                match self.inbound.try_send(Inbound::Envelope {
                    from,
                    addr: peer.addr,
                    remote_static: peer.remote_static.map(Box::new),
                    envelope,
                }) {
                    Ok(()) => {}
                    Err(mpsc::error::TrySendError::Full(_)) => {
                        // The dispatcher is behind: say so rather than
                        // leave the requester waiting; a push is dropped
                        // (and counted).
                        self.shed += 1;
                        if request {
                            let busy = CommandError::new(
                                code::BUSY,
                                "the server is busy; try again in a moment",
                            );
                            let _ = self.send(
                                from,
                                Envelope::encode_parts(&cmd, id, Kind::Error, &busy.to_body()),
                            );
                        }
                    }
                    Err(mpsc::error::TrySendError::Closed(_)) => {}
                }
            }
            Kind::Reply | Kind::Error => {
                // A reply is taken only from the session the request went to.
                if self.requests.get(&envelope.id).map(|(to, _)| *to) != Some(from) {
                    return;
                }
                let Some((_, reply)) = self.requests.remove(&envelope.id) else {
                    return;
                };
                let result = match envelope.kind {
                    Kind::Reply => Ok(envelope.body),
                    _ => Err(CommandError::from_body(&envelope.body)),
                };
                let _ = reply.send(result);
            }
        }
    }
}

async fn sleep_until(deadline: Option<std::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(Instant::from_std(deadline)).await,
        None => std::future::pending().await,
    }
}
