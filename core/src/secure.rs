//! The secure endpoint: the reliable [`transport`](crate::transport) inside
//! encrypted sessions. Sans-IO like the transport: datagrams and time go in,
//! datagrams and events come out.
//!
//! - A session starts with a handshake ([`crate::crypto::handshake`]): NK
//!   toward the server (the client knows the server's key), IK between
//!   clients (each knows the other's identity key; the responder learns the
//!   initiator's from the handshake). Messages sent before it completes are
//!   queued and go out once it does. A lost HELLO is retried with a fresh
//!   one (a repeated HELLO would be refused as a replay) and backoff; after
//!   [`SecureConfig::handshake_tries`] the session fails and so do its
//!   messages.
//! - Every transport datagram then travels sealed in a DATA packet. A
//!   datagram that does not parse, names no session, or fails to open is
//!   dropped without a word and leaves no state behind. The session follows
//!   its peer to a new address once a packet from there has opened.
//! - The initiator re-keys a session before AES-GCM's limits
//!   ([`Session::needs_rekey`]) with a new handshake that carries a token
//!   derived from the old one, so the responder moves the same session (and
//!   everything the application tied to it) onto the new keys.
//! - A KEY REQUEST gets the server's public key back (for trust on first
//!   use); the answer is smaller than the request.
//!
//! Each session is a [`PeerId`]: the index this side chose for it. The
//! application addresses peers by it, not by address.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use hkdf::Hkdf;
use rand::{CryptoRng, RngCore};
use sha2::Sha384;

use crate::crypto::handshake::{
    ClientHello, ExpectPeerHello, ExpectServerHello, PeerHandshake, PeerHello, ReplayGuard,
    ServerHandshake,
};
use crate::crypto::keys::{PublicKey, StaticKey};
use crate::crypto::session::{Role, Session};
use crate::transport::{self, Endpoint, MessageId, SendError};
use crate::wire::{self, Packet, Pattern};

/// A session, named by the index this side chose for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerId(pub u32);

impl std::fmt::Display for PeerId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "#{:08x}", self.0)
    }
}

/// Tuning.
#[derive(Debug, Clone)]
pub struct SecureConfig {
    pub transport: transport::Config,
    /// The first wait for a WELCOME; doubles per retry.
    pub handshake_retry: Duration,
    /// HELLOs sent before a session is given up.
    pub handshake_tries: u32,
    /// A session nothing was heard on for this long is closed.
    pub session_idle: Duration,
}

impl Default for SecureConfig {
    fn default() -> Self {
        SecureConfig {
            transport: transport::Config {
                max_datagram: wire::MAX_DATAGRAM - wire::DATA_OVERHEAD,
                ..transport::Config::default()
            },
            handshake_retry: Duration::from_millis(500),
            handshake_tries: 6,
            session_idle: Duration::from_secs(30 * 60),
        }
    }
}

/// What the application hears.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecureEvent {
    /// A whole message, once, in order.
    Received {
        from: PeerId,
        message: Vec<u8>,
    },
    Delivered {
        to: PeerId,
        id: MessageId,
    },
    DeliveryFailed {
        to: PeerId,
        id: MessageId,
    },
    /// A server answered a key request.
    ServerKey {
        addr: SocketAddr,
        key: PublicKey,
    },
    /// The session is gone (handshake failed, idle, or forgotten).
    Closed {
        peer: PeerId,
    },
}

/// Counts of what was dropped, for tests and the bench.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Datagrams dropped unanswered: garbage, unknown sessions, failed
    /// authentication, replays.
    pub rejected: u64,
    pub sessions_opened: u64,
}

/// What a peer is, as far as this side knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerInfo {
    pub addr: SocketAddr,
    /// The server's key (NK, initiator side) or the peer's identity key (IK).
    pub remote_static: Option<PublicKey>,
    pub established: bool,
}

/// Any cryptographic RNG, boxed so the endpoint is not generic over it.
pub trait SecureRng: RngCore + CryptoRng + Send {}
impl<T: RngCore + CryptoRng + Send> SecureRng for T {}

struct Rng(Box<dyn SecureRng>);

