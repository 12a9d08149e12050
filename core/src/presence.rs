//! Presence: who is signed in now and on which session, and who hears when
//! someone comes or goes. Memory only; the server owns one behind a lock.
//!
//! Who hears: while at most [`BROADCAST_LIMIT`] users are signed in, every
//! one of them hears every change. Past that, telling everyone is a storm
//! (each change is one packet to each of K clients, so K sign-ins cost K²
//! packets), so a change goes only to the sessions that *watch* the user:
//! those that looked the user up, sent them a message or checked their key
//! since signing in, and fellow members of the user's groups (the way
//! rosters and subscriptions scope presence in XMPP and large Discord
//! guilds). `list` still shows anyone on request.
//!
//! When several server nodes share one database, users signed in on the
//! other nodes are here too, "elsewhere" ([`Elsewhere`]): `list` shows
//! them and `lookup` finds their clients; their sessions are the other
//! nodes' business.

use std::borrow::Borrow;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;

use crate::names::Name;
use crate::secure::PeerId;

/// Someone signed in or went offline, as the server tells the others.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PresenceChange {
    pub user: String,
    pub online: bool,
}

/// Signed-in users past which presence changes go only to watchers.
pub const BROADCAST_LIMIT: usize = 1_000;
/// Users one session may watch; past this, looking more up watches no more.
pub const MAX_WATCHED: usize = 1_000;

/// A user signed in on another server node: where their client is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Elsewhere {
    /// The node's id.
    pub node: String,
    /// Where that node sees the client.
    pub addr: SocketAddr,
    /// The client's own addresses, as it gave them at sign-in.
    pub local: Vec<SocketAddr>,
}

/// The signed-in users, by name and by session, and who watches whom.
#[derive(Debug)]
pub struct Presence {
    /// Each name is one allocation, shared with the session's record.
    by_name: BTreeMap<Name, PeerId>,
    /// Users signed in on other nodes (never one signed in here).
    elsewhere: BTreeMap<String, Elsewhere>,
    /// What is known of each session signed in here: one record, so an
    /// idle client costs one table slot here, not one per fact.
    sessions: HashMap<PeerId, SignedIn>,
    broadcast_limit: usize,
    /// Per watched name: the sessions watching it.
    watchers: HashMap<String, HashSet<PeerId>>,
    /// Per session: the names it watches (to forget them when it goes).
    watching: HashMap<PeerId, HashSet<String>>,
    /// Changes recorded and not yet sent, each with its stamp.
    pending: Vec<(u64, PresenceChange)>,
    /// The stamp of the next change recorded.
    next_stamp: u64,
}

/// A session signed in here.
#[derive(Debug)]
struct SignedIn {
    name: Name,
    /// Where the server sees the client: the source of its sign-in, then
    /// of each path it moved to.
    addr: SocketAddr,
    /// The first stamp it hears. A session hears only what changed after
    /// its sign-in, not a batch gathered before.
    since: u64,
    /// The client's own addresses, as it said at sign-in (candidates for
    /// peers on its network).
    local: Box<[SocketAddr]>,
}

/// Local addresses kept per signed-in client at most.
pub const MAX_LOCAL_ADDRESSES: usize = 8;

impl Default for Presence {
    fn default() -> Presence {
        Presence::with_broadcast_limit(BROADCAST_LIMIT)
    }
}

/// What a sign-in would do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The name is free: go ahead.
    Free,
    /// The name is already signed in at this session.
    Already,
    /// The name is signed in from another address.
    HeldBy(PeerId),
    /// The name is signed in on another server node (its id).
    Elsewhere(String),
}

impl Presence {
    pub fn new() -> Presence {
        Presence::default()
    }

    /// Everyone hears every change while at most `limit` users are signed
    /// in; past it, only watchers do.
    pub fn with_broadcast_limit(limit: usize) -> Presence {
        Presence {
            by_name: BTreeMap::new(),
            elsewhere: BTreeMap::new(),
            sessions: HashMap::new(),
            broadcast_limit: limit,
            watchers: HashMap::new(),
            watching: HashMap::new(),
            pending: Vec::new(),
            next_stamp: 0,
        }
    }

    /// Whether `name` may be signed in from `peer` without displacing anyone.
    pub fn claim(&self, name: &str, peer: PeerId) -> Claim {
        match self.by_name.get(name) {
            Some(&held) if held == peer => Claim::Already,
            Some(&held) => Claim::HeldBy(held),
            None => match self.elsewhere.get(name) {
                Some(there) => Claim::Elsewhere(there.node.clone()),
                None => Claim::Free,
            },
        }
    }

    /// `name` is signed in on another node, `there`; whoever held the name
    /// here is signed out (the user moved there). Returns that session.
    pub fn sign_in_elsewhere(&mut self, name: &str, there: Elsewhere) -> Option<PeerId> {
        let here = self.by_name.get(name).copied();
        if let Some(peer) = here {
            self.sign_out(peer);
        }
        self.elsewhere.insert(name.to_string(), there);
        here
    }

