//! A user's conversations as their client keeps them: every line of every
//! conversation, direct or in a group, read or written, with its time and,
//! for a direct message the user wrote, what became of it. The client keeps
//! them in its data dir ([`History`], behind `ClientContext::history`);
//! `history`, `search`, `chat` and `unread` read them back.

use std::fmt;

use crate::error::CommandError;
use crate::output::Output;

/// Whom a conversation is with: a user (direct messages) or a group.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Conversation {
    User(String),
    Group(String),
}

impl Conversation {
    /// The user's or group's name.
    pub fn name(&self) -> &str {
        match self {
            Conversation::User(name) | Conversation::Group(name) => name,
        }
    }

    /// `user` or `group`.
    pub fn kind(&self) -> &'static str {
        match self {
            Conversation::User(_) => "user",
            Conversation::Group(_) => "group",
        }
    }

    /// From the two words [`kind`](Self::kind) and [`name`](Self::name) give.
    pub fn from_words(kind: &str, name: String) -> Option<Conversation> {
        match kind {
            "user" => Some(Conversation::User(name)),
            "group" => Some(Conversation::Group(name)),
            _ => None,
        }
    }
}

impl fmt::Display for Conversation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What became of a line: how one that came reached the user, and where
/// one the user wrote got to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Came while the user was signed in.
    Received,
    /// Came from the server's store: written while the user was away.
    Kept,
    /// Shown though the sender's key could not be checked.
    Unverified,
    /// Written, on its way.
    Sending,
    /// Written and acknowledged by the recipient's client, directly.
    Delivered,
    /// Acknowledged by the recipient's client, through the server's relay.
    Relayed,
    /// Left on the server for a recipient who was away (the line's number is
    /// the server's id for it).
    Queued,
    /// Left on the server and since handed to its recipient.
    DeliveredLater,
    /// Not delivered, and not kept for the recipient either.
    Failed,
    /// Left on the server, and expired there before its recipient came.
    Expired,
    /// Written to a group and taken into its order by the server.
    Sent,
}

impl State {
    /// The word kept in the file and given in `--json`.
    pub fn word(self) -> &'static str {
        match self {
            State::Received => "received",
            State::Kept => "kept",
            State::Unverified => "unverified",
            State::Sending => "sending",
            State::Delivered => "delivered",
            State::Relayed => "relayed",
            State::Queued => "queued",
            State::DeliveredLater => "delivered-later",
            State::Failed => "failed",
            State::Expired => "expired",
            State::Sent => "sent",
        }
    }

    pub fn from_word(word: &str) -> Option<State> {
        ALL.into_iter().find(|state| state.word() == word)
    }

    /// How a line the user wrote shows in its history: nothing when it
    /// simply went.
    pub fn note(self) -> Option<&'static str> {
        match self {
            State::Sending => Some("sending"),
            State::Relayed => Some("relayed"),
            State::Queued => Some("left on the server: they were away"),
            State::DeliveredLater => Some("delivered later"),
            State::Failed => Some("not delivered"),
            State::Expired => Some("expired on the server"),
            State::Unverified => Some("sender not verified"),
            State::Received | State::Kept | State::Delivered | State::Sent => None,
        }
    }
}

const ALL: [State; 11] = [
    State::Received,
    State::Kept,
    State::Unverified,
    State::Sending,
    State::Delivered,
    State::Relayed,
    State::Queued,
    State::DeliveredLater,
    State::Failed,
    State::Expired,
    State::Sent,
];

/// A line of a conversation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub conversation: Conversation,
    /// Who wrote it.
    pub from: String,
    pub text: String,
    /// When it was written (the server's time for a group's line or a
    /// stored message), or shown, in ms since the Unix epoch.
    pub time_ms: u64,
    /// The group's number for the line, or the server's id of a message
    /// kept there: a line that comes again with the same number is kept
    /// once.
    pub number: Option<u64>,
    /// The sender's id of a direct message (the same on each copy it
    /// sends, PROTOCOL.md section 5.4): a copy that comes again is known
    /// by it. Not indexed, unlike `number`: each line that came would pay
    /// for an index, and only a copy is looked up.
    pub message_id: Option<u64>,
    /// Written by the user (on this client).
    pub outgoing: bool,
    pub state: State,
}

