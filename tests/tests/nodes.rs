//! End to end: several `udpchat-server` nodes on one PostgreSQL database,
//! with users on different nodes chatting as if on one server: `list`
//! shows everyone, presence crosses nodes, a direct message goes to a
//! client on another node, a name signed in on one node is refused or
//! taken over on another exactly as on one node, a group with members on
//! three nodes keeps one order and delivers each message once, and a node
//! that goes down takes its users out of everyone's list. Skipped (loudly)
//! where no PostgreSQL can be started; CI has one.

use std::collections::BTreeSet;

use serde_json::json;
use udpchat_tests::deployment::{AliceAndBob, Deployment};
use udpchat_tests::{no_more_group_messages, one_order_once_each, password, take, Client};

#[test]
fn users_on_different_nodes_list_each_other_message_directly_and_see_each_other_go() {
    let Some(deployment) = Deployment::postgres() else {
        return;
    };
    // alice, on node one, hears that bob signed in on node two.
    let AliceAndBob {
        mut alice,
        mut bob,
        one: _one,
        two: _two,
    } = deployment.alice_and_bob_on_two_nodes();
    alice.line("list");
    assert_eq!(alice.expect("users")["users"], json!(["bob"]));
    bob.line("list");
    assert_eq!(bob.expect("users")["users"], json!(["alice"]));

    // A direct message, client to client, across nodes.
    alice.line("send bob hello from node one");
    let message = bob.expect("message");
    assert_eq!(message["from"], "alice");
    assert_eq!(message["text"], "hello from node one");
    assert_eq!(message["addr"], alice.addr.to_string());
    alice.expect_where("delivered", |e| e["to"] == "bob");
    bob.line("send alice and back from node two");
    assert_eq!(alice.expect("message")["text"], "and back from node two");

    // bob leaves: alice hears it, and her list is empty again.
    assert!(bob.finish().0.success());
    let gone = take(&mut alice, "presence", |e| e["user"] == "bob");
    assert_eq!(gone["online"], false);
    alice.line("list");
    assert_eq!(alice.expect("users")["users"], json!([]));
}

#[test]
fn a_name_held_on_one_node_is_refused_on_another_until_its_client_stops_answering() {
    let Some(deployment) = Deployment::postgres() else {
        return;
    };
    let one = deployment.start(&[]);
    let two = deployment.start_node("two", &[]);
    let alice_dir = tempfile::tempdir().unwrap();
    let pw = password("alice");
    let mut first = Client::start_in(
        one.addr,
        alice_dir.path(),
        &["-u", "alice", "-p", &pw, "--signup"],
    );
    first.expect("signed-in");
    let mut carole = Client::sign_up(one.addr, "carole");

    // The first client answers node one's probe: the name stays with it.
    let mut second = Client::start_in(two.addr, alice_dir.path(), &["-u", "alice", "-p", &pw]);
    let refused = second.expect("error");
    assert_eq!(refused["code"], "name-taken");
    assert_eq!(
        refused["message"],
        "alice is already signed in from another client"
    );
    drop(second);

    // It vanishes without signing out: the next sign-in on node two takes
    // the name over.
    first.kill();
    let mut moved = Client::start_in(two.addr, alice_dir.path(), &["-u", "alice", "-p", &pw]);
    moved.expect("signed-in");
    // carole, on node one, hears alice (re)appear there, and finds her at
    // her new client.
    take(&mut carole, "presence", |e| {
        e["user"] == "alice" && e["online"] == true
    });
    carole.line("send alice where are you now?");
    let message = moved.expect_where("message", |m| m["from"] == "carole");
    assert_eq!(message["text"], "where are you now?");
    carole.line("list");
    assert_eq!(carole.expect("users")["users"], json!(["alice"]));
}

#[test]
fn a_group_with_members_on_three_nodes_gets_a_thousand_messages_once_each_in_one_order() {
    let Some(deployment) = Deployment::postgres() else {
        return;
    };
    const SENDERS: usize = 4;
    const PER_SENDER: usize = 250;
    let nodes = [
        deployment.start(&[]),
        deployment.start_node("two", &[]),
        deployment.start_node("three", &[]),
    ];
    let names: Vec<String> = (0..6).map(|i| format!("m{i}")).collect();
    // Two members on each node; senders on every node.
    let mut members: Vec<Client> = names
        .iter()
        .enumerate()
        .map(|(i, name)| Client::sign_up(nodes[i % 3].addr, name))
        .collect();
    members[0].line(&format!("group create crowd {}", names[1..].join(" ")));
    members[0].expect("group-created");
    for member in &mut members[1..] {
        take(member, "groups", |e| e["groups"] == json!(["crowd"]));
    }

    for (s, sender) in members.iter_mut().take(SENDERS).enumerate() {
        for i in 0..PER_SENDER {
            sender.line(&format!("gsend crowd {s}.{i} hello"));
        }
    }
    one_order_once_each(&mut members, &names, SENDERS, PER_SENDER, "crowd", |m| {
        format!("{} (node {})", names[m], m % 3 + 1)
    });
    for member in members {
        no_more_group_messages(member);
    }
}

