//! Delivery of a group's log to its members, in order and once.
//!
//! The log and each member's cursor (the last message the member's client
//! acknowledged) are in the store. In memory, per group, are the members
//! receiving it live ("attached"): for each, the session and what was
//! pushed on it and not yet acknowledged ([`Track`]). A group's lock
//! ([`Locked`]) is held while a message is appended and pushed, and while a
//! member is attached (its backlog pushed), so every member's session
//! carries the group's messages in the store's order, each once; the
//! transport keeps that order on the wire.
//!
//! What a commit gives the members goes to the network thread through the
//! group's [`Outbox`]: the network thread packs what it finds there into
//! pushes when it comes to it. When it is not busy that is at once; when
//! it is, the messages of several commits reach each member together, one
//! datagram for several messages, as a TCP stream packs the lines written
//! while the previous ones were going.
//!
//! Acknowledged positions reach the store in batches (one transaction for
//! whatever arrived meanwhile): a fsync per delivered message would cap
//! fan-out at the disk's speed. The newest positions are also kept in
//! memory, so a member who signs in again is never sent what it
//! acknowledged. Only a crash between an acknowledgement and its batch
//! makes a message come again, and clients drop what they have shown.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::{mpsc, OwnedMutexGuard};
use udpchat_commands::group_messages::parcels;
use udpchat_core::context::PeerId;
use udpchat_core::error::CommandError;
use udpchat_core::group::GroupMessage;
use udpchat_core::packet::Encoded;
use udpchat_net::Then;

use super::Inner;
use crate::store::blocking;

/// How long the cursor writer gathers acknowledgements before it stores
/// them: what a crash can make come again (clients drop it).
const CURSOR_LINGER: std::time::Duration = std::time::Duration::from_millis(50);

/// Acknowledged positions, by group and member.
#[derive(Default)]
pub(super) struct Cursors {
    /// The newest known, stored or not.
    known: Positions,
    /// Not stored yet.
    dirty: Positions,
}

/// Positions by group, then by member, found by borrowed names: an
/// acknowledgement allocates nothing unless it is the member's first.
#[derive(Default)]
struct Positions(HashMap<String, HashMap<String, u64>>);

impl Positions {
    fn get(&self, group: &str, user: &str) -> Option<u64> {
        self.0.get(group)?.get(user).copied()
    }

    /// Moves `user`'s position in `group` forward to `seq` (never back);
    /// whether it moved.
    fn raise(&mut self, group: &str, user: &str, seq: u64) -> bool {
        let users = match self.0.get_mut(group) {
            Some(users) => users,
            None => self.0.entry(group.to_string()).or_default(),
        };
        match users.get_mut(user) {
            Some(known) if seq <= *known => false,
            Some(known) => {
                *known = seq;
                true
            }
            None => {
                users.insert(user.to_string(), seq);
                seq > 0
            }
        }
    }

    fn remove(&mut self, group: &str, user: &str) {
        if let Some(users) = self.0.get_mut(group) {
            users.remove(user);
            if users.is_empty() {
                self.0.remove(group);
            }
        }
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Every position, as `(group, user, seq)`; none are left.
    fn take(&mut self) -> Vec<(String, String, u64)> {
        std::mem::take(&mut self.0)
            .into_iter()
            .flat_map(|(group, users)| {
                users
                    .into_iter()
                    .map(move |(user, seq)| (group.clone(), user, seq))
            })
            .collect()
    }
}

#[derive(Default)]
pub(super) struct Live {
    pub(super) attached: HashMap<String, Attachment>,
    outbox: Arc<Outbox>,
}

pub(super) struct Attachment {
    track: Arc<Tracked>,
}

impl Attachment {
    fn peer(&self) -> PeerId {
        self.track.peer
    }
}

/// A member's [`Track`] in one group, with whose it is and the session it
/// is attached on: what a push and its acknowledgement need, shared by
/// all of them instead of copied.
struct Tracked {
    group: String,
    user: String,
    peer: PeerId,
    track: Mutex<Track>,
}

impl Tracked {
    fn lock(&self) -> parking_lot::MutexGuard<'_, Track> {
        self.track.lock()
    }
}

/// What one member's session has been given of one group.
#[derive(Debug, Default)]
struct Track {
    /// The newest message handed to the session (or the member's own).
    queued: u64,
    /// Pushed and not acknowledged yet.
    outstanding: BTreeSet<u64>,
    /// A push failed: the session is gone. Nothing more is pushed on it,
    /// and its position stays before the failed message.
    broken: bool,
}

