//! IPv6 and dual-stack: a server bound to `[::]` takes clients of both
//! families, and a client on its default socket reaches a server (and
//! other clients) over either, with no `--bind`.

use udpchat_tests::{password, Client, Server};

#[test]
fn clients_on_their_default_socket_reach_a_dual_stack_server_over_ipv6_and_ipv4() {
    let dir = tempfile::tempdir().unwrap();
    let Ok(probe) = std::net::UdpSocket::bind("[::1]:0") else {
        eprintln!("SKIPPED: this host has no IPv6 loopback");
        return;
    };
    drop(probe);
    let server = Server::start_in(dir.path(), "[::]:0");
    let port = server.addr.port();
    let over_v6 = format!("[::1]:{port}").parse().unwrap();
    let over_v4 = format!("127.0.0.1:{port}").parse().unwrap();

    let mut alice = Client::start_unbound(
        over_v6,
        &["-u", "alice", "-p", &password("alice"), "--signup"],
    );
    alice.expect("signed-in");
    assert!(alice.addr.is_ipv6(), "a dual-stack socket: {}", alice.addr);
    let mut bob =
        Client::start_unbound(over_v4, &["-u", "bob", "-p", &password("bob"), "--signup"]);
    bob.expect("signed-in");

    alice.line("list");
    assert_eq!(alice.expect("users")["users"], serde_json::json!(["bob"]));
    // The server sees alice on IPv6 and bob on IPv4; their clients talk
    // directly all the same (over whichever family their candidates share:
    // tests/tests/nat.rs shows IPv6 goes first).
    alice.line("send bob hello across families");
    let message = bob.expect("message");
    assert_eq!(message["text"], "hello across families");
    assert_eq!(message.get("stored"), None);
    assert_eq!(alice.expect("delivered")["path"], "direct");
    bob.line("send alice and back");
    assert_eq!(alice.expect("message")["text"], "and back");
    assert_eq!(bob.expect("delivered")["path"], "direct");
}
