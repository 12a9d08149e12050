//! The valid examples each target's corpus starts from, made with the
//! project's own encoders: a real HELLO, WELCOME and DATA datagram, real
//! transport fragments and ACKs, envelopes, one body of every command body
//! type, sealed messages, and key files. They are checked in under
//! `fuzz/corpus/<target>/seed-<name>`; a test fails when they are out of
//! date, and `UDPCHAT_FUZZ_WRITE_SEEDS=1 cargo test -p udpchat-fuzz`
//! writes them again.

use serde::Serialize;
use udpchat_commands as c;
use udpchat_core::cbor;
use udpchat_core::crypto::handshake::{PeerHandshake, ReplayGuard, ServerHandshake};
use udpchat_core::crypto::sealed;
use udpchat_core::crypto::session::{Role, Session};
use udpchat_core::envelope::{Envelope, Kind};
use udpchat_core::error::CommandError;
use udpchat_core::group::{GroupInfo, GroupMessage};
use udpchat_core::mailbox::{Bundle, PrekeyUpload, Stored};
use udpchat_core::packet::Packet as _;
use udpchat_core::presence::PresenceChange;
use udpchat_core::wire::{self, Packet, Pattern};
use zeroize::Zeroizing;

use crate::fixtures::{self, fixture, NOW_MS};
use crate::targets::{bodies, exchange, Record};

/// One seed: its target, its file name, its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seed {
    pub target: &'static str,
    pub name: String,
    pub bytes: Vec<u8>,
}

/// A private key in the SEC1 form `openssl ecparam -genkey` writes,
/// parameters block included (the same test vector as `crypto::keys`).
const P384_SEC1_PEM: &str = "-----BEGIN EC PARAMETERS-----
BgUrgQQAIg==
-----END EC PARAMETERS-----
-----BEGIN EC PRIVATE KEY-----
MIGkAgEBBDDuXEV4iY21bc5LYtLjrPGWEgR90bGheCqg+PIgNdcI3kARyESpmq9H
rCpN/E1AT3mgBwYFK4EEACKhZANiAAS1Tzu7q2xOc8dUQWWW53WbUnycT11m3kyp
/oAomWfQcqII5RB6sg/fjNowy83Fv9loWIlETREVb3iH965wYfhb0J2wes177cZu
4N9n5qkGL7b60PdZX+0cEmk2dkIX/GM=
-----END EC PRIVATE KEY-----
";

/// [`all`], made once per process.
pub fn all_cached() -> &'static [Seed] {
    static SEEDS: std::sync::OnceLock<Vec<Seed>> = std::sync::OnceLock::new();
    SEEDS.get_or_init(all)
}

