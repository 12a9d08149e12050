//! The client's one dispatcher: a shell line goes to its command's `shell`
//! side, a pushed packet to its command's `on_push` side, both looked up in
//! the registry.

use std::collections::HashMap;

use std::sync::Arc;
use tokio::sync::mpsc::{unbounded_channel, UnboundedSender};
use udpchat_core::args::{split_command, Args};

use udpchat_core::context::{Client, PeerId, Sender};
use udpchat_core::envelope::Kind;
use udpchat_core::error::CommandError;
use udpchat_core::output::Output;
use udpchat_core::registry::{PushFn, Registry};
use udpchat_net::Inbound;

use crate::state::ClientState;

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

/// Hands every pushed packet to its command until the link stops. Packets
/// from one session are handled one after another, in order; sessions do
/// not wait for each other (verifying a sender asks the server).
pub async fn serve_pushes(
    client: Client,
    state: Arc<ClientState>,
    mut inbound: udpchat_net::Inbox,
) {
    let registry = Registry::global();
    let link = state.link().clone();
    let mut workers: HashMap<PeerId, UnboundedSender<(PushFn, Sender, Vec<u8>)>> = HashMap::new();
    while let Some(next) = inbound.recv().await {
        let (from, envelope) = match next {
            Inbound::Envelope { from, envelope, .. } => (from, envelope),
            Inbound::Closed { peer } => {
                workers.remove(&peer);
                continue;
            }
        };
        let on_push = registry.tag(&envelope.cmd).ok().and_then(|c| c.on_push);
        match (envelope.kind, on_push) {
            (Kind::Push, Some(on_push)) => {
                let Some(info) = link.peer(from).await else {
                    continue;
                };
                let sender = Sender {
                    peer: from,
                    addr: info.addr,
                    identity: info.remote_static,
                    from_server: state.server().is_server(from).await,
                };
                let worker = workers
                    .entry(from)
                    .or_insert_with(|| spawn_worker(client.clone(), state.clone()));
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
}

/// Handles one session's packets in order; the server's wait while a
/// sign-in is under way.
fn spawn_worker(
    client: Client,
    state: Arc<ClientState>,
) -> UnboundedSender<(PushFn, Sender, Vec<u8>)> {
    let (tx, mut rx) = unbounded_channel::<(PushFn, Sender, Vec<u8>)>();
    tokio::spawn(async move {
        while let Some((on_push, sender, body)) = rx.recv().await {
            if sender.from_server {
                state.server_pushes_may_go().await;
            }
            if let Err(e) = on_push(client.clone(), sender, body).await {
                client.emit(Output::error(&e));
            }
        }
    });
    tx
}
