//! The client's session with its server: opened on first use with the
//! server's known key (or one trusted on first use), reopened after it
//! failed, and the requests that go over it; the hold on the server's
//! pushes while a sign-in is under way; the password kept to sign in again
//! by itself ([`keepalive`]).
//!
//! No lock is held across I/O: the state of the session is behind a plain
//! lock taken for a moment, and a request that finds the session being
//! opened waits on that opening's outcome (a watch channel), not on a lock.
//! So asking whether a packet came from the server never waits for a
//! handshake.

pub mod keepalive;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::watch;
use udpchat_commands::lookup::{self, Lookup};
use udpchat_core::context::{
    BoxFuture, PeerId, PushHold, Reply, ServerLink, Session, Whereabouts, Zeroizing,
};
use udpchat_core::crypto::keys::PublicKey;
use udpchat_core::error::{Code, CommandError};
use udpchat_core::output::Output;
use udpchat_core::packet::Encoded;
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
    me: Weak<ServerConnector>,
    link: Link,
    /// Every server of the deployment (`--server a,b`, or the addresses of
    /// one name), in order: the session moves to the next when its server
    /// goes. They share one key.
    servers: Vec<SocketAddr>,
    /// Rings when the session moved to another server.
    moved: tokio::sync::Notify,
    session: Arc<Mutex<Session>>,
    data_dir: PathBuf,
    pinned: Option<PublicKey>,
    printer: Printer,
    current: Mutex<Current>,
    /// Openings started so far, to tell one from the next.
    openings: AtomicU64,
    /// Holds on the server's pushes (sign-ins under way): while above
    /// zero, they wait (see [`ServerLink::hold_pushes`]).
    holds: Arc<watch::Sender<usize>>,
    /// The password of the last successful sign-in, to sign in again by
    /// itself after the server comes back.
    remembered: Mutex<Option<(String, Zeroizing<String>)>>,
    /// Sign-ins and sign-outs so far (see [`SignInEpoch`]).
    sign_ins: AtomicU64,
}

/// One sign-in on one session with the server. What the server promised
/// to tell a client (who it watches, [`udpchat_core::presence`]) holds for
/// that sign-in on that session only: a sign-out, a sign-in, or a new
/// session (the server restarted) ends it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignInEpoch {
    server: PeerId,
    sign_ins: u64,
}

/// The open session with the server.
#[derive(Debug, Clone, Copy)]
struct ServerSession {
    addr: SocketAddr,
    peer: PeerId,
    /// Opened with a key known beforehand, not one the server just gave.
    known_key: bool,
}

/// How an opening ended, for those who waited on it.
type Opened = Option<Result<PeerId, CommandError>>;

/// Where the session with the server stands.
#[derive(Debug, Clone)]
enum Current {
    /// No session: the next request opens one.
    Closed,
    /// Being opened to `addr`: its outcome comes on `done`.
    Opening {
        addr: SocketAddr,
        number: u64,
        done: watch::Receiver<Opened>,
    },
    Open(ServerSession),
}

/// What a request does about the session, decided under the lock.
enum Next {
    Use(PeerId),
    Wait(u64, watch::Receiver<Opened>),
    Open(u64, watch::Sender<Opened>),
}

impl ServerConnector {
    pub fn new(
        link: Link,
        servers: Vec<SocketAddr>,
        session: Arc<Mutex<Session>>,
        data_dir: PathBuf,
        pinned: Option<PublicKey>,
        printer: Printer,
    ) -> Arc<ServerConnector> {
        Arc::new_cyclic(|me| ServerConnector {
            me: me.clone(),
            link,
            servers,
            moved: tokio::sync::Notify::new(),
            session,
            data_dir,
            pinned,
            printer,
            current: Mutex::new(Current::Closed),
            openings: AtomicU64::new(0),
            holds: Arc::new(watch::Sender::new(0)),
            remembered: Mutex::new(None),
            sign_ins: AtomicU64::new(0),
        })
    }

