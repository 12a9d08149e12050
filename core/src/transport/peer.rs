//! One peer as the endpoint sees it: the session ids on both sides, the
//! sending and receiving halves, and what the peer needs next (a datagram,
//! a timer, or to be forgotten).

use std::collections::VecDeque;
use std::time::Instant;

use super::packet::{
    encode_ack, encode_ack_data, is_data, max_ack_ranges, Ack, DataHeader, ACK_HEADER_LEN,
    ACK_RANGE_LEN, HEADER_LEN,
};
use super::recv::{Acknowledge, RecvState};
use super::send::SendState;
use super::Meter;
use super::{Config, PacketError, Receipt};

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
    /// What this side owes the peer in acknowledgements.
    ack: AckDue,
    /// Packets whose acknowledgement waits until the application is done
    /// with the messages they brought (see [`Endpoint::hold_ack`]): an ACK
    /// reports nothing from the oldest of them on.
    ///
    /// [`Endpoint::hold_ack`]: super::Endpoint::hold_ack
    holds: Holds,
    /// A DATA packet made while an ACK that could not ride on it had to go
    /// first: it leaves next.
    stashed: Option<Vec<u8>>,
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

/// A packet whose acknowledgement waits, and until when at the latest.
#[derive(Debug, Clone, Copy)]
struct Hold {
    pn: u64,
    until: Instant,
}

/// A peer's holds: a pointer's worth while there are none (a server's
/// sessions never hold), allocated only while some wait.
#[derive(Debug, Default)]
struct Holds(Option<Box<Held>>);

#[derive(Debug, Default)]
struct Held {
    holds: Vec<Hold>,
    /// Packets that came after the oldest hold, while it held.
    past: u16,
    /// The largest packet an ACK cut below a hold reported: one that
    /// would report nothing more is not sent.
    reported: Option<u64>,
}

/// Packets that may come past a hold before it lets go. Holding every
/// packet after it, a hold that lasts fills the sender's window (256
/// fragments): a push's handler that waits for a reply from the same
/// sender (a lookup on the server session) would wait behind the pushes
/// it holds back, until each hold ran out. Past this many, the receiver is
/// far behind, and acknowledges as it receives until it catches up.
const HELD_PAST: u16 = 64;

impl Holds {
    fn push(&mut self, hold: Hold) {
        self.0.get_or_insert_with(Box::default).holds.push(hold);
    }

    fn all(&self) -> impl Iterator<Item = &Hold> {
        self.0.iter().flat_map(|held| held.holds.iter())
    }

    /// The packet number from which they keep the ACK back.
    fn oldest(&self) -> Option<u64> {
        self.all().map(|hold| hold.pn).min()
    }

    fn until(&self) -> Option<Instant> {
        self.all().map(|hold| hold.until).min()
    }

    /// Keeps those `keep` says; the memory goes with the last. A new
    /// oldest hold counts the packets past it afresh.
    fn retain(&mut self, keep: impl FnMut(&Hold) -> bool) {
        let oldest = self.oldest();
        if let Some(held) = &mut self.0 {
            held.holds.retain(keep);
            if held.holds.is_empty() {
                self.0 = None;
            } else if self.oldest() != oldest {
                if let Some(held) = &mut self.0 {
                    held.past = 0;
                }
            }
        }
    }

    /// Counts packet `pn` if it came past the oldest hold; true when
    /// [`HELD_PAST`] did: the holds are to let go.
    fn passed_by(&mut self, pn: u64) -> bool {
        let oldest = self.oldest();
        let Some(held) = &mut self.0 else {
            return false;
        };
        if oldest.is_some_and(|oldest| pn > oldest) {
            held.past = held.past.saturating_add(1);
        }
        held.past >= HELD_PAST
    }

    fn is_empty(&self) -> bool {
        self.0.is_none()
    }

    /// Whether an ACK cut below the holds, whose largest packet is
    /// `largest`, tells the sender nothing it was not told.
    fn told(&self, largest: Option<u64>) -> bool {
        let reported = self.0.as_ref().and_then(|held| held.reported);
        largest.is_none_or(|largest| reported.is_some_and(|r| largest <= r))
    }

