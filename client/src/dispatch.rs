//! The client's one dispatcher: a shell line goes to its command's (or
//! subcommand's) `shell` side, a pushed packet to its command's `on_push`
//! side, a request to its `answer` side, all looked up in the registry.
//!
//! The server's pushes wait while a sign-in holds them
//! ([`ServerLink::hold_pushes`](udpchat_core::context::ServerLink::hold_pushes)):
//! that is how "Signed in" shows before what the server sends with it.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::mpsc::{unbounded_channel, UnboundedSender};
use tokio::task::JoinHandle;
use udpchat_core::context::{Client, PeerId, Sender};
use udpchat_core::envelope::Kind;
use udpchat_core::error::{Code, CommandError};
use udpchat_core::output::Output;
use udpchat_core::registry::{PushFn, Registry};
use udpchat_net::{Arrival, Inbound, PendingAck};

use crate::state::ClientState;

/// What a session's worker is given: a packet, its command's tag and the
/// command's handler, and the packet's acknowledgement, held until it is
/// handled and what it kept is written.
type Work = (PushFn, String, Sender, Vec<u8>, Option<PendingAck>);

/// The packets given to workers and not yet handled, by command tag: what
/// a client leaving before they are handled says it could not show.
#[derive(Debug)]
pub struct Handling(tokio::sync::watch::Sender<std::collections::BTreeMap<String, usize>>);

impl Default for Handling {
    fn default() -> Handling {
        Handling(tokio::sync::watch::Sender::new(Default::default()))
    }
}

impl Handling {
    fn started(&self, cmd: &str) {
        self.0
            .send_modify(|counts| *counts.entry(cmd.to_string()).or_default() += 1);
    }

    fn finished(&self, cmd: &str) {
        self.0.send_if_modified(|counts| {
            let Some(n) = counts.get_mut(cmd) else {
                return false;
            };
            *n -= 1;
            if *n == 0 {
                counts.remove(cmd);
            }
            true
        });
    }

    /// Resolves once none is being handled (at once if none is).
    pub fn none(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut counts = self.0.subscribe();
        async move {
            let _ = counts.wait_for(|counts| counts.is_empty()).await;
        }
    }

    /// How many are not handled yet, and of which commands
    /// (`3 (message 2, stored 1)`); `None` when none.
    pub fn unhandled(&self) -> Option<String> {
        let counts = self.0.borrow();
        let total: usize = counts.values().sum();
        (total > 0).then(|| {
            let each: Vec<String> = counts.iter().map(|(cmd, n)| format!("{cmd} {n}")).collect();
            format!("{total} ({})", each.join(", "))
        })
    }
}

/// Packets another client may have waiting to be handled, at most, and
/// their bytes: past either, its packets are dropped and counted, and the
/// user is told how many (a peer writing faster than the client can show
/// would otherwise grow it without bound). People write far slower; the
/// server's session is not bounded here (its pushes are bounded by its own
/// mailbox quota and send queue).
pub const PEER_QUEUE: usize = 1024;
pub const PEER_QUEUE_BYTES: usize = 8 << 20;

/// Where a session's packets go, in order, and what is waiting there.
struct Worker {
    tx: UnboundedSender<Work>,
    queue: Arc<Queue>,
}

/// What waits in one session's worker, and what was dropped since the user
/// was last told.
#[derive(Debug, Default)]
pub struct Queue {
    packets: AtomicUsize,
    bytes: AtomicUsize,
    dropped: AtomicUsize,
}

impl Queue {
    /// Takes a packet of `len` bytes in, unless a bounded queue is full
    /// (then it is counted as dropped).
    pub fn admit(&self, len: usize, bounded: bool) -> bool {
        let packets = self.packets.load(Ordering::SeqCst);
        let bytes = self.bytes.load(Ordering::SeqCst);
        if bounded && (packets >= PEER_QUEUE || bytes + len > PEER_QUEUE_BYTES) {
            self.dropped.fetch_add(1, Ordering::SeqCst);
            return false;
        }
        self.packets.fetch_add(1, Ordering::SeqCst);
        self.bytes.fetch_add(len, Ordering::SeqCst);
        true
    }

    /// A packet of `len` bytes was handled; the number dropped since the
    /// last call, to tell the user.
    pub fn handled(&self, len: usize) -> usize {
        self.packets.fetch_sub(1, Ordering::SeqCst);
        self.bytes.fetch_sub(len, Ordering::SeqCst);
        self.dropped.swap(0, Ordering::SeqCst)
    }
}

/// What the user is told of packets dropped from `addr`.
fn dropped_from(addr: SocketAddr, dropped: usize) -> CommandError {
    CommandError::new(
        Code::Busy,
        format!(
            "dropped {dropped} message(s) from {addr}: they came faster than they could be shown"
        ),
    )
}

/// Runs one shell line (a blank one does nothing); the caller shows its
/// error.
pub async fn run_line(client: &Client, line: &str) -> Result<(), CommandError> {
    let Some(resolved) = Registry::global().line(line) else {
        return Ok(());
    };
    let (command, args) = resolved?;
    match command.shell {
        Some(shell) => shell(client.clone(), args).await,
        None => Err(CommandError::unknown_command(&command.words())),
    }
}

