//! Micro-benchmarks (criterion) of the per-operation costs the load
//! scenarios are bounded by: one P-384 ECDH, a whole NK handshake (both
//! sides, and the server's answer alone), answering a KEY REQUEST, sealing
//! and opening a DATA datagram (in a busy session, whose keys stay
//! expanded, and in one used now and then, whose keys are expanded for
//! each packet), decoding a public key (a point decompression, and the
//! cached path), an envelope's encode and decode, and a private group's
//! line (sealed once, opened by each member) and key (sealed per member).
//! `cargo bench -p udpchat-bench`.

use std::net::SocketAddr;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use rand::rngs::StdRng;
use rand::SeedableRng;
use udpchat_commands::message::Message;
use udpchat_core::crypto::handshake::{ClientHello, ReplayGuard, ServerHandshake};
use udpchat_core::crypto::keys::{PublicKey, StaticKey};
use udpchat_core::crypto::session::{Role, Session};
use udpchat_core::envelope::{Envelope, Kind};
use udpchat_core::packet::Packet as _;
use udpchat_core::secure::{SecureConfig, SecureEndpoint};
use udpchat_core::wire::{self, Packet};

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn ecdh(c: &mut Criterion) {
    let mut rng = StdRng::seed_from_u64(1);
    let secret = p384::SecretKey::random(&mut rng);
    let peer = p384::SecretKey::random(&mut rng).public_key();
    c.bench_function("p384 ecdh", |b| {
        b.iter(|| p384::ecdh::diffie_hellman(secret.to_nonzero_scalar(), peer.as_affine()))
    });
    // A handshake's ephemeral key: a random scalar and its public point,
    // from the base point's precomputed multiples (DECISIONS.md).
    c.bench_function("key pair", |b| {
        b.iter(|| StaticKey::generate(&mut rng).public())
    });
}

fn nk_handshake(c: &mut Criterion) {
    let mut rng = StdRng::seed_from_u64(2);
    let server = StaticKey::generate(&mut rng);
    let public = server.public();
    let mut guard = ReplayGuard::new();
    c.bench_function("nk handshake, both sides", |b| {
        b.iter(|| {
            let (expect, hello) =
                ClientHello::start(&mut rng, &public, &[0], now_ms()).expect("hello");
            let (_, welcome, _) =
                ServerHandshake::respond(&mut rng, &server, &hello, now_ms(), &[], &mut guard)
                    .expect("respond");
            black_box(expect.read(&welcome).expect("read"))
        })
    });
    // What a server spends on each new session: reading message 1 and
    // making message 2 (the client's side made beforehand, not timed).
    let mut client_rng = StdRng::seed_from_u64(4);
    c.bench_function("nk handshake, the server's answer", |b| {
        b.iter_batched(
            || {
                let (_, hello) =
                    ClientHello::start(&mut client_rng, &public, &[0], now_ms()).expect("hello");
                hello
            },
            |hello| {
                black_box(
                    ServerHandshake::respond(&mut rng, &server, &hello, now_ms(), &[], &mut guard)
                        .expect("respond"),
                )
            },
            BatchSize::SmallInput,
        )
    });
}

/// What a server spends answering one KEY REQUEST (unauthenticated:
/// anyone may send them, from any address).
fn key_request(c: &mut Criterion) {
    let now = Instant::now();
    let key = StaticKey::generate(&mut StdRng::seed_from_u64(5));
    let mut server = SecureEndpoint::server(
        SecureConfig::default(),
        key,
        Box::new(StdRng::seed_from_u64(6)),
        now,
    );
    let request = Packet::KeyRequest.encode();
    let from: SocketAddr = "127.0.0.1:40000".parse().expect("address");
    c.bench_function("answer a KEY REQUEST", |b| {
        b.iter(|| {
            server
                .handle_datagram(now, now_ms(), from, &request)
                .expect("answered");
            black_box(
                server
                    .poll_transmit(now, now_ms())
                    .expect("the server's key"),
            )
        })
    });
}

fn sessions() -> (Session, Session) {
    let mut rng = StdRng::seed_from_u64(3);
    let server = StaticKey::generate(&mut rng);
    let (expect, hello) =
        ClientHello::start(&mut rng, &server.public(), &[0], now_ms()).expect("hello");
    let (server_keys, welcome, _) = ServerHandshake::respond(
        &mut rng,
        &server,
        &hello,
        now_ms(),
        &[],
        &mut ReplayGuard::new(),
    )
    .expect("respond");
    let (client_keys, _) = expect.read(&welcome).expect("read");
    (
        Session::new(client_keys, Role::Initiator),
        Session::new(server_keys, Role::Responder),
    )
}

