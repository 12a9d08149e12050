//! A sending half's messages while any are queued, in flight, owed to
//! the peer (a SKIP) or not yet reported: the message queue, fragments in
//! flight, acknowledgement processing, RTT samples, loss detection and the
//! probe timeout (RFC 9002 section 6), retries and failure.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use super::super::packet::{encode_skip, Ack, DataHeader};
use super::super::rtt::{RttEstimator, GRANULARITY};
use super::super::spare::Spare;
use super::super::{Config, MessageId, Meter, PacketError};
use super::{Outcome, Rest};

/// RFC 9002 kPacketThreshold.
const PACKET_THRESHOLD: u64 = 3;
/// Packets retransmitted when the probe timer fires (RFC 9002 sends up to
/// two probes).
const PROBES: usize = 2;

struct OutMessage {
    id: MessageId,
    /// Held whole until every fragment is acknowledged: one allocation per
    /// message instead of one per fragment.
    data: Vec<u8>,
    frags: Vec<Fragment>,
    unacked: usize,
    next_unsent: usize,
}

#[derive(Debug, Default, Clone, Copy)]
struct Fragment {
    tries: u32,
    acked: bool,
    /// The transmission currently in flight, if any.
    pn: Option<u64>,
}

#[derive(Debug, Clone, Copy)]
enum Content {
    Fragment { msg_seq: u32, index: u16 },
    Skip { base_seq: u32 },
}

struct SentPacket {
    time_sent: Instant,
    content: Content,
}

/// What a peer's sending half keeps while it has something queued, in
/// flight or to report; boxed, and dropped when idle ([`SendState`]).
pub(super) struct Flight {
    next_pn: u64,
    pub(super) next_msg_seq: u32,
    /// Every unfinished message (queued or in flight), by msg_seq.
    messages: BTreeMap<u32, OutMessage>,
    /// Messages with fragments never sent yet, oldest first.
    unsent: VecDeque<u32>,
    /// Fragments declared lost, waiting to go out again before new ones.
    retransmit: VecDeque<(u32, u16)>,
    /// Transmissions in flight: the window counts these.
    sent: BTreeMap<u64, SentPacket>,
    /// Transmissions recently declared lost: a late acknowledgement of one
    /// still completes its fragment (reordering, not loss).
    lost: BTreeMap<u64, Content>,
    pub(super) rtt: RttEstimator,
    largest_acked: Option<u64>,
    loss_time: Option<Instant>,
    pto_count: u32,
    /// The probe timer runs from the last transmission or expiry.
    pto_from: Option<Instant>,
    /// Messages below this may be missing at the receiver though they are
    /// finished here: one failed, or was acknowledged by the peer's state
    /// before it restarted. Messages after them that the receiver holds
    /// complete would wait until some later packet happened to carry a
    /// base_seq past them, so once base_seq reaches the horizon a SKIP says
    /// so, until one is acknowledged or it used up its tries.
    skip_horizon: Option<u32>,
    skip_in_flight: bool,
    skip_tries: u32,
    scratch: Vec<u64>,
    pub(super) finished: VecDeque<(MessageId, Outcome)>,
    /// Bytes of the unfinished messages, here and in the endpoint's total.
    pub(super) queued_bytes: usize,
    meter: Meter,
}

impl Drop for Flight {
    fn drop(&mut self) {
        self.meter.sub(self.queued_bytes);
    }
}

impl Flight {
    /// Gives back the memory of what emptied.
    pub(super) fn spare(&mut self) {
        self.messages.spare();
        self.unsent.spare();
        self.retransmit.spare();
        self.sent.spare();
        self.lost.spare();
        self.scratch.spare();
        self.finished.spare();
    }

    pub(super) fn resume(rest: &Rest, meter: &Meter) -> Flight {
        Flight {
            next_pn: rest.next_pn,
            next_msg_seq: rest.next_msg_seq,
            messages: BTreeMap::new(),
            unsent: VecDeque::new(),
            retransmit: VecDeque::new(),
            sent: BTreeMap::new(),
            lost: BTreeMap::new(),
            rtt: rest.rtt.clone(),
            largest_acked: rest.largest_acked,
            loss_time: None,
            pto_count: 0,
            pto_from: None,
            skip_horizon: None,
            skip_in_flight: false,
            skip_tries: 0,
            scratch: Vec::new(),
            finished: VecDeque::new(),
            queued_bytes: 0,
            meter: meter.clone(),
        }
    }

    /// Nothing queued, in flight, owed to the peer (a SKIP) or to report:
    /// what is left fits in a [`Rest`]. Packets declared lost are
    /// forgotten: a late acknowledgement of one finds no message.
    pub(super) fn can_rest(&self) -> bool {
        self.is_idle() && self.finished.is_empty()
    }

