use super::*;
use rand::rngs::StdRng;
use rand::SeedableRng;

const MS: u64 = 1_800_000_000_000;

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn rng(seed: u64) -> Box<dyn SecureRng> {
    Box::new(StdRng::seed_from_u64(seed))
}

struct Pair {
    now: Instant,
    now_ms: u64,
    server: SecureEndpoint,
    client: SecureEndpoint,
    server_key: StaticKey,
    client_addr: SocketAddr,
    /// Datagrams the server sent, for the zero-bytes-back checks.
    server_sent: usize,
}

impl Pair {
    fn new() -> Pair {
        let now = Instant::now();
        let server_key = StaticKey::generate(&mut StdRng::seed_from_u64(1));
        Pair {
            now,
            now_ms: MS,
            server: SecureEndpoint::server(
                SecureConfig::default(),
                server_key.clone(),
                rng(2),
                now,
            ),
            client: SecureEndpoint::client(SecureConfig::default(), rng(3), now),
            server_key,
            client_addr: addr(5000),
            server_sent: 0,
        }
    }

    /// Moves datagrams both ways until quiet; `drop_client` drops what
    /// the client sends when it returns true.
    fn pump(&mut self, mut drop_client: impl FnMut(&[u8]) -> bool) {
        for _ in 0..100 {
            let mut moved = false;
            while let Some((to, d)) = self.client.poll_transmit(self.now, self.now_ms) {
                assert!(d.len() <= wire::MAX_DATAGRAM);
                assert_eq!(to, addr(4590));
                moved = true;
                if !drop_client(&d) {
                    let _ =
                        self.server
                            .handle_datagram(self.now, self.now_ms, self.client_addr, &d);
                }
            }
            while self.server.handle_handshake(self.now, self.now_ms) {}
            while let Some((to, d)) = self.server.poll_transmit(self.now, self.now_ms) {
                assert!(d.len() <= wire::MAX_DATAGRAM);
                self.server_sent += 1;
                moved = true;
                if to == self.client_addr {
                    let _ = self
                        .client
                        .handle_datagram(self.now, self.now_ms, addr(4590), &d);
                }
            }
            if !moved {
                return;
            }
        }
    }

    /// Opens the client's session with the server.
    fn connect(&mut self) -> PeerId {
        let key = self.server_key.public();
        self.client
            .connect(self.now, self.now_ms, addr(4590), key, Pattern::Nk)
            .unwrap()
    }

    fn advance(&mut self, by: Duration) {
        self.now += by;
        self.now_ms += by.as_millis() as u64;
        self.client.handle_timeout(self.now, self.now_ms);
        self.server.handle_timeout(self.now, self.now_ms);
    }

    fn received(endpoint: &mut SecureEndpoint) -> Vec<(PeerId, Vec<u8>)> {
        let mut out = Vec::new();
        while let Some(event) = endpoint.poll_event() {
            if let SecureEvent::Received { from, message } = event {
                out.push((from, message));
            }
        }
        out
    }
}

#[test]
fn a_client_and_server_talk_through_a_session() {
    let mut p = Pair::new();
    let peer = p.connect();
    p.client
        .send(p.now, peer, b"hello server".to_vec())
        .unwrap();
    p.pump(|_| false);
    let got = Pair::received(&mut p.server);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].1, b"hello server");
    let at_server = got[0].0;
    p.server
        .send(p.now, at_server, b"hello client".to_vec())
        .unwrap();
    p.pump(|_| false);
    assert_eq!(
        Pair::received(&mut p.client),
        vec![(peer, b"hello client".to_vec())]
    );
    assert!(p.client.peer(peer).unwrap().established);
}

#[test]
fn garbage_and_a_wrong_key_get_no_reply_and_leave_no_state() {
    let mut p = Pair::new();
    for garbage in [
        &b""[..],
        b"\x01",
        &[1u8; 300],
        &[1, 1, 0, 0, 0, 0, 1],
        &[1, 3, 0, 0, 0, 1, 0, 0],
    ] {
        assert!(p
            .server
            .handle_datagram(p.now, p.now_ms, p.client_addr, garbage)
            .is_err());
    }
    let impostor_key = StaticKey::generate(&mut StdRng::seed_from_u64(99)).public();
    let peer = p
        .client
        .connect(p.now, p.now_ms, addr(4590), impostor_key, Pattern::Nk)
        .unwrap();
    p.client.send(p.now, peer, b"secret".to_vec()).unwrap();
    p.pump(|_| false);
    assert_eq!(
        p.server_sent, 0,
        "the server answered something it could not authenticate"
    );
    assert!(p.server.conns.is_empty());
    assert_eq!(p.server.stats().rejected, 6);
}

