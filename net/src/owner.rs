//! Who the driver hands what arrives to: the [`Owner`], called on the
//! driver's own task for each request, push and closed session.
//!
//! The server's owner serves a request there and then when its handler
//! needs no I/O (`list`, `ping`, `lookup`...), so the reply leaves in the
//! same turn of the loop as the request came in: one path per datagram,
//! no channel between them. The client's owner is an [`Inbox`]: a
//! bounded channel its dispatcher reads.

use std::collections::VecDeque;
use std::net::SocketAddr;

use tokio::sync::mpsc;
use udpchat_core::context::Reply;
use udpchat_core::crypto::keys::PublicKey;
use udpchat_core::envelope::{Envelope, Kind};
use udpchat_core::error::{Code, CommandError};
use udpchat_core::secure::PeerId;

/// What the driver hands over.
pub trait Owner: Send + 'static {
    /// A request or push arrived on the session `from`, at `addr`, whose
    /// peer proved `remote_static`. `Some(reply)` answers a request at
    /// once; with `None` the owner answers it later through
    /// [`Link::reply`](crate::Link::reply) (a push has no answer).
    fn arrived(&mut self, arrival: Arrival) -> Option<Reply>;

    /// The session `peer` is gone (handshake failed, idle, or forgotten).
    /// `false`: the owner cannot take it now; it is offered again on the
    /// driver's next turn, never dropped, or the owner would keep state
    /// for a session that no longer exists.
    fn closed(&mut self, peer: PeerId) -> bool;

    /// The session `peer` moved to `addr` (its path was validated there).
    fn moved(&mut self, _peer: PeerId, _addr: SocketAddr) {}

    /// `false` while the owner holds what it could not pass on yet: the
    /// driver then leaves what waits on the socket there, unread and so
    /// not acknowledged (its senders send it again), rather than take in
    /// more than the owner can keep.
    fn has_room(&self) -> bool {
        true
    }

    /// Passes on what it holds, as far as it can now; called on every
    /// turn of the driver.
    fn make_room(&mut self) {}

    /// `true` when what arrives is handled by another task (an
    /// [`Inbox`]'s reader): having handed it something, the driver gives
    /// way once, so that the reader runs now rather than when the driver
    /// next has to wait (on the multi-threaded runtime a task woken by the
    /// one running is queued on the same thread).
    fn read_elsewhere(&self) -> bool {
        false
    }

    /// `true` when a push's acknowledgement is to wait until the owner is
    /// done with it: its [`Arrival`] then carries a [`PendingAck`], which
    /// lets the acknowledgement go when dropped.
    fn holds_acks(&self) -> bool {
        false
    }
}

/// A push's acknowledgement, held back until this is dropped (see
/// [`SecureEndpoint::hold_ack`](udpchat_core::secure::SecureEndpoint::hold_ack)):
/// the client drops it once the chat line the push brought is written to
/// its history, so that the sender (a group's server, another client)
/// hears of delivery only then, and a client killed before it has the push
/// sent again. The transport lets it go by itself after
/// [`max_ack_hold`](udpchat_core::transport::Config::max_ack_hold).
pub struct PendingAck {
    pub(crate) peer: PeerId,
    pub(crate) receipt: udpchat_core::secure::Receipt,
    /// The push's sender waits on it (`Push::ACK_AT_ONCE`).
    pub(crate) at_once: bool,
    pub(crate) releases: mpsc::WeakUnboundedSender<crate::Op>,
}

impl std::fmt::Debug for PendingAck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingAck")
            .field("peer", &self.peer)
            .finish()
    }
}

impl Drop for PendingAck {
    fn drop(&mut self) {
        if let Some(ops) = self.releases.upgrade() {
            let _ = ops.send(crate::Op::ReleaseAck {
                peer: self.peer,
                receipt: self.receipt,
                at_once: self.at_once,
            });
        }
    }
}

