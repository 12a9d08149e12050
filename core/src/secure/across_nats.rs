//! Two clients behind NATs, in virtual time: a meeting's checks open a
//! direct path where the NATs let them, and the server relays the
//! clients' own session where they do not.

use std::collections::HashSet;

use super::*;
use crate::wire;
use rand::rngs::StdRng;
use rand::SeedableRng;

const MS: u64 = 1_800_000_000_000;

fn rng(seed: u64) -> Box<dyn SecureRng> {
    Box::new(StdRng::seed_from_u64(seed))
}

/// How a client's NAT filters what comes in.
#[derive(Clone, Copy, PartialEq)]
enum Filter {
    /// Only from an address the client sent to (a port-restricted NAT).
    SentTo,
    /// Nothing but from the server (a symmetric NAT, seen from outside:
    /// the peer's mapping toward us is a port nobody was told).
    ServerOnly,
}

struct Host {
    endpoint: SecureEndpoint,
    at: SocketAddr,
    filter: Filter,
    sent_to: HashSet<SocketAddr>,
    key: StaticKey,
}

/// A server and two clients on a simulated internet.
struct World {
    now: Instant,
    server: SecureEndpoint,
    server_at: SocketAddr,
    server_key: StaticKey,
    hosts: Vec<Host>,
    /// Datagrams delivered between the clients without the server.
    direct: usize,
}

impl World {
    fn new(filters: [Filter; 2]) -> World {
        let now = Instant::now();
        let server_key = StaticKey::generate(&mut StdRng::seed_from_u64(1));
        let hosts = filters
            .iter()
            .enumerate()
            .map(|(i, &filter)| {
                let key = StaticKey::generate(&mut StdRng::seed_from_u64(10 + i as u64));
                let mut endpoint =
                    SecureEndpoint::client(SecureConfig::default(), rng(20 + i as u64), now);
                endpoint.set_identity(Some(key.clone()));
                Host {
                    endpoint,
                    at: format!("198.51.100.{}:4000{i}", 10 + i).parse().unwrap(),
                    filter,
                    sent_to: HashSet::new(),
                    key,
                }
            })
            .collect();
        World {
            now,
            server: SecureEndpoint::server(
                SecureConfig::default(),
                server_key.clone(),
                rng(2),
                now,
            ),
            server_at: "203.0.113.1:4590".parse().unwrap(),
            server_key,
            hosts,
            direct: 0,
        }
    }

    fn host_at(&self, addr: SocketAddr) -> Option<usize> {
        self.hosts.iter().position(|h| h.at == addr)
    }

    /// Moves datagrams until quiet.
    fn pump(&mut self) {
        for _ in 0..200 {
            let mut moved = false;
            for i in 0..self.hosts.len() {
                while let Some((to, d)) = self.hosts[i].endpoint.poll_transmit(self.now, MS) {
                    assert!(d.len() <= wire::MAX_DATAGRAM + wire::RELAY_HEADER_LEN);
                    moved = true;
                    let from = self.hosts[i].at;
                    self.hosts[i].sent_to.insert(to);
                    if to == self.server_at {
                        let _ = self.server.handle_datagram(self.now, MS, from, &d);
                    } else if let Some(j) = self.host_at(to) {
                        let host = &mut self.hosts[j];
                        let open = match host.filter {
                            Filter::SentTo => host.sent_to.contains(&from),
                            Filter::ServerOnly => false,
                        };
                        if open {
                            self.direct += 1;
                            let _ = host.endpoint.handle_datagram(self.now, MS, from, &d);
                        }
                    }
                }
            }
            while self.server.handle_handshake(self.now, MS) {}
            for host in &mut self.hosts {
                while host.endpoint.handle_handshake(self.now, MS) {
                    moved = true;
                }
            }
            while let Some((to, d)) = self.server.poll_transmit(self.now, MS) {
                moved = true;
                if let Some(j) = self.host_at(to) {
                    let _ =
                        self.hosts[j]
                            .endpoint
                            .handle_datagram(self.now, MS, self.server_at, &d);
                }
            }
            if !moved {
                return;
            }
        }
    }