#[test]
fn a_lost_hello_is_retried_and_a_dead_server_fails_the_session() {
    let mut p = Pair::new();
    let peer = p.connect();
    let id = p.client.send(p.now, peer, b"one".to_vec()).unwrap();
    let mut first = true;
    p.pump(|_| std::mem::take(&mut first));
    assert!(Pair::received(&mut p.server).is_empty());
    p.advance(Duration::from_secs(1));
    p.pump(|_| false);
    assert_eq!(
        Pair::received(&mut p.server).len(),
        1,
        "the retried hello got through"
    );
    let _ = id;

    // Now a server that never answers.
    let mut q = Pair::new();
    let peer = q.connect();
    let id = q.client.send(q.now, peer, b"lost".to_vec()).unwrap();
    let mut events = Vec::new();
    for _ in 0..200 {
        q.pump(|_| true);
        q.advance(Duration::from_secs(1));
        while let Some(e) = q.client.poll_event() {
            events.push(e);
        }
        if q.client.poll_timeout().is_none() || events.contains(&SecureEvent::Closed { peer }) {
            break;
        }
    }
    assert!(
        events.contains(&SecureEvent::DeliveryFailed { to: peer, id }),
        "{events:?}"
    );
    assert!(events.contains(&SecureEvent::Closed { peer }));
}

#[test]
fn a_session_follows_its_client_to_a_new_address_and_survives_a_rekey() {
    let mut p = Pair::new();
    let peer = p.connect();
    p.client.send(p.now, peer, b"first".to_vec()).unwrap();
    p.pump(|_| false);
    let at_server = Pair::received(&mut p.server)[0].0;

    p.client_addr = addr(6000); // a NAT rebinding
    p.client.send(p.now, peer, b"second".to_vec()).unwrap();
    p.pump(|_| false);
    let events: Vec<SecureEvent> = std::iter::from_fn(|| p.server.poll_event()).collect();
    assert!(events.contains(&SecureEvent::Received {
        from: at_server,
        message: b"second".to_vec()
    }));
    // The application hears of the move, once it is proven.
    assert!(events.contains(&SecureEvent::Moved {
        peer: at_server,
        addr: addr(6000)
    }));
    assert_eq!(p.server.peer(at_server).unwrap().addr, addr(6000));

    assert_eq!(p.server.stats().migrations, 1);
    // The server's acknowledgement went to the old address (the session
    // moved only once the new one answered a challenge): the client sends
    // "second" again, and it is not delivered twice.
    // (A probe timeout is the first RTT guess, 333 ms, times three, plus
    // the 25 ms an acknowledgement may be held: past one second.)
    p.advance(Duration::from_secs(2));
    p.pump(|_| false);
    assert_eq!(Pair::received(&mut p.server), vec![]);
    assert_eq!(p.client.in_flight(peer), 0, "both acknowledged");

    // Eleven minutes on, the client re-keys; the server keeps the session.
    p.advance(Duration::from_secs(11 * 60));
    p.client.send(p.now, peer, b"third".to_vec()).unwrap();
    p.pump(|_| false);
    p.client.send(p.now, peer, b"fourth".to_vec()).unwrap();
    p.pump(|_| false);
    let got: Vec<_> = Pair::received(&mut p.server)
        .into_iter()
        .map(|(f, m)| (f, String::from_utf8(m).unwrap()))
        .collect();
    assert_eq!(
        got,
        vec![
            (at_server, "third".to_string()),
            (at_server, "fourth".to_string())
        ]
    );
    let State::Established { session, .. } = &p.client.conns[&peer.0].state else {
        panic!("not established")
    };
    assert!(
        !session.needs_rekey(p.now_ms, true),
        "the client is on fresh keys"
    );
}

