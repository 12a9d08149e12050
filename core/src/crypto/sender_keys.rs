//! Sender keys: a group message encrypted once, by its sender, for every
//! member, so that the server that orders and forwards it reads nothing.
//!
//! Each member has, per group, a *sender chain*: a 32-byte chain key that
//! ratchets forward with every message, and a P-384 signing key. Message
//! `i` is encrypted with the `i`th message key and signed:
//!
//! ```text
//! MK_i, CK_{i+1} = HKDF-SHA384(salt = none, ikm = CK_i,
//!                              info = "udpchat group message key" / "udpchat group chain key"), 32 bytes each
//! ciphertext     = AES-256-GCM(MK_i, nonce = 0, ad = "udpchat group v1" 00 group 00 from 00 key_id iteration, text)
//! signature      = ECDSA-P384-SHA384(signing key, signed_bytes(group, from, line))
//! ```
//!
//! Each message key encrypts one message, so the zero nonce is never
//! reused. A member hands its chain (a [`KeyShare`]: key id, iteration,
//! chain key, signing public key) to each other member sealed to them end
//! to end (`crypto::sealed`); whoever holds it can derive the message keys
//! from that iteration on, not before, and check that each message was
//! signed by the member who handed it out. A member who leaves keeps only
//! chains that every remaining member replaces (rotates) before its next
//! message: a new key id, chain key and signing key.
//!
//! The receiver checks the signature before anything else, keeps up to
//! [`MAX_SKIPPED`] message keys it derived past (messages arriving late
//! or out of order), and refuses a message whose key it already used (a
//! duplicate or a replay).

use std::collections::BTreeMap;

use hkdf::Hkdf;
use rand::{CryptoRng, RngCore};
use serde::{Deserialize, Serialize};
use sha2::Sha384;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use super::keys::{PublicKey, StaticKey};
use super::symmetric::{cipher, open_with, seal_with, KEY_LEN};

/// Message keys a receiver keeps for messages it has not seen yet while
/// later ones arrived (the server keeps at most this many per group).
pub const MAX_SKIPPED: usize = crate::group::HISTORY_LIMIT;
/// How far ahead of the last message read a message may be: a member
/// back after a long absence derives every key in between (cheap, and
/// only for a message whose signature checked).
pub const MAX_JUMP: u32 = 1 << 20;

const MESSAGE_KEY_INFO: &[u8] = b"udpchat group message key";
const CHAIN_KEY_INFO: &[u8] = b"udpchat group chain key";
const AD_CONTEXT: &[u8] = b"udpchat group v1";
const SIGNED_CONTEXT: &[u8] = b"udpchat group line v1";

/// Why a group message could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SenderKeyError {
    #[error("the message is not signed by the key its sender handed out")]
    BadSignature,
    #[error("the message does not decrypt: tampered with, or not under this key")]
    Decrypt,
    #[error("message {iteration} was read already (a duplicate or a replay)")]
    AlreadyRead { iteration: u32 },
    #[error("message {iteration} is older than the key this client was given")]
    BeforeShare { iteration: u32 },
    #[error("message {iteration} is too far ahead of the last one read")]
    TooFarAhead { iteration: u32 },
    #[error("the key share is malformed: {0}")]
    BadShare(String),
}

/// One member's sender chain as it hands it to another member: enough to
/// read its messages from `iteration` on.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
pub struct KeyShare {
    pub key_id: u32,
    pub iteration: u32,
    #[serde(with = "serde_bytes")]
    pub chain_key: Vec<u8>,
    /// The SEC1 compressed signing public key.
    #[serde(with = "serde_bytes")]
    pub signing: Vec<u8>,
}

impl std::fmt::Debug for KeyShare {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyShare")
            .field("key_id", &self.key_id)
            .field("iteration", &self.iteration)
            .finish_non_exhaustive()
    }
}

/// A sender key sealed for one member (a CBOR `crypto::sealed::SealedMessage`
/// of a [`KeyShare`], with [`envelope_associated`] as associated data).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyEnvelope {
    pub to: String,
    #[serde(with = "serde_bytes")]
    pub sealed: Vec<u8>,
}