#[test]
fn a_node_that_goes_down_takes_its_users_out_of_every_list() {
    let Some(deployment) = Deployment::postgres() else {
        return;
    };
    let one = deployment.start(&[]);
    let two = deployment.start_node("two", &[]);
    let three = deployment.start_node("three", &[]);
    let mut alice = Client::sign_up(one.addr, "alice");
    let _bob = Client::sign_up(two.addr, "bob");
    let _carole = Client::sign_up(three.addr, "carole");
    // Once alice heard both come, her node lists them.
    for user in ["bob", "carole"] {
        take(&mut alice, "presence", |e| {
            e["user"] == user && e["online"] == true
        });
    }
    alice.line("list");
    assert_eq!(alice.expect("users")["users"], json!(["bob", "carole"]));
    // The operator sees the three nodes, one user on each.
    let status = deployment.operator_ok(&["status"]);
    let nodes: Vec<&str> = status.lines().filter(|l| l.starts_with("node ")).collect();
    assert_eq!(nodes.len(), 3, "{status}");
    assert!(
        nodes.iter().all(|l| l.contains(", 1 signed in")),
        "{status}"
    );
    assert!(status.ends_with("3 nodes, 3 users signed in\n"), "{status}");

    // Stopped: it says so as it goes.
    assert!(two.terminate().success());
    take(&mut alice, "presence", |e| {
        e["user"] == "bob" && e["online"] == false
    });
    let status = deployment.operator_ok(&["status"]);
    assert!(status.ends_with("2 nodes, 2 users signed in\n"), "{status}");

    // Killed: it says nothing; the others notice its heartbeat stopped.
    three.kill();
    take(&mut alice, "presence", |e| {
        e["user"] == "carole" && e["online"] == false
    });
    alice.line("list");
    assert_eq!(alice.expect("users")["users"], json!([]));
}

/// `alice`, given both nodes (`--server one,two`), signed in on the first.
fn alice_on_both(nodes: &[std::net::SocketAddr], dir: &std::path::Path, extra: &[&str]) -> Client {
    let pw = password("alice");
    let mut args = vec!["-u", "alice", "-p", &pw, "--signup"];
    args.extend_from_slice(extra);
    let mut alice = Client::start_on_servers(nodes, dir, &args);
    alice.expect("signed-in");
    alice
}

#[test]
fn a_client_whose_node_stops_moves_to_the_next_and_signs_in_again_by_itself() {
    let Some(deployment) = Deployment::postgres() else {
        return;
    };
    let one = deployment.start(&[]);
    let two = deployment.start_node("two", &[]);
    let dir = tempfile::tempdir().unwrap();
    let mut alice = alice_on_both(&[one.addr, two.addr], dir.path(), &[]);
    let mut bob = Client::sign_up(two.addr, "bob");

    // Node one stops, saying so: alice moves to node two at once (no
    // waiting out a timeout), trusting it with the key node one had.
    assert!(one.terminate().success());
    alice.expect("server-down");
    let moved = alice.expect("server-switch");
    assert_eq!(moved["server"], two.addr.to_string());
    alice.expect("signed-in");
    assert!(
        alice
            .seen
            .iter()
            .all(|e| e["event"] != "server-trusted" || e["server"] != two.addr.to_string()),
        "node two was trusted anew: {:?}",
        alice.seen
    );
    assert!(
        alice.seen.iter().all(|e| e["event"] != "error"),
        "{:?}",
        alice.seen
    );

    // Everything works as before, now through node two.
    bob.line("send alice still there?");
    assert_eq!(alice.expect("message")["text"], "still there?");
    alice.line("list");
    assert_eq!(alice.expect("users")["users"], json!(["bob"]));
}

#[test]
fn a_client_whose_node_is_killed_notices_moves_and_signs_in_again_by_itself() {
    let Some(deployment) = Deployment::postgres() else {
        return;
    };
    let one = deployment.start(&[]);
    let two = deployment.start_node("two", &[]);
    let dir = tempfile::tempdir().unwrap();
    let mut alice = alice_on_both(
        &[one.addr, two.addr],
        dir.path(),
        &["--presence-timeout", "3"],
    );
    let mut bob = Client::sign_up(two.addr, "bob");

    // Killed: node one says nothing. alice notices its silence, moves to
    // node two, and takes her name over there (node one's row says she is
    // still on it until it expires, but node one answers no probe).
    one.kill();
    alice.expect("server-lost");
    let moved = alice.expect("server-switch");
    assert_eq!(moved["server"], two.addr.to_string());
    alice.expect("signed-in");
    bob.line("send alice found you");
    assert_eq!(alice.expect("message")["text"], "found you");
}