#[test]
fn a_replayed_data_packet_is_dropped() {
    let mut p = Pair::new();
    let peer = p.connect();
    p.pump(|_| false);
    p.client.send(p.now, peer, b"once".to_vec()).unwrap();
    let mut data = Vec::new();
    while let Some((_, d)) = p.client.poll_transmit(p.now, p.now_ms) {
        data.push(d);
    }
    for d in &data {
        p.server
            .handle_datagram(p.now, p.now_ms, p.client_addr, d)
            .unwrap();
    }
    let rejected = p.server.stats().rejected;
    for d in &data {
        assert_eq!(
            p.server.handle_datagram(p.now, p.now_ms, p.client_addr, d),
            Err(Rejected::Unauthentic)
        );
    }
    assert_eq!(p.server.stats().rejected, rejected + data.len() as u64);
    assert_eq!(Pair::received(&mut p.server).len(), 1);
}

#[test]
fn clients_learn_each_others_identity_through_ik() {
    let now = Instant::now();
    let alice_key = StaticKey::generate(&mut StdRng::seed_from_u64(10));
    let bob_key = StaticKey::generate(&mut StdRng::seed_from_u64(11));
    let mut alice = SecureEndpoint::client(SecureConfig::default(), rng(12), now);
    let mut bob = SecureEndpoint::client(SecureConfig::default(), rng(13), now);
    assert_eq!(
        alice.connect(now, MS, addr(2), bob_key.public(), Pattern::Ik),
        Err(ConnectError::NoIdentity)
    );
    alice.set_identity(Some(alice_key.clone()));
    bob.set_identity(Some(bob_key.clone()));
    let to_bob = alice
        .connect(now, MS, addr(2), bob_key.public(), Pattern::Ik)
        .unwrap();
    alice.send(now, to_bob, b"hi bob".to_vec()).unwrap();
    for _ in 0..10 {
        while let Some((_, d)) = alice.poll_transmit(now, MS) {
            let _ = bob.handle_datagram(now, MS, addr(1), &d);
        }
        while bob.handle_handshake(now, MS) {}
        while let Some((_, d)) = bob.poll_transmit(now, MS) {
            let _ = alice.handle_datagram(now, MS, addr(2), &d);
        }
    }
    let got = Pair::received(&mut bob);
    assert_eq!(got.len(), 1);
    assert_eq!(
        bob.peer(got[0].0).unwrap().remote_static,
        Some(alice_key.public())
    );
}

#[test]
fn a_server_key_request_is_answered_with_fewer_bytes() {
    let mut p = Pair::new();
    p.client.request_server_key(addr(4590));
    let (_, request) = p.client.poll_transmit(p.now, p.now_ms).unwrap();
    p.server
        .handle_datagram(p.now, p.now_ms, p.client_addr, &request)
        .unwrap();
    let (_, answer) = p.server.poll_transmit(p.now, p.now_ms).unwrap();
    assert!(answer.len() < request.len());
    p.client
        .handle_datagram(p.now, p.now_ms, addr(4590), &answer)
        .unwrap();
    assert_eq!(
        p.client.poll_event(),
        Some(SecureEvent::ServerKey {
            addr: addr(4590),
            key: p.server_key.public()
        })
    );
    // An unasked-for answer is dropped.
    assert!(p
        .client
        .handle_datagram(p.now, p.now_ms, addr(4590), &answer)
        .is_err());
}

#[test]
fn a_packet_replayed_from_a_spoofed_address_gets_that_address_at_most_three_times_its_bytes() {
    let mut p = Pair::new();
    let peer = p.connect();
    p.client.send(p.now, peer, b"hello".to_vec()).unwrap();
    p.pump(|_| false);
    let at_server = Pair::received(&mut p.server)[0].0;

    // The client asks for something large; an attacker who saw the
    // request sends a copy from the victim's address, ahead of the real one.
    let victim = addr(7777);
    p.client
        .send(p.now, peer, b"group history 1000".to_vec())
        .unwrap();
    let (_, request) = p.client.poll_transmit(p.now, p.now_ms).unwrap();
    p.server
        .handle_datagram(p.now, p.now_ms, victim, &request)
        .unwrap();
    assert_eq!(
        p.server
            .handle_datagram(p.now, p.now_ms, p.client_addr, &request),
        Err(Rejected::Unauthentic),
        "the real one is now a replay"
    );
    let (_, asked) = Pair::received(&mut p.server).pop().unwrap();
    assert_eq!(asked, b"group history 1000");
    let answer = vec![7u8; 100_000];
    p.server.send(p.now, at_server, answer.clone()).unwrap();

    // A minute of traffic, with retransmissions; the victim answers nothing.
    let mut to_victim = 0;
    let mut got = Vec::new();
    for _ in 0..600 {
        while let Some((to, d)) = p.server.poll_transmit(p.now, p.now_ms) {
            if to == victim {
                to_victim += d.len();
            } else {
                assert_eq!(to, p.client_addr);
                let _ = p.client.handle_datagram(p.now, p.now_ms, addr(4590), &d);
            }
        }
        while let Some((_, d)) = p.client.poll_transmit(p.now, p.now_ms) {
            let _ = p.server.handle_datagram(p.now, p.now_ms, p.client_addr, &d);
        }
        got.extend(Pair::received(&mut p.client));
        p.advance(Duration::from_millis(100));
    }
    assert!(
        to_victim <= path::AMPLIFICATION_FACTOR * request.len(),
        "{to_victim} bytes to the victim for {} bytes in",
        request.len()
    );
    assert_eq!(got, vec![(peer, answer)], "the client still got its answer");
    assert_eq!(p.server.peer(at_server).unwrap().addr, p.client_addr);
    assert_eq!(p.server.stats().migrations, 0);
}

