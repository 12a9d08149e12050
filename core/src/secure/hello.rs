//! Handshakes: answering a HELLO (a new session, or a re-key of one this
//! side holds), reading a WELCOME, building a HELLO, retrying a lost one
//! with a fresh HELLO and backoff, and re-keying an established session in
//! place with a token only the holder of the old session can compute.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use hkdf::Hkdf;
use rand::{CryptoRng, RngCore};
use sha2::Sha384;

use super::cookie::{self, Cookie};
use super::{
    Conn, ConnectError, Expect, PeerId, Pending, Rejected, SecureEndpoint, State, HELLO_FRESH,
    HELLO_REKEY, TOKEN_LEN,
};

use crate::crypto::handshake::{
    Accepted, Answered, ClientHello, HandshakeError, PeerHandshake, PeerHello, ServerHandshake,
};
use crate::crypto::keys::{PublicKey, StaticKey};
use crate::crypto::session::{Role, Session};
use crate::limits::Source;
use crate::wire::{self, Packet, Pattern};

/// A HELLO's P-384 work, taken out of the endpoint
/// ([`SecureEndpoint::take_handshake`]) so that it may run on any thread;
/// what it makes goes back in with [`SecureEndpoint::finish_handshake`],
/// which alone checks the replay guard and opens the session.
pub struct HandshakeWork {
    pub(super) hello: Hello,
    /// The handshake message (the HELLO's, without its header and MACs).
    message: Vec<u8>,
    now_ms: u64,
}

/// A HELLO worked out ([`HandshakeWork::run`]), for
/// [`SecureEndpoint::finish_handshake`].
pub struct HandshakeDone {
    pub(super) hello: Hello,
    answered: Result<Answered, HandshakeError>,
}

/// What a HELLO out being worked out is known by, from its work to its
/// finish.
pub(super) struct Hello {
    from: SocketAddr,
    pattern: Pattern,
    sender_index: u32,
    /// Its message's length (a re-key from a new address is counted
    /// against that address's budget).
    len: usize,
    /// The key it is answered with (a client's identity may have changed
    /// by the finish: then the answer is not used).
    key: Arc<StaticKey>,
    /// Its message 1's ephemeral key ([`super::screen::work_key`]).
    pub(super) ephemeral: Vec<u8>,
}

impl std::fmt::Debug for HandshakeWork {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HandshakeWork")
            .field("from", &self.hello.from)
            .field("pattern", &self.hello.pattern)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for HandshakeDone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HandshakeDone")
            .field("from", &self.hello.from)
            .field("answered", &self.answered.is_ok())
            .finish_non_exhaustive()
    }
}

impl HandshakeWork {
    /// Reads the HELLO's message 1 and makes message 2: two or four
    /// P-384 multiplications and a key pair, about 1.8 ms of a core here.
    pub fn run<R: RngCore + CryptoRng>(self, rng: &mut R) -> HandshakeDone {
        let Self {
            hello,
            message,
            now_ms,
        } = self;
        let answered = match hello.pattern {
            Pattern::Nk => ServerHandshake::answer(rng, &hello.key, &message, now_ms, &[]),
            Pattern::Ik => PeerHandshake::answer(rng, &hello.key, &message, now_ms, &[]),
        };
        HandshakeDone { hello, answered }
    }
}

impl SecureEndpoint {
    /// The work for a HELLO that passed the gate.
    pub(super) fn hello_work(
        &self,
        now_ms: u64,
        from: SocketAddr,
        pattern: Pattern,
        sender_index: u32,
        message: &[u8],
    ) -> Option<HandshakeWork> {
        Some(HandshakeWork {
            hello: Hello {
                from,
                pattern,
                sender_index,
                len: message.len(),
                key: self.static_key.clone()?,
                ephemeral: super::screen::work_key(message),
            },
            message: message.to_vec(),
            now_ms,
        })
    }