/// A member asking another for its sender key: it could not read a
/// message under `key_id`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Want {
    pub from: String,
    pub key_id: u32,
}

/// A group message as its sender sealed it; the server stores and forwards
/// these bytes and nothing else of it. An empty `ciphertext`'s text is
/// empty: the line only carries keys or asks for them, and is not shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedLine {
    pub key_id: u32,
    pub iteration: u32,
    #[serde(with = "serde_bytes")]
    pub ciphertext: Vec<u8>,
    /// The sender's key for members who do not have it yet.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub keys: Vec<KeyEnvelope>,
    /// Keys the sender is missing.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub wants: Vec<Want>,
    #[serde(with = "serde_bytes")]
    pub signature: Vec<u8>,
}

/// The associated data a key envelope is sealed with: it binds the group,
/// the sender and the recipient, so it cannot be moved to another.
pub fn envelope_associated(group: &str, from: &str, to: &str) -> Vec<u8> {
    format!("udpchat group key v1\0{group}\0{from}\0{to}").into_bytes()
}

/// This member's own chain in one group.
pub struct OwnChain {
    key_id: u32,
    /// The iteration of the next message.
    iteration: u32,
    chain_key: Zeroizing<[u8; KEY_LEN]>,
    /// The chain key at iteration 0, to hand a member the chain from the
    /// iteration they were given it at, when they ask again.
    first_key: Zeroizing<[u8; KEY_LEN]>,
    signing: StaticKey,
}

impl std::fmt::Debug for OwnChain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OwnChain")
            .field("key_id", &self.key_id)
            .field("iteration", &self.iteration)
            .finish_non_exhaustive()
    }
}

impl OwnChain {
    /// A new chain: random key id, chain key and signing key.
    pub fn generate<R: CryptoRng + RngCore>(rng: &mut R) -> OwnChain {
        let mut chain_key = Zeroizing::new([0u8; KEY_LEN]);
        rng.fill_bytes(&mut chain_key[..]);
        OwnChain {
            key_id: rng.next_u32(),
            iteration: 0,
            first_key: chain_key.clone(),
            chain_key,
            signing: StaticKey::generate(rng),
        }
    }

    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    /// The iteration the next message will have.
    pub fn iteration(&self) -> u32 {
        self.iteration
    }

    /// The chain from the next message on.
    pub fn share(&self) -> KeyShare {
        self.share_of(self.iteration, &self.chain_key)
    }

    /// The chain from `iteration` on (not beyond the next message).
    pub fn share_from(&self, iteration: u32) -> KeyShare {
        let iteration = iteration.min(self.iteration);
        let mut key = self.first_key.clone();
        for _ in 0..iteration {
            key = step(&key).1;
        }
        self.share_of(iteration, &key)
    }

    fn share_of(&self, iteration: u32, chain_key: &[u8; KEY_LEN]) -> KeyShare {
        KeyShare {
            key_id: self.key_id,
            iteration,
            chain_key: chain_key.to_vec(),
            signing: self.signing.public().to_bytes(),
        }
    }

    /// Encrypts and signs the next message of `from` in `group`, carrying
    /// `keys` and `wants`; the chain moves on.
    pub fn seal(
        &mut self,
        group: &str,
        from: &str,
        text: &str,
        keys: Vec<KeyEnvelope>,
        wants: Vec<Want>,
    ) -> SealedLine {
        let (message_key, next) = step(&self.chain_key);
        let iteration = self.iteration;
        let ciphertext = if text.is_empty() {
            Vec::new()
        } else {
            let ad = associated(group, from, self.key_id, iteration);
            seal_with(&cipher(&message_key), 0, &ad, text.as_bytes())
        };
        self.chain_key = next;
        self.iteration += 1;
        let mut line = SealedLine {
            key_id: self.key_id,
            iteration,
            ciphertext,
            keys,
            wants,
            signature: Vec::new(),
        };
        line.signature = self.signing.sign(&signed_bytes(group, from, &line));
        line
    }
}