#[test]
fn a_rekey_whose_welcome_is_lost_is_retried_and_the_session_goes_on() {
    let mut p = Pair::new();
    let peer = p.connect();
    p.client.send(p.now, peer, b"before".to_vec()).unwrap();
    p.pump(|_| false);
    assert_eq!(Pair::received(&mut p.server).len(), 1);

    // Eleven minutes on the client re-keys, and the WELCOME is lost.
    p.advance(Duration::from_secs(11 * 60));
    p.client.send(p.now, peer, b"during".to_vec()).unwrap();
    let mut welcomes = 0;
    while let Some((_, d)) = p.client.poll_transmit(p.now, p.now_ms) {
        let _ = p.server.handle_datagram(p.now, p.now_ms, p.client_addr, &d);
    }
    while p.server.handle_handshake(p.now, p.now_ms) {}
    while let Some((_, d)) = p.server.poll_transmit(p.now, p.now_ms) {
        if matches!(Packet::parse(&d), Ok(Packet::Welcome { .. })) {
            welcomes += 1;
            continue; // lost
        }
        let _ = p.client.handle_datagram(p.now, p.now_ms, addr(4590), &d);
    }
    assert_eq!(welcomes, 1);

    // The client, still on the old keys, retries; all goes on.
    for _ in 0..20 {
        p.advance(Duration::from_millis(500));
        p.pump(|_| false);
    }
    p.client.send(p.now, peer, b"after".to_vec()).unwrap();
    p.pump(|_| false);
    let got: Vec<Vec<u8>> = Pair::received(&mut p.server)
        .into_iter()
        .map(|(_, m)| m)
        .collect();
    assert_eq!(got, vec![b"during".to_vec(), b"after".to_vec()]);
    let State::Established { session, .. } = &p.client.conns[&peer.0].state else {
        panic!("not established")
    };
    assert!(!session.needs_rekey(p.now_ms, true), "re-keyed in the end");
}

/// A HELLO an attacker makes: a valid point and a valid mac1 (the server's
/// key is public), then garbage where the AEAD should be, so only the
/// P-384 work would find it out.
fn junk_hello(server: &PublicKey, seed: u64) -> Vec<u8> {
    let mut rng = StdRng::seed_from_u64(seed);
    let (_, mut message) =
        crate::crypto::handshake::ClientHello::start(&mut rng, server, &[HELLO_FRESH], MS).unwrap();
    for byte in &mut message[60..] {
        *byte ^= 0x5a;
    }
    let mut datagram = Packet::Hello {
        pattern: Pattern::Nk,
        sender_index: seed as u32,
        message: &message,
        macs: &[0; wire::HELLO_MACS_LEN],
    }
    .encode();
    cookie::stamp(&mut datagram, cookie::mac1_key(server).as_ref(), None);
    datagram
}

