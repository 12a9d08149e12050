//! Acknowledgements: they ride on DATA going the same way, wait at most
//! `max_ack_delay` for one, go at once when a second packet, a gap or a
//! repeat comes, and the sender's timers allow for the wait.

use std::time::Duration;

use super::super::sim::{LinkConfig, NodeId, Sim};
use super::super::{Config, Endpoint, Event, MessageId, Receipt};

const DELAY: Duration = Duration::from_millis(10);

fn pair(seed: u64) -> (Sim, NodeId, NodeId) {
    let mut sim = Sim::new(seed);
    sim.set_default_link(LinkConfig {
        delay: DELAY,
        ..LinkConfig::default()
    });
    let a = sim.add_endpoint(Config::default());
    let b = sim.add_endpoint(Config::default());
    (sim, a, b)
}

/// Runs until `node` has the event `want`; the time it took.
fn until_event(sim: &mut Sim, node: NodeId, want: &Event<NodeId>) -> Duration {
    let start = sim.elapsed();
    let mut seen = false;
    sim.run_until(Duration::from_secs(60), |sim| {
        while let Some(event) = sim.poll_event(node) {
            seen |= same(&event, want);
        }
        seen
    });
    assert!(seen, "{want:?} never came");
    sim.elapsed() - start
}

/// The same event, whichever packet brought a message in.
fn same(event: &Event<NodeId>, want: &Event<NodeId>) -> bool {
    match (event, want) {
        (
            Event::Received { from, message, .. },
            Event::Received {
                from: want_from,
                message: want_message,
                ..
            },
        ) => from == want_from && message == want_message,
        _ => event == want,
    }
}

fn received(from: NodeId, message: Vec<u8>) -> Event<NodeId> {
    Event::Received {
        from,
        message,
        receipt: Receipt::NONE,
    }
}

fn delivered(to: NodeId, id: MessageId) -> Event<NodeId> {
    Event::Delivered { to, id }
}

#[test]
fn a_reply_carries_the_acknowledgement_of_its_request() {
    let (mut sim, a, b) = pair(0xac_0001);
    let rounds = 20u64;
    for i in 0..rounds {
        let request = format!("request {i}").into_bytes();
        sim.send(a, b, request.clone()).unwrap();
        until_event(&mut sim, b, &received(a, request));
        // Answered at once, as the server answers `list`.
        let reply = format!("reply {i}").into_bytes();
        sim.send(b, a, reply.clone()).unwrap();
        until_event(&mut sim, a, &received(b, reply));
    }
    // Let the last acknowledgement go, alone, after its wait.
    sim.run_for(Duration::from_secs(1));
    let stats = sim.stats();
    assert_eq!(stats.lost + stats.cut + stats.filtered, 0);
    // Each request carries the ACK of the reply before it and each reply
    // the ACK of its request: two datagrams a round, and the last ACK.
    // With an ACK of its own for each message it would be four a round.
    assert_eq!(stats.sent, 2 * rounds + 1, "{stats:?}");
}

#[test]
fn a_lone_message_is_acknowledged_after_the_wait_and_not_sent_twice() {
    let (mut sim, a, b) = pair(0xac_0002);
    // Round trips measured first, two messages at a time (acknowledged at
    // once), so the probe timeout is short: 20 ms and a little, plus the
    // 25 ms the peer may hold an ACK.
    for i in 0..30u8 {
        sim.send(a, b, vec![i; 100]).unwrap();
        let id = sim.send(a, b, vec![i; 100]).unwrap();
        until_event(&mut sim, a, &delivered(b, id));
    }
    let before = sim.stats().sent;
    let id = sim.send(a, b, b"alone".to_vec()).unwrap();
    let took = until_event(&mut sim, a, &delivered(b, id));
    let wait = Config::default().max_ack_delay;
    assert!(took >= 2 * DELAY + wait, "acknowledged after {took:?}");
    assert!(
        took < 2 * DELAY + wait + Duration::from_millis(2),
        "{took:?}"
    );
    // One DATA, one ACK: the sender's probe timer allowed for the wait.
    assert_eq!(sim.stats().sent - before, 2);
}

