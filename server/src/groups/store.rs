//! The group tables (their schema is with the others in
//! `crate::store::sqlite`): groups, their members (each with a delivery cursor:
//! the last message the member's client acknowledged) and each group's
//! message log, ordered by a sequence number that grows across all groups
//! and is never reused (SQLite `AUTOINCREMENT`). Every write is one
//! transaction that commits before it returns.

use rusqlite::{params, OptionalExtension, Transaction};
pub use udpchat_core::group::Kind;
use udpchat_core::group::{members_digest, GroupInfo, GroupMessage, Post, MEMBERS_DIGEST_LEN};

use crate::store::{SqliteStore, StoreError};

/// A message to append: who sends it, what, and when.
#[derive(Debug, Clone)]
pub struct Draft {
    pub from: String,
    pub post: Post,
    pub time_ms: u64,
}

/// What [`GroupStore::append_all`] gives back: each message as stored (or
/// why not), and every member with its cursor.
pub type Appended = (Vec<Result<GroupMessage, StoreError>>, Vec<(String, u64)>);

/// The durable side of group chat.
pub trait GroupStore: Send + Sync {
    /// Makes a group with these members (the owner, if any, among them).
    /// `GroupExists`; `NoSuchUser` for a member without an account.
    fn create_group(
        &self,
        name: &str,
        owner: Option<&str>,
        kind: Kind,
        members: &[String],
    ) -> Result<GroupInfo, StoreError>;
    fn group(&self, name: &str) -> Result<Option<GroupInfo>, StoreError>;
    /// Every group, by name.
    fn groups(&self) -> Result<Vec<GroupInfo>, StoreError>;
    /// The groups `user` is a member of, by name.
    fn groups_of(&self, user: &str) -> Result<Vec<GroupInfo>, StoreError>;
    /// Adds members; each new one's cursor is the group's latest message,
    /// so they receive what comes after. Returns the group and the users
    /// that were new to it. `NoSuchGroup`, `NoSuchUser`.
    fn add_members(
        &self,
        name: &str,
        users: &[String],
    ) -> Result<(GroupInfo, Vec<String>), StoreError>;
    /// Removes members. An owner who goes hands the group to the first
    /// remaining member; the last one out deletes it (then the returned
    /// group has no members). Returns the group and who was removed.
    fn remove_members(
        &self,
        name: &str,
        users: &[String],
    ) -> Result<(GroupInfo, Vec<String>), StoreError>;
    /// Appends messages, in order, in one transaction (one commit for all
    /// of them: a group commit), and with `trim_to` drops the group's
    /// messages beyond the newest `trim_to` (the caller chooses when, with
    /// [`udpchat_core::trims::Trims`]). Returns each message as stored, or why it was not
    /// (`NotAMember`: its sender is not in the group; `NotSealed` or
    /// `NotPrivate`: it is not sealed as the group's messages are;
    /// `MembersChanged`: sealed for other members than the group's; the
    /// others are appended all the same), and every member with its cursor.
    /// `NoSuchGroup` refuses them all.
    fn append_all(
        &self,
        group: &str,
        drafts: &[Draft],
        trim_to: Option<usize>,
    ) -> Result<Appended, StoreError>;
    /// One message, as [`GroupStore::append_all`] appends it.
    #[cfg(test)]
    fn append(
        &self,
        group: &str,
        from: &str,
        text: &str,
        time_ms: u64,
        trim_to: Option<usize>,
    ) -> Result<(GroupMessage, Vec<(String, u64)>), StoreError> {
        let draft = Draft {
            from: from.to_string(),
            post: Post::Plain(text.to_string()),
            time_ms,
        };
        let (mut appended, members) = self.append_all(group, &[draft], trim_to)?;
        let message = appended.pop().expect("one draft, one outcome")?;
        Ok((message, members))
    }
    /// The group's messages after `after`, oldest first.
    fn messages_after(&self, group: &str, after: u64) -> Result<Vec<GroupMessage>, StoreError>;
    /// The group's newest `count` messages, oldest first.
    fn last_messages(&self, group: &str, count: usize) -> Result<Vec<GroupMessage>, StoreError>;
    /// A member's cursor; `None` if `user` is not a member.
    fn cursor(&self, group: &str, user: &str) -> Result<Option<u64>, StoreError>;
    /// Moves cursors forward (never back): `(group, user, seq)`.
    fn advance_cursors(&self, cursors: &[(String, String, u64)]) -> Result<(), StoreError>;
}

