//! Peers that vanish, restart, fail and come back, and what the other side
//! sees: bounded failure, forgotten state, messages flowing again.

use std::collections::BTreeSet;
use std::time::Duration;

use super::super::packet::{Packet, DATA_HEADER_LEN};
use super::super::sim::{LinkConfig, Sim};
use super::super::{Config, SendError};
use super::{lossy, mixed_sizes, Traffic};

const HOUR: Duration = Duration::from_secs(3600);

#[test]
fn a_vanished_peer_fails_every_outstanding_message_in_bounded_time_then_is_forgotten() {
    let link = LinkConfig {
        delay: Duration::from_millis(20),
        jitter: Duration::from_millis(5),
        ..LinkConfig::default()
    };
    let mut sim = Sim::new(0x5eed_0003);
    sim.set_default_link(link.clone());
    let config = Config::default();
    let (a, b) = (
        sim.add_endpoint(config.clone()),
        sim.add_endpoint(config.clone()),
    );
    let mut traffic = Traffic::new();
    let stream = traffic.stream(a, b);
    // More than a window's worth (256 fragments of 1170 bytes), so some wait
    // in the queue when the peer goes.
    for _ in 0..30 {
        traffic.send(&mut sim, stream, 20_000);
    }
    sim.run_for(Duration::from_millis(70));
    traffic.drain(&mut sim);
    sim.cut(a, b, true);
    sim.cut(b, a, true);
    let vanished = sim.now();
    for _ in 0..5 {
        traffic.send(&mut sim, stream, 3000);
    }
    let delivered_before = traffic.streams[stream].delivered.clone();
    let outstanding = traffic.streams[stream].outstanding();
    assert!(
        !delivered_before.is_empty() && outstanding.len() > 5,
        "{} outstanding",
        outstanding.len()
    );

    // The last acknowledgement comes within a round trip of the cut; then
    // at most max_tries probe timeouts of at most max_backoff each, and
    // before them at most one loss delay (9/8 of a round trip).
    let round_trip = link.worst_delay() * 2;
    let bound = config.max_backoff * config.max_tries + round_trip * 3;
    let finished = sim.run_until(HOUR, |sim| {
        traffic.drain(sim);
        traffic.streams[stream].finished()
    });
    assert!(finished, "outstanding messages never failed");
    let failed_at = sim.now();
    assert!(
        failed_at - vanished <= bound,
        "failed {:?} after vanishing; bound {bound:?}",
        failed_at - vanished
    );
    let s = &traffic.streams[stream];
    assert_eq!(s.failed, outstanding);
    assert_eq!(s.delivered, delivered_before);
    assert_eq!(sim.endpoint(a).in_flight(b), 0);

    // A SKIP for the receiver is tried as long again, then the peer idles.
    let forget_by = failed_at + config.max_backoff * config.max_tries + config.idle_timeout;
    assert!(
        sim.run_until(HOUR, |sim| sim.endpoint(a).poll_timeout().is_none()),
        "timers never stopped"
    );
    assert!(
        sim.now() <= forget_by,
        "forgotten {:?} after failing",
        sim.now() - failed_at
    );
    assert_eq!(sim.endpoint(a).peer_count(), 0);
    // The vanished side forgets too, and then nothing is left to happen.
    assert!(sim.run_until(HOUR, |sim| sim.endpoint(b).poll_timeout().is_none()));
    assert_eq!(sim.endpoint(b).peer_count(), 0);
}

#[test]
fn forgetting_a_peer_fails_its_outstanding_messages() {
    let mut sim = Sim::new(0x5eed_0031);
    let (a, b) = (
        sim.add_endpoint(Config::default()),
        sim.add_endpoint(Config::default()),
    );
    sim.cut(a, b, true);
    let mut traffic = Traffic::new();
    let stream = traffic.stream(a, b);
    for size in [0, 10, 5000] {
        traffic.send(&mut sim, stream, size);
    }
    sim.endpoint_mut(a).forget(b);
    sim.flush(a);
    traffic.drain(&mut sim);
    assert_eq!(traffic.streams[stream].failed.len(), 3);
    assert_eq!(sim.endpoint(a).in_flight(b), 0);
    assert_eq!(sim.endpoint(a).poll_timeout(), None);
}