    pub(super) fn rest(&self) -> Rest {
        Rest {
            next_pn: self.next_pn,
            next_msg_seq: self.next_msg_seq,
            rtt: self.rtt.clone(),
            largest_acked: self.largest_acked,
        }
    }

    pub(super) fn push(&mut self, id: MessageId, data: Vec<u8>, config: &Config) {
        let count = data.len().div_ceil(config.fragment_payload()).max(1);
        let seq = self.next_msg_seq;
        self.next_msg_seq += 1;
        let frags = vec![Fragment::default(); count];
        self.queued_bytes += data.len();
        self.meter.add(data.len());
        self.messages.insert(
            seq,
            OutMessage {
                id,
                data,
                frags,
                unacked: count,
                next_unsent: 0,
            },
        );
        self.unsent.push_back(seq);
    }

    fn unqueue(&mut self, bytes: usize) {
        self.queued_bytes -= bytes;
        self.meter.sub(bytes);
    }

    /// Messages neither Delivered nor failed.
    pub(super) fn outstanding(&self) -> usize {
        self.messages.len()
    }

    pub(super) fn is_idle(&self) -> bool {
        self.messages.is_empty() && self.sent.is_empty() && self.skip_horizon.is_none()
    }

    /// Every message below this one is finished: acknowledged or abandoned.
    pub fn base_seq(&self) -> u32 {
        self.messages
            .keys()
            .next()
            .copied()
            .unwrap_or(self.next_msg_seq)
    }

    pub(super) fn can_send(&self, config: &Config) -> bool {
        self.sent.len() < config.window
            && (self.skip_due() || !self.retransmit.is_empty() || !self.unsent.is_empty())
    }

    /// The next DATA or SKIP datagram, if the window allows one.
    pub(super) fn poll_transmit(
        &mut self,
        now: Instant,
        session: u64,
        config: &Config,
    ) -> Option<Vec<u8>> {
        if self.sent.len() >= config.window {
            return None;
        }
        let pn = self.next_pn;
        let (bytes, content) = if self.skip_due() {
            self.skip_in_flight = true;
            self.skip_tries += 1;
            let base_seq = self.base_seq();
            (
                encode_skip(session, pn, base_seq),
                Content::Skip { base_seq },
            )
        } else {
            let (msg_seq, index) = self.next_fragment()?;
            let base_seq = self.base_seq();
            let stride = config.fragment_payload();
            let msg = self.messages.get_mut(&msg_seq)?;
            let frag_count = msg.frags.len();
            let frag = &mut msg.frags[usize::from(index)];
            frag.tries += 1;
            frag.pn = Some(pn);
            let start = usize::from(index) * stride;
            let end = (start + stride).min(msg.data.len());
            let header = DataHeader {
                incarnation: session,
                pn,
                msg_seq,
                base_seq,
                frag_index: index,
                // Config::validate keeps max_message within u16::MAX fragments.
                frag_count: frag_count as u16,
            };
            (
                header.encode(&msg.data[start..end]),
                Content::Fragment { msg_seq, index },
            )
        };
        self.next_pn += 1;
        self.sent.insert(
            pn,
            SentPacket {
                time_sent: now,
                content,
            },
        );
        self.pto_from = Some(now);
        Some(bytes)
    }

    fn skip_due(&self) -> bool {
        !self.skip_in_flight
            && self
                .skip_horizon
                .is_some_and(|horizon| self.base_seq() >= horizon)
    }

    fn next_fragment(&mut self) -> Option<(u32, u16)> {
        while let Some((msg_seq, index)) = self.retransmit.pop_front() {
            let Some(msg) = self.messages.get(&msg_seq) else {
                continue;
            };
            let frag = msg.frags[usize::from(index)];
            if !frag.acked && frag.pn.is_none() {
                return Some((msg_seq, index));
            }
        }
        while let Some(&msg_seq) = self.unsent.front() {
            let Some(msg) = self.messages.get_mut(&msg_seq) else {
                self.unsent.pop_front();
                continue;
            };
            let index = msg.next_unsent;
            msg.next_unsent += 1;
            if msg.next_unsent >= msg.frags.len() {
                self.unsent.pop_front();
            }
            return Some((msg_seq, index as u16));
        }
        None
    }

    /// Rejects an ACK that names packets this session never sent, before
    /// anything is changed by it.
    pub(super) fn check_ack(&self, ack: &Ack<'_>) -> Result<(), PacketError> {
        if ack.largest() >= self.next_pn {
            return Err(PacketError::Malformed("ack for a packet never sent"));
        }
        Ok(())
    }

