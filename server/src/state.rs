//! The server's state as command handlers see it: presence, accounts and
//! the link to the clients.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use udpchat_commands::going_down::GoingDown;
use udpchat_commands::mail_status::{MailStatus, Outcome, Status};
use udpchat_commands::ping::Ping;
use udpchat_commands::presence::{Presence as PresencePush, PresenceChanges};
use udpchat_core::context::{Accounts, BoxFuture, Groups, Mailbox, PeerId, Server, ServerContext};
use udpchat_core::limits::RateLimit;
use udpchat_core::packet::Encoded;
use udpchat_core::presence::{Presence, PresenceChange};
use udpchat_core::secure::meeting::Ticket;
use udpchat_net::Link;

use crate::accounts::PasswordAccounts;
use crate::cluster::{Cluster, SignedInRow};
use crate::groups::GroupChat;
use crate::groups::GroupStore;
use crate::mailbox::StoredMail;

/// How long a signed-in client has to answer a probe before its name is
/// given to a new sign-in.
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

pub struct ServerState {
    /// Shared with the groups, which deliver to whoever is online.
    presence: Arc<Mutex<Presence>>,
    /// Rings when a presence change waits to be sent.
    changed: tokio::sync::Notify,
    accounts: PasswordAccounts,
    mailbox: StoredMail,
    groups: GroupChat,
    link: Link,
    /// Meetings each session may ask for (see `arrange_meeting`).
    meetings: Mutex<RateLimit<PeerId>>,
    /// The other server nodes on the same database, if any.
    cluster: Option<Arc<Cluster>>,
}

/// Meetings one session may ask for: a burst, then one per interval. Each
/// makes the other client send checks to the asker's candidates, so a
/// hostile asker must not turn clients into a flood toward others.
const MEETING_BURST: u32 = 20;
const MEETING_EVERY: Duration = Duration::from_millis(200);

impl ServerState {
    pub fn new(
        link: Link,
        accounts: PasswordAccounts,
        mailbox: StoredMail,
        groups: Arc<dyn GroupStore>,
        broadcast_limit: usize,
        cluster: Option<Arc<Cluster>>,
    ) -> ServerState {
        let presence = Arc::new(Mutex::new(Presence::with_broadcast_limit(broadcast_limit)));
        ServerState {
            groups: GroupChat::new(
                groups,
                link.clone(),
                presence.clone(),
                cluster
                    .clone()
                    .map(|c| c as Arc<dyn crate::groups::Elsewhere>),
            ),
            cluster,
            presence,
            changed: tokio::sync::Notify::new(),
            accounts,
            mailbox,
            link,
            meetings: Mutex::new(RateLimit::new(MEETING_BURST, MEETING_EVERY, 65_536)),
        }
    }

    /// Sends `push` to `peer` now; nothing waits for it, and the driver
    /// logs a failure.
    fn push_now(&self, peer: PeerId, push: Encoded) {
        self.link.push_unwatched(peer, push);
    }

    /// Sends presence changes in batches: after the first change, waits
    /// `gather` for more, then sends each client that hears of them (all
    /// signed-in clients, or only watchers on a busy server) one packet.
    /// Runs until the server stops.
    pub async fn send_presence(self: Arc<Self>, gather: Duration) {
        loop {
            self.changed.notified().await;
            tokio::time::sleep(gather).await;
            let audience = self.presence.lock().take_audience();
            for (peer, heard) in audience {
                self.push_now(
                    peer,
                    Encoded::push::<PresencePush>(&PresenceChanges { changes: heard }),
                );
            }
        }
    }

    /// Users signed in on this node.
    pub fn signed_in_here(&self) -> usize {
        self.presence.lock().len()
    }

    /// Users signed in on the other nodes.
    pub fn users_elsewhere(&self) -> usize {
        self.presence.lock().all_elsewhere().len()
    }

