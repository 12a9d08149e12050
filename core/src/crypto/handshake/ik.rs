//! IK, client to client: the initiator knows the responder's identity key
//! and sends its own, encrypted; both identities end up bound to the keys.
//! `<- s`, `-> e, es, s, ss`, `<- e, ee, se`.

use std::fmt;

use rand::{CryptoRng, RngCore};

use super::noise::{self, Identity, Initiator, Pattern};
use super::{Answered, HandshakeError, Keys, ReplayGuard};
use crate::crypto::keys::{PublicKey, StaticKey};

/// The initiating peer's first step.
#[derive(Debug)]
pub struct PeerHello;

impl PeerHello {
    /// Builds message 1 from `my_static` (the initiator's identity key) to
    /// the peer whose identity key is `their_static`, carrying `payload` (at
    /// most [`super::MAX_HELLO_PAYLOAD`] bytes) and the clock `now_ms`.
    pub fn start<R: CryptoRng + RngCore>(
        rng: &mut R,
        my_static: &StaticKey,
        their_static: &PublicKey,
        payload: &[u8],
        now_ms: u64,
    ) -> Result<(ExpectPeerHello, Vec<u8>), HandshakeError> {
        let identity = Identity {
            secret: my_static,
            public: my_static.public(),
        };
        PeerHello::start_as(rng, identity, their_static, payload, now_ms)
    }

    pub(super) fn start_as<R: CryptoRng + RngCore>(
        rng: &mut R,
        identity: Identity<'_>,
        their_static: &PublicKey,
        payload: &[u8],
        now_ms: u64,
    ) -> Result<(ExpectPeerHello, Vec<u8>), HandshakeError> {
        let (initiator, message) =
            noise::initiate(rng, Some(identity), their_static, payload, now_ms)?;
        let state = ExpectPeerHello {
            initiator,
            peer: their_static.clone(),
        };
        Ok((state, message))
    }
}

/// An initiating peer waiting for message 2.
#[derive(Clone)]
pub struct ExpectPeerHello {
    initiator: Initiator,
    peer: PublicKey,
}

impl ExpectPeerHello {
    /// The identity key of the peer this handshake is with.
    pub fn peer(&self) -> &PublicKey {
        &self.peer
    }

    /// Reads message 2: the session keys and the responder's payload.
    pub fn read(self, message: &[u8]) -> Result<(Keys, Vec<u8>), HandshakeError> {
        noise::finish(self.initiator, message)
    }
}

impl fmt::Debug for ExpectPeerHello {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExpectPeerHello")
            .field("peer", &self.peer)
            .finish_non_exhaustive()
    }
}

/// The responding peer's only step.
#[derive(Debug)]
pub struct PeerHandshake;

impl PeerHandshake {
    /// Reads an initiator's message 1 and, if it is authentic, fresh and
    /// not seen before, returns the session keys, message 2 (carrying
    /// `payload`, at most [`super::MAX_WELCOME_PAYLOAD`] bytes), the
    /// initiator's identity key (proven: the initiator holds its secret)
    /// and the initiator's payload. The caller decides whether it wants to
    /// talk to that identity before sending message 2.
    pub fn respond<R: CryptoRng + RngCore>(
        rng: &mut R,
        my_static: &StaticKey,
        message: &[u8],
        now_ms: u64,
        payload: &[u8],
        replay: &mut ReplayGuard,
    ) -> Result<(Keys, Vec<u8>, PublicKey, Vec<u8>), HandshakeError> {
        let accepted = noise::respond(
            rng,
            Pattern::Ik,
            my_static,
            message,
            now_ms,
            payload,
            replay,
        )?;
        let initiator = accepted
            .initiator
            .ok_or(HandshakeError::Malformed("no initiator identity"))?;
        Ok((accepted.keys, accepted.message, initiator, accepted.payload))
    }

    /// [`PeerHandshake::respond`]'s P-384 work alone, for any thread;
    /// [`Answered::admit`] then checks it against the replay guard (the
    /// initiator's identity is in what it admits).
    pub fn answer<R: CryptoRng + RngCore>(
        rng: &mut R,
        my_static: &StaticKey,
        message: &[u8],
        now_ms: u64,
        payload: &[u8],
    ) -> Result<Answered, HandshakeError> {
        noise::answer(rng, Pattern::Ik, my_static, message, now_ms, payload)
    }
}
