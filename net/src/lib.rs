//! The one network driver, shared by the server and the client: a UDP
//! socket, a timer and the sans-IO [`SecureEndpoint`], turned into futures.
//!
//! [`Link`] is a cheap handle: `connect` opens an encrypted session,
//! `request` waits for the peer's reply, `push` for the peer's
//! acknowledgement, `reply` answers a request. Requests and pushes that
//! arrive, and sessions that close, go to the driver's [`Owner`], on the
//! driver's own task: the server serves them there, the client reads them
//! from an [`Inbox`].
// One `unsafe` call, allowed where it is: see `socket::register`.
#![deny(unsafe_code)]

mod driver;
mod fate;
mod load;
mod owner;
mod socket;

use std::net::SocketAddr;
use std::time::Duration;

use rand::SeedableRng as _;
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use udpchat_core::context::Reply;
use udpchat_core::crypto::keys::{PublicKey, StaticKey};
use udpchat_core::error::{Code, CommandError};
use udpchat_core::packet::Encoded;
use udpchat_core::secure::meeting::Ticket;
use udpchat_core::secure::relay::RelayUsage;
use udpchat_core::secure::{PeerId, PeerInfo, SecureConfig, SecureEndpoint, Stats};
use udpchat_core::wire::Pattern;

use driver::Driver;
pub(crate) use fate::Fate;
use socket::Socket;

pub use load::{Latencies, Load, LATENCY_BOUNDS_MS};
pub use owner::{Arrival, Inbound, Inbox, Owner, PendingAck, INBOX_CAPACITY};
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

/// What is called, on the driver's thread, with a push's fate: see
/// [`Link::push_each_then`].
pub type Then = Box<dyn FnOnce(Result<(), CommandError>) + Send>;

/// Pushes made on the driver's thread when it comes to them, each to
/// several sessions with a [`Then`] each: see [`Link::push_each_made`].
pub type MakePushes = Box<dyn FnOnce() -> Vec<(Encoded, Vec<(PeerId, Then)>)> + Send>;

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
        cmd: &'static str,
        body: Vec<u8>,
        reply: oneshot::Sender<Reply>,
    },
    Push {
        to: PeerId,
        cmd: &'static str,
        body: Vec<u8>,
        done: Fate,
    },
    /// The same packet to each of several sessions.
    PushEach {
        cmd: &'static str,
        body: Vec<u8>,
        to_each: Vec<(PeerId, Fate)>,
    },
    /// Pushes made when the driver comes to them.
    PushEachMade {
        make: MakePushes,
    },
    Reply {
        to: PeerId,
        cmd: String,
        id: u64,
        result: Reply,
    },
    KeepAlive {
        to: PeerId,
        done: oneshot::Sender<Result<(), CommandError>>,
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
    Load {
        done: oneshot::Sender<Load>,
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
    /// A push's owner is done with it: see [`PendingAck`].
    ReleaseAck {
        peer: PeerId,
        receipt: udpchat_core::secure::Receipt,
        at_once: bool,
    },
    /// Told once no push is held (see [`Link::settle`]).
    Settle {
        done: oneshot::Sender<()>,
    },
    Stop {
        done: oneshot::Sender<()>,
    },
}

/// A driver not started yet: what [`Link::server`] made.
pub struct Start {
    socket: UdpSocket,
    batches: quinn_udp::UdpSocketState,
    local: SocketAddr,
    endpoint: SecureEndpoint,
    ops: mpsc::UnboundedReceiver<Op>,
    /// Where a [`PendingAck`] goes when dropped: the driver's own
    /// operations, not keeping them open.
    releases: mpsc::WeakUnboundedSender<Op>,
    handshake_threads: usize,
}

impl std::fmt::Debug for Start {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Start").field("local", &self.local).finish()
    }
}

impl Start {
    /// Works out new sessions' handshakes (their P-384 work) on up to `n`
    /// threads of the runtime's blocking pool, so the driver's thread goes
    /// on with its sessions' datagrams meanwhile; 0 (the default) does
    /// them on the driver's thread, between its datagrams.
    pub fn handshake_threads(self, n: usize) -> Start {
        Start {
            handshake_threads: n,
            ..self
        }
    }

