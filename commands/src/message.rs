//! `message` (packet): a chat message sent directly from one client to
//! another. The receiver prints `<From IP:PORT:alice>: text`.

use serde::{Deserialize, Serialize};
use udpchat_core::context::{Client, Path, Sender};
use udpchat_core::error::{Code, CommandError};
use udpchat_core::event::{Event, Names, Pen};
use udpchat_core::history::{Conversation, Line, State};
use udpchat_core::names::check_user_name;
use udpchat_core::output::{continued, Output};
use udpchat_core::packet::{Packet, Push};
use udpchat_core::register;
use udpchat_core::registry::{Command, OnPush};

/// `message`: the push and its handler.
pub struct Message;

impl Packet for Message {
    const TAG: &'static str = "message";
}

impl Push for Message {
    const SERVER_ONLY: bool = false;
    type Body = MessageBody;
}

/// The packet body.
#[derive(Debug, Serialize, Deserialize)]
pub struct MessageBody {
    /// The sender's user name.
    pub from: String,
    pub text: String,
    /// The sender's id for this message, the same on every copy it sends
    /// (again, to another client of the recipient, or sealed into their
    /// mailbox): a recipient shows it once. Left out by an older client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<u64>,
    /// Sent before, its acknowledgement never heard: the recipient may have
    /// it already. Only such a copy is looked up in the recipient's
    /// history, so a first one costs no lookup.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub again: bool,
}

register! {
    Command::new(Message::TAG, "A chat message from another client.")
        .on_push::<Message>()
}

register! {
    Event::new("message").on_its_own().look(look).names(met_sender)
}

/// Checks a message text before it is sent or shown.
pub fn check_text(text: &str) -> Result<(), CommandError> {
    if text.trim().is_empty() {
        return Err(CommandError::new(
            Code::EmptyMessage,
            "empty message not sent",
        ));
    }
    if text.len() > crate::MAX_TEXT {
        return Err(CommandError::new(
            Code::TooLarge,
            format!(
                "message of {} bytes is longer than the {} allowed",
                text.len(),
                crate::MAX_TEXT
            ),
        ));
    }
    Ok(())
}

impl OnPush for Message {
    async fn on_push(
        client: Client,
        sender: Sender,
        message: MessageBody,
    ) -> Result<(), CommandError> {
        check_user_name(&message.from)?;
        check_text(&message.text)?;
        let copy = message.again
            && message
                .id
                .is_some_and(|id| shown_before(&client, &message.from, id, &message.text));
        if copy {
            // A copy of one shown (its acknowledgement was lost): this one
            // is acknowledged, not shown again.
            return Ok(());
        }
        // The session proved the sender holds `identity`; the server says
        // whose key that is (signed in or not: the sender may have left
        // since). A mismatch is someone claiming another name.
        let proven = sender
            .identity
            .as_ref()
            .ok_or_else(|| impostor(&message.from))?;
        if client.keys().is_known(&message.from, proven) {
            show(&client, render(&sender, &message), message, State::Received);
            return Ok(());
        }
        match crate::whois::identity(&client, &message.from).await {
            Ok(registered) if &registered == proven => {
                show(&client, render(&sender, &message), message, State::Received);
                Ok(())
            }
            Ok(_) => Err(impostor(&message.from)),
            Err(e) if e.code == Code::NoSuchUser => Err(CommandError::new(
                Code::Unverified,
                format!(
                    "dropped a message claiming to be from {}: {}",
                    message.from, e.message
                ),
            )),
            // The server could not be asked (this client signed out, or
            // the server is away). The message was acknowledged, so it is
            // shown, marked as not checked, rather than lost.
            Err(e) => {
                let output = unverified(render(&sender, &message), &message.from, &e);
                show(&client, output, message, State::Unverified);
                Ok(())
            }
        }
    }
}

/// Keeps a message that came in the conversation with its sender, and
/// shows it once kept.
fn show(client: &Client, output: Output, message: MessageBody, state: State) {
    crate::history::keep(
        client,
        &Line {
            conversation: Conversation::User(message.from.clone()),
            from: message.from,
            text: message.text,
            time_ms: udpchat_core::now_ms(),
            number: None,
            message_id: message.id,
            outgoing: false,
            state,
        },
        Some(output),
    );
}

