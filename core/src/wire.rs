//! The outer datagram: every UDP datagram udpchat sends is one [`Packet`]:
//! a handshake message 1 (HELLO), a handshake message 2 (WELCOME), or a
//! session-sealed DATA packet. Parsing is zero-copy and turns any bytes
//! into a packet or a [`WireError`], never a panic.
//!
//! Every integer is big-endian and every header field has a fixed width.
//!
//! ```text
//! all kinds
//!   0       version          u8   = 1 (anything else is dropped unread)
//!   1       kind             u8   HELLO = 1, WELCOME = 2, DATA = 3
//! HELLO (7-byte header, the handshake message 1, then two MACs)
//!   2       pattern          u8   NK = 0 (to the server), IK = 1 (to a peer)
//!   3..7    sender_index     u32  the initiator's index for the new session
//!   7..n-32 message               >= handshake::MIN_MESSAGE1_LEN bytes
//!   n-32..  mac1, mac2            16 bytes each (see `secure::cookie`)
//! WELCOME (10-byte header, then the handshake message 2 to the end)
//!   2..6    sender_index     u32  the responder's index for the session
//!   6..10   receiver_index   u32  the initiator's index, from its HELLO
//!   10..    message               65..=handshake::MAX_MESSAGE2_LEN bytes
//! KEY REQUEST (asks a server for its static key, for trust on first use)
//!   2..128  padding               zero bytes, so the answer is smaller
//! SERVER KEY (the answer: the server's static public key, unauthenticated)
//!   2..51   key                   SEC1 compressed P-384 point
//! COOKIE REPLY (a responder under load asks for a HELLO with a cookie)
//!   2..6    receiver_index   u32  the initiator's index, from its HELLO
//!   6..22   mac1                  the HELLO's mac1, echoed
//!   22..38  cookie                16 bytes, for mac2 of the next HELLO
//! PROBE (a connectivity check between two clients the server introduced)
//!   2       answer           u8   0 = a check, 1 = the answer to one
//!   3..11   meeting          u64  the meeting's id, from the server
//!   11..19  nonce            u64  random per check; its answer echoes it
//!   19..35  mac                   HMAC-SHA384(meeting key, bytes 0..19)[..16]
//! RELAY (a datagram of two clients' own session, through the server)
//!   2..10   meeting          u64  the meeting's id, from the server
//!   10..    inner                 the whole datagram (HELLO, WELCOME or
//!                                 DATA of the clients' session), relayed
//!                                 as it is
//! DATA (14-byte header, then the sealed payload to the end)
//!   2..6    receiver_index   u32  the index the receiver chose for the session
//!   6..14   counter          u64  the sender's packet counter (the AEAD nonce)
//!   14..    ciphertext            AES-256-GCM with its 16-byte tag; the
//!                                 associated data is the header, bytes 0..14
//! ```
//!
//! Each side picks its own index for a session and tells the other in its
//! HELLO or WELCOME; DATA carries the receiver's index, so a session is
//! found by index, not by address, and survives an address change.
//!
//! A WELCOME datagram is never larger than the HELLO it answers
//! ([`crate::crypto::handshake::MAX_MESSAGE2_LEN`] + 10 <
//! [`crate::crypto::handshake::MIN_MESSAGE1_LEN`] + 7): no amplification.

use crate::crypto::handshake::{MAX_MESSAGE2_LEN, MIN_MESSAGE1_LEN};
use crate::crypto::keys::PUBLIC_KEY_LEN;
use crate::crypto::session::{Session, SessionError};
use crate::crypto::symmetric::TAG_LEN;

/// The only wire version this build speaks.
pub const VERSION: u8 = 1;
const KIND_HELLO: u8 = 1;
const KIND_WELCOME: u8 = 2;
const KIND_DATA: u8 = 3;
const KIND_KEY_REQUEST: u8 = 4;
const KIND_SERVER_KEY: u8 = 5;
const KIND_COOKIE_REPLY: u8 = 6;
const KIND_PROBE: u8 = 7;
const KIND_RELAY: u8 = 8;

/// The two MACs that end a HELLO: mac1 (anyone who knows the responder's
/// public key can make it) and mac2 (needs a cookie from the responder).
pub const MAC_LEN: usize = 16;
pub const HELLO_MACS_LEN: usize = 2 * MAC_LEN;
pub const COOKIE_REPLY_LEN: usize = 2 + 4 + 2 * MAC_LEN;

