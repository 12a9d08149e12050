//! The client as command handlers see it: the session, the link to the
//! server and to other clients, trust decisions, the printer and the
//! background tasks it must wait for before leaving.

use std::collections::{HashSet, VecDeque};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{BufReader, Lines, Stdin};
use tokio::task::JoinHandle;
use udpchat_core::context::{
    BoxFuture, ClientContext, Delivery, PeerPath, Reply, Session, Whereabouts, Zeroizing,
};
use udpchat_core::crypto::keys::{PublicKey, StaticKey};
use udpchat_core::crypto::sealed::{self, Prekeys, SealedMessage};
use udpchat_core::error::{code, CommandError};
use udpchat_core::mailbox::{Bundle, PrekeyUpload};
use udpchat_core::output::Output;
use udpchat_core::secure::meeting::Ticket;
use udpchat_net::Link;

use crate::peer_sessions::PeerSessions;
use crate::render::Printer;
use crate::roster::Roster;
use crate::server_session::ServerConnector;
use crate::trust::{self, KnownUsers, PeerTrust};

/// Lines of stdin, shared by scripted mode and password prompts.
pub type InputLines = Arc<tokio::sync::Mutex<Lines<BufReader<Stdin>>>>;

/// Where passwords left off a command line come from.
pub enum PasswordSource {
    /// Asked for on the terminal, without echo.
    Terminal,
    /// The next line of (scripted) input.
    Input(InputLines),
}

/// Stored messages remembered as taken in, at most (oldest forgotten
/// first): far more than a second copy can lag behind the first.
const HANDED_OVER: usize = 4_096;

/// Stored messages taken in lately, by server, user and id.
#[derive(Default)]
struct HandedOver {
    seen: HashSet<(SocketAddr, String, u64)>,
    order: VecDeque<(SocketAddr, String, u64)>,
}

impl HandedOver {
    /// `true` if `key` is new (and now remembered).
    fn first(&mut self, key: (SocketAddr, String, u64)) -> bool {
        if self.seen.contains(&key) {
            return false;
        }
        if self.order.len() >= HANDED_OVER {
            if let Some(oldest) = self.order.pop_front() {
                self.seen.remove(&oldest);
            }
        }
        self.seen.insert(key.clone());
        self.order.push_back(key);
        true
    }
}

pub struct ClientState {
    session: Arc<Mutex<Session>>,
    link: Link,
    printer: Printer,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    quitting: AtomicBool,
    /// Names for completion, kept up to date from the events shown.
    roster: Arc<Mutex<Roster>>,
    data_dir: PathBuf,
    server: Arc<ServerConnector>,
    /// Sessions with other clients.
    peers: Arc<PeerSessions>,
    /// This client's own addresses, for peers on its network.
    local: Vec<SocketAddr>,
    passwords: PasswordSource,
    /// The signed-in user's keys, once `identity` loaded them.
    keys: Mutex<Option<UserKeys>>,
    /// The password of the last successful sign-in, to sign in again by
    /// itself after the server comes back.
    remembered: Mutex<Option<(String, Zeroizing<String>)>>,
    /// The signed-in user's known identity keys, in memory.
    known_users: Mutex<Option<KnownUsers>>,
    /// Sign-ins under way: while above zero, the server's pushes wait
    /// (see `hold_server_pushes`).
    sign_ins: tokio::sync::watch::Sender<usize>,
    /// Stored messages taken in lately (see `first_handover`).
    handed_over: Mutex<HandedOver>,
    /// True once every packet the link took in has been handled, after
    /// the link stopped (see `stop_receiving`).
    pushes_handled: tokio::sync::watch::Sender<bool>,
}

/// How long a leaving client waits for what it received to be handled:
/// with the link stopped, nothing in it waits on the network.
const PUSHES_WITHIN: Duration = Duration::from_secs(10);

/// One user's secrets, in memory while signed in.
struct UserKeys {
    user: String,
    identity: StaticKey,
}

