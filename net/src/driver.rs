//! The driver: the one task that owns the socket, the timer and the
//! [`SecureEndpoint`], takes the [`Link`](crate::Link)'s operations, and
//! hands what arrives to the [`Owner`].

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;

use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use udpchat_core::context::Reply;
use udpchat_core::crypto::keys::PublicKey;
use udpchat_core::envelope::{Envelope, Kind};
use udpchat_core::error::{Code, CommandError};
use udpchat_core::registry::Registry;
use udpchat_core::secure::{HandshakeDone, PeerId, Receipt, SecureEndpoint, SecureEvent};
use udpchat_core::transport::{MessageId, SendError};

use crate::owner::{Arrival, Owner};
use crate::socket::{Inbound, Outbound, Socket};
use crate::{Fate, Latencies, Op, READY_BATCH};
use udpchat_core::now_ms;

mod ops;
mod stop;

/// Who waits for a message's fate.
enum Waiter {
    /// A push, queued at the instant given (None for keepalives, which
    /// say nothing of delivery).
    Push(Fate, Option<Instant>),
    Request(u64),
}

/// How soon a driver whose owner has no room looks again.
const ROOM_RETRY: std::time::Duration = std::time::Duration::from_millis(1);

pub(crate) struct Driver {
    socket: Socket,
    /// Datagrams gathered for the next send.
    out: Outbound,
    endpoint: SecureEndpoint,
    next_id: u64,
    /// Requests awaiting a reply, by request id.
    requests: HashMap<u64, (PeerId, oneshot::Sender<Reply>)>,
    waiters: HashMap<MessageId, Waiter>,
    key_fetches: HashMap<SocketAddr, Vec<oneshot::Sender<PublicKey>>>,
    /// Who hears of each meeting's reachable addresses.
    meetings: HashMap<u64, mpsc::UnboundedSender<SocketAddr>>,
    owner: Box<dyn Owner>,
    /// Closed sessions not yet taken by the owner: never dropped, or the
    /// owner would keep state for them.
    closed: VecDeque<PeerId>,
    /// Set by [`Link::stop`]: the loop ends, then this is told.
    stopped: Option<oneshot::Sender<()>>,
    /// A request or push was handed to the owner since the last turn.
    handed_over: bool,
    /// Threads that may work out handshakes at once (0: this one does).
    handshake_threads: usize,
    /// Handshakes out on them.
    in_work: usize,
    /// Pushes delivered (with their latency) and failed, so far.
    delivered: Latencies,
    failed: u64,
    /// Where a [`PendingAck`](crate::PendingAck) sends its release.
    releases: Option<mpsc::WeakUnboundedSender<Op>>,
    /// Pushes whose acknowledgement the owner holds, not released yet.
    pub(crate) holding: usize,
    /// Told once none is held and the acknowledgements went
    /// ([`Link::settle`](crate::Link::settle)).
    settling: Vec<oneshot::Sender<()>>,
}

impl Driver {
    pub(crate) fn new(socket: Socket, endpoint: SecureEndpoint, owner: Box<dyn Owner>) -> Driver {
        Driver {
            out: Outbound::new(),
            socket,
            endpoint,
            next_id: 1,
            requests: HashMap::new(),
            waiters: HashMap::new(),
            key_fetches: HashMap::new(),
            meetings: HashMap::new(),
            owner,
            closed: VecDeque::new(),
            stopped: None,
            handed_over: false,
            handshake_threads: 0,
            in_work: 0,
            delivered: Latencies::default(),
            failed: 0,
            releases: None,
            holding: 0,
            settling: Vec::new(),
        }
    }

    pub(crate) fn with_handshake_threads(mut self, n: usize) -> Driver {
        self.handshake_threads = n;
        self
    }

    /// Lets an owner that holds acknowledgements ([`Owner::holds_acks`])
    /// release them through the driver's operations.
    pub(crate) fn releasing_through(mut self, releases: mpsc::WeakUnboundedSender<Op>) -> Driver {
        self.releases = Some(releases);
        self
    }

