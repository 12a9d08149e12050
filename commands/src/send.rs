//! `send <user> <message...>` (`msg`): looks the user up on the server, then
//! sends the message straight to that user's client, not through the
//! server. `delivered to bob` follows once bob's client acknowledged it.
//! Once a session with bob's client is open, later messages go at once,
//! without asking the server again, until the server says bob came or
//! went (the lookup made this client one the server tells).
//!
//! The first message to a user opens an end-to-end session with their
//! client on the path a meeting finds (see `lookup`): direct where the
//! NATs between allow it, else through the server's relay, which cannot
//! read it (`delivered to bob (relayed)`). A user who is not signed in, or
//! whose client does not answer, gets it sealed and kept on the server
//! (`queued`, then `delivered to bob (stored)` when they are back).

use udpchat_core::args::{Arg, ArgKind, Args};
use udpchat_core::context::{Client, Delivery, Path, Whereabouts};
use udpchat_core::error::{Code, CommandError};
use udpchat_core::event::{Event, Ink, Names, Pen};
use udpchat_core::history::{Conversation, Line, LineId, State};
use udpchat_core::mailbox::Letter;
use udpchat_core::names::check_user_name;
use udpchat_core::output::Output;
use udpchat_core::register;
use udpchat_core::registry::{Command, Shell};

use crate::message::{check_text, Message, MessageBody};

mod turns;

use turns::Turn;

/// `send`: the shell command.
pub struct SendMessage;

register! {
    Command::new("send", "Send a message directly to a signed-in user.")
        .aliases(&["msg"])
        .args(&[Arg::one("user", ArgKind::User), Arg::text("message")])
        .examples(&["send carole Hello this is Alice.", "msg bob see you at 5"])
        .shell::<SendMessage>()
}

register! {
    Event::new("delivered").on_its_own().look(look).names(met_recipient)
}

impl Shell for SendMessage {
    async fn run(client: Client, args: Args) -> Result<(), CommandError> {
        let to = args.word(0).to_string();
        check_user_name(&to)?;
        let text = args.rest(1).to_string();
        check_text(&text)?;
        let from = client.user()?;
        let line = crate::history::keep(
            &client,
            &Line {
                conversation: Conversation::User(to.clone()),
                from: from.clone(),
                text: text.clone(),
                time_ms: udpchat_core::now_ms(),
                number: None,
                message_id: None,
                outgoing: true,
                state: State::Sending,
            },
            None,
        );
        let turn = Turn::take(&from, &to);
        let message = Outgoing {
            from,
            to,
            text,
            id: rand::random(),
            line,
        };
        // Their client's session is open and nothing was heard of them
        // since: no need to ask the server again.
        let known = client.peers().known(&message.to);
        let asked = known.is_none();
        let delivery = match message.go(&client, known, false).await {
            Ok(Whither::Sent(delivery)) => Some(delivery),
            // Not signed in: kept on the server now, unless messages
            // written to them before are still on their way; then once
            // those are settled, without holding up the shell.
            Ok(Whither::Away) if turn.is_first() => {
                let kept = message.keep(&client, &turn).await;
                if kept.is_err() {
                    message.settle(&client, State::Failed, None);
                }
                return kept;
            }
            Ok(Whither::Away) => None,
            Err(e) => {
                message.settle(&client, State::Failed, None);
                return Err(e);
            }
        };
        let reporter = client.clone();
        client.tasks().spawn(Box::pin(async move {
            // `None`: not delivered, to be kept for them.
            let mut fate = match delivery {
                Some(delivery) => delivery.await.map(Some),
                None => Ok(None),
            };
            if fate.is_err() && !asked {
                // Written without asking where they are: they may be on
                // another client now (the news not here yet). Ask, and
                // send it there, or keep it for them.
                fate = match message.go(&reporter, None, true).await {
                    Ok(Whither::Sent(delivery)) => delivery.await.map(Some),
                    Ok(Whither::Away) => Ok(None),
                    Err(e) => Err(e),
                };
            }
            let outcome = match fate {
                Ok(Some(path)) => {
                    let state = match path {
                        Path::Relay => State::Relayed,
                        _ => State::Delivered,
                    };
                    message.settle(&reporter, state, None);
                    reporter.emit(delivered(&message.to, path));
                    Ok(())
                }
                // Not signed in, or their client stopped answering: keep
                // it for them instead.
                Ok(None) | Err(_) => message.keep(&reporter, &turn).await,
            };
            if let Err(e) = outcome {
                message.settle(&reporter, State::Failed, None);
                reporter.emit(
                    Output::error(&CommandError::new(
                        Code::DeliveryFailed,
                        format!("message to {} was not delivered: {}", message.to, e.message),
                    ))
                    .with("to", message.to),
                );
            }
        }));
        Ok(())
    }
}

