//! What a command handler may do. Handlers see the server or the client
//! only through these traits, so `udpchat-commands` never depends on the
//! binaries, and tests can hand them a fake.
//!
//! Handlers are async (boxed futures of `std`, no runtime named here): the
//! server or client driver runs them on its own executor.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

pub use parking_lot::Mutex;

use crate::crypto::keys::PublicKey;
use crate::crypto::sealed::SealedMessage;
use crate::error::CommandError;
use crate::group_keys::GroupKeys;
pub use crate::limits::Source;
use crate::mailbox::{Bundle, PrekeyUpload};
use crate::output::Output;
use crate::packet::{Encoded, Push, Request};
use crate::presence::{Presence, PresenceChange};
pub use crate::secure::PeerId;
pub use zeroize::Zeroizing;

mod stores;

pub use stores::{Accounts, Groups, Mailbox};

/// A boxed, sendable future, as handlers return.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A packet's fate: resolves when the peer acknowledged it, with the path
/// it went by.
pub type Delivery = BoxFuture<'static, Result<Path, CommandError>>;

/// How a message reached another client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Path {
    /// Straight from this client to theirs.
    Direct,
    /// Through the server's relay, still end-to-end encrypted.
    Relay,
    /// Sealed and kept by the server until they came back.
    Stored,
}

impl Path {
    /// The word the `--json` events use.
    pub fn word(self) -> &'static str {
        match self {
            Path::Direct => "direct",
            Path::Relay => "relay",
            Path::Stored => "stored",
        }
    }
}

/// A session with another client, as `peers` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerPath {
    pub user: String,
    /// Where its packets go: the client's address, or (relayed) where the
    /// server sees it.
    pub addr: SocketAddr,
    pub path: Path,
}

/// Where a signed-in user's client may be reached, from the server.
#[derive(Debug, Clone)]
pub struct Whereabouts {
    pub user: String,
    /// The key its client proves in the end-to-end handshake.
    pub identity: PublicKey,
    /// Where the server sees it (its NAT's mapping, if it has one).
    pub seen_at: SocketAddr,
    /// Its own addresses, for a peer on the same network.
    pub local: Vec<SocketAddr>,
    /// The meeting the server arranged, when one was asked for.
    pub meeting: Option<crate::secure::meeting::Ticket>,
    /// Whether the server relays for that meeting when no address answers
    /// (not when the user is signed in on another server node).
    pub relay: bool,
    /// The server will tell this client when the user comes or goes (the
    /// asker watches them): until it does, a session opened to these
    /// whereabouts may be written to without asking again.
    pub watched: bool,
}

/// What a handler's reply is: a CBOR body or an error for the requester.
pub type Reply = Result<Vec<u8>, CommandError>;

/// Who sent a request to the server: the encrypted session it came on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Origin {
    pub peer: PeerId,
    /// The session's (validated) address when the request came: whom
    /// per-source limits count it against.
    pub addr: SocketAddr,
}

impl Origin {
    /// The party behind the request, for per-source limits.
    pub fn source(&self) -> Source {
        Source::of(self.addr)
    }
}

/// Who pushed a packet to the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sender {
    pub peer: PeerId,
    /// Where the packet came from.
    pub addr: SocketAddr,
    /// The sender's identity key, proven by the session's handshake (the
    /// server's key for the server).
    pub identity: Option<PublicKey>,
    /// Whether it is the server this client is signed in to.
    pub from_server: bool,
    /// How it came: straight from the sender, or through the server's
    /// relay (then `addr` is where the server sees the sender).
    pub path: Path,
}

