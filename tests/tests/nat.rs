//! End to end behind real NATs (tests/src/nat.rs): the server on a public
//! host, clients in network namespaces behind masquerading routers. The
//! first tests prove the topology does what a NAT does; then NAT traversal:
//! a meeting opens two NATs to each other, a symmetric NAT gets the
//! server's relay, two clients behind one NAT talk over their LAN, a NAT
//! that forgets its mappings mid-conversation does not end it, and 64 KiB
//! messages cross each path (clients on two server nodes: `nat_nodes.rs`).
//! They need root: as another user they are skipped, saying so on stderr.

use std::net::SocketAddr;

use serde_json::{json, Value};
use udpchat_tests::direct::{addr_of, send};
use udpchat_tests::nat::{self, Nat, Router, Topology};
use udpchat_tests::{history_texts, password, Client, Server};

/// alice and bob, each behind a router of the given kind (or, `one_lan`,
/// both behind the first), and the server on the public segment.
struct Sites {
    alice: Client,
    bob: Client,
    server: Server,
    router_a: Router,
    router_b: Router,
    /// Last, so that it goes after the processes in it.
    _net: Topology,
}

fn sites(nats: [Nat; 2], one_lan: bool) -> Sites {
    let mut net = Topology::new();
    let server_host = net.public_host();
    let mut router_a = net.router(nats[0]);
    let mut router_b = net.router(nats[1]);
    let alice_host = net.host_behind(&mut router_a);
    let bob_host = net.host_behind(if one_lan {
        &mut router_a
    } else {
        &mut router_b
    });
    let server = server_host.start_server();
    Sites {
        alice: alice_host.sign_up(server.addr, "alice"),
        bob: bob_host.sign_up(server.addr, "bob"),
        server,
        router_a,
        router_b,
        _net: net,
    }
}

/// alice behind a router of the given kind, carole on the public segment
/// beside the server.
struct Outside {
    alice: Client,
    /// The address of alice's host on her LAN.
    alice_lan: std::net::Ipv4Addr,
    carole: Client,
    server: Server,
    router: Router,
    /// Last, so that it goes after the processes in it.
    _net: Topology,
}

fn outside(nat: Nat) -> Outside {
    let mut net = Topology::new();
    let server_host = net.public_host();
    let carole_host = net.public_host();
    let mut router = net.router(nat);
    let alice_host = net.host_behind(&mut router);
    let server = server_host.start_server();
    Outside {
        alice: alice_host.sign_up(server.addr, "alice"),
        alice_lan: alice_host.addr,
        carole: carole_host.sign_up(server.addr, "carole"),
        server,
        router,
        _net: net,
    }
}

#[test]
fn a_client_behind_a_nat_is_seen_at_its_routers_public_address() {
    if !nat::available() {
        return;
    }
    let mut s = outside(Nat::Masquerade);
    assert_eq!(
        s.alice.addr.ip(),
        s.alice_lan,
        "alice binds her LAN address"
    );

    s.alice.line("list");
    assert_eq!(s.alice.expect("users")["users"], json!(["carole"]));
    // The server sees alice at the router's public address.
    let public = s.router.wait_for_mapping(s.alice.addr, s.server.addr);
    assert_eq!(public.ip(), s.router.wan);

    // alice writes first: carole's client sees her message come from the
    // router, through the mapping alice's flow to carole got, which is
    // the same as the one to the server (masquerade keeps the port).
    s.alice.line("send carole hello from behind a NAT");
    let message = s.carole.expect("message");
    assert_eq!(message["from"], "alice");
    assert_eq!(message["text"], "hello from behind a NAT");
    assert_eq!(message.get("stored"), None, "it came directly: {message}");
    let to_carole = s.router.wait_for_mapping(s.alice.addr, s.carole.addr);
    assert_eq!(addr_of(&message), to_carole);
    assert_eq!(
        to_carole, public,
        "one public address for both destinations"
    );
    s.alice.expect_where("delivered", |e| e["to"] == "carole");

    // carole answers at the address the server gives for alice: it gets
    // through the NAT (alice's flow to carole opened it), so that address
    // is alice's public one.
    s.carole.line("send alice hello back");
    let message = s.alice.expect("message");
    assert_eq!(message["from"], "carole");
    assert_eq!(message.get("stored"), None, "it came directly: {message}");
    assert_eq!(addr_of(&message), s.carole.addr);
    s.carole.expect_where("delivered", |e| e["to"] == "alice");
}

