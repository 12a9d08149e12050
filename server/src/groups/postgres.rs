//! The group tables in PostgreSQL (their schema is with the others in
//! `crate::store::postgres`), with the same meaning as in SQLite
//! (`store.rs`). Several server nodes write to one database here, so every
//! write to a group first locks the group's row: appends to one group
//! take their `seq` and commit one after the other, and a reader that saw
//! `seq` N will never later find a smaller one appear.

use std::collections::HashMap;

use deadpool_postgres::Transaction;
use tokio_postgres::Row;
use udpchat_core::group::{GroupInfo, GroupMessage};

use super::store::{after_removal, Afterwards, Appended, Draft, GroupStore, Kind, Taking};
use crate::store::{Cached as _, PgStore, StoreError};

const MESSAGE_COLUMNS: &str = "group_name, seq, sender, text, sent_at_ms, sealed";

fn message(row: &Row) -> GroupMessage {
    GroupMessage {
        group: row.get(0),
        seq: row.get::<_, i64>(1) as u64,
        from: row.get(2),
        text: row.get(3),
        sealed: row.get(5),
        time_ms: row.get::<_, i64>(4) as u64,
    }
}

/// Every group, with its members, that `filter` (a condition on `g`, with
/// `$1` if `arg` is given) selects, by name.
const GROUPS: &str = r#"SELECT g.name, g.owner, g.open, g.private,
        coalesce(array_agg(m.user_name ORDER BY m.user_name)
                 FILTER (WHERE m.user_name IS NOT NULL), '{}')
    FROM chat_groups g LEFT JOIN group_members m ON m.group_name = g.name"#;

fn group_info(row: &Row) -> GroupInfo {
    GroupInfo {
        name: row.get(0),
        owner: row.get(1),
        open: row.get(2),
        private: row.get(3),
        members: row.get(4),
    }
}

/// The group as it is inside `tx`.
async fn group_in(
    tx: &impl deadpool_postgres::GenericClient,
    name: &str,
) -> Result<Option<GroupInfo>, StoreError> {
    let row = tx
        .cached_query_opt(
            &format!("{GROUPS} WHERE g.name = $1 GROUP BY g.name"),
            &[&name],
        )
        .await?;
    Ok(row.as_ref().map(group_info))
}

async fn existing_group(tx: &Transaction<'_>, name: &str) -> Result<GroupInfo, StoreError> {
    group_in(tx, name)
        .await?
        .ok_or_else(|| StoreError::NoSuchGroup(name.to_string()))
}

/// Locks the group's row until `tx` ends (every write to a group does, so
/// they come one after the other); `NoSuchGroup` if there is none.
/// Whether the group is private.
async fn lock_group(tx: &Transaction<'_>, name: &str) -> Result<bool, StoreError> {
    tx.cached_query_opt(
        "SELECT private FROM chat_groups WHERE name = $1 FOR UPDATE",
        &[&name],
    )
    .await?
    .map(|row| row.get(0))
    .ok_or_else(|| StoreError::NoSuchGroup(name.to_string()))
}

/// The newest `seq` of the group (0 if it has none): where a new member's
/// cursor starts. Read under the group's lock.
async fn latest_seq(tx: &Transaction<'_>, name: &str) -> Result<i64, StoreError> {
    let row = tx
        .cached_query_one(
            "SELECT coalesce(max(seq), 0) FROM group_messages WHERE group_name = $1",
            &[&name],
        )
        .await?;
    Ok(row.get(0))
}

/// Adds `users` at `cursor`; returns who was new. `NoSuchUser` for a name
/// without an account.
async fn insert_members(
    tx: &Transaction<'_>,
    name: &str,
    users: &[String],
    cursor: i64,
) -> Result<Vec<String>, StoreError> {
    let known: Vec<String> = tx
        .cached_query("SELECT name FROM users WHERE name = ANY($1)", &[&users])
        .await?
        .iter()
        .map(|row| row.get(0))
        .collect();
    if let Some(unknown) = users.iter().find(|u| !known.contains(u)) {
        return Err(StoreError::NoSuchUser(unknown.clone()));
    }
    const INSERT: &str = "INSERT INTO group_members (group_name, user_name, cursor)
        VALUES ($1, $2, $3) ON CONFLICT DO NOTHING";
    let mut added = Vec::new();
    for user in users {
        if tx.cached_execute(INSERT, &[&name, user, &cursor]).await? > 0 {
            added.push(user.clone());
        }
    }
    Ok(added)
}

