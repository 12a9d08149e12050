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
