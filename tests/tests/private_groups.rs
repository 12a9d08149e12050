//! End to end: private groups, whose lines each sender encrypts for the
//! members with its sender key (docs/PROTOCOL.md, section 10). The server
//! stores and forwards ciphertext only; a member who leaves or is removed
//! cannot read what comes next, even with the keys it kept and the
//! server's copy; a member who joins cannot read what came before; a
//! member away through rotations reads everything when back; a member
//! whose copy of a key does not open asks its sender and reads late.

use std::path::Path;

use serde_json::{json, Value};
use udpchat_core::cbor;
use udpchat_core::crypto::sender_keys::{ReceivedChain, SealedLine};
use udpchat_tests::deployment::Deployment;
use udpchat_tests::{group_messages, password, take, Client, Server};

/// The sealed line the server stored as message `seq`, read from its
/// database (what a server, or whoever has its disk, holds).
fn stored_line(server_dir: &Path, seq: u64) -> (String, String, SealedLine) {
    let db = rusqlite::Connection::open(server_dir.join("udpchat.sqlite3")).unwrap();
    let (group, from, sealed): (String, String, Vec<u8>) = db
        .query_row(
            "SELECT group_name, sender, sealed FROM group_messages WHERE seq = ?1",
            [seq as i64],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    (group, from, cbor::decode_body(&sealed).unwrap())
}

/// Every chain `user`'s client kept from `from` in `group`, read from its
/// data dir (what a member who keeps a copy of its keys holds).
fn kept_chains(device: &Path, user: &str, group: &str, from: &str) -> Vec<ReceivedChain> {
    let path = device.join("users").join(user).join("chat.sqlite3");
    let db = rusqlite::Connection::open(path).unwrap();
    let bytes: Vec<u8> = db
        .query_row(
            "SELECT chains FROM received_chains WHERE group_name = ?1 AND sender = ?2",
            [group, from],
            |r| r.get(0),
        )
        .unwrap();
    cbor::decode_body(&bytes).unwrap()
}

/// Whether any of `chains` is the key `line` is under (its signature
/// checks), or opens it.
fn reads(chains: &[ReceivedChain], group: &str, from: &str, line: &SealedLine) -> bool {
    chains.iter().any(|chain| {
        (chain.key_id() == line.key_id && chain.verify(group, from, line).is_ok())
            || chain.clone().open(group, from, line).is_ok()
    })
}

/// Whether an event's message has `words` in it.
fn says(event: &Value, words: &str) -> bool {
    event["message"]
        .as_str()
        .unwrap_or_default()
        .contains(words)
}

fn sent_seq(client: &mut Client) -> u64 {
    client.expect("group-sent")["seq"].as_u64().unwrap()
}

#[test]
fn the_server_stores_and_logs_no_private_groups_text() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start_in(data.path(), "127.0.0.1:0");
    let mut alice = Client::sign_up(server.addr, "alice");
    let mut bob = Client::sign_up(server.addr, "bob");
    let mut carol = Client::sign_up(server.addr, "carol");
    alice.line("group create secret bob carol");
    let created = alice.expect("group-created");
    assert_eq!(created["private"], true);
    let secrets = [
        "the eagle lands at midnight 3b9e".to_string(),
        "bring the blue folder 77c1".to_string(),
        "x".repeat(3000) + " a long one in fragments d42f",
    ];
    alice.line(&format!("gsend secret {}", secrets[0]));
    sent_seq(&mut alice);
    bob.line(&format!("gsend secret {}", secrets[1]));
    sent_seq(&mut bob);
    carol.line(&format!("gsend secret {}", secrets[2]));
    sent_seq(&mut carol);
    let texts = |got: Vec<(u64, String, String)>| -> Vec<String> {
        got.into_iter().map(|(_, _, text)| text).collect()
    };
    assert_eq!(
        texts(group_messages(&mut alice, "secret", 2)),
        [secrets[1].clone(), secrets[2].clone()]
    );
    assert_eq!(
        texts(group_messages(&mut bob, "secret", 2)),
        [secrets[0].clone(), secrets[2].clone()]
    );
    // History is what this client read and sent, in the group's order.
    bob.line("group history secret");
    let history = bob.expect("group-history");
    let kept: Vec<&str> = history["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["text"].as_str().unwrap())
        .collect();
    assert_eq!(kept, secrets.iter().map(String::as_str).collect::<Vec<_>>());

    let data_dir = server.data_dir.clone();
    assert!(server.terminate().success());
    let mut checked = 0;
    for file in std::fs::read_dir(&data_dir).unwrap() {
        let path = file.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        for secret in &secrets {
            let needle = &secret[secret.len() - 10..];
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle.as_bytes()),
                "{} contains {needle:?}",
                path.display()
            );
        }
        checked += 1;
    }
    assert!(checked >= 3, "the database, its log and the trace log");
    let log = std::fs::read_to_string(data_dir.join("server.log")).unwrap();
    assert!(log.contains("gsend") || log.contains("TRACE") || log.contains("DEBUG"));
}

