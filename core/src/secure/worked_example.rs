//! The worked example of docs/PROTOCOL.md ("Appendix: worked example"):
//! one NK handshake (HELLO, WELCOME), a DATA packet carrying a transport
//! DATA packet carrying a `list` request envelope, and the server's ACK
//! (alone, after the 25 ms it may wait for a packet to ride on).
//!
//! The datagrams are made by the real endpoints, from fixed RNG seeds, a
//! fixed server key and a fixed clock. Then every byte is built again from
//! the primitives alone (P-384 ECDH, SHA-384, HKDF-SHA384, AES-256-GCM),
//! following the document step by step, as a new implementation would.
//! Every value, inputs, intermediates and datagrams, must equal its known
//! answer in [`KNOWN`], and must appear in the document exactly as
//! [`block`] renders it, so the document cannot drift from the code.
//!
//! To regenerate after a deliberate protocol change:
//! `UDPCHAT_PRINT_WORKED_EXAMPLE=1 cargo test -p udpchat-core worked_example -- --nocapture`
//! prints the blocks (paste them into the appendix) and the table.

use std::net::SocketAddr;
use std::time::Instant;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use hkdf::Hkdf;
use p384::elliptic_curve::sec1::ToEncodedPoint;
use rand::rngs::StdRng;
use rand::{RngCore, SeedableRng};
use sha2::{Digest, Sha384};

use super::hello::{rekey_payload, rekey_token};
use super::{SecureConfig, SecureEndpoint, SecureEvent, State};
use crate::cbor;
use crate::crypto::keys::StaticKey;
use crate::envelope::{Envelope, Kind};
use crate::wire::Pattern;

/// The client's and the server's RNG seeds (rand 0.8's `StdRng`).
const CLIENT_SEED: u64 = 7;
const SERVER_SEED: u64 = 8;
/// Both clocks: 2023-11-14 22:13:20 UTC, in ms since the UNIX epoch.
const NOW_MS: u64 = 1_700_000_000_000;

/// The server's static secret: the bytes 0x01, 0x02, ..., 0x30.
fn server_secret() -> [u8; 48] {
    std::array::from_fn(|i| i as u8 + 1)
}