#[test]
fn two_clients_behind_two_nats_see_each_other_at_their_public_addresses() {
    if !nat::available() {
        return;
    }
    let mut s = sites([Nat::Masquerade, Nat::Masquerade], false);

    s.alice.line("list");
    assert_eq!(s.alice.expect("users")["users"], json!(["bob"]));
    s.bob.line("list");
    assert_eq!(s.bob.expect("users")["users"], json!(["alice"]));

    let alice_public = s.router_a.wait_for_mapping(s.alice.addr, s.server.addr);
    let bob_public = s.router_b.wait_for_mapping(s.bob.addr, s.server.addr);
    assert_eq!(alice_public.ip(), s.router_a.wan);
    assert_eq!(bob_public.ip(), s.router_b.wan);

    // bob writes to alice: the server tells his client where alice is, and
    // his router shows where it sent the handshake: alice's public
    // address. (Her router drops it: nothing of hers went to s.bob. The
    // message's fate is the measurement below.)
    s.bob.line("send alice are you there?");
    let attempt = s
        .router_b
        .wait_for(|m| m.inside == s.bob.addr && m.remote == alice_public);
    assert_eq!(
        attempt.outside, bob_public,
        "bob's socket keeps its mapping"
    );
}

#[test]
fn two_hosts_behind_one_router_share_its_public_address() {
    if !nat::available() {
        return;
    }
    let mut s = sites([Nat::Masquerade, Nat::Masquerade], true);
    assert_ne!(s.alice.addr.ip(), s.bob.addr.ip());
    s.alice.line("list");
    assert_eq!(s.alice.expect("users")["users"], json!(["bob"]));
    s.bob.line("list");
    assert_eq!(s.bob.expect("users")["users"], json!(["alice"]));

    let alice_public = s.router_a.wait_for_mapping(s.alice.addr, s.server.addr);
    let bob_public = s.router_a.wait_for_mapping(s.bob.addr, s.server.addr);
    assert_eq!(alice_public.ip(), s.router_a.wan);
    assert_eq!(bob_public.ip(), s.router_a.wan);
    assert_ne!(alice_public, bob_public, "one address, two ports");
}

#[test]
fn a_symmetric_nat_gives_each_destination_its_own_port() {
    if !nat::available() {
        return;
    }
    let mut s = outside(Nat::Symmetric);
    let to_server = s.router.wait_for_mapping(s.alice.addr, s.server.addr);

    s.alice.line("send carole hello");
    let message = s.carole.expect("message");
    assert_eq!(message.get("stored"), None, "it came directly: {message}");
    let from = addr_of(&message);
    assert_eq!(from, s.router.wait_for_mapping(s.alice.addr, s.carole.addr));
    assert_eq!(from.ip(), to_server.ip());
    assert_ne!(from.port(), to_server.port(), "a new port for carole");
}

#[test]
fn a_rebooted_nat_forgets_its_mappings_and_maps_anew() {
    if !nat::available() {
        return;
    }
    let mut net = Topology::new();
    let server_host = net.public_host();
    let mut router = net.router(Nat::Masquerade);
    let alice_host = net.host_behind(&mut router);

    let server = server_host.start_server();
    let mut alice = alice_host.sign_up(server.addr, "alice");
    let before = router.wait_for_mapping(alice.addr, server.addr);

    router.reboot();
    // Forgotten (the client may already have sent again, through a new
    // mapping).
    let now = router.mappings();
    assert!(now.iter().all(|m| m.outside != before), "{now:?}");

    // alice's next packet to the server (this request) leaves from a new
    // public port. Whether the server still answers at it is the
    // product's business, not the topology's.
    alice.line("list");
    let after = router.wait_for_mapping(alice.addr, server.addr);
    assert_eq!(after.ip(), router.wan);
    assert_ne!(after.port(), before.port(), "a new public port");

    // Each reboot moves to other ports again.
    router.reboot();
    alice.line("list");
    let again = router.wait_for_mapping(alice.addr, server.addr);
    assert_ne!(again.port(), after.port());
}

