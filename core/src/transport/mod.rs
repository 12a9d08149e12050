//! A sans-IO reliable message endpoint over datagrams, in the manner of
//! quinn-proto: the caller feeds datagrams and time in
//! ([`Endpoint::handle_datagram`], [`Endpoint::handle_timeout`]) and polls
//! datagrams, timers and events out ([`Endpoint::poll_transmit`],
//! [`Endpoint::poll_timeout`], [`Endpoint::poll_event`]). It never reads a
//! clock, owns no socket and uses no randomness, so [`sim`] runs it on a
//! simulated network, deterministically.
//!
//! What it gives, per peer: every message sent is received exactly once, in
//! send order, or the sender learns it failed. Messages up to
//! [`Config::max_message`] are split into fragments that fit
//! [`Config::max_datagram`] (layout in `packet.rs`). Loss recovery follows
//! RFC 9002: a new packet number per transmission, packet and time
//! thresholds, a doubling probe timeout, bounded retries.
//!
//! Where this differs from the first design, and why:
//!
//! - The incarnation in every header is a *session*: the endpoint's
//!   incarnation mixed with a count of the peer states it has made. When an
//!   endpoint forgets a peer (idle or [`Endpoint::forget`]) and meets it
//!   again, its message numbers restart at 0 under a new session, which the
//!   other side treats as a restart. With one incarnation per process those
//!   new messages would look like duplicates and be dropped.
//! - A receiver remembers a few earlier sessions of each peer and ignores
//!   their datagrams: one delayed past a restart would otherwise reset the
//!   receive state back to the old session and deliver messages twice.
//! - A sender that sees the peer's session change (the peer restarted or
//!   forgot us) sends every outstanding message again whole, since the
//!   fragments acknowledged before went down with the old state.
//! - A third packet kind, SKIP, carries base_seq alone. After a failure, or
//!   after the peer restarted, the receiver may miss messages that are
//!   finished here while it holds later ones complete (acknowledged, so
//!   Delivered here). Those would wait until some later DATA happened to
//!   carry a base_seq past the gap, forever if none came. So once base_seq
//!   passes such a gap, one SKIP goes out, retried until acknowledged or out
//!   of tries.
//! - A fragment is also done when an older transmission of it, already
//!   declared lost, is acknowledged late (reordering is not loss).
//! - When as many probe timeouts as [`Config::max_tries`] expire in a row
//!   with no acknowledgement, the peer is unreachable and every outstanding
//!   message fails at once. Probes only retry the oldest fragments, so
//!   failing fragment by fragment would take `max_tries` timeouts per
//!   message; this bounds the failure time by `max_tries * max_backoff`
//!   after the last acknowledgement (plus one loss delay). The SKIP that
//!   follows is tried as long again before the peer can go idle.
//! - A message whose reassembly timed out is refused (its fragments are no
//!   longer acknowledged) until the sender's base_seq passes it: otherwise a
//!   late fragment could complete the acknowledgements and the sender would
//!   report Delivered for a message the receiver threw away.
//! - The next expected message is exempt from
//!   [`Config::max_reassembly_bytes`] (see `recv.rs`): refusing it could
//!   only deadlock a full buffer.
//! - Message numbers are u32 per session. A session that used them all
//!   starts over as a new session once nothing is outstanding; until then
//!   [`SendError::SequenceExhausted`].

mod config;
mod packet;
mod peer;
mod ranges;
mod receipt;
mod recv;
mod rtt;
mod send;
pub mod sim;
mod spare;
#[cfg(test)]
mod tests;

use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeSet, HashMap, VecDeque};
use std::fmt::Debug;
use std::hash::{BuildHasherDefault, Hash};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

pub use config::{Config, ConfigError};
use packet::Packet;
use peer::Peer;
pub use receipt::Receipt;
use send::{Outcome, SendState};

/// Names one message sent by one endpoint, unique across its peers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MessageId(pub u64);

