use super::*;
use rand::rngs::StdRng;
use rand::SeedableRng;

/// Each member's keys, none yet.
fn keyrings(members: &[&str]) -> HashMap<String, GroupKeys> {
    members
        .iter()
        .map(|n| (n.to_string(), GroupKeys::default()))
        .collect()
}

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// Sends a line from `me` to the members, handing out what is due, and
/// delivers it to each receiver as the server would.
fn send(
    keys: &mut HashMap<String, GroupKeys>,
    me: &str,
    members: Option<&[String]>,
    text: &str,
    rng: &mut StdRng,
) -> (SealedLine, Handout) {
    let sender = keys.get_mut(me).unwrap();
    let handout = sender.handout("g", me, members, rng);
    let iteration = sender.next_iteration("g").unwrap();
    let line = sender.seal("g", me, text, vec![], vec![]).unwrap();
    let to: Vec<(String, Vec<u8>)> = handout
        .shares
        .iter()
        .map(|(m, _)| (m.clone(), m.as_bytes().to_vec()))
        .collect();
    sender.handed("g", &to, iteration);
    for (member, share) in &handout.shares {
        keys.get_mut(member)
            .unwrap()
            .accept("g", me, share)
            .unwrap();
    }
    (line, handout)
}

#[test]
fn a_member_who_left_cannot_read_what_comes_after_the_rotation() {
    let mut rng = StdRng::seed_from_u64(1);
    let mut keys = keyrings(&["alice", "bob", "carol"]);
    let all = names(&["alice", "bob", "carol"]);
    let (line, handout) = send(&mut keys, "alice", Some(&all), "hello", &mut rng);
    assert!(handout.rotated);
    assert_eq!(handout.shares.len(), 2);
    for reader in ["bob", "carol"] {
        assert_eq!(
            keys.get_mut(reader)
                .unwrap()
                .open("g", "alice", &line)
                .unwrap(),
            "hello"
        );
    }
    // Nothing changed: nothing to hand out, and the same digest.
    let (line, handout) = send(&mut keys, "alice", None, "again", &mut rng);
    assert!(handout.shares.is_empty() && !handout.rotated);
    assert_eq!(handout.digest, members_digest(&all));
    assert_eq!(
        keys.get_mut("carol")
            .unwrap()
            .open("g", "alice", &line)
            .unwrap(),
        "again"
    );

    // carol leaves: alice's next message is under a new chain, handed to bob only.
    let left = names(&["alice", "bob"]);
    let (line, handout) = send(&mut keys, "alice", Some(&left), "after carol", &mut rng);
    assert!(handout.rotated);
    assert_eq!(handout.shares.len(), 1);
    assert_eq!(
        keys.get_mut("bob")
            .unwrap()
            .open("g", "alice", &line)
            .unwrap(),
        "after carol"
    );
    assert!(matches!(
        keys.get_mut("carol").unwrap().open("g", "alice", &line),
        Err(OpenError::NoKey { .. })
    ));
}

#[test]
fn a_member_who_joins_gets_the_chain_from_the_next_message_only() {
    let mut rng = StdRng::seed_from_u64(2);
    let mut keys = keyrings(&["alice", "bob", "dave"]);
    let (before, _) = send(
        &mut keys,
        "alice",
        Some(&names(&["alice", "bob"])),
        "before",
        &mut rng,
    );
    let with_dave = names(&["alice", "bob", "dave"]);
    let (after, handout) = send(&mut keys, "alice", Some(&with_dave), "after", &mut rng);
    assert!(!handout.rotated, "no one left: no new chain");
    assert_eq!(handout.shares.len(), 1, "only dave is handed it");
    let dave = keys.get_mut("dave").unwrap();
    assert!(dave.open("g", "alice", &before).is_err());
    assert_eq!(dave.open("g", "alice", &after).unwrap(), "after");
    let bob = keys.get_mut("bob").unwrap();
    assert_eq!(bob.open("g", "alice", &before).unwrap(), "before");
    assert_eq!(bob.open("g", "alice", &after).unwrap(), "after");
}