/// What a group takes now, as both stores ask of each draft of a commit:
/// messages from its members, sealed if it is private (for the members as
/// they are: their digest is worked out once per commit), in the clear if
/// it is not.
pub(super) struct Taking<'a> {
    group: &'a str,
    members: &'a [(String, u64)],
    /// The members' digest, for a private group.
    digest: Option<[u8; MEMBERS_DIGEST_LEN]>,
}

impl<'a> Taking<'a> {
    /// `members` with their cursors, as read under the group's lock.
    pub(super) fn new(group: &'a str, private: bool, members: &'a [(String, u64)]) -> Self {
        let digest = private.then(|| {
            let names: Vec<&str> = members.iter().map(|(m, _)| m.as_str()).collect();
            members_digest(&names)
        });
        Taking {
            group,
            members,
            digest,
        }
    }

    /// Why `draft` may not go in, if it may not.
    pub(super) fn refusal(&self, draft: &Draft) -> Option<StoreError> {
        let group = || self.group.to_string();
        if !self.members.iter().any(|(m, _)| *m == draft.from) {
            return Some(StoreError::NotAMember {
                group: group(),
                user: draft.from.clone(),
            });
        }
        match (&draft.post, self.digest) {
            (Post::Plain(_), Some(_)) => Some(StoreError::NotSealed(group())),
            (Post::Sealed { .. }, None) => Some(StoreError::NotPrivate(group())),
            (Post::Sealed { members, .. }, Some(digest)) => {
                (*members != digest).then(|| StoreError::MembersChanged(group()))
            }
            (Post::Plain(_), None) => None,
        }
    }
}

/// What a removal of members leaves of a group (both stores apply it).
pub(super) enum Afterwards {
    /// The last member left: the group goes.
    Deleted,
    /// Its owner left: the first remaining member owns it now (`info`).
    NewOwner,
    Same,
}

/// The rule: the last one out deletes the group; an owner who goes hands
/// it to the first remaining member, set in `info` (the group as it is
/// after the removal; `before`, as it was).
pub(super) fn after_removal(
    before: &GroupInfo,
    info: &mut GroupInfo,
    removed: &[String],
) -> Afterwards {
    if info.members.is_empty() {
        Afterwards::Deleted
    } else if before.owner.as_ref().is_some_and(|o| removed.contains(o)) {
        info.owner = info.members.first().cloned();
        Afterwards::NewOwner
    } else {
        Afterwards::Same
    }
}

const MESSAGE_COLUMNS: &str = "group_name, seq, sender, text, sent_at_ms, sealed";

fn message(row: &rusqlite::Row<'_>) -> rusqlite::Result<GroupMessage> {
    Ok(GroupMessage {
        group: row.get(0)?,
        seq: row.get::<_, i64>(1)? as u64,
        from: row.get(2)?,
        text: row.get(3)?,
        sealed: row.get(5)?,
        time_ms: row.get::<_, i64>(4)? as u64,
    })
}

/// The group's own row inside `tx`: its owner, whether it is open, and
/// whether it is private.
fn group_row(
    tx: &rusqlite::Connection,
    name: &str,
) -> Result<Option<(Option<String>, bool, bool)>, StoreError> {
    Ok(tx
        .prepare_cached("SELECT owner, open, private FROM chat_groups WHERE name = ?1")?
        .query_row([name], |r| {
            Ok((
                r.get::<_, Option<String>>(0)?,
                r.get::<_, i64>(1)? != 0,
                r.get::<_, i64>(2)? != 0,
            ))
        })
        .optional()?)
}

/// The group as it is inside `tx`.
fn group_in(tx: &rusqlite::Connection, name: &str) -> Result<Option<GroupInfo>, StoreError> {
    let Some((owner, open, private)) = group_row(tx, name)? else {
        return Ok(None);
    };
    let mut query =
        tx.prepare_cached("SELECT user FROM group_members WHERE group_name = ?1 ORDER BY user")?;
    let members = query
        .query_map([name], |r| r.get(0))?
        .collect::<Result<Vec<String>, _>>()?;
    Ok(Some(GroupInfo {
        name: name.to_string(),
        owner,
        open,
        members,
        private,
    }))
}

