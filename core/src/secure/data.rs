//! DATA packets, the sessions' traffic: opening what comes (under the
//! current keys, or those before the last re-key while the peer may still
//! use them), sealing what the transport sends (and starting a re-key when
//! one is due), and keeping each direction's keys expanded while busy.

use std::net::SocketAddr;
use std::time::Instant;

use super::{path, PeerId, Rejected, SecureEndpoint, State, MAX_QUEUED};
use crate::crypto::session::Role;
use crate::wire;

impl SecureEndpoint {
    /// A DATA packet of `len` bytes from `from`, for the session
    /// `receiver_index`.
    pub(super) fn take_data(
        &mut self,
        now: Instant,
        from: SocketAddr,
        len: usize,
        receiver_index: u32,
        counter: u64,
        ciphertext: &[u8],
    ) -> Result<(), Rejected> {
        let conn = self
            .conns
            .get_mut(&receiver_index)
            .ok_or(Rejected::UnknownSession)?;
        let State::Established {
            session, previous, ..
        } = &mut conn.state
        else {
            return Err(Rejected::UnknownSession);
        };
        let second = self.busy.second(now);
        let plaintext =
            match wire::open_data(session.at(second), receiver_index, counter, ciphertext) {
                Ok(plaintext) => {
                    // The peer is on the new keys: the old ones go.
                    *previous = None;
                    self.busy.note(now, receiver_index, session);
                    plaintext
                }
                Err(_) => {
                    let old = previous.as_deref_mut().ok_or(Rejected::Unauthentic)?;
                    let plaintext =
                        wire::open_data(old.at(second), receiver_index, counter, ciphertext)
                            .map_err(|_| Rejected::Unauthentic)?;
                    self.busy.note(now, receiver_index, old);
                    plaintext
                }
            };
        conn.last_heard = now;
        // Authentic, but the address is not proven by that: a new
        // one is challenged before the session moves there.
        self.heard_from(now, receiver_index, from, len);
        match path::PathPacket::parse(&plaintext) {
            Some(packet) => self.handle_path(receiver_index, from, packet),
            None => {
                if let Some(conn) = self.conns.get_mut(&receiver_index) {
                    conn.last_active = now;
                }
                let _ = self
                    .transport
                    .handle_datagram(now, PeerId(receiver_index), &plaintext);
            }
        }
        Ok(())
    }

    pub(super) fn poll_datagram(
        &mut self,
        now: Instant,
        now_ms: u64,
    ) -> Option<(SocketAddr, Vec<u8>)> {
        loop {
            if let Some(out) = self.outbox.pop_front() {
                return Some(out);
            }
            let transmit = self.transport.poll_transmit(now)?;
            let index = transmit.destination.0;
            let Some(conn) = self.conns.get_mut(&index) else {
                continue;
            };
            match &mut conn.state {
                State::Handshaking { queued, .. } => {
                    if queued.len() < MAX_QUEUED {
                        queued.push_back(transmit.contents);
                    }
                }
                State::Established {
                    remote_index,
                    session,
                    ..
                } => {
                    let second = self.busy.second(now);
                    let sealed =
                        wire::seal_data(session.at(second), *remote_index, &transmit.contents);
                    self.busy.note(now, index, session);
                    let due =
                        conn.role == Role::Initiator && session.needs_rekey(now_ms, conn.carried);
                    let addr = conn.addr;
                    conn.last_sent = now;
                    if due {
                        self.start_rekey(now, now_ms, index);
                    }
                    // A session past its hard limit drops the datagram; the
                    // transport resends it once the new keys are in.
                    if let Ok(datagram) = sealed {
                        return Some((addr, datagram));
                    }
                }
            }
        }
    }
}