/// The server, as its command handlers see it.
pub trait ServerContext: Send + Sync {
    /// Who is signed in.
    fn presence(&self) -> &Mutex<Presence>;
    /// The accounts.
    fn accounts(&self) -> &dyn Accounts;
    /// Stored messages and prekeys.
    fn mailbox(&self) -> &dyn Mailbox;
    /// Groups and their messages.
    fn groups(&self) -> &dyn Groups;
    /// Whether a client still answers on `peer` (within about a second).
    fn probe(&self, peer: PeerId) -> BoxFuture<'static, bool>;
    /// Pushes to `user`'s client wherever it is signed in: on this node,
    /// or through the server node it is on. Nothing if it is not.
    fn push_to_user(&self, user: &str, push: Encoded) {
        let peer = self.presence().lock().session_of(user);
        if let Some(peer) = peer {
            self.send_push(peer, push);
        }
    }
    /// Message `id` was kept for `user`, who is signed in on another server
    /// node: that node hands it over. (A lone server has no other nodes.)
    fn mail_elsewhere(&self, user: &str, id: u64) {
        let _ = (user, id);
    }
    /// Resolves once the other server nodes can see what this one
    /// announced so far (at once for a lone server): a sign-in is answered
    /// only when every node's `list` shows the user.
    fn settled(&self) -> BoxFuture<'static, ()> {
        Box::pin(std::future::ready(()))
    }
    /// Whether `user`'s client, signed in on the server node `node`, still
    /// answers there (that node probes it). A lone server has no other
    /// nodes: nobody answers.
    fn probe_elsewhere(&self, user: &str, node: &str) -> BoxFuture<'static, bool> {
        let _ = (user, node);
        Box::pin(std::future::ready(false))
    }
    /// Tells every other signed-in client that someone came or went. The
    /// server gathers changes for a moment and sends them together, so a
    /// burst of sign-ins costs each client one packet, not one per sign-in.
    fn announce(&self, change: PresenceChange);
    /// Sends a one-way packet to a client, reliably, without waiting
    /// (typed: `push::<…>` on `dyn ServerContext`).
    fn send_push(&self, peer: PeerId, push: Encoded);
    /// The user on `peer` signed in (`true`): keep the session while it
    /// lives; or signed out (`false`): let it close a while after, unless
    /// someone signs in on it again.
    fn keep_session(&self, peer: PeerId, keep: bool);
    /// Where a client's session is now.
    fn peer_addr(&self, peer: PeerId) -> BoxFuture<'static, Option<SocketAddr>>;
    /// Arranges a meeting between the session `asker` and the session
    /// `with` ([`crate::secure::meeting`]) and opens its relay (end to end
    /// encrypted, within a byte budget: [`crate::secure::relay`]); with no
    /// `with` (a client on another server node), a meeting without a relay.
    /// `None` when `asker` asked for too many lately.
    fn arrange_meeting(
        &self,
        asker: PeerId,
        with: Option<PeerId>,
    ) -> Option<crate::secure::meeting::Ticket>;
}

impl dyn ServerContext + '_ {
    /// Pushes `body` to the client on `peer` as a `P`.
    pub fn push<P: Push>(&self, peer: PeerId, body: &P::Body) {
        self.send_push(peer, Encoded::push::<P>(body));
    }

    /// Pushes `body` as a `P` to `user`'s client, wherever it is signed
    /// in (see [`ServerContext::push_to_user`]).
    pub fn push_user<P: Push>(&self, user: &str, body: &P::Body) {
        self.push_to_user(user, Encoded::push::<P>(body));
    }

    /// The name signed in on `peer`, if any.
    pub fn user_at(&self, peer: PeerId) -> Option<String> {
        self.presence().lock().user_at(peer).map(str::to_string)
    }

    /// The session `user` is signed in on, if any.
    pub fn session_of(&self, user: &str) -> Option<PeerId> {
        self.presence().lock().session_of(user)
    }
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
    /// Conversation mode (`chat bob`): the user or group every plain shell
    /// line goes to, until `leave`.
    pub conversation: Option<String>,
}

/// The client, as its command handlers see it: its session, and one narrow
/// handle per concern.
pub trait ClientContext: Send + Sync {
    /// Who is signed in where, and the conversation under way.
    fn session(&self) -> &Mutex<Session>;
    /// The session with the server.
    fn server(&self) -> &dyn ServerLink;
    /// End-to-end sessions with other clients.
    fn peers(&self) -> &dyn PeerLinks;
    /// This user's keys, and the keys seen for others.
    fn keys(&self) -> &dyn Keyring;
    /// Deliveries running in the background.
    fn tasks(&self) -> &dyn Tasks;
    /// Sender keys of private groups.
    fn groups(&self) -> &dyn PrivateGroups;
    /// The user's conversations, kept on this client.
    fn history(&self) -> &dyn crate::history::History;
    /// Shows the user something.
    fn emit(&self, output: Output);
    /// Asks the user for a password without echoing it (interactive), or
    /// reads it from the next input line (scripted).
    fn read_password(
        &self,
        prompt: String,
    ) -> BoxFuture<'static, Result<Zeroizing<String>, CommandError>>;
    /// Asks for a new password: on a terminal twice, without echo (a
    /// typo would make an account nobody can sign in to), from scripted
    /// input once.
    fn read_new_password(
        &self,
        prompt: String,
    ) -> BoxFuture<'static, Result<Zeroizing<String>, CommandError>>;
    /// Asks the user to confirm a step (`prompt` ends with `[y/N] `): on a
    /// terminal, yes only if they type it; in scripts, yes only if the
    /// command line said so beforehand (`--new-device`).
    fn confirm(&self, prompt: String) -> BoxFuture<'static, bool>;
    /// Asks the client to leave once the current command is done.
    fn quit(&self);
    /// Waits until the pushes taken in are handled and acknowledged
    /// (their lines written), at most as long as the transport holds an
    /// acknowledgement: each sender hears of what was shown before the
    /// server says the user left.
    fn settle_pushes(&self) -> BoxFuture<'static, ()>;
}

