//! The mailbox tables (their schema is with the others in
//! `crate::store::sqlite`): prekeys and sealed messages for offline users.
//! Every write commits before it returns, so what was acknowledged
//! survives a crash.

use rusqlite::{params, OptionalExtension};
use udpchat_core::mailbox::Stored;

use crate::store::{SqliteStore, StoreError};

/// How much a recipient's mailbox holds, and how much of it one sender
/// may fill: one throwaway account must not be able to fill someone's
/// mailbox and keep everyone else's messages out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    /// Messages waiting for one recipient, at most.
    pub messages: usize,
    /// Sealed bytes waiting for one recipient, at most.
    pub bytes: usize,
    /// Of those, what one sender may hold: messages and bytes.
    pub sender_messages: usize,
    pub sender_bytes: usize,
}

/// The durable side of offline delivery.
pub trait MailboxStore: Send + Sync {
    /// Sets the signed prekey and adds one-time prekeys (CBOR bytes each);
    /// returns how many one-time prekeys the user now has.
    fn publish_prekeys(
        &self,
        user: &str,
        signed: &[u8],
        one_time: &[(u32, Vec<u8>)],
    ) -> Result<usize, StoreError>;
    /// The signed prekey and, with `one_time`, one one-time prekey
    /// (deleted as it is handed out), and how many are left; `None` if the
    /// user published nothing.
    #[allow(clippy::type_complexity)]
    fn take_prekeys(
        &self,
        user: &str,
        one_time: bool,
    ) -> Result<Option<(Vec<u8>, Option<Vec<u8>>, usize)>, StoreError>;
    /// Stores a message unless the recipient's mailbox, or the sender's
    /// share of it, is full.
    fn deposit(&self, message: &Stored, quota: &Quota) -> Result<u64, StoreError>;
    fn pending(&self, user: &str) -> Result<Vec<Stored>, StoreError>;
    fn take_stored(&self, user: &str, id: u64) -> Result<Option<Stored>, StoreError>;
    /// Deletes and returns the messages older than `before_ms`.
    fn expire(&self, before_ms: u64) -> Result<Vec<Stored>, StoreError>;
}

fn stored(row: &rusqlite::Row<'_>) -> rusqlite::Result<Stored> {
    Ok(Stored {
        id: row.get::<_, i64>(0)? as u64,
        to: row.get(1)?,
        from: row.get(2)?,
        sent_at_ms: row.get::<_, i64>(3)? as u64,
        sealed: row.get(4)?,
    })
}

const COLUMNS: &str = "id, recipient, sender, sent_at_ms, sealed";

impl MailboxStore for SqliteStore {
    fn publish_prekeys(
        &self,
        user: &str,
        signed: &[u8],
        one_time: &[(u32, Vec<u8>)],
    ) -> Result<usize, StoreError> {
        let mut db = self.db();
        let tx = db.transaction()?;
        tx.execute(
            "INSERT INTO signed_prekeys (user, prekey) VALUES (?1, ?2)
             ON CONFLICT (user) DO UPDATE SET prekey = excluded.prekey",
            params![user, signed],
        )?;
        for (id, prekey) in one_time {
            tx.execute(
                "INSERT OR REPLACE INTO one_time_prekeys (user, id, prekey) VALUES (?1, ?2, ?3)",
                params![user, id, prekey],
            )?;
        }
        let count = one_time_left(&tx, user)?;
        tx.commit()?;
        Ok(count)
    }

