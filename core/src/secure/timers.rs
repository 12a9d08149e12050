//! What comes due as time passes: handshake retries, meetings, keepalives,
//! the sweep of idle and unconfirmed sessions, and the transport's own
//! timers.

use std::time::Instant;

use super::{PeerId, SecureEndpoint, State};

impl SecureEndpoint {
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
            .chain(self.meetings.poll_timeout())
            .chain(self.keepalive_due())
            .chain(Some(self.next_sweep))
            .chain(self.busy.poll_timeout())
            .min()
    }

    pub fn handle_timeout(&mut self, now: Instant, now_ms: u64) {
        self.transport.handle_timeout(now);
        self.gate.rotate(&mut self.rng, now);
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
        self.meetings
            .on_timeout(now, &mut self.rng, &mut self.outbox);
        self.send_keepalives(now);
        self.busy.on_timeout(now, &mut self.conns);
        if now >= self.next_sweep {
            self.next_sweep = now + self.config.sweep_every();
            let conns = &self.conns;
            self.relays.sweep(now, |peer| conns.contains_key(&peer.0));
            self.expire_probes(now);
            self.expire_unconfirmed(now);
            let (idle, silence) = (self.config.session_idle, self.config.confirmed_silence);
            let stale: Vec<u32> = self
                .conns
                .iter()
                .filter(|(i, c)| {
                    let quiet = now.saturating_duration_since(c.last_heard);
                    (quiet > idle && self.transport.in_flight(PeerId(**i)) == 0)
                        || silence.is_some_and(|silence| quiet > silence && c.is_confirmed())
                })
                .map(|(i, _)| *i)
                .collect();
            for index in stale {
                self.forget(PeerId(index));
            }
        }
        self.drain_transport_events();
    }
}
