//! What the server's own code spends on one idle client's keepalive, in
//! virtual time (sans-IO: no sockets, no kernel, one thread), with the
//! sessions' state as cold as it is on a server holding many.
//!
//! Opens N sessions (each carries a request, its reply and a keepalive,
//! then idles until its keys are put away), then sends every client's
//! keepalive once per round, in an order shuffled afresh each round (a
//! long-running server's sessions sit anywhere in its heap), with virtual
//! time moving as it would at one keepalive per client every 10 s. It
//! times the server's part alone: taking the datagram, sealing the
//! acknowledgement, its timers. Prints the median over the rounds, in
//! nanoseconds per keepalive. Run it in release:
//!
//! ```text
//! cargo run --release -p udpchat-bench --example keepalive_cost -- 20000 5
//! ```
//!
//! `udpchat-bench presence` measures the whole server, kernel included;
//! this isolates what udpchat's code adds, where changes to it show
//! above the noise of a shared machine.

#[path = "common/world.rs"]
mod world;

use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use world::{client_addr, World};

/// How often each client sends a keepalive (the real client's period).
const KEEPALIVE_EVERY: Duration = Duration::from_secs(10);

fn main() {
    let mut args = std::env::args().skip(1);
    let n: u32 = args
        .next()
        .map(|arg| arg.parse().expect("a number of sessions"))
        .unwrap_or(20_000);
    let rounds: usize = args
        .next()
        .map(|arg| arg.parse().expect("a number of rounds"))
        .unwrap_or(5);
    let mut world = World::new();
    world.open_idle_sessions(n);
    let step = KEEPALIVE_EVERY / n;
    let mut order: Vec<usize> = (0..world.clients.len()).collect();
    let mut rng = StdRng::seed_from_u64(3);
    let mut per_round = Vec::with_capacity(rounds);
    let (t0, ms0) = (world.now, world.ms);
    for _ in 0..rounds {
        order.shuffle(&mut rng);
        let mut spent = Duration::ZERO;
        let mut acked = 0u64;
        for &i in &order {
            world.now += step;
            world.ms = ms0 + world.now.duration_since(t0).as_millis() as u64;
            let (now, ms) = (world.now, world.ms);
            let (client, peer) = &mut world.clients[i];
            client.send(now, *peer, Vec::new()).expect("keepalive");
            let datagram = client
                .poll_transmit(now, ms)
                .expect("a keepalive to send")
                .1;
            let started = Instant::now();
            let _ = world
                .server
                .handle_datagram(now, ms, client_addr(i), &datagram);
            world.server.handle_timeout(now, ms);
            let mut ack = None;
            while let Some(out) = world.server.poll_transmit(now, ms) {
                ack = Some(out);
            }
            while world.server.poll_event().is_some() {}
            spent += started.elapsed();
            if let Some((_, ack)) = ack {
                acked += 1;
                let client = &mut world.clients[i].0;
                let _ = client.handle_datagram(now, ms, world::addr(world::SERVER), &ack);
                while client.poll_event().is_some() {}
            }
        }
        assert_eq!(acked, u64::from(n), "every keepalive was acknowledged");
        per_round.push(spent.as_nanos() as f64 / f64::from(n));
    }
    per_round.sort_by(f64::total_cmp);
    let median = per_round[per_round.len() / 2];
    println!(
        "{n} idle sessions, {rounds} rounds: {median:.0} ns of server work per keepalive (median; rounds {:.0}-{:.0} ns)",
        per_round[0],
        per_round[per_round.len() - 1]
    );
}