    fn reported(&mut self, largest: Option<u64>) {
        if let Some(held) = &mut self.0 {
            held.reported = largest.max(held.reported);
        }
    }
}

/// Acknowledgements owed, and when they are due (RFC 9000 13.2.1): the
/// ACK waits up to `max_ack_delay` for a DATA packet to ride on, but goes
/// at once after a second packet, or a packet out of order or repeated.
/// Once a session has received [`BUSY_AFTER`] packets it is a stream, and
/// the ACK waits for the tenth ([`ACK_EVERY_BUSY`]), as Chromium's QUIC
/// decimates its ACKs: a group member that reads a busy group's pushes
/// answered every second one, an ACK for two datagrams. A gap or a repeat
/// still makes it go at once, and the count starts again, so that a lossy
/// session acknowledges every second packet as before; a push someone
/// waits on is acknowledged as it is read (the driver).
#[derive(Default)]
struct AckDue {
    /// Something received is not acknowledged yet.
    pending: bool,
    /// Unacknowledged packets that asked for an acknowledgement.
    eliciting: u32,
    /// It goes at the next transmit, alone if nothing else does.
    now: bool,
    /// When it goes at the latest.
    deadline: Option<Instant>,
    /// The largest packet number received, and when.
    largest: Option<(u64, Instant)>,
    /// Packets that asked for an acknowledgement, counted up to
    /// [`BUSY_AFTER`].
    received: u8,
    /// It was due while holds kept it back: it goes when they let go.
    due_at_release: bool,
}

/// Packets received before the acknowledgement goes at once.
const ACK_EVERY: u32 = 2;
/// The same, on a session that received [`BUSY_AFTER`] packets.
const ACK_EVERY_BUSY: u32 = 10;
/// Packets a session receives before its ACKs go every
/// [`ACK_EVERY_BUSY`] packets.
const BUSY_AFTER: u8 = 100;

impl AckDue {
    /// A packet `pn` came that asks for an acknowledgement; `urgent`: it
    /// repeats something already received.
    fn received(&mut self, now: Instant, pn: u64, urgent: bool, config: &Config) {
        // pn comes from the peer: u64::MAX has no successor.
        let in_order = self
            .largest
            .is_none_or(|(largest, _)| largest.checked_add(1) == Some(pn));
        if self.largest.is_none_or(|(largest, _)| pn > largest) {
            self.largest = Some((pn, now));
        }
        self.pending = true;
        self.eliciting += 1;
        // A loss or a repeat: the sender needs every ACK again to recover
        // quickly (its loss detection counts packets acknowledged past a
        // gap), so the session counts as busy only after 100 more.
        let disorder = urgent || !in_order;
        self.received = if disorder {
            0
        } else {
            self.received.saturating_add(1).min(BUSY_AFTER)
        };
        let every = if self.received >= BUSY_AFTER {
            ACK_EVERY_BUSY
        } else {
            ACK_EVERY
        };
        if disorder || self.eliciting >= every || config.max_ack_delay.is_zero() {
            self.now = true;
        }
        self.deadline.get_or_insert(now + config.max_ack_delay);
    }

    /// What an ACK says of how long it was held, in microseconds.
    fn delay(&self, now: Instant) -> u32 {
        self.largest.map_or(0, |(_, at)| {
            u32::try_from(now.saturating_duration_since(at).as_micros()).unwrap_or(u32::MAX)
        })
    }

    fn sent(&mut self) {
        self.pending = false;
        self.eliciting = 0;
        self.now = false;
        self.deadline = None;
    }

    /// When the held acknowledgement must go, if one is held.
    fn timer(&self) -> Option<Instant> {
        self.deadline.filter(|_| self.pending && !self.now)
    }
}

impl Peer {
    /// Gives back the memory of what emptied (see [`Spare`]).
    pub fn spare(&mut self) {
        self.send.spare();
        if let Some(recv) = &mut self.recv {
            recv.spare();
        }
    }

