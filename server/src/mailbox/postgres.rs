//! The mailbox tables in PostgreSQL (their schema is with the others in
//! `crate::store::postgres`), with the same meaning as in SQLite
//! (`store.rs`). Several nodes write here at once, so a deposit locks its
//! recipient's row while it checks the quota, and a one-time prekey or a
//! stored message is taken by a `DELETE ... RETURNING`: each goes to one
//! asker only.

use tokio_postgres::Row;
use udpchat_core::mailbox::Stored;

use super::store::{MailboxStore, Quota};
use crate::store::{Cached as _, PgStore, StoreError};

const COLUMNS: &str = "id, recipient, sender, sent_at_ms, sealed";

fn stored(row: &Row) -> Stored {
    Stored {
        id: row.get::<_, i64>(0) as u64,
        to: row.get(1),
        from: row.get(2),
        sent_at_ms: row.get::<_, i64>(3) as u64,
        sealed: row.get(4),
    }
}

/// How many one-time prekeys `user` has left on the server.
async fn one_time_left(
    tx: &impl deadpool_postgres::GenericClient,
    user: &str,
) -> Result<usize, StoreError> {
    let row = tx
        .cached_query_one(
            "SELECT count(*) FROM one_time_prekeys WHERE user_name = $1",
            &[&user],
        )
        .await?;
    Ok(row.get::<_, i64>(0) as usize)
}

impl MailboxStore for PgStore {
    fn publish_prekeys(
        &self,
        user: &str,
        signed: &[u8],
        one_time: &[(u32, Vec<u8>)],
    ) -> Result<usize, StoreError> {
        let ids: Vec<i64> = one_time.iter().map(|(id, _)| i64::from(*id)).collect();
        let prekeys: Vec<&[u8]> = one_time.iter().map(|(_, p)| p.as_slice()).collect();
        self.run(async {
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            tx.cached_execute(
                "INSERT INTO signed_prekeys (user_name, prekey) VALUES ($1, $2)
                 ON CONFLICT (user_name) DO UPDATE SET prekey = excluded.prekey",
                &[&user, &signed],
            )
            .await?;
            tx.cached_execute(
                "INSERT INTO one_time_prekeys (user_name, id, prekey)
                 SELECT $1, k.id, k.prekey FROM unnest($2::bigint[], $3::bytea[]) AS k(id, prekey)
                 ON CONFLICT (user_name, id) DO UPDATE SET prekey = excluded.prekey",
                &[&user, &ids, &prekeys],
            )
            .await?;
            let count = one_time_left(&tx, user).await?;
            tx.commit().await?;
            Ok(count)
        })
    }

