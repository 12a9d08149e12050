//! The envelope every datagram's message travels in: a CBOR map
//! `{"c": tag, "i": id, "k": kind, "b": body}`.
//!
//! - `c` is the command tag (a registry name: lowercase letters, digits and
//!   `-`, at most [`MAX_TAG`] bytes);
//! - `i` is the request id the sender chose; a reply or error carries the id
//!   of the request it answers;
//! - `k` is the [`Kind`] as a small integer;
//! - `b` is the command's own CBOR body, as a byte string, so the envelope
//!   can be decoded and routed without knowing any command's types.

use serde::{Deserialize, Serialize};

use crate::cbor::{self, DecodeError};

/// The largest command body accepted (a chat message is far smaller).
pub const MAX_BODY: usize = 96 * 1024;
/// The largest encoded envelope accepted.
pub const MAX_ENVELOPE: usize = MAX_BODY + 256;
/// The longest command tag.
pub const MAX_TAG: usize = 32;

/// What an envelope is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Asks the receiver to run a command; a [`Kind::Reply`] or
    /// [`Kind::Error`] with the same id comes back.
    Request,
    /// The successful answer to a request.
    Reply,
    /// The failed answer to a request: the body is a [`crate::error::CommandError`].
    Error,
    /// One-way: the transport's acknowledgement is the only answer.
    Push,
}

impl Kind {
    fn to_wire(self) -> u8 {
        match self {
            Kind::Request => 0,
            Kind::Reply => 1,
            Kind::Error => 2,
            Kind::Push => 3,
        }
    }

    fn from_wire(byte: u8) -> Option<Kind> {
        Some(match byte {
            0 => Kind::Request,
            1 => Kind::Reply,
            2 => Kind::Error,
            3 => Kind::Push,
            _ => return None,
        })
    }
}

/// A decoded envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    pub cmd: String,
    pub id: u64,
    pub kind: Kind,
    pub body: Vec<u8>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Wire {
    c: String,
    i: u64,
    k: u8,
    #[serde(with = "serde_bytes")]
    b: Vec<u8>,
}

#[derive(Serialize)]
struct WireRef<'a> {
    c: &'a str,
    i: u64,
    k: u8,
    #[serde(with = "serde_bytes")]
    b: &'a [u8],
}

/// Why an envelope was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EnvelopeError {
    #[error("envelope: {0}")]
    Decode(#[from] DecodeError),
    #[error("envelope: bad command tag {0:?}")]
    BadTag(String),
    #[error("envelope: unknown kind {0}")]
    BadKind(u8),
    #[error("envelope: body of {size} bytes is more than the {max} accepted")]
    BodyTooLarge { size: usize, max: usize },
    /// The tag is well formed but no command of that name is registered.
    #[error("unknown command: {0}")]
    UnknownCommand(String),
}

impl Envelope {
    pub fn new(cmd: impl Into<String>, id: u64, kind: Kind, body: Vec<u8>) -> Envelope {
        Envelope {
            cmd: cmd.into(),
            id,
            kind,
            body,
        }
    }

    /// Encodes the envelope.
    pub fn encode(&self) -> Vec<u8> {
        Self::encode_parts(&self.cmd, self.id, self.kind, &self.body)
    }

    /// Encodes an envelope from borrowed parts, without building one.
    pub fn encode_parts(cmd: &str, id: u64, kind: Kind, body: &[u8]) -> Vec<u8> {
        cbor::encode(&WireRef {
            c: cmd,
            i: id,
            k: kind.to_wire(),
            b: body,
        })
    }

    /// Decodes one envelope; any malformed input is an error, never a panic.
    pub fn decode(bytes: &[u8]) -> Result<Envelope, EnvelopeError> {
        let wire: Wire = cbor::decode(bytes, MAX_ENVELOPE)?;
        if !valid_tag(&wire.c) {
            return Err(EnvelopeError::BadTag(wire.c));
        }
        let kind = Kind::from_wire(wire.k).ok_or(EnvelopeError::BadKind(wire.k))?;
        if wire.b.len() > MAX_BODY {
            return Err(EnvelopeError::BodyTooLarge {
                size: wire.b.len(),
                max: MAX_BODY,
            });
        }
        Ok(Envelope {
            cmd: wire.c,
            id: wire.i,
            kind,
            body: wire.b,
        })
    }
}

