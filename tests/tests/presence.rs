//! End to end: people and machines coming and going. Presence pushes,
//! keepalives, messages kept for offline users, a server that goes away
//! (gracefully or not) and comes back.

use udpchat_tests::deployment::Deployment;
use udpchat_tests::direct::{bob_behind_a_relay_written_to, WrittenTo};
use udpchat_tests::{busy_history, on_every_store, password, Client, Server};

/// A short presence timeout, so the tests do not wait 30 s.
const TIMEOUT: &str = "3";

fn server_in(dir: &std::path::Path, bind: &str) -> Server {
    Server::start_with(dir, bind, &["--presence-timeout", TIMEOUT])
}

fn client(server: &Server, user: &str, signup: bool) -> Client {
    let pw = password(user);
    let mut args = vec!["-u", user, "-p", &pw, "--presence-timeout", TIMEOUT];
    if signup {
        args.push("--signup");
    }
    let mut client = Client::start(server.addr, &args);
    client.expect("signed-in");
    client
}

on_every_store!(a_message_for_an_offline_user_is_kept_and_delivered_when_they_sign_in);

fn a_message_for_an_offline_user_is_kept_and_delivered_when_they_sign_in(deployment: Deployment) {
    let server = deployment.start(&["--presence-timeout", TIMEOUT]);
    let bob_dir = Client::away(server.addr, "bob");
    let pw = password("bob");

    let mut alice = client(&server, "alice", true);
    alice.line("send bob are you there? I will wait");
    let queued = alice.expect("queued");
    assert_eq!(queued["to"], "bob");
    alice.line("send bob second one");
    alice.expect("queued");

    // bob comes back on the same machine (his prekeys are there).
    let mut bob = Client::start_in(server.addr, bob_dir.path(), &["-u", "bob", "-p", &pw]);
    let first = bob.expect_where("message", |m| m["stored"] == true);
    assert_eq!(first["from"], "alice");
    assert_eq!(first["text"], "are you there? I will wait");
    assert!(
        first["sent_at_ms"].as_u64().unwrap() > 1_700_000_000_000,
        "{first}"
    );
    let second = bob.expect_where("message", |m| m["stored"] == true);
    assert_eq!(second["text"], "second one");

    // alice hears about both, once bob's client acknowledged them.
    for _ in 0..2 {
        let delivered = alice.expect_where("delivered", |d| d["stored"] == true);
        assert_eq!(delivered["to"], "bob");
    }

    // Exactly once: a later sign-in brings nothing back.
    let (status, rest) = bob.finish();
    assert!(status.success());
    assert!(rest.iter().all(|e| e["event"] != "message"), "{rest:?}");
    let mut bob = Client::start_in(server.addr, bob_dir.path(), &["-u", "bob", "-p", &pw]);
    bob.line("list");
    bob.expect("users");
    assert!(
        bob.seen.iter().all(|e| e["event"] != "message"),
        "delivered twice: {:?}",
        bob.seen
    );
}

#[test]
fn sign_ins_and_departures_are_pushed_and_a_killed_client_leaves_the_list() {
    let dir = tempfile::tempdir().unwrap();
    let server = server_in(dir.path(), "127.0.0.1:0");
    let mut alice = client(&server, "alice", true);
    let bob = client(&server, "bob", true);
    let online = alice.expect("presence");
    assert_eq!(
        (online["user"].as_str(), online["online"].as_bool()),
        (Some("bob"), Some(true))
    );

    bob.kill(); // no logout: the server has to notice the silence
    let offline = alice.expect_where("presence", |p| p["user"] == "bob");
    assert_eq!(offline["online"], false);
    alice.line("list");
    assert_eq!(alice.expect("users")["users"], serde_json::json!([]));
}

