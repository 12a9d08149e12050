//! The user's conversations on this client ([`History`]): every line shown
//! or written, in the user's file. A conversation keeps its newest
//! [`KEPT_LINES`] lines. Lines are written by a writer thread, every line
//! queued while one commit runs in the next (see `write_in_batches`); a
//! line that came shows once written (so what was shown is kept, whatever
//! happens to the client after), and a read writes what waits first.

use std::collections::{BTreeMap, HashMap};

use rusqlite::{params, params_from_iter, Connection, Row};
use udpchat_core::error::{Code, CommandError};
use udpchat_core::history::{Conversation, History, Kept, Line, LineId, NotKept, State, Unread};
use udpchat_core::output::Output;
use udpchat_core::trims::Trims;

use super::came::By;
use super::{internal, Files, LocalStore};

/// Lines kept per conversation at least; older ones go a few at a time
/// (see [`udpchat_core::trims`]: up to a sixteenth more between trims).
pub const KEPT_LINES: usize = 10_000;

/// The columns a kept line is read from, in order (see [`kept`]).
pub(super) const COLUMNS: &str =
    "id, kind, name, sender, text, time_ms, number, outgoing, state, unread, message_id";

/// Counts the unread lines of each conversation.
pub(super) fn count_unread(db: &Connection) -> rusqlite::Result<BTreeMap<Conversation, usize>> {
    let mut query = db.prepare(
        "SELECT kind, name, count(*) FROM conversation_lines WHERE unread = 1 GROUP BY kind, name",
    )?;
    let rows = query.query_map([], |r| {
        Ok((
            r.get::<_, String>(0)?,
            r.get::<_, String>(1)?,
            r.get::<_, i64>(2)?,
        ))
    })?;
    let mut unread = BTreeMap::new();
    for row in rows {
        let (kind, name, count) = row?;
        if let Some(conversation) = Conversation::from_words(&kind, name) {
            unread.insert(conversation, count as usize);
        }
    }
    Ok(unread)
}

/// A line read back (columns as [`COLUMNS`] names them).
pub(super) fn kept(r: &Row<'_>) -> rusqlite::Result<Kept> {
    let kind: String = r.get(1)?;
    let state: String = r.get(8)?;
    let bad = |what: &str| {
        rusqlite::Error::FromSqlConversionFailure(
            0,
            rusqlite::types::Type::Text,
            format!("unknown {what}").into(),
        )
    };
    Ok(Kept {
        id: LineId(r.get(0)?),
        line: Line {
            conversation: Conversation::from_words(&kind, r.get(2)?)
                .ok_or_else(|| bad("conversation kind"))?,
            from: r.get(3)?,
            text: r.get(4)?,
            time_ms: r.get::<_, i64>(5)? as u64,
            number: r.get::<_, Option<i64>>(6)?.map(|n| n as u64),
            message_id: r.get::<_, Option<i64>>(10)?.map(|n| n as u64),
            outgoing: r.get(7)?,
            state: State::from_word(&state).ok_or_else(|| bad("state"))?,
        },
        unread: r.get(9)?,
    })
}