impl RngCore for Rng {
    fn next_u32(&mut self) -> u32 {
        self.0.next_u32()
    }
    fn next_u64(&mut self) -> u64 {
        self.0.next_u64()
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        self.0.fill_bytes(dest)
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand::Error> {
        self.0.try_fill_bytes(dest)
    }
}
impl CryptoRng for Rng {}

enum Expect {
    Server(ExpectServerHello),
    Peer(ExpectPeerHello),
}

/// A HELLO in flight.
struct Pending {
    expect: Expect,
    attempts: u32,
    next_retry: Instant,
}

enum State {
    Handshaking {
        pending: Box<Pending>,
        queued: VecDeque<Vec<u8>>,
    },
    Established {
        remote_index: u32,
        /// Boxed: a session holds two expanded AES key schedules.
        session: Box<Session>,
        rekey: Option<Box<Pending>>,
    },
}

struct Conn {
    addr: SocketAddr,
    remote_static: Option<PublicKey>,
    pattern: Pattern,
    role: Role,
    state: State,
    last_heard: Instant,
}

/// Messages queued per session while its handshake runs.
const MAX_QUEUED: usize = 1024;
/// How often idle sessions are looked for.
const SWEEP_EVERY: Duration = Duration::from_secs(10);
/// First byte of a HELLO payload.
const HELLO_FRESH: u8 = 0;
const HELLO_REKEY: u8 = 1;
const TOKEN_LEN: usize = 32;

/// The encrypted, reliable endpoint.
pub struct SecureEndpoint {
    config: SecureConfig,
    transport: Endpoint<PeerId>,
    /// The server's key (server) or this user's identity key (client).
    static_key: Option<StaticKey>,
    accept: Option<Pattern>,
    conns: HashMap<u32, Conn>,
    handshaking: BTreeSet<u32>,
    replay: ReplayGuard,
    rng: Rng,
    outbox: VecDeque<(SocketAddr, Vec<u8>)>,
    events: VecDeque<SecureEvent>,
    key_fetches: BTreeSet<SocketAddr>,
    next_sweep: Instant,
    stats: Stats,
}

impl SecureEndpoint {
    /// A server: answers NK handshakes with `server_key`.
    pub fn server(
        config: SecureConfig,
        server_key: StaticKey,
        rng: Box<dyn SecureRng>,
        now: Instant,
    ) -> Self {
        SecureEndpoint::new(config, Some(server_key), Some(Pattern::Nk), rng, now)
    }

    /// A client: starts NK toward servers; answers IK from other clients
    /// once it has an identity ([`SecureEndpoint::set_identity`]).
    pub fn client(config: SecureConfig, rng: Box<dyn SecureRng>, now: Instant) -> Self {
        SecureEndpoint::new(config, None, None, rng, now)
    }

    fn new(
        config: SecureConfig,
        static_key: Option<StaticKey>,
        accept: Option<Pattern>,
        rng: Box<dyn SecureRng>,
        now: Instant,
    ) -> Self {
        let mut rng = Rng(rng);
        let transport = Endpoint::new(config.transport.clone(), rng.next_u64());
        SecureEndpoint {
            config,
            transport,
            static_key,
            accept,
            conns: HashMap::new(),
            handshaking: BTreeSet::new(),
            replay: ReplayGuard::new(),
            rng,
            outbox: VecDeque::new(),
            events: VecDeque::new(),
            key_fetches: BTreeSet::new(),
            next_sweep: now + SWEEP_EVERY,
            stats: Stats::default(),
        }
    }

    /// Sets (or clears) this client's identity key: IK handshakes from
    /// other clients are answered only while one is set.
    pub fn set_identity(&mut self, identity: Option<StaticKey>) {
        self.accept = identity.as_ref().map(|_| Pattern::Ik);
        self.static_key = identity;
    }

    pub fn stats(&self) -> Stats {
        self.stats
    }

    pub fn peer(&self, peer: PeerId) -> Option<PeerInfo> {
        self.conns.get(&peer.0).map(|c| PeerInfo {
            addr: c.addr,
            remote_static: c.remote_static.clone(),
            established: matches!(c.state, State::Established { .. }),
        })
    }

    /// Messages sent to `peer` and not yet delivered or failed.
    pub fn in_flight(&self, peer: PeerId) -> usize {
        self.transport.in_flight(peer)
    }

    /// Starts a session with `addr`, whose static key is `remote`: NK for
    /// a server, IK (needs an identity) for another client.
    pub fn connect(
        &mut self,
        now: Instant,
        now_ms: u64,
        addr: SocketAddr,
        remote: PublicKey,
        pattern: Pattern,
    ) -> Result<PeerId, ConnectError> {
        if pattern == Pattern::Ik && self.static_key.is_none() {
            return Err(ConnectError::NoIdentity);
        }
        let index = self.fresh_index();
        let expect = self.hello(index, &remote, pattern, &[HELLO_FRESH], now_ms, addr)?;
        let pending = Box::new(Pending {
            expect,
            attempts: 1,
            next_retry: now + self.config.handshake_retry,
        });
        self.conns.insert(
            index,
            Conn {
                addr,
                remote_static: Some(remote),
                pattern,
                role: Role::Initiator,
                state: State::Handshaking {
                    pending,
                    queued: VecDeque::new(),
                },
                last_heard: now,
            },
        );
        self.handshaking.insert(index);
        Ok(PeerId(index))
    }