#[test]
fn messages_sent_after_the_receiver_restarts_arrive() {
    let mut sim = Sim::new(0x5eed_0004);
    sim.set_default_link(lossy());
    let (a, b) = (
        sim.add_endpoint(Config::default()),
        sim.add_endpoint(Config::default()),
    );
    let mut traffic = Traffic::new();
    let stream = traffic.stream(a, b);
    let sizes = mixed_sizes(150, 20_000, &[8, 20_000], 4);
    for &size in &sizes[..50] {
        traffic.send(&mut sim, stream, size.max(8));
    }
    assert!(sim.run_until(HOUR, |sim| {
        traffic.drain(sim);
        traffic.perfect(stream)
    }));
    // Restart with messages on the way: those may arrive at either process.
    for &size in &sizes[50..100] {
        traffic.send(&mut sim, stream, size.max(8));
    }
    sim.run_for(Duration::from_millis(15));
    traffic.drain(&mut sim);
    sim.restart(b);
    traffic.receiver_restarted(stream);
    let first_after = traffic.streams[stream].ids.len();
    for &size in &sizes[100..] {
        traffic.send(&mut sim, stream, size.max(8));
    }
    let done = sim.run_until(HOUR, |sim| {
        traffic.drain(sim);
        let s = &traffic.streams[stream];
        s.finished() && s.received.last() == Some(&(s.sizes.len() - 1))
    });
    let s = &traffic.streams[stream];
    assert!(
        done,
        "did not finish: received {:?}, {} delivered, {} failed of {}, in flight {}, {:?}",
        &s.received[s.received.len().saturating_sub(20)..],
        s.delivered.len(),
        s.failed.len(),
        s.ids.len(),
        sim.endpoint(a).in_flight(b),
        sim.elapsed()
    );
    let received: BTreeSet<usize> = s
        .received
        .iter()
        .copied()
        .filter(|&i| i >= first_after)
        .collect();
    assert_eq!(
        received,
        (first_after..s.sizes.len()).collect(),
        "messages after the restart"
    );
    assert!(s.failed.is_empty(), "{} failed", s.failed.len());
}

#[test]
fn a_restarted_sender_is_heard_from_its_first_message() {
    let mut sim = Sim::new(0x5eed_0041);
    sim.set_default_link(lossy());
    let (a, b) = (
        sim.add_endpoint(Config::default()),
        sim.add_endpoint(Config::default()),
    );
    let mut traffic = Traffic::new();
    let before = traffic.stream(a, b);
    for _ in 0..30 {
        traffic.send(&mut sim, before, 2000);
    }
    assert!(sim.run_until(HOUR, |sim| {
        traffic.drain(sim);
        traffic.perfect(before)
    }));
    for _ in 0..10 {
        traffic.send(&mut sim, before, 5000);
    }
    sim.run_for(Duration::from_millis(12));
    sim.restart(a);
    // Let what the old process sent settle before the new one speaks.
    sim.run_for(Duration::from_secs(1));
    traffic.drain(&mut sim);

    let after = traffic.stream(a, b);
    let sizes = mixed_sizes(30, 10_000, &[0, 1, 10_000], 41);
    for &size in &sizes {
        traffic.send(&mut sim, after, size);
    }
    assert!(sim.run_until(HOUR, |sim| {
        traffic.drain(sim);
        traffic.perfect(after)
    }));
    traffic.assert_perfect(after);
}

#[test]
fn after_a_failed_message_later_ones_are_delivered() {
    let mut sim = Sim::new(0x5eed_0005);
    let config = Config::default();
    let stride = config.max_datagram - DATA_HEADER_LEN;
    let (a, b) = (
        sim.add_endpoint(config.clone()),
        sim.add_endpoint(config.clone()),
    );
    // One fragment of message 1 never gets through; the rest of it does.
    sim.set_filter(
        a,
        b,
        Some(Box::new(|bytes: &[u8]| {
            matches!(Packet::decode(bytes, usize::MAX), Ok(Packet::Data { header, .. })
                if header.msg_seq == 1 && header.frag_index == 3)
        })),
    );
    let mut traffic = Traffic::new();
    let stream = traffic.stream(a, b);
    let m0 = traffic.send(&mut sim, stream, 100);
    let m1 = traffic.send(&mut sim, stream, 10 * stride);
    let m2 = traffic.send(&mut sim, stream, 200);
    let start = sim.now();
    // Message 2 is complete at the receiver but waits behind message 1 until
    // the sender gives up on it and says so, with nothing more to send.
    assert!(sim.run_until(HOUR, |sim| {
        traffic.drain(sim);
        traffic.streams[stream].received.len() == 2
    }));
    let s = &traffic.streams[stream];
    assert_eq!(s.received, vec![0, 2]);
    assert_eq!(s.failed, BTreeSet::from([m1]));
    assert_eq!(s.delivered, BTreeSet::from([m0, m2]));
    assert!(
        sim.now() - start <= config.max_backoff * config.max_tries,
        "took {:?}",
        sim.now() - start
    );

    sim.set_filter(a, b, None);
    traffic.send(&mut sim, stream, 5 * stride);
    traffic.send(&mut sim, stream, 10);
    assert!(sim.run_until(HOUR, |sim| {
        traffic.drain(sim);
        traffic.streams[stream].finished()
    }));
    let s = &traffic.streams[stream];
    assert_eq!(s.received, vec![0, 2, 3, 4]);
    assert_eq!(s.failed, BTreeSet::from([m1]));
}