impl Track {
    /// Everything up to here was acknowledged.
    fn cursor(&self) -> u64 {
        self.outstanding
            .first()
            .map_or(self.queued, |first| first - 1)
    }
}

/// What a group's commits and attachments gave members and the network
/// thread has not taken yet, in the order given. Not empty means the
/// network thread is asked to take it (see [`Inner::post`]).
#[derive(Default)]
struct Outbox {
    given: Mutex<Vec<Given>>,
}

/// Messages (in order) that the same members are given.
struct Given {
    messages: Vec<Arc<GroupMessage>>,
    to: Vec<Arc<Tracked>>,
}

/// A group's lock; releases the group's entry when nobody needs it.
pub(super) struct Locked {
    inner: Arc<Inner>,
    group: String,
    pub(super) live: OwnedMutexGuard<Live>,
}

impl Drop for Locked {
    fn drop(&mut self) {
        if !self.live.attached.is_empty() {
            return;
        }
        let mut live = self.inner.live.lock();
        // Two holders: the map and this guard; nobody else waits for it.
        if live
            .get(&self.group)
            .is_some_and(|entry| Arc::strong_count(entry) == 2)
        {
            live.remove(&self.group);
        }
    }
}

/// Stores acknowledged positions, a batch at a time, until the server goes.
pub(super) async fn write_cursors(
    inner: std::sync::Weak<Inner>,
    mut wakes: mpsc::UnboundedReceiver<()>,
) {
    while wakes.recv().await.is_some() {
        // What else is acknowledged meanwhile goes in the same transaction:
        // under load a batch a tick instead of one per acknowledgement.
        tokio::time::sleep(CURSOR_LINGER).await;
        while wakes.try_recv().is_ok() {}
        let Some(inner) = inner.upgrade() else { return };
        inner.write_cursors().await;
    }
}

impl Inner {
    /// Stores what was acknowledged since the last time, in one transaction.
    pub(super) async fn write_cursors(&self) {
        let batch = self.cursors.lock().dirty.take();
        if batch.is_empty() {
            return;
        }
        let store = self.store.clone();
        if let Err(e) = blocking(move || store.advance_cursors(&batch)).await {
            tracing::warn!("groups: cursors not stored: {}", e.message);
        }
    }

    pub(super) async fn lock(self: &Arc<Self>, group: &str) -> Locked {
        let entry = self
            .live
            .lock()
            .entry(group.to_string())
            .or_default()
            .clone();
        Locked {
            inner: self.clone(),
            group: group.to_string(),
            live: entry.lock_owned().await,
        }
    }

    /// Records that `user` has everything of `group` up to `seq`.
    fn acknowledged(&self, group: &str, user: &str, seq: u64) {
        let mut cursors = self.cursors.lock();
        if !cursors.known.raise(group, user, seq) {
            return;
        }
        // The writer takes every position there is when it runs: it needs
        // waking only for the first since then.
        let idle = cursors.dirty.is_empty();
        cursors.dirty.raise(group, user, seq);
        if idle {
            let _ = self.wake_writer.send(());
        }
    }

    pub(super) fn forget(&self, group: &str, user: &str) {
        let mut cursors = self.cursors.lock();
        cursors.known.remove(group, user);
        cursors.dirty.remove(group, user);
    }

    /// Hands the network thread what `given` holds, through the group's
    /// outbox: it takes what is there when it comes to it.
    fn post(self: &Arc<Self>, outbox: &Arc<Outbox>, given: Vec<Given>) {
        // A lot given to nobody: empty, or its members' sessions broke.
        let given = given.into_iter().filter(|g| !g.to.is_empty());
        let ask = {
            let mut waiting = outbox.given.lock();
            // Not empty: the network thread was asked and has not come yet.
            let asked = !waiting.is_empty();
            waiting.extend(given);
            !asked && !waiting.is_empty()
        };
        if ask {
            let (inner, outbox) = (self.clone(), outbox.clone());
            self.link
                .push_each_made(Box::new(move || inner.pushes(&outbox)));
        }
    }