#[test]
fn a_hello_flood_gets_cookie_replies_not_p384_work_and_an_honest_client_still_gets_in() {
    let mut p = Pair::new();
    let server_key = p.server_key.public();
    let calm = SecureConfig::default().calm_handshakes_per_sec as u64;
    let flood: Vec<Vec<u8>> = (0..64).map(|i| junk_hello(&server_key, 1000 + i)).collect();
    let mut junk_sent = 0usize;
    let mut junk_bytes_in = 0usize;
    let mut junk_bytes_back = 0usize;
    let mut connected_at = None;
    let mut peer = None;
    // Six seconds at 6,000 junk HELLOs a second from 16 sources (spoofed:
    // nobody reads the cookies), and an honest client connecting in the
    // middle. Every 10 ms: 60 junk HELLOs, then the server's loop.
    for tick in 0..600u64 {
        for i in 0..60 {
            let source = addr(20_000 + (i % 16) as u16);
            let junk = &flood[(tick as usize * 60 + i) % flood.len()];
            let _ = p.server.handle_datagram(p.now, p.now_ms, source, junk);
            junk_sent += 1;
            junk_bytes_in += junk.len();
        }
        if tick == 300 {
            peer = Some(p.connect());
        }
        // The driver's turn: datagrams first, then one handshake per
        // eight datagrams, as net's driver does.
        for _ in 0..8 {
            p.server.handle_handshake(p.now, p.now_ms);
        }
        while let Some((to, d)) = p.server.poll_transmit(p.now, p.now_ms) {
            if to == p.client_addr {
                let _ = p.client.handle_datagram(p.now, p.now_ms, addr(4590), &d);
            } else {
                junk_bytes_back += d.len();
            }
        }
        while let Some((_, d)) = p.client.poll_transmit(p.now, p.now_ms) {
            let _ = p.server.handle_datagram(p.now, p.now_ms, p.client_addr, &d);
        }
        if let Some(peer) = peer {
            if connected_at.is_none() && p.client.peer(peer).unwrap().established {
                connected_at = Some(tick);
            }
        }
        p.advance(Duration::from_millis(10));
    }
    let stats = p.server.stats();
    let connected_in = Duration::from_millis(10 * (connected_at.expect("the client got in") - 300));
    assert!(connected_in < Duration::from_secs(2), "{connected_in:?}");
    // Only the first second's calm allowance (and the queue behind it) got
    // P-384 work; everything after got a 38-byte cookie reply.
    assert!(
        stats.handshakes_answered <= calm + SecureConfig::default().handshake_queue as u64 + 10,
        "{stats:?}"
    );
    assert!(
        stats.cookies_sent as usize > junk_sent * 9 / 10,
        "{stats:?}"
    );
    assert!(
        junk_bytes_back * 5 < junk_bytes_in,
        "{junk_bytes_back} bytes back for {junk_bytes_in} bytes in"
    );
}

#[test]
fn under_load_a_source_that_reads_its_cookies_is_limited_to_its_share() {
    let mut p = Pair::new();
    let server_key = p.server_key.public();
    let config = SecureConfig::default();
    let mallory = addr(30_000);
    // Past the calm allowance, so the server is under load.
    for i in 0..config.calm_handshakes_per_sec as u64 {
        let _ =
            p.server
                .handle_datagram(p.now, p.now_ms, addr(40_000), &junk_hello(&server_key, i));
    }
    while p.server.handle_handshake(p.now, p.now_ms) {}
    while p.server.poll_transmit(p.now, p.now_ms).is_some() {}
    // mallory asks once, reads the cookie, and floods with valid mac2s.
    let first = junk_hello(&server_key, 5000);
    p.server
        .handle_datagram(p.now, p.now_ms, mallory, &first)
        .unwrap();
    let (_, reply) = p.server.poll_transmit(p.now, p.now_ms).unwrap();
    let Ok(Packet::CookieReply {
        cookie: c, mac1, ..
    }) = Packet::parse(&reply)
    else {
        panic!("no cookie reply");
    };
    assert_eq!(mac1, cookie::mac1_of(&first));
    let c: cookie::Cookie = c.try_into().unwrap();
    let before = p.server.stats();
    let mut shed = 0;
    for i in 0..100u64 {
        let mut hello = junk_hello(&server_key, 6000 + i);
        cookie::stamp(&mut hello, cookie::mac1_key(&server_key).as_ref(), Some(&c));
        if p.server.handle_datagram(p.now, p.now_ms, mallory, &hello) == Err(Rejected::Shed) {
            shed += 1;
        }
    }
    while p.server.handle_handshake(p.now, p.now_ms) {}
    let answered = p.server.stats().handshakes_answered - before.handshakes_answered;
    assert_eq!(answered, u64::from(config.handshakes_per_source_burst));
    assert_eq!(shed, 100 - answered);
}