/// A request or push, with the session's address when it came and the
/// static key the session proved, so that it can be handled after the
/// session stopped.
#[derive(Debug)]
pub struct Arrival {
    pub from: PeerId,
    pub addr: SocketAddr,
    pub remote_static: Option<Box<PublicKey>>,
    pub envelope: Envelope,
    /// A push's acknowledgement, while the owner holds it (see
    /// [`Owner::holds_acks`]).
    pub ack: Option<PendingAck>,
}

impl Arrival {
    pub fn is_request(&self) -> bool {
        self.envelope.kind == Kind::Request
    }
}

/// Requests and pushes waiting for an [`Inbox`]'s reader, at most; past
/// that a request is answered `busy` at once, and a push (acknowledged
/// already) waits in the owner while the driver stops reading the socket
/// until the reader catches up.
pub const INBOX_CAPACITY: usize = 4096;

/// Where a channel owner's dispatcher reads what arrives.
pub type Inbox = mpsc::Receiver<Inbound>;

/// What arrives for an [`Inbox`]'s reader.
#[derive(Debug)]
pub enum Inbound {
    /// A request or push.
    Envelope(Arrival),
    /// A session is gone: handshake failed, idle, or forgotten.
    Closed { peer: PeerId },
}

/// The owner that forwards to an [`Inbox`].
pub(crate) struct Channel {
    tx: mpsc::Sender<Inbound>,
    /// Pushes the transport took in (and so acknowledged) while the inbox
    /// was full, in order: passed on as the reader makes room, never
    /// dropped (see [`Owner::has_room`]).
    held: VecDeque<Inbound>,
}

impl Channel {
    pub(crate) fn new(tx: mpsc::Sender<Inbound>) -> Channel {
        Channel {
            tx,
            held: VecDeque::new(),
        }
    }
}

impl Owner for Channel {
    fn arrived(&mut self, arrival: Arrival) -> Option<Reply> {
        let (request, from) = (arrival.is_request(), arrival.from);
        if !request && !self.held.is_empty() {
            self.held.push_back(Inbound::Envelope(arrival));
            return None;
        }
        match self.tx.try_send(Inbound::Envelope(arrival)) {
            Ok(()) | Err(mpsc::error::TrySendError::Closed(_)) => None,
            // The reader is behind: a requester hears so rather than wait
            // (it may ask again); a push waits here.
            Err(mpsc::error::TrySendError::Full(Inbound::Envelope(arrival))) if !request => {
                tracing::debug!(%from, "inbox full: held until the reader catches up");
                self.held.push_back(Inbound::Envelope(arrival));
                None
            }
            Err(mpsc::error::TrySendError::Full(_)) => {
                tracing::debug!(%from, "inbox full: turned away");
                Some(Err(CommandError::new(
                    Code::Busy,
                    "busy; try again in a moment",
                )))
            }
        }
    }

    fn closed(&mut self, peer: PeerId) -> bool {
        // After the session's pushes held here, not before them.
        self.held.is_empty()
            && !matches!(
                self.tx.try_send(Inbound::Closed { peer }),
                Err(mpsc::error::TrySendError::Full(_))
            )
    }

    fn has_room(&self) -> bool {
        self.held.is_empty()
    }

    fn read_elsewhere(&self) -> bool {
        true
    }

    fn holds_acks(&self) -> bool {
        true
    }

    fn make_room(&mut self) {
        while let Some(next) = self.held.pop_front() {
            match self.tx.try_send(next) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(next)) => {
                    self.held.push_front(next);
                    return;
                }
                // Nobody reads any more.
                Err(mpsc::error::TrySendError::Closed(_)) => self.held.clear(),
            }
        }
    }
}

impl crate::Link {
    /// Resolves once every push handed over with a [`PendingAck`] has been
    /// released and the acknowledgements due have gone out (at once when
    /// none is held). A client signing out waits for it, so that each
    /// sender hears of what was shown before the server says the user
    /// left.
    pub async fn settle(&self) {
        let (done, settled) = tokio::sync::oneshot::channel();
        if self.ops.send(crate::Op::Settle { done }).is_ok() {
            let _ = settled.await;
        }
    }
}