    /// Opens the session (or moves one re-keyed) a worked-out HELLO asks
    /// for, if the replay guard has not seen it, and answers with a WELCOME.
    pub(super) fn admit_hello(
        &mut self,
        now: Instant,
        now_ms: u64,
        done: HandshakeDone,
    ) -> Result<(), Rejected> {
        let HandshakeDone {
            hello:
                Hello {
                    from,
                    pattern,
                    sender_index,
                    len: hello_len,
                    key,
                    ..
                },
            answered,
        } = done;
        let current = self.static_key.as_ref().ok_or(Rejected::Unexpected)?;
        if self.accept != Some(pattern) || !Arc::ptr_eq(current, &key) {
            return Err(Rejected::Unexpected);
        }
        let Accepted {
            keys,
            message: reply,
            initiator: remote_static,
            payload,
        } = answered
            .and_then(|answered| answered.admit(&mut self.replay, now_ms))
            .map_err(|_| Rejected::Unauthentic)?;
        if pattern == Pattern::Ik && remote_static.is_none() {
            return Err(Rejected::Unauthentic);
        }
        let session = Session::new(keys, Role::Responder);
        let local = match payload.first() {
            Some(&HELLO_FRESH) => {
                let source = Source::of(from);
                if self.per_source.get(&source).copied().unwrap_or(0)
                    >= self.config.max_sessions_per_source
                {
                    self.stats.handshakes_shed += 1;
                    return Err(Rejected::Shed);
                }
                let unconfirmed_since = self.config.unconfirmed_timeout.map(|_| now);
                if unconfirmed_since.is_some() {
                    self.evict_unconfirmed();
                }
                let index = self.fresh_index();
                *self.per_source.entry(source).or_default() += 1;
                if unconfirmed_since.is_some() {
                    self.unconfirmed.push_back((now, index));
                    self.unconfirmed_count += 1;
                }
                self.conns.insert(
                    index,
                    Box::new(Conn {
                        addr: from,
                        remote_static: remote_static.map(Box::new),
                        pattern,
                        role: Role::Responder,
                        state: State::Established {
                            remote_index: sender_index,
                            session,
                            rekey: None,
                            previous: None,
                        },
                        last_heard: now,
                        last_sent: now,
                        last_active: now,
                        carried: false,
                        probe: None,
                        source: Some(source),
                        unconfirmed_since,
                    }),
                );
                self.stats.sessions_opened += 1;
                index
            }
            Some(&HELLO_REKEY) if payload.len() == 1 + 4 + TOKEN_LEN => {
                let old = u32::from_be_bytes(payload[1..5].try_into().expect("4 bytes"));
                let conn = self.conns.get_mut(&old).ok_or(Rejected::UnknownSession)?;
                let same_peer = conn.remote_static.as_deref() == remote_static.as_ref()
                    && conn.role == Role::Responder;
                let State::Established {
                    session: current,
                    remote_index,
                    previous,
                    ..
                } = &mut conn.state
                else {
                    return Err(Rejected::UnknownSession);
                };
                // Only the holder of the old session knows its token. A
                // token from the keys before the last re-key means that
                // re-key's WELCOME was lost: the peer is still on those.
                let token = &payload[5..];
                if !same_peer {
                    return Err(Rejected::Unauthentic);
                }
                if rekey_token(current).as_slice() == token {
                    *previous = Some(Box::new(std::mem::replace(current, session)));
                } else if previous
                    .as_deref()
                    .is_some_and(|old| rekey_token(old).as_slice() == token)
                {
                    *current = session;
                } else {
                    return Err(Rejected::Unauthentic);
                }
                *remote_index = sender_index;
                conn.last_heard = now;
                self.stats.rekeys += 1;
                // A re-key from a new address moves the session no more
                // than a DATA packet from there would.
                self.heard_from(now, old, from, hello_len + wire::HELLO_HEADER_LEN);
                old
            }
            _ => return Err(Rejected::Malformed),
        };
        let welcome = Packet::Welcome {
            sender_index: local,
            receiver_index: sender_index,
            message: &reply,
        }
        .encode();
        // Smaller than the HELLO it answers, and counted against a new
        // address's budget.
        if self.may_send_to(local, from, welcome.len()) {
            self.outbox.push_back((from, welcome));
        }
        Ok(())
    }

