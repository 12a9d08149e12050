use super::*;
use rand::rngs::StdRng;
use rand::SeedableRng;

fn chain() -> OwnChain {
    OwnChain::generate(&mut StdRng::seed_from_u64(7))
}

fn received(own: &OwnChain) -> ReceivedChain {
    ReceivedChain::from_share(&own.share()).unwrap()
}

#[test]
fn a_member_reads_every_message_of_a_chain_it_was_handed() {
    let mut alice = chain();
    let mut bob = received(&alice);
    for i in 0..5 {
        let text = format!("hello {i}");
        let line = alice.seal("group1", "alice", &text, vec![], vec![]);
        assert_eq!(line.iteration, i);
        assert!(!line.ciphertext.windows(5).any(|w| w == b"hello"));
        assert_eq!(bob.open("group1", "alice", &line).unwrap(), text);
    }
}

#[test]
fn late_and_out_of_order_messages_open_once_each() {
    let mut alice = chain();
    let mut bob = received(&alice);
    let lines: Vec<SealedLine> = (0..6)
        .map(|i| alice.seal("g", "alice", &format!("m{i}"), vec![], vec![]))
        .collect();
    for i in [3, 0, 5, 1, 4, 2] {
        assert_eq!(bob.open("g", "alice", &lines[i]).unwrap(), format!("m{i}"));
    }
    for line in &lines {
        assert!(matches!(
            bob.open("g", "alice", line),
            Err(SenderKeyError::AlreadyRead { .. })
        ));
    }
}

#[test]
fn a_member_given_the_chain_later_cannot_read_what_came_before() {
    let mut alice = chain();
    let early = alice.seal("g", "alice", "before carol", vec![], vec![]);
    let mut carol = received(&alice);
    let late = alice.seal("g", "alice", "after carol", vec![], vec![]);
    assert_eq!(
        carol.open("g", "alice", &early),
        Err(SenderKeyError::BeforeShare { iteration: 0 })
    );
    assert_eq!(carol.open("g", "alice", &late).unwrap(), "after carol");
}

#[test]
fn a_share_from_an_earlier_iteration_reads_from_there() {
    let mut alice = chain();
    let lines: Vec<SealedLine> = (0..4)
        .map(|i| alice.seal("g", "alice", &format!("m{i}"), vec![], vec![]))
        .collect();
    let mut bob = ReceivedChain::from_share(&alice.share_from(2)).unwrap();
    assert_eq!(bob.first(), 2);
    assert!(bob.open("g", "alice", &lines[1]).is_err());
    assert_eq!(bob.open("g", "alice", &lines[2]).unwrap(), "m2");
    assert_eq!(bob.open("g", "alice", &lines[3]).unwrap(), "m3");
    assert!(bob.covers(&alice.share()));
    assert!(!bob.covers(&alice.share_from(1)));
}

#[test]
fn a_rotated_chain_is_not_readable_with_the_old_one() {
    let alice_old = chain();
    let mut bob = received(&alice_old);
    let mut alice_new = OwnChain::generate(&mut StdRng::seed_from_u64(8));
    let line = alice_new.seal("g", "alice", "after the rotation", vec![], vec![]);
    // Whatever the key id says, the old chain's signing key refuses it.
    assert_eq!(
        bob.open("g", "alice", &line),
        Err(SenderKeyError::BadSignature)
    );
}

#[test]
fn tampering_with_any_field_or_another_sender_or_group_is_refused() {
    let mut alice = chain();
    let bob = received(&alice);
    let line = alice.seal(
        "g",
        "alice",
        "hi",
        vec![KeyEnvelope {
            to: "carol".into(),
            sealed: vec![1, 2, 3],
        }],
        vec![Want {
            from: "dave".into(),
            key_id: 9,
        }],
    );
    let mut tampered = vec![];
    let mut t = line.clone();
    t.ciphertext[0] ^= 1;
    tampered.push(t);
    let mut t = line.clone();
    t.iteration += 1;
    tampered.push(t);
    let mut t = line.clone();
    t.keys[0].to = "mallory".into();
    tampered.push(t);
    let mut t = line.clone();
    t.wants.clear();
    tampered.push(t);
    let mut t = line.clone();
    t.signature[5] ^= 1;
    tampered.push(t);
    for t in &tampered {
        assert_eq!(
            bob.clone().open("g", "alice", t),
            Err(SenderKeyError::BadSignature)
        );
    }
    assert_eq!(
        bob.clone().open("g", "mallory", &line),
        Err(SenderKeyError::BadSignature)
    );
    assert_eq!(
        bob.clone().open("other", "alice", &line),
        Err(SenderKeyError::BadSignature)
    );
    assert_eq!(bob.clone().open("g", "alice", &line).unwrap(), "hi");
}

#[test]
fn a_refused_message_leaves_the_chain_as_it_was() {
    let mut alice = chain();
    let mut bob = received(&alice);
    let first = alice.seal("g", "alice", "one", vec![], vec![]);
    let second = alice.seal("g", "alice", "two", vec![], vec![]);
    let mut forged = second.clone();
    forged.signature = vec![0; 96];
    assert!(bob.open("g", "alice", &forged).is_err());
    assert_eq!(bob.open("g", "alice", &first).unwrap(), "one");
    assert_eq!(bob.open("g", "alice", &second).unwrap(), "two");
}

#[test]
fn skipped_keys_are_bounded() {
    let mut alice = chain();
    let mut bob = received(&alice);
    let lines: Vec<SealedLine> = (0..MAX_SKIPPED as u32 + 10)
        .map(|_| alice.seal("g", "alice", "x", vec![], vec![]))
        .collect();
    let last = lines.last().unwrap();
    bob.open("g", "alice", last).unwrap();
    assert_eq!(bob.skipped.len(), MAX_SKIPPED);
    // The oldest passed over are gone; the newest still open.
    assert!(matches!(
        bob.open("g", "alice", &lines[0]),
        Err(SenderKeyError::AlreadyRead { .. })
    ));
    let recent = &lines[lines.len() - 2];
    assert_eq!(bob.open("g", "alice", recent).unwrap(), "x");
}

#[test]
fn an_empty_line_carries_only_keys_and_wants() {
    let mut alice = chain();
    let mut bob = received(&alice);
    let line = alice.seal("g", "alice", "", vec![], vec![]);
    assert!(line.ciphertext.is_empty());
    assert_eq!(bob.open("g", "alice", &line).unwrap(), "");
}

#[test]
fn a_share_round_trips_and_a_bad_one_is_refused() {
    let alice = chain();
    let share = alice.share();
    let bytes = crate::cbor::encode(&share);
    let back: KeyShare = crate::cbor::decode_body(&bytes).unwrap();
    assert_eq!(back, share);
    let mut bad = share.clone();
    bad.chain_key.pop();
    assert!(ReceivedChain::from_share(&bad).is_err());
    let mut bad = share;
    bad.signing = vec![4; 49];
    assert!(ReceivedChain::from_share(&bad).is_err());
}
