//! The server's one dispatcher: every request is looked up in the registry
//! by its tag and handed to that command's `serve`; the reply goes back on
//! the session the request came on.

use std::future::Future;
use std::sync::Arc;

use tokio::sync::mpsc::UnboundedReceiver;
use udpchat_core::context::{Origin, Server};
use udpchat_core::envelope::Kind;
use udpchat_core::error::CommandError;
use udpchat_core::registry::Registry;
use udpchat_net::{Inbound, Link};

use crate::state::ServerState;

/// Serves requests until `shutdown` resolves.
pub async fn run(
    state: Arc<ServerState>,
    link: Link,
    mut inbound: UnboundedReceiver<Inbound>,
    shutdown: impl Future,
) {
    let registry = Registry::global();
    let server: Server = state.clone();
    tokio::pin!(shutdown);
    loop {
        let next = tokio::select! {
            next = inbound.recv() => match next {
                Some(next) => next,
                None => return,
            },
            _ = &mut shutdown => return,
        };
        let (origin, envelope) = match next {
            Inbound::Envelope {
                from,
                addr,
                envelope,
            } => {
                state.touch(from);
                (Origin { peer: from, addr }, envelope)
            }
            Inbound::Closed { peer } => {
                state.closed(peer);
                continue;
            }
        };
        let from = origin.peer;
        let serve = registry
            .tag(&envelope.cmd)
            .ok()
            .and_then(|command| command.serve);
        let Some(serve) = serve else {
            if envelope.kind == Kind::Request {
                link.reply(
                    from,
                    &envelope.cmd,
                    envelope.id,
                    Err(CommandError::unknown_command(&envelope.cmd)),
                );
            }
            tracing::debug!(peer = %from, cmd = envelope.cmd, "unknown command");
            continue;
        };
        let request = envelope.kind == Kind::Request;
        if request {
            state.answering(from);
        }
        let reply = serve(server.clone(), origin, envelope.body);
        let (link, state) = (link.clone(), state.clone());
        tokio::spawn(async move {
            let result = reply.await;
            if request {
                link.reply(from, &envelope.cmd, envelope.id, result);
                state.answered(from);
            }
        });
    }
}
