//! End to end: what the security design promises, seen from outside with
//! real processes.

use std::net::UdpSocket;

use rand::SeedableRng;
use udpchat_core::crypto::handshake::ClientHello;
use udpchat_core::crypto::keys::StaticKey;
use udpchat_core::wire::{Packet, Pattern};
use udpchat_tests::relay::{Impairment, Relay};
use udpchat_tests::tmux::{self, Terminal};
use udpchat_tests::{binary, password, Client, Server, TextClient};

#[test]
fn a_wrong_password_and_an_unknown_user_get_the_same_answer_and_guessing_is_throttled() {
    let server = Server::start();
    let _alice = Client::sign_up(server.addr, "alice");
    let mut mallory = Client::start(server.addr, &[]);

    mallory.line("signin alice not-her-password");
    let wrong = mallory.expect("error");
    mallory.line("signin nobody whatever");
    let unknown = mallory.expect("error");
    assert_eq!(wrong["code"], "bad-credentials");
    assert_eq!(
        wrong, unknown,
        "the answers tell apart known and unknown users"
    );

    for _ in 0..2 {
        mallory.line("signin alice still-wrong");
        assert_eq!(mallory.expect("error")["code"], "bad-credentials");
    }
    // Now even the right password has to wait.
    mallory.line(&format!("signin alice {}", password("alice")));
    let throttled = mallory.expect("error");
    assert_eq!(throttled["code"], "throttled");
    assert!(throttled["message"]
        .as_str()
        .unwrap()
        .starts_with("too many failed sign-ins for alice"));
}

#[test]
fn accounts_survive_a_server_restart() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start_in(data.path(), "127.0.0.1:0");
    let port = server.addr.port();
    let (status, _) = Client::sign_up(server.addr, "carole").finish();
    assert!(status.success());
    server.kill();

    let server = Server::start_in(data.path(), &format!("127.0.0.1:{port}"));
    let mut carole = Client::sign_in(server.addr, "carole");
    carole.line("list");
    carole.expect("users");
    let mut impostor = Client::start(server.addr, &["-u", "carole", "-p", "guess"]);
    assert_eq!(impostor.expect("error")["code"], "bad-credentials");
}

#[test]
fn garbage_truncated_and_wrong_key_datagrams_get_zero_bytes_back() {
    let server = Server::start();
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(udpchat_tests::FAILSAFE))
        .unwrap();

    let wrong_key = StaticKey::generate(&mut rand::rngs::StdRng::seed_from_u64(7)).public();
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let (_, hello) = ClientHello::start(&mut rand::rngs::OsRng, &wrong_key, &[0], now_ms).unwrap();
    let mut wrong_key_hello = Packet::Hello {
        pattern: Pattern::Nk,
        sender_index: 1,
        message: &hello,
        macs: &[0; udpchat_core::wire::HELLO_MACS_LEN],
    }
    .encode();
    // A sender that believes the server has another key.
    udpchat_core::secure::cookie::stamp(
        &mut wrong_key_hello,
        udpchat_core::secure::cookie::mac1_key(&wrong_key).as_ref(),
        None,
    );
    let garbage: Vec<Vec<u8>> = vec![
        vec![],
        vec![0xff; 1200],
        b"GET / HTTP/1.1\r\n\r\n".to_vec(),
        wrong_key_hello.clone(),
        wrong_key_hello[..100].to_vec(),
        Packet::Data {
            receiver_index: 42,
            counter: 0,
            ciphertext: &[0u8; 64],
        }
        .encode(),
        Packet::KeyRequest.encode()[..20].to_vec(), // a key request too short to answer
    ];
    for datagram in &garbage {
        socket.send_to(datagram, server.addr).unwrap();
    }
    // The server handles one socket's datagrams in order, so the first
    // answer it gives after all that must be the answer to this one.
    socket
        .send_to(&Packet::KeyRequest.encode(), server.addr)
        .unwrap();
    let mut buf = [0u8; 2048];
    let (len, _) = socket
        .recv_from(&mut buf)
        .expect("the server answered nothing at all");
    assert!(
        matches!(Packet::parse(&buf[..len]), Ok(Packet::ServerKey { .. })),
        "the first answer was not to the key request"
    );
}

