//! The client's session with its server: opened on first use with the
//! server's known key (or one trusted on first use), reopened after it
//! failed, and the requests that go over it.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use udpchat_core::context::{PeerId, Reply, Session, Whereabouts};
use udpchat_core::crypto::keys::PublicKey;
use udpchat_core::error::{code, CommandError};
use udpchat_core::output::Output;
use udpchat_core::wire::Pattern;
use udpchat_net::Link;

use crate::render::Printer;
use crate::trust::{self, ServerTrust};

/// How long a handshake with the server made with a known key may go
/// unanswered before the server is asked whether its key changed.
const KEY_CHECK_AFTER: Duration = Duration::from_secs(2);

/// The session with the server: opened on first use, reopened after it
/// failed. The server's key is the one known (pinned with `--server-key`
/// or recorded in `known_servers`): the handshake itself proves the server
/// holds it, and the server is asked for its key (an unauthenticated KEY
/// REQUEST, the first thing a flood would stop) only when none is known.
pub struct ServerConnector {
    link: Link,
    session: Arc<Mutex<Session>>,
    data_dir: PathBuf,
    pinned: Option<PublicKey>,
    printer: Printer,
    current: tokio::sync::Mutex<Option<ServerSession>>,
}

/// The open session with the server.
#[derive(Debug, Clone, Copy)]
struct ServerSession {
    addr: SocketAddr,
    peer: PeerId,
    /// Opened with a key known beforehand, not one the server just gave.
    known_key: bool,
}

impl ServerConnector {
    pub fn new(
        link: Link,
        session: Arc<Mutex<Session>>,
        data_dir: PathBuf,
        pinned: Option<PublicKey>,
        printer: Printer,
    ) -> ServerConnector {
        ServerConnector {
            link,
            session,
            data_dir,
            pinned,
            printer,
            current: tokio::sync::Mutex::new(None),
        }
    }

    /// Sends a request to the server and waits for its answer; a server
    /// whose key changed is said to have (see [`ServerConnector::key_changed`]).
    pub async fn request(&self, cmd: &'static str, body: Vec<u8>) -> Reply {
        let peer = self.peer().await?;
        let answer = tokio::select! {
            answer = self.link.request(peer, cmd, body) => answer,
            changed = self.changed_while_waiting(peer) => Err(changed),
        };
        match answer {
            Err(e) if e.code == code::UNREACHABLE || e.code == code::TIMEOUT => {
                Err(self.unanswered(peer, e).await)
            }
            result => result,
        }
    }

    /// The session with the current server, opening it if needed.
    async fn peer(&self) -> Result<PeerId, CommandError> {
        let mut current = self.current.lock().await;
        let server = self.session.lock().expect("session lock").server;
        match *current {
            Some(open) if open.addr == server => return Ok(open.peer),
            Some(old) => self.link.forget(old.peer),
            None => {}
        }
        let known = trust::known_server(&self.data_dir, server, self.pinned.as_ref());
        let known_key = known.is_some();
        let key = match known {
            Some(key) => key,
            None => self.trust_on_first_use(server).await?,
        };
        let peer = self.link.connect(server, key, Pattern::Nk).await?;
        *current = Some(ServerSession {
            addr: server,
            peer,
            known_key,
        });
        Ok(peer)
    }

    /// Asks a server whose key is not known for it, and records it.
    async fn trust_on_first_use(&self, server: SocketAddr) -> Result<PublicKey, CommandError> {
        let offered = self.link.fetch_server_key(server).await?;
        let trust = trust::check_server(&self.data_dir, server, self.pinned.as_ref(), &offered)?;
        if trust == ServerTrust::FirstUse {
            self.printer.emit(
                Output::new(
                    "server-trusted",
                    format!(
                        "Trusting the server at {server} on first use; its key fingerprint is {}",
                        offered.fingerprint()
                    ),
                )
                .with("server", server.to_string())
                .with("fingerprint", offered.fingerprint()),
            );
        }
        Ok(offered)
    }

    /// What to tell of a request on `peer` that got no answer (`error`):
    /// that the server's key changed, if it did (see
    /// [`ServerConnector::key_changed`]), or `error`.
    async fn unanswered(&self, peer: PeerId, error: CommandError) -> CommandError {
        if let Some(changed) = self.key_changed(peer).await {
            return changed;
        }
        if error.code == code::UNREACHABLE {
            self.failed(peer).await;
        }
        error
    }

    /// Waits while a handshake made with a known key goes unanswered for
    /// [`KEY_CHECK_AFTER`], then ends only if the server's key changed
    /// (with the refusal naming both): raced with a request, it says so in
    /// seconds rather than after the handshake's own timeout.
    async fn changed_while_waiting(&self, peer: PeerId) -> CommandError {
        tokio::time::sleep(KEY_CHECK_AFTER).await;
        match self.key_changed(peer).await {
            Some(changed) => changed,
            None => std::future::pending().await,
        }
    }

    /// A server whose key changed answers no handshake made with the key
    /// known for it. When the session on `peer` was opened with a known key
    /// and has not come up, the server is asked for its key after all (an
    /// unauthenticated KEY REQUEST, only now): if it is another key, the
    /// session is dropped and the refusal naming both fingerprints is
    /// returned.
    async fn key_changed(&self, peer: PeerId) -> Option<CommandError> {
        let open = (*self.current.lock().await).filter(|open| open.peer == peer)?;
        if !open.known_key {
            return None;
        }
        let came_up = self
            .link
            .peer(peer)
            .await
            .is_some_and(|info| info.established);
        if came_up {
            return None;
        }
        let offered = self.link.fetch_server_key(open.addr).await.ok()?;
        let changed =
            trust::check_server(&self.data_dir, open.addr, self.pinned.as_ref(), &offered).err()?;
        self.failed(peer).await;
        Some(changed)
    }

    /// Where `user`'s client is now, as the server sees it: `None` when
    /// the user is not signed in (or the server cannot be asked).
    pub async fn signed_in_at(&self, user: &str) -> Option<SocketAddr> {
        Some(self.whereabouts(user, false).await?.seen_at)
    }

    /// Where `user`'s client may be reached (and, with `meet`, a meeting
    /// with it): `None` when the user is not signed in (or the server
    /// cannot be asked).
    pub async fn whereabouts(&self, user: &str, meet: bool) -> Option<Whereabouts> {
        use udpchat_commands::lookup;
        let reply = self
            .request("lookup", lookup::request(user, meet))
            .await
            .ok()?;
        lookup::whereabouts(user, &reply).ok()
    }

    /// Drops the session with the server, whatever it is.
    pub async fn reset(&self) {
        if let Some(open) = self.current.lock().await.take() {
            self.link.forget(open.peer);
        }
    }

    /// Whether `peer` is the session with the server.
    pub async fn is_server(&self, peer: PeerId) -> bool {
        matches!(*self.current.lock().await, Some(open) if open.peer == peer)
    }

    /// Drops a session that failed, so the next request opens a new one.
    async fn failed(&self, peer: PeerId) {
        let mut current = self.current.lock().await;
        if matches!(*current, Some(open) if open.peer == peer) {
            *current = None;
            self.link.forget(peer);
        }
    }
}
