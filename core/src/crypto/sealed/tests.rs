use super::*;
use crate::crypto::keys::tests::key;
use rand::rngs::StdRng;
use rand::SeedableRng;

struct Bob {
    identity: StaticKey,
    prekeys: Prekeys,
    one_time: Vec<OneTimePrekey>,
}

fn recipient(seed: u64) -> Bob {
    let mut rng = StdRng::seed_from_u64(seed);
    let identity = key(seed + 1000);
    let mut prekeys = Prekeys::generate(&mut rng, &identity, 1);
    let one_time = prekeys.generate_one_time(&mut rng, 3, 10);
    Bob {
        identity,
        prekeys,
        one_time,
    }
}

fn seal_to(bob: &Bob, alice: &StaticKey, one_time: Option<&OneTimePrekey>) -> SealedMessage {
    seal(
        &mut StdRng::seed_from_u64(99),
        alice,
        &bob.identity.public(),
        &bob.prekeys.signed_prekey(),
        one_time,
        b"see you tomorrow",
        b"alice->bob",
    )
    .unwrap()
}

#[test]
fn round_trip_with_and_without_a_one_time_prekey() {
    let alice = key(40);
    let mut bob = recipient(1);
    let first = bob.one_time[0].clone();
    for one_time in [Some(&first), None] {
        let sealed = seal_to(&bob, &alice, one_time);
        let (sender, plaintext) = bob
            .prekeys
            .open(&bob.identity, &sealed, b"alice->bob")
            .unwrap();
        assert_eq!(sender, alice.public());
        assert_eq!(plaintext, b"see you tomorrow");
    }
    // The used one-time prekey is gone; the others remain.
    assert_eq!(bob.prekeys.one_time_count(), 2);
}

#[test]
fn sealed_messages_travel_in_cbor() {
    let bob = recipient(2);
    let sealed = seal_to(&bob, &key(41), Some(&bob.one_time[1]));
    let bytes = crate::cbor::encode(&sealed);
    let back: SealedMessage = crate::cbor::decode(&bytes, 4096).unwrap();
    assert_eq!(back, sealed);
    // Keys and ciphertext are byte strings, not arrays of integers.
    assert!(bytes.len() < 49 * 2 + sealed.ciphertext.len() + 100);
}

#[test]
fn the_wrong_recipient_cannot_open() {
    let alice = key(42);
    let bob = recipient(3);
    let mut eve = recipient(4);
    let sealed = seal_to(&bob, &alice, None);
    // Eve's prekey has the same id, but not the same secret.
    assert_eq!(
        eve.prekeys.open(&eve.identity, &sealed, b"alice->bob"),
        Err(SealError::Decrypt)
    );
    // Bob's prekeys without Bob's identity secret do not open it either.
    assert_eq!(
        open(
            &eve.identity,
            bob.prekeys.signed_secret(),
            None,
            &sealed,
            b"alice->bob"
        ),
        Err(SealError::Decrypt)
    );
}

#[test]
fn a_bad_prekey_signature_is_refused_at_seal_time() {
    let bob = recipient(5);
    let mallory = key(43);
    // A prekey Mallory signed and passes off as Bob's.
    let forged = SignedPrekeySecret::generate(&mut StdRng::seed_from_u64(6), &mallory, 1).public();
    let result = seal(
        &mut StdRng::seed_from_u64(7),
        &key(44),
        &bob.identity.public(),
        &forged,
        None,
        b"secret",
        b"",
    );
    assert_eq!(result, Err(SealError::BadPrekeySignature));
}

#[test]
fn tampering_with_any_ciphertext_byte_is_refused() {
    let mut bob = recipient(8);
    let sealed = seal_to(&bob, &key(45), None);
    for i in 0..sealed.ciphertext.len() {
        let mut bad = sealed.clone();
        bad.ciphertext[i] ^= 0x80;
        assert_eq!(
            bob.prekeys.open(&bob.identity, &bad, b"alice->bob"),
            Err(SealError::Decrypt),
            "byte {i}"
        );
    }
    assert_eq!(
        bob.prekeys.open(&bob.identity, &sealed, b"alice->eve"),
        Err(SealError::Decrypt)
    );
    // A different claimed sender changes the key and the associated data.
    let mut spoofed = sealed.clone();
    spoofed.sender_identity = key(46).public();
    assert_eq!(
        bob.prekeys.open(&bob.identity, &spoofed, b"alice->bob"),
        Err(SealError::Decrypt)
    );
    bob.prekeys
        .open(&bob.identity, &sealed, b"alice->bob")
        .unwrap();
}

#[test]
fn the_one_time_prekey_is_required_when_it_was_used() {
    let mut bob = recipient(9);
    let sealed = seal_to(&bob, &key(47), Some(&bob.one_time[2]));
    assert_eq!(
        open(
            &bob.identity,
            bob.prekeys.signed_secret(),
            None,
            &sealed,
            b"alice->bob"
        ),
        Err(SealError::MissingOneTimePrekey { id: 12 })
    );
    // Dropping the one-time prekey id from the message does not help.
    let mut stripped = sealed.clone();
    stripped.one_time_prekey_id = None;
    assert_eq!(
        bob.prekeys.open(&bob.identity, &stripped, b"alice->bob"),
        Err(SealError::Decrypt)
    );
    bob.prekeys
        .open(&bob.identity, &sealed, b"alice->bob")
        .unwrap();
    // Opened once, the one-time prekey is gone: a replay cannot open.
    assert_eq!(
        bob.prekeys.open(&bob.identity, &sealed, b"alice->bob"),
        Err(SealError::MissingOneTimePrekey { id: 12 })
    );
}

#[test]
fn a_rotated_signed_prekey_is_named_in_the_error() {
    let bob = recipient(10);
    let mut sealed = seal_to(&bob, &key(48), None);
    sealed.signed_prekey_id = 2;
    assert_eq!(
        open(
            &bob.identity,
            bob.prekeys.signed_secret(),
            None,
            &sealed,
            b"alice->bob"
        ),
        Err(SealError::WrongSignedPrekey { id: 2 })
    );
}
