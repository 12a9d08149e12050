//! P-384 (SECP384R1) keys: the long-term [`StaticKey`] of a server or a user,
//! its [`PublicKey`], their PEM forms, fingerprints and ECDSA signatures.
//!
//! - A private key is read from PKCS#8 PEM (`PRIVATE KEY`, what
//!   `udpchat-keygen` and `openssl genpkey` write) or SEC1 PEM
//!   (`EC PRIVATE KEY`, what `openssl ecparam -genkey` writes; a leading
//!   `EC PARAMETERS` block is skipped). It is always written as PKCS#8.
//! - A public key is SPKI PEM (`PUBLIC KEY`) in files and, on the wire, the
//!   49-byte SEC1 compressed point (`0x02`/`0x03` then the x-coordinate).
//! - A fingerprint is `SHA256:` then the unpadded base64 of SHA-256 over the
//!   SPKI DER, like ssh's: 50 characters, meant to be compared by eye or
//!   read aloud over another channel.
//! - A signature is ECDSA P-384 with SHA-384 (deterministic, RFC 6979),
//!   fixed-size: `r || s`, 48 bytes each, big-endian ([`SIGNATURE_LEN`]).
//!
//! A key of another type or curve is refused with a [`KeyError`] that says
//! what the key is and what udpchat needs; the caller adds the file name.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::hash::{BuildHasher, Hash, Hasher, RandomState};
use std::sync::{LazyLock, OnceLock};

use base64::Engine;
use p384::elliptic_curve::sec1::ToEncodedPoint;
use p384::pkcs8::der::{pem, Decode};
use p384::pkcs8::{
    DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey, LineEnding,
    ObjectIdentifier, PrivateKeyInfo, SubjectPublicKeyInfoRef,
};
use p384_tables::ecdsa::signature::{Signer, Verifier};
use rand::{CryptoRng, RngCore};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

/// Bytes of a public key on the wire: a SEC1 compressed P-384 point.
pub const PUBLIC_KEY_LEN: usize = 49;
/// Bytes of an ECDSA P-384 signature: `r || s`.
pub const SIGNATURE_LEN: usize = 96;
/// Bytes of a P-384 Diffie-Hellman result (the shared point's x-coordinate).
pub const DH_LEN: usize = 48;
/// Bytes of a raw P-384 secret scalar.
pub(crate) const SECRET_LEN: usize = 48;

const OID_EC_PUBLIC_KEY: &str = "1.2.840.10045.2.1";
const OID_P384: &str = "1.3.132.0.34";

/// Why a key could not be used. Each message is one sentence about the key;
/// the caller says which file or field it came from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    #[error("this is not a PEM key (no `-----BEGIN ...-----` block)")]
    NotPem,
    #[error("the PEM block is damaged: {0}")]
    BadPem(String),
    #[error("this is a {label} PEM block, not a key udpchat reads (it needs a P-384 key in PKCS#8 or SPKI form)")]
    UnsupportedPem { label: String },
    #[error("this is a private key; udpchat needs the public key here (the .pub file)")]
    PrivateNotPublic,
    #[error("this is a public key; udpchat needs the private key here (the .priv file)")]
    PublicNotPrivate,
    #[error(
        "the private key is encrypted with a passphrase; udpchat needs an unencrypted PKCS#8 key"
    )]
    Encrypted,
    #[error("this is a {key_type} key; udpchat needs an elliptic-curve P-384 (SECP384R1) key")]
    WrongKeyType { key_type: String },
    #[error("this is a {curve} key; udpchat needs P-384 (SECP384R1)")]
    WrongCurve { curve: String },
    #[error("the key data is malformed: {0}")]
    Malformed(String),
    #[error("the public key is not a valid P-384 point")]
    InvalidPoint,
    #[error("the signature does not verify with this key")]
    BadSignature,
}

/// A P-384 secret key that stays on its owner's machine. The secret is wiped
/// from memory when the value drops, and `Debug` shows only the fingerprint.
#[derive(Clone)]
pub struct StaticKey {
    secret: p384::SecretKey,
    /// Its public key, worked out on first use and kept: a scalar
    /// multiplication (about as dear as an ECDH) that every handshake a
    /// server answers, and every KEY REQUEST, would otherwise repeat.
    public: OnceLock<PublicKey>,
}

