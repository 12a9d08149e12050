//! Group chat as both ends see it: a group (name, owner, members) and one
//! message of a group's log. The server gives each accepted message a
//! sequence number; every member sees a group's messages in that order.
//!
//! Sequence numbers grow across all groups and are never reused (not even
//! after a group is deleted and its name taken again), so a client can
//! drop a message it has already shown by its number alone.

use serde::{Deserialize, Serialize};

/// How many messages the server keeps per group at least; older ones are
/// dropped (a few at a time: up to a sixteenth more are kept between
/// trims), and a member away for longer misses them.
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
    /// Whether its messages are end-to-end encrypted by their senders
    /// (`crypto::sender_keys`): the server stores and forwards only
    /// ciphertext. Groups made before private groups existed are not.
    #[serde(default)]
    pub private: bool,
}

/// What a group is when it is made: whether anyone may join it, and
/// whether its messages are sealed by their senders (the default for a
/// new group). The default here is neither, as groups were before.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Kind {
    pub open: bool,
    pub private: bool,
}

/// One message of a group, as the server accepted it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupMessage {
    pub group: String,
    /// The server's order: larger is later.
    pub seq: u64,
    pub from: String,
    /// The text, in a group that is not private; empty in one that is.
    pub text: String,
    /// In a private group: the CBOR `crypto::sender_keys::SealedLine` its
    /// sender sealed.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "serde_bytes")]
    pub sealed: Option<Vec<u8>>,
    /// When the server accepted it (ms since the UNIX epoch).
    pub time_ms: u64,
}

/// What a member sends to a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Post {
    /// A line in the clear (a group that is not private).
    Plain(String),
    /// A private group's message: the CBOR `crypto::sender_keys::SealedLine`,
    /// and the [`members_digest`] of the members it was sealed for.
    Sealed {
        line: Vec<u8>,
        members: [u8; MEMBERS_DIGEST_LEN],
    },
}

impl Post {
    /// As it is stored: the text (empty when sealed) and the sealed bytes.
    pub fn parts(&self) -> (&str, Option<&[u8]>) {
        match self {
            Post::Plain(text) => (text, None),
            Post::Sealed { line, .. } => ("", Some(line)),
        }
    }
}

/// The length of [`members_digest`].
pub const MEMBERS_DIGEST_LEN: usize = 16;

/// What a private group's sender says it sealed its key for: a digest of
/// the members (itself included), which the server compares with the
/// group's members as they are when it stores the message
/// (`members-changed` when they differ). SHA-256 over the sorted names,
/// each followed by a zero byte, truncated to 16 bytes.
pub fn members_digest<S: AsRef<str>>(members: &[S]) -> [u8; MEMBERS_DIGEST_LEN] {
    use sha2::{Digest, Sha256};
    let mut names: Vec<&str> = members.iter().map(AsRef::as_ref).collect();
    names.sort_unstable();
    names.dedup();
    let mut hash = Sha256::new();
    for name in names {
        hash.update(name.as_bytes());
        hash.update([0]);
    }
    let mut digest = [0u8; MEMBERS_DIGEST_LEN];
    digest.copy_from_slice(&hash.finalize()[..MEMBERS_DIGEST_LEN]);
    digest
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_members_digest_ignores_order_and_repeats_and_sees_any_change() {
        let d = members_digest(&["bob", "alice"]);
        assert_eq!(d, members_digest(&["alice", "bob", "bob"]));
        assert_ne!(d, members_digest(&["alice"]));
        assert_ne!(d, members_digest(&["alice", "bob", "carol"]));
        // Names are separated: "ab" + "c" is not "a" + "bc".
        assert_ne!(members_digest(&["ab", "c"]), members_digest(&["a", "bc"]));
    }
}