    /// A session's path moved to `addr`: lookups give it, and the other
    /// nodes hear where its user is now.
    pub fn moved(&self, peer: PeerId, addr: SocketAddr) {
        let user = {
            let mut presence = self.presence.lock();
            presence.moved(peer, addr);
            presence.user_at(peer).map(str::to_string)
        };
        if let (Some(cluster), Some(user)) = (&self.cluster, user) {
            cluster.moved_here(&user, peer);
        }
    }

    /// A session closed: whoever was signed in on it is gone.
    pub fn closed(self: &Arc<Self>, peer: PeerId) {
        let user = self.presence.lock().sign_out(peer);
        if let Some(user) = user {
            tracing::info!(user, "signed out: session closed");
            let server: Server = self.clone();
            udpchat_commands::presence::announce(&server, &user, false);
        }
    }

    /// Deletes stored messages older than `ttl`, telling their senders if
    /// they are online; runs until the server stops.
    pub async fn expire_mail(self: Arc<Self>, ttl: Duration) {
        let mut tick =
            tokio::time::interval(Duration::from_secs(60).min(ttl.max(Duration::from_secs(1))));
        loop {
            tick.tick().await;
            let Ok(expired) = self.mailbox.expire(ttl.as_millis() as u64).await else {
                continue;
            };
            for message in expired {
                let status = Status {
                    to: message.to,
                    id: message.id,
                    outcome: Outcome::Expired,
                };
                self.push_to_user(&message.from, Encoded::push::<MailStatus>(&status));
            }
        }
    }

    /// The group chat.
    pub fn group_chat(&self) -> &GroupChat {
        &self.groups
    }

    /// A change heard from another node, for this node's clients who hear
    /// of it.
    fn heard(&self, user: &str, online: bool) {
        self.presence.lock().record(PresenceChange {
            user: user.to_string(),
            online,
        });
        self.changed.notify_one();
    }

    /// `row.user` signed in on another node. Whoever held the name here
    /// loses it (its client did not answer that node's probe, or signed in
    /// there meanwhile); clients here who hear of the user look them up
    /// again.
    pub fn signed_in_elsewhere(&self, row: SignedInRow) {
        let there = crate::cluster::elsewhere(&row);
        // Maybe from a new device: the key is read again when needed.
        self.accounts.forget_key(&row.user);
        let held = self.presence.lock().sign_in_elsewhere(&row.user, there);
        if let Some(peer) = held {
            tracing::info!(
                user = row.user,
                node = row.node,
                "signed in on another node: taken over"
            );
            self.link.confirm(peer, false);
        }
        self.heard(&row.user, true);
    }

    /// The client of a user on another node moved: `lookup` gives its new
    /// address (nobody is told: the user did not come or go).
    pub fn moved_elsewhere(&self, row: SignedInRow) {
        self.presence
            .lock()
            .moved_elsewhere(&row.user, crate::cluster::elsewhere(&row));
    }

    /// `user` signed out of `node`.
    pub fn signed_out_elsewhere(&self, user: &str, node: &str) {
        if self.presence.lock().sign_out_elsewhere(user, node) {
            self.heard(user, false);
        }
    }

    /// `node` went down, or stopped heartbeating: whoever was there is gone.
    pub fn node_gone(&self, node: &str) {
        let gone = self.presence.lock().node_gone(node);
        if !gone.is_empty() {
            tracing::info!(node, users = gone.len(), "another node is gone");
        }
        for user in gone {
            self.heard(&user, false);
        }
    }

    /// Tells every signed-in client the server is going down and waits,
    /// at most `patience`, for them to acknowledge.
    pub async fn going_down(&self, patience: Duration) {
        let clients = self.presence.lock().peers();
        tracing::info!(
            clients = clients.len(),
            "going down: telling the signed-in clients"
        );
        let notices: Vec<_> = clients
            .into_iter()
            .map(|peer| self.link.push(peer, Encoded::push::<GoingDown>(&())))
            .collect();
        let _ = tokio::time::timeout(patience, async {
            for notice in notices {
                let _ = notice.await;
            }
        })
        .await;
        // What members acknowledged last must not come to them again.
        self.groups.flush().await;
        // The other nodes hear at once that this one's users are gone.
        if let Some(cluster) = &self.cluster {
            cluster.leave().await;
        }
    }
}

