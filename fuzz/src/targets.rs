//! One function per fuzz target. Each takes any bytes, panics only on a
//! bug, and returns whether the input was accepted all the way through.
//!
//! Where a format has exactly one byte form (the wire packet, the
//! transport packet) an accepted input must encode back to itself
//! (rustls style). The CBOR formats (envelope, command bodies, sealed
//! messages) accept encodings other than the one the encoder writes (map
//! keys in any order, longer integer heads, indefinite lengths), so for them
//! the check is that the re-encoded value decodes to the same value and
//! encodes the same again. Key files are PEM, which accepts CRLF and other
//! line breaks: the key read must write and read back the same.

use std::any::type_name;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use udpchat_core::cbor;
use udpchat_core::crypto::handshake::{
    HandshakeError, PeerHandshake, ReplayGuard, ServerHandshake, MAX_MESSAGE2_LEN,
};
use udpchat_core::crypto::keys::{PublicKey, StaticKey};
use udpchat_core::crypto::sealed::{Prekeys, SealedMessage};
use udpchat_core::crypto::sender_keys::{envelope_associated, KeyShare, ReceivedChain, SealedLine};
use udpchat_core::envelope::Envelope;
use udpchat_core::error::CommandError;
use udpchat_core::packet::round_trips;
use udpchat_core::registry::Registry;
use udpchat_core::secure::meeting::{self, Ticket};
use udpchat_core::secure::{SecureConfig, SecureEndpoint};
use udpchat_core::transport::{self, Config, Endpoint};
use udpchat_core::wire::{self, Packet};

use crate::fixtures::{self, fixture, NOW_MS};

/// `udpchat_core::wire::Packet::parse`: the outer datagram (HELLO,
/// WELCOME, DATA, KEY REQUEST, SERVER KEY).
pub fn wire_packet(data: &[u8]) -> bool {
    let Ok(packet) = Packet::parse(data) else {
        return false;
    };
    let encoded = packet.encode();
    if packet == Packet::KeyRequest {
        // Its padding is not checked (any datagram of at least 128 bytes
        // with this kind asks), so only the encoding's own form comes back.
        assert_eq!(Packet::parse(&encoded), Ok(Packet::KeyRequest));
        assert_eq!(encoded[..2], data[..2]);
    } else {
        assert_eq!(encoded, data, "{packet:?} encodes to other bytes");
    }
    true
}

/// The transport's DATA, ACK (with its ranges), SKIP and ACK+DATA decoder, as the
/// endpoint runs it with the default limits.
pub fn transport_packet(data: &[u8]) -> bool {
    match transport::decode_and_reencode(data, Config::default().max_message) {
        Ok(encoded) => {
            assert_eq!(encoded, data, "a transport datagram encodes to other bytes");
            true
        }
        Err(_) => false,
    }
}

/// Peer names in [`transport_endpoint`].
pub const PEER_A: u8 = 1;
pub const PEER_B: u8 = 2;

/// Two transport endpoints with state for datagrams to hit: A sent B a
/// three-fragment message and an empty one; B got all but the second
/// fragment and answered with an ACK of two ranges that A has not read.
pub struct Exchange {
    pub a: Endpoint<u8>,
    pub b: Endpoint<u8>,
    pub now: Instant,
    /// A's datagrams to B, in order (the second one never arrived).
    pub a_to_b: Vec<Vec<u8>>,
    /// B's datagrams to A (not yet delivered).
    pub b_to_a: Vec<Vec<u8>>,
}

impl std::fmt::Debug for Exchange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Exchange")
            .field("a_to_b", &self.a_to_b.len())
            .field("b_to_a", &self.b_to_a.len())
            .finish_non_exhaustive()
    }
}

/// The state [`transport_endpoint`] starts from, made anew for each input.
pub fn exchange() -> Exchange {
    let now = Instant::now();
    let mut a = Endpoint::new(Config::default(), 11);
    let mut b = Endpoint::new(Config::default(), 22);
    a.send(now, PEER_B, vec![7; 3000]).expect("message fits");
    a.send(now, PEER_B, Vec::new()).expect("message fits");
    let mut a_to_b = Vec::new();
    while let Some(transmit) = a.poll_transmit(now) {
        a_to_b.push(transmit.contents);
    }
    for (i, datagram) in a_to_b.iter().enumerate() {
        if i != 1 {
            b.handle_datagram(now, PEER_A, datagram)
                .expect("A's own datagram decodes");
        }
    }
    let mut b_to_a = Vec::new();
    while let Some(transmit) = b.poll_transmit(now) {
        b_to_a.push(transmit.contents);
    }
    Exchange {
        a,
        b,
        now,
        a_to_b,
        b_to_a,
    }
}