impl ClientState {
    pub fn new(
        server: SocketAddr,
        link: Link,
        printer: Printer,
        data_dir: PathBuf,
        pinned: Option<PublicKey>,
        passwords: PasswordSource,
        local: Vec<SocketAddr>,
    ) -> ClientState {
        let session = Arc::new(Mutex::new(Session {
            server,
            user: None,
            conversation: None,
        }));
        let connector = Arc::new(ServerConnector::new(
            link.clone(),
            session.clone(),
            data_dir.clone(),
            pinned,
            printer.clone(),
        ));
        ClientState {
            peers: Arc::new(PeerSessions::new(
                link.clone(),
                connector.clone(),
                session.clone(),
            )),
            session,
            roster: Arc::new(Mutex::new(Roster::default())),
            link,
            printer,
            tasks: Mutex::new(Vec::new()),
            quitting: AtomicBool::new(false),
            data_dir,
            server: connector,
            local,
            passwords,
            keys: Mutex::new(None),
            remembered: Mutex::new(None),
            known_users: Mutex::new(None),
            sign_ins: tokio::sync::watch::Sender::new(0),
            handed_over: Mutex::new(HandedOver::default()),
            pushes_handled: tokio::sync::watch::Sender::new(false),
        }
    }

    /// The client is leaving (signed out): stops the link, so that no
    /// message is acknowledged any more (a sender keeps what is not, for
    /// the next sign-in), and waits (bounded) until what it did
    /// acknowledge is handled and shown.
    pub async fn stop_receiving(&self) {
        self.link.stop().await;
        let mut handled = self.pushes_handled.subscribe();
        let waited =
            tokio::time::timeout(PUSHES_WITHIN, handled.wait_for(|handled| *handled)).await;
        if waited.is_err() {
            tracing::warn!("leaving with received packets not yet handled");
        }
    }

    /// Every packet the stopped link took in has been handled.
    pub fn pushes_handled(&self) {
        self.pushes_handled.send_replace(true);
    }

    /// Resolves once no sign-in is under way: the server's pushes wait for
    /// it, so "Signed in" shows before what the server sends after it.
    pub async fn server_pushes_may_go(&self) {
        let mut sign_ins = self.sign_ins.subscribe();
        // The sender lives as long as self: this cannot fail.
        let _ = sign_ins.wait_for(|under_way| *under_way == 0).await;
    }

    /// Runs `f` on the signed-in user's book of known identity keys,
    /// loading it on first use (or after signing in as someone else).
    fn with_known_users<T>(&self, f: impl FnOnce(&mut KnownUsers) -> T) -> Option<T> {
        let me = self.session.lock().expect("session lock").user.clone()?;
        let mut known = self.known_users.lock().expect("known users lock");
        if known.as_ref().is_none_or(|book| book.owner() != me) {
            *known = Some(KnownUsers::open(&self.data_dir, &me));
        }
        known.as_mut().map(f)
    }

    /// The remembered credentials, if any.
    pub fn remembered(&self) -> Option<(String, Zeroizing<String>)> {
        self.remembered.lock().expect("remembered lock").clone()
    }

    fn user_keys<T>(
        &self,
        f: impl FnOnce(&UserKeys) -> Result<T, CommandError>,
    ) -> Result<T, CommandError> {
        let keys = self.keys.lock().expect("keys lock");
        let keys = keys.as_ref().ok_or_else(CommandError::not_signed_in)?;
        f(keys)
    }

    pub fn link(&self) -> &Link {
        &self.link
    }

    /// The sessions with other clients.
    pub fn peer_sessions(&self) -> &PeerSessions {
        &self.peers
    }

    pub fn server(&self) -> &Arc<ServerConnector> {
        &self.server
    }

    pub fn printer(&self) -> &Printer {
        &self.printer
    }

    /// The users and groups the shell completes (shared with its thread).
    pub fn roster(&self) -> &Arc<Mutex<Roster>> {
        &self.roster
    }

    pub fn quitting(&self) -> bool {
        self.quitting.load(Ordering::SeqCst)
    }
}

impl ClientContext for ClientState {
    fn session(&self) -> &Mutex<Session> {
        &self.session
    }