/// Every seed of every target.
pub fn all() -> Vec<Seed> {
    let mut seeds = Vec::new();
    let mut add = |target: &'static str, name: &str, bytes: Vec<u8>| {
        seeds.push(Seed {
            target,
            name: format!("seed-{name}"),
            bytes,
        })
    };
    let f = fixture();

    // Handshake messages 2, and a session to seal a DATA packet in.
    let mut rng = fixtures::rng(1);
    let (keys, nk_reply, _) = ServerHandshake::respond(
        &mut rng,
        &f.server,
        &f.nk_hello,
        NOW_MS,
        b"welcome",
        &mut ReplayGuard::new(),
    )
    .expect("the fixture's NK hello is accepted");
    let (_, ik_reply, _, _) = PeerHandshake::respond(
        &mut rng,
        &f.server,
        &f.ik_hello,
        NOW_MS,
        b"",
        &mut ReplayGuard::new(),
    )
    .expect("the fixture's IK hello is accepted");
    let mut session = Session::new(keys, Role::Responder);

    // wire_packet
    // HELLOs end with mac1 (keyed by the responder's key) and mac2.
    let mac1_key = udpchat_core::secure::cookie::mac1_key(&f.server.public());
    let hello = |pattern, message| {
        let mut datagram = Packet::Hello {
            pattern,
            sender_index: 0x0102_0304,
            message,
            macs: &[0; wire::HELLO_MACS_LEN],
        }
        .encode();
        udpchat_core::secure::cookie::stamp(&mut datagram, mac1_key.as_ref(), None);
        datagram
    };
    add("wire_packet", "hello-nk", hello(Pattern::Nk, &f.nk_hello));
    add("wire_packet", "hello-ik", hello(Pattern::Ik, &f.ik_hello));
    let welcome = Packet::Welcome {
        sender_index: 5,
        receiver_index: 0x0102_0304,
        message: &nk_reply,
    };
    add("wire_packet", "welcome", welcome.encode());
    let data = wire::seal_data(&mut session, 0x0102_0304, b"a transport datagram")
        .expect("a fresh session seals");
    add("wire_packet", "data", data.clone());
    add("wire_packet", "key-request", Packet::KeyRequest.encode());
    let key = f.server.public().to_bytes();
    add(
        "wire_packet",
        "server-key",
        Packet::ServerKey { key: &key }.encode(),
    );
    add(
        "wire_packet",
        "cookie-reply",
        Packet::CookieReply {
            receiver_index: 0x0102_0304,
            mac1: &[0x11; wire::MAC_LEN],
            cookie: &[0x22; wire::MAC_LEN],
        }
        .encode(),
    );
    let signed = wire::probe_signed(false, 7, 0x0a0b);
    add(
        "wire_packet",
        "probe",
        Packet::Probe {
            answer: false,
            meeting: 7,
            nonce: 0x0a0b,
            signed: &signed,
            mac: &[0x33; wire::MAC_LEN],
        }
        .encode(),
    );
    add("wire_packet", "relay", wire::relay_datagram(7, &data));

    // transport_packet: A's fragments, B's ACK, and a SKIP.
    let ex = exchange();
    add("transport_packet", "data-first", ex.a_to_b[0].clone());
    add("transport_packet", "data-middle", ex.a_to_b[1].clone());
    add("transport_packet", "data-last", ex.a_to_b[2].clone());
    add("transport_packet", "data-empty", ex.a_to_b[3].clone());
    add("transport_packet", "ack-two-ranges", ex.b_to_a[0].clone());
    add("transport_packet", "skip", skip(0x0102, 9, 4));
    let ack_data = answer_with_data(&ex);
    add("transport_packet", "ack-data", ack_data.clone());

    // transport_endpoint: sequences from both sides of the exchange.
    let records = |list: &[(bool, u8, &[u8])]| {
        let mut out = Vec::new();
        for &(to_b, step, datagram) in list {
            Record {
                to_b,
                step,
                datagram,
            }
            .write(&mut out);
        }
        out
    };
    let ack = ex.b_to_a[0].as_slice();
    let missing = ex.a_to_b[1].as_slice();
    add("transport_endpoint", "ack", records(&[(false, 0, ack)]));
    add(
        "transport_endpoint",
        "missing-fragment-then-ack",
        records(&[(true, 3, missing), (false, 0, ack)]),
    );
    add(
        "transport_endpoint",
        "late-ack",
        records(&[(false, 60, ack), (true, 100, missing)]),
    );
    add(
        "transport_endpoint",
        "ack-data",
        records(&[(false, 0, &ack_data)]),
    );
    let session = u64::from_be_bytes(ex.a_to_b[0][2..10].try_into().expect("8 bytes"));
    add(
        "transport_endpoint",
        "skip",
        records(&[(true, 1, &skip(session, 50, 2))]),
    );

    // group_line: Alice's first line, handing Bob her key, and her second.
    let mut chain = fixtures::alice_group_chain();
    let (group, from) = fixtures::GROUP_LINE_FROM;
    let first = chain.seal(group, from, "hello team", vec![key_for_bob(&chain)], vec![]);
    add("group_line", "first-with-a-key", cbor::encode(&first));
    let want = udpchat_core::crypto::sender_keys::Want {
        from: "carol".into(),
        key_id: 9,
    };
    let second = chain.seal(group, from, "", vec![], vec![want]);
    add("group_line", "keys-only-with-a-want", cbor::encode(&second));

    // meeting: a client in a meeting, fed by its server and a stranger.
    let ticket = crate::targets::meeting_ticket();
    let relayed_hello = wire::relay_datagram(ticket.id, &hello(Pattern::Ik, &f.ik_hello));
    add(
        "meeting",
        "relayed-hello",
        records(&[(true, 0, &relayed_hello)]),
    );
    add(
        "meeting",
        "check-then-time",
        records(&[(false, 0, &ticket.probe(false, 5)), (true, 20, &[])]),
    );
    add(
        "meeting",
        "answer-and-forgeries",
        records(&[
            (false, 0, &ticket.probe(false, 6)),
            (false, 0, &ticket.probe(true, 5)),
            (false, 1, &wire::relay_datagram(ticket.id, &relayed_hello)),
            (true, 1, &wire::relay_datagram(ticket.id + 1, &data)),
        ]),
    );

    // envelope
    let message = cbor::encode(&c::message::MessageBody {
        from: "alice".into(),
        text: "hi bob".into(),
        id: Some(0x1d),
        again: true,
    });
    let list = cbor::encode(&c::list::ListRequest { prefix: "b".into() });
    let envelopes = [
        (
            "request",
            Envelope::new(c::list::List::TAG, 1, Kind::Request, list),
        ),
        (
            "reply",
            Envelope::new(
                c::ping::Ping::TAG,
                2,
                Kind::Reply,
                cbor::encode(&c::ping::Pong { user: None }),
            ),
        ),
        (
            "error",
            Envelope::new(
                c::list::List::TAG,
                3,
                Kind::Error,
                CommandError::not_signed_in().to_body(),
            ),
        ),
        (
            "push",
            Envelope::new(c::message::Message::TAG, u64::MAX, Kind::Push, message),
        ),
    ];
    for (name, envelope) in envelopes {
        add("envelope", name, envelope.encode());
    }

    // command_body: an example of each type that has one, after its
    // selector byte.
    let examples = command_body_examples();
    for (index, body) in bodies().iter().enumerate() {
        let Some((_, example)) = examples.iter().find(|(name, _)| *name == body.name) else {
            continue;
        };
        let mut bytes = vec![u8::try_from(index).expect("fewer than 256 body types")];
        bytes.extend_from_slice(example);
        add("command_body", &file_name(body.name), bytes);
    }

    // sealed: with and without a one-time prekey.
    for (name, one_time) in [
        ("one-time", Some(&f.bob_one_time[0])),
        ("signed-only", None),
    ] {
        add("sealed", name, cbor::encode(&sealed_to_bob(one_time)));
    }

    // handshake: each reader with the message it accepts.
    for (mode, name, message) in [
        (0u8, "nk-message-1", &f.nk_hello),
        (1, "ik-message-1", &f.ik_hello),
        (2, "nk-message-2", &nk_reply),
        (3, "ik-message-2", &ik_reply),
    ] {
        let mut bytes = vec![mode];
        bytes.extend_from_slice(message);
        add("handshake", name, bytes);
    }

    // keyfile
    add(
        "keyfile",
        "pkcs8",
        f.alice.to_pkcs8_pem().as_bytes().to_vec(),
    );
    add("keyfile", "sec1", P384_SEC1_PEM.as_bytes().to_vec());
    add(
        "keyfile",
        "spki",
        f.alice.public().to_spki_pem().into_bytes(),
    );
    add(
        "keyfile",
        "prekeys",
        f.bob_prekeys.to_pem().as_bytes().to_vec(),
    );

    seeds
}

