//! A member's sender keys in its private groups (`crypto::sender_keys`):
//! its own chain per group and whom it handed it to, and the chains other
//! members handed it. No IO: the client keeps the received chains in its
//! data dir (what changed is in [`GroupKeys::take_changed`]); its own
//! chains live in memory only, so a client that restarts makes new ones
//! and no message key is ever used twice.
//!
//! The rules:
//! - Before its first message in a group, a member makes a chain and hands
//!   it to every other member.
//! - When the server says the members changed (`members-changed`), the
//!   sender compares them with whom it handed its chain to: if any of those
//!   left, it makes a new chain for those who remain (a rotation: whoever
//!   left cannot read what comes next); otherwise it hands the chain it has,
//!   from the next message on, to those who joined (they cannot read what
//!   came before).
//! - A receiver keeps the last [`KEPT_CHAINS`] chains per sender, so a
//!   message that comes late, after its sender rotated, still opens.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use rand::{CryptoRng, RngCore};

use crate::crypto::sender_keys::{
    KeyEnvelope, KeyShare, OwnChain, ReceivedChain, SealedLine, SenderKeyError, Want,
};
use crate::group::{members_digest, GroupMessage, MEMBERS_DIGEST_LEN};

/// Chains kept per sender in a group (the newest).
pub const KEPT_CHAINS: usize = 4;
/// Lines held per group while their key has not come (the oldest go
/// past this; the server keeps no more than this many either).
pub const MAX_HELD: usize = crate::group::HISTORY_LIMIT;

/// A group and a member of it.
pub type Member = (String, String);

/// This member's own chain in a group, and whom it went to.
#[derive(Debug)]
struct Own {
    chain: OwnChain,
    /// Each member it was handed to (this member itself is not here).
    given: BTreeMap<String, u32>,
    /// Each member it was meant for, with the iteration from which they
    /// may read it: whoever was a member when a message was sent may
    /// read it, though their copy of the key did not reach them.
    entitled: BTreeMap<String, u32>,
    /// The identity key each member's copy was sealed to.
    sealed_to: BTreeMap<String, Vec<u8>>,
    /// The group's members (this one included) when it was last handed
    /// out: what the server checks a message against.
    members: Vec<String>,
}

/// What a message from this member must carry first: the chain to hand
/// to `to` (each with its share), and the members it is then sealed for.
#[derive(Debug)]
pub struct Handout {
    pub shares: Vec<(String, KeyShare)>,
    pub digest: [u8; MEMBERS_DIGEST_LEN],
    /// A new chain replaced the old one (someone left, or there was none).
    pub rotated: bool,
}

/// Why a private group's message did not open.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    #[error("no key {key_id} from {from}")]
    NoKey { from: String, key_id: u32 },
    #[error(transparent)]
    Refused(#[from] SenderKeyError),
}

/// A member's sender keys in all its private groups.
#[derive(Debug, Default)]
pub struct GroupKeys {
    own: HashMap<String, Own>,
    /// Per group and sender, oldest first.
    received: HashMap<Member, Vec<ReceivedChain>>,
    /// Received chains changed since [`GroupKeys::take_changed`].
    changed: HashSet<Member>,
    /// Whether each group this client heard of is private.
    private: HashMap<String, bool>,
    /// Groups forgotten since [`GroupKeys::take_forgotten`].
    forgotten: Vec<String>,
    /// Per group: lines whose key has not come, oldest first (in memory).
    held: HashMap<String, VecDeque<(GroupMessage, SealedLine)>>,
}

impl GroupKeys {
    /// Keys others handed this member, as kept in the data dir.
    pub fn with_received(received: impl IntoIterator<Item = (Member, Vec<ReceivedChain>)>) -> Self {
        GroupKeys {
            received: received.into_iter().collect(),
            ..GroupKeys::default()
        }
    }

    /// Whether `group` is private, when known (the server says so in
    /// every group it lists). A group this member holds keys for is.
    pub fn is_private(&self, group: &str) -> Option<bool> {
        if self.own.contains_key(group) || self.received.keys().any(|(g, _)| g == group) {
            return Some(true);
        }
        self.private.get(group).copied()
    }

    /// The server said whether `group` is private. Once a group was
    /// private for this member it stays so: a server that says otherwise
    /// later is not believed (its plain lines are refused).
    pub fn set_private(&mut self, group: &str, private: bool) {
        let known = self.private.entry(group.to_string()).or_insert(private);
        *known |= private;
    }