#[test]
fn quiet_clients_stay_signed_in_on_keepalives_alone() {
    let dir = tempfile::tempdir().unwrap();
    let server = server_in(dir.path(), "127.0.0.1:0");
    let mut alice = client(&server, "alice", true);
    let mut bob = client(&server, "bob", true);
    alice.expect_where("presence", |p| p["user"] == "bob");
    // Three presence timeouts with nothing said: only keepalives (empty
    // transport messages, no request) go to the server.
    std::thread::sleep(std::time::Duration::from_secs(3 * 3 + 1));
    alice.line("list");
    // Had either been signed out, a presence change would come first.
    let first = alice.expect_any(&["presence", "users"]);
    assert_eq!(first["event"], "users", "nobody came or went: {first}");
    assert_eq!(first["users"], serde_json::json!(["bob"]));
    bob.line("send alice still here");
    let first = bob.expect_any(&["server-lost", "signed-in", "delivered"]);
    assert_eq!(
        first["event"], "delivered",
        "bob never lost the server: {first}"
    );
    assert_eq!(alice.expect("message")["text"], "still here");
}

#[test]
fn past_the_broadcast_limit_only_those_who_asked_about_someone_hear_of_them() {
    let dir = tempfile::tempdir().unwrap();
    // More than one signed-in user is "busy" here; the default is 1,000.
    let server = Server::start_with(
        dir.path(),
        "127.0.0.1:0",
        &["--presence-timeout", TIMEOUT, "--presence-limit", "1"],
    );
    let dave_dir = Client::away(server.addr, "dave");
    let pw = password("dave");

    let mut alice = client(&server, "alice", true);
    let bob = client(&server, "bob", true);
    let mut carole = client(&server, "carole", true);
    // carole writes to bob; alice leaves a message for dave, who is away.
    carole.line("send bob hi");
    carole.expect_where("delivered", |d| d["to"] == "bob");
    alice.line("send dave see you later");
    alice.expect("queued");

    assert!(bob.finish().0.success());
    let gone = carole.expect_where("presence", |p| p["user"] == "bob");
    assert_eq!(gone["online"], false);

    // dave returns: alice, who asked about him, hears it; she never heard
    // of bob leaving (changes reach her in order, so it would be here by
    // now).
    let _dave = Client::start_in(server.addr, dave_dir.path(), &["-u", "dave", "-p", &pw]);
    let back = alice.expect_where("presence", |p| p["user"] == "dave");
    assert_eq!(back["online"], true);
    assert!(
        alice
            .seen
            .iter()
            .all(|e| !(e["event"] == "presence" && e["user"] == "bob" && e["online"] == false)),
        "alice never asked about bob: {:?}",
        alice.seen
    );
    // Anyone can still see who is online on request.
    alice.line("list");
    assert_eq!(
        alice.expect("users")["users"],
        serde_json::json!(["carole", "dave"])
    );
}

#[test]
fn a_server_killed_with_200_messages_queued_delivers_every_one_once_after_restart() {
    let dir = tempfile::tempdir().unwrap();
    let server = server_in(dir.path(), "127.0.0.1:0");
    let port = server.addr.port();
    let bob_dir = Client::away(server.addr, "bob");
    let pw = password("bob");

    let mut alice = client(&server, "alice", true);
    const COUNT: usize = 200;
    for i in 0..COUNT {
        alice.line(&format!("send bob message {i}"));
    }
    for _ in 0..COUNT {
        alice.expect("queued");
    }
    server.kill(); // SIGKILL: no chance to flush anything
    drop(alice);

    let server = server_in(dir.path(), &format!("127.0.0.1:{port}"));
    let mut bob = Client::start_in(server.addr, bob_dir.path(), &["-u", "bob", "-p", &pw]);
    for i in 0..COUNT {
        let message = bob.expect_where("message", |m| m["stored"] == true);
        assert_eq!(
            message["text"],
            format!("message {i}"),
            "lost, reordered or repeated"
        );
    }
    let (_, rest) = bob.finish();
    assert!(
        rest.iter().all(|e| e["event"] != "message"),
        "extra messages: {rest:?}"
    );
}

#[test]
fn clients_notice_a_dead_server_and_sign_back_in_when_it_returns() {
    let dir = tempfile::tempdir().unwrap();
    let server = server_in(dir.path(), "127.0.0.1:0");
    let port = server.addr.port();
    let mut alice = client(&server, "alice", true);
    server.kill();
    let lost = alice.expect("server-lost");
    assert!(lost["server"]
        .as_str()
        .unwrap()
        .ends_with(&format!(":{port}")));

    let _server = server_in(dir.path(), &format!("127.0.0.1:{port}"));
    alice.expect("signed-in");
    alice.line("list");
    alice.expect("users");
    // exit works at any moment.
    alice.line("exit");
    let (status, _) = alice.finish();
    assert!(status.success());
}

