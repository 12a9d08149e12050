//! The driver's UDP socket, read and written in batches: up to
//! [`BATCH_SIZE`] datagrams per `recvmmsg` and GRO where the kernel
//! coalesces a burst from one sender (through quinn-udp), and what a turn
//! sends in as few calls as it can ([`outbound`]: GSO runs, `sendmmsg`).
//! quinn-udp and rustix hold the unsafe code of the system calls.
//!
//! The runtime watches the socket for reading only ([`register`], this
//! crate's one `unsafe` call). A tokio `UdpSocket` is watched for writing
//! too, and on Linux every datagram sent then makes the socket "writable"
//! again, which woke the loop a second time per turn for nothing: every
//! other `epoll_wait` returned at once, about 8% of the server's CPU per
//! keepalive (PERFORMANCE.md, seventh part). A send that finds the
//! socket's buffer full waits on a watch of its own for writing
//! ([`Socket::writable`]).

use std::io::{self, IoSliceMut};
use std::net::SocketAddr;

use quinn_udp::{RecvMeta, UdpSocketState, BATCH_SIZE};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;
use tokio::net::UdpSocket;

/// One receive slot: with GRO the kernel may put up to 64 datagrams of one
/// burst in a slot, up to the largest UDP payload.
const SLOT: usize = 64 * 1024;

mod outbound;
pub(crate) use outbound::Outbound;

pub(crate) struct Socket {
    /// Watched for reading only.
    io: AsyncFd<std::net::UdpSocket>,
    state: UdpSocketState,
    /// The socket's address: an IPv6 one sends to IPv4 peers mapped.
    local: SocketAddr,
    /// Sends that found the send buffer full and waited for room.
    waited_for_room: std::sync::atomic::AtomicU64,
}

/// Where received datagrams land; reused from one batch to the next. Its
/// pages are touched only as datagrams fill them.
pub(crate) struct Inbound {
    buf: Vec<u8>,
    meta: [RecvMeta; BATCH_SIZE],
}

impl Inbound {
    pub(crate) fn new() -> Inbound {
        Inbound {
            buf: vec![0; SLOT * BATCH_SIZE],
            meta: [RecvMeta::default(); BATCH_SIZE],
        }
    }
}

/// The receive buffer asked for: bursts (a large message's fragments, a
/// group's pushes, sign-ins at once) wait here while the loop is busy
/// rather than being dropped and sent again a round trip later. The kernel
/// caps it at `net.core.rmem_max`, and charges only what datagrams queued
/// use.
const RECEIVE_BUFFER: usize = 4 * 1024 * 1024;

/// Sets the socket up for batches (GRO, and what quinn-udp reads of each
/// datagram) and bursts ([`RECEIVE_BUFFER`]); done where the socket is
/// made, so a failure is told there.
pub(crate) fn prepare(io: &UdpSocket) -> io::Result<UdpSocketState> {
    let state = UdpSocketState::new(io.into())?;
    if let Err(e) = state.set_recv_buffer_size(io.into(), RECEIVE_BUFFER) {
        tracing::debug!("the socket keeps its receive buffer: {e}");
    }
    Ok(state)
}

impl Socket {
    /// `state` is what [`prepare`] gave for this socket.
    pub(crate) fn new(io: UdpSocket, state: UdpSocketState) -> io::Result<Socket> {
        let local = io.local_addr()?;
        let io = register(io.into_std()?, Interest::READABLE)?;
        Ok(Socket {
            io,
            state,
            local,
            waited_for_room: Default::default(),
        })
    }

    /// Datagrams one send may carry: 1 where the kernel has no GSO (or
    /// the device refused it once).
    pub(crate) fn max_segments(&self) -> usize {
        self.state.max_gso_segments().max(1)
    }

    /// Waits until a datagram may be waiting.
    pub(crate) async fn readable(&self) -> io::Result<()> {
        // The readiness stays until a read finds nothing (`receive`).
        self.io.readable().await?.retain_ready();
        Ok(())
    }

    /// Waits until the socket's send buffer has room again: the socket
    /// itself is not watched for writing (see the module's notes), so a
    /// copy of its descriptor is, for as long as this waits.
    async fn writable(&self) -> io::Result<()> {
        self.waited_for_room
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let watch = register(self.io.get_ref().try_clone()?, Interest::WRITABLE)?;
        watch.writable().await?.retain_ready();
        Ok(())
    }