/// `LIKE` matching `word` anywhere, with its own `%`, `_` and `\` taken
/// literally.
fn containing(word: &str) -> String {
    let mut pattern = String::from("%");
    for c in word.chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

/// A write waiting in [`Opened::pending`](super::Opened).
// Nearly every write is a `Keep`: boxing its line would cost an
// allocation per line to shrink the few others.
#[allow(clippy::large_enum_variant)]
pub(super) enum Write {
    Keep {
        id: i64,
        line: Line,
        unread: bool,
        /// The event that shows it, once written.
        shown: Option<Output>,
    },
    Settle {
        id: i64,
        state: State,
        number: Option<u64>,
    },
    SettleKept {
        to: String,
        number: u64,
        state: State,
    },
    /// Runs once what was queued before it is written (and shown).
    Then(Box<dyn FnOnce() + Send>),
}

/// Writes what waits, in one transaction, in the order it was kept (taken
/// under the file's lock, so batches never pass each other), then shows
/// the lines that came, in that order, but for those the file held
/// already (see [`History::keep`]). A failure is logged: the lines still
/// show (only their keeping failed).
pub(super) fn flush(files: &Files) {
    let mut db = files.db.lock();
    let batch = std::mem::take(&mut *files.pending.lock());
    if batch.is_empty() {
        return;
    }
    let repeated = write(&mut db, &batch, &files.trims).unwrap_or_else(|e| {
        tracing::warn!(lines = batch.len(), "history: not written: {e}");
        Vec::new()
    });
    let mut then = Vec::new();
    for (index, write) in batch.into_iter().enumerate() {
        match write {
            Write::Keep {
                line,
                unread,
                shown,
                ..
            } => {
                if !repeated.contains(&index) {
                    if let Some(shown) = shown {
                        files.printer.emit(shown);
                    }
                } else if unread {
                    uncount(&mut files.unread.lock(), &line.conversation);
                }
            }
            Write::Then(after) => then.push(after),
            _ => {}
        }
    }
    // After the lines show: a push's acknowledgement, say.
    for after in then {
        after();
    }
}

/// One unread line less in `conversation`.
fn uncount(unread: &mut BTreeMap<Conversation, usize>, conversation: &Conversation) {
    if let Some(count) = unread.get_mut(conversation) {
        *count -= 1;
        if *count == 0 {
            unread.remove(conversation);
        }
    }
}

/// Every write in one transaction, trimming a conversation to its newest
/// [`KEPT_LINES`] when `trims` says so; returns where in `pending` the
/// lines are that the file held already.
fn write(
    db: &mut Connection,
    pending: &[Write],
    trims: &Trims<Conversation>,
) -> rusqlite::Result<Vec<usize>> {
    let tx = db.transaction()?;
    let mut repeated = Vec::new();
    // Lines kept in each conversation.
    let mut kept_in: HashMap<&Conversation, usize> = HashMap::new();
    for (index, write) in pending.iter().enumerate() {
        match write {
            Write::Keep {
                id, line, unread, ..
            } => {
                let mut kept = insert(&tx, *id, line, line.number, *unread)?;
                if !kept && line.number.is_some() {
                    if holds(&tx, line)? {
                        repeated.push(index);
                    } else {
                        // Its number is another line's: kept without it.
                        tracing::warn!(
                            "history: {} number {:?} came again with another line",
                            line.conversation,
                            line.number
                        );
                        kept = insert(&tx, *id, line, None, *unread)?;
                    }
                }
                if kept {
                    *kept_in.entry(&line.conversation).or_default() += 1;
                }
            }
            Write::Settle { id, state, number } => {
                tx.prepare_cached(
                    "UPDATE conversation_lines SET state = ?2, number = coalesce(?3, number)
                     WHERE id = ?1",
                )?
                .execute(params![id, state.word(), number.map(|n| n as i64)])?;
            }
            Write::SettleKept { to, number, state } => {
                tx.prepare_cached(
                    "UPDATE conversation_lines SET state = ?3
                     WHERE kind = 'user' AND name = ?1 AND outgoing = 1 AND number = ?2",
                )?
                .execute(params![to, *number as i64, state.word()])?;
            }
            Write::Then(_) => {}
        }
    }
    let mut trimmed = Vec::with_capacity(kept_in.len());
    for (conversation, count) in kept_in {
        let trim_to = trims.due(conversation, count);
        if let Some(keep) = trim_to {
            tx.prepare_cached(
                "DELETE FROM conversation_lines WHERE kind = ?1 AND name = ?2
                 AND (time_ms, id) <= (
                    SELECT time_ms, id FROM conversation_lines WHERE kind = ?1 AND name = ?2
                    ORDER BY time_ms DESC, id DESC LIMIT 1 OFFSET ?3)",
            )?
            .execute(params![
                conversation.kind(),
                conversation.name(),
                keep as i64
            ])?;
        }
        trimmed.push((conversation, count, trim_to));
    }
    tx.commit()?;
    for (conversation, count, trim_to) in trimmed {
        trims.committed(conversation, count, trim_to);
    }
    Ok(repeated)
}

/// Inserts `line` under `number`; `false` if a line with that number is
/// there already.
fn insert(
    db: &Connection,
    id: i64,
    line: &Line,
    number: Option<u64>,
    unread: bool,
) -> rusqlite::Result<bool> {
    let inserted = db
        .prepare_cached(
            "INSERT INTO conversation_lines
                (id, kind, name, sender, text, time_ms, number, outgoing, state, unread,
                 message_id)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11) ON CONFLICT DO NOTHING",
        )?
        .execute(params![
            id,
            line.conversation.kind(),
            line.conversation.name(),
            line.from,
            line.text,
            line.time_ms as i64,
            number.map(|n| n as i64),
            line.outgoing,
            line.state.word(),
            unread,
            line.message_id.map(|n| n as i64),
        ])?;
    Ok(inserted == 1)
}