/// Whether the history holds the message `id` from `from` with `text`:
/// the copy that came straight from them, or from their mailbox.
pub(crate) fn shown_before(client: &Client, from: &str, id: u64, text: &str) -> bool {
    let conversation = Conversation::User(from.to_string());
    match client.history().came_with_id(&conversation, id) {
        Ok(Some(kept)) => kept.line.from == from && kept.line.text == text,
        Ok(None) => false,
        Err(e) => {
            tracing::warn!("history: {}", e.message);
            false
        }
    }
}

/// In the shell: inside a conversation its partner's live lines read like
/// the seeds' chat, `[bob] Hey`; otherwise `<From IP:PORT:bob>: Hey`, the
/// name in its colour. A stored message keeps its own form.
fn look(output: &Output, pen: &dyn Pen) -> Option<String> {
    let live = output.data.get("stored").is_none();
    let verified = output.data.get("verified").is_none();
    Some(
        match (
            output.field("from"),
            output.field("addr"),
            output.field("text"),
        ) {
            (Some(from), _, Some(text)) if live && pen.is_partner(output, "from") => {
                format!("[{}] {}", pen.name(from), continued(text))
            }
            (Some(from), _, Some(text)) if verified && pen.is_elsewhere(output, "from") => {
                pen.notice(from, None, text)
            }
            (Some(from), Some(addr), Some(text)) => {
                format!("<From {}:{}>: {}", addr, pen.name(from), continued(text))
            }
            _ => pen.plain(output),
        },
    )
}

/// Whoever wrote is someone to write back to.
fn met_sender(output: &Output, names: &mut dyn Names) {
    if let Some(from) = output.field("from") {
        names.met(from);
    }
}

/// A message shown though its sender's name could not be checked.
pub(crate) fn unverified(output: Output, claimed: &str, why: &CommandError) -> Output {
    let text = format!(
        "{} [not verified: could not ask the server whether this is {claimed}'s key: {}]",
        output.text, why.message
    );
    Output {
        text,
        ..output.with("verified", false)
    }
}

fn impostor(claimed: &str) -> CommandError {
    CommandError::new(
        Code::Unverified,
        format!("dropped a message claiming to be from {claimed}: its sender does not hold {claimed}'s key"),
    )
}

/// The seeds' line, `<From IP:PORT:alice>: text`; for a message that came
/// through the server's relay, the address is where the server sees the
/// sender, and `--json` says `"path": "relay"`.
fn render(sender: &Sender, message: &MessageBody) -> Output {
    let addr = sender.addr;
    let output = Output::new(
        "message",
        format!(
            "<From {addr}:{}>: {}",
            message.from,
            continued(&message.text)
        ),
    )
    .with("from", message.from.clone())
    .with("addr", addr.to_string())
    .with("text", message.text.clone());
    match sender.path {
        Path::Relay => output.with("path", Path::Relay.word()),
        _ => output,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_as_the_seed_shows() {
        let message = MessageBody {
            from: "Carole".into(),
            text: "Hi Alice! How are you".into(),
            id: None,
            again: false,
        };
        let sender = Sender {
            peer: udpchat_core::context::PeerId(1),
            addr: "10.0.0.7:5000".parse().unwrap(),
            identity: None,
            from_server: false,
            path: Path::Direct,
        };
        let out = render(&sender, &message);
        assert_eq!(
            out.text,
            "<From 10.0.0.7:5000:Carole>: Hi Alice! How are you"
        );
        assert!(out.data.get("path").is_none());
        let relayed = render(
            &Sender {
                path: Path::Relay,
                ..sender
            },
            &message,
        );
        assert_eq!(relayed.text, out.text);
        assert_eq!(relayed.data["path"], "relay");
    }

    #[test]
    fn empty_and_oversized_texts_are_refused() {
        assert_eq!(check_text("   ").unwrap_err().code, Code::EmptyMessage);
        assert_eq!(
            check_text(&"x".repeat(crate::MAX_TEXT + 1))
                .unwrap_err()
                .code,
            Code::TooLarge
        );
        assert!(check_text(&"x".repeat(crate::MAX_TEXT)).is_ok());
    }
}
