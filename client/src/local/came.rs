//! A line that came, looked up by its number or by its sender's message
//! id (a copy that comes again is known by them): in the lines waiting to
//! be written, then in the file, writing nothing first.

use rusqlite::{params, Connection};
use udpchat_core::error::CommandError;
use udpchat_core::history::{Conversation, Kept, Line, LineId};

use super::history::{kept, Write, COLUMNS};
use super::{internal, LocalStore};

/// What a line that came is looked up by.
#[derive(Debug, Clone, Copy)]
pub(super) enum By {
    Number(u64),
    MessageId(u64),
}

impl By {
    /// The column it is in, and the value.
    fn column(self) -> (&'static str, u64) {
        match self {
            By::Number(number) => ("number", number),
            By::MessageId(id) => ("message_id", id),
        }
    }

    fn matches(self, line: &Line) -> bool {
        match self {
            By::Number(number) => line.number == Some(number),
            By::MessageId(id) => line.message_id == Some(id),
        }
    }
}

/// The line in the file that came in `conversation` as `by` says.
fn came_written(
    db: &Connection,
    conversation: &Conversation,
    by: By,
) -> rusqlite::Result<Option<Kept>> {
    let (column, value) = by.column();
    db.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM conversation_lines
         WHERE kind = ?1 AND name = ?2 AND outgoing = 0 AND {column} = ?3"
    ))?
    .query_map(
        params![conversation.kind(), conversation.name(), value as i64],
        kept,
    )?
    .next()
    .transpose()
}

impl LocalStore {
    /// The line that came in `conversation` as `by` says, written or
    /// waiting to be. Nothing waiting is written first (the other reads do
    /// that: a commit, which a direct message's held ACK would then wait
    /// on). The writer takes what waits under the file's lock and gives it
    /// back written, so a line is in one place or the other: what waits is
    /// looked at first.
    pub(super) fn came_by(
        &self,
        conversation: &Conversation,
        by: By,
    ) -> Result<Option<Kept>, CommandError> {
        self.with_open(|open| {
            let waiting = open
                .files
                .pending
                .lock()
                .iter()
                .find_map(|write| match write {
                    Write::Keep {
                        id, line, unread, ..
                    } if !line.outgoing
                        && by.matches(line)
                        && line.conversation == *conversation =>
                    {
                        Some(Kept {
                            id: LineId(*id),
                            line: line.clone(),
                            unread: *unread,
                        })
                    }
                    _ => None,
                });
            if waiting.is_some() {
                return Ok(waiting);
            }
            came_written(&open.files.db.lock(), conversation, by).map_err(internal)
        })
    }
}
