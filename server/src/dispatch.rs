//! The server's one dispatcher: every request is looked up in the registry
//! by its tag and handed to that command's `serve`; the reply goes back to
//! where the request came from.

use std::future::Future;
use std::sync::Arc;

use tokio::sync::mpsc::UnboundedReceiver;
use udpchat_core::context::{Origin, Server};
use udpchat_core::envelope::Kind;
use udpchat_core::error::CommandError;
use udpchat_core::registry::Registry;
use udpchat_net::{Incoming, Link};

use crate::state::ServerState;

/// Serves requests until `shutdown` resolves.
pub async fn run(
    state: Arc<ServerState>,
    link: Link,
    mut incoming: UnboundedReceiver<Incoming>,
    shutdown: impl Future,
) {
    let registry = Registry::global();
    let server: Server = state;
    tokio::pin!(shutdown);
    loop {
        let Incoming { from, envelope } = tokio::select! {
            next = incoming.recv() => match next {
                Some(next) => next,
                None => return,
            },
            _ = &mut shutdown => return,
        };
        let command = match registry.tag(&envelope.cmd) {
            Ok(command) => command.serve,
            Err(_) => None,
        };
        let Some(serve) = command else {
            if envelope.kind == Kind::Request {
                link.reply(
                    from,
                    &envelope.cmd,
                    envelope.id,
                    Err(CommandError::unknown_command(&envelope.cmd)),
                );
            }
            tracing::debug!(%from, cmd = envelope.cmd, "unknown command");
            continue;
        };
        let reply = serve(server.clone(), Origin { addr: from }, envelope.body);
        let link = link.clone();
        tokio::spawn(async move {
            let result = reply.await;
            if envelope.kind == Kind::Request {
                link.reply(from, &envelope.cmd, envelope.id, result);
            }
        });
    }
}
