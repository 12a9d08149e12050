//! Messages for offline recipients, sealed end to end before the server
//! stores them (X3DH-shaped, on P-384).
//!
//! Alice (sender) fetches Bob's identity key `IK_B`, signed prekey `SPK_B`
//! and, if the server has one left, a one-time prekey `OPK_B`. She checks
//! the prekey's signature, makes an ephemeral key `EK_A` and computes
//!
//! ```text
//! DH1 = DH(IK_A, SPK_B)   DH2 = DH(EK_A, IK_B)
//! DH3 = DH(EK_A, SPK_B)   DH4 = DH(EK_A, OPK_B)   (only with a one-time prekey)
//! SK  = HKDF-SHA384(salt = 48 zero bytes,
//!                   ikm  = 48 x 0xFF || DH1 || DH2 || DH3 [|| DH4],
//!                   info = "udpchat sealed v1"), first 32 bytes
//! ciphertext = AES-256-GCM(SK, nonce = 0, ad = IK_A || IK_B || associated)
//! ```
//!
//! (DH outputs are P-384 x-coordinates; keys are 49-byte compressed points;
//! `SK` is used for one message only, so the zero nonce is never reused.)
//! The 0xFF prefix is X3DH's domain separator, 48 bytes for P-384.
//! `associated` is whatever else the caller wants bound (e.g. sender and
//! recipient names, a message id); the recipient must pass the same bytes.
//!
//! Only Bob, with his identity secret and the prekey secrets, can open it,
//! and opening proves it came from the holder of `IK_A`. Without a one-time
//! prekey a stored message has no replay protection of its own and its
//! forward secrecy lasts only until the signed prekey is rotated.

mod prekeys;

pub use prekeys::{OneTimePrekey, OneTimePrekeySecret, Prekeys, SignedPrekey, SignedPrekeySecret};

use rand::{CryptoRng, RngCore};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::keys::{PublicKey, StaticKey, DH_LEN};
use super::symmetric::{cipher, open_with, seal_with, KEY_LEN};
use hkdf::Hkdf;
use sha2::Sha384;

const KDF_INFO: &[u8] = b"udpchat sealed v1";

/// Why a message could not be sealed or opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SealError {
    #[error("the recipient's signed prekey is not signed by their identity key")]
    BadPrekeySignature,
    #[error("the message was sealed to signed prekey {id}, not the one given")]
    WrongSignedPrekey { id: u32 },
    #[error(
        "the message was sealed with one-time prekey {id}, which this device does not hold (used already, or made on another device)"
    )]
    MissingOneTimePrekey { id: u32 },
    #[error("the sealed message does not open: not for this recipient, or tampered with")]
    Decrypt,
    #[error("the prekey store is damaged: {0}")]
    BadPrekeyStore(String),
}

/// A message sealed for an offline recipient, as it travels (CBOR) and as
/// the server stores it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedMessage {
    /// The sender's identity key `IK_A`; proven when the message opens.
    pub sender_identity: PublicKey,
    /// The sender's ephemeral key `EK_A`.
    pub ephemeral: PublicKey,
    pub signed_prekey_id: u32,
    pub one_time_prekey_id: Option<u32>,
    /// AES-256-GCM ciphertext and its 16-byte tag.
    #[serde(with = "serde_bytes")]
    pub ciphertext: Vec<u8>,
}

/// Seals `plaintext` from `sender_identity` to the owner of
/// `recipient_identity`, after checking that it signed `signed_prekey`.
pub fn seal<R: CryptoRng + RngCore>(
    rng: &mut R,
    sender_identity: &StaticKey,
    recipient_identity: &PublicKey,
    signed_prekey: &SignedPrekey,
    one_time: Option<&OneTimePrekey>,
    plaintext: &[u8],
    associated: &[u8],
) -> Result<SealedMessage, SealError> {
    signed_prekey.verify(recipient_identity)?;
    let ephemeral = StaticKey::generate(rng);
    let mut secrets = vec![
        sender_identity.diffie_hellman(&signed_prekey.public),
        ephemeral.diffie_hellman(recipient_identity),
        ephemeral.diffie_hellman(&signed_prekey.public),
    ];
    if let Some(one_time) = one_time {
        secrets.push(ephemeral.diffie_hellman(&one_time.public));
    }
    let sender = sender_identity.public();
    let key = derive_key(&secrets);
    let ad = associated_data(&sender, recipient_identity, associated);
    let ciphertext = seal_with(&cipher(&key), 0, &ad, plaintext);
    Ok(SealedMessage {
        sender_identity: sender,
        ephemeral: ephemeral.public(),
        signed_prekey_id: signed_prekey.id,
        one_time_prekey_id: one_time.map(|p| p.id),
        ciphertext,
    })
}

/// Opens a sealed message with the recipient's identity key and the secrets
/// of the prekeys it names; returns the sender's (now proven) identity key
/// and the plaintext. The caller should then delete the one-time prekey
/// ([`Prekeys::open`] does both).
pub fn open(
    recipient_identity: &StaticKey,
    signed_prekey: &SignedPrekeySecret,
    one_time: Option<&OneTimePrekeySecret>,
    sealed: &SealedMessage,
    associated: &[u8],
) -> Result<(PublicKey, Vec<u8>), SealError> {
    if sealed.signed_prekey_id != signed_prekey.id() {
        return Err(SealError::WrongSignedPrekey {
            id: sealed.signed_prekey_id,
        });
    }
    let mut secrets = vec![
        signed_prekey.secret.diffie_hellman(&sealed.sender_identity),
        recipient_identity.diffie_hellman(&sealed.ephemeral),
        signed_prekey.secret.diffie_hellman(&sealed.ephemeral),
    ];
    if let Some(id) = sealed.one_time_prekey_id {
        let one_time = one_time
            .filter(|secret| secret.id() == id)
            .ok_or(SealError::MissingOneTimePrekey { id })?;
        secrets.push(one_time.secret.diffie_hellman(&sealed.ephemeral));
    }
    let key = derive_key(&secrets);
    let ad = associated_data(
        &sealed.sender_identity,
        &recipient_identity.public(),
        associated,
    );
    let plaintext =
        open_with(&cipher(&key), 0, &ad, &sealed.ciphertext).map_err(|_| SealError::Decrypt)?;
    Ok((sealed.sender_identity.clone(), plaintext))
}

fn derive_key(secrets: &[Zeroizing<[u8; DH_LEN]>]) -> Zeroizing<[u8; KEY_LEN]> {
    let mut ikm = Zeroizing::new(vec![0xffu8; DH_LEN]);
    for secret in secrets {
        ikm.extend_from_slice(&secret[..]);
    }
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    Hkdf::<Sha384>::new(Some(&[0u8; 48]), &ikm)
        .expand(KDF_INFO, &mut key[..])
        .expect("32 bytes is within HKDF-SHA384's output limit");
    key
}

fn associated_data(sender: &PublicKey, recipient: &PublicKey, associated: &[u8]) -> Vec<u8> {
    let mut ad = sender.to_bytes();
    ad.extend_from_slice(&recipient.to_bytes());
    ad.extend_from_slice(associated);
    ad
}

#[cfg(test)]
mod tests;