    /// Moves time on by `by`, stopping at every timer due on the way (an
    /// acknowledgement held back, a retransmission), as a real clock would.
    fn advance(&mut self, by: Duration) {
        let until = self.now + by;
        loop {
            let next = self
                .hosts
                .iter()
                .filter_map(|h| h.endpoint.poll_timeout())
                .chain(self.server.poll_timeout())
                .filter(|&at| at > self.now)
                .min()
                .filter(|&at| at < until)
                .unwrap_or(until);
            let ms = MS + (next - self.now).as_millis() as u64;
            self.now = next;
            for host in &mut self.hosts {
                host.endpoint.handle_timeout(self.now, ms);
            }
            self.server.handle_timeout(self.now, ms);
            self.pump();
            if self.now >= until {
                return;
            }
        }
    }

    /// Each client's session with the server, as the server knows it.
    fn sign_in(&mut self) -> Vec<PeerId> {
        let mut at_server = Vec::new();
        for i in 0..self.hosts.len() {
            let key = self.server_key.public();
            let (now, server_at) = (self.now, self.server_at);
            let peer = self.hosts[i]
                .endpoint
                .connect(now, MS, server_at, key, Pattern::Nk)
                .unwrap();
            self.hosts[i]
                .endpoint
                .send(now, peer, b"signin".to_vec())
                .unwrap();
            self.pump();
            let from = events(&mut self.server)
                .into_iter()
                .find_map(|e| match e {
                    SecureEvent::Received { from, .. } => Some(from),
                    _ => None,
                })
                .expect("the server heard the client");
            at_server.push(from);
        }
        at_server
    }
}

fn events(endpoint: &mut SecureEndpoint) -> Vec<SecureEvent> {
    std::iter::from_fn(|| endpoint.poll_event()).collect()
}

fn reachable(endpoint: &mut SecureEndpoint) -> Vec<SocketAddr> {
    events(endpoint)
        .into_iter()
        .filter_map(|e| match e {
            SecureEvent::Reachable { addr, .. } => Some(addr),
            _ => None,
        })
        .collect()
}

/// alice opens a session with bob at `to`.
fn alice_opens(w: &mut World, to: SocketAddr) -> PeerId {
    let bob = w.hosts[1].key.public();
    let now = w.now;
    w.hosts[0]
        .endpoint
        .connect(now, MS, to, bob, Pattern::Ik)
        .unwrap()
}

/// alice sends `text` on `peer`, and the datagrams move.
fn alice_sends(w: &mut World, peer: PeerId, text: &[u8]) {
    let now = w.now;
    w.hosts[0].endpoint.send(now, peer, text.to_vec()).unwrap();
    w.pump();
}

/// The messages bob got since last asked.
fn bob_got(w: &mut World) -> Vec<Vec<u8>> {
    events(&mut w.hosts[1].endpoint)
        .into_iter()
        .filter_map(|e| match e {
            SecureEvent::Received { message, .. } => Some(message),
            _ => None,
        })
        .collect()
}

/// alice opens a session at `to` and sends a message; what bob got.
fn alice_says_hello(w: &mut World, to: SocketAddr) -> Vec<Vec<u8>> {
    let peer = alice_opens(w, to);
    alice_sends(w, peer, b"hello bob");
    bob_got(w)
}