/// Another member's chain, as handed to this member.
#[derive(Clone, Serialize, Deserialize)]
pub struct ReceivedChain {
    key_id: u32,
    /// The iteration after the last one derived.
    next: u32,
    /// The first iteration this member was given.
    first: u32,
    #[serde(with = "serde_bytes")]
    chain_key: Vec<u8>,
    #[serde(with = "serde_bytes")]
    signing: Vec<u8>,
    /// Keys of messages passed over, by iteration.
    skipped: BTreeMap<u32, serde_bytes::ByteBuf>,
}

impl Drop for ReceivedChain {
    fn drop(&mut self) {
        self.chain_key.zeroize();
        for key in self.skipped.values_mut() {
            key.as_mut_slice().zeroize();
        }
    }
}

impl std::fmt::Debug for ReceivedChain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReceivedChain")
            .field("key_id", &self.key_id)
            .field("next", &self.next)
            .field("skipped", &self.skipped.len())
            .finish_non_exhaustive()
    }
}

impl ReceivedChain {
    /// The chain a member handed out.
    pub fn from_share(share: &KeyShare) -> Result<ReceivedChain, SenderKeyError> {
        if share.chain_key.len() != KEY_LEN {
            return Err(SenderKeyError::BadShare(format!(
                "a chain key is {KEY_LEN} bytes, not {}",
                share.chain_key.len()
            )));
        }
        PublicKey::from_bytes(&share.signing)
            .map_err(|e| SenderKeyError::BadShare(e.to_string()))?;
        Ok(ReceivedChain {
            key_id: share.key_id,
            next: share.iteration,
            first: share.iteration,
            chain_key: share.chain_key.clone(),
            signing: share.signing.clone(),
            skipped: BTreeMap::new(),
        })
    }

    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    /// The first iteration this member can read.
    pub fn first(&self) -> u32 {
        self.first
    }

    /// Whether `share` is this chain handed out again from where this
    /// member already reads it or later (nothing new in it).
    pub fn covers(&self, share: &KeyShare) -> bool {
        share.key_id == self.key_id
            && share.signing == self.signing
            && share.iteration >= self.first
    }

    /// Checks that `from` signed `line` with this chain's signing key (only
    /// the signature is checked, nothing is decrypted).
    pub fn verify(&self, group: &str, from: &str, line: &SealedLine) -> Result<(), SenderKeyError> {
        let signing =
            PublicKey::from_bytes(&self.signing).map_err(|_| SenderKeyError::BadSignature)?;
        signing
            .verify(&signed_bytes(group, from, line), &line.signature)
            .map_err(|_| SenderKeyError::BadSignature)
    }

    /// Checks and decrypts `from`'s `line` in `group`; the chain moves on
    /// only when it opens. An empty ciphertext gives empty text.
    pub fn open(
        &mut self,
        group: &str,
        from: &str,
        line: &SealedLine,
    ) -> Result<String, SenderKeyError> {
        self.verify(group, from, line)?;
        let iteration = line.iteration;
        let (message_key, advanced) = self.message_key(iteration)?;
        let text = if line.ciphertext.is_empty() {
            String::new()
        } else {
            let ad = associated(group, from, self.key_id, iteration);
            let plain = open_with(&cipher(&message_key), 0, &ad, &line.ciphertext)
                .map_err(|_| SenderKeyError::Decrypt)?;
            String::from_utf8(plain).map_err(|_| SenderKeyError::Decrypt)?
        };
        match advanced {
            Some((chain_key, next, skipped)) => {
                self.chain_key = chain_key.to_vec();
                self.next = next;
                self.skipped.extend(skipped);
                while self.skipped.len() > MAX_SKIPPED {
                    self.skipped.pop_first();
                }
            }
            None => {
                self.skipped.remove(&iteration);
            }
        }
        Ok(text)
    }

