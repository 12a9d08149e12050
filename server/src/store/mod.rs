//! The server's durable state behind a small trait, so a store shared by
//! several server nodes (PostgreSQL, say) can replace SQLite later. Calls
//! are blocking: the server makes them on blocking threads, never on the
//! event loop.

mod groups;
mod mailbox;
mod sqlite;

pub use groups::GroupStore;
pub use mailbox::{MailboxStore, Quota};
pub use sqlite::SqliteStore;

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
    #[error("{to} already holds as much from {from} as one sender may leave")]
    SenderShareFull { from: String, to: String },
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
