//! Screening HELLOs before their P-384 work, so a flood of them can
//! neither take the responder's CPU nor delay its sessions' traffic.
//!
//! 1. mac1 must be right ([`cookie`]), or the HELLO is garbage: dropped
//!    unanswered.
//! 2. Under load (more than [`SecureConfig::calm_handshakes_per_sec`](super::SecureConfig::calm_handshakes_per_sec)
//!    HELLOs lately, or [`SecureConfig::busy_queue`](super::SecureConfig::busy_queue) waiting, and for
//!    [`BUSY_HOLD`] after), mac2 must be
//!    right too; otherwise a COOKIE REPLY goes back and nothing else
//!    happens. Then each source may have a few handshakes answered per
//!    second.
//! 3. What passes waits in a bounded queue; the driver takes one out with
//!    [`SecureEndpoint::take_handshake`] (to work out on another thread,
//!    and hand back with [`SecureEndpoint::finish_handshake`]) or does it
//!    at once with [`SecureEndpoint::handle_handshake`] when its sessions'
//!    datagrams have been seen to, so existing sessions go first.
//!
//! On the initiator's side, a COOKIE REPLY that echoes its HELLO's mac1 is
//! kept for that responder's address and the HELLO goes again at once,
//! with mac2.

use std::net::SocketAddr;
use std::time::Instant;

use std::time::Duration;

use super::{
    cookie, HandshakeDone, HandshakeWork, QueuedHello, Rejected, SecureEndpoint, State,
    HELLO_STALE, MAX_COOKIES,
};

/// Once under load, the responder stays so this long after the last HELLO
/// over its calm rate.
pub const BUSY_HOLD: Duration = Duration::from_secs(10);
use crate::crypto::keys::PUBLIC_KEY_LEN;
use crate::limits::Source;
use crate::wire::{Packet, MAC_LEN};

impl SecureEndpoint {
    /// Takes a HELLO datagram through the gate; queues it if it passes.
    pub(super) fn screen_hello(
        &mut self,
        now: Instant,
        from: SocketAddr,
        sender_index: u32,
        datagram: &[u8],
    ) -> Result<(), Rejected> {
        let key = self.mac1_key.as_ref().ok_or(Rejected::Unexpected)?;
        if !cookie::mac1_ok(datagram, key.as_ref()) {
            return Err(Rejected::Unauthentic);
        }
        // Under load stays on for a while after the last sign of it, so a
        // steady flood gets the calm allowance once, not every second.
        if self.hello_rate.take(&(), now).is_err() || self.hellos.len() >= self.config.busy_queue {
            self.busy_until = Some(now + BUSY_HOLD);
        }
        if self.busy_until.is_some_and(|until| now < until) {
            if !self.gate.mac2_ok(datagram, from) {
                let cookie = self.gate.cookie(from);
                let reply = Packet::CookieReply {
                    receiver_index: sender_index,
                    mac1: cookie::mac1_of(datagram),
                    cookie: &cookie,
                };
                self.outbox.push_back((from, reply.encode()));
                self.stats.cookies_sent += 1;
                return Ok(());
            }
            // The cookie proved the source receives at its address: now
            // its share can be counted.
            if self.handshake_sources.take(&Source::of(from), now).is_err() {
                self.stats.handshakes_shed += 1;
                return Err(Rejected::Shed);
            }
        }
        if self.hellos.len() >= self.config.handshake_queue {
            self.stats.handshakes_shed += 1;
            return Err(Rejected::Shed);
        }
        self.hellos.push_back(QueuedHello {
            from,
            datagram: datagram.to_vec(),
            at: now,
        });
        Ok(())
    }

    /// Whether HELLOs wait for their P-384 work
    /// ([`SecureEndpoint::take_handshake`]).
    pub fn has_handshakes(&self) -> bool {
        !self.hellos.is_empty()
    }

    /// HELLOs waiting for their P-384 work.
    pub fn handshakes_waiting(&self) -> usize {
        self.hellos.len()
    }

