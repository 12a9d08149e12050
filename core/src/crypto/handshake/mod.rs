//! The two 1-RTT handshakes, as sans-IO state machines named for what they
//! wait for (rustls style): each step consumes its state and returns the
//! next, or a [`HandshakeError`].
//!
//! - **NK**, client to server ([`ClientHello`] -> [`ExpectServerHello`];
//!   [`ServerHandshake`]): the client knows the server's static key.
//!   `<- s` (pre-message), `-> e, es`, `<- e, ee`.
//! - **IK**, client to client ([`PeerHello`] -> [`ExpectPeerHello`];
//!   [`PeerHandshake`]): the initiator knows the responder's identity key
//!   and sends its own, encrypted. `<- s`, `-> e, es, s, ss`, `<- e, ee, se`.
//!   The responder learns the initiator's identity key, and the AEAD of
//!   message 1 proves the initiator holds its secret.
//!
//! Both end in [`Keys`] for a [`crate::crypto::session::Session`]. Protocol
//! names, prologue and primitives: [`crate::crypto::symmetric`].
//!
//! The responder is one call: it keeps no state for a message 1 it has not
//! accepted, and sends nothing for one it refuses. Message 1 carries the
//! initiator's clock (ms since the UNIX epoch) inside the AEAD; the
//! responder refuses it when more than [`FRESHNESS_MS`] from its own clock
//! ([`HandshakeError::Stale`]) or when its ephemeral key was already
//! accepted ([`HandshakeError::Replayed`], via the [`ReplayGuard`]).
//!
//! Message 1 is padded to at least [`MIN_MESSAGE1_LEN`] (256) bytes and
//! message 2 is at most [`MAX_MESSAGE2_LEN`] (240) bytes, so a responder never sends more
//! than it received (no amplification), even counting the larger
//! `wire::Packet::Welcome` header.
//!
//! ```text
//! public keys: 49-byte SEC1 compressed P-384 points; AEAD(...) adds a
//! 16-byte tag; all integers big-endian.
//!
//! hello body (the plaintext of message 1's last AEAD)
//!   0..8     timestamp_ms   u64  the initiator's clock
//!   8..10    payload_len    u16  <= MAX_HELLO_PAYLOAD
//!   10..     payload, then zero bytes up to the padded length
//!
//! NK message 1 (client -> server), MIN_MESSAGE1_LEN ..= 1099 bytes
//!   0..49    e              the client's ephemeral key
//!   49..     AEAD(hello body)             key from es
//! NK message 2 (server -> client), 65 ..= MAX_MESSAGE2_LEN bytes
//!   0..49    e              the server's ephemeral key
//!   49..     AEAD(payload)                key from es, ee
//!
//! IK message 1 (initiator -> responder), MIN_MESSAGE1_LEN ..= 1164 bytes
//!   0..49    e              the initiator's ephemeral key
//!   49..114  AEAD(s)        the initiator's identity key, key from es
//!   114..    AEAD(hello body)             key from es, ss
//! IK message 2 (responder -> initiator), 65 ..= MAX_MESSAGE2_LEN bytes
//!   0..49    e              the responder's ephemeral key
//!   49..     AEAD(payload)                key from es, ss, ee, se
//! ```

mod ik;
mod nk;
mod noise;
mod replay_guard;

use std::fmt;

pub use ik::{ExpectPeerHello, PeerHandshake, PeerHello};
pub use nk::{ClientHello, ExpectServerHello, ServerHandshake};
pub use noise::{Accepted, Answered};
pub use replay_guard::{ReplayGuard, FRESHNESS_MS, REPLAY_GUARD_CAPACITY};

use super::keys::PUBLIC_KEY_LEN;
use super::symmetric::{CipherKey, HASH_LEN, TAG_LEN};

