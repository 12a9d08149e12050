//! One peer as the endpoint sees it: the session ids on both sides, the
//! sending and receiving halves, and what the peer needs next (a datagram,
//! a timer, or to be forgotten).

use std::collections::VecDeque;
use std::time::Instant;

use super::packet::{encode_ack, max_ack_ranges, Ack, DataHeader};
use super::recv::RecvState;
use super::send::SendState;
use super::Meter;
use super::{Config, PacketError};

/// Earlier sessions of a peer remembered so that a datagram of one, delayed
/// past the peer's restart, cannot reset the receive state back to it.
const RETIRED_SESSIONS: usize = 4;

pub(crate) struct Peer {
    /// Ours: every datagram to this peer carries it.
    pub session: u64,
    /// Theirs: the latest seen, and a few before it.
    remote: Option<u64>,
    retired: VecDeque<u64>,
    pub send: SendState,
    /// For the current remote session; made by its first DATA or SKIP.
    pub recv: Option<RecvState>,
    ack_pending: bool,
    last_activity: Instant,
    /// Where this peer sits in the endpoint's timer index.
    pub deadline: Option<Instant>,
    /// Whether this peer sits in the endpoint's transmit queue.
    pub queued: bool,
    /// The endpoint's count of bytes waiting in reassembly.
    meter: Meter,
}

enum Session {
    Current,
    Stale,
}

impl Peer {
    pub fn new(session: u64, now: Instant, config: &Config, meters: (&Meter, &Meter)) -> Peer {
        let (meter, queued) = meters;
        Peer {
            session,
            remote: None,
            retired: VecDeque::new(),
            send: SendState::new(config, queued),
            recv: None,
            ack_pending: false,
            last_activity: now,
            deadline: None,
            queued: false,
            meter: meter.clone(),
        }
    }

    /// Notes the session a datagram came from. A new one means the peer
    /// restarted or forgot us: what it received and acknowledged is gone.
    fn observe(&mut self, remote: u64) -> Session {
        match self.remote {
            Some(current) if current == remote => Session::Current,
            _ if self.retired.contains(&remote) => Session::Stale,
            None => {
                self.remote = Some(remote);
                Session::Current
            }
            Some(current) => {
                self.retired.push_back(current);
                if self.retired.len() > RETIRED_SESSIONS {
                    self.retired.pop_front();
                }
                self.remote = Some(remote);
                self.recv = None;
                self.ack_pending = false;
                self.send.on_peer_restart();
                Session::Current
            }
        }
    }

    pub fn touch(&mut self, now: Instant) {
        self.last_activity = self.last_activity.max(now);
    }

    pub fn on_data(&mut self, now: Instant, header: &DataHeader, payload: &[u8], config: &Config) {
        if let Session::Stale = self.observe(header.incarnation) {
            return;
        }
        self.touch(now);
        let recv = self
            .recv
            .get_or_insert_with(|| RecvState::new(header.base_seq, config, &self.meter));
        if recv.on_data(now, header, payload, config) {
            self.ack_pending = true;
        }
    }

    pub fn on_skip(&mut self, now: Instant, remote: u64, pn: u64, base_seq: u32, config: &Config) {
        if let Session::Stale = self.observe(remote) {
            return;
        }
        self.touch(now);
        self.recv
            .get_or_insert_with(|| RecvState::new(base_seq, config, &self.meter))
            .on_skip(pn, base_seq);
        self.ack_pending = true;
    }

    pub fn on_ack(
        &mut self,
        now: Instant,
        ack: &Ack<'_>,
        config: &Config,
    ) -> Result<(), PacketError> {
        // Acknowledges an earlier state of ours (we forgot this peer since):
        // its packet numbers mean nothing now.
        if ack.acked_incarnation != self.session {
            return Ok(());
        }
        self.send.check_ack(ack)?;
        if let Session::Stale = self.observe(ack.incarnation) {
            return Ok(());
        }
        self.touch(now);
        self.send.on_ack(now, ack, config);
        Ok(())
    }

    /// Acknowledgements first: they are small and the peer's progress waits
    /// on them.
    pub fn poll_transmit(&mut self, now: Instant, config: &Config) -> Option<Vec<u8>> {
        if self.ack_pending {
            self.ack_pending = false;
            if let (Some(remote), Some(recv)) = (self.remote, &self.recv) {
                let ranges = recv.ack_ranges();
                return Some(encode_ack(
                    self.session,
                    remote,
                    ranges,
                    max_ack_ranges(config.max_datagram),
                ));
            }
        }
        let bytes = self.send.poll_transmit(now, self.session, config)?;
        self.touch(now);
        Some(bytes)
    }

    pub fn wants_transmit(&self, config: &Config) -> bool {
        self.ack_pending || self.send.can_send(config)
    }

    pub fn on_timeout(&mut self, now: Instant, config: &Config) {
        self.send.on_timeout(now, config);
        if let Some(recv) = &mut self.recv {
            recv.expire(now, config);
        }
    }

    /// Nothing in flight, nothing to send, nothing being reassembled: only
    /// the idle timer keeps such a peer.
    fn is_idle(&self) -> bool {
        !self.ack_pending && self.send.is_idle() && self.recv.iter().all(RecvState::is_idle)
    }

    fn idle_deadline(&self, config: &Config) -> Option<Instant> {
        if !self.is_idle() {
            return None;
        }
        self.last_activity.checked_add(config.idle_timeout)
    }

    pub fn next_deadline(&self, config: &Config) -> Option<Instant> {
        [
            self.send.timer(config),
            self.recv.as_ref().and_then(|recv| recv.deadline(config)),
            self.idle_deadline(config),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    pub fn is_expired(&self, now: Instant, config: &Config) -> bool {
        self.idle_deadline(config).is_some_and(|at| at <= now)
    }
}