    pub(super) fn on_ack(&mut self, now: Instant, ack: &Ack<'_>, config: &Config) {
        let largest = ack.largest();
        let floor = match (self.sent.keys().next(), self.lost.keys().next()) {
            (Some(&a), Some(&b)) => a.min(b),
            (Some(&a), None) | (None, Some(&a)) => a,
            (None, None) => u64::MAX,
        };
        let mut newest: Option<(u64, Instant)> = None;
        let mut newly_acked = false;
        let mut pns = std::mem::take(&mut self.scratch);
        for (start, end) in ack.ranges() {
            // Ranges come largest first; below the oldest packet that still
            // matters there is nothing left to learn.
            if end < floor {
                break;
            }
            pns.clear();
            pns.extend(self.sent.range(start..=end).map(|(&pn, _)| pn));
            for &pn in &pns {
                let Some(packet) = self.sent.remove(&pn) else {
                    continue;
                };
                newly_acked = true;
                if newest.iter().all(|&(n, _)| pn > n) {
                    newest = Some((pn, packet.time_sent));
                }
                self.acked(pn, packet.content);
            }
            pns.clear();
            pns.extend(self.lost.range(start..=end).map(|(&pn, _)| pn));
            for &pn in &pns {
                if let Some(content) = self.lost.remove(&pn) {
                    newly_acked = true;
                    self.acked(pn, content);
                }
            }
        }
        self.scratch = pns;
        // RFC 9002 5.1: sample only when the largest acknowledged packet is
        // newly acknowledged.
        // An ACK that says it waited longer than `max_ack_delay` was held
        // by the receiving application until it was done with the packet
        // (`Endpoint::hold_ack`): it says nothing of the path, and would
        // make the round trip look as long as a disk write or a lookup.
        if let Some((pn, time_sent)) = newest {
            let held = Duration::from_micros(u64::from(ack.ack_delay));
            if pn == largest && held <= config.max_ack_delay {
                self.rtt
                    .update(now.saturating_duration_since(time_sent), held);
            }
        }
        self.largest_acked = Some(self.largest_acked.map_or(largest, |l| l.max(largest)));
        if newly_acked {
            self.pto_count = 0;
        }
        self.detect_lost(now, config);
    }

    fn acked(&mut self, via: u64, content: Content) {
        let (msg_seq, index) = match content {
            Content::Fragment { msg_seq, index } => (msg_seq, index),
            Content::Skip { base_seq } => {
                self.skip_in_flight = false;
                if self.skip_horizon.is_some_and(|horizon| base_seq >= horizon) {
                    self.skip_horizon = None;
                }
                return;
            }
        };
        let Some(msg) = self.messages.get_mut(&msg_seq) else {
            return;
        };
        let frag = &mut msg.frags[usize::from(index)];
        if frag.acked {
            return;
        }
        frag.acked = true;
        // An older transmission was acknowledged late: the newer one need
        // not hold a place in the window any longer.
        if let Some(pn) = frag.pn.take() {
            if pn != via {
                self.sent.remove(&pn);
            }
        }
        msg.unacked -= 1;
        if msg.unacked == 0 {
            if let Some(msg) = self.messages.remove(&msg_seq) {
                self.unqueue(msg.data.len());
                self.finished.push_back((msg.id, Outcome::Delivered));
            }
        }
    }

    /// RFC 9002 6.1: a packet is lost when one sent PACKET_THRESHOLD later
    /// was acknowledged, or when it is older than the loss delay.
    fn detect_lost(&mut self, now: Instant, config: &Config) {
        self.loss_time = None;
        let Some(largest) = self.largest_acked else {
            return;
        };
        let delay = self.rtt.loss_delay();
        let sent_before = now.checked_sub(delay);
        let mut lost = std::mem::take(&mut self.scratch);
        lost.clear();
        for (&pn, packet) in self.sent.range(..largest) {
            if largest - pn >= PACKET_THRESHOLD
                || sent_before.is_some_and(|t| packet.time_sent <= t)
            {
                lost.push(pn);
            } else if let Some(at) = packet.time_sent.checked_add(delay) {
                self.loss_time = Some(self.loss_time.map_or(at, |t| t.min(at)));
            }
        }
        for &pn in &lost {
            // A failure while declaring may already have taken this one.
            if let Some(packet) = self.sent.remove(&pn) {
                self.declare_lost(pn, packet, config);
            }
        }
        self.scratch = lost;
    }