    /// On the network thread: everything in the outbox, packed. Each
    /// member gets what it was given in order, in as few parcels as it
    /// fits; members given the same share the same parcels.
    fn pushes(self: &Arc<Self>, outbox: &Outbox) -> Vec<(Encoded, Vec<(PeerId, Then)>)> {
        let given = std::mem::take(&mut *outbox.given.lock());
        // Who was given what: the indexes of their lots, in order.
        let mut alike: HashMap<Vec<usize>, Vec<&Arc<Tracked>>> = HashMap::new();
        if let [one] = given.as_slice() {
            alike.insert(vec![0], one.to.iter().collect());
        } else {
            let mut shares: HashMap<*const Tracked, (Vec<usize>, &Arc<Tracked>)> = HashMap::new();
            for (i, lot) in given.iter().enumerate() {
                for member in &lot.to {
                    shares
                        .entry(Arc::as_ptr(member))
                        .or_insert_with(|| (Vec::new(), member))
                        .0
                        .push(i);
                }
            }
            for (share, member) in shares.into_values() {
                alike.entry(share).or_default().push(member);
            }
        }
        let mut pushes = Vec::new();
        for (share, members) in alike {
            let messages = share
                .iter()
                .flat_map(|&i| given[i].messages.iter().map(|m| &**m));
            for parcel in parcels(messages) {
                let to_each = members
                    .iter()
                    .filter(|member| !member.lock().broken)
                    .map(|member| (member.peer, self.when_finished(member, &parcel.seqs)))
                    .collect();
                pushes.push((parcel.push, to_each));
            }
        }
        pushes
    }

    /// What the network thread is to do when a push of `seqs` to the
    /// member was acknowledged, or failed: no task per member and message.
    fn when_finished(self: &Arc<Self>, tracked: &Arc<Tracked>, seqs: &Arc<[u64]>) -> Then {
        let (inner, tracked, seqs) = (self.clone(), tracked.clone(), seqs.clone());
        Box::new(move |result: Result<(), CommandError>| {
            let cursor = {
                let mut track = tracked.lock();
                match result {
                    Ok(()) => {
                        for seq in seqs.iter() {
                            track.outstanding.remove(seq);
                        }
                        Some(track.cursor())
                    }
                    Err(e) => {
                        let (group, user) = (&tracked.group, &tracked.user);
                        tracing::debug!(group, user, ?seqs, "group messages not delivered: {e}");
                        track.broken = true;
                        None
                    }
                }
            };
            if let Some(cursor) = cursor {
                inner.acknowledged(&tracked.group, &tracked.user, cursor);
            }
        })
    }

    /// Gives the attached member `lot`, what of `messages` (in order) it
    /// was not given yet and others sent: `lot` is among `given`, shared
    /// by the members given the same. Moves its cursor past its own.
    fn deliver(
        &self,
        given: &mut [Given],
        attachment: &Attachment,
        messages: &[GroupMessage],
        lot: usize,
    ) {
        let tracked = &attachment.track;
        {
            let mut track = tracked.lock();
            let lot = &mut given[lot];
            if !track.broken && !lot.messages.is_empty() {
                track.outstanding.extend(lot.messages.iter().map(|m| m.seq));
                track.queued = track.queued.max(lot.messages.last().map_or(0, |m| m.seq));
                lot.to.push(tracked.clone());
            }
        }
        let user = tracked.user.as_str();
        for message in messages.iter().filter(|m| m.from == user) {
            self.own(user, attachment, message);
        }
    }

    /// The member's own message: nothing to deliver, but its cursor passes it.
    fn own(&self, user: &str, attachment: &Attachment, message: &GroupMessage) {
        let cursor = {
            let mut track = attachment.track.lock();
            track.queued = track.queued.max(message.seq);
            track.cursor()
        };
        self.acknowledged(&message.group, user, cursor);
    }

    /// Makes sure `user` receives `group` live on `peer`: if not attached
    /// there already, pushes what the member has not acknowledged, in
    /// order, and attaches. `cursor` is the stored one, if known.
    pub(super) async fn attach(
        self: &Arc<Self>,
        live: &mut Live,
        group: &str,
        user: &str,
        peer: PeerId,
        cursor: Option<u64>,
    ) -> Result<(), CommandError> {
        let attached = live
            .attached
            .get(user)
            .is_some_and(|a| a.peer() == peer && !a.track.lock().broken);
        if attached {
            return Ok(());
        }
        let stored = match cursor {
            Some(cursor) => cursor,
            None => {
                let (store, g, u) = (self.store.clone(), group.to_string(), user.to_string());
                match blocking(move || store.cursor(&g, &u)).await? {
                    Some(cursor) => cursor,
                    None => return Ok(()), // not a member (any more)
                }
            }
        };
        let known = self.cursors.lock().known.get(group, user).unwrap_or(0);
        let cursor = stored.max(known);
        let (store, name) = (self.store.clone(), group.to_string());
        let backlog = blocking(move || store.messages_after(&name, cursor)).await?;
        let attachment = Attachment {
            track: Arc::new(Tracked {
                group: group.to_string(),
                user: user.to_string(),
                peer,
                track: Mutex::new(Track {
                    queued: cursor,
                    ..Track::default()
                }),
            }),
        };
        let mut missed = [Given {
            messages: backlog
                .iter()
                .filter(|m| m.from != user)
                .map(|m| Arc::new(m.clone()))
                .collect(),
            to: Vec::new(),
        }];
        self.deliver(&mut missed, &attachment, &backlog, 0);
        self.post(&live.outbox, missed.into());
        live.attached.insert(user.to_string(), attachment);
        Ok(())
    }

