//! `group-message` (packet): a group's message, pushed by the server to
//! each member: `[group1] <bob>: hello everyone`. The body is a
//! `udpchat_core::group::GroupMessage`. Only the server this client is
//! signed in to may push one.

use std::collections::HashMap;
use std::net::SocketAddr;

use parking_lot::Mutex;
use udpchat_core::context::{Client, Sender};
use udpchat_core::error::{Code, CommandError};
use udpchat_core::event::{Event, Names, Pen};
use udpchat_core::group::GroupMessage as Line;
use udpchat_core::history::{self, Conversation, State};
use udpchat_core::names::{check_group_name, check_user_name};
use udpchat_core::output::{continued, Output};
use udpchat_core::packet::{Packet, Push};
use udpchat_core::register;
use udpchat_core::registry::{Command, OnPush};

use crate::message::check_text;
use crate::private::Opened;

/// `group-message`: the push and its handler.
pub struct GroupMessage;

impl Packet for GroupMessage {
    const TAG: &'static str = "group-message";
}

impl Push for GroupMessage {
    const SERVER_ONLY: bool = true;
    const ACK_AT_ONCE: bool = false;
    type Body = Line;
}

register! {
    Command::new(GroupMessage::TAG, "A group's message, from the server.")
        .on_push::<GroupMessage>()
}

register! {
    Event::new("group-message").on_its_own().look(look).names(met_sender)
}

impl OnPush for GroupMessage {
    async fn on_push(client: Client, _: Sender, message: Line) -> Result<(), CommandError> {
        check(&message)?;
        show(&client, std::slice::from_ref(&message)).await;
        Ok(())
    }
}

/// What a client checks of a group's message before reading it.
pub(crate) fn check(message: &Line) -> Result<(), CommandError> {
    check_group_name(&message.group)?;
    check_user_name(&message.from)?;
    if message.sealed.is_none() {
        check_text(&message.text)?;
    }
    Ok(())
}

/// Shows each message (checked) the first time it comes, in the order
/// given (the server's): a private group's opened first. One that cannot
/// be read is reported, and the others still shown.
pub(crate) async fn show(client: &Client, messages: &[Line]) {
    let server = client.session().lock().server;
    let user = client.groups().reader().unwrap_or_default();
    for message in messages {
        let kept_before = || newest_kept(client, &message.group);
        if !first_showing(server, &user, message, kept_before) {
            continue;
        }
        match read(client, &user, message).await {
            Ok(opened) => {
                for (late, text) in opened.late {
                    match text.and_then(|text| check_text(&text).map(|_| text)) {
                        Ok(text) => {
                            let shown = render(&late, &text).with("late", true);
                            keep(client, &user, &late, &text, State::Received, shown);
                        }
                        Err(e) => client.emit(Output::error(&e)),
                    }
                }
                if let Some(text) = opened.text {
                    let mut output = render(message, &text);
                    let mut state = State::Received;
                    if let Some(why) = &opened.unverified {
                        output = crate::message::unverified(output, &message.from, why);
                        state = State::Unverified;
                    }
                    keep(client, &user, message, &text, state, output);
                }
            }
            Err(e) => client.emit(Output::error(&e)),
        }
    }
}

/// Keeps a group's line in the user's history (`me` wrote it if it is
/// from them, on another client of theirs), and shows it once kept.
fn keep(client: &Client, me: &str, message: &Line, text: &str, state: State, shown: Output) {
    crate::history::keep(
        client,
        &history::Line {
            conversation: Conversation::Group(message.group.clone()),
            from: message.from.clone(),
            text: text.to_string(),
            time_ms: message.time_ms,
            number: Some(message.seq),
            message_id: None,
            outgoing: message.from == me,
            state,
        },
        Some(shown),
    );
}

/// The text of a message: opened (and checked) in a private group, as it
/// came in a group that is not. None for a private group's line that only
/// carries keys or is held for its key.
async fn read(client: &Client, me: &str, message: &Line) -> Result<Opened, CommandError> {
    let Some(sealed) = &message.sealed else {
        if client.groups().keys(|k| k.is_private(&message.group))? == Some(true) {
            return Err(CommandError::new(
                Code::Sealed,
                format!(
                    "refused {}'s message {} in {}: the group is private, and it was not end-to-end encrypted",
                    message.from, message.seq, message.group
                ),
            ));
        }
        return Ok(Opened {
            text: Some(message.text.clone()),
            ..Opened::default()
        });
    };
    let opened = crate::private::open(client, me, message, sealed).await?;
    if let Some(text) = &opened.text {
        check_text(text)?;
    }
    Ok(opened)
}