/// Hands every pushed packet to its command until the link stops, then
/// waits for them all to be handled (a message the link acknowledged is
/// shown before the client leaves: see `ClientState::stop_receiving`).
/// Packets from one session are handled one after another, in order;
/// sessions do not wait for each other (verifying a sender asks the
/// server).
pub async fn serve_pushes(
    client: Client,
    state: Arc<ClientState>,
    mut inbound: udpchat_net::Inbox,
) {
    let registry = Registry::global();
    let link = state.link().clone();
    let mut workers: HashMap<PeerId, Worker> = HashMap::new();
    // Workers not yet finished (those of closed sessions included).
    let mut running: Vec<JoinHandle<()>> = Vec::new();
    while let Some(next) = inbound.recv().await {
        let (from, addr, remote_static, envelope, ack) = match next {
            Inbound::Envelope(Arrival {
                from,
                addr,
                remote_static,
                envelope,
                ack,
            }) => (from, addr, remote_static, envelope, ack),
            Inbound::Closed { peer } => {
                // Its worker ends once it has handled what it was given.
                workers.remove(&peer);
                running.retain(|worker| !worker.is_finished());
                continue;
            }
        };
        // From the envelope, not asked of the link: it may have stopped
        // since (the client is leaving).
        let (addr, path) = state.peer_sessions().shown(addr);
        let sender = Sender {
            peer: from,
            addr,
            identity: remote_static.map(|key| *key),
            from_server: state.connector().is_server(from),
            path,
        };
        match envelope.kind {
            Kind::Push => {
                let on_push = registry.tag(&envelope.cmd).ok().and_then(|c| c.on_push);
                let Some(on_push) = on_push else {
                    tracing::debug!(peer = %from, cmd = envelope.cmd, "ignored an unknown push");
                    continue;
                };
                let worker = workers.entry(from).or_insert_with(|| {
                    running.retain(|worker| !worker.is_finished());
                    let (worker, handle) = spawn_worker(client.clone(), state.clone());
                    running.push(handle);
                    worker
                });
                if worker.queue.admit(envelope.body.len(), !sender.from_server) {
                    state.handling().started(&envelope.cmd);
                    let _ = worker
                        .tx
                        .send((on_push.run, envelope.cmd, sender, envelope.body, ack));
                }
            }
            Kind::Request => {
                let answer = registry
                    .request(&envelope.cmd, &envelope.body)
                    .and_then(|c| {
                        c.answer
                            .ok_or_else(|| CommandError::unknown_command(&envelope.cmd))
                    });
                let link = link.clone();
                match answer {
                    Ok(answer) => {
                        let reply = (answer.run)(client.clone(), sender, envelope.body);
                        tokio::spawn(async move {
                            link.reply(from, &envelope.cmd, envelope.id, reply.await);
                        });
                    }
                    // Say so rather than leave the asker waiting.
                    Err(e) => link.reply(from, &envelope.cmd, envelope.id, Err(e)),
                }
            }
            _ => tracing::debug!(peer = %from, cmd = envelope.cmd, "ignored a stray answer"),
        }
    }
    // The link stopped: every packet it took in is handled before leaving.
    drop(workers);
    for worker in running {
        let _ = worker.await;
    }
    state.pushes_handled();
}

/// Handles one session's packets in order; the server's wait while a
/// sign-in is under way.
fn spawn_worker(client: Client, state: Arc<ClientState>) -> (Worker, JoinHandle<()>) {
    let (tx, mut rx) = unbounded_channel::<Work>();
    let queue = Arc::new(Queue::default());
    let handled = queue.clone();
    let handle = tokio::spawn(async move {
        while let Some((on_push, cmd, sender, body, ack)) = rx.recv().await {
            if sender.from_server {
                state.connector().pushes_may_go().await;
            }
            let (addr, len) = (sender.addr, body.len());
            if let Err(e) = on_push(client.clone(), sender, body).await {
                client.emit(Output::error(&e));
            }
            // Its sender hears it arrived once what it kept is on disk.
            if let Some(ack) = ack {
                client.history().after_written(Box::new(move || drop(ack)));
            }
            state.handling().finished(&cmd);
            let dropped = handled.handled(len);
            if dropped > 0 {
                client.emit(Output::error(&dropped_from(addr, dropped)));
            }
        }
    });
    (Worker { tx, queue }, handle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peers_queue_is_bounded_and_what_it_dropped_is_told_once() {
        let queue = Queue::default();
        for _ in 0..PEER_QUEUE {
            assert!(queue.admit(100, true));
        }
        assert!(!queue.admit(100, true), "past PEER_QUEUE packets");
        assert!(!queue.admit(100, true));
        assert_eq!(
            queue.handled(100),
            2,
            "two dropped, told with the next handled"
        );
        assert_eq!(queue.handled(100), 0, "and told once");
        assert!(queue.admit(100, true), "room again");
    }

    #[test]
    fn a_peers_queue_is_bounded_in_bytes_and_the_servers_is_not() {
        let queue = Queue::default();
        assert!(queue.admit(PEER_QUEUE_BYTES - 10, true));
        assert!(!queue.admit(11, true));
        assert!(queue.admit(10, true));
        let server = Queue::default();
        for _ in 0..PEER_QUEUE + 10 {
            assert!(server.admit(PEER_QUEUE_BYTES, false));
        }
        assert_eq!(server.handled(1), 0);
    }

    #[test]
    fn what_is_still_being_handled_is_counted_by_command() {
        let handling = Handling::default();
        assert_eq!(handling.unhandled(), None);
        handling.started("message");
        handling.started("stored");
        handling.started("message");
        assert_eq!(
            handling.unhandled().as_deref(),
            Some("3 (message 2, stored 1)")
        );
        handling.finished("message");
        handling.finished("stored");
        assert_eq!(handling.unhandled().as_deref(), Some("1 (message 1)"));
        handling.finished("message");
        assert_eq!(handling.unhandled(), None);
    }

    #[test]
    fn the_user_is_told_how_many_and_from_where() {
        let told = dropped_from("127.0.0.1:5000".parse().unwrap(), 3);
        assert_eq!(told.code, Code::Busy);
        assert_eq!(
            told.message,
            "dropped 3 message(s) from 127.0.0.1:5000: they came faster than they could be shown"
        );
    }
}
