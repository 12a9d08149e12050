//! The worked example of docs/PROTOCOL.md ("Appendix: worked example"):
//! one NK handshake (HELLO, WELCOME), a DATA packet carrying a transport
//! DATA packet carrying a `list` request envelope, and the server's ACK.
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
        Some(SecureEvent::Received { from, message }) => {
            assert_eq!(message, envelope);
            from
        }
        other => panic!("the server did not receive the envelope: {other:?}"),
    };
    let (_, data2) = server.poll_transmit(now, NOW_MS).unwrap();
    assert!(server.poll_transmit(now, NOW_MS).is_none());

    client
        .handle_datagram(now, NOW_MS, server_addr, &data2)
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
    // incarnation (u64), its index (u32), its ephemeral; the server's
    // transport incarnation, its ephemeral, its index.
    let mut rng = StdRng::seed_from_u64(CLIENT_SEED);
    rng.next_u64();
    let client_index = rng.next_u32();
    let client_e = StaticKey::generate(&mut rng).to_secret_bytes().to_vec();
    let mut rng = StdRng::seed_from_u64(SERVER_SEED);
    rng.next_u64();
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
    assert_eq!(hello, run.hello, "the reference HELLO differs");
    values.push(("HELLO datagram (263 bytes)", hello));

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
    let mut transport = vec![1, 1];
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

    // DATA 2: server to client, the ACK of packet 0.
    let opened = open(&to_client, 0, &run.data2[..14], &run.data2[14..]);
    let server_session = opened[2..10].to_vec();
    values.push((
        "server's transport incarnation (random, per session)",
        server_session.clone(),
    ));
    let mut ack = vec![1, 2];
    ack.extend_from_slice(&server_session);
    ack.extend_from_slice(&client_session);
    ack.push(1);
    ack.extend_from_slice(&0u64.to_be_bytes());
    ack.extend_from_slice(&0u64.to_be_bytes());
    assert_eq!(opened, ack);
    values.push((
        "transport ACK: acked_incarnation = the client's, one range 0..=0",
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
    ("e: the client's ephemeral secret (input)", "e8349d4ecdbc8b0f4632842499a0dfa60568e28ab621629ead61c245e06bb0bc4f577df3d2f49798ab0deb2c8ade5abe"),
    ("e.pub", "02580c988f52f95dd6828001e8463e2788af5c4d0b49e430269172361736a0f1e87ed737d4f5e288bc70fdbdb2b050cc39"),
    ("re: the server's ephemeral secret (input)", "5dacb4f1d32d06c4fdddc9981a3619fbc0a5cd9eb30f33749e5da3bc763db19af9b4585c805f85329d773647bb05a5a7"),
    ("re.pub", "0371b09fa0295c8f846370938bed245b86fb1277d295d27e09931e5c2f5955dfb7f9ab160fcfd3e0213d917aa470c7b6d1"),
    ("client index (input, the HELLO's sender_index)", "247e5f86"),
    ("server index (input, the WELCOME's sender_index)", "d680fc0f"),
    ("timestamp_ms (input, 1700000000000)", "0000018bcfe56800"),
    ("h0 = ck0: the protocol name, zero-padded to 48 bytes", "4e6f6973655f4e4b5f503338345f41455347434d5f534841333834000000000000000000000000000000000000000000"),
    ("h1 = SHA384(h0 || \"udpchat v1\")", "9acc1abd4630801eef6e28a17b363ecc096aec70da3b6c9f0c0cdcee8bbe88d85d6553c53f8f63a15322c70b83be341f"),
    ("h2 = SHA384(h1 || s.pub)", "c3891e62e996e002ef32b8a252f8c0971ef982a6b2e23e27c65e3c6b618f1d9385f48ff846bd3d4263aa837170deae9e"),
    ("h3 = SHA384(h2 || e.pub)", "68ad0d372ae2c5163113fe28f5374fdfe2e4f34c74900edabf138b81b88611d7014f2987ab5d4a029cf6f561b8c6e797"),
    ("es = DH(e, s.pub): x-coordinate", "82882a9d1bc4a018b658889aa82852cf126fb59a564bfd035e52905a6c291f6c3ec0e805d06c82148069ea3cb38e65de"),
    ("ck1 = HKDF(ck0, es) first 48 bytes", "b744469134f6901510d6f77608e9350e204ffcc40dd04bec8f826306bc403b5b07847fe9b48bf6ea59ec7f6c2c4208dd"),
    ("HKDF(ck0, es) second 48 bytes", "23a8c4021d7a0db2238826ce1fb7bce232171257ded09092cc743c5ecebbb61b2563676d5074b0df962b79820ca5139c"),
    ("k1 = its first 32 bytes", "23a8c4021d7a0db2238826ce1fb7bce232171257ded09092cc743c5ecebbb61b"),
    ("hello body: timestamp_ms, payload_len 1, payload 00, zero padding to 191 bytes", "0000018bcfe56800000100000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000"),
    ("c1 = AES-256-GCM(k1, nonce 0, ad h3, hello body)", "9800f9a7f5bfc4bd19060bf0d7eca38ab61479453dbe13b7a476034a947376d8271cfe25a9c42f3b40acf4db264851af6feaaa85ffa3dba0286159f659d42b737a0f233fca5ab2d67b270af4c03fc638b16b22d22031c5216bde6ca1f9cd56e07d6d8dc6dde561145b13f762ac16f42498bf741085d15dbc38aca396bedffc32e215cd088297aa40742594ffb489c84f37789b1bc57e2d495c3f8d599d31a9b73a49edcf8d35785dd51072ff65e1d0083aba8b436fe4daa8960467ee780664adc17060c937394564e540ea08139631"),
    ("h4 = SHA384(h3 || c1)", "f3e04f63a0eab5a4b9195fb59668cd9af5b1a13228318d723879cb84f76f866eb5b2fb6e37c1de1a62345103aba20044"),
    ("HELLO datagram (263 bytes)", "010100247e5f8602580c988f52f95dd6828001e8463e2788af5c4d0b49e430269172361736a0f1e87ed737d4f5e288bc70fdbdb2b050cc399800f9a7f5bfc4bd19060bf0d7eca38ab61479453dbe13b7a476034a947376d8271cfe25a9c42f3b40acf4db264851af6feaaa85ffa3dba0286159f659d42b737a0f233fca5ab2d67b270af4c03fc638b16b22d22031c5216bde6ca1f9cd56e07d6d8dc6dde561145b13f762ac16f42498bf741085d15dbc38aca396bedffc32e215cd088297aa40742594ffb489c84f37789b1bc57e2d495c3f8d599d31a9b73a49edcf8d35785dd51072ff65e1d0083aba8b436fe4daa8960467ee780664adc17060c937394564e540ea08139631"),
    ("h5 = SHA384(h4 || re.pub)", "30d74d3b2939edddd61dc8a7142207f73d614b2a5eddb7bcd3f3d827f4b2e4846498e3d160cb566a1fed79f0d71b6693"),
    ("ee = DH(re, e.pub): x-coordinate", "08eae6952748b2463e7d97bf382b63aa42f717ce075809fd45d9f95220081870f09966f97e6ea415718627872feb4538"),
    ("ck2 = HKDF(ck1, ee) first 48 bytes", "21ec764b4496f0fd52a48fa7eb8a36f11b5a0abfde2d3da09bddf52c3e60e99ccd3a8ad3e8364a9928a1f96f2ed7f7ac"),
    ("HKDF(ck1, ee) second 48 bytes", "23dfed78ff9491e138b46a9d8b80cd8a402688109258122c50c978dd717c21c4d5cb567fc761ff52546e8087f5d07a8b"),
    ("k2 = its first 32 bytes", "23dfed78ff9491e138b46a9d8b80cd8a402688109258122c50c978dd717c21c4"),
    ("c2 = AES-256-GCM(k2, nonce 0, ad h5, empty payload): the tag alone", "a6d82ea2b5e17fd45797b2970e898bd1"),
    ("h6 = SHA384(h5 || c2): the handshake hash", "daf7969b794f41e1dc20680f1f09261022c4ba553f15dcaff8a9237cbd5a60ed65776fd0bc43a57fb58c2fd6711bb96b"),
    ("WELCOME datagram (75 bytes)", "0102d680fc0f247e5f860371b09fa0295c8f846370938bed245b86fb1277d295d27e09931e5c2f5955dfb7f9ab160fcfd3e0213d917aa470c7b6d1a6d82ea2b5e17fd45797b2970e898bd1"),
    ("HKDF(ck2, empty) first 48 bytes", "34e8d74b82c9ff3f6cf7a47ae332fc529c680ce9e48bff2c9cccfcb637f51734ab087d7d9ea930bc42add2f67461fe18"),
    ("HKDF(ck2, empty) second 48 bytes", "34baa2b0c85e634a54512fdf1a5ecae9e2bdcba283a59a6d8ab0e3cc6eff7865a08e133cd23f1975ec32077e571a2b6c"),
    ("client-to-server key = first 32 bytes of the first output", "34e8d74b82c9ff3f6cf7a47ae332fc529c680ce9e48bff2c9cccfcb637f51734"),
    ("server-to-client key = first 32 bytes of the second output", "34baa2b0c85e634a54512fdf1a5ecae9e2bdcba283a59a6d8ab0e3cc6eff7865"),
    ("re-key token = HKDF-SHA384(salt 48 zero bytes, ikm h6, info \"udpchat rekey v1\", 32 bytes)", "dae6f890aed8e3e38ef65ed2c9e1985dafec4a52dd9f5198fa2780b5cc471acb"),
    ("re-key HELLO payload: 01, server index, token", "01d680fc0fdae6f890aed8e3e38ef65ed2c9e1985dafec4a52dd9f5198fa2780b5cc471acb"),
    ("envelope: {\"c\": \"list\", \"i\": 1, \"k\": 0, \"b\": h'a16670726566697860'}", "a46163646c697374616901616b00616249a16670726566697860"),
    ("client's transport incarnation (random, per session)", "51604bbc079c7e8c"),
    ("transport DATA: pn 0, msg_seq 0, base_seq 0, fragment 0 of 1, the envelope", "010151604bbc079c7e8c0000000000000000000000000000000000000001a46163646c697374616901616b00616249a16670726566697860"),
    ("DATA datagram 1, client to server", "0103d680fc0f0000000000000000826380fdfd593132f8eaaf3a6bfa073f45769d22d69a159deb9ecaa6b64e3f0b1b92362f4a85612566c5c7e612e7e8533675e2c877939b9fc5303417ccc5fdebff94771a6d9d03f6"),
    ("server's transport incarnation (random, per session)", "b8f4ce8583affe6b"),
    ("transport ACK: acked_incarnation = the client's, one range 0..=0", "0102b8f4ce8583affe6b51604bbc079c7e8c0100000000000000000000000000000000"),
    ("DATA datagram 2, server to client", "0103247e5f860000000000000000f3eda638f2ef5322450efa279d0a4c4d93576f5237a72ba532cde72a864ec17074e574393b1fe82083ce0092c9887f09360f97"),
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
