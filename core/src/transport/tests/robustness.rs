//! Garbage, damaged packets, small datagrams and floods: no panic, no state
//! made by garbage, no datagram over the limit, bounded reassembly memory.

use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::sample::Index;

use super::super::packet::{encode_skip, DataHeader, Packet, DATA_HEADER_LEN};
use super::super::sim::{LinkConfig, Sim};
use super::super::{Config, Endpoint, Event};
use super::{boundary_sizes, lossy, mixed_sizes, Traffic};

const A: u8 = 1;
const B: u8 = 2;

/// Real datagrams of a short exchange, and the two endpoints as they stand
/// after it, with state for the damaged copies to hit.
struct Exchange {
    a: Endpoint<u8>,
    b: Endpoint<u8>,
    now: Instant,
    datagrams: Vec<Vec<u8>>,
}

fn exchange() -> Exchange {
    let now = Instant::now();
    let mut a = Endpoint::new(Config::default(), 11);
    let mut b = Endpoint::new(Config::default(), 22);
    a.send(now, B, vec![7; 3000]).unwrap();
    a.send(now, B, Vec::new()).unwrap();
    let mut datagrams = Vec::new();
    while let Some(transmit) = a.poll_transmit(now) {
        datagrams.push(transmit.contents);
    }
    // All but the second fragment, so that the ACK carries two ranges.
    for (i, datagram) in datagrams.iter().enumerate() {
        if i != 1 {
            b.handle_datagram(now, A, datagram).unwrap();
        }
    }
    while let Some(transmit) = b.poll_transmit(now) {
        datagrams.push(transmit.contents);
    }
    datagrams.push(encode_skip(3, 4, 5));
    Exchange {
        a,
        b,
        now,
        datagrams,
    }
}

fn damage(bytes: &[u8], cut: &Index, flips: &[(Index, u8)]) -> Vec<u8> {
    let mut out = bytes[..cut.index(bytes.len() + 1)].to_vec();
    for (at, bit) in flips {
        if !out.is_empty() {
            let i = at.index(out.len());
            out[i] ^= 1 << bit;
        }
    }
    out
}

/// A fresh endpoint takes `bytes`; if they are rejected (or only an ACK,
/// which acknowledges nothing of a fresh endpoint), it is as it was.
fn assert_garbage_leaves_nothing(bytes: &[u8]) {
    let now = Instant::now();
    let mut endpoint = Endpoint::<u8>::new(Config::default(), 5);
    let result = endpoint.handle_datagram(now, 9, bytes);
    let is_ack = matches!(Packet::decode(bytes, usize::MAX), Ok(Packet::Ack(_)));
    if result.is_err() || is_ack {
        assert_eq!(endpoint.peer_count(), 0, "{result:?}");
        assert!(endpoint.poll_transmit(now).is_none());
        assert_eq!(endpoint.poll_timeout(), None);
        assert!(endpoint.poll_event().is_none());
    }
    drive(&mut endpoint, now);
}

/// Runs an endpoint's timers for a while, sending into the void, so that
/// whatever a datagram set up is exercised too.
fn drive(endpoint: &mut Endpoint<u8>, start: Instant) {
    let mut now = start;
    for _ in 0..100 {
        while endpoint.poll_transmit(now).is_some() {}
        while endpoint.poll_event().is_some() {}
        let Some(at) = endpoint.poll_timeout() else {
            return;
        };
        now = now.max(at);
        endpoint.handle_timeout(now);
    }
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic_and_garbage_makes_no_peer(
        bytes in proptest::collection::vec(any::<u8>(), 0..1300),
    ) {
        assert_garbage_leaves_nothing(&bytes);
    }

    #[test]
    fn truncated_or_flipped_packets_never_panic(
        which in any::<Index>(),
        cut in any::<Index>(),
        flips in proptest::collection::vec((any::<Index>(), 0u8..8), 0..4),
    ) {
        let mut ex = exchange();
        let damaged = damage(&ex.datagrams[which.index(ex.datagrams.len())], &cut, &flips);
        assert_garbage_leaves_nothing(&damaged);
        let _ = ex.a.handle_datagram(ex.now, B, &damaged);
        let _ = ex.b.handle_datagram(ex.now, A, &damaged);
        drive(&mut ex.a, ex.now);
        drive(&mut ex.b, ex.now);
    }
}

#[test]
fn no_datagram_exceeds_a_small_max_datagram() {
    let config = Config {
        max_datagram: 300,
        ..Config::default()
    };
    let stride = config.max_datagram - DATA_HEADER_LEN;
    let mut sim = Sim::new(0x5eed_0007);
    sim.set_default_link(LinkConfig {
        mtu: 300,
        ..lossy()
    });
    let (a, b) = (
        sim.add_endpoint(config.clone()),
        sim.add_endpoint(config.clone()),
    );
    let mut traffic = Traffic::new();
    let ab = traffic.stream(a, b);
    let ba = traffic.stream(b, a);
    let mut special = boundary_sizes(stride, 20_000);
    special.push(config.max_message);
    for size in mixed_sizes(200, 20_000, &special, 7) {
        traffic.send(&mut sim, ab, size);
    }
    for size in mixed_sizes(50, 2000, &[0], 70) {
        traffic.send(&mut sim, ba, size);
    }
    // The sim itself asserts every transmit against max_datagram.
    assert!(sim.run_until(Duration::from_secs(3600), |sim| {
        traffic.drain(sim);
        traffic.perfect(ab) && traffic.perfect(ba)
    }));
    traffic.assert_perfect(ab);
    traffic.assert_perfect(ba);
    let stats = sim.stats();
    assert!(stats.largest <= 300 && stats.too_big == 0, "{stats:?}");
}