/// The number a kept line goes by in its file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LineId(pub i64);

/// A kept line, as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kept {
    pub id: LineId,
    pub line: Line,
    /// It came while the user was in another conversation, and they have
    /// not opened its own since.
    pub unread: bool,
}

/// Lines in a conversation that came while the user was talking to someone
/// else, not yet read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unread {
    pub conversation: Conversation,
    pub count: usize,
    /// The newest of them.
    pub last: Option<Line>,
}

/// A line that could not be kept: why, and the event that was to show it
/// (for the caller to show anyway).
#[derive(Debug)]
pub struct NotKept {
    pub why: CommandError,
    pub shown: Option<Output>,
}

/// The signed-in user's conversations, kept by their client.
pub trait History: Send + Sync {
    /// Keeps `line` (unread if it came while the user talks to someone
    /// else). A line that comes again (the number of one kept already,
    /// from the same sender at the same time, with the same text) is kept
    /// and shown once, whatever process kept it first; another line under
    /// a number already taken (a server that started afresh) is kept
    /// without it. `shown`, the event that shows it, is emitted once the
    /// line is written (in order with the others), so that what was shown
    /// is kept whatever happens to the client after.
    fn keep(&self, line: &Line, shown: Option<Output>) -> Result<LineId, Box<NotKept>>;
    /// What became of a line the user wrote; `number` when it now has one
    /// (the server's id of a message it keeps).
    fn settle(&self, id: LineId, state: State, number: Option<u64>) -> Result<(), CommandError>;
    /// What became of the message the server kept for `to` under `number`.
    fn settle_kept(&self, to: &str, number: u64, state: State) -> Result<(), CommandError>;
    /// The conversation's last `count` lines, oldest first; they are read
    /// now.
    fn last(&self, conversation: &Conversation, count: usize) -> Result<Vec<Kept>, CommandError>;
    /// The newest `count` lines, of any conversation, holding every one of
    /// `words` (case does not matter for ASCII letters), oldest first.
    fn search(&self, words: &[&str], count: usize) -> Result<Vec<Kept>, CommandError>;
    /// The conversations with unread lines, most recent first.
    fn unread(&self) -> Result<Vec<Unread>, CommandError>;
    /// The highest number of a line that came in `conversation` (not one
    /// the user wrote): in a group, the last of its messages this client
    /// kept, whatever process kept it.
    fn newest_number(&self, conversation: &Conversation) -> Result<Option<u64>, CommandError>;
    /// The line that came in `conversation` with `number` (not one the
    /// user wrote), if this client kept it, whatever process kept it;
    /// one kept and not written yet too. Nothing waiting is written for
    /// it (a copy of a message is looked up as it comes, its ACK held).
    fn came(&self, conversation: &Conversation, number: u64) -> Result<Option<Kept>, CommandError>;
    /// As [`History::came`], the line whose sender gave it `message_id`.
    fn came_with_id(
        &self,
        conversation: &Conversation,
        message_id: u64,
    ) -> Result<Option<Kept>, CommandError>;
    /// The conversation by that name that has the newest line, if any
    /// has lines (a user and a group may share a name).
    fn named(&self, name: &str) -> Result<Option<Conversation>, CommandError>;
    /// How many conversations have unread lines (for the prompt: answered
    /// from memory, never waits on the file).
    fn unread_count(&self) -> usize;
    /// Runs `then` once every line kept so far is written (at once when
    /// none waits): a push that brought a line is acknowledged then, so
    /// that a line its sender hears arrived is on disk.
    fn after_written(&self, then: Box<dyn FnOnce() + Send>) {
        then();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_state_reads_back_from_its_word() {
        for state in ALL {
            assert_eq!(State::from_word(state.word()), Some(state));
        }
        assert_eq!(State::from_word("lost"), None);
    }

    #[test]
    fn a_conversation_reads_back_from_its_words() {
        let bob = Conversation::User("bob".into());
        assert_eq!(
            Conversation::from_words(bob.kind(), bob.name().into()),
            Some(bob)
        );
        assert_eq!(Conversation::from_words("channel", "x".into()), None);
    }
}
