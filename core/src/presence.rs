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

/// The signed-in users, by name and by address (one name per address), and
/// who watches whom.
#[derive(Debug)]
pub struct Presence {
    /// Each name is one allocation, shared with `by_session`.
    by_name: BTreeMap<Name, PeerId>,
    /// Users signed in on other nodes (never one signed in here).
    elsewhere: BTreeMap<String, Elsewhere>,
    by_session: HashMap<PeerId, Name>,
    broadcast_limit: usize,
    /// Per watched name: the sessions watching it.
    watchers: HashMap<String, HashSet<PeerId>>,
    /// Per session: the names it watches (to forget them when it goes).
    watching: HashMap<PeerId, HashSet<String>>,
    /// Changes recorded and not yet sent, each with its stamp.
    pending: Vec<(u64, PresenceChange)>,
    /// The stamp of the next change recorded.
    next_stamp: u64,
    /// Per signed-in session: the first stamp it hears. A session hears
    /// only what changed after its sign-in, not a batch gathered before.
    since: HashMap<PeerId, u64>,
    /// Per signed-in session: the client's own addresses, as it said at
    /// sign-in (candidates for peers on its network).
    local: HashMap<PeerId, Vec<SocketAddr>>,
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
            by_session: HashMap::new(),
            broadcast_limit: limit,
            watchers: HashMap::new(),
            watching: HashMap::new(),
            pending: Vec::new(),
            next_stamp: 0,
            since: HashMap::new(),
            local: HashMap::new(),
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

    /// Signs `name` in at `peer`, displacing whatever held either. Returns
    /// the names that were signed out by it (not `name` itself).
    pub fn sign_in(&mut self, name: &str, peer: PeerId) -> Vec<String> {
        let mut displaced = Vec::new();
        if let Some(old_peer) = self.by_name.remove(name) {
            self.by_session.remove(&old_peer);
            self.local.remove(&old_peer);
        }
        if let Some(old_name) = self.by_session.remove(&peer) {
            if old_name != name {
                self.by_name.remove(old_name.as_str());
                displaced.push(old_name.into());
            }
        }
        let shared = Name::from(name);
        self.by_name.insert(shared.clone(), peer);
        self.elsewhere.remove(name);
        self.by_session.insert(peer, shared);
        self.since.insert(peer, self.next_stamp);
        displaced
    }

