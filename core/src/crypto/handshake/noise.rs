//! The one Noise engine behind NK and IK: IK is NK plus the initiator's
//! static key (`s, ss` in message 1, `se` in message 2), so both patterns
//! run through the same three functions with an optional initiator identity.

use rand::{CryptoRng, RngCore};

use super::{hello_body, read_hello_body, HandshakeError, Keys, ReplayGuard};
use super::{MAX_WELCOME_PAYLOAD, MIN_MESSAGE1_LEN};
use crate::crypto::keys::{PublicKey, StaticKey, PUBLIC_KEY_LEN};
use crate::crypto::symmetric::{SymmetricState, IK_PROTOCOL, NK_PROTOCOL, TAG_LEN};

/// Which handshake pattern runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Pattern {
    Nk,
    Ik,
}

impl Pattern {
    fn protocol_name(self) -> &'static str {
        match self {
            Pattern::Nk => NK_PROTOCOL,
            Pattern::Ik => IK_PROTOCOL,
        }
    }
}

/// The identity an IK initiator claims (`public`) and the secret it uses for
/// `ss` and `se`. They differ only in tests of an impostor.
pub(super) struct Identity<'a> {
    pub(super) secret: &'a StaticKey,
    pub(super) public: PublicKey,
}

/// An initiator after sending message 1.
#[derive(Clone)]
pub(super) struct Initiator {
    state: SymmetricState,
    ephemeral: StaticKey,
    identity: Option<StaticKey>,
    started_ms: u64,
}

/// Bytes of an encrypted static key in IK message 1.
const SEALED_STATIC_LEN: usize = PUBLIC_KEY_LEN + TAG_LEN;

/// Builds message 1. `identity` is `Some` for IK, `None` for NK.
pub(super) fn initiate<R: CryptoRng + RngCore>(
    rng: &mut R,
    identity: Option<Identity<'_>>,
    responder: &PublicKey,
    payload: &[u8],
    now_ms: u64,
) -> Result<(Initiator, Vec<u8>), HandshakeError> {
    let pattern = if identity.is_some() {
        Pattern::Ik
    } else {
        Pattern::Nk
    };
    let mut state = SymmetricState::new(pattern.protocol_name());
    state.mix_hash(&responder.to_bytes());

    let ephemeral = StaticKey::generate(rng);
    let ephemeral_public = ephemeral.public().to_bytes();
    let mut message = ephemeral_public.clone();
    state.mix_hash(&ephemeral_public);
    state.mix_key(&ephemeral.diffie_hellman(responder)[..]);

    if let Some(identity) = &identity {
        message.extend(state.encrypt_and_hash(&identity.public.to_bytes()));
        state.mix_key(&identity.secret.diffie_hellman(responder)[..]);
    }
    let body = hello_body(now_ms, payload, message.len())?;
    message.extend(state.encrypt_and_hash(&body));
    let initiator = Initiator {
        state,
        ephemeral,
        identity: identity.map(|identity| identity.secret.clone()),
        started_ms: now_ms,
    };
    Ok((initiator, message))
}

/// Reads message 2 and derives the keys.
pub(super) fn finish(
    initiator: Initiator,
    message: &[u8],
) -> Result<(Keys, Vec<u8>), HandshakeError> {
    let Initiator {
        mut state,
        ephemeral,
        identity,
        started_ms,
    } = initiator;
    let min = PUBLIC_KEY_LEN + TAG_LEN;
    if message.len() < min {
        return Err(HandshakeError::Truncated {
            len: message.len(),
            min,
        });
    }
    let (their_ephemeral_bytes, sealed_payload) = message.split_at(PUBLIC_KEY_LEN);
    let their_ephemeral =
        PublicKey::from_bytes_once(their_ephemeral_bytes).map_err(|_| HandshakeError::BadPoint)?;
    state.mix_hash(their_ephemeral_bytes);
    state.mix_key(&ephemeral.diffie_hellman(&their_ephemeral)[..]);
    if let Some(identity) = &identity {
        state.mix_key(&identity.diffie_hellman(&their_ephemeral)[..]);
    }
    let payload = state
        .decrypt_and_hash(sealed_payload)
        .map_err(|_| HandshakeError::Decrypt)?;
    Ok((keys(state, started_ms), payload))
}

/// What a responder accepted: the keys, message 2, the initiator's identity
/// key (IK only) and the initiator's payload.
pub struct Accepted {
    pub keys: Keys,
    pub message: Vec<u8>,
    pub initiator: Option<PublicKey>,
    pub payload: Vec<u8>,
}

/// A message 1 read and answered, not yet checked against the
/// [`ReplayGuard`]: the responder's P-384 work, done wherever it may be
/// (a thread of a pool), and what [`Answered::admit`] then checks where the
/// guard is. Nothing is sent for it until it is admitted.
pub struct Answered {
    accepted: Accepted,
    /// Message 1's ephemeral key and timestamp, for the guard.
    ephemeral: [u8; PUBLIC_KEY_LEN],
    timestamp_ms: u64,
}

