use super::*;
use crate::crypto::keys::tests::key;
use crate::crypto::keys::{PublicKey, StaticKey};
use crate::crypto::session::{Role, Session};
use crate::wire;
use noise::Identity;
use rand::rngs::StdRng;
use rand::SeedableRng;

const NOW: u64 = 1_700_000_000_000;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn rng(seed: u64) -> StdRng {
    StdRng::seed_from_u64(seed)
}

struct Nk {
    client: Keys,
    server: Keys,
    msg1: Vec<u8>,
    msg2: Vec<u8>,
    client_payload: Vec<u8>,
    server_payload: Vec<u8>,
}

fn nk(seed: u64, server: &StaticKey, hello: &[u8], welcome: &[u8]) -> Nk {
    let mut rng = rng(seed);
    let (state, msg1) = ClientHello::start(&mut rng, &server.public(), hello, NOW).unwrap();
    let (server_keys, msg2, client_payload) = ServerHandshake::respond(
        &mut rng,
        server,
        &msg1,
        NOW,
        welcome,
        &mut ReplayGuard::new(),
    )
    .unwrap();
    let (client_keys, server_payload) = state.read(&msg2).unwrap();
    Nk {
        client: client_keys,
        server: server_keys,
        msg1,
        msg2,
        client_payload,
        server_payload,
    }
}

struct Ik {
    initiator: Keys,
    responder: Keys,
    learned: PublicKey,
}

fn ik(seed: u64, alice: &StaticKey, bob: &StaticKey) -> Ik {
    let mut rng = rng(seed);
    let (state, msg1) = PeerHello::start(&mut rng, alice, &bob.public(), b"hi bob", NOW).unwrap();
    assert_eq!(state.peer(), &bob.public());
    let (responder, msg2, learned, payload) = PeerHandshake::respond(
        &mut rng,
        bob,
        &msg1,
        NOW,
        b"hi alice",
        &mut ReplayGuard::new(),
    )
    .unwrap();
    assert_eq!(payload, b"hi bob");
    let (initiator, payload) = state.read(&msg2).unwrap();
    assert_eq!(payload, b"hi alice");
    Ik {
        initiator,
        responder,
        learned,
    }
}

fn same_keys(a: &Keys, b: &Keys) -> bool {
    *a.initiator_to_responder == *b.initiator_to_responder
        && *a.responder_to_initiator == *b.responder_to_initiator
        && a.handshake_hash() == b.handshake_hash()
}

/// Seals "ping" from the initiator and "pong" back, through `wire`.
fn exchange(initiator: Keys, responder: Keys) -> Vec<u8> {
    let mut initiator = Session::new(initiator, Role::Initiator);
    let mut responder = Session::new(responder, Role::Responder);
    let first = wire::seal_data(&mut initiator, 7, b"ping").unwrap();
    let Ok(wire::Packet::Data {
        receiver_index,
        counter,
        ciphertext,
    }) = wire::Packet::parse(&first)
    else {
        panic!("not DATA");
    };
    assert_eq!(
        wire::open_data(&mut responder, receiver_index, counter, ciphertext).unwrap(),
        b"ping"
    );
    let reply = wire::seal_data(&mut responder, 9, b"pong").unwrap();
    let Ok(wire::Packet::Data {
        receiver_index,
        counter,
        ciphertext,
    }) = wire::Packet::parse(&reply)
    else {
        panic!("not DATA");
    };
    assert_eq!(
        wire::open_data(&mut initiator, receiver_index, counter, ciphertext).unwrap(),
        b"pong"
    );
    first
}

