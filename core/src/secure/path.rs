//! Path validation, as QUIC does it (RFC 9000 sections 8.2 and 9): a
//! session moves to a new address only once the peer proved it receives
//! there.
//!
//! A packet that authenticates from an address other than the session's
//! validated one (NAT rebinding, roaming, or an attacker replaying a real
//! packet from a spoofed source) is taken in, but everything this side
//! sends stays on the validated address. The new address gets only a
//! PATH CHALLENGE, and no more than three times the bytes that came from
//! it: a spoofed source cannot turn the session into a reflector. The
//! peer echoes the challenge in a PATH RESPONSE from the new address;
//! only then does the session move there.
//!
//! A KEEPALIVE keeps the path open: a client sends one on a session it
//! used in the last [`KEEP_OPEN_FOR`] when it sent nothing else for
//! [`super::SecureConfig::keepalive`], so the NATs on the way (Linux
//! forgets an unanswered UDP mapping after 30 s) and the server's relay
//! keep the session's mappings. The receiver only notes that the peer is
//! alive.
//!
//! All three are sealed inside the session like any transport packet, and
//! told apart from the transport's own by their kind byte:
//!
//! ```text
//!   0       version     u8  = 1 (the transport's)
//!   1       kind        u8  PATH CHALLENGE = 4, PATH RESPONSE = 5,
//!                           KEEPALIVE = 6
//!   2..10   challenge   8 random bytes; the response echoes them (zero
//!                       in a KEEPALIVE)
//! ```

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rand::RngCore;

use super::{SecureEndpoint, State};
use crate::wire;

const VERSION: u8 = 1;
pub(super) const KIND_CHALLENGE: u8 = 4;
pub(super) const KIND_RESPONSE: u8 = 5;
pub(super) const KIND_KEEPALIVE: u8 = 6;
const LEN: usize = 10;

/// An address may be sent at most this many times the bytes it sent us
/// before it is validated.
pub const AMPLIFICATION_FACTOR: usize = 3;
/// A challenge not answered is sent again at most this often, when more
/// comes from the new address.
const RETRY_AFTER: Duration = Duration::from_millis(500);
/// A probe with no answer for this long is given up.
const GIVE_UP_AFTER: Duration = Duration::from_secs(30);
/// A session keeps its path open this long after it was last used.
pub const KEEP_OPEN_FOR: Duration = Duration::from_secs(10 * 60);

/// A path packet: a challenge or its response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PathPacket {
    Challenge([u8; 8]),
    Response([u8; 8]),
    Keepalive,
}

impl PathPacket {
    /// `None` if `plaintext` is not a path packet (a transport packet, then).
    pub(super) fn parse(plaintext: &[u8]) -> Option<PathPacket> {
        if plaintext.len() != LEN || plaintext[0] != VERSION {
            return None;
        }
        let data: [u8; 8] = plaintext[2..LEN].try_into().ok()?;
        match plaintext[1] {
            KIND_CHALLENGE => Some(PathPacket::Challenge(data)),
            KIND_RESPONSE => Some(PathPacket::Response(data)),
            KIND_KEEPALIVE => Some(PathPacket::Keepalive),
            _ => None,
        }
    }

    pub(super) fn encode(&self) -> [u8; LEN] {
        let (kind, data) = match self {
            PathPacket::Challenge(d) => (KIND_CHALLENGE, d),
            PathPacket::Response(d) => (KIND_RESPONSE, d),
            PathPacket::Keepalive => (KIND_KEEPALIVE, &[0u8; 8]),
        };
        let mut out = [0u8; LEN];
        out[0] = VERSION;
        out[1] = kind;
        out[2..].copy_from_slice(data);
        out
    }
}

/// A new address being validated.
#[derive(Debug)]
pub(super) struct Probe {
    addr: SocketAddr,
    challenge: [u8; 8],
    /// Authenticated bytes that came from `addr`.
    received: usize,
    /// Bytes sent to `addr`.
    sent: usize,
    last_challenge: Option<Instant>,
    started: Instant,
}

impl Probe {
    /// Whether `len` more bytes may go to the unvalidated address.
    fn may_send(&self, len: usize) -> bool {
        self.sent + len <= AMPLIFICATION_FACTOR * self.received
    }
}

impl SecureEndpoint {
    /// `len` authenticated bytes for the session `index` came from `from`:
    /// on its validated address, nothing to do; elsewhere, the address is
    /// probed (within its byte budget).
    pub(super) fn heard_from(&mut self, now: Instant, index: u32, from: SocketAddr, len: usize) {
        let Some(conn) = self.conns.get_mut(&index) else {
            return;
        };
        if from == conn.addr {
            return;
        }
        let probe = match &mut conn.probe {
            Some(probe) if probe.addr == from => probe,
            other => {
                let mut challenge = [0u8; 8];
                self.rng.fill_bytes(&mut challenge);
                other.insert(Box::new(Probe {
                    addr: from,
                    challenge,
                    received: 0,
                    sent: 0,
                    last_challenge: None,
                    started: now,
                }))
            }
        };
        probe.received = probe.received.saturating_add(len);
        let due = !matches!(probe.last_challenge,
            Some(at) if now.saturating_duration_since(at) < RETRY_AFTER);
        let datagram_len = LEN + wire::DATA_OVERHEAD;
        if !due || !probe.may_send(datagram_len) {
            return;
        }
        probe.sent += datagram_len;
        probe.last_challenge = Some(now);
        let challenge = PathPacket::Challenge(probe.challenge);
        if let Some(datagram) = self.seal_for(index, &challenge.encode()) {
            self.stats.path_challenges += 1;
            self.outbox.push_back((from, datagram));
        }
    }