    pub(super) fn read_welcome(
        &mut self,
        now: Instant,
        now_ms: u64,
        from: SocketAddr,
        sender_index: u32,
        receiver_index: u32,
        message: &[u8],
    ) -> Result<(), Rejected> {
        let conn = self
            .conns
            .get_mut(&receiver_index)
            .ok_or(Rejected::UnknownSession)?;
        let pending = match &mut conn.state {
            State::Handshaking { pending, .. } => pending,
            State::Established {
                rekey: Some(pending),
                ..
            } => pending,
            State::Established { rekey: None, .. } => return Err(Rejected::Unexpected),
        };
        // Read a copy: a forged WELCOME must not cost the real one its state.
        let expect = match &pending.expect {
            Expect::Server(e) => Expect::Server(e.clone()),
            Expect::Peer(e) => Expect::Peer(e.clone()),
        };
        let (keys, _payload) = match expect {
            Expect::Server(e) => e.read(message),
            Expect::Peer(e) => e.read(message),
        }
        .map_err(|_| Rejected::Unauthentic)?;
        let _ = now_ms;
        // A HELLO answered at its first try measured the round trip (and
        // the peer's P-384 work): the transport starts from it, as QUIC
        // starts from its handshake's.
        let measured = (pending.attempts == 1)
            .then(|| now.checked_duration_since(pending.next_retry - self.config.handshake_retry))
            .flatten();
        let mut session = Session::new(keys, Role::Initiator);
        conn.last_heard = now;
        // What waited for the handshake goes where the HELLO went; an
        // answer from elsewhere only starts a path challenge.
        let addr = conn.addr;
        if let State::Handshaking { queued, .. } = &mut conn.state {
            self.stats.sessions_opened += 1;
            for plaintext in std::mem::take(queued) {
                if let Ok(datagram) = wire::seal_data(&mut session, sender_index, &plaintext) {
                    self.outbox.push_back((addr, datagram));
                }
            }
        }
        // Keys being replaced are kept to open what the peer sealed with
        // them before it switched.
        let previous = match std::mem::replace(
            &mut conn.state,
            State::Established {
                remote_index: sender_index,
                session,
                rekey: None,
                previous: None,
            },
        ) {
            State::Established { session: old, .. } => {
                self.stats.rekeys += 1;
                Some(Box::new(old))
            }
            State::Handshaking { .. } => None,
        };
        if let State::Established { previous: slot, .. } = &mut conn.state {
            *slot = previous;
        }
        self.handshaking.remove(&receiver_index);
        if let Some(measured) = measured {
            self.transport
                .seed_rtt(now, PeerId(receiver_index), measured);
        }
        let len = message.len() + wire::WELCOME_HEADER_LEN;
        self.heard_from(now, receiver_index, from, len);
        Ok(())
    }