    fn this(&self) -> Arc<ServerConnector> {
        self.me
            .upgrade()
            .expect("the connector outlives its requests")
    }

    /// Sends a request to the server and waits for its answer; a server
    /// whose key changed is said to have (see [`ServerConnector::key_changed`]).
    pub async fn request(&self, request: Encoded) -> Reply {
        let peer = self.peer().await?;
        let answer = tokio::select! {
            answer = self.link.request(peer, request) => answer,
            changed = self.changed_while_waiting(peer) => Err(changed),
        };
        match answer {
            Err(e) if e.code == Code::Unreachable || e.code == Code::Timeout => {
                Err(self.unanswered(peer, e).await)
            }
            result => result,
        }
    }

    /// Sends a keepalive to the server (opening the session if needed)
    /// and waits for the server's transport to acknowledge it: an empty
    /// message, no envelope, nothing for the server's dispatcher to run.
    pub async fn keep_alive(&self) -> Result<(), CommandError> {
        let peer = self.peer().await?;
        self.link.keep_alive(peer).await
    }

    /// The session with the current server, opening it if needed (or
    /// waiting for the opening under way).
    async fn peer(&self) -> Result<PeerId, CommandError> {
        loop {
            let server = self.session.lock().server;
            let next = {
                let mut current = self.current.lock();
                match &*current {
                    Current::Open(open) if open.addr == server => Next::Use(open.peer),
                    Current::Opening { addr, number, done } if *addr == server => {
                        Next::Wait(*number, done.clone())
                    }
                    other => {
                        if let Current::Open(old) = other {
                            self.link.forget(old.peer);
                        }
                        let number = self.openings.fetch_add(1, Ordering::Relaxed) + 1;
                        let (tx, rx) = watch::channel(None);
                        *current = Current::Opening {
                            addr: server,
                            number,
                            done: rx,
                        };
                        Next::Open(number, tx)
                    }
                }
            };
            match next {
                Next::Use(peer) => return Ok(peer),
                Next::Open(number, done) => {
                    let opened = self.open(server, number).await;
                    done.send_replace(Some(opened.clone()));
                    return opened;
                }
                Next::Wait(number, mut done) => {
                    match done.wait_for(Option::is_some).await {
                        Ok(opened) => return opened.clone().expect("waited for an outcome"),
                        // The opener gave up half way (its request was
                        // dropped): start again.
                        Err(_) => self.abandoned(number),
                    }
                }
            }
        }
    }

    /// Opens the session to `server` (opening number `number`); records
    /// it, unless another opening replaced this one meanwhile.
    async fn open(&self, server: SocketAddr, number: u64) -> Result<PeerId, CommandError> {
        let opened = async {
            let known =
                trust::known_server(&self.data_dir, server, &self.servers, self.pinned.as_ref());
            let known_key = known.is_some();
            let key = match known {
                Some(key) => key,
                None => self.trust_on_first_use(server).await?,
            };
            let peer = self.link.connect(server, key, Pattern::Nk).await?;
            Ok::<_, CommandError>(ServerSession {
                addr: server,
                peer,
                known_key,
            })
        }
        .await;
        let mut current = self.current.lock();
        let still_ours = matches!(&*current, Current::Opening { number: n, .. } if *n == number);
        match opened {
            Ok(open) if still_ours => {
                *current = Current::Open(open);
                Ok(open.peer)
            }
            Ok(open) => {
                // Replaced (the client moved to another server): not used.
                self.link.forget(open.peer);
                Err(CommandError::new(
                    Code::Unreachable,
                    "the server changed while its session was being opened",
                ))
            }
            Err(e) => {
                if still_ours {
                    *current = Current::Closed;
                }
                Err(e)
            }
        }
    }