/// Opens `count` sessions to `server` from clients at `ip`, ports from
/// `first_port`; returns how many got established.
fn open_sessions(
    server: &mut SecureEndpoint,
    server_key: &PublicKey,
    now: Instant,
    ip: [u8; 4],
    first_port: u16,
    count: u16,
) -> usize {
    let mut established = 0;
    for i in 0..count {
        let from = SocketAddr::from((ip, first_port + i));
        let seed = u64::from(u32::from_be_bytes(ip)) << 16 | u64::from(first_port + i);
        let mut client = SecureEndpoint::client(SecureConfig::default(), rng(seed), now);
        let peer = client
            .connect(now, MS, addr(4590), server_key.clone(), Pattern::Nk)
            .unwrap();
        while let Some((_, d)) = client.poll_transmit(now, MS) {
            let _ = server.handle_datagram(now, MS, from, &d);
        }
        while server.handle_handshake(now, MS) {}
        while let Some((to, d)) = server.poll_transmit(now, MS) {
            if to == from {
                let _ = client.handle_datagram(now, MS, addr(4590), &d);
            }
        }
        established += usize::from(client.peer(peer).unwrap().established);
    }
    established
}

fn server_with(config: SecureConfig, now: Instant) -> (SecureEndpoint, PublicKey) {
    let key = StaticKey::generate(&mut StdRng::seed_from_u64(1));
    let public = key.public();
    (SecureEndpoint::server(config, key, rng(2), now), public)
}

#[test]
fn sessions_that_never_sign_in_close_within_a_minute_and_their_number_is_bounded() {
    let now = Instant::now();
    let config = SecureConfig {
        max_unconfirmed: 50,
        calm_handshakes_per_sec: 10_000,
        ..SecureConfig::server()
    };
    let (mut server, key) = server_with(config, now);
    assert_eq!(
        open_sessions(&mut server, &key, now, [10, 0, 0, 1], 1000, 120),
        120
    );
    assert_eq!(server.sessions(), 50, "the oldest bare sessions made room");
    assert_eq!(server.unconfirmed(), 50);

    // One signs in; the rest never do.
    let signed_in = *server.conns.keys().next().unwrap();
    server.confirm(PeerId(signed_in));
    assert_eq!(server.unconfirmed(), 49);
    let later = now + Duration::from_secs(61);
    server.handle_timeout(later, MS + 61_000);
    let later = later + SWEEP_EVERY;
    server.handle_timeout(later, MS + 71_000);
    assert_eq!(server.sessions(), 1);
    assert!(server.peer(PeerId(signed_in)).is_some());

    // Signed out, it goes too, a minute on.
    server.release(later, PeerId(signed_in));
    server.handle_timeout(later + Duration::from_secs(75), MS + 146_000);
    assert_eq!((server.sessions(), server.unconfirmed()), (0, 0));
}

#[test]
fn one_source_holds_a_bounded_number_of_sessions() {
    let now = Instant::now();
    let config = SecureConfig {
        max_sessions_per_source: 5,
        calm_handshakes_per_sec: 10_000,
        ..SecureConfig::server()
    };
    let (mut server, key) = server_with(config, now);
    assert_eq!(
        open_sessions(&mut server, &key, now, [10, 0, 0, 1], 1000, 8),
        5
    );
    assert_eq!(
        open_sessions(&mut server, &key, now, [10, 0, 0, 2], 1000, 2),
        2,
        "another source"
    );
    assert_eq!(server.sessions(), 7);
}

