//! Sessions the application vouches for: a session this side answered
//! stays only while the application confirms it (its user signed in); one
//! never confirmed, or released, closes after
//! [`super::SecureConfig::unconfirmed_timeout`], and their number is bounded
//! ([`super::SecureConfig::max_unconfirmed`], the oldest going first).

use std::time::Instant;

use super::{Conn, PeerId, SecureEndpoint};

impl Conn {
    /// A session this side answered that the application vouches for: it
    /// confirmed it, or sessions need no confirming here.
    pub(super) fn is_confirmed(&self) -> bool {
        self.source.is_some() && self.unconfirmed_since.is_none()
    }
}

impl SecureEndpoint {
    /// The application vouches for a session (its user signed in): it
    /// stays until idle, however long.
    pub fn confirm(&mut self, peer: PeerId) {
        if let Some(conn) = self.conns.get_mut(&peer.0) {
            if conn.unconfirmed_since.take().is_some() {
                self.unconfirmed_count -= 1;
            }
        }
    }

    /// The application no longer vouches for a session (its user signed
    /// out): it closes after [`super::SecureConfig::unconfirmed_timeout`], once
    /// its messages are delivered, unless confirmed again; its relays
    /// close now.
    pub fn release(&mut self, now: Instant, peer: PeerId) {
        self.relays.close_of(peer);
        if self.config.unconfirmed_timeout.is_none() {
            return;
        }
        if let Some(conn) = self.conns.get_mut(&peer.0) {
            if conn.source.is_some() && conn.unconfirmed_since.is_none() {
                conn.unconfirmed_since = Some(now);
                self.unconfirmed.push_back((now, peer.0));
                self.unconfirmed_count += 1;
            }
        }
    }

    /// Sessions waiting for confirmation now.
    pub fn unconfirmed(&self) -> usize {
        self.unconfirmed_count
    }

    /// Closes sessions unconfirmed for too long (those with messages still
    /// on their way wait for the next sweep).
    pub(super) fn expire_unconfirmed(&mut self, now: Instant) {
        let Some(timeout) = self.config.unconfirmed_timeout else {
            return;
        };
        let mut busy = Vec::new();
        while let Some(&(at, index)) = self.unconfirmed.front() {
            if now.saturating_duration_since(at) < timeout {
                break;
            }
            self.unconfirmed.pop_front();
            let current = self
                .conns
                .get(&index)
                .is_some_and(|c| c.unconfirmed_since == Some(at));
            if !current {
                continue;
            }
            if self.transport.in_flight(PeerId(index)) > 0 {
                busy.push((at, index));
            } else {
                self.forget(PeerId(index));
            }
        }
        for entry in busy.into_iter().rev() {
            self.unconfirmed.push_front(entry);
        }
    }

    /// Makes room for one more unconfirmed session: the oldest goes.
    pub(super) fn evict_unconfirmed(&mut self) {
        while self.unconfirmed_count >= self.config.max_unconfirmed {
            let Some((at, index)) = self.unconfirmed.pop_front() else {
                return;
            };
            if self
                .conns
                .get(&index)
                .is_some_and(|c| c.unconfirmed_since == Some(at))
            {
                self.forget(PeerId(index));
            }
        }
    }
}