    /// An opening whose opener vanished is forgotten, so the next request
    /// opens anew.
    fn abandoned(&self, number: u64) {
        let mut current = self.current.lock();
        if matches!(&*current, Current::Opening { number: n, .. } if *n == number) {
            *current = Current::Closed;
        }
    }

    /// Asks a server whose key is not known for it, and records it.
    async fn trust_on_first_use(&self, server: SocketAddr) -> Result<PublicKey, CommandError> {
        let offered = self.link.fetch_server_key(server).await?;
        let trust = trust::check_server(
            &self.data_dir,
            server,
            &self.servers,
            self.pinned.as_ref(),
            &offered,
        )?;
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
        if error.code == Code::Unreachable {
            self.failed(peer);
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
        let open = match &*self.current.lock() {
            Current::Open(open) if open.peer == peer => *open,
            _ => return None,
        };
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
        let changed = trust::check_server(
            &self.data_dir,
            open.addr,
            &self.servers,
            self.pinned.as_ref(),
            &offered,
        )
        .err()?;
        self.failed(peer);
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
        let asked = (self as &dyn ServerLink).request::<Lookup>(&lookup::request(user, meet));
        lookup::whereabouts(user, asked.await.ok()?).ok()
    }

    /// Drops the session with the server, whatever it is.
    pub fn reset(&self) {
        let old = std::mem::replace(&mut *self.current.lock(), Current::Closed);
        if let Current::Open(open) = old {
            self.link.forget(open.peer);
        }
    }

    /// Moves to the next server of the deployment (none if there is only
    /// one): the session with the current one is dropped, and the next
    /// request opens one with the next. Wakes the keepalive, which signs in
    /// again there.
    pub fn next_server(&self) -> Option<SocketAddr> {
        if self.servers.len() < 2 {
            return None;
        }
        let next = {
            let mut session = self.session.lock();
            let at = self.servers.iter().position(|s| *s == session.server);
            let next = self.servers[at.map_or(0, |i| (i + 1) % self.servers.len())];
            session.server = next;
            session.user = None;
            next
        };
        self.reset();
        self.printer.emit(
            Output::new("server-switch", format!("trying the server at {next}"))
                .with("server", next.to_string()),
        );
        self.moved.notify_one();
        Some(next)
    }

    /// Whether `server` is the first of the deployment's (where a round of
    /// tries starts again).
    pub fn is_first(&self, server: SocketAddr) -> bool {
        self.servers.first() == Some(&server)
    }

    /// Resolves when the session moved to another server.
    pub async fn moved(&self) {
        self.moved.notified().await;
    }

    /// The sign-in under way on the session open with the server, if one is.
    pub fn sign_in_epoch(&self) -> Option<SignInEpoch> {
        match &*self.current.lock() {
            Current::Open(open) => Some(SignInEpoch {
                server: open.peer,
                sign_ins: self.sign_ins.load(Ordering::Relaxed),
            }),
            _ => None,
        }
    }

    /// Whether `peer` is the session with the server.
    pub fn is_server(&self, peer: PeerId) -> bool {
        matches!(&*self.current.lock(), Current::Open(open) if open.peer == peer)
    }

    /// Drops a session that failed, so the next request opens a new one.
    fn failed(&self, peer: PeerId) {
        let mut current = self.current.lock();
        if matches!(&*current, Current::Open(open) if open.peer == peer) {
            *current = Current::Closed;
            self.link.forget(peer);
        }
    }

    /// Resolves once no sign-in holds the server's pushes.
    pub async fn pushes_may_go(&self) {
        let mut holds = self.holds.subscribe();
        // The sender lives as long as self: this cannot fail.
        let _ = holds.wait_for(|holds| *holds == 0).await;
    }

    /// The remembered credentials, if any.
    pub fn remembered(&self) -> Option<(String, Zeroizing<String>)> {
        self.remembered.lock().clone()
    }
}

impl ServerLink for ServerConnector {
    fn send_request(&self, request: Encoded) -> BoxFuture<'static, Reply> {
        let this = self.this();
        Box::pin(async move { this.request(request).await })
    }