#[test]
fn a_removed_member_cannot_read_what_comes_next_even_with_its_keys_and_the_servers_copy() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start_in(data.path(), "127.0.0.1:0");
    let carol_device = tempfile::tempdir().unwrap();
    let mut alice = Client::sign_up(server.addr, "alice");
    let mut bob = Client::sign_up(server.addr, "bob");
    let mut carol = Client::sign_up_on(server.addr, carol_device.path(), "carol");
    alice.line("group create team bob carol");
    alice.expect("group-created");
    alice.line("gsend team while carol is in");
    let before = sent_seq(&mut alice);
    for member in [&mut bob, &mut carol] {
        assert_eq!(group_messages(member, "team", 1)[0].2, "while carol is in");
    }
    // carol keeps a copy of every key she was handed.
    let carols_keys = kept_chains(carol_device.path(), "carol", "team", "alice");
    let (group, from, line) = stored_line(data.path(), before);
    assert!(
        reads(&carols_keys, &group, &from, &line),
        "her keys are those of the server's copy of a line from before"
    );

    alice.line("group remove team carol");
    alice.expect("group-members");
    take(&mut carol, "groups", |e| e["groups"] == json!([]));
    alice.line("gsend team after carol left");
    let after = sent_seq(&mut alice);
    assert_eq!(group_messages(&mut bob, "team", 1)[0].2, "after carol left");
    let (group, from, line) = stored_line(data.path(), after);
    assert_ne!(
        line.key_id,
        stored_line(data.path(), before).2.key_id,
        "alice's key was replaced"
    );
    assert!(
        !reads(&carols_keys, &group, &from, &line),
        "carol's keys read what came after her removal"
    );
    // bob's next line is under a new key of his too.
    bob.line("gsend team bob after carol");
    let bobs = sent_seq(&mut bob);
    let (_, _, line) = stored_line(data.path(), bobs);
    assert!(!line.keys.iter().any(|k| k.to == "carol"));
    assert_eq!(line.keys.len(), 1, "handed to alice alone");
    let (_, rest) = carol.finish();
    assert!(
        rest.iter().all(|e| e["event"] != "group-message"),
        "{rest:?}"
    );
}

#[test]
fn a_member_who_joins_reads_only_what_comes_after_and_is_told() {
    let server = Server::start();
    let mut alice = Client::sign_up(server.addr, "alice");
    let mut bob = Client::sign_up(server.addr, "bob");
    let mut dave = Client::sign_up(server.addr, "dave");
    alice.line("group create lobby --open bob");
    alice.expect("group-created");
    alice.line("gsend lobby before dave");
    sent_seq(&mut alice);
    assert_eq!(group_messages(&mut bob, "lobby", 1)[0].2, "before dave");
    dave.line("group join lobby");
    let joined = dave.expect("group-joined");
    assert_eq!(
        joined["note"],
        "end-to-end encrypted: what was said before you joined cannot be read here"
    );
    // Someone the owner adds is told the same.
    let mut erin = Client::sign_up(server.addr, "erin");
    alice.line("group add lobby erin");
    alice.expect("group-members");
    take(&mut erin, "groups", |e| {
        e["note"]
            == "alice added you to lobby (end-to-end encrypted: what was said before you joined cannot be read here)"
    });
    alice.line("gsend lobby after dave");
    sent_seq(&mut alice);
    bob.line("gsend lobby bob to all three");
    sent_seq(&mut bob);
    let got = group_messages(&mut dave, "lobby", 2);
    let texts: Vec<&str> = got.iter().map(|g| g.2.as_str()).collect();
    assert_eq!(texts, ["after dave", "bob to all three"]);
    dave.line("group history lobby");
    let history = dave.expect("group-history");
    assert_eq!(history["messages"].as_array().unwrap().len(), 2);
    // The server's copy of what came before is no use to dave.
    let (_, rest) = dave.finish();
    assert!(!rest.iter().any(|e| e["text"] == "before dave"), "{rest:?}");
}

#[test]
fn a_member_away_through_two_rotations_reads_everything_when_back() {
    let server = Server::start();
    let bob_device = Client::away(server.addr, "bob");
    let mut alice = Client::sign_up(server.addr, "alice");
    let mut carol = Client::sign_up(server.addr, "carol");
    for user in ["dave", "eve"] {
        drop(Client::away(server.addr, user));
    }
    alice.line("group create crew bob carol dave eve");
    alice.expect("group-created");
    let mut said = Vec::new();
    let mut say = |client: &mut Client, from: &str, text: &str| {
        client.line(&format!("gsend crew {text}"));
        said.push((sent_seq(client), from.to_string(), text.to_string()));
    };
    say(&mut alice, "alice", "one, before anyone goes");
    say(&mut carol, "carol", "two, from carol");
    alice.line("group remove crew dave");
    alice.expect("group-members");
    say(&mut alice, "alice", "three, after dave went");
    say(&mut carol, "carol", "four, carol after dave");
    alice.line("group remove crew eve");
    alice.expect("group-members");
    say(&mut alice, "alice", "five, after eve went");
    say(&mut carol, "carol", "six, carol after eve");

    let mut bob = Client::sign_in_on(server.addr, bob_device.path(), "bob");
    let got = group_messages(&mut bob, "crew", said.len());
    assert_eq!(got, said, "everything, once, in the one order");
    let (_, rest) = bob.finish();
    let errors: Vec<&Value> = rest.iter().filter(|e| e["event"] == "error").collect();
    assert!(errors.is_empty(), "{errors:?}");
}

