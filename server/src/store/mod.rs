//! The server's durable state behind small traits, with two
//! implementations: the embedded SQLite file in the data dir (the default,
//! with nothing to set up) and PostgreSQL, which several server nodes can
//! share (`--database postgres://...`). Here is what the concerns share:
//! the accounts trait ([`Store`]), the whole of a store ([`Backend`]) and
//! how one is chosen ([`open`]), each implementation's connection and
//! schema ([`SqliteStore`], [`PgStore`]), [`StoreError`] and what users
//! see of it, and [`blocking`], the one way the server calls the store.
//! Each concern's own queries are with the concern (`groups/store.rs` and
//! `groups/postgres.rs`, `mailbox/store.rs` and `mailbox/postgres.rs`).
//! Calls are blocking: the server makes them on blocking threads, never on
//! the event loop.

mod postgres;
mod sqlite;
#[cfg(test)]
pub mod testing;
mod tls;

pub(crate) use postgres::Cached;
pub use postgres::PgStore;
pub use sqlite::SqliteStore;

use std::fmt::Display;
use std::path::Path;
use std::sync::Arc;

use udpchat_core::error::{Code, CommandError};

/// Why the store refused or failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    #[error("the user {0} already exists")]
    UserExists(String),
    #[error("no user {0}")]
    NoSuchUser(String),
    #[error("{0}'s mailbox is full")]
    MailboxFull(String),
    /// `messages` and `bytes` are one sender's share (see `Quota`).
    #[error("{to} already holds as much from {from} as one sender may leave")]
    SenderShareFull {
        from: String,
        to: String,
        messages: usize,
        bytes: usize,
    },
    #[error("the group {0} already exists")]
    GroupExists(String),
    #[error("no group {0}")]
    NoSuchGroup(String),
    #[error("{user} is not a member of {group}")]
    NotAMember { group: String, user: String },
    #[error("{0} is private, and the message is not sealed")]
    NotSealed(String),
    #[error("{0} is not private, and the message is sealed")]
    NotPrivate(String),
    #[error("the members of {0} are not those the message was sealed for")]
    MembersChanged(String),
    #[error("store: {0}")]
    Database(#[from] rusqlite::Error),
    #[error("store: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    /// No connection could be had from the pool: why, in one line.
    #[error("no connection to PostgreSQL: {0}")]
    Unreachable(String),
    #[error("store: {0}")]
    Config(String),
    #[error(
        "the database's schema is version {found}, newer than this udpchat-server knows \
         ({known}): run the newer udpchat-server"
    )]
    NewerSchema { found: u32, known: u32 },
    #[error("store: {0}")]
    Io(#[from] std::io::Error),
}

impl From<deadpool_postgres::PoolError> for StoreError {
    /// The innermost cause ("Connection refused (os error 111)", "password
    /// authentication failed for user ..."), without the pool's wrapping.
    fn from(e: deadpool_postgres::PoolError) -> StoreError {
        let mut cause: &dyn std::error::Error = &e;
        while let Some(inner) = cause.source() {
            cause = inner;
        }
        StoreError::Unreachable(cause.to_string())
    }
}

/// One account as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub name: String,
    /// The argon2id hash in PHC string form (salt and parameters inside).
    pub password_hash: String,
}

/// The durable state.
pub trait Store: Send + Sync {
    /// Adds an account; refuses a name that exists.
    fn create_user(&self, account: &Account) -> Result<(), StoreError>;
    /// The account of that name.
    fn user(&self, name: &str) -> Result<Option<Account>, StoreError>;
    /// Replaces an account's password hash (same password, new parameters).
    fn set_password_hash(&self, name: &str, password_hash: &str) -> Result<(), StoreError>;
    /// Removes an account; false when there was none.
    fn remove_user(&self, name: &str) -> Result<bool, StoreError>;
    /// Every account name, sorted.
    fn users(&self) -> Result<Vec<String>, StoreError>;
    /// Records the user's identity key (SEC1 bytes).
    fn set_identity(&self, name: &str, identity: &[u8]) -> Result<(), StoreError>;
    /// The user's identity key, if the user exists and has one.
    fn identity(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError>;
}

/// A whole store: accounts, mailbox and groups, in one database.
pub trait Backend: Store + crate::mailbox::MailboxStore + crate::groups::GroupStore {
    /// Which database, for logs and `udpchat-server migrate`: its kind and
    /// where it is, never a password.
    fn describe(&self) -> String;
    /// The schema version the database is at.
    fn schema_version(&self) -> Result<u32, StoreError>;
    /// The PostgreSQL store, which other server nodes may share.
    fn postgres(self: Arc<Self>) -> Option<Arc<PgStore>> {
        None
    }
    /// What the database holds, counted now ([`Totals`]).
    fn totals(&self) -> Result<Totals, StoreError>;
}

/// What the database holds, for `udpchat-server status` and the metrics
/// endpoint: the mail waiting is the queue an operator watches most.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Totals {
    pub accounts: u64,
    pub groups: u64,
    /// Messages kept for users who were offline, and for how many users.
    pub mail: u64,
    pub mail_recipients: u64,
    /// When the oldest of them was sent (ms since the epoch).
    pub oldest_mail_ms: Option<u64>,
}

