//! End to end: the seeds' sample run with real processes. alice, bob and
//! carole sign in, see each other, and message each other directly.

use std::net::UdpSocket;
use std::time::Duration;

use udpchat_tests::deployment::Deployment;
use udpchat_tests::direct::{bob_behind_a_relay_written_to, WrittenTo};
use udpchat_tests::relay::{Impairment, Relay};
use udpchat_tests::{busy_history, on_every_store, password, take, Client, Server};

on_every_store!(three_users_sign_in_list_and_message_directly);

fn three_users_sign_in_list_and_message_directly(deployment: Deployment) {
    let server = deployment.start(&[]);
    let mut alice = Client::sign_up(server.addr, "alice");
    let mut bob = Client::sign_up(server.addr, "bob");
    let mut carole = Client::sign_up(server.addr, "carole");

    alice.line("list");
    let users = alice.expect("users");
    assert_eq!(users["users"], serde_json::json!(["bob", "carole"]));
    alice.line("list ca");
    let users = alice.expect("users");
    assert_eq!(users["users"], serde_json::json!(["carole"]));
    assert_eq!(users["total"], 1);

    alice.line("send bob Hello this is Alice.");
    let message = bob.expect("message");
    assert_eq!(message["from"], "alice");
    assert_eq!(message["text"], "Hello this is Alice.");
    // Sent directly: bob sees alice's own socket, not the server.
    assert_eq!(message["addr"], alice.addr.to_string());
    assert_ne!(message["addr"], server.addr.to_string());
    alice.expect_where("delivered", |e| e["to"] == "bob");

    carole.line("msg alice Hi Alice! How are you");
    let message = alice.expect("message");
    assert_eq!(message["from"], "carole");
    assert_eq!(message["text"], "Hi Alice! How are you");
    assert_eq!(message["addr"], carole.addr.to_string());

    // Leaving signs out: the others no longer see carole.
    let (status, _) = carole.finish();
    assert!(status.success());
    bob.line("list");
    assert_eq!(bob.expect("users")["users"], serde_json::json!(["alice"]));
}

#[test]
fn unknown_users_empty_messages_and_unknown_commands_get_clear_errors() {
    let server = Server::start();
    let mut alice = Client::sign_up(server.addr, "alice");

    alice.line("send dave are you there?");
    let error = alice.expect("error");
    assert_eq!(error["code"], "no-such-user");
    assert_eq!(error["message"], "No such user signed in: dave");

    alice.line("send alice    ");
    assert_eq!(alice.expect("error")["code"], "empty-message");

    alice.line("lsit");
    let error = alice.expect("error");
    assert_eq!(error["code"], "unknown-command");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("did you mean list?"),
        "{error}"
    );

    alice.line("send");
    assert_eq!(
        alice.expect("error")["message"],
        "usage: send <user> <message...>"
    );

    // None of it cost alice her session.
    alice.line("list");
    alice.expect("users");
}

#[test]
fn a_name_held_by_a_live_client_is_refused_and_a_dead_ones_is_taken_over() {
    let server = Server::start();
    let bob = Client::sign_up(server.addr, "bob");

    // From another device, which may take the name over.
    let pw = password("bob");
    let mut second = Client::start(server.addr, &["-u", "bob", "-p", &pw, "--new-device"]);
    let error = second.expect("error");
    assert_eq!(error["code"], "name-taken");
    assert_eq!(
        error["message"],
        "bob is already signed in from another client"
    );

    // bob's client crashes without signing out; his name is not lost.
    bob.kill();
    second.line(&format!("signin bob {}", password("bob")));
    second.expect_where("signed-in", |e| e["user"] == "bob");
}

#[test]
fn garbage_datagrams_do_not_disturb_the_server() {
    let server = Server::start();
    let mut alice = Client::sign_up(server.addr, "alice");
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    for garbage in [
        &b""[..],
        b"\x00",
        b"\x01\x01garbage",
        &[0xff; 1500],
        &[1u8; 40],
    ] {
        socket.send_to(garbage, server.addr).unwrap();
    }
    let _bob = Client::sign_up(server.addr, "bob");
    alice.line("list");
    assert_eq!(alice.expect("users")["users"], serde_json::json!(["bob"]));
}

