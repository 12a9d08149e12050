//! Group chat as both ends see it: a group (name, owner, members) and one
//! message of a group's log. The server gives each accepted message a
//! sequence number; every member sees a group's messages in that order.
//!
//! Sequence numbers grow across all groups and are never reused (not even
//! after a group is deleted and its name taken again), so a client can
//! drop a message it has already shown by its number alone.

use serde::{Deserialize, Serialize};

/// How many messages the server keeps per group; older ones are dropped,
/// and a member away for longer misses them.
pub const HISTORY_LIMIT: usize = 1000;
/// How many messages `group history` shows unless told.
pub const DEFAULT_HISTORY: usize = 20;
/// The most members a group may have.
pub const MAX_MEMBERS: usize = 1000;

/// A group as its members see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupInfo {
    pub name: String,
    /// Who may add and remove members; `None` for a group the operator
    /// made (`udpchat-server group add`), which only the operator manages.
    pub owner: Option<String>,
    /// Whether anyone may `group join` it.
    pub open: bool,
    /// Sorted.
    pub members: Vec<String>,
}

/// One message of a group, as the server accepted it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupMessage {
    pub group: String,
    /// The server's order: larger is later.
    pub seq: u64,
    pub from: String,
    pub text: String,
    /// When the server accepted it (ms since the UNIX epoch).
    pub time_ms: u64,
}
