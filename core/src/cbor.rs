//! The one CBOR codec: envelopes and every command body are encoded and
//! decoded here, so size limits and trailing-byte checks apply everywhere.

use serde::{de::DeserializeOwned, Serialize};

/// Why bytes could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The input is larger than the decoder accepts.
    #[error("{size} bytes is more than the {max} accepted")]
    TooLarge { size: usize, max: usize },
    /// The bytes are not CBOR of the expected shape.
    #[error("malformed CBOR: {0}")]
    Malformed(String),
    /// A complete value was followed by more bytes.
    #[error("{0} trailing bytes after the value")]
    TrailingBytes(usize),
}

/// Scratch room kept per thread between encodings, at most.
const KEPT_SCRATCH: usize = 64 * 1024;

thread_local! {
    static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Encodes a value as CBOR.
///
/// The value is written into this thread's scratch buffer and copied out
/// at its size: one allocation, where writing into a growing `Vec` took
/// one for every doubling (five for a 1 KiB message).
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    SCRATCH.with(|scratch| match scratch.try_borrow_mut() {
        Ok(mut scratch) => {
            scratch.clear();
            write(value, &mut scratch);
            let out = scratch.to_vec();
            if scratch.capacity() > KEPT_SCRATCH {
                *scratch = Vec::new();
            }
            out
        }
        // Encoding from within a Serialize impl: no scratch to share.
        Err(_) => {
            let mut out = Vec::new();
            write(value, &mut out);
            out
        }
    })
}

fn write<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) {
    // Writing into a Vec cannot fail, and our types have no fallible
    // Serialize impls (no maps with non-string keys, no custom errors).
    ciborium::ser::into_writer(value, out).expect("CBOR encoding into a Vec cannot fail");
}

/// Decodes exactly one CBOR value of at most `max` bytes.
pub fn decode<T: DeserializeOwned>(bytes: &[u8], max: usize) -> Result<T, DecodeError> {
    if bytes.len() > max {
        return Err(DecodeError::TooLarge {
            size: bytes.len(),
            max,
        });
    }
    let mut rest = bytes;
    // The recursion limit keeps hostile nesting from exhausting the stack.
    let value = ciborium::de::from_reader_with_recursion_limit(&mut rest, 32)
        .map_err(|e: ciborium::de::Error<std::io::Error>| DecodeError::Malformed(e.to_string()))?;
    if !rest.is_empty() {
        return Err(DecodeError::TrailingBytes(rest.len()));
    }
    Ok(value)
}

/// Decodes a command body (bounded by [`crate::envelope::MAX_BODY`]).
pub fn decode_body<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, DecodeError> {
    decode(bytes, crate::envelope::MAX_BODY)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_rejects_trailing_bytes() {
        let bytes = encode(&("alice", 7u32));
        let back: (String, u32) = decode(&bytes, 1024).unwrap();
        assert_eq!(back, ("alice".to_string(), 7));
        let mut longer = bytes.clone();
        longer.push(0);
        assert_eq!(
            decode::<(String, u32)>(&longer, 1024),
            Err(DecodeError::TrailingBytes(1))
        );
        assert!(matches!(
            decode::<(String, u32)>(&bytes, 2),
            Err(DecodeError::TooLarge { .. })
        ));
    }

    #[test]
    fn encoding_inside_an_encoding_and_after_a_large_one_gives_the_same_bytes() {
        // A body encoded inside another value's Serialize (as a nested
        // packet may be) finds the scratch taken and goes without it.
        struct Nested(u32);
        impl Serialize for Nested {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                serde_bytes::Bytes::new(&encode(&self.0)).serialize(s)
            }
        }
        let nested = encode(&Nested(7));
        let mut inner = Vec::new();
        ciborium::ser::into_writer(&7u32, &mut inner).unwrap();
        let mut plain = Vec::new();
        ciborium::ser::into_writer(&serde_bytes::Bytes::new(&inner), &mut plain).unwrap();
        assert_eq!(nested, plain);
        // A value larger than the scratch kept, then a small one.
        let large = "x".repeat(2 * KEPT_SCRATCH);
        assert_eq!(
            decode::<String>(&encode(&large), usize::MAX).unwrap(),
            large
        );
        assert_eq!(encode(&1u8), [1]);
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_crash() {
        let bytes = vec![0x81u8; 100_000]; // arrays nested 100k deep
        assert!(decode::<ciborium::Value>(&bytes, usize::MAX).is_err());
    }
}
