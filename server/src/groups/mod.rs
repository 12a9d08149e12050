//! Group chat on the server: who may do what to a group (the owner adds
//! and removes members, anyone joins an open group, only members send or
//! read), and the entry points the `group`, `gsend` and `groups` commands
//! call. How messages reach members, in order and once, is [`delivery`];
//! the tables, [`store`]; the operator's `udpchat-server group`, [`admin`].

pub mod admin;
mod delivery;
mod postgres;
mod store;
mod told;

pub use store::{Draft, GroupStore, Kind};

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::{mpsc, oneshot};
use udpchat_commands::groups::Listing;
use udpchat_core::context::{BoxFuture, Groups, PeerId};
use udpchat_core::error::{Code, CommandError};
use udpchat_core::group::{GroupInfo, GroupMessage, Post, HISTORY_LIMIT, MAX_MEMBERS};
use udpchat_core::presence::Presence;
use udpchat_core::trims::Trims;
use udpchat_net::Link;

use crate::mailbox::now_ms;
use crate::store::{blocking, internal};
use delivery::{write_cursors, Cursors, Live, Locked};

/// Cheap to clone: every field is shared.
#[derive(Clone)]
pub struct GroupChat {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn GroupStore>,
    link: Link,
    presence: Arc<Mutex<Presence>>,
    /// Per group: who receives it live. Entries go when nobody is attached.
    live: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Live>>>>,
    cursors: Mutex<Cursors>,
    /// Wakes the cursor writer.
    wake_writer: mpsc::UnboundedSender<()>,
    /// Per group: messages accepted and not yet stored, in arrival order
    /// (see [`Inner::commit`]).
    pending: Mutex<HashMap<String, Vec<Pending>>>,
    /// Other server nodes write to the same store: what members receive is
    /// read from it (see [`Inner::caught_up`]), and they tell their own
    /// users what changed.
    elsewhere: Option<Arc<dyn Elsewhere>>,
    /// When a commit trims its group's log.
    trims: Trims<String>,
}

/// The other server nodes, as group chat needs them.
pub trait Elsewhere: Send + Sync {
    /// Has `node` tell `user`, signed in there, that their groups changed
    /// ([`crate::cluster::ANY_NODE`]: whichever node `user` is signed in on).
    fn tell(&self, node: &str, user: &str, note: String);
}

/// Whether members are added to a group that may have messages already
/// (`add`, `join`), or as it is made (`create`): in a private group the
/// former cannot read them, and are told so.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Later {
    Yes,
    No,
}

/// A message waiting for its commit, and its sender's answer.
struct Pending {
    draft: Draft,
    done: oneshot::Sender<Result<GroupMessage, CommandError>>,
}

/// Group commits one holder of a group's lock makes at most, one after
/// the other, before it lets the next waiting for the lock have it (a
/// member being attached, say).
const COMMITS_IN_TURN: usize = 16;

fn no_such_group(group: &str) -> CommandError {
    CommandError::new(Code::NoSuchGroup, format!("No such group: {group}"))
}

fn not_a_member(group: &str) -> CommandError {
    CommandError::new(Code::NotAMember, format!("you are not a member of {group}"))
}

fn too_many(group: &str) -> CommandError {
    CommandError::new(
        Code::TooLarge,
        format!("{group} would have more than {MAX_MEMBERS} members"),
    )
}

impl GroupChat {
    /// Must be called inside the runtime: it starts the cursor writer.
    /// `elsewhere`: the other server nodes on the same store, if any.
    pub fn new(
        store: Arc<dyn GroupStore>,
        link: Link,
        presence: Arc<Mutex<Presence>>,
        elsewhere: Option<Arc<dyn Elsewhere>>,
    ) -> GroupChat {
        let (wake_writer, wakes) = mpsc::unbounded_channel();
        let inner = Arc::new(Inner {
            store,
            link,
            presence,
            live: Mutex::new(HashMap::new()),
            cursors: Mutex::new(Cursors::default()),
            wake_writer,
            pending: Mutex::new(HashMap::new()),
            elsewhere,
            trims: Trims::new(HISTORY_LIMIT),
        });
        tokio::spawn(write_cursors(Arc::downgrade(&inner), wakes));
        GroupChat { inner }
    }

    /// Stores every acknowledged position now (the server is going down).
    pub async fn flush(&self) {
        self.inner.write_cursors().await;
    }