/// The `list` request body: `{"prefix": ""}`.
#[derive(serde::Serialize)]
struct ListRequest {
    prefix: String,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// How a value appears in the document: its label on one line, then its
/// hex, 32 bytes a line, indented four spaces.
fn block(label: &str, bytes: &[u8]) -> String {
    let mut out = format!("{label}\n");
    for chunk in bytes.chunks(32) {
        out.push_str("    ");
        out.push_str(&hex(chunk));
        out.push('\n');
    }
    out
}

// ---- the reference construction: primitives only, as the document says ----

fn mix_hash(h: &[u8], data: &[u8]) -> Vec<u8> {
    let mut hasher = Sha384::new();
    hasher.update(h);
    hasher.update(data);
    hasher.finalize().to_vec()
}

/// Noise's HKDF(ck, ikm): RFC 5869 HKDF-SHA384, salt = ck, info empty,
/// 96 bytes, split in two 48-byte outputs.
fn hkdf2(ck: &[u8], ikm: &[u8]) -> (Vec<u8>, Vec<u8>) {
    let mut okm = [0u8; 96];
    Hkdf::<Sha384>::new(Some(ck), ikm)
        .expand(&[], &mut okm)
        .unwrap();
    (okm[..48].to_vec(), okm[48..].to_vec())
}

fn public(secret: &[u8]) -> Vec<u8> {
    p384::SecretKey::from_slice(secret)
        .unwrap()
        .public_key()
        .to_encoded_point(true)
        .as_bytes()
        .to_vec()
}

/// P-384 ECDH: the shared point's x-coordinate.
fn dh(secret: &[u8], public: &[u8]) -> Vec<u8> {
    let secret = p384::SecretKey::from_slice(secret).unwrap();
    let public = p384::PublicKey::from_sec1_bytes(public).unwrap();
    p384::ecdh::diffie_hellman(secret.to_nonzero_scalar(), public.as_affine())
        .raw_secret_bytes()
        .to_vec()
}

/// AES-256-GCM, nonce = 4 zero bytes || counter (u64 BE).
fn seal(key: &[u8], counter: u64, ad: &[u8], plaintext: &[u8]) -> Vec<u8> {
    let mut nonce = [0u8; 12];
    nonce[4..].copy_from_slice(&counter.to_be_bytes());
    Aes256Gcm::new_from_slice(key)
        .unwrap()
        .encrypt(
            &Nonce::from(nonce),
            Payload {
                msg: plaintext,
                aad: ad,
            },
        )
        .unwrap()
}

fn open(key: &[u8], counter: u64, ad: &[u8], ciphertext: &[u8]) -> Vec<u8> {
    let mut nonce = [0u8; 12];
    nonce[4..].copy_from_slice(&counter.to_be_bytes());
    Aes256Gcm::new_from_slice(key)
        .unwrap()
        .decrypt(
            &Nonce::from(nonce),
            Payload {
                msg: ciphertext,
                aad: ad,
            },
        )
        .unwrap()
}

/// What the real endpoints sent, and what the test reads from them.
struct Run {
    hello: Vec<u8>,
    welcome: Vec<u8>,
    data1: Vec<u8>,
    data2: Vec<u8>,
    envelope: Vec<u8>,
    handshake_hash: Vec<u8>,
    rekey_token: Vec<u8>,
    rekey_payload: Vec<u8>,
}

/// The real client and server: connect, send one `list` request, ACK it.
fn run() -> Run {
    let now = Instant::now();
    let client_addr: SocketAddr = "192.0.2.1:50000".parse().unwrap();
    let server_addr: SocketAddr = "192.0.2.2:4590".parse().unwrap();
    let server_key = StaticKey::from_secret_bytes(&server_secret()).unwrap();
    let mut server = SecureEndpoint::server(
        SecureConfig::default(),
        server_key.clone(),
        Box::new(StdRng::seed_from_u64(SERVER_SEED)),
        now,
    );
    let mut client = SecureEndpoint::client(
        SecureConfig::default(),
        Box::new(StdRng::seed_from_u64(CLIENT_SEED)),
        now,
    );

    let peer = client
        .connect(now, NOW_MS, server_addr, server_key.public(), Pattern::Nk)
        .unwrap();
    let (to, hello) = client.poll_transmit(now, NOW_MS).unwrap();
    assert_eq!(to, server_addr);
    assert!(client.poll_transmit(now, NOW_MS).is_none());

    server
        .handle_datagram(now, NOW_MS, client_addr, &hello)
        .unwrap();
    assert!(server.handle_handshake(now, NOW_MS));
    let (to, welcome) = server.poll_transmit(now, NOW_MS).unwrap();
    assert_eq!(to, client_addr);
    assert!(server.poll_transmit(now, NOW_MS).is_none());

    client
        .handle_datagram(now, NOW_MS, server_addr, &welcome)
        .unwrap();
    assert!(client.poll_transmit(now, NOW_MS).is_none());

    let envelope = Envelope::encode_parts(
        "list",
        1,
        Kind::Request,
        &cbor::encode(&ListRequest {
            prefix: String::new(),
        }),
    );
    let id = client.send(now, peer, envelope.clone()).unwrap();
    let (_, data1) = client.poll_transmit(now, NOW_MS).unwrap();
    assert!(client.poll_transmit(now, NOW_MS).is_none());

    server
        .handle_datagram(now, NOW_MS, client_addr, &data1)
        .unwrap();
    let at_server = match server.poll_event() {
        Some(SecureEvent::Received { from, message, .. }) => {
            assert_eq!(message, envelope);
            from
        }
        other => panic!("the server did not receive the envelope: {other:?}"),
    };
    // No reply goes back in this example: the ACK waits its 25 ms for one
    // to ride on, then goes alone.
    assert!(server.poll_transmit(now, NOW_MS).is_none());
    let now = now + std::time::Duration::from_millis(25);
    server.handle_timeout(now, NOW_MS + 25);
    let (_, data2) = server.poll_transmit(now, NOW_MS + 25).unwrap();
    assert!(server.poll_transmit(now, NOW_MS + 25).is_none());

    client
        .handle_datagram(now, NOW_MS + 25, server_addr, &data2)
        .unwrap();
    assert_eq!(
        client.poll_event(),
        Some(SecureEvent::Delivered { to: peer, id })
    );

    let State::Established {
        session,
        remote_index,
        ..
    } = &client.conns[&peer.0].state
    else {
        panic!("the client's session is not established");
    };
    assert_eq!(*remote_index, at_server.0);
    Run {
        hello,
        welcome,
        data1,
        data2,
        envelope,
        handshake_hash: session.handshake_hash().to_vec(),
        rekey_token: rekey_token(session).to_vec(),
        rekey_payload: rekey_payload(*remote_index, session),
    }
}

/// Every value of the example, built from the primitives and checked
/// against what the endpoints sent, in the document's order.
fn values() -> Vec<(&'static str, Vec<u8>)> {
    let run = run();
    let mut values: Vec<(&'static str, Vec<u8>)> = Vec::new();

    // Inputs. The ephemeral secrets and indices come from the RNGs, drawn
    // in the order the endpoints draw them: the client's transport
    // incarnation (u64), its cookie secrets (64 bytes), its index (u32),
    // its ephemeral; the server's transport incarnation, cookie secrets,
    // its ephemeral, its index.
    let mut rng = StdRng::seed_from_u64(CLIENT_SEED);
    rng.next_u64();
    rng.fill_bytes(&mut [0u8; 64]);
    let client_index = rng.next_u32();
    let client_e = StaticKey::generate(&mut rng).to_secret_bytes().to_vec();
    let mut rng = StdRng::seed_from_u64(SERVER_SEED);
    rng.next_u64();
    rng.fill_bytes(&mut [0u8; 64]);
    let server_e = StaticKey::generate(&mut rng).to_secret_bytes().to_vec();
    let server_index = rng.next_u32();
    let s = server_secret().to_vec();

    let s_pub = public(&s);
    let client_e_pub = public(&client_e);
    let server_e_pub = public(&server_e);
    values.push(("s: the server's static secret (input)", s.clone()));
    values.push((
        "s.pub: the server's static public key, SEC1 compressed",
        s_pub.clone(),
    ));
    values.push(("e: the client's ephemeral secret (input)", client_e.clone()));
    values.push(("e.pub", client_e_pub.clone()));
    values.push((
        "re: the server's ephemeral secret (input)",
        server_e.clone(),
    ));
    values.push(("re.pub", server_e_pub.clone()));
    values.push((
        "client index (input, the HELLO's sender_index)",
        client_index.to_be_bytes().to_vec(),
    ));
    values.push((
        "server index (input, the WELCOME's sender_index)",
        server_index.to_be_bytes().to_vec(),
    ));
    values.push((
        "timestamp_ms (input, 1700000000000)",
        NOW_MS.to_be_bytes().to_vec(),
    ));

    // Message 1.
    let mut h = b"Noise_NK_P384_AESGCM_SHA384".to_vec();
    h.resize(48, 0);
    let ck = h.clone();
    values.push((
        "h0 = ck0: the protocol name, zero-padded to 48 bytes",
        h.clone(),
    ));
    let h = mix_hash(&h, b"udpchat v1");
    values.push(("h1 = SHA384(h0 || \"udpchat v1\")", h.clone()));
    let h = mix_hash(&h, &s_pub);
    values.push(("h2 = SHA384(h1 || s.pub)", h.clone()));
    let h = mix_hash(&h, &client_e_pub);
    values.push(("h3 = SHA384(h2 || e.pub)", h.clone()));
    let es = dh(&client_e, &s_pub);
    assert_eq!(es, dh(&s, &client_e_pub), "DH is symmetric");
    values.push(("es = DH(e, s.pub): x-coordinate", es.clone()));
    let (ck, temp) = hkdf2(&ck, &es);
    values.push(("ck1 = HKDF(ck0, es) first 48 bytes", ck.clone()));
    values.push(("HKDF(ck0, es) second 48 bytes", temp.clone()));
    let k1 = temp[..32].to_vec();
    values.push(("k1 = its first 32 bytes", k1.clone()));
    let mut body = NOW_MS.to_be_bytes().to_vec();
    body.extend_from_slice(&1u16.to_be_bytes());
    body.push(0); // the HELLO payload: 0 = a new session
    body.resize(256 - 49 - 16, 0);
    values.push((
        "hello body: timestamp_ms, payload_len 1, payload 00, zero padding to 191 bytes",
        body.clone(),
    ));
    let c1 = seal(&k1, 0, &h, &body);
    values.push((
        "c1 = AES-256-GCM(k1, nonce 0, ad h3, hello body)",
        c1.clone(),
    ));
    let h = mix_hash(&h, &c1);
    values.push(("h4 = SHA384(h3 || c1)", h.clone()));
    let mut hello = vec![1, 1, 0];
    hello.extend_from_slice(&client_index.to_be_bytes());
    hello.extend_from_slice(&client_e_pub);
    hello.extend_from_slice(&c1);
    let mut mac1_key = Sha384::new();
    mac1_key.update(b"udpchat mac1 v1");
    mac1_key.update(&s_pub);
    let mac1_key = mac1_key.finalize().to_vec();
    values.push((
        "mac1 key = SHA384(\"udpchat mac1 v1\" || s.pub)",
        mac1_key.clone(),
    ));
    let mut mac1 = <hmac::Hmac<Sha384> as hmac::Mac>::new_from_slice(&mac1_key).unwrap();
    hmac::Mac::update(&mut mac1, &hello);
    let mac1 = hmac::Mac::finalize(mac1).into_bytes()[..16].to_vec();
    values.push((
        "mac1 = HMAC-SHA384(mac1 key, the HELLO so far)[..16]",
        mac1.clone(),
    ));
    hello.extend_from_slice(&mac1);
    hello.extend_from_slice(&[0; 16]); // mac2: no cookie asked for
    assert_eq!(hello, run.hello, "the reference HELLO differs");
    values.push(("HELLO datagram (295 bytes)", hello));

    // Message 2.
    let h = mix_hash(&h, &server_e_pub);
    values.push(("h5 = SHA384(h4 || re.pub)", h.clone()));
    let ee = dh(&server_e, &client_e_pub);
    assert_eq!(ee, dh(&client_e, &server_e_pub), "DH is symmetric");
    values.push(("ee = DH(re, e.pub): x-coordinate", ee.clone()));
    let (ck, temp) = hkdf2(&ck, &ee);
    values.push(("ck2 = HKDF(ck1, ee) first 48 bytes", ck.clone()));
    values.push(("HKDF(ck1, ee) second 48 bytes", temp.clone()));
    let k2 = temp[..32].to_vec();
    values.push(("k2 = its first 32 bytes", k2.clone()));
    let c2 = seal(&k2, 0, &h, &[]);
    values.push((
        "c2 = AES-256-GCM(k2, nonce 0, ad h5, empty payload): the tag alone",
        c2.clone(),
    ));
    let h = mix_hash(&h, &c2);
    assert_eq!(h, run.handshake_hash);
    values.push(("h6 = SHA384(h5 || c2): the handshake hash", h.clone()));
    let mut welcome = vec![1, 2];
    welcome.extend_from_slice(&server_index.to_be_bytes());
    welcome.extend_from_slice(&client_index.to_be_bytes());
    welcome.extend_from_slice(&server_e_pub);
    welcome.extend_from_slice(&c2);
    assert_eq!(welcome, run.welcome, "the reference WELCOME differs");
    values.push(("WELCOME datagram (75 bytes)", welcome));

    // Split.
    let (first, second) = hkdf2(&ck, &[]);
    values.push(("HKDF(ck2, empty) first 48 bytes", first.clone()));
    values.push(("HKDF(ck2, empty) second 48 bytes", second.clone()));
    let to_server = first[..32].to_vec();
    let to_client = second[..32].to_vec();
    values.push((
        "client-to-server key = first 32 bytes of the first output",
        to_server.clone(),
    ));
    values.push((
        "server-to-client key = first 32 bytes of the second output",
        to_client.clone(),
    ));

    // The re-key token of this session, and the HELLO payload that uses it.
    let mut token = [0u8; 32];
    Hkdf::<Sha384>::new(None, &h)
        .expand(b"udpchat rekey v1", &mut token)
        .unwrap();
    assert_eq!(token.to_vec(), run.rekey_token);
    values.push((
        "re-key token = HKDF-SHA384(salt 48 zero bytes, ikm h6, info \"udpchat rekey v1\", 32 bytes)",
        token.to_vec(),
    ));
    let mut payload = vec![1];
    payload.extend_from_slice(&server_index.to_be_bytes());
    payload.extend_from_slice(&token);
    assert_eq!(payload, run.rekey_payload);
    values.push(("re-key HELLO payload: 01, server index, token", payload));

    // DATA 1: client to server, a `list` request.
    let mut envelope = vec![0xa4];
    for (key, value) in [
        (&b"c"[..], &b"\x64list"[..]),
        (b"i", b"\x01"),
        (b"k", b"\x00"),
        (b"b", b"\x49\xa1\x66prefix\x60"),
    ] {
        envelope.push(0x61);
        envelope.extend_from_slice(key);
        envelope.extend_from_slice(value);
    }
    assert_eq!(envelope, run.envelope, "the reference envelope differs");
    values.push((
        "envelope: {\"c\": \"list\", \"i\": 1, \"k\": 0, \"b\": h'a16670726566697860'}",
        envelope.clone(),
    ));
    let opened = open(&to_server, 0, &run.data1[..14], &run.data1[14..]);
    // The transport's session id is random: read it from the packet.
    let client_session = opened[2..10].to_vec();
    values.push((
        "client's transport incarnation (random, per session)",
        client_session.clone(),
    ));
    let mut transport = vec![2, 1];
    transport.extend_from_slice(&client_session);
    transport.extend_from_slice(&0u64.to_be_bytes()); // pn
    transport.extend_from_slice(&0u32.to_be_bytes()); // msg_seq
    transport.extend_from_slice(&0u32.to_be_bytes()); // base_seq
    transport.extend_from_slice(&0u16.to_be_bytes()); // frag_index
    transport.extend_from_slice(&1u16.to_be_bytes()); // frag_count
    transport.extend_from_slice(&envelope);
    assert_eq!(opened, transport);
    values.push((
        "transport DATA: pn 0, msg_seq 0, base_seq 0, fragment 0 of 1, the envelope",
        transport.clone(),
    ));
    let mut header = vec![1, 3];
    header.extend_from_slice(&server_index.to_be_bytes());
    header.extend_from_slice(&0u64.to_be_bytes());
    let mut data1 = header.clone();
    data1.extend(seal(&to_server, 0, &header, &transport));
    assert_eq!(data1, run.data1, "the reference DATA packet differs");
    values.push(("DATA datagram 1, client to server", data1));

    // DATA 2: server to client, the ACK of packet 0, sent alone once the
    // 25 ms it may wait for a reply to ride on have passed.
    let opened = open(&to_client, 0, &run.data2[..14], &run.data2[14..]);
    let server_session = opened[2..10].to_vec();
    values.push((
        "server's transport incarnation (random, per session)",
        server_session.clone(),
    ));
    let mut ack = vec![2, 2];
    ack.extend_from_slice(&server_session);
    ack.extend_from_slice(&client_session);
    ack.extend_from_slice(&25_000u32.to_be_bytes()); // ack_delay, microseconds
    ack.push(1);
    ack.extend_from_slice(&0u64.to_be_bytes());
    ack.extend_from_slice(&0u64.to_be_bytes());
    assert_eq!(opened, ack);
    values.push((
        "transport ACK: acked_incarnation = the client's, ack_delay 25000 us, one range 0..=0",
        ack.clone(),
    ));
    let mut header = vec![1, 3];
    header.extend_from_slice(&client_index.to_be_bytes());
    header.extend_from_slice(&0u64.to_be_bytes());
    let mut data2 = header.clone();
    data2.extend(seal(&to_client, 0, &header, &ack));
    assert_eq!(data2, run.data2, "the reference ACK packet differs");
    values.push(("DATA datagram 2, server to client", data2));

    values
}

/// The known answers: a change here is a protocol change (or a change of
/// how the endpoints draw from their RNG). Update them only on purpose,
/// together with the appendix of docs/PROTOCOL.md.
const KNOWN: &[(&str, &str)] = &[
    ("s: the server's static secret (input)", "0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f202122232425262728292a2b2c2d2e2f30"),
    ("s.pub: the server's static public key, SEC1 compressed", "03c76f2283dda95cd49b0ed9e733d2904474e37216f124e13d2c9ab4cf01021c49ad9cabb3d0b97499aef2f0ab313fa028"),
    ("e: the client's ephemeral secret (input)", "2f2534b9d2367f800c648da30520c364b5c74705d87cde17876ac515cf263e51776fb75f29f82848a82efda0e91e87c9"),
    ("e.pub", "0309a37e12bbe2995117391d68c8ab02b44bbdebe1a0e683327984c1f9f57a164e8512444457e187551a3a8e08c738c0a0"),
    ("re: the server's ephemeral secret (input)", "2ed4fabfc585c4e05ed8239370914513a6e64a77e54dd6771e74426656541813bb2a453cc3e334503e19ce58e056be1e"),
    ("re.pub", "0338216cad765b7727b4cc7c633597a07538345e836c9cc49e1026b673739c29153743826ff2ea3dd1f06823590d81b91b"),
    ("client index (input, the HELLO's sender_index)", "607e716b"),
    ("server index (input, the WELCOME's sender_index)", "daf94026"),
    ("timestamp_ms (input, 1700000000000)", "0000018bcfe56800"),
    ("h0 = ck0: the protocol name, zero-padded to 48 bytes", "4e6f6973655f4e4b5f503338345f41455347434d5f534841333834000000000000000000000000000000000000000000"),
    ("h1 = SHA384(h0 || \"udpchat v1\")", "9acc1abd4630801eef6e28a17b363ecc096aec70da3b6c9f0c0cdcee8bbe88d85d6553c53f8f63a15322c70b83be341f"),
    ("h2 = SHA384(h1 || s.pub)", "c3891e62e996e002ef32b8a252f8c0971ef982a6b2e23e27c65e3c6b618f1d9385f48ff846bd3d4263aa837170deae9e"),
    ("h3 = SHA384(h2 || e.pub)", "0743a0d824134a71102b0e96652ad514c11876299637507999725172b4337618ff4360e30ea78eb219194b1f666cf383"),
    ("es = DH(e, s.pub): x-coordinate", "44b36ee08eef8899bed68fe1a87fc8841bf8c3dae6f612d77d0475c34075e9df771ec23d5730672987dc856251ccaf9c"),
    ("ck1 = HKDF(ck0, es) first 48 bytes", "0babb557ec0a2fe1d38e489bb858e526bc18fd79dcc8ea0ac053243a9dabb5cd3afad05b67b691c16dc196a7621e7c92"),
    ("HKDF(ck0, es) second 48 bytes", "2f5862c51f1c17148ed91dc4328d8d12b7ae5d22cf9ce6f92f778c10a028930e36f0deadb2747982a5d13a69f93cb4fc"),
    ("k1 = its first 32 bytes", "2f5862c51f1c17148ed91dc4328d8d12b7ae5d22cf9ce6f92f778c10a028930e"),
    ("hello body: timestamp_ms, payload_len 1, payload 00, zero padding to 191 bytes", "0000018bcfe56800000100000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"),
    ("c1 = AES-256-GCM(k1, nonce 0, ad h3, hello body)", "d5bd2a312602debe40ca846186fda5c231505f2e0626daf820358f58ff125cc3ff32ef55acf617ee69119b77409ac031040ead23b3070294a94a0815f644f37185e006f9f5ff34ba3c44e872255eb967bd9b4984982359a935b8b5b0f18f5c22adde9e2132f41674d3324cf1c4465c8e2ade183ebd7bb810999a79a5a64d4a49ece5fd9399bdfaa005333a8d55aaabac942195d3fdc5fce6559c4d3e4995fe2ac118a7c02efee3501c98c148eec5b1cde8723312f2203b9a8341c8e13d712e8999c051bfaa234239a754fbf40978a5"),
    ("h4 = SHA384(h3 || c1)", "3f9c14b46b07c487811c094583b4bda6f42458121ab432c739b4f8291df8cefd19c5e84398a7aad3823ebf87d068717a"),
    ("mac1 key = SHA384(\"udpchat mac1 v1\" || s.pub)", "0232b1adf99517a1db214fd4c3b7574031db224013311fbb324b7bf51f421ad87822a0bee99e22e17b8c73c88504a471"),
    ("mac1 = HMAC-SHA384(mac1 key, the HELLO so far)[..16]", "e191ea652ce1d0675058fa8d614e1e2e"),
    ("HELLO datagram (295 bytes)", "010100607e716b0309a37e12bbe2995117391d68c8ab02b44bbdebe1a0e683327984c1f9f57a164e8512444457e187551a3a8e08c738c0a0d5bd2a312602debe40ca846186fda5c231505f2e0626daf820358f58ff125cc3ff32ef55acf617ee69119b77409ac031040ead23b3070294a94a0815f644f37185e006f9f5ff34ba3c44e872255eb967bd9b4984982359a935b8b5b0f18f5c22adde9e2132f41674d3324cf1c4465c8e2ade183ebd7bb810999a79a5a64d4a49ece5fd9399bdfaa005333a8d55aaabac942195d3fdc5fce6559c4d3e4995fe2ac118a7c02efee3501c98c148eec5b1cde8723312f2203b9a8341c8e13d712e8999c051bfaa234239a754fbf40978a5e191ea652ce1d0675058fa8d614e1e2e00000000000000000000000000000000"),
    ("h5 = SHA384(h4 || re.pub)", "30f24f4a1bec43d161b50b9a7ad62b724ac0da8e8b2e9245a2a14c723a79e02500ff25a97ad43ee56f4efd4359c5fdd4"),
    ("ee = DH(re, e.pub): x-coordinate", "be076477ee3539e508221f7424a2c35d4f47d0ebfc5c086a863905512a529930de6737279ab00318b540c27b83ea4797"),
    ("ck2 = HKDF(ck1, ee) first 48 bytes", "ab3a08182d879c027aad9f03050f9c769e240828e96a20afbdd9aff7476debad523a6ef6b3b511b211b86cd5ddebc181"),
    ("HKDF(ck1, ee) second 48 bytes", "b88fcd791612a3b16e001b6a74fcc080c8e0b3776dd890b9ddb9275380b05bce38cfeb0e5a0c0ff08bd6e0f0ed7d8784"),
    ("k2 = its first 32 bytes", "b88fcd791612a3b16e001b6a74fcc080c8e0b3776dd890b9ddb9275380b05bce"),
    ("c2 = AES-256-GCM(k2, nonce 0, ad h5, empty payload): the tag alone", "a9f3d7fc44c0529263ec3563f7c8e29d"),
    ("h6 = SHA384(h5 || c2): the handshake hash", "15931cd8c42026d0812ffa3097b49175322b90dd495073271d837e0e2df31e4c1a52efad2097d9fb19edfa5009ac510c"),
    ("WELCOME datagram (75 bytes)", "0102daf94026607e716b0338216cad765b7727b4cc7c633597a07538345e836c9cc49e1026b673739c29153743826ff2ea3dd1f06823590d81b91ba9f3d7fc44c0529263ec3563f7c8e29d"),
    ("HKDF(ck2, empty) first 48 bytes", "5bcf2f65946c3672c545b38881e7cf01d976313e48281b1831f647735c23acd6f4a8fde9d609aa6f7886bf3263b35031"),
    ("HKDF(ck2, empty) second 48 bytes", "73deb539ba2105b0a6a22625e6d2054c345fc28623aa2a638a8b11cb4123ad052e554af89027224863c6959b8e0c742a"),
    ("client-to-server key = first 32 bytes of the first output", "5bcf2f65946c3672c545b38881e7cf01d976313e48281b1831f647735c23acd6"),
    ("server-to-client key = first 32 bytes of the second output", "73deb539ba2105b0a6a22625e6d2054c345fc28623aa2a638a8b11cb4123ad05"),
    ("re-key token = HKDF-SHA384(salt 48 zero bytes, ikm h6, info \"udpchat rekey v1\", 32 bytes)", "761080a881e81ccb654a1c54cb0fe442a5856474e847974435a94ee23623a4d4"),
    ("re-key HELLO payload: 01, server index, token", "01daf94026761080a881e81ccb654a1c54cb0fe442a5856474e847974435a94ee23623a4d4"),
    ("envelope: {\"c\": \"list\", \"i\": 1, \"k\": 0, \"b\": h'a16670726566697860'}", "a46163646c697374616901616b00616249a16670726566697860"),
    ("client's transport incarnation (random, per session)", "51604bbc079c7e8c"),
    ("transport DATA: pn 0, msg_seq 0, base_seq 0, fragment 0 of 1, the envelope", "020151604bbc079c7e8c0000000000000000000000000000000000000001a46163646c697374616901616b00616249a16670726566697860"),
    ("DATA datagram 1, client to server", "0103daf94026000000000000000016af2af8a411f76347716e02b0b58fac44ab5ee8276b42bfa6e6e042452a04882dae2afd9dd1b81e266ad66cd671dad7945c40ecb52347b5c45d20829bf70327da3ec06ce4775eaa"),
    ("server's transport incarnation (random, per session)", "b8f4ce8583affe6b"),
    ("transport ACK: acked_incarnation = the client's, ack_delay 25000 us, one range 0..=0", "0202b8f4ce8583affe6b51604bbc079c7e8c000061a80100000000000000000000000000000000"),
    ("DATA datagram 2, server to client", "0103607e716b0000000000000000963a5e88ac5c89ee3e5741a303714638a47cf4690418ac8db46f94885c835ae6d28490848e0d099c98f6ef056baf164f32031570c52fb3"),
];

#[test]
fn the_worked_example_matches_its_known_answers_and_the_document() {
    let values = values();
    if std::env::var_os("UDPCHAT_PRINT_WORKED_EXAMPLE").is_some() {
        for (label, bytes) in &values {
            print!("{}", block(label, bytes));
        }
        for (label, bytes) in &values {
            println!("    ({label:?}, \"{}\"),", hex(bytes));
        }
    }
    assert_eq!(
        values.iter().map(|(l, _)| *l).collect::<Vec<_>>(),
        KNOWN.iter().map(|(l, _)| *l).collect::<Vec<_>>(),
        "the known answers name other values"
    );
    for ((label, bytes), (_, known)) in values.iter().zip(KNOWN) {
        assert_eq!(hex(bytes), *known, "{label}");
    }
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/PROTOCOL.md");
    let doc = std::fs::read_to_string(path).unwrap();
    for (label, bytes) in &values {
        let block = block(label, bytes);
        assert!(
            doc.contains(&block),
            "docs/PROTOCOL.md lacks this block of its worked example:\n{block}"
        );
    }
}