    /// Reads what is waiting, one `recvmmsg`, and hands each datagram to
    /// `each`. Returns how many came, and whether the socket may hold more
    /// (a full batch); a short batch emptied the queue, so the socket's
    /// readiness is cleared without a call that finds nothing.
    /// `Err(WouldBlock)` when nothing was waiting.
    pub(crate) fn receive(
        &self,
        inbound: &mut Inbound,
        mut each: impl FnMut(SocketAddr, &[u8]),
    ) -> io::Result<(usize, bool)> {
        let mut got = 0;
        let result = self.io.try_io(Interest::READABLE, |io| {
            let mut slots = inbound.buf.chunks_mut(SLOT);
            let mut bufs: [IoSliceMut<'_>; BATCH_SIZE] =
                std::array::from_fn(|_| IoSliceMut::new(slots.next().unwrap_or_default()));
            got = self.state.recv(io.into(), &mut bufs, &mut inbound.meta)?;
            if got < BATCH_SIZE {
                // Drained: tokio clears the readiness it saw; a datagram
                // arriving since is a new edge.
                Err(io::ErrorKind::WouldBlock.into())
            } else {
                Ok(())
            }
        });
        let more = match result {
            Ok(()) => true,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock && got > 0 => false,
            Err(e) => return Err(e),
        };
        for (meta, slot) in inbound.meta[..got].iter().zip(inbound.buf.chunks(SLOT)) {
            let stride = meta.stride.max(1);
            for datagram in slot[..meta.len].chunks(stride) {
                each(meta.addr, datagram);
            }
        }
        Ok((got, more))
    }
}

/// Has the runtime watch `socket` for `interest` alone.
#[allow(unsafe_code)]
fn register(
    socket: std::net::UdpSocket,
    interest: Interest,
) -> io::Result<AsyncFd<std::net::UdpSocket>> {
    socket.set_nonblocking(true)?;
    // SAFETY: the `AsyncFd` owns `socket`, so its descriptor stays open and
    // the same until the `AsyncFd` drops (nothing here takes it back out
    // with `into_inner`), which is what `register_with_interest` asks.
    unsafe { AsyncFd::register_with_interest(socket, interest) }.map_err(io::Error::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn bind() -> Socket {
        let io = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let state = prepare(&io).unwrap();
        Socket::new(io, state).unwrap()
    }

    /// Reads `count` datagrams from `socket`: (sender, first byte, length).
    async fn read(socket: &Socket, count: usize) -> Vec<(SocketAddr, u8, usize)> {
        let mut inbound = Inbound::new();
        let mut got = Vec::new();
        tokio::time::timeout(std::time::Duration::from_secs(10), async {
            while got.len() < count {
                socket.readable().await.unwrap();
                match socket.receive(&mut inbound, |from, d| got.push((from, d[0], d.len()))) {
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => panic!("{e}"),
                }
            }
        })
        .await
        .expect("every datagram arrives");
        got
    }

    /// A group message's pushes: a datagram for each of several peers,
    /// with a large message's run to one of them in the middle, all
    /// gathered in one batch. Each peer gets its own, in order.
    #[tokio::test]
    async fn a_batch_for_several_peers_reaches_each_in_order() {
        let a = bind().await;
        let peers = [bind().await, bind().await, bind().await];
        let mut out = Outbound::new();
        let mut sent: Vec<Vec<(SocketAddr, u8, usize)>> = vec![Vec::new(); peers.len()];
        let mut add = |out: &mut Outbound, peer: usize, first: u8, len: usize| {
            out.push(peers[peer].local, &vec![first; len], a.max_segments());
            sent[peer].push((a.local, first, len));
        };
        for round in 0..4u8 {
            for peer in 0..peers.len() {
                add(&mut out, peer, round, 100 + peer);
            }
        }
        for fragment in 0..5u8 {
            add(&mut out, 1, 10 + fragment, 1200);
        }
        for peer in 0..peers.len() {
            add(&mut out, peer, 20, 300);
        }
        a.send(&mut out).await;
        assert!(out.is_empty());
        for (peer, expected) in peers.iter().zip(sent) {
            assert_eq!(read(peer, expected.len()).await, expected);
        }
    }

    /// The kernel refuses one datagram of a batch (a broadcast address,
    /// which this socket may not send to): the others still go.
    #[tokio::test]
    async fn a_datagram_refused_in_a_batch_does_not_keep_the_others_back() {
        let a = bind().await;
        let peers = [bind().await, bind().await];
        let refused = SocketAddr::from(([255, 255, 255, 255], peers[0].local.port()));
        assert!(
            a.io.get_ref().send_to(&[0], refused).is_err(),
            "the kernel sends to the broadcast address after all"
        );
        let mut out = Outbound::new();
        out.push(peers[0].local, &[1; 10], 1);
        out.push(refused, &[2; 11], 1);
        out.push(peers[1].local, &[3; 12], 1);
        out.push(peers[0].local, &[4; 13], 1);
        a.send(&mut out).await;
        assert_eq!(
            read(&peers[0], 2).await,
            vec![(a.local, 1, 10), (a.local, 4, 13)]
        );
        assert_eq!(read(&peers[1], 1).await, vec![(a.local, 3, 12)]);
    }

    #[tokio::test]
    async fn datagrams_sent_in_a_run_arrive_one_by_one_in_order() {
        let (a, b) = (bind().await, bind().await);
        let to = b.local;
        let mut out = Outbound::new();
        let sizes = [1200, 1200, 1200, 500];
        for (i, len) in sizes.iter().enumerate() {
            out.push(to, &vec![i as u8; *len], a.max_segments());
        }
        a.send(&mut out).await;
        assert!(out.is_empty());
        let mut inbound = Inbound::new();
        let mut got: Vec<(u8, usize)> = Vec::new();
        while got.len() < sizes.len() {
            b.readable().await.unwrap();
            match b.receive(&mut inbound, |from, d| {
                assert_eq!(from, a.local);
                got.push((d[0], d.len()));
            }) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(got, vec![(0, 1200), (1, 1200), (2, 1200), (3, 500)]);
    }

    /// The socket is watched for reading; waiting for room to send
    /// watches a copy of it, which must neither fail beside the first
    /// watch nor take the socket's reading away.
    #[tokio::test]
    async fn waiting_to_send_leaves_the_socket_readable() {
        let (a, b) = (bind().await, bind().await);
        for round in 0..3u8 {
            tokio::time::timeout(std::time::Duration::from_secs(10), b.writable())
                .await
                .expect("a socket with room is writable at once")
                .expect("the copy is watched beside the socket");
            let mut out = Outbound::new();
            out.push(b.local, &[round; 10], 1);
            a.send(&mut out).await;
            let mut inbound = Inbound::new();
            let mut got = Vec::new();
            tokio::time::timeout(std::time::Duration::from_secs(10), async {
                while got.is_empty() {
                    b.readable().await.unwrap();
                    match b.receive(&mut inbound, |_, d| got.push(d.to_vec())) {
                        Ok(_) => {}
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                        Err(e) => panic!("{e}"),
                    }
                }
            })
            .await
            .expect("the datagram is read");
            assert_eq!(got, vec![vec![round; 10]]);
        }
    }

    /// Sends that find the send buffer full wait for room and go on, and
    /// none is lost: on loopback the buffer never fills (a datagram leaves
    /// it as it is sent), so this runs again inside a network namespace of
    /// its own whose loopback sends slowly (a `tbf` queue). Needs root and
    /// `ip`/`tc`; skipped otherwise, saying so.
    #[test]
    fn a_send_that_finds_the_buffer_full_waits_for_room() {
        const INSIDE: &str = "UDPCHAT_SLOW_LOOPBACK";
        if std::env::var_os(INSIDE).is_some() {
            return full_buffer_inside();
        }
        let root = std::fs::read_to_string("/proc/self/status").is_ok_and(|s| {
            s.lines()
                .any(|l| l.starts_with("Uid:") && l.split_whitespace().nth(1) == Some("0"))
        });
        if !root {
            use std::io::Write as _;
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED (needs root): a_send_that_finds_the_buffer_full_waits_for_room \
                 builds a network namespace"
            );
            return;
        }
        let ns = format!("udpchat-sndbuf-{}", std::process::id());
        let ip = |args: &[&str]| {
            let out = std::process::Command::new("ip")
                .args(args)
                .output()
                .expect("`ip` runs (iproute2, as .ci/run installs)");
            assert!(
                out.status.success(),
                "ip {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        };
        ip(&["netns", "add", &ns]);
        struct Gone(String);
        impl Drop for Gone {
            fn drop(&mut self) {
                let _ = std::process::Command::new("ip")
                    .args(["netns", "del", &self.0])
                    .status();
            }
        }
        let _gone = Gone(ns.clone());
        ip(&["-n", &ns, "link", "set", "lo", "up"]);
        // 20 Mbit/s: the datagrams below take about half a second to leave.
        ip(&[
            "netns", "exec", &ns, "tc", "qdisc", "add", "dev", "lo", "root", "tbf", "rate",
            "20mbit", "burst", "16kb", "limit", "8mb",
        ]);
        let exe = std::env::current_exe().unwrap();
        let out = std::process::Command::new("ip")
            .args(["netns", "exec", &ns])
            .arg(exe)
            .args([
                "--exact",
                "socket::tests::a_send_that_finds_the_buffer_full_waits_for_room",
                "--nocapture",
            ])
            .env(INSIDE, "1")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "inside the namespace: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn full_buffer_inside() {
        const COUNT: usize = 1_000;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let (a, b) = (bind().await, bind().await);
            // A small buffer: a few datagrams queued fill it.
            a.state
                .set_send_buffer_size(a.io.get_ref().into(), 16 * 1024)
                .unwrap();
            let to = b.local;
            let reader = tokio::spawn(async move {
                let mut inbound = Inbound::new();
                let mut got = Vec::new();
                while got.len() < COUNT {
                    b.readable().await.unwrap();
                    match b.receive(&mut inbound, |_, d| {
                        got.push(u16::from_be_bytes([d[0], d[1]]))
                    }) {
                        Ok(_) => {}
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                        Err(e) => panic!("{e}"),
                    }
                }
                got
            });
            // The first half one at a time (`sendto`), the rest in batches
            // (`sendmmsg`, which the full buffer stops part way).
            let mut out = Outbound::new();
            let mut waited_one_at_a_time = 0;
            for i in 0..COUNT as u16 {
                let mut datagram = vec![0u8; 1200];
                datagram[..2].copy_from_slice(&i.to_be_bytes());
                let full = out.push(to, &datagram, 1);
                if usize::from(i) < COUNT / 2 || full || usize::from(i) == COUNT - 1 {
                    tokio::time::timeout(std::time::Duration::from_secs(30), a.send(&mut out))
                        .await
                        .expect("a send waiting for room gets it");
                }
                if usize::from(i) == COUNT / 2 - 1 {
                    waited_one_at_a_time =
                        a.waited_for_room.load(std::sync::atomic::Ordering::Relaxed);
                }
            }
            let waited = a.waited_for_room.load(std::sync::atomic::Ordering::Relaxed);
            assert!(
                waited_one_at_a_time > 0,
                "the send buffer never filled: the namespace's loopback is not slow"
            );
            assert!(
                waited > waited_one_at_a_time,
                "the batches never found the buffer full"
            );
            let mut got = tokio::time::timeout(std::time::Duration::from_secs(30), reader)
                .await
                .expect("every datagram arrives")
                .unwrap();
            // UDP keeps no order, and here it does not always: the queue is
            // emptied from whichever core its timer fires on, and each core
            // hands its datagrams on separately (seen in CI: 524 before
            // 521). Order is the transport's job, above this.
            got.sort_unstable();
            assert_eq!(got, (0..COUNT as u16).collect::<Vec<_>>(), "none lost");
        });
    }

    #[tokio::test]
    async fn a_backlog_of_several_batches_is_read_whole() {
        let (a, b) = (bind().await, bind().await);
        let to = b.local;
        // Different sizes: one send each, no GSO run.
        let count = 3 * BATCH_SIZE + 5;
        for i in 0..count {
            let mut out = Outbound::new();
            out.push(to, &vec![(i % 251) as u8; 100 + i], 1);
            a.send(&mut out).await;
        }
        let mut inbound = Inbound::new();
        let mut got = Vec::new();
        // A readiness cleared while datagrams were still waiting would
        // leave this waiting for ever: the timeout turns that into a failure.
        tokio::time::timeout(std::time::Duration::from_secs(10), async {
            while got.len() < count {
                b.readable().await.unwrap();
                loop {
                    match b.receive(&mut inbound, |_, d| got.push(d.len())) {
                        Ok((_, true)) => continue,
                        Ok((_, false)) => break,
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) => panic!("{e}"),
                    }
                }
            }
        })
        .await
        .expect("every datagram is read");
        assert_eq!(got, (0..count).map(|i| 100 + i).collect::<Vec<_>>());
    }
}
