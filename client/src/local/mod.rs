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
use std::sync::{Arc, Weak};
use std::time::Duration;

use parking_lot::{Condvar, Mutex};
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
        id INTEGER PRIMARY KEY,
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

/// How long lines kept wait, at most, to be written with those that come
/// meanwhile: one transaction for a burst, not one per line (a commit
/// costs far more than a row).
const GATHER: Duration = Duration::from_millis(10);

pub struct LocalStore {
    data_dir: PathBuf,
    session: Arc<Mutex<Session>>,
    open: Arc<Mutex<Option<Opened>>>,
    /// Set (and the writer thread woken) when lines wait to be written.
    waiting: Arc<(Mutex<bool>, Condvar)>,
    /// The open user's unread lines per conversation, apart from the file
    /// so that the prompt never waits on it.
    unread: Mutex<BTreeMap<Conversation, usize>>,
}

/// One user's file and keys, open. The file and the writes waiting for it
/// have locks of their own: keeping a line only queues it, and never waits
/// for a commit (nor a checkpoint's fsync) under way.
struct Opened {
    user: String,
    db: Arc<Mutex<Connection>>,
    keys: GroupKeys,
    /// Lines (and what became of them) not yet written: the writer thread
    /// writes them within [`GATHER`], a read or a sign-out at once.
    pending: Arc<Mutex<Vec<history::Write>>>,
    /// The id the next line kept gets.
    next_id: i64,
}

impl LocalStore {
    pub fn new(data_dir: PathBuf, session: Arc<Mutex<Session>>) -> LocalStore {
        let store = LocalStore {
            data_dir,
            session,
            open: Arc::new(Mutex::new(None)),
            waiting: Arc::new((Mutex::new(false), Condvar::new())),
            unread: Mutex::new(BTreeMap::new()),
        };
        let (open, waiting) = (Arc::downgrade(&store.open), Arc::downgrade(&store.waiting));
        std::thread::Builder::new()
            .name("history writer".into())
            .spawn(move || write_in_batches(&open, &waiting))
            .expect("a thread for the history writer");
        store
    }

    /// Writes what waits to be written, now (the client is leaving).
    pub fn flush(&self) {
        let files = self.open.lock().as_ref().map(Opened::files);
        if let Some((db, pending)) = files {
            history::flush(&db, &pending);
        }
    }

    /// Tells the writer thread that lines wait.
    fn wake_writer(&self) {
        let (waiting, wake) = &*self.waiting;
        *waiting.lock() = true;
        wake.notify_one();
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
            if let Some(other) = open.as_ref() {
                other.flush();
            }
            let opened = Opened::open(&self.data_dir, &me)?;
            *self.unread.lock() = history::count_unread(&opened.db.lock()).map_err(internal)?;
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
        let next_id = db
            .query_row(
                "SELECT coalesce(max(id), 0) + 1 FROM conversation_lines",
                [],
                |r| r.get(0),
            )
            .map_err(|e| failed(&e))?;
        Ok(Opened {
            user: user.to_string(),
            db: Arc::new(Mutex::new(db)),
            keys: GroupKeys::with_received(received),
            pending: Arc::default(),
            next_id,
        })
    }

    /// The file and its waiting writes, to write them without the store's
    /// lock.
    fn files(&self) -> (Arc<Mutex<Connection>>, Arc<Mutex<Vec<history::Write>>>) {
        (self.db.clone(), self.pending.clone())
    }

    /// Writes what waits.
    fn flush(&self) {
        history::flush(&self.db, &self.pending);
    }
}

impl Drop for LocalStore {
    fn drop(&mut self) {
        self.flush();
        self.waiting.1.notify_all();
    }
}

/// The writer thread: once lines wait, gathers for [`GATHER`] and writes
/// them in one transaction, without the store's lock; ends when the store
/// is gone.
fn write_in_batches(open: &Weak<Mutex<Option<Opened>>>, waiting: &Weak<(Mutex<bool>, Condvar)>) {
    loop {
        let (Some(open), Some(waiting)) = (open.upgrade(), waiting.upgrade()) else {
            return;
        };
        {
            let (flag, wake) = &*waiting;
            let mut flag = flag.lock();
            if !*flag {
                // Bounded, so that a store dropped meanwhile ends the thread.
                wake.wait_for(&mut flag, Duration::from_secs(1));
            }
            if !std::mem::take(&mut *flag) {
                continue;
            }
        }
        std::thread::sleep(GATHER);
        let files = open.lock().as_ref().map(Opened::files);
        if let Some((db, pending)) = files {
            history::flush(&db, &pending);
        }
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
