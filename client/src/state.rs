//! The client as command handlers see it ([`ClientContext`]), assembled
//! from one part per concern: the session with the server
//! ([`crate::server`]), the sessions with other clients
//! ([`crate::peers`]), the keys ([`crate::keys`]), deliveries in the
//! background ([`crate::tasks`]) and the printer ([`crate::render`]).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use tokio::io::{BufReader, Lines, Stdin};
use udpchat_core::context::{
    BoxFuture, ClientContext, Keyring, PeerLinks, PrivateGroups, ServerLink, Session, Tasks,
    Zeroizing,
};
use udpchat_core::crypto::keys::PublicKey;
use udpchat_core::error::{Code, CommandError};
use udpchat_core::history::History;
use udpchat_core::output::Output;
use udpchat_net::Link;

use crate::keys::Keys;
use crate::local::LocalStore;
use crate::peers::PeerSessions;
use crate::render::Printer;
use crate::server::ServerConnector;
use crate::tasks::Background;

/// Lines of stdin, shared by scripted mode and password prompts.
pub type InputLines = Arc<tokio::sync::Mutex<Lines<BufReader<Stdin>>>>;

/// Where passwords left off a command line come from.
pub enum PasswordSource {
    /// Asked for on the terminal, without echo.
    Terminal,
    /// The next line of (scripted) input.
    Input(InputLines),
}

/// How the client asks the user what it must: passwords, and whether a
/// new device may replace the account's key.
pub struct Asking {
    pub passwords: PasswordSource,
    /// `--new-device`: yes without asking.
    pub new_device: bool,
}

pub struct ClientState {
    session: Arc<Mutex<Session>>,
    link: Link,
    printer: Printer,
    server: Arc<ServerConnector>,
    /// Sessions with other clients.
    peers: Arc<PeerSessions>,
    keys: Keys,
    /// The user's conversations, and sender keys of private groups.
    local: LocalStore,
    tasks: Background,
    quitting: AtomicBool,
    passwords: PasswordSource,
    /// `--new-device`: signing in may replace the account's identity key
    /// with this device's without asking.
    new_device: bool,
    /// True once every packet the link took in has been handled, after
    /// the link stopped (see `stop_receiving`).
    pushes_handled: tokio::sync::watch::Sender<bool>,
    /// Packets taken in and not yet handled (see `stop_receiving`).
    handling: crate::dispatch::Handling,
}

/// How long a leaving client waits for what it received to be handled:
/// with the link stopped, nothing in it waits on the network.
const PUSHES_WITHIN: Duration = Duration::from_secs(10);

impl ClientState {
    /// `servers`: the deployment's servers; the first is used first.
    pub fn new(
        servers: Vec<SocketAddr>,
        link: Link,
        printer: Printer,
        data_dir: PathBuf,
        pinned: Option<PublicKey>,
        asking: Asking,
        local: Vec<SocketAddr>,
    ) -> ClientState {
        let Asking {
            passwords,
            new_device,
        } = asking;
        let session = Arc::new(Mutex::new(Session {
            server: servers[0],
            user: None,
            conversation: None,
        }));
        let connector = ServerConnector::new(
            link.clone(),
            servers,
            session.clone(),
            data_dir.clone(),
            pinned,
            printer.clone(),
        );
        ClientState {
            peers: PeerSessions::new(link.clone(), connector.clone(), session.clone(), local),
            keys: Keys::new(
                data_dir.clone(),
                link.clone(),
                session.clone(),
                printer.clone(),
            ),
            local: LocalStore::new(data_dir, session.clone(), printer.clone()),
            session,
            link,
            printer,
            server: connector,
            tasks: Background::default(),
            quitting: AtomicBool::new(false),
            passwords,
            new_device,
            pushes_handled: tokio::sync::watch::Sender::new(false),
            handling: crate::dispatch::Handling::default(),
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
            // Their senders were told they arrived: say so, not nothing.
            if let Some(unhandled) = self.handling.unhandled() {
                tracing::warn!("leaving with received packets not yet handled: {unhandled}");
                self.printer.emit(Output::error(&CommandError::new(
                    Code::Timeout,
                    format!(
                        "leaving before {unhandled} received packet(s) were handled \
                         (waited {}s): they may not have been shown",
                        PUSHES_WITHIN.as_secs()
                    ),
                )));
            }
        }
        // What was shown is in the history before the process ends.
        self.local.flush();
    }