    fn request(&self, cmd: &'static str, body: Vec<u8>) -> BoxFuture<'static, Reply> {
        let server = self.server.clone();
        Box::pin(async move { server.request(cmd, body).await })
    }

    fn push_to(
        &self,
        to: Whereabouts,
        cmd: &'static str,
        body: Vec<u8>,
    ) -> BoxFuture<'static, Result<Delivery, CommandError>> {
        self.peers.push_to(to, cmd, body)
    }

    fn needs_meeting(&self, user: &str) -> bool {
        self.peers.needs_meeting(user)
    }

    fn meet(&self, ticket: Ticket, candidates: Vec<SocketAddr>) {
        self.peers.meet(ticket, candidates);
    }

    fn peers(&self) -> Vec<PeerPath> {
        self.peers.list()
    }

    fn local_addresses(&self) -> Vec<SocketAddr> {
        self.local.clone()
    }

    fn identity(&self, user: &str, create: bool) -> Result<PublicKey, CommandError> {
        let key = trust::identity(&self.data_dir, user, create)?;
        let public = key.public();
        self.link.set_identity(Some(key.clone()));
        *self.keys.lock().expect("keys lock") = Some(UserKeys {
            user: user.to_string(),
            identity: key,
        });
        Ok(public)
    }

    fn remember_password(&self, user: &str, password: Zeroizing<String>) {
        *self.remembered.lock().expect("remembered lock") = Some((user.to_string(), password));
    }

    fn forget_password(&self) {
        *self.remembered.lock().expect("remembered lock") = None;
    }

    fn prekeys_to_publish(&self, user: &str, new: usize) -> Result<PrekeyUpload, CommandError> {
        self.user_keys(|keys| {
            if keys.user != user {
                return Err(CommandError::not_signed_in());
            }
            let mut rng = rand::rngs::OsRng;
            let mut prekeys = match trust::load_prekeys(&self.data_dir, user)? {
                Some(prekeys) => prekeys,
                None => Prekeys::generate(&mut rng, &keys.identity, 1),
            };
            // Fresh ids above every id used so far, so none is reused.
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            let first = prekeys.next_one_time_id((now % (1 << 31)) as u32);
            let one_time = prekeys.generate_one_time(&mut rng, new as u32, first);
            trust::save_prekeys(&self.data_dir, user, &prekeys)?;
            Ok(PrekeyUpload {
                signed: prekeys.signed_prekey(),
                one_time,
            })
        })
    }

    fn seal(
        &self,
        bundle: &Bundle,
        plaintext: &[u8],
        associated: &[u8],
    ) -> Result<SealedMessage, CommandError> {
        self.user_keys(|keys| {
            sealed::seal(
                &mut rand::rngs::OsRng,
                &keys.identity,
                &bundle.identity,
                &bundle.signed,
                bundle.one_time.as_ref(),
                plaintext,
                associated,
            )
            .map_err(|e| {
                CommandError::new(
                    code::SEALED,
                    format!("cannot seal a message for {}: {e}", bundle.user),
                )
            })
        })
    }

    fn open(
        &self,
        message: &SealedMessage,
        associated: &[u8],
    ) -> Result<(PublicKey, Vec<u8>), CommandError> {
        self.user_keys(|keys| {
            let mut prekeys =
                trust::load_prekeys(&self.data_dir, &keys.user)?.ok_or_else(|| {
                    CommandError::new(code::SEALED, "no prekeys here to open it with")
                })?;
            let opened = prekeys
                .open(&keys.identity, message, associated)
                .map_err(|e| CommandError::new(code::SEALED, e.to_string()))?;
            // The one-time prekey it used is gone: a replay cannot open.
            trust::save_prekeys(&self.data_dir, &keys.user, &prekeys)?;
            Ok(opened)
        })
    }

    fn is_known_identity(&self, user: &str, identity: &PublicKey) -> bool {
        self.with_known_users(|book| book.is_known(user, identity))
            .unwrap_or(false)
    }

    fn check_identity(&self, user: &str, identity: &PublicKey) {
        let verdict = self.with_known_users(|book| book.check(user, identity));
        if let Some(PeerTrust::Changed { was, now }) = verdict {
            self.emit(
                Output::new(
                    "key-changed",
                    format!("WARNING: {user}'s identity key changed (was {was}, now {now}); make sure it is really them"),
                )
                .with("user", user.to_string())
                .with("was", was)
                .with("now", now),
            );
        }
    }

