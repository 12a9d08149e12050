//! The [`Link`](crate::Link)'s operations, as the driver carries them out:
//! sessions opened and dropped, requests and pushes queued, meetings and
//! relays, what the driver reports of itself.

use tokio::sync::mpsc;
use udpchat_core::envelope::{Envelope, Kind};
use udpchat_core::error::{Code, CommandError};
use udpchat_core::now_ms;

use super::{Driver, Waiter};
use crate::{Fate, Load, Op, READY_BATCH};

impl Driver {
    /// Carries out the operations already waiting, up to [`READY_BATCH`]
    /// (none once the link is stopping); `false` once every [`Link`] is
    /// gone.
    ///
    /// [`Link`]: crate::Link
    pub(super) fn take_ready_ops(&mut self, ops: &mut mpsc::UnboundedReceiver<Op>) -> bool {
        for _ in 0..READY_BATCH {
            if self.stopped.is_some() {
                break;
            }
            match ops.try_recv() {
                Ok(op) => self.handle_op(op),
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => return false,
            }
        }
        true
    }

    pub(super) fn handle_op(&mut self, op: Op) {
        match op {
            Op::Connect {
                addr,
                remote,
                pattern,
                done,
            } => {
                let result = self
                    .endpoint
                    .connect(std::time::Instant::now(), now_ms(), addr, remote, pattern)
                    .map_err(|e| CommandError::new(Code::Unreachable, e.to_string()));
                let _ = done.send(result);
            }
            Op::FetchKey { addr, done } => {
                self.key_fetches.entry(addr).or_default().push(done);
                self.endpoint.request_server_key(addr);
            }
            Op::SetIdentity { identity } => self.endpoint.set_identity(identity),
            Op::ReleaseAck {
                peer,
                receipt,
                at_once,
            } => {
                self.holding = self.holding.saturating_sub(1);
                self.endpoint
                    .release_ack(std::time::Instant::now(), peer, receipt, at_once);
            }
            Op::Request {
                to,
                cmd,
                body,
                reply,
            } => {
                let id = self.next_id;
                self.next_id += 1;
                match self.send(to, Envelope::encode_parts(cmd, id, Kind::Request, &body)) {
                    Ok(msg) => {
                        self.waiters.insert(msg, Waiter::Request(id));
                        self.requests.insert(id, (to, reply));
                    }
                    Err(e) => {
                        let _ = reply.send(Err(e));
                    }
                }
            }
            Op::Push {
                to,
                cmd,
                body,
                done,
            } => self.push(to, Envelope::encode_parts(cmd, 0, Kind::Push, &body), done),
            Op::PushEach { cmd, body, to_each } => self.push_each(cmd, &body, to_each),
            Op::PushEachMade { make } => {
                for (push, to_each) in make() {
                    let (cmd, body) = push.into_parts();
                    self.push_each(cmd, &body, Fate::calls(to_each));
                }
            }
            Op::Reply {
                to,
                cmd,
                id,
                result,
            } => self.answer(to, &cmd, id, result),
            // An empty message: see Link::keep_alive.
            Op::KeepAlive { to, done } => self.push(to, Vec::new(), Fate::Wait(done)),
            Op::Peer { peer, done } => {
                let _ = done.send(self.endpoint.peer(peer));
            }
            Op::Forget { peer } => self.endpoint.forget(peer),
            Op::Confirm { peer, keep: true } => self.endpoint.confirm(peer),
            Op::Confirm { peer, keep: false } => {
                self.endpoint.release(std::time::Instant::now(), peer)
            }
            Op::Stats { done } => {
                let _ = done.send(self.endpoint.stats());
            }
            Op::Load { done } => {
                let _ = done.send(Load {
                    sessions: self.endpoint.sessions(),
                    handshakes_waiting: self.endpoint.handshakes_waiting(),
                    in_flight: self.waiters.len(),
                    queued_bytes: self.endpoint.queued_bytes(),
                    reassembly_bytes: self.endpoint.reassembly_bytes(),
                    delivered: self.delivered.clone(),
                    failed: self.failed,
                });
            }
            Op::Meet {
                ticket,
                candidates,
                relay,
                reachable,
            } => {
                self.meetings.retain(|_, tx| !tx.is_closed());
                self.meetings.insert(ticket.id, reachable);
                self.endpoint
                    .meet(std::time::Instant::now(), &ticket, &candidates, relay);
            }
            Op::EndMeeting { meeting } => {
                self.meetings.remove(&meeting);
                self.endpoint.end_meeting(meeting);
            }
            Op::Migrate { peer, addr } => {
                self.endpoint.migrate(std::time::Instant::now(), peer, addr)
            }
            Op::OpenRelay {
                meeting,
                ends: [a, b],
            } => self
                .endpoint
                .open_relay(std::time::Instant::now(), meeting, a, b),
            Op::RelayUsage { meeting, done } => {
                let _ = done.send(self.endpoint.relay_usage(meeting));
            }
            Op::Settle { done } => self.settling.push(done),
            Op::Stop { done } => self.stopped = Some(done),
        }
    }
}