    /// The packets given to the dispatcher's workers and not yet handled.
    pub fn handling(&self) -> &crate::dispatch::Handling {
        &self.handling
    }

    /// Every packet the stopped link took in has been handled.
    pub fn pushes_handled(&self) {
        self.pushes_handled.send_replace(true);
    }

    pub fn link(&self) -> &Link {
        &self.link
    }

    /// The sessions with other clients.
    pub fn peer_sessions(&self) -> &PeerSessions {
        &self.peers
    }

    /// The session with the server.
    pub fn connector(&self) -> &ServerConnector {
        &self.server
    }

    pub fn printer(&self) -> &Printer {
        &self.printer
    }

    pub fn quitting(&self) -> bool {
        self.quitting.load(Ordering::SeqCst)
    }
}

impl ClientContext for ClientState {
    fn session(&self) -> &Mutex<Session> {
        &self.session
    }

    fn server(&self) -> &dyn ServerLink {
        &*self.server
    }

    fn peers(&self) -> &dyn PeerLinks {
        &*self.peers
    }

    fn keys(&self) -> &dyn Keyring {
        &self.keys
    }

    fn groups(&self) -> &dyn PrivateGroups {
        &self.local
    }

    fn history(&self) -> &dyn History {
        &self.local
    }

    fn tasks(&self) -> &dyn Tasks {
        &self.tasks
    }

    fn emit(&self, output: Output) {
        self.printer.emit(output);
    }

    fn read_password(
        &self,
        prompt: String,
    ) -> BoxFuture<'static, Result<Zeroizing<String>, CommandError>> {
        let no_password = || CommandError::new(Code::BadPassword, "no password given");
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

    fn read_new_password(
        &self,
        prompt: String,
    ) -> BoxFuture<'static, Result<Zeroizing<String>, CommandError>> {
        if !matches!(self.passwords, PasswordSource::Terminal) {
            return self.read_password(prompt);
        }
        let first = self.read_password(prompt);
        let again = self.read_password("again: ".into());
        Box::pin(async move {
            let first = first.await?;
            if first.is_empty() {
                return Err(CommandError::new(Code::BadPassword, "no password given"));
            }
            let again = again.await?;
            if first != again {
                return Err(CommandError::new(
                    Code::BadPassword,
                    "the two passwords differ: nothing was done",
                ));
            }
            Ok(first)
        })
    }

    fn confirm(&self, prompt: String) -> BoxFuture<'static, bool> {
        if self.new_device {
            return Box::pin(async { true });
        }
        if !matches!(self.passwords, PasswordSource::Terminal) {
            return Box::pin(async { false });
        }
        Box::pin(async move {
            let answer = tokio::task::spawn_blocking(move || {
                use std::io::Write as _;
                print!("{prompt}");
                std::io::stdout().flush()?;
                let mut line = String::new();
                std::io::stdin().read_line(&mut line)?;
                Ok::<_, std::io::Error>(line)
            })
            .await;
            matches!(answer, Ok(Ok(line)) if matches!(line.trim(), "y" | "Y" | "yes" | "Yes"))
        })
    }

    fn quit(&self) {
        self.quitting.store(true, Ordering::SeqCst);
    }

    fn settle_pushes(&self) -> BoxFuture<'static, ()> {
        let (handled, link) = (self.handling.none(), self.link.clone());
        // As long as the transport would hold an acknowledgement.
        let patience = Link::client_config().transport.max_ack_hold;
        Box::pin(async move {
            let _ = tokio::time::timeout(patience, async {
                handled.await;
                link.settle().await;
            })
            .await;
        })
    }
}