    fn read_password(
        &self,
        prompt: String,
    ) -> BoxFuture<'static, Result<Zeroizing<String>, CommandError>> {
        let no_password = || CommandError::new(code::BAD_PASSWORD, "no password given");
        match &self.passwords {
            PasswordSource::Terminal => Box::pin(async move {
                tokio::task::spawn_blocking(move || rpassword::prompt_password(prompt))
                    .await
                    .map_err(|_| no_password())?
                    .map(Zeroizing::new)
                    .map_err(|_| no_password())
            }),
            PasswordSource::Input(lines) => {
                let lines = lines.clone();
                Box::pin(async move {
                    match lines.lock().await.next_line().await {
                        Ok(Some(line)) => Ok(Zeroizing::new(line)),
                        _ => Err(no_password()),
                    }
                })
            }
        }
    }

    fn spawn(&self, task: BoxFuture<'static, ()>) {
        let mut tasks = self.tasks.lock().expect("tasks lock");
        tasks.retain(|t| !t.is_finished());
        tasks.push(tokio::spawn(task));
    }

    fn unfinished(&self) -> usize {
        let mut tasks = self.tasks.lock().expect("tasks lock");
        tasks.retain(|t| !t.is_finished());
        tasks.len()
    }

    fn settle(&self, patience: Duration) -> BoxFuture<'static, Result<(), CommandError>> {
        let tasks: Vec<JoinHandle<()>> =
            std::mem::take(&mut *self.tasks.lock().expect("tasks lock"));
        Box::pin(async move {
            let waited = tokio::time::timeout(patience, async {
                for task in tasks {
                    let _ = task.await;
                }
            })
            .await;
            waited.map_err(|_| {
                CommandError::new(
                    code::TIMEOUT,
                    format!(
                        "gave up after {}s waiting for messages still on their way",
                        patience.as_secs()
                    ),
                )
            })
        })
    }

    fn first_handover(&self, user: &str, id: u64) -> bool {
        let server = self.session.lock().expect("session lock").server;
        self.handed_over
            .lock()
            .expect("handed-over lock")
            .first((server, user.to_string(), id))
    }

    fn peer_gone(&self, user: &str) {
        let (peers, server) = (self.peers.clone(), self.server.clone());
        let user = user.to_string();
        tokio::spawn(async move {
            if peers.needs_meeting(&user) {
                return;
            }
            // The notice may lag behind the user's sign-in on another
            // client, which a `send` already found and is talking to: that
            // session stays (the server says where the user is now).
            let now_at = server.signed_in_at(&user).await;
            peers.gone(&user, now_at);
        });
    }

    fn emit(&self, output: Output) {
        self.roster.lock().expect("roster lock").observe(&output);
        self.printer.emit(output);
    }

    fn quit(&self) {
        self.quitting.store(true, Ordering::SeqCst);
    }

    fn hold_server_pushes(&self, hold: bool) {
        self.sign_ins.send_modify(|under_way| {
            *under_way = if hold {
                *under_way + 1
            } else {
                under_way.saturating_sub(1)
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_copy_of_a_stored_message_is_known_and_the_oldest_are_forgotten() {
        let server: SocketAddr = "127.0.0.1:4590".parse().unwrap();
        let other: SocketAddr = "127.0.0.2:4590".parse().unwrap();
        let key = |addr, user: &str, id| (addr, user.to_string(), id);
        let mut handed = HandedOver::default();
        assert!(handed.first(key(server, "bob", 7)));
        assert!(!handed.first(key(server, "bob", 7)));
        // Another user, another server: another message.
        assert!(handed.first(key(server, "carole", 7)));
        assert!(handed.first(key(other, "bob", 7)));
        for id in 100..100 + HANDED_OVER as u64 {
            handed.first(key(server, "bob", id));
        }
        assert_eq!(handed.seen.len(), HANDED_OVER);
        assert!(handed.first(key(server, "bob", 7)), "forgotten by now");
    }
}
