//! Direct messages as the end-to-end tests check them: sent, and seen
//! arrive straight from the other client (never kept on the server).

use std::net::SocketAddr;

use serde_json::Value;

use crate::Client;

/// A message's `addr` field: where its sender's client was seen.
pub fn addr_of(message: &Value) -> SocketAddr {
    message["addr"]
        .as_str()
        .unwrap_or_else(|| panic!("no addr: {message}"))
        .parse()
        .expect("an IP:PORT")
}

/// `from` sends `text` to `to`: the delivery's path, and the message as
/// `to` sees it (never one kept on the server).
pub fn send(from: &mut Client, to: &mut Client, to_name: &str, text: &str) -> (String, Value) {
    from.line(&format!("send {to_name} {text}"));
    let message = to.expect_where("message", |m| m["text"] == text);
    assert_eq!(
        message.get("stored"),
        None,
        "it was not kept on the server: {}",
        message["from"]
    );
    let delivered = from.expect_first(&["delivered", "error"], |e| e["to"] == to_name);
    assert_eq!(delivered["event"], "delivered", "{delivered}");
    (
        delivered["path"].as_str().unwrap_or_default().to_string(),
        message,
    )
}

/// Bob, signed up from a data dir of his own behind a relay (to watch or
/// hold his traffic), and alice, whose first message he has shown: their
/// session is open.
pub struct WrittenTo {
    pub bob_dir: tempfile::TempDir,
    pub relay: crate::relay::Relay,
    pub bob: Client,
    pub alice: Client,
}

/// Starts [`WrittenTo`] on `server`.
pub fn bob_behind_a_relay_written_to(server: SocketAddr) -> WrittenTo {
    let bob_dir = tempfile::tempdir().expect("temp dir");
    let relay = crate::relay::Relay::start(server, crate::relay::Impairment::CLEAN);
    let mut bob = Client::sign_up_on(relay.up, bob_dir.path(), "bob");
    let mut alice = Client::sign_up(server, "alice");
    alice.line("send bob hello");
    bob.expect_where("message", |m| m["text"] == "hello");
    alice.expect_where("delivered", |d| d["to"] == "bob");
    WrittenTo {
        bob_dir,
        relay,
        bob,
        alice,
    }
}