impl StaticKey {
    /// A new random key.
    pub fn generate<R: CryptoRng + RngCore>(rng: &mut R) -> StaticKey {
        StaticKey::of(p384::SecretKey::random(rng))
    }

    fn of(secret: p384::SecretKey) -> StaticKey {
        StaticKey {
            secret,
            public: OnceLock::new(),
        }
    }

    pub fn public(&self) -> PublicKey {
        self.public
            .get_or_init(|| PublicKey {
                inner: self
                    .public_by_table()
                    .unwrap_or_else(|| self.secret.public_key()),
            })
            .clone()
    }

    /// The public point worked out with p384 0.14's precomputed table of
    /// the base point's multiples: about a third of the time 0.13 takes,
    /// which has no table and multiplies as for any point (docs/DECISIONS.md,
    /// "The fast path, twenty-first part"). The point crosses between the
    /// two crates as its uncompressed SEC1 bytes, which 0.13 checks are on
    /// the curve. `None` only if the two crates disagreed on a key, which a
    /// test rules out.
    fn public_by_table(&self) -> Option<p384::PublicKey> {
        use p384_tables::elliptic_curve::sec1::ToSec1Point;
        let point = self.table_secret()?.public_key().to_sec1_point(false);
        p384::PublicKey::from_sec1_bytes(point.as_bytes()).ok()
    }

    /// The same scalar as p384 0.14's secret key (wiped when it drops).
    fn table_secret(&self) -> Option<p384_tables::SecretKey> {
        p384_tables::SecretKey::from_slice(&self.to_secret_bytes()[..]).ok()
    }

    /// The key as PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`), LF line endings.
    pub fn to_pkcs8_pem(&self) -> Zeroizing<String> {
        // Encoding a valid fixed-size key into DER cannot fail.
        self.secret
            .to_pkcs8_pem(LineEnding::LF)
            .expect("a P-384 secret key always encodes as PKCS#8")
    }

    /// Reads a PKCS#8 (`PRIVATE KEY`) or SEC1 (`EC PRIVATE KEY`) PEM key.
    pub fn from_pkcs8_pem(text: &str) -> Result<StaticKey, KeyError> {
        let (label, der) = decode_pem(text)?;
        let secret = match label.as_str() {
            "PRIVATE KEY" => {
                let info = PrivateKeyInfo::from_der(&der)
                    .map_err(|e| KeyError::Malformed(e.to_string()))?;
                let (algorithm, curve) = info
                    .algorithm
                    .oids()
                    .map_err(|e| KeyError::Malformed(e.to_string()))?;
                check_algorithm(algorithm, curve)?;
                p384::SecretKey::from_pkcs8_der(&der)
                    .map_err(|e| KeyError::Malformed(e.to_string()))?
            }
            "EC PRIVATE KEY" => {
                let parsed = sec1::EcPrivateKey::from_der(&der)
                    .map_err(|e| KeyError::Malformed(e.to_string()))?;
                match parsed.parameters.and_then(|p| p.named_curve()) {
                    Some(curve) => check_algorithm(oid(OID_EC_PUBLIC_KEY), Some(curve))?,
                    None if parsed.private_key.len() != SECRET_LEN => {
                        return Err(KeyError::WrongCurve {
                            curve: format!("{}-bit", parsed.private_key.len() * 8),
                        })
                    }
                    None => {}
                }
                p384::SecretKey::from_sec1_der(&der)
                    .map_err(|_| KeyError::Malformed("invalid SEC1 private key".into()))?
            }
            "ENCRYPTED PRIVATE KEY" => return Err(KeyError::Encrypted),
            "PUBLIC KEY" => return Err(KeyError::PublicNotPrivate),
            "RSA PRIVATE KEY" => {
                return Err(KeyError::WrongKeyType {
                    key_type: "RSA".into(),
                })
            }
            _ => return Err(KeyError::UnsupportedPem { label }),
        };
        Ok(StaticKey::of(secret))
    }

    /// ECDSA P-384 / SHA-384 over `msg`, deterministic (RFC 6979), as the
    /// fixed-size `r || s` ([`SIGNATURE_LEN`] bytes).
    ///
    /// Signed with p384 0.14, whose fixed-base multiplications use its
    /// table (see [`StaticKey::public_by_table`]): RFC 6979 makes the
    /// signature the one 0.13 would make, which a test checks.
    pub fn sign(&self, msg: &[u8]) -> Vec<u8> {
        let secret = self
            .table_secret()
            .expect("a P-384 scalar is one in either version of the crate");
        let signature: p384_tables::ecdsa::Signature =
            p384_tables::ecdsa::SigningKey::from(&secret).sign(msg);
        signature.to_bytes().to_vec()
    }

