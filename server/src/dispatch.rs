//! The server's one dispatcher: every request is looked up in the registry
//! by its tag (and, for a subcommand, its body's `op`) and handed to that
//! command's `serve`; the reply goes back on the session the request came
//! on.
//!
//! The dispatcher is the network driver's [`Owner`]: it runs on the
//! driver's task, as each datagram is read. A handler is polled there
//! once; one that finishes without waiting on I/O (`list`, `ping`,
//! `lookup` of a cached key, presence) is answered in the same turn of the
//! loop, with no task, channel or thread between request and reply. Only
//! a handler that waits (argon2, a SQLite write) goes on as a task, and
//! answers through [`Link::reply`] when done.
//!
//! Handlers in hand are bounded: at most [`PER_SESSION`] per session and
//! [`IN_ALL`] in all. A request past either is answered `busy` at once (a
//! push past them is dropped), so a client that floods requests cannot
//! take more than its share of the server, nor grow its memory without
//! bound.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use parking_lot::Mutex;
use udpchat_core::context::{BoxFuture, Origin, PeerId, Reply, Server};
use udpchat_core::error::{Code, CommandError};
use udpchat_core::registry::Registry;
use udpchat_net::{Arrival, Link, Owner};

use crate::state::ServerState;

/// Requests one session may have in hand at once.
pub const PER_SESSION: usize = 16;
/// Requests all sessions together may have in hand at once.
pub const IN_ALL: usize = 4096;

/// Who has how many requests in hand.
#[derive(Default)]
pub struct Admission {
    per_session: HashMap<PeerId, usize>,
    in_all: usize,
}

impl Admission {
    /// Requests in hand, all sessions together.
    pub fn in_all(&self) -> usize {
        self.in_all
    }

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

/// The dispatcher: see the module's documentation.
pub struct Dispatcher {
    state: Arc<ServerState>,
    link: Link,
    registry: &'static Registry,
    admission: Arc<Mutex<Admission>>,
    /// Where handlers that wait go on: the server's runtime, not the
    /// network thread.
    runtime: tokio::runtime::Handle,
}

impl Dispatcher {
    /// A dispatcher counting the requests in hand in `admission`.
    pub fn new(
        state: Arc<ServerState>,
        link: Link,
        admission: Arc<Mutex<Admission>>,
    ) -> Dispatcher {
        Dispatcher {
            state,
            link,
            registry: Registry::global(),
            admission,
            runtime: tokio::runtime::Handle::current(),
        }
    }
}

impl Owner for Dispatcher {
    fn arrived(&mut self, arrival: Arrival) -> Option<Reply> {
        let request = arrival.is_request();
        let Arrival {
            from,
            addr,
            envelope,
            ..
        } = arrival;
        // The command's name only: what a request carries is the user's.
        tracing::trace!(peer = %from, cmd = envelope.cmd, id = envelope.id, "arrived");
        let serve = self
            .registry
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
                return request.then_some(Err(e));
            }
        };
        if !self.admission.lock().admit(from) {
            tracing::debug!(peer = %from, cmd = envelope.cmd, "busy: turned away");
            return request.then(|| {
                Err(CommandError::new(
                    Code::Busy,
                    "too many requests at once; try again when the earlier ones are answered",
                ))
            });
        }
        let admitted = Admitted(self.admission.clone(), from);
        let origin = Origin { peer: from, addr };
        let server: Server = self.state.clone();
        let reply = match now_or_later(serve(server, origin, envelope.body)) {
            Ok(reply) => reply,
            Err(later) => {
                let link = self.link.clone();
                self.runtime.spawn(async move {
                    let result = later.await;
                    if request {
                        link.reply(from, &envelope.cmd, envelope.id, result);
                    }
                    drop(admitted);
                });
                return None;
            }
        };
        drop(admitted);
        request.then_some(reply)
    }

    fn closed(&mut self, peer: PeerId) -> bool {
        self.state.closed(peer);
        true
    }

    fn moved(&mut self, peer: PeerId, addr: std::net::SocketAddr) {
        self.state.moved(peer, addr);
    }
}

/// Polls `work` once: its result if it is done without waiting, or the
/// work itself, to go on as a task. The waker given is a no-op one: a
/// future that is not ready keeps the waker of its latest poll, which is
/// the task's once spawned.
fn now_or_later<T>(mut work: BoxFuture<'static, T>) -> Result<T, BoxFuture<'static, T>> {
    match Pin::new(&mut work).poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(result) => Ok(result),
        Poll::Pending => Err(work),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn work_done_without_waiting_is_answered_at_once() {
        let work: BoxFuture<'static, u32> = Box::pin(async { 7 });
        assert!(matches!(now_or_later(work), Ok(7)));
    }

    #[tokio::test]
    async fn work_that_waits_finishes_as_a_task() {
        let (tx, rx) = tokio::sync::oneshot::channel::<u32>();
        let work: BoxFuture<'static, u32> = Box::pin(async move { rx.await.unwrap() + 1 });
        let Err(later) = now_or_later(work) else {
            panic!("nothing was sent yet: the work must wait");
        };
        // Polled once with a no-op waker, it must still wake its task.
        let task = tokio::spawn(later);
        tokio::task::yield_now().await;
        tx.send(41).unwrap();
        assert_eq!(task.await.unwrap(), 42);
    }
}
