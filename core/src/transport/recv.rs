//! The receiving half of one peer, for the peer's current session: the
//! packet numbers to acknowledge, reassembly of fragments, delivery in
//! msg_seq order exactly once, and the memory bound on what waits.
//!
//! Every peer's waiting bytes also count against one [`Meter`] for the
//! whole endpoint, bounded by `max_reassembly_total`: many sessions each
//! holding partial messages cannot add up past it. Past it, new fragments
//! (of any peer, the next expected message included) are refused, not
//! acknowledged, until the reassembly timeout frees room; their senders
//! retry.
//!
//! A message waits here while it is incomplete, or complete but behind an
//! earlier one. Waiting costs its payload plus a fixed overhead per fragment,
//! and the total for messages other than the next expected one stays within
//! `max_reassembly_bytes`. The next expected message is exempt: it is the one
//! that frees the rest, so refusing it could only deadlock the buffer. Memory
//! is thus bounded by `max_reassembly_bytes + max_message` plus overhead.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Instant;

use super::packet::{max_ack_ranges, DataHeader};
use super::ranges::RangeSet;
use super::spare::Spare;
use super::{Config, Meter};

/// What a buffered fragment costs beyond its payload, so that a flood of
/// empty fragments is bounded too.
const FRAGMENT_OVERHEAD: usize = 64;
/// Expired messages remembered as refused; past this only a forged flood
/// could get, and forgetting the newest is then harmless.
const MAX_REFUSED: usize = 1024;

enum Slot {
    Assembling(Partial),
    Complete(Vec<u8>),
}

struct Partial {
    frag_count: u16,
    frags: BTreeMap<u16, Vec<u8>>,
    bytes: usize,
    last_arrival: Instant,
}

struct Waiting {
    slot: Slot,
    charge: usize,
}

/// Whether a DATA packet is acknowledged, and how soon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Acknowledge {
    /// Refused (no room, or its message was given up): the sender tries
    /// again later.
    No,
    /// Taken: the acknowledgement may wait for a packet to ride on.
    Held,
    /// A repeat of what was taken: the sender's acknowledgement was lost
    /// or late, so this one goes at once.
    Now,
}

pub(crate) struct RecvState {
    received: RangeSet,
    next_expected: u32,
    /// Messages waiting (in fragments, or behind an earlier one) and those
    /// given up: boxed, and kept only while there are any. Most messages
    /// come whole and in order, and are delivered at once.
    held: Option<Box<Held>>,
}

struct Held {
    waiting: BTreeMap<u32, Waiting>,
    /// Incomplete messages by the arrival of their latest fragment.
    expiry: BTreeSet<(Instant, u32)>,
    /// Messages dropped by the reassembly timeout. Their fragments are no
    /// longer acknowledged: an acknowledgement would let the sender report
    /// Delivered for a message that was thrown away here. The sender fails
    /// them instead and its base_seq moves past them.
    refused: BTreeSet<u32>,
    waiting_bytes: usize,
    /// The endpoint's count of bytes waiting, all peers together.
    meter: Meter,
}

impl Drop for Held {
    fn drop(&mut self) {
        self.meter.sub(self.waiting_bytes);
    }
}

impl RecvState {
    /// Gives back the memory of what emptied: see [`SendState::spare`].
    ///
    /// [`SendState::spare`]: super::send::SendState::spare
    pub fn spare(&mut self) {
        if let Some(held) = &mut self.held {
            if held.waiting.is_empty() && held.refused.is_empty() {
                self.held = None;
            } else {
                held.waiting.spare();
                held.expiry.spare();
                held.refused.spare();
            }
        }
    }

    pub fn new(next_expected: u32, config: &Config) -> RecvState {
        RecvState {
            received: RangeSet::new(max_ack_ranges(config.max_datagram)),
            next_expected,
            held: None,
        }
    }