/// A text of `len` bytes that says where it is cut.
fn long_text(len: usize) -> String {
    let mut text: String = (0..len).map(|i| (b'a' + (i % 26) as u8) as char).collect();
    text.replace_range(..5, "start");
    text
}

/// The session `client` has with `user`, as `peers` shows it.
fn peer_path(client: &mut Client, user: &str) -> Value {
    client.line("peers");
    let peers = client.expect("peers");
    peers["peers"]
        .as_array()
        .and_then(|list| list.iter().find(|p| p["user"] == user).cloned())
        .unwrap_or_else(|| panic!("no session with {user}: {peers}"))
}

#[test]
fn two_clients_behind_two_nats_message_each_other_directly() {
    if !nat::available() {
        return;
    }
    let mut s = sites([Nat::Masquerade, Nat::Masquerade], false);

    // Each NAT drops what comes unasked; the meeting's checks from both
    // sides open them to each other.
    let (path, message) = send(&mut s.alice, &mut s.bob, "bob", "hello through two NATs");
    assert_eq!(path, "direct");
    let alice_public = s.router_a.wait_for_mapping(s.alice.addr, s.server.addr);
    assert_eq!(addr_of(&message), alice_public, "straight from alice's NAT");
    let (path, _) = send(&mut s.bob, &mut s.alice, "alice", "hello back");
    assert_eq!(path, "direct");
    assert_eq!(peer_path(&mut s.alice, "bob")["path"], "direct");

    let long = long_text(64 * 1024);
    let (path, message) = send(&mut s.alice, &mut s.bob, "bob", &long);
    assert_eq!(
        (path.as_str(), message["text"].as_str().map(str::len)),
        ("direct", Some(long.len()))
    );
}

#[test]
fn behind_a_symmetric_nat_messages_go_through_the_servers_relay_still_encrypted() {
    if !nat::available() {
        return;
    }
    let mut s = sites([Nat::Symmetric, Nat::Masquerade], false);

    // alice's NAT gives bob's address a port nobody was told: no check
    // gets through, so the session goes through the s.server.
    let secret = "the relay cannot read this";
    let (path, message) = send(&mut s.alice, &mut s.bob, "bob", secret);
    assert_eq!(path, "relay");
    // bob sees alice where the server sees her.
    let alice_public = s.router_a.wait_for_mapping(s.alice.addr, s.server.addr);
    assert_eq!(addr_of(&message), alice_public);
    assert_eq!(message["path"], "relay", "{message}");
    let (path, _) = send(&mut s.bob, &mut s.alice, "alice", "and back");
    assert_eq!(path, "relay");
    let shown = peer_path(&mut s.alice, "bob");
    assert_eq!(shown["path"], "relay", "{shown}");

    let long = long_text(64 * 1024);
    let (path, message) = send(&mut s.bob, &mut s.alice, "alice", &long);
    assert_eq!(
        (path.as_str(), message["text"].as_str().map(str::len)),
        ("relay", Some(long.len()))
    );

    // The server relayed bytes it cannot open: its trace log never holds
    // the text.
    let log = std::fs::read_to_string(s.server.data_dir.join("server.log")).unwrap_or_default();
    assert!(
        log.contains("relay") || !log.is_empty(),
        "the server logs at trace level"
    );
    assert!(!log.contains(secret));
}