impl Answered {
    /// Accepts it if its timestamp is fresh at `now_ms` and its ephemeral
    /// key was not accepted before (then the guard remembers it).
    pub fn admit(self, replay: &mut ReplayGuard, now_ms: u64) -> Result<Accepted, HandshakeError> {
        if !ReplayGuard::is_fresh(self.timestamp_ms, now_ms) {
            return Err(HandshakeError::Stale {
                timestamp_ms: self.timestamp_ms,
                now_ms,
            });
        }
        if !replay.check_and_remember(&self.ephemeral, self.timestamp_ms, now_ms) {
            return Err(HandshakeError::Replayed);
        }
        Ok(self.accepted)
    }
}

/// Reads message 1 and, if it is authentic, fresh and new, answers it.
pub(super) fn respond<R: CryptoRng + RngCore>(
    rng: &mut R,
    pattern: Pattern,
    responder: &StaticKey,
    message: &[u8],
    now_ms: u64,
    payload: &[u8],
    replay: &mut ReplayGuard,
) -> Result<Accepted, HandshakeError> {
    answer(rng, pattern, responder, message, now_ms, payload)?.admit(replay, now_ms)
}

/// Reads message 1 and, if it is authentic and fresh, answers it; the
/// replay guard is left to [`Answered::admit`].
pub(super) fn answer<R: CryptoRng + RngCore>(
    rng: &mut R,
    pattern: Pattern,
    responder: &StaticKey,
    message: &[u8],
    now_ms: u64,
    payload: &[u8],
) -> Result<Answered, HandshakeError> {
    if payload.len() > MAX_WELCOME_PAYLOAD {
        return Err(HandshakeError::PayloadTooLarge {
            len: payload.len(),
            max: MAX_WELCOME_PAYLOAD,
        });
    }
    // A short message 1 would let a spoofed sender get a larger reply.
    if message.len() < MIN_MESSAGE1_LEN {
        return Err(HandshakeError::Truncated {
            len: message.len(),
            min: MIN_MESSAGE1_LEN,
        });
    }
    let mut state = SymmetricState::new(pattern.protocol_name());
    state.mix_hash(&responder.public().to_bytes());

    let (their_ephemeral_bytes, mut rest) = message.split_at(PUBLIC_KEY_LEN);
    let their_ephemeral =
        PublicKey::from_bytes_once(their_ephemeral_bytes).map_err(|_| HandshakeError::BadPoint)?;
    state.mix_hash(their_ephemeral_bytes);
    state.mix_key(&responder.diffie_hellman(&their_ephemeral)[..]);

    let initiator = match pattern {
        Pattern::Nk => None,
        Pattern::Ik => {
            let (sealed_static, body) = rest.split_at(SEALED_STATIC_LEN);
            rest = body;
            let static_bytes = state
                .decrypt_and_hash(sealed_static)
                .map_err(|_| HandshakeError::Decrypt)?;
            let initiator =
                PublicKey::from_bytes(&static_bytes).map_err(|_| HandshakeError::BadPoint)?;
            state.mix_key(&responder.diffie_hellman(&initiator)[..]);
            Some(initiator)
        }
    };
    let body = zeroize::Zeroizing::new(
        state
            .decrypt_and_hash(rest)
            .map_err(|_| HandshakeError::Decrypt)?,
    );
    let (timestamp_ms, their_payload) = read_hello_body(&body)?;
    // Stale now is stale when admitted too: no P-384 work for it.
    if !ReplayGuard::is_fresh(timestamp_ms, now_ms) {
        return Err(HandshakeError::Stale {
            timestamp_ms,
            now_ms,
        });
    }

    let ephemeral = StaticKey::generate(rng);
    let mut reply = ephemeral.public().to_bytes();
    state.mix_hash(&reply);
    state.mix_key(&ephemeral.diffie_hellman(&their_ephemeral)[..]);
    if let Some(initiator) = &initiator {
        state.mix_key(&ephemeral.diffie_hellman(initiator)[..]);
    }
    reply.extend(state.encrypt_and_hash(payload));
    debug_assert!(reply.len() <= message.len());
    let mut ephemeral_bytes = [0u8; PUBLIC_KEY_LEN];
    ephemeral_bytes.copy_from_slice(their_ephemeral_bytes);
    Ok(Answered {
        accepted: Accepted {
            keys: keys(state, now_ms),
            message: reply,
            initiator,
            payload: their_payload,
        },
        ephemeral: ephemeral_bytes,
        timestamp_ms,
    })
}

fn keys(state: SymmetricState, established_ms: u64) -> Keys {
    let (initiator_to_responder, responder_to_initiator, handshake_hash) = state.split();
    Keys {
        initiator_to_responder,
        responder_to_initiator,
        handshake_hash,
        established_ms,
    }
}
