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

mod came;
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
use udpchat_core::trims::Trims;

use crate::render::Printer;

/// The file's name in the user's dir.
pub const FILE: &str = "chat.sqlite3";
/// Its name before it kept every conversation (only private groups').
const OLD_FILE: &str = "groups.sqlite3";

/// The schema's version (`PRAGMA user_version`): 1 kept private groups'
/// lines only, in `lines`; 2 keeps every conversation's; 3 adds a direct
/// message's id (`message_id`).
const VERSION: i64 = 3;

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
        unread INTEGER NOT NULL DEFAULT 0,
        message_id INTEGER
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
    printer: Printer,
    session: Arc<Mutex<Session>>,
    open: Arc<Mutex<Option<Opened>>>,
    /// Set (and the writer thread woken) when lines wait to be written.
    waiting: Arc<(Mutex<bool>, Condvar)>,
    /// The open user's unread lines per conversation, apart from the file
    /// so that the prompt never waits on it.
    unread: Arc<Mutex<BTreeMap<Conversation, usize>>>,
}

/// One user's file and keys, open.
struct Opened {
    user: String,
    files: Files,
    keys: GroupKeys,
    /// The id the next line kept gets.
    next_id: i64,
}

/// The file and the writes waiting for it, each with a lock of its own,
/// so that queueing a line never waits for a commit under way, and one
/// commit holds every line queued while the last one ran (a group commit,
/// as the server's). A line that came is shown once its commit is done.
#[derive(Clone)]
pub(super) struct Files {
    db: Arc<Mutex<Connection>>,
    /// Lines (and what became of them) not yet written, in order.
    pending: Arc<Mutex<Vec<history::Write>>>,
    /// Where the lines are shown once written.
    printer: Printer,
    /// The unread counts, for a line counted as it was kept and then found
    /// in the file already.
    unread: Arc<Mutex<BTreeMap<Conversation, usize>>>,
    /// When a conversation is trimmed to its newest lines.
    trims: Arc<Trims<Conversation>>,
}

impl LocalStore {
    pub fn new(data_dir: PathBuf, session: Arc<Mutex<Session>>, printer: Printer) -> LocalStore {
        let store = LocalStore {
            data_dir,
            printer,
            session,
            open: Arc::new(Mutex::new(None)),
            waiting: Arc::new((Mutex::new(false), Condvar::new())),
            unread: Arc::default(),
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
        let files = self.open.lock().as_ref().map(|o| o.files.clone());
        if let Some(files) = files {
            history::flush(&files);
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
        self.reader_with(&self.open.lock())
    }

    /// [`reader`](Self::reader), with the store's lock held.
    fn reader_with(&self, open: &Option<Opened>) -> Option<String> {
        let signed_in = self.session.lock().user.clone();
        signed_in.or_else(|| open.as_ref().map(|o| o.user.clone()))
    }

    /// Runs `f` on the reader's file and keys, opening them first (again
    /// after someone else signed in).
    fn with_open<T>(
        &self,
        f: impl FnOnce(&mut Opened) -> Result<T, CommandError>,
    ) -> Result<T, CommandError> {
        let mut open = self.open.lock();
        let me = self
            .reader_with(&open)
            .ok_or_else(CommandError::not_signed_in)?;
        if open.as_ref().is_none_or(|o| o.user != me) {
            if let Some(other) = open.as_ref() {
                history::flush(&other.files);
            }
            let opened = Opened::open(&self.data_dir, &me, &self.printer, &self.unread)?;
            *self.unread.lock() =
                history::count_unread(&opened.files.db.lock()).map_err(internal)?;
            *open = Some(opened);
        }
        f(open.as_mut().expect("opened above"))
    }
}

impl Opened {
    fn open(
        data_dir: &Path,
        user: &str,
        printer: &Printer,
        unread: &Arc<Mutex<BTreeMap<Conversation, usize>>>,
    ) -> Result<Opened, CommandError> {
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
            files: Files {
                db: Arc::new(Mutex::new(db)),
                pending: Arc::default(),
                printer: printer.clone(),
                unread: unread.clone(),
                trims: Arc::new(Trims::new(history::KEPT_LINES)),
            },
            keys: GroupKeys::with_received(received),
            next_id,
        })
    }
}

impl Drop for LocalStore {
    fn drop(&mut self) {
        self.flush();
        self.waiting.1.notify_all();
    }
}

/// The writer thread: once lines wait, writes them in one transaction
/// (and then what came meanwhile), without the store's lock; ends when the
/// store is gone.
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
        let files = open.lock().as_ref().map(|o| o.files.clone());
        if let Some(files) = files {
            history::flush(&files);
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
        let has_ids: bool = tx.query_row(
            "SELECT count(*) > 0 FROM pragma_table_info('conversation_lines') WHERE name = 'message_id'",
            [],
            |r| r.get(0),
        )?;
        if !has_ids {
            tx.execute_batch("ALTER TABLE conversation_lines ADD COLUMN message_id INTEGER")?;
        }
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
