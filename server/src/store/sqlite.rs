//! The SQLite store: one file in the data dir, WAL mode, so a crash loses
//! nothing that was committed and readers don't block the writer. Here are
//! the connection, every concern's schema (one list of migrations) and the
//! users table; the group and mailbox queries are in `groups/store.rs` and
//! `mailbox/store.rs`.
//!
//! The file is made 0600 before SQLite opens it, so its `-wal` and `-shm`
//! files, which SQLite makes with the database's mode, are 0600 too;
//! whatever an older version left open to others is closed at open.

use std::path::Path;

use parking_lot::Mutex;
use rusqlite::config::DbConfig;
use rusqlite::{params, Connection, OptionalExtension};
use udpchat_core::private_files;

use super::{Account, Backend, Store, StoreError};

/// The schema, applied in order; `user_version` records how far.
const MIGRATIONS: &[&str] = &[
    "CREATE TABLE users (
        name TEXT PRIMARY KEY NOT NULL,
        password_hash TEXT NOT NULL,
        identity_key BLOB,
        created_at INTEGER NOT NULL DEFAULT (unixepoch())
    ) STRICT;",
    // Offline delivery: prekeys and sealed messages.
    "CREATE TABLE signed_prekeys (
        user TEXT PRIMARY KEY NOT NULL REFERENCES users(name) ON DELETE CASCADE,
        prekey BLOB NOT NULL
    ) STRICT;
    CREATE TABLE one_time_prekeys (
        user TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
        id INTEGER NOT NULL,
        prekey BLOB NOT NULL,
        PRIMARY KEY (user, id)
    ) STRICT;
    CREATE TABLE stored_messages (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        recipient TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
        sender TEXT NOT NULL,
        sent_at_ms INTEGER NOT NULL,
        sealed BLOB NOT NULL
    ) STRICT;
    CREATE INDEX stored_by_recipient ON stored_messages (recipient, id);",
    // Group chat: groups, members with their delivery cursor (the last
    // message their client acknowledged), and each group's message log.
    // `seq` grows across all groups and is never reused.
    "CREATE TABLE chat_groups (
        name TEXT PRIMARY KEY NOT NULL,
        owner TEXT REFERENCES users(name) ON DELETE SET NULL,
        open INTEGER NOT NULL DEFAULT 0,
        created_at INTEGER NOT NULL DEFAULT (unixepoch())
    ) STRICT;
    CREATE TABLE group_members (
        group_name TEXT NOT NULL REFERENCES chat_groups(name) ON DELETE CASCADE,
        user TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
        cursor INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (group_name, user)
    ) STRICT, WITHOUT ROWID;
    CREATE INDEX group_members_by_user ON group_members (user);
    CREATE TABLE group_messages (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        group_name TEXT NOT NULL REFERENCES chat_groups(name) ON DELETE CASCADE,
        sender TEXT NOT NULL,
        text TEXT NOT NULL,
        sent_at_ms INTEGER NOT NULL
    ) STRICT;
    CREATE INDEX group_messages_by_group ON group_messages (group_name, seq);",
    // Private groups: their messages are sealed by each sender (the
    // server keeps the sealed bytes, and `text` is empty). Groups made
    // before stay as they were: not private.
    "ALTER TABLE chat_groups ADD COLUMN private INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE group_messages ADD COLUMN sealed BLOB;",
];

/// The files SQLite keeps beside the database: `NAME-wal`, `NAME-shm`, and
/// `NAME-journal` (rollback journal mode, an older version's).
const SQLITE_FILES: [&str; 3] = ["-wal", "-shm", "-journal"];

pub struct SqliteStore {
    db: Mutex<Connection>,
    /// The file, for messages (`:memory:` in tests).
    path: String,
}

impl SqliteStore {
    /// Opens (or creates) the store at `path`, its directory 0700 and its
    /// files 0600.
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
            private_files::dir(dir)?;
        }
        private_files::file(path)?;
        for suffix in SQLITE_FILES {
            private_files::tighten(&private_files::sibling(path, suffix))?;
        }
        SqliteStore::setup(Connection::open(path)?, path.display().to_string())
    }

    /// A store in memory, for tests.
    #[cfg(test)]
    pub fn in_memory() -> SqliteStore {
        SqliteStore::setup(Connection::open_in_memory().unwrap(), ":memory:".into()).unwrap()
    }

    fn setup(db: Connection, path: String) -> Result<SqliteStore, StoreError> {
        db.pragma_update(None, "journal_mode", "WAL")?;
        // FULL: an acknowledged write survives power loss, not just a crash.
        db.pragma_update(None, "synchronous", "FULL")?;
        db.pragma_update(None, "foreign_keys", "ON")?;
        db.busy_timeout(std::time::Duration::from_secs(5))?;
        // A statement's plan is made once, not again whenever a value
        // bound to it may change it: without this, a group commit's cached
        // statements were prepared again at every step (`sqlite3Reprepare`).
        db.set_db_config(DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG, true)?;
        let version: i64 = db.pragma_query_value(None, "user_version", |row| row.get(0))?;
        if version > MIGRATIONS.len() as i64 {
            return Err(StoreError::NewerSchema {
                found: version as u32,
                known: MIGRATIONS.len() as u32,
            });
        }
        for (i, migration) in MIGRATIONS.iter().enumerate().skip(version.max(0) as usize) {
            db.execute_batch(migration)?;
            db.pragma_update(None, "user_version", i as i64 + 1)?;
        }
        Ok(SqliteStore {
            db: Mutex::new(db),
            path,
        })
    }

    pub(crate) fn db(&self) -> parking_lot::MutexGuard<'_, Connection> {
        self.db.lock()
    }

    /// Runs `write` on a connection that does not wait for the disk when it
    /// commits (`synchronous=NORMAL`): for what may be lost to a power cut
    /// (a group member's cursor: the client drops what it was shown
    /// twice). A process killed is still lost nothing, and the next FULL
    /// commit syncs the log this write went into.
    pub(crate) fn relaxed<T>(
        &self,
        write: impl FnOnce(&mut Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut db = self.db();
        db.pragma_update(None, "synchronous", "NORMAL")?;
        let written = write(&mut db);
        // Back to FULL before anyone else gets the connection, whatever
        // `write` did: every other write waits for the disk.
        db.pragma_update(None, "synchronous", "FULL")?;
        written
    }
}