#[test]
fn a_server_going_down_tells_its_clients() {
    let server = Server::start();
    let mut alice = Client::sign_up(server.addr, "alice");
    let mut bob = Client::sign_up(server.addr, "bob");
    assert!(server.terminate().success());
    alice.expect("server-down");
    bob.expect("server-down");
}

#[test]
fn messages_cross_lossy_links_once_each_and_in_order() {
    let server = Server::start();
    let impairment = |seed| Impairment {
        loss: 0.10,
        duplicate: 0.05,
        reorder: 0.05,
        seed,
    };
    let alice_link = Relay::start(server.addr, impairment(1));
    let bob_link = Relay::start(server.addr, impairment(2));
    let mut alice = Client::sign_up(alice_link.up, "alice");
    let mut bob = Client::sign_up(bob_link.up, "bob");

    const COUNT: usize = 60;
    for i in 0..COUNT {
        // Every tenth one is large enough to be split into fragments.
        let text = if i % 10 == 0 {
            format!("{i} {}", "x".repeat(5000))
        } else {
            format!("{i} hello")
        };
        alice.line(&format!("send bob {text}"));
    }
    for i in 0..COUNT {
        let message = bob.expect("message");
        let text = message["text"].as_str().unwrap();
        assert_eq!(
            text.split(' ').next(),
            Some(i.to_string().as_str()),
            "out of order or missing"
        );
        assert_eq!(message["from"], "alice");
    }
    for _ in 0..COUNT {
        alice.expect("delivered");
    }
    // Nothing arrived twice.
    let (_, rest) = bob.finish();
    assert!(
        rest.iter().all(|e| e["event"] != "message"),
        "duplicates: {rest:?}"
    );
}

#[test]
fn a_message_from_someone_who_left_right_after_sending_is_still_shown() {
    let server = Server::start();
    let bob_link = Relay::start(server.addr, Impairment::CLEAN);
    let mut bob = Client::sign_up(bob_link.up, "bob");
    let mut alice = Client::sign_up(server.addr, "alice");
    // Whatever bob asks the server about alice's message waits until she
    // has signed out.
    bob_link.hold_to_server();
    alice.line("send bob goodbye, signing off");
    alice.expect("delivered");
    alice.line("logout");
    alice.expect("signed-out");
    bob_link.release_to_server();
    let message = bob.expect("message");
    assert_eq!(message["from"], "alice");
    assert_eq!(message["text"], "goodbye, signing off");
}

#[test]
fn logout_finishes_a_message_whose_recipient_vanished_by_keeping_it_for_them() {
    let dir = tempfile::tempdir().unwrap();
    // A short presence timeout, so the server notices bob's death soon.
    let server = Server::start_with(dir.path(), "127.0.0.1:0", &["--presence-timeout", "3"]);
    let alice_pw = password("alice");
    let mut alice = Client::start(
        server.addr,
        &[
            "-u",
            "alice",
            "-p",
            &alice_pw,
            "--signup",
            "--presence-timeout",
            "3",
        ],
    );
    alice.expect("signed-in");
    let bob_dir = tempfile::tempdir().unwrap();
    let bob_pw = password("bob");
    let mut bob = Client::start_in(
        server.addr,
        bob_dir.path(),
        &[
            "-u",
            "bob",
            "-p",
            &bob_pw,
            "--signup",
            "--presence-timeout",
            "3",
        ],
    );
    bob.expect("signed-in");
    alice.line("send bob first");
    alice.expect_where("delivered", |d| d["to"] == "bob");
    bob.expect("message");

    // bob's machine dies; alice writes and signs out at once. Her message
    // needs the server now (sealed into bob's mailbox): logout waits.
    bob.kill();
    alice.line("send bob second");
    alice.line("logout");
    alice.expect("finishing");
    let queued = alice.expect("queued");
    assert_eq!(queued["to"], "bob");
    alice.expect("signed-out");
    let errors: Vec<_> = alice
        .seen
        .iter()
        .filter(|e| e["event"] == "error")
        .collect();
    assert!(errors.is_empty(), "{errors:?}");

    let mut bob = Client::start_in(
        server.addr,
        bob_dir.path(),
        &["-u", "bob", "-p", &password("bob")],
    );
    assert_eq!(bob.expect("message")["text"], "second");
}