/// Packet `pn` of peer 7's one incarnation (99): fragment `frag_index` of
/// `frag_count` of message `msg_seq`.
fn fragment(pn: u64, msg_seq: u32, frag_index: u16, frag_count: u16) -> DataHeader {
    DataHeader {
        incarnation: 99,
        pn,
        msg_seq,
        base_seq: 0,
        frag_index,
        frag_count,
    }
}

#[test]
fn a_flood_of_first_fragments_stays_within_the_reassembly_bound_and_expires() {
    let config = Config {
        max_reassembly_bytes: 64 * 1024,
        ..Config::default()
    };
    let mut endpoint = Endpoint::<u8>::new(config.clone(), 1);
    let now = Instant::now();
    let payload = vec![0u8; config.max_datagram - DATA_HEADER_LEN];
    let mut acked = 0;
    for seq in 1..=500u32 {
        let header = fragment(u64::from(seq), seq, 0, 4);
        endpoint
            .handle_datagram(now, 7, &header.encode(&payload))
            .unwrap();
        assert!(endpoint.waiting_bytes(7) <= config.max_reassembly_bytes);
        while let Some(transmit) = endpoint.poll_transmit(now) {
            if let Ok(Packet::Ack(ack)) = Packet::decode(&transmit.contents, usize::MAX) {
                acked = ack.ranges().map(|(start, end)| end - start + 1).sum();
            }
        }
    }
    assert!(endpoint.waiting_bytes(7) > config.max_reassembly_bytes / 2);
    // Only what was kept is acknowledged: a real sender would try the rest
    // again later.
    let room = config.max_reassembly_bytes / payload.len();
    assert!(
        acked as usize <= room,
        "{acked} acknowledged, room for {room}"
    );

    // The message the receiver waits for next is taken even so: refusing it
    // would leave the full buffer stuck for good.
    let mut head = Vec::new();
    for frag_index in 0..3 {
        let header = fragment(1000 + u64::from(frag_index), 0, frag_index, 3);
        endpoint
            .handle_datagram(now, 7, &header.encode(&payload))
            .unwrap();
        head.extend_from_slice(&payload);
    }
    assert!(matches!(
        endpoint.poll_event(),
        Some(Event::Received { from: 7, message, .. }) if message == head
    ));
    assert!(
        endpoint.poll_transmit(now).is_some(),
        "the head message is acknowledged"
    );

    let expiry = now + config.reassembly_timeout;
    assert_eq!(endpoint.deadline_of(7), Some(expiry));
    assert!(endpoint.poll_timeout().is_some_and(|at| at <= expiry));
    endpoint.handle_timeout(expiry);
    assert_eq!(endpoint.waiting_bytes(7), 0);
    // The rest of an expired message is no longer acknowledged: the sender
    // is to report it failed, not Delivered.
    let late = fragment(2000, 1, 1, 4);
    endpoint
        .handle_datagram(expiry, 7, &late.encode(&payload))
        .unwrap();
    assert!(endpoint.poll_transmit(expiry).is_none());
    // Nothing waits any more: only the idle timer is left, then nothing.
    let idle = expiry + config.idle_timeout;
    assert_eq!(endpoint.deadline_of(7), Some(idle));
    assert!(endpoint.poll_timeout().is_some_and(|at| at <= idle));
    endpoint.handle_timeout(idle - Duration::from_millis(1));
    assert_eq!(endpoint.peer_count(), 1, "forgotten before its idle time");
    endpoint.handle_timeout(idle);
    assert_eq!((endpoint.poll_timeout(), endpoint.peer_count()), (None, 0));
}

