//! The server's one dispatcher: every request is looked up in the registry
//! by its tag (and, for a subcommand, its body's `op`) and handed to that
//! command's `serve`; the reply goes back on the session the request came
//! on.
//!
//! Handlers run as tasks, a bounded number at once: at most
//! [`PER_SESSION`] per session and [`IN_ALL`] in all. A request past
//! either is answered `busy` at once (a push past them is dropped), so a
//! client that floods requests cannot take more than its share of the
//! server, nor grow its memory without bound.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use parking_lot::Mutex;
use udpchat_core::context::PeerId;
use udpchat_core::context::{Origin, Server};
use udpchat_core::envelope::Kind;
use udpchat_core::error::Code;
use udpchat_core::error::CommandError;
use udpchat_core::registry::Registry;
use udpchat_net::{Inbound, Link};

use crate::state::ServerState;

/// Requests one session may have in hand at once.
pub const PER_SESSION: usize = 16;
/// Requests all sessions together may have in hand at once.
pub const IN_ALL: usize = 4096;

/// Who has how many requests in hand.
#[derive(Default)]
struct Admission {
    per_session: HashMap<PeerId, usize>,
    in_all: usize,
}

impl Admission {
    fn admit(&mut self, peer: PeerId) -> bool {
        let mine = self.per_session.entry(peer).or_default();
        if *mine >= PER_SESSION || self.in_all >= IN_ALL {
            return false;
        }
        *mine += 1;
        self.in_all += 1;
        true
    }

    fn done(&mut self, peer: PeerId) {
        self.in_all -= 1;
        if let Some(mine) = self.per_session.get_mut(&peer) {
            *mine -= 1;
            if *mine == 0 {
                self.per_session.remove(&peer);
            }
        }
    }
}

/// A request in hand; counted out when dropped, however its task ends.
struct Admitted(Arc<Mutex<Admission>>, PeerId);

impl Drop for Admitted {
    fn drop(&mut self) {
        self.0.lock().done(self.1);
    }
}

/// Serves requests until `shutdown` resolves.
pub async fn run(
    state: Arc<ServerState>,
    link: Link,
    mut inbound: udpchat_net::Inbox,
    shutdown: impl Future,
) {
    let registry = Registry::global();
    let server: Server = state.clone();
    let admission = Arc::new(Mutex::new(Admission::default()));
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
                ..
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
        let request = envelope.kind == Kind::Request;
        let serve = registry
            .request(&envelope.cmd, &envelope.body)
            .and_then(|command| {
                command
                    .serve
                    .ok_or_else(|| CommandError::unknown_command(&envelope.cmd))
            });
        let serve = match serve {
            Ok(serve) => serve.run,
            Err(e) => {
                tracing::debug!(peer = %from, cmd = envelope.cmd, "refused: {e}");
                if request {
                    link.reply(from, &envelope.cmd, envelope.id, Err(e));
                }
                continue;
            }
        };
        if !admission.lock().admit(from) {
            tracing::debug!(peer = %from, cmd = envelope.cmd, "busy: turned away");
            if request {
                let busy = CommandError::new(
                    Code::Busy,
                    "too many requests at once; try again when the earlier ones are answered",
                );
                link.reply(from, &envelope.cmd, envelope.id, Err(busy));
            }
            continue;
        }
        let admitted = Admitted(admission.clone(), from);
        let reply = serve(server.clone(), origin, envelope.body);
        let link = link.clone();
        tokio::spawn(async move {
            let result = reply.await;
            if request {
                link.reply(from, &envelope.cmd, envelope.id, result);
            }
            drop(admitted);
        });
    }
}
