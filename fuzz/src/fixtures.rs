//! The fixed keys and states the targets decode against, made once per
//! process from fixed seeds, so every run (and every seed file) is the same.

use std::sync::OnceLock;

use rand::rngs::StdRng;
use rand::SeedableRng;
use udpchat_core::crypto::handshake::{ClientHello, ExpectPeerHello, ExpectServerHello, PeerHello};
use udpchat_core::crypto::keys::StaticKey;
use udpchat_core::crypto::sealed::{OneTimePrekey, Prekeys};
use udpchat_core::crypto::sender_keys::{KeyShare, OwnChain};
use udpchat_core::mailbox;

/// The clock every handshake is made and checked at (ms since the epoch).
pub const NOW_MS: u64 = 1_700_000_000_000;
/// The signed prekey's id in Bob's store.
pub const SIGNED_PREKEY_ID: u32 = 7;
/// The first of Bob's one-time prekeys' ids.
pub const FIRST_ONE_TIME_ID: u32 = 100;

/// Keys and handshake states shared by the targets and the seed generator.
pub struct Fixture {
    /// The responder of every handshake target (a server, or a peer).
    pub server: StaticKey,
    /// The sender of sealed messages and the IK initiator.
    pub alice: StaticKey,
    /// The recipient of sealed messages.
    pub bob: StaticKey,
    /// Bob's prekey store: a signed prekey and two one-time prekeys.
    pub bob_prekeys: Prekeys,
    /// The public halves of Bob's one-time prekeys.
    pub bob_one_time: Vec<OneTimePrekey>,
    /// A client that sent `nk_hello` to `server` and waits for message 2.
    pub nk_initiator: ExpectServerHello,
    pub nk_hello: Vec<u8>,
    /// Alice, who sent `ik_hello` to `server` and waits for message 2.
    pub ik_initiator: ExpectPeerHello,
    pub ik_hello: Vec<u8>,
    /// The sender chain Alice hands Bob in the group [`GROUP_LINE_FROM`]
    /// (made by [`alice_group_chain`]).
    pub alice_group_share: KeyShare,
}

/// The group and sender of the `group_line` target's lines.
pub const GROUP_LINE_FROM: (&str, &str) = ("team", "alice");

/// Alice's sender chain in the group, the same at every call: the seeds
/// seal lines with it, the target opens them with its share.
pub fn alice_group_chain() -> OwnChain {
    OwnChain::generate(&mut rng(7))
}

impl std::fmt::Debug for Fixture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fixture").finish_non_exhaustive()
    }
}

/// The associated data of a message Alice leaves for Bob on the server.
pub fn associated() -> Vec<u8> {
    mailbox::associated("alice", "bob")
}

/// A deterministic RNG for `seed`.
pub fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

/// The fixture, made on first use.
pub fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let mut rng = rng(0x5eed);
        let server = StaticKey::generate(&mut rng);
        let alice = StaticKey::generate(&mut rng);
        let bob = StaticKey::generate(&mut rng);
        let mut bob_prekeys = Prekeys::generate(&mut rng, &bob, SIGNED_PREKEY_ID);
        let bob_one_time = bob_prekeys.generate_one_time(&mut rng, 2, FIRST_ONE_TIME_ID);
        let (nk_initiator, nk_hello) =
            ClientHello::start(&mut rng, &server.public(), &[1], NOW_MS).expect("NK hello");
        let (ik_initiator, ik_hello) =
            PeerHello::start(&mut rng, &alice, &server.public(), &[1], NOW_MS).expect("IK hello");
        Fixture {
            alice_group_share: alice_group_chain().share(),
            server,
            alice,
            bob,
            bob_prekeys,
            bob_one_time,
            nk_initiator,
            nk_hello,
            ik_initiator,
            ik_hello,
        }
    })
}
