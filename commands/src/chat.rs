//! `chat <user|group>`: conversation mode, as in the seeds where a user
//! picks one-to-one or group chat and then just types. This command
//! records whom the conversation is with (in the client's session) and
//! shows its last lines, kept on this client (see `history`); the shell
//! turns every plain line typed after it into a message to them, runs
//! lines starting with `/` as commands, and `leave` ends it.

use udpchat_core::args::{Arg, ArgKind, Args};
use udpchat_core::context::Client;
use udpchat_core::error::{Code, CommandError};
use udpchat_core::event::{Event, Names};
use udpchat_core::names::check_user_name;
use udpchat_core::output::Output;
use udpchat_core::register;
use udpchat_core::registry::{Command, Shell};

/// Lines of the conversation shown when it opens.
pub const LAST_LINES: usize = 10;

/// `chat`: the shell command.
pub struct Chat;

register! {
    Command::new("chat", "Talk to a user or group: plain lines go to them (/leave ends it).")
        .aliases(&["talk"])
        .args(&[Arg::one("user|group", ArgKind::UserOrGroup)])
        .examples(&["chat bob", "chat group1"])
        .shell::<Chat>()
}

register! {
    Event::new("conversation").names(partner)
}

impl Shell for Chat {
    async fn run(client: Client, args: Args) -> Result<(), CommandError> {
        let with = args.word(0).to_string();
        // Group names follow the user-name rules too.
        check_user_name(&with)?;
        let me = client.user()?;
        if with == me {
            return Err(CommandError::new(
                Code::Usage,
                "you cannot chat with yourself",
            ));
        }
        client.session().lock().conversation = Some(with.clone());
        client.emit(started(&with));
        // Where it was left: the last lines (and what was unread is read).
        let conversation = crate::history::conversation(&client, &with)?;
        let last = client.history().last(&conversation, LAST_LINES)?;
        if !last.is_empty() {
            client.emit(crate::history::shown(&conversation, &last));
        }
        Ok(())
    }
}

/// A user one talks to (a group is not one).
fn partner(output: &Output, names: &mut dyn Names) {
    if let Some(with) = output.field("with").filter(|w| !names.is_group(w)) {
        names.met(with);
    }
}

fn started(with: &str) -> Output {
    Output::new(
        "conversation",
        format!("Talking to {with}: type to send, /leave to stop, /help for commands"),
    )
    .with("with", with)
}

#[cfg(test)]
mod tests {
    use super::*;
    use udpchat_core::registry::Registry;

    #[test]
    fn says_whom_the_conversation_is_with() {
        let out = started("bob");
        assert_eq!(
            out.text,
            "Talking to bob: type to send, /leave to stop, /help for commands"
        );
        assert_eq!(out.to_json(), r#"{"event":"conversation","with":"bob"}"#);
    }

    #[test]
    fn help_page_snapshot() {
        assert_eq!(
            crate::help::page(
                Registry::global(),
                Registry::global().shell("talk").unwrap()
            ),
            "usage: chat <user|group>\n\
             Talk to a user or group: plain lines go to them (/leave ends it).\n\
             aliases: talk\n\
             examples:\n  chat bob\n  chat group1"
        );
    }
}