/// A KEY REQUEST is padded to this size, so the SERVER KEY answering it
/// (2 + 49 bytes) is smaller: no amplification.
pub const KEY_REQUEST_LEN: usize = 128;

pub const HELLO_HEADER_LEN: usize = 7;
pub const WELCOME_HEADER_LEN: usize = 10;
pub const DATA_HEADER_LEN: usize = 14;
/// A PROBE's bytes before its MAC, and in all.
pub const PROBE_SIGNED_LEN: usize = 19;
pub const PROBE_LEN: usize = PROBE_SIGNED_LEN + MAC_LEN;
pub const RELAY_HEADER_LEN: usize = 10;
/// Bytes a DATA packet adds to its plaintext: header and AEAD tag. The
/// transport's largest payload is [`MAX_DATAGRAM`] - `DATA_OVERHEAD`.
pub const DATA_OVERHEAD: usize = DATA_HEADER_LEN + TAG_LEN;
/// The largest datagram udpchat sends.
pub const MAX_DATAGRAM: usize = 1200;

// The largest WELCOME, and a COOKIE REPLY, are smaller than the smallest
// HELLO: no amplification.
const _: () = assert!(WELCOME_HEADER_LEN + MAX_MESSAGE2_LEN < HELLO_HEADER_LEN + MIN_MESSAGE1_LEN);
const _: () = assert!(COOKIE_REPLY_LEN < HELLO_HEADER_LEN + MIN_MESSAGE1_LEN);

/// Which handshake a HELLO starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Pattern {
    /// Client to server (`crypto::handshake::ClientHello`).
    Nk,
    /// Client to client (`crypto::handshake::PeerHello`).
    Ik,
}

impl Pattern {
    fn to_wire(self) -> u8 {
        match self {
            Pattern::Nk => 0,
            Pattern::Ik => 1,
        }
    }

    fn from_wire(byte: u8) -> Option<Pattern> {
        match byte {
            0 => Some(Pattern::Nk),
            1 => Some(Pattern::Ik),
            _ => None,
        }
    }
}

/// One datagram, borrowing its variable part from the received bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Packet<'a> {
    Hello {
        pattern: Pattern,
        sender_index: u32,
        message: &'a [u8],
        /// mac1 then mac2 ([`HELLO_MACS_LEN`] bytes).
        macs: &'a [u8],
    },
    Welcome {
        sender_index: u32,
        receiver_index: u32,
        message: &'a [u8],
    },
    Data {
        receiver_index: u32,
        counter: u64,
        ciphertext: &'a [u8],
    },
    KeyRequest,
    ServerKey {
        key: &'a [u8],
    },
    CookieReply {
        receiver_index: u32,
        mac1: &'a [u8],
        cookie: &'a [u8],
    },
    Probe {
        answer: bool,
        meeting: u64,
        nonce: u64,
        /// The bytes the MAC covers, and the MAC.
        signed: &'a [u8],
        mac: &'a [u8],
    },
    Relay {
        meeting: u64,
        inner: &'a [u8],
    },
}

/// Why a datagram is not a udpchat packet. The receiver drops it silently.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    #[error("datagram of {len} bytes is too short for a {what}")]
    Truncated { what: &'static str, len: usize },
    #[error("unknown wire version {0}")]
    Version(u8),
    #[error("unknown packet kind {0}")]
    Kind(u8),
    #[error("unknown handshake pattern {0}")]
    Pattern(u8),
    #[error("handshake message 2 of {len} bytes is longer than {max}")]
    TooLong { len: usize, max: usize },
}

