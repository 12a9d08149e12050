//! Private groups on this client ([`PrivateGroups`]): the signed-in user's
//! sender keys (`udpchat_core::group_keys`) and the lines it read and sent
//! there, for `group history`. The chains others handed the user, and
//! those lines, are kept in `users/NAME/groups.sqlite3` in the data dir
//! (0600, as its `-wal` and `-shm`); the user's own chains live in memory
//! only (a new client makes new ones, so no message key is used twice).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;
use rusqlite::{params, Connection};
use udpchat_core::cbor;
use udpchat_core::context::{PrivateGroups, Session};
use udpchat_core::crypto::sender_keys::ReceivedChain;
use udpchat_core::error::{Code, CommandError};
use udpchat_core::group::GroupMessage;
use udpchat_core::group_keys::{GroupKeys, Member};
use udpchat_core::private_files;

/// Lines kept per group; older ones go.
pub const KEPT_LINES: i64 = 10_000;

const SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS received_chains (
        group_name TEXT NOT NULL,
        sender TEXT NOT NULL,
        chains BLOB NOT NULL,
        PRIMARY KEY (group_name, sender)
    ) STRICT;
    CREATE TABLE IF NOT EXISTS lines (
        group_name TEXT NOT NULL,
        seq INTEGER NOT NULL,
        sender TEXT NOT NULL,
        text TEXT NOT NULL,
        sent_at_ms INTEGER NOT NULL,
        PRIMARY KEY (group_name, seq)
    ) STRICT;";

pub struct GroupStore {
    data_dir: PathBuf,
    session: Arc<Mutex<Session>>,
    open: Mutex<Option<Opened>>,
}

/// One user's keys and file, open.
struct Opened {
    user: String,
    db: Connection,
    keys: GroupKeys,
}

impl GroupStore {
    pub fn new(data_dir: PathBuf, session: Arc<Mutex<Session>>) -> GroupStore {
        GroupStore {
            data_dir,
            session,
            open: Mutex::new(None),
        }
    }

    /// Runs `f` on the reader's keys and file (see
    /// [`PrivateGroups::reader`]), opening them first (again after someone
    /// else signed in).
    fn with_open<T>(
        &self,
        f: impl FnOnce(&mut Opened) -> Result<T, CommandError>,
    ) -> Result<T, CommandError> {
        let mut open = self.open.lock();
        let signed_in = self.session.lock().user.clone();
        let me = signed_in
            .or_else(|| open.as_ref().map(|o| o.user.clone()))
            .ok_or_else(CommandError::not_signed_in)?;
        if open.as_ref().is_none_or(|o| o.user != me) {
            *open = Some(Opened::open(&self.data_dir, &me)?);
        }
        f(open.as_mut().expect("opened above"))
    }
}

impl Opened {
    fn open(data_dir: &Path, user: &str) -> Result<Opened, CommandError> {
        let dir = crate::trust::make_user_dir(data_dir, user)?;
        let path = dir.join("groups.sqlite3");
        let failed = |e: &dyn std::fmt::Display| {
            CommandError::new(Code::Internal, format!("{}: {e}", path.display()))
        };
        private_files::file(&path).map_err(|e| failed(&e))?;
        for suffix in ["-wal", "-shm"] {
            private_files::tighten(&private_files::sibling(&path, suffix))
                .map_err(|e| failed(&e))?;
        }
        let db = Connection::open(&path).map_err(|e| failed(&e))?;
        db.pragma_update(None, "journal_mode", "WAL")
            .and_then(|_| db.pragma_update(None, "synchronous", "NORMAL"))
            .and_then(|_| db.execute_batch(SCHEMA))
            .map_err(|e| failed(&e))?;
        let received = read_chains(&db).map_err(|e| failed(&e))?;
        Ok(Opened {
            user: user.to_string(),
            db,
            keys: GroupKeys::with_received(received),
        })
    }

    /// Writes what changed in the keys.
    fn save(&mut self) -> rusqlite::Result<()> {
        let changed = self.keys.take_changed();
        let forgotten = self.keys.take_forgotten();
        if changed.is_empty() && forgotten.is_empty() {
            return Ok(());
        }
        let tx = self.db.transaction()?;
        for group in forgotten {
            tx.execute(
                "DELETE FROM received_chains WHERE group_name = ?1",
                [&group],
            )?;
        }
        {
            let mut upsert = tx.prepare_cached(
                "INSERT INTO received_chains (group_name, sender, chains) VALUES (?1, ?2, ?3)
                 ON CONFLICT (group_name, sender) DO UPDATE SET chains = excluded.chains",
            )?;
            for ((group, sender), chains) in changed {
                upsert.execute(params![group, sender, cbor::encode(&chains)])?;
            }
        }
        tx.commit()
    }
}