// Known answers: a change here is a protocol change. Update these only on
// purpose, together with docs/PROTOCOL.md and a wire version bump.
const NK_HANDSHAKE_HASH: &str = "4cfe547a55e11ac300799fd95d616762bcdb4a29deead4b224198c6e1b9a3fd30375db366c97a90540a0f91cdee18c08";
const NK_FIRST_DATA: &str = "0103000000070000000000000000a05b874dd8b826e68a2560e2d1a6b873a0940814";
const IK_HANDSHAKE_HASH: &str = "1cf0d9cc914ac3473b8edac31ad405f19b1fba1ead2cfaedfabbc0ecce8bed93481652267093d76a348e0a53103826f9";
const IK_FIRST_DATA: &str = "01030000000700000000000000001c6690eb5ff979ac30c34020c09f5ddaf04b5068";

#[test]
fn nk_known_answer() {
    let run = nk(1, &key(100), b"hello", b"welcome");
    assert_eq!(hex(run.client.handshake_hash()), NK_HANDSHAKE_HASH);
    assert_eq!(hex(&exchange(run.client, run.server)), NK_FIRST_DATA);
}

#[test]
fn ik_known_answer() {
    let run = ik(2, &key(101), &key(102));
    assert_eq!(hex(run.initiator.handshake_hash()), IK_HANDSHAKE_HASH);
    assert_eq!(hex(&exchange(run.initiator, run.responder)), IK_FIRST_DATA);
}

#[test]
fn nk_completes_with_the_same_keys_on_both_sides() {
    let run = nk(3, &key(100), b"client says", b"server says");
    assert!(same_keys(&run.client, &run.server));
    assert_eq!(run.client_payload, b"client says");
    assert_eq!(run.server_payload, b"server says");
    assert_ne!(
        *run.client.initiator_to_responder,
        *run.client.responder_to_initiator
    );
    exchange(run.client, run.server);
}

#[test]
fn ik_completes_and_the_responder_learns_the_initiators_key() {
    let (alice, bob) = (key(101), key(102));
    let run = ik(4, &alice, &bob);
    assert!(same_keys(&run.initiator, &run.responder));
    assert_eq!(run.learned, alice.public());
    exchange(run.initiator, run.responder);
}

#[test]
fn every_handshake_gets_fresh_keys() {
    let server = key(100);
    let a = nk(5, &server, b"", b"");
    let b = nk(6, &server, b"", b"");
    assert_ne!(a.client.handshake_hash(), b.client.handshake_hash());
    assert_ne!(
        *a.client.initiator_to_responder,
        *b.client.initiator_to_responder
    );
}

#[test]
fn message2_is_never_larger_than_message1() {
    let server = key(100);
    let (alice, bob) = (key(101), key(102));
    let big = vec![7u8; MAX_WELCOME_PAYLOAD];
    for hello in [&b""[..], &[1u8; 300][..], &[2u8; MAX_HELLO_PAYLOAD][..]] {
        let run = nk(7, &server, hello, &big);
        assert!(run.msg1.len() >= MIN_MESSAGE1_LEN);
        assert!(run.msg2.len() <= MAX_MESSAGE2_LEN);
        assert!(
            run.msg2.len() <= run.msg1.len(),
            "{} > {}",
            run.msg2.len(),
            run.msg1.len()
        );
        let hello_datagram = wire::Packet::Hello {
            pattern: wire::Pattern::Nk,
            sender_index: 1,
            message: &run.msg1,
            macs: &[0; wire::HELLO_MACS_LEN],
        }
        .encode();
        let welcome_datagram = wire::Packet::Welcome {
            sender_index: 2,
            receiver_index: 1,
            message: &run.msg2,
        }
        .encode();
        assert!(welcome_datagram.len() <= hello_datagram.len());
        assert!(hello_datagram.len() <= wire::MAX_DATAGRAM);
    }
    let mut rng = rng(8);
    let (_, msg1) = PeerHello::start(
        &mut rng,
        &alice,
        &bob.public(),
        &[3u8; MAX_HELLO_PAYLOAD],
        NOW,
    )
    .unwrap();
    assert!(wire::HELLO_HEADER_LEN + msg1.len() <= wire::MAX_DATAGRAM);
    let (_, msg1) = PeerHello::start(&mut rng, &alice, &bob.public(), b"", NOW).unwrap();
    assert_eq!(msg1.len(), MIN_MESSAGE1_LEN);
    let (_, msg2, _, _) =
        PeerHandshake::respond(&mut rng, &bob, &msg1, NOW, &big, &mut ReplayGuard::new()).unwrap();
    assert!(msg2.len() <= msg1.len());
}