impl<'a> Packet<'a> {
    pub fn parse(bytes: &'a [u8]) -> Result<Packet<'a>, WireError> {
        let truncated = |what| WireError::Truncated {
            what,
            len: bytes.len(),
        };
        let (&version, rest) = bytes.split_first().ok_or(truncated("packet"))?;
        if version != VERSION {
            return Err(WireError::Version(version));
        }
        let (&kind, _) = rest.split_first().ok_or(truncated("packet"))?;
        match kind {
            KIND_HELLO => {
                if bytes.len() < HELLO_HEADER_LEN + MIN_MESSAGE1_LEN + HELLO_MACS_LEN {
                    return Err(truncated("HELLO"));
                }
                let pattern = Pattern::from_wire(bytes[2]).ok_or(WireError::Pattern(bytes[2]))?;
                let macs_at = bytes.len() - HELLO_MACS_LEN;
                Ok(Packet::Hello {
                    pattern,
                    sender_index: u32_at(bytes, 3),
                    message: &bytes[HELLO_HEADER_LEN..macs_at],
                    macs: &bytes[macs_at..],
                })
            }
            KIND_WELCOME => {
                let message = bytes
                    .get(WELCOME_HEADER_LEN..)
                    .filter(|m| m.len() >= PUBLIC_KEY_LEN + TAG_LEN)
                    .ok_or(truncated("WELCOME"))?;
                if message.len() > MAX_MESSAGE2_LEN {
                    return Err(WireError::TooLong {
                        len: message.len(),
                        max: MAX_MESSAGE2_LEN,
                    });
                }
                Ok(Packet::Welcome {
                    sender_index: u32_at(bytes, 2),
                    receiver_index: u32_at(bytes, 6),
                    message,
                })
            }
            KIND_DATA => {
                if bytes.len() < DATA_OVERHEAD {
                    return Err(truncated("DATA"));
                }
                let mut counter = [0u8; 8];
                counter.copy_from_slice(&bytes[6..14]);
                Ok(Packet::Data {
                    receiver_index: u32_at(bytes, 2),
                    counter: u64::from_be_bytes(counter),
                    ciphertext: &bytes[DATA_HEADER_LEN..],
                })
            }
            KIND_KEY_REQUEST if bytes.len() >= KEY_REQUEST_LEN => Ok(Packet::KeyRequest),
            KIND_KEY_REQUEST => Err(truncated("KEY REQUEST")),
            KIND_SERVER_KEY if bytes.len() == 2 + PUBLIC_KEY_LEN => {
                Ok(Packet::ServerKey { key: &bytes[2..] })
            }
            KIND_SERVER_KEY => Err(truncated("SERVER KEY")),
            KIND_COOKIE_REPLY if bytes.len() == COOKIE_REPLY_LEN => Ok(Packet::CookieReply {
                receiver_index: u32_at(bytes, 2),
                mac1: &bytes[6..6 + MAC_LEN],
                cookie: &bytes[6 + MAC_LEN..],
            }),
            KIND_COOKIE_REPLY => Err(truncated("COOKIE REPLY")),
            KIND_PROBE if bytes.len() == PROBE_LEN && bytes[2] <= 1 => Ok(Packet::Probe {
                answer: bytes[2] == 1,
                meeting: u64_at(bytes, 3),
                nonce: u64_at(bytes, 11),
                signed: &bytes[..PROBE_SIGNED_LEN],
                mac: &bytes[PROBE_SIGNED_LEN..],
            }),
            KIND_PROBE => Err(truncated("PROBE")),
            KIND_RELAY if bytes.len() > RELAY_HEADER_LEN => Ok(Packet::Relay {
                meeting: u64_at(bytes, 2),
                inner: &bytes[RELAY_HEADER_LEN..],
            }),
            KIND_RELAY => Err(truncated("RELAY")),
            other => Err(WireError::Kind(other)),
        }
    }

    /// The datagram bytes.
    pub fn encode(&self) -> Vec<u8> {
        match *self {
            Packet::Hello {
                pattern,
                sender_index,
                message,
                macs,
            } => {
                let mut out = Vec::with_capacity(HELLO_HEADER_LEN + message.len() + macs.len());
                out.extend_from_slice(&[VERSION, KIND_HELLO, pattern.to_wire()]);
                out.extend_from_slice(&sender_index.to_be_bytes());
                out.extend_from_slice(message);
                out.extend_from_slice(macs);
                out
            }
            Packet::Welcome {
                sender_index,
                receiver_index,
                message,
            } => {
                let mut out = Vec::with_capacity(WELCOME_HEADER_LEN + message.len());
                out.extend_from_slice(&[VERSION, KIND_WELCOME]);
                out.extend_from_slice(&sender_index.to_be_bytes());
                out.extend_from_slice(&receiver_index.to_be_bytes());
                out.extend_from_slice(message);
                out
            }
            Packet::Data {
                receiver_index,
                counter,
                ciphertext,
            } => {
                let mut out = Vec::with_capacity(DATA_HEADER_LEN + ciphertext.len());
                out.extend_from_slice(&data_header(receiver_index, counter));
                out.extend_from_slice(ciphertext);
                out
            }
            Packet::KeyRequest => {
                let mut out = vec![0u8; KEY_REQUEST_LEN];
                out[0] = VERSION;
                out[1] = KIND_KEY_REQUEST;
                out
            }
            Packet::ServerKey { key } => {
                let mut out = Vec::with_capacity(2 + key.len());
                out.extend_from_slice(&[VERSION, KIND_SERVER_KEY]);
                out.extend_from_slice(key);
                out
            }
            Packet::CookieReply {
                receiver_index,
                mac1,
                cookie,
            } => {
                let mut out = Vec::with_capacity(COOKIE_REPLY_LEN);
                out.extend_from_slice(&[VERSION, KIND_COOKIE_REPLY]);
                out.extend_from_slice(&receiver_index.to_be_bytes());
                out.extend_from_slice(mac1);
                out.extend_from_slice(cookie);
                out
            }
            Packet::Probe { signed, mac, .. } => {
                let mut out = Vec::with_capacity(PROBE_LEN);
                out.extend_from_slice(signed);
                out.extend_from_slice(mac);
                out
            }
            Packet::Relay { meeting, inner } => relay_datagram(meeting, inner),
        }
    }
}

/// The bytes of a PROBE that its MAC covers.
pub fn probe_signed(answer: bool, meeting: u64, nonce: u64) -> [u8; PROBE_SIGNED_LEN] {
    let mut out = [0u8; PROBE_SIGNED_LEN];
    out[0] = VERSION;
    out[1] = KIND_PROBE;
    out[2] = u8::from(answer);
    out[3..11].copy_from_slice(&meeting.to_be_bytes());
    out[11..19].copy_from_slice(&nonce.to_be_bytes());
    out
}

/// `inner` wrapped in a RELAY header for `meeting`.
pub fn relay_datagram(meeting: u64, inner: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(RELAY_HEADER_LEN + inner.len());
    out.extend_from_slice(&[VERSION, KIND_RELAY]);
    out.extend_from_slice(&meeting.to_be_bytes());
    out.extend_from_slice(inner);
    out
}

/// The DATA header, which is also the packet's AEAD associated data.
pub fn data_header(receiver_index: u32, counter: u64) -> [u8; DATA_HEADER_LEN] {
    let mut header = [0u8; DATA_HEADER_LEN];
    header[0] = VERSION;
    header[1] = KIND_DATA;
    header[2..6].copy_from_slice(&receiver_index.to_be_bytes());
    header[6..14].copy_from_slice(&counter.to_be_bytes());
    header
}

/// Seals `plaintext` in `session` as a whole DATA datagram for the peer
/// that knows the session as `receiver_index`.
pub fn seal_data(
    session: &mut Session,
    receiver_index: u32,
    plaintext: &[u8],
) -> Result<Vec<u8>, SessionError> {
    let header = data_header(receiver_index, session.next_counter());
    let mut out = Vec::with_capacity(DATA_HEADER_LEN + plaintext.len() + TAG_LEN);
    out.extend_from_slice(&header);
    out.extend_from_slice(plaintext);
    let counter = session.seal_in_place(&mut out, DATA_HEADER_LEN)?;
    debug_assert_eq!(header, data_header(receiver_index, counter));
    Ok(out)
}

/// Opens the fields of a parsed [`Packet::Data`] in `session`.
pub fn open_data(
    session: &mut Session,
    receiver_index: u32,
    counter: u64,
    ciphertext: &[u8],
) -> Result<Vec<u8>, SessionError> {
    session.open(counter, &data_header(receiver_index, counter), ciphertext)
}

fn u64_at(bytes: &[u8], at: usize) -> u64 {
    let mut out = [0u8; 8];
    out.copy_from_slice(&bytes[at..at + 8]);
    u64::from_be_bytes(out)
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    let mut out = [0u8; 4];
    out.copy_from_slice(&bytes[at..at + 4]);
    u32::from_be_bytes(out)
}

#[cfg(test)]
mod tests;
