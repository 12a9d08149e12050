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