/// A datagram for the caller to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit<P> {
    pub destination: P,
    pub contents: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event<P> {
    /// A message, whole; each exactly once, in send order per peer.
    Received {
        from: P,
        message: Vec<u8>,
        receipt: Receipt,
    },
    /// Every fragment of the message was acknowledged.
    Delivered { to: P, id: MessageId },
    /// Not confirmed: a fragment used up its tries, the peer stopped
    /// answering, or it was forgotten. The message may still have arrived
    /// (only its acknowledgements may have been lost).
    DeliveryFailed { to: P, id: MessageId },
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    #[error("message of {size} bytes is larger than the limit of {max}")]
    TooLarge { size: usize, max: usize },
    #[error("this peer's session used all message numbers; wait until nothing is outstanding")]
    SequenceExhausted,
    #[error("too much is already queued for this peer (or for all of them)")]
    QueueFull,
    /// From the secure layer: the session is closed (or never was).
    #[error("that session is closed")]
    NoSession,
}

/// Why a datagram was rejected; nothing about the peer changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PacketError {
    #[error("datagram truncated")]
    Truncated,
    #[error("unknown packet kind {0}")]
    UnknownKind(u8),
    #[error("unsupported transport version {0}")]
    BadVersion(u8),
    #[error("malformed packet: {0}")]
    Malformed(&'static str),
}

/// A count of bytes shared by all of an endpoint's peers (those waiting
/// in reassembly, or queued to send), so that their total is bounded.
#[derive(Debug, Clone, Default)]
pub(crate) struct Meter(Arc<AtomicUsize>);

impl Meter {
    pub fn bytes(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }

    pub(crate) fn add(&self, n: usize) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn sub(&self, n: usize) {
        self.0.fetch_sub(n, Ordering::Relaxed);
    }
}

/// Decodes one transport datagram as [`Endpoint::handle_datagram`] does
/// (with [`Config::max_message`] = `max_message`) and encodes what it read
/// again. For the fuzz targets (`fuzz/`), which check that an accepted
/// datagram has exactly one byte form: the result is the input.
#[doc(hidden)]
pub fn decode_and_reencode(datagram: &[u8], max_message: usize) -> Result<Vec<u8>, PacketError> {
    Ok(Packet::decode(datagram, max_message)?.encode())
}

/// The reliable endpoint. `P` names a peer: a session of the secure layer
/// (`secure::PeerId`), or a node of the simulations and tests.
pub struct Endpoint<P>
where
    P: Copy + Eq + Hash + Ord + Debug,
{
    config: Config,
    incarnation: u64,
    /// Peer states made so far; each one's session id derives from it.
    sessions: u64,
    next_message_id: u64,
    /// Found by hash: a datagram looks its peer up several times, and a
    /// tree of thousands of peers cost a walk through cold nodes each
    /// time. The hasher's keys are fixed, so every run, and every
    /// simulation, is the same (nothing depends on the order anyway); the
    /// peers are named by the caller (session indexes it drew), not by
    /// whoever sends datagrams. Boxed: a slot holds a pointer, not the
    /// peer's 300 bytes at every spare slot of the table.
    peers: HashMap<P, Box<Peer>, BuildHasherDefault<DefaultHasher>>,
    /// Peers that may have a datagram to send, served in turn.
    ready: VecDeque<P>,
    timers: BTreeSet<(Instant, P)>,
    events: VecDeque<Event<P>>,
    /// Whole messages a peer delivered in the step under way: made events
    /// when the step ends ([`Endpoint::refresh`]), so it is empty between
    /// steps. One queue for all peers, not one each.
    delivered: VecDeque<Vec<u8>>,
    /// Bytes waiting in reassembly, all peers together.
    reassembly: Meter,
    /// Bytes of messages queued or in flight, all peers together.
    queued: Meter,
    /// The packet being taken in: what delivers the messages in
    /// `delivered`.
    taking: Receipt,
}