    /// `name`'s client on another node is at `there` now; nothing if this
    /// node does not know it signed in on that node.
    pub fn moved_elsewhere(&mut self, name: &str, there: Elsewhere) {
        if let Some(known) = self
            .elsewhere
            .get_mut(name)
            .filter(|e| e.node == there.node)
        {
            *known = there;
        }
    }

    /// `name` left node `node`; false if it was not signed in there.
    pub fn sign_out_elsewhere(&mut self, name: &str, node: &str) -> bool {
        if self.elsewhere.get(name).is_some_and(|e| e.node == node) {
            self.elsewhere.remove(name);
            return true;
        }
        false
    }

    /// Node `node` went away: the names that were signed in there.
    pub fn node_gone(&mut self, node: &str) -> Vec<String> {
        let gone: Vec<String> = self
            .elsewhere
            .iter()
            .filter(|(_, e)| e.node == node)
            .map(|(name, _)| name.clone())
            .collect();
        for name in &gone {
            self.elsewhere.remove(name);
        }
        gone
    }

    /// Where `name` is signed in, if on another node.
    pub fn elsewhere(&self, name: &str) -> Option<&Elsewhere> {
        self.elsewhere.get(name)
    }

    /// Every user signed in on another node, with where.
    pub fn all_elsewhere(&self) -> &BTreeMap<String, Elsewhere> {
        &self.elsewhere
    }

    /// Signs `name` in at `peer`, whose client the server sees at `addr`,
    /// displacing whatever held either. Returns the names that were signed
    /// out by it (not `name` itself).
    pub fn sign_in(&mut self, name: &str, peer: PeerId, addr: SocketAddr) -> Vec<String> {
        let mut displaced = Vec::new();
        if let Some(old_peer) = self.by_name.remove(name) {
            self.sessions.remove(&old_peer);
        }
        if let Some(old) = self.sessions.remove(&peer) {
            if old.name.as_str() != name {
                self.by_name.remove(old.name.as_str());
                displaced.push(old.name.into());
            }
        }
        let shared = Name::from(name);
        self.by_name.insert(shared.clone(), peer);
        self.elsewhere.remove(name);
        self.sessions.insert(
            peer,
            SignedIn {
                name: shared,
                addr,
                since: self.next_stamp,
                local: Box::default(),
            },
        );
        displaced
    }

    /// Signs out whoever is at `peer`; returns the name. What the session
    /// watched is forgotten.
    pub fn sign_out(&mut self, peer: PeerId) -> Option<String> {
        self.forget_watches(peer);
        let gone = self.sessions.remove(&peer)?;
        self.by_name.remove(gone.name.as_str());
        Some(gone.name.into())
    }

    /// The client signed in at `peer` is seen at `addr` now (its path
    /// moved).
    pub fn moved(&mut self, peer: PeerId, addr: SocketAddr) {
        if let Some(session) = self.sessions.get_mut(&peer) {
            session.addr = addr;
        }
    }

    /// Where the server sees the client signed in at `peer`.
    pub fn addr_of(&self, peer: PeerId) -> Option<SocketAddr> {
        self.sessions.get(&peer).map(|s| s.addr)
    }

    /// The session at `watcher` wants to hear when `user` comes or goes.
    /// Returns false when it already watches [`MAX_WATCHED`] others.
    pub fn watch(&mut self, watcher: PeerId, user: &str) -> bool {
        let watched = self.watching.entry(watcher).or_default();
        if !watched.contains(user) {
            if watched.len() >= MAX_WATCHED {
                return false;
            }
            watched.insert(user.to_string());
        }
        self.watchers
            .entry(user.to_string())
            .or_default()
            .insert(watcher);
        true
    }

    fn forget_watches(&mut self, watcher: PeerId) {
        for user in self.watching.remove(&watcher).unwrap_or_default() {
            if let Some(set) = self.watchers.get_mut(&user) {
                set.remove(&watcher);
                if set.is_empty() {
                    self.watchers.remove(&user);
                }
            }
        }
    }

    /// Records a change, to be sent with the next batch
    /// ([`Presence::take_audience`]).
    pub fn record(&mut self, change: PresenceChange) {
        self.pending.push((self.next_stamp, change));
        self.next_stamp += 1;
    }

