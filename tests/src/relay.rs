//! A lossy relay of the tests' own, on real sockets, that puts one client
//! behind an impaired link, like a lossy NAT:
//!
//! - the client uses the relay's `up` address as its server; the relay
//!   forwards to the real server from its `out` socket, so the server (and
//!   therefore every other client) knows this client by the `out` address;
//! - datagrams arriving at `out` from anyone else (other clients) go to the
//!   client from an `inside` socket kept per sender, and the client's
//!   answers go back out through `out`.
//!
//! Every datagram through the relay, either way, may be dropped, duplicated
//! or held back behind the next one (reordered), from a seeded generator.
//!
//! The relay also counts the KEY REQUESTs the client sends the server, and
//! can be told to drop them all, as a flood would.

use std::collections::HashMap;
use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use udpchat_core::wire::Packet;

/// How a link misbehaves.
#[derive(Debug, Clone, Copy)]
pub struct Impairment {
    pub loss: f64,
    pub duplicate: f64,
    pub reorder: f64,
    pub seed: u64,
}

impl Impairment {
    /// A link that loses, repeats and reorders nothing (a relay only to
    /// watch or hold what goes through).
    pub const CLEAN: Impairment = Impairment {
        loss: 0.0,
        duplicate: 0.0,
        reorder: 0.0,
        seed: 0,
    };
}

/// A datagram held back to be sent after the next one.
type Held = (Arc<UdpSocket>, SocketAddr, Vec<u8>);

struct Lossy {
    impairment: Impairment,
    rng: Mutex<StdRng>,
    held: Mutex<Option<Held>>,
}

impl Lossy {
    fn forward(&self, socket: &Arc<UdpSocket>, to: SocketAddr, bytes: &[u8]) {
        let (drop, dup, hold) = {
            let mut rng = self.rng.lock();
            let i = self.impairment;
            (
                rng.gen_bool(i.loss),
                rng.gen_bool(i.duplicate),
                rng.gen_bool(i.reorder),
            )
        };
        if drop {
            return;
        }
        let earlier = self.held.lock().take();
        if hold && earlier.is_none() {
            *self.held.lock() = Some((socket.clone(), to, bytes.to_vec()));
            return;
        }
        let _ = socket.send_to(bytes, to);
        if dup {
            let _ = socket.send_to(bytes, to);
        }
        if let Some((s, t, b)) = earlier {
            let _ = s.send_to(&b, t);
        }
    }
}

/// A running relay; stops when dropped.
pub struct Relay {
    /// Give this to the client as its `--server`.
    pub up: SocketAddr,
    /// The address the server and other clients know the client by.
    pub out: SocketAddr,
    stop: Arc<AtomicBool>,
    /// While set, what the client sends the server waits here.
    gate: Arc<Gate>,
    /// While set, what the server sends the client waits here.
    gate_down: Arc<Gate>,
    up_socket: Arc<UdpSocket>,
    client: Arc<Mutex<Option<SocketAddr>>>,
    out_socket: Arc<UdpSocket>,
    server: SocketAddr,
    key_requests: Arc<KeyRequests>,
    /// Datagrams the server sent the client so far (held ones included).
    from_server: Arc<AtomicUsize>,
    /// Datagrams other clients sent the client so far.
    from_peers: Arc<AtomicUsize>,
}

/// The client's KEY REQUESTs to the server: how many, and whether they go on.
#[derive(Default)]
struct KeyRequests {
    seen: AtomicUsize,
    dropped: AtomicBool,
}

impl KeyRequests {
    /// Counts `bytes` if it is a KEY REQUEST; whether to drop it.
    fn stops(&self, bytes: &[u8]) -> bool {
        // A KEY REQUEST is known by its first two bytes: version and kind.
        let header = &Packet::KeyRequest.encode()[..2];
        if !bytes.starts_with(header) {
            return false;
        }
        self.seen.fetch_add(1, Ordering::SeqCst);
        self.dropped.load(Ordering::SeqCst)
    }
}

/// Holds traffic between the client and the server while closed.
#[derive(Default)]
struct Gate {
    held: Mutex<Option<Vec<Vec<u8>>>>,
}

