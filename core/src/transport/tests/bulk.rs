//! Many messages over bad links: all arrive, once, whole, in order.

use std::time::Duration;

use super::super::packet::DATA_HEADER_LEN;
use super::super::sim::{LinkConfig, Sim};
use super::super::Config;
use super::{boundary_sizes, lossy, mixed_sizes, Traffic};

/// Keeps this many messages outstanding per stream, as a chat client that
/// waits for deliveries would; the rest wait with the test.
const OUTSTANDING: usize = 64;

/// Sends `sizes` on each stream, keeping a bounded number outstanding, and
/// runs until every stream is perfect or `limit` of virtual time passes.
fn pump(
    sim: &mut Sim,
    traffic: &mut Traffic,
    streams: &[(usize, Vec<usize>)],
    limit: Duration,
) -> bool {
    sim.run_until(limit, |sim| {
        traffic.drain(sim);
        for (stream, sizes) in streams {
            let s = &traffic.streams[*stream];
            let next = s.ids.len();
            let outstanding = sim.endpoint(s.from).in_flight(s.to);
            for &size in sizes
                .iter()
                .skip(next)
                .take(OUTSTANDING.saturating_sub(outstanding))
            {
                traffic.send(sim, *stream, size);
            }
        }
        streams.iter().all(|(stream, sizes)| {
            traffic.streams[*stream].ids.len() == sizes.len() && traffic.perfect(*stream)
        })
    })
}

#[test]
fn ten_thousand_mixed_messages_arrive_once_in_order_over_a_lossy_link() {
    let mut sim = Sim::new(0x5eed_0001);
    sim.set_default_link(lossy());
    let config = Config::default();
    let stride = config.max_datagram - DATA_HEADER_LEN;
    let (a, b) = (sim.add_endpoint(config.clone()), sim.add_endpoint(config));
    let max = 64 * 1024;
    let sizes = mixed_sizes(10_000, max, &boundary_sizes(stride, max), 1);
    let total: usize = sizes.iter().sum();
    assert!((40_000_000..80_000_000).contains(&total), "{total} bytes");
    assert!(sizes.contains(&1) && sizes.contains(&max));

    let mut traffic = Traffic::new();
    let stream = traffic.stream(a, b);
    assert!(
        pump(
            &mut sim,
            &mut traffic,
            &[(stream, sizes)],
            Duration::from_secs(24 * 3600)
        ),
        "did not finish"
    );
    traffic.assert_perfect(stream);
    let stats = sim.stats();
    assert!(
        stats.lost > 0 && stats.duplicated > 0 && stats.reordered > 0,
        "{stats:?}"
    );
}

#[test]
fn messages_both_ways_at_once_arrive_once_in_order() {
    let mut sim = Sim::new(0x5eed_0002);
    sim.set_default_link(lossy());
    let config = Config::default();
    let stride = config.max_datagram - DATA_HEADER_LEN;
    let (a, b) = (sim.add_endpoint(config.clone()), sim.add_endpoint(config));
    let max = 16 * 1024;
    let mut special = boundary_sizes(stride, max);
    special.push(0);
    let mut traffic = Traffic::new();
    let ab = traffic.stream(a, b);
    let ba = traffic.stream(b, a);
    let plan = [
        (ab, mixed_sizes(1000, max, &special, 2)),
        (ba, mixed_sizes(1000, max, &special, 3)),
    ];
    assert!(
        pump(&mut sim, &mut traffic, &plan, Duration::from_secs(3600)),
        "did not finish"
    );
    traffic.assert_perfect(ab);
    traffic.assert_perfect(ba);
}

#[test]
fn every_datagram_arriving_twice_still_gives_each_message_once() {
    let mut sim = Sim::new(0x5eed_0008);
    sim.set_default_link(LinkConfig {
        duplicate: 1.0,
        jitter: Duration::from_millis(3),
        ..LinkConfig::default()
    });
    let config = Config::default();
    let stride = config.max_datagram - DATA_HEADER_LEN;
    let (a, b) = (sim.add_endpoint(config.clone()), sim.add_endpoint(config));
    let max = 32 * 1024;
    let mut traffic = Traffic::new();
    let ab = traffic.stream(a, b);
    let ba = traffic.stream(b, a);
    let plan = [
        (ab, mixed_sizes(500, max, &boundary_sizes(stride, max), 8)),
        (ba, mixed_sizes(100, 2000, &[0, 1], 9)),
    ];
    assert!(
        pump(&mut sim, &mut traffic, &plan, Duration::from_secs(3600)),
        "did not finish"
    );
    traffic.assert_perfect(ab);
    traffic.assert_perfect(ba);
    let stats = sim.stats();
    assert_eq!(stats.duplicated, stats.sent, "every datagram went twice");
}