#[test]
fn a_second_packet_is_acknowledged_at_once() {
    let (mut sim, a, b) = pair(0xac_0003);
    let first = sim.send(a, b, b"one".to_vec()).unwrap();
    let second = sim.send(a, b, b"two".to_vec()).unwrap();
    let took = until_event(&mut sim, a, &delivered(b, second));
    assert_eq!(took, 2 * DELAY, "no wait for a second packet");
    assert!(
        std::iter::from_fn(|| sim.poll_event(a)).all(|e| e != delivered(b, first)),
        "the first was told before"
    );
}

#[test]
fn a_big_message_is_acknowledged_every_second_fragment() {
    let (mut sim, a, b) = pair(0xac_0004);
    // 20 full fragments.
    let size = 20 * (Config::default().max_datagram - super::super::packet::DATA_HEADER_LEN);
    let id = sim.send(a, b, vec![7; size]).unwrap();
    let took = until_event(&mut sim, a, &delivered(b, id));
    assert_eq!(took, 2 * DELAY);
    assert_eq!(sim.stats().sent, 20 + 10);
}

#[test]
fn once_a_session_is_busy_a_stream_is_acknowledged_every_tenth_packet() {
    let (mut sim, a, b) = pair(0xac_0008);
    let send = |sim: &mut Sim, count: u32| {
        let ids: Vec<MessageId> = (0..count)
            .map(|i| sim.send(a, b, i.to_be_bytes().to_vec()).unwrap())
            .collect();
        until_event(sim, a, &delivered(b, *ids.last().unwrap()));
        sim.run_for(Duration::from_secs(1));
    };
    // The first hundred packets: an ACK every second one.
    send(&mut sim, 100);
    let before = sim.stats().sent;
    assert_eq!(before, 100 + 50);
    // Then every tenth, and the last ones after the wait.
    send(&mut sim, 55);
    assert_eq!(sim.stats().sent - before, 55 + 6);
}

#[test]
fn on_a_busy_session_a_gap_is_acknowledged_at_once_and_every_second_packet_after() {
    let (mut sim, a, b) = pair(0xac_0009);
    for i in 0..100u32 {
        sim.send(a, b, i.to_be_bytes().to_vec()).unwrap();
    }
    sim.run_for(Duration::from_secs(1));
    while sim.poll_event(a).is_some() {}
    // One packet lost on the way: the next one shows the gap, and the
    // sender hears of it one round trip after sending, not 25 ms later.
    let mut dropped = false;
    sim.set_filter(
        a,
        b,
        Some(Box::new(move |_| !std::mem::replace(&mut dropped, true))),
    );
    let lost = sim.send(a, b, b"lost".to_vec()).unwrap();
    let next = sim.send(a, b, b"next".to_vec()).unwrap();
    let took = until_event(&mut sim, a, &delivered(b, next));
    assert_eq!(took, 2 * DELAY, "the ACK showing the gap went at once");
    until_event(&mut sim, a, &delivered(b, lost));
    sim.run_for(Duration::from_secs(1));
    // After a loss, every second packet is acknowledged again.
    let before = sim.stats().sent;
    let ids: Vec<MessageId> = (0..20u32)
        .map(|i| sim.send(a, b, i.to_be_bytes().to_vec()).unwrap())
        .collect();
    until_event(&mut sim, a, &delivered(b, *ids.last().unwrap()));
    sim.run_for(Duration::from_secs(1));
    assert_eq!(sim.stats().sent - before, 20 + 10);
}

#[test]
fn an_endpoint_about_to_stop_sends_what_it_held_back() {
    let (mut sim, a, b) = pair(0xac_0005);
    let id = sim.send(a, b, b"bye".to_vec()).unwrap();
    until_event(&mut sim, b, &received(a, b"bye".to_vec()));
    sim.endpoint_mut(b).acknowledge_now();
    sim.flush(b);
    let took = until_event(&mut sim, a, &delivered(b, id));
    assert_eq!(took, DELAY, "the ACK left when b was told to stop");
}