    /// Whether this member's next message to `group` needs the members
    /// first: it has no chain there yet.
    pub fn needs_members(&self, group: &str) -> bool {
        !self.own.contains_key(group)
    }

    /// What to hand out before the next message to `group`, from `me`:
    /// with `members` (the group's as the server gave them, `me` among
    /// them) a new chain if needed and shares for whoever lacks it; with
    /// none, nothing new, sealed for the members as last handed out.
    pub fn handout<R: CryptoRng + RngCore>(
        &mut self,
        group: &str,
        me: &str,
        members: Option<&[String]>,
        rng: &mut R,
    ) -> Handout {
        let Some(members) = members else {
            let own = self.own.get(group);
            return Handout {
                shares: Vec::new(),
                digest: members_digest(own.map(|o| o.members.as_slice()).unwrap_or(&[])),
                rotated: false,
            };
        };
        let stale = self
            .own
            .get(group)
            .is_none_or(|own| own.given.keys().any(|m| !members.contains(m)));
        if stale {
            self.own.insert(
                group.to_string(),
                Own {
                    chain: OwnChain::generate(rng),
                    given: BTreeMap::new(),
                    entitled: BTreeMap::new(),
                    sealed_to: BTreeMap::new(),
                    members: Vec::new(),
                },
            );
        }
        let own = self.own.get_mut(group).expect("made above");
        own.members = members.to_vec();
        let shares: Vec<(String, KeyShare)> = members
            .iter()
            .filter(|m| *m != me && !own.given.contains_key(*m))
            .map(|m| (m.clone(), own.chain.share()))
            .collect();
        for (member, share) in &shares {
            own.entitled
                .entry(member.clone())
                .or_insert(share.iteration);
        }
        Handout {
            shares,
            digest: members_digest(members),
            rotated: stale,
        }
    }

    /// The server took a message that handed the chain to `to` (each
    /// member with the identity key its copy was sealed to), from
    /// `iteration` on.
    pub fn handed(&mut self, group: &str, to: &[(String, Vec<u8>)], iteration: u32) {
        if let Some(own) = self.own.get_mut(group) {
            for (member, identity) in to {
                own.given.entry(member.clone()).or_insert(iteration);
                own.sealed_to.insert(member.clone(), identity.clone());
            }
        }
    }

    /// The iteration this member's next message in `group` will have.
    pub fn next_iteration(&self, group: &str) -> Option<u32> {
        self.own.get(group).map(|own| own.chain.iteration())
    }

    /// `asker`, whose identity key is now `identity`, could not read this
    /// member's messages: the share to hand them again, from where it was
    /// first meant for them. Only from the next message when their copy
    /// was sealed to another identity key (a new device, or someone the
    /// server put in their place: what came before stays unread), or when
    /// it was never meant for them. `None` for someone who is not a member.
    pub fn share_again(&self, group: &str, asker: &str, identity: &[u8]) -> Option<KeyShare> {
        let own = self.own.get(group)?;
        if !own.members.iter().any(|m| m == asker) {
            return None;
        }
        let same_key = own.sealed_to.get(asker).is_none_or(|k| k == identity);
        Some(match own.entitled.get(asker) {
            Some(from) if same_key => own.chain.share_from(*from),
            _ => own.chain.share(),
        })
    }

    /// Seals the next message of `me` in `group` (after
    /// [`GroupKeys::handout`]); `None` when there is no chain there.
    pub fn seal(
        &mut self,
        group: &str,
        me: &str,
        text: &str,
        keys: Vec<KeyEnvelope>,
        wants: Vec<Want>,
    ) -> Option<SealedLine> {
        let own = self.own.get_mut(group)?;
        Some(own.chain.seal(group, me, text, keys, wants))
    }

    /// Takes a chain `from` handed this member in `group`. Returns whether
    /// it was new (not one already held, handed again).
    pub fn accept(
        &mut self,
        group: &str,
        from: &str,
        share: &KeyShare,
    ) -> Result<bool, SenderKeyError> {
        let key = (group.to_string(), from.to_string());
        let chains = self.received.entry(key.clone()).or_default();
        if chains.iter().any(|c| c.covers(share)) {
            return Ok(false);
        }
        let chain = ReceivedChain::from_share(share)?;
        // A share of a chain held from a later iteration replaces it.
        chains.retain(|c| c.key_id() != share.key_id);
        chains.push(chain);
        if chains.len() > KEPT_CHAINS {
            chains.remove(0);
        }
        self.changed.insert(key);
        Ok(true)
    }