/// A message whose delivery the recipient's client acknowledged must be
/// shown, even when it arrives while that client is leaving: the sender
/// was told "delivered" and will not keep it for later. Found by
/// `udpchat-bench soak` (7 messages in its first 10 minutes: `delivered`
/// at the sender, nothing at the recipient, which printed `signed-out`
/// and exited). Here three senders write to bob as fast as he
/// acknowledges while his input ends, a few times.
#[test]
fn every_message_acknowledged_while_its_recipient_leaves_is_shown() {
    use std::collections::BTreeSet;

    use udpchat_commands::message::{Message, MessageBody};
    use udpchat_commands::signup::SignUp;
    use udpchat_core::packet::Encoded;
    use udpchat_tests::raw::RawClient;

    const ROUNDS: usize = 4;
    const MOST: usize = 2_000;

    let server = Server::start();
    let senders: Vec<(String, RawClient)> = ["dave", "erin", "frank"]
        .iter()
        .map(|name| {
            let sender = RawClient::connect(&server, "127.0.0.1".parse().unwrap());
            sender.sign::<SignUp>(name).expect("a sender signs up");
            (name.to_string(), sender)
        })
        .collect();
    let bob_dir = tempfile::tempdir().unwrap();
    let pw = password("bob");
    for round in 0..ROUNDS {
        let mut args = vec!["-u", "bob", "-p", &pw];
        if round == 0 {
            args.push("--signup");
        }
        let mut bob = Client::start_in(server.addr, bob_dir.path(), &args);
        bob.expect("signed-in");
        let bob_key = bob.identity_key("bob");
        let bob_addr = bob.addr;
        let outcome = std::thread::scope(|s| {
            let pushers: Vec<_> = senders
                .iter()
                .map(|(name, sender)| {
                    let bob_key = bob_key.clone();
                    s.spawn(move || {
                        let mut acknowledged = BTreeSet::new();
                        for n in 0..MOST {
                            let text = format!("round {round} from {name} number {n}");
                            let body = Encoded::push::<Message>(&MessageBody {
                                from: name.clone(),
                                text: text.clone(),
                                id: None,
                                again: false,
                            });
                            let pushed = sender.push_to_client_within(
                                bob_addr,
                                bob_key.clone(),
                                body,
                                std::time::Duration::from_secs(2),
                            );
                            match pushed {
                                Ok(()) => {
                                    acknowledged.insert(text);
                                }
                                Err(_) => break,
                            }
                        }
                        acknowledged
                    })
                })
                .collect();
            // Some arrive while bob is signed in; then his input ends.
            for _ in 0..senders.len() {
                bob.expect("message");
            }
            let seen = bob.seen.clone();
            let (status, rest) = bob.finish();
            assert!(status.success());
            let events: Vec<_> = seen.into_iter().chain(rest).collect();
            let shown: BTreeSet<String> = events
                .iter()
                .filter(|e| e["event"] == "message")
                .filter_map(|e| e["text"].as_str().map(str::to_string))
                .collect();
            let acknowledged: BTreeSet<String> = pushers
                .into_iter()
                .flat_map(|p| p.join().expect("a sender"))
                .collect();
            (acknowledged, shown, events)
        });
        let (acknowledged, shown, events) = outcome;
        let missing: Vec<_> = acknowledged.difference(&shown).collect();
        let others: Vec<_> = events.iter().filter(|e| e["event"] != "message").collect();
        assert!(
            missing.is_empty(),
            "round {round}: {} acknowledged, {} shown; acknowledged and never shown: {missing:?}; \
             bob's other events: {others:?}",
            acknowledged.len(),
            shown.len()
        );
    }
}

#[test]
fn a_message_to_someone_already_written_to_goes_without_asking_the_server() {
    let server = Server::start();
    let alice_link = Relay::start(server.addr, Impairment::CLEAN);
    let mut alice = Client::sign_up(alice_link.up, "alice");
    let mut bob = bob_written_to_by(&mut alice, &server, "first");

    // Nothing alice says to the server gets there now: the next message
    // to bob still goes, straight to his client, and is acknowledged.
    alice_link.hold_to_server();
    alice.line("send bob second");
    let message = bob.expect("message");
    assert_eq!(message["text"], "second");
    assert_eq!(message["addr"], alice.addr.to_string());
    let delivered = alice.expect_where("delivered", |e| e["to"] == "bob");
    assert_eq!(delivered["path"], "direct");
    alice_link.release_to_server();
    alice.line("list");
    assert_eq!(alice.expect("users")["users"], serde_json::json!(["bob"]));
}