/// One datagram of a [`transport_endpoint`] input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    /// To B (from A), or to A (from B).
    pub to_b: bool,
    /// Time passed before it arrives, 0..=127: `step`² × 10 ms (0 to 161 s,
    /// past the reassembly and idle timeouts).
    pub step: u8,
    pub datagram: &'a [u8],
}

impl Record<'_> {
    /// Appends the record's bytes: control byte (bit 0: to B; bits 1..8:
    /// step), datagram length (u16 BE), datagram.
    pub fn write(&self, out: &mut Vec<u8>) {
        out.push(u8::from(self.to_b) | (self.step.min(127) << 1));
        let len = u16::try_from(self.datagram.len()).expect("a datagram is < 64 KiB");
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(self.datagram);
    }
}

/// Splits an input into records; a last one cut short keeps what is there.
pub fn records(mut data: &[u8]) -> impl Iterator<Item = Record<'_>> {
    std::iter::from_fn(move || {
        let (&control, rest) = data.split_first()?;
        let (len, rest) = match rest {
            [hi, lo, rest @ ..] => (usize::from(u16::from_be_bytes([*hi, *lo])), rest),
            _ => (0, &[][..]),
        };
        let (datagram, rest) = rest.split_at(len.min(rest.len()));
        data = rest;
        Some(Record {
            to_b: control & 1 == 1,
            step: control >> 1,
            datagram,
        })
    })
}

/// The transport endpoint fed a sequence of datagrams (and the passing of
/// time) from both sides of an [`Exchange`]: decoding plus everything the
/// datagrams reach, such as ACK ranges against the sender's in-flight
/// packets and fragments against reassembly. No datagram it sends may be
/// larger than the limit.
pub fn transport_endpoint(data: &[u8]) -> bool {
    let Exchange {
        mut a,
        mut b,
        mut now,
        ..
    } = exchange();
    let max_datagram = a.config().max_datagram;
    let mut accepted = false;
    for record in records(data).take(64) {
        now += Duration::from_millis(10 * u64::from(record.step).pow(2));
        let (endpoint, from) = if record.to_b {
            (&mut b, PEER_A)
        } else {
            (&mut a, PEER_B)
        };
        accepted |= endpoint.handle_datagram(now, from, record.datagram).is_ok();
        for endpoint in [&mut a, &mut b] {
            if endpoint.poll_timeout().is_some_and(|at| at <= now) {
                endpoint.handle_timeout(now);
            }
            while let Some(transmit) = endpoint.poll_transmit(now) {
                assert!(
                    transmit.contents.len() <= max_datagram,
                    "a datagram of {} bytes, over the limit of {max_datagram}",
                    transmit.contents.len()
                );
            }
            while endpoint.poll_event().is_some() {}
        }
    }
    accepted
}

/// The meeting the [`meeting`] target's client is in: its ticket (the
/// seeds make checks with its key), the server that relays for it, and the
/// one candidate it checks.
pub fn meeting_ticket() -> Ticket {
    Ticket {
        id: 7,
        key: vec![9; meeting::KEY_LEN],
    }
}
pub const MEETING_SERVER: SocketAddr =
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(203, 0, 113, 1)), 4590);
pub const MEETING_CANDIDATE: SocketAddr =
    SocketAddr::new(IpAddr::V4(Ipv4Addr::new(198, 51, 100, 2)), 40000);
pub const STRANGER: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 66)), 666);