#[test]
fn a_line_that_comes_as_its_reader_leaves_is_still_opened_and_kept() {
    let server = Server::start();
    let bob_device = Client::away(server.addr, "bob");
    let mut alice = Client::sign_up(server.addr, "alice");
    alice.line("group create pair bob");
    alice.expect("group-created");
    alice.line("gsend pair waiting for bob");
    sent_seq(&mut alice);
    // bob signs in and leaves at once (a script with nothing to do): the
    // line the server hands over as he signs in is read with his keys,
    // though he may have signed out by the time it is.
    let pw = password("bob");
    let bob = Client::start_in(server.addr, bob_device.path(), &["-u", "bob", "-p", &pw]);
    let (status, rest) = bob.finish();
    assert!(status.success());
    let shown: Vec<&Value> = rest
        .iter()
        .filter(|e| e["event"] == "group-message")
        .collect();
    assert_eq!(shown.len(), 1, "{rest:?}");
    assert_eq!(shown[0]["text"], "waiting for bob");
    let errors: Vec<&Value> = rest.iter().filter(|e| e["event"] == "error").collect();
    assert!(errors.is_empty(), "{errors:?}");
}

#[test]
fn a_member_whose_key_never_came_asks_for_it_and_reads_late() {
    let deployment = Deployment::sqlite();
    let server = deployment.start(&[]);
    // carol's account was made by the operator, and no client of hers has
    // signed in yet: there is nothing to seal her a key to.
    let out = deployment.operator(&["user", "add", "carol"], &password("carol"));
    assert!(out.status.success(), "{out:?}");
    let mut alice = Client::sign_up(server.addr, "alice");
    alice.line("group create trio carol");
    alice.expect("group-created");
    alice.line("gsend trio before carol ever signed in");
    let told = take(&mut alice, "error", |e| e["code"] == "no-prekeys");
    assert!(
        says(&told, "carol cannot read your messages in trio yet"),
        "{told}"
    );
    let before = sent_seq(&mut alice);

    // carol comes: her client cannot read the line, says so once, asks
    // alice's, and shows it late when the key comes.
    let mut carol = Client::sign_in(server.addr, "carol");
    let asked = take(&mut carol, "error", |e| e["code"] == "missing-key");
    assert!(
        says(&asked, "no key for it here; asked alice for it"),
        "{asked}"
    );
    let late = take(&mut carol, "group-message", |e| e["group"] == "trio");
    assert_eq!(late["text"], "before carol ever signed in");
    assert_eq!(late["late"], true);
    carol.line("group history trio");
    let history = carol.expect("group-history");
    assert_eq!(
        history["messages"][0]["text"],
        "before carol ever signed in"
    );

    // The key alice handed her again is one she was given: removing her
    // rotates it, and her keys read nothing after.
    let carols_keys = kept_chains(&carol.data_dir, "carol", "trio", "alice");
    alice.line("group remove trio carol");
    alice.expect("group-members");
    alice.line("gsend trio after carol left");
    let after = sent_seq(&mut alice);
    let (group, from, line) = stored_line(deployment.data_dir(), after);
    assert_ne!(
        line.key_id,
        stored_line(deployment.data_dir(), before).2.key_id,
        "alice's key was replaced"
    );
    assert!(!reads(&carols_keys, &group, &from, &line));
}

#[test]
fn a_member_on_a_new_device_is_told_and_reads_from_then_on() {
    let server = Server::start();
    // bob's first device is gone; his account remains.
    drop(Client::away(server.addr, "bob"));
    let mut alice = Client::sign_up(server.addr, "alice");
    alice.line("group create pair bob");
    alice.expect("group-created");
    alice.line("gsend pair sealed for bob's old device");
    sent_seq(&mut alice);

    // A new device: a new identity key, which the key alice handed out was
    // not sealed for. bob is told once, and his client asks alice's; hers
    // hands her key to the new device from her next line on only (what
    // was sealed for the old device stays unread here, and bob is told).
    let mut bob = Client::start(
        server.addr,
        &["-u", "bob", "-p", &password("bob"), "--new-device"],
    );
    let asked = take(&mut bob, "error", |e| e["code"] == "missing-key");
    assert!(says(&asked, "asked alice for it"), "{asked}");
    let refused = take(&mut bob, "error", |e| e["code"] == "sealed");
    assert!(
        says(&refused, "older than the key this client was given"),
        "{refused}"
    );
    alice.line("gsend pair and the next one");
    sent_seq(&mut alice);
    assert_eq!(group_messages(&mut bob, "pair", 1)[0].2, "and the next one");
    let (_, rest) = bob.finish();
    assert!(
        !rest
            .iter()
            .any(|e| e["text"] == "sealed for bob's old device"),
        "{rest:?}"
    );
}
