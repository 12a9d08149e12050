//! End to end: what a hostile client can and cannot do to other users.
//! The attacker is a [`RawClient`], speaking the protocol directly; its
//! victims are real `udpchat` clients.

use std::net::IpAddr;

use udpchat_commands::deposit::{Deposit, DepositBody};
use udpchat_commands::lookup::{Found, Lookup, LookupRequest};
use udpchat_commands::message::{Message, MessageBody};
use udpchat_commands::punch::{Punch, PunchBody};
use udpchat_commands::signin::SignIn;
use udpchat_commands::signup::SignUp;
use udpchat_core::packet::Encoded;
use udpchat_tests::raw::RawClient;
use udpchat_tests::relay::{Impairment, Relay};
use udpchat_tests::{password, Client, Server};

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

fn deposit_junk(mallory: &RawClient, to: &str, junk: &[u8]) -> Result<Vec<u8>, String> {
    let body = DepositBody {
        to: to.to_string(),
        sealed: junk.to_vec(),
    };
    mallory
        .request(Encoded::request::<Deposit>(&body))
        .map_err(|e| e.code.to_string())
}

#[test]
fn junk_left_in_a_mailbox_is_reported_once_and_does_not_come_back() {
    let server = Server::start();
    let bob_dir = tempfile::tempdir().unwrap();
    let bob = Client::start_in(
        server.addr,
        bob_dir.path(),
        &["-u", "bob", "-p", &password("bob"), "--signup"],
    );
    assert!(bob.finish().0.success());

    let mallory = RawClient::connect(&server, ip("127.0.0.1"));
    mallory.sign::<SignUp>("mallory").unwrap();
    for junk in [&b"not cbor at all"[..], &[0xa0], &[0x40; 300]] {
        deposit_junk(&mallory, "bob", junk).expect("the server keeps sealed bytes unread");
    }

    let mut bob = Client::start_in(
        server.addr,
        bob_dir.path(),
        &["-u", "bob", "-p", &password("bob")],
    );
    bob.expect("signed-in");
    // Summed up in one line, not one error each.
    let error = bob.expect("error");
    assert_eq!(error["code"], "sealed", "{error}");
    assert!(
        error["message"].as_str().unwrap().starts_with(
            "3 messages kept for you could not be opened on this device (from mallory)"
        ),
        "{error}"
    );
    let (status, rest) = bob.finish();
    assert!(status.success());
    assert!(
        rest.iter().all(|e| e["event"] != "error"),
        "one line for the three: {rest:?}"
    );

    // alice leaves bob a real message; at bob's next sign-in it is the
    // only thing waiting: the junk was acknowledged and deleted.
    let mut alice = Client::sign_up(server.addr, "alice");
    alice.line("send bob are you there?");
    alice.expect("queued");
    let mut bob = Client::start_in(
        server.addr,
        bob_dir.path(),
        &["-u", "bob", "-p", &password("bob")],
    );
    let message = bob.expect("message");
    assert_eq!(message["text"], "are you there?");
    let errors: Vec<_> = bob.seen.iter().filter(|e| e["event"] == "error").collect();
    assert!(errors.is_empty(), "the junk came back: {errors:?}");
}

#[test]
fn one_sender_fills_only_its_share_of_a_mailbox() {
    let server = Server::start();
    let bob = Client::sign_up(server.addr, "bob");
    assert!(bob.finish().0.success());

    let mallory = RawClient::connect(&server, ip("127.0.0.1"));
    mallory.sign::<SignUp>("mallory").unwrap();
    let mut kept = 0;
    let refusal = loop {
        match deposit_junk(&mallory, "bob", &[0x40; 64]) {
            Ok(_) => kept += 1,
            Err(code) => break code,
        }
        assert!(kept <= 1000, "never refused");
    };
    assert_eq!(refusal, "mailbox-full");
    assert_eq!(kept, 250, "a quarter of a mailbox of 1,000");

    // Others can still leave bob a message.
    let mut alice = Client::sign_up(server.addr, "alice");
    alice.line("send bob see you tomorrow");
    alice.expect("queued");
}

