//! A user's prekeys: the public halves the server hands out to senders
//! ([`SignedPrekey`], [`OneTimePrekey`]) and the secret halves the user's
//! client keeps ([`Prekeys`]), with their storage format.
//!
//! A signed prekey's signature is ECDSA P-384 by the identity key over
//! `"udpchat signed prekey v1" || id (u32 BE) || public key (49 bytes)`.
//!
//! The store is a PEM block labelled `UDPCHAT PREKEYS` around:
//!
//! ```text
//! 0        version          u8   = 1
//! 1..5     signed id        u32
//! 5..53    signed secret    48 bytes (P-384 scalar, big-endian)
//! 53..149  signed signature 96 bytes (r || s)
//! 149..153 one-time count   u32
//! 153..    count x (id u32, secret 48 bytes)
//! ```
//!
//! The identity key itself stays in its own key file (`keyfile`).

use std::collections::BTreeMap;
use std::fmt;

use p384::pkcs8::der::pem;
use rand::{CryptoRng, RngCore};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::SealError;
use crate::crypto::keys::{PublicKey, StaticKey, SECRET_LEN, SIGNATURE_LEN};

const SIGNATURE_CONTEXT: &[u8] = b"udpchat signed prekey v1";
const STORE_LABEL: &str = "UDPCHAT PREKEYS";
const STORE_VERSION: u8 = 1;
const SIGNED_LEN: usize = 4 + SECRET_LEN + SIGNATURE_LEN;
const ONE_TIME_LEN: usize = 4 + SECRET_LEN;

/// A medium-term prekey, signed by its owner's identity key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedPrekey {
    pub id: u32,
    pub public: PublicKey,
    /// ECDSA P-384, fixed-size `r || s`.
    #[serde(with = "serde_bytes")]
    pub signature: Vec<u8>,
}

impl SignedPrekey {
    /// Checks that `identity` signed this prekey.
    pub fn verify(&self, identity: &PublicKey) -> Result<(), SealError> {
        identity
            .verify(&signed_message(self.id, &self.public), &self.signature)
            .map_err(|_| SealError::BadPrekeySignature)
    }
}

/// A prekey for one message only; the server hands each out once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OneTimePrekey {
    pub id: u32,
    #[serde(deserialize_with = "crate::crypto::keys::once")]
    pub public: PublicKey,
}

fn signed_message(id: u32, public: &PublicKey) -> Vec<u8> {
    let mut message = SIGNATURE_CONTEXT.to_vec();
    message.extend_from_slice(&id.to_be_bytes());
    message.extend_from_slice(&public.to_bytes());
    message
}

/// The secret half of a signed prekey, with its signature.
#[derive(Clone)]
pub struct SignedPrekeySecret {
    id: u32,
    pub(super) secret: StaticKey,
    signature: Vec<u8>,
}

impl SignedPrekeySecret {
    /// A new signed prekey numbered `id`, signed by `identity`.
    pub fn generate<R: CryptoRng + RngCore>(
        rng: &mut R,
        identity: &StaticKey,
        id: u32,
    ) -> SignedPrekeySecret {
        let secret = StaticKey::generate(rng);
        let signature = identity.sign(&signed_message(id, &secret.public()));
        SignedPrekeySecret {
            id,
            secret,
            signature,
        }
    }

    pub fn id(&self) -> u32 {
        self.id
    }

    /// What the server publishes for senders.
    pub fn public(&self) -> SignedPrekey {
        SignedPrekey {
            id: self.id,
            public: self.secret.public(),
            signature: self.signature.clone(),
        }
    }
}

impl fmt::Debug for SignedPrekeySecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignedPrekeySecret")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// The secret half of a one-time prekey.
#[derive(Clone)]
pub struct OneTimePrekeySecret {
    id: u32,
    pub(super) secret: StaticKey,
}

impl OneTimePrekeySecret {
    pub fn generate<R: CryptoRng + RngCore>(rng: &mut R, id: u32) -> OneTimePrekeySecret {
        OneTimePrekeySecret {
            id,
            secret: StaticKey::generate(rng),
        }
    }

    pub fn id(&self) -> u32 {
        self.id
    }

    pub fn public(&self) -> OneTimePrekey {
        OneTimePrekey {
            id: self.id,
            public: self.secret.public(),
        }
    }
}

impl fmt::Debug for OneTimePrekeySecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OneTimePrekeySecret")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// The secret prekeys a client keeps in its data dir.
#[derive(Clone)]
pub struct Prekeys {
    signed: SignedPrekeySecret,
    one_time: BTreeMap<u32, OneTimePrekeySecret>,
}

