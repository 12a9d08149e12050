//! What the secure endpoint tells its application: who a session is
//! ([`PeerId`], [`PeerInfo`]), what happened ([`SecureEvent`]), what it
//! dropped ([`Stats`], [`Rejected`]) and why a session could not start
//! ([`ConnectError`]).

use std::net::SocketAddr;

use crate::crypto::keys::PublicKey;
use crate::transport::MessageId;

/// A session, named by the index this side chose for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerId(pub u32);

impl std::fmt::Display for PeerId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "#{:08x}", self.0)
    }
}

/// What the application hears.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecureEvent {
    /// A whole message, once, in order; `receipt` names the packet that
    /// brought it, for [`SecureEndpoint::hold_ack`](super::SecureEndpoint::hold_ack).
    Received {
        from: PeerId,
        message: Vec<u8>,
        receipt: crate::transport::Receipt,
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
    /// The peer proved it is now at `addr` (a NAT rebinding, a new
    /// network): the session carries on there.
    Moved {
        peer: PeerId,
        addr: SocketAddr,
    },
    /// A check of a meeting was answered from `addr` ([`meeting`](super::meeting)): the
    /// peer can be reached there.
    Reachable {
        meeting: u64,
        addr: SocketAddr,
    },
}

/// Counts of what was dropped, for tests and the bench.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Datagrams dropped unanswered: garbage, unknown sessions, failed
    /// authentication, replays.
    pub rejected: u64,
    pub sessions_opened: u64,
    /// Path challenges sent to new addresses, and sessions moved to one.
    pub path_challenges: u64,
    pub migrations: u64,
    /// HELLOs answered with a cookie reply instead of P-384 work.
    pub cookies_sent: u64,
    /// HELLOs dropped before their P-384 work: over a source's limit, the
    /// queue full, or waiting too long.
    pub handshakes_shed: u64,
    /// HELLOs that got their P-384 work.
    pub handshakes_answered: u64,
    /// Sessions re-keyed: a re-key's WELCOME read (this side started it)
    /// or a re-key's HELLO admitted (the peer did).
    pub rekeys: u64,
    /// Meeting checks sent ([`meeting`](super::meeting)).
    pub checks_sent: u64,
    /// What the relay passed on ([`relay`](super::relay)), and what it refused (not
    /// from an end, or past the budget).
    pub relayed_datagrams: u64,
    pub relayed_bytes: u64,
    pub relay_refused: u64,
    /// Keepalives sent ([`path`](super::path)).
    pub keepalives: u64,
}

/// What a peer is, as far as this side knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerInfo {
    pub addr: SocketAddr,
    /// The server's key (NK, initiator side) or the peer's identity key (IK).
    pub remote_static: Option<PublicKey>,
    pub established: bool,
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
    #[error("too many handshakes from this source, or waiting")]
    Shed,
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