/// A shared handle on the client.
pub type Client = Arc<dyn ClientContext>;

impl dyn ClientContext {
    /// The signed-in name, or the `not-signed-in` error.
    pub fn user(&self) -> Result<String, CommandError> {
        self.session()
            .lock()
            .user
            .clone()
            .ok_or_else(CommandError::not_signed_in)
    }

    /// Whom a conversation (`chat bob`) is with, if one is on.
    pub fn conversation(&self) -> Option<String> {
        self.session().lock().conversation.clone()
    }
}

/// The client's session with its server.
pub trait ServerLink: Send + Sync {
    /// Sends a request to the server and waits for its reply (typed:
    /// `request::<…>` on `dyn ServerLink`).
    fn send_request(&self, request: Encoded) -> BoxFuture<'static, Reply>;
    /// Holds the server's pushes until the hold is dropped: a sign-in
    /// takes one, so that "Signed in" shows before what the server sends
    /// with it (messages kept, groups), whatever order the packets came in.
    /// This is the one place that order is kept. Holds nest.
    fn hold_pushes(&self) -> PushHold;
    /// Keeps the password of a successful sign-in in memory, so the client
    /// can sign in again by itself after the server comes back. Called on
    /// every sign-in: what the server promised the last one (presence of
    /// those it watched) no longer holds.
    fn remember_password(&self, user: &str, password: Zeroizing<String>);
    /// Forgets it (an explicit logout), which ends the sign-in too.
    fn forget_password(&self);
    /// The server said it is going down: with other servers of the same
    /// deployment given (`--server a,b`), move to the next one now (and
    /// sign in again there, as after a restart). Returns where to.
    fn fail_over(&self) -> Option<SocketAddr> {
        None
    }
}

impl dyn ServerLink + '_ {
    /// Sends `body` as an `R` and waits for its reply.
    pub fn request<R: Request>(
        &self,
        body: &R::Body,
    ) -> impl Future<Output = Result<R::Reply, CommandError>> + Send + 'static {
        let sent = self.send_request(Encoded::request::<R>(body));
        async move { crate::packet::decode_reply(&sent.await?) }
    }
}

/// The server's pushes wait while this lives (see [`ServerLink::hold_pushes`]).
pub struct PushHold(Option<Box<dyn FnOnce() + Send + Sync>>);

impl PushHold {
    /// A hold that `release` ends.
    pub fn new(release: impl FnOnce() + Send + Sync + 'static) -> PushHold {
        PushHold(Some(Box::new(release)))
    }
}

impl Drop for PushHold {
    fn drop(&mut self) {
        if let Some(release) = self.0.take() {
            release();
        }
    }
}

impl std::fmt::Debug for PushHold {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PushHold")
    }
}

/// The client's end-to-end sessions with other clients.
pub trait PeerLinks: Send + Sync {
    /// Sends a one-way packet to another client (typed:
    /// `push::<…>` on `dyn PeerLinks`), over an
    /// end-to-end session with the holder of `to.identity`: the one open,
    /// or a new one on the path its meeting finds (direct, or the server's
    /// relay). Resolves once the packet is queued (in order with earlier
    /// ones), giving the delivery: a future that resolves when the peer
    /// acknowledged it, or with an error when it could not be delivered.
    fn send_push(
        &self,
        to: Whereabouts,
        push: Encoded,
    ) -> BoxFuture<'static, Result<Delivery, CommandError>>;
    /// Whether a message to `user` needs a new session, and so a meeting.
    fn needs_meeting(&self, user: &str) -> bool;
    /// Where `user`'s client is, without asking the server: known when a
    /// session with it is open and the server, which promised to say when
    /// `user` comes or goes, has said nothing of them since, on this
    /// sign-in. A message then goes at once, with no `lookup` before it.
    fn known(&self, user: &str) -> Option<Whereabouts>;
    /// The server said `user` came or went: where their client is must be
    /// asked again before the next message to them.
    fn changed(&self, user: &str);
    /// The server arranged a meeting with another client, who is about to
    /// check `candidates`: check them too, and answer their checks.
    fn meet(&self, ticket: crate::secure::meeting::Ticket, candidates: Vec<SocketAddr>);
    /// The sessions open with other clients: whose, where and by which
    /// path, sorted by user.
    fn list(&self) -> Vec<PeerPath>;
    /// This client's own addresses, for peers on the same network.
    fn local_addresses(&self) -> Vec<SocketAddr>;
    /// `user` went offline: sessions to their client are closed, so what is
    /// still on its way to them fails now and is kept for them on the
    /// server instead of waiting for their client to time out.
    fn gone(&self, user: &str);
}