    fn take_prekeys(
        &self,
        user: &str,
        one_time: bool,
    ) -> Result<Option<(Vec<u8>, Option<Vec<u8>>, usize)>, StoreError> {
        let mut db = self.db();
        let tx = db.transaction()?;
        let Some(signed) = tx
            .query_row(
                "SELECT prekey FROM signed_prekeys WHERE user = ?1",
                [user],
                |r| r.get::<_, Vec<u8>>(0),
            )
            .optional()?
        else {
            return Ok(None);
        };
        let one_time = if one_time {
            tx.query_row(
                "SELECT id, prekey FROM one_time_prekeys WHERE user = ?1 ORDER BY id LIMIT 1",
                [user],
                |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?)),
            )
            .optional()?
        } else {
            None
        };
        if let Some((id, _)) = &one_time {
            tx.execute(
                "DELETE FROM one_time_prekeys WHERE user = ?1 AND id = ?2",
                params![user, id],
            )?;
        }
        let left = one_time_left(&tx, user)?;
        tx.commit()?;
        Ok(Some((signed, one_time.map(|(_, p)| p), left)))
    }

    fn deposit(&self, message: &Stored, quota: &Quota) -> Result<u64, StoreError> {
        let mut db = self.db();
        let tx = db.transaction()?;
        let held = |sender: Option<&str>| -> Result<(usize, usize), StoreError> {
            Ok(tx.query_row(
                "SELECT count(*), coalesce(sum(length(sealed)), 0) FROM stored_messages
                 WHERE recipient = ?1 AND (?2 IS NULL OR sender = ?2)",
                params![message.to, sender],
                |r| Ok((r.get::<_, i64>(0)? as usize, r.get::<_, i64>(1)? as usize)),
            )?)
        };
        let size = message.sealed.len();
        let (count, bytes) = held(None)?;
        if count >= quota.messages || bytes + size > quota.bytes {
            return Err(StoreError::MailboxFull(message.to.clone()));
        }
        let (count, bytes) = held(Some(&message.from))?;
        if count >= quota.sender_messages || bytes + size > quota.sender_bytes {
            return Err(StoreError::SenderShareFull {
                from: message.from.clone(),
                to: message.to.clone(),
                messages: quota.sender_messages,
                bytes: quota.sender_bytes,
            });
        }
        tx.execute(
            "INSERT INTO stored_messages (recipient, sender, sent_at_ms, sealed) VALUES (?1, ?2, ?3, ?4)",
            params![message.to, message.from, message.sent_at_ms as i64, message.sealed],
        )?;
        let id = tx.last_insert_rowid() as u64;
        tx.commit()?;
        Ok(id)
    }

    fn pending(&self, user: &str) -> Result<Vec<Stored>, StoreError> {
        let db = self.db();
        let mut query = db.prepare(&format!(
            "SELECT {COLUMNS} FROM stored_messages WHERE recipient = ?1 ORDER BY id"
        ))?;
        let messages = query
            .query_map([user], stored)?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(messages)
    }

    fn take_stored(&self, user: &str, id: u64) -> Result<Option<Stored>, StoreError> {
        let mut db = self.db();
        let tx = db.transaction()?;
        let message = tx
            .query_row(
                &format!("SELECT {COLUMNS} FROM stored_messages WHERE recipient = ?1 AND id = ?2"),
                params![user, id as i64],
                stored,
            )
            .optional()?;
        if message.is_some() {
            tx.execute("DELETE FROM stored_messages WHERE id = ?1", [id as i64])?;
        }
        tx.commit()?;
        Ok(message)
    }

    fn expire(&self, before_ms: u64) -> Result<Vec<Stored>, StoreError> {
        let mut db = self.db();
        let tx = db.transaction()?;
        let expired = {
            let mut query = tx.prepare(&format!(
                "SELECT {COLUMNS} FROM stored_messages WHERE sent_at_ms < ?1 ORDER BY id"
            ))?;
            let rows = query
                .query_map([before_ms as i64], stored)?
                .collect::<Result<Vec<_>, _>>()?;
            rows
        };
        tx.execute(
            "DELETE FROM stored_messages WHERE sent_at_ms < ?1",
            [before_ms as i64],
        )?;
        tx.commit()?;
        Ok(expired)
    }
}