/// The id of a request that did not decode as an envelope, when one can
/// still be read: the requester is then answered with an error rather
/// than left waiting for a reply that never comes.
pub fn request_id(bytes: &[u8]) -> Option<u64> {
    #[derive(Deserialize)]
    struct Loose {
        i: u64,
        k: u8,
    }
    let loose: Loose = cbor::decode(bytes, bytes.len()).ok()?;
    (Kind::from_wire(loose.k) == Some(Kind::Request)).then_some(loose.i)
}

/// A tag is 1 to [`MAX_TAG`] bytes of `a-z`, `0-9` and `-`.
pub fn valid_tag(tag: &str) -> bool {
    !tag.is_empty()
        && tag.len() <= MAX_TAG
        && tag
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> Envelope {
        Envelope::new("send", 42, Kind::Request, cbor::encode(&("bob", "hi")))
    }

    #[test]
    fn a_malformed_request_still_gives_its_id_when_it_has_one() {
        #[derive(Serialize)]
        struct Odd<'a> {
            c: &'a str,
            i: u64,
            k: u8,
            b: serde_bytes::ByteBuf,
            extra: u8,
        }
        let odd = |c, k, body: Vec<u8>| {
            cbor::encode(&Odd {
                c,
                i: 77,
                k,
                b: serde_bytes::ByteBuf::from(body),
                extra: 1,
            })
        };
        // An unknown field, a bad tag, a body too large: the id is there.
        for bytes in [
            odd("list", 0, vec![]),
            odd("BAD TAG", 0, vec![]),
            odd("list", 0, vec![0; MAX_BODY + 1]),
        ] {
            assert!(Envelope::decode(&bytes).is_err());
            assert_eq!(request_id(&bytes), Some(77));
        }
        // Not a request, or no id at all: nobody waits for an answer.
        assert_eq!(request_id(&odd("list", 3, vec![])), None);
        assert_eq!(request_id(&cbor::encode(&("list", 1))), None);
        assert_eq!(request_id(b"\xff\x00"), None);
    }

    #[test]
    fn round_trip() {
        let env = sample();
        assert_eq!(Envelope::decode(&env.encode()).unwrap(), env);
    }

    #[test]
    fn trailing_bytes_are_rejected() {
        let mut bytes = sample().encode();
        bytes.extend_from_slice(&[0, 1]);
        assert_eq!(
            Envelope::decode(&bytes),
            Err(EnvelopeError::Decode(DecodeError::TrailingBytes(2)))
        );
    }

    #[test]
    fn oversized_input_is_rejected_before_decoding() {
        let env = Envelope::new("send", 1, Kind::Push, vec![7; MAX_ENVELOPE]);
        assert!(matches!(
            Envelope::decode(&env.encode()),
            Err(EnvelopeError::Decode(DecodeError::TooLarge { .. }))
        ));
    }

    #[test]
    fn bad_tags_and_kinds_are_typed_errors() {
        let bytes = Envelope::encode_parts("Send Now", 1, Kind::Request, &[]);
        assert!(matches!(
            Envelope::decode(&bytes),
            Err(EnvelopeError::BadTag(_))
        ));
        let bytes = cbor::encode(&WireRef {
            c: "list",
            i: 1,
            k: 9,
            b: &[],
        });
        assert_eq!(Envelope::decode(&bytes), Err(EnvelopeError::BadKind(9)));
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let _ = Envelope::decode(&bytes);
        }

        #[test]
        fn truncated_and_flipped_envelopes_never_panic(
            body in proptest::collection::vec(any::<u8>(), 0..512),
            cut in any::<prop::sample::Index>(),
            flip in any::<prop::sample::Index>(),
            bit in 0u8..8,
        ) {
            let bytes = Envelope::new("message", 9, Kind::Push, body).encode();
            let cut_at = cut.index(bytes.len() + 1);
            let _ = Envelope::decode(&bytes[..cut_at]);
            let mut flipped = bytes.clone();
            let i = flip.index(flipped.len());
            flipped[i] ^= 1 << bit;
            let _ = Envelope::decode(&flipped);
            // A strict prefix is never accepted as a whole envelope.
            if cut_at < bytes.len() {
                prop_assert!(Envelope::decode(&bytes[..cut_at]).is_err());
            }
        }
    }
}
