//! Handshakes under load and over time: re-keys (lost, hourly when
//! idle), the cookie gate against HELLO floods, and work done on other
//! threads.

use super::*;

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
fn a_session_that_only_keeps_alive_is_not_rekeyed_and_one_that_carried_a_message_is_in_ten_minutes()
{
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
    // Both keep alive every 10 s (an empty message, as `Link::keep_alive`)
    // for two hours.
    for minute in 1..=120 {
        for _ in 0..6 {
            for (p, peer) in [(&mut idle, idle_peer), (&mut talking, talking_peer)] {
                p.advance(Duration::from_secs(10));
                p.client.send(p.now, peer, Vec::new()).unwrap();
                p.pump(|_| false);
            }
        }
        if minute == 11 {
            assert_eq!(rekeys(&talking), 1, "one that carried a message");
        }
    }
    assert_eq!(rekeys(&idle), 0, "one that only kept alive");
    // The new keys carried nothing either.
    assert_eq!(rekeys(&talking), 1);
    assert!(idle.client.peer(idle_peer).unwrap().established);
    // The idle one's first message re-keys it: the message goes under the
    // old keys, and arrives.
    idle.client
        .send(idle.now, idle_peer, b"back".to_vec())
        .unwrap();
    idle.pump(|_| false);
    assert_eq!(rekeys(&idle), 1, "a message after two quiet hours");
    // Each side counts it, once.
    assert_eq!(idle.server.stats().rekeys, 1);
    assert_eq!(idle.client.stats().rekeys, 1);
    assert!(Pair::received(&mut idle.server)
        .iter()
        .any(|(_, message)| message == b"back"));
    assert!(idle.client.peer(idle_peer).unwrap().established);
}