    /// P-384 ECDH: the x-coordinate of the shared point.
    pub(crate) fn diffie_hellman(&self, public: &PublicKey) -> Zeroizing<[u8; DH_LEN]> {
        let mut scalar = self.secret.to_nonzero_scalar();
        let shared = p384::ecdh::diffie_hellman(&scalar, public.inner.as_affine());
        zeroize::Zeroize::zeroize(&mut scalar);
        let mut out = Zeroizing::new([0u8; DH_LEN]);
        out.copy_from_slice(shared.raw_secret_bytes());
        out
    }

    /// The raw 48-byte secret scalar, for udpchat's own prekey store.
    pub(crate) fn to_secret_bytes(&self) -> Zeroizing<[u8; SECRET_LEN]> {
        let mut out = Zeroizing::new([0u8; SECRET_LEN]);
        let mut bytes = self.secret.to_bytes();
        out.copy_from_slice(&bytes);
        zeroize::Zeroize::zeroize(&mut bytes[..]);
        out
    }

    pub(crate) fn from_secret_bytes(bytes: &[u8]) -> Result<StaticKey, KeyError> {
        if bytes.len() != SECRET_LEN {
            return Err(KeyError::Malformed(format!(
                "a P-384 secret is {SECRET_LEN} bytes, not {}",
                bytes.len()
            )));
        }
        let secret = p384::SecretKey::from_slice(bytes)
            .map_err(|_| KeyError::Malformed("the secret scalar is out of range".into()))?;
        Ok(StaticKey::of(secret))
    }
}

impl fmt::Debug for StaticKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StaticKey")
            .field("public", &self.public().fingerprint())
            .finish_non_exhaustive()
    }
}

/// `bytes` as a SEC1 compressed point's bytes, if they have its shape.
fn compressed(bytes: &[u8]) -> Result<[u8; PUBLIC_KEY_LEN], KeyError> {
    match <[u8; PUBLIC_KEY_LEN]>::try_from(bytes) {
        Ok(compressed) if matches!(compressed[0], 0x02 | 0x03) => Ok(compressed),
        _ => Err(KeyError::InvalidPoint),
    }
}

/// The point behind a compressed key's bytes (a square root modulo p).
fn decompress(compressed: &[u8; PUBLIC_KEY_LEN]) -> Result<PublicKey, KeyError> {
    let inner = p384::PublicKey::from_sec1_bytes(compressed).map_err(|_| KeyError::InvalidPoint)?;
    Ok(PublicKey { inner })
}

/// Keys decoded lately, by their compressed bytes: decompressing a point
/// costs about 30 us (a square root modulo p), and the same keys come
/// again and again (every `lookup` reply, a server's key at each connect,
/// a mailbox's senders). Only valid points are kept.
static DECODED: LazyLock<parking_lot::Mutex<Decoded>> = LazyLock::new(Default::default);
/// Keys kept at most, and keys noted as read once at most; past either
/// bound that set starts again empty.
const DECODED_KEYS: usize = 4096;

/// A key is kept from its second read on. Its first read only notes a
/// hash of its bytes: at a server most keys come once (each client's
/// identity key at its sign-in), and kept, 4,096 of them held 1.3 MB that
/// no later read used. A hash that two keys share lets the second in at
/// its first read, which costs room and nothing else.
#[derive(Default)]
struct Decoded {
    keys: HashMap<[u8; PUBLIC_KEY_LEN], p384::PublicKey>,
    seen_once: HashSet<u64>,
    hasher: RandomState,
}

impl Decoded {
    fn get(&self, compressed: &[u8; PUBLIC_KEY_LEN]) -> Option<p384::PublicKey> {
        self.keys.get(compressed).copied()
    }

    /// Notes that `compressed` decoded to `key`; keeps it if it was read
    /// before.
    fn note(&mut self, compressed: [u8; PUBLIC_KEY_LEN], key: p384::PublicKey) {
        let hash = self.hasher.hash_one(compressed);
        if !self.seen_once.remove(&hash) {
            if self.seen_once.len() >= DECODED_KEYS {
                self.seen_once.clear();
            }
            self.seen_once.insert(hash);
            return;
        }
        if self.keys.len() >= DECODED_KEYS {
            self.keys.clear();
        }
        self.keys.insert(compressed, key);
    }
}