/// A transport SKIP, written by hand from the layout in
/// `core/src/transport/packet.rs` (its encoder is the crate's own).
fn skip(incarnation: u64, pn: u64, base_seq: u32) -> Vec<u8> {
    let mut out = vec![2, 3];
    out.extend_from_slice(&incarnation.to_be_bytes());
    out.extend_from_slice(&pn.to_be_bytes());
    out.extend_from_slice(&base_seq.to_be_bytes());
    out
}

/// Alice's sender key, sealed to Bob (to his signed prekey alone).
fn key_for_bob(
    chain: &udpchat_core::crypto::sender_keys::OwnChain,
) -> udpchat_core::crypto::sender_keys::KeyEnvelope {
    let f = fixture();
    let (group, from) = fixtures::GROUP_LINE_FROM;
    let sealed = sealed::seal(
        &mut fixtures::rng(3),
        &f.alice,
        &f.bob.public(),
        &f.bob_prekeys.signed_prekey(),
        None,
        &cbor::encode(&chain.share()),
        &udpchat_core::crypto::sender_keys::envelope_associated(group, from, "bob"),
    )
    .expect("Bob's own signed prekey verifies");
    udpchat_core::crypto::sender_keys::KeyEnvelope {
        to: "bob".into(),
        sealed: cbor::encode(&sealed),
    }
}