/// Where a message went.
enum Whither {
    /// To the recipient's client: the delivery to wait for.
    Sent(Delivery),
    /// Nowhere: the recipient is not signed in (it is to be kept for them).
    Away,
}

/// A direct message on its way.
struct Outgoing {
    from: String,
    to: String,
    text: String,
    /// The same on every copy sent (see [`MessageBody::id`]).
    id: u64,
    /// Its line in the user's history.
    line: Option<LineId>,
}

impl Outgoing {
    /// Sends it to the recipient's client at `known` whereabouts, or where
    /// the server says it is; `again` when it was sent before.
    async fn go(
        &self,
        client: &Client,
        known: Option<Whereabouts>,
        again: bool,
    ) -> Result<Whither, CommandError> {
        let whereabouts = match known {
            Some(found) => found,
            None => {
                let meet = client.peers().needs_meeting(&self.to);
                match crate::lookup::lookup(client, &self.to, meet).await {
                    Ok(found) => found,
                    // Not signed in: to be sealed and left on the server
                    // (an unknown user gets the error from there).
                    Err(e) if e.code == Code::NoSuchUser => return Ok(Whither::Away),
                    Err(e) => return Err(e),
                }
            }
        };
        let body = MessageBody {
            from: self.from.clone(),
            text: self.text.clone(),
            id: Some(self.id),
            again,
        };
        let delivery = client.peers().push::<Message>(whereabouts, &body).await;
        // A push that could not even be queued fails like one unanswered.
        Ok(Whither::Sent(
            delivery.unwrap_or_else(|e| Box::pin(async { Err(e) })),
        ))
    }

    /// Seals it and leaves it on the server for the recipient, after the
    /// messages written to them before it (see [`turns`]).
    async fn keep(&self, client: &Client, turn: &Turn) -> Result<(), CommandError> {
        turn.wait().await;
        let letter = Letter {
            id: Some(self.id),
            text: self.text.clone(),
        };
        let kept = crate::deposit::queue(client, &self.from, &self.to, &letter).await?;
        self.settle(client, State::Queued, Some(kept));
        Ok(())
    }

    /// What became of it, in the user's history.
    fn settle(&self, client: &Client, state: State, number: Option<u64>) {
        crate::history::settle(client, self.line, state, number);
    }
}

/// `delivered to bob`, saying how when it was not straight to their client.
pub fn delivered(to: &str, path: Path) -> Output {
    let how = match path {
        Path::Direct => "",
        Path::Relay => " (relayed)",
        Path::Stored => " (stored)",
    };
    Output::new("delivered", format!("delivered to {to}{how}"))
        .with("to", to.to_string())
        .with("path", path.word())
}

/// Quiet; and nothing at all for a delivery to the conversation's partner
/// (a conversation would be every other line otherwise; a failed one is
/// still shown, as an error).
fn look(output: &Output, pen: &dyn Pen) -> Option<String> {
    if pen.is_partner(output, "to") {
        return None;
    }
    Some(pen.ink(Ink::Quiet, &output.text))
}

/// Whoever a message reached is someone one talks to.
fn met_recipient(output: &Output, names: &mut dyn Names) {
    if let Some(to) = output.field("to") {
        names.met(to);
    }
}
