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
mod tests;
