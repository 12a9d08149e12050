//! End to end: group chat as in the seeds' group sample run (alice, bob,
//! charlie and eve in group1), with real processes: one order for every
//! member, delivery to the offline at sign-in, membership enforced,
//! groups kept over a restart, and a crowd on lossy links.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Instant;

use serde_json::{json, Value};
use udpchat_tests::deployment::Deployment;
use udpchat_tests::relay::{Impairment, Relay};
use udpchat_tests::{
    busy_history, group_messages, history_texts, no_more_group_messages, on_every_store,
    one_order_once_each, password, take, Client, Server,
};

fn sign_up_all(server: SocketAddr, users: &[&str]) -> Vec<Client> {
    users.iter().map(|u| Client::sign_up(server, u)).collect()
}

on_every_store!(
    the_seed_group_run_one_order_offline_delivery_non_members_and_leaving,
    operator_groups_and_members_survive_a_server_restart,
);

fn the_seed_group_run_one_order_offline_delivery_non_members_and_leaving(deployment: Deployment) {
    let server = deployment.start(&[]);
    let mut clients = sign_up_all(server.addr, &["alice", "bob", "eve", "dave"]);
    let mut dave = clients.pop().unwrap();
    let mut eve = clients.pop().unwrap();
    let mut bob = clients.pop().unwrap();
    let mut alice = clients.pop().unwrap();
    // charlie goes offline before anything is said (and comes back on the
    // same device: the group is end-to-end encrypted, and a new device
    // could not open the keys handed to this one).
    let charlie_device = Client::away(server.addr, "charlie");

    alice.line("group create group1 bob charlie eve");
    let created = alice.expect("group-created");
    assert_eq!(
        created["members"],
        json!(["alice", "bob", "charlie", "eve"])
    );
    assert_eq!(created["owner"], "alice");
    for member in [&mut bob, &mut eve] {
        let told = member.expect("groups");
        assert_eq!(told["groups"], json!(["group1"]));
        assert_eq!(told["note"], "alice added you to group1");
    }

    // alice, bob and eve talk at once; the server picks one order.
    let lines = [
        ("alice", "hi"),
        ("bob", "hello everyone"),
        ("eve", "hey, how r u guys doing?"),
    ];
    alice.line("gsend group1 hi");
    // bob talks as in the seed: conversation mode with the group.
    bob.line("chat group1");
    bob.expect_where("conversation", |e| e["with"] == "group1");
    bob.line("hello everyone");
    bob.line("/leave");
    eve.line("gsend group1 hey, how r u guys doing?");
    let mut order = BTreeMap::new();
    for (client, (from, text)) in [&mut alice, &mut bob, &mut eve].into_iter().zip(lines) {
        let sent = client.expect("group-sent");
        order.insert(
            sent["seq"].as_u64().unwrap(),
            (from.to_string(), text.to_string()),
        );
    }
    let everything: Vec<(u64, String, String)> = order
        .iter()
        .map(|(seq, (from, text))| (*seq, from.clone(), text.clone()))
        .collect();
    for (client, me) in [(&mut alice, "alice"), (&mut bob, "bob"), (&mut eve, "eve")] {
        let others: Vec<_> = everything.iter().filter(|m| m.1 != me).cloned().collect();
        assert_eq!(group_messages(client, "group1", 2), others, "{me}");
    }

    // charlie was offline: all three arrive at sign-in, in the same order,
    // after the list of charlie's groups.
    let mut charlie = Client::sign_in_on(server.addr, charlie_device.path(), "charlie");
    assert!(
        charlie
            .seen
            .iter()
            .all(|e| e["event"] != "groups" && e["event"] != "group-message"),
        "charlie's groups came before 'signed in': {:?}",
        charlie.seen
    );
    let groups = take(&mut charlie, "groups", |_| true);
    assert_eq!(groups["groups"], json!(["group1"]));
    assert_eq!(
        groups["members"]["group1"],
        json!(["alice", "bob", "charlie", "eve"])
    );
    assert_eq!(group_messages(&mut charlie, "group1", 3), everything);

    // A non-member cannot post, and nobody receives the attempt.
    dave.line("gsend group1 let me in");
    let error = dave.expect("error");
    assert_eq!(error["code"], "not-a-member");
    assert_eq!(error["message"], "you are not a member of group1");
    dave.line("group history group1");
    assert_eq!(dave.expect("error")["code"], "not-a-member");

    // eve leaves and stops receiving; the others go on.
    eve.line("group leave group1");
    eve.expect_where("group-left", |e| e["group"] == "group1");
    alice.line("gsend group1 eve has left");
    alice.expect("group-sent");
    for member in [&mut bob, &mut charlie] {
        let (_, from, text) = group_messages(member, "group1", 1).remove(0);
        assert_eq!((from.as_str(), text.as_str()), ("alice", "eve has left"));
    }
    charlie.line("group members group1");
    let members = charlie.expect("group-members");
    assert_eq!(members["members"], json!(["alice", "bob", "charlie"]));
    // History: every line in order, as members saw them.
    bob.line("group history group1");
    let history = bob.expect("group-history");
    let texts: Vec<&str> = history["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["text"].as_str().unwrap())
        .collect();
    let mut expected: Vec<&str> = everything.iter().map(|m| m.2.as_str()).collect();
    expected.push("eve has left");
    assert_eq!(texts, expected);
    bob.line("group history group1 1");
    let last = bob.expect("group-history");
    assert_eq!(last["messages"][0]["text"], "eve has left");
    assert_eq!(last["messages"].as_array().unwrap().len(), 1);

    let (status, rest) = eve.finish();
    assert!(status.success());
    let after_leaving: Vec<&Value> = rest
        .iter()
        .filter(|e| e["event"] == "group-message")
        .collect();
    assert!(after_leaving.is_empty(), "eve got {after_leaving:?}");
    let (_, rest) = dave.finish();
    assert!(
        rest.iter().all(|e| e["event"] != "group-message"),
        "{rest:?}"
    );
}

fn operator_groups_and_members_survive_a_server_restart(deployment: Deployment) {
    let server = deployment.start(&[]);
    // Each on a device of their own, kept over the restart (the groups
    // are end-to-end encrypted: their keys and lines stay on it).
    let devices: Vec<tempfile::TempDir> = (0..4).map(|_| tempfile::tempdir().unwrap()).collect();
    let [alice_device, _, _, eve_device] = &devices[..] else {
        unreachable!()
    };
    let mut clients: Vec<Client> = ["alice", "bob", "charlie", "eve"]
        .iter()
        .zip(&devices)
        .map(|(user, device)| Client::sign_up_on(server.addr, device.path(), user))
        .collect();
    // The seeds shipped a configured group1: the operator makes it.
    let made =
        deployment.operator_ok(&["group", "add", "group1", "alice", "bob", "charlie", "eve"]);
    assert_eq!(made.trim(), "group1: alice, bob, charlie, eve");
    // eve is away for what follows.
    assert!(clients.pop().unwrap().finish().0.success());
    clients[0].line("group create devs --open bob");
    clients[0].expect("group-created");
    // A member the operator added receives from the group's next message.
    clients[1].line("gsend group1 before the restart");
    clients[1].expect("group-sent");
    let (_, from, _) = group_messages(&mut clients[0], "group1", 1).remove(0);
    assert_eq!(from, "bob");
    drop(clients);
    assert!(server.terminate().success());

    let server = deployment.start(&[]);
    let listed = deployment.operator_ok(&["group", "list"]);
    assert_eq!(
        listed,
        "devs (owner alice): alice, bob\ngroup1: alice, bob, charlie, eve\n"
    );
    let mut alice = Client::sign_in_on(server.addr, alice_device.path(), "alice");
    let groups = take(&mut alice, "groups", |_| true);
    assert_eq!(groups["groups"], json!(["devs", "group1"]));
    let mut eve = Client::sign_in_on(server.addr, eve_device.path(), "eve");
    // eve was offline for the message before the restart: it was kept.
    let (_, from, text) = group_messages(&mut eve, "group1", 1).remove(0);
    assert_eq!(
        (from.as_str(), text.as_str()),
        ("bob", "before the restart")
    );
    alice.line("group history group1");
    assert_eq!(
        alice.expect("group-history")["messages"][0]["text"],
        "before the restart"
    );
    // Only the operator changes an operator's group.
    alice.line("group add group1 dave");
    let error = alice.expect("error");
    assert_eq!(error["code"], "not-allowed");
    assert_eq!(
        error["message"],
        "group1 is managed by the server's operator"
    );
    alice.line("gsend group1 after the restart");
    alice.expect("group-sent");
    let (_, from, text) = group_messages(&mut eve, "group1", 1).remove(0);
    assert_eq!(
        (from.as_str(), text.as_str()),
        ("alice", "after the restart")
    );
}

#[test]
fn bad_group_input_gets_one_clear_error_each() {
    let server = Server::start();
    let mut clients = sign_up_all(server.addr, &["alice", "bob"]);
    let mut bob = clients.pop().unwrap();
    let mut alice = clients.pop().unwrap();
    alice.line("group create group1");
    alice.expect("group-created");
    let expect_error = |client: &mut Client, line: &str, code: &str, message: &str| {
        client.line(line);
        let error = client.expect("error");
        assert_eq!(error["code"], code, "{line}: {error}");
        if !message.is_empty() {
            assert_eq!(error["message"], message, "{line}");
        }
    };
    expect_error(
        &mut alice,
        "gsend nogroup hi",
        "no-such-group",
        "No such group: nogroup",
    );
    expect_error(&mut alice, "group members nogroup", "no-such-group", "");
    expect_error(
        &mut alice,
        "group create group1",
        "name-taken",
        "the group name group1 is taken",
    );
    expect_error(
        &mut alice,
        "group create -x",
        "invalid-name",
        "invalid group name \"-x\": it must start with a letter or digit",
    );
    expect_error(&mut alice, "gsend a:b hi", "invalid-name", "");
    expect_error(
        &mut alice,
        "group create g2 zed",
        "no-such-user",
        "No such user: zed",
    );
    expect_error(
        &mut alice,
        "gsend group1    ",
        "empty-message",
        "empty message not sent",
    );
    let huge = format!("gsend group1 {}", "x".repeat(70_000));
    expect_error(&mut alice, &huge, "too-large", "");
    expect_error(
        &mut alice,
        "gsend",
        "usage",
        "usage: gsend <group> <message...>",
    );
    expect_error(&mut alice, "group frobnicate group1", "usage", "");
    expect_error(&mut alice, "group history group1 0", "usage", "");
    // Members are the owner's to add; a closed group cannot be joined.
    expect_error(
        &mut bob,
        "group add group1 bob",
        "not-allowed",
        "only group1's owner, alice, can add or remove its members",
    );
    expect_error(&mut bob, "group join group1", "not-allowed", "");
    expect_error(&mut bob, "group leave group1", "not-a-member", "");
    // An open group anyone can join.
    alice.line("group create lobby --open");
    alice.expect("group-created");
    bob.line("group join lobby");
    let joined = bob.expect("group-joined");
    assert_eq!(joined["members"], json!(["alice", "bob"]));
    bob.line("groups");
    let mine = bob.expect("groups");
    assert_eq!(mine["groups"], json!(["lobby"]));
    alice.line("group send lobby welcome");
    let (_, from, text) = group_messages(&mut bob, "lobby", 1).remove(0);
    assert_eq!((from.as_str(), text.as_str()), ("alice", "welcome"));
    // Nothing cost alice her session.
    alice.line("groups");
    assert_eq!(alice.expect("groups")["groups"], json!(["group1", "lobby"]));
}

/// 20 members, 4 of them sending 250 messages each at once, every member
/// behind its own lossy link: everyone gets every other member's message
/// exactly once, and all in the one order the server gave them.
#[test]
fn twenty_members_and_a_thousand_messages_cross_lossy_links_once_each_in_one_order() {
    const MEMBERS: usize = 20;
    const SENDERS: usize = 4;
    const PER_SENDER: usize = 250;
    let started = Instant::now();
    let server = Server::start();
    let relays: Vec<Relay> = (0..MEMBERS)
        .map(|i| {
            Relay::start(
                server.addr,
                Impairment {
                    loss: 0.10,
                    duplicate: 0.05,
                    reorder: 0.05,
                    seed: 100 + i as u64,
                },
            )
        })
        .collect();
    let names: Vec<String> = (0..MEMBERS).map(|i| format!("m{i:02}")).collect();
    // All at once: each waits out its own losses (key fetch, handshake).
    let mut members: Vec<Client> = names
        .iter()
        .zip(&relays)
        .map(|(name, relay)| {
            Client::start(relay.up, &["-u", name, "-p", &password(name), "--signup"])
        })
        .collect();
    for member in &mut members {
        member.expect("signed-in");
    }
    members[0].line(&format!("group create crowd {}", names[1..].join(" ")));
    // Private: every line is sealed by its sender, every member checks
    // and opens it (a line that did not open would be missing below).
    assert_eq!(members[0].expect("group-created")["private"], true);
    let signed_up = started.elapsed();

    for (s, sender) in members.iter_mut().take(SENDERS).enumerate() {
        for i in 0..PER_SENDER {
            // Every 25th is large enough to travel in fragments.
            let text = if i % 25 == 0 {
                format!("{s}.{i} {}", "x".repeat(3000))
            } else {
                format!("{s}.{i} hello")
            };
            sender.line(&format!("gsend crowd {text}"));
        }
    }
    one_order_once_each(&mut members, &names, SENDERS, PER_SENDER, "crowd", |m| {
        names[m].clone()
    });
    let delivered = started.elapsed();
    for member in members {
        no_more_group_messages(member);
    }
    eprintln!(
        "{MEMBERS} members signed up in {signed_up:?}; {} messages delivered to all by {delivered:?}",
        SENDERS * PER_SENDER
    );
}

#[test]
fn on_a_busy_server_fellow_members_still_hear_each_other_come_and_go() {
    let dir = tempfile::tempdir().unwrap();
    // More than one signed-in user is "busy" here: presence goes only to
    // those who asked about someone, or share a group with them.
    let server = Server::start_with(dir.path(), "127.0.0.1:0", &["--presence-limit", "1"]);
    let mut clients = sign_up_all(server.addr, &["alice", "bob", "carole"]);
    let _carole = clients.pop().unwrap();
    let mut bob = clients.pop().unwrap();
    let mut alice = clients.pop().unwrap();
    alice.line("group create team bob");
    alice.expect("group-created");
    bob.expect("groups");
    assert!(bob.finish().0.success());
    assert!(alice.finish().0.success());

    // alice comes back and sees her group; then bob comes back.
    let mut alice = Client::sign_in(server.addr, "alice");
    take(&mut alice, "groups", |g| g["groups"] == json!(["team"]));
    let bob = Client::sign_in(server.addr, "bob");
    let online = alice.expect_where("presence", |p| p["user"] == "bob");
    assert_eq!(online["online"], true);
    assert!(bob.finish().0.success());
    let gone = alice.expect_where("presence", |p| p["user"] == "bob");
    assert_eq!(gone["online"], false);
}

/// A member's client killed after it showed a group's line and before its
/// acknowledgement reached the server (held here on the way) is sent the
/// line again when it comes back, since the server never heard it arrive;
/// started again on the same data dir, the client does not show it twice.
/// In a plain group, and in a private one, where a line opened once cannot
/// be opened again.
#[test]
fn a_client_killed_before_the_server_heard_it_read_a_groups_line_does_not_show_it_again() {
    let server = Server::start();
    let bob_dir = tempfile::tempdir().unwrap();
    let mut alice = Client::sign_up(server.addr, "alice");
    Client::sign_up_on(server.addr, bob_dir.path(), "bob").kill();
    for (group, kind) in [("plain", "--plain"), ("secret", "")] {
        let relay = Relay::start(server.addr, Impairment::CLEAN);
        let mut bob = Client::sign_in_on(relay.up, bob_dir.path(), "bob");
        alice.line(&format!("group create {group} {kind} bob"));
        alice.expect("group-created");
        alice.line(&format!("gsend {group} before"));
        bob.expect_where("group-message", |m| m["text"] == "before");

        relay.hold_to_server();
        alice.line(&format!("gsend {group} shown once"));
        let shown = bob.expect_where("group-message", |m| m["text"] == "shown once");
        bob.kill();

        let mut bob = Client::sign_in_on(server.addr, bob_dir.path(), "bob");
        alice.line(&format!("gsend {group} after"));
        bob.expect_where("group-message", |m| m["text"] == "after");
        let again: Vec<&Value> = bob
            .seen
            .iter()
            .filter(|e| e["event"] == "group-message" && e["group"] == group)
            .filter(|e| e["seq"].as_u64() <= shown["seq"].as_u64())
            .collect();
        assert!(again.is_empty(), "{group}: shown again: {again:?}");
        let refused: Vec<&Value> = bob.seen.iter().filter(|e| e["event"] == "error").collect();
        assert!(refused.is_empty(), "{group}: {refused:?}");
        assert_eq!(
            history_texts(&mut bob, group),
            ["before", "shown once", "after"],
            "{group}"
        );
        bob.kill();
    }
}

/// A client killed after a group's line reached it, but before the line was
/// written to its history (another process had the file busy), gets the
/// line again when it comes back: a client acknowledges a line only once it
/// is written, so the server still holds it for that client.
#[test]
fn a_client_killed_before_it_wrote_a_groups_line_gets_it_again() {
    let server = Server::start();
    let bob_dir = tempfile::tempdir().unwrap();
    let mut alice = Client::sign_up(server.addr, "alice");
    Client::sign_up_on(server.addr, bob_dir.path(), "bob").kill();
    let relay = Relay::start(server.addr, Impairment::CLEAN);
    let mut bob = Client::sign_in_on(relay.up, bob_dir.path(), "bob");
    alice.line("group create plain --plain bob");
    alice.expect("group-created");
    alice.line("gsend plain before");
    bob.expect_where("group-message", |m| m["text"] == "before");

    // Another process writes to bob's history: his next line waits.
    let busy = busy_history(bob_dir.path(), "bob");
    let sent = relay.from_server();
    alice.line("gsend plain written first");
    // The line reaches bob's client and, not acknowledged, comes twice
    // more (the server's probes): by then an acknowledgement sent on
    // arrival, as before, would have left long ago, and the line would be
    // lost with bob (checked: the last wait below then fails).
    relay.wait_from_server(sent + 3);
    bob.kill();
    drop(busy);

    let mut bob = Client::sign_in_on(server.addr, bob_dir.path(), "bob");
    bob.expect_where("group-message", |m| m["text"] == "written first");
    assert_eq!(
        history_texts(&mut bob, "plain"),
        ["before", "written first"]
    );
    bob.kill();
}