    pub fn new(session: u64, now: Instant, config: &Config, meters: (&Meter, &Meter)) -> Peer {
        let (meter, queued) = meters;
        Peer {
            session,
            remote: None,
            retired: VecDeque::new(),
            send: SendState::new(config, queued),
            recv: None,
            ack: AckDue::default(),
            holds: Holds::default(),
            stashed: None,
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
                self.ack = AckDue::default();
                self.holds = Holds::default();
                self.send.on_peer_restart();
                Session::Current
            }
        }
    }

    pub fn touch(&mut self, now: Instant) {
        self.last_activity = self.last_activity.max(now);
    }

    /// Takes a DATA packet; the whole messages it completes go to
    /// `delivered`, in order.
    pub fn on_data(
        &mut self,
        now: Instant,
        (header, payload): (&DataHeader, &[u8]),
        config: &Config,
        delivered: &mut VecDeque<Vec<u8>>,
    ) {
        if let Session::Stale = self.observe(header.incarnation) {
            return;
        }
        self.touch(now);
        let recv = self
            .recv
            .get_or_insert_with(|| RecvState::new(header.base_seq, config));
        match recv.on_data(now, (header, payload), config, &self.meter, delivered) {
            Acknowledge::No => {}
            Acknowledge::Held => self.ack.received(now, header.pn, false, config),
            Acknowledge::Now => self.ack.received(now, header.pn, true, config),
        }
        if self.holds.passed_by(header.pn) {
            // Far behind: the sender is not kept from sending (see
            // `HELD_PAST`).
            self.holds = Holds::default();
            self.owe_held(now, true, config);
        }
    }

    pub fn on_skip(
        &mut self,
        now: Instant,
        (remote, pn, base_seq): (u64, u64, u32),
        config: &Config,
        delivered: &mut VecDeque<Vec<u8>>,
    ) {
        if let Session::Stale = self.observe(remote) {
            return;
        }
        self.touch(now);
        self.recv
            .get_or_insert_with(|| RecvState::new(base_seq, config))
            .on_skip(pn, base_seq, delivered);
        // Rare, and the sender waits on it to move on: at once.
        self.ack.received(now, pn, true, config);
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

    /// The next datagram: a DATA or SKIP with the acknowledgement owed
    /// riding on it when it fits, else the acknowledgement alone once it
    /// is due.
    pub fn poll_transmit(&mut self, now: Instant, config: &Config) -> Option<Vec<u8>> {
        if let Some(bytes) = self.stashed.take() {
            return Some(bytes);
        }
        let data = self.send.poll_transmit(now, self.session, config);
        if data.is_some() {
            self.touch(now);
        }
        let owed = self.ack.pending && (self.ack.now || data.is_some());
        let ack = match (owed, self.remote, &self.recv) {
            (true, Some(remote), Some(recv)) => Some((remote, recv)),
            _ => None,
        };
        let Some((remote, recv)) = ack else {
            return data;
        };
        let below = self.holds.oldest();
        if below.is_some() && self.ack.now && !self.ack.due_at_release {
            // Due while a hold cuts it: it waits up to `max_ack_delay` for
            // the hold to end, and goes whole then (a client lets a push
            // go as soon as its line is written): one ACK, not one cut now
            // and another at the release.
            self.ack.due_at_release = true;
            self.ack.now = false;
            self.ack.deadline = Some(now + config.max_ack_delay);
            return data;
        }
        let largest = held_ranges(recv, below).next().map(|(_, end)| end);
        if below.is_some() && self.holds.told(largest) {
            // What is not held was reported already: nothing goes until a
            // release ([`Peer::release`] owes the acknowledgement again).
            if self.ack.now {
                self.ack.due_at_release = true;
                self.ack.now = false;
                self.ack.deadline = None;
            }
            return data;
        }
        // An ACK cut below a hold does not know how long its largest
        // packet waited: it says "long", and the sender takes no round
        // trip from it.
        let delay = match below {
            Some(_) => u32::MAX,
            None => self.ack.delay(now),
        };
        let max_ranges = max_ack_ranges(config.max_datagram);
        if let Some(data) = data {
            // Only a DATA packet carries an ACK (a SKIP goes alone), with
            // as many ranges as fit beside it.
            let fits = if is_data(&data) {
                let room = config.max_datagram.saturating_sub(data.len() - HEADER_LEN);
                room.saturating_sub(ACK_HEADER_LEN) / ACK_RANGE_LEN
            } else {
                0
            };
            if fits >= 1 {
                self.holds.reported(largest);
                let ranges = held_ranges(recv, below);
                let ack = encode_ack(self.session, remote, delay, ranges, fits.min(max_ranges));
                self.ack.sent();
                return Some(encode_ack_data(&ack, &data));
            }
            if !self.ack.now {
                return Some(data);
            }
            // The ACK is due and does not fit: it goes first, alone.
            self.stashed = Some(data);
        }
        self.holds.reported(largest);
        let ranges = held_ranges(recv, below);
        self.ack.sent();
        Some(encode_ack(self.session, remote, delay, ranges, max_ranges))
    }

    /// Holds the acknowledgement of the packet `receipt` names, and of
    /// every later one, until [`Peer::release`] or `limit` from `now`;
    /// false if that packet belongs to an earlier session of the peer.
    pub fn hold(&mut self, receipt: Receipt, now: Instant, limit: std::time::Duration) -> bool {
        if self.remote != Some(receipt.remote) {
            return false;
        }
        self.holds.push(Hold {
            pn: receipt.pn,
            until: now + limit,
        });
        true
    }

    /// Ends one hold on the packet `receipt` names. What it held back is
    /// owed again: at once if an acknowledgement went (or was due) while
    /// it held, or if `at_once`; else when it would have gone anyway.
    pub fn release(&mut self, now: Instant, receipt: Receipt, at_once: bool, config: &Config) {
        if self.remote != Some(receipt.remote) {
            return;
        }
        let oldest = self.holds.oldest();
        let mut ended = false;
        self.holds.retain(|hold| {
            let this = !ended && hold.pn == receipt.pn;
            ended |= this;
            !this
        });
        if self.holds.oldest() != oldest {
            self.owe_held(now, at_once, config);
        }
    }

    /// What holds kept from being acknowledged is owed: at once if it was
    /// due while held, or `at_once`; else as a packet just received is
    /// (within `max_ack_delay`, or with the next that asks).
    fn owe_held(&mut self, now: Instant, at_once: bool, config: &Config) {
        if self.recv.is_none() {
            return;
        }
        self.ack.pending = true;
        if at_once || std::mem::take(&mut self.ack.due_at_release) {
            self.ack.now = true;
        } else {
            self.ack.deadline.get_or_insert(now + config.max_ack_delay);
        }
    }

    pub fn wants_transmit(&self, config: &Config) -> bool {
        (self.ack.pending && self.ack.now) || self.stashed.is_some() || self.send.can_send(config)
    }

    /// Any acknowledgement held back goes at the next transmit; true if
    /// one was.
    pub fn acknowledge_now(&mut self) -> bool {
        let held = self.ack.pending && !self.ack.now;
        self.ack.now |= self.ack.pending;
        held
    }

    pub fn on_timeout(&mut self, now: Instant, config: &Config) {
        let oldest = self.holds.oldest();
        self.holds.retain(|hold| hold.until > now);
        if self.holds.oldest() != oldest {
            // Held too long (the application waits on something): the
            // sender is not kept waiting any longer.
            self.owe_held(now, true, config);
        }
        self.send.on_timeout(now, config);
        if let Some(recv) = &mut self.recv {
            recv.expire(now, config);
        }
        if self.ack.timer().is_some_and(|at| at <= now) {
            self.ack.now = true;
        }
    }

    /// Nothing in flight, nothing to send, nothing being reassembled: only
    /// the idle timer keeps such a peer.
    fn is_idle(&self) -> bool {
        !self.ack.pending
            && self.holds.is_empty()
            && self.stashed.is_none()
            && self.send.is_idle()
            && self.recv.iter().all(RecvState::is_idle)
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
            self.ack.timer(),
            self.holds.until(),
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

/// What an ACK reports of `recv`: every range received, or with holds,
/// only what came below the oldest packet held (`below`). Reporting a
/// later packet would tell the sender the held one was lost.
fn held_ranges(recv: &RecvState, below: Option<u64>) -> impl Iterator<Item = (u64, u64)> + '_ {
    recv.ack_ranges()
        .filter_map(move |(start, end)| match below {
            None => Some((start, end)),
            Some(below) if start >= below => None,
            Some(below) => Some((start, end.min(below - 1))),
        })
}