    /// The loop. HELLOs that passed the endpoint's gate go to the
    /// handshake threads, as many at once as there are threads, and come
    /// back worked out to be finished here (the session table and the
    /// replay guard stay on this thread). Without handshake threads they
    /// wait for their P-384 work here until what is already here has been
    /// seen to: the datagrams ready on the socket (up to [`READY_BATCH`])
    /// and the application's operations, so existing sessions go before
    /// new handshakes, which still get one turn per round.
    pub(crate) async fn run(mut self, mut ops: mpsc::UnboundedReceiver<Op>) {
        let mut inbound = Inbound::new();
        // One timer, moved when the endpoint's next deadline moves.
        let timer = tokio::time::sleep_until(Instant::now());
        tokio::pin!(timer);
        let mut timer_at: Option<std::time::Instant> = None;
        // Made once: a `select!` branch's future is built even when the
        // branch is off, and a new `Sleep` reads the clock.
        let retry = tokio::time::sleep(ROOM_RETRY);
        tokio::pin!(retry);
        let (worked_tx, mut worked) = mpsc::unbounded_channel();
        loop {
            self.owner.make_room();
            let settled = self.holding == 0 && !self.settling.is_empty();
            if settled {
                self.endpoint.acknowledge_now();
            }
            self.flush().await;
            if settled {
                for done in self.settling.drain(..) {
                    let _ = done.send(());
                }
            }
            // The owner's reader gets its turn (see `Owner::read_elsewhere`):
            // without it, a 16 KiB message waited in the inbox up to 50 ms
            // under load (PERFORMANCE.md, sixth part).
            if std::mem::take(&mut self.handed_over) && self.owner.read_elsewhere() {
                tokio::task::yield_now().await;
            }
            // While the owner holds pushes it could not pass on, what waits
            // on the socket stays there (see `Owner::has_room`).
            let room = self.owner.has_room();
            if self.handshake_threads > 0 {
                self.hand_out_handshakes(&worked_tx);
            } else if self.endpoint.has_handshakes() {
                if room {
                    self.receive(&mut inbound);
                }
                if !self.take_ready_ops(&mut ops) {
                    return;
                }
                if self.stopped.is_some() {
                    break;
                }
                if self
                    .endpoint
                    .poll_timeout()
                    .is_some_and(|at| at <= std::time::Instant::now())
                {
                    self.timeout();
                }
                self.endpoint
                    .handle_handshake(std::time::Instant::now(), now_ms());
                // Let the runtime's other tasks (the dispatcher) run too.
                tokio::task::yield_now().await;
                continue;
            }
            if !room {
                retry.as_mut().reset(Instant::now() + ROOM_RETRY);
            }
            let deadline = self.endpoint.poll_timeout();
            if deadline != timer_at {
                timer_at = deadline;
                if let Some(at) = deadline {
                    timer.as_mut().reset(Instant::from_std(at));
                }
            }
            tokio::select! {
                // What is ready goes through before the answers go out:
                // one flush for the lot.
                ready = self.socket.readable(), if room => match ready {
                    Ok(()) => self.receive(&mut inbound),
                    Err(e) => tracing::debug!("recv: {e}"),
                },
                // The owner's reader is behind: look again shortly.
                () = retry.as_mut(), if !room => {}
                // With what else is waiting: one flush for the lot (a
                // reader's releases make one ACK, pushes share datagrams).
                op = ops.recv() => match op {
                    Some(op) => {
                        self.handle_op(op);
                        self.take_ready_ops(&mut ops);
                    }
                    None => break,
                },
                () = timer.as_mut(), if timer_at.is_some() => {
                    timer_at = None;
                    self.timeout();
                }
                Some(done) = worked.recv(), if self.in_work > 0 => {
                    self.in_work -= 1;
                    self.endpoint
                        .finish_handshake(std::time::Instant::now(), now_ms(), done);
                }
            }
            if self.stopped.is_some() {
                break;
            }
        }
        self.stop(ops).await;
    }

    /// Gives waiting HELLOs to the handshake threads while one is free.
    fn hand_out_handshakes(&mut self, worked: &mpsc::UnboundedSender<HandshakeDone>) {
        while self.in_work < self.handshake_threads {
            let Some(work) = self
                .endpoint
                .take_handshake(std::time::Instant::now(), now_ms())
            else {
                return;
            };
            self.in_work += 1;
            let worked = worked.clone();
            tokio::task::spawn_blocking(move || {
                // The driver may have stopped meanwhile: then it is dropped.
                let _ = worked.send(work.run(&mut rand::thread_rng()));
            });
        }
    }