    /// Hands the messages of one commit (one group's, in order) to every
    /// member but their senders: pushed to those attached, a parcel for
    /// several at a time; attaching (with their backlog, which holds these)
    /// those online and not yet attached; those offline get them at
    /// sign-in. A member who sent none of them gets the same parcels as
    /// every other such member: they are packed and encoded once. A member
    /// already given some of them (see [`Inner::caught_up`]) gets the rest.
    pub(super) async fn fan_out(
        self: &Arc<Self>,
        live: &mut Live,
        group: &str,
        messages: &[GroupMessage],
        members: &[(String, u64)],
    ) {
        if messages.is_empty() {
            return;
        }
        let names: HashSet<&str> = members.iter().map(|(m, _)| m.as_str()).collect();
        live.attached
            .retain(|user, _| names.contains(user.as_str()));
        let senders: HashSet<&str> = messages.iter().map(|m| m.from.as_str()).collect();
        let shared: Vec<Arc<GroupMessage>> = messages.iter().cloned().map(Arc::new).collect();
        // Members who sent none of them and were given the same so far
        // get the same lot.
        let mut lots: HashMap<(Option<&str>, u64), usize> = HashMap::new();
        let mut given: Vec<Given> = Vec::new();
        for (member, cursor) in members {
            let Some(peer) = self.online(member) else {
                live.attached.remove(member);
                continue;
            };
            match live.attached.get(member) {
                Some(attachment) if attachment.peer() == peer => {
                    let sender = senders.get(member.as_str()).copied();
                    let queued = attachment.track.lock().queued;
                    let lot = *lots.entry((sender, queued)).or_insert_with(|| {
                        given.push(Given {
                            messages: shared
                                .iter()
                                .filter(|m| m.seq > queued && Some(m.from.as_str()) != sender)
                                .cloned()
                                .collect(),
                            to: Vec::new(),
                        });
                        given.len() - 1
                    });
                    self.deliver(&mut given, attachment, messages, lot);
                }
                _ => {
                    if let Err(e) = self.attach(live, group, member, peer, Some(*cursor)).await {
                        tracing::warn!(member, "groups: not attached: {}", e.message);
                    }
                }
            }
        }
        self.post(&live.outbox, given);
    }
}

impl Inner {
    /// Hands each member attached here what the store holds for the group
    /// beyond what the member was given: what other server nodes appended
    /// (they share the store), and what this node just did. Read from the
    /// store, so that a message another node committed just before this
    /// node's own reaches members here first, in the store's order.
    pub(super) async fn caught_up(
        self: &Arc<Self>,
        live: &mut Live,
        group: &str,
        just_appended: &[GroupMessage],
        members: &[(String, u64)],
    ) {
        let from = live.attached.values().map(|a| a.track.lock().queued).min();
        let messages = match from {
            Some(from) => {
                let (store, name) = (self.store.clone(), group.to_string());
                match blocking(move || store.messages_after(&name, from)).await {
                    Ok(messages) => messages,
                    Err(e) => {
                        tracing::warn!(group, "groups: cannot read what to deliver: {}", e.message);
                        just_appended.to_vec()
                    }
                }
            }
            None => just_appended.to_vec(),
        };
        // Those attached here, if the caller knows no better.
        let attached: Vec<(String, u64)>;
        let members = if members.is_empty() {
            attached = live
                .attached
                .iter()
                .map(|(user, a)| (user.clone(), a.track.lock().queued))
                .collect();
            &attached
        } else {
            members
        };
        self.fan_out(live, group, &messages, members).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_position_waits_for_the_oldest_unacknowledged_message() {
        let mut track = Track::default();
        for seq in [3, 5, 8] {
            track.outstanding.insert(seq);
            track.queued = seq;
        }
        assert_eq!(track.cursor(), 2);
        track.outstanding.remove(&5);
        assert_eq!(track.cursor(), 2, "8 and 5 wait for 3");
        track.outstanding.remove(&3);
        assert_eq!(track.cursor(), 7);
        track.outstanding.remove(&8);
        track.queued = 9; // the member's own message
        assert_eq!(track.cursor(), 9);
    }
}
