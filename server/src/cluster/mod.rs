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

mod postgres;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, oneshot};
use udpchat_core::context::{PeerId, ServerContext};
use udpchat_core::packet::Encoded;
use udpchat_core::presence::{Elsewhere, PresenceChange};

pub use postgres::{SignedInRow, CHANNEL};

use crate::metrics::{Metrics, NodeLoad};
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

/// What one node tells the others, as JSON on the `udpchat` channel
/// (PostgreSQL's NOTIFY carries up to 8,000 bytes; these are tens). `node`
/// is the sender's id; each says what to read, not the whole of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "k", rename_all = "kebab-case")]
pub enum Event {
    /// `user` signed in on `node` (read its `signed_in` row).
    SignedIn { node: String, user: String },
    /// `user` signed out of `node`.
    SignedOut { node: String, user: String },
    /// The path of `user`'s client on `node` moved (its NAT gave it
    /// another port, it roamed): read its `signed_in` row again.
    Moved { node: String, user: String },
    /// `node` is gone, and everyone signed in there.
    NodeDown { node: String },
    /// `node` asks `to` whether `user`'s client there still answers.
    Probe {
        node: String,
        to: String,
        user: String,
        id: u64,
    },
    /// `node`'s answer to probe `id` from `to`.
    Probed {
        node: String,
        to: String,
        id: u64,
        alive: bool,
    },
    /// `node` appended to `group` (read the group's log).
    Appended { node: String, group: String },
    /// `node` asks `to` to push this to `user`'s client there: a packet
    /// (its registered `tag`, its CBOR body in base64).
    Push {
        node: String,
        to: String,
        user: String,
        tag: String,
        body: String,
    },
    /// Message `id` was kept for `user`, signed in on `to` (or on any
    /// node, [`ANY_NODE`]): hand it over.
    Mail {
        node: String,
        to: String,
        user: String,
        id: u64,
    },
    /// `node` asks `to` to tell `user`, signed in there, that their groups
    /// changed (`note`: why, as the user reads it).
    Tell {
        node: String,
        to: String,
        user: String,
        note: String,
    },
}

impl Event {
    pub fn encode(&self) -> String {
        serde_json::to_string(self).expect("an event is JSON")
    }

    pub fn decode(payload: &str) -> Option<Event> {
        serde_json::from_str(payload).ok()
    }