    /// Another server node appended to `group`: its members online here
    /// get what they have not been given yet.
    pub async fn appended_elsewhere(&self, group: &str) {
        let inner = &self.inner;
        let (store, name) = (inner.store.clone(), group.to_string());
        let members = match blocking(move || store.group(&name)).await {
            Ok(Some(info)) => info.members,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(group, "groups: cannot read the members: {}", e.message);
                return;
            }
        };
        let mut locked = inner.lock(group).await;
        for member in &members {
            let Some(peer) = inner.online(member) else {
                continue;
            };
            // Not receiving it here yet (the group is new to them, say):
            // attached with what they have not acknowledged.
            if let Err(e) = inner
                .attach(&mut locked.live, group, member, peer, None)
                .await
            {
                tracing::warn!(member, "groups: not attached: {}", e.message);
            }
        }
        inner.caught_up(&mut locked.live, group, &[], &[]).await;
    }

    /// Another node asked this one to tell `user` their groups changed.
    pub async fn tell_here(&self, user: &str, note: String) {
        if self.inner.online(user).is_some() {
            self.inner.tell(user, note).await;
        }
    }
}

impl Inner {
    async fn existing(&self, group: &str) -> Result<GroupInfo, CommandError> {
        let (store, name) = (self.store.clone(), group.to_string());
        blocking(move || store.group(&name))
            .await?
            .ok_or_else(|| no_such_group(group))
    }

    fn online(&self, user: &str) -> Option<PeerId> {
        self.presence.lock().session_of(user)
    }

    /// Group commits, run under the group's lock by each sender in turn:
    /// the first takes every message accepted for the group so far (its
    /// own and those that came while the previous commit ran), stores
    /// them in one transaction, hands them to the members in the order
    /// stored, and answers each sender; then, still holding the lock, it
    /// does the same with what came meanwhile, up to [`COMMITS_IN_TURN`]
    /// times. Those whose message it took read their answer without
    /// waiting for the lock. A sender is answered only after the commit
    /// that holds its message, so durability is as with one commit per
    /// message, at one fsync per batch.
    ///
    /// The commits run on one blocking thread, one after the other: each
    /// commit's fsync blocks, and the hops to a worker thread and back
    /// between two commits took a third of each commit's cycle
    /// (PERFORMANCE.md, seventeenth part).
    async fn commit(self: &Arc<Self>, locked: Locked, group: &str) {
        if !self.pending.lock().contains_key(group) {
            return;
        }
        let (inner, group) = (self.clone(), group.to_string());
        let runtime = tokio::runtime::Handle::current();
        // A commit that panics is logged there; its senders hear that
        // their message was dropped.
        let _ = blocking(move || {
            let mut locked = locked;
            for _ in 0..COMMITS_IN_TURN {
                if !inner.commit_one(&runtime, &mut locked.live, &group) {
                    break;
                }
            }
            Ok::<(), CommandError>(())
        })
        .await;
    }

    /// One group commit of what waits for `group`, on a blocking thread;
    /// whether there was anything.
    fn commit_one(
        self: &Arc<Self>,
        runtime: &tokio::runtime::Handle,
        live: &mut Live,
        group: &str,
    ) -> bool {
        let batch = self.pending.lock().remove(group).unwrap_or_default();
        if batch.is_empty() {
            return false;
        }
        let (drafts, senders): (Vec<Draft>, Vec<_>) =
            batch.into_iter().map(|p| (p.draft, p.done)).unzip();
        let count = drafts.len();
        let trim_to = self.trims.due(group, count);
        let stored = self.store.append_all(group, &drafts, trim_to);
        if stored.is_ok() {
            self.trims.committed(group, count, trim_to);
        }
        let (appended, members) = match stored {
            Ok(stored) => stored,
            Err(e) => {
                let e = CommandError::from(e);
                for sender in senders {
                    let _ = sender.send(Err(e.clone()));
                }
                return true;
            }
        };
        let accepted: Vec<GroupMessage> = appended
            .iter()
            .filter_map(|outcome| outcome.as_ref().ok().cloned())
            .collect();
        // Without a store read to wait for (a member attached at a
        // commit, another node's messages), this finishes without waiting.
        runtime.block_on(async {
            if self.elsewhere.is_some() {
                self.caught_up(live, group, &accepted, &members).await;
            } else {
                self.fan_out(live, group, &accepted, &members).await;
            }
        });
        for (sender, outcome) in senders.into_iter().zip(appended) {
            let _ = sender.send(outcome.map_err(CommandError::from));
        }
        true
    }

