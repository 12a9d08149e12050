//! Sessions: talking through one, what is refused, lost HELLOs, moving
//! to a new address, replays, IK identities, the server's key, keys kept
//! expanded while busy.

use super::*;

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
    assert!(events.iter().any(|event| matches!(
        event,
        SecureEvent::Received { from, message, .. } if *from == at_server && message == b"second"
    )));
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
fn a_signed_in_session_closes_once_silent_for_the_presence_timeout_in_flight_or_not() {
    let silence = Duration::from_secs(3);
    let mut p = Pair::with_server_config(SecureConfig {
        confirmed_silence: Some(silence),
        ..SecureConfig::server()
    });
    let peer = p.connect();
    p.client.send(p.now, peer, b"signin".to_vec()).unwrap();
    p.pump(|_| false);
    let at_server = PeerId(*p.server.conns.keys().next().unwrap());
    let closed = |endpoint: &mut SecureEndpoint| {
        let mut closed = false;
        while let Some(event) = endpoint.poll_event() {
            closed |= event == SecureEvent::Closed { peer: at_server };
        }
        closed
    };

    // Not signed in yet: silence alone does not close it (a minute does).
    for _ in 0..5 {
        p.advance(Duration::from_secs(1));
    }
    assert!(!closed(&mut p.server));
    assert_eq!(p.server.sessions(), 1);

    // Signed in, and heard from: keepalives keep it, however long.
    p.server.confirm(at_server);
    for _ in 0..10 {
        p.client.send(p.now, peer, Vec::new()).unwrap();
        p.pump(|_| false);
        p.advance(Duration::from_secs(1));
    }
    assert!(!closed(&mut p.server), "heard from every second");
    let last_heard = p.now - Duration::from_secs(1);

    // The client vanishes while the server has a push in flight to it.
    p.server.send(p.now, at_server, b"push".to_vec()).unwrap();
    let step = Duration::from_millis(100);
    let mut gone_after = None;
    while p.now < last_heard + silence * 2 {
        p.advance(step);
        while p.server.poll_transmit(p.now, p.now_ms).is_some() {}
        let mut failed = false;
        let mut gone = false;
        while let Some(event) = p.server.poll_event() {
            failed |= matches!(event, SecureEvent::DeliveryFailed { to, .. } if to == at_server);
            gone |= event == SecureEvent::Closed { peer: at_server };
        }
        if gone {
            assert!(failed, "the push in flight is reported failed");
            gone_after = Some(p.now - last_heard);
            break;
        }
    }
    let gone_after = gone_after.expect("the silent session closed");
    assert!(
        gone_after > silence && gone_after <= silence + silence / 4 + step,
        "closed {gone_after:?} after the last datagram; the timeout is {silence:?}"
    );
    assert_eq!(p.server.sessions(), 0);
}