    fn declare_lost(&mut self, pn: u64, packet: SentPacket, config: &Config) {
        self.lost.insert(pn, packet.content);
        while self.lost.len() > config.window.saturating_mul(2) {
            self.lost.pop_first();
        }
        let Content::Fragment { msg_seq, index } = packet.content else {
            self.skip_in_flight = false;
            if self.skip_tries >= config.max_tries {
                self.skip_horizon = None;
            }
            return;
        };
        let Some(msg) = self.messages.get_mut(&msg_seq) else {
            return;
        };
        let frag = &mut msg.frags[usize::from(index)];
        if frag.pn != Some(pn) {
            return;
        }
        frag.pn = None;
        if frag.tries >= config.max_tries {
            self.fail(msg_seq);
        } else {
            self.retransmit.push_back((msg_seq, index));
        }
    }

    fn fail(&mut self, msg_seq: u32) {
        let Some(msg) = self.messages.remove(&msg_seq) else {
            return;
        };
        self.unqueue(msg.data.len());
        for frag in &msg.frags {
            if let Some(pn) = frag.pn {
                self.sent.remove(&pn);
            }
        }
        self.finished.push_back((msg.id, Outcome::Failed));
        self.skip_through(msg_seq + 1);
    }

    fn skip_through(&mut self, horizon: u32) {
        self.skip_horizon = Some(self.skip_horizon.map_or(horizon, |h| h.max(horizon)));
        self.skip_tries = 0;
    }

    /// Gives up on every outstanding message.
    pub(super) fn fail_all(&mut self) {
        let messages = std::mem::take(&mut self.messages);
        for msg in messages.values() {
            self.unqueue(msg.data.len());
            self.finished.push_back((msg.id, Outcome::Failed));
        }
        self.unsent.clear();
        self.retransmit.clear();
        self.sent.clear();
        self.lost.clear();
        self.loss_time = None;
        self.pto_count = 0;
        self.pto_from = None;
        self.skip_in_flight = false;
        // Only a failure that skipped something needs a SKIP; this rule also
        // ends the cycle of an unreachable peer whose only packet in flight
        // was a SKIP.
        if !messages.is_empty() {
            self.skip_through(self.next_msg_seq);
        }
    }

    /// The peer lost its receive state (it restarted or forgot us): what it
    /// acknowledged before is gone, so every outstanding message is sent
    /// again whole, and the ones finished meanwhile are skipped.
    pub(super) fn on_peer_restart(&mut self) {
        self.skip_through(self.next_msg_seq);
        for (&msg_seq, msg) in &mut self.messages {
            for (index, frag) in msg.frags.iter_mut().enumerate() {
                if frag.acked {
                    frag.acked = false;
                    msg.unacked += 1;
                    self.retransmit.push_back((msg_seq, index as u16));
                }
            }
        }
    }

    /// The peer is reached on a new path now: what is in flight went the
    /// old, broken way, so it goes again at once, with its tries and the
    /// backoff started over.
    pub(super) fn on_path_change(&mut self, now: Instant, config: &Config) {
        for msg in self.messages.values_mut() {
            for frag in msg.frags.iter_mut().filter(|f| !f.acked) {
                frag.tries = 0;
            }
        }
        while let Some((pn, packet)) = self.sent.pop_first() {
            self.declare_lost(pn, packet, config);
        }
        self.skip_tries = 0;
        self.loss_time = None;
        self.pto_count = 0;
        self.pto_from = Some(now);
    }

    /// When `on_timeout` next has something to do.
    pub(super) fn timer(&self, config: &Config) -> Option<Instant> {
        if self.loss_time.is_some() {
            return self.loss_time;
        }
        if self.sent.is_empty() {
            return None;
        }
        let factor = 1u32.checked_shl(self.pto_count).unwrap_or(u32::MAX);
        // A zero max_backoff must not make a timer that is always due.
        // The peer may hold its acknowledgement up to max_ack_delay.
        let interval = (self.rtt.pto() + config.max_ack_delay)
            .saturating_mul(factor)
            .min(config.max_backoff)
            .max(GRANULARITY);
        self.pto_from?.checked_add(interval)
    }

    pub(super) fn on_timeout(&mut self, now: Instant, config: &Config) {
        if let Some(at) = self.loss_time {
            if at <= now {
                self.detect_lost(now, config);
            }
            return;
        }
        let due = self.timer(config).is_some_and(|at| at <= now);
        if !due {
            return;
        }
        self.pto_count += 1;
        self.pto_from = Some(now);
        // As many expiries in a row as a fragment has tries, with no
        // acknowledgement in between: the peer is unreachable. Failing
        // everything at once bounds the time to failure by
        // max_tries * max_backoff, however long the queue.
        if self.pto_count >= config.max_tries {
            self.fail_all();
            return;
        }
        for _ in 0..PROBES {
            let Some((pn, packet)) = self.sent.pop_first() else {
                break;
            };
            self.declare_lost(pn, packet, config);
        }
    }
}
