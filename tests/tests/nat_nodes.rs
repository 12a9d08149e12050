//! End to end behind real NATs (tests/src/nat.rs) with two server nodes
//! on one PostgreSQL, each on a public host: clients on different nodes
//! meet through both (the punch goes through the other's node), are kept
//! as mail at once when no path opens, and find each other again when a
//! NAT forgets its mappings. They need root and PostgreSQL: without either
//! they are skipped, saying so on stderr.

use udpchat_tests::deployment::Deployment;
use udpchat_tests::direct::{addr_of, send};
use udpchat_tests::nat::{self, Nat, Router, Topology};
use udpchat_tests::operations::read_until;
use udpchat_tests::{take, Client, Server};

/// Two server nodes on one PostgreSQL, each on a public host, with alice
/// behind a router of the first kind signed in on node one and bob behind
/// one of the second kind on node two. `None` (said loudly) without
/// network namespaces or PostgreSQL.
struct TwoNodes {
    alice: Client,
    bob: Client,
    one: Server,
    router_a: Router,
    _two: Server,
    _router_b: Router,
    /// Last, so that they go after the processes in them.
    _net: Topology,
    deployment: Deployment,
}

fn two_nodes(nats: [Nat; 2]) -> Option<TwoNodes> {
    if !nat::available() {
        return None;
    }
    let deployment = Deployment::postgres()?;
    let mut net = Topology::new();
    let (host_one, host_two) = (net.public_host(), net.public_host());
    let mut router_a = net.router(nats[0]);
    let mut router_b = net.router(nats[1]);
    let alice_host = net.host_behind(&mut router_a);
    let bob_host = net.host_behind(&mut router_b);
    let one = deployment.start_node_on(&host_one, "one", true);
    let two = deployment.start_node_on(&host_two, "two", false);
    let mut alice = alice_host.sign_up(one.addr, "alice");
    let bob = bob_host.sign_up(two.addr, "bob");
    take(&mut alice, "presence", |e| {
        e["user"] == "bob" && e["online"] == true
    });
    Some(TwoNodes {
        alice,
        bob,
        one,
        router_a,
        _two: two,
        _router_b: router_b,
        _net: net,
        deployment,
    })
}

#[test]
fn two_clients_behind_nats_on_different_server_nodes_message_each_other_directly() {
    let Some(mut s) = two_nodes([Nat::Masquerade, Nat::Masquerade]) else {
        return;
    };
    // Node one arranges the meeting; its punch reaches bob through node
    // two, and both NATs open to each other.
    let (path, message) = send(
        &mut s.alice,
        &mut s.bob,
        "bob",
        "hello across two NATs and two nodes",
    );
    assert_eq!(path, "direct");
    let alice_public = s.router_a.wait_for_mapping(s.alice.addr, s.one.addr);
    assert_eq!(addr_of(&message), alice_public, "straight from alice's NAT");
    let (path, _) = send(&mut s.bob, &mut s.alice, "alice", "and back");
    assert_eq!(path, "direct");
}

#[test]
fn behind_a_symmetric_nat_on_another_node_a_message_is_kept_and_handed_over_at_once() {
    let Some(mut s) = two_nodes([Nat::Symmetric, Nat::Symmetric]) else {
        return;
    };
    // No address answers, and the relay lives on one node: the message is
    // sealed for bob and kept, and his node hands it over at once.
    s.alice.line("send bob no path between us");
    let kept = s
        .alice
        .expect_first(&["queued", "error"], |e| e["to"] == "bob");
    assert_eq!(kept["event"], "queued", "{kept}");
    let message = s
        .bob
        .expect_where("message", |m| m["text"] == "no path between us");
    assert_eq!(message["from"], "alice");
    assert_eq!(message["stored"], true, "{message}");
    let delivered = s
        .alice
        .expect_first(&["delivered", "error"], |e| e["to"] == "bob");
    assert_eq!(delivered["event"], "delivered", "{delivered}");
    assert_eq!(delivered["stored"], true, "{delivered}");
}

#[test]
fn a_nat_that_forgets_its_mappings_does_not_end_a_conversation_across_nodes() {
    let Some(mut s) = two_nodes([Nat::Masquerade, Nat::Masquerade]) else {
        return;
    };
    assert_eq!(send(&mut s.alice, &mut s.bob, "bob", "before").0, "direct");

    // alice's NAT reboots; she speaks to node one from a new public port.
    // Node two's row still has her old one, but the meeting bob's client
    // asks for when its message stalls reaches her through node one, and
    // her checks come to bob from her new port (peer-reflexive).
    let before = s.router_a.wait_for_mapping(s.alice.addr, s.one.addr);
    s.router_a.reboot();
    s.alice.line("list");
    s.alice.expect("users");
    let after = s.router_a.wait_for_mapping(s.alice.addr, s.one.addr);
    assert_ne!(before, after);
    // Node one follows her there and writes it down for the others.
    let db = s.deployment.database().unwrap();
    read_until("alice's new address in the database", || {
        let row = db.query("SELECT client_addr FROM signed_in WHERE user_name = 'alice'");
        if row == after.to_string() {
            Ok(())
        } else {
            Err(row)
        }
    });
    let (path, message) = send(&mut s.bob, &mut s.alice, "alice", "after the reboot");
    assert_eq!(path, "direct");
    assert_eq!(message["from"], "bob");
    let (path, message) = send(&mut s.alice, &mut s.bob, "bob", "and back");
    assert_eq!(path, "direct");
    assert_eq!(addr_of(&message).ip(), after.ip());
}