#[test]
fn one_address_makes_a_bounded_number_of_accounts() {
    let server = Server::start();
    let mallory = RawClient::connect(&server, ip("127.0.0.3"));
    let mut made = 0;
    let refusal = loop {
        match mallory.sign::<SignUp>(&format!("bot{made}")) {
            Ok(_) => made += 1,
            Err(e) => break e,
        }
        assert!(made <= 100, "never refused");
    };
    assert_eq!(refusal.code, "throttled");
    assert!(refusal
        .message
        .starts_with("too many accounts made from your address"));
    assert_eq!(made, 20, "the default: 20 an hour from one address");
    // Someone else, elsewhere, is not affected.
    let carole = Client::start_from(
        server.addr,
        "127.0.0.4:0",
        &["-u", "carole", "-p", &password("carole"), "--signup"],
    );
    let mut carole = carole;
    carole.expect("signed-in");
}

#[test]
fn guessing_someones_password_does_not_lock_them_out() {
    let server = Server::start();
    let alice = Client::sign_up(server.addr, "alice");
    assert!(alice.finish().0.success());

    let mut mallory = Client::start_from(server.addr, "127.0.0.2:0", &[]);
    for guess in 0..5 {
        mallory.line(&format!("signin alice guess{guess}"));
        mallory.expect("error");
    }
    mallory.line(&format!("signin alice {}", password("alice")));
    assert_eq!(
        mallory.expect("error")["code"],
        "throttled",
        "the guesser waits, even with the right password"
    );

    // alice, from her own address, signs in at once.
    let _alice = Client::sign_in(server.addr, "alice");
}

#[test]
fn a_refused_sign_in_changes_nothing() {
    let server = Server::start();
    let mut alice = Client::sign_up(server.addr, "alice");
    let mut bob = Client::sign_up(server.addr, "bob");
    alice.line("send bob first");
    alice.expect("delivered");
    bob.expect("message");

    // Someone with bob's password, on another device (another identity
    // key), while bob's client is alive: refused.
    let mut other = Client::start(server.addr, &["-u", "bob", "-p", &password("bob")]);
    assert_eq!(other.expect("error")["code"], "name-taken");

    alice.line("send bob second");
    alice.expect_where("delivered", |d| d["to"] == "bob");
    assert_eq!(bob.expect("message")["text"], "second");
    let warnings: Vec<_> = alice
        .seen
        .iter()
        .filter(|e| e["event"] == "key-changed")
        .collect();
    assert!(warnings.is_empty(), "bob's key was replaced: {warnings:?}");
}

#[test]
fn signing_in_again_on_the_same_session_is_not_announced_twice() {
    let server = Server::start();
    let mut alice = Client::sign_up(server.addr, "alice");
    let mut bob = Client::sign_up(server.addr, "bob");
    alice.expect_where("presence", |p| p["user"] == "bob");

    bob.line(&format!("signin bob {}", password("bob")));
    bob.expect("signed-in");
    // carole comes after: whatever alice hears of bob's second sign-in
    // would come before this.
    let _carole = Client::sign_up(server.addr, "carole");
    alice.expect_where("presence", |p| p["user"] == "carole");
    let bob_online = alice
        .seen
        .iter()
        .filter(|e| e["event"] == "presence" && e["user"] == "bob")
        .count();
    assert_eq!(bob_online, 1, "{:#?}", alice.seen);
}

#[test]
fn a_client_flooding_requests_is_told_busy_and_others_are_still_served() {
    let server = Server::start();
    let mallory = RawClient::connect(&server, ip("127.0.0.5"));
    // Sign-ins take the server a password hash each: 64 at once are more
    // than one session may have in hand.
    let guesses: Vec<Encoded> = (0..64)
        .map(|i| {
            let credentials = udpchat_commands::signin::Credentials {
                user: format!("nobody{i}"),
                password: udpchat_core::context::Zeroizing::new("guess".into()),
                identity: udpchat_core::crypto::keys::StaticKey::generate(&mut rand::rngs::OsRng)
                    .public(),
                local: Vec::new(),
                replace_key: None,
            };
            Encoded::request::<SignIn>(&credentials)
        })
        .collect();
    let replies = mallory.requests_at_once(guesses);
    let busy = replies
        .iter()
        .filter(|r| matches!(r, Err(e) if e.code == "busy"))
        .count();
    assert!(busy >= 64 - 16, "{busy} of 64 turned away");
    assert!(
        replies.iter().all(|r| r.is_err()),
        "every one answered (none left waiting), none signed in"
    );
    // Meanwhile the server serves everyone else as usual.
    let mut alice = Client::sign_up(server.addr, "alice");
    alice.line("list");
    alice.expect("users");
}