impl Relay {
    pub fn start(server: SocketAddr, impairment: Impairment) -> Relay {
        let up = Arc::new(bind());
        let out = Arc::new(bind());
        let stop = Arc::new(AtomicBool::new(false));
        let lossy = Arc::new(Lossy {
            impairment,
            rng: Mutex::new(StdRng::seed_from_u64(impairment.seed)),
            held: Mutex::new(None),
        });
        let client: Arc<Mutex<Option<SocketAddr>>> = Arc::new(Mutex::new(None));
        let gate = Arc::new(Gate::default());
        let gate_down = Arc::new(Gate::default());
        let key_requests = Arc::new(KeyRequests::default());
        let from_server = Arc::new(AtomicUsize::new(0));
        let from_peers = Arc::new(AtomicUsize::new(0));
        let relay = Relay {
            up: up.local_addr().unwrap(),
            out: out.local_addr().unwrap(),
            stop: stop.clone(),
            gate: gate.clone(),
            gate_down: gate_down.clone(),
            up_socket: up.clone(),
            client: client.clone(),
            out_socket: out.clone(),
            server,
            key_requests: key_requests.clone(),
            from_server: from_server.clone(),
            from_peers: from_peers.clone(),
        };

        // client -> server
        {
            let (up, out, lossy, client, stop) = (
                up.clone(),
                out.clone(),
                lossy.clone(),
                client.clone(),
                stop.clone(),
            );
            std::thread::spawn(move || {
                each_datagram(&up, &stop, |from, bytes| {
                    *client.lock() = Some(from);
                    if key_requests.stops(bytes) {
                        return;
                    }
                    if let Some(held) = gate.held.lock().as_mut() {
                        held.push(bytes.to_vec());
                        return;
                    }
                    lossy.forward(&out, server, bytes);
                })
            });
        }
        // server or peers -> client
        std::thread::spawn(move || {
            let mut inside: HashMap<SocketAddr, Arc<UdpSocket>> = HashMap::new();
            let out_for_peers = out.clone();
            each_datagram(&out, &stop, |from, bytes| {
                let Some(client_addr) = *client.lock() else {
                    return;
                };
                if from == server {
                    from_server.fetch_add(1, Ordering::SeqCst);
                    if let Some(held) = gate_down.held.lock().as_mut() {
                        held.push(bytes.to_vec());
                        return;
                    }
                    lossy.forward(&up, client_addr, bytes);
                    return;
                }
                from_peers.fetch_add(1, Ordering::SeqCst);
                let socket = inside
                    .entry(from)
                    .or_insert_with(|| {
                        let socket = Arc::new(bind());
                        let (socket2, out, lossy, stop) = (
                            socket.clone(),
                            out_for_peers.clone(),
                            lossy.clone(),
                            stop.clone(),
                        );
                        // client -> that peer
                        std::thread::spawn(move || {
                            each_datagram(&socket2, &stop, |_, bytes| {
                                lossy.forward(&out, from, bytes)
                            })
                        });
                        socket
                    })
                    .clone();
                lossy.forward(&socket, client_addr, bytes);
            });
        });
        relay
    }
}

impl Relay {
    /// Holds back everything the client sends the server from now on.
    pub fn hold_to_server(&self) {
        self.gate.held.lock().get_or_insert_with(Vec::new);
    }

    /// Sends on what was held, in order (from `out`, where the server
    /// knows the client), and lets traffic through again.
    pub fn release_to_server(&self) {
        self.release_to_server_copying_from(None);
    }

    /// Holds back everything the server sends the client from now on.
    pub fn hold_from_server(&self) {
        self.gate_down.held.lock().get_or_insert_with(Vec::new);
    }

    /// Hands the client what was held from the server, in order, and lets
    /// the server's traffic through again.
    pub fn release_from_server(&self) {
        // Held while the backlog goes, so nothing newer overtakes it.
        let mut gate = self.gate_down.held.lock();
        let held = gate.take().unwrap_or_default();
        if let Some(client) = *self.client.lock() {
            for bytes in held {
                let _ = self.up_socket.send_to(&bytes, client);
            }
        }
    }

    /// How many datagrams the server has sent the client so far.
    pub fn from_server(&self) -> usize {
        self.from_server.load(Ordering::SeqCst)
    }

    /// Waits until the server has sent the client `count` datagrams in
    /// all (within 30 s, or panics).
    pub fn wait_from_server(&self, count: usize) {
        wait_for(count, "the server", || self.from_server());
    }

    /// How many datagrams other clients have sent the client so far.
    pub fn from_peers(&self) -> usize {
        self.from_peers.load(Ordering::SeqCst)
    }

    /// Waits until other clients have sent the client `count` datagrams
    /// in all (within 30 s, or panics).
    pub fn wait_from_peers(&self, count: usize) {
        wait_for(count, "other clients", || self.from_peers());
    }

    /// How many datagrams are held now.
    pub fn held(&self) -> usize {
        self.gate.held.lock().as_ref().map_or(0, Vec::len)
    }

    /// As [`Relay::release_to_server`], but an attacker who saw them first
    /// sends each from `spoofed` (a socket at a victim's address) ahead of
    /// the real one; returns the bytes it sent.
    pub fn release_to_server_copying_from(&self, spoofed: Option<&UdpSocket>) -> usize {
        let held = self.gate.held.lock().take().unwrap_or_default();
        let mut copied = 0;
        for datagram in held {
            if let Some(spoofed) = spoofed {
                copied += spoofed.send_to(&datagram, self.server).unwrap_or(0);
            }
            let _ = self.out_socket.send_to(&datagram, self.server);
        }
        copied
    }
}

impl Relay {
    /// Drops every KEY REQUEST the client sends the server from now on.
    pub fn drop_key_requests(&self) {
        self.key_requests.dropped.store(true, Ordering::SeqCst);
    }

    /// How many KEY REQUESTs the client has sent the server so far
    /// (dropped or not).
    pub fn key_requests(&self) -> usize {
        self.key_requests.seen.load(Ordering::SeqCst)
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// Waits until `seen` says `count` (within 30 s, or panics).
fn wait_for(count: usize, who: &str, seen: impl Fn() -> usize) {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while seen() < count {
        assert!(
            std::time::Instant::now() < deadline,
            "{who} sent the client {} datagrams, not {count}",
            seen()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn bind() -> UdpSocket {
    let socket = UdpSocket::bind("127.0.0.1:0").expect("bind relay socket");
    // Lets the relay threads notice `stop`.
    socket
        .set_read_timeout(Some(Duration::from_millis(100)))
        .expect("read timeout");
    socket
}

fn each_datagram(socket: &UdpSocket, stop: &AtomicBool, mut f: impl FnMut(SocketAddr, &[u8])) {
    let mut buf = vec![0u8; 65_536];
    while !stop.load(Ordering::SeqCst) {
        if let Ok((len, from)) = socket.recv_from(&mut buf) {
            f(from, &buf[..len]);
        }
    }
}
