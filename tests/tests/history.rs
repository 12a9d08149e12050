//! End to end: every conversation is kept on the client, across restarts:
//! `history`, `search`, `unread`, and `chat` opening where it was left.
//! Scripted clients (`--json`); the shell's side (the notice, the prompt's
//! count) is in `shell.rs`.

use serde_json::Value;
use udpchat_tests::{Client, Server};

/// `(direction, from, text, state)` of each line of a `history` event.
fn lines(history: &Value) -> Vec<(String, String, String, String)> {
    history["lines"]
        .as_array()
        .expect("lines")
        .iter()
        .map(|l| {
            let field = |key: &str| l[key].as_str().unwrap_or_default().to_string();
            (
                field("direction"),
                field("from"),
                field("text"),
                field("state"),
            )
        })
        .collect()
}

fn line(direction: &str, from: &str, text: &str, state: &str) -> (String, String, String, String) {
    (direction.into(), from.into(), text.into(), state.into())
}

fn history(client: &mut Client, with: &str) -> Value {
    client.line(&format!("history {with}"));
    client.expect_where("history", |e| e["with"] == with)
}

#[test]
fn conversations_are_kept_across_restarts_with_what_became_of_each_message() {
    let server = Server::start();
    let (alice_device, bob_device) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let carole_device = Client::away(server.addr, "carole");
    let mut alice = Client::sign_up_on(server.addr, alice_device.path(), "alice");
    let mut bob = Client::sign_up_on(server.addr, bob_device.path(), "bob");

    alice.line("send bob lunch at noon?");
    bob.expect_where("message", |e| e["text"] == "lunch at noon?");
    alice.expect_where("delivered", |e| e["to"] == "bob");
    bob.line("send alice yes, see you there");
    alice.expect_where("message", |e| e["text"] == "yes, see you there");
    bob.expect_where("delivered", |e| e["to"] == "alice");
    alice.line("send carole are you coming on friday?");
    alice.expect_where("queued", |e| e["to"] == "carole");
    alice.line("group create crew bob");
    alice.expect("group-created");
    alice.line("gsend crew the crew's first line");
    alice.expect("group-sent");
    bob.expect_where("group-message", |e| e["text"] == "the crew's first line");
    assert!(alice.finish().0.success());
    assert!(bob.finish().0.success());

    // Both come back on the same devices: everything is there.
    let mut alice = Client::sign_in_on(server.addr, alice_device.path(), "alice");
    let mut bob = Client::sign_in_on(server.addr, bob_device.path(), "bob");
    assert_eq!(
        lines(&history(&mut alice, "bob")),
        [
            line("out", "alice", "lunch at noon?", "delivered"),
            line("in", "bob", "yes, see you there", "received"),
        ]
    );
    assert_eq!(
        lines(&history(&mut bob, "alice")),
        [
            line("in", "alice", "lunch at noon?", "received"),
            line("out", "bob", "yes, see you there", "delivered"),
        ]
    );
    assert_eq!(
        lines(&history(&mut alice, "carole")),
        [line("out", "alice", "are you coming on friday?", "queued")]
    );
    let crew = history(&mut bob, "crew");
    assert_eq!(crew["kind"], "group");
    assert_eq!(
        lines(&crew),
        [line("in", "alice", "the crew's first line", "received")]
    );
    assert_eq!(
        lines(&history(&mut alice, "crew")),
        [line("out", "alice", "the crew's first line", "sent")]
    );

    // Search looks through every conversation.
    alice.line("search FRIDAY coming");
    let found = alice.expect("search");
    assert_eq!(found["lines"].as_array().unwrap().len(), 1, "{found}");
    assert_eq!(found["lines"][0]["with"], "carole");
    alice.line("search nothing-like-this");
    assert_eq!(alice.expect("search")["lines"], serde_json::json!([]));

    // carole comes back: her client keeps what waited for her, and
    // alice's history learns it was delivered.
    let mut carole = Client::sign_in_on(server.addr, carole_device.path(), "carole");
    carole.expect_where("message", |e| e["text"] == "are you coming on friday?");
    alice.expect_where("delivered", |e| e["to"] == "carole");
    assert_eq!(
        lines(&history(&mut alice, "carole")),
        [line(
            "out",
            "alice",
            "are you coming on friday?",
            "delivered-later"
        )]
    );
    assert_eq!(
        lines(&history(&mut carole, "alice")),
        [line("in", "alice", "are you coming on friday?", "kept")]
    );

    // Bad input gets one clear line.
    alice.line("history bob 0");
    assert_eq!(alice.expect("error")["code"], "usage");
    alice.line("history nobody-here");
    assert_eq!(
        alice.expect("history")["lines"],
        serde_json::json!([]),
        "no conversation yet is an empty one"
    );
}

#[test]
fn a_line_in_another_conversation_stays_unread_until_its_own_is_opened() {
    let server = Server::start();
    let bob_device = tempfile::tempdir().unwrap();
    let mut alice = Client::sign_up(server.addr, "alice");
    let mut bob = Client::sign_up_on(server.addr, bob_device.path(), "bob");
    let _carole = Client::sign_up(server.addr, "carole");

    bob.line("chat carole");
    bob.expect("conversation");
    alice.line("send bob are you free at four?");
    bob.expect_where("message", |e| e["text"] == "are you free at four?");
    alice.expect_where("delivered", |e| e["to"] == "bob");
    bob.line("/unread");
    let unread = bob.expect("unread");
    assert_eq!(
        unread["conversations"],
        serde_json::json!([{"with": "alice", "kind": "user", "count": 1}])
    );
    assert!(bob.finish().0.success());

    // Unread after a restart too: said at sign-in.
    let mut bob = Client::sign_in_on(server.addr, bob_device.path(), "bob");
    let unread = bob.expect("unread");
    assert_eq!(unread["conversations"][0]["with"], "alice");
    // Opening the conversation shows where it was left, and reads it.
    bob.line("chat alice");
    bob.expect("conversation");
    let last = bob.expect("history");
    assert_eq!(last["with"], "alice");
    assert_eq!(last["lines"][0]["text"], "are you free at four?");
    assert_eq!(last["lines"][0]["unread"], true);
    bob.line("/unread");
    assert_eq!(bob.expect("unread")["conversations"], serde_json::json!([]));
    // Lines in the conversation on are read as they come.
    alice.line("send bob good");
    bob.expect_where("message", |e| e["text"] == "good");
    bob.line("/unread");
    assert_eq!(bob.expect("unread")["conversations"], serde_json::json!([]));
}