#[test]
fn checks_from_both_sides_open_two_restricted_nats_and_the_session_goes_direct() {
    let mut w = World::new([Filter::SentTo, Filter::SentTo]);
    w.sign_in();
    let ticket = meeting::Ticket::new(&mut StdRng::seed_from_u64(5));
    let (alice_at, bob_at, server_at) = (w.hosts[0].at, w.hosts[1].at, w.server_at);
    // alice's checks go first and are dropped by bob's NAT; bob's, when
    // the server's push reaches him, open his NAT and get through alice's.
    w.hosts[0]
        .endpoint
        .meet(w.now, &ticket, &[bob_at], Some(server_at));
    w.pump();
    assert_eq!(w.direct, 0, "bob's NAT dropped alice's first check");
    w.advance(Duration::from_millis(20));
    w.hosts[1]
        .endpoint
        .meet(w.now, &ticket, &[alice_at], Some(server_at));
    w.pump();
    assert_eq!(reachable(&mut w.hosts[0].endpoint), [bob_at]);
    assert_eq!(reachable(&mut w.hosts[1].endpoint), [alice_at]);
    let before = w.direct;
    assert_eq!(alice_says_hello(&mut w, bob_at), [b"hello bob".to_vec()]);
    assert!(w.direct > before, "the session went direct");
    assert_eq!(w.server.stats().relayed_datagrams, 0);
}

#[test]
fn where_no_check_gets_through_the_server_relays_the_clients_own_session() {
    let mut w = World::new([Filter::SentTo, Filter::ServerOnly]);
    let at_server = w.sign_in();
    let ticket = meeting::Ticket::new(&mut StdRng::seed_from_u64(6));
    let (alice_at, bob_at, server_at) = (w.hosts[0].at, w.hosts[1].at, w.server_at);
    w.server
        .open_relay(w.now, ticket.id, at_server[0], at_server[1]);
    w.hosts[0]
        .endpoint
        .meet(w.now, &ticket, &[bob_at], Some(server_at));
    w.hosts[1]
        .endpoint
        .meet(w.now, &ticket, &[alice_at], Some(server_at));
    for _ in 0..10 {
        w.advance(Duration::from_secs(1));
    }
    assert!(reachable(&mut w.hosts[0].endpoint).is_empty());
    let checks = w.hosts[0].endpoint.stats().checks_sent;
    assert_eq!(checks, u64::from(meeting::CHECKS), "checks stop");

    let before = w.direct;
    let got = alice_says_hello(&mut w, meeting::relay_addr(ticket.id));
    assert_eq!(got, [b"hello bob".to_vec()]);
    let usage = w.server.relay_usage(ticket.id).unwrap();
    assert!(
        usage.datagrams >= 3,
        "HELLO, WELCOME and DATA went through: {usage:?}"
    );
    assert_eq!(w.server.stats().relayed_bytes, usage.bytes);
    assert_eq!(w.direct, before, "nothing of the session went direct");
}

#[test]
fn the_relay_passes_nothing_from_a_stranger_and_stops_at_its_budget() {
    let mut w = World::new([Filter::SentTo, Filter::ServerOnly]);
    let at_server = w.sign_in();
    let id = 42;
    w.server.open_relay(w.now, id, at_server[0], at_server[1]);
    let stranger: SocketAddr = "192.0.2.66:666".parse().unwrap();
    let datagram = wire::relay_datagram(id, &[1, 3, 0, 0, 0, 1]);
    assert_eq!(
        w.server.handle_datagram(w.now, MS, stranger, &datagram),
        Err(Rejected::Unexpected)
    );
    assert!(w.server.poll_transmit(w.now, MS).is_none());
    // From an end: passed on as it is, to the other end only.
    let alice_at = w.hosts[0].at;
    assert_eq!(
        w.server.handle_datagram(w.now, MS, alice_at, &datagram),
        Ok(())
    );
    assert_eq!(
        w.server.poll_transmit(w.now, MS),
        Some((w.hosts[1].at, datagram.clone()))
    );
    let budget = SecureConfig::default().relay_budget;
    let big = wire::relay_datagram(id, &vec![0; 1_000]);
    let mut passed = datagram.len() as u64;
    while w.server.handle_datagram(w.now, MS, alice_at, &big).is_ok() {
        passed += big.len() as u64;
        w.server.poll_transmit(w.now, MS);
    }
    assert!(passed <= budget && passed + big.len() as u64 > budget);
    assert_eq!(w.server.stats().relay_refused, 2);

    // A relay serves signed-in users only: bob signs out, it closes.
    w.server
        .open_relay(w.now, id + 1, at_server[0], at_server[1]);
    w.server.release(w.now, at_server[1]);
    assert_eq!(w.server.relay_usage(id + 1), None);
    let datagram = wire::relay_datagram(id + 1, &[1, 3, 0, 0, 0, 1]);
    assert!(w
        .server
        .handle_datagram(w.now, MS, alice_at, &datagram)
        .is_err());
}