#[test]
fn a_message_that_wants_no_answer_is_acknowledged_when_the_receiver_says_so() {
    let (mut sim, a, b) = pair(0xac_0007);
    let id = sim.send(a, b, b"a push".to_vec()).unwrap();
    until_event(&mut sim, b, &received(a, b"a push".to_vec()));
    // b's application sees a push: no reply will carry the ACK.
    sim.endpoint_mut(b).acknowledge(a);
    sim.flush(b);
    let took = until_event(&mut sim, a, &delivered(b, id));
    assert_eq!(took, DELAY, "no wait for the 25 ms");
    sim.run_for(Duration::from_secs(1));
    assert_eq!(sim.stats().sent, 2, "one DATA, one ACK");
}

#[test]
fn an_empty_message_a_keepalive_is_acknowledged_at_once() {
    let (mut sim, a, b) = pair(0xac_0006);
    let id = sim.send(a, b, Vec::new()).unwrap();
    let took = until_event(&mut sim, a, &delivered(b, id));
    assert_eq!(took, 2 * DELAY, "no wait: the sender waits on it");
}

#[test]
fn packet_numbers_at_the_end_of_their_range_are_taken_without_a_panic() {
    use super::super::packet::{encode_skip, DataHeader};
    let now = std::time::Instant::now();
    let mut b: Endpoint<u8> = Endpoint::new(Config::default(), 2);
    // A hostile peer numbers its packets from the top; the fuzzer found
    // that a packet after u64::MAX overflowed the "in order" check.
    for pn in [u64::MAX, 0, u64::MAX, 1] {
        let _ = b.handle_datagram(now, 1, &encode_skip(7, pn, 0));
        let data = DataHeader {
            incarnation: 7,
            pn,
            msg_seq: 0,
            base_seq: 0,
            frag_index: 0,
            frag_count: 1,
        };
        let _ = b.handle_datagram(now, 1, &data.encode(b"x"));
        while b.poll_transmit(now).is_some() {}
    }
}

/// Hands `b` packet `pn` from peer 1: the `pn`th message, whole; the
/// receipts of what it delivered.
fn take_message(b: &mut Endpoint<u8>, now: std::time::Instant, pn: u64) -> Vec<Receipt> {
    use super::super::packet::DataHeader;
    let data = DataHeader {
        incarnation: 7,
        pn,
        msg_seq: pn as u32,
        base_seq: 0,
        frag_index: 0,
        frag_count: 1,
    };
    b.handle_datagram(now, 1, &data.encode(b"x")).unwrap();
    std::iter::from_fn(|| b.poll_event())
        .filter_map(|event| match event {
            Event::Received { receipt, .. } => Some(receipt),
            _ => None,
        })
        .collect()
}

/// Runs until `node` receives `message` from `from`: the packet that
/// brought it.
fn receipt_of(sim: &mut Sim, node: NodeId, from: NodeId, message: &[u8]) -> Receipt {
    let mut receipt = None;
    sim.run_until(Duration::from_secs(60), |sim| {
        while let Some(event) = sim.poll_event(node) {
            if let Event::Received {
                from: sender,
                message: got,
                receipt: r,
            } = event
            {
                if sender == from && got == message {
                    receipt = Some(r);
                }
            }
        }
        receipt.is_some()
    });
    receipt.expect("the message never came")
}

/// Whether `node` hears `want` within `limit` of virtual time.
fn heard_within(sim: &mut Sim, node: NodeId, want: &Event<NodeId>, limit: Duration) -> bool {
    let mut seen = false;
    sim.run_until(limit, |sim| {
        while let Some(event) = sim.poll_event(node) {
            seen |= same(&event, want);
        }
        seen
    });
    seen
}

#[test]
fn a_held_message_is_acknowledged_only_once_released() {
    let (mut sim, a, b) = pair(0xac_0009);
    // A first message, not held, gives a its measure of the round trip.
    let first = sim.send(a, b, b"first".to_vec()).unwrap();
    until_event(&mut sim, a, &delivered(b, first));
    let line = sim.send(a, b, b"a line".to_vec()).unwrap();
    let receipt = receipt_of(&mut sim, b, a, b"a line");
    // b's application keeps the line (on disk) before the sender may hear
    // it arrived.
    let now = sim.now();
    assert!(sim.endpoint_mut(b).hold_ack(now, a, receipt));
    // Long past the 25 ms an ACK waits at most, and a's probe timeouts: a
    // sends the line again, and b still does not acknowledge it.
    assert!(
        !heard_within(&mut sim, a, &delivered(b, line), Duration::from_secs(1)),
        "acknowledged while held"
    );
    assert!(sim.stats().sent >= 5, "a probed: {:?}", sim.stats());
    let now = sim.now();
    sim.endpoint_mut(b).release_ack(now, a, receipt, false);
    sim.flush(b);
    let took = until_event(&mut sim, a, &delivered(b, line));
    assert_eq!(
        took, DELAY,
        "the acknowledgement was due: it goes at the release"
    );
}

