//! `history <user|group> [N]`: the last N lines (20 unless told) of a
//! conversation, direct or in a group, as this client kept them: what the
//! user read and wrote, with its time and, for a message they wrote, what
//! became of it. The helpers here keep every line shown or written (the
//! message commands call [`keep`]) and draw kept lines for `history`,
//! `search`, `chat` and `unread`.

use serde_json::{json, Value};
use udpchat_core::args::{Arg, ArgKind, Args};
use udpchat_core::context::Client;
use udpchat_core::error::CommandError;
use udpchat_core::history::{Conversation, Kept, Line, LineId, NotKept, State};
use udpchat_core::names::check_user_name;
use udpchat_core::output::{continued, Output};
use udpchat_core::register;
use udpchat_core::registry::{Command, Shell};

/// Lines shown unless told, and at most.
pub const DEFAULT_LINES: usize = 20;
pub const MOST_LINES: usize = 1_000;

/// `history`: the shell command.
pub struct ShowHistory;

register! {
    Command::new("history", "Show your last N lines with a user or in a group (20 unless told).")
        .args(&[Arg::one("user|group", ArgKind::UserOrGroup), Arg::optional("N", ArgKind::Number)])
        .examples(&["history bob", "history group1 100"])
        .shell::<ShowHistory>()
}

impl Shell for ShowHistory {
    async fn run(client: Client, args: Args) -> Result<(), CommandError> {
        let name = args.word(0);
        check_user_name(name)?;
        let count = count(&args, 1, DEFAULT_LINES, MOST_LINES)?;
        let conversation = conversation(&client, name)?;
        let lines = client.history().last(&conversation, count)?;
        client.emit(shown(&conversation, &lines));
        Ok(())
    }
}

/// The optional line count at `index` (`history`, `group history`):
/// `default` when left off, else from 1 to `most`.
pub(crate) fn count(
    args: &Args,
    index: usize,
    default: usize,
    most: usize,
) -> Result<usize, CommandError> {
    match args.get(index) {
        None => Ok(default),
        Some(n) => match n.parse::<usize>() {
            Ok(n) if (1..=most).contains(&n) => Ok(n),
            _ => Err(args.usage_error(&format!("N is a number from 1 to {most}"))),
        },
    }
}

/// The conversation `name` stands for: one of the user's groups, else
/// the one of that name with the newest line, else the user `name`.
pub fn conversation(client: &Client, name: &str) -> Result<Conversation, CommandError> {
    if client.groups().keys(|k| k.is_private(name))?.is_some() {
        return Ok(Conversation::Group(name.to_string()));
    }
    Ok(client
        .history()
        .named(name)?
        .unwrap_or_else(|| Conversation::User(name.to_string())))
}

/// Keeps a line written (`shown: None`), or one that came and shows it
/// (`shown`) once it is kept; a failure to keep it is said, and the line
/// still goes or shows (then `None`).
pub fn keep(client: &Client, line: &Line, shown: Option<Output>) -> Option<LineId> {
    match client.history().keep(line, shown) {
        Ok(id) => Some(id),
        Err(not_kept) => {
            let NotKept { why, shown } = *not_kept;
            client.emit(Output::error(&CommandError::new(
                why.code,
                format!("this line is not kept in your history: {}", why.message),
            )));
            if let Some(shown) = shown {
                client.emit(shown);
            }
            None
        }
    }
}

/// Resolves once every line kept so far is written to the user's history
/// (see [`History::after_written`](udpchat_core::history::History::after_written)):
/// what a receipt waits for before the server deletes its message.
pub async fn written(client: &Client) {
    let (done, written) = tokio::sync::oneshot::channel();
    client.history().after_written(Box::new(move || {
        let _ = done.send(());
    }));
    let _ = written.await;
}

/// What became of a line the user wrote, kept (a failure is only logged:
/// what the user sees is the delivery notice itself).
pub fn settle(client: &Client, id: Option<LineId>, state: State, number: Option<u64>) {
    if let Some(id) = id {
        if let Err(e) = client.history().settle(id, state, number) {
            tracing::warn!("history: {}", e.message);
        }
    }
}

/// `HH:MM` today, `YYYY-MM-DD HH:MM` before, in local time.
pub fn when(ms: u64) -> String {
    use chrono::{Local, TimeZone};
    let Some(at) = Local.timestamp_millis_opt(ms as i64).single() else {
        return "?".into();
    };
    if at.date_naive() == Local::now().date_naive() {
        at.format("%H:%M").to_string()
    } else {
        at.format("%Y-%m-%d %H:%M").to_string()
    }
}

/// One kept line as text: `20:31 <bob> hi`, with what became of a line
/// the user wrote when it did not simply go.
pub fn line_text(kept: &Kept) -> String {
    let line = &kept.line;
    let mut text = format!(
        "{} <{}> {}",
        when(line.time_ms),
        line.from,
        continued(&line.text)
    );
    if let Some(note) = line.state.note() {
        text.push_str(&format!(" ({note})"));
    }
    text
}

/// One kept line in `--json`.
pub fn line_json(kept: &Kept, with_conversation: bool) -> Value {
    let line = &kept.line;
    let mut value = json!({
        "time": line.time_ms,
        "from": line.from,
        "text": line.text,
        "direction": if line.outgoing { "out" } else { "in" },
        "state": line.state.word(),
    });
    if kept.unread {
        value["unread"] = true.into();
    }
    if with_conversation {
        value["with"] = line.conversation.name().into();
        value["kind"] = line.conversation.kind().into();
    }
    value
}

/// The `history` event: a conversation's lines, oldest first.
pub fn shown(conversation: &Conversation, lines: &[Kept]) -> Output {
    let text = if lines.is_empty() {
        match conversation {
            Conversation::User(user) => format!("No messages with {user} yet"),
            Conversation::Group(group) => format!("No messages in {group} yet"),
        }
    } else {
        lines.iter().map(line_text).collect::<Vec<_>>().join("\n")
    };
    Output::new("history", text)
        .with("with", conversation.name())
        .with("kind", conversation.kind())
        .with(
            "lines",
            lines
                .iter()
                .map(|k| line_json(k, false))
                .collect::<Vec<_>>(),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kept(from: &str, text: &str, outgoing: bool, state: State) -> Kept {
        Kept {
            id: LineId(1),
            line: Line {
                conversation: Conversation::User("bob".into()),
                from: from.into(),
                text: text.into(),
                time_ms: udpchat_core::now_ms(),
                number: None,
                message_id: None,
                outgoing,
                state,
            },
            unread: false,
        }
    }

    #[test]
    fn a_conversation_shows_who_wrote_what_and_what_did_not_simply_go() {
        let lines = [
            kept("bob", "hi alice", false, State::Received),
            kept("alice", "hi bob", true, State::Delivered),
            kept("alice", "are you there?", true, State::Queued),
        ];
        let out = shown(&Conversation::User("bob".into()), &lines);
        let shown: Vec<&str> = out.text.lines().map(|l| &l[6..]).collect();
        assert_eq!(
            shown,
            [
                "<bob> hi alice",
                "<alice> hi bob",
                "<alice> are you there? (left on the server: they were away)"
            ]
        );
        assert_eq!(out.data["lines"][1]["direction"], "out");
        assert_eq!(out.data["lines"][2]["state"], "queued");
        assert_eq!(
            super::shown(&Conversation::Group("g".into()), &[]).text,
            "No messages in g yet"
        );
    }
}