/// A client in a meeting (`udpchat_core::secure::meeting`), fed datagrams
/// from the meeting's server (a record's `to_b` set: a RELAY is unwrapped
/// into the clients' own session, whose HELLO the fixture's IK hello is)
/// or from a stranger (checks and answers, their MACs). It never sends a
/// datagram over the limit, and to an address other than its candidate
/// and the server at most [`meeting::CHECKS`] + 1 times the bytes that
/// came from there (an answer to a check with the meeting's MAC, then
/// checks back).
pub fn meeting(data: &[u8]) -> bool {
    let f = fixture();
    let mut now = Instant::now();
    let mut client =
        SecureEndpoint::client(SecureConfig::default(), Box::new(fixtures::rng(9)), now);
    client.set_identity(Some(f.server.clone()));
    client.meet(
        now,
        &meeting_ticket(),
        &[MEETING_CANDIDATE],
        Some(MEETING_SERVER),
    );
    let mut received: HashMap<SocketAddr, usize> = HashMap::new();
    let mut sent: HashMap<SocketAddr, usize> = HashMap::new();
    let mut accepted = false;
    for record in records(data).take(64) {
        now += Duration::from_millis(10 * u64::from(record.step).pow(2));
        let from = if record.to_b {
            MEETING_SERVER
        } else {
            STRANGER
        };
        *received.entry(from).or_default() += record.datagram.len();
        accepted |= client
            .handle_datagram(now, NOW_MS, from, record.datagram)
            .is_ok();
        while client.handle_handshake(now, NOW_MS) {}
        if client.poll_timeout().is_some_and(|at| at <= now) {
            client.handle_timeout(now, NOW_MS);
        }
        while let Some((to, datagram)) = client.poll_transmit(now, NOW_MS) {
            assert!(
                datagram.len() <= wire::MAX_DATAGRAM + wire::RELAY_HEADER_LEN,
                "a datagram of {} bytes to {to}",
                datagram.len()
            );
            if to != MEETING_SERVER && to != MEETING_CANDIDATE {
                let total = sent.entry(to).or_default();
                *total += datagram.len();
                let came = received.get(&to).copied().unwrap_or(0);
                assert!(
                    *total <= (meeting::CHECKS as usize + 1) * came.max(wire::PROBE_LEN),
                    "{total} bytes to {to}, which sent {came}"
                );
                assert!(came > 0, "a datagram to {to}, which sent nothing");
            }
        }
        while client.poll_event().is_some() {}
    }
    accepted
}

/// `udpchat_core::envelope::Envelope::decode`: the CBOR envelope every
/// message travels in.
pub fn envelope(data: &[u8]) -> bool {
    let Ok(envelope) = Envelope::decode(data) else {
        return false;
    };
    let encoded = envelope.encode();
    assert_eq!(
        Envelope::decode(&encoded).as_ref(),
        Ok(&envelope),
        "a re-encoded envelope decodes to another"
    );
    assert_eq!(Envelope::decode(&encoded).map(|e| e.encode()), Ok(encoded));
    true
}

/// A body type: its name (`std::any::type_name`), the wire tags whose
/// requests, replies or pushes carry it, and its check.
#[derive(Debug, Clone)]
pub struct Body {
    pub name: &'static str,
    pub tags: Vec<&'static str>,
    pub check: fn(&[u8]) -> bool,
}

/// Every type a handler decodes from a body that came over the network,
/// sorted by name: those the registry's handlers take (each command's
/// request bodies, replies and pushes, from its descriptor: a new
/// command's types are here with no line of their own), the error any
/// reply may be instead, and the sealed message inside `deposit` and
/// `stored`.
pub fn bodies() -> &'static [Body] {
    static BODIES: std::sync::OnceLock<Vec<Body>> = std::sync::OnceLock::new();
    BODIES.get_or_init(|| {
        udpchat_commands::link();
        let mut bodies: Vec<Body> = Registry::global()
            .body_types()
            .into_iter()
            .map(|(body, tags)| Body {
                name: (body.name)(),
                tags,
                check: body.check,
            })
            .collect();
        bodies.push(Body {
            name: type_name::<CommandError>(),
            tags: Vec::new(),
            check: round_trips::<CommandError>,
        });
        bodies.push(Body {
            name: type_name::<SealedMessage>(),
            tags: Vec::new(),
            check: round_trips::<SealedMessage>,
        });
        bodies.sort_by_key(|b| b.name);
        bodies
    })
}

/// Every command body type through `cbor::decode_body`: the first byte
/// picks the type in [`BODIES`], the rest is the body.
pub fn command_body(data: &[u8]) -> bool {
    let Some((&selector, body)) = data.split_first() else {
        return false;
    };
    let bodies = bodies();
    (bodies[usize::from(selector) % bodies.len()].check)(body)
}

/// A sealed message (`crypto::sealed`) as a client gets it from the
/// server: decoded, then opened with Bob's identity and prekeys. One that
/// opens used up its one-time prekey: opening it again must fail.
pub fn sealed(data: &[u8]) -> bool {
    let Ok(message) = cbor::decode_body::<SealedMessage>(data) else {
        return false;
    };
    let encoded = cbor::encode(&message);
    assert_eq!(
        cbor::decode_body::<SealedMessage>(&encoded).as_ref(),
        Ok(&message),
        "a re-encoded sealed message decodes to another"
    );
    let f = fixture();
    let associated = fixtures::associated();
    let mut prekeys = f.bob_prekeys.clone();
    let Ok((sender, _plaintext)) = prekeys.open(&f.bob, &message, &associated) else {
        return false;
    };
    assert_eq!(sender, message.sender_identity);
    if message.one_time_prekey_id.is_some() {
        assert!(
            prekeys.open(&f.bob, &message, &associated).is_err(),
            "a sealed message opened twice with its one-time prekey"
        );
    }
    true
}

