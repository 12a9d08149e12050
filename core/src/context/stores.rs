//! The server's stores, as its command handlers see them: accounts, the
//! mailbox of offline messages and prekeys, and groups with their logs.

use super::{BoxFuture, PeerId, Source};
use crate::crypto::keys::PublicKey;
use crate::error::CommandError;
use crate::group::{GroupInfo, GroupMessage, Kind, Post};
use crate::mailbox::{Bundle, PrekeyUpload, Stored};
use zeroize::Zeroizing;

/// Accounts, their passwords and identity keys. Hashing and storage run
/// off the event loop.
pub trait Accounts: Send + Sync {
    /// Creates an account with its identity key, asked for from `source`;
    /// `name-taken` if it exists, `throttled` when that source made too
    /// many accounts lately.
    fn sign_up(
        &self,
        user: &str,
        password: Zeroizing<String>,
        identity: PublicKey,
        source: Source,
    ) -> BoxFuture<'static, Result<(), CommandError>>;
    /// Checks a password tried from `source`; one generic
    /// `bad-credentials` error for an unknown user or a wrong password,
    /// `throttled` after repeated failures from that source.
    fn check_password(
        &self,
        user: &str,
        password: Zeroizing<String>,
        source: Source,
    ) -> BoxFuture<'static, Result<(), CommandError>>;
    /// Records a (new) identity key for the user.
    fn set_identity(
        &self,
        user: &str,
        identity: PublicKey,
    ) -> BoxFuture<'static, Result<(), CommandError>>;
    /// The user's identity key, if the user exists: for `lookup` and
    /// `whois`, so kept in memory for the next.
    fn identity(&self, user: &str) -> BoxFuture<'static, Result<Option<PublicKey>, CommandError>>;
    /// The same, for a sign-in to check the key its client offers: not
    /// kept in memory for it (a user signing in is not one anybody looked
    /// up yet).
    fn identity_to_check(
        &self,
        user: &str,
    ) -> BoxFuture<'static, Result<Option<PublicKey>, CommandError>> {
        self.identity(user)
    }
}

/// Prekeys and messages stored for offline users. The server keeps only
/// sealed bytes; a message is deleted once its recipient acknowledged it.
pub trait Mailbox: Send + Sync {
    /// Records a user's signed prekey and adds one-time prekeys; returns
    /// how many one-time prekeys the server now holds for the user.
    fn publish(
        &self,
        user: &str,
        upload: PrekeyUpload,
    ) -> BoxFuture<'static, Result<usize, CommandError>>;
    /// What a sender needs to seal for `user`, handing out (and deleting)
    /// one one-time prekey; also how many are left. `no-such-user` for an
    /// unknown user.
    /// `asker` gets a one-time prekey only while it has not taken too many
    /// of `user`'s lately; past that the bundle has none. With `one_time`
    /// false it has none either (a private group's keys are sealed to the
    /// signed prekey alone: they must not use up the user's one-time
    /// prekeys, which their mail needs).
    fn bundle(
        &self,
        asker: &str,
        user: &str,
        one_time: bool,
    ) -> BoxFuture<'static, Result<(Bundle, usize), CommandError>>;
    /// Stores a sealed message durably (the future resolves after the
    /// commit); `mailbox-full` or `too-large` past the limits.
    fn deposit(
        &self,
        from: &str,
        to: &str,
        sealed: Vec<u8>,
    ) -> BoxFuture<'static, Result<Stored, CommandError>>;
    /// Every message waiting for `user`, oldest first.
    fn pending(&self, user: &str) -> BoxFuture<'static, Result<Vec<Stored>, CommandError>>;
    /// Deletes a message its recipient acknowledged; returns it.
    fn take(&self, user: &str, id: u64)
        -> BoxFuture<'static, Result<Option<Stored>, CommandError>>;
}

/// Groups, their members and each group's ordered, durable message log
/// (see [`crate::group`]). Every call checks that the acting user may do
/// it: `no-such-group`, `not-a-member`, `not-allowed` otherwise.
pub trait Groups: Send + Sync {
    /// Makes a group owned by `owner`, with `owner` and `members` in it;
    /// `name-taken` if the name is in use, `no-such-user` for an unknown
    /// member.
    fn create(
        &self,
        owner: &str,
        group: &str,
        kind: Kind,
        members: Vec<String>,
    ) -> BoxFuture<'static, Result<GroupInfo, CommandError>>;
    /// Adds members (the owner only).
    fn add(
        &self,
        by: &str,
        group: &str,
        users: Vec<String>,
    ) -> BoxFuture<'static, Result<GroupInfo, CommandError>>;
    /// Removes members (the owner only).
    fn remove(
        &self,
        by: &str,
        group: &str,
        users: Vec<String>,
    ) -> BoxFuture<'static, Result<GroupInfo, CommandError>>;
    /// `user` joins an open group.
    fn join(&self, user: &str, group: &str) -> BoxFuture<'static, Result<GroupInfo, CommandError>>;
    /// `user` leaves; the group goes when its last member leaves.
    fn leave(&self, user: &str, group: &str) -> BoxFuture<'static, Result<(), CommandError>>;
    /// The group, for its members (and for anyone when it is open).
    fn info(&self, user: &str, group: &str) -> BoxFuture<'static, Result<GroupInfo, CommandError>>;
    /// The groups `user` is a member of, by name.
    fn of_member(&self, user: &str) -> BoxFuture<'static, Result<Vec<GroupInfo>, CommandError>>;
    /// Appends a message to the group's log (members only) and hands it
    /// to every other member: now to those online, in order, on their
    /// sessions; at their next sign-in to the others. Resolves once the
    /// message is stored.
    fn send(
        &self,
        from: &str,
        group: &str,
        post: Post,
    ) -> BoxFuture<'static, Result<GroupMessage, CommandError>>;
    /// The group's last `count` messages (members only), oldest first.
    fn history(
        &self,
        user: &str,
        group: &str,
        count: usize,
    ) -> BoxFuture<'static, Result<Vec<GroupMessage>, CommandError>>;
    /// `user` signed in on `peer`: shows the user's groups and delivers,
    /// in order and once, what the user has not received yet.
    fn signed_in(&self, user: &str, peer: PeerId);
}