    /// Starts the driver, handing what arrives to `owner` on its task.
    pub fn run(self, owner: impl Owner) {
        let socket = match Socket::new(self.socket, self.batches) {
            Ok(socket) => socket,
            Err(e) => {
                tracing::error!("the network driver cannot use its socket: {e}");
                return;
            }
        };
        let driver = Driver::new(socket, self.endpoint, Box::new(owner))
            .with_handshake_threads(self.handshake_threads)
            .releasing_through(self.releases);
        tokio::spawn(driver.run(self.ops));
    }

    /// Starts the driver on a thread of its own, named `name`, with a
    /// single-threaded runtime: a datagram is read, handled and answered
    /// on that one thread, with no hand-over between threads on the way
    /// (the owner's `arrived` runs there too). Work the owner spawns runs
    /// where it spawns it ([`tokio::runtime::Handle`]).
    pub fn run_on_thread(self, name: &str, owner: impl Owner) -> std::io::Result<()> {
        let socket = self.socket.into_std()?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let (endpoint, ops, batches) = (self.endpoint, self.ops, self.batches);
        let (handshake_threads, releases) = (self.handshake_threads, self.releases);
        std::thread::Builder::new()
            .name(name.to_string())
            .spawn(move || {
                runtime.block_on(async move {
                    let socket =
                        match UdpSocket::from_std(socket).and_then(|io| Socket::new(io, batches)) {
                            Ok(socket) => socket,
                            Err(e) => {
                                tracing::error!("the network thread cannot use its socket: {e}");
                                return;
                            }
                        };
                    Driver::new(socket, endpoint, Box::new(owner))
                        .with_handshake_threads(handshake_threads)
                        .releasing_through(releases)
                        .run(ops)
                        .await
                })
            })?;
        Ok(())
    }

    /// Starts the driver with an [`Inbox`] for its owner.
    pub fn inbox(self) -> Inbox {
        let (tx, rx) = mpsc::channel(INBOX_CAPACITY);
        self.run(owner::Channel::new(tx));
        rx
    }
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
    CommandError::new(Code::Unreachable, "the network driver has stopped")
}

impl Link {
    /// A server's driver: answers handshakes with `key`.
    /// The link is usable at once; the driver starts with [`Start::run`],
    /// once the owner (which may hold the link) is made.
    pub fn server(
        socket: UdpSocket,
        key: StaticKey,
        config: SecureConfig,
    ) -> std::io::Result<(Link, Start)> {
        let endpoint = SecureEndpoint::server(
            config,
            key,
            Box::new(rand::rngs::StdRng::from_entropy()),
            std::time::Instant::now(),
        );
        Link::new(socket, endpoint)
    }

    /// A client's driver. Other clients may hold a few sessions with it
    /// from one address (colleagues behind one NAT), not thousands.
    pub fn spawn_client(socket: UdpSocket) -> std::io::Result<(Link, Inbox)> {
        Link::spawn_client_with(socket, Link::client_config())
    }

    /// A client's configuration: see [`Link::spawn_client`].
    pub fn client_config() -> SecureConfig {
        SecureConfig {
            max_sessions_per_source: 64,
            // Within Linux's 30 s for an unanswered UDP mapping.
            keepalive: Some(KEEPALIVE),
            ..SecureConfig::default()
        }
    }

    /// A client's driver, configured otherwise (tests, benches).
    pub fn spawn_client_with(
        socket: UdpSocket,
        config: SecureConfig,
    ) -> std::io::Result<(Link, Inbox)> {
        let endpoint = SecureEndpoint::client(
            config,
            Box::new(rand::rngs::StdRng::from_entropy()),
            std::time::Instant::now(),
        );
        let (link, start) = Link::new(socket, endpoint)?;
        Ok((link, start.inbox()))
    }