    fn sender(&self) -> &str {
        match self {
            Event::SignedIn { node, .. }
            | Event::SignedOut { node, .. }
            | Event::Moved { node, .. }
            | Event::NodeDown { node }
            | Event::Probe { node, .. }
            | Event::Probed { node, .. }
            | Event::Appended { node, .. }
            | Event::Push { node, .. }
            | Event::Mail { node, .. }
            | Event::Tell { node, .. } => node,
        }
    }
}

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
                    // Gone again meanwhile: its sign-out follows.
                    if server.presence().lock().user_at(peer) != Some(user.as_str()) {
                        continue;
                    }
                    let Some(addr) = server.peer_addr(peer).await else {
                        continue;
                    };
                    let local = server.presence().lock().local_of(peer);
                    blocking(move || store.publish_sign_in(&user, addr, &local)).await
                }
                Write::Moved(user, peer) => {
                    if server.presence().lock().user_at(peer) != Some(user.as_str()) {
                        continue;
                    }
                    let Some(addr) = server.peer_addr(peer).await else {
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

    async fn apply(self: &Arc<Self>, server: &Arc<ServerState>, event: Event) {
        match event {
            Event::SignedIn { user, .. } => {
                let store = self.store.clone();
                let asked = user.clone();
                match blocking(move || store.where_signed_in(&asked)).await {
                    // The row is the truth: it may already say more.
                    Ok(Some(row)) if row.node != self.node() => server.signed_in_elsewhere(row),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(user, "cluster: cannot read a sign-in: {}", e.message),
                }
            }
            Event::SignedOut { node, user } => server.signed_out_elsewhere(&user, &node),
            Event::Moved { node, user } => {
                let store = self.store.clone();
                let asked = user.clone();
                match blocking(move || store.where_signed_in(&asked)).await {
                    Ok(Some(row)) if row.node == node => server.moved_elsewhere(row),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(user, "cluster: cannot read a move: {}", e.message),
                }
            }
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
            Event::Tell { to, user, note, .. } if to == self.node() => {
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

/// Where a row says a user is.
pub fn elsewhere(row: &SignedInRow) -> Elsewhere {
    Elsewhere {
        node: row.node.clone(),
        addr: row.addr,
        local: row.local.clone(),
    }
}

/// `udpchat-server status`: the nodes sharing the database and who is
/// signed in on each, as lines to print.
pub fn status(
    store: &dyn crate::store::Backend,
    postgres: Option<&PgStore>,
) -> anyhow::Result<Vec<String>> {
    let mut lines = vec![format!(
        "{}: schema version {}",
        store.describe(),
        store.schema_version()?
    )];
    lines.push(describe_totals(&store.totals()?, crate::mailbox::now_ms()));
    let Some(postgres) = postgres else {
        lines.push(
            "one node: its sessions and queues are in its memory; start it with --metrics ADDR to watch them"
                .to_string(),
        );
        return Ok(lines);
    };
    let nodes = postgres.nodes()?;
    let mut total = 0;
    for node in &nodes {
        total += node.users;
        let state = if node.silent_for > EXPIRE {
            "  SILENT: taken for dead at the next heartbeat of another node"
        } else {
            ""
        };
        lines.push(format!(
            "node {} at {}: up since {}, heartbeat {:.1} s ago, {} signed in{state}",
            node.id,
            node.addr,
            node.started,
            node.silent_for.as_secs_f64(),
            node.users
        ));
        match node.load.as_deref().map(serde_json::from_str::<NodeLoad>) {
            Some(Ok(load)) => lines.push(format!("  {}", load.describe())),
            Some(Err(_)) => lines.push("  load not understood (a node of another version?)".into()),
            None => lines.push("  no load written yet".into()),
        }
    }
    lines.push(format!("{} nodes, {total} users signed in", nodes.len()));
    Ok(lines)
}

/// What the database holds, as one line of `status`.
fn describe_totals(totals: &crate::store::Totals, now_ms: u64) -> String {
    let mut line = format!(
        "{} accounts, {} groups, {} messages waiting for {} offline users",
        totals.accounts, totals.groups, totals.mail, totals.mail_recipients
    );
    if let Some(oldest) = totals.oldest_mail_ms {
        let secs = now_ms.saturating_sub(oldest) / 1000;
        let age = match secs {
            0..120 => format!("{secs} s"),
            120..7_200 => format!("{} min", secs / 60),
            7_200..172_800 => format!("{} h", secs / 3_600),
            _ => format!("{} days", secs / 86_400),
        };
        line.push_str(&format!(" (the oldest sent {age} ago)"));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_totals_line_says_how_old_the_oldest_mail_is() {
        let mut totals = crate::store::Totals {
            accounts: 5,
            groups: 1,
            mail: 0,
            mail_recipients: 0,
            oldest_mail_ms: None,
        };
        assert_eq!(
            describe_totals(&totals, 100_000_000),
            "5 accounts, 1 groups, 0 messages waiting for 0 offline users"
        );
        totals.mail = 3;
        totals.mail_recipients = 2;
        totals.oldest_mail_ms = Some(100_000_000 - 3 * 3_600_000);
        assert_eq!(
            describe_totals(&totals, 100_000_000),
            "5 accounts, 1 groups, 3 messages waiting for 2 offline users (the oldest sent 3 h ago)"
        );
    }

    #[test]
    fn events_are_small_tagged_json_and_junk_is_refused() {
        let event = Event::Probe {
            node: "a1".into(),
            to: "b2".into(),
            user: "alice".into(),
            id: 7,
        };
        let text = event.encode();
        assert_eq!(
            text,
            r#"{"k":"probe","node":"a1","to":"b2","user":"alice","id":7}"#
        );
        assert_eq!(Event::decode(&text), Some(event));
        assert_eq!(
            Event::decode(r#"{"k":"node-down","node":"a1"}"#),
            Some(Event::NodeDown { node: "a1".into() })
        );
        assert_eq!(
            Event::decode(r#"{"k":"moved","node":"a1","user":"bob"}"#),
            Some(Event::Moved {
                node: "a1".into(),
                user: "bob".into()
            })
        );
        assert_eq!(Event::decode(r#"{"k":"launch-missiles"}"#), None);
        assert_eq!(Event::decode("not json"), None);
    }
}
