//! The server's durable state behind small traits, so a store shared by
//! several server nodes (PostgreSQL, say) can replace SQLite later. Here is
//! what the concerns share: the accounts trait ([`Store`]), the SQLite
//! connection and schema ([`SqliteStore`]), [`StoreError`] and what users
//! see of it, and [`blocking`], the one way the server calls the store.
//! Each concern's own tables are with the concern (`groups/store.rs`,
//! `mailbox/store.rs`). Calls are blocking: the server makes them on
//! blocking threads, never on the event loop.

mod sqlite;

pub use sqlite::SqliteStore;

use std::fmt::Display;

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
    #[error("store: {0}")]
    Database(#[from] rusqlite::Error),
    #[error("store: {0}")]
    Io(#[from] std::io::Error),
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
            e @ (StoreError::Database(_) | StoreError::Io(_)) => internal(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
