//! One server endpoint and N client endpoints in virtual time (sans-IO, no
//! sockets), each client with one session to the server: what the
//! examples that look at idle sessions (`session_heap`, `keepalive_cost`)
//! set up alike.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::SeedableRng;
use udpchat_core::crypto::keys::StaticKey;
use udpchat_core::secure::{PeerId, SecureConfig, SecureEndpoint, SecureEvent};
use udpchat_core::wire::Pattern;

pub const SERVER: u32 = 4590;
const FIRST_CLIENT: u32 = 10_000;

/// A distinct address for each number (127.0.X.1:port).
pub fn addr(n: u32) -> SocketAddr {
    SocketAddr::from(([127, 0, (n >> 16) as u8, 1], n as u16))
}

/// The address of client `i`.
pub fn client_addr(i: usize) -> SocketAddr {
    addr(FIRST_CLIENT + i as u32)
}

fn client_index(to: SocketAddr) -> usize {
    let IpAddr::V4(ip) = to.ip() else {
        unreachable!("every client is on IPv4")
    };
    (((u32::from(ip.octets()[2]) << 16) | u32::from(to.port())) - FIRST_CLIENT) as usize
}

pub struct World {
    pub now: Instant,
    pub ms: u64,
    pub key: StaticKey,
    pub server: SecureEndpoint,
    pub clients: Vec<(SecureEndpoint, PeerId)>,
}

impl World {
    /// A server with no admission limits: every HELLO comes from the same
    /// few addresses within the same virtual millisecond.
    pub fn new() -> World {
        let key = StaticKey::generate(&mut StdRng::seed_from_u64(1));
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
        World {
            now,
            ms: 1_800_000_000_000,
            key,
            server,
            clients: Vec::new(),
        }
    }

    /// Opens `n` sessions, each carrying one request (answered) and one
    /// keepalive, then idles long enough for their keys to be put away.
    pub fn open_idle_sessions(&mut self, n: u32) {
        for i in 0..n {
            let rng = Box::new(StdRng::seed_from_u64(100 + u64::from(i)));
            let mut client = SecureEndpoint::client(SecureConfig::default(), rng, self.now);
            let peer = client
                .connect(
                    self.now,
                    self.ms,
                    addr(SERVER),
                    self.key.public(),
                    Pattern::Nk,
                )
                .expect("connect");
            client.send(self.now, peer, vec![7; 200]).expect("request");
            self.clients.push((client, peer));
            if self.clients.len().is_multiple_of(500) {
                self.settle();
            }
        }
        self.settle();
        self.wait(Duration::from_millis(30));
        for (client, peer) in &mut self.clients {
            client.send(self.now, *peer, Vec::new()).expect("keepalive");
        }
        self.wait(Duration::from_millis(30));
        // Keys stay expanded for a second or two after their last use.
        for _ in 0..4 {
            self.wait(Duration::from_millis(1500));
        }
    }

    /// Carries datagrams both ways until nothing is left to send; the
    /// server answers every request with 100 bytes.
    pub fn settle(&mut self) {
        let (now, ms) = (self.now, self.ms);
        for _ in 0..4 {
            for (i, (client, _)) in self.clients.iter_mut().enumerate() {
                while let Some((_, datagram)) = client.poll_transmit(now, ms) {
                    let _ = self
                        .server
                        .handle_datagram(now, ms, client_addr(i), &datagram);
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

    pub fn wait(&mut self, by: Duration) {
        self.now += by;
        self.ms += by.as_millis() as u64;
        for (client, _) in &mut self.clients {
            client.handle_timeout(self.now, self.ms);
        }
        self.server.handle_timeout(self.now, self.ms);
        self.settle();
    }
}