impl GroupStore for PgStore {
    fn create_group(
        &self,
        name: &str,
        owner: Option<&str>,
        kind: Kind,
        members: &[String],
    ) -> Result<GroupInfo, StoreError> {
        self.run(async {
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            let inserted = tx
                .cached_execute(
                    "INSERT INTO chat_groups (name, owner, open, private) VALUES ($1, $2, $3, $4)
                     ON CONFLICT (name) DO NOTHING",
                    &[&name, &owner, &kind.open, &kind.private],
                )
                .await?;
            if inserted == 0 {
                return Err(StoreError::GroupExists(name.to_string()));
            }
            insert_members(&tx, name, members, 0).await?;
            let info = existing_group(&tx, name).await?;
            tx.commit().await?;
            Ok(info)
        })
    }

    fn group(&self, name: &str) -> Result<Option<GroupInfo>, StoreError> {
        self.run(async { group_in(&self.client().await?, name).await })
    }

    fn groups(&self) -> Result<Vec<GroupInfo>, StoreError> {
        self.run(async {
            let rows = self
                .query(&format!("{GROUPS} GROUP BY g.name ORDER BY g.name"), &[])
                .await?;
            Ok(rows.iter().map(group_info).collect())
        })
    }

    fn groups_of(&self, user: &str) -> Result<Vec<GroupInfo>, StoreError> {
        self.run(async {
            let rows = self
                .query(
                    &format!(
                        "{GROUPS} WHERE g.name IN
                            (SELECT group_name FROM group_members WHERE user_name = $1)
                         GROUP BY g.name ORDER BY g.name"
                    ),
                    &[&user],
                )
                .await?;
            Ok(rows.iter().map(group_info).collect())
        })
    }

    fn add_members(
        &self,
        name: &str,
        users: &[String],
    ) -> Result<(GroupInfo, Vec<String>), StoreError> {
        self.run(async {
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            lock_group(&tx, name).await?;
            let cursor = latest_seq(&tx, name).await?;
            let added = insert_members(&tx, name, users, cursor).await?;
            let info = existing_group(&tx, name).await?;
            tx.commit().await?;
            Ok((info, added))
        })
    }

    fn remove_members(
        &self,
        name: &str,
        users: &[String],
    ) -> Result<(GroupInfo, Vec<String>), StoreError> {
        self.run(async {
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            lock_group(&tx, name).await?;
            let before = existing_group(&tx, name).await?;
            let removed: Vec<String> = tx
                .cached_query(
                    "DELETE FROM group_members WHERE group_name = $1 AND user_name = ANY($2)
                     RETURNING user_name",
                    &[&name, &users],
                )
                .await?
                .iter()
                .map(|row| row.get(0))
                .collect();
            // In the order asked, as SQLite reports them.
            let removed: Vec<String> = users
                .iter()
                .filter(|u| removed.contains(u))
                .cloned()
                .collect();
            let mut info = existing_group(&tx, name).await?;
            match after_removal(&before, &mut info, &removed) {
                Afterwards::Deleted => {
                    tx.cached_execute("DELETE FROM chat_groups WHERE name = $1", &[&name])
                        .await?;
                }
                Afterwards::NewOwner => {
                    tx.cached_execute(
                        "UPDATE chat_groups SET owner = $2 WHERE name = $1",
                        &[&name, &info.owner],
                    )
                    .await?;
                }
                Afterwards::Same => {}
            }
            tx.commit().await?;
            Ok((info, removed))
        })
    }