    fn fail_over(&self) -> Option<SocketAddr> {
        self.next_server()
    }

    fn hold_pushes(&self) -> PushHold {
        self.holds.send_modify(|holds| *holds += 1);
        let holds = self.holds.clone();
        PushHold::new(move || holds.send_modify(|holds| *holds = holds.saturating_sub(1)))
    }

    fn remember_password(&self, user: &str, password: Zeroizing<String>) {
        self.sign_ins.fetch_add(1, Ordering::Relaxed);
        *self.remembered.lock() = Some((user.to_string(), password));
    }

    fn forget_password(&self) {
        self.sign_ins.fetch_add(1, Ordering::Relaxed);
        *self.remembered.lock() = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use udpchat_commands::ping::Ping;

    /// A connector to a server that never answers (a bound socket nobody
    /// reads), with no key known for it.
    fn silent_server() -> (Arc<ServerConnector>, std::net::UdpSocket, tempfile::TempDir) {
        let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.set_nonblocking(true).unwrap();
        let (link, _inbox) =
            Link::spawn_client(tokio::net::UdpSocket::from_std(socket).unwrap()).unwrap();
        let session = Arc::new(Mutex::new(Session {
            server: silent.local_addr().unwrap(),
            user: None,
            conversation: None,
        }));
        let dir = tempfile::tempdir().unwrap();
        let (printer, _printed) = Printer::new(crate::render::Format::Json);
        let servers = vec![silent.local_addr().unwrap()];
        let connector = ServerConnector::new(
            link,
            servers,
            session,
            dir.path().to_path_buf(),
            None,
            printer,
        );
        (connector, silent, dir)
    }

    fn ping() -> Encoded {
        Encoded::request::<Ping>(&())
    }

    #[tokio::test(start_paused = true)]
    async fn requests_while_the_session_opens_wait_for_that_opening_and_nothing_else_waits() {
        let (connector, _silent, _dir) = silent_server();
        let first = tokio::spawn({
            let connector = connector.clone();
            async move { connector.request(ping()).await }
        });
        // Let the first request start opening the session (asking the
        // silent server for its key), then ask again beside it.
        tokio::task::yield_now().await;
        assert!(matches!(
            &*connector.current.lock(),
            Current::Opening { .. }
        ));
        // Whether a packet came from the server is answered at once.
        assert!(!connector.is_server(PeerId(1)));
        let second = tokio::spawn({
            let connector = connector.clone();
            async move { connector.request(ping()).await }
        });
        let (first, second) = (first.await.unwrap(), second.await.unwrap());
        let first = first.unwrap_err();
        assert_eq!(first.code, Code::Unreachable, "{first}");
        assert!(
            first.message.starts_with("no udpchat server answered"),
            "{first}"
        );
        assert_eq!(second.unwrap_err(), first, "the one opening's outcome");
        assert_eq!(connector.openings.load(Ordering::Relaxed), 1, "opened once");
    }

    #[tokio::test(start_paused = true)]
    async fn an_opening_whose_request_gave_up_is_not_waited_for() {
        let (connector, _silent, _dir) = silent_server();
        let first = tokio::spawn({
            let connector = connector.clone();
            async move { connector.request(ping()).await }
        });
        tokio::task::yield_now().await;
        let second = tokio::spawn({
            let connector = connector.clone();
            async move { connector.request(ping()).await }
        });
        tokio::task::yield_now().await;
        // The first request is dropped half way (a timeout around it, say).
        first.abort();
        let second = tokio::time::timeout(Duration::from_secs(3600), second)
            .await
            .expect("the second request did not wait for ever")
            .unwrap();
        assert_eq!(second.unwrap_err().code, Code::Unreachable);
        assert_eq!(
            connector.openings.load(Ordering::Relaxed),
            2,
            "it opened anew"
        );
    }
}
