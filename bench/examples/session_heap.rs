//! What an idle session costs a server in heap, measured with dhat.
//!
//! Opens N sessions to one server endpoint in virtual time (sans-IO, no
//! sockets), each carrying one request, one reply and one keepalive, lets
//! them idle long enough for their keys to be put away, and prints the
//! server's heap per session: everything the server endpoint holds, less
//! what it held before the first session. Run it in release:
//!
//! ```text
//! cargo run --release -p udpchat-bench --example session_heap -- 2000
//! ```
//!
//! `dhat-heap.json` (in the working directory) then shows by call site
//! what is held at the end (`dh_view.html` from the dhat crate reads it);
//! the server endpoint is still alive then, the clients are gone.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::SeedableRng;
use udpchat_core::crypto::keys::StaticKey;
use udpchat_core::secure::{PeerId, SecureConfig, SecureEndpoint, SecureEvent};
use udpchat_core::wire::Pattern;

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

const SERVER: u32 = 4590;
const FIRST_CLIENT: u32 = 10_000;

/// A distinct address for each number (127.0.X.1:port).
fn addr(n: u32) -> SocketAddr {
    SocketAddr::from(([127, 0, (n >> 16) as u8, 1], n as u16))
}

fn client_index(to: SocketAddr) -> usize {
    let IpAddr::V4(ip) = to.ip() else {
        unreachable!("every client is on IPv4")
    };
    (((u32::from(ip.octets()[2]) << 16) | u32::from(to.port())) - FIRST_CLIENT) as usize
}

struct World {
    now: Instant,
    ms: u64,
    server: SecureEndpoint,
    clients: Vec<(SecureEndpoint, PeerId)>,
}

impl World {
    /// Carries datagrams both ways until nothing is left to send; the
    /// server answers every request with 100 bytes.
    fn settle(&mut self) {
        let (now, ms) = (self.now, self.ms);
        for _ in 0..4 {
            for (i, (client, _)) in self.clients.iter_mut().enumerate() {
                while let Some((_, datagram)) = client.poll_transmit(now, ms) {
                    let from = addr(FIRST_CLIENT + i as u32);
                    let _ = self.server.handle_datagram(now, ms, from, &datagram);
                }
            }
            while self.server.handle_handshake(now, ms) {}
            while let Some(event) = self.server.poll_event() {
                if let SecureEvent::Received { from, message, .. } = event {
                    if !message.is_empty() {
                        let _ = self.server.send(now, from, vec![9; 100]);
                    }
                }
            }
            while let Some((to, datagram)) = self.server.poll_transmit(now, ms) {
                let client = &mut self.clients[client_index(to)].0;
                let _ = client.handle_datagram(now, ms, addr(SERVER), &datagram);
            }
            for (client, _) in &mut self.clients {
                while client.poll_event().is_some() {}
            }
        }
    }

    fn wait(&mut self, by: Duration) {
        self.now += by;
        self.ms += by.as_millis() as u64;
        for (client, _) in &mut self.clients {
            client.handle_timeout(self.now, self.ms);
        }
        self.server.handle_timeout(self.now, self.ms);
        self.settle();
    }
}

fn main() {
    let _profiler = dhat::Profiler::builder().build();
    let n: u32 = std::env::args()
        .nth(1)
        .map(|arg| arg.parse().expect("a number of sessions"))
        .unwrap_or(2000);
    let key = StaticKey::generate(&mut StdRng::seed_from_u64(1));
    // No admission limits: every HELLO comes from the same few addresses
    // within the same virtual millisecond.
    let mut config = SecureConfig::server();
    config.calm_handshakes_per_sec = u32::MAX;
    config.handshake_queue = usize::MAX;
    config.busy_queue = usize::MAX;
    config.max_sessions_per_source = usize::MAX;
    config.handshakes_per_source_burst = u32::MAX;
    config.handshakes_per_source_per_sec = u32::MAX;
    config.max_unconfirmed = usize::MAX;
    config.unconfirmed_timeout = None;
    let now = Instant::now();
    let server =
        SecureEndpoint::server(config, key.clone(), Box::new(StdRng::seed_from_u64(2)), now);
    let before = dhat::HeapStats::get().curr_bytes;
    let mut world = World {
        now,
        ms: 1_800_000_000_000,
        server,
        clients: Vec::new(),
    };
    for i in 0..n {
        let rng = Box::new(StdRng::seed_from_u64(100 + u64::from(i)));
        let mut client = SecureEndpoint::client(SecureConfig::default(), rng, world.now);
        let peer = client
            .connect(world.now, world.ms, addr(SERVER), key.public(), Pattern::Nk)
            .expect("connect");
        client.send(world.now, peer, vec![7; 200]).expect("request");
        world.clients.push((client, peer));
        if world.clients.len().is_multiple_of(500) {
            world.settle();
        }
    }
    world.settle();
    world.wait(Duration::from_millis(30));
    for (client, peer) in &mut world.clients {
        client
            .send(world.now, *peer, Vec::new())
            .expect("keepalive");
    }
    world.wait(Duration::from_millis(30));
    // Keys stay expanded for a second or two after their last use.
    for _ in 0..4 {
        world.wait(Duration::from_millis(1500));
    }
    let opened = world.server.stats().sessions_opened;
    drop(std::mem::take(&mut world.clients));
    let held = dhat::HeapStats::get().curr_bytes - before;
    println!(
        "{n} sessions ({opened} opened at the server): {:.0} bytes of server heap per session",
        held as f64 / f64::from(n)
    );
    // Held past the profiler's end, so that its file shows the sessions.
    std::mem::forget(world);
}
