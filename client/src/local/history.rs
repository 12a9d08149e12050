//! The user's conversations on this client ([`History`]): every line shown
//! or written, in the user's file. A conversation keeps its newest
//! [`KEPT_LINES`] lines.

use std::collections::BTreeMap;

use rusqlite::{params, params_from_iter, Connection, Row};
use udpchat_core::error::{Code, CommandError};
use udpchat_core::history::{Conversation, History, Kept, Line, LineId, State, Unread};

use super::{internal, LocalStore};

/// Lines kept per conversation; older ones go.
pub const KEPT_LINES: i64 = 10_000;

/// Older lines are trimmed once per this many lines kept (not at every
/// line: trimming walks the conversation's index).
const TRIM_EVERY: i64 = 100;

/// The columns a kept line is read from, in order (see [`kept`]).
const COLUMNS: &str = "id, kind, name, sender, text, time_ms, number, outgoing, state, unread";

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
fn kept(r: &Row<'_>) -> rusqlite::Result<Kept> {
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
}

impl History for LocalStore {
    fn keep(&self, line: &Line) -> Result<Option<LineId>, CommandError> {
        let unread = self.comes_unread(line);
        self.with_open(|open| {
            let db = &open.db;
            let inserted = db
                .prepare_cached(
                    "INSERT INTO conversation_lines
                        (kind, name, sender, text, time_ms, number, outgoing, state, unread)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) ON CONFLICT DO NOTHING",
                )
                .and_then(|mut insert| {
                    insert.execute(params![
                        line.conversation.kind(),
                        line.conversation.name(),
                        line.from,
                        line.text,
                        line.time_ms as i64,
                        line.number.map(|n| n as i64),
                        line.outgoing,
                        line.state.word(),
                        unread,
                    ])
                })
                .map_err(internal)?;
            if inserted == 0 {
                return Ok(None);
            }
            let id = db.last_insert_rowid();
            if id % TRIM_EVERY == 0 {
                db.prepare_cached(
                    "DELETE FROM conversation_lines WHERE kind = ?1 AND name = ?2 AND id <= (
                        SELECT id FROM conversation_lines WHERE kind = ?1 AND name = ?2
                        ORDER BY id DESC LIMIT 1 OFFSET ?3)",
                )
                .and_then(|mut trim| {
                    trim.execute(params![
                        line.conversation.kind(),
                        line.conversation.name(),
                        KEPT_LINES
                    ])
                })
                .map_err(internal)?;
                *self.unread.lock() = count_unread(db).map_err(internal)?;
            } else if unread {
                *self
                    .unread
                    .lock()
                    .entry(line.conversation.clone())
                    .or_default() += 1;
            }
            Ok(Some(LineId(id)))
        })
    }

    fn settle(&self, id: LineId, state: State, number: Option<u64>) -> Result<(), CommandError> {
        self.with_open(|open| {
            open.db
                .prepare_cached(
                    "UPDATE conversation_lines SET state = ?2, number = coalesce(?3, number)
                     WHERE id = ?1",
                )
                .and_then(|mut update| {
                    update.execute(params![id.0, state.word(), number.map(|n| n as i64)])
                })
                .map(drop)
                .map_err(internal)
        })
    }

    fn settle_kept(&self, to: &str, number: u64, state: State) -> Result<(), CommandError> {
        self.with_open(|open| {
            open.db
                .prepare_cached(
                    "UPDATE conversation_lines SET state = ?3
                     WHERE kind = 'user' AND name = ?1 AND outgoing = 1 AND number = ?2",
                )
                .and_then(|mut update| update.execute(params![to, number as i64, state.word()]))
                .map(drop)
                .map_err(internal)
        })
    }

    fn last(&self, conversation: &Conversation, count: usize) -> Result<Vec<Kept>, CommandError> {
        self.with_open(|open| {
            let tx = open.db.transaction().map_err(internal)?;
            let mut lines = tx
                .prepare_cached(&format!(
                    "SELECT {COLUMNS} FROM conversation_lines WHERE kind = ?1 AND name = ?2
                     ORDER BY time_ms DESC, id DESC LIMIT ?3"
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
        self.with_open(|open| {
            let matching = vec!["text LIKE ? ESCAPE '\\'"; words.len()].join(" AND ");
            let mut lines = open
                .db
                .prepare(&format!(
                    "SELECT {COLUMNS} FROM conversation_lines WHERE {matching}
                     ORDER BY time_ms DESC, id DESC LIMIT {count}"
                ))
                .and_then(|mut query| {
                    query
                        .query_map(params_from_iter(words.iter().map(|w| containing(w))), kept)?
                        .collect::<Result<Vec<_>, _>>()
                })
                .map_err(internal)?;
            lines.reverse();
            Ok(lines)
        })
    }

    fn unread(&self) -> Result<Vec<Unread>, CommandError> {
        self.with_open(|open| {
            let counts = count_unread(&open.db).map_err(internal)?;
            let mut newest = open
                .db
                .prepare_cached(&format!(
                    "SELECT {COLUMNS} FROM conversation_lines
                     WHERE kind = ?1 AND name = ?2 AND unread = 1
                     ORDER BY time_ms DESC, id DESC LIMIT 1"
                ))
                .map_err(internal)?;
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

    fn named(&self, name: &str) -> Result<Option<Conversation>, CommandError> {
        self.with_open(|open| {
            open.db
                .prepare_cached(
                    "SELECT kind FROM conversation_lines WHERE name = ?1
                     ORDER BY time_ms DESC, id DESC LIMIT 1",
                )
                .and_then(|mut query| {
                    query
                        .query_map([name], |r| r.get::<_, String>(0))?
                        .next()
                        .transpose()
                })
                .map(|kind| kind.and_then(|kind| Conversation::from_words(&kind, name.into())))
                .map_err(internal)
        })
    }

    fn unread_count(&self) -> usize {
        self.unread.lock().len()
    }
}
