//! The handshake gate: WireGuard's cookie mechanism (its mac1, mac2 and
//! cookie reply), on HMAC-SHA384.
//!
//! Answering a HELLO costs a responder P-384 work (about 1 ms), so a flood
//! of HELLOs could take a core and keep honest users from signing in. The
//! gate filters them with no public-key work and no per-HELLO state:
//!
//! - **mac1**, on every HELLO, is keyed with the responder's public key:
//!   a HELLO from someone who does not even know whom they talk to is
//!   dropped unanswered, as any garbage is.
//! - **Under load** (more HELLOs than the responder takes calmly), a HELLO
//!   must also carry **mac2**, keyed with a **cookie**: a MAC of the
//!   sender's address under a secret that changes every two minutes. A
//!   HELLO without a valid one gets a COOKIE REPLY (smaller than the HELLO:
//!   no amplification) and no further work. The initiator sends its HELLO
//!   again with the cookie, which proves it receives at its address, so
//!   the responder's per-source limits then count real sources.
//!
//! ```text
//! mac1 key = SHA-384("udpchat mac1 v1" || responder's static key, 49 bytes)
//! mac1     = HMAC-SHA384(mac1 key, HELLO bytes before the MACs)[..16]
//! cookie   = HMAC-SHA384(secret, address)[..16]   address = IP (4 or 16
//!            bytes) || port (u16); the secret is 32 random bytes, replaced
//!            every 2 minutes, the previous one still accepted
//! mac2     = HMAC-SHA384(cookie, HELLO bytes before mac2)[..16], or 16 zero
//!            bytes without a cookie
//! ```

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::{Digest, Sha384};
use zeroize::Zeroizing;

use crate::crypto::keys::PublicKey;
use crate::wire::{HELLO_MACS_LEN, MAC_LEN};

/// A cookie's secret is replaced this often; the one before is still
/// accepted, so a cookie lives between one and two of these.
pub const ROTATE_EVERY: Duration = Duration::from_secs(120);
/// How long an initiator uses a cookie it got.
pub const COOKIE_LIFETIME: Duration = Duration::from_secs(110);

pub type Cookie = [u8; MAC_LEN];

/// The key mac1 is made with, from the responder's public key.
pub fn mac1_key(responder: &PublicKey) -> Zeroizing<[u8; 48]> {
    let mut hash = Sha384::new();
    hash.update(b"udpchat mac1 v1");
    hash.update(responder.to_bytes());
    Zeroizing::new(hash.finalize().into())
}

fn hmac(key: &[u8]) -> Hmac<Sha384> {
    Hmac::<Sha384>::new_from_slice(key).expect("HMAC takes a key of any length")
}

pub(super) fn mac(key: &[u8], data: &[u8]) -> [u8; MAC_LEN] {
    let mut mac = hmac(key);
    mac.update(data);
    let full = mac.finalize().into_bytes();
    let mut out = [0u8; MAC_LEN];
    out.copy_from_slice(&full[..MAC_LEN]);
    out
}

/// Whether `tag` is `HMAC(key, data)` cut to its length (in constant time).
pub(super) fn verify(key: &[u8], data: &[u8], tag: &[u8]) -> bool {
    let mut mac = hmac(key);
    mac.update(data);
    mac.verify_truncated_left(tag).is_ok()
}

/// Fills in the MACs at the end of a HELLO datagram; returns its mac1.
pub fn stamp(hello: &mut [u8], mac1_key: &[u8], cookie: Option<&Cookie>) -> Cookie {
    let at = hello.len() - HELLO_MACS_LEN;
    let mac1 = mac(mac1_key, &hello[..at]);
    hello[at..at + MAC_LEN].copy_from_slice(&mac1);
    let mac2 = cookie.map_or([0u8; MAC_LEN], |c| mac(c, &hello[..at + MAC_LEN]));
    hello[at + MAC_LEN..].copy_from_slice(&mac2);
    mac1
}

/// Whether a HELLO datagram's mac1 is right for the responder.
pub fn mac1_ok(hello: &[u8], mac1_key: &[u8]) -> bool {
    let Some(at) = hello.len().checked_sub(HELLO_MACS_LEN) else {
        return false;
    };
    verify(mac1_key, &hello[..at], &hello[at..at + MAC_LEN])
}

/// A HELLO datagram's mac1.
pub fn mac1_of(hello: &[u8]) -> &[u8] {
    let at = hello.len().saturating_sub(HELLO_MACS_LEN);
    &hello[at..(at + MAC_LEN).min(hello.len())]
}

