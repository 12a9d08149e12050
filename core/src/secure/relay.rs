//! The server's relay, for two clients no check could connect (TURN's
//! role, RFC 8656, cut to what udpchat needs).
//!
//! The server opens a relay for a meeting ([`super::meeting`]) between the
//! sessions of two signed-in users. A RELAY packet of that meeting from
//! one end's session address goes to the other end's, byte for byte: the
//! server never opens what is inside (the two clients' own end-to-end
//! session). It is never sent anywhere but to the other end's validated
//! session address, so a spoofed source cannot aim it at a victim, and
//! what goes out is what came in: no amplification.
//!
//! Each relay has a byte budget ([`super::SecureConfig::relay_budget`]);
//! past it, its packets are dropped and counted. A relay nothing went
//! through for [`RELAY_IDLE`] closes, as does one whose end's session is
//! gone; one session is an end of at most [`MAX_PER_END`] relays (the least
//! lately used closes first).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::{PeerId, Rejected, SecureEndpoint};

/// A relay nothing went through for this long closes (live sessions send
/// keepalives far more often).
pub const RELAY_IDLE: Duration = Duration::from_secs(120);
/// Relays one session may be an end of.
pub const MAX_PER_END: usize = 32;

/// What one relay carried, and may still.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RelayUsage {
    pub bytes: u64,
    pub datagrams: u64,
    pub budget: u64,
}

struct Relay {
    ends: [PeerId; 2],
    usage: RelayUsage,
    last_used: Instant,
}

#[derive(Default)]
pub(super) struct Relays {
    by_id: HashMap<u64, Relay>,
}

impl Relays {
    /// Opens (or reopens) the relay for meeting `id` between `a` and `b`.
    pub(super) fn open(&mut self, now: Instant, id: u64, a: PeerId, b: PeerId, budget: u64) {
        for end in [a, b] {
            let mut of_end: Vec<(Instant, u64)> = self
                .by_id
                .iter()
                .filter(|(other, r)| **other != id && r.ends.contains(&end))
                .map(|(other, r)| (r.last_used, *other))
                .collect();
            if of_end.len() >= MAX_PER_END {
                of_end.sort();
                for (_, old) in &of_end[..=of_end.len() - MAX_PER_END] {
                    self.by_id.remove(old);
                }
            }
        }
        self.by_id.insert(
            id,
            Relay {
                ends: [a, b],
                usage: RelayUsage {
                    bytes: 0,
                    datagrams: 0,
                    budget,
                },
                last_used: now,
            },
        );
    }

    /// Where a RELAY packet of `len` bytes from `from` goes: the other
    /// end's address (`addr_of` gives a session's address now).
    pub(super) fn forward(
        &mut self,
        now: Instant,
        from: SocketAddr,
        id: u64,
        len: usize,
        addr_of: impl Fn(PeerId) -> Option<SocketAddr>,
    ) -> Result<SocketAddr, Rejected> {
        let relay = self.by_id.get_mut(&id).ok_or(Rejected::UnknownSession)?;
        let [a, b] = relay.ends;
        let (at_a, at_b) = (addr_of(a), addr_of(b));
        let to = if at_a == Some(from) {
            at_b
        } else if at_b == Some(from) {
            at_a
        } else {
            return Err(Rejected::Unexpected);
        };
        let to = to.ok_or(Rejected::UnknownSession)?;
        let usage = &mut relay.usage;
        if usage.bytes + len as u64 > usage.budget {
            return Err(Rejected::Shed);
        }
        usage.bytes += len as u64;
        usage.datagrams += 1;
        relay.last_used = now;
        Ok(to)
    }

    /// Closes relays idle too long or with an end gone.
    pub(super) fn sweep(&mut self, now: Instant, alive: impl Fn(PeerId) -> bool) {
        self.by_id.retain(|_, r| {
            now.saturating_duration_since(r.last_used) < RELAY_IDLE
                && r.ends.iter().all(|e| alive(*e))
        });
    }

    /// Closes every relay `end` is an end of (its user signed out, or its
    /// session closed): a relay serves only signed-in users.
    pub(super) fn close_of(&mut self, end: PeerId) {
        self.by_id.retain(|_, r| !r.ends.contains(&end));
    }

