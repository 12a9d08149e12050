//! What the client keeps for the signed-in user in one SQLite file,
//! `users/NAME/chat.sqlite3` in the data dir (0600, as its `-wal` and
//! `-shm`): their conversations ([`History`](udpchat_core::history::History),
//! in `history`) and the sender keys others handed them in private groups
//! ([`PrivateGroups`](udpchat_core::context::PrivateGroups), in `groups`).
//! The user's own sender keys live in memory only (a new client makes new
//! ones, so no message key is used twice).
//!
//! The file is opened on first use, for the signed-in user or, just after
//! a sign-out, for the one who left: what reached the client before they
//! did is still read with their keys and kept in their file.

mod groups;
mod history;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::Mutex;
use rusqlite::Connection;
use udpchat_core::context::Session;
use udpchat_core::error::{Code, CommandError};
use udpchat_core::group_keys::GroupKeys;
use udpchat_core::history::Conversation;
use udpchat_core::private_files;

/// The file's name in the user's dir.
pub const FILE: &str = "chat.sqlite3";
/// Its name before it kept every conversation (only private groups').
const OLD_FILE: &str = "groups.sqlite3";

/// The schema's version (`PRAGMA user_version`): 1 kept private groups'
/// lines only, in `lines`; 2 keeps every conversation's.
const VERSION: i64 = 2;

const SCHEMA: &str = "
    CREATE TABLE IF NOT EXISTS received_chains (
        group_name TEXT NOT NULL,
        sender TEXT NOT NULL,
        chains BLOB NOT NULL,
        PRIMARY KEY (group_name, sender)
    ) STRICT;
    CREATE TABLE IF NOT EXISTS conversation_lines (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        kind TEXT NOT NULL,
        name TEXT NOT NULL,
        sender TEXT NOT NULL,
        text TEXT NOT NULL,
        time_ms INTEGER NOT NULL,
        number INTEGER,
        outgoing INTEGER NOT NULL,
        state TEXT NOT NULL,
        unread INTEGER NOT NULL DEFAULT 0
    ) STRICT;
    CREATE UNIQUE INDEX IF NOT EXISTS lines_numbered
        ON conversation_lines (kind, name, outgoing, number) WHERE number IS NOT NULL;
    CREATE INDEX IF NOT EXISTS lines_in_time ON conversation_lines (kind, name, time_ms, id);
    CREATE INDEX IF NOT EXISTS lines_unread ON conversation_lines (kind, name) WHERE unread = 1;";

/// Version 1's lines (a private group's, as read or sent) move into the
/// conversations' table.
const FROM_VERSION_1: &str = "
    INSERT OR IGNORE INTO conversation_lines
        (kind, name, sender, text, time_ms, number, outgoing, state)
        SELECT 'group', group_name, sender, text, sent_at_ms, seq, sender = ?1,
               CASE WHEN sender = ?1 THEN 'sent' ELSE 'received' END
        FROM lines;
    DROP TABLE lines;";

pub struct LocalStore {
    data_dir: PathBuf,
    session: Arc<Mutex<Session>>,
    open: Mutex<Option<Opened>>,
    /// The open user's unread lines per conversation, apart from the file
    /// so that the prompt never waits on it.
    unread: Mutex<BTreeMap<Conversation, usize>>,
}

/// One user's file and keys, open.
struct Opened {
    user: String,
    db: Connection,
    keys: GroupKeys,
}

impl LocalStore {
    pub fn new(data_dir: PathBuf, session: Arc<Mutex<Session>>) -> LocalStore {
        LocalStore {
            data_dir,
            session,
            open: Mutex::new(None),
            unread: Mutex::new(BTreeMap::new()),
        }
    }

    /// The signed-in user, or the one who just signed out.
    fn reader(&self) -> Option<String> {
        let signed_in = self.session.lock().user.clone();
        signed_in.or_else(|| self.open.lock().as_ref().map(|o| o.user.clone()))
    }

    /// Runs `f` on the reader's file and keys, opening them first (again
    /// after someone else signed in).
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
            let opened = Opened::open(&self.data_dir, &me)?;
            *self.unread.lock() = history::count_unread(&opened.db).map_err(internal)?;
            *open = Some(opened);
        }
        f(open.as_mut().expect("opened above"))
    }
}

impl Opened {
    fn open(data_dir: &Path, user: &str) -> Result<Opened, CommandError> {
        let dir = crate::trust::make_user_dir(data_dir, user)?;
        let path = dir.join(FILE);
        let failed = |e: &dyn std::fmt::Display| {
            CommandError::new(Code::Internal, format!("{}: {e}", path.display()))
        };
        moved_from_old_name(&dir).map_err(|e| failed(&e))?;
        private_files::file(&path).map_err(|e| failed(&e))?;
        for suffix in ["-wal", "-shm"] {
            private_files::tighten(&private_files::sibling(&path, suffix))
                .map_err(|e| failed(&e))?;
        }
        let mut db = Connection::open(&path).map_err(|e| failed(&e))?;
        db.pragma_update(None, "journal_mode", "WAL")
            .and_then(|_| db.pragma_update(None, "synchronous", "NORMAL"))
            .and_then(|_| migrate(&mut db, user))
            .map_err(|e| failed(&e))?;
        let received = groups::read_chains(&db).map_err(|e| failed(&e))?;
        Ok(Opened {
            user: user.to_string(),
            db,
            keys: GroupKeys::with_received(received),
        })
    }
}

/// A file of the first version, named for private groups only, takes the
/// new name (with its `-wal` and `-shm`), unless one has it already.
fn moved_from_old_name(dir: &Path) -> std::io::Result<()> {
    let (old, new) = (dir.join(OLD_FILE), dir.join(FILE));
    if !old.exists() || new.exists() {
        return Ok(());
    }
    for suffix in ["-wal", "-shm"] {
        let old = private_files::sibling(&old, suffix);
        if old.exists() {
            std::fs::rename(&old, private_files::sibling(&new, suffix))?;
        }
    }
    std::fs::rename(old, new)
}

/// Brings the file to [`VERSION`] in one transaction.
fn migrate(db: &mut Connection, user: &str) -> rusqlite::Result<()> {
    let tx = db.transaction()?;
    let version: i64 = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if version < VERSION {
        tx.execute_batch(SCHEMA)?;
        let had_lines: bool = tx.query_row(
            "SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = 'lines'",
            [],
            |r| r.get(0),
        )?;
        if had_lines {
            let (insert, drop) = FROM_VERSION_1.split_once(';').expect("two statements");
            tx.execute(insert, [user])?;
            tx.execute_batch(drop)?;
        }
        tx.pragma_update(None, "user_version", VERSION)?;
    }
    tx.commit()
}

fn internal(e: rusqlite::Error) -> CommandError {
    CommandError::new(Code::Internal, format!("conversations file: {e}"))
}

#[cfg(test)]
mod tests;