/// A P-384 public key: a server's, a user's identity key, a prekey or an
/// ephemeral. Equality and hashing follow the point.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey {
    inner: p384::PublicKey,
}

impl PublicKey {
    /// The key as SPKI PEM (`-----BEGIN PUBLIC KEY-----`), LF line endings.
    pub fn to_spki_pem(&self) -> String {
        self.inner
            .to_public_key_pem(LineEnding::LF)
            .expect("a P-384 public key always encodes as SPKI")
    }

    /// Reads an SPKI PEM (`PUBLIC KEY`) P-384 key.
    pub fn from_spki_pem(text: &str) -> Result<PublicKey, KeyError> {
        let (label, der) = decode_pem(text)?;
        match label.as_str() {
            "PUBLIC KEY" => {}
            "PRIVATE KEY"
            | "EC PRIVATE KEY"
            | "ENCRYPTED PRIVATE KEY"
            | "RSA PRIVATE KEY"
            | "OPENSSH PRIVATE KEY" => return Err(KeyError::PrivateNotPublic),
            _ => return Err(KeyError::UnsupportedPem { label }),
        }
        let info = SubjectPublicKeyInfoRef::from_der(&der)
            .map_err(|e| KeyError::Malformed(e.to_string()))?;
        let (algorithm, curve) = info
            .algorithm
            .oids()
            .map_err(|e| KeyError::Malformed(e.to_string()))?;
        check_algorithm(algorithm, curve)?;
        let inner =
            p384::PublicKey::from_public_key_der(&der).map_err(|_| KeyError::InvalidPoint)?;
        Ok(PublicKey { inner })
    }

    /// The SEC1 compressed point, [`PUBLIC_KEY_LEN`] bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        self.inner.to_encoded_point(true).as_bytes().to_vec()
    }

    /// Reads a SEC1 compressed point ([`PUBLIC_KEY_LEN`] bytes). Other
    /// encodings are refused so every key has exactly one byte form. A key
    /// read twice lately comes from a cache ([`DECODED`]) from then on: for
    /// keys that come again (identity keys, prekeys, server keys).
    pub fn from_bytes(bytes: &[u8]) -> Result<PublicKey, KeyError> {
        let compressed = compressed(bytes)?;
        if let Some(inner) = DECODED.lock().get(&compressed) {
            return Ok(PublicKey { inner });
        }
        let key = decompress(&compressed)?;
        DECODED.lock().note(compressed, key.inner);
        Ok(key)
    }

    /// [`PublicKey::from_bytes`] for a key seen once (a handshake's
    /// ephemeral): not looked for in the cache nor kept there, so a flood
    /// of handshakes cannot push the keys that come again out of it.
    pub fn from_bytes_once(bytes: &[u8]) -> Result<PublicKey, KeyError> {
        decompress(&compressed(bytes)?)
    }

    /// `SHA256:` and the unpadded base64 of SHA-256 over the SPKI DER
    /// (50 characters), as ssh shows host keys.
    pub fn fingerprint(&self) -> String {
        let der = self
            .inner
            .to_public_key_der()
            .expect("a P-384 public key always encodes as SPKI");
        let digest = Sha256::digest(der.as_bytes());
        format!(
            "SHA256:{}",
            base64::engine::general_purpose::STANDARD_NO_PAD.encode(digest)
        )
    }

    /// Checks a signature made by [`StaticKey::sign`] (fixed-size `r || s`).
    /// With p384 0.14, whose half of the check that multiplies the base
    /// point uses its table (see [`StaticKey::public_by_table`]).
    pub fn verify(&self, msg: &[u8], signature: &[u8]) -> Result<(), KeyError> {
        let signature = p384_tables::ecdsa::Signature::from_slice(signature)
            .map_err(|_| KeyError::BadSignature)?;
        let key = p384_tables::ecdsa::VerifyingKey::from_sec1_bytes(
            self.inner.to_encoded_point(false).as_bytes(),
        )
        .map_err(|_| KeyError::InvalidPoint)?;
        key.verify(msg, &signature)
            .map_err(|_| KeyError::BadSignature)
    }
}

impl Hash for PublicKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.to_bytes().hash(state);
    }
}

/// A public key travels as its 49 compressed bytes (a CBOR byte string);
/// decoding refuses anything that is not a valid P-384 point.
impl serde::Serialize for PublicKey {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(&self.to_bytes())
    }
}