    /// The P-384 work of the oldest waiting HELLO, to run on any thread
    /// and hand back with [`SecureEndpoint::finish_handshake`] (those
    /// waiting too long are dropped: their senders have retried). None
    /// when none waits.
    pub fn take_handshake(&mut self, now: Instant, now_ms: u64) -> Option<HandshakeWork> {
        while let Some(queued) = self.hellos.pop_front() {
            if now.saturating_duration_since(queued.at) > HELLO_STALE {
                self.stats.handshakes_shed += 1;
                continue;
            }
            let Ok(Packet::Hello {
                pattern,
                sender_index,
                message,
                ..
            }) = Packet::parse(&queued.datagram)
            else {
                continue;
            };
            let Some(work) = self.hello_work(now_ms, queued.from, pattern, sender_index, message)
            else {
                continue;
            };
            // The same message 1 again while it is worked out (a replay,
            // or the network's duplicate) would race the first to the
            // replay guard: the first to arrive is the one answered.
            if !self.hellos_in_work.insert(work.hello.ephemeral.clone()) {
                self.stats.rejected += 1;
                continue;
            }
            self.stats.handshakes_answered += 1;
            return Some(work);
        }
        None
    }

    /// Takes a HELLO's worked-out answer back: if the replay guard has not
    /// seen it, the session opens (or a re-keyed one moves to its new
    /// keys) and the WELCOME goes out.
    pub fn finish_handshake(&mut self, now: Instant, now_ms: u64, done: HandshakeDone) {
        self.hellos_in_work.remove(&done.hello.ephemeral);
        if self.admit_hello(now, now_ms, done).is_err() {
            self.stats.rejected += 1;
        }
        self.drain_transport_events();
    }

    /// Does the P-384 work of the oldest waiting HELLO here and now (see
    /// [`SecureEndpoint::take_handshake`]). Returns false when none was
    /// waiting.
    pub fn handle_handshake(&mut self, now: Instant, now_ms: u64) -> bool {
        let Some(work) = self.take_handshake(now, now_ms) else {
            return false;
        };
        let done = work.run(&mut self.rng);
        self.finish_handshake(now, now_ms, done);
        true
    }

    /// A responder under load asked for a cookie: keep it and say HELLO
    /// again with it.
    pub(super) fn read_cookie(
        &mut self,
        now: Instant,
        now_ms: u64,
        from: SocketAddr,
        receiver_index: u32,
        mac1: &[u8],
        cookie: &[u8],
    ) -> Result<(), Rejected> {
        let conn = self
            .conns
            .get(&receiver_index)
            .ok_or(Rejected::UnknownSession)?;
        let pending = match &conn.state {
            State::Handshaking { pending, .. } => pending,
            State::Established {
                rekey: Some(pending),
                ..
            } => pending,
            State::Established { rekey: None, .. } => return Err(Rejected::Unexpected),
        };
        // Only the responder that saw our HELLO knows its mac1.
        if conn.addr != from || pending.mac1.as_slice() != mac1 {
            return Err(Rejected::Unauthentic);
        }
        let mut kept = [0u8; MAC_LEN];
        kept.copy_from_slice(cookie);
        if self.cookies.len() >= MAX_COOKIES {
            self.cookies.clear();
        }
        self.cookies.insert(from, (kept, now));
        self.retry_hello(now, now_ms, receiver_index);
        Ok(())
    }

    /// A fresh cookie for the responder at `addr`, if one was given.
    pub(super) fn cookie_for(&self, addr: SocketAddr, now: Instant) -> Option<cookie::Cookie> {
        self.cookies
            .get(&addr)
            .filter(|(_, at)| now.saturating_duration_since(*at) < cookie::COOKIE_LIFETIME)
            .map(|(c, _)| *c)
    }
}

/// What tells one message 1 from another while it is worked out: its
/// ephemeral key (or all of it, if shorter: it is refused anyway).
pub(super) fn work_key(message: &[u8]) -> Vec<u8> {
    message[..message.len().min(PUBLIC_KEY_LEN)].to_vec()
}