/// The one query that counts [`Totals`], in both databases' SQL.
pub(crate) const TOTALS: &str = "SELECT (SELECT count(*) FROM users),
    (SELECT count(*) FROM chat_groups),
    (SELECT count(*) FROM stored_messages),
    (SELECT count(DISTINCT recipient) FROM stored_messages),
    (SELECT min(sent_at_ms) FROM stored_messages)";

impl Totals {
    /// From the five columns of [`TOTALS`] (counts are never negative).
    pub(crate) fn from_columns(counts: [i64; 4], oldest_mail_ms: Option<i64>) -> Totals {
        let [accounts, groups, mail, mail_recipients] = counts.map(|n| n.max(0) as u64);
        Totals {
            accounts,
            groups,
            mail,
            mail_recipients,
            oldest_mail_ms: oldest_mail_ms.map(|ms| ms.max(0) as u64),
        }
    }
}

/// The store `database` names (`postgres://...`, or `sqlite:PATH`), or
/// without one the SQLite file in `data_dir`. Opening migrates the schema.
/// `database_ca`: CA certificates to verify PostgreSQL's with over TLS.
pub fn open(
    database: Option<&str>,
    database_ca: Option<&Path>,
    data_dir: &Path,
) -> anyhow::Result<Arc<dyn Backend>> {
    use anyhow::Context as _;
    let store: Arc<dyn Backend> = match database {
        Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
            Arc::new(PgStore::open(url, database_ca)?)
        }
        _ if database_ca.is_some() => {
            anyhow::bail!("--database-ca is for a PostgreSQL database (--database postgres://...)")
        }
        Some(url) if url.starts_with("sqlite:") => {
            let path = Path::new(&url["sqlite:".len()..]);
            Arc::new(
                SqliteStore::open(path)
                    .with_context(|| format!("cannot open the store {}", path.display()))?,
            )
        }
        Some(_) => anyhow::bail!(
            "--database: expected postgres://USER:PASSWORD@HOST/DATABASE or sqlite:PATH"
        ),
        None => {
            let path = data_dir.join("udpchat.sqlite3");
            Arc::new(
                SqliteStore::open(&path)
                    .with_context(|| format!("cannot open the store {}", path.display()))?,
            )
        }
    };
    Ok(store)
}

/// Runs `job` (store calls, and whatever else blocks) on tokio's blocking
/// pool; its error becomes what the user sees (see the `From` below). A
/// job that panicked is an internal error.
pub async fn blocking<T, E>(
    job: impl FnOnce() -> Result<T, E> + Send + 'static,
) -> Result<T, CommandError>
where
    T: Send + 'static,
    E: Send + 'static,
    CommandError: From<E>,
{
    tokio::task::spawn_blocking(job)
        .await
        .map_err(internal)?
        .map_err(CommandError::from)
}

/// What went wrong on the server, logged; the user is only asked to try
/// again.
pub fn internal(e: impl Display) -> CommandError {
    tracing::error!("internal error: {e}");
    CommandError::new(
        Code::Internal,
        "the server could not complete that; try again",
    )
}