    /// The key of message `iteration`, and (when it is ahead) what the
    /// chain becomes once it opens: its key, next iteration and the keys
    /// passed over.
    #[allow(clippy::type_complexity)]
    fn message_key(
        &self,
        iteration: u32,
    ) -> Result<
        (
            Zeroizing<[u8; KEY_LEN]>,
            Option<(
                Zeroizing<[u8; KEY_LEN]>,
                u32,
                Vec<(u32, serde_bytes::ByteBuf)>,
            )>,
        ),
        SenderKeyError,
    > {
        if iteration < self.next {
            if iteration < self.first {
                return Err(SenderKeyError::BeforeShare { iteration });
            }
            let key = self
                .skipped
                .get(&iteration)
                .ok_or(SenderKeyError::AlreadyRead { iteration })?;
            let mut out = Zeroizing::new([0u8; KEY_LEN]);
            out.copy_from_slice(key);
            return Ok((out, None));
        }
        if iteration - self.next > MAX_JUMP {
            return Err(SenderKeyError::TooFarAhead { iteration });
        }
        let mut chain_key = Zeroizing::new([0u8; KEY_LEN]);
        chain_key.copy_from_slice(&self.chain_key);
        let mut skipped = Vec::new();
        let passed_over = (iteration - self.next) as usize;
        for i in self.next..iteration {
            let (message_key, next) = step(&chain_key);
            // Only the newest keys passed over can still be asked for.
            if passed_over - (i - self.next) as usize <= MAX_SKIPPED {
                skipped.push((i, serde_bytes::ByteBuf::from(message_key.to_vec())));
            }
            chain_key = next;
        }
        let (message_key, next) = step(&chain_key);
        Ok((message_key, Some((next, iteration + 1, skipped))))
    }
}

/// One step of a chain: this message's key and the next chain key.
fn step(chain_key: &[u8; KEY_LEN]) -> (Zeroizing<[u8; KEY_LEN]>, Zeroizing<[u8; KEY_LEN]>) {
    let kdf = Hkdf::<Sha384>::new(None, chain_key);
    let mut message_key = Zeroizing::new([0u8; KEY_LEN]);
    let mut next = Zeroizing::new([0u8; KEY_LEN]);
    kdf.expand(MESSAGE_KEY_INFO, &mut message_key[..])
        .expect("32 bytes is a valid HKDF-SHA384 length");
    kdf.expand(CHAIN_KEY_INFO, &mut next[..])
        .expect("32 bytes is a valid HKDF-SHA384 length");
    (message_key, next)
}

/// The associated data of message `iteration` of `from`'s chain `key_id`.
fn associated(group: &str, from: &str, key_id: u32, iteration: u32) -> Vec<u8> {
    let mut ad = Vec::with_capacity(AD_CONTEXT.len() + group.len() + from.len() + 11);
    ad.extend_from_slice(AD_CONTEXT);
    ad.push(0);
    ad.extend_from_slice(group.as_bytes());
    ad.push(0);
    ad.extend_from_slice(from.as_bytes());
    ad.push(0);
    ad.extend_from_slice(&key_id.to_be_bytes());
    ad.extend_from_slice(&iteration.to_be_bytes());
    ad
}

/// What the signature covers: the group, the sender and every field of
/// the line but the signature, each length-prefixed (u32 big-endian).
fn signed_bytes(group: &str, from: &str, line: &SealedLine) -> Vec<u8> {
    fn field(out: &mut Vec<u8>, bytes: &[u8]) {
        out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
        out.extend_from_slice(bytes);
    }
    let mut out = Vec::with_capacity(128 + line.ciphertext.len());
    field(&mut out, SIGNED_CONTEXT);
    field(&mut out, group.as_bytes());
    field(&mut out, from.as_bytes());
    out.extend_from_slice(&line.key_id.to_be_bytes());
    out.extend_from_slice(&line.iteration.to_be_bytes());
    field(&mut out, &line.ciphertext);
    out.extend_from_slice(&(line.keys.len() as u32).to_be_bytes());
    for envelope in &line.keys {
        field(&mut out, envelope.to.as_bytes());
        field(&mut out, &envelope.sealed);
    }
    out.extend_from_slice(&(line.wants.len() as u32).to_be_bytes());
    for want in &line.wants {
        field(&mut out, want.from.as_bytes());
        out.extend_from_slice(&want.key_id.to_be_bytes());
    }
    out
}

#[cfg(test)]
mod tests;