#[test]
fn a_share_handed_again_is_not_new_and_late_messages_of_an_old_chain_open() {
    let mut rng = StdRng::seed_from_u64(3);
    let mut keys = keyrings(&["alice", "bob", "carol"]);
    let all = names(&["alice", "bob", "carol"]);
    let (old, _) = send(&mut keys, "alice", Some(&all), "old chain", &mut rng);
    let share = keys["alice"].share_again("g", "bob", b"bob").unwrap();
    assert!(!keys
        .get_mut("bob")
        .unwrap()
        .accept("g", "alice", &share)
        .unwrap());
    let (new, _) = send(
        &mut keys,
        "alice",
        Some(&names(&["alice", "bob"])),
        "new chain",
        &mut rng,
    );
    let bob = keys.get_mut("bob").unwrap();
    assert_eq!(bob.open("g", "alice", &new).unwrap(), "new chain");
    assert_eq!(
        bob.open("g", "alice", &old).unwrap(),
        "old chain",
        "late, and still opens"
    );
    assert_eq!(
        keys["alice"].share_again("g", "carol", b"carol"),
        None,
        "not a member now"
    );
    let changed = keys.get_mut("bob").unwrap().take_changed();
    assert_eq!(changed.len(), 1);
    assert_eq!(changed[0].1.len(), 2, "both chains kept");
}

#[test]
fn lines_held_for_a_key_open_once_it_comes() {
    let mut rng = StdRng::seed_from_u64(5);
    let mut keys = keyrings(&["alice", "bob", "carol"]);
    let all = names(&["alice", "bob", "carol"]);
    let alice = keys.get_mut("alice").unwrap();
    alice.handout("g", "alice", Some(&all), &mut rng);
    // Meant for bob and carol, but bob's copy did not reach him (or
    // did not open on this device).
    alice.handed("g", &[("carol".into(), b"carol".to_vec())], 0);
    let lines: Vec<SealedLine> = (0..3)
        .map(|i| {
            alice
                .seal("g", "alice", &format!("m{i}"), vec![], vec![])
                .unwrap()
        })
        .collect();
    let message = |seq: u64, from: &str| GroupMessage {
        group: "g".into(),
        seq,
        from: from.into(),
        text: String::new(),
        sealed: None,
        time_ms: 0,
    };
    let bob = keys.get_mut("bob").unwrap();
    for (i, line) in lines.iter().enumerate() {
        assert!(matches!(
            bob.open("g", "alice", line),
            Err(OpenError::NoKey { .. })
        ));
        assert_eq!(bob.hold(message(i as u64 + 1, "alice"), line.clone()), None);
    }
    // Someone else's key changes nothing for alice's lines.
    assert!(bob.release("g", "carol").is_empty());
    assert_eq!(bob.held("g"), 3);
    // carol on a new device (another identity key) is handed the chain
    // from the next message only; bob, whose copy never came, from
    // the start.
    let carols = keys["alice"].share_again("g", "carol", b"new").unwrap();
    assert_eq!(carols.iteration, 3);
    let share = keys["alice"].share_again("g", "bob", b"bob").unwrap();
    assert_eq!(share.iteration, 0);
    let bob = keys.get_mut("bob").unwrap();
    bob.accept("g", "alice", &share).unwrap();
    let released = bob.release("g", "alice");
    let texts: Vec<String> = released
        .into_iter()
        .map(|(m, text)| format!("{} {}", m.seq, text.unwrap()))
        .collect();
    assert_eq!(texts, ["1 m0", "2 m1", "3 m2"]);
    assert_eq!(bob.held("g"), 0);
    bob.hold(message(7, "carol"), lines[0].clone());
    bob.hold(message(8, "carol"), lines[1].clone());
    assert_eq!(
        bob.take_held(),
        [(("g".to_string(), "carol".to_string()), 2)]
    );
    assert_eq!(bob.held("g"), 0);
    // Past the bound the oldest goes, and is said to.
    for seq in 0..MAX_HELD as u64 {
        bob.hold(message(seq, "carol"), lines[0].clone());
    }
    let dropped = bob.hold(message(9_999, "carol"), lines[0].clone());
    assert_eq!(dropped.map(|m| m.seq), Some(0));
}

#[test]
fn once_private_a_group_stays_private_and_forgetting_drops_its_keys() {
    let mut keys = GroupKeys::default();
    assert_eq!(keys.is_private("g"), None);
    keys.set_private("g", true);
    keys.set_private("g", false);
    assert_eq!(keys.is_private("g"), Some(true));
    keys.set_private("plain", false);
    assert_eq!(keys.is_private("plain"), Some(false));
    // A listing without a group forgets it.
    keys.listed([("g", true)]);
    assert_eq!(keys.is_private("plain"), None);
    let mut rng = StdRng::seed_from_u64(4);
    keys.handout("g", "alice", Some(&names(&["alice"])), &mut rng);
    keys.forget("g");
    assert!(keys.needs_members("g"));
    assert_eq!(keys.is_private("g"), None);
}