/// A private group's line (`crypto::sender_keys::SealedLine`) as a member
/// gets it from the server: decoded, the key it hands Bob opened with his
/// prekeys, then the line opened with the chain Alice handed him. A line
/// that opened does not open twice.
pub fn group_line(data: &[u8]) -> bool {
    let Ok(line) = cbor::decode_body::<SealedLine>(data) else {
        return false;
    };
    let encoded = cbor::encode(&line);
    assert_eq!(
        cbor::decode_body::<SealedLine>(&encoded).as_ref(),
        Ok(&line),
        "a re-encoded group line decodes to another"
    );
    let f = fixture();
    let (group, from) = fixtures::GROUP_LINE_FROM;
    for envelope in line.keys.iter().filter(|e| e.to == "bob") {
        let Ok(sealed) = cbor::decode_body::<SealedMessage>(&envelope.sealed) else {
            continue;
        };
        let mut prekeys = f.bob_prekeys.clone();
        let associated = envelope_associated(group, from, "bob");
        if let Ok((_, bytes)) = prekeys.open(&f.bob, &sealed, &associated) {
            if let Ok(share) = cbor::decode_body::<KeyShare>(&bytes) {
                let _ = ReceivedChain::from_share(&share);
            }
        }
    }
    let mut chain =
        ReceivedChain::from_share(&f.alice_group_share).expect("the fixture's share is whole");
    if chain.open(group, from, &line).is_err() {
        return false;
    }
    assert!(
        chain.open(group, from, &line).is_err(),
        "a group line opened twice"
    );
    true
}

/// Handshake messages with the fixture's fixed keys: the first byte picks
/// the reader, the rest is the message. 0: an NK responder (the server)
/// reads message 1; 1: an IK responder (a peer) reads message 1; 2: an NK
/// initiator reads message 2; 3: an IK initiator reads message 2. A
/// responder that accepts answers with no more bytes than it got, and
/// refuses the same message 1 a second time.
pub fn handshake(data: &[u8]) -> bool {
    let Some((&mode, message)) = data.split_first() else {
        return false;
    };
    let f = fixture();
    let mut rng = fixtures::rng(u64::from(mode));
    let mut replay = ReplayGuard::new();
    let mut respond = |replay: &mut ReplayGuard| match mode % 4 {
        0 => ServerHandshake::respond(&mut rng, &f.server, message, NOW_MS, b"hi", replay)
            .map(|(_, reply, _)| reply),
        _ => PeerHandshake::respond(&mut rng, &f.server, message, NOW_MS, b"hi", replay)
            .map(|(_, reply, _, _)| reply),
    };
    match mode % 4 {
        0 | 1 => match respond(&mut replay) {
            Ok(reply) => {
                assert!(
                    reply.len() <= message.len() && reply.len() <= MAX_MESSAGE2_LEN,
                    "message 2 of {} bytes answers message 1 of {}",
                    reply.len(),
                    message.len()
                );
                assert_eq!(
                    respond(&mut replay).err(),
                    Some(HandshakeError::Replayed),
                    "a message 1 was accepted twice"
                );
                true
            }
            Err(_) => false,
        },
        2 => f.nk_initiator.clone().read(message).is_ok(),
        _ => f.ik_initiator.clone().read(message).is_ok(),
    }
}

/// Key files: a private key (PKCS#8 or SEC1 PEM), a public key (SPKI PEM)
/// and the prekey store (`UDPCHAT PREKEYS` PEM), from any text (bytes that
/// are not UTF-8 become U+FFFD, as a lossy reader would make them). A key
/// that reads must write and read back as the same key.
pub fn keyfile(data: &[u8]) -> bool {
    let text = String::from_utf8_lossy(data);
    let mut accepted = false;
    if let Ok(key) = StaticKey::from_pkcs8_pem(&text) {
        let pem = key.to_pkcs8_pem();
        let again = StaticKey::from_pkcs8_pem(&pem).expect("a written private key reads back");
        assert_eq!(
            *again.to_pkcs8_pem(),
            *pem,
            "a private key does not round-trip"
        );
        accepted = true;
    }
    if let Ok(public) = PublicKey::from_spki_pem(&text) {
        let pem = public.to_spki_pem();
        assert_eq!(
            PublicKey::from_spki_pem(&pem).as_ref(),
            Ok(&public),
            "a public key does not round-trip"
        );
        accepted = true;
    }
    if let Ok(store) = Prekeys::from_pem(&text) {
        let pem = store.to_pem();
        let again = Prekeys::from_pem(&pem).expect("a written prekey store reads back");
        assert_eq!(*again.to_pem(), *pem, "a prekey store does not round-trip");
        accepted = true;
    }
    accepted
}
