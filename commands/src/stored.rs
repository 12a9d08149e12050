//! `stored` (packet): the server hands a client a message that was kept
//! for it while it was offline, with its sender and original time. The
//! client opens it, checks that the sender's identity key is the one the
//! server lists for the sender's name, shows it, and only then sends a
//! `receipt`, after which the server deletes it.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use udpchat_core::cbor;
use udpchat_core::context::{BoxFuture, Client, PeerId, Sender, Server};
use udpchat_core::crypto::keys::PublicKey;
use udpchat_core::crypto::sealed::SealedMessage;
use udpchat_core::error::{code, CommandError};
use udpchat_core::mailbox::{associated, Stored};
use udpchat_core::output::{continued, Output};
use udpchat_core::registry::Command;

/// The push body.
#[derive(Debug, Serialize, Deserialize)]
pub struct Handover {
    pub message: Stored,
    /// The identity key the server lists for the sender.
    pub from_identity: Option<PublicKey>,
}

inventory::submit! {
    Command {
        name: "stored",
        aliases: &[],
        usage: "stored",
        summary: "A message kept for you while you were offline.",
        examples: &[],
        args: &[],
        module: module_path!(),
        shell: None,
        serve: None,
        on_push: Some(on_push),
    }
}

/// Pushes `messages` to the client on `peer`, in order.
pub async fn hand_over(server: &Server, peer: PeerId, messages: Vec<Stored>) {
    // Many kept messages tend to come from few senders: look each up once.
    let mut identities: HashMap<String, Option<PublicKey>> = HashMap::new();
    for message in messages {
        let from_identity = match identities.get(&message.from) {
            Some(known) => known.clone(),
            None => {
                let found = server
                    .accounts()
                    .identity(&message.from)
                    .await
                    .ok()
                    .flatten();
                identities.insert(message.from.clone(), found.clone());
                found
            }
        };
        server.push(
            peer,
            "stored",
            cbor::encode(&Handover {
                message,
                from_identity,
            }),
        );
    }
}

/// Everything waiting for `user`, oldest first, to the session `peer`. If
/// the store fails, the messages stay for the next sign-in.
pub async fn deliver_pending(server: &Server, user: &str, peer: PeerId) {
    if let Ok(messages) = server.mailbox().pending(user).await {
        hand_over(server, peer, messages).await;
    }
}

fn on_push(
    client: Client,
    sender: Sender,
    body: Vec<u8>,
) -> BoxFuture<'static, Result<(), CommandError>> {
    Box::pin(async move {
        let Some(Handover {
            message,
            from_identity,
        }) = crate::from_server(&sender, &body)?
        else {
            return Ok(());
        };
        // Addressed by the server; the signin reply may not be in yet.
        let me = message.to.clone();
        // Another copy of one already shown (and opened: its one-time
        // prekey is gone): acknowledged again, not shown again.
        if !client.first_handover(&me, message.id) {
            return crate::receipt::acknowledge(&client, message.id).await;
        }
        // Whatever the sender deposited, this message is reported once
        // and acknowledged: one that cannot be opened must not stay in
        // the mailbox, taking room and coming back at every sign-in.
        let opened = crate::decode::<SealedMessage>(&message.sealed)
            .and_then(|sealed| client.open(&sealed, &associated(&message.from, &me)));
        let shown = match opened {
            Ok((proven, plaintext)) if Some(&proven) == from_identity.as_ref() => {
                client.check_identity(&message.from, &proven);
                let text = String::from_utf8_lossy(&plaintext).into_owned();
                client.emit(render(&message, &text));
                Ok(())
            }
            Ok(_) => Err(CommandError::new(
                code::UNVERIFIED,
                format!("dropped a stored message claiming to be from {}: it was sealed with another key", message.from),
            )),
            Err(e) => Err(CommandError::new(
                code::SEALED,
                format!("a stored message from {} could not be opened: {}", message.from, e.message),
            )),
        };
        crate::receipt::acknowledge(&client, message.id).await?;
        shown
    })
}

fn render(message: &Stored, text: &str) -> Output {
    let time = clock(message.sent_at_ms);
    Output::new(
        "message",
        format!(
            "[{time}] <{}> (while you were away): {}",
            message.from,
            continued(text)
        ),
    )
    .with("from", message.from.clone())
    .with("text", text.to_string())
    .with("stored", true)
    .with("sent_at_ms", message.sent_at_ms)
    .with("id", message.id)
}

/// `YYYY-MM-DD HH:MM UTC` from ms since the epoch (civil from days, no
/// time-zone database needed).
fn clock(ms: u64) -> String {
    let secs = ms / 1000;
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_as_dates() {
        assert_eq!(clock(0), "1970-01-01 00:00 UTC");
        assert_eq!(clock(1_795_444_200_000), "2026-11-23 14:30 UTC");
        assert_eq!(clock(951_782_400_000), "2000-02-29 00:00 UTC");
    }
}