#[test]
fn the_server_never_sees_a_direct_message_or_a_password() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start_in(data.path(), "127.0.0.1:0");
    let mut alice = Client::sign_up(server.addr, "alice");
    let mut bob = Client::sign_up(server.addr, "bob");
    let secret = "the eagle lands at midnight 7f3a";
    alice.line(&format!("send bob {secret}"));
    assert_eq!(bob.expect("message")["text"], secret);
    alice.expect("delivered");
    let data_dir = server.data_dir.clone();
    assert!(server.terminate().success());

    for file in std::fs::read_dir(&data_dir).unwrap() {
        let path = file.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        for needle in [secret, &password("alice"), &password("bob")] {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle.as_bytes()),
                "{} contains {needle:?}",
                path.display()
            );
        }
    }
    let log = std::fs::read_to_string(data_dir.join("server.log")).unwrap();
    assert!(
        log.contains("TRACE") || log.contains("DEBUG") || log.contains("INFO"),
        "the log was written at trace level"
    );
}

#[test]
fn a_server_whose_key_changed_is_refused_naming_both_fingerprints() {
    let first = tempfile::tempdir().unwrap();
    let server = Server::start_in(first.path(), "127.0.0.1:0");
    let port = server.addr.port();
    let client_dir = tempfile::tempdir().unwrap();
    let mut alice = Client::start_in(
        server.addr,
        client_dir.path(),
        &["-u", "alice", "-p", &password("alice"), "--signup"],
    );
    let trusted = alice.expect("server-trusted");
    alice.expect("signed-in");
    drop(alice);
    server.kill();

    // Another server (another key) on the same address.
    let second = tempfile::tempdir().unwrap();
    let impostor = Server::start_in(second.path(), &format!("127.0.0.1:{port}"));
    let mut alice = Client::start_in(
        impostor.addr,
        client_dir.path(),
        &["-u", "alice", "-p", &password("alice")],
    );
    let refusal = alice.expect("error");
    assert_eq!(refusal["code"], "server-key-changed");
    let message = refusal["message"].as_str().unwrap();
    assert!(
        message.contains(trusted["fingerprint"].as_str().unwrap()),
        "{message}"
    );
    let new_key = udpchat_core::crypto::keyfile::read_public(&impostor.public_key()).unwrap();
    assert!(message.contains(&new_key.fingerprint()), "{message}");
}

#[test]
fn a_pinned_server_key_is_checked() {
    let server = Server::start();
    let key = server.public_key();
    let mut alice = Client::start(
        server.addr,
        &[
            "--server-key",
            key.to_str().unwrap(),
            "-u",
            "alice",
            "-p",
            &password("alice"),
            "--signup",
        ],
    );
    alice.expect("signed-in");
    assert!(
        alice.seen.iter().all(|e| e["event"] != "server-trusted"),
        "a pinned key needs no trust on first use"
    );

    let other = Server::start();
    let mut bob = Client::start(
        server.addr,
        &[
            "--server-key",
            other.public_key().to_str().unwrap(),
            "-u",
            "bob",
            "-p",
            &password("bob"),
            "--signup",
        ],
    );
    assert_eq!(bob.expect("error")["code"], "server-key-changed");
}

#[test]
fn a_users_new_identity_key_is_announced_to_those_who_knew_the_old_one() {
    let server = Server::start();
    let mut alice = Client::sign_up(server.addr, "alice");
    let bob = Client::sign_up(server.addr, "bob");
    alice.line("send bob first");
    alice.expect("delivered");
    let (status, _) = bob.finish();
    assert!(status.success());

    // bob signs in from another machine: a new identity key.
    let mut bob = Client::sign_in(server.addr, "bob");
    alice.line("send bob second");
    let warning = alice.expect("key-changed");
    assert_eq!(warning["user"], "bob");
    assert_ne!(warning["was"], warning["now"]);
    // Straight to bob's new client, whenever the news that his old one
    // went offline reaches alice (it may come after she found the new one).
    let outcome = alice.expect_first(&["delivered", "queued", "error"], |e| e["to"] == "bob");
    assert_eq!(outcome["event"], "delivered", "{outcome}");
    assert_eq!(bob.expect("message")["text"], "second");
}

/// What a peer may put in a message to take over a terminal: retitle the
/// window (OSC ... BEL), clear the screen (ESC [ 2 J), and the same with the
/// one-character C1 CSI (U+009B).
const HOSTILE: &str = "\u{1b}]0;pwned\u{7} \u{1b}[2J \u{9b}2J end";

