//! `message` (packet): a chat message sent directly from one client to
//! another. The receiver prints `<From IP:PORT:alice>: text`.

use serde::{Deserialize, Serialize};
use udpchat_core::context::{BoxFuture, Client, Path, Sender};
use udpchat_core::error::{code, CommandError};
use udpchat_core::names::check_user_name;
use udpchat_core::output::{continued, Output};
use udpchat_core::registry::Command;

/// The packet body.
#[derive(Debug, Serialize, Deserialize)]
pub struct Message {
    /// The sender's user name.
    pub from: String,
    pub text: String,
}

inventory::submit! {
    Command {
        name: "message",
        aliases: &[],
        usage: "message",
        summary: "A chat message from another client.",
        examples: &[],
        args: &[],
        module: module_path!(),
        shell: None,
        serve: None,
        on_push: Some(on_push),
    }
}

/// Checks a message text before it is sent or shown.
pub fn check_text(text: &str) -> Result<(), CommandError> {
    if text.trim().is_empty() {
        return Err(CommandError::new(
            code::EMPTY_MESSAGE,
            "empty message not sent",
        ));
    }
    if text.len() > crate::MAX_TEXT {
        return Err(CommandError::new(
            code::TOO_LARGE,
            format!(
                "message of {} bytes is longer than the {} allowed",
                text.len(),
                crate::MAX_TEXT
            ),
        ));
    }
    Ok(())
}

fn on_push(
    client: Client,
    sender: Sender,
    body: Vec<u8>,
) -> BoxFuture<'static, Result<(), CommandError>> {
    Box::pin(async move {
        let message: Message = crate::decode(&body)?;
        check_user_name(&message.from)?;
        check_text(&message.text)?;
        // The session proved the sender holds `identity`; the server says
        // whose key that is (signed in or not: the sender may have left
        // since). A mismatch is someone claiming another name.
        let proven = sender
            .identity
            .as_ref()
            .ok_or_else(|| impostor(&message.from))?;
        if client.is_known_identity(&message.from, proven) {
            client.emit(render(&sender, &message));
            return Ok(());
        }
        match crate::whois::identity(&client, &message.from).await {
            Ok(registered) if &registered == proven => {
                client.emit(render(&sender, &message));
                Ok(())
            }
            Ok(_) => Err(impostor(&message.from)),
            Err(e) if e.code == code::NO_SUCH_USER => Err(CommandError::new(
                code::UNVERIFIED,
                format!(
                    "dropped a message claiming to be from {}: {}",
                    message.from, e.message
                ),
            )),
            // The server could not be asked (this client signed out, or
            // the server is away). The message was acknowledged, so it is
            // shown, marked as not checked, rather than lost.
            Err(e) => {
                client.emit(unverified(render(&sender, &message), &message.from, &e));
                Ok(())
            }
        }
    })
}

/// A message shown though its sender's name could not be checked.
fn unverified(output: Output, claimed: &str, why: &CommandError) -> Output {
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
        code::UNVERIFIED,
        format!("dropped a message claiming to be from {claimed}: its sender does not hold {claimed}'s key"),
    )
}

/// The seeds' line, `<From IP:PORT:alice>: text`; for a message that came
/// through the server's relay, the address is where the server sees the
/// sender, and `--json` says `"path": "relay"`.
fn render(sender: &Sender, message: &Message) -> Output {
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
        let message = Message {
            from: "Carole".into(),
            text: "Hi Alice! How are you".into(),
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
        assert_eq!(check_text("   ").unwrap_err().code, code::EMPTY_MESSAGE);
        assert_eq!(
            check_text(&"x".repeat(crate::MAX_TEXT + 1))
                .unwrap_err()
                .code,
            code::TOO_LARGE
        );
        assert!(check_text(&"x".repeat(crate::MAX_TEXT)).is_ok());
    }
}