    /// Asks the server at `addr` for its key; a [`SecureEvent::ServerKey`]
    /// follows if it answers.
    pub fn request_server_key(&mut self, addr: SocketAddr) {
        self.key_fetches.insert(addr);
        self.outbox.push_back((addr, Packet::KeyRequest.encode()));
    }

    /// Queues a message for `peer`.
    pub fn send(
        &mut self,
        now: Instant,
        peer: PeerId,
        message: Vec<u8>,
    ) -> Result<MessageId, SendError> {
        self.transport.send(now, peer, message)
    }

    /// Drops a session; its outstanding messages fail.
    pub fn forget(&mut self, peer: PeerId) {
        self.transport.forget(peer);
        if self.conns.remove(&peer.0).is_some() {
            self.handshaking.remove(&peer.0);
            self.events.push_back(SecureEvent::Closed { peer });
        }
        self.drain_transport_events();
    }

    /// Takes in one datagram. An error says why it was dropped (nothing
    /// is ever sent in answer to a datagram that fails).
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        now_ms: u64,
        from: SocketAddr,
        datagram: &[u8],
    ) -> Result<(), Rejected> {
        let result = self.handle_packet(now, now_ms, from, datagram);
        if result.is_err() {
            self.stats.rejected += 1;
        }
        self.drain_transport_events();
        result
    }

    fn handle_packet(
        &mut self,
        now: Instant,
        now_ms: u64,
        from: SocketAddr,
        datagram: &[u8],
    ) -> Result<(), Rejected> {
        match Packet::parse(datagram).map_err(|_| Rejected::Malformed)? {
            Packet::Data {
                receiver_index,
                counter,
                ciphertext,
            } => {
                let conn = self
                    .conns
                    .get_mut(&receiver_index)
                    .ok_or(Rejected::UnknownSession)?;
                let State::Established { session, .. } = &mut conn.state else {
                    return Err(Rejected::UnknownSession);
                };
                let plaintext = wire::open_data(session, receiver_index, counter, ciphertext)
                    .map_err(|_| Rejected::Unauthentic)?;
                // Only now is the address proven: follow the peer there.
                conn.addr = from;
                conn.last_heard = now;
                let _ = self
                    .transport
                    .handle_datagram(now, PeerId(receiver_index), &plaintext);
                Ok(())
            }
            Packet::Hello {
                pattern,
                sender_index,
                message,
            } => {
                if self.accept != Some(pattern) {
                    return Err(Rejected::Unexpected);
                }
                self.answer_hello(now, now_ms, from, pattern, sender_index, message)
            }
            Packet::Welcome {
                sender_index,
                receiver_index,
                message,
            } => self.read_welcome(now, now_ms, from, sender_index, receiver_index, message),
            Packet::KeyRequest => {
                if self.accept != Some(Pattern::Nk) {
                    return Err(Rejected::Unexpected);
                }
                let key = self
                    .static_key
                    .as_ref()
                    .ok_or(Rejected::Unexpected)?
                    .public()
                    .to_bytes();
                self.outbox
                    .push_back((from, Packet::ServerKey { key: &key }.encode()));
                Ok(())
            }
            Packet::ServerKey { key } => {
                if !self.key_fetches.remove(&from) {
                    return Err(Rejected::Unexpected);
                }
                let key = PublicKey::from_bytes(key).map_err(|_| Rejected::Malformed)?;
                self.events
                    .push_back(SecureEvent::ServerKey { addr: from, key });
                Ok(())
            }
        }
    }