impl<'de> serde::Deserialize<'de> for PublicKey {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        read(deserializer, PublicKey::from_bytes)
    }
}

/// A key's bytes, decoded by `decode`.
fn read<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
    decode: fn(&[u8]) -> Result<PublicKey, KeyError>,
) -> Result<PublicKey, D::Error> {
    let bytes = <serde_bytes::ByteBuf as serde::Deserialize>::deserialize(deserializer)?;
    decode(&bytes).map_err(serde::de::Error::custom)
}

/// Deserializes a key that comes only once (a one-time prekey), as
/// [`PublicKey::from_bytes_once`]: checked as any other, not kept in the
/// cache of decoded keys. A sign-up uploads 50 of them; kept, they pushed
/// the identity keys the cache is for out of it every 80 sign-ups.
/// `#[serde(deserialize_with = "keys::once")]`.
pub fn once<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<PublicKey, D::Error> {
    read(deserializer, PublicKey::from_bytes_once)
}

/// Whether `key` is in the cache of decoded keys.
#[cfg(test)]
pub(crate) fn is_cached(key: &PublicKey) -> bool {
    compressed(&key.to_bytes()).is_ok_and(|c| DECODED.lock().get(&c).is_some())
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.fingerprint())
    }
}

fn oid(text: &str) -> ObjectIdentifier {
    ObjectIdentifier::new_unwrap(text)
}

/// Accepts id-ecPublicKey on secp384r1; names anything else.
fn check_algorithm(
    algorithm: ObjectIdentifier,
    curve: Option<ObjectIdentifier>,
) -> Result<(), KeyError> {
    if algorithm != oid(OID_EC_PUBLIC_KEY) {
        let key_type = match algorithm.to_string().as_str() {
            "1.3.101.112" => "Ed25519".to_string(),
            "1.3.101.113" => "Ed448".to_string(),
            "1.3.101.110" => "X25519".to_string(),
            "1.3.101.111" => "X448".to_string(),
            "1.2.840.113549.1.1.1" | "1.2.840.113549.1.1.10" => "RSA".to_string(),
            "1.2.840.10040.4.1" => "DSA".to_string(),
            other => format!("unknown (algorithm OID {other})"),
        };
        return Err(KeyError::WrongKeyType { key_type });
    }
    let Some(curve) = curve else {
        return Err(KeyError::Malformed(
            "the elliptic-curve key names no curve".into(),
        ));
    };
    if curve == oid(OID_P384) {
        return Ok(());
    }
    let curve = match curve.to_string().as_str() {
        "1.2.840.10045.3.1.7" => "P-256 (prime256v1)".to_string(),
        "1.3.132.0.35" => "P-521 (secp521r1)".to_string(),
        "1.3.132.0.33" => "P-224 (secp224r1)".to_string(),
        "1.3.132.0.10" => "secp256k1".to_string(),
        "1.2.840.10045.3.1.1" => "P-192 (prime192v1)".to_string(),
        other => format!("unknown-curve (OID {other})"),
    };
    Err(KeyError::WrongCurve { curve })
}

/// The label and DER of the first PEM block that is not `EC PARAMETERS`.
/// Text around the block (comments, openssl's parameter block) is ignored.
fn decode_pem(text: &str) -> Result<(String, Zeroizing<Vec<u8>>), KeyError> {
    let mut rest = text;
    loop {
        let start = rest.find("-----BEGIN ").ok_or(KeyError::NotPem)?;
        let block = &rest[start..];
        let label_end = block["-----BEGIN ".len()..]
            .find("-----")
            .ok_or(KeyError::NotPem)?;
        let label = &block["-----BEGIN ".len().."-----BEGIN ".len() + label_end];
        let end_marker = format!("-----END {label}-----");
        let end = block
            .find(&end_marker)
            .ok_or_else(|| KeyError::BadPem(format!("no `{end_marker}` line")))?;
        let block_text = &block[..end + end_marker.len()];
        rest = &block[end + end_marker.len()..];
        if label == "EC PARAMETERS" {
            continue;
        }
        let (label, der) =
            pem::decode_vec(block_text.as_bytes()).map_err(|e| KeyError::BadPem(e.to_string()))?;
        return Ok((label.to_string(), Zeroizing::new(der)));
    }
}

#[cfg(test)]
pub(crate) mod tests;