/// A message Alice seals for Bob, as it is stored on the server.
fn sealed_to_bob(one_time: Option<&sealed::OneTimePrekey>) -> sealed::SealedMessage {
    let f = fixture();
    sealed::seal(
        &mut fixtures::rng(2),
        &f.alice,
        &f.bob.public(),
        &f.bob_prekeys.signed_prekey(),
        one_time,
        b"hi bob, from alice",
        &fixtures::associated(),
    )
    .expect("Bob's own signed prekey verifies")
}

/// `udpchat_commands::list::Users` -> `list-users`.
fn file_name(type_name: &str) -> String {
    let name = type_name
        .trim_start_matches("udpchat_commands::")
        .trim_start_matches("udpchat_core::")
        .replace("::", "-")
        .replace('_', "-")
        .to_lowercase();
    if name == "()" {
        "unit".to_string()
    } else {
        name
    }
}

/// A valid body of body types in [`bodies`], by type name: fuzzing
/// starts from these (a type without one is fuzzed too, from random
/// bytes and made-up CBOR).
pub fn command_body_examples() -> Vec<(&'static str, Vec<u8>)> {
    fn e<T: Serialize>(value: T) -> (&'static str, Vec<u8>) {
        (std::any::type_name::<T>(), cbor::encode(&value))
    }
    let f = fixture();
    let identity = f.alice.public();
    let signed = f.bob_prekeys.signed_prekey();
    let info = GroupInfo {
        name: "team".into(),
        owner: Some("alice".into()),
        open: false,
        members: vec!["alice".into(), "bob".into()],
        private: true,
    };
    let group_message = GroupMessage {
        group: "team".into(),
        seq: 3,
        from: "alice".into(),
        text: "hello team".into(),
        sealed: None,
        time_ms: NOW_MS,
    };
    // A private group's line: alice's first, handing bob her key.
    let mut chain = fixtures::alice_group_chain();
    let envelope = key_for_bob(&chain);
    let sealed_line =
        cbor::encode(&chain.seal("team", "alice", "hello team", vec![envelope], vec![]));
    let private_message = GroupMessage {
        text: String::new(),
        sealed: Some(sealed_line.clone()),
        ..group_message.clone()
    };
    let sealed = sealed_to_bob(Some(&f.bob_one_time[1]));
    vec![
        e(()),
        e(CommandError::not_signed_in()),
        e(c::bundle::BundleRequest {
            user: "bob".into(),
            signed_only: false,
        }),
        e(Bundle {
            user: "bob".into(),
            identity: f.bob.public(),
            signed: signed.clone(),
            one_time: Some(f.bob_one_time[0].clone()),
        }),
        e(c::deposit::DepositBody {
            to: "bob".into(),
            sealed: cbor::encode(&sealed),
        }),
        e(c::deposit::Deposited { id: 42 }),
        e(c::group::create::CreateBody {
            group: "team".into(),
            open: true,
            members: vec!["bob".into()],
            private: true,
        }),
        e(c::group::add::Members {
            group: "team".into(),
            users: vec!["carol".into()],
        }),
        e(c::group::members::Named {
            group: "team".into(),
        }),
        e(c::group::history::HistoryRequest {
            group: "team".into(),
            count: 20,
        }),
        e(info.clone()),
        e(c::group::history::History {
            messages: vec![group_message.clone()],
            omitted: 1,
        }),
        e(c::group_messages::Batch {
            messages: vec![group_message.clone(), group_message.clone()],
        }),
        e(group_message),
        e(private_message),
        e(c::groups::Listing {
            groups: vec![info],
            note: Some("alice added you to team".into()),
        }),
        e(c::gsend::GroupLine {
            group: "team".into(),
            text: "hi all".into(),
            sealed: None,
            members: None,
        }),
        e(c::gsend::GroupLine {
            group: "team".into(),
            text: String::new(),
            sealed: Some(sealed_line),
            members: Some(udpchat_core::group::members_digest(&["alice", "bob"]).to_vec()),
        }),
        e(c::gsend::Accepted {
            seq: 4,
            time_ms: NOW_MS,
        }),
        e(c::list::ListRequest { prefix: "b".into() }),
        e(c::list::Users {
            users: vec!["bob".into(), "carol".into()],
            total: 2,
        }),
        e(c::lookup::LookupRequest {
            user: "bob".into(),
            meet: true,
        }),
        e(c::lookup::Found {
            user: "bob".into(),
            addr: "127.0.0.1:40000".into(),
            identity: f.bob.public(),
            local: vec!["10.0.1.3:40000".into(), "[fd00::3]:40000".into()],
            meeting: Some(udpchat_core::secure::meeting::Ticket {
                id: 7,
                key: vec![9; 32],
            }),
            relay: true,
            watched: true,
        }),
        e(c::punch::PunchBody {
            from: "alice".into(),
            meeting: udpchat_core::secure::meeting::Ticket {
                id: 7,
                key: vec![9; 32],
            },
            candidates: vec!["198.51.100.1:40000".into(), "10.0.2.2:40000".into()],
        }),
        e(c::mail_status::Status {
            to: "bob".into(),
            id: 42,
            outcome: c::mail_status::Outcome::Delivered,
        }),
        e(c::message::MessageBody {
            from: "alice".into(),
            text: "hi bob".into(),
            id: None,
            again: false,
        }),
        e(c::ping::Pong {
            user: Some("alice".into()),
        }),
        e(PrekeyUpload {
            signed,
            one_time: f.bob_one_time.clone(),
        }),
        e(c::prekeys::Held { one_time: 49 }),
        e(c::presence::PresenceChanges {
            changes: vec![
                PresenceChange {
                    user: "bob".into(),
                    online: true,
                },
                PresenceChange {
                    user: "carol".into(),
                    online: false,
                },
            ],
        }),
        e(c::receipt::ReceiptBody { id: 42 }),
        e(c::signin::Credentials {
            user: "alice".into(),
            password: Zeroizing::new("s3cret-enough".into()),
            identity: identity.clone(),
            local: Vec::new(),
            replace_key: None,
        }),
        e(c::signin::SignedIn {
            user: "alice".into(),
        }),
        e(c::stored::Handover {
            message: Stored {
                id: 42,
                from: "alice".into(),
                to: "bob".into(),
                sent_at_ms: NOW_MS,
                sealed: cbor::encode(&sealed),
            },
            from_identity: Some(identity.clone()),
            left: 0,
        }),
        e(sealed),
        e(c::whois::WhoisRequest { user: "bob".into() }),
        e(c::whois::Identity {
            user: "alice".into(),
            identity,
        }),
    ]
}

/// An ACK riding on DATA: what a third endpoint sends A when it got A's
/// first fragment and has a message of its own for A.
fn answer_with_data(ex: &crate::targets::Exchange) -> Vec<u8> {
    let mut c =
        udpchat_core::transport::Endpoint::new(udpchat_core::transport::Config::default(), 33);
    c.handle_datagram(ex.now, crate::targets::PEER_A, &ex.a_to_b[0])
        .expect("A's own datagram decodes");
    c.send(ex.now, crate::targets::PEER_A, b"reply".to_vec())
        .expect("message fits");
    let transmit = c.poll_transmit(ex.now).expect("the reply goes");
    assert_eq!(transmit.contents[1], 4, "the ACK rides on the reply");
    transmit.contents
}
