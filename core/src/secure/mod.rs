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
//!   its peer to a new address once the peer proved it receives there
//!   ([`path`]); until then the new address gets only a challenge, within
//!   three times the bytes it sent.
//! - The initiator re-keys a session before AES-GCM's limits
//!   ([`Session::needs_rekey`]) with a new handshake that carries a token
//!   derived from the old one, so the responder moves the same session (and
//!   everything the application tied to it) onto the new keys.
//! - A KEY REQUEST gets the server's public key back (for trust on first
//!   use); the answer is smaller than the request.
//!
//! Each session is a [`PeerId`]: the index this side chose for it. The
//! application addresses peers by it, not by address.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::{CryptoRng, RngCore};

use crate::crypto::handshake::{ExpectPeerHello, ExpectServerHello, ReplayGuard};
use crate::crypto::keys::{PublicKey, StaticKey};
use crate::crypto::session::{Role, Session};
use crate::limits::{RateLimit, Source};
use crate::transport::{self, Endpoint, MessageId, SendError};
use crate::wire::{Packet, Pattern};
use zeroize::Zeroizing;

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
    /// Its mac1, which a cookie reply must echo.
    mac1: cookie::Cookie,
}

/// A HELLO that passed the gate, waiting for its P-384 work.
struct QueuedHello {
    from: SocketAddr,
    datagram: Vec<u8>,
    at: Instant,
}

// The established state is the large one on purpose: see `session`.
#[allow(clippy::large_enum_variant)]
enum State {
    Handshaking {
        pending: Box<Pending>,
        queued: VecDeque<Vec<u8>>,
    },
    Established {
        remote_index: u32,
        /// In place, not boxed: every datagram on the session reads it
        /// right after the `Conn`, and one allocation fewer is one cache
        /// miss fewer per keepalive (a `Conn` is boxed, so the few that
        /// handshake carry the room unused only while they do).
        session: Session,
        rekey: Option<Box<Pending>>,
        /// The keys before the last re-key, still opened (never sealed
        /// with) until a packet opens under the new ones: packets the
        /// peer sealed before it switched are still on their way, and a
        /// re-key whose WELCOME was lost is retried from the old keys.
        previous: Option<Box<Session>>,
    },
}

struct Conn {
    addr: SocketAddr,
    /// Boxed: a server's sessions with clients (NK) have none, and a
    /// decoded point is 104 bytes.
    remote_static: Option<Box<PublicKey>>,
    pattern: Pattern,
    role: Role,
    state: State,
    last_heard: Instant,
    /// When this side last sent on it, and last used it (a message sent
    /// or received): keepalives go while it was used lately.
    last_sent: Instant,
    last_active: Instant,
    /// A message (not a keepalive, not an acknowledgement) went either
    /// way since this side last started a handshake: the next re-key is
    /// due 10 minutes after it, not an hour ([`Session::needs_rekey`]).
    carried: bool,
    /// A new address the peer was heard from, being validated.
    probe: Option<Box<path::Probe>>,
    /// For a session this side answered: the source it counts against.
    source: Option<Source>,
    /// Since when it waits for the application's confirmation, if it does.
    unconfirmed_since: Option<Instant>,
}

/// Messages queued per session while its handshake runs.
const MAX_QUEUED: usize = 1024;
/// How often idle sessions are looked for.
const SWEEP_EVERY: Duration = Duration::from_secs(10);
/// A queued HELLO older than this is dropped: its sender has retried.
const HELLO_STALE: Duration = Duration::from_secs(2);
/// Cookies an initiator remembers (one per responder address) at most.
const MAX_COOKIES: usize = 1024;
/// Sources whose handshakes are counted at most.
const MAX_HANDSHAKE_SOURCES: usize = 65_536;
/// First byte of a HELLO payload.
const HELLO_FRESH: u8 = 0;
const HELLO_REKEY: u8 = 1;
const TOKEN_LEN: usize = 32;

/// The encrypted, reliable endpoint.
pub struct SecureEndpoint {
    config: SecureConfig,
    transport: Endpoint<PeerId>,
    /// The server's key (server) or this user's identity key (client);
    /// shared with the handshakes being worked out ([`HandshakeWork`]).
    static_key: Option<Arc<StaticKey>>,
    accept: Option<Pattern>,
    /// Boxed: the table's spare slots cost a pointer each, not a `Conn`.
    conns: HashMap<u32, Box<Conn>>,
    handshaking: BTreeSet<u32>,
    replay: ReplayGuard,
    rng: Rng,
    outbox: VecDeque<(SocketAddr, Vec<u8>)>,
    events: VecDeque<SecureEvent>,
    key_fetches: BTreeSet<SocketAddr>,
    next_sweep: Instant,
    /// Sessions keeping a key expanded.
    busy: busy::Busy,
    stats: Stats,
    /// mac1's key for this side's static key (HELLOs to us carry it).
    mac1_key: Option<Zeroizing<[u8; 48]>>,
    /// Cookies for HELLOs to us, under load.
    gate: cookie::Gate,
    /// How many HELLOs came lately, to tell when we are under load.
    hello_rate: RateLimit<()>,
    /// Handshakes answered per source, under load.
    handshake_sources: RateLimit<Source>,
    /// HELLOs waiting for their P-384 work ([`SecureEndpoint::take_handshake`]).
    hellos: VecDeque<QueuedHello>,
    /// The message 1s taken out and not yet finished, by ephemeral key.
    hellos_in_work: HashSet<Vec<u8>>,
    /// Under load until then.
    busy_until: Option<Instant>,
    /// Cookies responders gave us, by their address, and when.
    cookies: HashMap<SocketAddr, (cookie::Cookie, Instant)>,
    /// Sessions this side answered, per source.
    per_source: HashMap<Source, usize>,
    /// Sessions waiting for confirmation, oldest first (an entry whose
    /// time is not its session's `unconfirmed_since` is stale).
    unconfirmed: VecDeque<(Instant, u32)>,
    unconfirmed_count: usize,
    /// A client's meetings with other clients.
    meetings: meeting::Meetings,
    /// A server's relays between clients.
    relays: relay::Relays,
}