    pub(super) fn retry_hello(&mut self, now: Instant, now_ms: u64, index: u32) {
        let tries = self.config.handshake_tries;
        let Some(conn) = self.conns.get(&index) else {
            self.handshaking.remove(&index);
            return;
        };
        let attempts = match &conn.state {
            State::Handshaking { pending, .. } => pending.attempts,
            State::Established {
                rekey: Some(pending),
                ..
            } => pending.attempts,
            State::Established { rekey: None, .. } => return,
        };
        let rekeying = matches!(conn.state, State::Established { .. });
        if attempts >= tries {
            if rekeying {
                // Keep the old keys; try again when next due (as soon as
                // for keys that carried messages: they may have).
                self.handshaking.remove(&index);
                if let Some(Conn {
                    state: State::Established { rekey, .. },
                    carried,
                    ..
                }) = self.conns.get_mut(&index).map(|conn| &mut **conn)
                {
                    *rekey = None;
                    *carried = true;
                }
            } else {
                self.forget(PeerId(index));
            }
            return;
        }
        let (addr, pattern, remote) = (
            conn.addr,
            conn.pattern,
            conn.remote_static.as_deref().cloned(),
        );
        let Some(remote) = remote else { return };
        let payload = match &conn.state {
            State::Established {
                remote_index,
                session,
                ..
            } => rekey_payload(*remote_index, session),
            _ => vec![HELLO_FRESH],
        };
        let Ok((expect, mac1)) = self.hello(now, index, &remote, pattern, &payload, now_ms, addr)
        else {
            return;
        };
        let wait = self.config.handshake_retry * 2u32.saturating_pow(attempts.min(10));
        let next = Box::new(Pending {
            expect,
            attempts: attempts + 1,
            next_retry: now + wait,
            mac1,
        });
        if let Some(conn) = self.conns.get_mut(&index) {
            match &mut conn.state {
                State::Handshaking { pending, .. } => *pending = next,
                State::Established { rekey, .. } => *rekey = Some(next),
            }
        }
    }
    pub(super) fn start_rekey(&mut self, now: Instant, now_ms: u64, index: u32) {
        let Some(conn) = self.conns.get(&index) else {
            return;
        };
        let State::Established {
            remote_index,
            session,
            rekey: None,
            ..
        } = &conn.state
        else {
            return;
        };
        let Some(remote) = conn.remote_static.as_deref().cloned() else {
            return;
        };
        let payload = rekey_payload(*remote_index, session);
        let (addr, pattern) = (conn.addr, conn.pattern);
        let Ok((expect, mac1)) = self.hello(now, index, &remote, pattern, &payload, now_ms, addr)
        else {
            return;
        };
        if let Some(Conn {
            state: State::Established { rekey, .. },
            carried,
            ..
        }) = self.conns.get_mut(&index).map(|conn| &mut **conn)
        {
            *rekey = Some(Box::new(Pending {
                expect,
                attempts: 1,
                next_retry: now + self.config.handshake_retry,
                mac1,
            }));
            // What the new keys carry from now on is what counts for them.
            *carried = false;
            self.handshaking.insert(index);
        }
    }
    /// Builds a HELLO (with mac1, and mac2 if the responder gave us a
    /// cookie) and queues it; returns what reads the WELCOME, and mac1.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn hello(
        &mut self,
        now: Instant,
        index: u32,
        remote: &PublicKey,
        pattern: Pattern,
        payload: &[u8],
        now_ms: u64,
        addr: SocketAddr,
    ) -> Result<(Expect, Cookie), ConnectError> {
        let (expect, message) = match pattern {
            Pattern::Nk => {
                let (e, m) = ClientHello::start(&mut self.rng, remote, payload, now_ms)
                    .map_err(|e| ConnectError::Handshake(e.to_string()))?;
                (Expect::Server(e), m)
            }
            Pattern::Ik => {
                let identity = self.static_key.as_ref().ok_or(ConnectError::NoIdentity)?;
                let (e, m) = PeerHello::start(&mut self.rng, identity, remote, payload, now_ms)
                    .map_err(|e| ConnectError::Handshake(e.to_string()))?;
                (Expect::Peer(e), m)
            }
        };
        let mut datagram = Packet::Hello {
            pattern,
            sender_index: index,
            message: &message,
            macs: &[0; wire::HELLO_MACS_LEN],
        }
        .encode();
        let cookie = self.cookie_for(addr, now);
        let mac1 = cookie::stamp(
            &mut datagram,
            cookie::mac1_key(remote).as_ref(),
            cookie.as_ref(),
        );
        self.outbox.push_back((addr, datagram));
        Ok((expect, mac1))
    }
}

/// Proves, inside a new handshake, that the initiator holds the session it
/// asks to re-key.
pub(super) fn rekey_token(session: &Session) -> [u8; TOKEN_LEN] {
    let mut token = [0u8; TOKEN_LEN];
    Hkdf::<Sha384>::new(None, session.handshake_hash())
        .expand(b"udpchat rekey v1", &mut token)
        .expect("32 bytes is a valid HKDF-SHA384 length");
    token
}

pub(super) fn rekey_payload(remote_index: u32, session: &Session) -> Vec<u8> {
    let mut payload = Vec::with_capacity(1 + 4 + TOKEN_LEN);
    payload.push(HELLO_REKEY);
    payload.extend_from_slice(&remote_index.to_be_bytes());
    payload.extend_from_slice(&rekey_token(session));
    payload
}