impl ServerContext for ServerState {
    fn presence(&self) -> &Mutex<Presence> {
        &self.presence
    }

    fn accounts(&self) -> &dyn Accounts {
        &self.accounts
    }

    fn mailbox(&self) -> &dyn Mailbox {
        &self.mailbox
    }

    fn groups(&self) -> &dyn Groups {
        &self.groups
    }

    fn probe(&self, peer: PeerId) -> BoxFuture<'static, bool> {
        let ping = self.link.push(peer, Encoded::push::<Ping>(&()));
        Box::pin(
            async move { matches!(tokio::time::timeout(PROBE_TIMEOUT, ping).await, Ok(Ok(()))) },
        )
    }

    fn push_to_user(&self, user: &str, push: Encoded) {
        let (here, there) = {
            let presence = self.presence.lock();
            let here = presence.session_of(user);
            (here, presence.elsewhere(user).map(|e| e.node.clone()))
        };
        match (here, there, &self.cluster) {
            (Some(peer), _, _) => self.push_now(peer, push),
            (None, Some(node), Some(cluster)) => cluster.relay_push(&node, user, push),
            _ => {}
        }
    }

    fn mail_elsewhere(&self, user: &str, id: u64) {
        // Told to the node the user is on, or to every node when this one
        // has not heard of them yet (they may have signed in a moment ago).
        let there = self.presence.lock().elsewhere(user).map(|e| e.node.clone());
        if let Some(cluster) = &self.cluster {
            cluster.mail_arrived(
                there.as_deref().unwrap_or(crate::cluster::ANY_NODE),
                user,
                id,
            );
        }
    }

    fn settled(&self) -> BoxFuture<'static, ()> {
        match &self.cluster {
            Some(cluster) => Box::pin(cluster.settled()),
            None => Box::pin(std::future::ready(())),
        }
    }

    fn probe_elsewhere(&self, user: &str, node: &str) -> BoxFuture<'static, bool> {
        let Some(cluster) = self.cluster.clone() else {
            return Box::pin(std::future::ready(false));
        };
        let (user, node) = (user.to_string(), node.to_string());
        Box::pin(async move { cluster.probe(&user, &node).await })
    }

    fn announce(&self, change: PresenceChange) {
        {
            let mut presence = self.presence.lock();
            if let Some(cluster) = &self.cluster {
                cluster.changed_here(&change, presence.session_of(&change.user));
            }
            presence.record(change);
        }
        self.changed.notify_one();
    }

    fn send_push(&self, peer: PeerId, push: Encoded) {
        self.push_now(peer, push);
    }

    fn keep_session(&self, peer: PeerId, keep: bool) {
        self.link.confirm(peer, keep);
    }

    fn peer_addr(&self, peer: PeerId) -> BoxFuture<'static, Option<SocketAddr>> {
        // Where a signed-in client is is known here, without asking the
        // driver.
        if let Some(addr) = self.presence.lock().addr_of(peer) {
            return Box::pin(std::future::ready(Some(addr)));
        }
        let link = self.link.clone();
        Box::pin(async move { link.peer(peer).await.map(|info| info.addr) })
    }

    fn arrange_meeting(&self, asker: PeerId, with: Option<PeerId>) -> Option<Ticket> {
        let allowed = self.meetings.lock().take(&asker, Instant::now());
        if allowed.is_err() {
            tracing::debug!(%asker, "too many meetings asked for");
            return None;
        }
        let ticket = Ticket::random();
        if let Some(with) = with {
            self.link.open_relay(ticket.id, [asker, with]);
        }
        Some(ticket)
    }
}