#[test]
fn a_peers_escape_sequences_reach_no_terminal_in_scripted_text_mode() {
    let server = Server::start();
    let mut alice = Client::sign_up(server.addr, "alice");
    let mut bob = TextClient::sign_up(server.addr, "bob");
    alice.line(&format!("send bob {HOSTILE}"));
    alice.expect_where("delivered", |e| e["to"] == "bob");
    let shown = bob.expect_line(|line| line.contains("pwned"));
    assert_eq!(
        shown,
        format!(
            "<From {}:alice>: \u{FFFD}]0;pwned\u{FFFD} \u{FFFD}[2J \u{FFFD}2J end",
            alice.addr
        ),
        "bob's stdout shows the message, its control characters replaced"
    );
    for line in &bob.seen {
        assert!(
            !line.contains(char::is_control),
            "bob's stdout carries a control character: {line:?}"
        );
    }
}

/// A peer's message with line breaks cannot print a line that passes for
/// the client's own: here mallory forges one from alice under his own
/// text. Every line after the first is shown marked as his.
#[test]
fn a_peers_line_breaks_cannot_forge_a_line_from_someone_else() {
    use udpchat_commands::lookup::{Found, Lookup, LookupRequest};
    use udpchat_commands::message::{Message, MessageBody};
    use udpchat_commands::signup::SignUp;
    use udpchat_core::output::CONTINUED;
    use udpchat_core::packet::Encoded;
    use udpchat_tests::raw::RawClient;

    let server = Server::start();
    let _alice = Client::sign_up(server.addr, "alice");
    let mut bob = TextClient::sign_up(server.addr, "bob");
    let mallory = RawClient::connect(&server, "127.0.0.1".parse().unwrap());
    mallory.sign::<SignUp>("mallory").expect("mallory signs up");
    let Found { addr, identity, .. } = mallory
        .ask::<Lookup>(&LookupRequest {
            user: "bob".into(),
            meet: false,
        })
        .expect("bob is online");
    let forged = "<From 127.0.0.1:4000:alice>: it's alice, tell me your password";
    let body = Encoded::push::<Message>(&MessageBody {
        from: "mallory".into(),
        text: format!("see you later\n{forged}"),
        id: None,
        again: false,
    });
    mallory
        .push_to_client(addr.parse().unwrap(), identity, body)
        .expect("bob's client took it");

    let first = bob.expect_line(|line| line.contains("see you later"));
    assert!(
        first.starts_with("<From ") && first.contains(":mallory>:"),
        "{first}"
    );
    let next = bob.expect_line(|line| line.contains("tell me your password"));
    assert_eq!(next, format!("{CONTINUED}{forged}"), "shown as mallory's");
    assert!(
        !bob.seen
            .iter()
            .any(|line| line.starts_with("<From 127.0.0.1:4000:alice>")),
        "a line of bob's output passes for alice's: {:#?}",
        bob.seen
    );
}

#[test]
fn a_peers_escape_sequences_are_escaped_in_json() {
    let server = Server::start();
    let mut alice = Client::sign_up(server.addr, "alice");
    let mut bob = Client::sign_up(server.addr, "bob");
    alice.line(&format!("send bob {HOSTILE}"));
    let message = bob.expect("message");
    assert_eq!(message["text"], HOSTILE, "JSON keeps the text as sent");
    for line in &bob.raw {
        assert!(
            !line.contains(char::is_control),
            "bob's JSON carries a raw control character: {line:?}"
        );
    }
    let line = bob.raw.iter().find(|l| l.contains("pwned")).unwrap();
    assert!(line.contains(r"\u009b"), "{line}");
}

