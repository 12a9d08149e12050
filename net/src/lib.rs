//! The one network driver, shared by the server and the client: a UDP
//! socket, a timer and the sans-IO [`Endpoint`], turned into futures.
//!
//! [`Link`] is a cheap handle: `request` waits for the peer's reply, `push`
//! waits for the peer's acknowledgement, `reply` answers a request. Requests
//! and pushes that arrive come out of the [`Incoming`] channel for the
//! owner's dispatcher.
#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use udpchat_core::context::Reply;
use udpchat_core::envelope::{Envelope, Kind};
use udpchat_core::error::{code, CommandError};
use udpchat_core::transport::{Config, Endpoint, Event, MessageId};

/// How long a request waits for its reply once the transport delivered it.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(15);

/// A request or push that arrived, for the owner's dispatcher.
#[derive(Debug)]
pub struct Incoming {
    pub from: SocketAddr,
    pub envelope: Envelope,
}

/// What the owner asks the driver to do.
enum Op {
    Request {
        to: SocketAddr,
        cmd: String,
        body: Vec<u8>,
        reply: oneshot::Sender<Reply>,
    },
    Push {
        to: SocketAddr,
        cmd: String,
        body: Vec<u8>,
        done: oneshot::Sender<Result<(), CommandError>>,
    },
    Reply {
        to: SocketAddr,
        cmd: String,
        id: u64,
        result: Reply,
    },
    InFlight {
        done: oneshot::Sender<usize>,
    },
}

/// A handle on the driver; clone it freely.
#[derive(Clone, Debug)]
pub struct Link {
    ops: mpsc::UnboundedSender<Op>,
    local: SocketAddr,
}

impl std::fmt::Debug for Op {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Op")
    }
}

fn link_closed() -> CommandError {
    CommandError::new(code::UNREACHABLE, "the network driver has stopped")
}

impl Link {
    /// Starts the driver on `socket`; returns the handle and the channel of
    /// incoming requests and pushes. The driver stops when every handle is
    /// dropped.
    pub fn spawn(
        socket: UdpSocket,
        config: Config,
    ) -> std::io::Result<(Link, mpsc::UnboundedReceiver<Incoming>)> {
        let local = socket.local_addr()?;
        let (ops_tx, ops_rx) = mpsc::unbounded_channel();
        let (incoming_tx, incoming_rx) = mpsc::unbounded_channel();
        let driver = Driver {
            socket,
            endpoint: Endpoint::new(config, rand_u64()),
            next_id: 1,
            requests: HashMap::new(),
            waiters: HashMap::new(),
            incoming: incoming_tx,
        };
        tokio::spawn(driver.run(ops_rx));
        Ok((Link { ops: ops_tx, local }, incoming_rx))
    }

    /// The socket's own address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Sends a request and waits for the reply (or an error: unreachable
    /// peer, no reply in time, the peer's own error).
    pub fn request(
        &self,
        to: SocketAddr,
        cmd: &str,
        body: Vec<u8>,
    ) -> impl std::future::Future<Output = Reply> + Send + 'static {
        let (reply, rx) = oneshot::channel();
        let sent = self.ops.send(Op::Request {
            to,
            cmd: cmd.to_string(),
            body,
            reply,
        });
        async move {
            sent.map_err(|_| link_closed())?;
            match tokio::time::timeout(REPLY_TIMEOUT, rx).await {
                Ok(Ok(reply)) => reply,
                Ok(Err(_)) => Err(link_closed()),
                Err(_) => Err(CommandError::new(
                    code::TIMEOUT,
                    format!("no reply from {to} in {}s", REPLY_TIMEOUT.as_secs()),
                )),
            }
        }
    }

    /// Queues a one-way packet now; the future resolves when the peer
    /// acknowledged it or the transport gave up.
    pub fn push(
        &self,
        to: SocketAddr,
        cmd: &str,
        body: Vec<u8>,
    ) -> impl std::future::Future<Output = Result<(), CommandError>> + Send + 'static {
        let (done, rx) = oneshot::channel();
        let sent = self.ops.send(Op::Push {
            to,
            cmd: cmd.to_string(),
            body,
            done,
        });
        async move {
            sent.map_err(|_| link_closed())?;
            rx.await.unwrap_or_else(|_| Err(link_closed()))
        }
    }

    /// Answers a request.
    pub fn reply(&self, to: SocketAddr, cmd: &str, id: u64, result: Reply) {
        let _ = self.ops.send(Op::Reply {
            to,
            cmd: cmd.to_string(),
            id,
            result,
        });
    }

    /// How many messages are still on their way to some peer.
    pub async fn in_flight(&self) -> usize {
        let (done, rx) = oneshot::channel();
        if self.ops.send(Op::InFlight { done }).is_err() {
            return 0;
        }
        rx.await.unwrap_or(0)
    }
}

/// Who waits for a message's fate.
enum Waiter {
    Push(oneshot::Sender<Result<(), CommandError>>),
    Request(u64),
}

struct Driver {
    socket: UdpSocket,
    endpoint: Endpoint<SocketAddr>,
    next_id: u64,
    /// Requests awaiting a reply, by request id.
    requests: HashMap<u64, (SocketAddr, oneshot::Sender<Reply>)>,
    waiters: HashMap<MessageId, Waiter>,
    incoming: mpsc::UnboundedSender<Incoming>,
}