#[test]
fn a_node_killed_in_the_middle_of_group_sends_loses_nothing_it_acknowledged() {
    let Some(deployment) = Deployment::postgres() else {
        return;
    };
    let one = deployment.start(&[]);
    let two = deployment.start_node("two", &[]);
    let pw = password("alice");
    let mut alice = Client::start(
        one.addr,
        &[
            "-u",
            "alice",
            "-p",
            &pw,
            "--signup",
            "--presence-timeout",
            "3",
        ],
    );
    alice.expect("signed-in");
    let mut bob = Client::sign_up(two.addr, "bob");
    alice.line("group create crowd bob");
    alice.expect("group-created");
    take(&mut bob, "groups", |e| e["groups"] == json!(["crowd"]));

    for i in 0..300 {
        alice.line(&format!("gsend crowd burst {i}"));
    }
    // Killed once some are acknowledged, with more on their way.
    for _ in 0..40 {
        alice.expect("group-sent");
    }
    one.kill();
    // Every acknowledgement node one sent came before alice found it
    // silent.
    alice.expect("server-lost");
    let acknowledged: BTreeSet<u64> = alice
        .seen
        .iter()
        .filter(|e| e["event"] == "group-sent")
        .filter_map(|e| e["seq"].as_u64())
        .collect();
    assert!(acknowledged.len() >= 40);
    // bob, on node two, gets each of them (and maybe some committed whose
    // acknowledgement was lost with the node), in order, once.
    let mut received: Vec<u64> = Vec::new();
    while received.last() < acknowledged.last() {
        let m = take(&mut bob, "group-message", |e| e["group"] == "crowd");
        received.push(m["seq"].as_u64().unwrap());
    }
    assert!(received.windows(2).all(|w| w[0] < w[1]), "{received:?}");
    let missing: Vec<&u64> = acknowledged
        .iter()
        .filter(|seq| !received.contains(seq))
        .collect();
    assert!(missing.is_empty(), "acknowledged and lost: {missing:?}");
}

#[test]
fn guessing_spread_over_nodes_is_slowed_as_on_one_node() {
    let Some(deployment) = Deployment::postgres() else {
        return;
    };
    let one = deployment.start(&[]);
    let two = deployment.start_node("two", &[]);
    drop(Client::sign_up(one.addr, "alice"));

    // Three wrong guesses through node one...
    let mut mallory = Client::start(one.addr, &[]);
    for guess in 0..3 {
        mallory.line(&format!("signin alice guess{guess}"));
        assert_eq!(mallory.expect("error")["code"], "bad-credentials");
    }
    // ...and node two makes the next one wait, even with the right
    // password, as node one would.
    let mut elsewhere = Client::start(two.addr, &[]);
    elsewhere.line(&format!("signin alice {}", password("alice")));
    let throttled = elsewhere.expect("error");
    assert_eq!(throttled["code"], "throttled", "{throttled}");
    assert!(throttled["message"]
        .as_str()
        .unwrap()
        .starts_with("too many failed sign-ins for alice"));
}

#[test]
fn a_new_device_signed_in_on_another_node_is_found_with_its_new_key() {
    let Some(deployment) = Deployment::postgres() else {
        return;
    };
    let one = deployment.start(&[]);
    let two = deployment.start_node("two", &[]);
    let mut alice = Client::sign_up(one.addr, "alice");
    let bob =
        |online: bool| move |e: &serde_json::Value| e["user"] == "bob" && e["online"] == online;
    // bob's first device, on node one: node one knows its key.
    let mut first = Client::sign_up(one.addr, "bob");
    take(&mut alice, "presence", bob(true));
    alice.line("send bob hello first device");
    assert_eq!(first.expect("message")["text"], "hello first device");
    assert!(first.finish().0.success());
    take(&mut alice, "presence", bob(false));

    // bob again, from another machine (a new identity key), on node two.
    let mut second = Client::sign_in(two.addr, "bob");
    // Once alice's node has heard, she reaches the new device directly:
    // node one gives her its new key, not the one it knew.
    take(&mut alice, "presence", bob(true));
    alice.line("send bob hello second device");
    let message = second.expect_where("message", |m| m["from"] == "alice");
    assert_eq!(message["text"], "hello second device");
    assert_eq!(message["addr"], alice.addr.to_string(), "{message}");
}
