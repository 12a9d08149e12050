//! NK, client to server: the client knows the server's static key and stays
//! anonymous at this layer (it signs in inside the session).
//! `<- s`, `-> e, es`, `<- e, ee`.

use std::fmt;

use rand::{CryptoRng, RngCore};

use super::noise::{self, Initiator, Pattern};
use super::{Answered, HandshakeError, Keys, ReplayGuard};
use crate::crypto::keys::{PublicKey, StaticKey};

/// The client's first step.
#[derive(Debug)]
pub struct ClientHello;

impl ClientHello {
    /// Builds message 1 for the server whose static key is `server_static`,
    /// carrying `payload` (at most [`super::MAX_HELLO_PAYLOAD`] bytes) and
    /// the client's clock `now_ms`.
    pub fn start<R: CryptoRng + RngCore>(
        rng: &mut R,
        server_static: &PublicKey,
        payload: &[u8],
        now_ms: u64,
    ) -> Result<(ExpectServerHello, Vec<u8>), HandshakeError> {
        let (initiator, message) = noise::initiate(rng, None, server_static, payload, now_ms)?;
        Ok((ExpectServerHello { initiator }, message))
    }
}

/// A client waiting for the server's message 2.
#[derive(Clone)]
pub struct ExpectServerHello {
    initiator: Initiator,
}

impl ExpectServerHello {
    /// Reads message 2: the session keys and the server's payload.
    pub fn read(self, message: &[u8]) -> Result<(Keys, Vec<u8>), HandshakeError> {
        noise::finish(self.initiator, message)
    }
}

impl fmt::Debug for ExpectServerHello {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ExpectServerHello").finish_non_exhaustive()
    }
}

/// The server's only step.
#[derive(Debug)]
pub struct ServerHandshake;

impl ServerHandshake {
    /// Reads a client's message 1 and, if it is authentic, fresh and not
    /// seen before, returns the session keys, message 2 (carrying `payload`,
    /// at most [`super::MAX_WELCOME_PAYLOAD`] bytes) and the client's
    /// payload. On any error the server sends nothing and keeps nothing.
    pub fn respond<R: CryptoRng + RngCore>(
        rng: &mut R,
        server_static: &StaticKey,
        message: &[u8],
        now_ms: u64,
        payload: &[u8],
        replay: &mut ReplayGuard,
    ) -> Result<(Keys, Vec<u8>, Vec<u8>), HandshakeError> {
        let accepted = noise::respond(
            rng,
            Pattern::Nk,
            server_static,
            message,
            now_ms,
            payload,
            replay,
        )?;
        Ok((accepted.keys, accepted.message, accepted.payload))
    }

    /// [`ServerHandshake::respond`]'s P-384 work alone, for any thread;
    /// [`Answered::admit`] then checks it against the replay guard.
    pub fn answer<R: CryptoRng + RngCore>(
        rng: &mut R,
        server_static: &StaticKey,
        message: &[u8],
        now_ms: u64,
        payload: &[u8],
    ) -> Result<Answered, HandshakeError> {
        noise::answer(rng, Pattern::Nk, server_static, message, now_ms, payload)
    }
}
