//! End to end: a direct message that reaches its reader twice (its
//! acknowledgement lost, so its sender sent it again) is shown once. One
//! whose second copy came from the mailbox, its acknowledgement lost as
//! its reader left: `nat.rs`, where a firewall can lose it.

use udpchat_commands::message::{Message, MessageBody};
use udpchat_commands::signup::SignUp;
use udpchat_core::packet::Encoded;
use udpchat_tests::raw::RawClient;
use udpchat_tests::{history_texts, Client, Server};

/// A message pushed again under the same id (its sender did not hear the
/// acknowledgement, and says so) is acknowledged and not shown again;
/// another with the same text and a new id is shown.
#[test]
fn a_direct_message_sent_again_under_its_id_is_shown_once() {
    let server = Server::start();
    let mut bob = Client::sign_up(server.addr, "bob");
    let dave = RawClient::connect(&server, "127.0.0.1".parse().unwrap());
    dave.sign::<SignUp>("dave").expect("dave signs up");
    let push = |id: u64, again: bool| {
        let body = Encoded::push::<Message>(&MessageBody {
            from: "dave".into(),
            text: "lunch at noon?".into(),
            id: Some(id),
            again,
        });
        dave.push_to_client(bob.addr, bob.identity_key("bob"), body)
            .expect("bob's client acknowledged it");
    };
    push(7, false);
    push(7, true);
    push(8, false);
    bob.expect_where("message", |m| m["text"] == "lunch at noon?");
    bob.expect_where("message", |m| m["text"] == "lunch at noon?");
    let texts = history_texts(&mut bob, "dave");
    assert_eq!(texts, ["lunch at noon?", "lunch at noon?"]);
    let shown = bob.seen.iter().filter(|e| e["event"] == "message").count();
    assert_eq!(shown, 2, "{:#?}", bob.seen);
}
