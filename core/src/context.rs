//! What a command handler may do. Handlers see the server or the client
//! only through these traits, so `udpchat-commands` never depends on the
//! binaries, and tests can hand them a fake.
//!
//! Handlers are async (boxed futures of `std`, no runtime named here): the
//! server or client driver runs them on its own executor.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use crate::error::CommandError;
use crate::output::Output;
use crate::presence::Presence;

/// A boxed, sendable future, as handlers return.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What a handler's reply is: a CBOR body or an error for the requester.
pub type Reply = Result<Vec<u8>, CommandError>;

/// Who sent a request to the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Origin {
    /// The address the request came from.
    pub addr: SocketAddr,
}

/// The server, as its command handlers see it.
pub trait ServerContext: Send + Sync {
    /// Who is signed in.
    fn presence(&self) -> &Mutex<Presence>;
    /// Whether a client still answers at `addr` (within about a second).
    fn probe(&self, addr: SocketAddr) -> BoxFuture<'static, bool>;
    /// Sends a one-way packet to a client, reliably, without waiting.
    fn push(&self, addr: SocketAddr, cmd: &'static str, body: Vec<u8>);
}

/// A shared handle on the server.
pub type Server = Arc<dyn ServerContext>;

/// The client's own state that commands read and change.
#[derive(Debug, Clone)]
pub struct Session {
    /// The server this client talks to.
    pub server: SocketAddr,
    /// The name signed in as, if any.
    pub user: Option<String>,
}

/// The client, as its command handlers see it.
pub trait ClientContext: Send + Sync {
    /// The client's session state.
    fn session(&self) -> &Mutex<Session>;
    /// Sends a request to the server and waits for its reply.
    fn request(&self, cmd: &'static str, body: Vec<u8>) -> BoxFuture<'static, Reply>;
    /// Sends a one-way packet to another client. The packet is queued before
    /// this returns; the future resolves when the peer acknowledged it, or
    /// with an error when it could not be delivered.
    fn push_to(
        &self,
        addr: SocketAddr,
        cmd: &'static str,
        body: Vec<u8>,
    ) -> BoxFuture<'static, Result<(), CommandError>>;
    /// Runs a task in the background; the client waits for such tasks
    /// (bounded) before it exits.
    fn spawn(&self, task: BoxFuture<'static, ()>);
    /// Shows the user something.
    fn emit(&self, output: Output);
    /// Asks the client to leave once the current command is done.
    fn quit(&self);
}

/// A shared handle on the client.
pub type Client = Arc<dyn ClientContext>;

impl dyn ClientContext {
    /// The signed-in name, or the `not-signed-in` error.
    pub fn user(&self) -> Result<String, CommandError> {
        self.session()
            .lock()
            .expect("session lock")
            .user
            .clone()
            .ok_or_else(CommandError::not_signed_in)
    }
}