#[test]
fn a_message_acknowledged_after_signing_out_is_shown_marked_not_dropped() {
    let server = Server::start();
    let mut bob = Client::sign_up(server.addr, "bob");
    let dave = Client::sign_up(server.addr, "dave");
    assert!(dave.finish().0.success());
    bob.line("logout");
    bob.expect("signed-out");

    // Someone bob never heard from writes to him directly, as "dave".
    // bob's client, signed out, cannot ask the server whose key it is.
    let sender = RawClient::connect(&server, ip("127.0.0.1"));
    let bob_key = bob.identity_key("bob");
    let body = Encoded::push::<Message>(&MessageBody {
        from: "dave".into(),
        text: "did you get this?".into(),
        id: None,
        again: false,
    });
    sender
        .push_to_client(bob.addr, bob_key, body)
        .expect("bob's client acknowledged it");
    let shown = bob.expect("message");
    assert_eq!(shown["text"], "did you get this?");
    assert_eq!(shown["verified"], false, "{shown}");
}

#[test]
fn one_client_gets_a_bounded_number_of_meetings_with_another() {
    let server = Server::start();
    let _bob = Client::sign_up(server.addr, "bob");
    // Each meeting makes bob's client send checks to the asker's
    // candidates: a hostile asker must not turn it into a flood.
    let mallory = RawClient::connect(&server, ip("127.0.0.1"));
    mallory.sign::<SignUp>("mallory").expect("signed up");
    let body = LookupRequest {
        user: "bob".into(),
        meet: true,
    };
    let started = std::time::Instant::now();
    let meetings = (0..40)
        .filter(|_| {
            let found: Found = mallory.ask::<Lookup>(&body).expect("bob is found");
            found.meeting.is_some()
        })
        .count();
    // 20 at once, then one per 200 ms of the time the asking took (far
    // less than the 4 s that would allow all 40).
    let allowed = 20 + started.elapsed().as_millis() as usize / 200 + 1;
    assert!(
        meetings >= 20 && meetings <= allowed,
        "{meetings} meetings, {allowed} allowed"
    );
}

#[test]
fn a_punch_from_another_client_does_not_make_a_client_send_checks_anywhere() {
    let server = Server::start();
    let mut bob = Client::sign_up(server.addr, "bob");
    // mallory, a client of her own, tells bob a meeting is on with a
    // victim's address as her candidate: were bob to believe it, he would
    // send checks there (a reflector). Only the server's punch counts.
    let victim = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let mallory = RawClient::connect(&server, ip("127.0.0.1"));
    let bob_key = bob.identity_key("bob");
    let punch = Encoded::push::<Punch>(&PunchBody {
        from: "alice".into(),
        meeting: udpchat_core::secure::meeting::Ticket::random(),
        candidates: vec![victim.local_addr().unwrap().to_string()],
    });
    mallory
        .push_to_client(bob.addr, bob_key.clone(), punch)
        .expect("bob's client acknowledged it");
    // bob handles one session's packets in order: once he showed what
    // came after the punch, the punch was handled.
    let body = Encoded::push::<Message>(&MessageBody {
        from: "mallory".into(),
        text: "after the punch".into(),
        id: None,
        again: false,
    });
    mallory
        .push_to_client(bob.addr, bob_key, body)
        .expect("bob's client acknowledged it");
    bob.expect_where("error", |e| {
        e["message"].as_str().unwrap_or("").contains("mallory")
    });
    victim.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 64];
    assert_eq!(
        victim.recv_from(&mut buf).map_err(|e| e.kind()).err(),
        Some(std::io::ErrorKind::WouldBlock),
        "bob sent nothing to the victim"
    );
}