/// Each group whose name `query` selects, as it is now.
fn groups_named(
    db: &rusqlite::Connection,
    query: &str,
    params: impl rusqlite::Params,
) -> Result<Vec<GroupInfo>, StoreError> {
    let names = db
        .prepare_cached(query)?
        .query_map(params, |r| r.get(0))?
        .collect::<Result<Vec<String>, _>>()?;
    names
        .iter()
        .filter_map(|n| group_in(db, n).transpose())
        .collect()
}

fn existing_group(tx: &Transaction<'_>, name: &str) -> Result<GroupInfo, StoreError> {
    group_in(tx, name)?.ok_or_else(|| StoreError::NoSuchGroup(name.to_string()))
}

/// Adds `users` at cursor `cursor`; returns who was new.
fn insert_members(
    tx: &Transaction<'_>,
    name: &str,
    users: &[String],
    cursor: u64,
) -> Result<Vec<String>, StoreError> {
    let mut added = Vec::new();
    for user in users {
        let exists = tx
            .query_row("SELECT 1 FROM users WHERE name = ?1", [user], |_| Ok(()))
            .optional()?;
        if exists.is_none() {
            return Err(StoreError::NoSuchUser(user.clone()));
        }
        let inserted = tx.execute(
            "INSERT INTO group_members (group_name, user, cursor) VALUES (?1, ?2, ?3)
             ON CONFLICT DO NOTHING",
            params![name, user, cursor as i64],
        )?;
        if inserted > 0 {
            added.push(user.clone());
        }
    }
    Ok(added)
}

impl GroupStore for SqliteStore {
    fn create_group(
        &self,
        name: &str,
        owner: Option<&str>,
        kind: Kind,
        members: &[String],
    ) -> Result<GroupInfo, StoreError> {
        let mut db = self.db();
        let tx = db.transaction()?;
        let inserted = tx.execute(
            "INSERT INTO chat_groups (name, owner, open, private) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (name) DO NOTHING",
            params![name, owner, kind.open as i64, kind.private as i64],
        )?;
        if inserted == 0 {
            return Err(StoreError::GroupExists(name.to_string()));
        }
        insert_members(&tx, name, members, latest_seq(&tx)?)?;
        let info = existing_group(&tx, name)?;
        tx.commit()?;
        Ok(info)
    }

    fn group(&self, name: &str) -> Result<Option<GroupInfo>, StoreError> {
        group_in(&self.db(), name)
    }

    fn groups(&self) -> Result<Vec<GroupInfo>, StoreError> {
        groups_named(&self.db(), "SELECT name FROM chat_groups ORDER BY name", [])
    }

    fn groups_of(&self, user: &str) -> Result<Vec<GroupInfo>, StoreError> {
        groups_named(
            &self.db(),
            "SELECT group_name FROM group_members WHERE user = ?1 ORDER BY group_name",
            [user],
        )
    }

    fn add_members(
        &self,
        name: &str,
        users: &[String],
    ) -> Result<(GroupInfo, Vec<String>), StoreError> {
        let mut db = self.db();
        let tx = db.transaction()?;
        existing_group(&tx, name)?;
        let added = insert_members(&tx, name, users, latest_seq(&tx)?)?;
        let info = existing_group(&tx, name)?;
        tx.commit()?;
        Ok((info, added))
    }

    fn remove_members(
        &self,
        name: &str,
        users: &[String],
    ) -> Result<(GroupInfo, Vec<String>), StoreError> {
        let mut db = self.db();
        let tx = db.transaction()?;
        let before = existing_group(&tx, name)?;
        let mut removed = Vec::new();
        for user in users {
            let gone = tx.execute(
                "DELETE FROM group_members WHERE group_name = ?1 AND user = ?2",
                params![name, user],
            )?;
            if gone > 0 {
                removed.push(user.clone());
            }
        }
        let mut info = existing_group(&tx, name)?;
        match after_removal(&before, &mut info, &removed) {
            Afterwards::Deleted => {
                tx.execute("DELETE FROM chat_groups WHERE name = ?1", [name])?;
            }
            Afterwards::NewOwner => {
                tx.execute(
                    "UPDATE chat_groups SET owner = ?2 WHERE name = ?1",
                    params![name, info.owner],
                )?;
            }
            Afterwards::Same => {}
        }
        tx.commit()?;
        Ok((info, removed))
    }