    /// The group, if `user` is the one who may change its members.
    async fn owned_by(&self, user: &str, group: &str) -> Result<GroupInfo, CommandError> {
        let info = self.existing(group).await?;
        match &info.owner {
            Some(owner) if owner == user => Ok(info),
            Some(owner) => Err(CommandError::new(
                Code::NotAllowed,
                format!("only {group}'s owner, {owner}, can add or remove its members"),
            )),
            None => Err(CommandError::new(
                Code::NotAllowed,
                format!("{group} is managed by the server's operator"),
            )),
        }
    }

    async fn leave(self: &Arc<Self>, user: &str, group: &str) -> Result<GroupInfo, CommandError> {
        let mut locked = self.lock(group).await;
        let info = self.existing(group).await?;
        if !info.members.iter().any(|m| m == user) {
            return Err(not_a_member(group));
        }
        let (store, name, users) = (
            self.store.clone(),
            group.to_string(),
            vec![user.to_string()],
        );
        let (info, removed) = blocking(move || store.remove_members(&name, &users)).await?;
        self.removed(&mut locked.live, group, &removed, user).await;
        Ok(info)
    }
}

impl Groups for GroupChat {
    fn create(
        &self,
        owner: &str,
        group: &str,
        kind: Kind,
        members: Vec<String>,
    ) -> BoxFuture<'static, Result<GroupInfo, CommandError>> {
        let inner = self.inner.clone();
        let (owner, group) = (owner.to_string(), group.to_string());
        Box::pin(async move {
            let mut members = members;
            if !members.contains(&owner) {
                members.insert(0, owner.clone());
            }
            if members.len() > MAX_MEMBERS {
                return Err(too_many(&group));
            }
            let mut locked = inner.lock(&group).await;
            let (store, name, by) = (inner.store.clone(), group.clone(), owner.clone());
            let all = members.clone();
            let info = blocking(move || store.create_group(&name, Some(&by), kind, &all)).await?;
            inner
                .added(&mut locked.live, &info, &members, &owner, Later::No)
                .await;
            Ok(info)
        })
    }

    fn add(
        &self,
        by: &str,
        group: &str,
        users: Vec<String>,
    ) -> BoxFuture<'static, Result<GroupInfo, CommandError>> {
        let inner = self.inner.clone();
        let (by, group) = (by.to_string(), group.to_string());
        Box::pin(async move {
            let mut locked = inner.lock(&group).await;
            let info = inner.owned_by(&by, &group).await?;
            let new = users.iter().filter(|u| !info.members.contains(u)).count();
            if info.members.len() + new > MAX_MEMBERS {
                return Err(too_many(&group));
            }
            let (store, name) = (inner.store.clone(), group.clone());
            let (info, added) = blocking(move || store.add_members(&name, &users)).await?;
            inner
                .added(&mut locked.live, &info, &added, &by, Later::Yes)
                .await;
            Ok(info)
        })
    }

    fn remove(
        &self,
        by: &str,
        group: &str,
        users: Vec<String>,
    ) -> BoxFuture<'static, Result<GroupInfo, CommandError>> {
        let inner = self.inner.clone();
        let (by, group) = (by.to_string(), group.to_string());
        Box::pin(async move {
            // Removing only oneself is leaving, which any member may do.
            if users == [by.clone()] {
                return inner.leave(&by, &group).await;
            }
            let mut locked = inner.lock(&group).await;
            inner.owned_by(&by, &group).await?;
            let (store, name) = (inner.store.clone(), group.clone());
            let (info, removed) = blocking(move || store.remove_members(&name, &users)).await?;
            inner.removed(&mut locked.live, &group, &removed, &by).await;
            Ok(info)
        })
    }

    fn join(&self, user: &str, group: &str) -> BoxFuture<'static, Result<GroupInfo, CommandError>> {
        let inner = self.inner.clone();
        let (user, group) = (user.to_string(), group.to_string());
        Box::pin(async move {
            let mut locked = inner.lock(&group).await;
            let info = inner.existing(&group).await?;
            if info.members.contains(&user) {
                return Ok(info);
            }
            if !info.open {
                return Err(CommandError::new(
                    Code::NotAllowed,
                    format!("{group} is not open: its owner can add you"),
                ));
            }
            if info.members.len() >= MAX_MEMBERS {
                return Err(too_many(&group));
            }
            let (store, name, users) = (inner.store.clone(), group.clone(), vec![user.clone()]);
            let (info, added) = blocking(move || store.add_members(&name, &users)).await?;
            inner
                .added(&mut locked.live, &info, &added, &user, Later::Yes)
                .await;
            Ok(info)
        })
    }

    fn leave(&self, user: &str, group: &str) -> BoxFuture<'static, Result<(), CommandError>> {
        let inner = self.inner.clone();
        let (user, group) = (user.to_string(), group.to_string());
        Box::pin(async move { inner.leave(&user, &group).await.map(|_| ()) })
    }

    fn info(&self, user: &str, group: &str) -> BoxFuture<'static, Result<GroupInfo, CommandError>> {
        let inner = self.inner.clone();
        let (user, group) = (user.to_string(), group.to_string());
        Box::pin(async move {
            let info = inner.existing(&group).await?;
            if !info.open && !info.members.contains(&user) {
                return Err(not_a_member(&group));
            }
            Ok(info)
        })
    }

    fn of_member(&self, user: &str) -> BoxFuture<'static, Result<Vec<GroupInfo>, CommandError>> {
        let (store, user) = (self.inner.store.clone(), user.to_string());
        Box::pin(blocking(move || store.groups_of(&user)))
    }

    fn send(
        &self,
        from: &str,
        group: &str,
        post: Post,
    ) -> BoxFuture<'static, Result<GroupMessage, CommandError>> {
        let inner = self.inner.clone();
        let (from, group) = (from.to_string(), group.to_string());
        Box::pin(async move {
            let (done, mut answer) = oneshot::channel();
            let draft = Draft {
                from,
                post,
                time_ms: now_ms(),
            };
            inner
                .pending
                .lock()
                .entry(group.clone())
                .or_default()
                .push(Pending { draft, done });
            // Whoever holds the group's lock commits what waits, this
            // message too, maybe before this sender has the lock.
            let answered = tokio::select! {
                biased;
                answered = &mut answer => answered,
                locked = inner.lock(&group) => {
                    inner.commit(locked, &group).await;
                    answer.await
                }
            };
            answered.unwrap_or_else(|_| {
                Err(internal("groups: a message was dropped before its commit"))
            })
        })
    }

    fn history(
        &self,
        user: &str,
        group: &str,
        count: usize,
    ) -> BoxFuture<'static, Result<Vec<GroupMessage>, CommandError>> {
        let inner = self.inner.clone();
        let (user, group) = (user.to_string(), group.to_string());
        Box::pin(async move {
            let info = inner.existing(&group).await?;
            if !info.members.contains(&user) {
                return Err(not_a_member(&group));
            }
            let store = inner.store.clone();
            blocking(move || store.last_messages(&group, count)).await
        })
    }

    fn signed_in(&self, user: &str, peer: PeerId) {
        let inner = self.inner.clone();
        let user = user.to_string();
        tokio::spawn(async move {
            let (store, name) = (inner.store.clone(), user.clone());
            let groups = match blocking(move || store.groups_of(&name)).await {
                Ok(groups) => groups,
                Err(e) => {
                    tracing::warn!(user, "groups: none shown at sign-in: {}", e.message);
                    return;
                }
            };
            if groups.is_empty() {
                return;
            }
            // Fellow members hear of each other coming and going even on a
            // server too busy to tell everyone (see `Presence::audience`).
            {
                let mut presence = inner.presence.lock();
                if presence.user_at(peer) == Some(user.as_str()) {
                    for member in groups.iter().flat_map(|g| &g.members) {
                        if *member != user {
                            presence.watch(peer, member);
                        }
                    }
                }
            }
            let listing = Listing {
                groups: groups.clone(),
                note: None,
            };
            inner.show_groups(peer, &listing);
            for group in groups {
                let mut locked = inner.lock(&group.name).await;
                // Signed out (or in elsewhere) meanwhile: that sign-in delivers.
                if inner.online(&user) != Some(peer) {
                    return;
                }
                if let Err(e) = inner
                    .attach(&mut locked.live, &group.name, &user, peer, None)
                    .await
                {
                    tracing::warn!(
                        user,
                        group = group.name,
                        "groups: backlog not sent: {}",
                        e.message
                    );
                }
            }
        });
    }
}