    fn append_all(
        &self,
        group: &str,
        drafts: &[Draft],
        trim_to: Option<usize>,
    ) -> Result<Appended, StoreError> {
        self.run(async {
            // Four round trips: BEGIN; the group's lock and its members
            // (pipelined: the members are read once the lock is held);
            // the insert, its NOTIFY and the trim (pipelined, in that
            // order); COMMIT.
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            let (private, members) = tokio::try_join!(lock_group(&tx, group), async {
                tx.cached_query(
                    "SELECT user_name, cursor FROM group_members WHERE group_name = $1
                         ORDER BY user_name",
                    &[&group],
                )
                .await
                .map_err(StoreError::from)
            })?;
            let members: Vec<(String, u64)> = members
                .iter()
                .map(|row| (row.get(0), row.get::<_, i64>(1) as u64))
                .collect();
            let taking = Taking::new(group, private, &members);
            let refusals: Vec<Option<StoreError>> =
                drafts.iter().map(|d| taking.refusal(d)).collect();
            let accepted: Vec<&Draft> = drafts
                .iter()
                .zip(&refusals)
                .filter(|(_, refused)| refused.is_none())
                .map(|(d, _)| d)
                .collect();
            // One statement for the whole batch; rows take their `seq` in
            // the order given (the group's lock keeps anyone else out).
            let senders: Vec<&str> = accepted.iter().map(|d| d.from.as_str()).collect();
            let texts: Vec<&str> = accepted.iter().map(|d| d.post.parts().0).collect();
            let times: Vec<i64> = accepted.iter().map(|d| d.time_ms as i64).collect();
            let sealed: Vec<Option<&[u8]>> = accepted.iter().map(|d| d.post.parts().1).collect();
            let keep = trim_to.map(|keep| keep as i64);
            let insert_params: [&(dyn tokio_postgres::types::ToSql + Sync); 5] =
                [&group, &senders, &texts, &times, &sealed];
            let trim_params: [&(dyn tokio_postgres::types::ToSql + Sync); 2] = [&group, &keep];
            let insert = tx.cached_query(
                "INSERT INTO group_messages (group_name, sender, text, sent_at_ms, sealed)
                 SELECT $1, d.sender, d.text, d.sent_at_ms, d.sealed
                 FROM unnest($2::text[], $3::text[], $4::bigint[], $5::bytea[])
                      WITH ORDINALITY AS d(sender, text, sent_at_ms, sealed, n)
                 ORDER BY d.n
                 RETURNING seq",
                &insert_params,
            );
            // Members on the other nodes get these from the log.
            let event = crate::cluster::Event::Appended {
                node: self.node().to_string(),
                group: group.to_string(),
            }
            .encode();
            let notify = async {
                if accepted.is_empty() {
                    return Ok(0);
                }
                tx.cached_execute(
                    "SELECT pg_notify($1, $2)",
                    &[&crate::cluster::CHANNEL, &event],
                )
                .await
            };
            // The newest `keep` stay, as in SQLite (run after the insert).
            let trim = async {
                if keep.is_none() {
                    return Ok(0);
                }
                tx.cached_execute(
                    "DELETE FROM group_messages WHERE group_name = $1 AND seq <= (
                        SELECT seq FROM group_messages WHERE group_name = $1
                        ORDER BY seq DESC LIMIT 1 OFFSET $2)",
                    &trim_params,
                )
                .await
            };
            let (inserted, _, _) = tokio::try_join!(insert, notify, trim)?;
            let mut seqs: Vec<i64> = inserted.iter().map(|row| row.get(0)).collect();
            seqs.sort_unstable();
            let mut seqs = seqs.into_iter();
            let appended = drafts
                .iter()
                .zip(refusals)
                .map(|(draft, refused)| {
                    if let Some(refused) = refused {
                        return Err(refused);
                    }
                    let seq = seqs.next().expect("one seq per accepted draft");
                    let (text, sealed) = draft.post.parts();
                    Ok(GroupMessage {
                        group: group.to_string(),
                        seq: seq as u64,
                        from: draft.from.clone(),
                        text: text.to_string(),
                        sealed: sealed.map(<[u8]>::to_vec),
                        time_ms: draft.time_ms,
                    })
                })
                .collect();
            tx.commit().await?;
            Ok((appended, members))
        })
    }

    fn messages_after(&self, group: &str, after: u64) -> Result<Vec<GroupMessage>, StoreError> {
        self.run(async {
            let rows = self
                .query(
                    &format!(
                        "SELECT {MESSAGE_COLUMNS} FROM group_messages
                         WHERE group_name = $1 AND seq > $2 ORDER BY seq"
                    ),
                    &[&group, &(after as i64)],
                )
                .await?;
            Ok(rows.iter().map(message).collect())
        })
    }

    fn last_messages(&self, group: &str, count: usize) -> Result<Vec<GroupMessage>, StoreError> {
        self.run(async {
            let rows = self
                .query(
                    &format!(
                        "SELECT {MESSAGE_COLUMNS} FROM group_messages
                         WHERE group_name = $1 ORDER BY seq DESC LIMIT $2"
                    ),
                    &[&group, &(count as i64)],
                )
                .await?;
            Ok(rows.iter().rev().map(message).collect())
        })
    }

    fn cursor(&self, group: &str, user: &str) -> Result<Option<u64>, StoreError> {
        self.run(async {
            let row = self
                .query_opt(
                    "SELECT cursor FROM group_members WHERE group_name = $1 AND user_name = $2",
                    &[&group, &user],
                )
                .await?;
            Ok(row.map(|row| row.get::<_, i64>(0) as u64))
        })
    }

    fn advance_cursors(&self, cursors: &[(String, String, u64)]) -> Result<(), StoreError> {
        // One row per member (the furthest), so one UPDATE moves them all.
        let mut furthest: HashMap<(&str, &str), i64> = HashMap::new();
        for (group, user, seq) in cursors {
            let at = furthest.entry((group, user)).or_default();
            *at = (*at).max(*seq as i64);
        }
        let (mut groups, mut users, mut seqs) = (Vec::new(), Vec::new(), Vec::new());
        for ((group, user), seq) in furthest {
            groups.push(group);
            users.push(user);
            seqs.push(seq);
        }
        self.run(async {
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            // Not worth waiting for the disk: a cursor lost comes back as
            // messages sent again, which clients drop (as with SQLite's
            // `relaxed`).
            tx.batch_execute("SET LOCAL synchronous_commit = off")
                .await?;
            tx.cached_execute(
                "UPDATE group_members m SET cursor = greatest(m.cursor, c.seq)
                 FROM unnest($1::text[], $2::text[], $3::bigint[]) AS c(group_name, user_name, seq)
                 WHERE m.group_name = c.group_name AND m.user_name = c.user_name",
                &[&groups, &users, &seqs],
            )
            .await?;
            tx.commit().await?;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::{postgres, with_users};
    use udpchat_core::group::Post;

    #[test]
    fn two_nodes_writing_to_one_group_keep_one_order_that_no_reader_sees_go_back() {
        let Some(db) = postgres() else {
            return;
        };
        let (one, two) = (&db.store, &db.another_node());
        with_users(one, &["alice", "bob"]);
        one.create_group(
            "group1",
            None,
            Kind::default(),
            &["alice".into(), "bob".into()],
        )
        .unwrap();
        const EACH: usize = 150;
        let seen = std::thread::scope(|scope| {
            for (node, from) in [(one, "alice"), (two, "bob")] {
                scope.spawn(move || {
                    for i in 0..EACH {
                        let draft = Draft {
                            from: from.into(),
                            post: Post::Plain(format!("{from} {i}")),
                            time_ms: i as u64,
                        };
                        node.append_all("group1", &[draft], Some(10_000)).unwrap();
                    }
                });
            }
            // A member's client reading as it goes, from where it got to:
            // a message that commits after one with a larger `seq` would
            // be behind its cursor, and never reach it.
            let reader = scope.spawn(move || {
                let mut seen: Vec<u64> = Vec::new();
                for _ in 0..100_000 {
                    let after = seen.last().copied().unwrap_or(0);
                    seen.extend(
                        two.messages_after("group1", after)
                            .unwrap()
                            .iter()
                            .map(|m| m.seq),
                    );
                    if seen.len() >= 2 * EACH {
                        break;
                    }
                }
                seen
            });
            reader.join().unwrap()
        });
        let all: Vec<u64> = one
            .messages_after("group1", 0)
            .unwrap()
            .iter()
            .map(|m| m.seq)
            .collect();
        assert_eq!(all.len(), 2 * EACH);
        assert_eq!(
            seen, all,
            "the reader missed messages or saw them out of order"
        );
    }
}