    pub(super) fn close(&mut self, id: u64) {
        self.by_id.remove(&id);
    }

    pub(super) fn usage(&self, id: u64) -> Option<RelayUsage> {
        self.by_id.get(&id).map(|r| r.usage)
    }

    pub(super) fn len(&self) -> usize {
        self.by_id.len()
    }
}

impl SecureEndpoint {
    /// A server: relays meeting `meeting`'s packets between the sessions
    /// `a` and `b`.
    pub fn open_relay(&mut self, now: Instant, meeting: u64, a: PeerId, b: PeerId) {
        self.relays
            .open(now, meeting, a, b, self.config.relay_budget);
    }

    pub fn close_relay(&mut self, meeting: u64) {
        self.relays.close(meeting);
    }

    /// Relays open now.
    pub fn relays(&self) -> usize {
        self.relays.len()
    }

    /// What a relay carried so far, while it is open.
    pub fn relay_usage(&self, meeting: u64) -> Option<RelayUsage> {
        self.relays.usage(meeting)
    }

    /// A server passes a RELAY packet on to the relay's other end.
    pub(super) fn relay(
        &mut self,
        now: Instant,
        from: SocketAddr,
        meeting: u64,
        datagram: &[u8],
    ) -> Result<(), Rejected> {
        let conns = &self.conns;
        let to = self
            .relays
            .forward(now, from, meeting, datagram.len(), |peer| {
                conns.get(&peer.0).map(|c| c.addr)
            })
            .inspect_err(|_| self.stats.relay_refused += 1)?;
        self.stats.relayed_datagrams += 1;
        self.stats.relayed_bytes += datagram.len() as u64;
        self.outbox.push_back((to, datagram.to_vec()));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_relay_passes_between_its_two_ends_only_within_its_budget() {
        let t0 = Instant::now();
        let (a, b, c) = (PeerId(1), PeerId(2), PeerId(3));
        let addr = |p: PeerId| -> Option<SocketAddr> {
            Some(format!("198.51.100.{}:4000", p.0).parse().unwrap())
        };
        let mut relays = Relays::default();
        relays.open(t0, 77, a, b, 1_000);
        assert_eq!(
            relays.forward(t0, addr(a).unwrap(), 77, 600, addr),
            Ok(addr(b).unwrap())
        );
        assert_eq!(
            relays.forward(t0, addr(b).unwrap(), 77, 300, addr),
            Ok(addr(a).unwrap())
        );
        // Not an end, not this meeting, past the budget.
        assert_eq!(
            relays.forward(t0, addr(c).unwrap(), 77, 10, addr),
            Err(Rejected::Unexpected)
        );
        assert_eq!(
            relays.forward(t0, addr(a).unwrap(), 78, 10, addr),
            Err(Rejected::UnknownSession)
        );
        assert_eq!(
            relays.forward(t0, addr(a).unwrap(), 77, 101, addr),
            Err(Rejected::Shed)
        );
        assert_eq!(
            relays.usage(77),
            Some(RelayUsage {
                bytes: 900,
                datagrams: 2,
                budget: 1_000
            })
        );
        // An end gone, or idle too long: closed.
        relays.sweep(t0, |p| p != b);
        assert_eq!(relays.usage(77), None);
        relays.open(t0, 79, a, b, 1_000);
        relays.open(t0, 80, b, c, 1_000);
        relays.close_of(a);
        assert_eq!((relays.usage(79), relays.usage(80).is_some()), (None, true));
        relays.close_of(c);
        relays.open(t0, 78, a, b, 1_000);
        relays.sweep(t0 + RELAY_IDLE, |_| true);
        assert_eq!(relays.len(), 0);
    }

    #[test]
    fn one_session_is_an_end_of_a_bounded_number_of_relays() {
        let t0 = Instant::now();
        let mut relays = Relays::default();
        for i in 0..MAX_PER_END as u64 + 5 {
            relays.open(
                t0 + Duration::from_millis(i),
                i,
                PeerId(1),
                PeerId(100 + i as u32),
                1,
            );
        }
        assert_eq!(relays.len(), MAX_PER_END);
        assert_eq!(relays.usage(0), None, "the oldest went first");
        assert!(relays.usage(MAX_PER_END as u64 + 4).is_some());
    }
}