impl Backend for SqliteStore {
    fn totals(&self) -> Result<super::Totals, StoreError> {
        Ok(self.db().query_row(super::TOTALS, [], |row| {
            Ok(super::Totals::from_columns(
                [row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?],
                row.get(4)?,
            ))
        })?)
    }

    fn describe(&self) -> String {
        format!("SQLite {}", self.path)
    }

    fn schema_version(&self) -> Result<u32, StoreError> {
        let version: i64 = self
            .db()
            .pragma_query_value(None, "user_version", |row| row.get(0))?;
        Ok(version as u32)
    }
}

impl Store for SqliteStore {
    fn create_user(&self, account: &Account) -> Result<(), StoreError> {
        let inserted = self.db().execute(
            "INSERT INTO users (name, password_hash) VALUES (?1, ?2) ON CONFLICT (name) DO NOTHING",
            params![account.name, account.password_hash],
        )?;
        if inserted == 0 {
            return Err(StoreError::UserExists(account.name.clone()));
        }
        Ok(())
    }

    fn user(&self, name: &str) -> Result<Option<Account>, StoreError> {
        let account = self
            .db()
            .query_row(
                "SELECT name, password_hash FROM users WHERE name = ?1",
                [name],
                |row| {
                    Ok(Account {
                        name: row.get(0)?,
                        password_hash: row.get(1)?,
                    })
                },
            )
            .optional()?;
        Ok(account)
    }

    fn set_password_hash(&self, name: &str, password_hash: &str) -> Result<(), StoreError> {
        self.db().execute(
            "UPDATE users SET password_hash = ?2 WHERE name = ?1",
            params![name, password_hash],
        )?;
        Ok(())
    }

    fn remove_user(&self, name: &str) -> Result<bool, StoreError> {
        Ok(self
            .db()
            .execute("DELETE FROM users WHERE name = ?1", [name])?
            > 0)
    }

    fn set_identity(&self, name: &str, identity: &[u8]) -> Result<(), StoreError> {
        let updated = self.db().execute(
            "UPDATE users SET identity_key = ?2 WHERE name = ?1",
            params![name, identity],
        )?;
        if updated == 0 {
            return Err(StoreError::NoSuchUser(name.to_string()));
        }
        Ok(())
    }

    fn identity(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let key = self
            .db()
            .query_row(
                "SELECT identity_key FROM users WHERE name = ?1",
                [name],
                |row| row.get::<_, Option<Vec<u8>>>(0),
            )
            .optional()?;
        Ok(key.flatten())
    }

    fn users(&self) -> Result<Vec<String>, StoreError> {
        let db = self.db();
        let mut query = db.prepare("SELECT name FROM users ORDER BY name")?;
        let names = query
            .query_map([], |row| row.get(0))?
            .collect::<Result<Vec<String>, _>>()?;
        Ok(names)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn account(name: &str) -> Account {
        Account {
            name: name.into(),
            password_hash: format!("hash-of-{name}"),
        }
    }

    #[test]
    fn accounts_survive_reopening_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("udpchat.sqlite3");
        SqliteStore::open(&path)
            .unwrap()
            .create_user(&account("carole"))
            .unwrap();
        let reopened = SqliteStore::open(&path).unwrap();
        assert_eq!(reopened.user("carole").unwrap(), Some(account("carole")));
    }

    #[cfg(unix)]
    fn mode(path: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[cfg(unix)]
    #[test]
    fn the_database_and_its_wal_and_shm_files_are_owner_only() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let path = data.join("udpchat.sqlite3");
        let store = SqliteStore::open(&path).unwrap();
        store.create_user(&account("alice")).unwrap();
        // SQLite made these itself, with the database's mode.
        let (wal, shm) = (
            private_files::sibling(&path, "-wal"),
            private_files::sibling(&path, "-shm"),
        );
        assert_eq!(
            [mode(&data), mode(&path), mode(&wal), mode(&shm)],
            [0o700, 0o600, 0o600, 0o600]
        );

        // Files an older version left open to all are closed at open.
        use std::os::unix::fs::PermissionsExt;
        for file in [&path, &wal, &shm] {
            std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
        let again = SqliteStore::open(&path).unwrap();
        assert_eq!(again.user("alice").unwrap(), Some(account("alice")));
        assert_eq!([mode(&path), mode(&wal), mode(&shm)], [0o600, 0o600, 0o600]);
    }
}