    /// Takes one DATA packet; says whether and how soon it is to be
    /// acknowledged. Whole messages it completes, in order, go to
    /// `delivered`; `meter` counts what waits (see [`Held`]).
    pub fn on_data(
        &mut self,
        now: Instant,
        (header, payload): (&DataHeader, &[u8]),
        config: &Config,
        meter: &Meter,
        delivered: &mut VecDeque<Vec<u8>>,
    ) -> Acknowledge {
        self.skip_to(header.base_seq, delivered);
        let mut answer = self.accept(now, header, payload, config, meter, delivered);
        if answer != Acknowledge::No {
            self.received.insert(header.pn);
        }
        // An empty message is a keepalive: its sender waits on the ACK to
        // know this side is there, and nothing rides back on a reply.
        if answer == Acknowledge::Held && header.frag_count == 1 && payload.is_empty() {
            answer = Acknowledge::Now;
        }
        self.deliver_ready(delivered);
        answer
    }

    /// Takes a SKIP; it is always acknowledged.
    pub fn on_skip(&mut self, pn: u64, base_seq: u32, delivered: &mut VecDeque<Vec<u8>>) {
        self.skip_to(base_seq, delivered);
        self.received.insert(pn);
        self.deliver_ready(delivered);
    }

    fn accept(
        &mut self,
        now: Instant,
        header: &DataHeader,
        payload: &[u8],
        config: &Config,
        meter: &Meter,
        delivered: &mut VecDeque<Vec<u8>>,
    ) -> Acknowledge {
        let seq = header.msg_seq;
        if seq < self.next_expected {
            // Delivered or skipped already; the acknowledgement may have
            // been lost, so acknowledge again.
            return Acknowledge::Now;
        }
        let held = self.held.as_deref();
        if held.is_some_and(|h| h.refused.contains(&seq)) {
            return Acknowledge::No;
        }
        let assembling = held.is_some_and(|h| h.waiting.contains_key(&seq));
        if !assembling && header.frag_count == 1 && seq == self.next_expected {
            // The common case: a whole message in order, straight through.
            delivered.push_back(payload.to_vec());
            self.next_expected += 1;
            return Acknowledge::Held;
        }
        let next_expected = self.next_expected;
        self.held
            .get_or_insert_with(|| Box::new(Held::new(meter)))
            .accept(now, header, payload, config, next_expected)
    }

    /// The sender finished everything below `base_seq`: what is complete
    /// there is delivered in order, the rest will never come.
    fn skip_to(&mut self, base_seq: u32, delivered: &mut VecDeque<Vec<u8>>) {
        if base_seq <= self.next_expected {
            return;
        }
        if let Some(held) = &mut self.held {
            held.skip_to(base_seq, delivered);
        }
        self.next_expected = base_seq;
    }

    fn deliver_ready(&mut self, delivered: &mut VecDeque<Vec<u8>>) {
        if let Some(held) = &mut self.held {
            held.deliver_ready(&mut self.next_expected, delivered);
        }
    }

    /// Drops incomplete messages whose latest fragment is older than the
    /// reassembly timeout.
    pub fn expire(&mut self, now: Instant, config: &Config) {
        if let Some(held) = &mut self.held {
            held.expire(now, config);
        }
    }

    pub fn deadline(&self, config: &Config) -> Option<Instant> {
        self.held
            .as_ref()?
            .expiry
            .first()
            .and_then(|&(at, _)| at.checked_add(config.reassembly_timeout))
    }

    pub fn is_idle(&self) -> bool {
        self.held.as_ref().is_none_or(|h| h.waiting.is_empty())
    }

    pub fn ack_ranges(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.received.iter_desc()
    }

    #[cfg(test)]
    pub fn at_rest(&self) -> bool {
        self.held.is_none()
    }

    /// Bytes charged for what waits here.
    #[cfg(test)]
    pub fn waiting_bytes(&self) -> usize {
        self.held.as_ref().map_or(0, |h| h.waiting_bytes)
    }
}

impl Held {
    fn new(meter: &Meter) -> Held {
        Held {
            waiting: BTreeMap::new(),
            expiry: BTreeSet::new(),
            refused: BTreeSet::new(),
            waiting_bytes: 0,
            meter: meter.clone(),
        }
    }