/// A meeting between alice, checking `for_alice`, and bob, checking
/// `for_bob`: the addresses alice finds reachable.
fn meet(
    w: &mut World,
    seed: u64,
    for_alice: &[SocketAddr],
    for_bob: &[SocketAddr],
) -> Vec<SocketAddr> {
    let ticket = meeting::Ticket::new(&mut StdRng::seed_from_u64(seed));
    let (now, server_at) = (w.now, w.server_at);
    w.hosts[0]
        .endpoint
        .meet(now, &ticket, for_alice, Some(server_at));
    w.hosts[1]
        .endpoint
        .meet(now, &ticket, for_bob, Some(server_at));
    w.pump();
    reachable(&mut w.hosts[0].endpoint)
}

/// A meeting between alice and bob; bob's address as alice finds it.
fn punch(w: &mut World, seed: u64) -> SocketAddr {
    let (alice_at, bob_at) = (w.hosts[0].at, w.hosts[1].at);
    assert_eq!(meet(w, seed, &[bob_at], &[alice_at]), [bob_at]);
    bob_at
}

#[test]
fn a_session_used_lately_keeps_its_path_open_and_one_left_alone_stops() {
    let mut w = World::new([Filter::SentTo, Filter::SentTo]);
    for host in &mut w.hosts {
        host.endpoint.config.keepalive = Some(Duration::from_secs(15));
    }
    w.sign_in();
    let bob_at = punch(&mut w, 7);
    assert_eq!(alice_says_hello(&mut w, bob_at), [b"hello bob".to_vec()]);
    let sent = |w: &World| w.hosts[0].endpoint.stats().keepalives;
    w.advance(Duration::from_secs(14));
    assert_eq!(sent(&w), 0);
    w.advance(Duration::from_secs(2));
    assert!(sent(&w) >= 1, "nothing else went for 15 s");
    // Every 15 s while it was used in the last ten minutes, then no more.
    for _ in 0..(path::KEEP_OPEN_FOR.as_secs() / 5) {
        w.advance(Duration::from_secs(5));
    }
    let by_then = sent(&w);
    assert!(by_then >= 35, "{by_then}");
    for _ in 0..20 {
        w.advance(Duration::from_secs(5));
    }
    assert_eq!(sent(&w), by_then);
}

#[test]
fn a_session_moved_to_a_new_path_after_a_nat_forgot_it_delivers_what_was_in_flight() {
    let mut w = World::new([Filter::SentTo, Filter::SentTo]);
    w.sign_in();
    let alice_at = w.hosts[0].at;
    let bob_at = punch(&mut w, 7);
    let peer = alice_opens(&mut w, bob_at);
    alice_sends(&mut w, peer, b"one");
    // bob's NAT reboots: he is at a new port now, and what goes to the
    // old one is lost.
    let new_bob_at: SocketAddr = "198.51.100.11:50001".parse().unwrap();
    w.hosts[1].at = new_bob_at;
    w.hosts[1].sent_to.clear();
    let _ = bob_got(&mut w);
    alice_sends(&mut w, peer, b"two");
    w.advance(Duration::from_secs(1));
    assert!(bob_got(&mut w).is_empty());
    // A new meeting finds him (the server sees him at his new port once he
    // sent it something); the session moves there and "two" arrives.
    let found = meet(&mut w, 8, &[bob_at, new_bob_at], &[alice_at]);
    assert_eq!(found, [new_bob_at]);
    w.hosts[0].endpoint.migrate(w.now, peer, new_bob_at);
    w.pump();
    assert_eq!(bob_got(&mut w), [b"two".to_vec()]);
    assert_eq!(w.hosts[0].endpoint.peer(peer).unwrap().addr, new_bob_at);
}