    /// Opens `from`'s `line` in `group`.
    pub fn open(
        &mut self,
        group: &str,
        from: &str,
        line: &SealedLine,
    ) -> Result<String, OpenError> {
        let key = (group.to_string(), from.to_string());
        let chain = self
            .received
            .get_mut(&key)
            .and_then(|chains| chains.iter_mut().find(|c| c.key_id() == line.key_id))
            .ok_or_else(|| OpenError::NoKey {
                from: from.to_string(),
                key_id: line.key_id,
            })?;
        let text = chain.open(group, from, line)?;
        self.changed.insert(key);
        Ok(text)
    }

    /// Holds a line whose key has not come, until it does. Gives back the
    /// oldest line held in its group when there were too many.
    pub fn hold(&mut self, message: GroupMessage, line: SealedLine) -> Option<GroupMessage> {
        let held = self.held.entry(message.group.clone()).or_default();
        held.push_back((message, line));
        (held.len() > MAX_HELD)
            .then(|| held.pop_front().map(|(m, _)| m))
            .flatten()
    }

    /// Lines held in `group`.
    pub fn held(&self, group: &str) -> usize {
        self.held.get(group).map_or(0, VecDeque::len)
    }

    /// Gives up every line held: how many per group and sender (sorted).
    pub fn take_held(&mut self) -> Vec<(Member, usize)> {
        let mut counts: BTreeMap<Member, usize> = BTreeMap::new();
        for (group, held) in self.held.drain() {
            for (message, _) in held {
                *counts.entry((group.clone(), message.from)).or_default() += 1;
            }
        }
        counts.into_iter().collect()
    }

    /// Tries again the lines `from` sent in `group` that were held for
    /// their key: those that open or are refused now come back, in order,
    /// and those still without a key stay.
    pub fn release(
        &mut self,
        group: &str,
        from: &str,
    ) -> Vec<(GroupMessage, Result<String, OpenError>)> {
        let Some(held) = self.held.remove(group) else {
            return Vec::new();
        };
        let mut released = Vec::new();
        let mut still = VecDeque::new();
        for (message, line) in held {
            if message.from != from {
                still.push_back((message, line));
                continue;
            }
            match self.open(group, from, &line) {
                Err(OpenError::NoKey { .. }) => still.push_back((message, line)),
                opened => released.push((message, opened)),
            }
        }
        if !still.is_empty() {
            self.held.insert(group.to_string(), still);
        }
        released
    }

    /// This member left `group` (or was removed): its keys there go.
    pub fn forget(&mut self, group: &str) {
        self.forgotten.push(group.to_string());
        self.held.remove(group);
        self.own.remove(group);
        self.received.retain(|(g, _), _| g != group);
        self.changed.retain(|(g, _)| g != group);
        self.private.remove(group);
    }