    /// A fragment, or a whole message out of order (see
    /// [`RecvState::accept`]).
    fn accept(
        &mut self,
        now: Instant,
        header: &DataHeader,
        payload: &[u8],
        config: &Config,
        next_expected: u32,
    ) -> Acknowledge {
        let meter = &self.meter;
        let seq = header.msg_seq;
        let cost = payload.len() + FRAGMENT_OVERHEAD;
        let head_charge = self.waiting.get(&next_expected).map_or(0, |w| w.charge);
        let fits = (seq == next_expected
            || self.waiting_bytes - head_charge + cost <= config.max_reassembly_bytes)
            && meter.bytes() + cost <= config.max_reassembly_total;
        match self.waiting.get_mut(&seq) {
            Some(waiting) => {
                let Slot::Assembling(partial) = &mut waiting.slot else {
                    return Acknowledge::Now;
                };
                if partial.frag_count != header.frag_count {
                    return Acknowledge::No;
                }
                if partial.frags.contains_key(&header.frag_index) {
                    return Acknowledge::Now;
                }
                if !fits || partial.bytes + payload.len() > config.max_message {
                    return Acknowledge::No;
                }
                partial.frags.insert(header.frag_index, payload.to_vec());
                partial.bytes += payload.len();
                waiting.charge += cost;
                self.waiting_bytes += cost;
                meter.add(cost);
                self.expiry.remove(&(partial.last_arrival, seq));
                partial.last_arrival = now;
                if partial.frags.len() < usize::from(partial.frag_count) {
                    self.expiry.insert((now, seq));
                    return Acknowledge::Held;
                }
                let mut message = Vec::with_capacity(partial.bytes);
                for frag in partial.frags.values() {
                    message.extend_from_slice(frag);
                }
                waiting.slot = Slot::Complete(message);
                Acknowledge::Held
            }
            None if !fits => Acknowledge::No,
            None => {
                let slot = if header.frag_count == 1 {
                    Slot::Complete(payload.to_vec())
                } else {
                    self.expiry.insert((now, seq));
                    let frags = BTreeMap::from([(header.frag_index, payload.to_vec())]);
                    Slot::Assembling(Partial {
                        frag_count: header.frag_count,
                        frags,
                        bytes: payload.len(),
                        last_arrival: now,
                    })
                };
                self.waiting.insert(seq, Waiting { slot, charge: cost });
                self.waiting_bytes += cost;
                meter.add(cost);
                Acknowledge::Held
            }
        }
    }

    fn skip_to(&mut self, base_seq: u32, delivered: &mut VecDeque<Vec<u8>>) {
        while let Some(entry) = self.waiting.first_entry() {
            if *entry.key() >= base_seq {
                break;
            }
            let (seq, waiting) = entry.remove_entry();
            self.waiting_bytes -= waiting.charge;
            self.meter.sub(waiting.charge);
            match waiting.slot {
                Slot::Complete(message) => delivered.push_back(message),
                Slot::Assembling(partial) => {
                    self.expiry.remove(&(partial.last_arrival, seq));
                }
            }
        }
        self.refused = self.refused.split_off(&base_seq);
    }

    fn deliver_ready(&mut self, next_expected: &mut u32, delivered: &mut VecDeque<Vec<u8>>) {
        while let Some(entry) = self.waiting.first_entry() {
            if *entry.key() != *next_expected || !matches!(entry.get().slot, Slot::Complete(_)) {
                break;
            }
            let waiting = entry.remove();
            self.waiting_bytes -= waiting.charge;
            self.meter.sub(waiting.charge);
            if let Slot::Complete(message) = waiting.slot {
                delivered.push_back(message);
            }
            *next_expected += 1;
        }
    }

    fn expire(&mut self, now: Instant, config: &Config) {
        while let Some(&(at, seq)) = self.expiry.first() {
            let due = at
                .checked_add(config.reassembly_timeout)
                .is_some_and(|deadline| deadline <= now);
            if !due {
                break;
            }
            self.expiry.pop_first();
            if let Some(waiting) = self.waiting.remove(&seq) {
                self.waiting_bytes -= waiting.charge;
                self.meter.sub(waiting.charge);
            }
            self.refused.insert(seq);
            if self.refused.len() > MAX_REFUSED {
                self.refused.pop_last();
            }
        }
    }
}