impl Prekeys {
    /// A store with a new signed prekey numbered `signed_id` and no
    /// one-time prekeys yet.
    pub fn generate<R: CryptoRng + RngCore>(
        rng: &mut R,
        identity: &StaticKey,
        signed_id: u32,
    ) -> Prekeys {
        Prekeys {
            signed: SignedPrekeySecret::generate(rng, identity, signed_id),
            one_time: BTreeMap::new(),
        }
    }

    /// Adds `count` one-time prekeys numbered from `first_id` (replacing any
    /// with the same ids) and returns their public halves to upload.
    pub fn generate_one_time<R: CryptoRng + RngCore>(
        &mut self,
        rng: &mut R,
        count: u32,
        first_id: u32,
    ) -> Vec<OneTimePrekey> {
        (0..count)
            .map(|i| {
                let secret = OneTimePrekeySecret::generate(rng, first_id.wrapping_add(i));
                let public = secret.public();
                self.one_time.insert(secret.id, secret);
                public
            })
            .collect()
    }

    pub fn signed_prekey(&self) -> SignedPrekey {
        self.signed.public()
    }

    pub fn signed_secret(&self) -> &SignedPrekeySecret {
        &self.signed
    }

    pub fn one_time_secret(&self, id: u32) -> Option<&OneTimePrekeySecret> {
        self.one_time.get(&id)
    }

    /// Forgets a one-time prekey (after the message that used it opened).
    pub fn remove_one_time(&mut self, id: u32) -> Option<OneTimePrekeySecret> {
        self.one_time.remove(&id)
    }

    /// An id above every one-time prekey held and at least `floor`: pass a
    /// clock reading (seconds) so ids keep rising even after the highest
    /// ones were used up and forgotten.
    pub fn next_one_time_id(&self, floor: u32) -> u32 {
        let above = self
            .one_time
            .keys()
            .next_back()
            .map_or(0, |id| id.saturating_add(1));
        above.max(floor)
    }

    /// How many one-time prekeys are left.
    pub fn one_time_count(&self) -> usize {
        self.one_time.len()
    }

    /// Opens `sealed` with these prekeys and, once it opened, forgets the
    /// one-time prekey it used, so a replay of the same message fails.
    pub fn open(
        &mut self,
        identity: &StaticKey,
        sealed: &super::SealedMessage,
        associated: &[u8],
    ) -> Result<(PublicKey, Vec<u8>), SealError> {
        let one_time = sealed
            .one_time_prekey_id
            .and_then(|id| self.one_time.get(&id));
        let opened = super::open(identity, &self.signed, one_time, sealed, associated)?;
        if let Some(id) = sealed.one_time_prekey_id {
            self.one_time.remove(&id);
        }
        Ok(opened)
    }

    /// The store as PEM text (see the module doc for the layout).
    pub fn to_pem(&self) -> Zeroizing<String> {
        let mut bytes = Zeroizing::new(Vec::with_capacity(
            1 + SIGNED_LEN + 4 + self.one_time.len() * ONE_TIME_LEN,
        ));
        bytes.push(STORE_VERSION);
        bytes.extend_from_slice(&self.signed.id.to_be_bytes());
        bytes.extend_from_slice(&self.signed.secret.to_secret_bytes()[..]);
        bytes.extend_from_slice(&self.signed.signature);
        bytes.extend_from_slice(&(self.one_time.len() as u32).to_be_bytes());
        for secret in self.one_time.values() {
            bytes.extend_from_slice(&secret.id.to_be_bytes());
            bytes.extend_from_slice(&secret.secret.to_secret_bytes()[..]);
        }
        Zeroizing::new(
            pem::encode_string(STORE_LABEL, pem::LineEnding::LF, &bytes)
                .expect("PEM encoding of bytes in memory cannot fail"),
        )
    }