    /// The server listed every group this member is in: whether each is
    /// private; the keys of any other group this member held go.
    pub fn listed<'a>(&mut self, groups: impl IntoIterator<Item = (&'a str, bool)>) {
        let mut listed = HashSet::new();
        for (group, private) in groups {
            self.set_private(group, private);
            listed.insert(group.to_string());
        }
        let held: HashSet<String> = (self.own.keys().cloned())
            .chain(self.received.keys().map(|(g, _)| g.clone()))
            .chain(self.private.keys().cloned())
            .collect();
        for group in held.difference(&listed) {
            self.forget(group);
        }
    }

    /// The groups forgotten since the last call (their kept keys go).
    pub fn take_forgotten(&mut self) -> Vec<String> {
        std::mem::take(&mut self.forgotten)
    }

    /// The received chains changed since the last call (to be saved), and
    /// those of groups forgotten are not among them.
    pub fn take_changed(&mut self) -> Vec<(Member, Vec<ReceivedChain>)> {
        self.changed
            .drain()
            .filter_map(|key| {
                let chains = self.received.get(&key)?.clone();
                Some((key, chains))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::SeedableRng;

    /// Each member's keys, none yet.
    fn keyrings(members: &[&str]) -> HashMap<String, GroupKeys> {
        members
            .iter()
            .map(|n| (n.to_string(), GroupKeys::default()))
            .collect()
    }

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    /// Sends a line from `me` to the members, handing out what is due, and
    /// delivers it to each receiver as the server would.
    fn send(
        keys: &mut HashMap<String, GroupKeys>,
        me: &str,
        members: Option<&[String]>,
        text: &str,
        rng: &mut StdRng,
    ) -> (SealedLine, Handout) {
        let sender = keys.get_mut(me).unwrap();
        let handout = sender.handout("g", me, members, rng);
        let iteration = sender.next_iteration("g").unwrap();
        let line = sender.seal("g", me, text, vec![], vec![]).unwrap();
        let to: Vec<(String, Vec<u8>)> = handout
            .shares
            .iter()
            .map(|(m, _)| (m.clone(), m.as_bytes().to_vec()))
            .collect();
        sender.handed("g", &to, iteration);
        for (member, share) in &handout.shares {
            keys.get_mut(member)
                .unwrap()
                .accept("g", me, share)
                .unwrap();
        }
        (line, handout)
    }

    #[test]
    fn a_member_who_left_cannot_read_what_comes_after_the_rotation() {
        let mut rng = StdRng::seed_from_u64(1);
        let mut keys = keyrings(&["alice", "bob", "carol"]);
        let all = names(&["alice", "bob", "carol"]);
        let (line, handout) = send(&mut keys, "alice", Some(&all), "hello", &mut rng);
        assert!(handout.rotated);
        assert_eq!(handout.shares.len(), 2);
        for reader in ["bob", "carol"] {
            assert_eq!(
                keys.get_mut(reader)
                    .unwrap()
                    .open("g", "alice", &line)
                    .unwrap(),
                "hello"
            );
        }
        // Nothing changed: nothing to hand out, and the same digest.
        let (line, handout) = send(&mut keys, "alice", None, "again", &mut rng);
        assert!(handout.shares.is_empty() && !handout.rotated);
        assert_eq!(handout.digest, members_digest(&all));
        assert_eq!(
            keys.get_mut("carol")
                .unwrap()
                .open("g", "alice", &line)
                .unwrap(),
            "again"
        );

        // carol leaves: alice's next message is under a new chain, handed to bob only.
        let left = names(&["alice", "bob"]);
        let (line, handout) = send(&mut keys, "alice", Some(&left), "after carol", &mut rng);
        assert!(handout.rotated);
        assert_eq!(handout.shares.len(), 1);
        assert_eq!(
            keys.get_mut("bob")
                .unwrap()
                .open("g", "alice", &line)
                .unwrap(),
            "after carol"
        );
        assert!(matches!(
            keys.get_mut("carol").unwrap().open("g", "alice", &line),
            Err(OpenError::NoKey { .. })
        ));
    }

    #[test]
    fn a_member_who_joins_gets_the_chain_from_the_next_message_only() {
        let mut rng = StdRng::seed_from_u64(2);
        let mut keys = keyrings(&["alice", "bob", "dave"]);
        let (before, _) = send(
            &mut keys,
            "alice",
            Some(&names(&["alice", "bob"])),
            "before",
            &mut rng,
        );
        let with_dave = names(&["alice", "bob", "dave"]);
        let (after, handout) = send(&mut keys, "alice", Some(&with_dave), "after", &mut rng);
        assert!(!handout.rotated, "no one left: no new chain");
        assert_eq!(handout.shares.len(), 1, "only dave is handed it");
        let dave = keys.get_mut("dave").unwrap();
        assert!(dave.open("g", "alice", &before).is_err());
        assert_eq!(dave.open("g", "alice", &after).unwrap(), "after");
        let bob = keys.get_mut("bob").unwrap();
        assert_eq!(bob.open("g", "alice", &before).unwrap(), "before");
        assert_eq!(bob.open("g", "alice", &after).unwrap(), "after");
    }

    #[test]
    fn a_share_handed_again_is_not_new_and_late_messages_of_an_old_chain_open() {
        let mut rng = StdRng::seed_from_u64(3);
        let mut keys = keyrings(&["alice", "bob", "carol"]);
        let all = names(&["alice", "bob", "carol"]);
        let (old, _) = send(&mut keys, "alice", Some(&all), "old chain", &mut rng);
        let share = keys["alice"].share_again("g", "bob", b"bob").unwrap();
        assert!(!keys
            .get_mut("bob")
            .unwrap()
            .accept("g", "alice", &share)
            .unwrap());
        let (new, _) = send(
            &mut keys,
            "alice",
            Some(&names(&["alice", "bob"])),
            "new chain",
            &mut rng,
        );
        let bob = keys.get_mut("bob").unwrap();
        assert_eq!(bob.open("g", "alice", &new).unwrap(), "new chain");
        assert_eq!(
            bob.open("g", "alice", &old).unwrap(),
            "old chain",
            "late, and still opens"
        );
        assert_eq!(
            keys["alice"].share_again("g", "carol", b"carol"),
            None,
            "not a member now"
        );
        let changed = keys.get_mut("bob").unwrap().take_changed();
        assert_eq!(changed.len(), 1);
        assert_eq!(changed[0].1.len(), 2, "both chains kept");
    }

    #[test]
    fn lines_held_for_a_key_open_once_it_comes() {
        let mut rng = StdRng::seed_from_u64(5);
        let mut keys = keyrings(&["alice", "bob", "carol"]);
        let all = names(&["alice", "bob", "carol"]);
        let alice = keys.get_mut("alice").unwrap();
        alice.handout("g", "alice", Some(&all), &mut rng);
        // Meant for bob and carol, but bob's copy did not reach him (or
        // did not open on this device).
        alice.handed("g", &[("carol".into(), b"carol".to_vec())], 0);
        let lines: Vec<SealedLine> = (0..3)
            .map(|i| {
                alice
                    .seal("g", "alice", &format!("m{i}"), vec![], vec![])
                    .unwrap()
            })
            .collect();
        let message = |seq: u64, from: &str| GroupMessage {
            group: "g".into(),
            seq,
            from: from.into(),
            text: String::new(),
            sealed: None,
            time_ms: 0,
        };
        let bob = keys.get_mut("bob").unwrap();
        for (i, line) in lines.iter().enumerate() {
            assert!(matches!(
                bob.open("g", "alice", line),
                Err(OpenError::NoKey { .. })
            ));
            assert_eq!(bob.hold(message(i as u64 + 1, "alice"), line.clone()), None);
        }
        // Someone else's key changes nothing for alice's lines.
        assert!(bob.release("g", "carol").is_empty());
        assert_eq!(bob.held("g"), 3);
        // carol on a new device (another identity key) is handed the chain
        // from the next message only; bob, whose copy never came, from
        // the start.
        let carols = keys["alice"].share_again("g", "carol", b"new").unwrap();
        assert_eq!(carols.iteration, 3);
        let share = keys["alice"].share_again("g", "bob", b"bob").unwrap();
        assert_eq!(share.iteration, 0);
        let bob = keys.get_mut("bob").unwrap();
        bob.accept("g", "alice", &share).unwrap();
        let released = bob.release("g", "alice");
        let texts: Vec<String> = released
            .into_iter()
            .map(|(m, text)| format!("{} {}", m.seq, text.unwrap()))
            .collect();
        assert_eq!(texts, ["1 m0", "2 m1", "3 m2"]);
        assert_eq!(bob.held("g"), 0);
        bob.hold(message(7, "carol"), lines[0].clone());
        bob.hold(message(8, "carol"), lines[1].clone());
        assert_eq!(
            bob.take_held(),
            [(("g".to_string(), "carol".to_string()), 2)]
        );
        assert_eq!(bob.held("g"), 0);
        // Past the bound the oldest goes, and is said to.
        for seq in 0..MAX_HELD as u64 {
            bob.hold(message(seq, "carol"), lines[0].clone());
        }
        let dropped = bob.hold(message(9_999, "carol"), lines[0].clone());
        assert_eq!(dropped.map(|m| m.seq), Some(0));
    }

    #[test]
    fn once_private_a_group_stays_private_and_forgetting_drops_its_keys() {
        let mut keys = GroupKeys::default();
        assert_eq!(keys.is_private("g"), None);
        keys.set_private("g", true);
        keys.set_private("g", false);
        assert_eq!(keys.is_private("g"), Some(true));
        keys.set_private("plain", false);
        assert_eq!(keys.is_private("plain"), Some(false));
        // A listing without a group forgets it.
        keys.listed([("g", true)]);
        assert_eq!(keys.is_private("plain"), None);
        let mut rng = StdRng::seed_from_u64(4);
        keys.handout("g", "alice", Some(&names(&["alice"])), &mut rng);
        keys.forget("g");
        assert!(keys.needs_members("g"));
        assert_eq!(keys.is_private("g"), None);
    }
}