#[test]
fn oversized_payloads_are_refused() {
    let server = key(100);
    let mut rng = rng(9);
    let too_big = vec![0u8; MAX_HELLO_PAYLOAD + 1];
    assert!(matches!(
        ClientHello::start(&mut rng, &server.public(), &too_big, NOW),
        Err(HandshakeError::PayloadTooLarge { .. })
    ));
    let (_, msg1) = ClientHello::start(&mut rng, &server.public(), b"", NOW).unwrap();
    let result = ServerHandshake::respond(
        &mut rng,
        &server,
        &msg1,
        NOW,
        &[0u8; MAX_WELCOME_PAYLOAD + 1],
        &mut ReplayGuard::new(),
    );
    assert!(matches!(
        result,
        Err(HandshakeError::PayloadTooLarge { .. })
    ));
}

#[test]
fn flipping_any_byte_of_nk_message1_is_refused() {
    let server = key(100);
    let mut rng = rng(10);
    let (_, msg1) = ClientHello::start(&mut rng, &server.public(), b"x", NOW).unwrap();
    let mut guard = ReplayGuard::new();
    for i in 0..msg1.len() {
        let mut bad = msg1.clone();
        bad[i] ^= 0x01;
        let result = ServerHandshake::respond(&mut rng, &server, &bad, NOW, b"", &mut guard);
        assert!(
            matches!(
                result,
                Err(HandshakeError::BadPoint | HandshakeError::Decrypt)
            ),
            "byte {i}: {:?}",
            result.err()
        );
    }
    assert!(guard.is_empty(), "refused messages must not be remembered");
    ServerHandshake::respond(&mut rng, &server, &msg1, NOW, b"", &mut guard).unwrap();
}

#[test]
fn flipping_any_byte_of_ik_message1_is_refused() {
    let (alice, bob) = (key(101), key(102));
    let mut rng = rng(10);
    let (_, msg1) = PeerHello::start(&mut rng, &alice, &bob.public(), b"x", NOW).unwrap();
    let mut guard = ReplayGuard::new();
    for i in 0..msg1.len() {
        let mut bad = msg1.clone();
        bad[i] ^= 0x01;
        let result = PeerHandshake::respond(&mut rng, &bob, &bad, NOW, b"", &mut guard);
        assert!(
            matches!(
                result,
                Err(HandshakeError::BadPoint | HandshakeError::Decrypt)
            ),
            "byte {i}: {:?}",
            result.err()
        );
    }
    assert!(guard.is_empty(), "refused messages must not be remembered");
    PeerHandshake::respond(&mut rng, &bob, &msg1, NOW, b"", &mut guard).unwrap();
}

#[test]
fn flipping_any_byte_of_message2_is_refused() {
    let server = key(100);
    let (alice, bob) = (key(101), key(102));
    let mut rng = rng(11);
    let (nk_state, nk_msg1) = ClientHello::start(&mut rng, &server.public(), b"", NOW).unwrap();
    let (_, nk_msg2, _) = ServerHandshake::respond(
        &mut rng,
        &server,
        &nk_msg1,
        NOW,
        b"ok",
        &mut ReplayGuard::new(),
    )
    .unwrap();
    for i in 0..nk_msg2.len() {
        let mut bad = nk_msg2.clone();
        bad[i] ^= 0x01;
        let result = nk_state.clone().read(&bad);
        assert!(result.is_err(), "NK byte {i} flipped was accepted");
    }
    nk_state.read(&nk_msg2).unwrap();

    let (ik_state, ik_msg1) = PeerHello::start(&mut rng, &alice, &bob.public(), b"", NOW).unwrap();
    let (_, ik_msg2, _, _) = PeerHandshake::respond(
        &mut rng,
        &bob,
        &ik_msg1,
        NOW,
        b"ok",
        &mut ReplayGuard::new(),
    )
    .unwrap();
    for i in 0..ik_msg2.len() {
        let mut bad = ik_msg2.clone();
        bad[i] ^= 0x01;
        let result = ik_state.clone().read(&bad);
        assert!(result.is_err(), "IK byte {i} flipped was accepted");
    }
    ik_state.read(&ik_msg2).unwrap();
}