impl<P> Endpoint<P>
where
    P: Copy + Eq + Hash + Ord + Debug,
{
    /// `incarnation` is a random number chosen by the caller: it tells this
    /// run of a process from earlier ones on the same address.
    ///
    /// # Panics
    ///
    /// If `config` does not pass [`Config::validate`].
    pub fn new(config: Config, incarnation: u64) -> Endpoint<P> {
        if let Err(e) = config.validate() {
            panic!("invalid transport config: {e}");
        }
        Endpoint {
            config,
            incarnation,
            sessions: 0,
            next_message_id: 0,
            peers: HashMap::default(),
            ready: VecDeque::new(),
            timers: BTreeSet::new(),
            events: VecDeque::new(),
            delivered: VecDeque::new(),
            reassembly: Meter::default(),
            queued: Meter::default(),
            taking: Receipt::NONE,
        }
    }

    /// Bytes waiting in reassembly, all peers together.
    pub fn reassembly_bytes(&self) -> usize {
        self.reassembly.bytes()
    }

    /// Bytes of messages queued or in flight, all peers together.
    pub fn queued_bytes(&self) -> usize {
        self.queued.bytes()
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Queues a message for `to`; empty messages are fine.
    pub fn send(&mut self, now: Instant, to: P, message: Vec<u8>) -> Result<MessageId, SendError> {
        if message.len() > self.config.max_message {
            return Err(SendError::TooLarge {
                size: message.len(),
                max: self.config.max_message,
            });
        }
        let queued_total = self.queued.bytes();
        let (peer, config, _) = self.peer(now, to);
        if peer.send.queued_bytes() + message.len() > config.max_queued_bytes
            || queued_total + message.len() > config.max_queued_total
        {
            return Err(SendError::QueueFull);
        }
        if peer.send.exhausted() {
            if peer.send.outstanding() > 0 {
                return Err(SendError::SequenceExhausted);
            }
            self.sessions += 1;
            let peer = self.peers.get_mut(&to).expect("peer made above");
            peer.session = session_id(self.incarnation, self.sessions);
            peer.send = SendState::new(&self.config, &self.queued);
        }
        let id = MessageId(self.next_message_id);
        self.next_message_id += 1;
        let peer = self.peers.get_mut(&to).expect("peer made above");
        peer.send.push(id, message, &self.config);
        peer.touch(now);
        self.refresh(to);
        Ok(id)
    }

    /// Takes one datagram from `from`. Anything that does not decode is
    /// rejected without touching any state.
    pub fn handle_datagram(
        &mut self,
        now: Instant,
        from: P,
        datagram: &[u8],
    ) -> Result<(), PacketError> {
        match Packet::decode(datagram, self.config.max_message)? {
            Packet::Data { header, payload } => {
                self.taking = Receipt::of(&header);
                let (peer, config, delivered) = self.peer(now, from);
                peer.on_data(now, (&header, payload), config, delivered);
            }
            Packet::Skip {
                incarnation,
                pn,
                base_seq,
            } => {
                self.taking = Receipt::new(incarnation, pn);
                let (peer, config, delivered) = self.peer(now, from);
                peer.on_skip(now, (incarnation, pn, base_seq), config, delivered);
            }
            // An ACK cannot make a peer: there is nothing of ours to acknowledge.
            Packet::Ack(ack) => match self.peers.get_mut(&from) {
                Some(peer) => peer.on_ack(now, &ack, &self.config)?,
                None => return Ok(()),
            },
            Packet::AckData {
                ack,
                header,
                payload,
            } => {
                // A bad ACK rejects the whole datagram, its DATA with it,
                // before anything changed; from a peer not known yet it
                // acknowledges nothing of ours, as an ACK alone would.
                if let Some(peer) = self.peers.get_mut(&from) {
                    peer.on_ack(now, &ack, &self.config)?;
                }
                self.taking = Receipt::of(&header);
                let (peer, config, delivered) = self.peer(now, from);
                peer.on_data(now, (&header, payload), config, delivered);
            }
        }
        self.refresh(from);
        Ok(())
    }

    /// The next datagram to send, peers taking turns.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Transmit<P>> {
        while let Some(p) = self.ready.pop_front() {
            let Some(peer) = self.peers.get_mut(&p) else {
                continue;
            };
            peer.queued = false;
            let contents = peer.poll_transmit(now, &self.config);
            self.refresh(p);
            if let Some(contents) = contents {
                debug_assert!(contents.len() <= self.config.max_datagram);
                return Some(Transmit {
                    destination: p,
                    contents,
                });
            }
        }
        None
    }

    /// When [`Endpoint::handle_timeout`] is next due; `None` when no peer
    /// needs a timer (nothing outstanding, no peer left to forget). It may
    /// come before anything is due: a peer's timer that moved later is
    /// set again only when its earlier time comes (see `refresh`).
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.first().map(|&(at, _)| at)
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        let due: Vec<(Instant, P)> = self
            .timers
            .iter()
            .take_while(|&&(at, _)| at <= now)
            .copied()
            .collect();
        for entry in due {
            let p = entry.1;
            self.timers.remove(&entry);
            let Some(peer) = self.peers.get_mut(&p) else {
                continue;
            };
            peer.deadline = None;
            peer.on_timeout(now, &self.config);
            if peer.is_expired(now, &self.config) {
                self.remove_peer(p);
            } else {
                self.refresh(p);
            }
        }
    }

    pub fn poll_event(&mut self) -> Option<Event<P>> {
        self.events.pop_front()
    }

    /// `peer` is reached on a new path: what is in flight goes again now,
    /// with fresh tries.
    pub fn path_changed(&mut self, now: Instant, peer: P) {
        if let Some(state) = self.peers.get_mut(&peer) {
            state.send.on_path_change(now, &self.config);
            self.refresh(peer);
        }
    }

    /// Sends every acknowledgement held back, at the next
    /// [`Endpoint::poll_transmit`]: for an endpoint about to stop, so that
    /// nothing it received is sent again to no one.
    pub fn acknowledge_now(&mut self) {
        let held: Vec<P> = self
            .peers
            .iter_mut()
            .filter_map(|(p, peer)| peer.acknowledge_now().then_some(*p))
            .collect();
        for p in held {
            self.refresh(p);
        }
    }

    /// Sends `peer`'s acknowledgement held back, if one is, at the next
    /// [`Endpoint::poll_transmit`]: what it sent wants no answer (a push),
    /// so nothing going back would carry the acknowledgement sooner.
    pub fn acknowledge(&mut self, peer: P) {
        if self
            .peers
            .get_mut(&peer)
            .is_some_and(|p| p.acknowledge_now())
        {
            self.refresh(peer);
        }
    }

    /// Holds the acknowledgement of the packet that brought a message in
    /// (its `receipt`), and of every packet after it, until
    /// [`Endpoint::release_ack`] or [`Config::max_ack_hold`]: so that the sender hears
    /// the message arrived only once the application is done with it (a
    /// chat line is on disk), and a process killed before then has it sent
    /// again. Packets before it are still acknowledged; the sender sees no
    /// gap, only a later acknowledgement. Call it before the next
    /// [`Endpoint::poll_transmit`] after the message's event. False if the
    /// peer is gone or restarted since.
    pub fn hold_ack(&mut self, now: Instant, peer: P, receipt: Receipt) -> bool {
        let held = self
            .peers
            .get_mut(&peer)
            .is_some_and(|p| p.hold(receipt, now, self.config.max_ack_hold));
        if held {
            self.refresh(peer);
        }
        held
    }

    /// Ends a hold [`Endpoint::hold_ack`] took. The acknowledgement it held
    /// back goes at once if one was due meanwhile or `at_once` (a message
    /// its sender waits on), else within `max_ack_delay` as usual.
    pub fn release_ack(&mut self, now: Instant, peer: P, receipt: Receipt, at_once: bool) {
        if let Some(p) = self.peers.get_mut(&peer) {
            p.release(now, receipt, at_once, &self.config);
            self.refresh(peer);
        }
    }

    /// A round trip to `peer` measured outside the transport (the
    /// handshake that opened the session), taken while no acknowledgement
    /// gave one: the first ACKs of a session may be held
    /// ([`Endpoint::hold_ack`]) and give none.
    pub fn seed_rtt(&mut self, now: Instant, peer: P, measured: std::time::Duration) {
        let (state, _, _) = self.peer(now, peer);
        state.send.seed_rtt(measured);
    }

    /// Drops all state of `peer`; its outstanding messages fail.
    pub fn forget(&mut self, peer: P) {
        self.remove_peer(peer);
    }

    /// Messages sent to `peer` and neither Delivered nor failed yet.
    pub fn in_flight(&self, peer: P) -> usize {
        self.peers.get(&peer).map_or(0, |p| p.send.outstanding())
    }

    /// The peer's state, made if it is new; with the config and the
    /// queue of delivered messages, which the caller cannot borrow while
    /// it holds the peer.
    fn peer(&mut self, now: Instant, p: P) -> (&mut Peer, &Config, &mut VecDeque<Vec<u8>>) {
        let sessions = &mut self.sessions;
        let incarnation = self.incarnation;
        let config = &self.config;
        let meters = (&self.reassembly, &self.queued);
        let peer = self.peers.entry(p).or_insert_with(|| {
            *sessions += 1;
            Box::new(Peer::new(
                session_id(incarnation, *sessions),
                now,
                config,
                meters,
            ))
        });
        (peer, config, &mut self.delivered)
    }

    /// Brings the endpoint's view of one peer up to date after anything
    /// happened to it: its events, its place among timers and senders.
    fn refresh(&mut self, p: P) {
        let Some(peer) = self.peers.get_mut(&p) else {
            return;
        };
        take_events(p, &mut self.delivered, self.taking, peer, &mut self.events);
        peer.spare();
        let deadline = peer.next_deadline(&self.config);
        // The peer's entry in the timers moves only earlier. Every
        // datagram heard pushes the idle timer back (and, while its
        // acknowledgement is about to go, takes it away), every
        // acknowledgement the probe timer: moving the entry each time cost
        // two searches of the tree per datagram. An entry left early fires,
        // finds nothing due, and is set again from the peer's deadline
        // then ([`Endpoint::handle_timeout`]).
        let earlier = match (peer.deadline, deadline) {
            (_, None) => false,
            (None, Some(_)) => true,
            (Some(old), Some(new)) => new < old,
        };
        if earlier {
            if let Some(old) = peer.deadline {
                self.timers.remove(&(old, p));
            }
            if let Some(new) = deadline {
                self.timers.insert((new, p));
            }
            peer.deadline = deadline;
        }
        if !peer.queued && peer.wants_transmit(&self.config) {
            peer.queued = true;
            self.ready.push_back(p);
        }
    }

    fn remove_peer(&mut self, p: P) {
        let Some(mut peer) = self.peers.remove(&p) else {
            return;
        };
        if let Some(at) = peer.deadline {
            self.timers.remove(&(at, p));
        }
        peer.send.fail_all();
        take_events(
            p,
            &mut self.delivered,
            self.taking,
            &mut peer,
            &mut self.events,
        );
    }

    #[cfg(test)]
    fn peer_count(&self) -> usize {
        self.peers.len()
    }

    /// Whether the peer's state is down to what an idle peer keeps: no
    /// sending flight, nothing held for reassembly.
    #[cfg(test)]
    fn at_rest(&self, p: P) -> bool {
        self.peers.get(&p).is_some_and(|peer| {
            peer.send.at_rest() && peer.recv.as_ref().is_none_or(|r| r.at_rest())
        })
    }

    /// When `p` next has something due, whatever its entry in the timers
    /// says (that may be earlier: see `refresh`).
    #[cfg(test)]
    fn deadline_of(&self, p: P) -> Option<Instant> {
        self.peers.get(&p)?.next_deadline(&self.config)
    }

    #[cfg(test)]
    fn waiting_bytes(&self, p: P) -> usize {
        self.peers
            .get(&p)
            .and_then(|peer| peer.recv.as_ref())
            .map_or(0, |recv| recv.waiting_bytes())
    }
}

fn take_events<P: Copy>(
    p: P,
    delivered: &mut VecDeque<Vec<u8>>,
    receipt: Receipt,
    peer: &mut Peer,
    events: &mut VecDeque<Event<P>>,
) {
    events.extend(delivered.drain(..).map(|message| Event::Received {
        from: p,
        message,
        receipt,
    }));
    events.extend(peer.send.finished().map(|(id, outcome)| match outcome {
        Outcome::Delivered => Event::Delivered { to: p, id },
        Outcome::Failed => Event::DeliveryFailed { to: p, id },
    }));
}

/// A session id from the incarnation and a counter: a bijection of their
/// sum (splitmix64's finalizer), so sessions of one endpoint never collide
/// and those of two endpoints collide only by chance.
fn session_id(incarnation: u64, n: u64) -> u64 {
    let mut z = incarnation.wrapping_add(n.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}
