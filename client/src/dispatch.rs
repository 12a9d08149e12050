//! The client's one dispatcher: a shell line goes to its command's `shell`
//! side, a pushed packet to its command's `on_push` side, both looked up in
//! the registry.

use std::collections::HashMap;

use std::sync::Arc;
use tokio::sync::mpsc::{unbounded_channel, UnboundedSender};
use tokio::task::JoinHandle;
use udpchat_core::args::{split_command, Args};

use udpchat_core::context::{Client, PeerId, Sender};
use udpchat_core::envelope::Kind;
use udpchat_core::error::CommandError;
use udpchat_core::output::Output;
use udpchat_core::registry::{PushFn, Registry};
use udpchat_net::Inbound;

use crate::state::ClientState;

/// What a session's worker is given: a packet and the command handling it.
type Work = (PushFn, Sender, Vec<u8>);
/// Where a session's packets go, in order.
type Worker = UnboundedSender<Work>;

/// Runs one shell line; errors are shown, never fatal.
pub async fn run_line(client: &Client, line: &str) {
    let Some((word, rest)) = split_command(line) else {
        return;
    };
    let registry = Registry::global();
    let result = match registry.shell(word).and_then(|c| c.shell) {
        Some(shell) => shell(client.clone(), Args::parse(rest)).await,
        None => Err(udpchat_commands::unknown_command(registry, word)),
    };
    if let Err(e) = result {
        client.emit(Output::error(&e));
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
        let (from, addr, remote_static, envelope) = match next {
            Inbound::Envelope {
                from,
                addr,
                remote_static,
                envelope,
            } => (from, addr, remote_static, envelope),
            Inbound::Closed { peer } => {
                // Its worker ends once it has handled what it was given.
                workers.remove(&peer);
                running.retain(|worker| !worker.is_finished());
                continue;
            }
        };
        let on_push = registry.tag(&envelope.cmd).ok().and_then(|c| c.on_push);
        match (envelope.kind, on_push) {
            (Kind::Push, Some(on_push)) => {
                // From the envelope, not asked of the link: it may have
                // stopped since (the client is leaving).
                let sender = Sender {
                    peer: from,
                    addr,
                    identity: remote_static.map(|key| *key),
                    from_server: state.server().is_server(from).await,
                };
                let worker = workers.entry(from).or_insert_with(|| {
                    running.retain(|worker| !worker.is_finished());
                    let (worker, handle) = spawn_worker(client.clone(), state.clone());
                    running.push(handle);
                    worker
                });
                let _ = worker.send((on_push, sender, envelope.body));
            }
            (Kind::Request, _) => {
                // A client answers no requests yet; say so rather than
                // leave the asker waiting.
                link.reply(
                    from,
                    &envelope.cmd,
                    envelope.id,
                    Err(CommandError::unknown_command(&envelope.cmd)),
                );
            }
            _ => tracing::debug!(peer = %from, cmd = envelope.cmd, "ignored an unknown packet"),
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
    let handle = tokio::spawn(async move {
        while let Some((on_push, sender, body)) = rx.recv().await {
            if sender.from_server {
                state.server_pushes_may_go().await;
            }
            if let Err(e) = on_push(client.clone(), sender, body).await {
                client.emit(Output::error(&e));
            }
        }
    });
    (tx, handle)
}