    /// Reads a store written by [`Prekeys::to_pem`].
    pub fn from_pem(text: &str) -> Result<Prekeys, SealError> {
        let bad = |what: &str| SealError::BadPrekeyStore(what.to_string());
        let (label, bytes) =
            pem::decode_vec(text.trim().as_bytes()).map_err(|e| bad(&e.to_string()))?;
        let bytes = Zeroizing::new(bytes);
        if label != STORE_LABEL {
            return Err(bad(&format!(
                "expected a {STORE_LABEL} block, found {label}"
            )));
        }
        let (&version, rest) = bytes.split_first().ok_or_else(|| bad("empty"))?;
        if version != STORE_VERSION {
            return Err(bad(&format!("unknown version {version}")));
        }
        if rest.len() < SIGNED_LEN + 4 {
            return Err(bad("truncated"));
        }
        let (signed, rest) = rest.split_at(SIGNED_LEN);
        let (count, mut rest) = rest.split_at(4);
        let count = u32::from_be_bytes([count[0], count[1], count[2], count[3]]) as usize;
        if rest.len() != count.saturating_mul(ONE_TIME_LEN) {
            return Err(bad("length does not match the one-time prekey count"));
        }
        let key =
            |bytes: &[u8]| StaticKey::from_secret_bytes(bytes).map_err(|e| bad(&e.to_string()));
        let signed = SignedPrekeySecret {
            id: read_u32(&signed[..4]),
            secret: key(&signed[4..4 + SECRET_LEN])?,
            signature: signed[4 + SECRET_LEN..].to_vec(),
        };
        let mut one_time = BTreeMap::new();
        while !rest.is_empty() {
            let (entry, tail) = rest.split_at(ONE_TIME_LEN);
            rest = tail;
            let id = read_u32(&entry[..4]);
            let secret = key(&entry[4..])?;
            one_time.insert(id, OneTimePrekeySecret { id, secret });
        }
        Ok(Prekeys { signed, one_time })
    }
}

impl fmt::Debug for Prekeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Prekeys")
            .field("signed", &self.signed.id)
            .field("one_time", &self.one_time.len())
            .finish_non_exhaustive()
    }
}

fn read_u32(bytes: &[u8]) -> u32 {
    let mut out = [0u8; 4];
    out.copy_from_slice(bytes);
    u32::from_be_bytes(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::keys::tests::key;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    #[test]
    fn signed_prekey_verifies_only_with_its_identity() {
        let identity = key(30);
        let mut rng = StdRng::seed_from_u64(1);
        let signed = SignedPrekeySecret::generate(&mut rng, &identity, 7).public();
        signed.verify(&identity.public()).unwrap();
        assert_eq!(
            signed.verify(&key(31).public()),
            Err(SealError::BadPrekeySignature)
        );
        let mut renumbered = signed.clone();
        renumbered.id = 8;
        assert_eq!(
            renumbered.verify(&identity.public()),
            Err(SealError::BadPrekeySignature)
        );
    }

    #[test]
    fn store_round_trips_through_pem() {
        let identity = key(32);
        let mut rng = StdRng::seed_from_u64(2);
        let mut prekeys = Prekeys::generate(&mut rng, &identity, 3);
        let uploaded = prekeys.generate_one_time(&mut rng, 5, 100);
        assert_eq!(
            uploaded.iter().map(|p| p.id).collect::<Vec<_>>(),
            [100, 101, 102, 103, 104]
        );
        let pem = prekeys.to_pem();
        assert!(pem.starts_with("-----BEGIN UDPCHAT PREKEYS-----\n"));
        let back = Prekeys::from_pem(&pem).unwrap();
        assert_eq!(back.signed_prekey(), prekeys.signed_prekey());
        back.signed_prekey().verify(&identity.public()).unwrap();
        assert_eq!(back.one_time_count(), 5);
        for public in &uploaded {
            assert_eq!(back.one_time_secret(public.id).unwrap().public(), *public);
        }
    }

    #[test]
    fn a_damaged_store_is_refused() {
        let identity = key(33);
        let mut rng = StdRng::seed_from_u64(3);
        let mut prekeys = Prekeys::generate(&mut rng, &identity, 1);
        prekeys.generate_one_time(&mut rng, 2, 0);
        let pem = prekeys.to_pem();
        assert!(Prekeys::from_pem("").is_err());
        assert!(Prekeys::from_pem(&pem.replace("UDPCHAT PREKEYS", "PRIVATE KEY")).is_err());
        let mut bytes = pem::decode_vec(pem.as_bytes()).unwrap().1;
        bytes.pop();
        let short = pem::encode_string(STORE_LABEL, pem::LineEnding::LF, &bytes).unwrap();
        assert!(Prekeys::from_pem(&short).is_err());
    }

    proptest::proptest! {
        #[test]
        fn reading_a_store_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400)) {
            let text = pem::encode_string(STORE_LABEL, pem::LineEnding::LF, &bytes).unwrap();
            let _ = Prekeys::from_pem(&text);
            let _ = Prekeys::from_pem(&String::from_utf8_lossy(&bytes));
        }
    }

    #[test]
    fn debug_shows_ids_not_secrets() {
        let mut rng = StdRng::seed_from_u64(4);
        let prekeys = Prekeys::generate(&mut rng, &key(34), 9);
        assert_eq!(
            format!("{prekeys:?}"),
            "Prekeys { signed: 9, one_time: 0, .. }"
        );
    }
}