#[test]
fn a_relayed_session_moves_to_a_direct_path_once_one_opens() {
    if !nat::available() {
        return;
    }
    let mut s = sites([Nat::Masquerade, Nat::Masquerade], false);

    // A firewall at bob's site drops what goes to alice's: no check gets
    // through, the first message goes through the relay.
    s.router_b.block(s.router_a.wan);
    let (path, _) = send(&mut s.alice, &mut s.bob, "bob", "while the way is shut");
    assert_eq!(path, "relay");
    // The way opens while the meeting's checks still go: the session moves
    // over to it, and the next message goes direct.
    s.router_b.unblock();
    let deadline = std::time::Instant::now() + udpchat_tests::FAILSAFE;
    while peer_path(&mut s.alice, "bob")["path"] != "direct" {
        assert!(std::time::Instant::now() < deadline, "still relayed");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let (path, message) = send(&mut s.alice, &mut s.bob, "bob", "now the way is open");
    assert_eq!(path, "direct");
    assert_eq!(
        addr_of(&message),
        s.router_a.wait_for_mapping(s.alice.addr, s.server.addr)
    );
}

/// bob's client shows alice's message as he signs out, but its
/// acknowledgement is lost on the way (a firewall at his site drops it):
/// alice, told he left, keeps the message on the server for him. At his
/// next sign-in it is taken in (alice hears it was delivered) and not shown
/// a second time: the copy carries the id the first one had.
#[test]
fn a_message_shown_as_its_reader_left_and_kept_for_them_too_is_shown_once() {
    if !nat::available() {
        return;
    }
    let mut s = sites([Nat::Masquerade, Nat::Masquerade], false);
    let (path, _) = send(&mut s.alice, &mut s.bob, "bob", "hello");
    assert_eq!(path, "direct");

    s.router_b.block(s.router_a.wan);
    let text = "are you still there";
    s.alice.line(&format!("send bob {text}"));
    s.bob.expect_where("message", |m| m["text"] == text);
    s.bob.line("logout");
    s.bob.expect("signed-out");
    let kept = s
        .alice
        .expect_first(&["queued", "delivered", "error"], |e| e["to"] == "bob");
    assert_eq!(kept["event"], "queued", "{kept}");

    s.bob.line(&format!("signin bob {}", password("bob")));
    s.bob.expect("signed-in");
    let delivered = s.alice.expect_where("delivered", |d| d["to"] == "bob");
    assert_eq!(delivered["path"], "stored", "{delivered}");
    let texts = history_texts(&mut s.bob, "alice");
    assert_eq!(texts.iter().filter(|t| *t == text).count(), 1, "{texts:?}");
    let shown = s
        .bob
        .seen
        .iter()
        .filter(|e| e["event"] == "message" && e["text"] == text)
        .count();
    assert_eq!(shown, 1, "{:#?}", s.bob.seen);
}

#[test]
fn two_clients_behind_one_nat_talk_over_their_lan() {
    if !nat::available() {
        return;
    }
    let mut s = sites([Nat::Masquerade, Nat::Masquerade], true);

    // The router does not hairpin: only their own LAN addresses connect.
    let (path, message) = send(&mut s.alice, &mut s.bob, "bob", "hello neighbour");
    assert_eq!(path, "direct");
    assert_eq!(addr_of(&message), s.alice.addr, "from alice's LAN address");
    assert_eq!(
        peer_path(&mut s.alice, "bob")["addr"],
        s.bob.addr.to_string()
    );
    let long = long_text(64 * 1024);
    let (path, _) = send(&mut s.bob, &mut s.alice, "alice", &long);
    assert_eq!(path, "direct");
}

#[test]
fn two_clients_that_both_have_ipv6_talk_over_it() {
    if !nat::available() {
        return;
    }
    let mut net = Topology::new();
    let server_host = net.public_host();
    let mut router = net.router(Nat::Masquerade);
    let alice_host = net.host_behind(&mut router);
    let bob_host = net.host_behind(&mut router);
    let alice_v6 = alice_host.add_ipv6();
    let bob_v6 = bob_host.add_ipv6();
    let server = server_host.start_server();
    // Both on their default socket: IPv4 to the server, and both families
    // for each other. Their IPv4 LAN addresses connect too; IPv6 goes
    // first (RFC 8421).
    let mut alice = alice_host.sign_up_unbound(server.addr, "alice");
    let mut bob = bob_host.sign_up_unbound(server.addr, "bob");
    let (path, message) = send(&mut alice, &mut bob, "bob", "hello over IPv6");
    assert_eq!(path, "direct");
    assert_eq!(addr_of(&message).ip(), alice_v6, "{message}");
    let shown = peer_path(&mut alice, "bob");
    let at: SocketAddr = shown["addr"].as_str().unwrap().parse().unwrap();
    assert_eq!(at.ip(), bob_v6, "{shown}");
}

#[test]
fn a_nat_that_forgets_its_mappings_mid_conversation_does_not_end_it() {
    if !nat::available() {
        return;
    }
    let mut s = sites([Nat::Masquerade, Nat::Masquerade], false);
    assert_eq!(send(&mut s.alice, &mut s.bob, "bob", "before").0, "direct");
    assert_eq!(
        send(&mut s.bob, &mut s.alice, "alice", "before, back").0,
        "direct"
    );

    // bob's NAT reboots: every mapping is gone, and bob's next packets
    // leave from a new public port that alice's NAT has never seen.
    let before = s.router_b.wait_for_mapping(s.bob.addr, s.server.addr);
    s.router_b.reboot();
    s.bob.line("list");
    s.bob.expect("users");
    let after = s.router_b.wait_for_mapping(s.bob.addr, s.server.addr);
    assert_ne!(before, after);

    // The server sees bob at his new mapping now (he spoke to it): alice's
    // lookup says so, her client meets him there and moves the session
    // (its keys and all) to the new path, and the message arrives, not
    // kept on the server. (Had bob not spoken first, alice's message would
    // wait 2 s unacknowledged and her client would look for him again;
    // and bob's keepalive from his new mapping moves the session too, by
    // path validation, within 15 s.)
    let (path, _) = send(&mut s.alice, &mut s.bob, "bob", "after the reboot");
    assert!(path == "direct" || path == "relay", "{path}");
    // The session moved: the next message takes it, no second one opens.
    send(&mut s.alice, &mut s.bob, "bob", "and again");
    s.alice.line("peers");
    let peers = s.alice.expect("peers");
    let with_bob = peers["peers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["user"] == "bob")
        .count();
    assert_eq!(with_bob, 1, "{peers}");
    let (path, _) = send(&mut s.bob, &mut s.alice, "alice", "after the reboot, back");
    assert!(path == "direct" || path == "relay", "{path}");
}

/// Figures for docs/PERFORMANCE.md, per path: the time from `send` to the
/// peer's `message` for the first message (which opens the session), then
/// for 100 messages of 1 KiB and one of 64 KiB on the open session. Run
/// with `cargo test --release -p udpchat-tests --test nat -- --ignored
/// --nocapture`.
#[test]
#[ignore = "a measurement, not a check"]
fn measure_each_path() {
    if !nat::available() {
        return;
    }
    for (name, nats, same_lan) in [
        (
            "direct, two masquerading NATs",
            [Nat::Masquerade, Nat::Masquerade],
            false,
        ),
        (
            "relayed, a symmetric NAT",
            [Nat::Symmetric, Nat::Masquerade],
            false,
        ),
        (
            "direct, one NAT, over the LAN",
            [Nat::Masquerade, Nat::Masquerade],
            true,
        ),
    ] {
        let mut s = sites(nats, same_lan);

        let started = std::time::Instant::now();
        let (path, _) = send(&mut s.alice, &mut s.bob, "bob", "first");
        let first = started.elapsed();

        let kib = long_text(1024);
        let started = std::time::Instant::now();
        for i in 0..100 {
            s.alice.line(&format!("send bob {i} {kib}"));
        }
        for _ in 0..100 {
            s.bob.expect("message");
        }
        let hundred = started.elapsed();
        let long = long_text(64 * 1024);
        let started = std::time::Instant::now();
        send(&mut s.alice, &mut s.bob, "bob", &long);
        let big = started.elapsed();
        println!(
            "{name}: path {path}; first message {first:.1?}; 100 x 1 KiB in {hundred:.1?} \
             ({:.0} msg/s); 64 KiB in {big:.1?}",
            100.0 / hundred.as_secs_f64()
        );
    }
}