#[test]
fn many_peers_holding_partial_messages_stay_within_one_total_and_it_is_freed() {
    let config = Config {
        max_reassembly_bytes: 64 * 1024,
        max_reassembly_total: 256 * 1024,
        ..Config::default()
    };
    let mut endpoint = Endpoint::<u8>::new(config.clone(), 1);
    let now = Instant::now();
    let payload = vec![0u8; config.max_datagram - DATA_HEADER_LEN];
    // 50 peers, each sending first fragments of many large messages (the
    // next expected one included) and never the rest.
    for peer in 0..50u8 {
        for seq in 0..100u32 {
            let header = DataHeader {
                incarnation: 1000 + u64::from(peer),
                pn: u64::from(seq),
                msg_seq: seq,
                base_seq: 0,
                frag_index: 0,
                frag_count: 200,
            };
            endpoint
                .handle_datagram(now, peer, &header.encode(&payload))
                .unwrap();
            assert!(endpoint.reassembly_bytes() <= config.max_reassembly_total);
        }
    }
    assert!(endpoint.reassembly_bytes() > config.max_reassembly_total * 9 / 10);
    // An honest peer's message waits (its sender retries) until the
    // partial ones expire; then it fits.
    // (A whole message in one fragment is delivered at once and waits
    // nowhere: only fragments of larger ones need room.)
    let honest = |pn: u64| {
        DataHeader {
            incarnation: 7,
            pn,
            msg_seq: 0,
            base_seq: 0,
            frag_index: pn as u16 % 2,
            frag_count: 2,
        }
        .encode(&payload)
    };
    endpoint.handle_datagram(now, 99, &honest(0)).unwrap();
    assert_eq!(endpoint.waiting_bytes(99), 0, "refused, not kept");
    let expiry = now + config.reassembly_timeout;
    endpoint.handle_timeout(expiry);
    assert_eq!(endpoint.reassembly_bytes(), 0, "expired and freed");
    endpoint.handle_datagram(expiry, 99, &honest(2)).unwrap();
    endpoint.handle_datagram(expiry, 99, &honest(3)).unwrap();
    assert!(matches!(
        endpoint.poll_event(),
        Some(Event::Received { from: 99, .. })
    ));
    // Forgetting a peer frees what it held.
    let header = DataHeader {
        incarnation: 5,
        pn: 0,
        msg_seq: 3,
        base_seq: 0,
        frag_index: 0,
        frag_count: 9,
    };
    endpoint
        .handle_datagram(expiry, 42, &header.encode(&payload))
        .unwrap();
    assert!(endpoint.reassembly_bytes() > 0);
    endpoint.forget(42);
    assert_eq!(endpoint.reassembly_bytes(), 0);
}

#[test]
fn a_peer_that_never_acknowledges_gets_a_bounded_queue() {
    let config = Config {
        max_queued_bytes: 10_000,
        max_queued_total: 15_000,
        ..Config::default()
    };
    let mut endpoint = Endpoint::<u8>::new(config, 1);
    let now = Instant::now();
    for _ in 0..3 {
        endpoint.send(now, 7, vec![0; 3000]).unwrap();
    }
    assert_eq!(
        endpoint.send(now, 7, vec![0; 3000]),
        Err(super::super::SendError::QueueFull)
    );
    assert!(
        endpoint.send(now, 7, vec![0; 1000]).is_ok(),
        "what fits goes"
    );
    endpoint.send(now, 8, vec![0; 5000]).unwrap();
    assert_eq!(
        endpoint.send(now, 9, vec![0; 1000]),
        Err(super::super::SendError::QueueFull),
        "all peers together are bounded too"
    );
    assert_eq!(endpoint.queued_bytes(), 15_000);
    endpoint.forget(7);
    assert_eq!(
        endpoint.queued_bytes(),
        5_000,
        "forgetting a peer frees its queue"
    );
    endpoint.send(now, 9, vec![0; 1000]).unwrap();
}

/// A peer heard again is kept for a whole idle timeout after the last
/// datagram. Its timer entry is not moved on every datagram; the entry
/// left behind fires early, finds nothing due, and is set again.
#[test]
fn a_peer_heard_again_is_forgotten_an_idle_timeout_after_the_last_datagram_not_the_first() {
    let config = Config::default();
    let mut endpoint = Endpoint::<u8>::new(config.clone(), 1);
    let start = Instant::now();
    // Two messages, so that the acknowledgement goes at once rather than
    // on a timer of its own.
    let heard = |endpoint: &mut Endpoint<u8>, at: Instant, first: u32| {
        for seq in [first, first + 1] {
            endpoint
                .handle_datagram(
                    at,
                    7,
                    &fragment(u64::from(seq), seq, 0, 1).encode(b"still here"),
                )
                .unwrap();
        }
        assert!(endpoint.poll_transmit(at).is_some(), "acknowledged at once");
        while endpoint.poll_transmit(at).is_some() {}
        while endpoint.poll_event().is_some() {}
    };
    heard(&mut endpoint, start, 0);
    let again = start + config.idle_timeout / 2;
    while let Some(at) = endpoint.poll_timeout().filter(|&at| at <= again) {
        endpoint.handle_timeout(at);
    }
    assert_eq!(endpoint.poll_timeout(), Some(start + config.idle_timeout));
    heard(&mut endpoint, again, 2);
    let idle = again + config.idle_timeout;
    assert_eq!(endpoint.deadline_of(7), Some(idle));
    // Every timer that comes before the real one finds the peer still wanted.
    let mut fired = 0;
    while let Some(at) = endpoint.poll_timeout().filter(|&at| at < idle) {
        endpoint.handle_timeout(at);
        assert_eq!(endpoint.peer_count(), 1, "forgotten at {:?}", at - start);
        fired += 1;
        assert!(fired < 10, "the early timer keeps firing");
    }
    assert_eq!(fired, 1, "the first idle time, left where it was");
    assert_eq!(endpoint.poll_timeout(), Some(idle));
    endpoint.handle_timeout(idle);
    assert_eq!((endpoint.peer_count(), endpoint.poll_timeout()), (0, None));
}