    /// Signs out whoever is at `peer`; returns the name. What the session
    /// watched is forgotten.
    pub fn sign_out(&mut self, peer: PeerId) -> Option<String> {
        self.forget_watches(peer);
        self.since.remove(&peer);
        self.local.remove(&peer);
        let name = self.by_session.remove(&peer)?;
        self.by_name.remove(name.as_str());
        Some(name.into())
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
        let hears = |peer: &PeerId, stamp: u64| self.since.get(peer).is_some_and(|s| stamp >= *s);
        let mut heard: HashMap<PeerId, Vec<PresenceChange>> = HashMap::new();
        if self.len() <= self.broadcast_limit {
            for (name, peer) in &self.by_name {
                let mine: Vec<PresenceChange> = pending
                    .iter()
                    .filter(|(stamp, c)| *name != c.user && hears(peer, *stamp))
                    .map(|(_, c)| c.clone())
                    .collect();
                if !mine.is_empty() {
                    heard.insert(*peer, mine);
                }
            }
        } else {
            for (stamp, change) in &pending {
                for peer in self.watchers.get(&change.user).into_iter().flatten() {
                    if self
                        .by_session
                        .get(peer)
                        .is_some_and(|me| *me != change.user)
                        && hears(peer, *stamp)
                    {
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
        if !self.by_session.contains_key(&peer) {
            return;
        }
        let usable = addrs
            .iter()
            .filter(|a| {
                let ip = a.ip();
                a.port() != 0 && !ip.is_unspecified() && !ip.is_multicast()
            })
            .take(MAX_LOCAL_ADDRESSES)
            .copied()
            .collect();
        self.local.insert(peer, usable);
    }

    /// The own addresses of the client signed in at `peer`.
    pub fn local_of(&self, peer: PeerId) -> Vec<SocketAddr> {
        self.local.get(&peer).cloned().unwrap_or_default()
    }

    /// The name signed in at `peer`.
    pub fn user_at(&self, peer: PeerId) -> Option<&str> {
        self.by_session.get(&peer).map(Name::as_str)
    }

    /// Where `name` is signed in.
    pub fn session_of(&self, name: &str) -> Option<PeerId> {
        self.by_name.get(name).copied()
    }

    /// The first `limit` signed-in names that start with `prefix`, sorted,
    /// and how many start with it in all (on every node).
    pub fn users_from(&self, prefix: &str, limit: usize) -> (Vec<Name>, usize) {
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
                (Some(a), Some(b)) if a.as_str() <= b.as_str() => here.next().map(Ok),
                (Some(_), Some(_)) => there.next().map(Err),
                (Some(_), None) => here.next().map(Ok),
                (None, _) => there.next().map(Err),
            };
            let Some(name) = next else { break };
            if shown.len() < limit {
                shown.push(match name {
                    Ok(here) => here.clone(),
                    Err(there) => Name::from(there.as_str()),
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
mod tests {
    use super::*;

    fn session(index: u32) -> PeerId {
        PeerId(index)
    }

    #[test]
    fn one_name_per_address_and_one_address_per_name() {
        let mut p = Presence::new();
        assert!(p.sign_in("alice", session(1)).is_empty());
        assert_eq!(p.claim("alice", session(2)), Claim::HeldBy(session(1)));
        assert_eq!(p.claim("alice", session(1)), Claim::Already);
        assert_eq!(p.claim("bob", session(1)), Claim::Free);
        // The same client signing in under another name leaves the old one.
        assert_eq!(p.sign_in("alicia", session(1)), vec!["alice".to_string()]);
        assert_eq!(p.users_from("", 10), (vec!["alicia".into()], 1));
        // Taking a name over moves it.
        p.sign_in("alicia", session(3));
        assert_eq!(p.session_of("alicia"), Some(session(3)));
        assert_eq!(p.user_at(session(1)), None);
        assert_eq!(p.sign_out(session(3)).as_deref(), Some("alicia"));
        assert!(p.is_empty());
    }

    #[test]
    fn a_clients_own_addresses_are_kept_while_it_is_signed_in_and_only_usable_ones() {
        let mut p = Presence::new();
        let lan: SocketAddr = "10.0.1.2:5000".parse().unwrap();
        let unusable: [SocketAddr; 3] = [
            "0.0.0.0:5000".parse().unwrap(),
            "10.0.1.2:0".parse().unwrap(),
            "224.0.0.1:5000".parse().unwrap(),
        ];
        p.set_local(session(1), &[lan]);
        assert!(p.local_of(session(1)).is_empty(), "not signed in");
        p.sign_in("alice", session(1));
        let mut given = unusable.to_vec();
        given.extend(std::iter::repeat_n(lan, 20));
        p.set_local(session(1), &given);
        assert_eq!(p.local_of(session(1)), vec![lan; MAX_LOCAL_ADDRESSES]);
        // Signed in elsewhere, or out: forgotten.
        p.sign_in("alice", session(2));
        assert!(p.local_of(session(1)).is_empty());
        p.set_local(session(2), &[lan]);
        p.sign_out(session(2));
        assert!(p.local_of(session(2)).is_empty());
    }

    fn change(user: &str, online: bool) -> PresenceChange {
        PresenceChange {
            user: user.to_string(),
            online,
        }
    }

    fn sorted(mut heard: Vec<(PeerId, Vec<PresenceChange>)>) -> Vec<(PeerId, Vec<PresenceChange>)> {
        heard.sort_by_key(|(peer, _)| peer.0);
        heard
    }

    /// Records `changes` and takes the batch.
    fn heard(p: &mut Presence, changes: &[PresenceChange]) -> Vec<(PeerId, Vec<PresenceChange>)> {
        for c in changes {
            p.record(c.clone());
        }
        p.take_audience()
    }

    #[test]
    fn a_session_hears_only_what_changed_after_it_signed_in() {
        for limit in [10, 0] {
            let mut p = Presence::with_broadcast_limit(limit);
            p.sign_in("carole", session(3));
            p.watch(session(3), "bob");
            // bob leaves; the batch is still being gathered when alice
            // signs in (a fellow group member: she watches bob).
            p.record(change("bob", false));
            p.sign_in("alice", session(1));
            p.watch(session(1), "bob");
            p.record(change("bob", true));
            assert_eq!(
                sorted(p.take_audience()),
                vec![
                    (session(1), vec![change("bob", true)]),
                    (session(3), vec![change("bob", false), change("bob", true)]),
                ],
                "limit {limit}"
            );
            assert!(p.take_audience().is_empty(), "a batch is sent once");
        }
    }

    #[test]
    fn under_the_limit_everyone_hears_everything_but_their_own() {
        let mut p = Presence::with_broadcast_limit(3);
        p.sign_in("alice", session(1));
        p.sign_in("bob", session(2));
        let changes = [change("bob", true), change("carole", false)];
        assert_eq!(
            sorted(heard(&mut p, &changes)),
            vec![
                (session(1), changes.to_vec()),
                (session(2), vec![change("carole", false)]),
            ]
        );
    }

    #[test]
    fn past_the_limit_only_watchers_hear() {
        let mut p = Presence::with_broadcast_limit(2);
        for (i, name) in ["alice", "bob", "carole"].into_iter().enumerate() {
            p.sign_in(name, session(i as u32 + 1));
        }
        assert!(p.watch(session(1), "dave"));
        assert!(p.watch(session(3), "dave"));
        assert!(p.watch(session(3), "bob"));
        // bob watching himself hears nothing of himself.
        assert!(p.watch(session(2), "bob"));
        let changes = [
            change("dave", true),
            change("bob", false),
            change("eve", true),
        ];
        assert_eq!(
            sorted(heard(&mut p, &changes)),
            vec![
                (session(1), vec![change("dave", true)]),
                (session(3), vec![change("dave", true), change("bob", false)]),
            ]
        );
        // A session that signs out stops watching.
        p.sign_out(session(3));
        p.sign_in("frank", session(4));
        assert_eq!(
            sorted(heard(&mut p, &[change("dave", false)])),
            vec![(session(1), vec![change("dave", false)])]
        );
        assert!(p.watchers.get("bob").is_some_and(|w| w.len() == 1));
    }

    #[test]
    fn a_session_watches_a_bounded_number_of_users() {
        let mut p = Presence::new();
        p.sign_in("alice", session(1));
        for i in 0..MAX_WATCHED {
            assert!(p.watch(session(1), &format!("u{i}")));
        }
        assert!(!p.watch(session(1), "one-too-many"));
        assert!(p.watch(session(1), "u0"), "watching again is not more");
        p.sign_out(session(1));
        assert!(p.watchers.is_empty() && p.watching.is_empty());
    }

    #[test]
    fn users_from_shows_a_bounded_sorted_page_and_the_total() {
        let mut p = Presence::new();
        for (i, name) in ["bob", "alice", "alicia", "al", "carole"]
            .into_iter()
            .enumerate()
        {
            p.sign_in(name, session(i as u32));
        }
        assert_eq!(
            p.users_from("ali", 10),
            (vec!["alice".into(), "alicia".into()], 2)
        );
        assert_eq!(p.users_from("", 2), (vec!["al".into(), "alice".into()], 5));
        assert_eq!(p.users_from("zed", 10), (vec![], 0));
    }

    fn there(node: &str, port: u16) -> Elsewhere {
        Elsewhere {
            node: node.into(),
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            local: Vec::new(),
        }
    }

    #[test]
    fn users_on_other_nodes_are_listed_claimed_and_gone_with_their_node() {
        let mut p = Presence::new();
        p.sign_in("bob", session(1));
        p.sign_in("dave", session(2));
        assert_eq!(p.sign_in_elsewhere("alice", there("n2", 1000)), None);
        p.sign_in_elsewhere("carole", there("n3", 1001));
        p.sign_in_elsewhere("erin", there("n2", 1002));
        // One sorted list across nodes, and a count that includes them.
        assert_eq!(
            p.users_from("", 10),
            (
                ["alice", "bob", "carole", "dave", "erin"]
                    .map(Name::from)
                    .to_vec(),
                5
            )
        );
        assert_eq!(p.users_from("", 2).1, 5);
        assert_eq!(p.users_from("c", 10), (vec!["carole".into()], 1));
        assert_eq!(p.claim("alice", session(9)), Claim::Elsewhere("n2".into()));
        assert_eq!(p.len(), 2, "only those signed in here");

        // alice signs in here: no longer elsewhere.
        p.sign_in("alice", session(3));
        assert_eq!(p.claim("alice", session(3)), Claim::Already);
        assert!(p.elsewhere("alice").is_none());
        // bob moves to n3: his session here is signed out.
        assert_eq!(
            p.sign_in_elsewhere("bob", there("n3", 1003)),
            Some(session(1))
        );
        assert_eq!(p.user_at(session(1)), None);
        // A sign-out from a node bob is not on changes nothing.
        assert!(!p.sign_out_elsewhere("bob", "n2"));
        let mut gone = p.node_gone("n3");
        gone.sort();
        assert_eq!(gone, ["bob", "carole"]);
        assert_eq!(
            p.users_from("", 10).0,
            ["alice", "dave", "erin"].map(String::from).to_vec()
        );
    }
}