    fn append_all(
        &self,
        group: &str,
        drafts: &[Draft],
        trim_to: Option<usize>,
    ) -> Result<Appended, StoreError> {
        let mut db = self.db();
        let tx = db.transaction()?;
        // The group's row alone: its members come with their cursors below.
        let (_, _, private) =
            group_row(&tx, group)?.ok_or_else(|| StoreError::NoSuchGroup(group.to_string()))?;
        let members = {
            let mut query = tx.prepare_cached(
                "SELECT user, cursor FROM group_members WHERE group_name = ?1 ORDER BY user",
            )?;
            let rows = query
                .query_map([group], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)? as u64))
                })?
                .collect::<Result<Vec<_>, _>>()?;
            rows
        };
        let taking = Taking::new(group, private, &members);
        let mut appended = Vec::with_capacity(drafts.len());
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO group_messages (group_name, sender, text, sent_at_ms, sealed)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            for draft in drafts {
                if let Some(refused) = taking.refusal(draft) {
                    appended.push(Err(refused));
                    continue;
                }
                let (text, sealed) = draft.post.parts();
                insert.execute(params![
                    group,
                    draft.from,
                    text,
                    draft.time_ms as i64,
                    sealed
                ])?;
                appended.push(Ok(GroupMessage {
                    group: group.to_string(),
                    seq: tx.last_insert_rowid() as u64,
                    from: draft.from.clone(),
                    text: text.to_string(),
                    sealed: sealed.map(<[u8]>::to_vec),
                    time_ms: draft.time_ms,
                }));
            }
        }
        // The newest `keep` stay; the bound is what `group history` and a
        // long-absent member can reach back to. Finding the bound walks
        // `keep` entries of the index, hence not at every commit.
        if let Some(keep) = trim_to {
            tx.prepare_cached(
                "DELETE FROM group_messages WHERE group_name = ?1 AND seq <= (
                    SELECT seq FROM group_messages WHERE group_name = ?1
                    ORDER BY seq DESC LIMIT 1 OFFSET ?2)",
            )?
            .execute(params![group, keep as i64])?;
        }
        tx.commit()?;
        Ok((appended, members))
    }

    fn messages_after(&self, group: &str, after: u64) -> Result<Vec<GroupMessage>, StoreError> {
        let db = self.db();
        let mut query = db.prepare_cached(&format!(
            "SELECT {MESSAGE_COLUMNS} FROM group_messages
             WHERE group_name = ?1 AND seq > ?2 ORDER BY seq"
        ))?;
        let messages = query
            .query_map(params![group, after as i64], message)?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(messages)
    }

    fn last_messages(&self, group: &str, count: usize) -> Result<Vec<GroupMessage>, StoreError> {
        let db = self.db();
        let mut query = db.prepare_cached(&format!(
            "SELECT {MESSAGE_COLUMNS} FROM group_messages
             WHERE group_name = ?1 ORDER BY seq DESC LIMIT ?2"
        ))?;
        let mut messages = query
            .query_map(params![group, count as i64], message)?
            .collect::<Result<Vec<_>, _>>()?;
        messages.reverse();
        Ok(messages)
    }

    fn cursor(&self, group: &str, user: &str) -> Result<Option<u64>, StoreError> {
        let cursor = self
            .db()
            .query_row(
                "SELECT cursor FROM group_members WHERE group_name = ?1 AND user = ?2",
                params![group, user],
                |r| r.get::<_, i64>(0),
            )
            .optional()?;
        Ok(cursor.map(|c| c as u64))
    }

    fn advance_cursors(&self, cursors: &[(String, String, u64)]) -> Result<(), StoreError> {
        // Not worth a fsync: a cursor lost comes back as messages sent
        // again, which clients drop (see `delivery`).
        self.relaxed(|db| {
            let tx = db.transaction()?;
            {
                let mut update = tx.prepare_cached(
                    "UPDATE group_members SET cursor = max(cursor, ?3)
                     WHERE group_name = ?1 AND user = ?2",
                )?;
                for (group, user, seq) in cursors {
                    update.execute(params![group, user, *seq as i64])?;
                }
            }
            tx.commit()?;
            Ok(())
        })
    }
}

/// The newest sequence number handed out so far, in any group.
fn latest_seq(tx: &Transaction<'_>) -> Result<u64, StoreError> {
    let seq = tx
        .query_row(
            "SELECT seq FROM sqlite_sequence WHERE name = 'group_messages'",
            [],
            |r| r.get::<_, i64>(0),
        )
        .optional()?;
    Ok(seq.unwrap_or(0) as u64)
}

#[cfg(test)]
mod tests;