#[test]
fn a_user_back_on_another_client_is_looked_up_again_before_the_next_message() {
    let server = Server::start();
    let mut alice = Client::sign_up(server.addr, "alice");
    let bob = bob_written_to_by(&mut alice, &server, "one");
    // bob's client vanishes without a word; he signs in from another one
    // (another data dir: another identity key, another address).
    bob.kill();
    let mut again = Client::sign_in(server.addr, "bob");
    alice.expect_where("presence", |e| e["user"] == "bob" && e["online"] == true);

    // The session with his old client is not used for the next message:
    // it goes live to the client he is on now.
    alice.line("send bob two");
    reached_live(&mut alice, &mut again, "two");
}

#[test]
fn a_message_sent_before_news_that_its_recipient_moved_still_reaches_them_live() {
    let server = Server::start();
    let alice_link = Relay::start(server.addr, Impairment::CLEAN);
    let mut alice = Client::sign_up(alice_link.up, "alice");
    let bob = bob_written_to_by(&mut alice, &server, "one");
    // Alice hears nothing from the server for a while: not that bob's
    // client vanished, nor that he is back on another one.
    alice_link.hold_from_server();
    bob.kill();
    let mut again = Client::sign_in(server.addr, "bob");
    alice.line("send bob two");
    // (`peers` answers once `send` has put the message on its way.)
    alice.line("peers");
    alice.expect("peers");
    alice_link.release_from_server();
    // It went to his old client, which does not answer; alice then asks
    // where bob is and sends it there, live, not kept for later.
    reached_live(&mut alice, &mut again, "two");
}

/// bob signs up, alice hears he is online (news of it coming after her
/// message would have her ask the server again before the next one), and
/// writes `text` to him: a session with his client is open.
fn bob_written_to_by(alice: &mut Client, server: &Server, text: &str) -> Client {
    let mut bob = Client::sign_up(server.addr, "bob");
    alice.expect_where("presence", |e| e["user"] == "bob");
    alice.line(&format!("send bob {text}"));
    assert_eq!(bob.expect("message")["text"], text);
    alice.expect_where("delivered", |e| e["to"] == "bob");
    bob
}

/// `text` from alice reached bob's client `at` live, not kept for later.
fn reached_live(alice: &mut Client, at: &mut Client, text: &str) {
    let message = at.expect("message");
    assert_eq!(message["text"], text);
    assert!(message.get("stored").is_none(), "{message}");
    let delivered = alice.expect_where("delivered", |e| e["to"] == "bob");
    assert_eq!(delivered["path"], "direct", "{delivered}");
}

/// Bob's client behind a relay, signed out, with "kept for bob" from alice
/// waiting on the server: his data dir, alice, the relay and bob.
fn mail_for_bob_behind_a_relay(server: &Server) -> (tempfile::TempDir, Client, Relay, Client) {
    let bob_dir = Client::away(server.addr, "bob");
    let mut alice = Client::sign_up(server.addr, "alice");
    let relay = Relay::start(server.addr, Impairment::CLEAN);
    let mut bob = Client::sign_in_on(relay.up, bob_dir.path(), "bob");
    bob.line("logout");
    bob.expect("signed-out");
    alice.line("send bob kept for bob");
    alice.expect("queued");
    (bob_dir, alice, relay, bob)
}

/// A client killed while a message kept for it was being written to its
/// history (another process had the file busy) gets the message again: its
/// receipt, which has the server delete the message, goes only once the
/// message is written.
#[test]
fn a_message_kept_for_a_client_killed_before_it_wrote_it_comes_again() {
    let server = Server::start();
    let (bob_dir, _alice, relay, mut bob) = mail_for_bob_behind_a_relay(&server);

    // Another process writes to bob's history; bob signs in again and is
    // handed the message.
    let busy = busy_history(bob_dir.path(), "bob");
    let sent = relay.from_server();
    bob.line(&format!("signin bob {}", password("bob")));
    bob.expect("signed-in");
    // The message is handed over; a receipt sent as it was queued to be
    // written, as before, would leave within milliseconds and have it
    // deleted (checked: the wait for it below then fails). Bob's client
    // can write nothing for 5 s: he is killed well before.
    relay.wait_from_server(sent + 2);
    std::thread::sleep(Duration::from_millis(300));
    bob.kill();
    drop(busy);

    let mut bob = Client::sign_in_on(server.addr, bob_dir.path(), "bob");
    let mail = bob.expect_where("message", |m| m["stored"] == true);
    assert_eq!(mail["text"], "kept for bob");
    bob.kill();
}

