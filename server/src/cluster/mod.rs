//! Several server nodes on one PostgreSQL database, chatting as one
//! server. Nodes never talk to each other: each writes who is signed in on
//! it to the database (`signed_in`, with the client's address) and keeps
//! its row in `nodes` fresh, and small events on PostgreSQL's LISTEN/NOTIFY
//! channel tell the others to read what changed ([`Event`]):
//!
//! - someone signed in or out on a node: the others read the row, show
//!   the user in `list`, answer `lookup` with the client's address, and
//!   tell their own clients who watch the user;
//! - a sign-in on one node for a user held on another: the holder is asked
//!   to probe its client ([`Event::Probe`]); one that answers keeps the
//!   name, one that does not loses it to the new sign-in, as on one node;
//! - a group message appended on one node: the group's members attached on
//!   the others get it from the store, in the store's one order;
//! - a node going down (or whose heartbeat stops for [`EXPIRE`]): its
//!   users are gone everywhere.
//!
//! Mail needs no event: it is in the store, and delivered at sign-in on
//! whichever node.

mod event;
mod postgres;
mod status;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::sync::{mpsc, oneshot};
use udpchat_core::context::{PeerId, ServerContext};
use udpchat_core::packet::Encoded;
use udpchat_core::presence::{Elsewhere, PresenceChange};

pub use event::Event;
pub use postgres::{SignedInRow, CHANNEL};
pub use status::status;

use crate::metrics::Metrics;
use crate::state::ServerState;
use crate::store::{blocking, PgStore};

/// How often a node refreshes its row.
pub const HEARTBEAT: Duration = Duration::from_secs(2);
/// A node not heard from for this long is taken for dead by the others:
/// its row goes, and with it who was signed in there.
pub const EXPIRE: Duration = Duration::from_secs(10);
/// How long a sign-in waits for another node to say whether the client
/// holding the name still answers (its probe takes about a second).
const PROBE_WAIT: Duration = Duration::from_millis(2500);
/// The largest push body relayed through another node (base64 and JSON
/// around it must stay under NOTIFY's 8,000 bytes).
const MAX_RELAYED: usize = 5_000;
/// The `to` of an event for whichever node holds its user.
pub const ANY_NODE: &str = "*";
/// How long to wait before listening again after the connection broke.
const RETRY: Duration = Duration::from_secs(1);

/// What the listener hears.
#[derive(Debug)]
pub enum Heard {
    /// Listening (again): read who is where, as events may have been missed.
    Listening,
    Event(Event),
}

/// A change of this node's own sign-ins, to write in order.
enum Write {
    SignedIn(String, PeerId),
    SignedOut(String),
    /// The client signed in as the user on that session is elsewhere now.
    Moved(String, PeerId),
    /// Everything before is written (or failed): say so.
    Settled(oneshot::Sender<()>),
}

/// This node's part in the cluster.
pub struct Cluster {
    store: Arc<PgStore>,
    writes: mpsc::UnboundedSender<Write>,
    pending_writes: Mutex<Option<mpsc::UnboundedReceiver<Write>>>,
    /// Probes asked of other nodes, waiting for their answer.
    probes: Mutex<HashMap<u64, oneshot::Sender<bool>>>,
    next_probe: AtomicU64,
    /// The node is going down: no heartbeat, no sign-in written, so that
    /// it does not join again on its way out.
    leaving: std::sync::atomic::AtomicBool,
}