#[test]
fn a_graceful_shutdown_signs_clients_out_and_they_return_with_the_server() {
    let dir = tempfile::tempdir().unwrap();
    let server = server_in(dir.path(), "127.0.0.1:0");
    let port = server.addr.port();
    let mut alice = client(&server, "alice", true);
    let mut bob = client(&server, "bob", true);
    assert!(server.terminate().success());
    alice.expect("server-down");
    bob.expect("server-down");
    let _server = server_in(dir.path(), &format!("127.0.0.1:{port}"));
    alice.expect("signed-in");
    bob.expect("signed-in");
}

#[test]
fn a_client_that_crashed_gets_its_kept_messages_and_a_working_session_when_it_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let server = server_in(dir.path(), "127.0.0.1:0");
    let bob_dir = tempfile::tempdir().unwrap();
    let pw = password("bob");
    let bob_args = ["-u", "bob", "-p", &pw, "--presence-timeout", TIMEOUT];
    let mut bob = Client::start_in(
        server.addr,
        bob_dir.path(),
        &[&bob_args[..], &["--signup"]].concat(),
    );
    bob.expect("signed-in");
    let mut alice = client(&server, "alice", true);
    bob.kill();
    alice.expect_where("presence", |p| p["user"] == "bob" && p["online"] == false);
    alice.line("send bob did you crash?");
    alice.expect("queued");

    let mut bob = Client::start_in(server.addr, bob_dir.path(), &bob_args);
    assert_eq!(
        bob.expect_where("message", |m| m["stored"] == true)["text"],
        "did you crash?"
    );
    alice.expect_where("delivered", |d| d["to"] == "bob");
    // And the new session works both ways.
    bob.line("send alice yes, back now");
    assert_eq!(alice.expect("message")["text"], "yes, back now");
}

#[test]
fn kept_messages_cross_lossy_links_once_each_and_in_order() {
    use udpchat_tests::relay::{Impairment, Relay};
    let dir = tempfile::tempdir().unwrap();
    // Default presence timeouts: a lossy link must not cost anyone their sign-in.
    let server = Server::start_in(dir.path(), "127.0.0.1:0");
    let impairment = |seed| Impairment {
        loss: 0.10,
        duplicate: 0.05,
        reorder: 0.05,
        seed,
    };
    let alice_link = Relay::start(server.addr, impairment(11));
    let bob_link = Relay::start(server.addr, impairment(12));
    let bob_dir = Client::away(bob_link.up, "bob");
    let pw = password("bob");

    let apw = password("alice");
    let mut alice = Client::start(alice_link.up, &["-u", "alice", "-p", &apw, "--signup"]);
    alice.expect("signed-in");
    const COUNT: usize = 40;
    for i in 0..COUNT {
        alice.line(&format!("send bob kept {i}"));
    }
    for _ in 0..COUNT {
        alice.expect("queued");
    }
    let mut bob = Client::start_in(bob_link.up, bob_dir.path(), &["-u", "bob", "-p", &pw]);
    for i in 0..COUNT {
        assert_eq!(
            bob.expect_where("message", |m| m["stored"] == true)["text"],
            format!("kept {i}")
        );
    }
    for _ in 0..COUNT {
        alice.expect_where("delivered", |d| d["stored"] == true);
    }
    let (_, rest) = bob.finish();
    assert!(
        rest.iter().all(|e| e["event"] != "message"),
        "twice: {rest:?}"
    );
}