/// A client that wrote a message kept for it and left before its receipt
/// reached the server is handed the message again at its next sign-in.
/// Its one-time prekey is spent, so the copy does not open; the history
/// knows it, and it is acknowledged, shown neither twice nor as one that
/// could not be opened. Found by the soak, whose clients exit while their
/// mail comes.
#[test]
fn a_kept_message_written_before_its_receipt_was_lost_is_not_shown_again() {
    let server = Server::start();
    let (bob_dir, mut alice, relay, mut bob) = mail_for_bob_behind_a_relay(&server);

    // Bob's history is busy while he signs in, so the message cannot be
    // written (nor its receipt go) before the relay holds what he sends.
    let busy = busy_history(bob_dir.path(), "bob");
    bob.line(&format!("signin bob {}", password("bob")));
    bob.expect("signed-in");
    relay.hold_to_server();
    drop(busy);
    let mail = take(&mut bob, "message", |m| m["stored"] == true);
    assert_eq!(mail["text"], "kept for bob");
    // He leaves. His receipt and his `logout` never reach the server (they
    // time out); the message's one-time prekey was spent before.
    let _ = bob.finish();

    let mut bob = Client::sign_in_on(server.addr, bob_dir.path(), "bob");
    // The receipt reaches the server this time.
    alice.expect_where("delivered", |d| d["to"] == "bob");
    let mut seen = std::mem::take(&mut bob.seen);
    let (status, rest) = bob.finish();
    assert!(status.success());
    seen.extend(rest);
    let shown: Vec<&serde_json::Value> = seen
        .iter()
        .filter(|e| e["event"] == "message" || e["event"] == "error")
        .collect();
    assert!(shown.is_empty(), "shown again: {shown:#?}");
    let kept: i64 = rusqlite::Connection::open(bob_dir.path().join("users/bob/chat.sqlite3"))
        .unwrap()
        .query_row(
            "SELECT count(*) FROM conversation_lines WHERE text = 'kept for bob'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(kept, 1);
}

/// A direct message that reached a client killed before it wrote the line
/// to its history is not lost: the client had not acknowledged it, so its
/// sender does not say `delivered`, and it comes to the recipient once
/// they are back (kept on the server for them, or sent again).
#[test]
fn a_direct_message_a_client_was_killed_before_writing_reaches_it_when_back() {
    let server = Server::start();
    let WrittenTo {
        bob_dir,
        relay,
        bob,
        mut alice,
    } = bob_behind_a_relay_written_to(server.addr);

    // Another process writes to bob's history: his next line waits.
    let busy = busy_history(bob_dir.path(), "bob");
    let sent = relay.from_peers();
    alice.line("send bob written first");
    // It reaches bob's client and, not acknowledged, comes again (alice's
    // probe); an acknowledgement sent on arrival, as before, would have
    // left long before, and alice would have said `delivered` (checked:
    // without the hold, the wait for the message below fails).
    relay.wait_from_peers(sent + 2);
    bob.kill();
    drop(busy);

    // alice's client stops trying (its ten probes take some 15-35 s) and
    // keeps the message on the server for bob, who is back by then.
    let mut bob = Client::sign_in_on(server.addr, bob_dir.path(), "bob");
    let message = bob.expect_first_within(&["message"], Duration::from_secs(90), |m| {
        m["text"] == "written first"
    });
    assert_eq!(message["from"], "alice");
    let delivered = alice.expect("delivered");
    assert_eq!(delivered["to"], "bob");
    let lost: Vec<&serde_json::Value> = alice
        .seen
        .iter()
        .filter(|e| e["event"] == "error")
        .collect();
    assert!(lost.is_empty(), "{lost:?}");
    bob.kill();
}