/// Whether the file holds `line` already: its number, from the same
/// sender at the same time, with the same text.
fn holds(db: &Connection, line: &Line) -> rusqlite::Result<bool> {
    db.prepare_cached(
        "SELECT 1 FROM conversation_lines WHERE kind = ?1 AND name = ?2 AND outgoing = ?3
         AND number = ?4 AND sender = ?5 AND time_ms = ?6 AND text = ?7",
    )?
    .exists(params![
        line.conversation.kind(),
        line.conversation.name(),
        line.outgoing,
        line.number.map(|n| n as i64),
        line.from,
        line.time_ms as i64,
        line.text,
    ])
}

impl LocalStore {
    /// Whether a line that comes now is unread: the user is talking to
    /// someone else.
    fn comes_unread(&self, line: &Line) -> bool {
        if line.outgoing {
            return false;
        }
        let session = self.session.lock();
        session
            .conversation
            .as_deref()
            .is_some_and(|with| with != line.conversation.name())
    }

    /// Runs a query on the reader's file once what waits is written.
    fn read<T>(
        &self,
        query: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, CommandError> {
        self.with_open(|open| {
            flush(&open.files);
            query(&open.files.db.lock()).map_err(internal)
        })
    }
}

impl History for LocalStore {
    fn keep(&self, line: &Line, shown: Option<Output>) -> Result<LineId, Box<NotKept>> {
        let unread = self.comes_unread(line);
        let mut shown = Some(shown);
        let kept = self.with_open(|open| {
            let id = open.next_id;
            open.next_id += 1;
            open.files.pending.lock().push(Write::Keep {
                id,
                line: line.clone(),
                unread,
                shown: shown.take().flatten(),
            });
            Ok(id)
        });
        let id = kept.map_err(|why| {
            Box::new(NotKept {
                why,
                shown: shown.flatten(),
            })
        })?;
        if unread {
            *self
                .unread
                .lock()
                .entry(line.conversation.clone())
                .or_default() += 1;
        }
        self.wake_writer();
        Ok(LineId(id))
    }

    fn settle(&self, id: LineId, state: State, number: Option<u64>) -> Result<(), CommandError> {
        self.with_open(|open| {
            let mut pending = open.files.pending.lock();
            // Not written yet (delivered within the gathering): the line
            // goes in as it ended, with no update after.
            let waiting = pending.iter_mut().rev().find_map(|w| match w {
                Write::Keep { id: kept, line, .. } if *kept == id.0 => Some(line),
                _ => None,
            });
            match waiting {
                Some(line) => {
                    line.state = state;
                    line.number = number.or(line.number);
                }
                None => pending.push(Write::Settle {
                    id: id.0,
                    state,
                    number,
                }),
            }
            Ok(())
        })?;
        self.wake_writer();
        Ok(())
    }

    fn settle_kept(&self, to: &str, number: u64, state: State) -> Result<(), CommandError> {
        self.with_open(|open| {
            open.files.pending.lock().push(Write::SettleKept {
                to: to.to_string(),
                number,
                state,
            });
            Ok(())
        })?;
        self.wake_writer();
        Ok(())
    }