impl SecureEndpoint {
    /// A server: answers NK handshakes with `server_key`.
    pub fn server(
        config: SecureConfig,
        server_key: StaticKey,
        rng: Box<dyn SecureRng>,
        now: Instant,
    ) -> Self {
        SecureEndpoint::new(
            config,
            Some(Arc::new(server_key)),
            Some(Pattern::Nk),
            rng,
            now,
        )
    }

    /// A client: starts NK toward servers; answers IK from other clients
    /// once it has an identity ([`SecureEndpoint::set_identity`]).
    pub fn client(config: SecureConfig, rng: Box<dyn SecureRng>, now: Instant) -> Self {
        SecureEndpoint::new(config, None, None, rng, now)
    }

    fn new(
        config: SecureConfig,
        static_key: Option<Arc<StaticKey>>,
        accept: Option<Pattern>,
        rng: Box<dyn SecureRng>,
        now: Instant,
    ) -> Self {
        let mut rng = Rng(rng);
        let transport = Endpoint::new(config.transport.clone(), rng.next_u64());
        let gate = cookie::Gate::new(&mut rng, now);
        let mac1_key = static_key.as_ref().map(|k| cookie::mac1_key(&k.public()));
        let hello_rate = RateLimit::new(
            config.calm_handshakes_per_sec,
            Duration::from_secs(1) / config.calm_handshakes_per_sec.max(1),
            1,
        );
        let handshake_sources = RateLimit::new(
            config.handshakes_per_source_burst,
            Duration::from_secs(1) / config.handshakes_per_source_per_sec.max(1),
            MAX_HANDSHAKE_SOURCES,
        );
        let next_sweep = now + config.sweep_every();
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
            next_sweep,
            busy: busy::Busy::new(now),
            stats: Stats::default(),
            mac1_key,
            gate,
            hello_rate,
            handshake_sources,
            hellos: VecDeque::new(),
            hellos_in_work: HashSet::new(),
            busy_until: None,
            cookies: HashMap::new(),
            per_source: HashMap::new(),
            unconfirmed: VecDeque::new(),
            unconfirmed_count: 0,
            meetings: meeting::Meetings::default(),
            relays: relay::Relays::default(),
        }
    }

    /// Sets (or clears) this client's identity key: IK handshakes from
    /// other clients are answered only while one is set.
    pub fn set_identity(&mut self, identity: Option<StaticKey>) {
        self.accept = identity.as_ref().map(|_| Pattern::Ik);
        self.mac1_key = identity.as_ref().map(|k| cookie::mac1_key(&k.public()));
        self.static_key = identity.map(Arc::new);
    }

    pub fn stats(&self) -> Stats {
        Stats {
            checks_sent: self.meetings.checks_sent,
            ..self.stats
        }
    }

    pub fn peer(&self, peer: PeerId) -> Option<PeerInfo> {
        self.conns.get(&peer.0).map(|c| PeerInfo {
            addr: c.addr,
            remote_static: c.remote_static.as_deref().cloned(),
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
        let (expect, mac1) =
            self.hello(now, index, &remote, pattern, &[HELLO_FRESH], now_ms, addr)?;
        let pending = Box::new(Pending {
            expect,
            attempts: 1,
            next_retry: now + self.config.handshake_retry,
            mac1,
        });
        self.conns.insert(
            index,
            Box::new(Conn {
                addr,
                remote_static: Some(Box::new(remote)),
                pattern,
                role: Role::Initiator,
                state: State::Handshaking {
                    pending,
                    queued: VecDeque::new(),
                },
                last_heard: now,
                last_sent: now,
                last_active: now,
                carried: false,
                probe: None,
                source: None,
                unconfirmed_since: None,
            }),
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
        // Queued for a session that is gone, it would wait out every try
        // before failing: it fails now.
        let conn = self.conns.get_mut(&peer.0).ok_or(SendError::NoSession)?;
        conn.last_active = now;
        // An empty message is a keepalive (`Link::keep_alive`).
        conn.carried |= !message.is_empty();
        self.transport.send(now, peer, message)
    }

    /// Drops a session; its outstanding messages fail.
    pub fn forget(&mut self, peer: PeerId) {
        self.transport.forget(peer);
        self.relays.close_of(peer);
        if let Some(conn) = self.conns.remove(&peer.0) {
            self.handshaking.remove(&peer.0);
            if conn.unconfirmed_since.is_some() {
                self.unconfirmed_count -= 1;
            }
            if let Some(source) = conn.source {
                if let Some(count) = self.per_source.get_mut(&source) {
                    *count -= 1;
                    if *count == 0 {
                        self.per_source.remove(&source);
                    }
                }
            }
            self.events.push_back(SecureEvent::Closed { peer });
        }
        self.drain_transport_events();
    }

    /// Sends every acknowledgement held back at the next
    /// [`SecureEndpoint::poll_transmit`]: for an endpoint about to stop.
    pub fn acknowledge_now(&mut self) {
        self.transport.acknowledge_now();
    }

    /// Sends `peer`'s acknowledgement held back, if one is, at the next
    /// [`SecureEndpoint::poll_transmit`] (see
    /// [`transport::Endpoint::acknowledge`]).
    pub fn acknowledge(&mut self, peer: PeerId) {
        self.transport.acknowledge(peer);
    }

    /// Holds the acknowledgement of a message received from `peer` until
    /// [`SecureEndpoint::release_ack`] (see [`transport::Endpoint::hold_ack`]).
    pub fn hold_ack(&mut self, now: Instant, peer: PeerId, receipt: Receipt) -> bool {
        self.transport.hold_ack(now, peer, receipt)
    }

    /// How long a hold lasts at most ([`transport::Config::max_ack_hold`]).
    pub fn max_ack_hold(&self) -> Duration {
        self.config.transport.max_ack_hold
    }

    /// Ends a hold (see [`transport::Endpoint::release_ack`]).
    pub fn release_ack(&mut self, now: Instant, peer: PeerId, receipt: Receipt, at_once: bool) {
        self.transport.release_ack(now, peer, receipt, at_once);
    }

    /// Sessions now.
    pub fn sessions(&self) -> usize {
        self.conns.len()
    }

    /// Bytes of messages queued or in flight, every session together.
    pub fn queued_bytes(&self) -> usize {
        self.transport.queued_bytes()
    }

    /// Bytes of messages partly arrived, every session together.
    pub fn reassembly_bytes(&self) -> usize {
        self.transport.reassembly_bytes()
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

    pub(super) fn handle_packet(
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
            } => self.take_data(
                now,
                from,
                datagram.len(),
                receiver_index,
                counter,
                ciphertext,
            ),
            Packet::Hello {
                pattern,
                sender_index,
                ..
            } => {
                if self.accept != Some(pattern) {
                    return Err(Rejected::Unexpected);
                }
                self.screen_hello(now, from, sender_index, datagram)
            }
            Packet::CookieReply {
                receiver_index,
                mac1,
                cookie,
            } => self.read_cookie(now, now_ms, from, receiver_index, mac1, cookie),
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
            probe @ Packet::Probe { .. } => self.take_probe(now, from, &probe),
            Packet::Relay { meeting, inner } => {
                if self.accept == Some(Pattern::Nk) {
                    self.relay(now, from, meeting, datagram)
                } else {
                    self.take_relayed(now, now_ms, from, meeting, inner)
                }
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

    /// The next datagram to send. One for a relay address leaves wrapped,
    /// toward the relaying server ([`meeting`]).
    pub fn poll_transmit(&mut self, now: Instant, now_ms: u64) -> Option<(SocketAddr, Vec<u8>)> {
        loop {
            let (to, datagram) = self.poll_datagram(now, now_ms)?;
            if let Some(out) = self.meetings.route(now, to, datagram) {
                return Some(out);
            }
        }
    }

    pub fn poll_event(&mut self) -> Option<SecureEvent> {
        self.events.pop_front()
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
                transport::Event::Received {
                    from,
                    message,
                    receipt,
                } => {
                    if let Some(conn) = self.conns.get_mut(&from.0) {
                        conn.carried |= !message.is_empty();
                    }
                    SecureEvent::Received {
                        from,
                        message,
                        receipt,
                    }
                }
                transport::Event::Delivered { to, id } => SecureEvent::Delivered { to, id },
                transport::Event::DeliveryFailed { to, id } => {
                    SecureEvent::DeliveryFailed { to, id }
                }
            });
        }
    }
}

#[cfg(test)]
mod across_nats;
mod busy;
mod confirm;
pub mod cookie;
mod data;
mod events;
mod hello;
pub mod meeting;
pub mod path;
pub mod relay;
pub mod screen;
#[cfg(test)]
mod tests;
mod timers;
mod tuning;
pub use crate::transport::Receipt;
pub use events::{ConnectError, PeerId, PeerInfo, Rejected, SecureEvent, Stats};
pub use hello::{HandshakeDone, HandshakeWork};
pub use tuning::SecureConfig;
#[cfg(test)]
mod worked_example;