    /// Takes what is waiting on the socket, up to [`READY_BATCH`]
    /// datagrams, in batches.
    fn receive(&mut self, inbound: &mut Inbound) {
        let mut taken = 0;
        while taken < READY_BATCH {
            let endpoint = &mut self.endpoint;
            let now = (std::time::Instant::now(), now_ms());
            match self.socket.receive(inbound, |from, datagram| {
                handle(endpoint, now, from, datagram)
            }) {
                Ok((got, more)) => {
                    taken += got;
                    if !more {
                        break;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                // ICMP errors from an earlier send surface here, one per
                // call; the transport's own timers deal with the
                // unreachable peer.
                Err(e) => {
                    taken += 1;
                    tracing::debug!("recv: {e}");
                }
            }
        }
    }

    fn timeout(&mut self) {
        self.endpoint
            .handle_timeout(std::time::Instant::now(), now_ms());
        self.requests.retain(|_, (_, tx)| !tx.is_closed());
    }

    fn send(&mut self, to: PeerId, envelope: Vec<u8>) -> Result<MessageId, CommandError> {
        self.endpoint
            .send(std::time::Instant::now(), to, envelope)
            .map_err(|e| match e {
                SendError::QueueFull => CommandError::new(
                    Code::Busy,
                    "too much is already on its way to that peer; try again later",
                ),
                SendError::NoSession => CommandError::new(Code::Unreachable, e.to_string()),
                e => CommandError::new(Code::TooLarge, e.to_string()),
            })
    }

    /// Sends a one-way message; `done` hears whether it arrived.
    fn push(&mut self, to: PeerId, message: Vec<u8>, done: Fate) {
        let queued = (!message.is_empty()).then(Instant::now);
        match self.send(to, message) {
            Ok(msg) => {
                self.waiters.insert(msg, Waiter::Push(done, queued));
            }
            Err(e) => done.tell(Err(e)),
        }
    }

    /// The same push to each of several sessions, its envelope encoded once.
    fn push_each(&mut self, cmd: &str, body: &[u8], to_each: Vec<(PeerId, Fate)>) {
        let envelope = Envelope::encode_parts(cmd, 0, Kind::Push, body);
        for (to, done) in to_each {
            self.push(to, envelope.clone(), done);
        }
    }

    /// Sends a request's reply (or error) back on its session.
    fn answer(&mut self, to: PeerId, cmd: &str, id: u64, result: Reply) {
        let envelope = match &result {
            Ok(body) => Envelope::encode_parts(cmd, id, Kind::Reply, body),
            Err(e) => Envelope::encode_parts(cmd, id, Kind::Error, &e.to_body()),
        };
        if let Err(e) = self.send(to, envelope) {
            // The reply itself was too large: tell the requester so.
            let _ = self.send(
                to,
                Envelope::encode_parts(cmd, id, Kind::Error, &e.to_body()),
            );
        }
    }

    fn tell_closed(&mut self) {
        while let Some(&peer) = self.closed.front() {
            if !self.owner.closed(peer) {
                return;
            }
            self.closed.pop_front();
        }
    }

    /// Hands what arrived to the owner, then sends what is due, until
    /// neither is left: a reply the owner gave at once leaves in the same
    /// turn as its request came.
    async fn flush(&mut self) {
        self.tell_closed();
        // The clock is read again only after events were handled (their
        // handlers may take a while), not for every datagram.
        let mut now = (std::time::Instant::now(), now_ms());
        loop {
            let mut handled = false;
            while let Some(event) = self.endpoint.poll_event() {
                self.handle_event(event);
                handled = true;
            }
            if handled {
                now = (std::time::Instant::now(), now_ms());
            }
            let Some((to, datagram)) = self.endpoint.poll_transmit(now.0, now.1) else {
                break;
            };
            // Gathered: datagrams in a row to one address go as one (GSO),
            // and the rest of the turn's in as few calls as may be.
            if self.out.push(to, &datagram, self.socket.max_segments()) {
                self.socket.send(&mut self.out).await;
            }
        }
        self.socket.send(&mut self.out).await;
    }

    fn handle_event(&mut self, event: SecureEvent) {
        match event {
            SecureEvent::Received {
                from,
                message,
                receipt,
            } => self.handle_message(from, &message, receipt),
            SecureEvent::Delivered { id, .. } => match self.waiters.remove(&id) {
                Some(Waiter::Push(done, queued)) => {
                    if let Some(queued) = queued {
                        self.delivered.record(queued.elapsed());
                    }
                    done.tell(Ok(()))
                }
                Some(Waiter::Request(_)) | None => {}
            },
            SecureEvent::DeliveryFailed { to, id } => {
                let failure = CommandError::new(Code::Unreachable, "the other side did not answer");
                match self.waiters.remove(&id) {
                    Some(Waiter::Push(done, queued)) => {
                        self.failed += u64::from(queued.is_some());
                        done.tell(Err(failure))
                    }
                    Some(Waiter::Request(request)) => {
                        if let Some((_, reply)) = self.requests.remove(&request) {
                            let _ = reply.send(Err(failure));
                        }
                    }
                    None => {}
                }
                tracing::debug!(peer = %to, "delivery failed");
            }
            SecureEvent::Reachable { meeting, addr } => {
                if let Some(tx) = self.meetings.get(&meeting) {
                    if tx.send(addr).is_err() {
                        self.meetings.remove(&meeting);
                    }
                }
            }
            SecureEvent::ServerKey { addr, key } => {
                for done in self.key_fetches.remove(&addr).unwrap_or_default() {
                    let _ = done.send(key.clone());
                }
            }
            SecureEvent::Moved { peer, addr } => self.owner.moved(peer, addr),
            SecureEvent::Closed { peer } => {
                // Requests whose message was delivered but whose reply can
                // no longer come fail now rather than at their timeout.
                let orphans: Vec<u64> = self
                    .requests
                    .iter()
                    .filter(|(_, (to, _))| *to == peer)
                    .map(|(id, _)| *id)
                    .collect();
                for id in orphans {
                    if let Some((_, reply)) = self.requests.remove(&id) {
                        let _ = reply.send(Err(CommandError::new(
                            Code::Unreachable,
                            "the session closed",
                        )));
                    }
                }
                self.closed.push_back(peer);
                self.tell_closed();
            }
        }
    }

    fn handle_message(&mut self, from: PeerId, message: &[u8], receipt: Receipt) {
        if message.is_empty() {
            // A keepalive (Link::keep_alive): the transport acknowledged it,
            // and the endpoint heard the session is alive.
            return;
        }
        let envelope = match Envelope::decode(message) {
            Ok(envelope) => envelope,
            Err(e) => {
                tracing::debug!(%from, "dropped message: {e}");
                if let Some(id) = udpchat_core::envelope::request_id(message) {
                    let error =
                        CommandError::new(Code::BadRequest, format!("malformed envelope: {e}"));
                    let _ = self.send(
                        from,
                        Envelope::encode_parts(
                            Code::BadRequest.as_str(),
                            id,
                            Kind::Error,
                            &error.to_body(),
                        ),
                    );
                }
                return;
            }
        };
        match envelope.kind {
            Kind::Request | Kind::Push => {
                let Some(peer) = self.endpoint.peer(from) else {
                    return;
                };
                let (cmd, id) = (envelope.cmd.clone(), envelope.id);
                let request = envelope.kind == Kind::Request;
                // A push has no answer to carry its acknowledgement: one
                // whose sender may wait on it is acknowledged in this
                // turn's sends, not 25 ms later; one of a stream (a
                // group's messages) waits for the next, as a request's
                // does, and one ACK answers both. An owner that holds
                // acknowledgements lets it go when done with the push.
                let at_once = !request && Registry::global().ack_at_once(&cmd);
                let ack = self.hold_ack(request, &cmd, (from, receipt), at_once);
                let held = ack.is_some();
                self.handed_over = true;
                let answer = self.owner.arrived(Arrival {
                    from,
                    addr: peer.addr,
                    remote_static: peer.remote_static.map(Box::new),
                    envelope,
                    ack,
                });
                match answer {
                    Some(result) if request => self.answer(from, &cmd, id, result),
                    _ if at_once && !held => self.endpoint.acknowledge(from),
                    _ => {}
                }
            }
            Kind::Reply | Kind::Error => {
                // A reply is taken only from the session the request went to.
                if self.requests.get(&envelope.id).map(|(to, _)| *to) != Some(from) {
                    return;
                }
                let Some((_, reply)) = self.requests.remove(&envelope.id) else {
                    return;
                };
                let result = match envelope.kind {
                    Kind::Reply => Ok(envelope.body),
                    _ => Err(CommandError::from_body(&envelope.body)),
                };
                let _ = reply.send(result);
            }
        }
    }
}

impl Driver {
    /// Holds a push's acknowledgement for an owner that wants it
    /// ([`Owner::holds_acks`]).
    fn hold_ack(
        &mut self,
        request: bool,
        cmd: &str,
        (from, receipt): (PeerId, Receipt),
        at_once: bool,
    ) -> Option<crate::PendingAck> {
        if request || !self.owner.holds_acks() || !Registry::global().held_until_kept(cmd) {
            return None;
        }
        let releases = self.releases.clone()?;
        if !self
            .endpoint
            .hold_ack(std::time::Instant::now(), from, receipt)
        {
            return None;
        }
        self.holding += 1;
        Some(crate::PendingAck {
            peer: from,
            receipt,
            at_once,
            releases,
        })
    }
}

/// One datagram from the socket into the endpoint.
fn handle(
    endpoint: &mut SecureEndpoint,
    (now, now_ms): (std::time::Instant, u64),
    from: SocketAddr,
    datagram: &[u8],
) {
    // A dual-stack socket sees IPv4 peers as IPv4-mapped IPv6 addresses:
    // the endpoint knows them by their IPv4 address.
    let from = SocketAddr::new(from.ip().to_canonical(), from.port());
    if let Err(e) = endpoint.handle_datagram(now, now_ms, from, datagram) {
        tracing::trace!(%from, "dropped datagram: {e}");
    }
}

impl Drop for Driver {
    /// Pushes still in flight when the driver goes are told so.
    fn drop(&mut self) {
        for (_, waiter) in self.waiters.drain() {
            if let Waiter::Push(fate, _) = waiter {
                fate.tell(Err(crate::link_closed()));
            }
        }
    }
}