#[test]
fn a_hold_ends_by_itself_after_its_limit() {
    let limit = Config::default().max_ack_hold;
    let (mut sim, a, b) = pair(0xac_000a);
    let line = sim.send(a, b, b"a line".to_vec()).unwrap();
    let receipt = receipt_of(&mut sim, b, a, b"a line");
    let (now, held_at) = (sim.now(), sim.elapsed());
    assert!(sim.endpoint_mut(b).hold_ack(now, a, receipt));
    // Never released (the application waits on something that does not
    // come): the sender is not kept waiting past the limit, nor fails.
    until_event(&mut sim, a, &delivered(b, line));
    let at = sim.elapsed() - held_at;
    assert!(
        at >= limit && at <= limit + DELAY,
        "delivered {at:?} after the hold"
    );
}

#[test]
fn a_hold_keeps_back_its_packet_and_later_ones_and_not_earlier_ones() {
    use super::super::packet::Packet;
    let now = std::time::Instant::now();
    let mut b: Endpoint<u8> = Endpoint::new(Config::default(), 2);
    let receipts: Vec<Receipt> = (0..3)
        .flat_map(|pn| take_message(&mut b, now, pn))
        .collect();
    assert_eq!(receipts.len(), 3);
    // The second and third messages are held; the first is not.
    assert!(b.hold_ack(now, 1, receipts[1]));
    assert!(b.hold_ack(now, 1, receipts[2]));
    let acked = |b: &mut Endpoint<u8>, at| -> Vec<(u64, u64)> {
        let sent = b.poll_transmit(at).expect("an acknowledgement");
        assert!(b.poll_transmit(at).is_none());
        match Packet::decode(&sent.contents, usize::MAX).unwrap() {
            Packet::Ack(ack) => ack.ranges().collect(),
            _ => panic!("not an ACK alone"),
        }
    };
    // Due, and cut by the holds: it waits for them to end, up to the
    // max ACK delay; then what came before them goes.
    b.acknowledge(1);
    assert!(b.poll_transmit(now).is_none(), "waits for the holds");
    let later = now + Config::default().max_ack_delay;
    b.handle_timeout(later);
    assert_eq!(
        acked(&mut b, later),
        vec![(0, 0)],
        "only what came before the holds"
    );
    // Releasing the later hold uncovers nothing: the earlier still holds.
    b.release_ack(later, 1, receipts[2], true);
    assert!(
        b.poll_transmit(later).is_none(),
        "nothing new to acknowledge"
    );
    b.release_ack(later, 1, receipts[1], false);
    assert_eq!(
        acked(&mut b, later),
        vec![(0, 2)],
        "due while held: at once"
    );
}

#[test]
fn a_hold_does_not_stretch_the_senders_round_trip() {
    let (mut sim, a, b) = pair(0xac_000b);
    // The first message of a session is held for 600 ms (a lookup, a busy
    // disk): less than a's first probe timeout, so a measures nothing
    // else meanwhile.
    let held = sim.send(a, b, b"held".to_vec()).unwrap();
    let receipt = receipt_of(&mut sim, b, a, b"held");
    let now = sim.now();
    assert!(sim.endpoint_mut(b).hold_ack(now, a, receipt));
    sim.run_for(Duration::from_millis(600));
    let now = sim.now();
    sim.endpoint_mut(b).release_ack(now, a, receipt, true);
    sim.flush(b);
    until_event(&mut sim, a, &delivered(b, held));
    // One answered at once: a measures the 20 ms round trip.
    let quick = sim.send(a, b, b"quick".to_vec()).unwrap();
    until_event(&mut sim, a, &delivered(b, quick));
    // The next one is lost once: a sends it again after its probe
    // timeout, which follows the 20 ms, not the 600 ms of the hold.
    let mut dropped = false;
    sim.set_filter(
        a,
        b,
        Some(Box::new(move |_: &[u8]| {
            !std::mem::replace(&mut dropped, true)
        })),
    );
    let next = sim.send(a, b, b"next".to_vec()).unwrap();
    let took = until_event(&mut sim, a, &delivered(b, next));
    assert!(
        took < Duration::from_millis(300),
        "recovered after {took:?}"
    );
}