    /// Takes the changes recorded since the last call and says who hears
    /// which: each signed-in session with the changes meant for it, in
    /// order, never its own, and none recorded before it signed in.
    pub fn take_audience(&mut self) -> Vec<(PeerId, Vec<PresenceChange>)> {
        let pending = std::mem::take(&mut self.pending);
        // Another's change, recorded since the session signed in.
        let hears = |peer: &PeerId, (stamp, change): &(u64, PresenceChange)| {
            self.sessions
                .get(peer)
                .is_some_and(|me| me.name.as_str() != change.user && *stamp >= me.since)
        };
        let mut heard: HashMap<PeerId, Vec<PresenceChange>> = HashMap::new();
        if self.len() <= self.broadcast_limit {
            for peer in self.by_name.values() {
                let mine: Vec<PresenceChange> = pending
                    .iter()
                    .filter(|entry| hears(peer, entry))
                    .map(|(_, c)| c.clone())
                    .collect();
                if !mine.is_empty() {
                    heard.insert(*peer, mine);
                }
            }
        } else {
            for entry in &pending {
                let change = &entry.1;
                for peer in self.watchers.get(&change.user).into_iter().flatten() {
                    if hears(peer, entry) {
                        heard.entry(*peer).or_default().push(change.clone());
                    }
                }
            }
        }
        heard.into_iter().collect()
    }

    /// Records the own addresses of the client signed in at `peer` (at
    /// most [`MAX_LOCAL_ADDRESSES`]; only usable unicast ones).
    pub fn set_local(&mut self, peer: PeerId, addrs: &[SocketAddr]) {
        let Some(session) = self.sessions.get_mut(&peer) else {
            return;
        };
        session.local = addrs
            .iter()
            .filter(|a| {
                let ip = a.ip();
                a.port() != 0 && !ip.is_unspecified() && !ip.is_multicast()
            })
            .take(MAX_LOCAL_ADDRESSES)
            .copied()
            .collect();
    }

    /// The own addresses of the client signed in at `peer`.
    pub fn local_of(&self, peer: PeerId) -> Vec<SocketAddr> {
        self.sessions
            .get(&peer)
            .map(|s| s.local.to_vec())
            .unwrap_or_default()
    }

    /// The name signed in at `peer`.
    pub fn user_at(&self, peer: PeerId) -> Option<&str> {
        self.sessions.get(&peer).map(|s| s.name.as_str())
    }

    /// Where `name` is signed in.
    pub fn session_of(&self, name: &str) -> Option<PeerId> {
        self.by_name.get(name).copied()
    }

    /// The first `limit` signed-in names that start with `prefix`, sorted,
    /// and how many start with it in all (on every node).
    pub fn users_from(&self, prefix: &str, limit: usize) -> (Vec<Name>, usize) {
        /// A name in the merge: signed in here, or on another node.
        enum Listed<'a> {
            Here(&'a Name),
            Elsewhere(&'a String),
        }
        fn from<'a, K: Borrow<str> + Ord, V>(
            names: &'a BTreeMap<K, V>,
            prefix: &'a str,
        ) -> Box<dyn Iterator<Item = &'a K> + 'a> {
            // An empty prefix is not compared at all: comparing zero bytes
            // at an empty string's dangling pointer costs this machine's
            // memcmp a masked load from an unmapped page, a fault it
            // suppresses slowly (130 ns a comparison; a third of `list`'s
            // server CPU, measured).
            if prefix.is_empty() {
                return Box::new(names.keys());
            }
            Box::new(
                names
                    .range::<str, _>((
                        std::ops::Bound::Included(prefix),
                        std::ops::Bound::Unbounded,
                    ))
                    .map(|(name, _)| name)
                    .take_while(move |name| (*name).borrow().starts_with(prefix)),
            )
        }
        // Both sorted, and no name in both: merge them.
        let (mut here, mut there) = (
            from(&self.by_name, prefix).peekable(),
            from(&self.elsewhere, prefix).peekable(),
        );
        let mut shown = Vec::with_capacity(limit.min(self.len() + self.elsewhere.len()));
        let mut total = 0;
        loop {
            // Names here are shared; those on other nodes are made once.
            let next = match (here.peek(), there.peek()) {
                (Some(a), Some(b)) if a.as_str() <= b.as_str() => here.next().map(Listed::Here),
                (Some(_), Some(_)) => there.next().map(Listed::Elsewhere),
                (Some(_), None) => here.next().map(Listed::Here),
                (None, _) => there.next().map(Listed::Elsewhere),
            };
            let Some(name) = next else { break };
            if shown.len() < limit {
                shown.push(match name {
                    Listed::Here(name) => name.clone(),
                    Listed::Elsewhere(name) => Name::from(name.as_str()),
                });
            } else if prefix.is_empty() {
                // Everyone: no need to walk them all to count them.
                return (shown, self.by_name.len() + self.elsewhere.len());
            }
            total += 1;
        }
        (shown, total)
    }

    /// Every session signed in here.
    pub fn peers(&self) -> Vec<PeerId> {
        self.by_name.values().copied().collect()
    }

    /// Users signed in here (not on other nodes).
    pub fn len(&self) -> usize {
        self.by_name.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_name.is_empty()
    }
}

#[cfg(test)]
mod tests;