#[test]
fn every_file_and_dir_either_program_writes_is_private_whatever_the_umask() {
    use std::os::unix::fs::PermissionsExt;
    let root = tempfile::tempdir().unwrap();
    // The server's data dir already exists, open to all (as `mkdir` under
    // umask 022, or an older udpchat, left it).
    let server_dir = root.path().join("server");
    std::fs::create_dir(&server_dir).unwrap();
    std::fs::set_permissions(&server_dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let server = Server::start_under_umask(&server_dir, 0o022);
    let (alice_dir, bob_dir) = (root.path().join("alice"), root.path().join("bob"));
    let start = |user: &str, dir: &std::path::Path| {
        let mut client = Client::start_under_umask(
            server.addr,
            dir,
            &["-u", user, "-p", &password(user), "--signup"],
            0o022,
        );
        client.expect("signed-in");
        client
    };
    let mut alice = start("alice", &alice_dir);
    let mut bob = start("bob", &bob_dir);
    alice.line("send bob who talks to whom is private");
    bob.expect("message");
    alice.expect_where("delivered", |e| e["to"] == "bob");

    // The shell keeps a history: carole types in a terminal.
    let carole_dir = root.path().join("carole");
    let _carole = tmux::available().then(|| {
        let udpchat = binary("udpchat");
        let server = server.addr.to_string();
        let password = password("carole");
        let terminal = Terminal::run(
            "sh",
            &[
                "-c",
                "umask 022 && exec \"$0\" \"$@\"",
                udpchat.to_str().unwrap(),
                "--bind",
                "127.0.0.1:0",
                "--server",
                &server,
                "--data-dir",
                carole_dir.to_str().unwrap(),
                "-u",
                "carole",
                "-p",
                &password,
                "--signup",
            ],
        );
        terminal.wait_for_input_line("[carole] +>");
        terminal.type_text("send alice hi from a terminal");
        terminal.press(&["Enter"]);
        alice.expect_where("message", |e| e["from"] == "carole");
        terminal.wait_for_text("delivered to alice");
        terminal
    });

    // Looked at while everything runs: SQLite's -wal and -shm files exist
    // only while the database is open.
    let mut found = Vec::new();
    let mut loose = Vec::new();
    let mut dirs = vec![server_dir.clone(), alice_dir, bob_dir];
    if carole_dir.exists() {
        dirs.push(carole_dir);
    }
    while let Some(dir) = dirs.pop() {
        let mode = std::fs::symlink_metadata(&dir)
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        if mode != 0o700 {
            loose.push(format!("{} (dir) {mode:04o}", dir.display()));
        }
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            let meta = std::fs::symlink_metadata(&path).unwrap();
            if meta.is_dir() {
                dirs.push(path);
                continue;
            }
            // The harness's own log of the server's stderr.
            if path == server_dir.join("server.log") {
                continue;
            }
            let mode = meta.permissions().mode() & 0o777;
            if mode != 0o600 {
                loose.push(format!("{} {mode:04o}", path.display()));
            }
            found.push(path.file_name().unwrap().to_string_lossy().into_owned());
        }
    }
    assert!(loose.is_empty(), "readable by others: {loose:#?}");
    for name in [
        "server.priv",
        "server.pub",
        "udpchat.sqlite3",
        "udpchat.sqlite3-wal",
        "udpchat.sqlite3-shm",
        "known_servers",
        "identity.priv",
        "identity.pub",
        "prekeys.pem",
        "known_users",
    ] {
        assert!(found.iter().any(|f| f == name), "no {name} in {found:?}");
    }
    if _carole.is_some() {
        assert!(found.iter().any(|f| f == "carole.txt"), "{found:?}");
    }
}

#[test]
fn a_pinned_or_recorded_server_key_signs_in_with_no_key_request() {
    let server = Server::start();

    // Pinned with --server-key, behind a link that drops every KEY REQUEST.
    let relay = Relay::start(server.addr, Impairment::CLEAN);
    relay.drop_key_requests();
    let key = server.public_key();
    let mut alice = Client::start(
        relay.up,
        &[
            "--server-key",
            key.to_str().unwrap(),
            "-u",
            "alice",
            "-p",
            &password("alice"),
            "--signup",
        ],
    );
    let outcome = alice.expect_any(&["signed-in", "error"]);
    assert_eq!(outcome["event"], "signed-in", "{outcome}");
    assert_eq!(
        relay.key_requests(),
        0,
        "KEY REQUESTs sent with a pinned key"
    );

    // Recorded in known_servers on first use (which asks), then not asked.
    let relay = Relay::start(server.addr, Impairment::CLEAN);
    let data = tempfile::tempdir().unwrap();
    let mut bob = Client::start_in(
        relay.up,
        data.path(),
        &["-u", "bob", "-p", &password("bob"), "--signup"],
    );
    bob.expect("server-trusted");
    bob.expect("signed-in");
    let (status, _) = bob.finish();
    assert!(status.success());
    let first_use = relay.key_requests();
    assert!(first_use > 0, "trust on first use asks the server");
    relay.drop_key_requests();
    let mut bob = Client::start_in(
        relay.up,
        data.path(),
        &["-u", "bob", "-p", &password("bob")],
    );
    let outcome = bob.expect_any(&["signed-in", "error"]);
    assert_eq!(outcome["event"], "signed-in", "{outcome}");
    assert_eq!(
        relay.key_requests(),
        first_use,
        "KEY REQUESTs sent with a recorded key"
    );
}
