//! The sending half of one peer: what it keeps while idle ([`Rest`]) and
//! the messages it has going while not ([`flight`]).
//!
//! Every transmission gets a new packet number, so an acknowledgement names
//! exactly one transmission and every RTT sample is unambiguous. A fragment
//! is done when any of its transmissions is acknowledged; a message is
//! Delivered when all of its fragments are.

mod flight;

use std::time::Instant;

use super::packet::Ack;
use super::rtt::RttEstimator;
use super::{Config, MessageId, Meter, PacketError};
use flight::Flight;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Delivered,
    Failed,
}

/// What an idle sending half keeps: where its numbering goes on, and what
/// it learnt of the path.
struct Rest {
    next_pn: u64,
    next_msg_seq: u32,
    rtt: RttEstimator,
    largest_acked: Option<u64>,
}

/// The sending half of one peer. An idle one (most of a server's
/// sessions, between keepalives) is a [`Rest`]: the queues and maps of
/// messages in flight are allocated when a message is queued and given
/// back once everything is finished and reported ([`SendState::spare`]).
pub(crate) struct SendState {
    rest: Rest,
    flight: Option<Box<Flight>>,
    meter: Meter,
}

impl SendState {
    pub fn new(config: &Config, meter: &Meter) -> SendState {
        SendState {
            rest: Rest {
                next_pn: 0,
                next_msg_seq: 0,
                rtt: RttEstimator::new(config.initial_rtt),
                largest_acked: None,
            },
            flight: None,
            meter: meter.clone(),
        }
    }

    fn flight(&mut self) -> &mut Flight {
        let (rest, meter) = (&self.rest, &self.meter);
        self.flight
            .get_or_insert_with(|| Box::new(Flight::resume(rest, meter)))
    }

    /// Gives back the memory of what emptied: a peer with nothing in
    /// flight keeps no buffers, and an idle one no flight at all.
    pub fn spare(&mut self) {
        let Some(flight) = &mut self.flight else {
            return;
        };
        if flight.can_rest() {
            self.rest = flight.rest();
            self.flight = None;
        } else {
            flight.spare();
        }
    }

    fn next_msg_seq(&self) -> u32 {
        self.flight
            .as_ref()
            .map_or(self.rest.next_msg_seq, |f| f.next_msg_seq)
    }

    /// The last msg_seq is never used (see the packet decoder), so a session
    /// is exhausted one short of the end.
    pub fn exhausted(&self) -> bool {
        self.next_msg_seq() == u32::MAX
    }

    pub fn push(&mut self, id: MessageId, data: Vec<u8>, config: &Config) {
        self.flight().push(id, data, config);
    }

    /// Bytes of the messages neither Delivered nor failed.
    pub fn queued_bytes(&self) -> usize {
        self.flight.as_ref().map_or(0, |f| f.queued_bytes)
    }

    /// Messages neither Delivered nor failed.
    pub fn outstanding(&self) -> usize {
        self.flight.as_ref().map_or(0, |f| f.outstanding())
    }

    pub fn is_idle(&self) -> bool {
        self.flight.as_ref().is_none_or(|f| f.is_idle())
    }

    pub fn can_send(&self, config: &Config) -> bool {
        self.flight.as_ref().is_some_and(|f| f.can_send(config))
    }

    /// The next DATA or SKIP datagram, if the window allows one.
    pub fn poll_transmit(
        &mut self,
        now: Instant,
        session: u64,
        config: &Config,
    ) -> Option<Vec<u8>> {
        self.flight.as_mut()?.poll_transmit(now, session, config)
    }

    /// Rejects an ACK that names packets this session never sent, before
    /// anything is changed by it.
    pub fn check_ack(&self, ack: &Ack<'_>) -> Result<(), PacketError> {
        match &self.flight {
            Some(flight) => flight.check_ack(ack),
            None if ack.largest() >= self.rest.next_pn => {
                Err(PacketError::Malformed("ack for a packet never sent"))
            }
            None => Ok(()),
        }
    }

    pub fn on_ack(&mut self, now: Instant, ack: &Ack<'_>, config: &Config) {
        match &mut self.flight {
            Some(flight) => flight.on_ack(now, ack, config),
            // Nothing in flight: a late or repeated acknowledgement.
            None => {
                let largest = ack.largest();
                let known = &mut self.rest.largest_acked;
                *known = Some(known.map_or(largest, |l| l.max(largest)));
            }
        }
    }

    /// A round trip measured by the handshake: see [`RttEstimator::seed`].
    pub fn seed_rtt(&mut self, measured: std::time::Duration) {
        match &mut self.flight {
            Some(flight) => flight.rtt.seed(measured),
            None => self.rest.rtt.seed(measured),
        }
    }

    /// Gives up on every outstanding message.
    pub fn fail_all(&mut self) {
        if let Some(flight) = &mut self.flight {
            flight.fail_all();
        }
    }

    /// The peer lost its receive state: see [`Flight::on_peer_restart`].
    pub fn on_peer_restart(&mut self) {
        self.flight().on_peer_restart();
    }

    /// The peer is reached on a new path now: see [`Flight::on_path_change`].
    pub fn on_path_change(&mut self, now: Instant, config: &Config) {
        if let Some(flight) = &mut self.flight {
            flight.on_path_change(now, config);
        }
    }

    /// When `on_timeout` next has something to do.
    pub fn timer(&self, config: &Config) -> Option<Instant> {
        self.flight.as_ref()?.timer(config)
    }

    pub fn on_timeout(&mut self, now: Instant, config: &Config) {
        if let Some(flight) = &mut self.flight {
            flight.on_timeout(now, config);
        }
    }

    /// The messages finished since the last call, and how.
    pub fn finished(&mut self) -> impl Iterator<Item = (MessageId, Outcome)> + '_ {
        self.flight
            .as_mut()
            .into_iter()
            .flat_map(|flight| flight.finished.drain(..))
    }

    #[cfg(test)]
    pub fn set_next_msg_seq(&mut self, seq: u32) {
        self.flight().next_msg_seq = seq;
    }

    #[cfg(test)]
    pub fn at_rest(&self) -> bool {
        self.flight.is_none()
    }
}