    fn answer_hello(
        &mut self,
        now: Instant,
        now_ms: u64,
        from: SocketAddr,
        pattern: Pattern,
        sender_index: u32,
        message: &[u8],
    ) -> Result<(), Rejected> {
        let key = self.static_key.as_ref().ok_or(Rejected::Unexpected)?;
        let (keys, reply, remote_static, payload) = match pattern {
            Pattern::Nk => {
                let (keys, reply, payload) = ServerHandshake::respond(
                    &mut self.rng,
                    key,
                    message,
                    now_ms,
                    &[],
                    &mut self.replay,
                )
                .map_err(|_| Rejected::Unauthentic)?;
                (keys, reply, None, payload)
            }
            Pattern::Ik => {
                let (keys, reply, initiator, payload) = PeerHandshake::respond(
                    &mut self.rng,
                    key,
                    message,
                    now_ms,
                    &[],
                    &mut self.replay,
                )
                .map_err(|_| Rejected::Unauthentic)?;
                (keys, reply, Some(initiator), payload)
            }
        };
        let session = Session::new(keys, Role::Responder);
        let local = match payload.first() {
            Some(&HELLO_FRESH) => {
                let index = self.fresh_index();
                self.conns.insert(
                    index,
                    Conn {
                        addr: from,
                        remote_static,
                        pattern,
                        role: Role::Responder,
                        state: State::Established {
                            remote_index: sender_index,
                            session: Box::new(session),
                            rekey: None,
                        },
                        last_heard: now,
                    },
                );
                self.stats.sessions_opened += 1;
                index
            }
            Some(&HELLO_REKEY) if payload.len() == 1 + 4 + TOKEN_LEN => {
                let old = u32::from_be_bytes(payload[1..5].try_into().expect("4 bytes"));
                let conn = self.conns.get_mut(&old).ok_or(Rejected::UnknownSession)?;
                let same_peer = conn.remote_static == remote_static && conn.role == Role::Responder;
                let State::Established {
                    session: old_session,
                    remote_index,
                    ..
                } = &mut conn.state
                else {
                    return Err(Rejected::UnknownSession);
                };
                // Only the holder of the old session knows its token.
                if !same_peer || rekey_token(old_session).as_slice() != &payload[5..] {
                    return Err(Rejected::Unauthentic);
                }
                **old_session = session;
                *remote_index = sender_index;
                conn.addr = from;
                conn.last_heard = now;
                old
            }
            _ => return Err(Rejected::Malformed),
        };
        let welcome = Packet::Welcome {
            sender_index: local,
            receiver_index: sender_index,
            message: &reply,
        };
        self.outbox.push_back((from, welcome.encode()));
        Ok(())
    }

    fn read_welcome(
        &mut self,
        now: Instant,
        now_ms: u64,
        from: SocketAddr,
        sender_index: u32,
        receiver_index: u32,
        message: &[u8],
    ) -> Result<(), Rejected> {
        let conn = self
            .conns
            .get_mut(&receiver_index)
            .ok_or(Rejected::UnknownSession)?;
        let pending = match &mut conn.state {
            State::Handshaking { pending, .. } => pending,
            State::Established {
                rekey: Some(pending),
                ..
            } => pending,
            State::Established { rekey: None, .. } => return Err(Rejected::Unexpected),
        };
        // Read a copy: a forged WELCOME must not cost the real one its state.
        let expect = match &pending.expect {
            Expect::Server(e) => Expect::Server(e.clone()),
            Expect::Peer(e) => Expect::Peer(e.clone()),
        };
        let (keys, _payload) = match expect {
            Expect::Server(e) => e.read(message),
            Expect::Peer(e) => e.read(message),
        }
        .map_err(|_| Rejected::Unauthentic)?;
        let _ = now_ms;
        let mut session = Session::new(keys, Role::Initiator);
        conn.addr = from;
        conn.last_heard = now;
        if let State::Handshaking { queued, .. } = &mut conn.state {
            self.stats.sessions_opened += 1;
            for plaintext in std::mem::take(queued) {
                if let Ok(datagram) = wire::seal_data(&mut session, sender_index, &plaintext) {
                    self.outbox.push_back((from, datagram));
                }
            }
        }
        conn.state = State::Established {
            remote_index: sender_index,
            session: Box::new(session),
            rekey: None,
        };
        self.handshaking.remove(&receiver_index);
        Ok(())
    }

    /// The next datagram to send.
    pub fn poll_transmit(&mut self, now: Instant, now_ms: u64) -> Option<(SocketAddr, Vec<u8>)> {
        loop {
            if let Some(out) = self.outbox.pop_front() {
                return Some(out);
            }
            let transmit = self.transport.poll_transmit(now)?;
            let index = transmit.destination.0;
            let Some(conn) = self.conns.get_mut(&index) else {
                continue;
            };
            match &mut conn.state {
                State::Handshaking { queued, .. } => {
                    if queued.len() < MAX_QUEUED {
                        queued.push_back(transmit.contents);
                    }
                }
                State::Established {
                    remote_index,
                    session,
                    ..
                } => {
                    let sealed = wire::seal_data(session, *remote_index, &transmit.contents);
                    let due = conn.role == Role::Initiator && session.needs_rekey(now_ms);
                    let addr = conn.addr;
                    if due {
                        self.start_rekey(now, now_ms, index);
                    }
                    // A session past its hard limit drops the datagram; the
                    // transport resends it once the new keys are in.
                    if let Ok(datagram) = sealed {
                        return Some((addr, datagram));
                    }
                }
            }
        }
    }