/// In the group's own conversation its lines read like the seeds' chat,
/// `[bob] hello`; elsewhere `[group1] <bob>: hello`, names in colour.
fn look(output: &Output, pen: &dyn Pen) -> Option<String> {
    Some(
        match (
            output.field("group"),
            output.field("from"),
            output.field("text"),
        ) {
            (Some(_), Some(from), Some(text)) if pen.is_partner(output, "group") => {
                format!("[{}] {}", pen.name(from), continued(text))
            }
            (Some(group), Some(from), Some(text)) if pen.is_elsewhere(output, "group") => {
                pen.notice(group, Some(from), text)
            }
            (Some(group), Some(from), Some(text)) => format!(
                "[{}] <{}>: {}",
                pen.name(group),
                pen.name(from),
                continued(text)
            ),
            _ => output.text.clone(),
        },
    )
}

/// A fellow member is someone one may talk to.
fn met_sender(output: &Output, names: &mut dyn Names) {
    if let Some(from) = output.field("from") {
        names.met(from);
    }
}

/// Whether `message` is newer than the last one shown from its group.
/// The server delivers each message once, in order; a message comes again
/// only if the server did not hear this client acknowledge it: the client
/// was killed in the moment between showing it and acknowledging it (an
/// acknowledgement of a group's message waits for the next packet, or 25
/// ms), or the server crashed just after the acknowledgement came.
/// Sequence numbers are never reused, so the last number shown per group
/// is all it takes to show each message once: kept here while the client
/// runs, and the first time a group is heard from, taken from the lines
/// the user's history kept of it (`kept_before`), so that a client started
/// again does not show what it showed before it was killed. Commands keep
/// no state of their own but this: the client process is one client.
fn first_showing(
    server: SocketAddr,
    user: &str,
    message: &Line,
    kept_before: impl FnOnce() -> u64,
) -> bool {
    type Key = (SocketAddr, String, String);
    static SHOWN: Mutex<Option<HashMap<Key, u64>>> = Mutex::new(None);
    let key = (server, user.to_string(), message.group.clone());
    let known = SHOWN.lock().as_ref().and_then(|s| s.get(&key).copied());
    // The history is read without the lock: it waits on the file.
    let known = known.unwrap_or_else(kept_before);
    let mut shown = SHOWN.lock();
    let last = shown
        .get_or_insert_with(HashMap::new)
        .entry(key)
        .or_insert(known);
    if message.seq <= *last {
        return false;
    }
    *last = message.seq;
    true
}

/// The number of the newest line of `group` this user's history kept (0
/// for none). A history that cannot be read is said in the log, and then
/// nothing is taken as shown: a line shown twice is better than one lost.
fn newest_kept(client: &Client, group: &str) -> u64 {
    match client
        .history()
        .newest_number(&Conversation::Group(group.to_string()))
    {
        Ok(newest) => newest.unwrap_or(0),
        Err(e) => {
            tracing::warn!(group, "history: {}", e.message);
            0
        }
    }
}

/// `[group1] <bob>: hello everyone`
pub fn line(message: &Line, text: &str) -> String {
    format!(
        "[{}] <{}>: {}",
        message.group,
        message.from,
        continued(text)
    )
}

fn render(message: &Line, text: &str) -> Output {
    Output::new("group-message", line(message, text))
        .with("group", message.group.clone())
        .with("from", message.from.clone())
        .with("text", text.to_string())
        .with("seq", message.seq)
        .with("time", message.time_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(seq: u64) -> Line {
        Line {
            group: "group1".into(),
            seq,
            from: "bob".into(),
            text: "hello everyone".into(),
            sealed: None,
            time_ms: 1_700_000_000_000,
        }
    }

    #[test]
    fn renders_as_the_seed_shows() {
        let out = render(&message(4), "hello everyone");
        assert_eq!(out.text, "[group1] <bob>: hello everyone");
        assert_eq!(
            out.to_json(),
            r#"{"event":"group-message","group":"group1","from":"bob","text":"hello everyone","seq":4,"time":1700000000000}"#
        );
    }

    #[test]
    fn a_message_shown_once_is_not_shown_again() {
        let server: SocketAddr = "127.0.0.1:9".parse().unwrap();
        let nothing_kept = || 0;
        assert!(first_showing(server, "carol", &message(5), nothing_kept));
        assert!(!first_showing(server, "carol", &message(5), nothing_kept));
        assert!(!first_showing(server, "carol", &message(3), nothing_kept));
        assert!(first_showing(server, "carol", &message(6), nothing_kept));
        assert!(
            first_showing(server, "dave", &message(5), nothing_kept),
            "per user"
        );
    }

    #[test]
    fn what_the_history_kept_before_the_client_started_is_not_shown_again() {
        let server: SocketAddr = "127.0.0.1:10".parse().unwrap();
        let kept_up_to_7 = || 7;
        assert!(!first_showing(server, "erin", &message(7), kept_up_to_7));
        assert!(!first_showing(
            server,
            "erin",
            &message(6),
            || unreachable!()
        ));
        assert!(first_showing(
            server,
            "erin",
            &message(8),
            || unreachable!()
        ));
        assert!(!first_showing(
            server,
            "erin",
            &message(8),
            || unreachable!()
        ));
    }
}
