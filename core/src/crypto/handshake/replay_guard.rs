//! [`ReplayGuard`]: the responder's memory of recently accepted message 1s,
//! so a recorded message 1 cannot open a second session.
//!
//! A message 1 is accepted only when its timestamp is within
//! [`FRESHNESS_MS`] of the responder's clock, and only once: the guard keeps
//! a 128-bit digest of each accepted ephemeral key until the message would
//! be stale anyway (timestamp + [`FRESHNESS_MS`]). Memory is bounded by
//! `capacity` entries ([`REPLAY_GUARD_CAPACITY`] by default, a few MiB);
//! when a flood of fresh handshakes fills it, the entry closest to expiry is
//! forgotten first. That only re-opens a replay of a message that is almost
//! stale, which gains an attacker no more than sending a new message 1 does
//! (in NK anyone may start a handshake; a replay cannot finish one without
//! the ephemeral secret).

use std::collections::{BTreeMap, BTreeSet};

use sha2::{Digest, Sha256};

/// How far (ms, either way) a message 1 timestamp may be from the
/// responder's clock.
pub const FRESHNESS_MS: u64 = 120_000;
/// Default number of remembered message 1s.
pub const REPLAY_GUARD_CAPACITY: usize = 100_000;

type Digest128 = [u8; 16];

/// Recently accepted message 1 ephemeral keys, expiring by time.
#[derive(Debug, Clone)]
pub struct ReplayGuard {
    expiry_of: BTreeMap<Digest128, u64>,
    by_expiry: BTreeSet<(u64, Digest128)>,
    capacity: usize,
}

impl Default for ReplayGuard {
    fn default() -> Self {
        ReplayGuard::new()
    }
}

impl ReplayGuard {
    pub fn new() -> ReplayGuard {
        ReplayGuard::with_capacity(REPLAY_GUARD_CAPACITY)
    }

    /// A guard remembering at most `capacity` (at least 1) message 1s.
    pub fn with_capacity(capacity: usize) -> ReplayGuard {
        ReplayGuard {
            expiry_of: BTreeMap::new(),
            by_expiry: BTreeSet::new(),
            capacity: capacity.max(1),
        }
    }

    /// Whether a message 1 sent at `timestamp_ms` may be accepted at `now_ms`.
    pub fn is_fresh(timestamp_ms: u64, now_ms: u64) -> bool {
        timestamp_ms.abs_diff(now_ms) <= FRESHNESS_MS
    }

    /// True, and remembered, if a message 1 with this ephemeral key and
    /// timestamp is fresh and has not been accepted before; false otherwise.
    /// Call it only once the message has authenticated.
    pub fn check_and_remember(&mut self, ephemeral: &[u8], timestamp_ms: u64, now_ms: u64) -> bool {
        if !ReplayGuard::is_fresh(timestamp_ms, now_ms) {
            return false;
        }
        self.forget_expired(now_ms);
        let digest = digest(ephemeral);
        if self.expiry_of.contains_key(&digest) {
            return false;
        }
        while self.expiry_of.len() >= self.capacity {
            let Some((_, soonest)) = self.by_expiry.pop_first() else {
                break;
            };
            self.expiry_of.remove(&soonest);
        }
        let expiry = timestamp_ms.saturating_add(FRESHNESS_MS);
        self.expiry_of.insert(digest, expiry);
        self.by_expiry.insert((expiry, digest));
        true
    }

    /// How many message 1s are remembered.
    pub fn len(&self) -> usize {
        self.expiry_of.len()
    }

    pub fn is_empty(&self) -> bool {
        self.expiry_of.is_empty()
    }

    fn forget_expired(&mut self, now_ms: u64) {
        while let Some(&(expiry, digest)) = self.by_expiry.first() {
            if expiry >= now_ms {
                break;
            }
            self.by_expiry.pop_first();
            self.expiry_of.remove(&digest);
        }
    }
}

fn digest(ephemeral: &[u8]) -> Digest128 {
    let mut out = [0u8; 16];
    out.copy_from_slice(&Sha256::digest(ephemeral)[..16]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_700_000_000_000;

    #[test]
    fn accepts_once_then_refuses_the_same_ephemeral() {
        let mut guard = ReplayGuard::new();
        assert!(guard.check_and_remember(b"e1", NOW, NOW));
        assert!(!guard.check_and_remember(b"e1", NOW, NOW + 1));
        assert!(guard.check_and_remember(b"e2", NOW, NOW + 1));
        assert_eq!(guard.len(), 2);
    }

    #[test]
    fn refuses_timestamps_outside_the_window_either_way() {
        let mut guard = ReplayGuard::new();
        assert!(!guard.check_and_remember(b"old", NOW - FRESHNESS_MS - 1, NOW));
        assert!(!guard.check_and_remember(b"future", NOW + FRESHNESS_MS + 1, NOW));
        assert!(guard.check_and_remember(b"edge", NOW - FRESHNESS_MS, NOW));
        assert_eq!(guard.len(), 1);
    }

    #[test]
    fn forgets_entries_once_they_would_be_stale_anyway() {
        let mut guard = ReplayGuard::new();
        assert!(guard.check_and_remember(b"e1", NOW, NOW));
        let later = NOW + FRESHNESS_MS + 1;
        assert!(guard.check_and_remember(b"e2", later, later));
        assert_eq!(guard.len(), 1);
        // The forgotten one is refused all the same, as stale.
        assert!(!guard.check_and_remember(b"e1", NOW, later));
    }

    #[test]
    fn memory_stays_bounded_under_a_flood() {
        let mut guard = ReplayGuard::with_capacity(100);
        for i in 0u32..1000 {
            assert!(guard.check_and_remember(&i.to_be_bytes(), NOW + u64::from(i), NOW));
        }
        assert_eq!(guard.len(), 100);
        // The most recent ones are still remembered.
        assert!(!guard.check_and_remember(&999u32.to_be_bytes(), NOW + 999, NOW));
    }
}