#[test]
fn a_session_that_used_every_message_number_starts_over() {
    let mut sim = Sim::new(0x5eed_0051);
    let (a, b) = (
        sim.add_endpoint(Config::default()),
        sim.add_endpoint(Config::default()),
    );
    let mut traffic = Traffic::new();
    let stream = traffic.stream(a, b);
    traffic.send(&mut sim, stream, 10);
    assert!(sim.run_until(HOUR, |sim| {
        traffic.drain(sim);
        traffic.perfect(stream)
    }));
    let peer = sim.endpoint_mut(a).peers.get_mut(&b).expect("peer state");
    peer.send.set_next_msg_seq(u32::MAX - 2);
    traffic.send(&mut sim, stream, 20);
    traffic.send(&mut sim, stream, 30);
    let now = sim.now();
    assert_eq!(
        sim.endpoint_mut(a).send(now, b, vec![1]),
        Err(SendError::SequenceExhausted)
    );
    assert!(sim.run_until(HOUR, |sim| {
        traffic.drain(sim);
        traffic.perfect(stream)
    }));
    for size in [40, 50] {
        traffic.send(&mut sim, stream, size);
    }
    assert!(sim.run_until(HOUR, |sim| {
        traffic.drain(sim);
        traffic.perfect(stream)
    }));
    traffic.assert_perfect(stream);
}

/// Traffic both ways under many seeds; then the receiver of one direction
/// restarts mid-stream and more messages follow. Everything sent after the
/// restart arrives in order, nothing fails, and both ends go quiet at last.
#[test]
fn many_seeds_of_traffic_through_a_restart_keep_every_guarantee() {
    for seed in 0..16 {
        let mut sim = Sim::new(seed);
        sim.set_default_link(lossy());
        let (a, b) = (
            sim.add_endpoint(Config::default()),
            sim.add_endpoint(Config::default()),
        );
        let mut traffic = Traffic::new();
        let ab = traffic.stream(a, b);
        let ba = traffic.stream(b, a);
        let sizes = mixed_sizes(150, 40_000, &[8, 1170, 1171], seed);
        for (i, &size) in sizes.iter().enumerate() {
            traffic.send(&mut sim, ab, size.max(8));
            traffic.send(&mut sim, ba, (size / 8).max(8));
            if i % 10 == 0 {
                sim.run_for(Duration::from_millis(7));
                traffic.drain(&mut sim);
            }
        }
        traffic.drain(&mut sim);
        sim.restart(b);
        traffic.receiver_restarted(ab);
        for &size in &sizes[..50] {
            traffic.send(&mut sim, ab, size.max(8));
        }
        let last = traffic.streams[ab].ids.len() - 1;
        let done = sim.run_until(HOUR, |sim| {
            traffic.drain(sim);
            let s = &traffic.streams[ab];
            s.finished() && s.received.last() == Some(&last)
        });
        let s = &traffic.streams[ab];
        assert!(
            done,
            "seed {seed}: {} of {} finished",
            s.delivered.len() + s.failed.len(),
            s.ids.len()
        );
        assert!(
            s.failed.is_empty(),
            "seed {seed}: {} failed",
            s.failed.len()
        );
        let after: BTreeSet<usize> = s.received.iter().copied().filter(|&i| i >= 150).collect();
        assert_eq!(after, (150..=last).collect(), "seed {seed}");
        assert!(
            sim.run_until(HOUR, |sim| {
                sim.endpoint(a).poll_timeout().is_none() && sim.endpoint(b).poll_timeout().is_none()
            }),
            "seed {seed}: timers never stopped"
        );
    }
}

#[test]
fn an_idle_peer_gives_back_its_message_state_and_numbers_on_where_it_left_off() {
    // Lossy both ways: late duplicates of old packets and of their ACKs
    // reach a peer at rest, and must not confuse the numbering it resumes.
    let mut sim = Sim::new(0x5eed_0011);
    sim.set_default_link(lossy());
    let (a, b) = (
        sim.add_endpoint(Config::default()),
        sim.add_endpoint(Config::default()),
    );
    let mut traffic = Traffic::new();
    let (ab, ba) = (traffic.stream(a, b), traffic.stream(b, a));
    let sizes = mixed_sizes(40, 20_000, &[0, 1, 5_000], 11);
    for (round, &size) in sizes.iter().enumerate() {
        traffic.send(&mut sim, ab, size);
        if round % 3 == 0 {
            traffic.send(&mut sim, ba, size / 2);
        }
        let settled = sim.run_until(HOUR, |sim| {
            traffic.drain(sim);
            traffic.streams[ab].finished()
                && traffic.streams[ba].finished()
                && sim.endpoint(a).at_rest(b)
                && sim.endpoint(b).at_rest(a)
        });
        assert!(settled, "round {round}: the peers never came to rest");
    }
    for stream in [ab, ba] {
        let s = &traffic.streams[stream];
        assert!(s.failed.is_empty(), "{} failed", s.failed.len());
        assert_eq!(s.received, (0..s.ids.len()).collect::<Vec<_>>());
    }
}