    /// Counts `len` bytes about to go to `to` for the session `index`
    /// against a probe's budget; false if they may not go.
    pub(super) fn may_send_to(&mut self, index: u32, to: SocketAddr, len: usize) -> bool {
        let Some(conn) = self.conns.get_mut(&index) else {
            return false;
        };
        if to == conn.addr {
            return true;
        }
        match &mut conn.probe {
            Some(probe) if probe.addr == to && probe.may_send(len) => {
                probe.sent += len;
                true
            }
            _ => false,
        }
    }

    /// Takes a path packet that came on the session `index` from `from`.
    pub(super) fn handle_path(&mut self, index: u32, from: SocketAddr, packet: PathPacket) {
        match packet {
            PathPacket::Challenge(data) => {
                // Echoed once (the replay window lets each packet in once),
                // no larger than the challenge: no amplification.
                if let Some(datagram) = self.seal_for(index, &PathPacket::Response(data).encode()) {
                    self.outbox.push_back((from, datagram));
                }
            }
            PathPacket::Response(data) => {
                let Some(conn) = self.conns.get_mut(&index) else {
                    return;
                };
                let proven = conn
                    .probe
                    .as_ref()
                    .is_some_and(|p| p.addr == from && p.challenge == data);
                if proven {
                    conn.addr = from;
                    conn.probe = None;
                    self.stats.migrations += 1;
                    self.events.push_back(super::SecureEvent::Moved {
                        peer: super::PeerId(index),
                        addr: from,
                    });
                }
            }
            PathPacket::Keepalive => {}
        }
    }

    /// When the next keepalive is due, if any session needs one.
    pub(super) fn keepalive_due(&self) -> Option<Instant> {
        let every = self.config.keepalive?;
        self.conns
            .values()
            .filter(|c| matches!(c.state, State::Established { .. }))
            .filter(|c| c.last_sent.saturating_duration_since(c.last_active) < KEEP_OPEN_FOR)
            .map(|c| c.last_sent + every)
            .min()
    }

    /// Sends a keepalive on each session used lately that sent nothing
    /// for a while.
    pub(super) fn send_keepalives(&mut self, now: Instant) {
        let Some(every) = self.config.keepalive else {
            return;
        };
        let due: Vec<u32> = self
            .conns
            .iter()
            .filter(|(_, c)| {
                matches!(c.state, State::Established { .. })
                    && now.saturating_duration_since(c.last_sent) >= every
                    && now.saturating_duration_since(c.last_active) < KEEP_OPEN_FOR
            })
            .map(|(i, _)| *i)
            .collect();
        for index in due {
            if let Some(datagram) = self.seal_for(index, &PathPacket::Keepalive.encode()) {
                let conn = self.conns.get_mut(&index).expect("a session just seen");
                conn.last_sent = now;
                self.outbox.push_back((conn.addr, datagram));
                self.stats.keepalives += 1;
            }
        }
    }

    /// The application moves the session `peer` to `addr` (a path a
    /// meeting found after the old one broke): what is in flight goes
    /// again there at once. The peer follows once it hears from this side
    /// there (a new address of ours is validated on its side).
    pub fn migrate(&mut self, now: Instant, peer: super::PeerId, addr: SocketAddr) {
        let Some(conn) = self.conns.get_mut(&peer.0) else {
            return;
        };
        conn.addr = addr;
        conn.probe = None;
        self.transport.path_changed(now, peer);
    }

    /// Forgets probes nobody answered.
    pub(super) fn expire_probes(&mut self, now: Instant) {
        for conn in self.conns.values_mut() {
            if conn
                .probe
                .as_ref()
                .is_some_and(|p| now.saturating_duration_since(p.started) > GIVE_UP_AFTER)
            {
                conn.probe = None;
            }
        }
    }

    /// Seals `plaintext` in the session `index`, if it is established.
    fn seal_for(&mut self, index: u32, plaintext: &[u8]) -> Option<Vec<u8>> {
        let conn = self.conns.get_mut(&index)?;
        let State::Established {
            remote_index,
            session,
            ..
        } = &mut conn.state
        else {
            return None;
        };
        wire::seal_data(session, *remote_index, plaintext).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_packets_round_trip_and_nothing_else_parses_as_one() {
        for packet in [
            PathPacket::Challenge([1, 2, 3, 4, 5, 6, 7, 8]),
            PathPacket::Response([9; 8]),
            PathPacket::Keepalive,
        ] {
            assert_eq!(PathPacket::parse(&packet.encode()), Some(packet));
        }
        let mut other = PathPacket::Challenge([0; 8]).encode();
        other[1] = 1; // a transport DATA kind
        assert_eq!(PathPacket::parse(&other), None);
        assert_eq!(PathPacket::parse(&other[..9]), None);
        assert_eq!(PathPacket::parse(&[1, 4]), None);
    }
}