/// Message 1 is padded to at least this many bytes.
pub const MIN_MESSAGE1_LEN: usize = 256;
/// Message 2 is never longer than this; 16 bytes below [`MIN_MESSAGE1_LEN`]
/// leave room for the Welcome datagram's longer header.
pub const MAX_MESSAGE2_LEN: usize = 240;
/// The most payload a responder can send in message 2.
pub const MAX_WELCOME_PAYLOAD: usize = MAX_MESSAGE2_LEN - PUBLIC_KEY_LEN - TAG_LEN;
/// The most payload an initiator can send in message 1 (an IK message 1
/// then still fits a 1200-byte datagram).
pub const MAX_HELLO_PAYLOAD: usize = 1024;

const HELLO_HEADER_LEN: usize = 10;

/// Why a handshake message was refused. A responder that gets any of these
/// sends nothing back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HandshakeError {
    #[error("handshake message too short: {len} bytes, at least {min} expected")]
    Truncated { len: usize, min: usize },
    #[error("handshake message carries an invalid P-384 public key")]
    BadPoint,
    #[error("handshake message does not decrypt: wrong key, or tampered with")]
    Decrypt,
    #[error("handshake message is stale: sent at {timestamp_ms} ms, now {now_ms} ms; are both clocks right?")]
    Stale { timestamp_ms: u64, now_ms: u64 },
    #[error("handshake message was already used (replayed)")]
    Replayed,
    #[error("handshake message is malformed: {0}")]
    Malformed(&'static str),
    #[error("handshake payload of {len} bytes is too large; at most {max} fit")]
    PayloadTooLarge { len: usize, max: usize },
}

/// The outcome of a handshake: one AES-256-GCM key per direction and the
/// handshake hash (which both sides share and may use to bind other data
/// to this session). Keys are wiped when dropped.
pub struct Keys {
    pub(crate) initiator_to_responder: CipherKey,
    pub(crate) responder_to_initiator: CipherKey,
    handshake_hash: [u8; HASH_LEN],
    established_ms: u64,
}

impl Keys {
    /// The final Noise handshake hash `h`.
    pub fn handshake_hash(&self) -> &[u8; HASH_LEN] {
        &self.handshake_hash
    }

    /// When this side considers the session started (the `now_ms` it gave
    /// to `start` or `respond`), for the age-based rekey hint.
    pub fn established_ms(&self) -> u64 {
        self.established_ms
    }
}

impl fmt::Debug for Keys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keys")
            .field("established_ms", &self.established_ms)
            .finish_non_exhaustive()
    }
}

/// The hello body for `payload`, padded so message 1 (of which `prefix_len`
/// bytes come before the body's AEAD) is at least [`MIN_MESSAGE1_LEN`].
fn hello_body(
    timestamp_ms: u64,
    payload: &[u8],
    prefix_len: usize,
) -> Result<zeroize::Zeroizing<Vec<u8>>, HandshakeError> {
    if payload.len() > MAX_HELLO_PAYLOAD {
        return Err(HandshakeError::PayloadTooLarge {
            len: payload.len(),
            max: MAX_HELLO_PAYLOAD,
        });
    }
    let len = (HELLO_HEADER_LEN + payload.len()).max(MIN_MESSAGE1_LEN - prefix_len - TAG_LEN);
    let mut body = zeroize::Zeroizing::new(Vec::with_capacity(len));
    body.extend_from_slice(&timestamp_ms.to_be_bytes());
    body.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    body.extend_from_slice(payload);
    body.resize(len, 0);
    Ok(body)
}

/// The timestamp and payload of a decrypted hello body.
fn read_hello_body(body: &[u8]) -> Result<(u64, Vec<u8>), HandshakeError> {
    if body.len() < HELLO_HEADER_LEN {
        return Err(HandshakeError::Malformed("hello body too short"));
    }
    let mut timestamp = [0u8; 8];
    timestamp.copy_from_slice(&body[..8]);
    let payload_len = usize::from(u16::from_be_bytes([body[8], body[9]]));
    let payload = body[HELLO_HEADER_LEN..]
        .get(..payload_len)
        .ok_or(HandshakeError::Malformed("payload length past the end"))?;
    Ok((u64::from_be_bytes(timestamp), payload.to_vec()))
}

#[cfg(test)]
mod tests;