impl dyn PeerLinks + '_ {
    /// Pushes `body` as a `P` to the client `to` (see [`PeerLinks::send_push`]).
    pub fn push<P: Push>(
        &self,
        to: Whereabouts,
        body: &P::Body,
    ) -> BoxFuture<'static, Result<Delivery, CommandError>> {
        self.send_push(to, Encoded::push::<P>(body))
    }
}

/// This user's keys (identity, prekeys) and the identity keys seen for
/// others.
pub trait Keyring: Send + Sync {
    /// This user's identity key (public half), loaded from the data dir or,
    /// with `create`, made there if missing; also put to use for sessions
    /// from other clients.
    fn identity(&self, user: &str, create: bool) -> Result<PublicKey, CommandError>;
    /// Whether `identity` is the key recorded for `user` when the server
    /// vouched for it (saves a lookup per message from a known sender).
    fn is_known(&self, user: &str, identity: &PublicKey) -> bool;
    /// Compares a user's identity key with the one seen before, warning
    /// the user loudly when it changed; remembers it.
    fn check(&self, user: &str, identity: &PublicKey);
    /// This user's prekeys to publish: the signed prekey and `new` fresh
    /// one-time prekeys (made and kept in the data dir).
    fn prekeys_to_publish(&self, user: &str, new: usize) -> Result<PrekeyUpload, CommandError>;
    /// Seals `plaintext` for the owner of `bundle` with this user's
    /// identity key.
    fn seal(
        &self,
        bundle: &Bundle,
        plaintext: &[u8],
        associated: &[u8],
    ) -> Result<SealedMessage, CommandError>;
    /// Opens a message sealed for this user; returns the sender's proven
    /// identity key and the plaintext. The one-time prekey it used stays
    /// until [`spend`](Self::spend): call that once what the message said
    /// is kept, so that a client killed before then can open it when it
    /// comes again.
    fn open(
        &self,
        sealed: &SealedMessage,
        associated: &[u8],
    ) -> Result<(PublicKey, Vec<u8>), CommandError>;
    /// Deletes the one-time prekey `sealed` used, if it used one: a replay
    /// of it can no longer be opened.
    fn spend(&self, sealed: &SealedMessage) -> Result<(), CommandError>;
}

/// The signed-in user's sender keys in private groups, kept in the data
/// dir (0600).
pub trait PrivateGroups: Send + Sync {
    /// Whose keys these are: the signed-in user, or the one who just
    /// signed out (what reached the client before it did is still read
    /// with their keys and kept in their file).
    fn reader(&self) -> Option<String>;
    /// Runs `f` on the signed-in user's keys (loaded on first use); the
    /// received chains it changed are saved before this returns.
    fn with_keys(&self, f: &mut dyn FnMut(&mut GroupKeys)) -> Result<(), CommandError>;
    /// Gives up the lines still waiting for their key (see
    /// `GroupKeys::take_held`), without opening anything: none when the
    /// keys were never opened.
    fn give_up_held(&self) -> Vec<(crate::group_keys::Member, usize)>;
}

impl dyn PrivateGroups + '_ {
    /// Runs `f` on the signed-in user's keys and gives back what it gave.
    pub fn keys<T>(&self, f: impl FnOnce(&mut GroupKeys) -> T) -> Result<T, CommandError> {
        let mut f = Some(f);
        let mut out = None;
        self.with_keys(&mut |keys| {
            if let Some(f) = f.take() {
                out = Some(f(keys));
            }
        })?;
        out.ok_or_else(|| CommandError::new(crate::error::Code::Internal, "group keys not run"))
    }
}

/// Work the client finishes before it signs out or exits.
pub trait Tasks: Send + Sync {
    /// Runs a task (a delivery) in the background.
    fn spawn(&self, task: BoxFuture<'static, ()>);
    /// Background tasks still running.
    fn unfinished(&self) -> usize;
    /// Waits, at most `patience`, for background tasks; an error if some
    /// are still running then.
    fn settle(&self, patience: std::time::Duration)
        -> BoxFuture<'static, Result<(), CommandError>>;
}