/// A message deposited while its recipient signs in can reach the
/// recipient's new session twice: once from the sign-in's look at the
/// mailbox, once from the deposit, which finds the recipient online (in
/// that order the server never misses one, and may send one twice). Found
/// by `udpchat-bench soak`: the second copy's one-time prekey was used up,
/// so it was reported as a message that "could not be opened". Here the
/// sender deposits one sealed text over and over while bob signs in, a
/// few times; every stored message (by id) must be shown once, without
/// errors.
#[test]
fn messages_deposited_while_their_recipient_signs_in_are_shown_once_each() {
    use std::collections::{BTreeMap, BTreeSet};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::{Duration, Instant};

    use udpchat_commands::bundle::{BundleOf, BundleRequest};
    use udpchat_commands::deposit::{Deposit, DepositBody, Deposited};
    use udpchat_commands::signup::SignUp;
    use udpchat_core::cbor;
    use udpchat_core::crypto::sealed;
    use udpchat_core::mailbox::{associated, Bundle};
    use udpchat_core::packet::{decode_reply, Encoded};
    use udpchat_tests::raw::RawClient;

    const ROUNDS: usize = 4;
    const BATCH: usize = 8;
    const MOST: usize = 4_000;

    let dir = tempfile::tempdir().unwrap();
    let server = server_in(dir.path(), "127.0.0.1:0");
    let bob_dir = Client::away(server.addr, "bob");
    let alice = RawClient::connect(&server, "127.0.0.1".parse().unwrap());
    alice.sign::<SignUp>("alice").expect("alice signs up");
    // Between rounds alice says nothing while bob's client comes and goes,
    // which under load can take longer than the presence timeout.
    alice.keep_alive_every(std::time::Duration::from_millis(1000));
    let bundle: Bundle = alice
        .ask::<BundleOf>(&BundleRequest {
            user: "bob".into(),
            signed_only: false,
        })
        .expect("bob's bundle");
    let sealed = sealed::seal(
        &mut rand::rngs::OsRng,
        alice.identity(),
        &bundle.identity,
        &bundle.signed,
        None,
        b"while you were signing in",
        &associated("alice", "bob"),
    )
    .expect("sealed");
    let deposit = Encoded::request::<Deposit>(&DepositBody {
        to: "bob".into(),
        sealed: cbor::encode(&sealed),
    });
    let pw = password("bob");

    for round in 0..ROUNDS {
        let stop = AtomicBool::new(false);
        let (mut bob, deposited) = std::thread::scope(|s| {
            let depositor = s.spawn(|| {
                let mut ids = BTreeSet::new();
                // A refused deposit is no failure here (the sender's share
                // of bob's mailbox may be full), but is said if none went.
                let mut refused = BTreeMap::new();
                let mut sent = 0;
                while !stop.load(Ordering::SeqCst) && sent < MOST {
                    let batch = vec![deposit.clone(); BATCH];
                    sent += BATCH;
                    for reply in alice.requests_at_once(batch) {
                        match reply {
                            Ok(reply) => {
                                let Deposited { id } = decode_reply(&reply).expect("deposited");
                                ids.insert(id);
                            }
                            Err(e) => *refused.entry(e.to_string()).or_insert(0) += 1,
                        }
                    }
                }
                (ids, refused)
            });
            let mut bob = Client::start_in(server.addr, bob_dir.path(), &["-u", "bob", "-p", &pw]);
            bob.expect("signed-in");
            std::thread::sleep(Duration::from_millis(300));
            stop.store(true, Ordering::SeqCst);
            (bob, depositor.join().expect("depositor"))
        });
        let (deposited, refused) = deposited;
        assert!(
            !deposited.is_empty(),
            "round {round}: nothing deposited; refused (error, times): {refused:?}"
        );
        // Every one comes, then a moment for copies.
        let deadline = Instant::now() + udpchat_tests::FAILSAFE;
        let shown = |bob: &Client| -> BTreeSet<u64> {
            bob.seen
                .iter()
                .filter(|e| e["event"] == "message")
                .filter_map(|e| e["id"].as_u64())
                .collect()
        };
        while !deposited.is_subset(&shown(&bob)) {
            assert!(Instant::now() < deadline, "round {round}: not all came");
            bob.expect("message");
        }
        std::thread::sleep(Duration::from_millis(500));
        let seen = bob.seen.clone();
        let (status, rest) = bob.finish();
        assert!(status.success());
        let all: Vec<_> = seen.into_iter().chain(rest).collect();
        let mut times: BTreeMap<u64, usize> = BTreeMap::new();
        for event in all.iter().filter(|e| e["event"] == "message") {
            *times
                .entry(event["id"].as_u64().expect("an id"))
                .or_default() += 1;
        }
        let twice: Vec<_> = times.iter().filter(|(_, n)| **n > 1).collect();
        let errors: Vec<_> = all.iter().filter(|e| e["event"] == "error").collect();
        assert!(
            twice.is_empty() && errors.is_empty(),
            "round {round}: {} deposited; shown more than once (id, times): {twice:?}; errors: {errors:?}",
            deposited.len()
        );
        assert_eq!(times.len(), deposited.len(), "round {round}");
    }
}