impl Driver {
    async fn run(mut self, mut ops: mpsc::UnboundedReceiver<Op>) {
        let mut buf = vec![0u8; 65_536];
        loop {
            self.flush().await;
            let deadline = self.endpoint.poll_timeout();
            tokio::select! {
                received = self.socket.recv_from(&mut buf) => match received {
                    Ok((len, from)) => {
                        if let Err(e) = self.endpoint.handle_datagram(std::time::Instant::now(), from, &buf[..len]) {
                            tracing::debug!(%from, "dropped datagram: {e}");
                        }
                    }
                    // ICMP errors from an earlier send surface here; the
                    // transport's own timers deal with the unreachable peer.
                    Err(e) => tracing::debug!("recv: {e}"),
                },
                op = ops.recv() => match op {
                    Some(op) => self.handle_op(op),
                    None => break,
                },
                () = sleep_until(deadline), if deadline.is_some() => {
                    self.endpoint.handle_timeout(std::time::Instant::now());
                    self.requests.retain(|_, (_, tx)| !tx.is_closed());
                }
            }
        }
    }

    fn send(&mut self, to: SocketAddr, envelope: Vec<u8>) -> Result<MessageId, CommandError> {
        self.endpoint
            .send(std::time::Instant::now(), to, envelope)
            .map_err(|e| CommandError::new(code::TOO_LARGE, e.to_string()))
    }

    fn handle_op(&mut self, op: Op) {
        match op {
            Op::Request {
                to,
                cmd,
                body,
                reply,
            } => {
                let id = self.next_id;
                self.next_id += 1;
                match self.send(to, Envelope::encode_parts(&cmd, id, Kind::Request, &body)) {
                    Ok(msg) => {
                        self.waiters.insert(msg, Waiter::Request(id));
                        self.requests.insert(id, (to, reply));
                    }
                    Err(e) => {
                        let _ = reply.send(Err(e));
                    }
                }
            }
            Op::Push {
                to,
                cmd,
                body,
                done,
            } => match self.send(to, Envelope::encode_parts(&cmd, 0, Kind::Push, &body)) {
                Ok(msg) => {
                    self.waiters.insert(msg, Waiter::Push(done));
                }
                Err(e) => {
                    let _ = done.send(Err(e));
                }
            },
            Op::Reply {
                to,
                cmd,
                id,
                result,
            } => {
                let envelope = match &result {
                    Ok(body) => Envelope::encode_parts(&cmd, id, Kind::Reply, body),
                    Err(e) => Envelope::encode_parts(&cmd, id, Kind::Error, &e.to_body()),
                };
                if let Err(e) = self.send(to, envelope) {
                    // The reply itself was too large: tell the requester so.
                    let _ = self.send(
                        to,
                        Envelope::encode_parts(&cmd, id, Kind::Error, &e.to_body()),
                    );
                }
            }
            Op::InFlight { done } => {
                let _ = done.send(self.waiters.len());
            }
        }
    }

    async fn flush(&mut self) {
        let now = std::time::Instant::now();
        while let Some(transmit) = self.endpoint.poll_transmit(now) {
            if let Err(e) = self
                .socket
                .send_to(&transmit.contents, transmit.destination)
                .await
            {
                tracing::debug!(to = %transmit.destination, "send: {e}");
            }
        }
        while let Some(event) = self.endpoint.poll_event() {
            self.handle_event(event);
        }
    }

    fn handle_event(&mut self, event: Event<SocketAddr>) {
        match event {
            Event::Received { from, message } => self.handle_message(from, &message),
            Event::Delivered { id, .. } => {
                if let Some(Waiter::Push(done)) = self.waiters.remove(&id) {
                    let _ = done.send(Ok(()));
                }
            }
            Event::DeliveryFailed { to, id } => {
                let failure = CommandError::new(code::UNREACHABLE, format!("{to} did not answer"));
                match self.waiters.remove(&id) {
                    Some(Waiter::Push(done)) => {
                        let _ = done.send(Err(failure));
                    }
                    Some(Waiter::Request(request)) => {
                        if let Some((_, reply)) = self.requests.remove(&request) {
                            let _ = reply.send(Err(failure));
                        }
                    }
                    None => {}
                }
            }
        }
    }

    fn handle_message(&mut self, from: SocketAddr, message: &[u8]) {
        let envelope = match Envelope::decode(message) {
            Ok(envelope) => envelope,
            Err(e) => {
                tracing::debug!(%from, "dropped message: {e}");
                return;
            }
        };
        match envelope.kind {
            Kind::Request | Kind::Push => {
                let _ = self.incoming.send(Incoming { from, envelope });
            }
            Kind::Reply | Kind::Error => {
                // A reply is taken only from the peer the request went to.
                let Some((to, _)) = self.requests.get(&envelope.id) else {
                    return;
                };
                if *to != from {
                    return;
                }
                let (_, reply) = self.requests.remove(&envelope.id).expect("checked above");
                let result = match envelope.kind {
                    Kind::Reply => Ok(envelope.body),
                    _ => Err(CommandError::from_body(&envelope.body)),
                };
                let _ = reply.send(result);
            }
        }
    }
}

async fn sleep_until(deadline: Option<std::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(Instant::from_std(deadline)).await,
        None => std::future::pending().await,
    }
}

/// A random incarnation number, so a restarted process is told apart from
/// its earlier self on the same address.
fn rand_u64() -> u64 {
    rand::random()
}