    /// When [`SecureEndpoint::handle_timeout`] is next due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let retries = self
            .handshaking
            .iter()
            .filter_map(|i| match &self.conns.get(i)?.state {
                State::Handshaking { pending, .. } => Some(pending.next_retry),
                State::Established {
                    rekey: Some(pending),
                    ..
                } => Some(pending.next_retry),
                _ => None,
            });
        retries
            .chain(self.transport.poll_timeout())
            .chain(Some(self.next_sweep))
            .min()
    }

    pub fn handle_timeout(&mut self, now: Instant, now_ms: u64) {
        self.transport.handle_timeout(now);
        let due: Vec<u32> = self
            .handshaking
            .iter()
            .copied()
            .filter(|i| {
                matches!(self.conns.get(i).map(|c| &c.state),
                    Some(State::Handshaking { pending, .. }) | Some(State::Established { rekey: Some(pending), .. })
                        if pending.next_retry <= now)
            })
            .collect();
        for index in due {
            self.retry_hello(now, now_ms, index);
        }
        if now >= self.next_sweep {
            self.next_sweep = now + SWEEP_EVERY;
            let idle = self.config.session_idle;
            let stale: Vec<u32> = self
                .conns
                .iter()
                .filter(|(i, c)| {
                    now.saturating_duration_since(c.last_heard) > idle
                        && self.transport.in_flight(PeerId(**i)) == 0
                })
                .map(|(i, _)| *i)
                .collect();
            for index in stale {
                self.forget(PeerId(index));
            }
        }
        self.drain_transport_events();
    }

    pub fn poll_event(&mut self) -> Option<SecureEvent> {
        self.events.pop_front()
    }

    fn retry_hello(&mut self, now: Instant, now_ms: u64, index: u32) {
        let tries = self.config.handshake_tries;
        let Some(conn) = self.conns.get(&index) else {
            self.handshaking.remove(&index);
            return;
        };
        let attempts = match &conn.state {
            State::Handshaking { pending, .. } => pending.attempts,
            State::Established {
                rekey: Some(pending),
                ..
            } => pending.attempts,
            State::Established { rekey: None, .. } => return,
        };
        let rekeying = matches!(conn.state, State::Established { .. });
        if attempts >= tries {
            if rekeying {
                // Keep the old keys; try again when next due.
                self.handshaking.remove(&index);
                if let Some(Conn {
                    state: State::Established { rekey, .. },
                    ..
                }) = self.conns.get_mut(&index)
                {
                    *rekey = None;
                }
            } else {
                self.forget(PeerId(index));
            }
            return;
        }
        let (addr, pattern, remote) = (conn.addr, conn.pattern, conn.remote_static.clone());
        let Some(remote) = remote else { return };
        let payload = match &conn.state {
            State::Established {
                remote_index,
                session,
                ..
            } => rekey_payload(*remote_index, session),
            _ => vec![HELLO_FRESH],
        };
        let Ok(expect) = self.hello(index, &remote, pattern, &payload, now_ms, addr) else {
            return;
        };
        let wait = self.config.handshake_retry * 2u32.saturating_pow(attempts.min(10));
        let next = Box::new(Pending {
            expect,
            attempts: attempts + 1,
            next_retry: now + wait,
        });
        if let Some(conn) = self.conns.get_mut(&index) {
            match &mut conn.state {
                State::Handshaking { pending, .. } => *pending = next,
                State::Established { rekey, .. } => *rekey = Some(next),
            }
        }
    }

    fn start_rekey(&mut self, now: Instant, now_ms: u64, index: u32) {
        let Some(conn) = self.conns.get(&index) else {
            return;
        };
        let State::Established {
            remote_index,
            session,
            rekey: None,
        } = &conn.state
        else {
            return;
        };
        let Some(remote) = conn.remote_static.clone() else {
            return;
        };
        let payload = rekey_payload(*remote_index, session);
        let (addr, pattern) = (conn.addr, conn.pattern);
        let Ok(expect) = self.hello(index, &remote, pattern, &payload, now_ms, addr) else {
            return;
        };
        if let Some(Conn {
            state: State::Established { rekey, .. },
            ..
        }) = self.conns.get_mut(&index)
        {
            *rekey = Some(Box::new(Pending {
                expect,
                attempts: 1,
                next_retry: now + self.config.handshake_retry,
            }));
            self.handshaking.insert(index);
        }
    }

    /// Builds a HELLO and queues it.
    fn hello(
        &mut self,
        index: u32,
        remote: &PublicKey,
        pattern: Pattern,
        payload: &[u8],
        now_ms: u64,
        addr: SocketAddr,
    ) -> Result<Expect, ConnectError> {
        let (expect, message) = match pattern {
            Pattern::Nk => {
                let (e, m) = ClientHello::start(&mut self.rng, remote, payload, now_ms)
                    .map_err(|e| ConnectError::Handshake(e.to_string()))?;
                (Expect::Server(e), m)
            }
            Pattern::Ik => {
                let identity = self.static_key.as_ref().ok_or(ConnectError::NoIdentity)?;
                let (e, m) = PeerHello::start(&mut self.rng, identity, remote, payload, now_ms)
                    .map_err(|e| ConnectError::Handshake(e.to_string()))?;
                (Expect::Peer(e), m)
            }
        };
        self.outbox.push_back((
            addr,
            Packet::Hello {
                pattern,
                sender_index: index,
                message: &message,
            }
            .encode(),
        ));
        Ok(expect)
    }

    fn fresh_index(&mut self) -> u32 {
        loop {
            let index = self.rng.next_u32();
            if index != 0 && !self.conns.contains_key(&index) {
                return index;
            }
        }
    }

    fn drain_transport_events(&mut self) {
        while let Some(event) = self.transport.poll_event() {
            self.events.push_back(match event {
                transport::Event::Received { from, message } => {
                    SecureEvent::Received { from, message }
                }
                transport::Event::Delivered { to, id } => SecureEvent::Delivered { to, id },
                transport::Event::DeliveryFailed { to, id } => {
                    SecureEvent::DeliveryFailed { to, id }
                }
            });
        }
    }
}