/// A user who signs out while a message to them is being written (their
/// history kept busy by another process) signs out once it is written and
/// acknowledged. Its sender hears it was delivered, not first that the
/// user left: it would then keep the message on the server, to be shown
/// again at the next sign-in (the soak showed one twice so).
#[test]
fn signing_out_waits_until_what_came_is_written_and_its_senders_know() {
    let server = Server::start();
    let WrittenTo {
        bob_dir,
        relay,
        mut bob,
        mut alice,
    } = bob_behind_a_relay_written_to(server.addr);

    let busy = busy_history(bob_dir.path(), "bob");
    let sent = relay.from_peers();
    alice.line("send bob written before leaving");
    // It reached bob, whose acknowledgement waits for the write (alice
    // sends it again), and bob signs out meanwhile.
    relay.wait_from_peers(sent + 2);
    bob.line("logout");
    drop(busy);
    bob.expect("signed-out");
    let shown = |e: &serde_json::Value| e["text"] == "written before leaving";
    let message = bob.seen.iter().position(shown);
    assert!(
        message.is_some_and(|at| at < bob.seen.len() - 1),
        "signed out before the line was shown: {:#?}",
        bob.seen
    );
    let outcome = alice.expect_first(&["delivered", "queued"], |e| e["to"] == "bob");
    assert_eq!(outcome["event"], "delivered", "{outcome}");

    // Nothing waits for bob on the server.
    bob.line(&format!("signin bob {}", password("bob")));
    bob.expect("signed-in");
    let (_, rest) = bob.finish();
    let again: Vec<_> = rest.iter().filter(|e| e["event"] == "message").collect();
    assert!(again.is_empty(), "shown again: {again:?}");
}

/// alice writes 40 lines to bob just after his machine died. They fail
/// together once the server notices (and tells her), and each is sealed
/// into his mailbox: he reads all 40 at his next sign-in, in the order she
/// wrote them. (Kept each as it failed, they reached the server, and him,
/// in no particular order.)
#[test]
fn lines_written_to_someone_whose_client_vanished_are_kept_and_read_in_order() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = server_in(dir.path(), "127.0.0.1:0");
    let mut alice = client(&server, "alice", true);
    let bob_dir = tempfile::tempdir().expect("temp dir");
    let bob_in = |signup: bool| {
        let pw = password("bob");
        let mut args = vec!["-u", "bob", "-p", &pw, "--presence-timeout", TIMEOUT];
        if signup {
            args.push("--signup");
        }
        let mut bob = Client::start_in(server.addr, bob_dir.path(), &args);
        bob.expect("signed-in");
        bob
    };
    let mut bob = bob_in(true);
    alice.line("send bob are you there?");
    alice.expect_where("delivered", |d| d["to"] == "bob");
    bob.expect("message");

    bob.kill();
    let written: Vec<String> = (1..=40).map(|i| format!("line {i}")).collect();
    for text in &written {
        alice.line(&format!("send bob {text}"));
    }
    for _ in &written {
        let kept = alice.expect_first(&["queued", "delivered", "error"], |e| {
            e["to"] == "bob" || e["event"] == "error"
        });
        assert_eq!(kept["event"], "queued", "{kept}");
    }

    let mut bob = bob_in(false);
    let read: Vec<String> = written
        .iter()
        .map(|_| {
            let message = bob.expect("message");
            assert_eq!(message["stored"], true, "{message}");
            message["text"].as_str().unwrap_or_default().to_string()
        })
        .collect();
    assert_eq!(read, written);
}