    fn take_prekeys(
        &self,
        user: &str,
        one_time: bool,
    ) -> Result<Option<(Vec<u8>, Option<Vec<u8>>, usize)>, StoreError> {
        self.run(async {
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            let Some(signed) = tx
                .cached_query_opt(
                    "SELECT prekey FROM signed_prekeys WHERE user_name = $1",
                    &[&user],
                )
                .await?
            else {
                return Ok(None);
            };
            let taken = if one_time {
                // The oldest that nobody else is taking right now.
                tx.cached_query_opt(
                    "DELETE FROM one_time_prekeys WHERE (user_name, id) = (
                        SELECT user_name, id FROM one_time_prekeys WHERE user_name = $1
                        ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED)
                     RETURNING prekey",
                    &[&user],
                )
                .await?
                .map(|row| row.get::<_, Vec<u8>>(0))
            } else {
                None
            };
            let left = one_time_left(&tx, user).await?;
            tx.commit().await?;
            Ok(Some((signed.get(0), taken, left)))
        })
    }

    fn deposit(&self, message: &Stored, quota: &Quota) -> Result<u64, StoreError> {
        self.run(async {
            let mut client = self.client().await?;
            let tx = client.transaction().await?;
            // Deposits for one recipient check and fill its quota one at a
            // time, whichever node they come through.
            if tx
                .cached_query_opt(
                    "SELECT 1 FROM users WHERE name = $1 FOR UPDATE",
                    &[&message.to],
                )
                .await?
                .is_none()
            {
                return Err(StoreError::NoSuchUser(message.to.clone()));
            }
            let row = tx
                .cached_query_one(
                    "SELECT count(*), coalesce(sum(length(sealed)), 0)::bigint,
                            count(*) FILTER (WHERE sender = $2),
                            coalesce(sum(length(sealed)) FILTER (WHERE sender = $2), 0)::bigint
                     FROM stored_messages WHERE recipient = $1",
                    &[&message.to, &message.from],
                )
                .await?;
            let [count, bytes, from_count, from_bytes] =
                [0, 1, 2, 3].map(|i| row.get::<_, i64>(i) as usize);
            let size = message.sealed.len();
            if count >= quota.messages || bytes + size > quota.bytes {
                return Err(StoreError::MailboxFull(message.to.clone()));
            }
            if from_count >= quota.sender_messages || from_bytes + size > quota.sender_bytes {
                return Err(StoreError::SenderShareFull {
                    from: message.from.clone(),
                    to: message.to.clone(),
                    messages: quota.sender_messages,
                    bytes: quota.sender_bytes,
                });
            }
            let row = tx
                .cached_query_one(
                    "INSERT INTO stored_messages (recipient, sender, sent_at_ms, sealed)
                     VALUES ($1, $2, $3, $4) RETURNING id",
                    &[
                        &message.to,
                        &message.from,
                        &(message.sent_at_ms as i64),
                        &message.sealed,
                    ],
                )
                .await?;
            tx.commit().await?;
            Ok(row.get::<_, i64>(0) as u64)
        })
    }

    fn pending(&self, user: &str) -> Result<Vec<Stored>, StoreError> {
        self.run(async {
            let rows = self
                .query(
                    &format!(
                        "SELECT {COLUMNS} FROM stored_messages WHERE recipient = $1 ORDER BY id"
                    ),
                    &[&user],
                )
                .await?;
            Ok(rows.iter().map(stored).collect())
        })
    }

    fn take_stored(&self, user: &str, id: u64) -> Result<Option<Stored>, StoreError> {
        self.run(async {
            let row = self
                .query_opt(
                    &format!(
                        "DELETE FROM stored_messages WHERE recipient = $1 AND id = $2
                         RETURNING {COLUMNS}"
                    ),
                    &[&user, &(id as i64)],
                )
                .await?;
            Ok(row.as_ref().map(stored))
        })
    }

    fn expire(&self, before_ms: u64) -> Result<Vec<Stored>, StoreError> {
        self.run(async {
            let rows = self
                .query(
                    &format!(
                        "DELETE FROM stored_messages WHERE sent_at_ms < $1 RETURNING {COLUMNS}"
                    ),
                    &[&(before_ms as i64)],
                )
                .await?;
            let mut expired: Vec<Stored> = rows.iter().map(stored).collect();
            expired.sort_by_key(|m| m.id);
            Ok(expired)
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;
    use crate::store::testing::{postgres, with_users};

    #[test]
    fn nodes_taking_one_time_prekeys_at_once_never_hand_one_out_twice() {
        let Some(db) = postgres() else {
            return;
        };
        let (one, two) = (&db.store, &db.another_node());
        with_users(one, &["bob"]);
        let prekeys: Vec<(u32, Vec<u8>)> = (0..40).map(|i| (i, vec![i as u8; 4])).collect();
        one.publish_prekeys("bob", b"signed", &prekeys).unwrap();
        let taken: Vec<Vec<u8>> = std::thread::scope(|scope| {
            let askers: Vec<_> = [one, two, one, two]
                .into_iter()
                .map(|node| {
                    scope.spawn(move || {
                        (0..15)
                            .filter_map(|_| node.take_prekeys("bob", true).unwrap().unwrap().1)
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            askers.into_iter().flat_map(|a| a.join().unwrap()).collect()
        });
        let distinct: BTreeSet<&Vec<u8>> = taken.iter().collect();
        assert_eq!(taken.len(), 40, "every prekey handed out");
        assert_eq!(distinct.len(), 40, "none twice");
    }

    #[test]
    fn nodes_depositing_at_once_keep_within_the_quota() {
        let Some(db) = postgres() else {
            return;
        };
        let (one, two) = (&db.store, &db.another_node());
        with_users(one, &["alice", "bob"]);
        let quota = Quota {
            messages: 30,
            bytes: 1 << 20,
            sender_messages: 30,
            sender_bytes: 1 << 20,
        };
        let stored = std::thread::scope(|scope| {
            let senders: Vec<_> = [one, two, one, two]
                .into_iter()
                .map(|node| {
                    scope.spawn(move || {
                        (0..20)
                            .filter(|i| {
                                let message = Stored {
                                    id: 0,
                                    from: "alice".into(),
                                    to: "bob".into(),
                                    sent_at_ms: *i,
                                    sealed: vec![1; 16],
                                };
                                node.deposit(&message, &quota).is_ok()
                            })
                            .count()
                    })
                })
                .collect();
            senders
                .into_iter()
                .map(|s| s.join().unwrap())
                .sum::<usize>()
        });
        assert_eq!(stored, 30, "deposits accepted");
        assert_eq!(one.pending("bob").unwrap().len(), 30, "messages kept");
    }
}