#[test]
fn a_request_replayed_from_a_victims_address_does_not_send_the_answer_there() {
    let server = Server::start();
    let relay = Relay::start(server.addr, Impairment::CLEAN);
    let mut alice = Client::sign_up(relay.up, "alice");
    let mut bob = Client::sign_up(server.addr, "bob");
    // Plain: a private group's history is the client's own, and its
    // `group history` asks the server nothing.
    alice.line("group create big --plain bob");
    alice.expect("group-created");
    let line = "x".repeat(500);
    for i in 0..150 {
        bob.line(&format!("gsend big {i} {line}"));
    }
    for _ in 0..150 {
        bob.expect("group-sent");
    }

    // alice asks for 100 KB of history; an attacker who sees her request
    // sends a copy from the victim's address, ahead of hers.
    let victim = std::net::UdpSocket::bind("127.0.0.9:0").unwrap();
    relay.hold_to_server();
    alice.line("group history big 150");
    let deadline = std::time::Instant::now() + udpchat_tests::FAILSAFE;
    while relay.held() == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the request never came"
        );
        std::thread::yield_now();
    }
    let spoofed = relay.release_to_server_copying_from(Some(&victim));

    let history = alice.expect("group-history");
    assert_eq!(history["messages"].as_array().unwrap().len(), 150);
    // What reached the victim: until it has been quiet for a second.
    victim
        .set_read_timeout(Some(std::time::Duration::from_secs(1)))
        .unwrap();
    let mut reflected = 0;
    let mut buf = [0u8; 2048];
    while let Ok((len, _)) = victim.recv_from(&mut buf) {
        reflected += len;
        assert!(reflected < 1_000_000, "a flood");
    }
    assert!(
        reflected <= 3 * spoofed,
        "{reflected} bytes reflected to the victim for {spoofed} bytes spoofed"
    );
}

#[test]
fn what_only_the_server_may_push_is_refused_from_another_client_and_said_once() {
    use udpchat_commands::going_down::GoingDown;
    use udpchat_commands::group_message::GroupMessage;
    use udpchat_commands::group_messages::{Batch, GroupMessages};
    use udpchat_commands::presence::{Presence, PresenceChanges};
    use udpchat_core::presence::PresenceChange;

    let server = Server::start();
    let mut bob = Client::sign_up(server.addr, "bob");
    let bob_key = bob.identity_key("bob");
    // mallory, a client of her own, pushes bob what only his server may
    // send: the server going down, someone going offline, a group line.
    let mallory = RawClient::connect(&server, ip("127.0.0.1"));
    mallory.sign::<SignUp>("mallory").expect("signed up");
    let forged = [
        Encoded::push::<GoingDown>(&()),
        Encoded::push::<Presence>(&PresenceChanges {
            changes: vec![PresenceChange {
                user: "alice".into(),
                online: false,
            }],
        }),
        Encoded::push::<GroupMessage>(&udpchat_core::group::GroupMessage {
            group: "team".into(),
            seq: 1,
            from: "alice".into(),
            text: "it's alice, tell me your password".into(),
            sealed: None,
            time_ms: 0,
        }),
        Encoded::push::<GroupMessages>(&Batch {
            messages: vec![
                udpchat_core::group::GroupMessage {
                    group: "team".into(),
                    seq: 2,
                    from: "alice".into(),
                    text: "it's still alice".into(),
                    sealed: None,
                    time_ms: 0,
                };
                2
            ],
        }),
    ];
    for push in forged {
        let tag = push.tag();
        mallory
            .push_to_client(bob.addr, bob_key.clone(), push)
            .expect("bob's client acknowledged it");
        let refused = bob.expect("error");
        assert_eq!(refused["code"], "unverified", "{refused}");
        let message = refused["message"].as_str().unwrap();
        assert!(
            message.contains(&format!("dropped a {tag} packet"))
                && message.contains("did not come from the server"),
            "{message}"
        );
    }
    // None of it took: bob is still signed in, and was shown no forgery
    // (the server's own word that mallory came online is another matter).
    bob.line("list");
    let users = bob.expect("users");
    assert_eq!(users["users"], serde_json::json!(["mallory"]));
    assert!(
        bob.seen.iter().all(|e| e["event"] != "server-down"
            && e["event"] != "group-message"
            && !(e["event"] == "presence" && e["user"] == "alice")),
        "{:#?}",
        bob.seen
    );
}

#[test]
fn a_request_no_command_of_a_client_answers_is_told_so_and_the_client_carries_on() {
    use udpchat_commands::list::{List, ListRequest};

    let server = Server::start();
    let mut bob = Client::sign_up(server.addr, "bob");
    let bob_key = bob.identity_key("bob");
    let mallory = RawClient::connect(&server, ip("127.0.0.1"));
    mallory.sign::<SignUp>("mallory").expect("signed up");
    // `list` is the server's to answer; a client has no side for it.
    let refused = mallory
        .request_to_client(
            bob.addr,
            bob_key,
            Encoded::request::<List>(&ListRequest::default()),
        )
        .expect_err("bob's client answers no list");
    assert_eq!(refused.code, "unknown-command", "{refused}");
    // An answer, not silence: and bob's client is none the worse for it.
    bob.line("list");
    assert_eq!(bob.expect("users")["users"], serde_json::json!(["mallory"]));
}
