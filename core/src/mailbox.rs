//! What travels for offline delivery: the prekeys a client publishes, the
//! bundle a sender fetches to seal a message for an offline user, and a
//! stored message as the server keeps and hands it out. The server sees
//! only sealed bytes (see `crypto::sealed`).

use serde::{Deserialize, Serialize};

use crate::crypto::keys::PublicKey;
use crate::crypto::sealed::{OneTimePrekey, SignedPrekey};

/// One-time prekeys a client keeps published on the server.
pub const ONE_TIME_TARGET: usize = 50;
/// Below this many left, the server asks the owner for more.
pub const ONE_TIME_LOW: usize = 10;

/// A client's upload: its current signed prekey and new one-time prekeys.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PrekeyUpload {
    pub signed: SignedPrekey,
    pub one_time: Vec<OneTimePrekey>,
}

/// What a sender needs to seal a message for `user`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Bundle {
    pub user: String,
    pub identity: PublicKey,
    pub signed: SignedPrekey,
    /// Handed out once; `None` when the server has none left.
    pub one_time: Option<OneTimePrekey>,
}

/// A message waiting on the server for its recipient.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Stored {
    pub id: u64,
    pub from: String,
    pub to: String,
    /// When the server accepted it (ms since the UNIX epoch).
    pub sent_at_ms: u64,
    /// A CBOR `crypto::sealed::SealedMessage`.
    #[serde(with = "serde_bytes")]
    pub sealed: Vec<u8>,
}

/// The associated data a stored message is sealed with: it binds sender
/// and recipient names, so the server cannot re-address it.
pub fn associated(from: &str, to: &str) -> Vec<u8> {
    format!("udpchat stored v1\0{from}\0{to}").into_bytes()
}

/// What a stored message's sealed plaintext holds: its text, and the id
/// its sender gave the message when it first went straight to the
/// recipient's client. A recipient that showed that copy (its
/// acknowledgement lost as they left) knows this one by the id and does
/// not show it again.
///
/// A plaintext without an id is the text alone, in UTF-8. One with an id
/// starts with `0xFF`, a byte no UTF-8 text holds, then the id (u64, big
/// endian), then the text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Letter {
    pub id: Option<u64>,
    pub text: String,
}

/// The first byte of a plaintext that carries an id.
const WITH_ID: u8 = 0xFF;

impl Letter {
    /// The bytes to seal.
    pub fn to_plaintext(&self) -> Vec<u8> {
        match self.id {
            None => self.text.as_bytes().to_vec(),
            Some(id) => {
                let mut bytes = Vec::with_capacity(9 + self.text.len());
                bytes.push(WITH_ID);
                bytes.extend_from_slice(&id.to_be_bytes());
                bytes.extend_from_slice(self.text.as_bytes());
                bytes
            }
        }
    }

    /// Reads an opened plaintext. Whatever it holds becomes text (bytes
    /// that are not UTF-8 as U+FFFD), so a message is never lost to its
    /// form.
    pub fn from_plaintext(bytes: &[u8]) -> Letter {
        match bytes.split_first() {
            Some((&WITH_ID, rest)) if rest.len() >= 8 => {
                let (id, text) = rest.split_at(8);
                Letter {
                    id: Some(u64::from_be_bytes(id.try_into().expect("8 bytes"))),
                    text: String::from_utf8_lossy(text).into_owned(),
                }
            }
            _ => Letter {
                id: None,
                text: String::from_utf8_lossy(bytes).into_owned(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_letter_reads_back_with_its_id_and_one_without_is_its_text() {
        for letter in [
            Letter {
                id: Some(0x0102_0304_0506_0708),
                text: "hello bob".into(),
            },
            Letter {
                id: Some(u64::MAX),
                text: String::new(),
            },
            Letter {
                id: None,
                text: "héllo".into(),
            },
        ] {
            assert_eq!(Letter::from_plaintext(&letter.to_plaintext()), letter);
        }
        // What a client before ids sealed: the text alone.
        assert_eq!(
            Letter::from_plaintext("plain old text".as_bytes()),
            Letter {
                id: None,
                text: "plain old text".into()
            }
        );
        // Too short for an id: kept as text, not dropped.
        let short = Letter::from_plaintext(&[0xFF, 1, 2]);
        assert_eq!(short.id, None);
        assert_eq!(short.text, "\u{FFFD}\u{1}\u{2}");
    }
}