#[test]
fn a_client_with_the_wrong_server_key_gets_no_answer() {
    let server = key(100);
    let impostor_key = key(103).public();
    let mut rng = rng(13);
    let (_, msg1) = ClientHello::start(&mut rng, &impostor_key, b"", NOW).unwrap();
    let result =
        ServerHandshake::respond(&mut rng, &server, &msg1, NOW, b"", &mut ReplayGuard::new());
    assert_eq!(result.err(), Some(HandshakeError::Decrypt));
}

#[test]
fn a_message2_from_another_server_is_refused() {
    let (server, other) = (key(100), key(103));
    let mut rng = rng(14);
    let (state, _) = ClientHello::start(&mut rng, &server.public(), b"", NOW).unwrap();
    // Another server answers a message 1 addressed to it.
    let (_, other_msg1) = ClientHello::start(&mut rng, &other.public(), b"", NOW).unwrap();
    let (_, msg2, _) = ServerHandshake::respond(
        &mut rng,
        &other,
        &other_msg1,
        NOW,
        b"",
        &mut ReplayGuard::new(),
    )
    .unwrap();
    assert_eq!(state.read(&msg2).err(), Some(HandshakeError::Decrypt));
}

#[test]
fn truncated_messages_are_refused() {
    let server = key(100);
    let mut rng = rng(15);
    let (state, msg1) = ClientHello::start(&mut rng, &server.public(), b"", NOW).unwrap();
    let mut guard = ReplayGuard::new();
    for len in [0, 1, 48, 49, 100, MIN_MESSAGE1_LEN - 1] {
        let result =
            ServerHandshake::respond(&mut rng, &server, &msg1[..len], NOW, b"", &mut guard);
        assert!(
            matches!(result, Err(HandshakeError::Truncated { .. })),
            "{len}"
        );
    }
    // Longer than the minimum but cut short: the tag no longer matches.
    let mut padded = msg1.clone();
    padded.extend_from_slice(&[0; 40]);
    let result = ServerHandshake::respond(
        &mut rng,
        &server,
        &padded[..msg1.len() + 20],
        NOW,
        b"",
        &mut guard,
    );
    assert_eq!(result.err(), Some(HandshakeError::Decrypt));

    let (_, msg2, _) =
        ServerHandshake::respond(&mut rng, &server, &msg1, NOW, b"", &mut guard).unwrap();
    assert!(matches!(
        state.read(&msg2[..64]),
        Err(HandshakeError::Truncated { .. })
    ));
}

#[test]
fn a_replayed_message1_is_refused() {
    let server = key(100);
    let (alice, bob) = (key(101), key(102));
    let mut rng = rng(16);
    let mut guard = ReplayGuard::new();
    let (_, msg1) = ClientHello::start(&mut rng, &server.public(), b"", NOW).unwrap();
    ServerHandshake::respond(&mut rng, &server, &msg1, NOW, b"", &mut guard).unwrap();
    let replay = ServerHandshake::respond(&mut rng, &server, &msg1, NOW + 5_000, b"", &mut guard);
    assert_eq!(replay.err(), Some(HandshakeError::Replayed));

    let (_, msg1) = PeerHello::start(&mut rng, &alice, &bob.public(), b"", NOW).unwrap();
    PeerHandshake::respond(&mut rng, &bob, &msg1, NOW, b"", &mut guard).unwrap();
    let replay = PeerHandshake::respond(&mut rng, &bob, &msg1, NOW + 1, b"", &mut guard);
    assert_eq!(replay.err(), Some(HandshakeError::Replayed));
}

