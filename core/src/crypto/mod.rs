//! udpchat's cryptography, all on RustCrypto primitives (p384, aes-gcm,
//! hkdf, sha2); nothing here is hand-rolled.
//!
//! - [`keys`]: P-384 static keys and public keys, PEM, fingerprints, ECDSA.
//! - [`keyfile`]: `NAME.priv` / `NAME.pub` on disk (the only file IO here).
//! - [`symmetric`]: Noise's symmetric state on P-384 / AES-256-GCM / SHA-384.
//! - [`handshake`]: the NK (client to server) and IK (client to client)
//!   handshakes, and the [`handshake::ReplayGuard`] against replayed hellos.
//! - [`session`]: the sealed channel after a handshake.
//! - [`replay`]: the sliding window of accepted packet counters.
//! - [`sealed`]: X3DH-shaped messages for offline recipients, and prekeys.
//! - [`sender_keys`]: group messages encrypted once by their sender for
//!   every member (sender chains and their signing keys).
//!
//! Every function that needs randomness takes the RNG; none reads a clock
//! (time comes in as milliseconds since the UNIX epoch). Secrets are wiped
//! from memory when dropped.

pub mod handshake;
pub mod keyfile;
pub mod keys;
pub mod replay;
pub mod sealed;
pub mod sender_keys;
pub mod session;
pub mod symmetric;

pub use handshake::{HandshakeError, Keys, ReplayGuard};
pub use keys::{KeyError, PublicKey, StaticKey};
pub use session::{Role, Session, SessionError};