fn address_bytes(addr: SocketAddr) -> Vec<u8> {
    let mut out = match addr.ip() {
        IpAddr::V4(v4) => v4.octets().to_vec(),
        IpAddr::V6(v6) => v6.octets().to_vec(),
    };
    out.extend_from_slice(&addr.port().to_be_bytes());
    out
}

/// The responder's side: the rotating secret cookies are made with.
pub struct Gate {
    secret: Zeroizing<[u8; 32]>,
    previous: Zeroizing<[u8; 32]>,
    rotated: Instant,
}

impl Gate {
    pub fn new(rng: &mut impl RngCore, now: Instant) -> Gate {
        let mut secret = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(secret.as_mut());
        let mut previous = Zeroizing::new([0u8; 32]);
        rng.fill_bytes(previous.as_mut());
        Gate {
            secret,
            previous,
            rotated: now,
        }
    }

    /// Replaces the secret when it is due.
    pub fn rotate(&mut self, rng: &mut impl RngCore, now: Instant) {
        if now.saturating_duration_since(self.rotated) < ROTATE_EVERY {
            return;
        }
        std::mem::swap(&mut self.previous, &mut self.secret);
        rng.fill_bytes(self.secret.as_mut());
        self.rotated = now;
    }

    /// The cookie for `addr` now.
    pub fn cookie(&self, addr: SocketAddr) -> Cookie {
        mac(self.secret.as_ref(), &address_bytes(addr))
    }

    /// Whether a HELLO from `addr` carries a mac2 made with a cookie this
    /// gate gave `addr` (under this secret or the one before).
    pub fn mac2_ok(&self, hello: &[u8], addr: SocketAddr) -> bool {
        let Some(at) = hello.len().checked_sub(MAC_LEN) else {
            return false;
        };
        let address = address_bytes(addr);
        [&self.secret, &self.previous].into_iter().any(|secret| {
            let cookie = mac(secret.as_ref(), &address);
            verify(&cookie, &hello[..at], &hello[at..])
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::keys::StaticKey;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    fn hello() -> Vec<u8> {
        let mut bytes = vec![7u8; 300];
        bytes.extend_from_slice(&[0; HELLO_MACS_LEN]);
        bytes
    }

    #[test]
    fn mac1_needs_the_responders_key_and_covers_every_byte() {
        let rng = &mut StdRng::seed_from_u64(1);
        let server = StaticKey::generate(rng).public();
        let other = StaticKey::generate(rng).public();
        let mut bytes = hello();
        stamp(&mut bytes, mac1_key(&server).as_ref(), None);
        assert!(mac1_ok(&bytes, mac1_key(&server).as_ref()));
        assert!(!mac1_ok(&bytes, mac1_key(&other).as_ref()));
        for i in 0..bytes.len() - MAC_LEN {
            let mut bad = bytes.clone();
            bad[i] ^= 1;
            assert!(!mac1_ok(&bad, mac1_key(&server).as_ref()), "byte {i}");
        }
        assert!(!mac1_ok(&bytes[..10], mac1_key(&server).as_ref()));
    }

    #[test]
    fn a_cookie_is_bound_to_its_address_and_expires_after_two_rotations() {
        let rng = &mut StdRng::seed_from_u64(2);
        let t0 = Instant::now();
        let mut gate = Gate::new(rng, t0);
        let key = mac1_key(&StaticKey::generate(rng).public());
        let alice: SocketAddr = "192.0.2.1:4000".parse().unwrap();
        let mallory: SocketAddr = "192.0.2.1:4001".parse().unwrap();

        let mut bytes = hello();
        stamp(&mut bytes, key.as_ref(), None);
        assert!(!gate.mac2_ok(&bytes, alice), "no cookie, no mac2");

        let cookie = gate.cookie(alice);
        stamp(&mut bytes, key.as_ref(), Some(&cookie));
        assert!(gate.mac2_ok(&bytes, alice));
        assert!(!gate.mac2_ok(&bytes, mallory), "another address");

        gate.rotate(rng, t0 + ROTATE_EVERY / 2);
        assert!(gate.mac2_ok(&bytes, alice), "not due yet");
        gate.rotate(rng, t0 + ROTATE_EVERY);
        assert!(
            gate.mac2_ok(&bytes, alice),
            "the previous secret still counts"
        );
        gate.rotate(rng, t0 + ROTATE_EVERY * 2);
        assert!(!gate.mac2_ok(&bytes, alice), "two rotations on, it is gone");
    }
}