/// Seals a DATA datagram of `payload` and opens it, at `second` of the
/// sessions' clock.
fn seal_open_once(client: &mut Session, server: &mut Session, second: u32, payload: &[u8]) {
    let datagram = wire::seal_data(client.at(second), 7, payload).expect("seal");
    let Ok(Packet::Data {
        receiver_index,
        counter,
        ciphertext,
    }) = Packet::parse(&datagram)
    else {
        panic!("not a data packet")
    };
    black_box(
        wire::open_data(server.at(second), receiver_index, counter, ciphertext).expect("open"),
    );
}

fn seal_open(c: &mut Criterion) {
    for size in [1100, 100] {
        let (mut client, mut server) = sessions();
        let payload = vec![0x5a; size];
        let mut group = c.benchmark_group(format!("data datagram {size} B"));
        group.throughput(Throughput::Bytes(payload.len() as u64));
        // Within one second: both keys stay expanded (a busy session).
        group.bench_function("seal + open, busy session", |b| {
            b.iter(|| seal_open_once(&mut client, &mut server, 0, &payload))
        });
        // A new second each time: each key is expanded on the stack for
        // its one packet (a session used now and then).
        let (mut client, mut server) = sessions();
        let mut second = 10;
        group.bench_function("seal + open, keys expanded per packet", |b| {
            b.iter(|| {
                second += 10;
                seal_open_once(&mut client, &mut server, second, &payload)
            })
        });
        group.finish();
    }
}

fn public_key_decode(c: &mut Criterion) {
    let key = StaticKey::generate(&mut StdRng::seed_from_u64(3)).public();
    let bytes = key.to_bytes();
    c.bench_function("p384 point decompression (a key never seen)", |b| {
        b.iter(|| black_box(p384::PublicKey::from_sec1_bytes(black_box(&bytes)).expect("decode")))
    });
    c.bench_function("public key decode, seen lately (cached)", |b| {
        b.iter(|| black_box(PublicKey::from_bytes(black_box(&bytes)).expect("decode")))
    });
}

fn envelope(c: &mut Criterion) {
    let body = vec![0x61; 100];
    c.bench_function("envelope encode + decode, 100 B body", |b| {
        b.iter(|| {
            let bytes = Envelope::encode_parts(Message::TAG, 12345, Kind::Push, &body);
            black_box(Envelope::decode(&bytes).expect("decode"))
        })
    });
}

/// A private group's line of 100 B: what its sender pays once (encrypt and
/// sign), what each member pays (check the signature, decrypt), and what a
/// sender pays per member when it hands out a new key (seal it to them).
fn group_line(c: &mut Criterion) {
    use udpchat_core::crypto::sealed::{self, Prekeys};
    use udpchat_core::crypto::sender_keys::{envelope_associated, OwnChain, ReceivedChain};
    let mut rng = StdRng::seed_from_u64(3);
    let text = "x".repeat(100);
    let mut chain = OwnChain::generate(&mut rng);
    c.bench_function("group line: seal and sign (the sender, once)", |b| {
        b.iter(|| black_box(chain.seal("team", "alice", black_box(&text), vec![], vec![])))
    });
    let mut chain = OwnChain::generate(&mut rng);
    let share = chain.share();
    let lines: Vec<_> = (0..64)
        .map(|_| chain.seal("team", "alice", &text, vec![], vec![]))
        .collect();
    c.bench_function("group line: check and open (each member)", |b| {
        b.iter_batched(
            || ReceivedChain::from_share(&share).expect("share"),
            |mut member| black_box(member.open("team", "alice", &lines[0]).expect("opens")),
            BatchSize::SmallInput,
        )
    });
    let alice = StaticKey::generate(&mut rng);
    let bob = StaticKey::generate(&mut rng);
    let prekeys = Prekeys::generate(&mut rng, &bob, 1);
    let signed = prekeys.signed_prekey();
    let share = udpchat_core::cbor::encode(&chain.share());
    let ad = envelope_associated("team", "alice", "bob");
    c.bench_function(
        "group key: seal to one member (a new key, per member)",
        |b| {
            b.iter(|| {
                black_box(
                    sealed::seal(&mut rng, &alice, &bob.public(), &signed, None, &share, &ad)
                        .expect("seals"),
                )
            })
        },
    );
}

criterion_group!(
    benches,
    group_line,
    ecdh,
    nk_handshake,
    key_request,
    seal_open,
    public_key_decode,
    envelope
);
criterion_main!(benches);