#[test]
fn a_round_trip_from_the_handshake_paces_a_fresh_sessions_probes() {
    for seeded in [false, true] {
        let (mut sim, a, b) = pair(0xac_000c);
        if seeded {
            // What the handshake measured: 20 ms.
            let now = sim.now();
            sim.endpoint_mut(a).seed_rtt(now, b, 2 * DELAY);
        }
        // The session's first message is held (a lookup, a busy disk):
        // its ACK, when it comes, gives a no round trip.
        sim.send(a, b, b"held".to_vec()).unwrap();
        let receipt = receipt_of(&mut sim, b, a, b"held");
        let now = sim.now();
        assert!(sim.endpoint_mut(b).hold_ack(now, a, receipt));
        sim.run_for(Duration::from_millis(600));
        // Seeded, a probes at the pace of the 20 ms; not, at that of the
        // 333 ms it assumes before any measure (its first probe after
        // about a second).
        let sent = sim.stats().sent;
        if seeded {
            assert!(sent >= 4, "{sent} datagrams in 600 ms");
        } else {
            assert_eq!(sent, 1, "no probe yet: {sent}");
        }
    }
}

#[test]
fn a_hold_lets_go_when_the_sender_would_otherwise_stall() {
    use super::super::packet::Packet;
    let now = std::time::Instant::now();
    let mut b: Endpoint<u8> = Endpoint::new(Config::default(), 2);
    let take = |b: &mut Endpoint<u8>, pn: u64| take_message(b, now, pn)[0];
    let largest_acked = |b: &mut Endpoint<u8>| -> Option<u64> {
        b.acknowledge(1);
        let mut largest = None;
        while let Some(sent) = b.poll_transmit(now) {
            if let Packet::Ack(ack) = Packet::decode(&sent.contents, usize::MAX).unwrap() {
                largest = Some(ack.largest());
            }
        }
        largest
    };
    // The first push is held (its handler waits for a reply, say): the 63
    // after it are not acknowledged either.
    let held = take(&mut b, 0);
    assert!(b.hold_ack(now, 1, held));
    for pn in 1..64 {
        take(&mut b, pn);
    }
    assert_eq!(largest_acked(&mut b), None, "held back");
    // The 64th past it: the receiver is far behind, and lets go rather
    // than stall its sender (whose reply may be behind these).
    take(&mut b, 64);
    assert_eq!(largest_acked(&mut b), Some(64));
}

#[test]
fn pushes_held_and_let_go_as_they_are_read_take_no_more_acks_than_unheld() {
    let now = std::time::Instant::now();
    // A stream of 200 pushes; each read (and let go) before anything is
    // sent, as a client's reader does with a group's lines.
    let acks = |held: bool| -> usize {
        let mut b: Endpoint<u8> = Endpoint::new(Config::default(), 2);
        let mut sent = 0;
        for pn in 0..200u64 {
            for receipt in take_message(&mut b, now, pn) {
                if held {
                    assert!(b.hold_ack(now, 1, receipt));
                    // Some go out while it is held...
                    while b.poll_transmit(now).is_some() {
                        sent += 1;
                    }
                    b.release_ack(now, 1, receipt, false);
                }
            }
            while b.poll_transmit(now).is_some() {
                sent += 1;
            }
        }
        sent
    };
    let (unheld, held) = (acks(false), acks(true));
    // Every second of the first 100, every tenth after.
    assert_eq!(unheld, 50 + 9);
    assert!(
        held <= unheld,
        "{held} ACKs held and let go, {unheld} not held"
    );
}