impl Cluster {
    pub fn new(store: Arc<PgStore>) -> Arc<Cluster> {
        let (writes, pending) = mpsc::unbounded_channel();
        Arc::new(Cluster {
            store,
            writes,
            pending_writes: Mutex::new(Some(pending)),
            probes: Mutex::new(HashMap::new()),
            next_probe: AtomicU64::new(1),
            leaving: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// This node's id.
    pub fn node(&self) -> &str {
        self.store.node()
    }

    /// Adds this node's row, then hears the others and keeps the row
    /// fresh, for as long as the server runs.
    pub async fn start(
        self: &Arc<Self>,
        server: &Arc<ServerState>,
        addr: SocketAddr,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<()> {
        let store = self.store.clone();
        blocking(move || store.join(addr))
            .await
            .map_err(|e| anyhow::anyhow!("cannot join the cluster: {}", e.message))?;
        tracing::info!(node = self.node(), "joined the cluster");
        let writes = self
            .pending_writes
            .lock()
            .take()
            .expect("the cluster starts once");
        tokio::spawn(self.clone().write(Arc::downgrade(server), writes));
        tokio::spawn(
            self.clone()
                .hear(Arc::downgrade(server), self.store.listen(RETRY)),
        );
        tokio::spawn(self.clone().beat(Arc::downgrade(server), addr, metrics));
        Ok(())
    }

    /// A sign-in or sign-out on this node, to tell the others (in order).
    pub fn changed_here(&self, change: &PresenceChange, peer: Option<PeerId>) {
        let write = match (change.online, peer) {
            (true, Some(peer)) => Write::SignedIn(change.user.clone(), peer),
            (true, None) => return,
            (false, _) => Write::SignedOut(change.user.clone()),
        };
        let _ = self.writes.send(write);
    }

    /// The path of the session `peer`, signed in as `user` here, moved:
    /// the others' `lookup` gives its new address once written.
    pub fn moved_here(&self, user: &str, peer: PeerId) {
        let _ = self.writes.send(Write::Moved(user.to_string(), peer));
    }

    /// Resolves once every sign-in and sign-out so far is written.
    pub fn settled(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let (done, written) = oneshot::channel();
        let _ = self.writes.send(Write::Settled(done));
        async move {
            let _ = written.await;
        }
    }

    /// Whether `user`'s client, signed in on `node`, still answers there.
    /// No answer in time counts as no.
    pub async fn probe(&self, user: &str, node: &str) -> bool {
        let id = self.next_probe.fetch_add(1, Ordering::Relaxed);
        let (answer, answered) = oneshot::channel();
        self.probes.lock().insert(id, answer);
        let event = Event::Probe {
            node: self.node().to_string(),
            to: node.to_string(),
            user: user.to_string(),
            id,
        };
        let store = self.store.clone();
        let alive = match blocking(move || store.notify(&event)).await {
            Ok(()) => matches!(
                tokio::time::timeout(PROBE_WAIT, answered).await,
                Ok(Ok(true))
            ),
            Err(_) => false,
        };
        self.probes.lock().remove(&id);
        alive
    }

    /// Sends `push` to `user`'s client through `node`, where it is signed
    /// in. A push too large for an event (NOTIFY carries 8,000 bytes) is
    /// not relayed: what it says is in the store for the next sign-in.
    pub fn relay_push(&self, node: &str, user: &str, push: Encoded) {
        use base64::Engine as _;
        let (tag, body) = push.into_parts();
        if body.len() > MAX_RELAYED {
            tracing::warn!(user, tag, bytes = body.len(), "cluster: too large to relay");
            return;
        }
        self.tell_node(Event::Push {
            node: self.node().to_string(),
            to: node.to_string(),
            user: user.to_string(),
            tag: tag.to_string(),
            body: base64::engine::general_purpose::STANDARD.encode(body),
        });
    }

    /// Message `id` was kept for `user`, signed in on `node`.
    pub fn mail_arrived(&self, node: &str, user: &str, id: u64) {
        self.tell_node(Event::Mail {
            node: self.node().to_string(),
            to: node.to_string(),
            user: user.to_string(),
            id,
        });
    }

    /// Sends `event` without waiting for it.
    fn tell_node(&self, event: Event) {
        let store = self.store.clone();
        tokio::spawn(async move {
            if let Err(e) = blocking(move || store.notify(&event)).await {
                tracing::warn!("cluster: an event not sent: {}", e.message);
            }
        });
    }

    /// This node is going down: its row goes, and with it its sign-ins;
    /// the others hear of it at once.
    pub async fn leave(&self) {
        self.leaving.store(true, Ordering::SeqCst);
        let store = self.store.clone();
        if let Err(e) = blocking(move || store.leave()).await {
            tracing::warn!("cluster: could not say this node is going: {}", e.message);
        }
    }

    /// Writes this node's sign-ins and sign-outs, one at a time, in order.
    async fn write(
        self: Arc<Self>,
        server: Weak<ServerState>,
        mut writes: mpsc::UnboundedReceiver<Write>,
    ) {
        while let Some(write) = writes.recv().await {
            let Some(server) = server.upgrade() else {
                return;
            };
            let store = self.store.clone();
            let written = match write {
                Write::SignedIn(..) if self.leaving.load(Ordering::SeqCst) => continue,
                Write::SignedIn(user, peer) => {
                    let Some(addr) = still_at(&server, &user, peer).await else {
                        continue;
                    };
                    let local = server.presence().lock().local_of(peer);
                    blocking(move || store.publish_sign_in(&user, addr, &local)).await
                }
                Write::Moved(user, peer) => {
                    let Some(addr) = still_at(&server, &user, peer).await else {
                        continue;
                    };
                    blocking(move || store.publish_moved(&user, addr)).await
                }
                Write::Settled(done) => {
                    let _ = done.send(());
                    continue;
                }
                Write::SignedOut(user) => {
                    // Back already: its sign-in follows, and replaces the row.
                    if server.presence().lock().session_of(&user).is_some() {
                        continue;
                    }
                    blocking(move || store.publish_sign_out(&user)).await
                }
            };
            if let Err(e) = written {
                tracing::warn!("cluster: a sign-in not written: {}", e.message);
            }
        }
    }

    /// Applies what the other nodes say.
    async fn hear(
        self: Arc<Self>,
        server: Weak<ServerState>,
        mut heard: mpsc::UnboundedReceiver<Heard>,
    ) {
        while let Some(heard) = heard.recv().await {
            let Some(server) = server.upgrade() else {
                return;
            };
            match heard {
                Heard::Listening => self.resync(&server).await,
                Heard::Event(event) if event.sender() != self.node() => {
                    self.apply(&server, event).await;
                }
                Heard::Event(_) => {}
            }
        }
    }

    /// `user`'s `signed_in` row, if any (a failed read is logged).
    async fn row_of(&self, user: &str) -> Option<SignedInRow> {
        let (store, asked) = (self.store.clone(), user.to_string());
        blocking(move || store.where_signed_in(&asked))
            .await
            .unwrap_or_else(|e| {
                tracing::warn!(user, "cluster: cannot read where a user is: {}", e.message);
                None
            })
    }

    async fn apply(self: &Arc<Self>, server: &Arc<ServerState>, event: Event) {
        match event {
            // The row is the truth: it may already say more.
            Event::SignedIn { user, .. } => match self.row_of(&user).await {
                Some(row) if row.node != self.node() => server.signed_in_elsewhere(row),
                _ => {}
            },
            Event::SignedOut { node, user } => server.signed_out_elsewhere(&user, &node),
            Event::Moved { node, user } => match self.row_of(&user).await {
                Some(row) if row.node == node => server.moved_elsewhere(row),
                _ => {}
            },
            Event::NodeDown { node } => server.node_gone(&node),
            Event::Probe { node, to, user, id } if to == self.node() => {
                let (cluster, server) = (self.clone(), server.clone());
                tokio::spawn(async move {
                    let held = server.presence().lock().session_of(&user);
                    let alive = match held {
                        Some(peer) => server.probe(peer).await,
                        None => false,
                    };
                    let answer = Event::Probed {
                        node: cluster.node().to_string(),
                        to: node,
                        id,
                        alive,
                    };
                    let store = cluster.store.clone();
                    if let Err(e) = blocking(move || store.notify(&answer)).await {
                        tracing::warn!("cluster: a probe not answered: {}", e.message);
                    }
                });
            }
            Event::Probed { to, id, alive, .. } if to == self.node() => {
                if let Some(answer) = self.probes.lock().remove(&id) {
                    let _ = answer.send(alive);
                }
            }
            Event::Probe { .. } | Event::Probed { .. } => {}
            Event::Push {
                to,
                user,
                tag,
                body,
                ..
            } if to == self.node() => {
                use base64::Engine as _;
                let tag = udpchat_core::registry::Registry::global()
                    .tag(&tag)
                    .map(|command| command.name);
                let body = base64::engine::general_purpose::STANDARD.decode(body);
                match (tag, body) {
                    (Ok(tag), Ok(body)) => {
                        let peer = server.presence().lock().session_of(&user);
                        if let Some(peer) = peer {
                            server.send_push(peer, Encoded::from_parts(tag, body));
                        }
                    }
                    _ => tracing::warn!(user, "cluster: a relayed push not understood"),
                }
            }
            Event::Mail { to, user, id, .. } if to == self.node() || to == ANY_NODE => {
                let server: udpchat_core::context::Server = server.clone();
                tokio::spawn(async move {
                    let Some(peer) = server.session_of(&user) else {
                        return;
                    };
                    if let Ok(pending) = server.mailbox().pending(&user).await {
                        let message: Vec<_> = pending.into_iter().filter(|m| m.id == id).collect();
                        udpchat_commands::stored::hand_over(&server, peer, message).await;
                    }
                });
            }
            Event::Push { .. } | Event::Mail { .. } => {}
            Event::Tell { to, user, note, .. } if to == self.node() || to == ANY_NODE => {
                let groups = server.group_chat().clone();
                tokio::spawn(async move { groups.tell_here(&user, note).await });
            }
            Event::Tell { .. } => {}
            Event::Appended { group, .. } => {
                let groups = server.group_chat().clone();
                tokio::spawn(async move { groups.appended_elsewhere(&group).await });
            }
        }
    }

    /// Reads who is signed in on the other nodes, and brings this node's
    /// view in line (events may have been missed while not listening).
    async fn resync(&self, server: &Arc<ServerState>) {
        let store = self.store.clone();
        let rows = match blocking(move || store.signed_in_elsewhere()).await {
            Ok(rows) => rows,
            Err(e) => {
                tracing::warn!("cluster: cannot read who is where: {}", e.message);
                return;
            }
        };
        let known = server.presence().lock().all_elsewhere().clone();
        let mut listed: HashMap<String, Elsewhere> = HashMap::new();
        for row in rows {
            listed.insert(row.user.clone(), elsewhere(&row));
            if known.get(&row.user) != Some(&elsewhere(&row)) {
                server.signed_in_elsewhere(row);
            }
        }
        for (user, there) in known {
            if !listed.contains_key(&user) {
                server.signed_out_elsewhere(&user, &there.node);
            }
        }
    }

    /// Keeps this node's row fresh, with its load for `status`, and takes
    /// the nodes that went silent for dead. A node the others took for
    /// dead (it stalled) joins again and writes its sign-ins again.
    async fn beat(
        self: Arc<Self>,
        server: Weak<ServerState>,
        addr: SocketAddr,
        metrics: Arc<Metrics>,
    ) {
        let mut tick = tokio::time::interval(HEARTBEAT);
        for beat in 0u64.. {
            tick.tick().await;
            if beat % 30 == 29 {
                // About once a minute (any node may: it is idempotent).
                let store = self.store.clone();
                if let Err(e) = blocking(move || store.forget_old_attempts()).await {
                    tracing::warn!("cluster: old sign-in attempts not forgotten: {}", e.message);
                }
            }
            let Some(server) = server.upgrade() else {
                return;
            };
            if self.leaving.load(Ordering::SeqCst) {
                return;
            }
            let load = serde_json::to_string(&metrics.node_load().await).unwrap_or_default();
            let store = self.store.clone();
            match blocking(move || store.heartbeat(EXPIRE, &load)).await {
                Ok(true) => {}
                Ok(false) => {
                    tracing::warn!(node = self.node(), "cluster: taken for dead; joining again");
                    let store = self.store.clone();
                    if blocking(move || store.join(addr)).await.is_ok() {
                        for peer in server.presence().lock().peers() {
                            if let Some(user) = server.presence().lock().user_at(peer) {
                                let _ = self.writes.send(Write::SignedIn(user.to_string(), peer));
                            }
                        }
                    }
                }
                Err(e) => tracing::warn!("cluster: heartbeat not written: {}", e.message),
            }
        }
    }
}

impl crate::groups::Elsewhere for Cluster {
    fn tell(&self, node: &str, user: &str, note: String) {
        self.tell_node(Event::Tell {
            node: self.node().to_string(),
            to: node.to_string(),
            user: user.to_string(),
            note,
        });
    }
}

/// Where the session `peer` is, if `user` is still signed in on it (gone
/// again meanwhile: its sign-out follows, and nothing is written).
async fn still_at(server: &ServerState, user: &str, peer: PeerId) -> Option<SocketAddr> {
    if server.presence().lock().user_at(peer) != Some(user) {
        return None;
    }
    server.peer_addr(peer).await
}

/// Where a row says a user is.
pub fn elsewhere(row: &SignedInRow) -> Elsewhere {
    Elsewhere {
        node: row.node.clone(),
        addr: row.addr,
        local: row.local.clone(),
    }
}