    fn new(socket: UdpSocket, endpoint: SecureEndpoint) -> std::io::Result<(Link, Start)> {
        let local = socket.local_addr()?;
        let batches = socket::prepare(&socket)?;
        let (ops, ops_rx) = mpsc::unbounded_channel();
        let start = Start {
            socket,
            batches,
            local,
            endpoint,
            ops: ops_rx,
            releases: ops.downgrade(),
            handshake_threads: 0,
        };
        Ok((Link { ops, local }, start))
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
            Code::Unreachable,
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
        request: Encoded,
    ) -> impl std::future::Future<Output = Reply> + Send + 'static {
        let (reply, rx) = oneshot::channel();
        let (cmd, body) = request.into_parts();
        let sent = self.ops.send(Op::Request {
            to,
            cmd,
            body,
            reply,
        });
        async move {
            sent.map_err(|_| link_closed())?;
            match tokio::time::timeout(REPLY_TIMEOUT, rx).await {
                Ok(Ok(reply)) => reply,
                Ok(Err(_)) => Err(link_closed()),
                Err(_) => Err(CommandError::new(
                    Code::Timeout,
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
        push: Encoded,
    ) -> impl std::future::Future<Output = Result<(), CommandError>> + Send + 'static {
        let (done, rx) = oneshot::channel();
        let (cmd, body) = push.into_parts();
        let sent = self.ops.send(Op::Push {
            to,
            cmd,
            body,
            done: Fate::Wait(done),
        });
        async move {
            sent.map_err(|_| link_closed())?;
            rx.await.unwrap_or_else(|_| Err(link_closed()))
        }
    }

    /// Queues one packet for each of several sessions; each one's `then`
    /// is called with that packet's fate (delivered, or why not) on the
    /// driver's thread, so it must be quick and must not block: for
    /// bookkeeping such as a group member's position, with no task per
    /// packet. One operation for the driver however many sessions it goes
    /// to, and the envelope is encoded once: a group's message to a
    /// hundred members is one of these.
    pub fn push_each_then(&self, push: Encoded, to_each: Vec<(PeerId, Then)>) {
        let (cmd, body) = push.into_parts();
        let to_each = Fate::calls(to_each);
        let sent = self.ops.send(Op::PushEach { cmd, body, to_each });
        if let Err(mpsc::error::SendError(Op::PushEach { to_each, .. })) = sent {
            for (_, done) in to_each {
                done.tell(Err(link_closed()));
            }
        }
    }

    /// As [`Link::push_each_then`], for pushes `make` makes on the
    /// driver's thread when the driver comes to this operation, not now:
    /// what the caller gathers for them until then goes in them. A
    /// group's messages committed while the driver was busy with earlier
    /// ones reach each member together, in one packet where they fit;
    /// when it is not busy, at once. `make` must be quick and must not
    /// block.
    pub fn push_each_made(&self, make: MakePushes) {
        if let Err(mpsc::error::SendError(Op::PushEachMade { make })) =
            self.ops.send(Op::PushEachMade { make })
        {
            for (_, to_each) in make() {
                for (_, then) in to_each {
                    then(Err(link_closed()));
                }
            }
        }
    }

    /// Queues a one-way packet that nothing waits for: the driver logs it
    /// if it fails. Costs no task and no channel per packet, so a group
    /// message to a hundred members is a hundred queued packets, no more.
    pub fn push_unwatched(&self, to: PeerId, push: Encoded) {
        let (cmd, body) = push.into_parts();
        let _ = self.ops.send(Op::Push {
            to,
            cmd,
            body,
            done: Fate::Log(cmd),
        });
    }

    /// Sends a keepalive on the session: an empty message, no envelope,
    /// which the peer's transport acknowledges at once. The peer's endpoint
    /// hears the session is alive, as from any datagram on it
    /// (`SecureConfig::confirmed_silence`); its owner hears nothing.
    /// Resolves when it was acknowledged, or with why not.
    pub fn keep_alive(
        &self,
        to: PeerId,
    ) -> impl std::future::Future<Output = Result<(), CommandError>> + Send + 'static {
        let (done, rx) = oneshot::channel();
        let sent = self.ops.send(Op::KeepAlive { to, done });
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

    /// What the driver carries now ([`Load`]).
    pub async fn load(&self) -> Load {
        self.ask(|done| Op::Load { done }).await.unwrap_or_default()
    }

    /// What the endpoint dropped so far.
    pub async fn stats(&self) -> Stats {
        self.ask(|done| Op::Stats { done })
            .await
            .unwrap_or_default()
    }
}