#[test]
fn a_stale_or_future_timestamp_is_refused() {
    let server = key(100);
    let mut rng = rng(17);
    let mut guard = ReplayGuard::new();
    let (_, msg1) = ClientHello::start(&mut rng, &server.public(), b"", NOW).unwrap();
    for now in [NOW + FRESHNESS_MS + 1, NOW - FRESHNESS_MS - 1] {
        let result = ServerHandshake::respond(&mut rng, &server, &msg1, now, b"", &mut guard);
        assert_eq!(
            result.err(),
            Some(HandshakeError::Stale {
                timestamp_ms: NOW,
                now_ms: now
            })
        );
    }
    // Within the window (clocks a little apart) it is accepted.
    ServerHandshake::respond(
        &mut rng,
        &server,
        &msg1,
        NOW + FRESHNESS_MS,
        b"",
        &mut guard,
    )
    .unwrap();
}

#[test]
fn an_initiator_without_the_secret_it_claims_cannot_complete() {
    let (alice, bob, mallory) = (key(101), key(102), key(104));
    let mut rng = rng(18);
    // Mallory claims Alice's identity key but can only use her own secret.
    let claim = Identity {
        secret: &mallory,
        public: alice.public(),
    };
    let (_, msg1) =
        PeerHello::start_as(&mut rng, claim, &bob.public(), b"it's alice", NOW).unwrap();
    let result = PeerHandshake::respond(&mut rng, &bob, &msg1, NOW, b"", &mut ReplayGuard::new());
    assert_eq!(result.err(), Some(HandshakeError::Decrypt));
}

#[test]
fn a_responder_without_the_expected_identity_cannot_complete() {
    let (alice, bob, eve) = (key(101), key(102), key(104));
    let mut rng = rng(19);
    let (_, msg1) = PeerHello::start(&mut rng, &alice, &bob.public(), b"", NOW).unwrap();
    let result = PeerHandshake::respond(&mut rng, &eve, &msg1, NOW, b"", &mut ReplayGuard::new());
    assert_eq!(result.err(), Some(HandshakeError::Decrypt));
}

#[test]
fn patterns_do_not_mix() {
    let (alice, server) = (key(101), key(100));
    let mut rng = rng(20);
    let (_, ik_msg1) = PeerHello::start(&mut rng, &alice, &server.public(), b"", NOW).unwrap();
    let result = ServerHandshake::respond(
        &mut rng,
        &server,
        &ik_msg1,
        NOW,
        b"",
        &mut ReplayGuard::new(),
    );
    assert_eq!(result.err(), Some(HandshakeError::Decrypt));
    let (_, nk_msg1) = ClientHello::start(&mut rng, &server.public(), b"", NOW).unwrap();
    let result = PeerHandshake::respond(
        &mut rng,
        &server,
        &nk_msg1,
        NOW,
        b"",
        &mut ReplayGuard::new(),
    );
    assert_eq!(result.err(), Some(HandshakeError::Decrypt));
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(32))]

    #[test]
    fn responders_and_initiators_never_panic_on_arbitrary_bytes(
        mut bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..700),
        valid_point in proptest::prelude::any::<bool>(),
    ) {
        let server = key(100);
        if valid_point && bytes.len() >= 49 {
            // Get past the point check to the AEAD.
            bytes[..49].copy_from_slice(&key(105).public().to_bytes());
        }
        let mut guard = ReplayGuard::new();
        let _ = ServerHandshake::respond(&mut rng(0), &server, &bytes, NOW, b"", &mut guard);
        let _ = PeerHandshake::respond(&mut rng(0), &server, &bytes, NOW, b"", &mut guard);
        let (state, _) = ClientHello::start(&mut rng(0), &server.public(), b"", NOW).unwrap();
        proptest::prop_assert!(state.read(&bytes).is_err());
    }
}