/// What users see of a store refusal; a failure is [`internal`].
impl From<StoreError> for CommandError {
    fn from(e: StoreError) -> CommandError {
        match e {
            StoreError::UserExists(name) => {
                CommandError::new(Code::NameTaken, format!("the name {name} is taken"))
            }
            StoreError::GroupExists(group) => {
                CommandError::new(Code::NameTaken, format!("the group name {group} is taken"))
            }
            StoreError::NoSuchGroup(group) => {
                CommandError::new(Code::NoSuchGroup, format!("No such group: {group}"))
            }
            StoreError::NotAMember { group, .. } => {
                CommandError::new(Code::NotAMember, format!("you are not a member of {group}"))
            }
            StoreError::NotSealed(group) => CommandError::new(
                Code::BadRequest,
                format!("{group} is private: its messages must be end-to-end encrypted"),
            ),
            StoreError::NotPrivate(group) => CommandError::new(
                Code::BadRequest,
                format!("{group} is not private: its messages go in the clear"),
            ),
            StoreError::MembersChanged(group) => CommandError::new(
                Code::MembersChanged,
                format!("the members of {group} changed since your key was handed out"),
            ),
            StoreError::NoSuchUser(user) => {
                CommandError::new(Code::NoSuchUser, format!("No such user: {user}"))
            }
            StoreError::MailboxFull(user) => CommandError::new(
                Code::MailboxFull,
                format!("{user}'s mailbox is full; not queued"),
            ),
            StoreError::SenderShareFull {
                to,
                messages,
                bytes,
                ..
            } => CommandError::new(
                Code::MailboxFull,
                format!(
                    "{to} already has {messages} messages or {} KiB from you waiting; not queued",
                    bytes / 1024
                ),
            ),
            e @ (StoreError::Database(_)
            | StoreError::Postgres(_)
            | StoreError::Unreachable(_)
            | StoreError::Config(_)
            | StoreError::NewerSchema { .. }
            | StoreError::Io(_)) => internal(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{on_every_store, with_users};
    use super::*;

    fn account(name: &str) -> Account {
        Account {
            name: name.into(),
            password_hash: format!("hash-of-{name}"),
        }
    }

    fn accounts_are_added_once_found_and_removed(store: &dyn Backend) {
        store.create_user(&account("bob")).unwrap();
        store.create_user(&account("alice")).unwrap();
        assert!(matches!(
            store.create_user(&account("alice")),
            Err(StoreError::UserExists(_))
        ));
        assert_eq!(store.user("alice").unwrap(), Some(account("alice")));
        assert_eq!(store.users().unwrap(), ["alice", "bob"], "sorted");
        assert!(store.remove_user("alice").unwrap());
        assert!(!store.remove_user("alice").unwrap());
        assert_eq!(store.user("alice").unwrap(), None);
        assert_eq!(store.users().unwrap(), ["bob"]);
    }

    fn identity_keys_and_password_hashes_are_kept_per_user(store: &dyn Backend) {
        with_users(store, &["alice"]);
        assert_eq!(store.identity("alice").unwrap(), None, "none yet");
        store.set_identity("alice", b"key one").unwrap();
        store.set_identity("alice", b"key two").unwrap();
        assert_eq!(
            store.identity("alice").unwrap().as_deref(),
            Some(&b"key two"[..])
        );
        assert!(matches!(
            store.set_identity("zed", b"key"),
            Err(StoreError::NoSuchUser(_))
        ));
        assert_eq!(store.identity("zed").unwrap(), None);
        store.set_password_hash("alice", "rehashed").unwrap();
        assert_eq!(
            store.user("alice").unwrap().unwrap().password_hash,
            "rehashed"
        );
    }

    fn a_removed_user_takes_their_mail_prekeys_and_memberships_along(store: &dyn Backend) {
        with_users(store, &["alice", "bob"]);
        store
            .publish_prekeys("bob", b"signed", &[(1, b"a".to_vec())])
            .unwrap();
        let mail = udpchat_core::mailbox::Stored {
            id: 0,
            from: "alice".into(),
            to: "bob".into(),
            sent_at_ms: 1,
            sealed: vec![1; 8],
        };
        store.deposit(&mail, &crate::mailbox::QUOTA).unwrap();
        store
            .create_group(
                "group1",
                Some("bob"),
                crate::groups::Kind::default(),
                &["alice".into(), "bob".into()],
            )
            .unwrap();
        assert!(store.remove_user("bob").unwrap());
        assert!(store.pending("bob").unwrap().is_empty());
        assert_eq!(store.take_prekeys("bob", true).unwrap(), None);
        let group = store.group("group1").unwrap().unwrap();
        assert_eq!(group.members, ["alice"]);
        assert_eq!(group.owner, None, "the owner's account is gone");
    }

    on_every_store!(
        accounts_are_added_once_found_and_removed,
        identity_keys_and_password_hashes_are_kept_per_user,
        a_removed_user_takes_their_mail_prekeys_and_memberships_along,
    );

    fn seen(e: StoreError) -> (Code, String) {
        let e = CommandError::from(e);
        (e.code, e.message)
    }

    #[test]
    fn refusals_read_as_before_and_failures_say_only_try_again() {
        assert_eq!(
            seen(StoreError::SenderShareFull {
                from: "mallory".into(),
                to: "bob".into(),
                messages: 250,
                bytes: 4 * 1024 * 1024,
            }),
            (
                Code::MailboxFull,
                "bob already has 250 messages or 4096 KiB from you waiting; not queued".into()
            )
        );
        assert_eq!(
            seen(StoreError::NotAMember {
                group: "group1".into(),
                user: "carol".into(),
            }),
            (Code::NotAMember, "you are not a member of group1".into())
        );
        assert_eq!(
            seen(StoreError::UserExists("alice".into())),
            (Code::NameTaken, "the name alice is taken".into())
        );
        let (code, message) = seen(StoreError::Io(std::io::Error::other("disk on fire")));
        assert_eq!(code, Code::Internal);
        assert!(!message.contains("disk"), "{message}");
    }

    #[tokio::test]
    async fn a_job_that_panics_is_an_internal_error() {
        let failed = blocking(|| -> Result<(), StoreError> { panic!("a bug") })
            .await
            .unwrap_err();
        assert_eq!(failed.code, Code::Internal);
    }
}