    fn last(&self, conversation: &Conversation, count: usize) -> Result<Vec<Kept>, CommandError> {
        self.with_open(|open| {
            flush(&open.files);
            let mut db = open.files.db.lock();
            let tx = db.transaction().map_err(internal)?;
            // A group's lines go in its one order, the server's numbers:
            // two lines of one commit may carry one millisecond, or a
            // later number an earlier time (each sender's clock was read
            // before the commit numbered them), and a member keeps their
            // own line when the answer comes, before a line numbered
            // ahead of it arrives.
            let order = match conversation {
                Conversation::Group(_) => "number DESC, time_ms DESC, id DESC",
                Conversation::User(_) => "time_ms DESC, id DESC",
            };
            let mut lines = tx
                .prepare_cached(&format!(
                    "SELECT {COLUMNS} FROM conversation_lines WHERE kind = ?1 AND name = ?2
                     ORDER BY {order} LIMIT ?3"
                ))
                .and_then(|mut query| {
                    query
                        .query_map(
                            params![conversation.kind(), conversation.name(), count as i64],
                            kept,
                        )?
                        .collect::<Result<Vec<_>, _>>()
                })
                .map_err(internal)?;
            tx.execute(
                "UPDATE conversation_lines SET unread = 0
                 WHERE kind = ?1 AND name = ?2 AND unread = 1",
                params![conversation.kind(), conversation.name()],
            )
            .map_err(internal)?;
            tx.commit().map_err(internal)?;
            self.unread.lock().remove(conversation);
            lines.reverse();
            Ok(lines)
        })
    }

    fn search(&self, words: &[&str], count: usize) -> Result<Vec<Kept>, CommandError> {
        if words.is_empty() {
            return Err(CommandError::new(Code::Usage, "search for what?"));
        }
        self.read(|db| {
            let matching = vec!["text LIKE ? ESCAPE '\\'"; words.len()].join(" AND ");
            let mut lines = db
                .prepare(&format!(
                    "SELECT {COLUMNS} FROM conversation_lines WHERE {matching}
                     ORDER BY time_ms DESC, id DESC LIMIT {count}"
                ))?
                .query_map(params_from_iter(words.iter().map(|w| containing(w))), kept)?
                .collect::<Result<Vec<_>, _>>()?;
            lines.reverse();
            Ok(lines)
        })
    }

    fn unread(&self) -> Result<Vec<Unread>, CommandError> {
        self.read(|db| {
            let counts = count_unread(db)?;
            let mut newest = db.prepare_cached(&format!(
                "SELECT {COLUMNS} FROM conversation_lines
                 WHERE kind = ?1 AND name = ?2 AND unread = 1
                 ORDER BY time_ms DESC, id DESC LIMIT 1"
            ))?;
            let mut unread = Vec::new();
            for (conversation, count) in &counts {
                let last = newest
                    .query_row(params![conversation.kind(), conversation.name()], kept)
                    .map(|k| k.line)
                    .ok();
                unread.push(Unread {
                    conversation: conversation.clone(),
                    count: *count,
                    last,
                });
            }
            unread.sort_by_key(|u| std::cmp::Reverse(u.last.as_ref().map(|l| l.time_ms)));
            *self.unread.lock() = counts;
            Ok(unread)
        })
    }

    fn newest_number(&self, conversation: &Conversation) -> Result<Option<u64>, CommandError> {
        self.read(|db| {
            db.prepare_cached(
                "SELECT max(number) FROM conversation_lines
                 WHERE kind = ?1 AND name = ?2 AND outgoing = 0",
            )?
            .query_row(params![conversation.kind(), conversation.name()], |r| {
                r.get::<_, Option<i64>>(0)
            })
            .map(|n| n.map(|n| n as u64))
        })
    }

    fn came(&self, conversation: &Conversation, number: u64) -> Result<Option<Kept>, CommandError> {
        self.came_by(conversation, By::Number(number))
    }

    fn came_with_id(
        &self,
        conversation: &Conversation,
        message_id: u64,
    ) -> Result<Option<Kept>, CommandError> {
        self.came_by(conversation, By::MessageId(message_id))
    }

    fn named(&self, name: &str) -> Result<Option<Conversation>, CommandError> {
        self.read(|db| {
            db.prepare_cached(
                "SELECT kind FROM conversation_lines WHERE name = ?1
                 ORDER BY time_ms DESC, id DESC LIMIT 1",
            )?
            .query_map([name], |r| r.get::<_, String>(0))?
            .next()
            .transpose()
            .map(|kind| kind.and_then(|kind| Conversation::from_words(&kind, name.into())))
        })
    }

    fn unread_count(&self) -> usize {
        self.unread.lock().len()
    }

    fn after_written(&self, then: Box<dyn FnOnce() + Send>) {
        let files = self.open.lock().as_ref().map(|o| o.files.clone());
        let Some(files) = files else {
            return then();
        };
        // Queued even when nothing waits: a batch taken may be under way.
        files.pending.lock().push(Write::Then(then));
        self.wake_writer();
    }
}