/// Why a datagram was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Rejected {
    #[error("not a udpchat packet")]
    Malformed,
    #[error("no such session")]
    UnknownSession,
    #[error("failed authentication (wrong key, tampered, replayed or stale)")]
    Unauthentic,
    #[error("not expected here")]
    Unexpected,
}

/// Why a session could not be started.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    #[error("no identity key: sign in first")]
    NoIdentity,
    #[error("handshake: {0}")]
    Handshake(String),
}

/// Proves, inside a new handshake, that the initiator holds the session it
/// asks to re-key.
fn rekey_token(session: &Session) -> [u8; TOKEN_LEN] {
    let mut token = [0u8; TOKEN_LEN];
    Hkdf::<Sha384>::new(None, session.handshake_hash())
        .expand(b"udpchat rekey v1", &mut token)
        .expect("32 bytes is a valid HKDF-SHA384 length");
    token
}

fn rekey_payload(remote_index: u32, session: &Session) -> Vec<u8> {
    let mut payload = Vec::with_capacity(1 + 4 + TOKEN_LEN);
    payload.push(HELLO_REKEY);
    payload.extend_from_slice(&remote_index.to_be_bytes());
    payload.extend_from_slice(&rekey_token(session));
    payload
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    const MS: u64 = 1_800_000_000_000;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    fn rng(seed: u64) -> Box<dyn SecureRng> {
        Box::new(StdRng::seed_from_u64(seed))
    }

    struct Pair {
        now: Instant,
        now_ms: u64,
        server: SecureEndpoint,
        client: SecureEndpoint,
        server_key: StaticKey,
        client_addr: SocketAddr,
        /// Datagrams the server sent, for the zero-bytes-back checks.
        server_sent: usize,
    }

    impl Pair {
        fn new() -> Pair {
            let now = Instant::now();
            let server_key = StaticKey::generate(&mut StdRng::seed_from_u64(1));
            Pair {
                now,
                now_ms: MS,
                server: SecureEndpoint::server(
                    SecureConfig::default(),
                    server_key.clone(),
                    rng(2),
                    now,
                ),
                client: SecureEndpoint::client(SecureConfig::default(), rng(3), now),
                server_key,
                client_addr: addr(5000),
                server_sent: 0,
            }
        }

        /// Moves datagrams both ways until quiet; `drop_client` drops what
        /// the client sends when it returns true.
        fn pump(&mut self, mut drop_client: impl FnMut(&[u8]) -> bool) {
            for _ in 0..100 {
                let mut moved = false;
                while let Some((to, d)) = self.client.poll_transmit(self.now, self.now_ms) {
                    assert!(d.len() <= wire::MAX_DATAGRAM);
                    assert_eq!(to, addr(4590));
                    moved = true;
                    if !drop_client(&d) {
                        let _ = self.server.handle_datagram(
                            self.now,
                            self.now_ms,
                            self.client_addr,
                            &d,
                        );
                    }
                }
                while let Some((to, d)) = self.server.poll_transmit(self.now, self.now_ms) {
                    assert!(d.len() <= wire::MAX_DATAGRAM);
                    self.server_sent += 1;
                    moved = true;
                    if to == self.client_addr {
                        let _ = self
                            .client
                            .handle_datagram(self.now, self.now_ms, addr(4590), &d);
                    }
                }
                if !moved {
                    return;
                }
            }
        }

        fn advance(&mut self, by: Duration) {
            self.now += by;
            self.now_ms += by.as_millis() as u64;
            self.client.handle_timeout(self.now, self.now_ms);
            self.server.handle_timeout(self.now, self.now_ms);
        }

        fn received(endpoint: &mut SecureEndpoint) -> Vec<(PeerId, Vec<u8>)> {
            let mut out = Vec::new();
            while let Some(event) = endpoint.poll_event() {
                if let SecureEvent::Received { from, message } = event {
                    out.push((from, message));
                }
            }
            out
        }
    }

    #[test]
    fn a_client_and_server_talk_through_a_session() {
        let mut p = Pair::new();
        let peer = p
            .client
            .connect(
                p.now,
                p.now_ms,
                addr(4590),
                p.server_key.public(),
                Pattern::Nk,
            )
            .unwrap();
        p.client
            .send(p.now, peer, b"hello server".to_vec())
            .unwrap();
        p.pump(|_| false);
        let got = Pair::received(&mut p.server);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].1, b"hello server");
        let at_server = got[0].0;
        p.server
            .send(p.now, at_server, b"hello client".to_vec())
            .unwrap();
        p.pump(|_| false);
        assert_eq!(
            Pair::received(&mut p.client),
            vec![(peer, b"hello client".to_vec())]
        );
        assert!(p.client.peer(peer).unwrap().established);
    }

    #[test]
    fn garbage_and_a_wrong_key_get_no_reply_and_leave_no_state() {
        let mut p = Pair::new();
        for garbage in [
            &b""[..],
            b"\x01",
            &[1u8; 300],
            &[1, 1, 0, 0, 0, 0, 1],
            &[1, 3, 0, 0, 0, 1, 0, 0],
        ] {
            assert!(p
                .server
                .handle_datagram(p.now, p.now_ms, p.client_addr, garbage)
                .is_err());
        }
        let impostor_key = StaticKey::generate(&mut StdRng::seed_from_u64(99)).public();
        let peer = p
            .client
            .connect(p.now, p.now_ms, addr(4590), impostor_key, Pattern::Nk)
            .unwrap();
        p.client.send(p.now, peer, b"secret".to_vec()).unwrap();
        p.pump(|_| false);
        assert_eq!(
            p.server_sent, 0,
            "the server answered something it could not authenticate"
        );
        assert!(p.server.conns.is_empty());
        assert_eq!(p.server.stats().rejected, 6);
    }

    #[test]
    fn a_lost_hello_is_retried_and_a_dead_server_fails_the_session() {
        let mut p = Pair::new();
        let peer = p
            .client
            .connect(
                p.now,
                p.now_ms,
                addr(4590),
                p.server_key.public(),
                Pattern::Nk,
            )
            .unwrap();
        let id = p.client.send(p.now, peer, b"one".to_vec()).unwrap();
        let mut first = true;
        p.pump(|_| std::mem::take(&mut first));
        assert!(Pair::received(&mut p.server).is_empty());
        p.advance(Duration::from_secs(1));
        p.pump(|_| false);
        assert_eq!(
            Pair::received(&mut p.server).len(),
            1,
            "the retried hello got through"
        );
        let _ = id;

        // Now a server that never answers.
        let mut q = Pair::new();
        let peer = q
            .client
            .connect(
                q.now,
                q.now_ms,
                addr(4590),
                q.server_key.public(),
                Pattern::Nk,
            )
            .unwrap();
        let id = q.client.send(q.now, peer, b"lost".to_vec()).unwrap();
        let mut events = Vec::new();
        for _ in 0..200 {
            q.pump(|_| true);
            q.advance(Duration::from_secs(1));
            while let Some(e) = q.client.poll_event() {
                events.push(e);
            }
            if q.client.poll_timeout().is_none() || events.contains(&SecureEvent::Closed { peer }) {
                break;
            }
        }
        assert!(
            events.contains(&SecureEvent::DeliveryFailed { to: peer, id }),
            "{events:?}"
        );
        assert!(events.contains(&SecureEvent::Closed { peer }));
    }

    #[test]
    fn a_session_follows_its_client_to_a_new_address_and_survives_a_rekey() {
        let mut p = Pair::new();
        let peer = p
            .client
            .connect(
                p.now,
                p.now_ms,
                addr(4590),
                p.server_key.public(),
                Pattern::Nk,
            )
            .unwrap();
        p.client.send(p.now, peer, b"first".to_vec()).unwrap();
        p.pump(|_| false);
        let at_server = Pair::received(&mut p.server)[0].0;

        p.client_addr = addr(6000); // a NAT rebinding
        p.client.send(p.now, peer, b"second".to_vec()).unwrap();
        p.pump(|_| false);
        assert_eq!(
            Pair::received(&mut p.server),
            vec![(at_server, b"second".to_vec())]
        );
        assert_eq!(p.server.peer(at_server).unwrap().addr, addr(6000));

        // Eleven minutes on, the client re-keys; the server keeps the session.
        p.advance(Duration::from_secs(11 * 60));
        p.client.send(p.now, peer, b"third".to_vec()).unwrap();
        p.pump(|_| false);
        p.client.send(p.now, peer, b"fourth".to_vec()).unwrap();
        p.pump(|_| false);
        let got: Vec<_> = Pair::received(&mut p.server)
            .into_iter()
            .map(|(f, m)| (f, String::from_utf8(m).unwrap()))
            .collect();
        assert_eq!(
            got,
            vec![
                (at_server, "third".to_string()),
                (at_server, "fourth".to_string())
            ]
        );
        let State::Established { session, .. } = &p.client.conns[&peer.0].state else {
            panic!("not established")
        };
        assert!(
            !session.needs_rekey(p.now_ms),
            "the client is on fresh keys"
        );
    }

    #[test]
    fn a_replayed_data_packet_is_dropped() {
        let mut p = Pair::new();
        let peer = p
            .client
            .connect(
                p.now,
                p.now_ms,
                addr(4590),
                p.server_key.public(),
                Pattern::Nk,
            )
            .unwrap();
        p.pump(|_| false);
        p.client.send(p.now, peer, b"once".to_vec()).unwrap();
        let mut data = Vec::new();
        while let Some((_, d)) = p.client.poll_transmit(p.now, p.now_ms) {
            data.push(d);
        }
        for d in &data {
            p.server
                .handle_datagram(p.now, p.now_ms, p.client_addr, d)
                .unwrap();
        }
        let rejected = p.server.stats().rejected;
        for d in &data {
            assert_eq!(
                p.server.handle_datagram(p.now, p.now_ms, p.client_addr, d),
                Err(Rejected::Unauthentic)
            );
        }
        assert_eq!(p.server.stats().rejected, rejected + data.len() as u64);
        assert_eq!(Pair::received(&mut p.server).len(), 1);
    }

    #[test]
    fn clients_learn_each_others_identity_through_ik() {
        let now = Instant::now();
        let alice_key = StaticKey::generate(&mut StdRng::seed_from_u64(10));
        let bob_key = StaticKey::generate(&mut StdRng::seed_from_u64(11));
        let mut alice = SecureEndpoint::client(SecureConfig::default(), rng(12), now);
        let mut bob = SecureEndpoint::client(SecureConfig::default(), rng(13), now);
        assert_eq!(
            alice.connect(now, MS, addr(2), bob_key.public(), Pattern::Ik),
            Err(ConnectError::NoIdentity)
        );
        alice.set_identity(Some(alice_key.clone()));
        bob.set_identity(Some(bob_key.clone()));
        let to_bob = alice
            .connect(now, MS, addr(2), bob_key.public(), Pattern::Ik)
            .unwrap();
        alice.send(now, to_bob, b"hi bob".to_vec()).unwrap();
        for _ in 0..10 {
            while let Some((_, d)) = alice.poll_transmit(now, MS) {
                let _ = bob.handle_datagram(now, MS, addr(1), &d);
            }
            while let Some((_, d)) = bob.poll_transmit(now, MS) {
                let _ = alice.handle_datagram(now, MS, addr(2), &d);
            }
        }
        let got = Pair::received(&mut bob);
        assert_eq!(got.len(), 1);
        assert_eq!(
            bob.peer(got[0].0).unwrap().remote_static,
            Some(alice_key.public())
        );
    }

    #[test]
    fn a_server_key_request_is_answered_with_fewer_bytes() {
        let mut p = Pair::new();
        p.client.request_server_key(addr(4590));
        let (_, request) = p.client.poll_transmit(p.now, p.now_ms).unwrap();
        p.server
            .handle_datagram(p.now, p.now_ms, p.client_addr, &request)
            .unwrap();
        let (_, answer) = p.server.poll_transmit(p.now, p.now_ms).unwrap();
        assert!(answer.len() < request.len());
        p.client
            .handle_datagram(p.now, p.now_ms, addr(4590), &answer)
            .unwrap();
        assert_eq!(
            p.client.poll_event(),
            Some(SecureEvent::ServerKey {
                addr: addr(4590),
                key: p.server_key.public()
            })
        );
        // An unasked-for answer is dropped.
        assert!(p
            .client
            .handle_datagram(p.now, p.now_ms, addr(4590), &answer)
            .is_err());
    }
}