/// Every chain kept; a row that does not decode is skipped (its sender's
/// next handout replaces it).
fn read_chains(db: &Connection) -> rusqlite::Result<Vec<(Member, Vec<ReceivedChain>)>> {
    let mut query = db.prepare("SELECT group_name, sender, chains FROM received_chains")?;
    let rows = query.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, Vec<u8>>(2)?,
        ))
    })?;
    let mut kept = Vec::new();
    for row in rows {
        let (group, sender, bytes) = row?;
        match cbor::decode_body::<Vec<ReceivedChain>>(&bytes) {
            Ok(chains) => kept.push(((group, sender), chains)),
            Err(e) => tracing::warn!(group, sender, "group keys: a kept chain does not read: {e}"),
        }
    }
    Ok(kept)
}

fn internal(e: rusqlite::Error) -> CommandError {
    CommandError::new(Code::Internal, format!("group keys: {e}"))
}

impl PrivateGroups for GroupStore {
    fn give_up_held(&self) -> Vec<(Member, usize)> {
        self.open
            .lock()
            .as_mut()
            .map(|open| open.keys.take_held())
            .unwrap_or_default()
    }

    fn reader(&self) -> Option<String> {
        let signed_in = self.session.lock().user.clone();
        signed_in.or_else(|| self.open.lock().as_ref().map(|o| o.user.clone()))
    }

    fn with_keys(&self, f: &mut dyn FnMut(&mut GroupKeys)) -> Result<(), CommandError> {
        self.with_open(|open| {
            f(&mut open.keys);
            open.save().map_err(internal)
        })
    }

    fn keep(&self, line: &GroupMessage) -> Result<(), CommandError> {
        self.with_open(|open| {
            let db = &open.db;
            db.prepare_cached(
                "INSERT INTO lines (group_name, seq, sender, text, sent_at_ms)
                 VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT DO NOTHING",
            )
            .and_then(|mut insert| {
                insert.execute(params![
                    line.group,
                    line.seq as i64,
                    line.from,
                    line.text,
                    line.time_ms as i64
                ])
            })
            .and_then(|_| {
                db.prepare_cached(
                    "DELETE FROM lines WHERE group_name = ?1 AND seq <= (
                        SELECT seq FROM lines WHERE group_name = ?1
                        ORDER BY seq DESC LIMIT 1 OFFSET ?2)",
                )?
                .execute(params![line.group, KEPT_LINES])
            })
            .map(|_| ())
            .map_err(internal)
        })
    }

    fn kept(&self, group: &str, count: usize) -> Result<Vec<GroupMessage>, CommandError> {
        self.with_open(|open| {
            let mut query = open
                .db
                .prepare_cached(
                    "SELECT seq, sender, text, sent_at_ms FROM lines WHERE group_name = ?1
                     ORDER BY seq DESC LIMIT ?2",
                )
                .map_err(internal)?;
            let mut lines = query
                .query_map(params![group, count as i64], |r| {
                    Ok(GroupMessage {
                        group: group.to_string(),
                        seq: r.get::<_, i64>(0)? as u64,
                        from: r.get(1)?,
                        text: r.get(2)?,
                        sealed: None,
                        time_ms: r.get::<_, i64>(3)? as u64,
                    })
                })
                .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
                .map_err(internal)?;
            lines.reverse();
            Ok(lines)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(seq: u64, text: &str) -> GroupMessage {
        GroupMessage {
            group: "g".into(),
            seq,
            from: "bob".into(),
            text: text.into(),
            sealed: None,
            time_ms: seq,
        }
    }

    #[test]
    fn lines_and_keys_are_kept_across_a_restart_in_owner_only_files() {
        let dir = tempfile::tempdir().unwrap();
        let session = Arc::new(Mutex::new(Session {
            server: "127.0.0.1:9".parse().unwrap(),
            user: Some("alice".into()),
            conversation: None,
        }));
        let store = GroupStore::new(dir.path().to_path_buf(), session.clone());
        let share =
            udpchat_core::crypto::sender_keys::OwnChain::generate(&mut rand::thread_rng()).share();
        let groups: &dyn PrivateGroups = &store;
        groups
            .keys(|k| k.accept("g", "bob", &share).unwrap())
            .unwrap();
        for (seq, text) in [(3, "one"), (5, "two"), (3, "one again")] {
            groups.keep(&line(seq, text)).unwrap();
        }
        drop(store);

        let again = GroupStore::new(dir.path().to_path_buf(), session);
        let groups: &dyn PrivateGroups = &again;
        let kept = groups.kept("g", 10).unwrap();
        let texts: Vec<&str> = kept.iter().map(|l| l.text.as_str()).collect();
        assert_eq!(texts, ["one", "two"], "oldest first, each once");
        assert_eq!(groups.kept("g", 1).unwrap()[0].text, "two");
        let known = groups
            .keys(|k| k.accept("g", "bob", &share).unwrap())
            .unwrap();
        assert!(!known, "the chain bob handed out was kept");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let path = dir.path().join("users/alice/groups.sqlite3");
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
    }
}