/// How many one-time prekeys `user` has left on the server.
fn one_time_left(tx: &rusqlite::Transaction<'_>, user: &str) -> Result<usize, StoreError> {
    let count: i64 = tx.query_row(
        "SELECT count(*) FROM one_time_prekeys WHERE user = ?1",
        [user],
        |r| r.get(0),
    )?;
    Ok(count as usize)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::{on_every_store, with_users};
    use crate::store::Backend;

    fn message(to: &str, n: u64) -> Stored {
        Stored {
            id: 0,
            from: "alice".into(),
            to: to.into(),
            sent_at_ms: n,
            sealed: vec![n as u8; 8],
        }
    }

    fn messages_come_out_oldest_first_once_and_within_limits(store: &dyn Backend) {
        with_users(store, &["bob"]);
        let quota = Quota {
            messages: 3,
            bytes: 1000,
            sender_messages: 3,
            sender_bytes: 1000,
        };
        let ids: Vec<u64> = (1..=3)
            .map(|n| store.deposit(&message("bob", n), &quota).unwrap())
            .collect();
        assert!(matches!(
            store.deposit(&message("bob", 4), &quota),
            Err(StoreError::MailboxFull(_))
        ));
        let pending = store.pending("bob").unwrap();
        assert_eq!(pending.iter().map(|m| m.id).collect::<Vec<_>>(), ids);
        assert_eq!(
            store
                .take_stored("bob", ids[0])
                .unwrap()
                .unwrap()
                .sent_at_ms,
            1
        );
        assert!(
            store.take_stored("bob", ids[0]).unwrap().is_none(),
            "taken once"
        );
        assert!(
            store.take_stored("carole", ids[1]).unwrap().is_none(),
            "only by its recipient"
        );
        assert_eq!(store.expire(3).unwrap().len(), 1);
        assert_eq!(store.pending("bob").unwrap().len(), 1);
    }

    fn one_sender_fills_only_its_share_of_a_mailbox(store: &dyn Backend) {
        with_users(store, &["bob", "alice", "mallory"]);
        let quota = Quota {
            messages: 10,
            bytes: 100,
            sender_messages: 3,
            sender_bytes: 20,
        };
        let from = |sender: &str, size: usize| Stored {
            id: 0,
            from: sender.into(),
            to: "bob".into(),
            sent_at_ms: 1,
            sealed: vec![0; size],
        };
        for _ in 0..3 {
            store.deposit(&from("mallory", 1), &quota).unwrap();
        }
        assert!(matches!(
            store.deposit(&from("mallory", 1), &quota),
            Err(StoreError::SenderShareFull { .. })
        ));
        // Bytes count as well as messages.
        store.deposit(&from("alice", 15), &quota).unwrap();
        assert!(matches!(
            store.deposit(&from("alice", 6), &quota),
            Err(StoreError::SenderShareFull { .. })
        ));
        store.deposit(&from("alice", 5), &quota).unwrap();
        assert_eq!(store.pending("bob").unwrap().len(), 5);
        // And the whole mailbox has its own bound.
        let tight = Quota { bytes: 25, ..quota };
        assert!(matches!(
            store.deposit(&from("carole", 3), &tight),
            Err(StoreError::MailboxFull(_))
        ));
    }

    fn one_time_prekeys_are_handed_out_once(store: &dyn Backend) {
        with_users(store, &["bob"]);
        assert!(store.take_prekeys("bob", true).unwrap().is_none());
        assert_eq!(
            store
                .publish_prekeys("bob", b"signed", &[(1, b"a".to_vec()), (2, b"b".to_vec())])
                .unwrap(),
            2
        );
        assert_eq!(
            store.take_prekeys("bob", false).unwrap(),
            Some((b"signed".to_vec(), None, 2)),
            "none taken when none is asked for"
        );
        assert_eq!(
            store.take_prekeys("bob", true).unwrap(),
            Some((b"signed".to_vec(), Some(b"a".to_vec()), 1))
        );
        assert_eq!(
            store.take_prekeys("bob", true).unwrap(),
            Some((b"signed".to_vec(), Some(b"b".to_vec()), 0))
        );
        assert_eq!(
            store.take_prekeys("bob", true).unwrap(),
            Some((b"signed".to_vec(), None, 0))
        );
    }

    on_every_store!(
        messages_come_out_oldest_first_once_and_within_limits,
        one_sender_fills_only_its_share_of_a_mailbox,
        one_time_prekeys_are_handed_out_once,
    );
}