#[test]
fn a_busy_session_keeps_its_keys_expanded_until_it_is_found_quiet() {
    let mut p = Pair::new();
    let peer = p.connect();
    for i in 0..4u8 {
        p.client.send(p.now, peer, vec![i; 100]).unwrap();
        p.pump(|_| false);
    }
    let expanded = |endpoint: &SecureEndpoint| {
        endpoint
            .conns
            .values()
            .map(|conn| match &conn.state {
                State::Established { session, .. } => session.expanded(),
                State::Handshaking { .. } => (false, false),
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(expanded(&p.server), vec![(true, true)], "busy: kept");
    // Looked at a second later it was used the second before; a second
    // after that, it has been quiet.
    assert!(p.server.poll_timeout().unwrap() <= p.now + busy::COOL_EVERY);
    p.advance(busy::COOL_EVERY);
    assert_eq!(expanded(&p.server), vec![(true, true)]);
    p.advance(busy::COOL_EVERY);
    assert_eq!(
        expanded(&p.server),
        vec![(false, false)],
        "quiet: given back"
    );
    assert!(p.server.busy.is_empty());
    // It still works, expanding on the stack.
    p.client.send(p.now, peer, b"still here".to_vec()).unwrap();
    p.pump(|_| false);
    assert_eq!(
        Pair::received(&mut p.server).last().unwrap().1,
        b"still here"
    );
}

#[test]
fn keepalives_now_and_then_expand_no_key_for_good() {
    let mut p = Pair::new();
    let peer = p.connect();
    for _ in 0..4 {
        p.advance(Duration::from_secs(10));
        p.client.send(p.now, peer, Vec::new()).unwrap();
        p.pump(|_| false);
    }
    assert!(
        p.server.busy.is_empty(),
        "no session kept its keys expanded"
    );
    for conn in p.server.conns.values() {
        if let State::Established { session, .. } = &conn.state {
            assert_eq!(session.expanded(), (false, false));
        }
    }
}

#[test]
fn handshakes_worked_out_on_other_threads_open_sessions_in_any_order_and_a_replay_none() {
    let now = Instant::now();
    let (mut server, key) = server_with(SecureConfig::default(), now);
    let mut clients = Vec::new();
    for i in 0..3u16 {
        let from = addr(6000 + i);
        let mut client =
            SecureEndpoint::client(SecureConfig::default(), rng(100 + u64::from(i)), now);
        let peer = client
            .connect(now, MS, addr(4590), key.clone(), Pattern::Nk)
            .unwrap();
        while let Some((_, d)) = client.poll_transmit(now, MS) {
            server.handle_datagram(now, MS, from, &d).unwrap();
            if i == 2 {
                // Someone replays the third HELLO from elsewhere.
                server.handle_datagram(now, MS, addr(6666), &d).unwrap();
            }
        }
        clients.push((from, client, peer));
    }
    let mut work = Vec::new();
    while let Some(w) = server.take_handshake(now, MS) {
        work.push(w);
    }
    assert_eq!(
        work.len(),
        3,
        "the replay is not worked out beside the first"
    );
    let threads: Vec<_> = work
        .into_iter()
        .map(|w| std::thread::spawn(move || w.run(&mut rand::thread_rng())))
        .collect();
    let done: Vec<HandshakeDone> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    // Back in the reverse order of their arrival.
    for d in done.into_iter().rev() {
        server.finish_handshake(now, MS, d);
    }
    let mut welcomed = Vec::new();
    while let Some((to, d)) = server.poll_transmit(now, MS) {
        welcomed.push(to);
        if let Some((_, client, _)) = clients.iter_mut().find(|(from, _, _)| *from == to) {
            client.handle_datagram(now, MS, addr(4590), &d).unwrap();
        }
    }
    welcomed.sort();
    assert_eq!(welcomed, [addr(6000), addr(6001), addr(6002)]);
    for (_, client, peer) in &clients {
        assert!(client.peer(*peer).unwrap().established);
    }
    assert_eq!(server.sessions(), 3);
    assert_eq!(server.stats().handshakes_answered, 3);
}

#[test]
fn a_session_that_only_keeps_alive_rekeys_hourly_and_one_that_carried_a_message_in_ten_minutes() {
    let mut idle = Pair::new();
    let idle_peer = idle.connect();
    let mut talking = Pair::new();
    let talking_peer = talking.connect();
    talking
        .client
        .send(talking.now, talking_peer, b"hello".to_vec())
        .unwrap();
    idle.pump(|_| false);
    talking.pump(|_| false);
    // Handshakes the server answered after the first.
    let rekeys = |p: &Pair| p.server.stats().handshakes_answered - 1;
    // Both keep alive every 10 s (an empty message, as `Link::keep_alive`).
    for minute in 1..=61 {
        for _ in 0..6 {
            for (p, peer) in [(&mut idle, idle_peer), (&mut talking, talking_peer)] {
                p.advance(Duration::from_secs(10));
                p.client.send(p.now, peer, Vec::new()).unwrap();
                p.pump(|_| false);
            }
        }
        if minute == 11 {
            assert_eq!(rekeys(&talking), 1, "one that carried a message");
            assert_eq!(rekeys(&idle), 0, "one that only kept alive");
        }
    }
    assert_eq!(rekeys(&idle), 1, "within the hour");
    // The new keys carried nothing either: the next is an hour away.
    assert_eq!(rekeys(&talking), 1);
    assert!(idle.client.peer(idle_peer).unwrap().established);
}
