//! The secure endpoint in virtual time: a client and a server (`Pair`),
//! or many clients (`open_sessions`), trading datagrams in memory.

use super::*;
use crate::wire;
use rand::rngs::StdRng;
use rand::SeedableRng;

mod handshakes;
mod limits;
mod sessions;

const MS: u64 = 1_800_000_000_000;

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn rng(seed: u64) -> Box<dyn SecureRng> {
    Box::new(StdRng::seed_from_u64(seed))
}

struct Pair {
    now: Instant,
    now_ms: u64,
    server: SecureEndpoint,
    client: SecureEndpoint,
    server_key: StaticKey,
    client_addr: SocketAddr,
    /// Datagrams the server sent, for the zero-bytes-back checks.
    server_sent: usize,
}

impl Pair {
    fn new() -> Pair {
        Pair::with_server_config(SecureConfig::default())
    }

    fn with_server_config(config: SecureConfig) -> Pair {
        let now = Instant::now();
        let server_key = StaticKey::generate(&mut StdRng::seed_from_u64(1));
        Pair {
            now,
            now_ms: MS,
            server: SecureEndpoint::server(config, server_key.clone(), rng(2), now),
            client: SecureEndpoint::client(SecureConfig::default(), rng(3), now),
            server_key,
            client_addr: addr(5000),
            server_sent: 0,
        }
    }

    /// Moves datagrams both ways until quiet; `drop_client` drops what
    /// the client sends when it returns true.
    fn pump(&mut self, mut drop_client: impl FnMut(&[u8]) -> bool) {
        for _ in 0..100 {
            let mut moved = false;
            while let Some((to, d)) = self.client.poll_transmit(self.now, self.now_ms) {
                assert!(d.len() <= wire::MAX_DATAGRAM);
                assert_eq!(to, addr(4590));
                moved = true;
                if !drop_client(&d) {
                    let _ =
                        self.server
                            .handle_datagram(self.now, self.now_ms, self.client_addr, &d);
                }
            }
            while self.server.handle_handshake(self.now, self.now_ms) {}
            while let Some((to, d)) = self.server.poll_transmit(self.now, self.now_ms) {
                assert!(d.len() <= wire::MAX_DATAGRAM);
                self.server_sent += 1;
                moved = true;
                if to == self.client_addr {
                    let _ = self
                        .client
                        .handle_datagram(self.now, self.now_ms, addr(4590), &d);
                }
            }
            if !moved {
                return;
            }
        }
    }

    /// Opens the client's session with the server.
    fn connect(&mut self) -> PeerId {
        let key = self.server_key.public();
        self.client
            .connect(self.now, self.now_ms, addr(4590), key, Pattern::Nk)
            .unwrap()
    }

    fn advance(&mut self, by: Duration) {
        self.now += by;
        self.now_ms += by.as_millis() as u64;
        self.client.handle_timeout(self.now, self.now_ms);
        self.server.handle_timeout(self.now, self.now_ms);
    }

    fn received(endpoint: &mut SecureEndpoint) -> Vec<(PeerId, Vec<u8>)> {
        let mut out = Vec::new();
        while let Some(event) = endpoint.poll_event() {
            if let SecureEvent::Received { from, message, .. } = event {
                out.push((from, message));
            }
        }
        out
    }
}

/// A HELLO an attacker makes: a valid point and a valid mac1 (the server's
/// key is public), then garbage where the AEAD should be, so only the
/// P-384 work would find it out.
fn junk_hello(server: &PublicKey, seed: u64) -> Vec<u8> {
    let mut rng = StdRng::seed_from_u64(seed);
    let (_, mut message) =
        crate::crypto::handshake::ClientHello::start(&mut rng, server, &[HELLO_FRESH], MS).unwrap();
    for byte in &mut message[60..] {
        *byte ^= 0x5a;
    }
    let mut datagram = Packet::Hello {
        pattern: Pattern::Nk,
        sender_index: seed as u32,
        message: &message,
        macs: &[0; wire::HELLO_MACS_LEN],
    }
    .encode();
    cookie::stamp(&mut datagram, cookie::mac1_key(server).as_ref(), None);
    datagram
}

/// Opens `count` sessions to `server` from clients at `ip`, ports from
/// `first_port`; returns how many got established.
fn open_sessions(
    server: &mut SecureEndpoint,
    server_key: &PublicKey,
    now: Instant,
    ip: [u8; 4],
    first_port: u16,
    count: u16,
) -> usize {
    let mut established = 0;
    for i in 0..count {
        let from = SocketAddr::from((ip, first_port + i));
        let seed = u64::from(u32::from_be_bytes(ip)) << 16 | u64::from(first_port + i);
        let mut client = SecureEndpoint::client(SecureConfig::default(), rng(seed), now);
        let peer = client
            .connect(now, MS, addr(4590), server_key.clone(), Pattern::Nk)
            .unwrap();
        while let Some((_, d)) = client.poll_transmit(now, MS) {
            let _ = server.handle_datagram(now, MS, from, &d);
        }
        while server.handle_handshake(now, MS) {}
        while let Some((to, d)) = server.poll_transmit(now, MS) {
            if to == from {
                let _ = client.handle_datagram(now, MS, addr(4590), &d);
            }
        }
        established += usize::from(client.peer(peer).unwrap().established);
    }
    established
}

fn server_with(config: SecureConfig, now: Instant) -> (SecureEndpoint, PublicKey) {
    let key = StaticKey::generate(&mut StdRng::seed_from_u64(1));
    let public = key.public();
    (SecureEndpoint::server(config, key, rng(2), now), public)
}
